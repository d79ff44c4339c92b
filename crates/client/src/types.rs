//! The answers of the server, as model values.
//!
//! The client returns `confstrata-core`'s types: documents, records, diffs,
//! change sets, and the answer types of [`confstrata_core::view`] (resolved
//! views, layer diffs, dry runs, listings), the same values the embedded
//! engine returns. Only what is the client's own is here: watch events,
//! write options, a newly issued token.

use confstrata_core::serde_json::Value;
pub(crate) use confstrata_core::view::{
    AuditVerification, DryRun, ExplainView, KeyInfo, LayerDiff, MasterKeyRotation, PrincipalInfo,
    PrincipalKind, ResolvedView, Rollback, ServerStatus,
};
use confstrata_core::{ChangeItem, Document, KeyPath, RevisionInfo};

/// One event of a [`WatchStream`](crate::WatchStream).
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// A revision that changed the watched namespace.
    Change {
        /// The revision, who made it and why.
        info: RevisionInfo,
        /// What it wrote in the watched namespace.
        items: Vec<ChangeItem>,
        /// For a context watch: the resolved document at this revision.
        resolved: Option<Document>,
    },
    /// Sent once per stream, after the backlog: every retained revision up
    /// to `revision` has been reported.
    CaughtUp {
        /// The store's revision when the stream started.
        revision: u64,
    },
}

/// Options of a change made through a single-layer call
/// ([`Client::put_layer`](crate::Client::put_layer), `set_keys`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Fail with a conflict unless the layer's last change is this revision
    /// (`Some(0)`: the layer must not exist).
    pub expect_revision: Option<u64>,
    /// Change message.
    pub message: String,
    /// Ignored by the server: a change is recorded under the authenticated principal.
    pub author: String,
    /// Seal every value written (`set_keys` only): stored encrypted, shown
    /// only to callers allowed to read secrets.
    pub secret: bool,
}

impl WriteOptions {
    /// Options with a message.
    pub fn message(message: impl Into<String>) -> Self {
        WriteOptions {
            message: message.into(),
            ..WriteOptions::default()
        }
    }

    /// Adds an expected-revision precondition.
    #[must_use]
    pub fn expect_revision(mut self, revision: u64) -> Self {
        self.expect_revision = Some(revision);
        self
    }

    /// Sets the author.
    #[must_use]
    pub fn author(mut self, author: impl Into<String>) -> Self {
        self.author = author.into();
        self
    }
}

/// A value to set with [`Client::set_keys`](crate::Client::set_keys).
pub type KeyValue = (KeyPath, Value);

/// A new token: the answer of [`Client::issue_token`](crate::Client::issue_token).
/// The server keeps only its hash, so this is the one chance to store it.
/// `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The token, `cst_...`.
    pub token: String,
    /// The first characters of its SHA-256, as listings show it.
    pub hash: String,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"<redacted>")
            .field("hash", &self.hash)
            .finish()
    }
}
