//! Watch over Server-Sent Events with a real HTTP client (reqwest), on a
//! real store over TCP: the backlog and live changes in order, a resume
//! with `Last-Event-ID` across a server restart that loses and repeats
//! nothing, a compacted start ended by one `compacted` event, refusals as
//! problems, and streams that end when the server stops.

use std::path::Path;

use confstrata_core::RetentionPolicy;
use confstrata_core::serde_json::{self, Value, json};
use confstrata_engine::Caller;
use confstrata_host::{Doors, Host};
use futures_util::StreamExt as _;

/// A server on `data`, its token kept in a file beside it across restarts.
struct Server {
    addr: std::net::SocketAddr,
    host: Host,
    token: String,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<Result<(), confstrata_host::ServeError>>,
}

impl Server {
    async fn start(dir: &Path) -> Server {
        let engine = confstrata_host::open(&dir.join("data")).unwrap();
        let token = match engine.bootstrap_admin().unwrap() {
            Some(t) => t.expose_secret().to_owned(),
            None => std::fs::read_to_string(dir.join("token")).unwrap(),
        };
        std::fs::write(dir.join("token"), &token).unwrap();
        let host = Host::new(engine).unwrap();
        let doors = Doors::new(confstrata_http_api::router(&host));
        let (addr, stop, served) = crate::serve(&host, doors).await;
        Server {
            addr,
            host,
            token,
            stop,
            served,
        }
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.served.await.unwrap().unwrap();
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Commits a put of `web`'s `defaults` layer; its revision.
    fn put(&self, pool: u64) -> u64 {
        let cs = serde_json::from_value(json!({"author": "t", "message": format!("pool {pool}"), "ops": [
            {"op": "put", "namespace": "web", "layer": "defaults", "document": {"db": {"pool": pool}}},
        ]}))
        .unwrap();
        self.host
            .engine()
            .commit(&Caller::local("test"), &cs)
            .unwrap()
            .revision
    }

    async fn watch(&self, query: &str, last_event_id: Option<u64>) -> reqwest::Response {
        let mut req = reqwest::Client::new()
            .get(self.url(&format!("/v1/namespaces/web/watch{query}")))
            .bearer_auth(&self.token)
            .header("Accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        req.send().await.unwrap()
    }
}

/// One parsed event: its `event`, `id` and `data` (as JSON).
#[derive(Debug)]
struct Event {
    kind: String,
    id: Option<u64>,
    data: Value,
}

/// Reads events off an SSE body: `next` returns the next whole event, or
/// `None` once the body ended.
struct Events {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl Events {
    fn of(response: reqwest::Response) -> Events {
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "{response:?}"
        );
        Events {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    async fn next(&mut self) -> Option<Event> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = Event {
                    kind: "message".to_owned(),
                    id: None,
                    data: Value::Null,
                };
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        event.kind = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        event.id = Some(v.parse().unwrap());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                // A comment alone (keep-alive) is no event.
                if data.is_empty() {
                    continue;
                }
                event.data = serde_json::from_str(&data).unwrap();
                return Some(event);
            }
            match self.body.next().await {
                Some(chunk) => self
                    .buffer
                    .push_str(std::str::from_utf8(&chunk.unwrap()).unwrap()),
                None => return None,
            }
        }
    }

    /// `change` events up to and with the first `caught-up`: their
    /// revisions, and the caught-up's.
    async fn until_caught_up(&mut self) -> (Vec<u64>, u64) {
        let mut changes = Vec::new();
        loop {
            let e = self
                .next()
                .await
                .expect("the stream ended before caught-up");
            match e.kind.as_str() {
                "change" => {
                    assert_eq!(e.id, e.data["revision"].as_u64(), "{e:?}");
                    changes.push(e.id.unwrap());
                }
                "caught-up" => return (changes, e.id.unwrap()),
                other => panic!("unexpected {other}: {e:?}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_watch_resumes_across_a_restart_with_nothing_lost_or_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let ns = json!({"author": "t", "message": "", "ops": [
        {"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults", "env/{env}"], "matrix": {"env": ["dev", "prod"]}}},
        {"op": "put-namespace", "spec": {"name": "other", "levels": ["defaults"]}},
    ]});
    let first = server
        .host
        .engine()
        .commit(&Caller::local("test"), &serde_json::from_value(ns).unwrap())
        .unwrap()
        .revision;
    let r2 = server.put(2);
    let r3 = server.put(3);

    // The backlog from the first revision, then live changes; a context
    // watch carries the resolved document.
    let mut events = Events::of(
        server
            .watch(&format!("?env=prod&start_revision={first}"), None)
            .await,
    );
    let (backlog, caught_up) = events.until_caught_up().await;
    assert_eq!(backlog, vec![first, r2, r3]);
    assert_eq!(caught_up, r3);
    let r4 = server.put(4);
    let live = events.next().await.unwrap();
    assert_eq!(
        (live.kind.as_str(), live.id),
        ("change", Some(r4)),
        "{live:?}"
    );
    assert_eq!(live.data["document"], json!({"db": {"pool": 4}}));
    assert_eq!(live.data["message"], "pool 4");
    assert_eq!(
        live.data["items"],
        json!([{"namespace": "web", "layer": "defaults", "deleted": false}])
    );
    let last_seen = live.id.unwrap();

    // The server stops: the stream ends (it does not hold the shutdown).
    let ending = tokio::spawn(async move { events.next().await.is_none() });
    server.stop().await;
    assert!(ending.await.unwrap(), "the stream ended with the server");

    // Changes while the client was away, on a new server over the same store.
    let server = Server::start(dir.path()).await;
    let r5 = server.put(5);
    let r6 = server.put(6);
    let mut events = Events::of(server.watch("?env=prod", Some(last_seen)).await);
    let (resumed, caught_up) = events.until_caught_up().await;
    assert_eq!(
        resumed,
        vec![r5, r6],
        "exactly what came after Last-Event-ID"
    );
    assert_eq!(caught_up, r6);
    // A change to another namespace is not this watch's.
    let other = serde_json::from_value(json!({"author": "t", "message": "", "ops": [
        {"op": "put", "namespace": "other", "layer": "defaults", "document": {"x": 1}},
    ]}))
    .unwrap();
    server
        .host
        .engine()
        .commit(&Caller::local("test"), &other)
        .unwrap();
    let r8 = server.put(8);
    let next = events.next().await.unwrap();
    assert_eq!((next.kind.as_str(), next.id), ("change", Some(r8)));
    drop(events);

    // History compacted past the client's last event: one `compacted`
    // event naming the oldest revision kept, then the end.
    server.put(9);
    server
        .host
        .engine()
        .apply_retention(
            &Caller::local("test"),
            &RetentionPolicy {
                keep_versions: 1,
                keep_days: 0,
            },
        )
        .unwrap();
    let oldest = server.host.engine().store().oldest_revision().unwrap();
    assert!(
        oldest > r3,
        "compaction dropped revision {r3}: oldest {oldest}"
    );
    let mut events = Events::of(server.watch("", Some(r3)).await);
    let compacted = events.next().await.unwrap();
    assert_eq!(compacted.kind, "compacted", "{compacted:?}");
    assert_eq!(compacted.data["code"], "out-of-range");
    assert_eq!(compacted.data["status"], 400);
    assert!(
        compacted.data["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("oldest readable revision is {oldest}")),
        "{compacted:?}"
    );
    assert!(events.next().await.is_none(), "the stream ends after it");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_that_cannot_start_is_a_problem_not_a_stream() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let ns = json!({"author": "t", "message": "", "ops": [
        {"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults", "env/{env}"], "matrix": {"env": ["dev", "prod"]}}},
    ]});
    server
        .host
        .engine()
        .commit(&Caller::local("test"), &serde_json::from_value(ns).unwrap())
        .unwrap();
    let problem = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{r:?}"
        );
        let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        (status, body)
    };
    // A start in the future, a bad Last-Event-ID, a context the matrix
    // does not allow, no such namespace, no token.
    let (status, body) = problem(server.watch("?start_revision=99", None).await).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("out-of-range")));
    let bad_id = reqwest::Client::new()
        .get(server.url("/v1/namespaces/web/watch"))
        .bearer_auth(&server.token)
        .header("Last-Event-ID", "abc")
        .send()
        .await
        .unwrap();
    let (status, body) = problem(bad_id).await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["field"], "Last-Event-ID");
    let (status, body) = problem(server.watch("?env=staging", None).await).await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["field"], "context", "{body}");
    let missing = reqwest::Client::new()
        .get(server.url("/v1/namespaces/nope/watch"))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(missing).await.0, 404);
    let anonymous = reqwest::Client::new()
        .get(server.url("/v1/namespaces/web/watch"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        "Bearer realm=\"confstrata\""
    );
    assert_eq!(problem(anonymous).await.0, 401);
    server.stop().await;
}
