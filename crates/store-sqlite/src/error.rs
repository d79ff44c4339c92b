//! The error type of `confstrata-store-sqlite`: what can go wrong while opening a store.

use std::path::PathBuf;

/// Why a [`SqliteStore`](crate::SqliteStore) could not be opened.
///
/// Once a store is open, its [`Store`](confstrata_core::Store) methods report
/// [`confstrata_core::Error`]s; backend failures are
/// [`confstrata_core::Error::Storage`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// SQLite failed (the file is not a database, is locked, is unreadable, ...).
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A model error, e.g. a stored value that does not parse.
    #[error(transparent)]
    Core(#[from] confstrata_core::Error),
    /// The database could not be put into the durable mode the store relies on.
    #[error(
        "the store requires WAL + synchronous=FULL but got journal_mode={journal_mode}, synchronous={synchronous}; \
         keep the database on a local file system that supports WAL (not a network share or an in-memory database)"
    )]
    Durability {
        /// The journal mode SQLite reported.
        journal_mode: String,
        /// The synchronous level SQLite reported (2 = FULL).
        synchronous: i64,
    },
    /// The database was written by a newer version of Confstrata.
    #[error(
        "database {} has schema version {found}, but this build of Confstrata knows versions up to {supported}; \
         open it with the newer Confstrata that wrote it, or restore a backup made by this version",
        path.display()
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// The schema version found in the file (`PRAGMA user_version`).
        found: i64,
        /// The newest schema version this build knows.
        supported: i64,
    },
    /// Another process has the store open. One process owns a store at a
    /// time: point other tools at the server (`--addr`) instead.
    #[error(
        "the store {} is in use by another process (a running `confstrata serve`?); stop it, or use the server with --addr",
        path.display()
    )]
    Locked {
        /// The database file.
        path: PathBuf,
    },
    /// A file-system or operating-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. `creating directory /var/lib/confstrata`.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl From<Error> for confstrata_core::Error {
    /// Model errors pass through unchanged; everything else becomes
    /// [`confstrata_core::Error::Storage`].
    fn from(err: Error) -> Self {
        match err {
            Error::Core(e) => e,
            other => confstrata_core::Error::storage(other),
        }
    }
}
