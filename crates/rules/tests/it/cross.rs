//! Cross-namespace rules through a `Lookup` test double, and `references()`.

use std::collections::BTreeSet;

use confstrata_core::NamespaceName;
use serde_json::json;

use crate::{MapLookup, compile, ctx, doc, render};

fn names(list: &[&str]) -> BTreeSet<NamespaceName> {
    list.iter().map(|n| n.parse().unwrap()).collect()
}

#[test]
fn references_are_the_literal_config_calls() {
    let compiled = compile(json!({"rules": [
        {"id": "a", "check": "config(\"billing\").currency == cfg.currency"},
        {"id": "b", "check": "// config(\"commented\")\nconfig(\"shared/logging\").level != () && config(\"billing\") != ()"},
        {"id": "c", "check": "\"config(\\\"quoted\\\")\" != \"\""}
    ]}));
    assert_eq!(compiled.references(), names(&["billing", "shared/logging"]));
    assert!(
        compile(json!({"rules": [{"id": "a", "check": "true"}]}))
            .references()
            .is_empty()
    );
}

#[test]
fn config_reads_the_other_namespace_for_the_same_context() {
    let compiled = compile(json!({"rules": [{
        "id": "same-region",
        "check": "config(\"billing\").region == ctx.region",
        "message": "billing is not configured for this region"
    }]}));
    let mut lookup = MapLookup::default();
    lookup.per_context.insert(
        ("billing".into(), ctx("region=eu")),
        doc(json!({"region": "eu"})),
    );
    lookup.per_context.insert(
        ("billing".into(), ctx("region=us")),
        doc(json!({"region": "eu"})),
    );
    assert!(
        compiled
            .check(&ctx("region=eu"), &doc(json!({})), &lookup)
            .is_empty()
    );
    assert_eq!(
        render(&compiled.check(&ctx("region=us"), &doc(json!({})), &lookup)),
        ["error [cross same-region] web region=us: billing is not configured for this region"]
    );
    // Each check fetches each referenced namespace once.
    assert_eq!(*lookup.asked.lock().unwrap(), ["billing", "billing"]);
}

#[test]
fn unknown_namespace_and_lookup_failures_are_clear_script_errors() {
    let compiled = compile(json!({"rules": [
        {"id": "unknown", "check": "config(\"nope\").x == 1"},
        {"id": "failing", "check": "config(\"flaky\").x == 1"},
        {"id": "fine", "check": "config(\"billing\").x == 1"}
    ], "mode": "collect-all"}));
    let mut lookup = MapLookup::default();
    lookup.docs.insert("billing".into(), doc(json!({"x": 1})));
    lookup
        .failing
        .insert("flaky".into(), "store unavailable".into());
    assert_eq!(
        render(&compiled.check(&ctx("env=prod"), &doc(json!({})), &lookup)),
        [
            "error [cross unknown] web env=prod: script error: config(\"nope\"): there is no namespace named \"nope\" (line 1, column 1)",
            "error [cross failing] web env=prod: script error: config(\"flaky\"): could not read it: store unavailable (line 1, column 1)",
        ]
    );
}

#[test]
fn other_namespaces_are_read_only_copies() {
    let compiled = compile(json!({"rules": [
        {"id": "writes", "check": "let b = config(\"billing\"); b.x = 2; b.x == 2"},
        {"id": "reads", "check": "config(\"billing\").x == 1"}
    ]}));
    let mut lookup = MapLookup::default();
    lookup.docs.insert("billing".into(), doc(json!({"x": 1})));
    assert!(
        compiled
            .check(&ctx("env=prod"), &doc(json!({})), &lookup)
            .is_empty()
    );
}

#[test]
fn config_through_a_function_pointer_is_refused_at_run_time() {
    let compiled = compile(json!({"rules": [
        {"id": "sneaky", "check": "Fn(\"config\").call(\"billing\") != ()"}
    ]}));
    let mut lookup = MapLookup::default();
    lookup.docs.insert("billing".into(), doc(json!({"x": 1})));
    let found = render(&compiled.check(&ctx("env=prod"), &doc(json!({})), &lookup));
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with("error [rule sneaky] web env=prod: script error: config(\"billing\") is only available in rules that name the namespace with a string literal"),
        "{found:?}"
    );
    assert!(lookup.asked.lock().unwrap().is_empty());
}
