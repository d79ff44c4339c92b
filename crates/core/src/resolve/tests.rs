use serde_json::json;

use super::*;

fn layer(v: Value) -> Document {
    v.as_object().unwrap().clone()
}

struct Fixture {
    paths: Vec<LayerPath>,
    docs: Vec<Document>,
}

impl Fixture {
    fn new(layers: Vec<(&str, Value)>) -> Self {
        Fixture {
            paths: layers
                .iter()
                .map(|(p, _)| LayerPath::parse(p).unwrap())
                .collect(),
            docs: layers.into_iter().map(|(_, d)| layer(d)).collect(),
        }
    }
    fn inputs(&self) -> Vec<LayerInput<'_>> {
        self.paths
            .iter()
            .zip(&self.docs)
            .enumerate()
            .map(|(i, (p, d))| LayerInput {
                namespace: None,
                layer: p,
                revision: i as u64 + 1,
                document: d,
            })
            .collect()
    }
}

fn check(layers: Vec<(&str, Value)>, expected: Value) {
    let f = Fixture::new(layers);
    assert_eq!(resolve(&f.inputs()).to_value(), expected);
}

#[test]
fn tables_merge_scalars_and_arrays_replace() {
    check(
        vec![
            (
                "defaults",
                json!({"db": {"host": "localhost", "pool": {"min": 1, "max": 5}}, "tags": [1, 2]}),
            ),
            (
                "env/prod",
                json!({"db": {"pool": {"max": 50}}, "tags": [3]}),
            ),
        ],
        json!({"db": {"host": "localhost", "pool": {"min": 1, "max": 50}}, "tags": [3]}),
    );
    // A table replaces a scalar and a scalar replaces a table.
    check(
        vec![
            ("a", json!({"x": 1, "y": {"z": 1}})),
            ("b", json!({"x": {"k": 1}, "y": 2})),
        ],
        json!({"x": {"k": 1}, "y": 2}),
    );
}

#[test]
fn delete_marker_removes_keys() {
    check(
        vec![
            (
                "a",
                json!({"db": {"host": "h", "debug": true}, "gone": {"x": 1}}),
            ),
            (
                "b",
                json!({"db": {"debug": {"$delete": true}}, "gone": {"$delete": true}}),
            ),
        ],
        json!({"db": {"host": "h"}}),
    );
    // A marker in the first layer deletes nothing and never shows.
    check(
        vec![(
            "a",
            json!({"x": {"$delete": true}, "t": {"y": {"$delete": true}, "z": 1}}),
        )],
        json!({"t": {"z": 1}}),
    );
}

#[test]
fn provenance_names_the_winning_layer() {
    let f = Fixture::new(vec![
        (
            "defaults",
            json!({"db": {"host": "localhost", "port": 5432}}),
        ),
        ("env/prod", json!({"db": {"host": "db.prod"}})),
    ]);
    let r = resolve(&f.inputs());
    let prov: Vec<(String, String, u64)> = r
        .provenance()
        .into_iter()
        .map(|(k, p)| (k.to_string(), p.layer.to_string(), p.revision))
        .collect();
    assert_eq!(
        prov,
        [
            ("db.host".into(), "env/prod".into(), 2),
            ("db.port".into(), "defaults".into(), 1)
        ]
    );
    let e = r.explain(&KeyPath::parse("db.host").unwrap());
    assert_eq!(e.value, Some(json!("db.prod")));
    let layers: Vec<(&str, bool)> = e
        .entries
        .iter()
        .map(|e| (e.layer.as_str(), e.winner))
        .collect();
    assert_eq!(layers, [("env/prod", true), ("defaults", false)]);
    assert!(r.get(&KeyPath::parse("db.nope").unwrap()).is_none());
    assert!(r.get(&KeyPath::parse("db.host.deeper").unwrap()).is_none());
}

#[test]
fn atomic_tables_replace_and_are_one_leaf() {
    let sealed = json!({"$sealed": {"v": 1, "kid": "w#1", "nonce": "n", "ct": "c"}});
    // A sealed value over a table, and a table over a sealed value: replaced whole.
    check(
        vec![
            (
                "a",
                json!({"db": {"password": {"plain": 1}}, "k": sealed.clone()}),
            ),
            (
                "b",
                json!({"db": {"password": sealed.clone()}, "k": {"x": 1}}),
            ),
        ],
        json!({"db": {"password": sealed.clone()}, "k": {"x": 1}}),
    );
    let f = Fixture::new(vec![("a", json!({"db": {"password": sealed.clone()}}))]);
    let prov: Vec<String> = resolve(&f.inputs())
        .provenance()
        .into_iter()
        .map(|(k, _)| k.to_string())
        .collect();
    assert_eq!(prov, ["db.password"]);
    let d = crate::diff(
        &f.docs[0],
        &layer(
            json!({"db": {"password": {"$sealed": {"v": 1, "kid": "w#2", "nonce": "n", "ct": "d"}}}}),
        ),
    );
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].key.to_string(), "db.password");
}

#[test]
fn explain_shows_deletions() {
    let f = Fixture::new(vec![
        ("a", json!({"k": 1})),
        ("b", json!({"k": {"$delete": true}})),
    ]);
    let e = resolve(&f.inputs()).explain(&KeyPath::parse("k").unwrap());
    assert_eq!(e.value, None);
    assert!(e.entries[0].deleted && !e.entries[1].winner);
}

mod laws {
    use proptest::prelude::*;

    use super::*;

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(Value::from),
            "[a-z]{0,3}".prop_map(Value::from),
            Just(json!({"$delete": true})),
        ];
        leaf.prop_recursive(3, 16, 3, |inner| {
            prop::collection::btree_map("[a-c]", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect()))
        })
    }

    fn doc() -> impl Strategy<Value = Document> {
        prop::collection::btree_map("[a-c]", value(), 0..4).prop_map(|m| m.into_iter().collect())
    }

    /// The straightforward, copying merge the borrowed one must agree with.
    fn naive(into: &mut Document, from: &Document) {
        for (k, v) in from {
            if crate::doc::is_delete_marker(v) {
                into.remove(k);
            } else if let (Some(Value::Object(a)), Value::Object(b)) = (into.get_mut(k), v) {
                naive(a, b);
            } else {
                let mut v = v.clone();
                strip(&mut v);
                into.insert(k.clone(), v);
            }
        }
    }

    fn strip(v: &mut Value) {
        if let Value::Object(m) = v {
            m.retain(|_, v| !crate::doc::is_delete_marker(v));
            m.values_mut().for_each(strip);
        }
    }

    proptest! {
        #[test]
        fn borrowed_merge_equals_naive_merge(docs in prop::collection::vec(doc(), 1..5)) {
            let paths: Vec<LayerPath> = (0..docs.len()).map(|i| LayerPath::parse(&format!("l{i}")).unwrap()).collect();
            let inputs: Vec<LayerInput<'_>> = paths.iter().zip(&docs)
                .map(|(p, d)| LayerInput { namespace: None, layer: p, revision: 1, document: d }).collect();
            let mut expected = Document::new();
            for d in &docs { naive(&mut expected, d); }
            let r = resolve(&inputs);
            prop_assert_eq!(r.to_document(), expected.clone());
            // Every provenance entry points at a layer that holds that value.
            for (k, p) in r.provenance() {
                let i = paths.iter().position(|x| *x == p.layer).unwrap();
                let got = crate::doc::get(&expected, &k);
                let from_layer = crate::doc::get(&docs[i], &k).map(|v| { let mut v = v.clone(); strip(&mut v); v });
                prop_assert_eq!(from_layer.as_ref(), got);
            }
        }

        #[test]
        fn merging_sections_equals_the_section_of_the_merge(
            docs in prop::collection::vec(doc(), 1..5),
            key in prop::collection::vec("[a-c]", 1..3),
        ) {
            let key = KeyPath::from_segments(key).unwrap();
            let paths: Vec<LayerPath> = (0..docs.len()).map(|i| LayerPath::parse(&format!("l{i}")).unwrap()).collect();
            let full: Vec<LayerInput<'_>> = paths.iter().zip(&docs)
                .map(|(p, d)| LayerInput { namespace: None, layer: p, revision: 1, document: d }).collect();
            let sections: Vec<Document> = docs.iter().map(|d| crate::doc::section(d, &key, true)).collect();
            let part: Vec<LayerInput<'_>> = paths.iter().zip(&sections)
                .map(|(p, d)| LayerInput { namespace: None, layer: p, revision: 1, document: d }).collect();
            let whole = resolve(&full);
            let merged = resolve(&part);
            prop_assert_eq!(
                crate::doc::section(&merged.to_document(), &key, false),
                crate::doc::section(&whole.to_document(), &key, false)
            );
            let under = |k: &KeyPath| k.segments().starts_with(key.segments());
            let a: Vec<_> = merged.provenance().into_iter().filter(|(k, _)| under(k)).collect();
            let b: Vec<_> = whole.provenance().into_iter().filter(|(k, _)| under(k)).collect();
            prop_assert_eq!(a, b);
        }

        #[test]
        fn merging_a_layer_with_itself_is_idempotent(d in doc()) {
            let p = LayerPath::parse("x").unwrap();
            let one = resolve(&[LayerInput { namespace: None, layer: &p, revision: 1, document: &d }]).to_document();
            let two = resolve(&[LayerInput { namespace: None, layer: &p, revision: 1, document: &d },
                                LayerInput { namespace: None, layer: &p, revision: 1, document: &d }]).to_document();
            // A layer merged onto itself: delete markers may remove its own keys, otherwise equal.
            let has_marker = serde_json::to_string(&d).unwrap().contains("$delete");
            if !has_marker { prop_assert_eq!(one, two); }
        }
    }
}
