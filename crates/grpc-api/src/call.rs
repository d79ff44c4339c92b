//! The host's runner, seen from tonic: credentials from a request's
//! metadata, and model errors mapped to statuses naming the request field
//! they are about (`status.rs`).

use confstrata_core::{ChangeSet, CommitInfo};
use confstrata_engine::{Caller, CertificateIdentity, Engine};
use confstrata_host::{Authenticated, Credentials, Peer, Runner};
use tonic::{Request, Status};

use crate::status;

/// Reads a request's credentials; call it before `into_inner()`.
pub(crate) fn auth<T>(req: &Request<T>) -> Credentials {
    let peer = req.extensions().get::<Peer>().map(|p| p.0);
    Credentials::from_headers(req.metadata().as_ref(), peer, "grpc")
        .with_certificate(req.extensions().get::<CertificateIdentity>())
        .with_authenticated(req.extensions().get::<Authenticated>())
}

/// Runs engine calls for the services of one server (the host's runner).
#[derive(Clone)]
pub(crate) struct Calls {
    pub(crate) runner: Runner,
}

impl Calls {
    /// [`Runner::run`]; an error is mapped naming `field` when the error
    /// itself does not say.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        auth: Credentials,
        field: &'static str,
        f: impl FnOnce(&Engine, &Caller) -> confstrata_core::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        self.runner
            .run(auth, f)
            .await
            .map_err(|e| status::from_core(&e, field))
    }

    /// [`Runner::write`], for an engine call that commits.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        auth: Credentials,
        field: &'static str,
        f: impl FnOnce(&Engine, &Caller) -> confstrata_core::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        self.runner
            .write(auth, f)
            .await
            .map_err(|e| status::from_core(&e, field))
    }

    /// [`Runner::fast`]: an answer from memory on the async thread, or `None`.
    pub(crate) fn fast<T>(
        &self,
        auth: &Credentials,
        f: impl FnOnce(&Engine, &Caller) -> Option<T>,
    ) -> Option<T> {
        self.runner.fast(auth, f)
    }

    /// [`Runner::commit`]: the engine decides the route.
    pub(crate) async fn commit(
        &self,
        auth: Credentials,
        field: &'static str,
        changes: ChangeSet,
    ) -> Result<CommitInfo, Status> {
        self.runner
            .commit(auth, changes)
            .await
            .map_err(|e| status::from_core(&e, field))
    }
}

/// A required request field that was left empty.
pub(crate) fn missing(field: &str) -> confstrata_proto::convert::FieldError {
    confstrata_proto::convert::FieldError {
        field: field.to_owned(),
        error: Box::new(confstrata_core::Error::invalid(field, "it is required")),
    }
}
