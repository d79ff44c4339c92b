//! Every declaration `compile` refuses, and what the message says.

use serde_json::json;

use crate::{compile, compile_err};

/// Asserts the compile error contains each of `parts`.
fn refused(v: serde_json::Value, parts: &[&str]) {
    let err = compile_err(v);
    for part in parts {
        assert!(err.contains(part), "{part:?} not in: {err}");
    }
}

#[test]
fn rule_that_does_not_compile_names_rule_line_and_column() {
    refused(
        json!({"rules": [{"id": "pool-fits", "check": "let x = 1;\nx +* 2"}]}),
        &[
            "invalid validation of namespace \"web\": rule \"pool-fits\": check does not compile: line 2, column 4: Unexpected '*'",
        ],
    );
    refused(
        json!({"rules": [{"id": "short", "check": "cfg.a >"}]}),
        &["rule \"short\": check does not compile: at the end: it is incomplete"],
    );
    refused(
        json!({"rules": [{"id": "typo", "check": "cfx.a > 1"}]}),
        &[
            "rule \"typo\"",
            "line 1, column 1",
            "Undefined variable: cfx",
        ],
    );
    refused(
        json!({"rules": [{"id": "fn", "check": "fn helper() { 1 }\nhelper() == 1"}]}),
        &[
            "rule \"fn\"",
            "Function definitions must be at global level",
        ],
    );
    refused(
        json!({"rules": [{"id": "escape", "check": "true } fn evil() { 1"}]}),
        &["rule \"escape\"", "not function definitions"],
    );
}

#[test]
fn duplicate_rule_ids() {
    refused(
        json!({"rules": [{"id": "a", "check": "true"}, {"id": "a", "check": "false"}]}),
        &["rule \"a\": declared twice"],
    );
    refused(
        json!({"rules": [{"id": " ", "check": "true"}]}),
        &["non-empty"],
    );
}

#[test]
fn bad_validator_names_and_params() {
    for name in ["1x", "is-even", "", "a b", "__hidden"] {
        refused(
            json!({"validators": [{"name": name, "body": "true"}]}),
            &[&format!(
                "validator {name:?}: a validator name must be an identifier"
            )],
        );
    }
    for keyword in ["if", "true", "fn", "this"] {
        refused(
            json!({"validators": [{"name": keyword, "body": "true"}]}),
            &[&format!(
                "validator {keyword:?}: does not compile: its name or a parameter is a word rhai reserves"
            )],
        );
    }
    refused(
        json!({"validators": [{"name": "v", "params": ["let"], "body": "true"}]}),
        &["validator \"v\": does not compile: its name or a parameter is a word rhai reserves"],
    );
    refused(
        json!({"validators": [{"name": "config", "body": "true"}]}),
        &["`config` is reserved"],
    );
    refused(
        json!({"validators": [{"name": "v", "body": "true"}, {"name": "v", "body": "false"}]}),
        &["validator \"v\": declared twice"],
    );
    refused(
        json!({"validators": [{"name": "v", "params": ["value"], "body": "true"}]}),
        &["parameter \"value\""],
    );
    refused(
        json!({"validators": [{"name": "v", "params": ["a", "a"], "body": "true"}]}),
        &["parameter \"a\" is declared twice"],
    );
    refused(
        json!({"validators": [{"name": "v", "body": "let a = 1;\nvalue +* a"}]}),
        &["validator \"v\": does not compile: line 2, column 8"],
    );
    refused(
        json!({"validators": [{"name": "v", "body": "config(\"x\").a == value"}]}),
        &["validator \"v\": a validator cannot read other namespaces"],
    );
}

#[test]
fn schema_that_is_not_json_schema() {
    refused(
        json!({"schema": {"type": 5}}),
        &[
            "schema: it is not valid JSON Schema (draft 2020-12): at /type:",
            "not of type \"array\"",
        ],
    );
    refused(
        json!({"schema": 5}),
        &["at the top: 5 is not of types \"boolean\", \"object\""],
    );
    refused(
        json!({"schema": {"properties": {"a": {"minimum": "ten"}}}}),
        &["at /properties/a/minimum"],
    );
    refused(
        json!({"schema": {"properties": {"a": {"pattern": "(unclosed"}}}}),
        &["schema: "],
    );
}

#[test]
fn x_validator_naming_an_unknown_validator() {
    refused(
        json!({"schema": {"properties": {"a": {"x-validator": "nope"}}}}),
        &[
            "schema: at /properties/a/x-validator: unknown validator \"nope\" (declared validators: none)",
        ],
    );
    refused(
        json!({
            "validators": [{"name": "valid_pool_for", "params": ["db"], "body": "true"}],
            "schema": {"properties": {"a": {"x-validator": "valid_pool_for"}}}
        }),
        &["validator \"valid_pool_for\" takes 1 argument(s) after the value (db), got 0"],
    );
    refused(
        json!({"schema": {"properties": {"a": {"x-validator": 5}}}}),
        &["x-validator must be a validator name"],
    );
    refused(
        json!({"schema": {"properties": {"a": {"x-validator": {"name": "v", "argz": []}}}}}),
        &["unknown field \"argz\""],
    );
}

#[test]
fn bad_refs() {
    refused(
        json!({"schema": {"properties": {"a": {"$ref": "#/$defs/missing"}}}}),
        &["schema: $ref \"#/$defs/missing\" at /properties/a/$ref points to nothing in the schema"],
    );
    refused(
        json!({"schema": {"$ref": "#no-such-anchor"}}),
        &["points to nothing"],
    );
    refused(
        json!({"schema": {"properties": {"a": {"$ref": "confstrata:portt"}}}}),
        &["the schema library has no entry \"portt\" (it has: byte-size, cidr"],
    );
    for external in [
        "https://example.com/schema.json",
        "http://169.254.169.254/latest",
        "file:///etc/passwd",
        "other.json",
    ] {
        refused(
            json!({"schema": {"properties": {"a": {"$ref": external}}}}),
            &[
                &format!("$ref {external:?} at /properties/a/$ref is refused"),
                "not fetched",
            ],
        );
    }
    // Behind an embedded resource, the retriever itself refuses.
    refused(
        json!({"schema": {
            "$defs": {"inner": {"$id": "urn:inner", "type": "integer"}},
            "properties": {"a": {"$ref": "https://example.com/x.json"}}
        }}),
        &[
            "cannot be resolved",
            "https://example.com/x.json",
            "external references are refused",
        ],
    );
}

#[test]
fn ref_cycles() {
    refused(
        json!({"schema": {
            "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}},
            "properties": {"x": {"$ref": "#/$defs/a"}}
        }}),
        &[
            "$ref loop #/$defs/a -> #/$defs/b -> #/$defs/b/allOf/0 -> #/$defs/a never reaches a property or item",
        ],
    );
    refused(json!({"schema": {"$ref": "#"}}), &["$ref loop # -> #"]);
    refused(
        json!({"schema": {"$defs": {"a": {"$anchor": "self", "not": {"$ref": "#self"}}}, "$ref": "#/$defs/a"}}),
        &["$ref loop"],
    );
}

#[test]
fn absurdly_deep_schemas_are_refused() {
    let mut schema = json!({"type": "integer"});
    for _ in 0..200 {
        schema = json!({"not": schema});
    }
    let err = compile_err(json!({ "schema": schema }));
    assert!(
        err.contains("subschemas nest deeper than 128 levels"),
        "{err}"
    );
}

#[test]
fn recursion_through_a_property_is_fine() {
    let compiled = compile(json!({"schema": {
        "$defs": {"node": {"type": "object", "properties": {
            "name": {"type": "string"},
            "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}
        }}},
        "properties": {"tree": {"$ref": "#/$defs/node"}}
    }}));
    let found = crate::lines(
        &compiled,
        json!({"tree": {"name": "a", "children": [{"name": "b", "children": [{"name": 3}]}]}}),
    );
    assert_eq!(
        found,
        [
            "error [schema /properties/tree/$ref/properties/children/items/$ref/properties/children/items/$ref/properties/name/type] web env=prod tree.children.0.children.0.name: 3 is not of type \"string\""
        ]
    );
}

#[test]
fn config_needs_a_literal_valid_namespace() {
    refused(
        json!({"rules": [{"id": "dyn", "check": "let n = \"billing\"; config(n).a == 1"}]}),
        &["rule \"dyn\": config() must be called with one plain string literal"],
    );
    refused(
        json!({"rules": [{"id": "dots", "check": "config(\"../etc\").a == 1"}]}),
        &["rule \"dots\": config(\"../etc\"): invalid namespace name"],
    );
}

#[test]
fn bad_templates_and_keys() {
    refused(
        json!({"rules": [{"id": "t", "check": "true", "message": "max {{db..max}}"}]}),
        &["rule \"t\": message template: {{db..max}}"],
    );
    refused(
        json!({"rules": [{"id": "t", "check": "true", "message": "max {{db.max"}]}),
        &["never closed"],
    );
    refused(
        json!({"rules": [{"id": "k", "check": "true", "key": "a..b"}]}),
        &["rule \"k\": key: invalid key path"],
    );
}

#[test]
fn sandbox_refusals_at_compile_time() {
    refused(
        json!({"rules": [{"id": "imp", "check": "import \"fs\" as fs;\ntrue"}]}),
        &[
            "rule \"imp\": check does not compile: line 1, column 1",
            "import",
        ],
    );
    refused(
        json!({"rules": [{"id": "ev", "check": "eval(\"1 + 1\") == 2"}]}),
        &[
            "rule \"ev\": check does not compile: line 1, column 1: reserved keyword 'eval' is disabled",
        ],
    );
}

#[test]
fn empty_and_non_empty() {
    assert!(compile(json!({})).is_empty());
    assert!(compile(json!({"validators": [{"name": "v", "body": "true"}]})).is_empty());
    assert!(!compile(json!({"schema": true})).is_empty());
    assert!(!compile(json!({"rules": [{"id": "r", "check": "true"}]})).is_empty());
}

/// A `$ref` chain one link per `$defs` entry, `n` long, ending at a type.
fn ref_chain(n: usize) -> serde_json::Value {
    let mut defs = serde_json::Map::new();
    for i in 0..n {
        defs.insert(
            format!("a{i}"),
            json!({"$ref": format!("#/$defs/a{}", i + 1)}),
        );
    }
    defs.insert(format!("a{n}"), json!({"type": "object"}));
    json!({"schema": {"$defs": defs, "$ref": "#/$defs/a0"}})
}

/// Issue 12, item 1: a schema whose validation would recurse deeper than
/// the bound is refused when declared (it used to be accepted, then
/// overflow the stack of the thread that checked the next commit).
#[test]
fn a_ref_chain_longer_than_the_bound_is_refused_when_declared() {
    for n in [200, 20_000] {
        refused(ref_chain(n), &["$ref chain from #", "the limit is 128"]);
    }
    // Through combinators too.
    let mut defs = serde_json::Map::new();
    for i in 0..300 {
        defs.insert(
            format!("a{i}"),
            json!({"allOf": [{"$ref": format!("#/$defs/a{}", i + 1)}]}),
        );
    }
    defs.insert("a300".into(), json!({}));
    refused(
        json!({"schema": {"$defs": defs, "$ref": "#/$defs/a0"}}),
        &["$ref chain"],
    );
}

/// At the bound, the chain compiles and checks on any thread, even one
/// with a small stack (as a store's writer or a pool thread may have).
#[test]
fn a_ref_chain_at_the_bound_checks_on_a_small_stack() {
    let compiled = compile(ref_chain(120));
    let findings = std::thread::Builder::new()
        .stack_size(64 << 10)
        .spawn(move || {
            compiled.check(
                &crate::ctx("env=prod"),
                &crate::doc(json!({"a": 1})),
                &crate::NoLookup,
            )
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(findings.is_empty(), "{findings:?}");
}
