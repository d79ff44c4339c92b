//! The load generator: Confstrata's gRPC server under concurrent load, next to
//! a tonic server whose handler returns a fixed 256-byte reply (the
//! transport's own limit on this machine), and next to etcd when an `etcd`
//! is on `PATH` (a private single-member cluster, started and stopped here):
//! serializable gets, puts, watch fan-out and start-up with many keys.
//!
//! Run: `cargo run --release -p confstrata-benches --bin confstrata-loadgen -- [--seconds N] [--watchers 1000,10000] [--startup-keys N] [--layer-keys 10,300]`
//!
//! Everything runs on loopback: the servers on their own runtime (2 worker
//! threads), the clients on another; each phase is bounded in time or count.

#![allow(
    clippy::print_stdout,
    reason = "printing the report is this binary's job"
)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use confstrata_benches::etcd::proto::etcdserverpb::{
    PutRequest, RangeRequest, WatchCreateRequest, WatchRequest, watch_request,
};
use confstrata_benches::etcd::{self, EtcdServer, KvClient, WatchClient};
use confstrata_core::format::{self, Format};
use confstrata_core::{ChangeSet, Limits, NamespaceSpec, Op};
use confstrata_engine::{Caller, Engine, PrincipalKind};
use confstrata_grpc_api::{ServeOptions, serve};
use confstrata_proto::v1::config_service_client::ConfigServiceClient;
use confstrata_proto::v1::config_service_server::{ConfigService, ConfigServiceServer};
use confstrata_proto::v1::{self};
use tokio_stream::StreamExt as _;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

type Res<T> = Result<Response<T>, Status>;

/// Connections the clients spread their requests over.
const CONNECTIONS: usize = 4;

struct Args {
    seconds: f64,
    watchers: Vec<usize>,
    concurrency: Vec<usize>,
    startup_keys: usize,
    /// Keys per layer for the bytes-per-commit section.
    layer_keys: Vec<usize>,
    /// `--only rest`: only the REST section.
    only_rest: bool,
}

fn args() -> Args {
    let mut a = Args {
        seconds: 3.0,
        watchers: vec![1_000, 10_000],
        concurrency: vec![1, 16, 64, 256],
        startup_keys: 100_000,
        layer_keys: vec![10, 300],
        only_rest: false,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = argv.get(i + 1).cloned().unwrap_or_default();
        let list = |v: &str| {
            v.split(',')
                .filter_map(|x| x.trim().parse().ok())
                .collect::<Vec<usize>>()
        };
        match argv[i].as_str() {
            "--seconds" => a.seconds = value.parse().unwrap_or(a.seconds),
            "--watchers" => a.watchers = list(&value),
            "--concurrency" => a.concurrency = list(&value),
            "--startup-keys" => a.startup_keys = value.parse().unwrap_or(a.startup_keys),
            "--layer-keys" => a.layer_keys = list(&value),
            "--only" if value == "rest" => a.only_rest = true,
            other => {
                eprintln!(
                    "unknown argument {other}; use --seconds N --watchers A,B --concurrency A,B --startup-keys N --layer-keys A,B --only rest"
                );
                std::process::exit(2);
            }
        }
        i += 2;
    }
    a
}

/// The example namespace, loaded from examples/webshop as one change set.
fn example_change_set() -> ChangeSet {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/webshop");
    let spec: NamespaceSpec = toml_spec(&root.join("namespace.toml"));
    let mut ops = vec![Op::PutNamespace {
        spec: spec.clone(),
        expect_revision: None,
    }];
    let mut stack = vec![root.join("layers")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("examples/webshop/layers") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path.to_string_lossy().into_owned();
            let fmt = Format::from_path(&name).expect("a layer file");
            let rel = path
                .strip_prefix(root.join("layers"))
                .expect("under layers")
                .to_string_lossy()
                .into_owned();
            let layer = rel
                .rsplit_once('.')
                .map_or(rel.clone(), |(s, _)| s.to_owned());
            let document = format::parse(
                &std::fs::read(&path).expect("read"),
                fmt,
                &name,
                &Limits::default(),
            )
            .expect("parse");
            ops.push(Op::Put {
                namespace: spec.name.clone(),
                layer: layer.parse().expect("layer"),
                document,
                expect_revision: None,
            });
        }
    }
    ChangeSet {
        author: "loadgen".into(),
        message: "seed".into(),
        ops,
    }
}

fn toml_spec(path: &std::path::Path) -> NamespaceSpec {
    let bytes = std::fs::read(path).expect("namespace.toml");
    let doc =
        format::parse(&bytes, Format::Toml, "namespace.toml", &Limits::default()).expect("parse");
    confstrata_core::serde_json::from_value(confstrata_core::serde_json::Value::Object(doc))
        .expect("spec")
}

/// The baseline: answers Resolve with a fixed 256-byte document.
struct Fixed {
    reply: String,
}

#[tonic::async_trait]
impl ConfigService for Fixed {
    async fn resolve(&self, _: Request<v1::ResolveRequest>) -> Res<v1::ResolveResponse> {
        Ok(Response::new(v1::ResolveResponse {
            revision: 1,
            document_json: self.reply.clone(),
            ..Default::default()
        }))
    }
    async fn create_namespace(
        &self,
        _: Request<v1::CreateNamespaceRequest>,
    ) -> Res<v1::CreateNamespaceResponse> {
        Err(Status::unimplemented("baseline"))
    }
    async fn list_namespaces(
        &self,
        _: Request<v1::ListNamespacesRequest>,
    ) -> Res<v1::ListNamespacesResponse> {
        Err(Status::unimplemented("baseline"))
    }
    async fn get_namespace(
        &self,
        _: Request<v1::GetNamespaceRequest>,
    ) -> Res<v1::GetNamespaceResponse> {
        Err(Status::unimplemented("baseline"))
    }
    async fn get_layer(&self, _: Request<v1::GetLayerRequest>) -> Res<v1::GetLayerResponse> {
        Err(Status::unimplemented("baseline"))
    }
    async fn list_layers(&self, _: Request<v1::ListLayersRequest>) -> Res<v1::ListLayersResponse> {
        Err(Status::unimplemented("baseline"))
    }
    async fn put_layer(&self, _: Request<v1::PutLayerRequest>) -> Res<v1::PutLayerResponse> {
        Err(Status::unimplemented("baseline"))
    }
    async fn set_keys(&self, _: Request<v1::SetKeysRequest>) -> Res<v1::SetKeysResponse> {
        Err(Status::unimplemented("baseline"))
    }
    async fn unset_keys(&self, _: Request<v1::UnsetKeysRequest>) -> Res<v1::UnsetKeysResponse> {
        Err(Status::unimplemented("baseline"))
    }
    async fn delete_layer(
        &self,
        _: Request<v1::DeleteLayerRequest>,
    ) -> Res<v1::DeleteLayerResponse> {
        Err(Status::unimplemented("baseline"))
    }
    async fn explain(&self, _: Request<v1::ExplainRequest>) -> Res<v1::ExplainResponse> {
        Err(Status::unimplemented("baseline"))
    }
    async fn diff(&self, _: Request<v1::DiffRequest>) -> Res<v1::DiffResponse> {
        Err(Status::unimplemented("baseline"))
    }
    async fn history(&self, _: Request<v1::HistoryRequest>) -> Res<v1::HistoryResponse> {
        Err(Status::unimplemented("baseline"))
    }
    async fn commit(&self, _: Request<v1::CommitRequest>) -> Res<v1::CommitResponse> {
        Err(Status::unimplemented("baseline"))
    }
    async fn dry_run(&self, _: Request<v1::DryRunRequest>) -> Res<v1::DryRunResponse> {
        Err(Status::unimplemented("baseline"))
    }
    async fn import_namespace(
        &self,
        _: Request<v1::ImportNamespaceRequest>,
    ) -> Res<v1::ImportNamespaceResponse> {
        Err(Status::unimplemented("baseline"))
    }
    async fn rollback(&self, _: Request<v1::RollbackRequest>) -> Res<v1::RollbackResponse> {
        Err(Status::unimplemented("baseline"))
    }
    async fn namespace_history(
        &self,
        _: Request<v1::NamespaceHistoryRequest>,
    ) -> Res<v1::NamespaceHistoryResponse> {
        Err(Status::unimplemented("baseline"))
    }
    async fn validate(&self, _: Request<v1::ValidateRequest>) -> Res<v1::ValidateResponse> {
        Err(Status::unimplemented("baseline"))
    }
    async fn get_status(&self, _: Request<v1::GetStatusRequest>) -> Res<v1::GetStatusResponse> {
        Err(Status::unimplemented("baseline"))
    }
    type WatchStream = tokio_stream::Empty<Result<v1::WatchResponse, Status>>;
    async fn watch(&self, _: Request<v1::WatchRequest>) -> Res<Self::WatchStream> {
        Err(Status::unimplemented("baseline"))
    }
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

type Cfg = ConfigServiceClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

async fn clients(addr: SocketAddr, token: Option<&str>) -> Vec<Cfg> {
    let bearer = Bearer(token.map(|t| format!("Bearer {t}").parse().expect("token header")));
    let mut out = Vec::new();
    for _ in 0..CONNECTIONS {
        let ch = Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        out.push(
            ConfigServiceClient::with_interceptor(ch, bearer.clone())
                .max_decoding_message_size(64 << 20),
        );
    }
    out
}

/// Opens an engine in `dir`, seeds it, and returns it with two tokens: a
/// service with `secret-reader` and `editor` (its resolves open the sealed
/// values, and each such read is audited), and a `viewer` (sees them masked,
/// so its resolves write nothing).
fn seeded(dir: &std::path::Path, audit_reads: bool) -> (Engine, String, String) {
    let (engine, _) = confstrata_host::open_with(
        dir,
        &confstrata_host::OpenOptions {
            audit_reads,
            ..Default::default()
        },
    )
    .expect("store");
    let admin = Caller::local("loadgen");
    engine.commit(&admin, &example_change_set()).expect("seed");
    // A namespace with a validation chain (a schema and a rule), for
    // validated commits.
    let validated: ChangeSet = confstrata_core::serde_json::from_value(confstrata_core::serde_json::json!({"ops": [
        {"op": "put-namespace", "spec": {"name": "checked", "levels": ["defaults", "instance/{id}"],
            "validation": {
                "schema": {"type": "object", "properties": {"counter": {"type": "integer", "minimum": 0}}},
                "rules": [{"id": "bounded", "message": "counter too high", "check": "cfg.counter < 10000000"}]}}},
        {"op": "put", "namespace": "checked", "layer": "defaults", "document": {"counter": 0}},
    ]}))
    .expect("validated namespace");
    engine.commit(&admin, &validated).expect("seed validated");
    engine
        .add_principal(
            &admin,
            "svc",
            "load generator",
            PrincipalKind::Service,
            &["secret-reader".into(), "editor".into()],
        )
        .expect("principal");
    let token = engine.issue_token(&admin, "svc", "loadgen").expect("token");
    engine
        .add_principal(
            &admin,
            "view",
            "viewer",
            PrincipalKind::Service,
            &["viewer".into()],
        )
        .expect("principal");
    let viewer = engine
        .issue_token(&admin, "view", "loadgen")
        .expect("token");
    (
        engine,
        token.expose_secret().to_owned(),
        viewer.expose_secret().to_owned(),
    )
}

struct Stats {
    calls: usize,
    seconds: f64,
    p50_us: f64,
    p99_us: f64,
}

fn stats(mut lat: Vec<Duration>, seconds: f64) -> Stats {
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p) as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    Stats {
        calls: lat.len(),
        seconds,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    }
}

/// Runs `concurrency` loops of `call` for `seconds`, spread over the clients.
async fn drive<C, F, Fut>(clients: &[C], concurrency: usize, seconds: f64, call: F) -> Stats
where
    C: Clone + Send + 'static,
    F: Fn(C, usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<(), Status>> + Send,
{
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let client = clients[t % clients.len()].clone();
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut n = 0;
            // Bounded in time and in count.
            while Instant::now() < deadline && n < 10_000_000 {
                let t0 = Instant::now();
                call(client.clone(), t * 1_000_000 + n)
                    .await
                    .expect("request failed");
                lat.push(t0.elapsed());
                n += 1;
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    stats(all, start.elapsed().as_secs_f64())
}

/// The mean time of a stage, in µs, over what ran between two snapshots of
/// the server's stage timings (0 if it did not run).
fn stage_mean_us(
    before: &confstrata_engine::EngineStats,
    after: &confstrata_engine::EngineStats,
    stage: &str,
) -> f64 {
    let find = |s: &confstrata_engine::EngineStats| {
        s.timings
            .stages
            .iter()
            .find(|t| t.stage == stage)
            .map_or((0, 0.0), |t| (t.count, t.sum_seconds))
    };
    let ((c0, s0), (c1, s1)) = (find(before), find(after));
    if c1 > c0 {
        (s1 - s0) / (c1 - c0) as f64 * 1e6
    } else {
        0.0
    }
}

/// Jobs per group-commit transaction between two snapshots.
fn jobs_per_transaction(
    before: &confstrata_engine::EngineStats,
    after: &confstrata_engine::EngineStats,
) -> f64 {
    (after.timings.batched_jobs - before.timings.batched_jobs) as f64
        / (after.timings.batches - before.timings.batches).max(1) as f64
}

fn resolve_req() -> v1::ResolveRequest {
    v1::ResolveRequest {
        namespace: "webshop".into(),
        context: HashMap::from([
            ("env".into(), "prod".into()),
            ("region".into(), "eu".into()),
        ]),
        ..Default::default()
    }
}

/// REST next to gRPC and etcd's JSON gateway: a viewer's cached resolve
/// over HTTP/1.1 keep-alive (a pool of connections in one client), its
/// revalidation (`If-None-Match`, `304`), the same resolve over gRPC, and
/// etcd's `POST /v3/kv/range` (serializable, one key).
async fn rest_section(
    a: &Args,
    rest_addr: SocketAddr,
    token: &str,
    grpc: &[Cfg],
    etcd: Option<&EtcdServer>,
) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()
        .expect("http client");
    let url = format!("http://{rest_addr}/v1/namespaces/webshop/resolve?env=prod&region=eu");
    let auth = format!("Bearer {token}");
    let first = client
        .get(&url)
        .header("authorization", &auth)
        .send()
        .await
        .expect("REST resolve");
    let etag = first.headers()["etag"].to_str().expect("etag").to_owned();
    let size = first.bytes().await.expect("body").len();
    let fail = |e: reqwest::Error| Status::internal(e.to_string());
    let rest = Rest {
        client,
        url,
        auth,
        etag,
    };
    let gateway = etcd.map(|e| format!("{}/v3/kv/range", e.url()));
    let range_body = format!(
        "{{\"key\":\"{}\",\"serializable\":true}}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, ETCD_GET_KEY)
    );
    println!(
        "## REST (HTTP/1.1 keep-alive) vs gRPC vs etcd's JSON gateway\n\nA viewer's resolve of webshop env=prod,region=eu ({size} bytes of JSON) over REST, its revalidation with `If-None-Match` (`304`, no body), the same resolve over gRPC; etcd: `POST /v3/kv/range` of one 256-byte key (serializable) on its client port. {}s per point.\n",
        a.seconds
    );
    let (extra_head, extra_rule) = if gateway.is_some() {
        (
            " etcd gateway range/s | p99 µs | REST/etcd gateway |",
            "---|---|---|",
        )
    } else {
        ("", "")
    };
    println!(
        "| concurrency | REST resolve/s | p50 µs | p99 µs | REST 304/s | p99 µs | 304/full | gRPC resolve/s | p99 µs | REST/gRPC |{extra_head}"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|{extra_rule}");
    let rate = |s: &Stats| s.calls as f64 / s.seconds;
    for &c in &a.concurrency {
        let clients = [rest.clone()];
        let full = drive(&clients, c, a.seconds, move |r, _| async move {
            let resp = r
                .client
                .get(&r.url)
                .header("authorization", &r.auth)
                .send()
                .await
                .map_err(fail)?;
            if resp.status() != 200 {
                return Err(Status::internal(format!("REST resolve: {}", resp.status())));
            }
            resp.bytes().await.map(drop).map_err(fail)
        })
        .await;
        let revalidated = drive(&clients, c, a.seconds, move |r, _| async move {
            let resp = r
                .client
                .get(&r.url)
                .header("authorization", &r.auth)
                .header("if-none-match", &r.etag)
                .send()
                .await
                .map_err(fail)?;
            if resp.status() != 304 {
                return Err(Status::internal(format!(
                    "REST revalidation: {}",
                    resp.status()
                )));
            }
            resp.bytes().await.map(drop).map_err(fail)
        })
        .await;
        let g = drive(grpc, c, a.seconds, |mut cl, _| async move {
            cl.resolve(resolve_req()).await.map(drop)
        })
        .await;
        let extra = match &gateway {
            Some(gw) => {
                let clients = [(rest.client.clone(), gw.clone(), range_body.clone())];
                let e = drive(
                    &clients,
                    c,
                    a.seconds,
                    move |(client, gw, body), _| async move {
                        let resp = client
                            .post(&gw)
                            .header("content-type", "application/json")
                            .body(body)
                            .send()
                            .await
                            .map_err(fail)?;
                        if resp.status() != 200 {
                            return Err(Status::internal(format!(
                                "etcd gateway: {}",
                                resp.status()
                            )));
                        }
                        resp.bytes().await.map(drop).map_err(fail)
                    },
                )
                .await;
                format!(
                    " {:.0} | {:.0} | {:.2} |",
                    rate(&e),
                    e.p99_us,
                    rate(&full) / rate(&e)
                )
            }
            None => String::new(),
        };
        println!(
            "| {c} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} | {:.2} |{extra}",
            rate(&full),
            full.p50_us,
            full.p99_us,
            rate(&revalidated),
            revalidated.p99_us,
            rate(&revalidated) / rate(&full),
            rate(&g),
            g.p99_us,
            rate(&full) / rate(&g)
        );
    }
    println!();
}

/// A REST client of the load generator.
#[derive(Clone)]
struct Rest {
    client: reqwest::Client,
    url: String,
    auth: String,
    etag: String,
}

/// The key the etcd get benchmark reads.
const ETCD_GET_KEY: &[u8] = b"loadgen/get";

/// `etcd --version`'s first line, for the report.
fn etcd_version() -> String {
    std::process::Command::new("etcd")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.replace("etcd Version: ", "etcd "))
        })
        .unwrap_or_else(|| "etcd".into())
}

/// The commit a load-generator task makes: its own `instance/i-<task>`
/// layer's `counter` key, in namespace `ns` (`n` is the task and call number,
/// as `drive` numbers them).
fn counter_set(ns: &str, n: usize) -> v1::SetKeysRequest {
    v1::SetKeysRequest {
        namespace: ns.into(),
        layer: format!("instance/i-{}", n / 1_000_000),
        entries: vec![v1::KeyValue {
            key: "counter".into(),
            value_json: (n % 1_000_000).to_string(),
            secret: false,
        }],
        ..Default::default()
    }
}

/// A 256-byte value that differs per call.
fn sized_value(n: usize) -> String {
    let head = n.to_string();
    format!("{head}{}", "v".repeat(256usize.saturating_sub(head.len())))
}

/// The commit of the bytes-per-commit section: key `k0` of the task's
/// layer in namespace `ns`, set to a new 256-byte value.
fn sized_set(ns: &str, n: usize) -> v1::SetKeysRequest {
    v1::SetKeysRequest {
        namespace: ns.into(),
        layer: format!("instance/i-{}", n / 1_000_000),
        entries: vec![v1::KeyValue {
            key: "k0".into(),
            value_json: format!("\"{}\"", sized_value(n)),
            secret: false,
        }],
        ..Default::default()
    }
}

/// Declares namespace `ns` and gives each of `tasks` instance layers
/// `keys` keys of 256-byte values.
fn fill_sized(engine: &Engine, ns: &str, keys: usize, tasks: usize) {
    let mut ops = vec![
        confstrata_core::serde_json::json!({"op": "put-namespace", "spec": {
        "name": ns, "levels": ["defaults", "instance/{id}"]}}),
    ];
    for t in 0..tasks {
        let doc: confstrata_core::serde_json::Map<String, confstrata_core::serde_json::Value> = (0
            ..keys)
            .map(|k| {
                (
                    format!("k{k}"),
                    confstrata_core::serde_json::Value::from("x".repeat(256)),
                )
            })
            .collect();
        ops.push(confstrata_core::serde_json::json!({"op": "put", "namespace": ns, "layer": format!("instance/i-{t}"), "document": doc}));
    }
    let cs: ChangeSet =
        confstrata_core::serde_json::from_value(confstrata_core::serde_json::json!({"ops": ops}))
            .expect("change set");
    engine.commit(&Caller::local("loadgen"), &cs).expect("fill");
}

/// Bytes process `pid` has caused to be written to storage so far
/// (`write_bytes` of /proc/PID/io).
fn process_write_bytes(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|v| v.trim().parse().ok())
}

/// CPU time (ns) so far of each of this process's server threads, by
/// thread id: the server runtime's workers and blocking threads
/// (`confstrata-serv…`) and the store's writer (`confstrata-writ…`), from
/// each thread's schedstat.
fn server_cpu_ns() -> HashMap<String, u64> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return HashMap::new();
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.starts_with("confstrata-serv") || c.starts_with("confstrata-writ"))
        })
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            let ns = stat.split_whitespace().next()?.parse::<u64>().ok()?;
            Some((t.file_name().to_string_lossy().into_owned(), ns))
        })
        .collect()
}

/// The server threads' CPU time (ns) between two [`server_cpu_ns`]
/// readings: each thread's growth (a thread started meanwhile counts from
/// zero; one that exited meanwhile, a blocking thread idle for 10 s, takes
/// its share with it, so this may undercount a little).
fn server_cpu_delta(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> u64 {
    after
        .iter()
        .map(|(tid, ns)| ns.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum()
}

/// CPU time (ns) of process `pid` so far (all its threads; clock ticks).
fn process_cpu_ns(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime 14 and stime 15 (1-based).
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports them in USER_HZ, 100 per second on every mainstream build.
    Some(ticks * 10_000_000)
}

/// The median time of appending `bytes` bytes to a file in `dir` and
/// fdatasync-ing it, over `n` rounds: the least a durable commit of that
/// many bytes can cost on this disk.
fn fdatasync_us(dir: &std::path::Path, bytes: usize, n: usize) -> f64 {
    use std::io::Write as _;
    let path = dir.join("loadgen-floor");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("floor file");
    let block = vec![b'x'; bytes];
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        f.write_all(&block).expect("write");
        f.sync_data().expect("fdatasync");
        times.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    drop(f);
    let _ = std::fs::remove_file(&path);
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Waits until `w` watchers have reported revision `rev` (each watcher
/// sends the revisions it sees on `rx`).
async fn wait_for_watchers<R: PartialEq>(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<R>,
    rev: R,
    w: usize,
    who: &str,
) {
    let mut got = 0;
    while got < w {
        match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            Ok(Some(r)) if r == rev => got += 1,
            Ok(Some(_)) => {}
            _ => panic!("{who} watchers stopped after {got} of {w} events"),
        }
    }
}

/// `w` etcd watchers, each on its own Watch stream on one key, spread over
/// fresh connections; returns the 5 sorted times (ms) from a Put until the
/// last watcher saw it, and etcd's resident memory per open stream (KiB).
async fn etcd_fanout(etcd: &EtcdServer, kv: &KvClient<Channel>, w: usize) -> (Vec<f64>, f64) {
    const KEY: &[u8] = b"loadgen/fanout";
    let conns = etcd.channels(CONNECTIONS).await;
    let rss = || etcd.pid().and_then(etcd::resident_bytes).unwrap_or(0);
    let rss0 = rss();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<i64>();
    let ready = Arc::new(tokio::sync::Semaphore::new(0));
    let mut tasks = Vec::with_capacity(w);
    for i in 0..w {
        let mut cl = WatchClient::new(conns[i % conns.len()].clone());
        let tx = tx.clone();
        let ready = Arc::clone(&ready);
        tasks.push(tokio::spawn(async move {
            let create = WatchRequest {
                request_union: Some(watch_request::RequestUnion::CreateRequest(
                    WatchCreateRequest {
                        key: KEY.to_vec(),
                        ..Default::default()
                    },
                )),
            };
            // Keep the request side open: etcd ends nothing on it, but a
            // closed side would be a different client behaviour.
            let requests = tokio_stream::once(create).chain(tokio_stream::pending());
            let mut s = cl.watch(requests).await.expect("etcd watch").into_inner();
            while let Ok(Some(r)) = s.message().await {
                if r.created {
                    ready.add_permits(1);
                }
                for e in &r.events {
                    let rev = e.kv.as_ref().map_or(0, |kv| kv.mod_revision);
                    if tx.send(rev).is_err() {
                        return;
                    }
                }
            }
        }));
    }
    drop(tx);
    ready
        .acquire_many(u32::try_from(w).expect("watchers"))
        .await
        .expect("ready")
        .forget();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let per_stream = rss().saturating_sub(rss0) as f64 / w as f64 / 1024.0;
    let mut times = Vec::new();
    for round in 0..5 {
        let t0 = Instant::now();
        let rev = kv
            .clone()
            .put(PutRequest {
                key: KEY.to_vec(),
                value: round.to_string().into_bytes(),
                ..Default::default()
            })
            .await
            .expect("etcd put")
            .into_inner()
            .header
            .expect("etcd response header")
            .revision;
        wait_for_watchers(&mut rx, rev, w, "etcd").await;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    for t in tasks {
        t.abort();
    }
    times.sort_by(f64::total_cmp);
    (times, per_stream)
}

/// Loads `keys` keys of 256 bytes into a fresh etcd, reports its memory and
/// data size, then restarts it on the same data and times the start-up.
async fn etcd_startup(keys: usize) {
    const TASKS: usize = 64;
    const VALUE: usize = 256;
    println!("\n## Start-up with {keys} keys (etcd)\n");
    let Some(mut etcd) = EtcdServer::start().await else {
        println!("etcd: not found on PATH, skipped");
        return;
    };
    let kv: Vec<_> = etcd
        .channels(CONNECTIONS)
        .await
        .into_iter()
        .map(KvClient::new)
        .collect();
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(TASKS);
    for t in 0..TASKS {
        let mut cl = kv[t % kv.len()].clone();
        tasks.push(tokio::spawn(async move {
            for i in (t..keys).step_by(TASKS) {
                cl.put(PutRequest {
                    key: format!("loadgen/startup/{i:07}").into_bytes(),
                    value: vec![b'a' + (i % 26) as u8; VALUE],
                    ..Default::default()
                })
                .await
                .expect("etcd put while loading");
            }
        }));
    }
    for t in tasks {
        t.await.expect("loading task");
    }
    let load = t0.elapsed().as_secs_f64();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let rss = etcd.pid().and_then(etcd::resident_bytes).unwrap_or(0);
    let raw = (keys * (VALUE + "loadgen/startup/0000000".len())) as u64;
    let member = etcd.data_dir().join("member");
    let (db, wal) = (
        etcd::dir_bytes(&member.join("snap")),
        etcd::dir_bytes(&member.join("wal")),
    );
    drop(kv);
    let start = etcd.restart().await;
    let rss_after = etcd.pid().and_then(etcd::resident_bytes).unwrap_or(0);
    println!("| what | etcd |");
    println!("|---|---|");
    println!(
        "| load ({TASKS} tasks, one Put each) | {:.1} s ({:.0} puts/s) |",
        load,
        keys as f64 / load
    );
    println!("| raw data (keys + values) | {:.1} MiB |", mib(raw));
    println!(
        "| on disk: bbolt db + snapshots / WAL | {:.1} MiB / {:.1} MiB |",
        mib(db),
        mib(wal)
    );
    println!(
        "| resident memory after loading (VmRSS) | {:.1} MiB |",
        mib(rss)
    );
    println!(
        "| start-up: spawn until the first serializable Range answers | {:.0} ms |",
        start.as_secs_f64() * 1e3
    );
    println!(
        "| resident memory right after restart (VmRSS) | {:.1} MiB |",
        mib(rss_after)
    );
}

/// The allocator `confstrata serve` uses, so the embedded servers measure
/// what it does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The server runtime, as `confstrata serve` builds it: 2 workers, checks
/// on the pool's threads.
fn server_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Named apart from the clients' threads in a profile.
        .thread_name("confstrata-server")
        .thread_stack_size(confstrata_engine::CHECK_STACK_BYTES)
        .on_thread_start(confstrata_engine::assume_check_stack)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The argument that makes this binary a server in a child process (so
/// its memory can be measured apart from the clients').
const CHILD_ARG: &str = "--serve-child";

/// Child mode: seeds a store in `dir`, serves it on a loopback port,
/// prints `ADDR TOKEN` and serves until its stdin closes (the parent exits
/// or drops the handle).
fn serve_child(dir: &std::path::Path) {
    let rt = server_runtime();
    let (engine, token, _) = seeded(dir, false);
    rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(serve(
            engine,
            l,
            ServeOptions::default(),
            std::future::pending(),
        ));
        println!("{addr} {token}");
        use std::io::Write as _;
        std::io::stdout().flush().expect("stdout");
        // Blocks until the parent closes the pipe.
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink)
        })
        .await;
    });
}

/// A Confstrata server in a child process of its own: its resident memory
/// is the server's alone.
struct ChildServer {
    child: std::process::Child,
    addr: SocketAddr,
    token: String,
    _dir: tempfile::TempDir,
}

impl ChildServer {
    fn start() -> ChildServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = std::process::Command::new(std::env::current_exe().expect("own path"))
            .arg(CHILD_ARG)
            .arg(dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the child server");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().expect("child stdout")),
            &mut line,
        )
        .expect("the child server's address");
        let (addr, token) = line
            .trim()
            .split_once(' ')
            .expect("ADDR TOKEN from the child");
        ChildServer {
            addr: addr.parse().expect("child address"),
            token: token.to_owned(),
            child,
            _dir: dir,
        }
    }

    fn resident_bytes(&self) -> u64 {
        etcd::resident_bytes(self.child.id()).unwrap_or(0)
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        // Closing stdin ends it; wait, so its data dir can go.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn main() {
    // `RUST_LOG=h2=warn` (say) shows what the HTTP/2 layers report.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == CHILD_ARG) {
        let dir = argv.get(2).expect("--serve-child DIR");
        serve_child(std::path::Path::new(dir));
        return;
    }
    let a = args();
    let server_rt = server_runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, token, viewer_token) = seeded(dir.path(), false);
    let audited_dir = tempfile::tempdir().expect("tempdir");
    let (audited, _, audited_token) = seeded(audited_dir.path(), true);
    let (addr, base_addr, audited_addr, rest_addr) = server_rt.block_on(async {
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
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let audited_addr = l.local_addr().expect("addr");
        tokio::spawn(serve(
            audited.clone(),
            l,
            ServeOptions::default(),
            std::future::pending(),
        ));
        // The REST door over the same engine, as `confstrata serve` mounts it.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let rest_addr = l.local_addr().expect("addr");
        let host = confstrata_host::Host::new(engine.clone()).expect("host");
        let doors = confstrata_host::Doors::new(confstrata_http_api::router(&host));
        tokio::spawn(async move {
            let options = confstrata_host::ServeOptions {
                shutdown_grace: Duration::from_secs(1),
                tls: None,
            };
            host.serve(l, doors, &options, std::future::pending()).await
        });
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base_addr = l.local_addr().expect("addr");
        let fixed = Fixed {
            reply: format!("{{\"v\":\"{}\"}}", "x".repeat(256 - 8)),
        };
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(ConfigServiceServer::new(fixed))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l).map(|c| {
                    // As the real server does: no Nagle delay on small replies.
                    if let Ok(s) = &c {
                        let _ = s.set_nodelay(true);
                    }
                    c
                })),
        );
        (addr, base_addr, audited_addr, rest_addr)
    });
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    client_rt.block_on(async {
        let ours = clients(addr, Some(&token)).await;
        let viewers = clients(addr, Some(&viewer_token)).await;
        let base = clients(base_addr, None).await;
        let audited = clients(audited_addr, Some(&audited_token)).await;
        let size = ours[0].clone().resolve(resolve_req()).await.expect("resolve").into_inner().document_json.len();
        let etcd = EtcdServer::start().await;
        let etcd_kv: Vec<KvClient<Channel>> = match &etcd {
            Some(e) => {
                let kv: Vec<_> = e.channels(CONNECTIONS).await.into_iter().map(KvClient::new).collect();
                kv[0].clone().put(PutRequest { key: ETCD_GET_KEY.to_vec(), value: vec![b'x'; 256], ..Default::default() }).await.expect("etcd put");
                println!("etcd: {} at {}, single member, serializable reads\n", etcd_version(), e.url());
                kv
            }
            None => {
                println!("etcd: not found on PATH, skipping the etcd columns and the start-up section\n");
                Vec::new()
            }
        };
        let has_etcd = etcd.is_some();
        let rate = |s: &Stats| s.calls as f64 / s.seconds;
        rest_section(&a, rest_addr, &viewer_token, &viewers, etcd.as_ref()).await;
        if a.only_rest {
            return;
        }
        println!("## Resolve (webshop, env=prod,region=eu: {size} bytes of JSON with 2 sealed values) vs a fixed 256-byte tonic reply");
        println!("Every confstrata call carries a bearer token. viewer: sealed values masked, nothing written. secret-reader: both opened, one audit record per resolve. read-audited: a viewer on a second server with `audit_reads` on.");
        if has_etcd {
            println!("etcd: serializable Range of one key holding a 256-byte value, same connections and concurrency.");
        }
        println!("{} connections, {}s per point\n", CONNECTIONS, a.seconds);
        println!("section: a viewer's resolve of one key's section (`section=db.host`, the closest thing to a one-key get).");
        let (extra_head, extra_rule) = if has_etcd { (" etcd get/s | etcd p99 µs | viewer/etcd | section/etcd |", "---|---|---|---|") } else { ("", "") };
        println!("| concurrency | viewer resolve/s | p50 µs | p99 µs | section resolve/s | p99 µs | secret-reader resolve/s | p99 µs | read-audited resolve/s | p99 µs | baseline calls/s | p50 µs | p99 µs | viewer/baseline |{extra_head}");
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|{extra_rule}");
        for &c in &a.concurrency {
            let v = drive(&viewers, c, a.seconds, |mut cl, _| async move { cl.resolve(resolve_req()).await.map(drop) }).await;
            let sec = drive(&viewers, c, a.seconds, |mut cl, _| async move {
                cl.resolve(v1::ResolveRequest { section: "db.host".into(), ..resolve_req() }).await.map(drop)
            })
            .await;
            let r = drive(&ours, c, a.seconds, |mut cl, _| async move { cl.resolve(resolve_req()).await.map(drop) }).await;
            let au = drive(&audited, c, a.seconds, |mut cl, _| async move { cl.resolve(resolve_req()).await.map(drop) }).await;
            let b = drive(&base, c, a.seconds, |mut cl, _| async move { cl.resolve(resolve_req()).await.map(drop) }).await;
            let extra = if has_etcd {
                let e = drive(&etcd_kv, c, a.seconds, |mut cl, _| async move {
                    cl.range(RangeRequest { key: ETCD_GET_KEY.to_vec(), serializable: true, ..Default::default() }).await.map(drop)
                })
                .await;
                format!(" {:.0} | {:.0} | {:.2} | {:.2} |", rate(&e), e.p99_us, rate(&v) / rate(&e), rate(&sec) / rate(&e))
            } else {
                String::new()
            };
            println!(
                "| {c} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} |{extra}",
                rate(&v), v.p50_us, v.p99_us, rate(&sec), sec.p99_us, rate(&r), r.p99_us, rate(&au), au.p99_us, rate(&b), b.p50_us, b.p99_us, rate(&v) / rate(&b)
            );
        }

        // The floor of a durable commit at concurrency 1: one fdatasync of
        // one 4 KiB page (the least SQLite's WAL writes, and more than a
        // one-key change needs) on this disk, plus the no-op server's round trip.
        let noop = drive(&base, 1, a.seconds.min(2.0), |mut cl, _| async move { cl.resolve(resolve_req()).await.map(drop) }).await;
        let sync_us = fdatasync_us(dir.path(), 4096, 500);
        let floor_us = sync_us + 1e6 / rate(&noop);
        let mut at_one: Vec<String> = Vec::new();
        println!("\n## Commits (SetKeys, one key, durable)\n");
        if has_etcd {
            println!("etcd: Put of one key per task (`loadgen/commit/<task>`), a short value.\n");
        }
        println!("Server CPU: the CPU time of the server's threads (runtime, blocking pool, writer) per commit; etcd's: its process's per put.\n");
        let (extra_head, extra_rule) = if has_etcd { (" etcd put/s | etcd p99 µs | etcd CPU µs/put | commits/etcd |", "---|---|---|---|") } else { ("", "") };
        println!("| concurrency | commits/s | p50 µs | p99 µs | server CPU µs/commit |{extra_head}");
        println!("|---|---|---|---|---|{extra_rule}");
        let mut stage_rows = Vec::new();
        for &c in &[1usize, 16, 64] {
            let before = engine.stats(&Caller::local("loadgen")).expect("stats");
            let cpu0 = server_cpu_ns();
            let r = drive(&ours, c, a.seconds, |mut cl, n| async move {
                cl.set_keys(counter_set("webshop", n)).await.map(drop)
            })
            .await;
            let cpu_us = server_cpu_delta(&cpu0, &server_cpu_ns()) as f64 / 1e3 / r.calls.max(1) as f64;
            let extra = if has_etcd {
                let pid = etcd.as_ref().and_then(EtcdServer::pid).unwrap_or(0);
                let ecpu0 = process_cpu_ns(pid);
                let e = drive(&etcd_kv, c, a.seconds, |mut cl, n| async move {
                    cl.put(PutRequest {
                        key: format!("loadgen/commit/{}", n / 1_000_000).into_bytes(),
                        value: (n % 1_000_000).to_string().into_bytes(),
                        ..Default::default()
                    })
                    .await
                    .map(drop)
                })
                .await;
                let ecpu = match (ecpu0, process_cpu_ns(pid)) {
                    (Some(a), Some(b)) => format!("{:.0}", b.saturating_sub(a) as f64 / 1e3 / e.calls.max(1) as f64),
                    _ => "n/a".into(),
                };
                format!(" {:.0} | {:.0} | {ecpu} | {:.2} |", rate(&e), e.p99_us, rate(&r) / rate(&e))
            } else {
                String::new()
            };
            println!("| {c} | {:.0} | {:.0} | {:.0} | {cpu_us:.0} |{extra}", rate(&r), r.p50_us, r.p99_us);
            if c == 1 {
                at_one.push(format!("one key of a small layer: {:.0} µs per commit ({:.2}× the floor's time)", 1e6 / rate(&r), 1e6 / rate(&r) / floor_us));
            }
            let after = engine.stats(&Caller::local("loadgen")).expect("stats");
            let mean = |stage: &str| stage_mean_us(&before, &after, stage);
            let jobs = jobs_per_transaction(&before, &after);
            stage_rows.push(format!(
                "| {c} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} |",
                mean("authenticate").max(0.0), mean("commit"), mean("store-batch"), mean("fsync"), jobs
            ));
        }
        if !a.layer_keys.is_empty() {
            println!("\n## Commits into layers of a given size: bytes written per commit\n");
            println!("Each task sets one key of its own layer holding N keys of 256-byte values, to a new 256-byte value. Bytes written: the process's `write_bytes` (/proc/PID/io: what reached the disk, WAL, checkpoints and all) per commit; growth: the data directory's size per commit.");
            if has_etcd {
                println!("etcd: Put of a 256-byte value to one key per task, same figures for the etcd process and its data directory.");
            }
            println!("\n| keys per layer | concurrency | commits/s | p99 µs | bytes written/commit | dir growth/commit |{}", if has_etcd { " etcd put/s | etcd p99 µs | etcd bytes written/put | etcd dir growth/put | commits/etcd |" } else { "" });
            println!("|---|---|---|---|---|---|{}", if has_etcd { "---|---|---|---|---|" } else { "" });
            let mut sized_stages = Vec::new();
            for &keys in &a.layer_keys {
                let ns = format!("sized{keys}");
                fill_sized(&engine, &ns, keys, 64);
                for &c in &[1usize, 16, 64] {
                    let before = engine.stats(&Caller::local("loadgen")).expect("stats");
                    let (io0, dir0) = (process_write_bytes(std::process::id()), etcd::dir_bytes(dir.path()));
                    let ns2 = ns.clone();
                    let r = drive(&ours, c, a.seconds, move |mut cl, n| {
                        let ns = ns2.clone();
                        async move { cl.set_keys(sized_set(&ns, n)).await.map(drop) }
                    })
                    .await;
                    let (io1, dir1) = (process_write_bytes(std::process::id()), etcd::dir_bytes(dir.path()));
                    let after = engine.stats(&Caller::local("loadgen")).expect("stats");
                    let mean = |stage: &str| stage_mean_us(&before, &after, stage);
                    sized_stages.push(format!(
                        "| {keys} | {c} | {:.0} | {:.0} | {:.0} | {:.1} |",
                        mean("commit"), mean("store-batch"), mean("fsync"), jobs_per_transaction(&before, &after)
                    ));
                    let per = |a: Option<u64>, b: Option<u64>, n: usize| match (a, b) {
                        (Some(a), Some(b)) if n > 0 => format!("{:.0}", b.saturating_sub(a) as f64 / n as f64),
                        _ => "n/a".into(),
                    };
                    let ours_io = per(io0, io1, r.calls);
                    let ours_dir = per(Some(dir0), Some(dir1), r.calls);
                    let extra = match &etcd {
                        Some(e) => {
                            let pid = e.pid().unwrap_or(0);
                            let (eio0, edir0) = (process_write_bytes(pid), etcd::dir_bytes(&e.data_dir()));
                            let s = drive(&etcd_kv, c, a.seconds, |mut cl, n| async move {
                                cl.put(PutRequest {
                                    key: format!("loadgen/sized/{}", n / 1_000_000).into_bytes(),
                                    value: sized_value(n).into_bytes(),
                                    ..Default::default()
                                })
                                .await
                                .map(drop)
                            })
                            .await;
                            let (eio1, edir1) = (process_write_bytes(pid), etcd::dir_bytes(&e.data_dir()));
                            if c == 1 {
                                at_one.push(format!("etcd, a 256-byte put (beside the {keys}-key point): {:.0} µs per put ({:.2}× the floor's time)", 1e6 / rate(&s), 1e6 / rate(&s) / floor_us));
                            }
                            format!(
                                " {:.0} | {:.0} | {} | {} | {:.2} |",
                                rate(&s), s.p99_us, per(eio0, eio1, s.calls), per(Some(edir0), Some(edir1), s.calls), rate(&r) / rate(&s)
                            )
                        }
                        None => String::new(),
                    };
                    println!("| {keys} | {c} | {:.0} | {:.0} | {ours_io} | {ours_dir} |{extra}", rate(&r), r.p99_us);
                    if c == 1 {
                        at_one.push(format!("one key of a {keys}-key layer: {:.0} µs per commit ({:.2}× the floor's time)", 1e6 / rate(&r), 1e6 / rate(&r) / floor_us));
                    }
                }
            }
            println!("\nAt concurrency 1, against the floor: one fdatasync of 4 KiB appended to a file in the same directory ({sync_us:.0} µs, median of 500) plus the no-op server's round trip ({:.0} µs, mean): **{floor_us:.0} µs**.\n", 1e6 / rate(&noop));
            for line in &at_one {
                println!("- {line}");
            }
            println!("\nWhere those commits' time goes (stage means):\n");
            println!("| keys per layer | concurrency | commit µs | store-batch µs | fsync µs | jobs per transaction |");
            println!("|---|---|---|---|---|---|");
            for row in sized_stages {
                println!("{row}");
            }
        }

        println!("\n## Validated commits (SetKeys into a namespace with a schema and a rule; checked before the store, under the namespace's lock)\n");
        println!("| concurrency | commits/s | p50 µs | p99 µs | validate µs (mean) | jobs per transaction |");
        println!("|---|---|---|---|---|---|");
        for &c in &[1usize, 16, 64] {
            let before = engine.stats(&Caller::local("loadgen")).expect("stats");
            let r = drive(&ours, c, a.seconds, |mut cl, n| async move {
                cl.set_keys(counter_set("checked", n)).await.map(drop)
            })
            .await;
            let after = engine.stats(&Caller::local("loadgen")).expect("stats");
            let validate = stage_mean_us(&before, &after, "validate");
            let jobs = jobs_per_transaction(&before, &after);
            println!("| {c} | {:.0} | {:.0} | {:.0} | {validate:.0} | {jobs:.1} |", rate(&r), r.p50_us, r.p99_us);
        }

        println!("\nWhere a commit's time goes (the server's own stage timings, means over each point):\n");
        println!("| concurrency | authenticate µs | commit µs (engine, end to end) | store-batch µs (one transaction) | fsync µs (its COMMIT) | jobs per transaction |");
        println!("|---|---|---|---|---|---|");
        for row in stage_rows {
            println!("{row}");
        }

        println!("\n## Watch fan-out and stream memory: one commit until the last watcher has its event\n");
        println!("Each point runs a fresh Confstrata server in a child process (this binary with `{CHILD_ARG}`), so its resident memory is the server's alone. Half the watchers watch the namespace, half the resolved context env=prod,region=eu. Memory per stream: the server's VmRSS with the streams open and caught up, less its VmRSS before they opened, over the number of streams.");
        if has_etcd {
            println!("etcd: each watcher has its own Watch stream on one key, the streams spread over {CONNECTIONS} connections; one Put per round; etcd's VmRSS measured the same way.");
        }
        let (extra_head, extra_rule) = if has_etcd { (" etcd median ms | etcd max ms | etcd KiB per stream |", "---|---|---|") } else { ("", "") };
        println!("\n| watchers | median ms | max ms (of 5 commits) | KiB per stream |{extra_head}");
        println!("|---|---|---|---|{extra_rule}");
        for &w in &a.watchers {
            let server = ChildServer::start();
            let writer = clients(server.addr, Some(&server.token)).await;
            // Warm up: a resolve and a commit, so what is measured next is the streams.
            writer[0].clone().resolve(resolve_req()).await.expect("resolve");
            writer[0].clone().set_keys(counter_set("webshop", 0)).await.expect("commit");
            tokio::time::sleep(Duration::from_millis(300)).await;
            let rss0 = server.resident_bytes();
            // Spread watchers over several connections, like many services would.
            let conns = clients(server.addr, Some(&server.token)).await;
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
            let ready = Arc::new(tokio::sync::Semaphore::new(0));
            let mut tasks = Vec::with_capacity(w);
            for i in 0..w {
                let mut cl = conns[i % conns.len()].clone();
                let tx = tx.clone();
                let ready = Arc::clone(&ready);
                tasks.push(tokio::spawn(async move {
                    // Half watch the namespace, half one resolved context (the
                    // server resolves it once per revision for all of them).
                    let context = if i % 2 == 0 { HashMap::new() } else { resolve_req().context };
                    let req = v1::WatchRequest { namespace: "webshop".into(), context, ..Default::default() };
                    let mut s = cl.watch(req).await.expect("watch").into_inner();
                    while let Some(Ok(e)) = s.next().await {
                        match e.info {
                            None => ready.add_permits(1),
                            Some(info) => {
                                if tx.send(info.revision).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                }));
            }
            drop(tx);
            ready.acquire_many(u32::try_from(w).expect("watchers")).await.expect("ready").forget();
            tokio::time::sleep(Duration::from_millis(300)).await;
            let per_stream = server.resident_bytes().saturating_sub(rss0) as f64 / w as f64 / 1024.0;
            let mut times = Vec::new();
            for round in 0..5 {
                let t0 = Instant::now();
                let rev = writer[0]
                    .clone()
                    .set_keys(v1::SetKeysRequest {
                        namespace: "webshop".into(),
                        layer: "env/prod".into(),
                        entries: vec![v1::KeyValue { key: "fanout.round".into(), value_json: round.to_string(), secret: false }],
                        ..Default::default()
                    })
                    .await
                    .expect("commit")
                    .into_inner()
                    .commit
                    .expect("commit info")
                    .revision;
                wait_for_watchers(&mut rx, rev, w, "confstrata").await;
                times.push(t0.elapsed().as_secs_f64() * 1e3);
            }
            for t in tasks {
                t.abort();
            }
            drop(server);
            times.sort_by(f64::total_cmp);
            let extra = match &etcd {
                Some(e) => {
                    let (t, kib) = etcd_fanout(e, &etcd_kv[0], w).await;
                    format!(" {:.1} | {:.1} | {kib:.1} |", t[2], t[4])
                }
                None => String::new(),
            };
            println!("| {w} | {:.1} | {:.1} | {per_stream:.1} |{extra}", times[2], times[4]);
        }

        if has_etcd && a.startup_keys > 0 {
            // A fresh etcd, so its history holds just these keys.
            drop(etcd_kv);
            drop(etcd);
            etcd_startup(a.startup_keys).await;
        }
    });
    drop(client_rt);
    drop(server_rt);
}
