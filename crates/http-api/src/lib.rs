//! Confstrata's HTTP front door, as an axum [`Router`] over the
//! [`Host`]: where the REST/JSON API with its OpenAPI description,
//! `/metrics` and the web console will live. Today it answers liveness and
//! readiness, for load balancers and orchestrators that speak plain HTTP:
//!
//! - `GET /healthz`: 200 `ok` while the process serves;
//! - `GET /readyz`: 200 `ready`, or 503 `stopping` once a shutdown began.
//!
//! Anything else is 404. `confstrata serve` mounts it beside the gRPC
//! services on one listener (requests are told apart by content type).
//!
//! ```no_run
//! # async fn demo(host: confstrata_host::Host) {
//! let router = confstrata_http_api::router(&host);
//! # let _ = router;
//! # }
//! ```

use axum::Router;
use axum::routing::get;
use confstrata_host::Host;
use http::StatusCode;

/// The HTTP routes of a server.
pub fn router(host: &Host) -> Router {
    let stopping = host.stopping();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let stopping = *stopping.borrow();
                async move {
                    if stopping {
                        (StatusCode::SERVICE_UNAVAILABLE, "stopping")
                    } else {
                        (StatusCode::OK, "ready")
                    }
                }
            }),
        )
}
