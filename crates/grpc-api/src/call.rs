//! What every RPC of every service does around its engine call: take the
//! credentials from the request metadata, authenticate and run the engine
//! on the blocking pool under a concurrency bound, and map a model error to
//! a status naming the request field it is about.

use std::sync::Arc;

use confstrata_engine::{Caller, Engine, Route};
use tokio::sync::Semaphore;
use tonic::{Request, Status};

use crate::status;

/// The credentials of a request, read from its metadata before the body is
/// taken: the `authorization` header and the request id (`x-request-id`,
/// or a fresh one).
pub(crate) struct Auth {
    header: Option<String>,
    request_id: String,
    /// The client's address (its IP: a client's port changes per
    /// connection), for counting failed authentications per source.
    source: String,
}

/// Request ids for requests that bring none.
static NEXT_REQUEST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Reads a request's credentials; call it before `into_inner()`.
pub(crate) fn auth<T>(req: &Request<T>) -> Auth {
    let md = req.metadata();
    let header = md.get("authorization").map(|v| {
        v.to_str()
            .map(str::to_owned)
            .unwrap_or_else(|_| "<not ASCII>".to_owned())
    });
    let request_id = md
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map_or_else(
            || {
                format!(
                    "grpc-{}",
                    NEXT_REQUEST.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                )
            },
            str::to_owned,
        );
    let source = req
        .remote_addr()
        .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string());
    Auth {
        header,
        request_id,
        source,
    }
}

/// Which semaphore an engine call takes.
#[derive(Clone, Copy)]
enum Kind {
    Read,
    Write,
}

/// Runs engine calls for the services of one server; clones share the
/// engine and the concurrency bounds.
#[derive(Clone)]
pub(crate) struct Calls {
    pub(crate) engine: Engine,
    /// Bounds concurrent engine reads to what the CPUs can run: more
    /// threads than cores only add contention (and SQLite connections).
    reads: Arc<Semaphore>,
    /// Bounds concurrent commits, generously: waiting committers are what
    /// group commit batches together.
    writes: Arc<Semaphore>,
}

impl Calls {
    pub(crate) fn new(engine: Engine) -> Calls {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Calls {
            engine,
            reads: Arc::new(Semaphore::new((2 * cores).max(4))),
            writes: Arc::new(Semaphore::new(256)),
        }
    }

    /// Authenticates and runs an engine read on the blocking pool (SQLite
    /// does file I/O; a refused token is audited, which writes too). An
    /// error is mapped naming `field` when the error itself does not say.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        auth: Auth,
        field: &'static str,
        f: impl FnOnce(&Engine, &Caller) -> confstrata_core::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        self.run_as(Kind::Read, auth, field, f).await
    }

    /// Runs an engine call that never blocks (an answer from memory) on the
    /// calling async thread. `None` when the credentials do not check out
    /// or the call itself says no: the caller then takes the slow path
    /// ([`Calls::run`]), which authenticates again and audits a failure.
    pub(crate) fn fast<T>(
        &self,
        auth: &Auth,
        f: impl FnOnce(&Engine, &Caller) -> Option<T>,
    ) -> Option<T> {
        let caller = self
            .engine
            .authenticate_quietly(auth.header.as_deref(), &auth.request_id)?;
        f(&self.engine, &caller)
    }

    /// Commits a change set by the engine's one entry ([`Engine::submit`]):
    /// the engine queues it from this async thread when it can, awaiting
    /// the store's writer instead of parking a blocking thread, or hands it
    /// back to run on the blocking pool. Credentials that do not check out
    /// without an audit record are checked again on the blocking pool
    /// (which audits the failure).
    pub(crate) async fn commit(
        &self,
        auth: Auth,
        field: &'static str,
        changes: confstrata_core::ChangeSet,
    ) -> Result<confstrata_core::CommitInfo, Status> {
        let Some(caller) = self
            .engine
            .authenticate_quietly(auth.header.as_deref(), &auth.request_id)
        else {
            return self
                .write(auth, field, move |e, c| e.commit(c, &changes))
                .await;
        };
        let _permit = self
            .writes
            .acquire()
            .await
            .map_err(|_| Status::unavailable("the server is shutting down"))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let done = Box::new(move |result| {
            // The caller may have gone away; the commit stands.
            let _ = tx.send(result);
        });
        if let Route::Blocking(commit) = self.engine.submit(&caller, changes, done) {
            tokio::task::spawn_blocking(move || commit.run())
                .await
                .map_err(|e| Status::internal(format!("task failed: {e}")))?;
        }
        rx.await
            .map_err(|_| Status::internal("the commit's result was lost"))?
            .map_err(|e| status::from_core(&e, field))
    }

    /// [`Calls::run`] for an engine call that commits.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        auth: Auth,
        field: &'static str,
        f: impl FnOnce(&Engine, &Caller) -> confstrata_core::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        self.run_as(Kind::Write, auth, field, f).await
    }

    async fn run_as<T: Send + 'static>(
        &self,
        kind: Kind,
        auth: Auth,
        field: &'static str,
        f: impl FnOnce(&Engine, &Caller) -> confstrata_core::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        let semaphore = match kind {
            Kind::Read => &self.reads,
            Kind::Write => &self.writes,
        };
        let _permit = semaphore
            .acquire()
            .await
            .map_err(|_| Status::unavailable("the server is shutting down"))?;
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || {
            let caller = engine
                .authenticate_from(auth.header.as_deref(), &auth.request_id, &auth.source)
                .map_err(|e| (e, ""))?;
            f(&engine, &caller).map_err(|e| (e, field))
        })
        .await
        .map_err(|e| Status::internal(format!("task failed: {e}")))?
        .map_err(|(e, field)| status::from_core(&e, field))
    }
}

/// A required request field that was left empty.
pub(crate) fn missing(field: &str) -> confstrata_proto::convert::FieldError {
    confstrata_proto::convert::FieldError {
        field: field.to_owned(),
        error: Box::new(confstrata_core::Error::invalid(field, "it is required")),
    }
}
