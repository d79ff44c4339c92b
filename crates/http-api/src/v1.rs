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
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use confstrata_core::format::Format;
use confstrata_core::serde_json::{self, Value, json};
use confstrata_core::{
    At, ChangeSet, Context, Error, KeyPath, LayerPath, Limits, NamespaceName, Op,
};
use confstrata_host::{Authenticated, Credentials, Peer, Runner};

use crate::problem::Problem;

/// The `/v1` routes, behind the authentication gate.
pub(crate) fn router(runner: Runner) -> Router {
    Router::new()
        .route("/v1/namespaces", get(list_namespaces))
        .route("/v1/namespaces/{namespace}/resolve", get(resolve))
        .route("/v1/namespaces/{namespace}/layers", get(list_layers))
        .route(
            "/v1/namespaces/{namespace}/layers/{layer}",
            get(get_layer).put(put_layer).delete(delete_layer),
        )
        .route("/v1/changesets", post(apply_change_set))
        .fallback(not_found)
        // The same bound as a gRPC message: above the change set limit, so
        // an oversized change set gets that limit's precise 413.
        .layer(DefaultBodyLimit::max(max_body()))
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

fn layer_path(raw: &str) -> Result<LayerPath, Problem> {
    LayerPath::parse(raw).map_err(|e| Problem::from_core(&e, "layer"))
}

/// The most bytes of a request body.
fn max_body() -> usize {
    Limits::default().max_change_set_bytes.saturating_mul(2)
}

/// The format of a request body, from its `Content-Type`: JSON, TOML or
/// YAML; anything else (or none) is `415`.
fn body_format(headers: &HeaderMap) -> Result<Format, Problem> {
    let raw = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/json" => Ok(Format::Json),
        "application/toml" => Ok(Format::Toml),
        "application/yaml" | "application/x-yaml" | "text/yaml" => Ok(Format::Yaml),
        _ => Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            &format!(
                "a body of type {:?} is not taken: send application/json, application/toml or application/yaml",
                confstrata_core::clip(raw, 100)
            ),
        )
        .header(
            header::ACCEPT,
            HeaderValue::from_static("application/json, application/toml, application/yaml"),
        )),
    }
}

/// A request's body, or `413` when it is over the bound.
fn body_of(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Problem> {
    body.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::from_core(
                &Error::TooLarge {
                    what: "request body".to_owned(),
                    size: max_body().saturating_add(1),
                    limit: max_body(),
                },
                "body",
            )
        } else {
            Problem::new(status, "invalid-input", &e.body_text())
        }
    })
}

/// The revision `If-Match` names (`"r12.…"`, `"12"` or `12`), for a
/// write's `expect_revision`; `None` without the header.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, Problem> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = v.to_str().unwrap_or("").trim();
    let inner = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    let digits = inner.strip_prefix('r').unwrap_or(inner);
    let digits = digits.split('.').next().unwrap_or("");
    digits.parse::<u64>().map(Some).map_err(|_| {
        Problem::from_core(
            &Error::invalid(
                "If-Match",
                format!(
                    "{:?} names no revision: send the ETag of a read, or a revision number",
                    confstrata_core::clip(text, 100)
                ),
            ),
            "If-Match",
        )
    })
}

/// Commits through the runner; a conflict on a request with `If-Match` is
/// `412 Precondition Failed`.
async fn commit(
    runner: &Runner,
    a: Credentials,
    changes: ChangeSet,
    field: &str,
    conditional: bool,
) -> Result<Response, Problem> {
    let info = runner.commit(a, changes).await.map_err(|e| {
        let p = Problem::from_core(&e, field);
        if conditional && e.kind() == confstrata_core::ErrorKind::Conflict {
            p.with_status(StatusCode::PRECONDITION_FAILED)
        } else {
            p
        }
    })?;
    json_response(
        StatusCode::OK,
        &json!({"revision": info.revision, "time_ms": info.time.0}),
    )
}

fn json_response(status: StatusCode, value: &Value) -> Result<Response, Problem> {
    let body = serde_json::to_string(value).map_err(Error::storage)?;
    Ok((
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// `POST /v1/changesets`: a change set document (JSON, TOML or YAML, as
/// `confstrata apply -f` takes), committed as one revision or not at all.
async fn apply_change_set(
    State(runner): State<Runner>,
    headers: HeaderMap,
    exts: axum::Extension<Authenticated>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let format = body_format(&headers)?;
    let body = body_of(body)?;
    let a = Credentials::from_headers(&headers, None, "http").with_authenticated(Some(&exts.0));
    let changes =
        confstrata_core::format::parse_change_set(&body, format, "body", &Limits::default())
            .map_err(|e| Problem::from_core(&e, "body"))?;
    commit(&runner, a, changes, "", false).await
}

/// `GET /v1/namespaces/{namespace}/layers[?revision=N]`: every layer the
/// caller may read, with its document.
async fn list_layers(
    State(runner): State<Runner>,
    raw_ns: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    req: Request,
) -> Result<Response, Problem> {
    let query = query_of(query)?;
    let a = credentials(req.headers(), req.extensions());
    let ns = namespace(&path_of(raw_ns, "namespace")?)?;
    let at = read_at(&query)?;
    let (revision, layers) = runner
        .run(a, move |e, c| {
            let rev = e.store().revision_at(at)?;
            Ok((rev, e.layers(c, &ns, At::Revision(rev))?))
        })
        .await
        .map_err(|e| Problem::from_core(&e, "namespace"))?;
    let layers: Vec<Value> = layers
        .iter()
        .map(|l| json!({"layer": l.layer.as_str(), "revision": l.revision, "document": l.document}))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"revision": revision, "layers": layers}),
    )
}

/// `GET /v1/namespaces/{namespace}/layers/{layer}[?revision=N]`: one
/// layer's document, with the revision that last changed it as its `ETag`
/// (send it back in `If-Match` to write only over that version).
async fn get_layer(
    State(runner): State<Runner>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    req: Request,
) -> Result<Response, Problem> {
    let query = query_of(query)?;
    let a = credentials(req.headers(), req.extensions());
    let (ns, layer) = ns_and_layer(path)?;
    let at = read_at(&query)?;
    let record = runner
        .run(a, move |e, c| e.layer(c, &ns, &layer, at))
        .await
        .map_err(|e| Problem::from_core(&e, "layer"))?;
    let mut response = json_response(
        StatusCode::OK,
        &json!({
            "namespace": record.namespace.as_str(),
            "layer": record.layer.as_str(),
            "revision": record.revision,
            "document": record.document,
        }),
    )?;
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", record.revision)) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

fn ns_and_layer(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(NamespaceName, LayerPath), Problem> {
    let Path((ns, layer)) =
        path.map_err(|e| Problem::from_core(&Error::invalid("path", e.body_text()), "path"))?;
    Ok((namespace(&ns)?, layer_path(&layer)?))
}

/// `PUT /v1/namespaces/{namespace}/layers/{layer}`: the layer's whole
/// document (JSON, TOML or YAML). `If-Match` makes it conditional on the
/// layer's revision (`412` when it moved on).
async fn put_layer(
    State(runner): State<Runner>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    exts: axum::Extension<Authenticated>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let (ns, layer) = ns_and_layer(path)?;
    let expect = if_match(&headers)?;
    let format = body_format(&headers)?;
    let body = body_of(body)?;
    let document = confstrata_core::format::parse(&body, format, "body", &Limits::default())
        .map_err(|e| Problem::from_core(&e, "body"))?;
    let a = Credentials::from_headers(&headers, None, "http").with_authenticated(Some(&exts.0));
    let changes = ChangeSet {
        author: String::new(),
        message: headers
            .get("x-confstrata-message")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        ops: vec![Op::Put {
            namespace: ns,
            layer,
            document,
            expect_revision: expect,
        }],
    };
    commit(&runner, a, changes, "", expect.is_some()).await
}

/// `DELETE /v1/namespaces/{namespace}/layers/{layer}` (`If-Match` as for
/// `PUT`).
async fn delete_layer(
    State(runner): State<Runner>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    exts: axum::Extension<Authenticated>,
) -> Result<Response, Problem> {
    let (ns, layer) = ns_and_layer(path)?;
    let expect = if_match(&headers)?;
    let a = Credentials::from_headers(&headers, None, "http").with_authenticated(Some(&exts.0));
    let changes = ChangeSet {
        author: String::new(),
        message: String::new(),
        ops: vec![Op::Delete {
            namespace: ns,
            layer,
            expect_revision: expect,
        }],
    };
    commit(&runner, a, changes, "", expect.is_some()).await
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
