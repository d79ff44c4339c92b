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

mod admin;
mod backup;
mod diff;
pub mod openapi;
pub mod problem;
mod templates;
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
    router_with(host, &HttpOptions::default())
}

/// The limits and cross-origin policy of the HTTP door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOptions {
    /// How long a request may take (not the long poll or the event
    /// stream, which wait on purpose): `503` after it.
    pub request_timeout: std::time::Duration,
    /// How many requests may be in flight at once (again not the long
    /// poll or the event stream): `503` with `Retry-After` beyond.
    pub max_in_flight: usize,
    /// The origins a browser page may call the API from (CORS); empty:
    /// none (the default: cross-origin calls are off).
    pub cors_origins: Vec<String>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            request_timeout: std::time::Duration::from_secs(30),
            max_in_flight: 1024,
            cors_origins: Vec::new(),
        }
    }
}

impl HttpOptions {
    /// Checks the CORS origins: each `http://` or `https://`, a host and
    /// maybe a port, nothing else (no path, no wildcard).
    pub fn check(&self) -> Result<(), String> {
        for o in &self.cors_origins {
            let rest = o
                .strip_prefix("https://")
                .or_else(|| o.strip_prefix("http://"));
            let ok = rest.is_some_and(|r| {
                !r.is_empty()
                    && r.chars().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')
                    })
            });
            if !ok {
                return Err(format!(
                    "{o:?} is not an origin: write scheme, host and port only, as https://console.example.com or http://127.0.0.1:3000"
                ));
            }
        }
        Ok(())
    }
}

/// [`router`] with `options` (whose origins [`HttpOptions::check`] has
/// checked: one that is not is left out).
pub fn router_with(host: &Host, options: &HttpOptions) -> Router {
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
    let routes = open.merge(docs()).merge(v1::router(host, options));
    match cors(&options.cors_origins) {
        // Outside the gate: a preflight carries no token.
        Some(layer) => routes.layer(layer),
        None => routes,
    }
}

/// The CORS layer for `origins` (`None` for none: cross-origin requests
/// get no `Access-Control-*` headers, so browsers refuse them).
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use http::{Method, header};
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<http::HeaderValue> = origins
        .iter()
        .filter_map(|o| http::HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::IF_MATCH,
                header::IF_NONE_MATCH,
                http::HeaderName::from_static("last-event-id"),
                http::HeaderName::from_static("x-confstrata-message"),
            ])
            .expose_headers([
                header::ETAG,
                header::LOCATION,
                header::RETRY_AFTER,
                http::HeaderName::from_static("x-confstrata-index"),
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
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
