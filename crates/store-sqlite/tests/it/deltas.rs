//! Layer versions stored as deltas read exactly like whole documents: for
//! random sequences of puts, sets, unsets, layer deletions and retention,
//! every read at every revision of the SQLite store equals the one of the
//! memory store, which keeps every version whole (the reference model).

use confstrata_core::serde_json::{Map, Value, json};
use confstrata_core::{ChangeSet, MemoryStore, NamespaceName, RetentionPolicy, Store, Timestamp};
use proptest::prelude::*;

use crate::{cs, lp, ns, sqlite};

const LAYERS: [&str; 2] = ["l/a", "l/b"];
const SEGMENTS: [&str; 4] = ["a", "b", "c", "d"];

#[derive(Debug, Clone)]
pub(crate) enum Step {
    Put(usize, Value),
    Set(usize, Vec<usize>, Value),
    Unset(usize, Vec<usize>),
    Delete(usize),
    Retain(usize),
    /// Several sets (`Some`) and unsets (`None`) in one change set.
    Batch(Vec<(usize, Vec<usize>, Option<Value>)>),
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        "[a-z]{0,12}".prop_map(Value::from),
        // Big enough that a few make a layer worth storing as deltas, and
        // that one can outweigh a chain.
        (0usize..4).prop_map(|n| Value::from("x".repeat(n * 200))),
        Just(json!({})),
        Just(json!({"t": [1, 2, {"u": null}]})),
    ]
}

fn path() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..SEGMENTS.len(), 1..=3)
}

fn document() -> impl Strategy<Value = Value> {
    prop::collection::vec((path(), value()), 0..12).prop_map(|entries| {
        let mut doc = Map::new();
        for (p, v) in entries {
            insert(&mut doc, &p, v);
        }
        Value::Object(doc)
    })
}

/// Sets a path in a map, replacing what is in the way.
fn insert(doc: &mut Map<String, Value>, p: &[usize], v: Value) {
    let (last, parents) = p.split_last().unwrap();
    let mut t = doc;
    for s in parents {
        let slot = t.entry(SEGMENTS[*s]).or_insert_with(|| json!({}));
        if !slot.is_object() {
            *slot = json!({});
        }
        t = slot.as_object_mut().unwrap();
    }
    t.insert(SEGMENTS[*last].to_owned(), v);
}

pub(crate) fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => (0..LAYERS.len(), document()).prop_map(|(l, d)| Step::Put(l, d)),
        8 => (0..LAYERS.len(), path(), value()).prop_map(|(l, p, v)| Step::Set(l, p, v)),
        3 => (0..LAYERS.len(), path()).prop_map(|(l, p)| Step::Unset(l, p)),
        1 => (0..LAYERS.len()).prop_map(Step::Delete),
        1 => (1usize..6).prop_map(Step::Retain),
        2 => prop::collection::vec((0..LAYERS.len(), path(), prop::option::of(value())), 2..5)
            .prop_map(Step::Batch),
    ]
}

fn key(p: &[usize]) -> String {
    p.iter().map(|s| SEGMENTS[*s]).collect::<Vec<_>>().join(".")
}

pub(crate) fn change(step: &Step) -> Option<ChangeSet> {
    let op = match step {
        Step::Put(l, d) => {
            json!({"op": "put", "namespace": "p", "layer": LAYERS[*l], "document": d})
        }
        Step::Set(l, p, v) => {
            json!({"op": "set", "namespace": "p", "layer": LAYERS[*l], "key": key(p), "value": v})
        }
        Step::Unset(l, p) => {
            json!({"op": "unset", "namespace": "p", "layer": LAYERS[*l], "key": key(p)})
        }
        Step::Delete(l) => json!({"op": "delete", "namespace": "p", "layer": LAYERS[*l]}),
        Step::Retain(_) => return None,
        Step::Batch(ops) => {
            let ops: Vec<Value> = ops
                .iter()
                .map(|(l, p, v)| match v {
                    Some(v) => json!({"op": "set", "namespace": "p", "layer": LAYERS[*l], "key": key(p), "value": v}),
                    None => json!({"op": "unset", "namespace": "p", "layer": LAYERS[*l], "key": key(p)}),
                })
                .collect();
            return Some(cs(json!({"author": "t", "message": "m", "ops": ops})));
        }
    };
    Some(cs(json!({"author": "t", "message": "m", "ops": [op]})))
}

/// Every read of the namespace at every retained revision.
pub(crate) fn reads(store: &dyn Store) -> Vec<Value> {
    let p: NamespaceName = ns("p");
    let oldest = store.oldest_revision().unwrap();
    let current = store.revision().unwrap();
    let mut out = vec![json!({"oldest": oldest, "current": current})];
    for rev in oldest..=current {
        let mut one = Vec::new();
        for l in LAYERS {
            let layer = store.layer(&p, &lp(l), rev).unwrap();
            let sections: Vec<Value> = SEGMENTS
                .iter()
                .map(|s| json!(store.layer_section(&p, &lp(l), rev, s).unwrap()))
                .collect();
            one.push(json!([layer, sections]));
        }
        out.push(json!({"rev": rev, "layers": store.layers(&p, rev).unwrap(), "one": one}));
    }
    // History is compared as (revision, layer, document): the memory
    // store keeps the same versions.
    let history: Vec<Value> = store
        .history(&p, None, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|v| json!([v.info.revision, v.layer.as_str(), v.document]))
        .collect();
    out.push(json!(history));
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn deltas_read_like_whole_documents(steps in prop::collection::vec(step(), 1..90)) {
        let memory = MemoryStore::new();
        let (_dir, sqlite) = sqlite();
        let declare = cs(json!({"author": "t", "message": "declare", "ops": [
            {"op": "put-namespace", "spec": {"name": "p", "levels": ["l/{x}"], "matrix": {"x": ["a", "b"]}}},
        ]}));
        memory.commit(&declare).unwrap();
        sqlite.commit(&declare).unwrap();
        for step in &steps {
            match change(step) {
                Some(c) => {
                    let (m, s) = (memory.commit(&c), sqlite.commit(&c));
                    prop_assert_eq!(
                        m.as_ref().map(|i| i.revision).map_err(ToString::to_string),
                        s.as_ref().map(|i| i.revision).map_err(ToString::to_string),
                        "{:?}", step
                    );
                }
                None => {
                    let Step::Retain(n) = step else { unreachable!() };
                    let policy = RetentionPolicy { keep_versions: *n, keep_days: 0 };
                    let far = Timestamp(i64::MAX);
                    let (m, s) = (
                        memory.apply_retention(&policy, far).unwrap(),
                        sqlite.apply_retention(&policy, far).unwrap(),
                    );
                    prop_assert_eq!(m.oldest_revision, s.oldest_revision);
                }
            }
        }
        let (m, s) = (reads(&memory), reads(&sqlite));
        prop_assert_eq!(m.len(), s.len());
        for (a, b) in m.iter().zip(&s) {
            prop_assert_eq!(a, b);
        }
    }
}

#[test]
fn a_one_key_change_to_a_large_layer_writes_a_few_bytes() {
    let (dir, store) = sqlite();
    let mut doc = Map::new();
    for i in 0..300 {
        doc.insert(format!("key{i:03}"), Value::from("v".repeat(16)));
    }
    store
        .commit(&cs(json!({"author": "t", "message": "m", "ops": [
            {"op": "put-namespace", "spec": {"name": "p", "levels": ["l/{x}"], "matrix": {"x": ["a"]}}},
            {"op": "put", "namespace": "p", "layer": "l/a", "document": doc},
        ]})))
        .unwrap();
    for i in 0..100 {
        store
            .commit(&cs(json!({"author": "t", "message": "m", "ops": [
                {"op": "set", "namespace": "p", "layer": "l/a", "key": format!("key{:03}", i % 300), "value": i},
            ]})))
            .unwrap();
    }
    let conn = rusqlite::Connection::open(dir.path().join("store.db")).unwrap();
    let (whole, deltas, delta_bytes): (i64, i64, i64) = conn
        .query_row(
            "SELECT sum(base IS NULL), sum(base IS NOT NULL), sum(CASE WHEN base IS NOT NULL THEN length(doc) END) FROM layer_versions",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    // The first version and one whole version per chain of 32 deltas.
    assert_eq!(whole + deltas, 101);
    assert!(whole <= 5, "{whole} whole versions");
    assert!(
        delta_bytes / deltas < 40,
        "{} bytes per delta",
        delta_bytes / deltas
    );
    let layer = store.layer(&ns("p"), &lp("l/a"), 101).unwrap().unwrap();
    assert_eq!(layer.document["key099"], 99);
    assert_eq!(layer.document["key100"], "v".repeat(16));
}

#[test]
fn retention_gives_the_space_back() {
    let (dir, store) = sqlite();
    let big = "x".repeat(4000);
    store
        .commit(&cs(json!({"author": "t", "message": "m", "ops": [
            {"op": "put-namespace", "spec": {"name": "p", "levels": ["l/{x}"], "matrix": {"x": ["a"]}}},
        ]})))
        .unwrap();
    for i in 0..200 {
        // Whole versions each time: every key replaced.
        store
            .commit(&cs(json!({"author": "t", "message": "m", "ops": [
                {"op": "put", "namespace": "p", "layer": "l/a", "document": {"v": format!("{i}{big}")}},
            ]})))
            .unwrap();
    }
    let before = store.storage_size().unwrap().unwrap();
    let report = store
        .apply_retention(
            &RetentionPolicy {
                keep_versions: 1,
                keep_days: 0,
            },
            Timestamp(i64::MAX),
        )
        .unwrap();
    assert_eq!(report.removed_versions, 199);
    let after = store.storage_size().unwrap().unwrap();
    // 199 versions of ~4 KB each: most of it back.
    assert!(report.freed_bytes > 500_000, "{report:?}");
    assert!(
        after.bytes + 500_000 < before.bytes,
        "{before:?} -> {after:?}"
    );
    let conn = rusqlite::Connection::open(dir.path().join("store.db")).unwrap();
    let mode: i64 = conn
        .pragma_query_value(None, "auto_vacuum", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, 2, "incremental");
    let layer = store.layer(&ns("p"), &lp("l/a"), 201).unwrap().unwrap();
    assert_eq!(layer.document["v"], format!("199{big}"));
}

#[test]
fn the_size_limit_holds_when_sets_are_checked_against_a_kept_bound() {
    // The writer keeps a bound on each layer's size and checks a set
    // against it; growing a layer key by key must still stop at the limit,
    // exactly where measuring every time would.
    let dir = tempfile::tempdir().unwrap();
    let limit = 4_000;
    let store = confstrata_store_sqlite::SqliteStore::open_with(
        &dir.path().join("store.db"),
        confstrata_store_sqlite::Options {
            limits: confstrata_core::Limits {
                max_document_bytes: limit,
                ..confstrata_core::Limits::default()
            },
            ..Default::default()
        },
    )
    .unwrap();
    store
        .commit(&cs(json!({"author": "t", "message": "m", "ops": [
            {"op": "put-namespace", "spec": {"name": "p", "levels": ["l/{x}"], "matrix": {"x": ["a"]}}},
        ]})))
        .unwrap();
    let mut refused = None;
    for i in 0..100 {
        let r = store.commit(&cs(json!({"author": "t", "message": "m", "ops": [
            {"op": "set", "namespace": "p", "layer": "l/a", "key": format!("k{i:02}"), "value": "v".repeat(90)},
        ]})));
        if let Err(e) = r {
            assert!(
                matches!(e.root(), confstrata_core::Error::TooLarge { .. }),
                "{e}"
            );
            refused = Some(i);
            break;
        }
        let doc = store
            .layer(&ns("p"), &lp("l/a"), store.revision().unwrap())
            .unwrap()
            .unwrap();
        let size = confstrata_core::serde_json::to_string(&doc.document)
            .unwrap()
            .len();
        assert!(size <= limit, "{size}");
    }
    // Each key adds 98 bytes ("kNN":"v…v",): 40 keys fit in 4,000 bytes, the 41st does not.
    assert_eq!(refused, Some(40));
    // Unsets and a replaced value keep working below the limit.
    store
        .commit(&cs(json!({"author": "t", "message": "m", "ops": [
            {"op": "unset", "namespace": "p", "layer": "l/a", "key": "k00"},
        ]})))
        .unwrap();
    store
        .commit(&cs(json!({"author": "t", "message": "m", "ops": [
            {"op": "set", "namespace": "p", "layer": "l/a", "key": "k40", "value": "v".repeat(90)},
        ]})))
        .unwrap();
}
