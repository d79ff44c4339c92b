//! Confstrata's durable store: a [`Store`] in one SQLite database file.
//!
//! [`SqliteStore`] keeps every version of every namespace and layer, keyed by
//! revision, in a database in WAL mode with `synchronous=FULL`: a commit that
//! returned is on disk, and a crash never leaves part of a change set
//! visible. It has exactly the semantics of [`confstrata_core::MemoryStore`].
//!
//! - **Writes** go through one writer that owns the only read-write
//!   connection. Committers queue; the first in line writes everything queued
//!   behind it as one transaction (group commit: one fsync for the batch),
//!   each change set planned and checked before its first write, so a change
//!   set that fails its checks writes nothing and does not consume a
//!   revision. Callers get their
//!   answer only after the batch's `COMMIT` returned. An uncontended commit
//!   from a waiting thread runs in that thread, with no hand-off; a commit
//!   reported to a callback (`Store::commit_then`, for async callers) is
//!   led by the store's writer thread.
//! - **Reads** use a small pool of read-only connections, each read in one
//!   snapshot transaction, so they never wait for the writer.
//! - **Schema** versions are tracked with `PRAGMA user_version` and migrated
//!   on open; a database written by a newer build is refused.
//!
//! This crate is the only one that knows SQL: SQL rows never leave it.
//!
//! ```
//! use confstrata_core::{ChangeSet, Store};
//! use confstrata_core::serde_json::json;
//! use confstrata_store_sqlite::SqliteStore;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let unique = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
//! let dir = std::env::temp_dir().join(format!("confstrata-example-{}-{unique}", std::process::id()));
//! let store = SqliteStore::open(&dir.join("store.db"))?;
//! let cs: ChangeSet = confstrata_core::serde_json::from_value(json!({"author": "ana", "ops": [
//!     {"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults", "env/{env}"]}},
//!     {"op": "set", "namespace": "web", "layer": "defaults", "key": "port", "value": 80},
//! ]}))?;
//! let rev = store.commit(&cs)?.revision;
//! assert_eq!(rev, 1);
//!
//! let layer = store.layer(&"web".parse()?, &"defaults".parse()?, rev)?.expect("written above");
//! assert_eq!(layer.document["port"], json!(80));
//! drop(store);
//! std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

mod db;
mod delta;
mod dump;
mod error;
mod latest;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use confstrata_core::{
    Change, ChangeSet, CommitInfo, JournalFn, JournalRecord, LayerPath, LayerRecord, LayerVersion,
    Limits, NamespaceName, NamespaceRecord, RetentionPolicy, RetentionReport, RevisionInfo,
    SettingWrite, Store, Timestamp, check_readable,
};
use rusqlite::Connection;

pub use crate::error::Error;
use crate::writer::{Counters, Done, Job, Writer};

/// How many idle read connections the pool keeps.
const MAX_IDLE_READERS: usize = 8;

/// Settings for [`SqliteStore::open_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Limits every committed change set must respect.
    pub limits: Limits,
    /// The most change sets the writer commits in one transaction (group
    /// commit); values below 1 count as 1.
    pub max_batch: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            limits: Limits::default(),
            max_batch: 64,
        }
    }
}

/// A layer's record from what the database holds for it.
fn layer_record(
    ns: &NamespaceName,
    layer: &LayerPath,
    (document, revision): (confstrata_core::Document, u64),
) -> LayerRecord {
    LayerRecord::new(ns.clone(), layer.clone(), document, revision)
}

/// A durable [`Store`] in one SQLite database file. See the [crate docs](crate).
///
/// Open a database file through one `SqliteStore` at a time: it keeps the
/// current revision in memory, so it would not see commits made through
/// another handle (which SQLite's locking still keeps consistent on disk).
pub struct SqliteStore {
    path: PathBuf,
    writer: Writer,
    /// Held for the store's lifetime: an exclusive lock on `<db>.lock`.
    _lock: std::fs::File,
    counters: Arc<Counters>,
    readers: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("revision", &self.counters.current.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store in the database file `path`, with
    /// default [`Options`]. Missing parent directories are created.
    pub fn open(path: &Path) -> Result<SqliteStore, Error> {
        Self::open_with(path, Options::default())
    }

    /// Opens (creating if needed) the store in the database file `path`.
    ///
    /// Fails if the database cannot be put in WAL mode with
    /// `synchronous=FULL` ([`Error::Durability`]), or was written by a newer
    /// build ([`Error::SchemaTooNew`]).
    pub fn open_with(path: &Path, options: Options) -> Result<SqliteStore, Error> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                context: format!("creating directory {}", parent.display()),
                source,
            })?;
        }
        // Readers open the file later: pin it down now, whatever the working directory becomes.
        let absolute = std::path::absolute(path).map_err(|source| Error::Io {
            context: format!("resolving {}", path.display()),
            source,
        })?;
        // One process owns a store: its revision counter and the watch feed
        // live in memory. The lock is released when the store is dropped, or
        // by the kernel if the process dies.
        let lock_path = absolute.with_extension("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| Error::Io {
                context: format!("opening {}", lock_path.display()),
                source,
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Locked { path: absolute });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(Error::Io {
                    context: format!("locking {}", lock_path.display()),
                    source,
                });
            }
        }
        let conn = schema::open_writer(path)?;
        let current = db::current_revision(&conn)?;
        let oldest = db::oldest_revision(&conn)?;
        // A first reader, opened now so that a database readers cannot open fails here.
        let reader = schema::open_reader(&absolute)?;
        let counters = Arc::new(Counters::default());
        counters.current.store(current, Ordering::SeqCst);
        counters.oldest.store(oldest, Ordering::SeqCst);
        let writer = Writer::new(
            conn,
            Arc::clone(&counters),
            options.limits,
            options.max_batch,
        )?;
        tracing::debug!(path = %path.display(), revision = current, oldest_revision = oldest, "store opened");
        Ok(SqliteStore {
            path: absolute,
            writer,
            counters,
            _lock: lock,
            readers: Mutex::new(vec![reader]),
        })
    }

    /// The database file, as an absolute path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in a read snapshot on a pooled connection.
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> confstrata_core::Result<T>,
    ) -> confstrata_core::Result<T> {
        let pooled = self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => schema::open_reader(&self.path).map_err(db::db)?,
        };
        let result = conn.transaction().map_err(db::db).and_then(|tx| {
            let out = f(&tx)?;
            tx.commit().map_err(db::db)?;
            Ok(out)
        });
        // A connection left inside a transaction (a failed rollback) is not reused.
        if conn.is_autocommit() {
            let mut idle = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
        result
    }

    /// Runs `f` in a read snapshot after checking that `revision` is readable
    /// in that snapshot.
    fn read_at<T>(
        &self,
        revision: u64,
        f: impl FnOnce(&Connection) -> confstrata_core::Result<T>,
    ) -> confstrata_core::Result<T> {
        // Load the counter first: the snapshot taken after it holds every revision up to it.
        let current = self.counters.current.load(Ordering::SeqCst);
        self.read(|conn| {
            check_readable(revision, db::oldest_revision(conn)?, current)?;
            f(conn)
        })
    }
}

impl Store for SqliteStore {
    fn set_timings(&self, timings: Arc<dyn confstrata_core::timing::Timings>) {
        self.writer.set_timings(timings);
    }

    fn revision(&self) -> confstrata_core::Result<u64> {
        Ok(self.counters.current.load(Ordering::SeqCst))
    }

    fn oldest_revision(&self) -> confstrata_core::Result<u64> {
        Ok(self.counters.oldest.load(Ordering::SeqCst))
    }

    fn revision_for_time(&self, time: Timestamp) -> confstrata_core::Result<u64> {
        self.read(|conn| db::revision_for_time(conn, time))
    }

    fn revision_info(&self, revision: u64) -> confstrata_core::Result<Option<RevisionInfo>> {
        self.read(|conn| db::revision_info(conn, revision))
    }

    fn namespace(
        &self,
        name: &NamespaceName,
        revision: u64,
    ) -> confstrata_core::Result<Option<NamespaceRecord>> {
        self.read_at(revision, |conn| {
            Ok(db::namespace_at(conn, name, revision)?
                .map(|(spec, revision)| NamespaceRecord { spec, revision }))
        })
    }

    fn namespaces(&self, revision: u64) -> confstrata_core::Result<Vec<NamespaceRecord>> {
        self.read_at(revision, |conn| db::namespaces_at(conn, revision))
    }

    fn layer(
        &self,
        ns: &NamespaceName,
        layer: &LayerPath,
        revision: u64,
    ) -> confstrata_core::Result<Option<LayerRecord>> {
        self.read_at(revision, |conn| {
            Ok(
                db::layer_at(conn, ns, layer, revision)?
                    .map(|found| layer_record(ns, layer, found)),
            )
        })
    }

    fn layer_section(
        &self,
        ns: &NamespaceName,
        layer: &LayerPath,
        revision: u64,
        section: &str,
    ) -> confstrata_core::Result<Option<LayerRecord>> {
        self.read_at(revision, |conn| {
            Ok(db::layer_section_at(conn, ns, layer, revision, section)?
                .map(|found| layer_record(ns, layer, found)))
        })
    }

    fn layers(
        &self,
        ns: &NamespaceName,
        revision: u64,
    ) -> confstrata_core::Result<Vec<LayerRecord>> {
        self.read_at(revision, |conn| db::layers_at(conn, ns, revision))
    }

    fn declaration_history(
        &self,
        ns: &NamespaceName,
        limit: usize,
    ) -> confstrata_core::Result<Vec<confstrata_core::DeclarationVersion>> {
        self.read(|conn| db::declaration_history(conn, ns, limit))
    }

    fn history(
        &self,
        ns: &NamespaceName,
        layer: Option<&LayerPath>,
        limit: usize,
    ) -> confstrata_core::Result<Vec<LayerVersion>> {
        self.read(|conn| db::history(conn, ns, layer, limit))
    }

    fn changes_since(&self, after: u64, limit: usize) -> confstrata_core::Result<Vec<Change>> {
        self.read(|conn| {
            let oldest = db::oldest_revision(conn)?;
            if after < oldest.saturating_sub(1) {
                return Err(confstrata_core::Error::Compacted {
                    requested: after,
                    oldest,
                });
            }
            db::changes_since(conn, after, limit)
        })
    }

    fn commit_checked(
        &self,
        changes: &ChangeSet,
        journal: Option<JournalFn>,
        check: Option<confstrata_core::CheckFn>,
    ) -> confstrata_core::Result<CommitInfo> {
        match self
            .writer
            .run(Job::Commit(changes.clone(), journal, check))?
        {
            Done::Commit(info) => Ok(info),
            Done::Journal(_) => Err(confstrata_core::Error::storage("commit result lost")),
        }
    }

    fn commit_then(
        &self,
        changes: ChangeSet,
        journal: Option<JournalFn>,
        check: Option<confstrata_core::CheckFn>,
        done: confstrata_core::CommitDone,
    ) {
        self.writer.submit(
            Job::Commit(changes, journal, check),
            Box::new(move |result| {
                done(result.and_then(|d| match d {
                    Done::Commit(info) => Ok(info),
                    Done::Journal(_) => Err(confstrata_core::Error::storage("commit result lost")),
                }))
            }),
        );
    }

    fn append_journal(&self, journal: JournalFn) -> confstrata_core::Result<JournalRecord> {
        match self.writer.run(Job::Journal(journal))? {
            Done::Journal(Some(r)) => Ok(r),
            _ => Err(confstrata_core::Error::storage("journal result lost")),
        }
    }

    fn write_settings(
        &self,
        writes: &[SettingWrite],
        journal: Option<JournalFn>,
    ) -> confstrata_core::Result<()> {
        self.writer
            .run(Job::Settings(writes.to_vec(), journal))
            .map(drop)
    }

    fn setting(&self, key: &str) -> confstrata_core::Result<Option<String>> {
        Ok(self
            .read(|c| db::settings(c, key))?
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v))
    }

    fn settings(&self, prefix: &str) -> confstrata_core::Result<Vec<(String, String)>> {
        self.read(|c| db::settings(c, prefix))
    }

    fn journal(&self, after: u64, limit: usize) -> confstrata_core::Result<Vec<JournalRecord>> {
        self.read(|c| db::journal(c, after, limit))
    }

    fn apply_retention(
        &self,
        policy: &RetentionPolicy,
        now: Timestamp,
    ) -> confstrata_core::Result<RetentionReport> {
        self.writer.apply_retention(policy, now)
    }

    fn store_id(&self) -> confstrata_core::Result<String> {
        self.read(dump::store_id)
    }

    fn dump(
        &self,
        from: confstrata_core::DumpFrom,
        sink: &mut dyn FnMut(confstrata_core::DumpRecord) -> confstrata_core::Result<()>,
    ) -> confstrata_core::Result<confstrata_core::DumpHead> {
        // One read transaction: the dump is the snapshot it started on,
        // whatever is committed while it runs.
        self.read(|conn| dump::dump(conn, from, sink))
    }

    fn load(
        &self,
        records: &mut dyn Iterator<Item = confstrata_core::Result<confstrata_core::DumpRecord>>,
        end: &confstrata_core::LoadEnd,
    ) -> confstrata_core::Result<()> {
        self.writer.load(records, end)
    }

    fn storage_size(&self) -> confstrata_core::Result<Option<confstrata_core::StorageSize>> {
        let mut size = self.read(db::storage_size)?;
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        if let Ok(meta) = std::fs::metadata(&wal) {
            size.bytes = size.bytes.saturating_add(meta.len());
        }
        Ok(Some(size))
    }
}

#[cfg(test)]
mod tests;
