//! What survives closing and reopening the database, and what open refuses.

use std::path::Path;

use confstrata_core::serde_json::json;
use confstrata_core::{RetentionPolicy, Store, Timestamp};
use confstrata_store_sqlite::{Error, Options, SqliteStore};

use crate::{cs, lp, ns, open};

fn user_version(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

/// Everything readable, times included.
fn everything(store: &SqliteStore) -> String {
    let current = store.revision().unwrap();
    let oldest = store.oldest_revision().unwrap();
    let mut out = format!("{current} {oldest}\n");
    for rev in oldest..=current {
        out += &format!(
            "{:?}\n{:?}\n",
            store.revision_info(rev),
            store.namespaces(rev)
        );
        out += &format!("{:?}\n", store.layers(&ns("web"), rev));
    }
    out += &format!("{:?}\n", store.history(&ns("web"), None, usize::MAX));
    out += &format!(
        "{:?}\n",
        store.changes_since(oldest.saturating_sub(1), usize::MAX)
    );
    out
}

#[test]
fn everything_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    // A directory that does not exist yet: open creates it.
    let path = dir.path().join("nested/deeper/store.db");
    let before = {
        let store = open(&path);
        assert_eq!(store.path(), path);
        store
            .commit(&cs(json!({"author": "ana", "message": "init", "ops": [
                {"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults", "env/{env}"]}},
                {"op": "put", "namespace": "web", "layer": "defaults", "document": {"a": 1, "s": "ü\u{1F600}\n", "f": 0.1}},
            ]})))
            .unwrap();
        for i in 0..5 {
            store
                .commit(&cs(json!({"ops": [{"op": "set", "namespace": "web", "layer": "env/prod", "key": "i", "value": i}]})))
                .unwrap();
        }
        store
            .commit(&cs(
                json!({"ops": [{"op": "delete", "namespace": "web", "layer": "env/prod"}]}),
            ))
            .unwrap();
        everything(&store)
    };
    let store = open(&path);
    assert_eq!(store.revision().unwrap(), 7);
    assert_eq!(everything(&store), before);
    let d = store
        .layer(&ns("web"), &lp("defaults"), 7)
        .unwrap()
        .unwrap();
    assert_eq!(d.document["s"], json!("ü\u{1F600}\n"));
    assert_eq!(d.document["f"], json!(0.1));

    // Retention's floor is durable too, and commits continue from the last revision.
    let policy = RetentionPolicy {
        keep_versions: 1,
        keep_days: 0,
    };
    let report = store.apply_retention(&policy, Timestamp(i64::MAX)).unwrap();
    assert_eq!(report.oldest_revision, 7);
    let spec = json!({"name": "web", "levels": ["defaults", "env/{env}"], "description": "x"});
    let info = store
        .commit(&cs(json!({"ops": [
            {"op": "put-namespace", "spec": spec},
            {"op": "set", "namespace": "web", "layer": "defaults", "key": "a", "value": 3},
        ]})))
        .unwrap();
    assert_eq!(info.revision, 8);
    let report = store.apply_retention(&policy, Timestamp(i64::MAX)).unwrap();
    assert_eq!(report.oldest_revision, 8);
    let before = everything(&store);
    drop(store);
    let store = open(&path);
    assert_eq!(
        (store.revision().unwrap(), store.oldest_revision().unwrap()),
        (8, 8)
    );
    assert_eq!(everything(&store), before);
    let last = store.revision_info(8).unwrap().unwrap().time;
    let next = store
        .commit(&cs(json!({"ops": [{"op": "set", "namespace": "web", "layer": "defaults", "key": "a", "value": 2}]})))
        .unwrap();
    assert_eq!(next.revision, 9);
    assert!(next.time >= last);
}

#[test]
fn migrations_are_idempotent_and_the_database_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    for round in 0..3 {
        let store = open(&path);
        assert_eq!(store.revision().unwrap(), round);
        store
            .commit(&cs(json!({"ops": [{"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults"]}}]})))
            .unwrap();
        drop(store);
        assert_eq!(user_version(&path), 4);
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn a_database_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    drop(open(&path));
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let e = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(
            e,
            Error::SchemaTooNew {
                found: 99,
                supported: 4,
                ..
            }
        ),
        "{e:?}"
    );
    let message = e.to_string();
    assert!(
        message.contains("schema version 99") && message.contains("up to 4"),
        "{message}"
    );
    assert!(message.contains(&path.display().to_string()), "{message}");
    // Nothing was changed by the refused open.
    assert_eq!(user_version(&path), 99);
    let core: confstrata_core::Error = e.into();
    assert!(matches!(core, confstrata_core::Error::Storage { .. }));
}

#[test]
fn a_database_without_wal_is_refused() {
    let e = SqliteStore::open(Path::new(":memory:")).unwrap_err();
    match &e {
        Error::Durability { journal_mode, .. } => assert_eq!(journal_mode, "memory"),
        other => panic!("{other:?}"),
    }
    assert!(
        e.to_string().contains("requires WAL + synchronous=FULL"),
        "{e}"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    let e = SqliteStore::open_with(&path, Options::default()).unwrap_err();
    assert!(matches!(e, Error::Sqlite(_)), "{e:?}");
}

#[test]
fn a_corrupt_row_is_a_storage_error_naming_the_layer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let store = open(&path);
    store
        .commit(&cs(json!({"ops": [
            {"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults"]}},
            {"op": "put", "namespace": "web", "layer": "defaults", "document": {"a": 1}},
        ]})))
        .unwrap();
    drop(store);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("UPDATE layer_versions SET doc = 'oops'", [])
        .unwrap();
    let store = open(&path);
    let e = store.layer(&ns("web"), &lp("defaults"), 1).unwrap_err();
    assert!(
        matches!(&e, confstrata_core::Error::Storage { .. }),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("layer web:defaults at revision 1"),
        "{e}"
    );
    // A commit that must read the layer fails the same way and writes nothing.
    let set = cs(
        json!({"ops": [{"op": "set", "namespace": "web", "layer": "defaults", "key": "b", "value": 1}]}),
    );
    assert!(matches!(
        store.commit(&set).unwrap_err().root(),
        confstrata_core::Error::Storage { .. }
    ));
    assert_eq!(store.revision().unwrap(), 1);
}

#[test]
fn a_second_handle_on_the_same_store_is_refused_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let first = confstrata_store_sqlite::SqliteStore::open(&path).unwrap();
    let e = confstrata_store_sqlite::SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(e, confstrata_store_sqlite::Error::Locked { .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("in use by another process"), "{e}");
    drop(first);
    confstrata_store_sqlite::SqliteStore::open(&path).unwrap();
}

#[test]
fn a_version_1_database_migrates_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    {
        // What a build with only the first migration left behind.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL").unwrap();
        conn.execute_batch(
            "CREATE TABLE revisions (rev INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, author TEXT NOT NULL, message TEXT NOT NULL);
             CREATE INDEX revisions_by_time ON revisions (time_ms, rev);
             CREATE TABLE namespace_versions (name TEXT NOT NULL, rev INTEGER NOT NULL, spec TEXT, PRIMARY KEY (name, rev));
             CREATE INDEX namespace_versions_by_rev ON namespace_versions (rev);
             CREATE TABLE layer_versions (ns TEXT NOT NULL, layer TEXT NOT NULL, rev INTEGER NOT NULL, doc TEXT, PRIMARY KEY (ns, layer, rev));
             CREATE INDEX layer_versions_by_rev ON layer_versions (rev);
             CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
             INSERT INTO meta (key, value) VALUES ('oldest_revision', 0);
             INSERT INTO revisions VALUES (1, 0, 'ana', 'init');
             INSERT INTO namespace_versions VALUES ('web', 1, '{\"name\":\"web\",\"levels\":[\"defaults\"]}');
             INSERT INTO layer_versions VALUES ('web', 'defaults', 1, '{\"n\":1}');
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let store = open(&path);
    assert_eq!(user_version(&path), 4);
    assert_eq!(store.revision().unwrap(), 1);
    let layer = store
        .layer(&"web".parse().unwrap(), &"defaults".parse().unwrap(), 1)
        .unwrap()
        .unwrap();
    assert_eq!(layer.document["n"], 1);
    assert!(store.journal(0, 10).unwrap().is_empty());
    assert_eq!(store.setting("policy").unwrap(), None);
}

#[test]
fn the_wal_stays_bounded_under_a_stream_of_commits() {
    // Every commit appends pages to the WAL; SQLite's automatic checkpoint
    // (run by the writer after the commit that passes 1,000 pages) copies
    // them back and lets the WAL start over, so it never holds much more
    // than 1,000 pages of 4 KiB, however much is written (here ~12,000
    // pages). A WAL that only grew would also make every fsync slower
    // (docs/PERFORMANCE.md).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let store = SqliteStore::open(&path).unwrap();
    store
        .commit(&crate::cs(
            json!({"ops": [{"op": "put-namespace", "spec": {"name": "w", "levels": ["l/{n}"]}}]}),
        ))
        .unwrap();
    let filler = "x".repeat(12_000);
    for n in 0..3_000u64 {
        store
            .commit(&crate::cs(json!({"ops": [{"op": "put", "namespace": "w",
                "layer": format!("l/{}", n % 50), "document": {"n": n, "filler": filler}}]})))
            .unwrap();
    }
    let wal = std::fs::metadata(dir.path().join("store.db-wal"))
        .unwrap()
        .len();
    assert!(wal <= 2_000 * (4096 + 24), "the WAL grew to {wal} bytes");
    assert_eq!(store.revision().unwrap(), 3_001);
}
