//! End-to-end tests of the client against the real server
//! (`confstrata_grpc_api::serve` on 127.0.0.1 over a SQLite store in a
//! temp dir): CRUD and resolve, the figment provider and its fallback file,
//! and watches that resume across a server restart.

mod admin;
mod client;
mod provider;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use confstrata_client::Client;
use confstrata_client::model::{ChangeSet, serde_json};
use confstrata_engine::Engine;
use confstrata_grpc_api::{ServeOptions, serve};

/// A hang guard for awaiting events: generous, never a timing assertion.
pub(crate) const GUARD: Duration = Duration::from_secs(60);

/// A server on its own thread and runtime, so stopping it closes every
/// connection it holds, as a real process exit would.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    /// The admin token of the data dir (created on its first start).
    pub(crate) token: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Starts a server on a free port.
    pub(crate) fn start(data: &Path) -> Server {
        Server::start_on(data, 0)
    }

    /// Starts a server on `127.0.0.1:port` (0: a free port). Binding the
    /// port of a server that just stopped is retried a bounded number of
    /// times, in case the OS has not released it yet.
    pub(crate) fn start_on(data: &Path, port: u16) -> Server {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let dir = data.to_owned();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let engine = confstrata_host::open(&dir).unwrap();
                admin_token(&engine, &dir);
                let mut attempt = 0;
                let listener = loop {
                    match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                        Ok(l) => break l,
                        Err(e) if attempt < 200 => {
                            attempt += 1;
                            let _ = e;
                            tokio::time::sleep(Duration::from_millis(25)).await;
                        }
                        Err(e) => panic!("cannot bind 127.0.0.1:{port}: {e}"),
                    }
                };
                ready_tx.send(listener.local_addr().unwrap()).unwrap();
                serve(engine, listener, ServeOptions::default(), async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
            // Dropping the runtime ends whatever connection task is left.
            drop(rt);
        });
        let addr = ready_rx.recv().expect("the server thread failed to start");
        Server {
            addr,
            token: std::fs::read_to_string(data.join("test-admin-token")).unwrap(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`, as a user would type it.
    pub(crate) fn addr(&self) -> String {
        self.addr.to_string()
    }

    pub(crate) async fn client(&self) -> Client {
        Client::connect_with(&self.addr(), self.options())
            .await
            .unwrap()
    }

    /// Client options with the admin token.
    pub(crate) fn options(&self) -> confstrata_client::ClientOptions {
        confstrata_client::ClientOptions::default().token(self.token.clone())
    }

    /// Stops the server gracefully and waits until its thread (and
    /// runtime) are gone. Async, so that the test's runtime keeps driving
    /// the clients' connections while the server closes them.
    pub(crate) async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            tokio::task::spawn_blocking(move || t.join())
                .await
                .unwrap()
                .expect("the server thread panicked");
        }
    }
}

impl Drop for Server {
    /// A server not stopped by its test is told to stop, not waited for.
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A change set from JSON.
pub(crate) fn change_set(v: serde_json::Value) -> ChangeSet {
    serde_json::from_value(v).unwrap()
}

/// The webshop-like namespace used by most tests: defaults < env < env/region.
pub(crate) fn seed() -> ChangeSet {
    change_set(serde_json::json!({
        "author": "seed", "message": "seed", "ops": [
            {"op": "put-namespace", "spec": {
                "name": "web",
                "levels": ["defaults", "env/{env}", "env/{env}/region/{region}"],
                "matrix": {"env": ["dev", "prod"], "region": ["eu", "us"]}
            }},
            {"op": "put", "namespace": "web", "layer": "defaults", "document": {
                "db": {"host": "localhost", "pool": 5}, "debug": true, "name": "web"
            }},
            {"op": "put", "namespace": "web", "layer": "env/prod", "document": {
                "db": {"host": "db.prod"}, "debug": false
            }},
            {"op": "put", "namespace": "web", "layer": "env/prod/region/eu", "document": {
                "db": {"pool": 20}
            }}
        ]
    }))
}

/// Creates the admin token on a data dir's first start and keeps it in
/// `test-admin-token` there, for later starts and for clients.
pub(crate) fn admin_token(engine: &Engine, dir: &Path) {
    if let Some(t) = engine.bootstrap_admin().unwrap() {
        std::fs::write(dir.join("test-admin-token"), t.expose_secret()).unwrap();
    }
}
