//! The one error type of `confstrata-core`, shared by every store and the engine.

use std::fmt;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the model or in a store.
///
/// Every variant names what was wrong and where, so a user can act on the
/// message alone. Variants carry data rather than pre-rendered strings so that
/// transports (gRPC, REST) can map them to precise status codes later.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key path, layer path, namespace name or level template is malformed.
    #[error("invalid {kind} {input:?}: {reason}")]
    InvalidPath {
        /// Which kind of path (`key path`, `layer path`, ...).
        kind: &'static str,
        /// The input as given (truncated if very long).
        input: String,
        /// What is wrong with it, naming the bad part.
        reason: String,
    },
    /// A document (layer, namespace spec, change set) is structurally invalid.
    #[error("invalid {}: {}", Clip(what, 200), Clip(reason, 500))]
    Invalid {
        /// What was being checked, e.g. `layer webshop:env/prod`.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// Text could not be parsed as the given format.
    #[error("{}: {}{}", Clip(source_name, 200), Location(*line, *column), Clip(message, 500))]
    Parse {
        /// File name or other origin (`<stdin>`, `--value`).
        source_name: String,
        /// The format that was expected (`TOML`, `YAML`, `JSON`, `.env`).
        format: &'static str,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// Input that must be UTF-8 is not.
    #[error("{source_name}: not valid UTF-8 (first bad byte at offset {valid_up_to})")]
    InvalidUtf8 {
        /// File name or other origin.
        source_name: String,
        /// Byte offset of the first invalid byte.
        valid_up_to: usize,
    },
    /// Something is bigger than its configured limit.
    #[error("{} is {size} bytes, over the limit of {limit} bytes", Clip(what, 200))]
    TooLarge {
        /// What was measured.
        what: String,
        /// Its size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// A document nests deeper than the configured limit.
    #[error(
        "{} nests deeper than the limit of {limit} levels (at {})",
        Clip(what, 200),
        Clip(path, 200)
    )]
    TooDeep {
        /// What was checked.
        what: String,
        /// Where the limit was crossed.
        path: String,
        /// The depth limit.
        limit: usize,
    },
    /// The namespace does not exist (at the revision asked for).
    #[error("namespace {namespace:?} not found (create it with `confstrata ns create`)")]
    NamespaceNotFound {
        /// The namespace name.
        namespace: String,
    },
    /// The layer does not exist (at the revision asked for).
    #[error("layer {namespace}:{layer} not found")]
    LayerNotFound {
        /// The namespace name.
        namespace: String,
        /// The layer path.
        layer: String,
    },
    /// No template of this name (and version).
    #[error("template {} not found (known: {})", Clip(name, 200), Clip(known, 500))]
    TemplateNotFound {
        /// The name asked for, `NAME` or `NAME@VERSION`.
        name: String,
        /// The templates there are, `NAME@VERSION`, comma-separated.
        known: String,
    },
    /// A key does not exist in a layer or resolved document.
    #[error("key {} not found in {}", Clip(key, 200), Clip(location, 200))]
    KeyNotFound {
        /// Where it was looked up.
        location: String,
        /// The key path.
        key: String,
    },
    /// A layer path that matches none of the namespace's level templates.
    #[error(
        "layer path {layer:?} matches no level of namespace {namespace:?} (levels: {}){}",
        levels.join(", "), hint.as_deref().map(|h| format!("; {h}")).unwrap_or_default()
    )]
    LayerOutsideHierarchy {
        /// The namespace name.
        namespace: String,
        /// The layer path.
        layer: String,
        /// The namespace's level templates.
        levels: Vec<String>,
        /// A more precise reason, e.g. a matrix value that is not allowed.
        hint: Option<String>,
    },
    /// A context names a variable that no level of the namespace uses.
    #[error(
        "context variable {:?} is not used by namespace {namespace:?} (known variables: {})",
        Clip(variable, 80), Clip(&known.join(", "), 500)
    )]
    UnknownContextVariable {
        /// The namespace name.
        namespace: String,
        /// The unknown variable.
        variable: String,
        /// The variables the namespace knows.
        known: Vec<String>,
    },
    /// A context value outside the namespace's context matrix.
    #[error(
        "context {}={:?} is not in the matrix of namespace {namespace:?} (allowed: {})",
        Clip(variable, 80), Clip(value, 80), Clip(&allowed.join(", "), 500)
    )]
    ContextValueNotAllowed {
        /// The namespace name.
        namespace: String,
        /// The variable.
        variable: String,
        /// The value given.
        value: String,
        /// The values the matrix allows.
        allowed: Vec<String>,
    },
    /// An expected-revision precondition failed; nothing was changed.
    #[error(
        "conflict on {}: expected revision {expected}, found {actual}; nothing was changed (store is at revision {current_revision})",
        Clip(target, 200)
    )]
    Conflict {
        /// What the precondition was on, e.g. `layer webshop:env/prod`.
        target: String,
        /// The revision the caller expected (0 = must not exist).
        expected: u64,
        /// The revision found (0 = does not exist).
        actual: u64,
        /// The store's current revision.
        current_revision: u64,
    },
    /// The namespace or other object already exists.
    #[error("{} already exists", Clip(what, 200))]
    AlreadyExists {
        /// What exists.
        what: String,
    },
    /// A change set operation is invalid; nothing was changed.
    #[error("change set operation {index} ({op}): {source}")]
    Operation {
        /// 0-based index of the operation.
        index: usize,
        /// The operation's name and target.
        op: String,
        /// Why it failed.
        #[source]
        source: Box<Error>,
    },
    /// A read at a revision that retention has removed.
    #[error(
        "revision {requested} has been compacted away; the oldest readable revision is {oldest}"
    )]
    Compacted {
        /// The revision asked for.
        requested: u64,
        /// The oldest revision that can still be read exactly.
        oldest: u64,
    },
    /// A watch that would go on across a restore from a backup: what the
    /// watcher saw after the restored revision may differ from the store
    /// now, so it must read again (never a silent gap).
    #[error(
        "the store was restored from a backup as of an earlier revision and resumed at revision {resumed}; a watch from revision {requested} cannot go on across it: read the current state and watch after revision {resumed} (start revision {next})", next = resumed.saturating_add(1)
    )]
    Restored {
        /// The revision the watch wanted next.
        requested: u64,
        /// The revision the restored store resumed at.
        resumed: u64,
    },
    /// A read at a revision the store has not reached yet.
    #[error("revision {requested} is in the future; the store is at revision {current}")]
    FutureRevision {
        /// The revision asked for.
        requested: u64,
        /// The store's current revision.
        current: u64,
    },
    /// The request carried no valid credentials (missing, malformed,
    /// unknown or revoked token).
    #[error("unauthenticated: {}", Clip(message, 500))]
    Unauthenticated {
        /// What was wrong with the credentials.
        message: String,
    },
    /// The caller may not perform the action on the resource. The message
    /// names both, and nothing about values or whether the resource exists.
    #[error("{message}")]
    PermissionDenied {
        /// The action refused (`read`, `write`, ...).
        action: String,
        /// The resource (`payments:env/prod#db`).
        resource: String,
        /// The whole explanation.
        message: String,
    },
    /// Stored data failed an integrity check (a sealed value that does not
    /// open, a broken audit chain). Nothing unverified is returned.
    #[error("integrity error: {message}")]
    Integrity {
        /// What failed, and where.
        message: String,
    },
    /// The change set would leave configuration that fails validation;
    /// nothing was committed.
    #[error("{}", validation_summary(findings))]
    Validation {
        /// Every finding, errors and warnings, of every affected context.
        findings: Vec<crate::validation::Finding>,
    },
    /// The storage backend failed (I/O, corruption, ...).
    #[error("storage error: {message}")]
    Storage {
        /// The backend's message.
        message: String,
    },
    /// The service cannot take the request now (it is shutting down);
    /// retrying elsewhere or later may succeed.
    #[error("unavailable: {message}")]
    Unavailable {
        /// Why.
        message: String,
    },
    /// A bug or a broken invariant of the server (a task that panicked).
    #[error("internal error: {message}")]
    Internal {
        /// What failed.
        message: String,
    },
}

/// The kind of an [`Error`]: the one sorting of errors that every front
/// end maps to its own vocabulary with one small table (gRPC codes, HTTP
/// statuses, the CLI's exit codes, the client's `is_*` questions).
///
/// ```
/// use confstrata_core::{Error, ErrorKind};
/// let e = Error::NamespaceNotFound { namespace: "web".into() };
/// assert_eq!(e.kind(), ErrorKind::NotFound);
/// assert!(ErrorKind::ALL.contains(&e.kind()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input is malformed or does not fit the namespace: a bad path,
    /// document, context, or a parse error. Fix the request.
    InvalidInput,
    /// Something is over a size limit.
    TooLarge,
    /// A namespace, layer or key does not exist.
    NotFound,
    /// What was to be created exists.
    AlreadyExists,
    /// An expected-revision precondition failed; re-read and retry.
    Conflict,
    /// A revision outside the readable range (compacted away, or in the future).
    OutOfRange,
    /// No valid credentials.
    Unauthenticated,
    /// The caller may not do this.
    PermissionDenied,
    /// The change would leave configuration that fails validation.
    ValidationFailed,
    /// Stored data failed an integrity check.
    Integrity,
    /// The service cannot take the request now; retry.
    Unavailable,
    /// The store or the server failed.
    Internal,
}

impl ErrorKind {
    /// Every kind: a front end's table is tested against this list.
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::InvalidInput,
        ErrorKind::TooLarge,
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::Conflict,
        ErrorKind::OutOfRange,
        ErrorKind::Unauthenticated,
        ErrorKind::PermissionDenied,
        ErrorKind::ValidationFailed,
        ErrorKind::Integrity,
        ErrorKind::Unavailable,
        ErrorKind::Internal,
    ];

    /// Its name in text and JSON: `not-found`, `validation-failed`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid-input",
            ErrorKind::TooLarge => "too-large",
            ErrorKind::NotFound => "not-found",
            ErrorKind::AlreadyExists => "already-exists",
            ErrorKind::Conflict => "conflict",
            ErrorKind::OutOfRange => "out-of-range",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::PermissionDenied => "permission-denied",
            ErrorKind::ValidationFailed => "validation-failed",
            ErrorKind::Integrity => "integrity",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    /// Wraps a backend error as [`Error::Storage`].
    pub fn storage(err: impl fmt::Display) -> Self {
        Error::Storage {
            message: err.to_string(),
        }
    }

    /// Short helper for [`Error::Invalid`].
    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// Its kind (that of the innermost error: an [`Error::Operation`] is
    /// of its cause's kind).
    pub fn kind(&self) -> ErrorKind {
        match self.root() {
            Error::InvalidPath { .. }
            | Error::Invalid { .. }
            | Error::Parse { .. }
            | Error::InvalidUtf8 { .. }
            | Error::TooDeep { .. }
            | Error::LayerOutsideHierarchy { .. }
            | Error::UnknownContextVariable { .. }
            | Error::ContextValueNotAllowed { .. } => ErrorKind::InvalidInput,
            Error::TooLarge { .. } => ErrorKind::TooLarge,
            Error::NamespaceNotFound { .. }
            | Error::LayerNotFound { .. }
            | Error::KeyNotFound { .. }
            | Error::TemplateNotFound { .. } => ErrorKind::NotFound,
            Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::Compacted { .. } | Error::FutureRevision { .. } | Error::Restored { .. } => {
                ErrorKind::OutOfRange
            }
            Error::Unauthenticated { .. } => ErrorKind::Unauthenticated,
            Error::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            Error::Validation { .. } => ErrorKind::ValidationFailed,
            Error::Integrity { .. } => ErrorKind::Integrity,
            Error::Unavailable { .. } => ErrorKind::Unavailable,
            // `root()` never returns `Operation`.
            Error::Storage { .. } | Error::Internal { .. } | Error::Operation { .. } => {
                ErrorKind::Internal
            }
        }
    }

    /// The innermost error, looking through [`Error::Operation`].
    pub fn root(&self) -> &Error {
        match self {
            Error::Operation { source, .. } => source.root(),
            other => other,
        }
    }
}

fn validation_summary(findings: &[crate::validation::Finding]) -> String {
    let errors: Vec<&crate::validation::Finding> = findings
        .iter()
        .filter(|f| f.severity == crate::validation::Severity::Error)
        .collect();
    let mut out = format!(
        "validation failed with {} error{}; nothing was committed",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    if let Some(f) = errors.first() {
        out.push_str("; first: ");
        out.push_str(&f.to_string());
    }
    out
}

/// Shows user input in a message at most `.1` bytes long (cut at a
/// character boundary, with `…`): an error never echoes a whole input back,
/// however long it was.
pub(crate) struct Clip<'a>(pub(crate) &'a str, pub(crate) usize);

impl fmt::Display for Clip<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&clip(self.0, self.1))
    }
}

impl fmt::Debug for Clip<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*clip(self.0, self.1), f)
    }
}

/// `text` cut to at most `max` bytes at a character boundary, with `…`
/// when something was cut.
pub fn clip(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}… ({} bytes)", &text[..end], text.len()))
}

struct Location(Option<usize>, Option<usize>);

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: "),
            (Some(l), None) => write!(f, "line {l}: "),
            _ => Ok(()),
        }
    }
}
