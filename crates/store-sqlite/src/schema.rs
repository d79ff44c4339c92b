//! Opening connections: durability settings and schema migrations.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::error::Error;

/// The size the write-ahead log is cut back to after a checkpoint resets it.
const WAL_SIZE_LIMIT: i64 = 64 << 20;

/// How long a connection waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema, one migration per version: `MIGRATIONS[i]` takes a database
/// from `user_version` `i` to `i + 1`. Append new migrations; never edit old ones.
///
/// Versions of namespaces and layers are rows keyed by (name, revision); a
/// `NULL` spec or document is a deletion. Layer rows live in rowid tables
/// because documents can be large (up to a megabyte), which `WITHOUT ROWID`
/// tables handle badly.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    "CREATE TABLE revisions (
         rev INTEGER PRIMARY KEY,
         time_ms INTEGER NOT NULL,
         author TEXT NOT NULL,
         message TEXT NOT NULL
     );
     -- Times never go backwards, so (time_ms, rev) finds the revision for a time with one seek.
     CREATE INDEX revisions_by_time ON revisions (time_ms, rev);
     CREATE TABLE namespace_versions (
         name TEXT NOT NULL,
         rev INTEGER NOT NULL,
         spec TEXT,
         PRIMARY KEY (name, rev)
     );
     CREATE INDEX namespace_versions_by_rev ON namespace_versions (rev);
     CREATE TABLE layer_versions (
         ns TEXT NOT NULL,
         layer TEXT NOT NULL,
         rev INTEGER NOT NULL,
         doc TEXT,
         PRIMARY KEY (ns, layer, rev)
     );
     CREATE INDEX layer_versions_by_rev ON layer_versions (rev);
     CREATE TABLE meta (
         key TEXT PRIMARY KEY,
         value
     ) WITHOUT ROWID;
     INSERT INTO meta (key, value) VALUES ('oldest_revision', 0);",
    // 2: the journal (audit records, written in the transaction of the change
    // they describe) and settings (wrapped data keys, the access policy).
    // Retention never touches either. The triggers stop accidental edits;
    // tampering by someone who drops them is what the records' MAC chain
    // detects.
    "CREATE TABLE journal (
         seq INTEGER PRIMARY KEY,
         time_ms INTEGER NOT NULL,
         rev INTEGER,
         mac BLOB NOT NULL,
         body TEXT NOT NULL
     );
     CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
     BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
     CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
     BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
     CREATE TABLE settings (
         key TEXT PRIMARY KEY,
         value TEXT NOT NULL
     ) WITHOUT ROWID;",
    // 3: layer versions as deltas (see `delta.rs`). A row with `base` NULL
    // holds its whole document (every row written before this migration
    // does); otherwise `doc` holds the edits from the version before, and
    // `base` is the revision of the whole version its chain starts from.
    // `depth` and `chain_bytes` count the deltas of the chain up to this
    // row and their bytes; `base_bytes` is the size of the chain's whole
    // version (for a whole row: its own; NULL in rows from before).
    "ALTER TABLE layer_versions ADD COLUMN base INTEGER;
     ALTER TABLE layer_versions ADD COLUMN depth INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE layer_versions ADD COLUMN chain_bytes INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE layer_versions ADD COLUMN base_bytes INTEGER;",
    // 4: the store's identity, which backups name (a restore writes its own).
    "INSERT INTO meta (key, value) VALUES ('store_id', lower(hex(randomblob(16))));",
];

/// The schema version this build writes.
pub(crate) fn supported_version() -> i64 {
    // A handful of migrations always fits in an i64.
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// Prepared statements kept per connection: more than the store has
/// distinct statements (rusqlite's default of 16 is fewer, so a
/// connection that ran them all would re-parse SQL on every request).
const STATEMENT_CACHE: usize = 64;

/// Settings every connection gets: a statement cache bigger than the
/// store's statements, and the query planner stability guarantee. Without
/// it, SQLite built with STAT4 (as rusqlite's bundled build is) marks a
/// statement whose plan could depend on a bound value (`rev <= ?3`,
/// `LIMIT ?2`) for re-preparing whenever that value changes: the writer
/// re-prepared its layer and namespace reads on every commit (10% of the
/// CPU of a commit-heavy load, `perf`). The store's queries have one right
/// plan whatever the values (their indexes), so stability costs nothing.
fn tune(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// Opens the one read-write connection, checks durability and migrates.
pub(crate) fn open_writer(path: &Path) -> Result<Connection, Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    tune(&conn)?;
    // Space that retention frees goes back to the file system
    // (`incremental_vacuum` after each run). Settable only before the
    // first table: a new database gets it here, an older one below.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    let journal_mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // A long read (a backup's snapshot) keeps checkpoints from passing it,
    // so the write-ahead log grows meanwhile; once a checkpoint resets it,
    // the file is cut back to this size instead of keeping its peak.
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    let synchronous: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
    if !journal_mode.eq_ignore_ascii_case("wal") || synchronous != 2 {
        return Err(Error::Durability {
            journal_mode,
            synchronous,
        });
    }
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrate(&mut conn, path)?;
    let auto_vacuum: i64 = conn.pragma_query_value(None, "auto_vacuum", |r| r.get(0))?;
    if auto_vacuum != 2 {
        // A database made before: switching needs one VACUUM, which
        // rewrites it (once; it can take a while for a large one).
        tracing::info!(path = %path.display(), "rewriting the database once so that compaction can give space back");
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        conn.execute_batch("VACUUM")?;
    }
    Ok(conn)
}

/// Opens a read-only connection for the reader pool.
pub(crate) fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    tune(&conn)?;
    Ok(conn)
}

/// Applies the migrations the database lacks, all in one transaction.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let supported = supported_version();
    if found < 0 {
        return Err(Error::Core(confstrata_core::Error::storage(format!(
            "database {} has schema version {found}, which no version of Confstrata writes; \
             it is not a Confstrata store",
            path.display()
        ))));
    }
    if found > supported {
        return Err(Error::SchemaTooNew {
            path: path.to_owned(),
            found,
            supported,
        });
    }
    // `found` lies in 0..=MIGRATIONS.len(), checked just above.
    let start = usize::try_from(found).unwrap_or(MIGRATIONS.len());
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(start) {
        tracing::info!(path = %path.display(), version = i + 1, "migrating store schema");
        tx.execute_batch(sql)?;
    }
    if found != supported {
        tx.pragma_update(None, "user_version", supported)?;
    }
    tx.commit()?;
    Ok(())
}
