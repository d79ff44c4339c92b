//! What every request of every front door does around its engine call:
//! take the credentials from the request headers, authenticate, and run
//! the engine on the blocking pool under a concurrency bound. Answers are
//! `confstrata_core` results; each front door maps errors with its table.

use std::net::SocketAddr;
use std::sync::Arc;

use confstrata_core::{ChangeSet, CommitInfo, Error, Result};
use confstrata_engine::{Caller, CertificateIdentity, Engine, Route};
use tokio::sync::Semaphore;

/// The credentials of a request, read from its headers before the body is
/// taken: the `authorization` header, the request id (`x-request-id`, or a
/// fresh one) and the client's address (its IP: a client's port changes
/// per connection), for counting failed authentications per source.
#[derive(Debug, Clone)]
pub struct Credentials {
    header: Option<String>,
    request_id: String,
    source: String,
    certificate: Option<CertificateIdentity>,
    /// The caller the authentication gate found for this request.
    caller: Option<Caller>,
}

/// The caller of a request, found by the host's authentication gate
/// ([`crate::gate`]) before the request reached its door's router, and
/// put in the request's extensions (which no client can set).
#[derive(Debug, Clone)]
pub struct Authenticated(pub Caller);

/// Request ids for requests that bring none.
static NEXT_REQUEST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Credentials {
    /// Reads a request's credentials from its headers; `remote` is the
    /// peer's address when known, `door` names the front door in request
    /// ids made here (`grpc-17`, `http-4`).
    pub fn from_headers(
        headers: &http::HeaderMap,
        remote: Option<SocketAddr>,
        door: &str,
    ) -> Credentials {
        let header = headers.get(http::header::AUTHORIZATION).map(|v| {
            v.to_str()
                .map(str::to_owned)
                .unwrap_or_else(|_| "<not ASCII>".to_owned())
        });
        let request_id = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map_or_else(
                || {
                    format!(
                        "{door}-{}",
                        NEXT_REQUEST.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    )
                },
                str::to_owned,
            );
        let source = remote.map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string());
        Credentials {
            header,
            request_id,
            source,
            certificate: None,
            caller: None,
        }
    }

    /// Takes the caller the authentication gate found (the request
    /// extension), so the call does not authenticate again; the request
    /// id becomes the one the gate gave the caller.
    #[must_use]
    pub fn with_authenticated(mut self, authenticated: Option<&Authenticated>) -> Credentials {
        if let Some(Authenticated(caller)) = authenticated {
            self.request_id = caller.request_id().to_owned();
            self.caller = Some(caller.clone());
        }
        self
    }

    /// Adds what the host read from the connection's client certificate
    /// (the request extension the listener attaches under mutual TLS with
    /// an identity rule).
    #[must_use]
    pub fn with_certificate(mut self, certificate: Option<&CertificateIdentity>) -> Credentials {
        self.certificate = certificate.cloned();
        self
    }

    /// The request id (as given, or made for it).
    pub fn request_id(&self) -> &str {
        &self.request_id
    }
}

/// How much of a refused request's body [`drain`] takes, at most.
const DRAIN_BYTES: usize = 64 << 10;
/// How long [`drain`] waits for it, at most.
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Takes what a client is still sending of a request refused before its
/// body was read (up to 64 KiB, for at most a second), unparsed, so that
/// the early answer does not reset the stream under a client still
/// writing: over HTTP/2 some clients (curl) report a reset that comes
/// while they send as an error, not the answer. A larger or slower body is
/// cut off (the stream reset or, over HTTP/1.1, the connection closed).
pub async fn drain(body: axum::body::Body) {
    let _ = tokio::time::timeout(DRAIN_WAIT, axum::body::to_bytes(body, DRAIN_BYTES)).await;
}

/// The peer address of a connection, put in every request's extensions by
/// the host's server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// Which semaphore an engine call takes.
#[derive(Clone, Copy)]
enum Kind {
    Read,
    Write,
}

/// Runs engine calls for the front doors of one server; clones share the
/// engine and the concurrency bounds.
#[derive(Clone)]
pub struct Runner {
    engine: Engine,
    /// Bounds concurrent engine reads to what the CPUs can run: more
    /// threads than cores only add contention (and SQLite connections).
    reads: Arc<Semaphore>,
    /// Bounds concurrent commits, generously: waiting committers are what
    /// group commit batches together.
    writes: Arc<Semaphore>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("reads", &self.reads.available_permits())
            .field("writes", &self.writes.available_permits())
            .finish_non_exhaustive()
    }
}

fn shutting_down() -> Error {
    Error::Unavailable {
        message: "the server is shutting down".to_owned(),
    }
}

fn task_failed(e: &tokio::task::JoinError) -> Error {
    Error::Internal {
        message: format!("task failed: {e}"),
    }
}

impl Runner {
    /// A runner over `engine`, with bounds sized to the machine.
    pub fn new(engine: Engine) -> Runner {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Runner {
            engine,
            reads: Arc::new(Semaphore::new((2 * cores).max(4))),
            writes: Arc::new(Semaphore::new(256)),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The bound on concurrent engine reads, for other work that reads
    /// the store on the blocking pool (the watch feed).
    pub fn read_bound(&self) -> Arc<Semaphore> {
        Arc::clone(&self.reads)
    }

    /// Authenticates and runs an engine read on the blocking pool (SQLite
    /// does file I/O; a refused token is audited, which writes too).
    pub async fn run<T: Send + 'static>(
        &self,
        credentials: Credentials,
        f: impl FnOnce(&Engine, &Caller) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.run_as(Kind::Read, credentials, f).await
    }

    /// [`Runner::run`] for an engine call that commits.
    pub async fn write<T: Send + 'static>(
        &self,
        credentials: Credentials,
        f: impl FnOnce(&Engine, &Caller) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.run_as(Kind::Write, credentials, f).await
    }

    /// Runs an engine call that never blocks (an answer from memory) on the
    /// calling async thread. `None` when the credentials do not check out
    /// or the call itself says no: the caller then takes the slow path
    /// ([`Runner::run`]), which authenticates again and audits a failure.
    pub fn fast<T>(
        &self,
        credentials: &Credentials,
        f: impl FnOnce(&Engine, &Caller) -> Option<T>,
    ) -> Option<T> {
        let caller = self.quiet(credentials)?;
        f(&self.engine, &caller)
    }

    /// The caller, from the gate or authenticated from memory; `None` when
    /// that fails (the failure is not audited).
    fn quiet(&self, credentials: &Credentials) -> Option<Caller> {
        if let Some(caller) = &credentials.caller {
            return Some(caller.clone());
        }
        self.engine.authenticate_quietly(
            credentials.header.as_deref(),
            credentials.certificate.as_ref(),
            &credentials.request_id,
        )
    }

    /// The authentication gate in front of a door's router: authenticates
    /// a request from its headers alone, before any of its body is read,
    /// and puts the caller in its extensions ([`Authenticated`]) for the
    /// handler. An error (no or a bad token: `Unauthenticated`; too many
    /// failures from its source) is what the door answers, in its own
    /// protocol; the body was never parsed, so an unauthenticated client
    /// learns nothing of the server's input rules. `door` names the door
    /// in request ids made here.
    pub async fn admit<B>(&self, door: &str, req: &mut http::Request<B>) -> Result<()> {
        let peer = req.extensions().get::<Peer>().map(|p| p.0);
        let credentials = Credentials::from_headers(req.headers(), peer, door)
            .with_certificate(req.extensions().get::<CertificateIdentity>());
        let caller = self.authenticate(credentials).await?;
        req.extensions_mut().insert(Authenticated(caller));
        Ok(())
    }

    /// Authenticates a request: from memory when the credentials check
    /// out, else on the blocking pool, where a failure is counted against
    /// its source and audited.
    pub async fn authenticate(&self, credentials: Credentials) -> Result<Caller> {
        match self.quiet(&credentials) {
            Some(caller) => Ok(caller),
            None => self.caller(credentials).await,
        }
    }

    /// Commits a change set by the engine's one entry ([`Engine::submit`]):
    /// the engine queues it from this async thread when it can, awaiting
    /// the store's writer instead of parking a blocking thread, or hands it
    /// back to run on the blocking pool. Credentials that do not check out
    /// without an audit record are checked again on the blocking pool
    /// (which audits the failure).
    pub async fn commit(&self, credentials: Credentials, changes: ChangeSet) -> Result<CommitInfo> {
        let Some(caller) = self.quiet(&credentials) else {
            return self
                .write(credentials, move |e, c| e.commit(c, &changes))
                .await;
        };
        // The permit is held until the commit is done, not until the caller
        // stops waiting: a caller that goes away (a deadline, a reset) does
        // not free room for more work while its commit is still queued.
        let permit = Arc::clone(&self.writes)
            .acquire_owned()
            .await
            .map_err(|_| shutting_down())?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let done = Box::new(move |result| {
            // The caller may have gone away; the commit stands.
            let _ = tx.send(result);
            drop(permit);
        });
        if let Route::Blocking(commit) = self.engine.submit(&caller, changes, done) {
            tokio::task::spawn_blocking(move || commit.run())
                .await
                .map_err(|e| task_failed(&e))?;
        }
        rx.await.map_err(|_| Error::Internal {
            message: "the commit's result was lost".to_owned(),
        })?
    }

    /// Authenticates on the blocking pool and answers with the caller (for
    /// long-lived requests: a watch).
    pub async fn caller(&self, credentials: Credentials) -> Result<Caller> {
        self.run(credentials, |_, c| Ok(c.clone())).await
    }

    async fn run_as<T: Send + 'static>(
        &self,
        kind: Kind,
        credentials: Credentials,
        f: impl FnOnce(&Engine, &Caller) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let semaphore = match kind {
            Kind::Read => &self.reads,
            Kind::Write => &self.writes,
        };
        // The permit moves into the blocking call: a caller that goes away
        // leaves the call running, and its permit held until it ends.
        let permit = Arc::clone(semaphore)
            .acquire_owned()
            .await
            .map_err(|_| shutting_down())?;
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let caller = match credentials.caller {
                Some(caller) => caller,
                None => engine.authenticate_from(
                    credentials.header.as_deref(),
                    credentials.certificate.as_ref(),
                    &credentials.request_id,
                    &credentials.source,
                )?,
            };
            f(&engine, &caller)
        })
        .await
        .map_err(|e| task_failed(&e))?
    }
}
