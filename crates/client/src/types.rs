//! The answers of the server, as model values.
//!
//! Where `confstrata-core` has a type (documents, records, diffs, change
//! sets) the client returns it; the few composite answers that only the
//! engine defines (resolved views, layer diffs, dry runs) are mirrored here
//! with the same fields and the same serde form, so a program can print them
//! exactly as the embedded engine's would be printed.

use std::collections::BTreeMap;

use confstrata_core::serde_json::Value;
use confstrata_core::{
    ChangeItem, ChangeSet, CommitInfo, Context, DiffEntry, Document, Explanation, KeyPath,
    LayerPath, NamespaceName, Provenance, RevisionInfo,
};
use serde::Serialize;

/// A resolved configuration: the answer of [`Client::resolve`](crate::Client::resolve).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resolved {
    /// The namespace.
    pub namespace: NamespaceName,
    /// The context it was resolved for.
    pub context: Context,
    /// The revision it was read at.
    pub revision: u64,
    /// The layers that exist for this context, most general first.
    pub layers: Vec<Provenance>,
    /// The resolved document.
    pub document: Document,
    /// Every leaf's provenance, in key order (empty unless asked for).
    #[serde(serialize_with = "serialize_provenance")]
    pub provenance: Vec<(KeyPath, Provenance)>,
}

fn serialize_provenance<S: serde::Serializer>(
    p: &[(KeyPath, Provenance)],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_map(p.iter().map(|(k, v)| (k.to_string(), v)))
}

/// Why a key has its value, with the change behind each layer: the answer
/// of [`Client::explain`](crate::Client::explain).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explained {
    /// Every layer that sets the key, most specific first.
    #[serde(flatten)]
    pub explanation: Explanation,
    /// Who changed each of those layers last, when and why, by revision
    /// (absent where retention removed the record).
    pub changes: BTreeMap<u64, RevisionInfo>,
}

/// What happened to a layer between two states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerStatus {
    /// Exists only on the new side.
    Created,
    /// Exists only on the old side.
    Deleted,
    /// Exists on both sides, with different content.
    Changed,
}

/// The key-level changes of one layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerDiff {
    /// The namespace.
    pub namespace: NamespaceName,
    /// The layer.
    pub layer: LayerPath,
    /// Whether the layer was created, deleted, or changed.
    pub status: LayerStatus,
    /// The keys that differ.
    pub changes: Vec<DiffEntry>,
}

/// What a change set would do: the answer of [`Client::dry_run`](crate::Client::dry_run).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DryRun {
    /// The revision the change set was checked against.
    pub revision: u64,
    /// The layers it would change, with their key-level diffs.
    pub layers: Vec<LayerDiff>,
    /// The namespaces whose declaration it would create or change.
    pub namespaces: Vec<NamespaceName>,
    /// What the validation chains found (a commit is refused on any error).
    pub findings: Vec<confstrata_core::Finding>,
}

/// The answer of [`Client::rollback`](crate::Client::rollback).
#[derive(Debug, Clone, PartialEq)]
pub struct Rollback {
    /// The commit; `None` for a dry run or when nothing differs.
    pub commit: Option<CommitInfo>,
    /// The change set that was (or, for a dry run, would be) committed;
    /// `None` when the target already matches.
    pub change_set: Option<ChangeSet>,
}

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

/// The answer of [`Client::status`](crate::Client::status).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerStatus {
    /// The newest committed revision.
    pub revision: u64,
    /// The oldest revision that can still be read.
    pub oldest_revision: u64,
    /// How many namespaces exist.
    pub namespaces: u64,
    /// The server's version.
    pub version: String,
}

/// Whether a principal is a person or a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrincipalKind {
    /// A person.
    User,
    /// A program (a service reading its configuration, a CI job).
    Service,
}

/// One data key: an answer of [`Client::keys`](crate::Client::keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// `namespace#n`.
    pub id: String,
    /// Whether new values of its namespace are sealed with it.
    pub current: bool,
}

/// A principal: an answer of [`Client::principals`](crate::Client::principals).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrincipalInfo {
    /// Its id.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// A person or a program.
    pub kind: PrincipalKind,
    /// Its roles.
    pub roles: Vec<String>,
    /// Its tokens (hash prefixes, never the tokens).
    pub tokens: Vec<TokenInfo>,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// A token as listed: a hash prefix, never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    /// The first characters of its SHA-256, to name it in
    /// [`Client::revoke_token`](crate::Client::revoke_token).
    pub hash: String,
    /// What it is for.
    pub label: String,
    /// Whether it was revoked.
    pub revoked: bool,
}

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

/// What [`Client::audit_verify`](crate::Client::audit_verify) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AuditVerification {
    /// How many records were checked.
    pub records: u64,
    /// The last record's seq (0 for an empty log).
    pub last_seq: u64,
}
