//! The sync planner against a real engine (memory store, real sealing):
//! a plan committed and planned again is empty, selected keys end equal,
//! everything else is untouched, and sealed values stay sealed.

use std::sync::Arc;

use confstrata_core::serde_json::{Map, json};
use confstrata_core::{At, ChangeSet, MemoryStore};
use proptest::prelude::*;

use super::*;
use crate::{Caller, Engine, SecurityOptions};

fn engine() -> Engine {
    let options = SecurityOptions::new(confstrata_crypto::MasterKey::generate().unwrap());
    let e = Engine::with_security(Arc::new(MemoryStore::new()), options).unwrap();
    commit(
        &e,
        json!([{"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults", "env/{env}"],
            "matrix": {"env": ["staging", "prod"]}}}]),
    );
    e
}

fn me() -> Caller {
    Caller::local("tester")
}

fn commit(e: &Engine, ops: Value) {
    let cs: ChangeSet =
        confstrata_core::serde_json::from_value(json!({"message": "t", "ops": ops})).unwrap();
    e.commit(&me(), &cs).unwrap();
}

fn ns() -> NamespaceName {
    "web".parse().unwrap()
}

fn layer(name: &str) -> LayerPath {
    name.parse().unwrap()
}

fn read(e: &Engine, name: &str) -> Option<LayerRecord> {
    e.layer(&me(), &ns(), &layer(name), At::Latest).ok()
}

fn plan(e: &Engine, filter: &SyncFilter) -> Result<SyncPlan> {
    let source = read(e, "env/staging")
        .unwrap_or_else(|| LayerRecord::new(ns(), layer("env/staging"), Document::new(), 0));
    plan_layer(
        &source,
        read(e, "env/prod").as_ref(),
        &ns(),
        &layer("env/prod"),
        filter,
    )
}

fn apply(e: &Engine, plan: &SyncPlan) {
    if plan.is_empty() {
        return;
    }
    e.commit(
        &me(),
        &ChangeSet {
            author: String::new(),
            message: "sync".into(),
            ops: plan.ops.clone(),
        },
    )
    .unwrap();
}

fn keys(patterns: &[&str]) -> Vec<KeyPattern> {
    patterns
        .iter()
        .map(|p| KeyPattern::parse(p).unwrap())
        .collect()
}

#[test]
fn promote_copies_seals_and_is_a_no_op_the_second_time() {
    let e = engine();
    commit(
        &e,
        json!([
            {"op": "put", "namespace": "web", "layer": "env/staging", "document": {"db": {"host": "db.staging", "pool": 10}, "debug": false}},
            {"op": "set", "namespace": "web", "layer": "env/staging", "key": "api.signing", "value": "canary-sync-1", "secret": true},
            {"op": "put", "namespace": "web", "layer": "env/prod", "document": {"db": {"host": "db.prod", "pool": 10}, "only_prod": 1}},
        ]),
    );
    let p = plan(&e, &SyncFilter::default()).unwrap();
    let got: Vec<(String, SyncKind, bool)> = p
        .changes
        .iter()
        .map(|c| (c.key.to_string(), c.kind, c.secret))
        .collect();
    assert_eq!(
        got,
        [
            ("api.signing".to_owned(), SyncKind::Added, true),
            ("db.host".to_owned(), SyncKind::Changed, false),
            ("debug".to_owned(), SyncKind::Added, false),
        ]
    );
    // The plan shows no plaintext secret.
    let shown = confstrata_core::serde_json::to_string(&p).unwrap();
    assert!(!shown.contains("canary-sync-1"), "{shown}");
    assert!(p.notes.is_empty());
    apply(&e, &p);
    let prod = read(&e, "env/prod").unwrap();
    assert_eq!(
        Value::Object(prod.document.clone()),
        json!({"api": {"signing": "canary-sync-1"}, "db": {"host": "db.staging", "pool": 10}, "debug": false, "only_prod": 1})
    );
    assert_eq!(prod.sealed_keys, [KeyPath::parse("api.signing").unwrap()]);
    assert!(plan(&e, &SyncFilter::default()).unwrap().is_empty());
}

#[test]
fn a_target_changed_after_the_plan_refuses_the_commit() {
    let e = engine();
    commit(
        &e,
        json!([
            {"op": "put", "namespace": "web", "layer": "env/staging", "document": {"a": 1}},
            {"op": "put", "namespace": "web", "layer": "env/prod", "document": {"a": 2}},
        ]),
    );
    let p = plan(&e, &SyncFilter::default()).unwrap();
    commit(
        &e,
        json!([{"op": "set", "namespace": "web", "layer": "env/prod", "key": "b", "value": 3}]),
    );
    let err = e
        .commit(
            &me(),
            &ChangeSet {
                author: String::new(),
                message: "sync".into(),
                ops: p.ops,
            },
        )
        .unwrap_err();
    assert!(matches!(err.root(), Error::Conflict { .. }), "{err}");
    // A target that did not exist must still not exist.
    let p = plan_layer(
        &read(&e, "env/staging").unwrap(),
        None,
        &ns(),
        &layer("env/dev"),
        &SyncFilter::default(),
    )
    .unwrap();
    assert!(matches!(
        p.ops[0],
        Op::Set {
            expect_revision: Some(0),
            ..
        }
    ));
}

#[test]
fn patterns_and_delete_choose_what_changes() {
    let e = engine();
    commit(
        &e,
        json!([
            {"op": "put", "namespace": "web", "layer": "env/staging", "document": {"db": {"host": "s", "pool": 1}, "log": {"level": "debug"}}},
            {"op": "put", "namespace": "web", "layer": "env/prod", "document": {"db": {"host": "p", "replica": "r"}, "log": {"level": "warn"}}},
        ]),
    );
    let only_db = SyncFilter {
        include: keys(&["db"]),
        exclude: keys(&["db.pool"]),
        ..SyncFilter::default()
    };
    let p = plan(&e, &only_db).unwrap();
    let changed: Vec<String> = p.changes.iter().map(|c| c.key.to_string()).collect();
    assert_eq!(changed, ["db.host"]);
    let with_delete = SyncFilter {
        delete: true,
        ..only_db
    };
    let p = plan(&e, &with_delete).unwrap();
    let changed: Vec<(String, SyncKind)> = p
        .changes
        .iter()
        .map(|c| (c.key.to_string(), c.kind))
        .collect();
    assert_eq!(
        changed,
        [
            ("db.replica".to_owned(), SyncKind::Removed),
            ("db.host".to_owned(), SyncKind::Changed)
        ]
    );
    apply(&e, &p);
    assert_eq!(
        Value::Object(read(&e, "env/prod").unwrap().document),
        json!({"db": {"host": "s"}, "log": {"level": "warn"}})
    );
}

#[test]
fn disagreeing_shapes_are_refused_naming_the_key() {
    let e = engine();
    commit(
        &e,
        json!([
            {"op": "put", "namespace": "web", "layer": "env/staging", "document": {"db": {"pool": {"max": 5}}}},
            {"op": "put", "namespace": "web", "layer": "env/prod", "document": {"db": {"pool": 3}}},
        ]),
    );
    let err = plan(&e, &SyncFilter::default()).unwrap_err();
    assert!(err.to_string().contains("db.pool.max"), "{err}");
    assert!(err.to_string().contains("--delete"), "{err}");
    let p = plan(
        &e,
        &SyncFilter {
            delete: true,
            ..SyncFilter::default()
        },
    )
    .unwrap();
    apply(&e, &p);
    assert!(plan(&e, &SyncFilter::default()).unwrap().is_empty());
    // A scalar in the source over a target table whose keys the patterns
    // leave out.
    commit(
        &e,
        json!([
            {"op": "put", "namespace": "web", "layer": "env/staging", "document": {"tls": "off"}},
            {"op": "put", "namespace": "web", "layer": "env/prod", "document": {"tls": {"cert": "c", "key": "k"}}},
        ]),
    );
    let err = plan(
        &e,
        &SyncFilter {
            exclude: keys(&["tls.key"]),
            delete: true,
            ..SyncFilter::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("tls.key"), "{err}");
    assert!(err.to_string().contains("patterns leave it out"), "{err}");
}

#[test]
fn a_sealed_value_the_reader_cannot_open_is_refused() {
    let e = engine();
    commit(
        &e,
        json!([
            {"op": "set", "namespace": "web", "layer": "env/staging", "key": "db.password", "value": "canary-sync-2"},
        ]),
    );
    let mut source = read(&e, "env/staging").unwrap();
    assert_eq!(source.sealed_keys, [KeyPath::parse("db.password").unwrap()]);
    // As a reader without read-secrets gets it.
    *doc::get_mut(
        &mut source.document,
        &KeyPath::parse("db.password").unwrap(),
    )
    .unwrap() = Value::String(confstrata_crypto::MASK.to_owned());
    let err = plan_layer(
        &source,
        None,
        &ns(),
        &layer("env/prod"),
        &SyncFilter::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    assert!(err.to_string().contains("--exclude db.password"), "{err}");
    // Left out, the rest goes.
    let p = plan_layer(
        &source,
        None,
        &ns(),
        &layer("env/prod"),
        &SyncFilter {
            exclude: keys(&["db.password"]),
            ..SyncFilter::default()
        },
    )
    .unwrap();
    assert!(p.is_empty());
}

#[test]
fn a_value_sealed_only_in_the_source_is_sealed_in_the_target() {
    let e = engine();
    commit(
        &e,
        json!([
            {"op": "set", "namespace": "web", "layer": "env/staging", "key": "hook", "value": "same", "secret": true},
            {"op": "set", "namespace": "web", "layer": "env/prod", "key": "hook", "value": "same"},
            // Sealed only in the target: stays sealed when the value changes.
            {"op": "set", "namespace": "web", "layer": "env/staging", "key": "url", "value": "new"},
            {"op": "set", "namespace": "web", "layer": "env/prod", "key": "url", "value": "old", "secret": true},
        ]),
    );
    let p = plan(&e, &SyncFilter::default()).unwrap();
    let got: Vec<(String, SyncKind, bool)> = p
        .changes
        .iter()
        .map(|c| (c.key.to_string(), c.kind, c.secret))
        .collect();
    assert_eq!(
        got,
        [
            ("hook".to_owned(), SyncKind::Sealed, true),
            ("url".to_owned(), SyncKind::Changed, true)
        ]
    );
    apply(&e, &p);
    let prod = read(&e, "env/prod").unwrap();
    assert_eq!(prod.sealed_keys.len(), 2);
    assert!(plan(&e, &SyncFilter::default()).unwrap().is_empty());
}

/// A small document: keys from a tiny alphabet so the two sides overlap,
/// tables and scalars competing for the same names.
fn document() -> impl Strategy<Value = (Document, Vec<String>)> {
    let leaf = prop_oneof![
        (0i64..3).prop_map(Value::from),
        "[xy]".prop_map(Value::from),
    ];
    let entries = proptest::collection::btree_map(
        "[ab]",
        prop_oneof![
            leaf.clone().prop_map(|v| (v, false)),
            leaf.clone().prop_map(|v| (v, true)),
            proptest::collection::btree_map("[cd]", leaf, 1..3)
                .prop_map(|m| (Value::Object(m.into_iter().collect::<Map<_, _>>()), false)),
        ],
        0..3,
    );
    entries.prop_map(|m| {
        let mut doc = Document::new();
        let mut sealed = Vec::new();
        for (k, (v, secret)) in m {
            if secret {
                sealed.push(k.clone());
            }
            doc.insert(k, v);
        }
        (doc, sealed)
    })
}

fn put(e: &Engine, name: &str, (doc, sealed): &(Document, Vec<String>)) {
    let mut ops = vec![json!({"op": "put", "namespace": "web", "layer": name, "document": {}})];
    for (key, value) in doc::leaves(doc) {
        let secret = sealed.contains(&key.to_string());
        ops.push(json!({"op": "set", "namespace": "web", "layer": name,
            "key": key.to_string(), "value": value, "secret": secret}));
    }
    commit(e, Value::Array(ops));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn applying_a_plan_makes_the_selected_keys_equal_and_touches_nothing_else(
        source in document(),
        target in document(),
        include in proptest::sample::subsequence(vec!["a", "b.c", "*.d"], 0..2),
        exclude in proptest::sample::subsequence(vec!["a.c", "b"], 0..2),
        delete in any::<bool>(),
    ) {
        let e = engine();
        put(&e, "env/staging", &source);
        put(&e, "env/prod", &target);
        let filter = SyncFilter {
            include: keys(&include),
            exclude: keys(&exclude),
            layers: Vec::new(),
            delete,
        };
        let before = read(&e, "env/prod");
        let Ok(p) = plan(&e, &filter) else {
            // Refused (shapes disagree): nothing to check but that it
            // named a key, which the unit tests do.
            return Ok(());
        };
        apply(&e, &p);
        let after = read(&e, "env/prod");
        let after_doc = after.as_ref().map(|r| r.document.clone()).unwrap_or_default();
        let before_doc = before.as_ref().map(|r| r.document.clone()).unwrap_or_default();
        // Every selected source key holds the source's value, sealed if
        // it was sealed there.
        let src = read(&e, "env/staging");
        let src_doc = src.as_ref().map(|r| r.document.clone()).unwrap_or_default();
        for (key, value) in doc::leaves(&src_doc) {
            if filter.selects(&key) {
                prop_assert_eq!(doc::get(&after_doc, &key), Some(value), "{}", key);
                if src.as_ref().is_some_and(|r| r.sealed_keys.contains(&key)) {
                    prop_assert!(after.as_ref().is_some_and(|r| r.sealed_keys.contains(&key)), "{} not sealed", key);
                }
            }
        }
        // Every key the sync may not change is as it was.
        for (key, value) in doc::leaves(&before_doc) {
            let may = filter.selects(&key) && (doc::get(&src_doc, &key).is_some() || delete);
            if !may {
                prop_assert_eq!(doc::get(&after_doc, &key), Some(value), "{}", key);
            }
            // A sealed value still there as a value (not removed with
            // --delete, nor replaced by a table) is still sealed.
            if before.as_ref().is_some_and(|r| r.sealed_keys.contains(&key))
                && doc::get(&after_doc, &key).is_some_and(|v| !is_table(v))
            {
                prop_assert!(after.as_ref().is_some_and(|r| r.sealed_keys.contains(&key)), "{} unsealed", key);
            }
        }
        // With delete, no selected key is left that the source lacks.
        if delete {
            for (key, _) in doc::leaves(&after_doc) {
                if filter.selects(&key) {
                    prop_assert!(doc::get(&src_doc, &key).is_some(), "{} kept", key);
                }
            }
        }
        // And a second plan is empty.
        let again = plan(&e, &filter).unwrap();
        prop_assert!(again.is_empty(), "{:?}", again.changes);
    }
}
