use serde_json::json;

use super::*;

fn doc(v: Value) -> Document {
    v.as_object().unwrap().clone()
}

fn key(s: &str) -> KeyPath {
    KeyPath::parse(s).unwrap()
}

#[test]
fn set_creates_tables_and_refuses_to_overwrite_scalars() {
    let mut d = doc(json!({"db": {"host": "x"}}));
    set(&mut d, &key("db.pool.max"), json!(10)).unwrap();
    assert_eq!(d, doc(json!({"db": {"host": "x", "pool": {"max": 10}}})));
    let before = d.clone();
    let e = set(&mut d, &key("db.host.port"), json!(1))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("db.host holds a value that is not a table"),
        "{e}"
    );
    assert_eq!(d, before);
}

#[test]
fn unset_prunes_empty_tables() {
    let mut d = doc(json!({"db": {"pool": {"max": 10}}, "x": 1}));
    assert_eq!(unset(&mut d, &key("db.pool.max")), Some(json!(10)));
    assert_eq!(d, doc(json!({"x": 1})));
    assert_eq!(unset(&mut d, &key("nope.nope")), None);
}

#[test]
fn depth_and_size_limits() {
    let limits = Limits {
        max_depth: 3,
        max_document_bytes: 40,
        ..Limits::default()
    };
    let e = check_document(
        "layer t",
        &doc(json!({"a": {"b": {"c": {"d": 1}}}})),
        &limits,
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::TooDeep { ref path, .. } if path == "a.b.c.d"),
        "{e}"
    );
    let e = check_document("layer t", &doc(json!({"a": "x".repeat(50)})), &limits).unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e}");
    check_document("layer t", &doc(json!({"a": {"b": [1]}})), &limits).unwrap();
}

#[test]
fn leaves_lists_every_leaf() {
    let d = doc(json!({"a": {"b": 1, "c": [1, 2]}, "d": {"$delete": true}, "e": {}}));
    let l: Vec<String> = leaves(&d).iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(l, ["a.b", "a.c", "d", "e"]);
}

#[test]
fn reserved_tables_are_refused_or_interpreted_alike_at_every_depth() {
    let limits = Limits::default();
    let refused = [
        // At the top a marker can mean nothing.
        (json!({"$sealed": {"v": 1}}), "top of a document"),
        (json!({"$delete": true}), "top of a document"),
        (json!({"$delete": true, "a": 1}), "top of a document"),
        // Under a key it must be the table's only key, of the right shape.
        (json!({"a": {"$sealed": {"v": 1}, "b": 1}}), "only key"),
        (json!({"a": {"b": {"$delete": true, "c": 1}}}), "only key"),
        (json!({"a": {"$delete": 1}}), "delete marker is"),
        (json!({"a": {"$sealed": "x"}}), "reserved for sealed values"),
        (json!({"a": [{"$delete": false}]}), "delete marker is"),
    ];
    for (d, want) in refused {
        let e = check_document("layer t", &doc(d.clone()), &limits).unwrap_err();
        assert!(e.to_string().contains(want), "{d}: {e}");
    }
    check_document("layer t", &doc(json!({"a": {"$delete": true}})), &limits).unwrap();
    check_document(
        "layer t",
        &doc(json!({"a": {"$sealed": {"v": 1}}})),
        &limits,
    )
    .unwrap();
    check_document("layer t", &doc(json!({"$other": 1})), &limits).unwrap();
}

#[test]
fn dot_and_dot_dot_are_not_keys() {
    let limits = Limits::default();
    for d in [
        json!({"..": 1}),
        json!({"a": {".": 1}}),
        json!({"a": [{"..": 1}]}),
    ] {
        let e = check_document("layer t", &doc(d.clone()), &limits).unwrap_err();
        assert!(e.to_string().contains("not allowed"), "{d}: {e}");
    }
    assert!(crate::KeyPath::parse("a.\"..\"").is_err());
    assert!(crate::KeyPath::parse("\".\"").is_err());
    assert!(crate::KeyPath::from_segments(["a", ".."]).is_err());
    check_document("layer t", &doc(json!({"...": 1, ".a": 2})), &limits).unwrap();
}

#[test]
fn checking_a_set_alone_refuses_what_checking_the_whole_document_refuses() {
    let limits = Limits {
        max_depth: 4,
        ..Limits::default()
    };
    let base = doc(json!({
        "db": {"host": "h", "pool": {"max": 5}},
        "gone": {"$delete": true},
        "secret": {"$sealed": {"v": 1}},
        "list": [1, {"a": 2}],
    }));
    check_structure("t", &base, &limits).unwrap();
    let cases = [
        ("db.port", json!(5432)),
        ("db.pool.min", json!({"x": 1})),
        ("db.pool.min", json!({"x": {"y": 1}})),
        ("a.b.c", json!({"d": 1})),
        ("a.b.c", json!(1)),
        ("db.$delete", json!(true)),
        ("db.pool.$sealed", json!({"v": 1})),
        ("$delete", json!(true)),
        ("$sealed", json!({})),
        ("fresh", json!({"$delete": true})),
        ("fresh", json!({"$delete": false})),
        ("fresh", json!({"$sealed": 3})),
        ("fresh", json!({"$sealed": {"v": 1}, "other": 1})),
        ("fresh", json!({"": 1})),
        ("fresh", json!({"a\u{7}b": 1})),
        ("fresh", json!({"..": 1})),
        ("fresh", json!([{"$delete": 1}])),
        ("fresh", json!([[[[1]]]])),
        ("db", json!("flat")),
    ];
    let (mut refused, mut accepted) = (0, 0);
    for (k, v) in cases {
        let mut d = base.clone();
        // A set that cannot happen (under a scalar or a marker) is not checked.
        if set(&mut d, &key(k), v.clone()).is_err() {
            continue;
        }
        let whole = check_structure("t", &d, &limits).map_err(|e| e.to_string());
        let alone = check_set("t", &d, &key(k), &limits).map_err(|e| e.to_string());
        assert_eq!(alone, whole, "set {k} = {v}");
        match alone {
            Ok(()) => accepted += 1,
            Err(_) => refused += 1,
        }
    }
    assert!(
        refused >= 8 && accepted >= 4,
        "{refused} refused, {accepted} accepted"
    );
}
