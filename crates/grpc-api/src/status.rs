//! The one mapping from model errors to gRPC statuses with rich details.

use std::collections::HashMap;

use confstrata_core::{Error, ErrorKind};
use confstrata_proto::convert::FieldError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `domain` of every `google.rpc.ErrorInfo` this server sends.
pub const ERROR_DOMAIN: &str = "confstrata.dev";

/// A request field that failed validation: INVALID_ARGUMENT (or
/// RESOURCE_EXHAUSTED for size limits) naming the field.
pub(crate) fn field(e: FieldError) -> Status {
    from_core(&e.error, &e.field)
}

/// Maps a model error; `field` names the request field the error is about
/// when the error itself does not say.
pub(crate) fn from_core(e: &Error, field: &str) -> Status {
    // The message travels in a trailer too (`grpc-message`): bounded, like
    // the details, whatever the error echoes.
    let message = confstrata_core::clip(&e.to_string(), MAX_MESSAGE_BYTES).into_owned();
    let field = match e {
        // Which operation failed is the useful part for a change set.
        Error::Operation { index, .. } if field.starts_with("change_set") || field.is_empty() => {
            format!("change_set.ops[{index}]")
        }
        // SetKeys/UnsetKeys: one operation per entry, all on one layer.
        Error::Operation { source, .. }
            if matches!(**source, Error::LayerOutsideHierarchy { .. }) =>
        {
            "layer".to_owned()
        }
        Error::Operation { index, .. } if field == "entries" || field == "keys" => {
            format!("{field}[{index}]")
        }
        Error::UnknownContextVariable { .. } | Error::ContextValueNotAllowed { .. } => {
            "context".to_owned()
        }
        _ => field.to_owned(),
    };
    let details = match e.root() {
        Error::TooLarge { size, limit, .. } => Some(ErrorDetails::with_error_info(
            "TOO_LARGE",
            ERROR_DOMAIN,
            HashMap::from([
                ("field".to_owned(), field),
                ("size".to_owned(), size.to_string()),
                ("limit".to_owned(), limit.to_string()),
            ]),
        )),
        Error::NamespaceNotFound { namespace } => Some(not_found("namespace", namespace, &message)),
        Error::LayerNotFound { namespace, layer } => Some(not_found(
            "layer",
            &format!("{namespace}:{layer}"),
            &message,
        )),
        Error::KeyNotFound { location, key } => {
            Some(not_found("key", &format!("{location} {key}"), &message))
        }
        Error::Conflict {
            target,
            expected,
            actual,
            current_revision,
        } => Some(ErrorDetails::with_error_info(
            "CONFLICT",
            ERROR_DOMAIN,
            HashMap::from([
                ("target".to_owned(), target.clone()),
                ("expected".to_owned(), expected.to_string()),
                ("actual".to_owned(), actual.to_string()),
                ("current_revision".to_owned(), current_revision.to_string()),
            ]),
        )),
        Error::Compacted { oldest, requested } => Some(ErrorDetails::with_error_info(
            "COMPACTED",
            ERROR_DOMAIN,
            HashMap::from([
                ("oldest_revision".to_owned(), oldest.to_string()),
                ("requested".to_owned(), requested.to_string()),
            ]),
        )),
        Error::FutureRevision { current, requested } => Some(ErrorDetails::with_error_info(
            "FUTURE_REVISION",
            ERROR_DOMAIN,
            HashMap::from([
                ("current_revision".to_owned(), current.to_string()),
                ("requested".to_owned(), requested.to_string()),
            ]),
        )),
        Error::Validation { findings } => Some(validation_failed(findings)),
        Error::PermissionDenied {
            action, resource, ..
        } => Some(ErrorDetails::with_error_info(
            "PERMISSION_DENIED",
            ERROR_DOMAIN,
            HashMap::from([
                ("action".to_owned(), action.clone()),
                ("resource".to_owned(), resource.clone()),
            ]),
        )),
        _ if e.kind() == ErrorKind::InvalidInput => Some(ErrorDetails::with_bad_request_violation(
            field,
            message.clone(),
        )),
        _ => None,
    };
    match e.kind() {
        ErrorKind::Integrity | ErrorKind::Internal => {
            tracing::error!(error = %message, kind = %e.kind(), "server error");
        }
        _ => {}
    }
    let code = code(e.kind());
    match details {
        Some(details) => Status::with_error_details(code, message, details),
        None => Status::new(code, message),
    }
}

/// The gRPC code of each kind of error: the one table, tested against
/// [`ErrorKind::ALL`].
pub(crate) const CODES: &[(ErrorKind, Code)] = &[
    (ErrorKind::InvalidInput, Code::InvalidArgument),
    (ErrorKind::TooLarge, Code::ResourceExhausted),
    (ErrorKind::NotFound, Code::NotFound),
    (ErrorKind::AlreadyExists, Code::AlreadyExists),
    (ErrorKind::Conflict, Code::Aborted),
    (ErrorKind::OutOfRange, Code::OutOfRange),
    (ErrorKind::Unauthenticated, Code::Unauthenticated),
    (ErrorKind::PermissionDenied, Code::PermissionDenied),
    // With an `ErrorInfo` of reason VALIDATION_FAILED.
    (ErrorKind::ValidationFailed, Code::InvalidArgument),
    (ErrorKind::Integrity, Code::DataLoss),
    (ErrorKind::Unavailable, Code::Unavailable),
    (ErrorKind::Internal, Code::Internal),
];

/// The code of `kind` in [`CODES`] (INTERNAL for a kind added later and not yet mapped).
pub(crate) fn code(kind: ErrorKind) -> Code {
    CODES
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(Code::Internal, |(_, c)| *c)
}

/// Most bytes of finding descriptions a refusal carries in its details.
///
/// Details travel in HTTP/2 trailers (`grpc-status-details-bin`, base64),
/// which peers cap: gRPC C-core (Python, Ruby, PHP) starts refusing
/// metadata over 8 KiB and always over 16 KiB, h2 (Rust) at 16 KiB. 3 KB of
/// descriptions (and a message of at most 1 KB) stays under every cap with the message and the other
/// trailers; the whole list is in the `DryRun`/`Validate` response bodies.
pub(crate) const MAX_FINDING_BYTES: usize = 3000;

/// Most bytes of a status message (`grpc-message`, percent-encoded).
const MAX_MESSAGE_BYTES: usize = 1000;

/// A commit refused by validation: INVALID_ARGUMENT with the first error
/// findings that fit in [`MAX_FINDING_BYTES`] (at least one) as field
/// violations, and an `ErrorInfo` with the total count (`errors`) and how
/// many are attached (`reported`).
fn validation_failed(findings: &[confstrata_core::Finding]) -> ErrorDetails {
    let errors: Vec<&confstrata_core::Finding> = findings
        .iter()
        .filter(|f| f.severity == confstrata_core::Severity::Error)
        .collect();
    let mut violations = Vec::new();
    let mut bytes = 0;
    for f in &errors {
        let ctx: Vec<String> = f.context.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let field = confstrata_core::clip(
            format!(
                "{} {} {}",
                f.namespace,
                ctx.join(","),
                f.key.as_deref().unwrap_or("")
            )
            .trim_end(),
            200,
        )
        .into_owned();
        let description = f.to_string();
        bytes += field.len() + description.len();
        if !violations.is_empty() && bytes > MAX_FINDING_BYTES {
            break;
        }
        violations.push((field, description));
    }
    let mut details = ErrorDetails::with_error_info(
        "VALIDATION_FAILED",
        ERROR_DOMAIN,
        HashMap::from([
            ("errors".to_owned(), errors.len().to_string()),
            ("reported".to_owned(), violations.len().to_string()),
        ]),
    );
    for (field, description) in violations {
        details.add_bad_request_violation(field, description);
    }
    details
}

fn not_found(kind: &str, name: &str, message: &str) -> ErrorDetails {
    ErrorDetails::with_resource_info(kind, name, "", message)
}

/// tonic refuses a request message over the size limit with OUT_OF_RANGE,
/// which this API uses for revisions outside the readable range (a client
/// would take it for a compacted revision); the answer is
/// RESOURCE_EXHAUSTED, as for every other size limit. tonic makes that
/// status before any handler runs, so it is rewritten on the way out.
pub(crate) fn oversize_is_resource_exhausted<B>(
    mut response: http::Response<B>,
) -> http::Response<B> {
    let headers = response.headers_mut();
    let oversize = headers.get("grpc-status").is_some_and(|v| v == "11")
        && headers.get("grpc-message").is_some_and(|m| {
            let m = m.as_bytes();
            m.windows(b"length%20too%20large".len())
                .any(|w| w == b"length%20too%20large")
                || m.windows(b"length too large".len())
                    .any(|w| w == b"length too large")
        });
    if oversize {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
    }
    response
}

#[cfg(test)]
mod tests;
