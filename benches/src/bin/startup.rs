//! Start-up and memory figures for docs/PERFORMANCE.md:
//!
//! - **Start-up**: a store with N layers (0, 10,000, 100,000 by default) is
//!   written, closed, and opened again; the figure is the time from opening
//!   the store (`Engine::open_with`, what `confstrata serve` does) through
//!   starting the gRPC server on a TCP port to the first `Resolve` answered
//!   to a client over loopback.
//! - **Memory**: resident bytes of 1,000,000 keys as a parsed layer, as a
//!   resolved view (document and provenance), next to their JSON size.
//!
//! - **Incremental re-resolve**: a context of three layers of N keys each
//!   (1,000, 10,000, 100,000 by default) over the SQLite store; after a
//!   one-key change to the most specific layer, the time to bring the
//!   cached view up to date (`Engine::refresh_view`), rebuilt from the
//!   previous view and the change, against merged again from the layers
//!   (`set_incremental(false)`). The commits are not timed.
//!
//! Run: `cargo run --release -p confstrata-benches --bin confstrata-startup -- [--layers 0,10000,100000] [--keys 1000000] [--rebuild 1000,10000,100000]`

#![allow(
    clippy::print_stdout,
    reason = "printing the report is this binary's job"
)]

use std::collections::HashMap;
use std::time::Instant;

use confstrata_core::serde_json::json;
use confstrata_core::{ChangeSet, LayerInput, LayerPath, resolve};
use confstrata_engine::{Caller, Engine};
use confstrata_grpc_api::{ServeOptions, serve};
use confstrata_host::OpenOptions;
use confstrata_proto::v1::{self, config_service_client::ConfigServiceClient};

fn list(flag: &str, default: &[usize]) -> Vec<usize> {
    let argv: Vec<String> = std::env::args().collect();
    argv.iter()
        .position(|a| a == flag)
        .and_then(|i| argv.get(i + 1))
        .map_or_else(
            || default.to_vec(),
            |v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
        )
}

/// Resident set size of this process, in bytes (Linux).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = status
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Writes `n` layers: 1,000 namespaces (`svc-<i>`) of up to 100
/// `instance/<id>` layers each, a few keys per layer, 100 layers per commit.
fn populate(dir: &std::path::Path, n: usize) {
    let engine = confstrata_host::open(dir).expect("store");
    let me = Caller::local("bench");
    let namespaces = n.div_ceil(100).max(1);
    for ns in 0..namespaces {
        let mut ops = vec![json!({"op": "put-namespace", "spec": {
            "name": format!("svc-{ns}"), "levels": ["defaults", "env/{env}", "instance/{id}"]}})];
        ops.push(json!({"op": "put", "namespace": format!("svc-{ns}"), "layer": "defaults",
            "document": {"port": 8080, "db": {"host": "db.internal", "pool": 10}, "name": format!("svc-{ns}")}}));
        let layers = (n - ns * 100).min(100);
        for l in 0..layers.saturating_sub(1) {
            ops.push(json!({"op": "put", "namespace": format!("svc-{ns}"), "layer": format!("instance/i-{l}"),
                "document": {"replica": l, "db": {"pool": 10 + l}}}));
        }
        let cs: ChangeSet =
            confstrata_core::serde_json::from_value(json!({"ops": ops})).expect("change set");
        engine.commit(&me, &cs).expect("commit");
    }
}

fn startup(n: usize) -> (f64, f64, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let t = Instant::now();
    if n > 0 {
        populate(&data, n);
    } else {
        drop(confstrata_host::open(&data).expect("store"));
    }
    let populate_s = t.elapsed().as_secs_f64();
    let size = std::fs::metadata(data.join(confstrata_host::DB_FILE)).map_or(0, |m| m.len());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let (engine, _) = confstrata_host::open_with(&data, &OpenOptions::default()).expect("open");
    let opened = started.elapsed().as_secs_f64();
    let me = Caller::local("bench");
    let token = {
        engine
            .add_principal(
                &me,
                "b",
                "b",
                confstrata_engine::PrincipalKind::Service,
                &["viewer".into()],
            )
            .ok();
        engine.issue_token(&me, "b", "t").expect("token")
    };
    // The token is issued before the clock starts again: it is not part
    // of start-up.
    let started2 = Instant::now();
    rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(serve(
            engine.clone(),
            l,
            ServeOptions::default(),
            std::future::pending(),
        ));
        let mut c = ConfigServiceClient::connect(format!("http://{addr}"))
            .await
            .expect("connect");
        let mut req = tonic::Request::new(v1::ResolveRequest {
            namespace: "svc-0".into(),
            context: HashMap::from([("env".into(), "prod".into()), ("id".into(), "i-1".into())]),
            ..Default::default()
        });
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", token.expose_secret())
                .parse()
                .expect("header"),
        );
        let r = c.resolve(req).await;
        // An empty store has no svc-0: NOT_FOUND is still a served request.
        assert!(n == 0 || r.is_ok(), "{r:?}");
    });
    let served = opened + started2.elapsed().as_secs_f64();
    println!(
        "| {n} | {:.1} MB | {:.1} | {:.1} | {:.1} |",
        size as f64 / 1e6,
        populate_s,
        opened * 1e3,
        served * 1e3
    );
    (populate_s, opened, served)
}

/// One row of a memory table: bytes, bytes per key, and the ratio to the
/// JSON's size.
fn memory_row(what: &str, bytes: u64, keys: usize, json: usize) {
    println!(
        "| {what} | {:.1} MB | {:.0} | {:.2} |",
        bytes as f64 / 1e6,
        bytes as f64 / keys as f64,
        bytes as f64 / json as f64
    );
}

fn memory(keys: usize) {
    let base = rss();
    let doc = confstrata_benches::layer(keys, 1);
    let with_doc = rss();
    let json = confstrata_core::serde_json::to_vec(&doc)
        .expect("json")
        .len();
    let path = LayerPath::parse("defaults").expect("path");
    let resolved = resolve(&[LayerInput {
        namespace: None,
        layer: &path,
        revision: 1,
        document: &doc,
    }]);
    let document = resolved.to_document();
    let with_view_doc = rss();
    let provenance = resolved.provenance();
    let with_prov = rss();
    println!("| what | resident bytes | per key | × JSON |");
    println!("|---|---|---|---|");
    let row = |what: &str, bytes: u64| memory_row(what, bytes, keys, json);
    row("raw JSON of the layer", json as u64);
    row(
        "a parsed layer (serde_json::Map tree)",
        with_doc.saturating_sub(base),
    );
    row(
        "a resolved document (owned copy)",
        with_view_doc.saturating_sub(with_doc),
    );
    row(
        "its provenance (key path and layer per leaf)",
        with_prov.saturating_sub(with_view_doc),
    );
    row(
        "a cached view (document + provenance)",
        with_prov.saturating_sub(with_doc),
    );
    std::hint::black_box((&doc, &document, &provenance));
    drop((document, provenance, resolved));
    drop(doc);
    engine_view(keys, json);
}

/// What the engine's view cache holds for a context of `keys` leaves: the
/// cache's own account of it, and the growth of the resident set across
/// the resolve that filled it (an upper bound: memory the merge used and
/// freed stays in the allocator's heap).
fn engine_view(keys: usize, json: usize) {
    let limits = confstrata_core::Limits {
        max_document_bytes: 1 << 30,
        max_change_set_bytes: 1 << 30,
        ..Default::default()
    };
    let engine = Engine::new(std::sync::Arc::new(
        confstrata_core::MemoryStore::with_limits(limits),
    ))
    .expect("engine");
    let me = Caller::local("bench");
    let cs: ChangeSet = confstrata_core::serde_json::from_value(json!({"ops": [
        {"op": "put-namespace", "spec": {"name": "big", "levels": ["defaults"]}},
        {"op": "put", "namespace": "big", "layer": "defaults", "document": confstrata_benches::layer(keys, 1)},
    ]}))
    .expect("change set");
    engine.commit(&me, &cs).expect("commit");
    let big = "big".parse().expect("name");
    let none = confstrata_core::Context::new();
    let before = rss();
    drop(
        engine
            .resolve(&me, &big, &none, confstrata_core::At::Latest)
            .expect("resolve"),
    );
    let after = rss();
    let account = engine.cache_stats().bytes;
    let fast = engine
        .resolve_cached(&me, &big, &none, None)
        .expect("cached");
    assert!(fast.json.len() >= json / 2, "the view is the whole layer");
    let row = |what: &str, bytes: u64| memory_row(what, bytes, keys, json);
    row(
        "an engine cached view (the cache's account: JSON text + 2 B per leaf)",
        account,
    );
    row(
        "resident growth across the resolve that cached it (upper bound)",
        after.saturating_sub(before),
    );
}

/// The median time to refresh a view after a one-key change, rebuilt and
/// merged, over `rounds` changes each.
fn rebuild(keys: usize, rounds: usize, sections: &mut Vec<String>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let limits = confstrata_core::Limits {
        max_document_bytes: 1 << 30,
        max_change_set_bytes: 1 << 30,
        ..Default::default()
    };
    let store = confstrata_store_sqlite::SqliteStore::open_with(
        &dir.path().join("bench.db"),
        confstrata_store_sqlite::Options {
            limits,
            ..Default::default()
        },
    )
    .expect("store");
    let store = std::sync::Arc::new(store);
    let engine = Engine::new(store.clone()).expect("engine");
    let me = Caller::local("bench");
    let layers = ["defaults", "env/prod", "instance/a"];
    let mut ops = vec![json!({"op": "put-namespace", "spec": {"name": "svc",
        "levels": ["defaults", "env/{env}", "instance/{id}"]}})];
    for (seed, layer) in layers.iter().enumerate() {
        ops.push(json!({"op": "put", "namespace": "svc", "layer": layer,
            "document": confstrata_benches::layer(keys, seed as u64)}));
    }
    let cs: ChangeSet =
        confstrata_core::serde_json::from_value(json!({ "ops": ops })).expect("change set");
    engine.commit(&me, &cs).expect("commit");
    let ns = "svc".parse().expect("name");
    let ctx = confstrata_core::parse_context("env=prod,id=a").expect("context");
    let mut medians = Vec::new();
    let mut n = 0u64;
    for incremental in [true, false] {
        engine.set_incremental(incremental);
        engine.refresh_view(&me, &ns, &ctx).expect("refresh");
        let rebuilt_before = engine.cache_stats().rebuilt;
        let mut times = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            n += 1;
            let cs: ChangeSet = confstrata_core::serde_json::from_value(json!({"ops": [
                {"op": "set", "namespace": "svc", "layer": "instance/a", "key": "s0.g0.k0", "value": n}]}))
            .expect("change set");
            engine.commit(&me, &cs).expect("commit");
            let started = Instant::now();
            engine.refresh_view(&me, &ns, &ctx).expect("refresh");
            times.push(started.elapsed().as_secs_f64());
        }
        let rebuilt = engine.cache_stats().rebuilt - rebuilt_before;
        assert_eq!(
            rebuilt,
            if incremental { rounds as u64 } else { 0 },
            "every view was rebuilt, or none"
        );
        times.sort_by(f64::total_cmp);
        medians.push(times[times.len() / 2]);
    }
    let view = engine.resolve_cached(&me, &ns, &ctx, None).expect("cached");
    println!(
        "| {keys} | {:.0} KB | {:.3} | {:.3} | {:.1}x |",
        view.json.len() as f64 / 1e3,
        medians[0] * 1e3,
        medians[1] * 1e3,
        medians[1] / medians[0]
    );
    // Reading one top-level section of the three layers, against reading
    // them whole and keeping the section (what a section resolve did).
    use confstrata_core::Store as _;
    let revision = store.revision().expect("revision");
    let paths: Vec<LayerPath> = layers.iter().map(|l| l.parse().expect("layer")).collect();
    let time = |f: &dyn Fn(&LayerPath) -> usize| {
        let mut times: Vec<f64> = (0..21)
            .map(|_| {
                let started = Instant::now();
                let n: usize = paths.iter().map(f).sum();
                std::hint::black_box(n);
                started.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    let whole = time(&|l| {
        let mut r = store.layer(&ns, l, revision).expect("read").expect("layer");
        r.document.retain(|k, _| k == "s0");
        r.document.len()
    });
    let section = time(&|l| {
        store
            .layer_section(&ns, l, revision, "s0")
            .expect("read")
            .expect("layer")
            .document
            .len()
    });
    sections.push(format!(
        "| {keys} | {:.3} | {:.3} | {:.1}x |",
        whole * 1e3,
        section * 1e3,
        whole / section
    ));
}

fn main() {
    let layers = list("--layers", &[0, 10_000, 100_000]);
    let keys = list("--keys", &[1_000_000]);
    let rebuilds = list("--rebuild", &[1_000, 10_000, 100_000]);
    println!("## A one-key change: the new view rebuilt vs merged again\n");
    println!(
        "| keys per layer (3 layers) | view JSON | rebuilt, median (ms) | merged again, median (ms) | ratio |"
    );
    println!("|---|---|---|---|---|");
    let mut sections = Vec::new();
    for k in rebuilds {
        rebuild(k, 21, &mut sections);
    }
    println!(
        "\n## One top-level section (500 keys) of the three layers: read whole and cut, against read as a section\n"
    );
    println!("| keys per layer | whole layers, median (ms) | sections, median (ms) | ratio |");
    println!("|---|---|---|---|");
    for row in sections {
        println!("{row}");
    }
    println!();
    println!("## Start-up to the first served Resolve\n");
    println!(
        "| layers in the store | database size | writing them (s) | Engine::open_with (ms) | open + serve + first Resolve over TCP (ms) |"
    );
    println!("|---|---|---|---|---|");
    for n in layers {
        startup(n);
    }
    for k in keys {
        println!("\n## Memory of {k} keys\n");
        memory(k);
    }
}
