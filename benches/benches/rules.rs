//! The validation chain on one context: a schema of 50 properties (library
//! references, formats, bounds, nested objects, two `x-validator`s) plus 20
//! rhai rules, compiled once and checked many times. Target: under 1 ms per
//! context.
//!
//! Run: `cargo bench -p confstrata-benches --bench rules -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use confstrata_core::{Context, Document, NamespaceName, Validation};
use confstrata_rules::{Compiled, Limits, Lookup};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value, json};

const PROPERTIES: usize = 50;
const RULES: usize = 20;

/// The schema of property `i` and a value that passes it.
fn property(i: usize) -> (Value, Value) {
    match i % 10 {
        0 => (json!({"$ref": "confstrata:port"}), json!(8000 + i)),
        1 => (json!({"$ref": "confstrata:duration"}), json!("1m30s")),
        2 => (json!({"$ref": "confstrata:byte-size"}), json!("512MiB")),
        3 => (
            json!({"type": "integer", "minimum": 0, "maximum": 1000}),
            json!(i * 10),
        ),
        4 => (
            json!({"type": "string", "minLength": 1, "maxLength": 64}),
            json!(format!("value-{i}")),
        ),
        5 => (json!({"type": "boolean"}), json!(i.is_multiple_of(2))),
        6 => (json!({"enum": ["debug", "info", "warn"]}), json!("info")),
        7 => (
            json!({"$ref": "confstrata:hostname"}),
            json!(format!("db{i}.internal")),
        ),
        8 => (
            json!({"type": "object", "required": ["max", "min"], "properties": {
                "max": {"type": "integer", "x-validator": "is_power_of_two"},
                "min": {"type": "integer", "minimum": 1}
            }}),
            json!({"max": 64, "min": 4}),
        ),
        _ => (
            json!({"type": "array", "items": {"type": "string"}, "maxItems": 10}),
            json!(["a", "b", "c"]),
        ),
    }
}

/// Rule `i`: a realistic mix of arithmetic, strings, arrays and context.
fn rule(i: usize) -> Value {
    let check = match i % 5 {
        0 => format!(
            "cfg.p{}.min <= cfg.p{}.max",
            8 + 10 * (i / 5 % 5),
            8 + 10 * (i / 5 % 5)
        ),
        1 => format!("cfg.p{} <= cfg.p{} * 10 + 1000", 3 + 10 * (i / 5 % 5), 13),
        2 => format!(
            "cfg.p{}.len() < 64 && cfg.p{}.starts_with(\"value-\")",
            4 + 10 * (i / 5 % 5),
            4
        ),
        3 => "ctx.env != \"prod\" || cfg.replicas >= 2".to_owned(),
        _ => format!(
            "cfg.p{}.all(|t| t.len() == 1) && is_power_of_two(cfg.p{}.max)",
            9 + 10 * (i / 5 % 5),
            8 + 10 * (i / 5 % 5)
        ),
    };
    json!({"id": format!("rule-{i}"), "check": check, "message": "rule {{replicas}} failed"})
}

fn setup() -> (Compiled, Document, Context) {
    chain(RULES, true)
}

/// The bench document, and a chain of its schema (when `schema`) and the
/// first `rules` rules.
fn chain(rules: usize, schema: bool) -> (Compiled, Document, Context) {
    let mut properties = Map::new();
    let mut document = Map::new();
    for i in 0..PROPERTIES {
        let (schema, value) = property(i);
        properties.insert(format!("p{i}"), schema);
        document.insert(format!("p{i}"), value);
    }
    properties.insert(
        "replicas".into(),
        json!({"$ref": "confstrata:positive-integer"}),
    );
    document.insert("replicas".into(), json!(3));
    let mut declared = json!({
        "validators": [{"name": "is_power_of_two", "body": "value > 0 && (value & (value - 1)) == 0"}],
        "rules": (0..rules).map(rule).collect::<Vec<_>>(),
        "mode": "collect-all"
    });
    if schema {
        declared["schema"] =
            json!({"type": "object", "properties": properties, "required": ["replicas"]});
    }
    let validation: Validation = serde_json::from_value(declared).unwrap();
    let ns = NamespaceName::parse("bench").unwrap();
    let compiled = Compiled::compile(&ns, &validation, &Limits::default()).unwrap();
    let ctx = confstrata_core::parse_context("env=prod,region=eu").unwrap();
    (compiled, document, ctx)
}

struct NoOther;

impl Lookup for NoOther {
    fn resolved(&self, _: &NamespaceName, _: &Context) -> Result<Option<Document>, String> {
        Ok(None)
    }
}

fn bench(c: &mut Criterion) {
    let (compiled, document, ctx) = setup();
    assert_eq!(
        compiled.check(&ctx, &document, &NoOther),
        vec![],
        "the document passes"
    );
    let mut failing = document.clone();
    failing.insert("p0".into(), json!(0));
    failing.insert("p8".into(), json!({"max": 63, "min": 4}));
    assert_eq!(compiled.check(&ctx, &failing, &NoOther).len(), 3);

    let mut group = c.benchmark_group("rules");
    // On a thread with the check stack, as the engine runs checks (from
    // an ordinary thread each check starts one: see `context x rule`).
    group.bench_function("check-50-properties-20-rules", |b| {
        confstrata_rules::on_check_stack(|| {
            b.iter(|| black_box(compiled.check(black_box(&ctx), black_box(&document), &NoOther)))
        })
        .unwrap()
    });
    group.bench_function("check-failing-3-findings", |b| {
        confstrata_rules::on_check_stack(|| {
            b.iter(|| black_box(compiled.check(black_box(&ctx), black_box(&failing), &NoOther)))
        })
        .unwrap()
    });
    group.bench_function("compile", |b| b.iter(|| black_box(setup())));
    group.finish();
}

/// What one context × rule costs (issue 12's validation budget is spent
/// in these units): the same document checked by chains of 1, 10 and 50
/// rules and no schema, and by the schema alone (which runs on a thread
/// with a stack sized for the declared bounds).
fn per_context_and_rule(c: &mut Criterion) {
    let mut g = c.benchmark_group("context x rule");
    for (rules, schema) in [(1usize, false), (10, false), (50, false), (0, true)] {
        let (compiled, document, ctx) = chain(rules, schema);
        assert!(compiled.check(&ctx, &document, &NoOther).is_empty());
        let name = if schema {
            "the 50-property schema alone, one context".to_owned()
        } else {
            format!("{rules} rules, one context")
        };
        // As the engine runs it: on a thread with the check stack.
        g.bench_function(name, |b| {
            confstrata_rules::on_check_stack(|| {
                b.iter(|| black_box(compiled.check(&ctx, &document, &NoOther)))
            })
            .unwrap()
        });
    }
    // What a check called from an ordinary thread adds: starting a thread
    // with the check stack.
    let (compiled, document, ctx) = chain(1, false);
    g.bench_function("1 rule, one context, from an ordinary thread", |b| {
        b.iter(|| black_box(compiled.check(&ctx, &document, &NoOther)))
    });
    g.finish();
}

criterion_group!(benches, bench, per_context_and_rule);
criterion_main!(benches);
