//! The HTTP front door on the host's listener, over real TCP: liveness,
//! readiness, 404 for the rest, and requests told apart by content type.

mod admin;
mod diffs;
mod limits;
mod parity;
mod rest;
mod sse;
mod tables;
mod tls;

use std::time::Duration;

use confstrata_core::serde_json::{self, json};
use confstrata_engine::Caller;
use confstrata_host::{Doors, Host, ServeOptions};
use confstrata_http_api::HttpOptions;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// One HTTP/1.1 request on a fresh connection; the response's status line
/// and body.
pub(crate) async fn request(addr: std::net::SocketAddr, head: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("{head}\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    let status = out.lines().next().unwrap_or_default().to_owned();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

/// A server running `doors` on a loopback port (5 s of grace): its
/// address, the sender that stops it, and its task.
pub(crate) async fn serve(
    host: &Host,
    doors: Doors,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), confstrata_host::ServeError>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let host = host.clone();
    let served = tokio::spawn(async move {
        let options = ServeOptions {
            shutdown_grace: Duration::from_secs(5),
            tls: None,
        };
        host.serve(listener, doors, &options, async {
            let _ = stop_rx.await;
        })
        .await
    });
    (addr, stop_tx, served)
}

/// A real server over TCP on a fresh store with one namespace, `web`
/// (levels `defaults`, `env/{env}`; env dev or prod; `defaults` = `{"a": 1}`),
/// and an admin token.
pub(crate) struct Server {
    pub(crate) host: Host,
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) token: String,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<Result<(), confstrata_host::ServeError>>,
    _dir: tempfile::TempDir,
}

impl Server {
    pub(crate) async fn start(options: HttpOptions) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let engine = confstrata_host::open(&dir.path().join("data")).unwrap();
        let token = engine
            .bootstrap_admin()
            .unwrap()
            .unwrap()
            .expose_secret()
            .to_owned();
        let cs = serde_json::from_value(json!({"author": "t", "message": "", "ops": [
            {"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults", "env/{env}"], "matrix": {"env": ["dev", "prod"]}}},
            {"op": "put", "namespace": "web", "layer": "defaults", "document": {"a": 1}},
        ]}))
        .unwrap();
        engine.commit(&Caller::local("test"), &cs).unwrap();
        let host = Host::new(engine).unwrap();
        let doors = Doors::new(confstrata_http_api::router_with(&host, &options));
        let (addr, stop, served) = crate::serve(&host, doors).await;
        Server {
            host,
            addr,
            token,
            stop,
            served,
            _dir: dir,
        }
    }

    pub(crate) async fn stop(self) {
        self.stop.send(()).unwrap();
        self.served.await.unwrap().unwrap();
    }

    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new().request(method, format!("http://{}{path}", self.addr))
    }

    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path)
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn liveness_readiness_and_doors_by_content_type() {
    let dir = tempfile::tempdir().unwrap();
    let engine = confstrata_host::open(&dir.path().join("data")).unwrap();
    let host = Host::new(engine).unwrap();
    let other = axum::Router::new().fallback(|| async { "the other door" });
    let h2 = axum::Router::new().fallback(|| async { "the HTTP/2 door" });
    let doors = Doors::new(confstrata_http_api::router(&host))
        .with("application/x-other", other)
        .with_http2("application/grpc", h2);
    let (addr, stop_tx, served) = serve(&host, doors).await;

    assert_eq!(
        request(addr, "GET /healthz HTTP/1.1").await,
        ("HTTP/1.1 200 OK".to_owned(), "ok".to_owned())
    );
    assert_eq!(
        request(addr, "GET /readyz HTTP/1.1").await,
        ("HTTP/1.1 200 OK".to_owned(), "ready".to_owned())
    );
    // Anything but the probes is behind the authentication gate.
    let (status, _) = request(addr, "GET /no/such/thing HTTP/1.1").await;
    assert_eq!(status, "HTTP/1.1 401 Unauthorized");
    let (status, body) = request(
        addr,
        "POST /healthz HTTP/1.1\r\nContent-Type: application/x-other+json\r\nContent-Length: 0",
    )
    .await;
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "the other door")
    );
    // A door for HTTP/2 only is not reached over HTTP/1.1; the client is
    // told why.
    let (status, body) = request(
        addr,
        "POST /healthz HTTP/1.1\r\nContent-Type: application/grpc+proto\r\nContent-Length: 0",
    )
    .await;
    assert_eq!(status, "HTTP/1.1 505 HTTP Version Not Supported");
    assert!(
        body.starts_with("application/grpc+proto needs HTTP/2; this request came over HTTP/1.1"),
        "{body}"
    );
    assert!(!host.is_stopping());

    stop_tx.send(()).unwrap();
    served.await.unwrap().unwrap();
    assert!(host.is_stopping(), "the host says it stopped");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test]
async fn connections_still_busy_after_the_grace_period_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let engine = confstrata_host::open(&dir.path().join("data")).unwrap();
    let host = Host::new(engine).unwrap();
    // A request that never finishes on its own.
    let (entered_tx, entered) = tokio::sync::mpsc::unbounded_channel::<()>();
    let stuck = axum::Router::new().fallback(move || {
        let _ = entered_tx.send(());
        std::future::pending::<&'static str>()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let served = {
        let host = host.clone();
        tokio::spawn(async move {
            let options = ServeOptions {
                shutdown_grace: Duration::from_millis(100),
                tls: None,
            };
            host.serve(listener, Doors::new(stuck), &options, async {
                let _ = stop_rx.await;
            })
            .await
        })
    };
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /forever HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut entered = entered;
    entered.recv().await.unwrap();
    stop_tx.send(()).unwrap();
    served.await.unwrap().unwrap();
    // The server returned: the connection it could not finish is closed,
    // not left running on the runtime with nobody to end it.
    let mut rest = Vec::new();
    let read = stream.read_to_end(&mut rest).await;
    assert!(
        matches!(read, Ok(0)) || read.is_err(),
        "the stuck connection is closed, got {read:?} {rest:?}"
    );
}
