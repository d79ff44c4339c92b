//! Confstrata's HTTP front door, as an axum [`Router`] over the
//! [`Host`]: the REST/JSON API (docs/REST.md; its first resources so far),
//! and later its OpenAPI description, `/metrics` and the web console.
//! Open to anyone, for load balancers and orchestrators:
//!
//! - `GET /healthz`: 200 `ok` while the process serves;
//! - `GET /readyz`: 200 `ready`, or 503 `stopping` once a shutdown began;
//! - `GET /v1/openapi.json`: the API's OpenAPI 3.1 description
//!   ([`openapi`]), and `/docs`: Swagger UI over it.
//!
//! Everything else is behind the authentication gate (`401` without a
//! valid token, before anything of the request is read); errors are
//! problem details ([`problem`]). `confstrata serve` mounts it beside the
//! gRPC services on one listener (requests are told apart by content
//! type).
//!
//! ```no_run
//! # async fn demo(host: confstrata_host::Host) {
//! let router = confstrata_http_api::router(&host);
//! # let _ = router;
//! # }
//! ```

pub mod openapi;
pub mod problem;
mod v1;
mod watch;

use axum::Router;
use axum::routing::get;
use confstrata_host::Host;
use http::StatusCode;

/// The HTTP routes of a server: the open probes, and everything else
/// behind the authentication gate (the `/v1` resources; any other path is
/// `401` without a token, `404` with one).
pub fn router(host: &Host) -> Router {
    let stopping = host.stopping();
    let open = Router::new()
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
        );
    open.merge(docs()).merge(v1::router(host))
}

/// `GET /v1/openapi.json` (the API's description) and `/docs` (Swagger UI
/// over it, every asset inside the binary, no request leaving the page's
/// origin: the validator badge is off).
fn docs() -> Router {
    Router::from(
        utoipa_swagger_ui::SwaggerUi::new("/docs")
            .url("/v1/openapi.json", openapi::document())
            .config(
                utoipa_swagger_ui::Config::default()
                    .validator_url("none")
                    .display_request_duration(true)
                    .persist_authorization(false),
            ),
    )
}
