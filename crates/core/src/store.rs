//! The `Store` trait: a versioned home for namespaces and layers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::changeset::ChangeSet;
use crate::doc::Document;
use crate::error::{Error, Result};
use crate::journal::{JournalFn, JournalRecord, SettingWrite};
use crate::namespace::NamespaceSpec;
use crate::path::{LayerPath, NamespaceName};

/// A point in time: milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp(ms)
    }

    /// Parses an RFC 3339 time such as `2026-11-26T10:00:00Z`.
    pub fn parse(input: &str) -> Result<Self> {
        let t = time::OffsetDateTime::parse(input, &time::format_description::well_known::Rfc3339)
            .map_err(|e| Error::InvalidPath {
                kind: "time",
                input: input.to_owned(),
                reason: format!("{e}; use RFC 3339, e.g. 2026-11-26T10:00:00Z"),
            })?;
        let ms = t.unix_timestamp_nanos() / 1_000_000;
        Ok(Timestamp(i64::try_from(ms).unwrap_or(i64::MAX)))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            });
        match t {
            Some(s) => f.write_str(&s),
            None => write!(f, "@{}ms", self.0),
        }
    }
}

/// Which state of the store to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum At {
    /// The newest revision.
    #[default]
    Latest,
    /// The state right after the given revision was committed.
    Revision(u64),
    /// The state at a moment: the newest revision committed at or before it.
    Time(Timestamp),
}

impl FromStr for At {
    type Err = Error;
    /// `latest`, a revision number, or an RFC 3339 time.
    fn from_str(s: &str) -> Result<Self> {
        if s == "latest" {
            Ok(At::Latest)
        } else if let Ok(r) = s.parse::<u64>() {
            Ok(At::Revision(r))
        } else {
            Timestamp::parse(s).map(At::Time)
        }
    }
}

/// Who committed a revision, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevisionInfo {
    /// The revision.
    pub revision: u64,
    /// When it was committed.
    pub time: Timestamp,
    /// Its author.
    pub author: String,
    /// Its message.
    pub message: String,
}

/// A namespace declaration as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NamespaceRecord {
    /// The declaration.
    pub spec: NamespaceSpec,
    /// The revision that last changed it.
    pub revision: u64,
}

/// A layer as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LayerRecord {
    /// The namespace.
    pub namespace: NamespaceName,
    /// The layer path.
    pub layer: LayerPath,
    /// The document.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub document: Document,
    /// The revision that last changed it.
    pub revision: u64,
    /// The keys whose values are sealed in the store, in key order, as a
    /// read presents them (opened for a caller with `read-secrets`, masked
    /// otherwise; a sealed value inside an array is named by the array's
    /// key). Stores leave it empty: the engine fills it when it presents
    /// the layer, so a copy (`confstrata sync`) can seal them again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub sealed_keys: Vec<crate::KeyPath>,
}

impl LayerRecord {
    /// A layer as a store reads it (no sealed keys named yet).
    pub fn new(
        namespace: NamespaceName,
        layer: LayerPath,
        document: Document,
        revision: u64,
    ) -> LayerRecord {
        LayerRecord {
            namespace,
            layer,
            document,
            revision,
            sealed_keys: Vec::new(),
        }
    }
}

/// Where [`Store::commit_then`] reports a commit's result.
pub type CommitDone = Box<dyn FnOnce(Result<CommitInfo>) + Send>;

/// One version of a namespace's declaration (levels, matrix, validation
/// chain) in its history.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeclarationVersion {
    /// The change that wrote it.
    #[serde(flatten)]
    pub info: RevisionInfo,
    /// The declaration (`None`: deleted).
    pub spec: Option<NamespaceSpec>,
}

/// One version of a layer in its history.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LayerVersion {
    /// The revision that wrote this version.
    #[serde(flatten)]
    pub info: RevisionInfo,
    /// The namespace.
    pub namespace: NamespaceName,
    /// The layer path.
    pub layer: LayerPath,
    /// The document; `None` where the revision deleted the layer.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub document: Option<Document>,
    /// Whether keys the reader may not read were left out of the document
    /// (its grants cover only some keys of the layer). A store never sets it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

/// What one committed revision changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// The revision.
    #[serde(flatten)]
    pub info: RevisionInfo,
    /// Everything it wrote.
    pub items: Vec<ChangeItem>,
}

/// One object written by a revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeItem {
    /// The namespace.
    pub namespace: NamespaceName,
    /// The layer, or `None` for the namespace's declaration.
    pub layer: Option<LayerPath>,
    /// Whether the object was deleted.
    pub deleted: bool,
}

/// The result of a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommitInfo {
    /// The new revision.
    pub revision: u64,
    /// Its commit time.
    pub time: Timestamp,
}

/// How much history to keep.
///
/// Retention picks one compaction revision `F`, the lower of "the oldest
/// revision younger than `keep_days`" and "the revision that keeps at least
/// `keep_versions` versions of every layer", and drops only versions that no
/// read at `F` or later needs. Reads below `F` fail with [`Error::Compacted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetentionPolicy {
    /// Versions to keep for each layer and namespace, at least.
    pub keep_versions: usize,
    /// Days of history to keep, at least.
    pub keep_days: u64,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            keep_versions: 100,
            keep_days: 90,
        }
    }
}

/// What a retention run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetentionReport {
    /// The oldest revision that can still be read.
    pub oldest_revision: u64,
    /// How many stored versions were removed.
    pub removed_versions: usize,
    /// Bytes of storage given back to the file system (0 for a store
    /// that keeps nothing on disk).
    pub freed_bytes: u64,
}

/// How much space a store takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StorageSize {
    /// Bytes on disk (the database and its write-ahead log).
    pub bytes: u64,
    /// Of those, bytes free for reuse inside the database.
    pub free_bytes: u64,
}

/// A versioned store of namespaces and layers.
///
/// Revisions form one store-wide counter: every committed change set gets the
/// next one. Read methods take a revision and fail with [`Error::Compacted`] or
/// [`Error::FutureRevision`] outside the readable range; use
/// [`Store::revision_at`] to turn an [`At`] into one.
pub trait Store: Send + Sync {
    /// The newest committed revision (0 for an empty store).
    fn revision(&self) -> Result<u64>;
    /// The oldest revision that can still be read exactly.
    fn oldest_revision(&self) -> Result<u64>;
    /// The newest revision committed at or before `time` (0 if none).
    fn revision_for_time(&self, time: Timestamp) -> Result<u64>;
    /// Who committed a revision, when and why.
    fn revision_info(&self, revision: u64) -> Result<Option<RevisionInfo>>;
    /// One namespace at a revision.
    fn namespace(&self, name: &NamespaceName, revision: u64) -> Result<Option<NamespaceRecord>>;
    /// All namespaces at a revision, by name.
    fn namespaces(&self, revision: u64) -> Result<Vec<NamespaceRecord>>;
    /// One layer at a revision.
    fn layer(
        &self,
        ns: &NamespaceName,
        layer: &LayerPath,
        revision: u64,
    ) -> Result<Option<LayerRecord>>;
    /// One top-level section of a layer at a revision: the record's
    /// document holds the key `section` and what is under it, or nothing
    /// if the layer does not have it (`None`: no such layer). A store that
    /// can read part of a stored document answers without reading or
    /// parsing the rest of it (lazy loading of large layers); this default
    /// reads the whole layer and keeps the section.
    fn layer_section(
        &self,
        ns: &NamespaceName,
        layer: &LayerPath,
        revision: u64,
        section: &str,
    ) -> Result<Option<LayerRecord>> {
        Ok(self.layer(ns, layer, revision)?.map(|mut r| {
            r.document.retain(|k, _| k == section);
            r
        }))
    }
    /// All layers of a namespace at a revision, by path.
    fn layers(&self, ns: &NamespaceName, revision: u64) -> Result<Vec<LayerRecord>>;
    /// Versions of a namespace's declaration, newest first.
    fn declaration_history(
        &self,
        ns: &NamespaceName,
        limit: usize,
    ) -> Result<Vec<DeclarationVersion>>;
    /// Versions of one layer, or of every layer of a namespace, newest first.
    fn history(
        &self,
        ns: &NamespaceName,
        layer: Option<&LayerPath>,
        limit: usize,
    ) -> Result<Vec<LayerVersion>>;
    /// Revisions after `after`, oldest first, at most `limit` of them.
    fn changes_since(&self, after: u64, limit: usize) -> Result<Vec<Change>>;
    /// Commits a change set atomically as one new revision.
    fn commit(&self, changes: &ChangeSet) -> Result<CommitInfo> {
        self.commit_checked(changes, None, None)
    }

    /// Commits a change set with, in the same transaction, the journal
    /// record `journal` makes for it (either both are durable or neither
    /// is) and `check`, run on the plan against the state the change set
    /// lands on (see [`crate::CheckFn`]); a store that cannot run a check
    /// refuses a commit that brings one.
    fn commit_checked(
        &self,
        changes: &ChangeSet,
        journal: Option<JournalFn>,
        check: Option<crate::CheckFn>,
    ) -> Result<CommitInfo>;

    /// [`Store::commit_checked`] reporting to `done` instead of returning:
    /// a store with a writer thread of its own queues the change set and
    /// calls `done` from that thread once it is durable, so a caller on an
    /// async runtime awaits a channel instead of parking a thread. `done`
    /// may run on another thread, and must not block on this store's
    /// writer (a job the store gets from inside `done` runs at once). This
    /// default commits in the caller's thread and calls `done` before it
    /// returns.
    fn commit_then(
        &self,
        changes: ChangeSet,
        journal: Option<JournalFn>,
        check: Option<crate::CheckFn>,
        done: CommitDone,
    ) {
        done(self.commit_checked(&changes, journal, check));
    }

    /// Appends a journal record with no commit (a read, a refusal), durably.
    fn append_journal(&self, journal: JournalFn) -> Result<JournalRecord>;

    /// Changes settings and appends the journal record that explains it, in
    /// one transaction.
    fn write_settings(&self, writes: &[SettingWrite], journal: Option<JournalFn>) -> Result<()>;

    /// One setting's value.
    fn setting(&self, key: &str) -> Result<Option<String>>;

    /// The settings whose names start with `prefix`, in name order.
    fn settings(&self, prefix: &str) -> Result<Vec<(String, String)>>;

    /// Journal records with `seq > after`, oldest first, at most `limit`.
    fn journal(&self, after: u64, limit: usize) -> Result<Vec<JournalRecord>>;
    /// Drops history the policy does not keep.
    fn apply_retention(&self, policy: &RetentionPolicy, now: Timestamp) -> Result<RetentionReport>;

    /// How much space the store takes, for a store on disk.
    fn storage_size(&self) -> Result<Option<StorageSize>> {
        Ok(None)
    }

    /// Sends the store's own stage timings (group-commit transactions, their
    /// `COMMIT`, batch sizes) to `timings`. Stores that measure nothing
    /// ignore it.
    fn set_timings(&self, _timings: std::sync::Arc<dyn crate::timing::Timings>) {}

    /// The store's identity: made when the store is created, kept with
    /// its data. Stores that cannot be dumped have none.
    fn store_id(&self) -> Result<String> {
        Err(Error::storage(
            "this store has no identity and cannot be backed up",
        ))
    }

    /// Writes the store's content after `from`, read from one consistent
    /// snapshot, to `sink` (see [`crate::dump`]): commits go on meanwhile
    /// and are not in it. Returns the snapshot's coordinates. A failing
    /// `sink` stops the dump with its error.
    fn dump(
        &self,
        _from: crate::dump::DumpFrom,
        _sink: &mut dyn FnMut(crate::dump::DumpRecord) -> Result<()>,
    ) -> Result<crate::dump::DumpHead> {
        Err(Error::storage("this store cannot be dumped"))
    }

    /// Writes a dump into this store, which must be empty (no revision,
    /// no journal record, no setting), keeping every revision, time,
    /// author and journal record, then ends it as `end` says. All of it is
    /// written in one transaction, or none of it. Records must come in a
    /// dump's order (see [`crate::dump::DumpRecord`]).
    fn load(
        &self,
        _records: &mut dyn Iterator<Item = Result<crate::dump::DumpRecord>>,
        _end: &crate::dump::LoadEnd,
    ) -> Result<()> {
        Err(Error::storage("this store cannot load a dump"))
    }

    /// Turns an [`At`] into a readable revision.
    fn revision_at(&self, at: At) -> Result<u64> {
        let current = self.revision()?;
        let rev = match at {
            At::Latest => return Ok(current),
            At::Revision(r) => r,
            At::Time(t) => self.revision_for_time(t)?,
        };
        check_readable(rev, self.oldest_revision()?, current)?;
        Ok(rev)
    }
}

/// Fails unless `revision` lies in `oldest..=current`.
pub fn check_readable(revision: u64, oldest: u64, current: u64) -> Result<()> {
    if revision > current {
        return Err(Error::FutureRevision {
            requested: revision,
            current,
        });
    }
    if revision < oldest {
        return Err(Error::Compacted {
            requested: revision,
            oldest,
        });
    }
    Ok(())
}

/// The compaction revision a retention policy allows, given each object's
/// version revisions (ascending) and the revisions' times (ascending).
pub fn retention_floor<'a>(
    policy: &RetentionPolicy,
    now: Timestamp,
    current: u64,
    previous_floor: u64,
    versions: impl IntoIterator<Item = &'a [u64]>,
    revision_times: &[(u64, Timestamp)],
) -> u64 {
    let cutoff = now.0.saturating_sub(
        i64::try_from(policy.keep_days.saturating_mul(86_400_000)).unwrap_or(i64::MAX),
    );
    let time_floor = revision_times
        .iter()
        .find(|(_, t)| t.0 >= cutoff)
        .map_or(current, |(r, _)| *r);
    // The oldest version to keep, v[len - keep], survives compaction at F
    // exactly when F is below the version after it (then it is the newest
    // version at or before F). An object with one version to keep bounds nothing.
    let keep = policy.keep_versions.max(1);
    let version_floor = versions
        .into_iter()
        .filter_map(|v| {
            v.get(v.len().saturating_sub(keep) + 1)
                .map(|next| next.saturating_sub(1))
        })
        .min()
        .unwrap_or(current);
    time_floor
        .min(version_floor)
        .min(current)
        .max(previous_floor)
}
