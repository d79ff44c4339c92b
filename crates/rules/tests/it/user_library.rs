//! The user library: schema entries and global validators shared by every
//! namespace, through `Library::from_validation`, `Library::check` and
//! `Compiled::compile_with`.

use confstrata_core::Validation;
use confstrata_rules::{Compiled, Library, Limits};
use serde_json::{Value, json};

use crate::{lines, validation};

/// A library from its declaration (as the engine stores it).
fn library(declared: Value) -> Library {
    Library::from_validation(&validation(declared)).unwrap_or_else(|e| panic!("{e}"))
}

/// A library that passes `check`.
fn checked(declared: Value) -> Library {
    let lib = library(declared);
    lib.check(&Limits::default())
        .unwrap_or_else(|e| panic!("should pass check: {e}"));
    lib
}

fn compile_in(ns: &str, v: Value, lib: &Library) -> Result<Compiled, String> {
    Compiled::compile_with(
        &ns.parse().unwrap(),
        &validation(v),
        lib,
        &Limits::default(),
    )
    .map_err(|e| e.to_string())
}

fn compile(v: Value, lib: &Library) -> Compiled {
    compile_in("web", v, lib).unwrap_or_else(|e| panic!("should compile: {e}"))
}

fn compile_err(v: Value, lib: &Library) -> String {
    match compile_in("web", v, lib) {
        Ok(c) => panic!("should not compile: {c:?}"),
        Err(e) => e,
    }
}

/// Asserts `text` contains each of `parts`.
fn contains_all(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "{part:?} not in: {text}");
    }
}

/// `check`'s error on a library built directly (not through `from_validation`).
fn check_err(lib: &Library) -> String {
    match lib.check(&Limits::default()) {
        Ok(()) => panic!("should not pass check: {lib:?}"),
        Err(e) => e.to_string(),
    }
}

fn entries(schemas: Value) -> Library {
    Library {
        schemas: serde_json::from_value(schemas).unwrap(),
        validators: Vec::new(),
    }
}

fn with_validators(validators: Value) -> Library {
    Library {
        schemas: Default::default(),
        validators: serde_json::from_value(validators).unwrap(),
    }
}

fn pools() -> Library {
    checked(json!({
        "schema": {"$defs": {
            "pool-size": {"type": "integer", "minimum": 1, "maximum": 100},
            "endpoint": {
                "type": "object",
                "properties": {
                    "port": {"$ref": "confstrata:port"},
                    "pool": {"$ref": "confstrata:pool-size"},
                    "timeout": {"$ref": "confstrata:common#/$defs/timeout"}
                },
                "required": ["port"]
            },
            "common": {"$defs": {"timeout": {"$ref": "confstrata:duration"}}}
        }}
    }))
}

#[test]
fn an_entry_is_used_by_ref_like_a_built_in() {
    let lib = pools();
    let compiled = compile(
        json!({"schema": {"properties": {"pool": {"$ref": "confstrata:pool-size"}}}}),
        &lib,
    );
    assert!(lines(&compiled, json!({"pool": 10})).is_empty());
    assert_eq!(
        lines(&compiled, json!({"pool": 0})),
        [
            "error [schema /properties/pool/$ref/minimum] web env=prod pool: 0 is less than the minimum of 1"
        ]
    );
    assert_eq!(
        lines(&compiled, json!({"pool": "ten"})),
        [
            "error [schema /properties/pool/$ref/type] web env=prod pool: \"ten\" is not of type \"integer\""
        ]
    );
    // Without the library, the entry does not exist.
    let err = crate::compile_err(
        json!({"schema": {"properties": {"pool": {"$ref": "confstrata:pool-size"}}}}),
    );
    contains_all(&err, &["the schema library has no entry \"pool-size\""]);
}

#[test]
fn an_entry_can_reference_built_ins_and_other_entries() {
    let lib = pools();
    let compiled = compile(
        json!({"schema": {
            "properties": {"db": {"$ref": "confstrata:endpoint"}},
            "required": ["db"]
        }}),
        &lib,
    );
    assert!(
        lines(
            &compiled,
            json!({"db": {"port": 5432, "pool": 20, "timeout": "30s"}})
        )
        .is_empty()
    );
    assert_eq!(
        lines(
            &compiled,
            json!({"db": {"port": 70000, "pool": 500, "timeout": "soon"}})
        ),
        [
            "error [schema /properties/db/$ref/properties/pool/$ref/maximum] web env=prod db.pool: 500 is greater than the maximum of 100",
            "error [schema /properties/db/$ref/properties/port/$ref/maximum] web env=prod db.port: 70000 is greater than the maximum of 65535",
            "error [schema /properties/db/$ref/properties/timeout/$ref/$ref/format] web env=prod db.timeout: \"soon\" is not a \"confstrata:duration\"",
        ]
    );
    assert_eq!(
        lines(&compiled, json!({"db": {"pool": 2}})),
        [
            "error [schema /properties/db/$ref/required] web env=prod db: \"port\" is a required property"
        ]
    );
}

#[test]
fn the_same_library_serves_every_namespace() {
    let lib = pools();
    for ns in ["web", "billing", "team-a.api"] {
        let compiled = compile_in(
            ns,
            json!({"schema": {"properties": {"pool": {"$ref": "confstrata:pool-size"}}}}),
            &lib,
        )
        .unwrap();
        assert_eq!(lines(&compiled, json!({"pool": 101})).len(), 1, "{ns}");
    }
}

fn validators_lib() -> Library {
    checked(json!({
        "schema": {"$defs": {
            "even-port": {"allOf": [{"$ref": "confstrata:port"}], "x-validator": "is_even"},
            "multiple": {"type": "integer", "x-validator": {"name": "multiple_of", "args": [5]}}
        }},
        "validators": [
            {"name": "is_even", "body": "value % 2 == 0", "description": "an even number"},
            {"name": "multiple_of", "params": ["n"], "body": "if value % n == 0 { true } else { `${value} is not a multiple of ${n}` }"}
        ]
    }))
}

#[test]
fn a_global_validator_is_callable_from_rules() {
    let compiled = compile(
        json!({
            "validators": [{"name": "small", "body": "value < 10"}],
            "rules": [
                {"id": "even-workers", "check": "is_even(cfg.workers)", "message": "{{workers}} workers", "key": "workers"},
                {"id": "both", "check": "if small(cfg.workers) { multiple_of(cfg.workers, 3) } else { false }"}
            ],
            "mode": "collect-all"
        }),
        &validators_lib(),
    );
    assert!(lines(&compiled, json!({"workers": 6})).is_empty());
    assert_eq!(
        lines(&compiled, json!({"workers": 11})),
        [
            "error [rule even-workers] web env=prod workers: 11 workers",
            "error [rule both] web env=prod: check failed: if small(cfg.workers) { multiple_of(cfg.workers, 3) } else { false }",
        ]
    );
    assert_eq!(
        lines(&compiled, json!({"workers": 4})),
        ["error [rule both] web env=prod: 4 is not a multiple of 3"]
    );
}

#[test]
fn a_global_validator_is_callable_from_x_validator() {
    let compiled = compile(
        json!({
            "schema": {"properties": {
                "workers": {"type": "integer", "x-validator": "is_even"},
                "step": {"x-validator": {"name": "multiple_of", "args": [4]}}
            }},
            "mode": "collect-all"
        }),
        &validators_lib(),
    );
    assert!(lines(&compiled, json!({"workers": 2, "step": 8})).is_empty());
    assert_eq!(
        lines(&compiled, json!({"workers": 3, "step": 6})),
        [
            "error [validator multiple_of] web env=prod step: 6 is not a multiple of 4",
            "error [validator is_even] web env=prod workers: failed is_even: an even number",
        ]
    );
}

#[test]
fn entries_can_use_global_validators() {
    let compiled = compile(
        json!({
            "schema": {"properties": {
                "port": {"$ref": "confstrata:even-port"},
                "admin-port": {"$ref": "confstrata:even-port"},
                "batch": {"$ref": "confstrata:multiple"}
            }},
            "validators": [{"name": "local", "body": "true"}],
            "mode": "collect-all"
        }),
        &validators_lib(),
    );
    assert!(
        lines(
            &compiled,
            json!({"port": 8080, "admin-port": 80, "batch": 10})
        )
        .is_empty()
    );
    assert_eq!(
        lines(
            &compiled,
            json!({"port": 8081, "admin-port": 70000, "batch": 7})
        ),
        [
            "error [schema /properties/admin-port/$ref/allOf/0/$ref/maximum] web env=prod admin-port: 70000 is greater than the maximum of 65535",
            "error [validator multiple_of] web env=prod batch: 7 is not a multiple of 5",
            "error [validator is_even] web env=prod port: failed is_even: an even number",
        ]
    );
}

#[test]
fn check_refuses_bad_entry_names() {
    let too_long = "a".repeat(65);
    for bad in [
        "Pool",
        "pool_size",
        "-pool",
        "",
        "pool size",
        "pöol",
        too_long.as_str(),
    ] {
        let err = check_err(&entries(json!({ bad: {"type": "integer"} })));
        contains_all(
            &err,
            &[
                &format!("invalid user library: schema entry {bad:?}"),
                "lower-case kebab-case",
            ],
        );
    }
    let longest = "a".repeat(64);
    for good in ["pool", "pool-size", "9lives", "a-", longest.as_str()] {
        entries(json!({ good: {"type": "integer"} }))
            .check(&Limits::default())
            .unwrap_or_else(|e| panic!("{good}: {e}"));
    }
}

#[test]
fn check_refuses_an_entry_shadowing_a_built_in() {
    let err = check_err(&entries(json!({"port": {"type": "integer"}})));
    contains_all(
        &err,
        &["invalid user library: schema entry \"port\": it shadows the built-in `confstrata:port`"],
    );
    // compile_with refuses it too: which one `confstrata:port` means would be ambiguous.
    let err = compile_err(
        json!({"schema": {"type": "object"}}),
        &entries(json!({"port": {"type": "integer"}})),
    );
    contains_all(
        &err,
        &[
            "invalid validation of namespace \"web\": user library: schema entry \"port\": it shadows",
        ],
    );
}

#[test]
fn check_refuses_an_invalid_schema() {
    let err = check_err(&entries(json!({"pool": {"type": "integr"}})));
    contains_all(
        &err,
        &[
            "invalid user library: schema entry \"pool\": it is not valid JSON Schema (draft 2020-12)",
            "integr",
        ],
    );
    let err = check_err(&entries(json!({"pool": {"minimum": "one"}})));
    contains_all(
        &err,
        &["schema entry \"pool\": it is not valid JSON Schema"],
    );
    let err = check_err(&entries(json!({"pool": true})));
    contains_all(
        &err,
        &["schema entry \"pool\": an entry must be a JSON Schema object"],
    );
    let err = check_err(&entries(
        json!({"pool": {"$id": "https://example.com/pool"}}),
    ));
    contains_all(
        &err,
        &["schema entry \"pool\": its `$id` must be absent or \"confstrata:pool\""],
    );
    entries(json!({"pool": {"$id": "confstrata:pool"}}))
        .check(&Limits::default())
        .unwrap();
    // An x-validator in an entry must name a global validator.
    let err = check_err(&entries(json!({"pool": {"x-validator": "is_even"}})));
    contains_all(
        &err,
        &[
            "schema entry \"pool\"",
            "unknown validator \"is_even\" (declared validators: none)",
        ],
    );
}

#[test]
fn check_refuses_dangling_refs() {
    let err = check_err(&entries(json!({
        "a": {"type": "integer"},
        "b": {"properties": {"x": {"$ref": "confstrata:missing"}}}
    })));
    contains_all(
        &err,
        &[
            "invalid user library: schema entry \"b\": $ref \"confstrata:missing\" at /properties/x/$ref: the schema library has no entry \"missing\" (it has: byte-size, cidr",
            "url; user entries: a, b)",
        ],
    );
    let err = check_err(&entries(json!({"b": {"items": {"$ref": "#/$defs/nope"}}})));
    contains_all(
        &err,
        &[
            "schema entry \"b\": $ref \"#/$defs/nope\" at /items/$ref points to nothing in the schema",
        ],
    );
    let err = check_err(&entries(json!({
        "a": {"$defs": {"x": {"type": "integer"}}},
        "b": {"$ref": "confstrata:a#/$defs/y"}
    })));
    contains_all(
        &err,
        &[
            "schema entry \"b\": $ref \"confstrata:a#/$defs/y\" at /$ref points to nothing in schema library entry \"a\"",
        ],
    );
    let err = check_err(&entries(
        json!({"b": {"$ref": "https://example.com/x.json"}}),
    ));
    contains_all(
        &err,
        &["schema entry \"b\": $ref \"https://example.com/x.json\" at /$ref is refused"],
    );
}

#[test]
fn check_refuses_ref_loops_across_entries() {
    let err = check_err(&entries(json!({
        "a": {"$ref": "confstrata:b"},
        "b": {"anyOf": [{"$ref": "confstrata:a"}, {"type": "null"}]}
    })));
    contains_all(
        &err,
        &[
            "invalid user library: schema entry \"a\": $ref loop confstrata:a -> confstrata:b -> confstrata:b#/anyOf/0 -> confstrata:a never reaches a property or item",
        ],
    );
    // Through a property is fine: a recursive type.
    let lib = checked(json!({"schema": {"$defs": {
        "tree": {"type": "object", "properties": {
            "children": {"type": "array", "items": {"$ref": "confstrata:forest"}}
        }},
        "forest": {"$ref": "confstrata:tree"}
    }}}));
    let compiled = compile(
        json!({"schema": {"properties": {"t": {"$ref": "confstrata:tree"}}}}),
        &lib,
    );
    assert!(lines(&compiled, json!({"t": {"children": [{"children": []}]}})).is_empty());
    assert_eq!(
        lines(&compiled, json!({"t": {"children": [{"children": 1}]}})).len(),
        1
    );
}

#[test]
fn compile_with_checks_what_the_namespace_reaches() {
    // An entry wrapping a built-in applies it in place.
    let lib =
        checked(json!({"schema": {"$defs": {"wrap": {"allOf": [{"$ref": "confstrata:port"}]}}}}));
    let compiled = compile(
        json!({"schema": {"properties": {"p": {"$ref": "confstrata:wrap"}}}}),
        &lib,
    );
    assert_eq!(lines(&compiled, json!({"p": 0})).len(), 1);

    // An unchecked library with a loop: refused when a namespace reaches it.
    let looping =
        entries(json!({"a": {"$ref": "confstrata:b"}, "b": {"not": {"$ref": "confstrata:a"}}}));
    let err = compile_err(
        json!({"schema": {"properties": {"p": {"$ref": "confstrata:a"}}}}),
        &looping,
    );
    contains_all(
        &err,
        &[
            "schema: in schema library entry \"a\": $ref loop confstrata:a -> confstrata:b -> confstrata:b#/not -> confstrata:a never reaches",
        ],
    );

    // An unchecked library: what the namespace reaches is checked.
    let bad = entries(json!({
        "fine": {"type": "integer"},
        "broken": {"type": "integr"},
        "dangling": {"$ref": "#/$defs/nope"}
    }));
    compile(
        json!({"schema": {"properties": {"p": {"$ref": "confstrata:fine"}}}}),
        &bad,
    );
    let err = compile_err(
        json!({"schema": {"properties": {"p": {"$ref": "confstrata:broken"}}}}),
        &bad,
    );
    contains_all(
        &err,
        &[
            "invalid validation of namespace \"web\": schema: in schema library entry \"broken\": it is not valid JSON Schema",
        ],
    );
    let err = compile_err(
        json!({"schema": {"properties": {"p": {"$ref": "confstrata:dangling"}}}}),
        &bad,
    );
    contains_all(
        &err,
        &[
            "schema: in schema library entry \"dangling\": $ref \"#/$defs/nope\" at /$ref points to nothing in the schema",
        ],
    );
}

#[test]
fn check_refuses_a_validator_that_does_not_compile() {
    let err = check_err(&with_validators(json!([
        {"name": "ok", "body": "true"},
        {"name": "broken", "body": "value +* 2"}
    ])));
    contains_all(
        &err,
        &["invalid user library: validator \"broken\": does not compile: line 1, column 8"],
    );
    let err = check_err(&with_validators(
        json!([{"name": "is-even", "body": "true"}]),
    ));
    contains_all(
        &err,
        &["invalid user library: validator \"is-even\": a validator name must be an identifier"],
    );
    let err = check_err(&with_validators(
        json!([{"name": "reads", "body": "config(\"billing\").x == 1"}]),
    ));
    contains_all(
        &err,
        &["validator \"reads\": a validator cannot read other namespaces"],
    );
    // compile_with compiles them too.
    let err = compile_err(
        json!({}),
        &with_validators(json!([{"name": "broken", "body": "value +* 2"}])),
    );
    contains_all(
        &err,
        &[
            "invalid validation of namespace \"web\": user library: validator \"broken\": does not compile",
        ],
    );
}

#[test]
fn check_refuses_a_duplicate_validator() {
    let err = check_err(&with_validators(json!([
        {"name": "is_even", "body": "value % 2 == 0"},
        {"name": "is_even", "body": "true"}
    ])));
    contains_all(
        &err,
        &[
            "invalid user library: validator \"is_even\": declared twice; validator names must be unique",
        ],
    );
}

#[test]
fn a_namespace_validator_cannot_clash_with_a_global_one() {
    let err = compile_err(
        json!({"validators": [{"name": "is_even", "body": "value % 2 == 1"}]}),
        &validators_lib(),
    );
    contains_all(
        &err,
        &[
            "invalid validation of namespace \"web\": validator \"is_even\": it has the same name as the global validator \"is_even\" of the user library; rename one of them",
        ],
    );
    // Other names are fine, and both kinds are callable together.
    let compiled = compile(
        json!({
            "validators": [{"name": "is_odd", "body": "!is_even(value)"}],
            "rules": [{"id": "r", "check": "is_odd(cfg.a) && is_even(cfg.b)"}]
        }),
        &validators_lib(),
    );
    assert!(lines(&compiled, json!({"a": 1, "b": 2})).is_empty());
    assert_eq!(lines(&compiled, json!({"a": 2, "b": 2})).len(), 1);
}

#[test]
fn from_validation_refuses_rules() {
    let err = Library::from_validation(&validation(json!({
        "validators": [{"name": "v", "body": "true"}],
        "rules": [{"id": "r", "check": "true"}]
    })))
    .unwrap_err()
    .to_string();
    contains_all(
        &err,
        &[
            "invalid user library: it declares 1 rule(s) (first \"r\")",
            "rules belong to namespaces",
        ],
    );
}

#[test]
fn from_validation_needs_a_schema_of_defs_only() {
    let refused = |schema: Value, parts: &[&str]| {
        let err = Library::from_validation(&validation(json!({ "schema": schema })))
            .unwrap_err()
            .to_string();
        contains_all(&err, parts);
    };
    refused(
        json!({"type": "object"}),
        &["invalid user library: schema: only `$defs` (the entries) is allowed, found \"type\""],
    );
    refused(
        json!({"$defs": {}, "properties": {}, "type": "object"}),
        &["found \"properties\", \"type\""],
    );
    refused(
        json!({}),
        &["invalid user library: schema: it has no `$defs`"],
    );
    refused(json!({"$defs": []}), &["schema: `$defs` must be an object"]);
    refused(json!(true), &["schema: it must be an object"]);
}

#[test]
fn from_validation_reads_entries_and_validators_back() {
    let declared: Validation = validation(json!({
        "schema": {"$defs": {"pool-size": {"type": "integer"}}},
        "validators": [{"name": "v", "body": "true"}]
    }));
    let lib = Library::from_validation(&declared).unwrap();
    assert_eq!(lib.schemas.keys().collect::<Vec<_>>(), ["pool-size"]);
    assert_eq!(lib.validators.len(), 1);
    assert!(!lib.is_empty());
    assert_eq!(lib.to_validation(), declared);
    assert_eq!(Library::from_validation(&lib.to_validation()).unwrap(), lib);

    let empty = Library::from_validation(&Validation::default()).unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty, Library::default());
    empty.check(&Limits::default()).unwrap();
    assert_eq!(empty.to_validation(), Validation::default());
}

#[test]
fn compile_is_compile_with_an_empty_library() {
    let v = json!({
        "schema": {"properties": {"port": {"$ref": "confstrata:port"}}},
        "rules": [{"id": "r", "check": "cfg.port != 22"}]
    });
    let plain = crate::compile(v.clone());
    let with = compile(v, &Library::default());
    for doc in [
        json!({"port": 22}),
        json!({"port": 0}),
        json!({"port": 8080}),
    ] {
        assert_eq!(lines(&plain, doc.clone()), lines(&with, doc));
    }
}
