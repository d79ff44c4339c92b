//! No document, however odd, makes `check` panic.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::{compile, ctx};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("30s"),
            Just("<sealed>"),
            Just("1.2.3"),
            Just("10.0.0.0/8")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("db".to_owned()),
                    Just("port".to_owned()),
                    "[a-z.\"/ ]{0,6}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn document() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(
        prop_oneof![
            Just("port".to_owned()),
            Just("db".to_owned()),
            Just("workers".to_owned()),
            Just("tags".to_owned()),
            "[a-z]{1,4}"
        ],
        json_value(),
        0..8,
    )
    .prop_map(|m| m.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn check_never_panics(document in document()) {
        let compiled = compile(json!({
            "schema": {
                "type": "object",
                "properties": {
                    "port": {"$ref": "confstrata:port"},
                    "db": {"type": "object", "properties": {"pool": {"properties": {
                        "max": {"x-validator": {"name": "at_most", "args": [100]}}
                    }}}},
                    "workers": {"x-validator": "is_power_of_two"},
                    "tags": {"type": "array", "items": {"$ref": "confstrata:non-empty-string"}}
                },
                "additionalProperties": {"anyOf": [{"$ref": "confstrata:duration"}, {"type": ["object", "array", "number"]}]}
            },
            "validators": [
                {"name": "is_power_of_two", "body": "value > 0 && (value & (value - 1)) == 0"},
                {"name": "at_most", "params": ["limit"], "body": "if value > limit { `${value} is over ${limit}` } else { true }"}
            ],
            "rules": [
                {"id": "pool", "check": "cfg.db.pool.max <= cfg.db.max_connections", "message": "{{db.pool.max}} / {{db}}"},
                {"id": "keys", "check": "cfg.keys().len() < 5 && cfg.values().all(|v| v != ())", "severity": "warning"},
                {"id": "port", "check": "cfg.port > 1024"},
                {"id": "cross", "check": "config(\"other\").port == cfg.port"}
            ],
            "mode": "collect-all"
        }));
        let found = compiled.check(&ctx("env=prod"), &document, &crate::NoLookup);
        for finding in &found {
            prop_assert!(!finding.message.is_empty());
            prop_assert!(finding.message.len() < 1024);
            prop_assert_eq!(&finding.context, &ctx("env=prod"));
        }
    }
}
