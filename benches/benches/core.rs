//! Resolve and lookup, against figment merging the same layers.
//!
//! Run: `cargo bench -p confstrata-benches --bench core`

use std::hint::black_box;

use confstrata_benches::layer;
use confstrata_core::{KeyPath, LayerInput, LayerPath, resolve};
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
    let mut g = c.benchmark_group("lookup_one_key_in_50k");
    g.bench_function("confstrata_get", |b| {
        b.iter(|| black_box(resolved.get(black_box(&key))))
    });
    g.bench_function("figment_find_value", |b| {
        b.iter(|| black_box(fig.find_value(black_box("s10.g25.k5")).ok()))
    });
    g.finish();
}

criterion_group!(benches, merge);
criterion_main!(benches);
