//! A store's whole content as a stream of records, and back: what backups
//! are made of.
//!
//! [`Store::dump`](crate::Store::dump) writes, from one consistent read
//! snapshot, every retained revision, every version of every namespace
//! declaration and layer (whole documents, whatever the store keeps on
//! disk), the journal and the settings. [`Store::load`](crate::Store::load)
//! writes such a stream into an empty store keeping every revision number,
//! time, author and journal record as they were (a commit would renumber
//! them). Sealed values are ciphertext in the documents and stay so: a
//! dump never holds a plaintext secret that the store does not.

use serde::{Deserialize, Serialize};

use crate::doc::Document;
use crate::journal::{JournalHead, JournalRecord};
use crate::namespace::NamespaceSpec;
use crate::path::{LayerPath, NamespaceName};
use crate::store::{RevisionInfo, Timestamp};

/// Which part of a store a dump holds: everything after a previous dump
/// (an incremental), or everything (both zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DumpFrom {
    /// Revisions and versions after this revision.
    pub revision: u64,
    /// Journal records after this sequence number.
    pub journal_seq: u64,
}

/// What a dump was taken of: the snapshot's coordinates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpHead {
    /// The store's identity (stays with its data; a restore gets a new one).
    pub store_id: String,
    /// The newest revision in the snapshot.
    pub revision: u64,
    /// When that revision was committed (0 for an empty store).
    pub time: Timestamp,
    /// The oldest revision the store can read (retention's floor).
    pub oldest_revision: u64,
    /// The journal's last record in the snapshot.
    pub journal: Option<JournalHead>,
}

/// One record of a dump. Within a dump, revisions come in ascending order,
/// versions of one object in ascending revision order, and journal records
/// in sequence order; settings are the whole set at the snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DumpRecord {
    /// A committed revision.
    Revision(RevisionInfo),
    /// One version of a namespace declaration (`spec: None`: deleted).
    Namespace {
        /// The namespace.
        name: NamespaceName,
        /// The revision that wrote it.
        revision: u64,
        /// The declaration (boxed: it is much larger than the others).
        spec: Option<Box<NamespaceSpec>>,
    },
    /// One version of a layer (`document: None`: deleted).
    Layer {
        /// The namespace.
        namespace: NamespaceName,
        /// The layer.
        layer: LayerPath,
        /// The revision that wrote it.
        revision: u64,
        /// The whole document.
        document: Option<Document>,
    },
    /// A journal record, exactly as stored (its MAC chains on).
    Journal(JournalRecord),
    /// A setting (wrapped keys, principals, the access policy).
    Setting {
        /// Its name.
        key: String,
        /// Its value.
        value: String,
    },
}

/// How a [`Store::load`](crate::Store::load) ends: the identity and
/// retention floor of the new store, and the revision it resumes at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadEnd {
    /// The new store's identity.
    pub store_id: String,
    /// Its oldest readable revision.
    pub oldest_revision: u64,
    /// An empty revision written after the loaded ones, recording the
    /// restore, so that the next commit gets a revision no reader of the
    /// store the dump came from can have seen (`None`: none).
    pub resume: Option<RevisionInfo>,
}

/// The author of the revision a restore writes (see [`LoadEnd::resume`]).
pub const RESTORE_AUTHOR: &str = "local:restore";

/// Makes a new store identity: 32 hex digits, unique in practice (time,
/// process and a per-process counter, hashed).
pub fn new_store_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut out = String::with_capacity(32);
    for salt in 0..2u64 {
        // RandomState is seeded from the OS's randomness once per process.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u64(n);
        h.write_u32(std::process::id());
        h.write_u64(salt);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// Refuses a dump record that does not come after the one before it.
pub fn check_ascending(previous: Option<u64>, next: u64, what: &str) -> crate::Result<()> {
    match previous {
        Some(p) if next <= p => Err(crate::Error::storage(format!(
            "the dump is out of order: {what} at revision {next} after revision {p}; nothing was loaded"
        ))),
        _ => Ok(()),
    }
}
