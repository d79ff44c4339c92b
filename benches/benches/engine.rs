//! The engine's request path with security on, in one process: resolve of
//! a webshop-like namespace (env=prod,region=eu) by
//!
//! - `plain` (no sealed values), the local user: no token, no policy
//!   decision ("auth off");
//! - `plain`, a `viewer` token: authenticate + one decision per layer
//!   ("auth on");
//! - `webshop` (2 sealed values), a `viewer` token: masked, nothing written;
//! - `webshop`, a `secret-reader` token: opens both and writes one audit
//!   record per resolve;
//! - `plain`, a token whose role reads only `plain#db` (key-scoped): the
//!   cached view cut to `db.*` per request, against the viewer's full one.
//!
//! Also (`imports`) a namespace resolved over an imported one against the
//! same layers all its own.
//!
//! Over the real SQLite store in a temp dir.
//! Run: `cargo bench -p confstrata-benches --bench engine`

use std::hint::black_box;

use confstrata_core::{At, parse_context};
use confstrata_engine::{Caller, Engine, PrincipalKind};
use criterion::{Criterion, criterion_group, criterion_main};

fn engine(dir: &std::path::Path) -> (Engine, String, String, String) {
    let engine = confstrata_host::open(dir).unwrap();
    let admin = Caller::local("bench");
    let seed = confstrata_core::serde_json::from_value(confstrata_core::serde_json::json!({"ops": [
        {"op": "put-namespace", "spec": {"name": "webshop",
            "levels": ["defaults", "env/{env}", "env/{env}/region/{region}"],
            "matrix": {"env": ["dev", "prod"], "region": ["eu", "us"]}}},
        {"op": "put", "namespace": "webshop", "layer": "defaults", "document": {
            "server": {"port": 8080, "workers": 4, "host": "0.0.0.0"},
            "db": {"host": "localhost", "port": 5432, "pool": {"min": 1, "max": 10}, "password": "dev-password"},
            "logging": {"level": "debug", "format": "text"},
            "features": {"new_checkout": false}}},
        {"op": "put", "namespace": "webshop", "layer": "env/prod", "document": {
            "server": {"workers": 16}, "db": {"host": "db.prod.internal", "pool": {"max": 100}},
            "payments": {"api_key": "sk_live_bench"}, "logging": {"level": "warn", "format": "json"}}},
        {"op": "put", "namespace": "webshop", "layer": "env/prod/region/eu", "document": {
            "db": {"host": "db.prod.eu.internal"}, "compliance": {"gdpr": true}}},
    ]}))
    .unwrap();
    engine.commit(&admin, &seed).unwrap();
    // The same namespace without its secrets, as `plain`.
    let mut plain = engine
        .export_layers(
            &admin,
            &"webshop".parse().unwrap(),
            confstrata_core::At::Latest,
        )
        .unwrap();
    let mut ops = vec![
        confstrata_core::serde_json::json!({"op": "put-namespace", "spec": {"name": "plain",
        "levels": ["defaults", "env/{env}", "env/{env}/region/{region}"],
        "matrix": {"env": ["dev", "prod"], "region": ["eu", "us"]}}}),
    ];
    for l in &mut plain {
        l.document.retain(|k, _| k != "payments");
        if let Some(db) = l.document.get_mut("db").and_then(|d| d.as_object_mut()) {
            db.remove("password");
        }
        ops.push(
            confstrata_core::serde_json::json!({"op": "put", "namespace": "plain",
            "layer": l.layer.as_str(), "document": l.document}),
        );
    }
    engine
        .commit(
            &admin,
            &confstrata_core::serde_json::from_value(
                confstrata_core::serde_json::json!({"ops": ops}),
            )
            .unwrap(),
        )
        .unwrap();
    engine
        .put_role(
            &admin,
            "db-only",
            "",
            &[confstrata_engine::GrantInfo {
                effect: "allow".into(),
                actions: vec!["read".into()],
                on: "plain#db".into(),
            }],
            true,
        )
        .unwrap();
    let mut tokens = Vec::new();
    for (id, role) in [
        ("scoped", "db-only"),
        ("viewer", "viewer"),
        ("reader", "secret-reader"),
    ] {
        engine
            .add_principal(&admin, id, id, PrincipalKind::Service, &[role.into()])
            .unwrap();
        tokens.push(format!(
            "Bearer {}",
            engine
                .issue_token(&admin, id, "bench")
                .unwrap()
                .expose_secret()
        ));
    }
    let reader = tokens.pop().unwrap();
    let viewer = tokens.pop().unwrap();
    let scoped = tokens.pop().unwrap();
    (engine, viewer, reader, scoped)
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, viewer, reader, scoped) = engine(dir.path());
    let ns = "webshop".parse().unwrap();
    let plain = "plain".parse().unwrap();
    let ctx = parse_context("env=prod,region=eu").unwrap();
    let local = Caller::local("bench");
    let mut g = c.benchmark_group("resolve_with_security");
    g.bench_function("plain, local user (auth off)", |b| {
        b.iter(|| black_box(engine.resolve(&local, &plain, &ctx, At::Latest).unwrap()))
    });
    g.bench_function("plain, viewer token (auth on)", |b| {
        b.iter(|| {
            let caller = engine.authenticate(Some(&viewer), "bench").unwrap();
            black_box(engine.resolve(&caller, &plain, &ctx, At::Latest).unwrap())
        })
    });
    g.bench_function("plain, db-only token (key-scoped, cut to db.*)", |b| {
        b.iter(|| {
            let caller = engine.authenticate(Some(&scoped), "bench").unwrap();
            let view = engine.resolve(&caller, &plain, &ctx, At::Latest).unwrap();
            assert!(view.partial);
            black_box(view)
        })
    });
    g.bench_function("sealed, viewer token (masked)", |b| {
        b.iter(|| {
            let caller = engine.authenticate(Some(&viewer), "bench").unwrap();
            black_box(engine.resolve(&caller, &ns, &ctx, At::Latest).unwrap())
        })
    });
    g.bench_function("sealed, secret-reader token (opens 2, audited)", |b| {
        b.iter(|| {
            let caller = engine.authenticate(Some(&reader), "bench").unwrap();
            black_box(engine.resolve(&caller, &ns, &ctx, At::Latest).unwrap())
        })
    });
    g.finish();
}

/// A namespace with 50 contexts (5 envs x 10 regions), a schema of 50
/// properties and 20 rhai rules; a one-key change to `defaults` affects all
/// 50 contexts. Measured as a dry run (the check without the commit's fsync).
fn validation(c: &mut Criterion) {
    use confstrata_core::serde_json::{Map, Value, json};
    let dir = tempfile::tempdir().unwrap();
    let engine = confstrata_host::open(dir.path()).unwrap();
    let admin = Caller::local("bench");
    let mut props = Map::new();
    let mut doc = Map::new();
    for i in 0..50 {
        let (schema, value) = match i % 5 {
            0 => (json!({"$ref": "confstrata:port"}), json!(8000 + i)),
            1 => (
                json!({"$ref": "confstrata:duration"}),
                json!(format!("{i}s")),
            ),
            2 => (
                json!({"type": "integer", "minimum": 0, "maximum": 1000}),
                json!(i),
            ),
            3 => (
                json!({"type": "string", "minLength": 1}),
                json!(format!("value-{i}")),
            ),
            _ => (json!({"type": "boolean"}), json!(i % 2 == 0)),
        };
        props.insert(format!("k{i}"), schema);
        doc.insert(format!("k{i}"), value);
    }
    let rules: Vec<Value> = (0..20)
        .map(|i| {
            json!({"id": format!("r{i}"),
                   "check": format!("cfg.k{} >= 0 && cfg.k{} < 100000 && ctx.env != \"\"", 2 + 5 * (i % 10), 2 + 5 * ((i + 1) % 10)),
                   "message": format!("rule {i} failed")})
        })
        .collect();
    let envs: Vec<String> = (0..5).map(|i| format!("e{i}")).collect();
    let regions: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    let seed: confstrata_core::ChangeSet = confstrata_core::serde_json::from_value(json!({"ops": [
        {"op": "put-namespace", "spec": {"name": "svc",
            "levels": ["defaults", "env/{env}", "env/{env}/region/{region}"],
            "matrix": {"env": envs, "region": regions},
            "validation": {"schema": {"type": "object", "properties": props}, "rules": rules}}},
        {"op": "put", "namespace": "svc", "layer": "defaults", "document": doc},
        {"op": "put", "namespace": "svc", "layer": "env/e1", "document": {"k2": 5}},
    ]}))
    .unwrap();
    engine.commit(&admin, &seed).unwrap();
    let change: confstrata_core::ChangeSet =
        confstrata_core::serde_json::from_value(json!({"ops": [
        {"op": "set", "namespace": "svc", "layer": "defaults", "key": "k7", "value": 42}]}))
        .unwrap();
    let d = engine.dry_run(&admin, &change).unwrap();
    assert!(d.findings.is_empty(), "{:?}", d.findings);
    let mut g = c.benchmark_group("validation");
    g.bench_function(
        "one-key change, 50 contexts, 50-property schema + 20 rules (dry run)",
        |b| b.iter(|| black_box(engine.dry_run(&admin, &change).unwrap())),
    );
    let one: confstrata_core::ChangeSet = confstrata_core::serde_json::from_value(json!({"ops": [
        {"op": "set", "namespace": "svc", "layer": "env/e1/region/r3", "key": "k7", "value": 42}]}))
    .unwrap();
    g.bench_function("one-key change, 1 context (dry run)", |b| {
        b.iter(|| black_box(engine.dry_run(&admin, &one).unwrap()))
    });
    g.finish();
}

/// Reads at old revisions over the delta format: a 10,000-key layer, then
/// 1,033 one-key commits to it; resolves at revisions 1,000 to 1,032
/// commits back (every depth of a delta chain, one after another), against
/// a resolve of the same document at the same revision from a layer
/// written once by a `put` (one whole version: what every read cost
/// before layer versions were stored as deltas).
fn old_revisions(c: &mut Criterion) {
    use confstrata_core::serde_json::{Map, Value, json};
    let dir = tempfile::tempdir().unwrap();
    let engine = confstrata_host::open(dir.path()).unwrap();
    let admin = Caller::local("bench");
    let mut doc = Map::new();
    for i in 0..10_000 {
        doc.insert(
            format!("key{i:05}"),
            json!(format!("value-{i}-{}", "x".repeat(20))),
        );
    }
    let seed: confstrata_core::ChangeSet = confstrata_core::serde_json::from_value(json!({"ops": [
        {"op": "put-namespace", "spec": {"name": "big", "levels": ["defaults"]}},
        {"op": "put", "namespace": "big", "layer": "defaults", "document": doc},
    ]}))
    .unwrap();
    engine.commit(&admin, &seed).unwrap();
    const BACK: u64 = 1_000;
    const DEPTHS: u64 = 33;
    for i in 0..BACK + DEPTHS {
        let set: confstrata_core::ChangeSet =
            confstrata_core::serde_json::from_value(json!({"ops": [
            {"op": "set", "namespace": "big", "layer": "defaults",
             "key": format!("key{:05}", (i * 7919) % 10_000), "value": format!("changed-{i}")}]}))
            .unwrap();
        engine.commit(&admin, &set).unwrap();
    }
    let now = engine.revision().unwrap();
    let oldest_read = now - BACK - DEPTHS + 1;
    // The document at the oldest revision read, written whole once.
    let at_then = engine
        .resolve(
            &admin,
            &"big".parse().unwrap(),
            &parse_context("").unwrap(),
            At::Revision(oldest_read),
        )
        .unwrap()
        .document;
    let whole: confstrata_core::ChangeSet = confstrata_core::serde_json::from_value(json!({"ops": [
        {"op": "put-namespace", "spec": {"name": "whole", "levels": ["defaults"]}},
        {"op": "put", "namespace": "whole", "layer": "defaults", "document": Value::Object(at_then)},
    ]}))
    .unwrap();
    engine.commit(&admin, &whole).unwrap();
    let ctx = parse_context("").unwrap();
    let (big, whole) = ("big".parse().unwrap(), "whole".parse().unwrap());
    let mut g = c.benchmark_group("old_revisions");
    let mut k = 0;
    g.bench_function("10k-key layer, 1000-1032 commits back (deltas)", |b| {
        b.iter(|| {
            k = (k + 1) % DEPTHS;
            black_box(
                engine
                    .resolve(&admin, &big, &ctx, At::Revision(now - BACK - k))
                    .unwrap(),
            )
        })
    });
    let latest = engine.revision().unwrap();
    g.bench_function(
        "10k-key layer, one whole version (the format before)",
        |b| {
            b.iter(|| {
                black_box(
                    engine
                        .resolve(&admin, &whole, &ctx, At::Revision(latest))
                        .unwrap(),
                )
            })
        },
    );
    g.finish();
}

/// Imports: the same three layers resolved for env=prod,region=eu, all of
/// one namespace (`own`) or two of them from an imported namespace and the
/// third its own (`importer`): from the store at a fixed revision (the
/// merge, no cache), and from the view cache (whose lookup also checks
/// the import has not changed).
fn imports(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let engine = confstrata_host::open(dir.path()).unwrap();
    let admin = Caller::local("bench");
    let doc = |n: usize, tag: &str| {
        let mut d = confstrata_core::serde_json::Map::new();
        for i in 0..n {
            d.insert(
                format!("section{}", i % 10),
                confstrata_core::serde_json::json!({format!("key{i}"): format!("{tag}-{i}")}),
            );
        }
        d
    };
    let levels = ["defaults", "env/{env}", "env/{env}/region/{region}"];
    let seed = confstrata_core::serde_json::json!({"ops": [
        {"op": "put-namespace", "spec": {"name": "own", "levels": levels}},
        {"op": "put", "namespace": "own", "layer": "defaults", "document": doc(100, "d")},
        {"op": "put", "namespace": "own", "layer": "env/prod", "document": doc(40, "p")},
        {"op": "put", "namespace": "own", "layer": "env/prod/region/eu", "document": doc(10, "r")},
        {"op": "put-namespace", "spec": {"name": "shared/base", "levels": ["defaults", "env/{env}"]}},
        {"op": "put", "namespace": "shared/base", "layer": "defaults", "document": doc(100, "d")},
        {"op": "put", "namespace": "shared/base", "layer": "env/prod", "document": doc(40, "p")},
        {"op": "put-namespace", "spec": {"name": "importer", "levels": ["env/{env}/region/{region}"],
            "imports": ["shared/base"]}},
        {"op": "put", "namespace": "importer", "layer": "env/prod/region/eu", "document": doc(10, "r")},
    ]});
    engine
        .commit(
            &admin,
            &confstrata_core::serde_json::from_value(seed).unwrap(),
        )
        .unwrap();
    let ctx = parse_context("env=prod,region=eu").unwrap();
    let (own, importer) = ("own".parse().unwrap(), "importer".parse().unwrap());
    let at = At::Revision(engine.revision().unwrap());
    assert_eq!(
        engine.resolve(&admin, &own, &ctx, at).unwrap().document,
        engine
            .resolve(&admin, &importer, &ctx, at)
            .unwrap()
            .document
    );
    let mut g = c.benchmark_group("imports");
    for (name, ns) in [("own layers", &own), ("two layers imported", &importer)] {
        g.bench_function(format!("{name}, merged from the store"), |b| {
            b.iter(|| black_box(engine.resolve(&admin, ns, &ctx, at).unwrap()))
        });
        g.bench_function(format!("{name}, from the view cache"), |b| {
            b.iter(|| black_box(engine.resolve(&admin, ns, &ctx, At::Latest).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, bench, validation, old_revisions, imports);
criterion_main!(benches);
