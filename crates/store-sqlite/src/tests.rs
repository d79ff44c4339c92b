use confstrata_core::serde_json::{self, Value, json};
use confstrata_core::{ChangeSet, Error, Limits};

use super::*;

fn cs(v: Value) -> ChangeSet {
    serde_json::from_value(v).unwrap()
}

fn writer_conn() -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let conn = schema::open_writer(&dir.path().join("s.db")).unwrap();
    (dir, conn)
}

fn setup() -> ChangeSet {
    cs(json!({"ops": [
        {"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults", "env/{env}"]}},
        {"op": "put", "namespace": "web", "layer": "defaults", "document": {"a": 1}},
    ]}))
}

/// Runs change sets through the writer's batch, as commits without journal records.
fn commit_batch(
    conn: &mut rusqlite::Connection,
    limits: &Limits,
    batch: &[ChangeSet],
) -> Vec<confstrata_core::Result<confstrata_core::CommitInfo>> {
    let jobs = batch
        .iter()
        .map(|c| writer::Job::Commit(c.clone(), None, None))
        .collect();
    writer::commit_batch(conn, limits, jobs, &confstrata_core::timing::NoTimings)
        .into_iter()
        .map(|r| {
            r.and_then(|d| match d {
                writer::Done::Commit(info) => Ok(info),
                writer::Done::Journal(_) => Err(confstrata_core::Error::storage("not a commit")),
            })
        })
        .collect()
}

#[test]
fn a_batch_commits_around_a_failed_change_set() {
    let (_dir, mut conn) = writer_conn();
    let limits = Limits::default();
    let batch = [
        setup(),
        // Sees the layer written by the first change set of the same batch.
        cs(
            json!({"ops": [{"op": "set", "namespace": "web", "layer": "defaults", "key": "b", "value": 2, "expect_revision": 1}]}),
        ),
        // Fails its precondition: writes one layer first, which must vanish.
        cs(json!({"ops": [
            {"op": "set", "namespace": "web", "layer": "env/prod", "key": "x", "value": 1},
            {"op": "set", "namespace": "web", "layer": "defaults", "key": "c", "value": 3, "expect_revision": 1},
        ]})),
        cs(
            json!({"ops": [{"op": "set", "namespace": "web", "layer": "env/dev", "key": "y", "value": 1}]}),
        ),
    ];
    let results = commit_batch(&mut conn, &limits, &batch);
    let revisions: Vec<Option<u64>> = results
        .iter()
        .map(|r| r.as_ref().ok().map(|i| i.revision))
        .collect();
    assert_eq!(revisions, [Some(1), Some(2), None, Some(3)]);
    match results[2].as_ref().unwrap_err().root() {
        Error::Conflict {
            expected: 1,
            actual: 2,
            current_revision: 2,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(db::current_revision(&conn).unwrap(), 3);
    let web = "web".parse().unwrap();
    let layers: Vec<(String, u64)> = db::layers_at(&conn, &web, 3)
        .unwrap()
        .into_iter()
        .map(|l| (l.layer.to_string(), l.revision))
        .collect();
    assert_eq!(
        layers,
        [("defaults".to_owned(), 2), ("env/dev".to_owned(), 3)]
    );
    let times: Vec<u64> = db::revision_times(&conn)
        .unwrap()
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    assert_eq!(times, [1, 2, 3]);
}

#[test]
fn a_batch_of_failures_writes_nothing() {
    let (_dir, mut conn) = writer_conn();
    let batch = [
        cs(
            json!({"ops": [{"op": "set", "namespace": "nope", "layer": "defaults", "key": "a", "value": 1}]}),
        ),
        ChangeSet::default(),
    ];
    let results = commit_batch(&mut conn, &Limits::default(), &batch);
    assert!(results.iter().all(Result::is_err), "{results:?}");
    assert_eq!(db::current_revision(&conn).unwrap(), 0);
    // The connection is usable afterwards and the next revision is 1.
    let results = commit_batch(&mut conn, &Limits::default(), &[setup()]);
    assert_eq!(results[0].as_ref().unwrap().revision, 1);
}

#[test]
fn commit_times_never_go_backwards() {
    let (_dir, mut conn) = writer_conn();
    let future = Timestamp::now().0 + 3_600_000;
    commit_batch(&mut conn, &Limits::default(), &[setup()])[0]
        .as_ref()
        .unwrap();
    conn.execute("UPDATE revisions SET time_ms = ?1", [future])
        .unwrap();
    let next = cs(
        json!({"ops": [{"op": "set", "namespace": "web", "layer": "defaults", "key": "b", "value": 2}]}),
    );
    let info = commit_batch(&mut conn, &Limits::default(), &[next])[0]
        .clone()
        .unwrap();
    assert_eq!((info.revision, info.time), (2, Timestamp(future)));
}

#[test]
fn migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    for _ in 0..3 {
        let conn = schema::open_writer(&path).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, schema::supported_version());
        assert_eq!(db::oldest_revision(&conn).unwrap(), 0);
    }
}

#[test]
fn corrupt_rows_are_storage_errors_naming_the_object() {
    let (_dir, mut conn) = writer_conn();
    commit_batch(&mut conn, &Limits::default(), &[setup()])[0]
        .as_ref()
        .unwrap();
    let web: NamespaceName = "web".parse().unwrap();
    let defaults: LayerPath = "defaults".parse().unwrap();

    conn.execute("UPDATE layer_versions SET doc = '{not json'", [])
        .unwrap();
    let e = db::layer_at(&conn, &web, &defaults, 1).unwrap_err();
    assert!(
        matches!(&e, Error::Storage { message } if message.contains("layer web:defaults at revision 1")),
        "{e}"
    );
    conn.execute("UPDATE layer_versions SET doc = '[1, 2]'", [])
        .unwrap();
    assert!(matches!(
        db::layers_at(&conn, &web, 1),
        Err(Error::Storage { .. })
    ));

    conn.execute(
        "UPDATE namespace_versions SET spec = '{\"name\": \"web\"}'",
        [],
    )
    .unwrap();
    let e = db::namespace_at(&conn, &web, 1).unwrap_err();
    assert!(
        matches!(&e, Error::Storage { message } if message.contains("namespace web at revision 1")),
        "{e}"
    );

    conn.execute("UPDATE layer_versions SET layer = '../x'", [])
        .unwrap();
    assert!(matches!(
        db::changes_since(&conn, 0, 10),
        Err(Error::Storage { .. })
    ));
    conn.execute("UPDATE meta SET value = -3", []).unwrap();
    assert!(matches!(
        db::oldest_revision(&conn),
        Err(Error::Storage { .. })
    ));
}

#[test]
fn a_check_sees_the_state_it_lands_on_and_refuses_only_its_own_change_set() {
    let (_dir, mut conn) = writer_conn();
    let limits = Limits::default();
    let web: confstrata_core::NamespaceName = "web".parse().unwrap();
    let defaults: confstrata_core::LayerPath = "defaults".parse().unwrap();
    // Refuses a change set unless the sum of `a` over the layer as it will
    // be stays at most 10, reading the state inside the transaction.
    let check = |expected_before: i64| -> confstrata_core::CheckFn {
        let (web, defaults) = (web.clone(), defaults.clone());
        Box::new(move |plan, reader| {
            let before = reader
                .layer(&web, &defaults)?
                .and_then(|(d, _)| d.get("a").and_then(Value::as_i64))
                .unwrap_or(0);
            assert_eq!(
                before, expected_before,
                "the check reads what landed before it"
            );
            let after = plan
                .layers
                .iter()
                .find_map(|(_, _, d)| d.as_ref()?.get("a")?.as_i64())
                .unwrap_or(0);
            if after > 10 {
                return Err(Error::invalid("a", format!("{after} is over 10")));
            }
            Ok(())
        })
    };
    let set = |a: i64| {
        cs(
            json!({"ops": [{"op": "set", "namespace": "web", "layer": "defaults", "key": "a", "value": a}]}),
        )
    };
    let jobs = vec![
        writer::Job::Commit(setup(), None, Some(check(0))),
        writer::Job::Commit(set(5), None, Some(check(1))),
        writer::Job::Commit(set(50), None, Some(check(5))),
        // Lands on 5: the refused 50 left nothing behind.
        writer::Job::Commit(set(7), None, Some(check(5))),
    ];
    let results = writer::commit_batch(
        &mut conn,
        &limits,
        jobs,
        &confstrata_core::timing::NoTimings,
    );
    let revisions: Vec<Option<u64>> = results
        .iter()
        .map(|r| match r {
            Ok(writer::Done::Commit(i)) => Some(i.revision),
            _ => None,
        })
        .collect();
    assert_eq!(revisions, [Some(1), Some(2), None, Some(3)]);
    let err = results[2].as_ref().err().unwrap();
    assert!(err.to_string().contains("50 is over 10"), "{err}");
}

#[test]
fn a_layer_section_is_the_section_of_the_layer() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
    let doc = json!({
        "db": {"host": "h", "pool": {"max": 5}},
        "a.b": [1, {"c": null}],
        "é": "ü",
        "q\"uote": 1,
        "back\\slash": true,
        "nothing": null,
        "n": 1.5,
        "s": "text with \"quotes\"",
        "empty": {},
        "sealed": {"$sealed": {"v": 1}},
    });
    store
        .commit(&cs(json!({"ops": [
            {"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults", "env/{env}"]}},
            {"op": "put", "namespace": "web", "layer": "defaults", "document": doc},
        ]})))
        .unwrap();
    let ns: NamespaceName = "web".parse().unwrap();
    let defaults: LayerPath = "defaults".parse().unwrap();
    let whole = store.layer(&ns, &defaults, 1).unwrap().unwrap();
    let mut keys: Vec<String> = whole.document.keys().cloned().collect();
    keys.push("missing".into());
    keys.push("db.host".into());
    for key in &keys {
        let section = store
            .layer_section(&ns, &defaults, 1, key)
            .unwrap()
            .unwrap();
        let mut expected = whole.document.clone();
        expected.retain(|k, _| k == key);
        assert_eq!(section.document, expected, "section {key}");
        assert_eq!(section.revision, whole.revision);
    }
    // No such layer, and a deleted one: no record.
    let prod: LayerPath = "env/prod".parse().unwrap();
    assert!(store.layer_section(&ns, &prod, 1, "db").unwrap().is_none());
    store
        .commit(&cs(
            json!({"ops": [{"op": "delete", "namespace": "web", "layer": "defaults"}]}),
        ))
        .unwrap();
    assert!(
        store
            .layer_section(&ns, &defaults, 2, "db")
            .unwrap()
            .is_none()
    );
    // The past is still there.
    assert_eq!(
        store
            .layer_section(&ns, &defaults, 1, "n")
            .unwrap()
            .unwrap()
            .document["n"],
        json!(1.5)
    );
}

#[test]
fn the_writer_plans_on_the_newest_declaration_it_keeps() {
    use confstrata_core::Store as _;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
    store.commit(&setup()).unwrap();
    let into_prod = cs(
        json!({"ops": [{"op": "set", "namespace": "web", "layer": "env/prod", "key": "x", "value": 1}]}),
    );
    // Planned with the declaration the writer read and kept.
    store.commit(&into_prod).unwrap();
    store.commit(&into_prod).unwrap();
    // The declaration changes: `env/{env}` is no longer a level.
    store
        .commit(&cs(json!({"ops": [
            {"op": "delete", "namespace": "web", "layer": "env/prod"},
            {"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults", "region/{region}"]}},
        ]})))
        .unwrap();
    let before = store.revision().unwrap();
    let refused = store.commit(&into_prod).unwrap_err();
    assert!(refused.to_string().contains("env/prod"), "{refused}");
    assert_eq!(store.revision().unwrap(), before, "nothing written");
    store
        .commit(&cs(
            json!({"ops": [{"op": "set", "namespace": "web", "layer": "region/eu", "key": "x", "value": 1}]}),
        ))
        .unwrap();
}

#[test]
fn a_whole_row_from_before_schema_3_is_measured_and_deltas_follow_it() {
    use confstrata_core::Store as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let mut doc = serde_json::Map::new();
    for i in 0..40 {
        doc.insert(format!("k{i:02}"), json!("v".repeat(30)));
    }
    {
        let store = SqliteStore::open(&path).unwrap();
        store
            .commit(&cs(json!({"ops": [
                {"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults"]}},
                {"op": "put", "namespace": "web", "layer": "defaults", "document": doc},
            ]})))
            .unwrap();
    }
    // As schema 2 left whole rows: no recorded size.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("UPDATE layer_versions SET base_bytes = NULL", [])
        .unwrap();
    let store = SqliteStore::open(&path).unwrap();
    let mut expected = doc.clone();
    for i in 0..3 {
        let rev = store
            .commit(&cs(json!({"ops": [
                {"op": "set", "namespace": "web", "layer": "defaults", "key": "k07", "value": i}]})))
            .unwrap()
            .revision;
        expected.insert("k07".into(), json!(i));
        let got = store
            .layer(&"web".parse().unwrap(), &"defaults".parse().unwrap(), rev)
            .unwrap()
            .unwrap();
        assert_eq!(got.document, expected, "revision {rev}");
    }
    drop(store);
    // The sets were stored as deltas of the old whole row, measured by its length.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let (deltas, base_bytes): (i64, i64) = conn
        .query_row(
            "SELECT count(*), max(base_bytes) FROM layer_versions WHERE base IS NOT NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let whole: i64 = conn
        .query_row(
            "SELECT length(CAST(doc AS BLOB)) FROM layer_versions WHERE base IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(deltas, 3);
    assert_eq!(base_bytes, whole);
}

#[test]
fn the_writer_changes_its_copy_of_a_layer_in_place_and_every_revision_reads_exactly() {
    use confstrata_core::Store as _;
    let (_dir, mut conn) = writer_conn();
    let limits = Limits::default();
    let mut latest = crate::latest::LatestLayers::default();
    let memory = confstrata_core::MemoryStore::new();
    // Large enough to be stored as deltas.
    let mut big = serde_json::Map::new();
    for i in 0..40 {
        big.insert(format!("k{i:02}"), json!("v".repeat(30)));
    }
    big.insert("t".into(), json!({"a": 1, "b": {"c": 2}}));
    let set = |key: &str, value: Value| {
        cs(
            json!({"ops": [{"op": "set", "namespace": "web", "layer": "defaults", "key": key, "value": value}]}),
        )
    };
    let unset = |key: &str| {
        cs(json!({"ops": [{"op": "unset", "namespace": "web", "layer": "defaults", "key": key}]}))
    };
    let conflict = cs(json!({"ops": [
        {"op": "set", "namespace": "web", "layer": "defaults", "key": "k05", "value": 5, "expect_revision": 1}]}));
    let batches = vec![
        vec![
            setup(),
            cs(
                json!({"ops": [{"op": "put", "namespace": "web", "layer": "defaults", "document": big}]}),
            ),
        ],
        // Each job takes the version the one before wrote in the same
        // batch; refused jobs (a missing key, a conflict, a key under a
        // value) lose the copy they took, and the next reads the
        // transaction.
        vec![
            set("k01", json!(1)),
            unset("nope"),
            set("t.b.c", json!(3)),
            conflict.clone(),
            unset("t.a"),
            set("new.deep.key", json!(true)),
            set("k01.x", json!(1)),
            set("k02", json!(2)),
            cs(json!({"ops": [
                {"op": "set", "namespace": "web", "layer": "defaults", "key": "t.z", "value": [1, 2]},
                {"op": "unset", "namespace": "web", "layer": "defaults", "key": "k03"},
                {"op": "set", "namespace": "web", "layer": "defaults", "key": "t.b", "value": "flat"},
            ]})),
        ],
        // The next batch starts from the copy the last one kept.
        vec![set("k04", json!(4)), unset("nope"), set("k04", json!(44))],
        vec![
            conflict,
            cs(json!({"ops": [
                {"op": "set", "namespace": "web", "layer": "defaults", "key": "k06", "value": 6},
                {"op": "put", "namespace": "web", "layer": "defaults", "document": {"only": 1}},
            ]})),
            set("only", json!(2)),
        ],
    ];
    for batch in batches {
        let jobs = batch
            .iter()
            .map(|c| writer::Job::Commit(c.clone(), None, None))
            .collect();
        let results = writer::commit_batch_kept(&mut conn, &mut latest, &limits, jobs);
        for (c, got) in batch.iter().zip(results) {
            let got = got.map(|d| match d {
                writer::Done::Commit(info) => info.revision,
                writer::Done::Journal(_) => panic!("not a commit"),
            });
            let want = memory.commit(c).map(|i| i.revision);
            assert_eq!(
                got.map_err(|e| e.root().to_string()),
                want.map_err(|e| e.root().to_string()),
                "{c:?}"
            );
        }
    }
    let (web, defaults) = ("web".parse().unwrap(), "defaults".parse().unwrap());
    let current = db::current_revision(&conn).unwrap();
    assert_eq!(current, 12);
    for rev in 1..=current {
        let got = db::layer_at(&conn, &web, &defaults, rev).unwrap();
        let want = memory
            .layer(&web, &defaults, rev)
            .unwrap()
            .map(|r| (r.document, r.revision));
        assert_eq!(got, want, "revision {rev}");
    }
    let deltas: i64 = conn
        .query_row(
            "SELECT count(*) FROM layer_versions WHERE base IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        deltas >= 8,
        "the one-key changes were stored as deltas: {deltas}"
    );
}
