//! The backup format (version 1): the manifest, the parts, and how each is
//! sealed. `docs/BACKUP.md` describes the same for people.

use base64::Engine;
use confstrata_core::{DumpRecord, Error, JournalHead, Result, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::DataKey;

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The manifest's file name inside a backup's folder.
pub const MANIFEST: &str = "manifest.json";

/// Full or incremental.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Everything the store holds.
    Full,
    /// What came after the parent backup.
    Incremental,
}

/// The backup an incremental one continues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parent {
    /// Its id.
    pub id: String,
    /// Its revision: this backup holds the revisions after it.
    pub revision: u64,
    /// Its journal head's sequence number: this backup holds the records after it.
    pub journal_seq: u64,
}

/// The last journal record in a backup: the audit chain's head then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalMark {
    /// Its sequence number.
    pub seq: u64,
    /// Its MAC, hex.
    pub mac: String,
}

impl JournalMark {
    /// The mark of a journal head.
    pub fn of(head: &JournalHead) -> JournalMark {
        JournalMark {
            seq: head.seq,
            mac: hex::encode(head.mac),
        }
    }

    /// Whether `head` is this mark.
    pub fn is(&self, head: &JournalHead) -> bool {
        self.seq == head.seq && self.mac == hex::encode(head.mac)
    }
}

/// The data key of a backup, wrapped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// The key-encryption key's id (the master key's `mk-…`, or a backup
    /// key file's).
    pub kek_id: String,
    /// The data key wrapped by it.
    pub wrapped: String,
}

/// One part of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartInfo {
    /// Its file name (`part-000001`).
    pub name: String,
    /// Records in it.
    pub records: u64,
    /// Bytes of JSON lines before compression.
    pub plain_bytes: u64,
    /// Bytes stored (compressed and sealed).
    pub stored_bytes: u64,
    /// SHA-256 of the stored bytes, hex.
    pub sha256: String,
}

/// How many records of each kind a backup holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Revisions.
    pub revisions: u64,
    /// Versions of namespace declarations.
    pub namespaces: u64,
    /// Versions of layers.
    pub layers: u64,
    /// Journal records.
    pub journal: u64,
    /// Settings.
    pub settings: u64,
}

impl Counts {
    /// Counts one record.
    pub(crate) fn add(&mut self, record: &DumpRecord) {
        match record {
            DumpRecord::Revision(_) => self.revisions += 1,
            DumpRecord::Namespace { .. } => self.namespaces += 1,
            DumpRecord::Layer { .. } => self.layers += 1,
            DumpRecord::Journal(_) => self.journal += 1,
            DumpRecord::Setting { .. } => self.settings += 1,
        }
    }
}

/// What a backup is: written last, as `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The format version ([`FORMAT_VERSION`]).
    pub format: u32,
    /// The backup's id (its folder's name).
    pub id: String,
    /// The identity of the store it was taken of.
    pub store_id: String,
    /// Full or incremental.
    pub kind: Kind,
    /// The backup it continues (incrementals only).
    pub parent: Option<Parent>,
    /// When it was taken.
    pub created: Timestamp,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// The newest revision it holds (the snapshot's).
    pub revision: u64,
    /// When that revision was committed.
    pub revision_time: Timestamp,
    /// The store's oldest readable revision at the snapshot.
    pub oldest_revision: u64,
    /// The journal's head at the snapshot.
    pub journal: Option<JournalMark>,
    /// Its data key, wrapped.
    pub key: KeyInfo,
    /// Records of each kind.
    pub counts: Counts,
    /// Its parts, in order.
    pub parts: Vec<PartInfo>,
    /// Why a backup asked to be incremental is full, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Facts its maker recorded (`master_key_id`: the master key the
    /// store's sealed values and audit chain need).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub facts: std::collections::BTreeMap<String, String>,
    /// The manifest sealed under the data key (base64): proof that no byte
    /// of it was changed by someone without the key.
    pub seal: String,
}

impl Manifest {
    /// Bytes stored in its parts.
    pub fn stored_bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.stored_bytes).sum()
    }

    /// The digest that [`Manifest::seal`] covers: the manifest's JSON with
    /// an empty seal.
    fn digest(&self) -> Result<Vec<u8>> {
        let mut unsealed = self.clone();
        unsealed.seal.clear();
        let bytes = serde_json::to_vec(&unsealed).map_err(Error::storage)?;
        Ok(Sha256::digest(&bytes).to_vec())
    }

    /// Seals the manifest under its data key.
    pub(crate) fn seal_with(&mut self, key: &dyn DataKey) -> Result<()> {
        let sealed = key.seal(&manifest_aad(&self.id), &self.digest()?)?;
        self.seal = base64::engine::general_purpose::STANDARD.encode(sealed);
        Ok(())
    }

    /// Checks the seal: fails when any field was changed.
    pub(crate) fn check_seal(&self, key: &dyn DataKey) -> Result<()> {
        let place = format!("backup {}: {MANIFEST}", self.id);
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(&self.seal)
            .map_err(|_| integrity(format!("{place}: the seal is not base64")))?;
        let digest = key.open(&place, &manifest_aad(&self.id), &sealed)?;
        if digest != self.digest()? {
            return Err(integrity(format!(
                "{place}: the manifest was changed after it was sealed"
            )));
        }
        Ok(())
    }

    /// Reads a manifest, refusing another format version.
    pub(crate) fn parse(id: &str, bytes: &[u8]) -> Result<Manifest> {
        let place = format!("backup {id}: {MANIFEST}");
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| integrity(format!("{place} is not JSON ({e}): truncated or altered")))?;
        match value.get("format").and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(FORMAT_VERSION) => {}
            Some(v) => {
                return Err(Error::invalid(
                    "backup",
                    format!(
                        "{place}: format version {v}; this build reads version {FORMAT_VERSION}"
                    ),
                ));
            }
            None => {
                return Err(integrity(format!("{place} has no format version")));
            }
        }
        let manifest: Manifest =
            serde_json::from_value(value).map_err(|e| integrity(format!("{place}: {e}")))?;
        if manifest.id != id {
            return Err(integrity(format!(
                "{place} names backup {}: it was moved or copied from another backup",
                manifest.id
            )));
        }
        Ok(manifest)
    }
}

/// An integrity error.
pub(crate) fn integrity(message: String) -> Error {
    Error::Integrity { message }
}

fn manifest_aad(id: &str) -> Vec<u8> {
    format!("confstrata-backup/{FORMAT_VERSION}\0{id}\0{MANIFEST}").into_bytes()
}

/// The associated data of a part: binds it to its backup and position.
pub(crate) fn part_aad(id: &str, name: &str) -> Vec<u8> {
    format!("confstrata-backup/{FORMAT_VERSION}\0{id}\0{name}").into_bytes()
}

/// The file name of the part numbered `n` (from 1).
pub(crate) fn part_name(n: usize) -> String {
    format!("part-{n:06}")
}

/// Hex SHA-256.
pub(crate) fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A new backup id: the time (sortable), the store's id, and a few random
/// digits so that two backups in one millisecond differ.
pub(crate) fn new_id(now: Timestamp, store_id: &str) -> String {
    let when = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now.0) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second][subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| format!("{}ms", now.0));
    let store: String = store_id.chars().take(8).collect();
    let salt: String = confstrata_core::dump::new_store_id()
        .chars()
        .take(4)
        .collect();
    format!("{when}-{store}-{salt}")
}

/// The time a backup id starts with, if it is one this crate made.
pub(crate) fn id_time(id: &str) -> Option<Timestamp> {
    let stamp = id.split('-').next()?;
    let t = time::PrimitiveDateTime::parse(
        stamp,
        time::macros::format_description!(
            "[year][month][day]T[hour][minute][second][subsecond digits:3]Z"
        ),
    )
    .ok()?
    .assume_utc();
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .ok()
        .map(Timestamp)
}
