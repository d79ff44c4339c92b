//! Templates (issue 18):
//!
//! - `render_validate/*`: a template rendered with its defaults (generators
//!   included) and the result validated over a 5 env × 10 region matrix,
//!   50 contexts: http-service@1 (4 rules, a schema) and postgres-client
//!   (3 rules, a schema, 2 generators run 5 + 50 times). Target: under
//!   50 ms.
//! - `render_only/postgres-client`: the render alone (generators compiled
//!   and run), without validation.
//! - `apply_100`: 100 namespaces rendered from http-service@1 (3 env × 2
//!   region) and committed in one change set to the real SQLite store,
//!   which validates each over its matrix before it commits.
//!
//! - `namespace_generators/*`: the generators a namespace declares (replicas
//!   per env, a pool derived from a platform namespace per env, an
//!   endpoint per env and region) run over 5 env × 10 region by
//!   `Engine::generate_plan` on the real SQLite store: `plan_steady` when the
//!   layers hold what they compute (the `--check` of CI: 5 + 5 + 50 runs, a
//!   diff, no ops), `explain` of a generated key (its generator run again
//!   for the one layer) beside `explain_without_generators` (a key of a
//!   namespace that declares none), and `start_check_thread` (the thread
//!   with the check stack that every run outside a server's threads starts).
//!
//! Run: `cargo bench -p confstrata-benches --bench templates -- --warm-up-time 1 --measurement-time 3`

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use confstrata_core::{ChangeSet, Context, Document, NamespaceName};
use confstrata_engine::confstrata_templates::{self as templates, Lookup, Template};
use confstrata_engine::{Caller, Engine};
use criterion::{Criterion, criterion_group, criterion_main};

struct NoOther;
impl Lookup for NoOther {
    fn resolved(&self, _: &NamespaceName, _: &Context) -> Result<Option<Document>, String> {
        Ok(None)
    }
}

/// The template over 5 envs × 10 regions.
fn wide(name: &str) -> Template {
    let mut t = templates::find(name).unwrap();
    t.namespace.matrix = BTreeMap::from([
        (
            "env".to_owned(),
            ["dev", "test", "staging", "preprod", "prod"]
                .map(str::to_owned)
                .to_vec(),
        ),
        (
            "region".to_owned(),
            (0..10).map(|i| format!("r{i}")).collect(),
        ),
    ]);
    t
}

fn render_validate(c: &mut Criterion) {
    let ns: NamespaceName = "svc".parse().unwrap();
    let mut g = c.benchmark_group("render_validate");
    for name in ["http-service@1", "postgres-client"] {
        let t = wide(name);
        let mut given = BTreeMap::new();
        if name == "postgres-client" {
            // A real host, so the regional generator writes all 50 layers.
            given.insert("host".to_owned(), serde_json::json!("db.example.com"));
        }
        let params = t.resolve_parameters(&given).unwrap();
        let r = t.render_with(&ns, &params, &NoOther).unwrap();
        assert_eq!(r.spec.matrix_contexts().len(), 50);
        assert!(r.validate(&NoOther).unwrap().is_empty());
        g.bench_function(name, |b| {
            b.iter(|| {
                let r = t.render_with(&ns, &params, &NoOther).unwrap();
                black_box(r.validate(&NoOther).unwrap())
            });
        });
        if name == "postgres-client" {
            g.bench_function("render_only/postgres-client", |b| {
                b.iter(|| black_box(t.render_with(&ns, &params, &NoOther).unwrap()));
            });
        }
    }
    g.finish();
}

fn apply_100(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let engine: Engine = confstrata_host::open(dir.path()).unwrap();
    let caller = Caller::local("bench");
    let t = templates::find("http-service@1").unwrap();
    let params = t.resolve_parameters(&BTreeMap::new()).unwrap();
    let round = AtomicU64::new(0);
    let mut g = c.benchmark_group("apply_100");
    g.sample_size(10);
    g.bench_function("render_and_commit", |b| {
        b.iter(|| {
            let n = round.fetch_add(1, Ordering::Relaxed);
            let mut ops = Vec::new();
            for i in 0..100 {
                let ns: NamespaceName = format!("svc-{n}-{i}").parse().unwrap();
                ops.extend(t.render_with(&ns, &params, &NoOther).unwrap().create_ops());
            }
            let cs = ChangeSet {
                author: "bench".into(),
                message: "100 services from http-service@1".into(),
                ops,
            };
            black_box(engine.commit(&caller, &cs).unwrap())
        });
    });
    g.finish();
}

fn namespace_generators(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let engine: Engine = confstrata_host::open(dir.path()).unwrap();
    let caller = Caller::local("bench");
    let regions: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    let envs = ["dev", "test", "staging", "preprod", "prod"];
    let cs: ChangeSet = serde_json::from_value(serde_json::json!({"message": "setup", "ops": [
        {"op": "put-namespace", "spec": {"name": "platform", "levels": ["defaults", "env/{env}"],
            "matrix": {"env": envs}}},
        {"op": "put", "namespace": "platform", "layer": "defaults",
         "document": {"postgres": {"max_connections": 200}}},
        {"op": "put-namespace", "spec": {"name": "web",
            "levels": ["defaults", "env/{env}", "env/{env}/region/{region}"],
            "matrix": {"env": envs, "region": regions},
            "generators": [
                {"id": "replicas", "level": "env/{env}",
                 "script": "if ctx.env == \"prod\" { #{replicas: 6} } else { #{replicas: 2} }"},
                {"id": "pool", "level": "env/{env}", "reads": ["platform"],
                 "script": "let p = config(\"platform\"); #{db: #{pool: p.postgres.max_connections / 10}}"},
                {"id": "endpoint", "level": "env/{env}/region/{region}",
                 "script": "#{endpoint: `https://${ctx.region}.${ctx.env}.example.com`}"},
            ]}},
    ]}))
    .unwrap();
    engine.commit(&caller, &cs).unwrap();
    let web: NamespaceName = "web".parse().unwrap();
    let (plan, _) = engine
        .generate_apply(&caller, &web, true, "bench", None)
        .unwrap();
    assert_eq!(plan.generated.len(), 60);
    let mut g = c.benchmark_group("namespace_generators");
    g.bench_function("plan_steady", |b| {
        b.iter(|| {
            let plan = engine.generate_plan(&caller, &web, "bench", None).unwrap();
            assert!(plan.change_set.ops.is_empty());
            black_box(plan)
        });
    });
    let ctx = confstrata_core::parse_context("env=prod,region=r3").unwrap();
    let key = confstrata_core::KeyPath::parse("endpoint").unwrap();
    g.bench_function("explain", |b| {
        b.iter(|| {
            black_box(
                engine
                    .explain(&caller, &web, &ctx, &key, confstrata_core::At::Latest)
                    .unwrap(),
            )
        });
    });
    // The same explain where no generator computes the key: what naming
    // the generator adds.
    let platform: NamespaceName = "platform".parse().unwrap();
    let pkey = confstrata_core::KeyPath::parse("postgres.max_connections").unwrap();
    let pctx = confstrata_core::parse_context("env=prod").unwrap();
    g.bench_function("explain_without_generators", |b| {
        b.iter(|| {
            black_box(
                engine
                    .explain(
                        &caller,
                        &platform,
                        &pctx,
                        &pkey,
                        confstrata_core::At::Latest,
                    )
                    .unwrap(),
            )
        });
    });
    // What every run of generators outside a server's threads starts
    // first (a server's runtime threads have the check stack already).
    g.bench_function("start_check_thread", |b| {
        b.iter(|| {
            std::thread::Builder::new()
                .stack_size(confstrata_engine::CHECK_STACK_BYTES)
                .spawn(|| black_box(1))
                .unwrap()
                .join()
                .unwrap()
        });
    });
    g.finish();
}

criterion_group!(benches, render_validate, apply_100, namespace_generators);
criterion_main!(benches);
