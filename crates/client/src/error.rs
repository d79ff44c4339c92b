//! The one error type of the client.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use confstrata_core::ErrorKind;
use confstrata_proto::convert::FieldError;
use tonic::Code;
use tonic_types::StatusExt;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to a Confstrata server.
///
/// Server answers keep their gRPC code and the details the server attached
/// (the offending request field, the store's current revision on a
/// conflict), so callers can branch on [`Error::is_conflict`],
/// [`Error::is_not_found`] and friends instead of parsing messages.
///
/// ```
/// use confstrata_client::{Code, Error};
/// let e = Error::from(tonic::Status::new(Code::Aborted, "conflict on layer web:defaults"));
/// assert!(e.is_conflict() && !e.is_retryable());
/// assert_eq!(e.to_string(), "conflict on layer web:defaults");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error status.
    #[error("{}", status_text(*code, message))]
    Status {
        /// The gRPC status code.
        code: Code,
        /// The server's message.
        message: String,
        /// The request field the server rejected (from a `google.rpc.BadRequest`).
        field: Option<String>,
        /// Every field violation's description (for a refused commit, one
        /// line per validation finding).
        violations: Vec<String>,
        /// The `google.rpc.ErrorInfo` reason, e.g. `CONFLICT` or `COMPACTED`.
        reason: Option<String>,
        /// The store's revision when the call failed (from the `ErrorInfo`
        /// metadata `current_revision`, sent with conflicts and future revisions).
        current_revision: Option<u64>,
        /// For a refused commit, how many error findings there were in all
        /// (`ErrorInfo` metadata `errors`); `violations` holds the first
        /// few, as many as fit in a status. `DryRun` and `Validate` return
        /// every one.
        error_count: Option<u32>,
    },
    /// The connection to the server could not be made or broke.
    #[error("cannot connect to Confstrata at {addr}: {}", chain(source))]
    Transport {
        /// The server address.
        addr: String,
        /// The transport's error.
        #[source]
        source: tonic::transport::Error,
    },
    /// The token cannot be sent.
    #[error("invalid Confstrata token: {reason}")]
    InvalidToken {
        /// What is wrong with it (never the token itself).
        reason: String,
    },
    /// The address is not a usable server address.
    #[error("invalid Confstrata address {addr:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server sent something that is not a valid answer.
    #[error("the server sent an invalid response: {0}")]
    InvalidResponse(#[source] FieldError),
    /// An argument was rejected before anything was sent (an invalid name or path).
    #[error(transparent)]
    Model(#[from] confstrata_core::Error),
    /// The server did not answer within the time allowed.
    #[error("Confstrata at {addr} did not answer within {after:?}")]
    Timeout {
        /// The server address.
        addr: String,
        /// The time allowed.
        after: Duration,
    },
    /// The configuration could not be loaded: the server failed and no
    /// usable fallback file was there to stand in.
    #[error(
        "cannot load namespace {namespace:?} from Confstrata at {addr}: {source}; {}",
        fallback.as_deref().map_or_else(
            || "no fallback file is configured (see ConfstrataProvider::fallback_file)".to_owned(),
            |f| format!("the fallback file could not be used either: {f}")
        )
    )]
    Offline {
        /// The server address.
        addr: String,
        /// The namespace asked for.
        namespace: String,
        /// Why the server could not answer.
        #[source]
        source: Box<Error>,
        /// Why the fallback file could not be used, if one is configured.
        fallback: Option<String>,
    },
    /// The fallback file could not be read or written.
    #[error("fallback file {}: {reason}", path.display())]
    Fallback {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The client could not start its runtime or worker thread.
    #[error("the Confstrata client could not run: {0}")]
    Runtime(String),
}

impl Error {
    /// The gRPC code of a server answer, if this is one.
    pub fn code(&self) -> Option<Code> {
        match self {
            Error::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The kind of error, as the server sorted it: from the status code by
    /// [`CODE_KINDS`] (INVALID_ARGUMENT with reason `VALIDATION_FAILED` is
    /// [`ErrorKind::ValidationFailed`]); a refused argument's own kind; a
    /// transport failure or time-out is [`ErrorKind::Unavailable`]. `None`
    /// for errors of the client itself (a bad token or address, a fallback
    /// file) and for codes the server never sends.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Error::Status {
                reason: Some(r), ..
            } if r == "VALIDATION_FAILED" => Some(ErrorKind::ValidationFailed),
            Error::Status { code, .. } => CODE_KINDS
                .iter()
                .find(|(c, _)| c == code)
                .map(|(_, kind)| *kind),
            Error::Model(e) => Some(e.kind()),
            Error::Transport { .. } | Error::Timeout { .. } | Error::Offline { .. } => {
                Some(ErrorKind::Unavailable)
            }
            _ => None,
        }
    }

    /// Whether an expected-revision precondition failed (`ABORTED`): nothing
    /// was changed; re-read and retry.
    pub fn is_conflict(&self) -> bool {
        self.kind() == Some(ErrorKind::Conflict)
    }

    /// Whether a namespace, layer or key does not exist (`NOT_FOUND`).
    pub fn is_not_found(&self) -> bool {
        self.kind() == Some(ErrorKind::NotFound)
    }

    /// Whether the object to create already exists (`ALREADY_EXISTS`).
    pub fn is_already_exists(&self) -> bool {
        self.kind() == Some(ErrorKind::AlreadyExists)
    }

    /// Whether the server did not accept the token (`UNAUTHENTICATED`): none
    /// was sent, or it is malformed, unknown or revoked.
    pub fn is_unauthenticated(&self) -> bool {
        self.kind() == Some(ErrorKind::Unauthenticated)
    }

    /// Whether a commit was refused because the configuration it would leave
    /// fails validation (`INVALID_ARGUMENT` with reason `VALIDATION_FAILED`;
    /// the status's field violations are the findings).
    pub fn is_validation_failed(&self) -> bool {
        self.kind() == Some(ErrorKind::ValidationFailed)
    }

    /// Whether the token's principal may not do this (`PERMISSION_DENIED`);
    /// the message names the action and the resource.
    pub fn is_permission_denied(&self) -> bool {
        self.kind() == Some(ErrorKind::PermissionDenied)
    }

    /// Whether a revision was removed by retention or is not reached yet
    /// (`OUT_OF_RANGE`).
    pub fn is_out_of_range(&self) -> bool {
        self.kind() == Some(ErrorKind::OutOfRange)
    }

    /// Whether the request was malformed (`INVALID_ARGUMENT`, or rejected
    /// before sending); [`Error::field`] names the field when the server did.
    pub fn is_invalid_argument(&self) -> bool {
        matches!(self, Error::Model(_))
            || matches!(
                self.kind(),
                Some(ErrorKind::InvalidInput | ErrorKind::ValidationFailed)
            )
    }

    /// Whether the server could not be reached or the connection broke:
    /// the same call may succeed later.
    pub fn is_unavailable(&self) -> bool {
        self.kind() == Some(ErrorKind::Unavailable)
    }

    /// Whether a long-lived call (a watch) should be retried after this
    /// error: [`Error::is_unavailable`], plus `INTERNAL` (a stream cut by a
    /// server going down is reported as such by some transports).
    pub fn is_retryable(&self) -> bool {
        self.is_unavailable() || self.kind() == Some(ErrorKind::Internal)
    }

    /// The request field the server rejected, e.g. `change_set.ops[2].set.key`.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Status { field, .. } => field.as_deref(),
            Error::InvalidResponse(e) => Some(&e.field),
            _ => None,
        }
    }

    /// The descriptions of the server's field violations: for a refused
    /// commit ([`Error::is_validation_failed`]), one line per finding.
    pub fn violations(&self) -> &[String] {
        match self {
            Error::Status { violations, .. } => violations,
            _ => &[],
        }
    }

    /// How many error findings a refused commit had in all (see
    /// [`Error::violations`] for the first few).
    pub fn error_count(&self) -> Option<u32> {
        match self {
            Error::Status { error_count, .. } => *error_count,
            _ => None,
        }
    }

    /// The store's current revision, when the server reported it (on a conflict).
    pub fn current_revision(&self) -> Option<u64> {
        match self {
            Error::Status {
                current_revision, ..
            } => *current_revision,
            _ => None,
        }
    }

    /// Reads a status and its `google.rpc` details.
    pub fn from_status(status: &tonic::Status) -> Self {
        let details = status.get_error_details();
        let field = details
            .bad_request()
            .and_then(|b| b.field_violations.first())
            .map(|v| v.field.clone())
            .filter(|f| !f.is_empty());
        let violations = details
            .bad_request()
            .map(|b| {
                b.field_violations
                    .iter()
                    .map(|v| v.description.clone())
                    .collect()
            })
            .unwrap_or_default();
        let info = details.error_info();
        let reason = info.map(|i| i.reason.clone()).filter(|r| !r.is_empty());
        let current_revision = info
            .and_then(|i| i.metadata.get("current_revision"))
            .and_then(|v| v.trim().parse().ok());
        let error_count = info
            .and_then(|i| i.metadata.get("errors"))
            .and_then(|v| v.trim().parse().ok());
        // A status made by the transport (connection refused, reset) keeps
        // the cause in its source; fold it into the message.
        let mut message = status.message().to_owned();
        if let Some(source) = std::error::Error::source(status) {
            let cause = chain(source);
            if !message.contains(&cause) {
                if !message.is_empty() {
                    message.push_str(": ");
                }
                message.push_str(&cause);
            }
        }
        Error::Status {
            code: status.code(),
            message,
            field,
            violations,
            reason,
            current_revision,
            error_count,
        }
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        Error::from_status(&status)
    }
}

impl From<FieldError> for Error {
    fn from(e: FieldError) -> Self {
        Error::InvalidResponse(e)
    }
}

/// The kind of error each gRPC code a server answers with stands for:
/// the inverse of the server's table, plus the codes a transport or a
/// proxy produces (CANCELLED, DEADLINE_EXCEEDED, UNKNOWN: unavailable, so
/// a call is retried). Tested against [`ErrorKind::ALL`].
pub const CODE_KINDS: &[(Code, ErrorKind)] = &[
    (Code::InvalidArgument, ErrorKind::InvalidInput),
    (Code::ResourceExhausted, ErrorKind::TooLarge),
    (Code::NotFound, ErrorKind::NotFound),
    (Code::AlreadyExists, ErrorKind::AlreadyExists),
    (Code::Aborted, ErrorKind::Conflict),
    (Code::OutOfRange, ErrorKind::OutOfRange),
    (Code::Unauthenticated, ErrorKind::Unauthenticated),
    (Code::PermissionDenied, ErrorKind::PermissionDenied),
    (Code::DataLoss, ErrorKind::Integrity),
    (Code::Unavailable, ErrorKind::Unavailable),
    (Code::Cancelled, ErrorKind::Unavailable),
    (Code::DeadlineExceeded, ErrorKind::Unavailable),
    (Code::Unknown, ErrorKind::Unavailable),
    (Code::Internal, ErrorKind::Internal),
];

/// The canonical upper-case name of a code, as in the gRPC spec.
pub(crate) fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A server error as one line. The codes Confstrata uses for domain errors
/// carry messages that stand on their own (they say what and where, like
/// the embedded store's errors); other codes are named so that a transport
/// or server failure is not mistaken for a configuration problem.
fn status_text(code: Code, message: &str) -> String {
    let domain = matches!(
        code,
        Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::Aborted
            | Code::OutOfRange
            | Code::ResourceExhausted
            | Code::FailedPrecondition
    );
    match (domain, message.is_empty()) {
        (true, false) => message.to_owned(),
        (_, true) => format!("the server answered {}", code_name(code)),
        (false, false) => format!("the server answered {}: {message}", code_name(code)),
    }
}

/// An error and its sources on one line (transport errors say little at the top).
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

/// An error with all its causes on one line, for logs.
pub(crate) struct OneLine<'a>(pub(crate) &'a Error);

impl fmt::Display for OneLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&chain(self.0).replace('\n', " "))
    }
}
