//! Backup and restore, measured in one run on a real SQLite store:
//! full and incremental backup throughput (MB/s, layers/s), the backup's
//! size against the store file, restore throughput, and commit latency
//! (p50/p99) with and without a backup running.
//!
//! ```text
//! cargo build --profile profiling -p confstrata-benches --bin confstrata-backupbench
//! ./target/profiling/confstrata-backupbench --layers 100000 --seconds 5
//! ```

#![allow(
    clippy::print_stdout,
    clippy::cast_precision_loss,
    reason = "printing figures for people is this binary's job"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use confstrata_core::serde_json::{self, json};
use confstrata_core::{ChangeSet, MemoryStore, Store};
use confstrata_engine::MasterKey;
use confstrata_engine::backup::BackupKeys;
use confstrata_engine::confstrata_backup::{
    CreateOptions, LocalDir, Manifest, Point, RestoreOptions, create, restore,
};
use confstrata_store_sqlite::SqliteStore;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const LAYERS_PER_NAMESPACE: usize = 100;
const LAYERS_PER_COMMIT: usize = 1000;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn cs(v: serde_json::Value) -> ChangeSet {
    serde_json::from_value(v).expect("a valid change set")
}

fn document(i: usize) -> serde_json::Value {
    let region = ["eu-west-1", "us-east-1", "ap-south-1"][i % 3];
    json!({
        "service": format!("svc-{i}"),
        "port": 8000 + (i % 1000),
        "pool": {"min": 2, "max": 20 + (i % 7), "idle_timeout_ms": 30000},
        "endpoints": [format!("https://a{i}.example.internal"), format!("https://b{i}.example.internal")],
        "flags": {"tracing": i.is_multiple_of(2), "cache": true},
        "region": region,
    })
}

fn fill(store: &SqliteStore, layers: usize) {
    let namespaces = layers.div_ceil(LAYERS_PER_NAMESPACE);
    let mut ops = Vec::new();
    for n in 0..namespaces {
        ops.push(json!({"op": "put-namespace", "spec": {"name": format!("ns{n:05}"), "levels": ["defaults", "l/{x}"]}}));
    }
    store
        .commit(&cs(json!({"author": "bench", "ops": ops})))
        .expect("declare");
    let mut ops = Vec::new();
    for i in 0..layers {
        let (n, l) = (i / LAYERS_PER_NAMESPACE, i % LAYERS_PER_NAMESPACE);
        ops.push(json!({"op": "put", "namespace": format!("ns{n:05}"), "layer": format!("l/{l}"), "document": document(i)}));
        if ops.len() == LAYERS_PER_COMMIT || i + 1 == layers {
            store
                .commit(&cs(
                    json!({"author": "bench", "ops": std::mem::take(&mut ops)}),
                ))
                .expect("fill");
        }
    }
}

fn one_commit(store: &SqliteStore, i: usize, layers: usize) {
    let l = (i * 7919) % layers;
    let (n, l) = (l / LAYERS_PER_NAMESPACE, l % LAYERS_PER_NAMESPACE);
    store
        .commit(&cs(json!({"author": "bench", "ops": [
            {"op": "set", "namespace": format!("ns{n:05}"), "layer": format!("l/{l}"), "key": "port", "value": i},
        ]})))
        .expect("commit");
}

fn file_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn plain(m: &Manifest) -> u64 {
    m.parts.iter().map(|p| p.plain_bytes).sum()
}

fn mb_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

/// Commits from `threads` threads for `seconds`; every latency in µs.
fn commit_latencies(
    store: &Arc<SqliteStore>,
    layers: usize,
    threads: usize,
    seconds: u64,
) -> Vec<u64> {
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (store, stop) = (Arc::clone(store), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut out = Vec::new();
                let mut i = t * 1_000_000;
                while !stop.load(Ordering::Relaxed) {
                    let start = Instant::now();
                    one_commit(&store, i, layers);
                    out.push(u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX));
                    i += 1;
                }
                out
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut all: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("committer"))
        .collect();
    all.sort_unstable();
    all
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "an index"
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0)
}

fn main() {
    let layers = usize::try_from(arg("--layers", 100_000)).unwrap_or(100_000);
    let seconds = arg("--seconds", 5);
    let threads = usize::try_from(arg("--threads", 4)).unwrap_or(4);
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let target_dir = tmp.path().join("backups");
    std::fs::create_dir_all(target_dir.join("during")).expect("backup directories");
    let store = Arc::new(SqliteStore::open(&data.join("confstrata.db")).expect("store"));
    let started = Instant::now();
    fill(&store, layers);
    println!(
        "store: {layers} layers filled in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let store_bytes = file_bytes(&data);
    let keys = BackupKeys::with_key(MasterKey::generate().expect("key"));
    let target = LocalDir::new(&target_dir);
    let quiet = &mut |_| {};

    let t = Instant::now();
    let full = create(&*store, &target, &keys, &CreateOptions::default(), quiet).expect("full");
    let d = t.elapsed();
    println!(
        "full backup: {:.2} s, {} layer versions, {:.1} MB/s of records ({:.1} MB), {:.0} layers/s; stored {:.1} MB = {:.1}% of the store's {:.1} MB",
        d.as_secs_f64(),
        full.counts.layers,
        mb_s(plain(&full), d),
        plain(&full) as f64 / 1e6,
        full.counts.layers as f64 / d.as_secs_f64(),
        full.stored_bytes() as f64 / 1e6,
        100.0 * full.stored_bytes() as f64 / store_bytes as f64,
        store_bytes as f64 / 1e6,
    );

    for i in 0..1000 {
        one_commit(&store, i, layers);
    }
    let t = Instant::now();
    let incremental = create(
        &*store,
        &target,
        &keys,
        &CreateOptions {
            incremental: true,
            ..CreateOptions::default()
        },
        quiet,
    )
    .expect("incremental");
    let d = t.elapsed();
    println!(
        "incremental after 1000 commits: {:.3} s, {} revisions, {} layer versions, stored {:.1} KB",
        d.as_secs_f64(),
        incremental.counts.revisions,
        incremental.counts.layers,
        incremental.stored_bytes() as f64 / 1e3,
    );

    let restored_dir = tmp.path().join("restored");
    let restored = SqliteStore::open(&restored_dir.join("confstrata.db")).expect("restore store");
    let t = Instant::now();
    let report =
        restore(&target, &keys, &restored, &RestoreOptions::default(), quiet).expect("restore");
    let d = t.elapsed();
    println!(
        "restore (full + incremental) into SQLite: {:.2} s, {} records, {:.0} layer versions/s, revision {}",
        d.as_secs_f64(),
        report.records,
        (full.counts.layers + incremental.counts.layers) as f64 / d.as_secs_f64(),
        report.revision
    );
    let memory = MemoryStore::new();
    let t = Instant::now();
    restore(
        &target,
        &keys,
        &memory,
        &RestoreOptions {
            point: Point::Latest,
            ..RestoreOptions::default()
        },
        quiet,
    )
    .expect("restore into memory");
    println!(
        "  of which reading (restore into memory): {:.2} s",
        t.elapsed().as_secs_f64()
    );
    drop(restored);

    let level = i32::try_from(arg("--level", 3)).unwrap_or(3);
    let wal_before = std::fs::metadata(data.join("confstrata.db-wal")).map_or(0, |m| m.len());
    let quietly = commit_latencies(&store, layers, threads, seconds);
    let wal_quiet = std::fs::metadata(data.join("confstrata.db-wal")).map_or(0, |m| m.len());
    let busy = Arc::new(AtomicBool::new(true));
    let backups = {
        let (store, busy, target_dir) = (Arc::clone(&store), Arc::clone(&busy), target_dir.clone());
        std::thread::spawn(move || {
            let keys = BackupKeys::with_key(MasterKey::generate().expect("key"));
            let target = LocalDir::new(target_dir.join("during"));
            let mut n = 0;
            while busy.load(Ordering::Relaxed) {
                create(
                    &*store,
                    &target,
                    &keys,
                    &CreateOptions::default(),
                    &mut |_| {},
                )
                .expect("backup");
                n += 1;
            }
            n
        })
    };
    let during = commit_latencies(&store, layers, threads, seconds);
    busy.store(false, Ordering::Relaxed);
    let taken = backups.join().expect("backups");
    let wal = std::fs::metadata(data.join("confstrata.db-wal")).map_or(0, |m| m.len());
    // A few commits with no reader in the way: a checkpoint completes,
    // resets the log, and the file is cut back to the store's limit.
    for i in 0..2000 {
        one_commit(&store, i, layers);
    }
    let wal_later = std::fs::metadata(data.join("confstrata.db-wal")).map_or(0, |m| m.len());
    println!(
        "commits ({threads} threads, {seconds} s each): without a backup {} commits, p50 {} µs, p99 {} µs; during {taken} full backups (zstd level {level}) {} commits, p50 {} µs, p99 {} µs (p99 ×{:.2}); WAL {:.1} MB before, {:.1} MB after the quiet window, {:.1} MB after the backups, {:.1} MB after 2000 more commits",
        quietly.len(),
        pct(&quietly, 0.5),
        pct(&quietly, 0.99),
        during.len(),
        pct(&during, 0.5),
        pct(&during, 0.99),
        pct(&during, 0.99) as f64 / pct(&quietly, 0.99).max(1) as f64,
        wal_before as f64 / 1e6,
        wal_quiet as f64 / 1e6,
        wal as f64 / 1e6,
        wal_later as f64 / 1e6,
    );
}
