use confstrata_core::serde_json::json;

use super::*;

fn cs(v: Value) -> ChangeSet {
    serde_json::from_value(v).unwrap()
}

#[test]
fn change_sets_round_trip() {
    let original = cs(json!({"author": "a", "message": "m", "ops": [
        {"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults", "env/{env}"], "matrix": {"env": ["dev"]}}, "expect_revision": 0},
        {"op": "put", "namespace": "web", "layer": "defaults", "document": {"a": {"b": [1, 2.5, "x", null]}}},
        {"op": "set", "namespace": "web", "layer": "env/dev", "key": "labels.\"app.io/x\"", "value": 9007199254740993u64, "expect_revision": 3},
        {"op": "unset", "namespace": "web", "layer": "env/dev", "key": "a"},
        {"op": "delete", "namespace": "web", "layer": "env/dev"},
    ]}));
    let wire = v1::ChangeSet::from(&original);
    assert_eq!(
        change_set("change_set", &wire, &Limits::default()).unwrap(),
        original
    );
}

#[test]
fn bad_fields_are_named() {
    let mut wire = v1::ChangeSet::from(&cs(json!({"ops": [
        {"op": "set", "namespace": "web", "layer": "defaults", "key": "a", "value": 1},
    ]})));
    if let Some(v1::operation::Op::Set(s)) = wire.ops[0].op.as_mut() {
        s.layer = "../etc".into();
    }
    let e = change_set("change_set", &wire, &Limits::default()).unwrap_err();
    assert_eq!(e.field, "change_set.ops[0].set.layer");
    if let Some(v1::operation::Op::Set(s)) = wire.ops[0].op.as_mut() {
        s.layer = "defaults".into();
        s.value_json = "{\"a\": ".into();
    }
    let e = change_set("change_set", &wire, &Limits::default()).unwrap_err();
    assert_eq!(e.field, "change_set.ops[0].set.value_json");
    wire.ops[0].op = None;
    let e = change_set("change_set", &wire, &Limits::default()).unwrap_err();
    assert_eq!(e.field, "change_set.ops[0].op");
}

#[test]
fn values_keep_integers_exact_and_respect_depth() {
    assert_eq!(
        value("v", "9007199254740993", &Limits::default()).unwrap(),
        json!(9007199254740993u64)
    );
    assert_eq!(value("v", "\"s\"", &Limits::default()).unwrap(), json!("s"));
    let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    assert!(matches!(
        *value("v", &deep, &Limits::default()).unwrap_err().error,
        Error::TooDeep { .. }
    ));
    assert!(document("d", "[1]", &Limits::default()).is_err());
}

#[test]
fn timestamps_round_trip() {
    for ms in [0, 1, 999, 1_764_000_000_123, -1, -1001] {
        let t = Timestamp(ms);
        assert_eq!(timestamp_from_wire("t", &timestamp(t)).unwrap(), t);
    }
    assert!(
        timestamp_from_wire(
            "t",
            &prost_types::Timestamp {
                seconds: 0,
                nanos: -1
            }
        )
        .is_err()
    );
    assert!(
        timestamp_from_wire(
            "t",
            &prost_types::Timestamp {
                seconds: i64::MAX,
                nanos: 0
            }
        )
        .is_err()
    );
}
