//! The integration tests of `confstrata-store-sqlite`: one binary, one module per concern.

mod bad_input;
mod concurrency;
mod contract;
mod crash;
mod deltas;
mod dump;
mod durability;
mod journal;
mod migration;

use std::path::Path;

use confstrata_core::serde_json::{self, Value};
use confstrata_core::{ChangeSet, LayerPath, NamespaceName};
use confstrata_store_sqlite::SqliteStore;

/// A change set from its JSON form.
pub fn cs(v: Value) -> ChangeSet {
    serde_json::from_value(v).unwrap()
}

/// A namespace name.
pub fn ns(s: &str) -> NamespaceName {
    s.parse().unwrap()
}

/// A layer path.
pub fn lp(s: &str) -> LayerPath {
    s.parse().unwrap()
}

/// A fresh SQLite store in a temporary directory (kept alive by the guard).
pub fn sqlite() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("store.db")).unwrap();
    (dir, store)
}

/// Opens a store, panicking with the error's message.
pub fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}
