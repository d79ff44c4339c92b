//! Incremental re-resolve: a view rebuilt from its stale predecessor plus
//! the change is the view a full merge gives, document, provenance and
//! layers alike, whatever the layers and the changes (property test); and
//! the changes that qualify are rebuilt rather than merged again.

use std::sync::Arc;

use confstrata_core::serde_json::{Value, json};
use confstrata_core::{At, ChangeSet, Context, MemoryStore, NamespaceName, parse_context};
use confstrata_engine::{Caller, Engine, ResolvedView};
use proptest::prelude::*;

fn cs(v: Value) -> ChangeSet {
    confstrata_core::serde_json::from_value(v).unwrap()
}

const LAYERS: [&str; 3] = ["defaults", "env/prod", "instance/a"];

fn setup(layers: &[Value]) -> (Engine, Caller, NamespaceName, Context) {
    let engine = Engine::new(Arc::new(MemoryStore::new())).unwrap();
    let me = Caller::local("test");
    let mut ops = vec![json!({"op": "put-namespace", "spec": {
        "name": "svc", "levels": ["defaults", "env/{env}", "instance/{id}"]}})];
    for (layer, doc) in LAYERS.iter().zip(layers) {
        if !doc.is_null() {
            ops.push(json!({"op": "put", "namespace": "svc", "layer": layer, "document": doc}));
        }
    }
    engine.commit(&me, &cs(json!({ "ops": ops }))).unwrap();
    let ns = "svc".parse().unwrap();
    let ctx = parse_context("env=prod,id=a").unwrap();
    (engine, me, ns, ctx)
}

/// The latest view (cached, rebuilt or merged) and the view a full merge
/// gives at the same revision (reads at a revision bypass the cache).
fn both(
    engine: &Engine,
    me: &Caller,
    ns: &NamespaceName,
    ctx: &Context,
) -> (ResolvedView, ResolvedView) {
    let latest = engine.resolve(me, ns, ctx, At::Latest).unwrap();
    let merged = engine
        .resolve(me, ns, ctx, At::Revision(latest.revision))
        .unwrap();
    (latest, merged)
}

fn assert_same(latest: &ResolvedView, merged: &ResolvedView, after: &str) {
    assert_eq!(latest.document, merged.document, "document after {after}");
    assert_eq!(
        latest.provenance, merged.provenance,
        "provenance after {after}"
    );
    assert_eq!(latest.layers, merged.layers, "layers after {after}");
}

fn set(layer: &str, key: &str, value: Value) -> Value {
    json!({"op": "set", "namespace": "svc", "layer": layer, "key": key, "value": value})
}

fn unset(layer: &str, key: &str) -> Value {
    json!({"op": "unset", "namespace": "svc", "layer": layer, "key": key})
}

#[test]
fn one_key_changes_are_rebuilt_and_equal_a_full_merge() {
    let (engine, me, ns, ctx) = setup(&[
        json!({"db": {"host": "localhost", "pool": 5}, "log": {"level": "info"}, "tags": [1, 2]}),
        json!({"db": {"host": "db.prod"}, "feature": {"x": true}}),
        json!({"log": {"level": "debug"}}),
    ]);
    let _ = both(&engine, &me, &ns, &ctx);
    let changes = [
        // The winner changes its own value.
        vec![set("env/prod", "db.host", json!("db2.prod"))],
        // A more general layer changes a key a more specific one sets: hidden.
        vec![set("defaults", "log.level", json!("warn"))],
        // A more specific layer takes a key over.
        vec![set("instance/a", "db.pool", json!(50))],
        // Unset under a more specific winner: hidden.
        vec![unset("defaults", "db.pool")],
        // Arrays and sealed values are leaves.
        vec![
            set("env/prod", "tags", json!(["a"])),
            json!({"op": "set", "namespace": "svc", "layer": "instance/a", "key": "log.level",
                   "value": "trace", "secret": true}),
        ],
    ];
    for (i, ops) in changes.iter().enumerate() {
        engine.commit(&me, &cs(json!({ "ops": ops }))).unwrap();
        let (latest, merged) = both(&engine, &me, &ns, &ctx);
        assert_same(&latest, &merged, &format!("change {i}"));
        assert_eq!(
            engine.cache_stats().rebuilt,
            i as u64 + 1,
            "change {i} was rebuilt"
        );
    }
    assert_eq!(merged_value(&engine, &me, &ns, &ctx, "db.pool"), json!(50));
    // Changes that do not qualify are merged again, and still right.
    let fallbacks = [
        vec![set("env/prod", "new.key", json!(1))],
        vec![unset("instance/a", "db.pool")],
        vec![set("env/prod", "db", json!({"host": "h"}))],
        vec![json!({"op": "delete", "namespace": "svc", "layer": "instance/a"})],
    ];
    let rebuilt = engine.cache_stats().rebuilt;
    for (i, ops) in fallbacks.iter().enumerate() {
        engine.commit(&me, &cs(json!({ "ops": ops }))).unwrap();
        let (latest, merged) = both(&engine, &me, &ns, &ctx);
        assert_same(&latest, &merged, &format!("fallback {i}"));
    }
    assert_eq!(
        engine.cache_stats().rebuilt,
        rebuilt,
        "none of those was rebuilt"
    );
}

fn merged_value(
    engine: &Engine,
    me: &Caller,
    ns: &NamespaceName,
    ctx: &Context,
    key: &str,
) -> Value {
    let v = engine.resolve(me, ns, ctx, At::Latest).unwrap();
    let key = confstrata_core::KeyPath::parse(key).unwrap();
    confstrata_core::doc::get(&v.document, &key)
        .cloned()
        .unwrap()
}

#[test]
fn several_commits_between_reads_are_applied_in_order() {
    let (engine, me, ns, ctx) =
        setup(&[json!({"a": 1, "b": {"c": 2}}), Value::Null, json!({"z": 0})]);
    let _ = both(&engine, &me, &ns, &ctx);
    for n in 0..5 {
        engine
            .commit(&me, &cs(json!({"ops": [set("defaults", "a", json!(n)), set("defaults", "b.c", json!(n * 10))]})))
            .unwrap();
    }
    let (latest, merged) = both(&engine, &me, &ns, &ctx);
    assert_same(&latest, &merged, "five commits");
    assert_eq!(latest.document["b"]["c"], json!(40));
    assert_eq!(engine.cache_stats().rebuilt, 1);
}

#[test]
fn turned_off_every_stale_view_is_merged_again() {
    let (engine, me, ns, ctx) = setup(&[json!({"a": 1}), Value::Null, Value::Null]);
    engine.set_incremental(false);
    let _ = both(&engine, &me, &ns, &ctx);
    engine
        .commit(&me, &cs(json!({"ops": [set("defaults", "a", json!(2))]})))
        .unwrap();
    let (latest, merged) = both(&engine, &me, &ns, &ctx);
    assert_same(&latest, &merged, "a set");
    assert_eq!(engine.cache_stats().rebuilt, 0);
}

fn key() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "c.d", "e"]), 1..3)
        .prop_map(|s| s.join("."))
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i8>().prop_map(|n| json!(n)),
        prop::sample::select(vec!["x", "y", "é\"\\"]).prop_map(|s| json!(s)),
        Just(json!([1, "two"])),
        Just(json!({})),
        Just(json!({"$ref": "other"})),
        Just(json!({"$delete": true})),
        Just(json!({"a": 1, "e": {"b": false}})),
    ]
}

fn document() -> impl Strategy<Value = Value> {
    prop::collection::vec((key(), value()), 0..6).prop_map(|entries| {
        let mut doc = confstrata_core::Document::new();
        for (k, v) in entries {
            let k = confstrata_core::KeyPath::parse(&k).unwrap();
            let _ = confstrata_core::doc::set(&mut doc, &k, v);
        }
        Value::Object(doc)
    })
}

fn op() -> impl Strategy<Value = Value> {
    (0..3usize, key(), prop::option::of(value()), any::<bool>()).prop_map(|(l, k, v, secret)| {
        match v {
            Some(v) => json!({"op": "set", "namespace": "svc", "layer": LAYERS[l], "key": k,
                          "value": v, "secret": secret && v.is_string()}),
            None => unset(LAYERS[l], &k),
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn a_rebuilt_view_is_the_merged_view(
        layers in prop::collection::vec(prop_oneof![Just(Value::Null), document()], 3),
        commits in prop::collection::vec((prop::collection::vec(op(), 1..4), any::<bool>()), 1..10),
    ) {
        let (engine, me, ns, ctx) = setup(&layers);
        let _ = both(&engine, &me, &ns, &ctx);
        for (i, (ops, read)) in commits.iter().enumerate() {
            // Refused change sets (unset of a missing key, ...) change nothing.
            let _ = engine.commit(&me, &cs(json!({ "ops": ops })));
            if *read {
                let (latest, merged) = both(&engine, &me, &ns, &ctx);
                assert_same(&latest, &merged, &format!("commit {i}: {ops:?}"));
            }
        }
        let (latest, merged) = both(&engine, &me, &ns, &ctx);
        assert_same(&latest, &merged, "the last commit");
    }
}

#[test]
fn refresh_view_rebuilds_or_merges_without_answering() {
    let (engine, me, ns, ctx) = setup(&[json!({"a": 1}), Value::Null, Value::Null]);
    let first = engine.refresh_view(&me, &ns, &ctx).unwrap();
    assert_eq!(first, engine.revision().unwrap());
    assert_eq!(engine.cache_stats().entries, 1, "merged and kept");
    engine
        .commit(&me, &cs(json!({"ops": [set("defaults", "a", json!(2))]})))
        .unwrap();
    let second = engine.refresh_view(&me, &ns, &ctx).unwrap();
    assert_eq!(second, first + 1);
    let s = engine.cache_stats();
    assert_eq!((s.rebuilt, s.entries), (1, 1));
    let hits = s.hits;
    assert_eq!(
        engine.resolve(&me, &ns, &ctx, At::Latest).unwrap().document["a"],
        json!(2)
    );
    assert_eq!(
        engine.cache_stats().hits,
        hits + 1,
        "the refreshed view answers"
    );
    // A caller with no grant on the namespace is refused.
    engine
        .add_principal(
            &me,
            "nora",
            "nora",
            confstrata_engine::PrincipalKind::User,
            &[],
        )
        .unwrap();
    let token = engine.issue_token(&me, "nora", "t").unwrap();
    let nora = engine
        .authenticate(Some(&format!("Bearer {}", token.expose_secret())), "r")
        .unwrap();
    let refused = engine.refresh_view(&nora, &ns, &ctx).unwrap_err();
    assert!(refused.to_string().contains("nora"), "{refused}");
}
