//! Bad change sets are turned away by `plan` and leave the SQLite store untouched.

use confstrata_core::serde_json::{Value, json};
use confstrata_core::{ChangeSet, Error, Limits, Store};
use confstrata_store_sqlite::{Options, SqliteStore};

use crate::{cs, ns};

/// Everything a reader sees at the latest revision, and the whole log.
fn contents(store: &SqliteStore) -> String {
    let rev = store.revision().unwrap();
    format!(
        "{rev}\n{:?}\n{:?}\n{:?}",
        store.namespaces(rev),
        store.layers(&ns("web"), rev),
        store.changes_since(0, usize::MAX)
    )
}

fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(1), |inner, _| json!({"k": inner}))
}

fn check(store: &SqliteStore, changes: &ChangeSet, expected: impl Fn(&Error) -> bool) {
    let before = contents(store);
    let e = store.commit(changes).unwrap_err();
    assert!(expected(e.root()), "unexpected error: {e}");
    assert_eq!(contents(store), before, "after {e}");
}

#[test]
fn rejected_change_sets_leave_the_store_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_document_bytes: 1024,
        max_change_set_bytes: 4096,
        max_depth: 8,
    };
    let store = SqliteStore::open_with(
        &dir.path().join("store.db"),
        Options {
            limits,
            max_batch: 8,
        },
    )
    .unwrap();
    store
        .commit(&cs(json!({"ops": [
            {"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults", "env/{env}"], "matrix": {"env": ["dev", "prod"]}}},
            {"op": "put", "namespace": "web", "layer": "defaults", "document": {"a": 1}},
        ]})))
        .unwrap();

    // Each change set first makes a valid write that must not survive the failure.
    let valid_first =
        json!({"op": "set", "namespace": "web", "layer": "env/dev", "key": "ok", "value": 1});
    let oversized = cs(json!({"ops": [valid_first,
        {"op": "put", "namespace": "web", "layer": "defaults", "document": {"big": "x".repeat(2000)}}]}));
    check(&store, &oversized, |e| {
        matches!(e, Error::TooLarge { limit: 1024, .. })
    });
    let too_big_in_total = cs(json!({"ops": (0..6)
        .map(|i| json!({"op": "put", "namespace": "web", "layer": "defaults", "document": {"v": "x".repeat(900 + i)}}))
        .collect::<Vec<_>>()}));
    check(&store, &too_big_in_total, |e| {
        matches!(e, Error::TooLarge { limit: 4096, .. })
    });
    let too_deep = cs(json!({"ops": [valid_first,
        {"op": "set", "namespace": "web", "layer": "defaults", "key": "deep", "value": nested(12)}]}));
    check(&store, &too_deep, |e| {
        matches!(e, Error::TooDeep { limit: 8, .. })
    });
    let unknown_namespace = cs(json!({"ops": [valid_first,
        {"op": "set", "namespace": "nope", "layer": "defaults", "key": "a", "value": 1}]}));
    check(&store, &unknown_namespace, |e| {
        matches!(e, Error::NamespaceNotFound { .. })
    });
    let outside_hierarchy = cs(json!({"ops": [valid_first,
        {"op": "set", "namespace": "web", "layer": "region/eu", "key": "a", "value": 1}]}));
    check(&store, &outside_hierarchy, |e| {
        matches!(e, Error::LayerOutsideHierarchy { .. })
    });
    let outside_matrix = cs(json!({"ops": [valid_first,
        {"op": "set", "namespace": "web", "layer": "env/qa", "key": "a", "value": 1}]}));
    check(&store, &outside_matrix, |e| {
        matches!(e, Error::LayerOutsideHierarchy { .. })
    });
    let bad_spec = cs(
        json!({"ops": [valid_first, {"op": "put-namespace", "spec": {"name": "empty", "levels": []}}]}),
    );
    check(&store, &bad_spec, |e| matches!(e, Error::Invalid { .. }));
    check(&store, &ChangeSet::default(), |e| {
        matches!(e, Error::Invalid { .. })
    });

    // A malformed layer path never becomes a change set at all.
    for path in ["../etc", "a//b", "%2e%2e", ""] {
        let raw = json!({"ops": [{"op": "set", "namespace": "web", "layer": path, "key": "a", "value": 1}]});
        assert!(
            confstrata_core::serde_json::from_value::<ChangeSet>(raw).is_err(),
            "{path:?}"
        );
    }

    // None of the failures consumed a revision.
    let next = store.commit(&cs(json!({"ops": [valid_first]}))).unwrap();
    assert_eq!(next.revision, 2);
}
