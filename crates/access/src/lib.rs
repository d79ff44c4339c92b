//! Access control and audit for Confstrata.
//!
//! - **Tokens**: [`Token::generate`] makes a random 256-bit bearer token
//!   (`cst_` + 43 base64url characters), shown once; a [`Policy`] stores only
//!   its SHA-256 [`TokenHash`].
//! - **Policy**: principals (users and services, with token hashes and a
//!   revoked flag), groups of principals, and roles whose [`Grant`]s allow or
//!   deny [`Action`]s on [`ResourcePattern`]s such as `payments:env/prod#db.*`
//!   (grammar in [`pattern`]). [`Policy::authenticate`] maps a token to its
//!   principal with one hash-table lookup; [`Policy::decide`] answers a
//!   request: deny by default, a deny grant wins, `admin` implies every action.
//! - **Audit**: [`AuditChain`] makes append-only [`AuditRecord`]s linked by a
//!   keyed BLAKE3 MAC under an [`AuditKey`] kept outside the database;
//!   [`audit::verify`] names the first edited, deleted, inserted or moved record.
//!
//! This crate knows nothing of storage, HTTP or gRPC: it is pure data and
//! functions, which the engine calls once per request.
//!
//! ```
//! use confstrata_access::{Action, Policy, PrincipalId, PrincipalKind, Resource, RoleName, Token};
//! use confstrata_core::Timestamp;
//!
//! let mut policy = Policy::with_builtin_roles();
//! let alice = PrincipalId::parse("alice").unwrap();
//! policy.add_principal(alice.clone(), "Alice", PrincipalKind::User).unwrap();
//! policy.grant_role(&alice, &RoleName::parse("non-prod-editor").unwrap()).unwrap();
//! let token = policy.issue_token(&alice, "laptop", Timestamp(0)).unwrap();
//! let shown_once = token.expose_secret().to_owned(); // give this to Alice, once
//!
//! // A request arrives with `Authorization: Bearer cst_...`.
//! let presented = Token::from_authorization(Some(&format!("Bearer {shown_once}"))).unwrap();
//! let staging = Resource::parse("payments:env/staging#db.pool").unwrap();
//! let prod = Resource::parse("payments:env/prod#db.pool").unwrap();
//! assert!(policy.authorize(&presented, Action::Write, &staging).is_ok());
//! let refused = policy.authorize(&presented, Action::Write, &prod).unwrap_err();
//! assert_eq!(
//!     refused.to_string(),
//!     "permission denied: alice may not write payments:env/prod#db.pool; \
//!      ask an administrator for a role that grants `write` on it"
//! );
//!
//! // Revocation holds for the very next request.
//! policy.revoke_token(&token.hash()).unwrap();
//! assert!(policy.authenticate(&presented).is_err());
//! ```

mod action;
pub mod audit;
mod binding;
mod error;
mod name;
pub mod pattern;
mod policy;
mod token;

pub use action::{Action, ActionSet};
pub use audit::{
    AuditChain, AuditEntry, AuditKey, AuditRecord, ChainProblem, Detail, Head, KeyId, Mac, Outcome,
    SecretFingerprint,
};
pub use binding::{Binding, Explanation, GrantSource, Subject};
pub use error::{Error, Result};
pub use name::{GroupName, MAX_NAME_BYTES, PrincipalId, RoleName};
pub use pattern::{
    KeyPattern, LayerPattern, MAX_PATTERN_BYTES, MAX_PATTERN_SEGMENTS, Resource, ResourcePattern,
};
pub use policy::{
    Decision, Effect, Grant, Group, MAX_BINDINGS, MAX_DESCRIPTION_BYTES, MAX_GRANTS, Policy,
    Principal, PrincipalKind, Refusal, RefusalCause, Role, TokenRecord,
};
pub use token::{TOKEN_LEN, TOKEN_PREFIX, TOKEN_RANDOM_BYTES, Token, TokenHash};
