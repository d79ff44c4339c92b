//! Confstrata's protocol-free runtime, under both front doors (gRPC in
//! `confstrata-grpc-api`, REST in `confstrata-http-api`).
//!
//! - [`open`] and [`open_with`]: the data directory, the embedded SQLite
//!   store and the master key, assembled into an [`Engine`];
//! - [`Runner`]: every request's credentials ([`Credentials`], from its
//!   headers), authentication, and the engine call on the blocking pool
//!   under a concurrency bound, answering `confstrata_core` results;
//! - [`watch`]: the watch feed, one fan-out of model events for every
//!   watcher;
//! - [`Host::serve`]: one listener for every front door ([`Doors`]),
//!   HTTP/1.1 and HTTP/2, cleartext or TLS, and the graceful shutdown, with
//!   the stopping state that health reports.
//!
//! It knows no protocol: a front door turns a request into a call of the
//! runner and the answer into its wire form.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use confstrata_host::{Doors, Host, ServeOptions};
//!
//! let engine = confstrata_host::open(std::path::Path::new("./confstrata-data"))?;
//! let host = Host::new(engine)?;
//! let router = axum::Router::new(); // a front door's routes
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7400").await?;
//! host.serve(listener, Doors::new(router), &ServeOptions::default(), async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! # Ok(())
//! # }
//! ```

mod backups;
mod identity;
mod keyfile;
mod open;
mod retention;
mod runner;
mod schedule;
mod serve;
pub mod watch;

use std::future::Future;

use confstrata_engine::Engine;
use tokio::net::TcpListener;

pub use backups::{BACKUP_CALLER, scheduled_backup};
pub use identity::ClientIdentity;
pub use keyfile::KeyFile;
pub use open::{DB_FILE, KeySource, MASTER_KEY_FILE, OpenOptions, open, open_with, restore_into};
pub use retention::RETENTION_CALLER;
pub use runner::{Authenticated, Credentials, Peer, Runner, drain};
pub use serve::{Doors, PeerCertificates, ServeError, ServeOptions, TlsOptions, peer};

/// One server's runtime state, shared by its front doors: the engine, the
/// runner with its bounds, the watch hub, and whether it is stopping.
#[derive(Clone, Debug)]
pub struct Host {
    runner: Runner,
    watches: watch::Hub,
    stop_tx: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    stop_rx: tokio::sync::watch::Receiver<bool>,
}

impl Host {
    /// The runtime over `engine`. Starts the watch hub, so it must be
    /// called on a tokio runtime.
    pub fn new(engine: Engine) -> confstrata_core::Result<Host> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let runner = Runner::new(engine);
        let watches = watch::Hub::start(runner.engine(), stop_rx.clone(), runner.read_bound())?;
        Ok(Host {
            runner,
            watches,
            stop_tx: std::sync::Arc::new(stop_tx),
            stop_rx,
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        self.runner.engine()
    }

    /// The runner every request goes through.
    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    /// The watch hub.
    pub fn watches(&self) -> &watch::Hub {
        &self.watches
    }

    /// Turns true when the server starts shutting down: health answers
    /// NOT_SERVING from then on, long-lived streams end.
    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stop_rx.clone()
    }

    /// The newest committed revision, changing as commits land: what a
    /// long poll waits on.
    pub fn revisions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.watches.revisions()
    }

    /// Whether the server is shutting down.
    pub fn is_stopping(&self) -> bool {
        *self.stop_rx.borrow()
    }

    /// Serves `doors` on `listener` until `shutdown` completes, then shuts
    /// down gracefully: [`Host::stopping`] turns true (health NOT_SERVING,
    /// watches end), in-flight requests finish (for up to the shutdown
    /// grace), and it returns.
    pub async fn serve(
        &self,
        listener: TcpListener,
        doors: Doors,
        options: &ServeOptions,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let stop = std::sync::Arc::clone(&self.stop_tx);
        serve::serve(listener, doors, options, shutdown, move || {
            let _ = stop.send(true);
        })
        .await
    }
}
