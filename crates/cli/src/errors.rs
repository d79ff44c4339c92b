//! What a failed command says and how it exits: the kind of its error
//! (model, server or `validate`), the exit code of each kind (one table),
//! and the findings of a refused commit.

use confstrata_core::ErrorKind;

/// A validation run found errors (exit code 6).
#[derive(Debug)]
pub(crate) struct ValidationFailed(pub(crate) usize);

impl std::fmt::Display for ValidationFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "validation failed with {} error{}",
            self.0,
            if self.0 == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for ValidationFailed {}

impl ValidationFailed {
    /// `Err` when the findings hold an error (exit code 6), else `Ok`.
    pub(crate) fn check(findings: &[confstrata_core::Finding]) -> Result<(), ValidationFailed> {
        let errors = findings
            .iter()
            .filter(|f| f.severity == confstrata_core::Severity::Error)
            .count();
        if errors > 0 {
            return Err(ValidationFailed(errors));
        }
        Ok(())
    }
}

/// `sync --commit --plan FP` found another plan than the one reviewed
/// (exit code 3, as a conflict: re-read and try again).
#[derive(Debug)]
pub(crate) struct PlanChanged(pub(crate) String);

impl std::fmt::Display for PlanChanged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlanChanged {}

/// The kind of a command's error: that of the first error in its chain
/// that has one (a model error, a server's answer, or `validate` finding
/// errors).
pub(crate) fn error_kind(e: &anyhow::Error) -> Option<ErrorKind> {
    e.chain().find_map(|c| {
        if c.downcast_ref::<ValidationFailed>().is_some() {
            return Some(ErrorKind::ValidationFailed);
        }
        if c.downcast_ref::<PlanChanged>().is_some() {
            return Some(ErrorKind::Conflict);
        }
        c.downcast_ref::<confstrata_core::Error>()
            .map(confstrata_core::Error::kind)
            .or_else(|| {
                c.downcast_ref::<confstrata_client::Error>()
                    .and_then(confstrata_client::Error::kind)
            })
    })
}

/// Whether a command failed with an error of `kind`.
pub(crate) fn is(e: &anyhow::Error, kind: ErrorKind) -> bool {
    error_kind(e) == Some(kind)
}

/// The first error findings of a commit refused by validation, one line
/// each, and how many there were in all. A server attaches only as many as
/// fit in a status (its trailers are capped), so both modes show at most
/// [`SHOWN_FINDINGS`].
pub(crate) fn validation_errors(e: &anyhow::Error) -> (Vec<String>, usize) {
    for c in e.chain() {
        if let Some(confstrata_core::Error::Validation { findings }) = c
            .downcast_ref::<confstrata_core::Error>()
            .map(confstrata_core::Error::root)
        {
            let errors: Vec<String> = findings
                .iter()
                .filter(|f| f.severity == confstrata_core::Severity::Error)
                .map(ToString::to_string)
                .collect();
            let total = errors.len();
            return (errors.into_iter().take(SHOWN_FINDINGS).collect(), total);
        }
        if let Some(ce) = c.downcast_ref::<confstrata_client::Error>()
            && ce.is_validation_failed()
        {
            let shown: Vec<String> = ce
                .violations()
                .iter()
                .take(SHOWN_FINDINGS)
                .cloned()
                .collect();
            let total = ce
                .error_count()
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(shown.len())
                .max(shown.len());
            return (shown, total);
        }
    }
    (Vec::new(), 0)
}

/// Most findings an error message lists.
pub(crate) const SHOWN_FINDINGS: usize = 20;

/// The exit code of each kind of error: the one table (tested against
/// [`ErrorKind::ALL`]), the same whether the store is embedded or a server's.
const EXIT_CODES: &[(ErrorKind, u8)] = &[
    (ErrorKind::InvalidInput, 1),
    (ErrorKind::TooLarge, 1),
    (ErrorKind::AlreadyExists, 1),
    (ErrorKind::OutOfRange, 1),
    (ErrorKind::Integrity, 1),
    (ErrorKind::Unavailable, 1),
    (ErrorKind::Internal, 1),
    // Retrying (after re-reading) may help.
    (ErrorKind::Conflict, 3),
    (ErrorKind::NotFound, 4),
    // A missing, bad or revoked token, or a refused action.
    (ErrorKind::Unauthenticated, 5),
    (ErrorKind::PermissionDenied, 5),
    // A refused commit, or `validate` finding errors.
    (ErrorKind::ValidationFailed, 6),
];

/// 1 for an error of no kind (a file that cannot be read, a bad flag).
/// A command's answer was printed already and means failure for the
/// shell (`auth can-i` answering no): exit with this code, print nothing.
#[derive(Debug)]
pub(crate) struct Answered(pub(crate) u8);

impl std::fmt::Display for Answered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "answered (exit code {})", self.0)
    }
}

impl std::error::Error for Answered {}

pub(crate) fn exit_code(e: &anyhow::Error) -> u8 {
    error_kind(e)
        .and_then(|kind| EXIT_CODES.iter().find(|(k, _)| *k == kind))
        .map_or(1, |(_, code)| *code)
}

#[cfg(test)]
mod tests;
