//! The one error type of `confstrata-access`.
//!
//! No variant ever holds a token's secret text or an audit key: token errors
//! carry only lengths and static reasons.

use crate::audit::ChainProblem;
use crate::policy::Refusal;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in authentication, authorization and audit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No token was presented (no `Authorization` header or metadata entry).
    #[error(
        "no access token was presented; send `Authorization: Bearer <token>` (or set CONFSTRATA_TOKEN)"
    )]
    MissingToken,
    /// A token was presented but it is empty.
    #[error("the access token is empty; send `Authorization: Bearer <token>`")]
    EmptyToken,
    /// The presented text is not a Confstrata token.
    #[error("the access token is malformed: {reason}")]
    MalformedToken {
        /// What is wrong, without any of the token's text.
        reason: String,
    },
    /// The presented text is longer than any Confstrata token.
    #[error("the access token is {len} bytes long; a Confstrata token is {max} bytes")]
    TokenTooLong {
        /// Length of what was presented, in bytes.
        len: usize,
        /// The length of every valid token.
        max: usize,
    },
    /// The token is well formed but no principal holds it.
    #[error("the access token is not recognised; ask an administrator for a new one")]
    UnknownToken,
    /// The token was revoked.
    #[error("the access token has been revoked; ask an administrator for a new one")]
    RevokedToken,
    /// The principal holding the token was revoked.
    #[error("principal {principal:?} has been revoked")]
    RevokedPrincipal {
        /// The revoked principal.
        principal: String,
    },
    /// The operating system could not provide random bytes.
    #[error("cannot get random bytes from the operating system: {source}")]
    Randomness {
        /// The underlying error.
        #[source]
        source: getrandom::Error,
    },
    /// The principal may not perform the action on the resource.
    #[error("{0}")]
    Forbidden(Box<Refusal>),
    /// A principal id, role name or group name is malformed.
    #[error("invalid {kind} {input:?}: {reason}")]
    InvalidName {
        /// `principal id`, `role name` or `group name`.
        kind: &'static str,
        /// The input (truncated if long).
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A resource pattern is malformed.
    #[error("invalid resource pattern {pattern:?}: {part}: {reason}")]
    InvalidPattern {
        /// The pattern (truncated if long).
        pattern: String,
        /// Which part is wrong: `the namespace part`, `the layer part`, `the key part` or `the pattern`.
        part: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A resource (namespace, layer, key) is malformed.
    #[error("invalid resource {input:?}: {reason}")]
    InvalidResource {
        /// The input (truncated if long).
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An action name is not one of the known actions.
    #[error(
        "unknown action {input:?}; the actions are read, read-secrets, write, publish, admin, audit, backup"
    )]
    UnknownAction {
        /// The input (truncated if long).
        input: String,
    },
    /// A policy change refers to something that does not exist.
    #[error("{kind} {name:?} does not exist")]
    NotFound {
        /// `principal`, `role`, `group` or `token`.
        kind: &'static str,
        /// Its name (a token is named by its hash).
        name: String,
    },
    /// A policy change would create something that already exists.
    #[error("{kind} {name:?} already exists")]
    AlreadyExists {
        /// `principal`, `role`, `group` or `token`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A role cannot be removed while principals or groups hold it.
    #[error("role {role:?} is still held by {holder}; take it away first")]
    RoleInUse {
        /// The role.
        role: String,
        /// Who holds it, e.g. `principal "alice"`.
        holder: String,
    },
    /// A built-in role cannot be replaced or removed.
    #[error(
        "role {role:?} is built in; it cannot be changed or removed (make a custom role instead)"
    )]
    BuiltinRole {
        /// The role.
        role: String,
    },
    /// A role is malformed.
    #[error("invalid role {role:?}: {reason}")]
    InvalidRole {
        /// The role.
        role: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A binding or membership to take away is not held.
    #[error("{subject} does not hold {binding}; {held}")]
    NotHeld {
        /// `principal alice`, `group sre`.
        subject: String,
        /// What was to be taken away.
        binding: String,
        /// What it holds instead.
        held: String,
    },
    /// A stored policy is inconsistent (it names roles, groups or principals that do not exist).
    #[error("invalid policy: {reason}")]
    InvalidPolicy {
        /// What is wrong with it.
        reason: String,
    },
    /// An audit key is unusable.
    #[error("invalid audit key: {reason}")]
    InvalidAuditKey {
        /// What is wrong, without any of the key.
        reason: String,
    },
    /// A hash-encoded value (token hash, MAC, fingerprint) is malformed.
    #[error("invalid {kind} {input:?}: expected {expected} hex digits")]
    InvalidHex {
        /// What was being parsed.
        kind: &'static str,
        /// The input (truncated if long).
        input: String,
        /// How many hex digits were expected.
        expected: usize,
    },
    /// Audit chain verification found a record that was edited, deleted,
    /// inserted or moved, or a chain sealed with another key.
    #[error("audit chain broken at record seq {seq} (position {index}): {problem}")]
    AuditChain {
        /// Position of the first bad record in the slice given to `verify`.
        index: usize,
        /// The `seq` field of the first bad record, as stored.
        seq: u64,
        /// What is wrong with it.
        problem: ChainProblem,
    },
    /// An error from the model (an invalid namespace, layer or key path).
    #[error(transparent)]
    Core(#[from] confstrata_core::Error),
}

/// Shortens user input for error messages.
pub(crate) fn shown(input: &str) -> String {
    const MAX: usize = 80;
    if input.len() > MAX {
        let mut end = MAX;
        while !input.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &input[..end])
    } else {
        input.to_owned()
    }
}
