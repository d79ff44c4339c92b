//! The chain: stage order, both modes, warnings, messages and findings.

use serde_json::{Value, json};

use confstrata_core::Severity;
use confstrata_rules::{Finding, Stage};

use crate::{MapLookup, compile, ctx, doc, lines, render};

/// A chain with one check per stage, all failing on `BAD`.
fn four_stages(mode: &str, rule_severity: &str) -> Value {
    json!({
        "schema": {
            "type": "object",
            "properties": {
                "port": {"$ref": "confstrata:port"},
                "workers": {"x-validator": "is_power_of_two"},
                "db": {"properties": {"pool": {"properties": {
                    "max": {"x-validator": {"name": "at_most", "args": [100]}}
                }}}}
            }
        },
        "validators": [
            {"name": "is_power_of_two", "body": "value > 0 && (value & (value - 1)) == 0", "description": "must be a power of two"},
            {"name": "at_most", "params": ["limit"], "body": "if value > limit { `${value} is over ${limit}` } else { true }"}
        ],
        "rules": [
            {"id": "pool-fits", "check": "cfg.db.pool.max <= cfg.db.max_connections / cfg.replicas",
             "severity": rule_severity, "key": "db.pool.max",
             "message": "pool of {{db.pool.max}} does not fit {{db.max_connections}} connections over {{replicas}} replicas"},
            {"id": "same-currency", "check": "config(\"billing\").currency == cfg.currency",
             "key": "currency", "message": "currency {{currency}} differs from billing's"}
        ],
        "mode": mode
    })
}

/// Fails every stage of `four_stages`.
fn bad() -> Value {
    json!({
        "port": 0, "workers": 3, "currency": "EUR", "replicas": 3,
        "db": {"max_connections": 100, "pool": {"max": 150}}
    })
}

fn billing() -> MapLookup {
    let mut lookup = MapLookup::default();
    lookup
        .docs
        .insert("billing".into(), doc(json!({"currency": "USD"})));
    lookup
}

fn run(v: Value, document: Value) -> Vec<Finding> {
    compile(v).check(&ctx("env=prod,region=eu"), &doc(document), &billing())
}

#[test]
fn collect_all_reports_every_stage_in_order() {
    let found = run(four_stages("collect-all", "error"), bad());
    assert_eq!(
        render(&found),
        [
            "error [schema /properties/port/$ref/minimum] web env=prod,region=eu port: 0 is less than the minimum of 1",
            "error [validator at_most] web env=prod,region=eu db.pool.max: 150 is over 100",
            "error [validator is_power_of_two] web env=prod,region=eu workers: failed is_power_of_two: must be a power of two",
            "error [rule pool-fits] web env=prod,region=eu db.pool.max: pool of 150 does not fit 100 connections over 3 replicas",
            "error [cross same-currency] web env=prod,region=eu currency: currency EUR differs from billing's",
        ]
    );
    let stages: Vec<Stage> = found.iter().map(|f| f.stage).collect();
    assert_eq!(
        stages,
        [
            Stage::Schema,
            Stage::Validator,
            Stage::Validator,
            Stage::Rule,
            Stage::Cross
        ]
    );
}

#[test]
fn stop_at_first_failing_stage() {
    let v = four_stages("stop-at-first-failing-stage", "error");
    let stages = |document: Value| -> Vec<Stage> {
        run(v.clone(), document).iter().map(|f| f.stage).collect()
    };
    let mut document = bad();
    assert_eq!(stages(document.clone()), [Stage::Schema]);
    document["port"] = json!(8080);
    assert_eq!(
        stages(document.clone()),
        [Stage::Validator, Stage::Validator]
    );
    document["workers"] = json!(4);
    document["db"]["pool"]["max"] = json!(90);
    assert_eq!(stages(document.clone()), [Stage::Rule]);
    document["db"]["pool"]["max"] = json!(30);
    assert_eq!(stages(document.clone()), [Stage::Cross]);
    document["currency"] = json!("USD");
    assert_eq!(stages(document), Vec::<Stage>::new());
}

#[test]
fn stop_mode_is_the_default() {
    let mut v = four_stages("collect-all", "error");
    v.as_object_mut().unwrap().remove("mode");
    assert_eq!(run(v, bad()).len(), 1);
}

#[test]
fn warnings_never_stop_the_chain() {
    let v = four_stages("stop-at-first-failing-stage", "warning");
    let mut document = bad();
    document["port"] = json!(8080);
    document["workers"] = json!(4);
    document["db"]["pool"]["max"] = json!(90);
    let found = run(v, document);
    assert_eq!(
        render(&found),
        [
            "warning [rule pool-fits] web env=prod,region=eu db.pool.max: pool of 90 does not fit 100 connections over 3 replicas",
            "error [cross same-currency] web env=prod,region=eu currency: currency EUR differs from billing's",
        ]
    );
}

#[test]
fn cross_namespaces_are_not_read_when_the_chain_stops_before() {
    let lookup = billing();
    compile(four_stages("stop-at-first-failing-stage", "error")).check(
        &ctx("env=prod"),
        &doc(bad()),
        &lookup,
    );
    assert!(lookup.asked.lock().unwrap().is_empty());
}

#[test]
fn a_script_error_is_an_error_even_in_a_warning_rule_and_stops_the_chain() {
    let compiled = compile(json!({"rules": [
        {"id": "broken", "check": "cfg.missing > 1", "severity": "warning"},
        {"id": "cross", "check": "config(\"billing\") == ()"}
    ]}));
    let found = compiled.check(&ctx("env=prod"), &doc(json!({})), &billing());
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].severity, Severity::Error);
    assert_eq!(found[0].rule, "broken");
    assert!(
        found[0].message.contains("no key \"missing\""),
        "{}",
        found[0]
    );
}

#[test]
fn validators_run_wherever_the_schema_applies() {
    let compiled = compile(json!({
        "validators": [{"name": "even", "body": "value % 2 == 0"}],
        "schema": {
            "$defs": {"evens": {"type": "array", "items": {"x-validator": "even"}}},
            "properties": {"a": {"$ref": "#/$defs/evens"}, "b": {"additionalProperties": {"x-validator": "even"}}}
        },
        "mode": "collect-all"
    }));
    assert_eq!(
        lines(&compiled, json!({"a": [2, 3, 4, 5], "b": {"x": 1, "y": 2}})),
        [
            "error [validator even] web env=prod a.1: failed even",
            "error [validator even] web env=prod a.3: failed even",
            "error [validator even] web env=prod b.x: failed even",
        ]
    );
}

#[test]
fn rules_can_call_validators_and_return_messages() {
    let compiled = compile(json!({
        "validators": [
            {"name": "small", "body": "if value > 3 { `too big: ${value}` } else { true }"},
            {"name": "even", "body": "value % 2 == 0"}
        ],
        "rules": [
            {"id": "as-message", "check": "small(cfg.x)"},
            {"id": "combined", "check": "even(cfg.x) || even(cfg.x + 1) && cfg.x > 10", "message": "x is {{x}}"},
            {"id": "ctx", "check": "ctx.env == \"dev\"", "severity": "warning"}
        ],
        "mode": "collect-all"
    }));
    assert_eq!(
        lines(&compiled, json!({"x": 5})),
        [
            "error [rule as-message] web env=prod: too big: 5",
            "error [rule combined] web env=prod: x is 5",
            "warning [rule ctx] web env=prod: check failed: ctx.env == \"dev\"",
        ]
    );
}

#[test]
fn values_convert_faithfully() {
    let compiled = compile(json!({"rules": [{"id": "types", "check": r#"
        type_of(cfg.i) == "i64" && cfg.i == -7
        && type_of(cfg.f) == "f64" && cfg.f == 2.5
        && type_of(cfg.big) == "f64"
        && cfg.s == "<sealed>" && cfg.t == true && cfg.n == ()
        && cfg.a.len() == 3 && cfg.a[2].k == "v"
        && type_of(cfg.m) == "map" && cfg.m["odd key"] == 1
        && ctx.env == "prod"
    "#}]}));
    assert_eq!(
        lines(
            &compiled,
            json!({"i": -7, "f": 2.5, "big": u64::MAX, "s": "<sealed>", "t": true, "n": null,
                   "a": [1, "x", {"k": "v"}], "m": {"odd key": 1}})
        ),
        Vec::<String>::new()
    );
}

#[test]
fn schema_messages_never_carry_the_whole_document() {
    let compiled = compile(json!({"schema": {"type": "array"}}));
    let secret = "x".repeat(200);
    let found = lines(&compiled, json!({"password": "hunter2", "s": secret}));
    assert_eq!(
        found,
        ["error [schema /type] web env=prod: value is not of type \"array\""]
    );
    let compiled = compile(json!({"schema": {"properties": {"s": {"maxLength": 3}}}}));
    let found = lines(&compiled, json!({"s": "x".repeat(200)}));
    assert_eq!(
        found,
        [
            "error [schema /properties/s/maxLength] web env=prod s: value is longer than 3 characters"
        ]
    );
}

#[test]
fn formats_are_asserted() {
    let compiled = compile(json!({"schema": {"properties": {
        "mail": {"format": "email"}, "when": {"format": "date"}
    }}}));
    assert_eq!(
        lines(&compiled, json!({"mail": "nope", "when": "2024-13-01"})),
        [
            "error [schema /properties/mail/format] web env=prod mail: \"nope\" is not a \"email\"",
            "error [schema /properties/when/format] web env=prod when: \"2024-13-01\" is not a \"date\"",
        ]
    );
}

#[test]
fn keys_are_dotted_and_quoted_where_needed() {
    let compiled = compile(json!({"schema": {"properties": {
        "labels": {"additionalProperties": {"type": "string"}}
    }}}));
    assert_eq!(
        lines(&compiled, json!({"labels": {"app.kubernetes.io/name": 1}})),
        [
            "error [schema /properties/labels/additionalProperties/type] web env=prod labels.\"app.kubernetes.io/name\": 1 is not of type \"string\""
        ]
    );
}

#[test]
fn finding_display_and_json() {
    let finding = Finding {
        namespace: "web".into(),
        stage: Stage::Rule,
        rule: "pool-fits".into(),
        severity: Severity::Error,
        context: ctx("env=prod,region=eu"),
        key: Some("db.pool.max".into()),
        message: "message".into(),
    };
    assert_eq!(
        finding.to_string(),
        "error [rule pool-fits] web env=prod,region=eu db.pool.max: message"
    );
    let json = serde_json::to_value(&finding).unwrap();
    assert_eq!(
        json,
        json!({"namespace": "web", "stage": "rule", "rule": "pool-fits", "severity": "error",
               "context": {"env": "prod", "region": "eu"}, "key": "db.pool.max", "message": "message"})
    );
    assert_eq!(serde_json::from_value::<Finding>(json).unwrap(), finding);
    let bare = Finding {
        stage: Stage::Cross,
        context: Default::default(),
        key: None,
        severity: Severity::Warning,
        ..finding
    };
    assert_eq!(
        bare.to_string(),
        "warning [cross pool-fits] web (no context): message"
    );
    assert_eq!(
        serde_json::to_value(Stage::Validator).unwrap(),
        json!("validator")
    );
    assert_eq!(Stage::Schema.to_string(), "schema");
}
