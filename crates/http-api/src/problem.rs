//! Errors as RFC 9457 problem details (`application/problem+json`): the one
//! table from model error kinds to HTTP statuses, beside the gRPC door's
//! (a test holds the two to each other), and the body every refusal has.
//!
//! ```json
//! {
//!   "type": "https://confstrata.dev/problems/conflict",
//!   "title": "Conflict",
//!   "status": 409,
//!   "detail": "conflict on layer web:defaults: expected revision 3, it is at 5 ...",
//!   "code": "conflict",
//!   "target": "layer web:defaults", "expected": 3, "actual": 5, "current_revision": 7
//! }
//! ```
//!
//! `code` is the error kind (`ErrorKind::as_str`), the same word the CLI
//! and the gRPC details use; `errors` lists the invalid fields of an
//! invalid request (`field`, `reason`), like gRPC's `BadRequest`; a refusal
//! by validation carries its error `findings`.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use confstrata_core::serde_json::{Map, Value, json};
use confstrata_core::{Error, ErrorKind, Severity};

/// The media type of a problem.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// Where the problem types live: `type` is this and the error kind.
pub const TYPE_BASE: &str = "https://confstrata.dev/problems/";

/// Most bytes of a problem's `detail` (whatever the error echoes).
const MAX_DETAIL_BYTES: usize = 1000;

/// Most findings a validation refusal carries.
const MAX_FINDINGS: usize = 100;

/// The HTTP status of each kind of error: the one table, tested against
/// [`ErrorKind::ALL`] and against the gRPC door's codes. Where HTTP has a
/// more precise status than gRPC's code maps to, it is used: `413` for a
/// size limit (gRPC's RESOURCE_EXHAUSTED is `429` by the usual mapping,
/// which means "slow down"), `422` for content that is well-formed but
/// fails validation (gRPC's INVALID_ARGUMENT, `400`).
pub const STATUSES: &[(ErrorKind, StatusCode)] = &[
    (ErrorKind::InvalidInput, StatusCode::BAD_REQUEST),
    (ErrorKind::TooLarge, StatusCode::PAYLOAD_TOO_LARGE),
    (ErrorKind::NotFound, StatusCode::NOT_FOUND),
    (ErrorKind::AlreadyExists, StatusCode::CONFLICT),
    // 412 instead when the request carried `If-Match` (the handler says).
    (ErrorKind::Conflict, StatusCode::CONFLICT),
    (ErrorKind::OutOfRange, StatusCode::BAD_REQUEST),
    (ErrorKind::Unauthenticated, StatusCode::UNAUTHORIZED),
    (ErrorKind::PermissionDenied, StatusCode::FORBIDDEN),
    (
        ErrorKind::ValidationFailed,
        StatusCode::UNPROCESSABLE_ENTITY,
    ),
    (ErrorKind::Integrity, StatusCode::INTERNAL_SERVER_ERROR),
    (ErrorKind::Unavailable, StatusCode::SERVICE_UNAVAILABLE),
    (ErrorKind::Internal, StatusCode::INTERNAL_SERVER_ERROR),
];

/// The status of `kind` in [`STATUSES`] (500 for a kind added later and
/// not yet mapped).
pub fn status_of(kind: ErrorKind) -> StatusCode {
    STATUSES
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(StatusCode::INTERNAL_SERVER_ERROR, |(_, s)| *s)
}

/// An error as the HTTP door answers it.
#[derive(Debug, Clone)]
pub struct Problem {
    status: StatusCode,
    body: Map<String, Value>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Problem {
    /// A problem of `status` and `code` saying `detail`.
    pub fn new(status: StatusCode, code: &str, detail: &str) -> Problem {
        let mut body = Map::new();
        body.insert("type".into(), json!(format!("{TYPE_BASE}{code}")));
        body.insert(
            "title".into(),
            json!(status.canonical_reason().unwrap_or("Error")),
        );
        body.insert("status".into(), json!(status.as_u16()));
        body.insert(
            "detail".into(),
            json!(confstrata_core::clip(detail, MAX_DETAIL_BYTES)),
        );
        body.insert("code".into(), json!(code));
        Problem {
            status,
            body,
            headers: Vec::new(),
        }
    }

    /// Maps a model error; `field` names the request field the error is
    /// about when the error itself does not say (`""`: none).
    pub fn from_core(e: &Error, field: &str) -> Problem {
        let kind = e.kind();
        let status = status_of(kind);
        let mut p = Problem::new(status, kind.as_str(), &e.to_string());
        let field = match e {
            Error::Operation { index, .. } => format!("ops[{index}]"),
            Error::UnknownContextVariable { .. } | Error::ContextValueNotAllowed { .. } => {
                "context".to_owned()
            }
            _ => field.to_owned(),
        };
        match e.root() {
            Error::TooLarge { what, size, limit } => {
                p = p.with("what", json!(what)).with("size", json!(size));
                p = p.with("limit", json!(limit));
            }
            Error::Conflict {
                target,
                expected,
                actual,
                current_revision,
            } => {
                p = p.with("target", json!(target));
                p = p.with("expected", json!(expected));
                p = p.with("actual", json!(actual));
                p = p.with("current_revision", json!(current_revision));
            }
            Error::Compacted { requested, oldest } => {
                p = p.with("requested", json!(requested));
                p = p.with("oldest_revision", json!(oldest));
            }
            Error::FutureRevision { requested, current } => {
                p = p.with("requested", json!(requested));
                p = p.with("current_revision", json!(current));
            }
            Error::Restored { requested, resumed } => {
                p = p.with("requested", json!(requested));
                p = p.with("resumed_revision", json!(resumed));
            }
            Error::PermissionDenied {
                action, resource, ..
            } => {
                p = p
                    .with("action", json!(action))
                    .with("resource", json!(resource));
            }
            Error::Validation { findings } => {
                let errors: Vec<&confstrata_core::Finding> = findings
                    .iter()
                    .filter(|f| f.severity == Severity::Error)
                    .collect();
                p = p.with("error_count", json!(errors.len()));
                p = p.with(
                    "findings",
                    json!(errors.iter().take(MAX_FINDINGS).collect::<Vec<_>>()),
                );
            }
            _ if kind == ErrorKind::InvalidInput => {
                let message = confstrata_core::clip(&e.to_string(), MAX_DETAIL_BYTES).into_owned();
                p = p.with("errors", json!([{ "field": field, "reason": message }]));
            }
            _ => {}
        }
        match kind {
            ErrorKind::Unauthenticated => {
                p = p.header(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"confstrata\""),
                );
            }
            ErrorKind::Unavailable => {
                p = p.header(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ErrorKind::Integrity | ErrorKind::Internal => {
                tracing::error!(error = %e, kind = %kind, "server error");
            }
            _ => {}
        }
        p
    }

    /// Adds a member to the body.
    #[must_use]
    pub fn with(mut self, name: &str, value: Value) -> Problem {
        self.body.insert(name.to_owned(), value);
        self
    }

    /// Adds a response header.
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Problem {
        self.headers.push((name, value));
        self
    }

    /// Answers with another status (and its title), the rest unchanged: a
    /// conflict on a request with `If-Match` is `412 Precondition Failed`.
    #[must_use]
    pub fn with_status(mut self, status: StatusCode) -> Problem {
        self.status = status;
        self.body.insert("status".into(), json!(status.as_u16()));
        self.body.insert(
            "title".into(),
            json!(status.canonical_reason().unwrap_or("Error")),
        );
        self
    }

    /// The status it answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Its JSON body.
    pub fn body(&self) -> &Map<String, Value> {
        &self.body
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Problem {
        Problem::from_core(&e, "")
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = confstrata_core::serde_json::to_vec(&self.body).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_kind_has_a_status() {
        for kind in ErrorKind::ALL {
            let rows = STATUSES.iter().filter(|(k, _)| *k == kind).count();
            assert_eq!(rows, 1, "{kind} has {rows} rows in problem::STATUSES");
        }
    }

    #[test]
    fn a_problem_says_what_and_where() {
        let p = Problem::from_core(&Error::invalid("layer", "it has `..`"), "layer");
        assert_eq!(p.status(), StatusCode::BAD_REQUEST);
        let body = Value::Object(p.body().clone());
        assert_eq!(
            body["type"],
            "https://confstrata.dev/problems/invalid-input"
        );
        assert_eq!(body["code"], "invalid-input");
        assert_eq!(body["errors"][0]["field"], "layer");
        let p = Problem::from_core(
            &Error::Conflict {
                target: "layer web:defaults".into(),
                expected: 3,
                actual: 5,
                current_revision: 7,
            },
            "",
        )
        .with_status(StatusCode::PRECONDITION_FAILED);
        assert_eq!(p.body()["status"], 412);
        assert_eq!(p.body()["title"], "Precondition Failed");
        assert_eq!(p.body()["current_revision"], 7);
        let long = "x".repeat(5000);
        let p = Problem::from_core(&Error::invalid("key", long), "key");
        let detail = p.body()["detail"].as_str().unwrap_or_default();
        assert!(detail.len() <= MAX_DETAIL_BYTES + 8, "{}", detail.len());
        let p = Problem::from_core(
            &Error::Unauthenticated {
                message: "no token".into(),
            },
            "",
        );
        let response = p.into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"confstrata\""
        );
        assert_eq!(response.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
    }
}
