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
