//! The `Store` contract, checked against both `MemoryStore` and `SqliteStore`,
//! and a direct comparison of the two on the same change sets.

use confstrata_core::serde_json::{Value, json};
use confstrata_core::{
    At, Change, ChangeSet, Error, LayerVersion, MemoryStore, RetentionPolicy, RevisionInfo, Store,
    Timestamp,
};

use crate::{cs, lp, ns, sqlite};

/// Runs a check against a fresh `MemoryStore` and a fresh `SqliteStore`.
fn both(check: impl Fn(&dyn Store)) {
    check(&MemoryStore::new());
    let (_dir, store) = sqlite();
    check(&store);
}

fn setup() -> ChangeSet {
    cs(json!({"author": "ana", "message": "init", "ops": [
        {"op": "put-namespace", "spec": {
            "name": "web",
            "levels": ["defaults", "env/{env}", "env/{env}/region/{region}"],
            "matrix": {"env": ["dev", "prod"]},
        }},
        {"op": "put", "namespace": "web", "layer": "defaults", "document": {"n": 1}},
    ]}))
}

fn set(layer: &str, key: &str, value: Value) -> ChangeSet {
    cs(
        json!({"author": "bo", "message": format!("set {layer} {key}"), "ops": [
            {"op": "set", "namespace": "web", "layer": layer, "key": key, "value": value},
        ]}),
    )
}

fn commit(store: &dyn Store, changes: &ChangeSet) -> u64 {
    store.commit(changes).unwrap().revision
}

/// A layer's document and revision at a revision.
fn read(store: &dyn Store, layer: &str, rev: u64) -> Option<(Value, u64)> {
    store
        .layer(&ns("web"), &lp(layer), rev)
        .unwrap()
        .map(|l| (Value::Object(l.document), l.revision))
}

fn strip_info(mut info: RevisionInfo) -> RevisionInfo {
    info.time = Timestamp(0);
    info
}

fn strip_history(versions: Vec<LayerVersion>) -> Vec<LayerVersion> {
    versions
        .into_iter()
        .map(|mut v| {
            v.info = strip_info(v.info);
            v
        })
        .collect()
}

fn strip_changes(changes: Vec<Change>) -> Vec<Change> {
    changes
        .into_iter()
        .map(|mut c| {
            c.info = strip_info(c.info);
            c
        })
        .collect()
}

#[test]
fn commit_then_read_at_every_revision() {
    both(|store| {
        assert_eq!(store.revision().unwrap(), 0);
        assert_eq!(store.namespaces(0).unwrap(), []);
        assert_eq!(store.layers(&ns("web"), 0).unwrap(), []);
        let r1 = store.commit(&setup()).unwrap();
        let r2 = store.commit(&set("defaults", "n", json!(2))).unwrap();
        let r3 = store
            .commit(&set("env/prod", "db.pool", json!(50)))
            .unwrap();
        assert_eq!([r1.revision, r2.revision, r3.revision], [1, 2, 3]);
        assert!(r1.time <= r2.time && r2.time <= r3.time);

        assert_eq!(read(store, "defaults", 1), Some((json!({"n": 1}), 1)));
        assert_eq!(read(store, "defaults", 2), Some((json!({"n": 2}), 2)));
        assert_eq!(read(store, "defaults", 3), Some((json!({"n": 2}), 2)));
        assert_eq!(read(store, "env/prod", 2), None);
        assert_eq!(
            read(store, "env/prod", 3),
            Some((json!({"db": {"pool": 50}}), 3))
        );
        let paths = |rev| -> Vec<(String, u64)> {
            store
                .layers(&ns("web"), rev)
                .unwrap()
                .into_iter()
                .map(|l| (l.layer.to_string(), l.revision))
                .collect()
        };
        assert_eq!(paths(2), [("defaults".to_owned(), 2)]);
        assert_eq!(
            paths(3),
            [("defaults".to_owned(), 2), ("env/prod".to_owned(), 3)]
        );

        assert!(store.namespace(&ns("web"), 0).unwrap().is_none());
        let web = store.namespace(&ns("web"), 3).unwrap().unwrap();
        assert_eq!((web.spec.name.as_str(), web.revision), ("web", 1));
        assert_eq!(store.namespaces(3).unwrap(), [web]);

        let info = store.revision_info(2).unwrap().unwrap();
        assert_eq!((info.revision, info.time), (2, r2.time));
        assert_eq!(
            (info.author.as_str(), info.message.as_str()),
            ("bo", "set defaults n")
        );
        assert_eq!(store.revision_info(4).unwrap(), None);

        assert_eq!(store.revision_at(At::Latest).unwrap(), 3);
        assert_eq!(store.revision_at(At::Revision(2)).unwrap(), 2);
        assert_eq!(
            store.revision_for_time(Timestamp(r1.time.0 - 1)).unwrap(),
            0
        );
        for r in [r1, r2, r3] {
            // The newest revision committed at or before the time: several can share a millisecond.
            let found = store.revision_at(At::Time(r.time)).unwrap();
            assert!(found >= r.revision, "{found} < {}", r.revision);
            assert_eq!(store.revision_info(found).unwrap().unwrap().time, r.time);
        }
        assert_eq!(store.revision_for_time(Timestamp(i64::MAX)).unwrap(), 3);
    });
}

#[test]
fn reads_outside_the_readable_range_fail() {
    both(|store| {
        commit(store, &setup());
        let future = Error::FutureRevision {
            requested: 2,
            current: 1,
        };
        assert_eq!(
            store.layer(&ns("web"), &lp("defaults"), 2).unwrap_err(),
            future
        );
        assert_eq!(store.layers(&ns("web"), 2).unwrap_err(), future);
        assert_eq!(store.namespace(&ns("web"), 2).unwrap_err(), future);
        assert_eq!(store.namespaces(2).unwrap_err(), future);
        assert_eq!(store.revision_at(At::Revision(2)).unwrap_err(), future);
    });
}

#[test]
fn history_is_newest_first() {
    both(|store| {
        commit(store, &setup());
        commit(
            store,
            &cs(json!({"ops": [
                {"op": "set", "namespace": "web", "layer": "env/prod", "key": "a", "value": 1},
                {"op": "set", "namespace": "web", "layer": "defaults", "key": "n", "value": 2},
            ]})),
        );
        commit(store, &set("env/dev", "a", json!(1)));
        commit(
            store,
            &cs(json!({"ops": [{"op": "delete", "namespace": "web", "layer": "env/prod"}]})),
        );

        let all: Vec<(u64, String, Option<Value>)> = store
            .history(&ns("web"), None, 100)
            .unwrap()
            .into_iter()
            .map(|v| {
                (
                    v.info.revision,
                    v.layer.to_string(),
                    v.document.map(Value::Object),
                )
            })
            .collect();
        assert_eq!(
            all,
            [
                (4, "env/prod".to_owned(), None),
                (3, "env/dev".to_owned(), Some(json!({"a": 1}))),
                (2, "defaults".to_owned(), Some(json!({"n": 2}))),
                (2, "env/prod".to_owned(), Some(json!({"a": 1}))),
                (1, "defaults".to_owned(), Some(json!({"n": 1}))),
            ]
        );
        let one: Vec<u64> = store
            .history(&ns("web"), Some(&lp("defaults")), 1)
            .unwrap()
            .into_iter()
            .map(|v| v.info.revision)
            .collect();
        assert_eq!(one, [2]);
        let first = &store.history(&ns("web"), None, 1).unwrap()[0];
        assert_eq!(first.info.author, "");
        assert!(store.history(&ns("other"), None, 10).unwrap().is_empty());
        assert!(store.history(&ns("web"), None, 0).unwrap().is_empty());
    });
}

/// A change item as (namespace, layer, deleted).
type Item = (String, Option<String>, bool);

#[test]
fn changes_since_lists_what_each_revision_wrote() {
    both(|store| {
        commit(store, &setup());
        commit(
            store,
            &cs(json!({"ops": [
                {"op": "set", "namespace": "web", "layer": "env/prod", "key": "a", "value": 1},
                {"op": "delete", "namespace": "web", "layer": "defaults"},
            ]})),
        );
        let changes = store.changes_since(0, 100).unwrap();
        let summary: Vec<(u64, Vec<Item>)> = changes
            .iter()
            .map(|c| {
                let items = c
                    .items
                    .iter()
                    .map(|i| {
                        (
                            i.namespace.to_string(),
                            i.layer.as_ref().map(ToString::to_string),
                            i.deleted,
                        )
                    })
                    .collect();
                (c.info.revision, items)
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    1,
                    vec![
                        ("web".to_owned(), None, false),
                        ("web".to_owned(), Some("defaults".to_owned()), false)
                    ]
                ),
                (
                    2,
                    vec![
                        ("web".to_owned(), Some("defaults".to_owned()), true),
                        ("web".to_owned(), Some("env/prod".to_owned()), false),
                    ]
                ),
            ]
        );
        assert_eq!(changes[0].info.author, "ana");
        assert_eq!(store.changes_since(0, 1).unwrap().len(), 1);
        assert_eq!(store.changes_since(1, 100).unwrap()[0].info.revision, 2);
        assert!(store.changes_since(2, 100).unwrap().is_empty());
        assert!(store.changes_since(99, 100).unwrap().is_empty());
        assert!(store.changes_since(u64::MAX, 100).unwrap().is_empty());
        assert_eq!(store.revision_info(u64::MAX).unwrap(), None);
        assert_eq!(store.revision_info(0).unwrap(), None);
    });
}

#[test]
fn a_conflict_reports_the_current_revision_and_changes_nothing() {
    both(|store| {
        commit(store, &setup());
        commit(store, &set("defaults", "n", json!(2)));
        let before = store.changes_since(0, 100).unwrap();
        let e = store
            .commit(&cs(json!({"ops": [
                {"op": "set", "namespace": "web", "layer": "env/prod", "key": "a", "value": 1},
                {"op": "set", "namespace": "web", "layer": "defaults", "key": "n", "value": 3, "expect_revision": 1},
            ]})))
            .unwrap_err();
        assert_eq!(
            e.root(),
            &Error::Conflict {
                target: "layer web:defaults".into(),
                expected: 1,
                actual: 2,
                current_revision: 2
            }
        );
        // expect_revision 0: "must not exist".
        let e = store
            .commit(&cs(json!({"ops": [
                {"op": "set", "namespace": "web", "layer": "defaults", "key": "n", "value": 3, "expect_revision": 0},
            ]})))
            .unwrap_err();
        assert!(
            matches!(
                e.root(),
                Error::Conflict {
                    expected: 0,
                    actual: 2,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(store.revision().unwrap(), 2);
        assert_eq!(store.changes_since(0, 100).unwrap(), before);
        assert_eq!(read(store, "env/prod", 2), None);
        // No revision was consumed; the right expectations succeed.
        let ok = cs(json!({"ops": [
            {"op": "set", "namespace": "web", "layer": "defaults", "key": "n", "value": 3, "expect_revision": 2},
            {"op": "set", "namespace": "web", "layer": "env/prod", "key": "a", "value": 1, "expect_revision": 0},
        ]}));
        assert_eq!(commit(store, &ok), 3);
    });
}

#[test]
fn deleting_a_layer_keeps_its_past() {
    both(|store| {
        commit(store, &setup());
        commit(store, &set("env/prod", "a", json!(1)));
        let delete =
            cs(json!({"ops": [{"op": "delete", "namespace": "web", "layer": "env/prod"}]}));
        assert_eq!(commit(store, &delete), 3);
        assert_eq!(read(store, "env/prod", 3), None);
        assert_eq!(read(store, "env/prod", 2), Some((json!({"a": 1}), 2)));
        assert_eq!(store.layers(&ns("web"), 3).unwrap().len(), 1);
        let e = store.commit(&delete).unwrap_err();
        assert!(matches!(e.root(), Error::LayerNotFound { .. }), "{e}");
        assert_eq!(store.revision().unwrap(), 3);
        // Created and deleted within one change set: never existed, nothing written.
        let transient = cs(json!({"ops": [
            {"op": "set", "namespace": "web", "layer": "env/dev", "key": "a", "value": 1},
            {"op": "delete", "namespace": "web", "layer": "env/dev"},
            {"op": "set", "namespace": "web", "layer": "defaults", "key": "n", "value": 2},
        ]}));
        assert_eq!(commit(store, &transient), 4);
        assert_eq!(store.changes_since(3, 10).unwrap()[0].items.len(), 1);
        assert_eq!(commit(store, &set("env/prod", "b", json!(2))), 5);
        assert_eq!(read(store, "env/prod", 5), Some((json!({"b": 2}), 5)));
        let revs: Vec<(u64, bool)> = store
            .history(&ns("web"), Some(&lp("env/prod")), 10)
            .unwrap()
            .into_iter()
            .map(|v| (v.info.revision, v.document.is_none()))
            .collect();
        assert_eq!(revs, [(5, false), (3, true), (2, false)]);
    });
}

/// Every commit touches every object, so each has a version at every revision.
fn touch_everything(store: &dyn Store, n: u64) -> u64 {
    let spec =
        json!({"name": "web", "levels": ["defaults", "env/{env}"], "description": format!("v{n}")});
    commit(
        store,
        &cs(json!({"ops": [
            {"op": "put-namespace", "spec": spec},
            {"op": "set", "namespace": "web", "layer": "defaults", "key": "n", "value": n},
            {"op": "set", "namespace": "web", "layer": "env/prod", "key": "n", "value": n},
        ]})),
    )
}

#[test]
fn retention_keeps_n_versions_and_exact_reads_above_the_floor() {
    both(|store| {
        for n in 1..=8 {
            assert_eq!(touch_everything(store, n), n);
        }
        let before: Vec<_> = (6..=8)
            .map(|r| {
                (
                    store.layers(&ns("web"), r).unwrap(),
                    store.namespaces(r).unwrap(),
                )
            })
            .collect();
        let far_future = Timestamp(i64::MAX);
        let policy = RetentionPolicy {
            keep_versions: 3,
            keep_days: 0,
        };
        let report = store.apply_retention(&policy, far_future).unwrap();
        assert_eq!(report.oldest_revision, 6);
        assert_eq!(report.removed_versions, 3 * 5);
        assert_eq!(store.oldest_revision().unwrap(), 6);
        let after: Vec<_> = (6..=8)
            .map(|r| {
                (
                    store.layers(&ns("web"), r).unwrap(),
                    store.namespaces(r).unwrap(),
                )
            })
            .collect();
        assert_eq!(after, before);
        let kept: Vec<u64> = store
            .history(&ns("web"), Some(&lp("defaults")), 100)
            .unwrap()
            .into_iter()
            .map(|v| v.info.revision)
            .collect();
        assert_eq!(kept, [8, 7, 6]);

        let compacted = Error::Compacted {
            requested: 5,
            oldest: 6,
        };
        assert_eq!(
            store.layer(&ns("web"), &lp("defaults"), 5).unwrap_err(),
            compacted
        );
        assert_eq!(store.layers(&ns("web"), 5).unwrap_err(), compacted);
        assert_eq!(store.namespace(&ns("web"), 5).unwrap_err(), compacted);
        assert_eq!(store.namespaces(5).unwrap_err(), compacted);
        assert_eq!(store.revision_at(At::Revision(5)).unwrap_err(), compacted);
        assert_eq!(store.revision_info(5).unwrap(), None);
        assert_eq!(
            store.changes_since(4, 10).unwrap_err(),
            Error::Compacted {
                requested: 4,
                oldest: 6
            }
        );
        assert_eq!(store.changes_since(5, 10).unwrap().len(), 3);

        // Again: nothing more to drop; and the floor never moves back.
        let again = store.apply_retention(&policy, far_future).unwrap();
        assert_eq!((again.oldest_revision, again.removed_versions), (6, 0));
        let generous = RetentionPolicy {
            keep_versions: 100,
            keep_days: 100,
        };
        assert_eq!(
            store
                .apply_retention(&generous, Timestamp::now())
                .unwrap()
                .oldest_revision,
            6
        );
        // Commits continue after the floor.
        assert_eq!(touch_everything(store, 9), 9);
    });
}

#[test]
fn retention_drops_deleted_layers_and_respects_days() {
    both(|store| {
        commit(store, &setup()); // 1
        commit(store, &set("env/dev", "x", json!(1))); // 2
        commit(
            store,
            &cs(json!({"ops": [{"op": "delete", "namespace": "web", "layer": "env/dev"}]})),
        ); // 3
        for n in 4..=6 {
            commit(store, &set("defaults", "n", json!(n)));
        }
        // Young history is kept whatever the version count.
        let keep_days = RetentionPolicy {
            keep_versions: 1,
            keep_days: 1,
        };
        let report = store.apply_retention(&keep_days, Timestamp::now()).unwrap();
        assert_eq!((report.oldest_revision, report.removed_versions), (1, 0));

        // keep 2: defaults [1,4,5,6] keeps 5 and 6, so the floor stays below 6;
        // env/dev [2,3] keeps both, so the floor stays below 3. Nothing is removed.
        let in_two_days = Timestamp(Timestamp::now().0 + 2 * 86_400_000);
        let keep_two = RetentionPolicy {
            keep_versions: 2,
            keep_days: 0,
        };
        let report = store.apply_retention(&keep_two, in_two_days).unwrap();
        assert_eq!((report.oldest_revision, report.removed_versions), (2, 0));
        assert_eq!(read(store, "env/dev", 2), Some((json!({"x": 1}), 2)));
        assert_eq!(read(store, "defaults", 2), Some((json!({"n": 1}), 1)));

        // keep 1: the newest version of every object is all that must stay.
        // The namespace, declared once, bounds nothing.
        let keep_one = RetentionPolicy {
            keep_versions: 1,
            keep_days: 0,
        };
        let report = store.apply_retention(&keep_one, in_two_days).unwrap();
        assert_eq!(report.oldest_revision, 6);
        // defaults at 1, 4 and 5; env/dev's version and its deletion.
        assert_eq!(report.removed_versions, 5);
        assert!(
            store
                .history(&ns("web"), Some(&lp("env/dev")), 10)
                .unwrap()
                .is_empty()
        );
        assert_eq!(read(store, "env/dev", 6), None);
        assert_eq!(read(store, "defaults", 6), Some((json!({"n": 6}), 6)));
        assert!(matches!(
            store.layer(&ns("web"), &lp("defaults"), 5),
            Err(confstrata_core::Error::Compacted {
                requested: 5,
                oldest: 6
            })
        ));
        // The namespace's only version, written at 1, is still read at 6.
        assert_eq!(store.namespace(&ns("web"), 6).unwrap().unwrap().revision, 1);
        let at6 = &store.changes_since(5, 1).unwrap()[0];
        assert_eq!((at6.info.revision, at6.items.len()), (6, 1));
    });
}

/// Everything a reader can observe of a store, with commit times left out.
fn observe(store: &dyn Store) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let current = store.revision().unwrap();
    out.push(("revision".to_owned(), format!("{current}")));
    out.push((
        "oldest".to_owned(),
        format!("{:?}", store.oldest_revision()),
    ));
    for rev in 0..=current + 1 {
        out.push((
            format!("namespaces@{rev}"),
            format!("{:?}", store.namespaces(rev)),
        ));
        out.push((
            format!("info@{rev}"),
            format!("{:?}", store.revision_info(rev).map(|i| i.map(strip_info))),
        ));
        for name in ["web", "shared/logging", "missing"] {
            out.push((
                format!("namespace {name}@{rev}"),
                format!("{:?}", store.namespace(&ns(name), rev)),
            ));
            out.push((
                format!("layers {name}@{rev}"),
                format!("{:?}", store.layers(&ns(name), rev)),
            ));
            for layer in ["defaults", "env/dev", "env/prod", "env/prod/region/eu"] {
                let got = store.layer(&ns(name), &lp(layer), rev);
                out.push((format!("layer {name}:{layer}@{rev}"), format!("{got:?}")));
            }
        }
        let changes = store.changes_since(rev, usize::MAX).map(strip_changes);
        out.push((format!("changes_since {rev}"), format!("{changes:?}")));
        let one = store.changes_since(rev, 1).map(strip_changes);
        out.push((format!("changes_since {rev} limit 1"), format!("{one:?}")));
    }
    for name in ["web", "shared/logging"] {
        let all = store
            .history(&ns(name), None, usize::MAX)
            .map(strip_history);
        out.push((format!("history {name}"), format!("{all:?}")));
        let some = store
            .history(&ns(name), Some(&lp("defaults")), 2)
            .map(strip_history);
        out.push((format!("history {name}:defaults 2"), format!("{some:?}")));
    }
    out
}

/// The same script of change sets and retention runs, observed after every step.
fn script(store: &dyn Store) -> Vec<(String, String)> {
    let logging = json!({"name": "shared/logging", "levels": ["defaults", "env/{env}"]});
    let steps = vec![
        setup(),
        set("env/prod", "db.pool", json!(50)),
        cs(json!({"ops": [
            {"op": "put-namespace", "spec": logging},
            {"op": "put", "namespace": "shared/logging", "layer": "defaults", "document": {"level": "info"}},
            {"op": "set", "namespace": "web", "layer": "env/dev", "key": "debug", "value": true},
        ]})),
        cs(
            json!({"ops": [{"op": "unset", "namespace": "web", "layer": "env/prod", "key": "db.pool"}]}),
        ),
        cs(json!({"ops": [{"op": "delete", "namespace": "web", "layer": "env/dev"}]})),
        // Fails: env/dev no longer exists.
        cs(
            json!({"ops": [{"op": "unset", "namespace": "web", "layer": "env/dev", "key": "debug"}]}),
        ),
        // Fails: a conflict.
        cs(json!({"ops": [
            {"op": "set", "namespace": "web", "layer": "defaults", "key": "x", "value": 1, "expect_revision": 2},
        ]})),
        set("env/dev", "debug", json!(false)),
        set("env/prod/region/eu", "a.b.c", json!([1, 2.5, "x", null])),
        cs(json!({"ops": [
            {"op": "put-namespace", "spec": {"name": "web", "description": "d",
                "levels": ["defaults", "env/{env}", "env/{env}/region/{region}"], "matrix": {"env": ["dev", "prod"]}}},
            {"op": "put", "namespace": "web", "layer": "defaults", "document": {"n": 2, "nested": {"$delete": true}}},
        ]})),
        cs(json!({"ops": [{"op": "delete", "namespace": "web", "layer": "env/prod/region/eu"}]})),
        set("defaults", "n", json!(3)),
        cs(json!({"ops": [{"op": "delete", "namespace": "shared/logging", "layer": "defaults"}]})),
    ];
    let mut out = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let result = store.commit(step).map(|info| info.revision);
        out.push((format!("commit {i}"), format!("{result:?}")));
    }
    out.extend(observe(store));
    let far_future = Timestamp(i64::MAX);
    for keep_versions in [5, 2, 1] {
        let policy = RetentionPolicy {
            keep_versions,
            keep_days: 0,
        };
        out.push((
            format!("retention {keep_versions}"),
            format!("{:?}", store.apply_retention(&policy, far_future)),
        ));
        out.extend(observe(store));
        let result = store
            .commit(&set("defaults", "k", json!(keep_versions)))
            .map(|info| info.revision);
        out.push((
            format!("commit after retention {keep_versions}"),
            format!("{result:?}"),
        ));
        let spec = json!({"name": "shared/logging", "levels": ["defaults"], "description": format!("{keep_versions}")});
        let result = store
            .commit(&cs(json!({"ops": [{"op": "put-namespace", "spec": spec}]})))
            .map(|i| i.revision);
        out.push((
            format!("put namespace after retention {keep_versions}"),
            format!("{result:?}"),
        ));
    }
    out.extend(observe(store));
    out
}

#[test]
fn memory_and_sqlite_agree_on_the_same_change_sets() {
    let memory = script(&MemoryStore::new());
    let (_dir, sqlite) = sqlite();
    let durable = script(&sqlite);
    assert_eq!(memory.len(), durable.len());
    for ((label, m), (label2, d)) in memory.iter().zip(&durable) {
        assert_eq!(label, label2);
        assert_eq!(m, d, "memory and SQLite differ at {label}");
    }
    // The script really compacted something.
    assert!(
        durable.iter().any(|(l, v)| l == "oldest" && v != "Ok(0)"),
        "retention never advanced the floor"
    );
}

#[test]
fn a_namespace_is_deleted_with_its_layers_and_not_while_imported() {
    both(|store| {
        commit(store, &setup());
        commit(store, &set("env/prod", "a", json!(1)));
        commit(
            store,
            &cs(
                json!({"ops": [{"op": "put-namespace", "spec": {"name": "api", "levels": ["defaults"], "imports": ["web"]}}]}),
            ),
        );
        let before = store.revision().unwrap();
        let refused = store
            .commit(&cs(
                json!({"ops": [{"op": "delete-namespace", "namespace": "web"}]}),
            ))
            .unwrap_err();
        assert!(
            refused.to_string().contains("namespace api imports it"),
            "{refused}"
        );
        assert_eq!(store.revision().unwrap(), before);
        let rev = commit(
            store,
            &cs(json!({"ops": [
                {"op": "delete-namespace", "namespace": "api"},
                {"op": "delete-namespace", "namespace": "web"},
            ]})),
        );
        assert!(store.namespace(&ns("web"), rev).unwrap().is_none());
        assert!(store.namespaces(rev).unwrap().is_empty());
        assert!(store.layers(&ns("web"), rev).unwrap().is_empty());
        assert_eq!(read(store, "env/prod", rev), None);
        // History stays, and the namespace can be declared again, empty.
        assert_eq!(read(store, "env/prod", rev - 1), Some((json!({"a": 1}), 2)));
        let again = commit(store, &setup());
        assert_eq!(read(store, "env/prod", again), None);
        assert_eq!(
            read(store, "defaults", again),
            Some((json!({"n": 1}), again))
        );
        let items: Vec<(String, Option<String>, bool)> = store
            .changes_since(rev - 1, 1)
            .unwrap()
            .remove(0)
            .items
            .into_iter()
            .map(|i| {
                (
                    i.namespace.to_string(),
                    i.layer.map(|l| l.to_string()),
                    i.deleted,
                )
            })
            .collect();
        assert_eq!(
            items,
            [
                ("api".into(), None, true),
                ("web".into(), None, true),
                ("web".into(), Some("defaults".into()), true),
                ("web".into(), Some("env/prod".into()), true),
            ]
        );
    });
}
