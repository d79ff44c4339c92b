//! Durable commits on the SQLite store, against the raw SQLite floor (one row
//! per fsync'd transaction, WAL + synchronous=FULL).
//!
//! Run: `cargo bench -p confstrata-benches --bench store`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use confstrata_core::{ChangeSet, Store};
use confstrata_store_sqlite::SqliteStore;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

fn set_op(i: u64) -> ChangeSet {
    serde_json::from_value(json!({"author": "bench", "message": "", "ops": [
        {"op": "set", "namespace": "web", "layer": "defaults", "key": "counter", "value": i}
    ]}))
    .unwrap()
}

fn commit(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("bench.db")).unwrap());
    store
        .commit(
            &serde_json::from_value(json!({"ops": [
                {"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults"]}},
                {"op": "put", "namespace": "web", "layer": "defaults", "document": {"counter": 0}},
            ]}))
            .unwrap(),
        )
        .unwrap();

    let raw = rusqlite::Connection::open(dir.path().join("raw.db")).unwrap();
    let mode: String = raw
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    raw.execute_batch("PRAGMA synchronous=FULL; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();

    let mut g = c.benchmark_group("durable_commit");
    g.sample_size(50);
    let mut i = 0u64;
    g.bench_function("raw_sqlite_one_row_per_transaction", |b| {
        b.iter(|| {
            i += 1;
            let tx = raw.unchecked_transaction().unwrap();
            tx.execute(
                "INSERT INTO t(v) VALUES (?1)",
                [format!("{{\"counter\":{i}}}")],
            )
            .unwrap();
            tx.commit().unwrap();
        })
    });
    g.bench_function("sqlite_store_commit_one_set", |b| {
        b.iter(|| {
            i += 1;
            black_box(store.commit(&set_op(i)).unwrap())
        })
    });
    // Group commit: 16 threads commit at once; time per commit overall.
    g.bench_function(
        "sqlite_store_commit_16_concurrent_writers_per_commit",
        |b| {
            b.iter_custom(|iters| {
                let threads = 16u64;
                let per = iters.div_ceil(threads).max(1);
                let start = Instant::now();
                std::thread::scope(|s| {
                    for t in 0..threads {
                        let store = Arc::clone(&store);
                        s.spawn(move || {
                            for n in 0..per {
                                store.commit(&set_op(t * 1_000_000 + n)).unwrap();
                            }
                        });
                    }
                });
                let elapsed = start.elapsed();
                Duration::from_secs_f64(
                    elapsed.as_secs_f64() * iters as f64 / (per * threads) as f64,
                )
            })
        },
    );
    g.finish();
}

criterion_group!(benches, commit);
criterion_main!(benches);
