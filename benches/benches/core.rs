//! Resolve and lookup, against figment merging the same layers.
//!
//! Run: `cargo bench -p confstrata-benches --bench core`

use std::hint::black_box;

use std::sync::Arc;

use confstrata_benches::layer;
use confstrata_cache::{ViewCache, ViewKey};
use confstrata_core::{Document, KeyPath, LayerInput, LayerPath, resolve};
use criterion::{Criterion, criterion_group, criterion_main};
use figment::Figment;
use figment::providers::Serialized;
use figment::value::{Dict, Value as FValue};

const KEYS: usize = 10_000;

fn merge(c: &mut Criterion) {
    let docs: Vec<_> = (0..5).map(|i| layer(KEYS, i)).collect();
    let paths: Vec<LayerPath> = (0..5)
        .map(|i| LayerPath::parse(&format!("l{i}")).unwrap())
        .collect();
    let inputs: Vec<LayerInput<'_>> = paths
        .iter()
        .zip(&docs)
        .map(|(p, d)| LayerInput {
            namespace: None,
            layer: p,
            revision: 1,
            document: d,
        })
        .collect();
    // Pre-parsed figment dicts, so both sides start from parsed layers.
    let dicts: Vec<Dict> = docs
        .iter()
        .map(|d| match FValue::serialize(d).unwrap() {
            FValue::Dict(_, d) => d,
            _ => unreachable!("a document is a table"),
        })
        .collect();

    let mut g = c.benchmark_group("resolve_5x10k");
    g.bench_function("confstrata_resolve_with_provenance", |b| {
        b.iter(|| black_box(resolve(black_box(&inputs))))
    });
    g.bench_function("confstrata_resolve_to_owned_document", |b| {
        b.iter(|| black_box(resolve(black_box(&inputs)).to_document()))
    });
    g.bench_function("figment_merge", |b| {
        b.iter(|| {
            let mut f = Figment::new();
            for d in &dicts {
                f = f.merge(Serialized::defaults(d));
            }
            black_box(f)
        })
    });
    g.finish();

    let resolved = resolve(&inputs);
    let key = KeyPath::parse("s10.g25.k5").unwrap();
    let fig = dicts
        .iter()
        .fold(Figment::new(), |f, d| f.merge(Serialized::defaults(d)));
    // What a reader of a cached view does: find the view (namespace and
    // context, one ViewKey built per request), then the key in its document.
    let cache: ViewCache<Document> = ViewCache::new(10_000);
    let web = "web".parse().unwrap();
    let view_key = ViewKey::new(&web, "env=prod,region=eu");
    cache.insert(&view_key, 1, Arc::new(resolved.to_document()), 1);
    for i in 0..1000 {
        // Other views in the cache, as on a busy server.
        cache.insert(
            &ViewKey::new(&web, &format!("env=e{i}")),
            1,
            Arc::new(Document::new()),
            1,
        );
    }
    let figment_value: FValue = fig.extract().unwrap();
    let mut g = c.benchmark_group("lookup_one_key_in_50k");
    g.bench_function("confstrata_get", |b| {
        b.iter(|| black_box(resolved.get(black_box(&key))))
    });
    g.bench_function("confstrata_cached_view_then_key", |b| {
        b.iter(|| {
            let (_, view) = cache.get(black_box(&view_key)).unwrap();
            black_box(confstrata_core::doc::get(&view, black_box(&key)).cloned())
        })
    });
    g.bench_function("confstrata_key_in_cached_document", |b| {
        let (_, view) = cache.get(&view_key).unwrap();
        b.iter(|| black_box(confstrata_core::doc::get(&view, black_box(&key))))
    });
    g.bench_function("figment_find_value", |b| {
        b.iter(|| black_box(fig.find_value(black_box("s10.g25.k5")).ok()))
    });
    g.bench_function("figment_resolved_value_find_ref", |b| {
        b.iter(|| black_box(figment_value.find_ref(black_box("s10.g25.k5"))))
    });
    g.finish();
}

criterion_group!(benches, merge);
criterion_main!(benches);
