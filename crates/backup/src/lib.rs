//! Confstrata's backups.
//!
//! A **backup** is a store as of one revision, taken online from one read
//! snapshot ([`confstrata_core::Store::dump`]): every retained version of
//! every layer and declaration, the revisions with their times and
//! authors, the journal (the audit chain) and the settings (principals,
//! token hashes, roles, the wrapped keyring). A **full** backup holds all
//! of it; an **incremental** one what came after its parent backup.
//!
//! On a [`Target`] (a local directory, an object store) a backup is a
//! folder named by its id: parts, then `manifest.json`, written last, so a
//! backup without a manifest is incomplete and never used. Each part is a
//! zstd frame of JSON lines ([`confstrata_core::DumpRecord`]), sealed as a
//! whole with an AEAD under a data key made for this backup alone; the
//! data key is kept in the manifest only wrapped by a key-encryption key
//! ([`Keys`]: the master key, or a separate backup key file). The manifest
//! lists every part with its SHA-256 and is itself sealed under the data
//! key. The format is in `docs/BACKUP.md`.
//!
//! [`restore`] loads a chain (a full backup and the incrementals after
//! it) into an empty store as of any revision or time it covers, keeping
//! revisions, times, authors and the journal, and resumes the revision
//! counter past everything the old store can have handed out. [`verify`]
//! checks a backup end to end by restoring it into memory. [`prune`]
//! applies a retention policy without breaking a chain.
//!
//! This crate depends on `confstrata-core` only: encryption comes through
//! [`Keys`] (the engine implements it with `confstrata-crypto`), storage
//! through [`Target`].

mod create;
mod format;
mod object;
mod prune;
mod read;
mod target;

pub use create::{CreateOptions, Progress, create};
pub use format::{
    Counts, FORMAT_VERSION, JournalMark, KeyInfo, Kind, MANIFEST, Manifest, Parent, PartInfo,
};
pub use object::ObjectTarget;
pub use prune::{PruneReport, Retention, plan_prune, prune};
pub use read::{
    Listed, Point, RestoreOptions, RestoreReport, VerifyReport, latest_good, list, open_manifest,
    restore, verify,
};
pub use target::{LocalDir, Target, open_target};

use confstrata_core::Result;

/// Encryption of backups, which the caller provides: a key-encryption key
/// (KEK) that wraps the one-off data key of each backup.
pub trait Keys: Send + Sync {
    /// The id of the key-encryption key, recorded in every manifest.
    fn kek_id(&self) -> Result<String>;
    /// A fresh random data key, and its form wrapped by the KEK.
    fn new_data_key(&self) -> Result<(Box<dyn DataKey>, String)>;
    /// Unwraps a manifest's data key; fails when it was wrapped by another
    /// KEK or altered.
    fn open_data_key(&self, wrapped: &str) -> Result<Box<dyn DataKey>>;
}

/// A backup's data key: an AEAD with a fresh nonce per sealed blob.
pub trait DataKey: Send + Sync {
    /// Seals `plain`, bound to `aad`.
    fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>>;
    /// Opens a sealed blob bound to `aad`; an integrity error naming
    /// `place` when it does not open.
    fn open(&self, place: &str, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>>;
}

#[cfg(test)]
mod tests;
