//! The REST/JSON resources under `/v1` (docs/REST.md).
//!
//! Conventions: JSON field names are `snake_case` (as Vault's API and our
//! change-set documents); a namespace name or layer path is one URL path
//! segment, its `/` sent as `%2F` (`/v1/namespaces/shared%2Flogging`), and
//! goes through the same parser as everywhere else (so `..%2F..` is
//! refused by name, not resolved); errors are problem details
//! ([`crate::problem`]). Every request is authenticated before anything
//! of it is read ([`require`]).

use std::hash::{Hash as _, Hasher as _};

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use confstrata_core::serde_json::{self, Value, json};
use confstrata_core::{At, Context, Error, KeyPath, NamespaceName};
use confstrata_host::{Authenticated, Credentials, Peer, Runner};

use crate::problem::Problem;

/// The `/v1` routes, behind the authentication gate.
pub(crate) fn router(runner: Runner) -> Router {
    Router::new()
        .route("/v1/namespaces", get(list_namespaces))
        .route("/v1/namespaces/{namespace}/resolve", get(resolve))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            runner.clone(),
            require,
        ))
        .with_state(runner)
}

/// The authentication gate: a request passes only with a caller the host's
/// runner authenticated from its headers (then in its extensions); any
/// other gets `401` with `WWW-Authenticate: Bearer` before its path,
/// query or body is looked at.
pub(crate) async fn require(
    State(runner): State<Runner>,
    mut req: Request,
    next: Next,
) -> Response {
    match runner.admit("http", &mut req).await {
        Ok(()) => next.run(req).await,
        Err(e) => Problem::from_core(&e, "").into_response(),
    }
}

async fn not_found(req: Request) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        &format!("no resource at {}", req.uri().path()),
    )
}

/// The credentials of a request the gate let in.
fn credentials(headers: &HeaderMap, req_ext: &axum::http::Extensions) -> Credentials {
    Credentials::from_headers(headers, req_ext.get::<Peer>().map(|p| p.0), "http")
        .with_authenticated(req_ext.get::<Authenticated>())
}

fn namespace(raw: &str) -> Result<NamespaceName, Problem> {
    NamespaceName::parse(raw).map_err(|e| Problem::from_core(&e, "namespace"))
}

/// `GET /v1/namespaces[?revision=N]`: the namespaces the caller may read.
async fn list_namespaces(
    State(runner): State<Runner>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    req: Request,
) -> Result<Response, Problem> {
    let query = query_of(query)?;
    let a = credentials(req.headers(), req.extensions());
    let at = read_at(&query)?;
    let (revision, list) = runner
        .run(a, move |e, c| {
            let rev = e.store().revision_at(at)?;
            Ok((rev, e.namespaces(c, At::Revision(rev))?))
        })
        .await
        .map_err(|e| Problem::from_core(&e, "revision"))?;
    let namespaces: Vec<Value> = list
        .iter()
        .map(|r| json!({"name": r.spec.name.as_str(), "revision": r.revision, "spec": r.spec}))
        .collect();
    let body = serde_json::to_string(&json!({"revision": revision, "namespaces": namespaces}))
        .map_err(Error::storage)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// A query's parameters, or why they do not parse.
fn query_of(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Vec<(String, String)>, Problem> {
    query
        .map(|Query(q)| q)
        .map_err(|e| Problem::from_core(&Error::invalid("query", e.body_text()), "query"))
}

/// A path segment, or why it does not decode (not UTF-8, say).
fn path_of(segment: Result<Path<String>, PathRejection>, field: &str) -> Result<String, Problem> {
    segment
        .map(|Path(s)| s)
        .map_err(|e| Problem::from_core(&Error::invalid(field, e.body_text()), field))
}

/// `revision=N` of a query (`At::Latest` without one).
fn read_at(query: &[(String, String)]) -> Result<At, Problem> {
    match query.iter().find(|(k, _)| k == "revision") {
        None => Ok(At::Latest),
        Some((_, v)) => v.parse::<u64>().map(At::Revision).map_err(|_| {
            Problem::from_core(
                &Error::invalid("revision", format!("{v:?} is not a revision number")),
                "revision",
            )
        }),
    }
}

/// `GET /v1/namespaces/{namespace}/resolve?VAR=VALUE...[&section=KEY][&revision=N][&provenance=true]`:
/// the configuration of a context. Every query parameter but the reserved
/// ones is a context variable (`context.VAR=VALUE` for a variable with a
/// reserved name). The answer carries a strong `ETag`; `If-None-Match`
/// with it answers `304` while nothing the caller sees changed.
async fn resolve(
    State(runner): State<Runner>,
    raw_ns: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    req: Request,
) -> Result<Response, Problem> {
    let query = query_of(query)?;
    let a = credentials(req.headers(), req.extensions());
    let ns = namespace(&path_of(raw_ns, "namespace")?)?;
    let mut ctx = Context::new();
    let mut section = None;
    let mut provenance = false;
    for (k, v) in &query {
        match k.as_str() {
            "section" => {
                section = Some(KeyPath::parse(v).map_err(|e| Problem::from_core(&e, "section"))?);
            }
            "provenance" => {
                provenance = match v.as_str() {
                    "true" | "1" | "" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(Problem::from_core(
                            &Error::invalid("provenance", format!("{v:?} is not true or false")),
                            "provenance",
                        ));
                    }
                };
            }
            "revision" => {}
            _ => {
                let name = k.strip_prefix("context.").unwrap_or(k);
                if ctx.insert(name.to_owned(), v.clone()).is_some() {
                    return Err(Problem::from_core(
                        &Error::invalid("context", format!("variable {name:?} is given twice")),
                        "context",
                    ));
                }
            }
        }
    }
    let at = read_at(&query)?;
    let if_none_match = req.headers().get(header::IF_NONE_MATCH).cloned();
    // A cached view is answered here, on the async thread.
    if at == At::Latest
        && !provenance
        && let Some(shared) =
            runner.fast(&a, |e, c| e.resolve_cached(c, &ns, &ctx, section.as_ref()))
    {
        let layers = serde_json::to_string(shared.layers()).map_err(Error::storage)?;
        let changed = shared
            .layers()
            .iter()
            .map(|p| p.revision)
            .max()
            .unwrap_or(0);
        let shown = Shown {
            ns: &ns,
            ctx: &ctx,
            revision: shared.revision,
            layers: &layers,
            document: &shared.json,
            provenance: None,
            partial: false,
        };
        return shown.respond(changed, if_none_match.as_ref());
    }
    let view = runner
        .run(a, move |e, c| {
            e.resolve_section(c, &ns, &ctx, section.as_ref(), at)
        })
        .await
        .map_err(|e| Problem::from_core(&e, "context"))?;
    let changed = view.layers.iter().map(|p| p.revision).max().unwrap_or(0);
    let layers = serde_json::to_string(&view.layers).map_err(Error::storage)?;
    let document = serde_json::to_string(&view.document).map_err(Error::storage)?;
    let provenance = if provenance {
        let all = serde_json::to_value(&view).map_err(Error::storage)?;
        Some(serde_json::to_string(&all["provenance"]).map_err(Error::storage)?)
    } else {
        None
    };
    let shown = Shown {
        ns: &view.namespace,
        ctx: &view.context,
        revision: view.revision,
        layers: &layers,
        document: &document,
        provenance: provenance.as_deref(),
        partial: view.partial,
    };
    shown.respond(changed, if_none_match.as_ref())
}

/// A resolve's answer, its parts as JSON text: the cached path has the
/// document's JSON already, the other path makes it, and both give the
/// same bytes for the same view.
struct Shown<'a> {
    ns: &'a NamespaceName,
    ctx: &'a Context,
    revision: u64,
    layers: &'a str,
    document: &'a str,
    provenance: Option<&'a str>,
    partial: bool,
}

impl Shown<'_> {
    /// The answer with its strong `ETag`, or `304` when the request's
    /// `If-None-Match` names it. The tag is the newest revision that
    /// changed what the answer shows (`changed`) and a hash of what it
    /// shows (the layers, the document, the provenance): a commit that
    /// changes nothing of it keeps the tag, and so does the store's
    /// revision moving on; a change only in what the caller may see (a
    /// secret unmasked) changes it.
    fn respond(
        &self,
        changed: u64,
        if_none_match: Option<&HeaderValue>,
    ) -> Result<Response, Problem> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (self.layers, self.document, self.provenance, self.partial).hash(&mut hasher);
        let etag = format!("\"r{changed}.{:016x}\"", hasher.finish());
        let matches = if_none_match
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
        let etag = HeaderValue::from_str(&etag).map_err(Error::storage)?;
        if matches {
            return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
        }
        let mut body = format!(
            "{{\"namespace\":{},\"context\":{},\"revision\":{},\"layers\":{},\"document\":{}",
            serde_json::to_string(self.ns.as_str()).map_err(Error::storage)?,
            serde_json::to_string(self.ctx).map_err(Error::storage)?,
            self.revision,
            self.layers,
            self.document,
        );
        if let Some(p) = self.provenance {
            body.push_str(",\"provenance\":");
            body.push_str(p);
        }
        if self.partial {
            body.push_str(",\"partial\":true");
        }
        body.push('}');
        Ok((
            StatusCode::OK,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
                (header::ETAG, etag),
            ],
            body,
        )
            .into_response())
    }
}
