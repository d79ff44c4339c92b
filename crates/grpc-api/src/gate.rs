//! Authentication before anything else: every gRPC request but health and
//! reflection is authenticated from its metadata before its message is
//! decoded or checked, so a caller without a valid token gets
//! UNAUTHENTICATED whatever it sent (not INVALID_ARGUMENT for an empty
//! body, which would teach it our input rules).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use confstrata_host::Runner;

use crate::status;

/// The methods anyone may call: the health and reflection services, which
/// probes and tools (grpcurl, grpc_health_probe) use before they have a
/// token. They say nothing about configuration.
pub(crate) const OPEN: [&str; 3] = [
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// The gate: open methods pass; any other request passes only with a
/// caller the host's runner authenticated (then in its extensions).
pub(crate) async fn require(
    State(runner): State<Runner>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    if OPEN.iter().any(|open| path.starts_with(open)) {
        return next.run(req).await;
    }
    match runner.admit("grpc", &mut req).await {
        Ok(()) => next.run(req).await,
        Err(e) => {
            confstrata_host::drain(req.into_body()).await;
            status::from_core(&e, "")
                .into_http::<axum::body::Body>()
                .into_response()
        }
    }
}
