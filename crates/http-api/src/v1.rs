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
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use confstrata_core::format::Format;
use confstrata_core::serde_json::{self, Value};
use confstrata_core::{
    At, ChangeSet, Context, Error, KeyPath, LayerPath, Limits, NamespaceName, Op,
};
use confstrata_engine::{Caller, Engine};
use confstrata_host::{Authenticated, Credentials, Peer, Runner};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::openapi::{
    ApiDoc, AuditPage, ChangeSetAnswer, Committed, Declarations, History, LayerBody, LayerItem,
    LayerList, NamespaceCreated, NamespaceItem, NamespaceList, Refusals, Resolved, RollbackDone,
    Schemas, Validated, WriteRefusals,
};
use crate::problem::Problem;
use confstrata_core::view::ExplainView;
use confstrata_core::view::{AuditVerification, ServerStatus};
use confstrata_core::{NamespaceRecord, NamespaceSpec};

/// The `/v1` routes and their OpenAPI description (no state, no layers:
/// [`router`] adds them; [`crate::openapi::document`] takes the paths).
pub(crate) fn routes() -> OpenApiRouter<Runner> {
    short_routes().merge(long_routes())
}

/// The routes whose answers may wait on purpose (the long poll, the
/// event stream) or take long by nature (a backup, its verification):
/// outside the request timeout and the in-flight bound.
fn long_routes() -> OpenApiRouter<Runner> {
    OpenApiRouter::new()
        .routes(routes!(resolve))
        .routes(routes!(crate::watch::watch))
        .routes(routes!(
            crate::backup::create_backup,
            crate::backup::list_backups
        ))
        .routes(routes!(crate::backup::verify_backup))
}

/// Every other route: answered within the request timeout.
fn short_routes() -> OpenApiRouter<Runner> {
    OpenApiRouter::with_openapi(ApiDoc::openapi().merge_from(Schemas::openapi()))
        .routes(routes!(list_namespaces, create_namespace))
        .routes(routes!(get_namespace, delete_namespace))
        .routes(routes!(explain))
        .routes(routes!(history))
        .routes(routes!(declarations))
        .routes(routes!(rollback))
        .routes(routes!(validate))
        .routes(routes!(status))
        .routes(routes!(audit))
        .routes(routes!(audit_verify))
        .routes(routes!(stats))
        .routes(routes!(list_layers))
        .routes(routes!(get_layer, put_layer, patch_layer, delete_layer))
        .routes(routes!(apply_change_set))
        .routes(routes!(import_bundle))
        .routes(routes!(
            crate::templates::list_templates,
            crate::templates::put_template
        ))
        .routes(routes!(crate::templates::get_template))
        .routes(routes!(crate::templates::apply_template))
        .routes(routes!(crate::templates::template_diff))
        .routes(routes!(crate::templates::upgrade_template))
        .routes(routes!(crate::templates::generate))
        .routes(routes!(crate::diff::revisions))
        .routes(routes!(crate::diff::layers))
        .routes(routes!(crate::diff::contexts))
        .routes(routes!(crate::diff::declaration))
        .routes(routes!(crate::admin::list_keys))
        .routes(routes!(crate::admin::rotate_key))
        .routes(routes!(crate::admin::rewrap_keys))
        .routes(routes!(crate::admin::retire_key))
        .routes(routes!(crate::admin::rotate_master_key))
        .routes(routes!(crate::admin::compact))
        .routes(routes!(
            crate::admin::list_principals,
            crate::admin::add_principal
        ))
        .routes(routes!(crate::admin::get_principal))
        .routes(routes!(crate::admin::revoke_principal))
        .routes(routes!(
            crate::admin::grant_principal_role,
            crate::admin::revoke_principal_role
        ))
        .routes(routes!(crate::admin::issue_token))
        .routes(routes!(crate::admin::revoke_token))
        .routes(routes!(crate::admin::check_access))
        .routes(routes!(crate::admin::list_roles))
        .routes(routes!(crate::admin::put_role, crate::admin::delete_role))
        .routes(routes!(crate::admin::list_groups))
        .routes(routes!(crate::admin::put_group, crate::admin::delete_group))
        .routes(routes!(crate::admin::update_group_members))
        .routes(routes!(
            crate::admin::grant_group_role,
            crate::admin::revoke_group_role
        ))
        .routes(routes!(
            crate::admin::export_policy,
            crate::admin::apply_policy
        ))
}

/// The `/v1` routes, behind the authentication gate; all but the long
/// poll and the event stream within `options`' timeout and in-flight
/// bound (tower's `timeout`, global concurrency limit and `load_shed`: a
/// request over the bound is refused at once, `503` with `Retry-After`,
/// rather than queued).
pub(crate) fn router(host: &confstrata_host::Host, options: &crate::HttpOptions) -> Router {
    let runner = host.runner().clone();
    let waits = Waits {
        revisions: host.revisions(),
        stopping: host.stopping(),
    };
    let (short, _) = short_routes().split_for_parts();
    let (long, _) = long_routes().split_for_parts();
    let bounded = tower::ServiceBuilder::new()
        .layer(axum::error_handling::HandleErrorLayer::new(
            refused_by_limit,
        ))
        .load_shed()
        // One semaphore for every route (axum layers each route apart; a
        // plain concurrency limit would bound each path on its own).
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            options.max_in_flight.max(1),
        ))
        .timeout(options.request_timeout);
    short
        .layer(bounded)
        .merge(long)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // The same bound as a gRPC message: above the change set limit, so
        // an oversized change set gets that limit's precise 413.
        .layer(DefaultBodyLimit::max(max_body()))
        .layer(axum::Extension(waits))
        .layer(axum::Extension(crate::watch::Feeds(host.clone())))
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
        Err(e) => {
            confstrata_host::drain(req.into_body()).await;
            Problem::from_core(&e, "").into_response()
        }
    }
}

/// A request the limits refused: over the in-flight bound, or not done
/// within the timeout (its work, already on the blocking pool, finishes
/// there; a write that was committing is committed or not, as its
/// revision in history says).
async fn refused_by_limit(e: tower::BoxError) -> Problem {
    let detail = if e.is::<tower::timeout::error::Elapsed>() {
        "the request was not answered within the server's request timeout (http_request_timeout_ms)"
    } else if e.is::<tower::load_shed::error::Overloaded>() {
        "too many requests are in flight (http_max_in_flight); retry shortly"
    } else {
        "the request could not be served"
    };
    Problem::from_core(
        &Error::Unavailable {
            message: detail.to_owned(),
        },
        "",
    )
}

async fn method_not_allowed(req: Request) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        &format!("{} is not served at {}", req.method(), req.uri().path()),
    )
}

async fn not_found(req: Request) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        &format!("no resource at {}", req.uri().path()),
    )
}

/// An engine call through the runner (authenticated, on the blocking
/// pool, within its bound); an error as a problem naming `field` when the
/// error itself does not say.
pub(crate) async fn read<T: Send + 'static>(
    runner: &Runner,
    a: Credentials,
    field: &str,
    f: impl FnOnce(&Engine, &Caller) -> confstrata_core::Result<T> + Send + 'static,
) -> Result<T, Problem> {
    runner
        .run(a, f)
        .await
        .map_err(|e| Problem::from_core(&e, field))
}

/// The credentials of a request the gate let in (with the caller it found).
pub(crate) struct Creds(pub(crate) Credentials);

impl FromRequestParts<Runner> for Creds {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &Runner) -> Result<Self, Problem> {
        let ext = &parts.extensions;
        Ok(Creds(
            Credentials::from_headers(&parts.headers, ext.get::<Peer>().map(|p| p.0), "http")
                .with_authenticated(ext.get::<Authenticated>()),
        ))
    }
}

/// What a request about one namespace brings: its credentials, the
/// namespace of its path (checked) and its query parameters.
pub(crate) struct NsRequest {
    pub(crate) a: Credentials,
    pub(crate) ns: NamespaceName,
    pub(crate) query: Vec<(String, String)>,
}

impl FromRequestParts<Runner> for NsRequest {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, runner: &Runner) -> Result<Self, Problem> {
        let query = query_of(Query::from_request_parts(parts, runner).await)?;
        let ns = namespace(&path_of(
            Path::from_request_parts(parts, runner).await,
            "namespace",
        )?)?;
        let Creds(a) = Creds::from_request_parts(parts, runner).await?;
        Ok(NsRequest { a, ns, query })
    }
}

fn namespace(raw: &str) -> Result<NamespaceName, Problem> {
    NamespaceName::parse(raw).map_err(|e| Problem::from_core(&e, "namespace"))
}

pub(crate) fn layer_path(raw: &str) -> Result<LayerPath, Problem> {
    LayerPath::parse(raw).map_err(|e| Problem::from_core(&e, "layer"))
}

/// The most bytes of a request body.
fn max_body() -> usize {
    Limits::default().max_change_set_bytes.saturating_mul(2)
}

/// The format of a request body, from its `Content-Type`: JSON, TOML or
/// YAML; anything else (or none) is `415`.
pub(crate) fn body_format(headers: &HeaderMap) -> Result<Format, Problem> {
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

/// A request body (JSON, TOML or YAML by `Content-Type`) as a `T`,
/// through the project's parser (depth limits, errors naming the field).
pub(crate) fn structured_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, Problem> {
    let format = body_format(headers)?;
    let body = body_of(body)?;
    confstrata_core::format::parse_structured(&body, format, "body", &Limits::default())
        .map_err(|e| Problem::from_core(&e, "body"))
}

/// [`structured_body`] of a body that may be empty: the default then.
pub(crate) fn optional_body<T: serde::de::DeserializeOwned + Default>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, Problem> {
    match &body {
        Ok(b) if b.is_empty() => Ok(T::default()),
        _ => structured_body(headers, body),
    }
}

/// A request's body, or `413` when it is over the bound.
pub(crate) fn body_of(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Problem> {
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
    if let Some(v) = headers.get(header::IF_NONE_MATCH) {
        // Create only: the layer must not exist (`expect_revision` 0).
        if v.to_str().is_ok_and(|t| t.trim() == "*") {
            return Ok(Some(0));
        }
        return Err(Problem::from_core(
            &Error::invalid(
                "If-None-Match",
                "on a write only `*` (create, never replace) is taken",
            ),
            "If-None-Match",
        ));
    }
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = v.to_str().unwrap_or("").trim();
    // A layer's strong tag (`"12"`) or the bare revision; not a weak
    // tag, a list, `*`, or a resolve's tag (its revision is the newest
    // of several layers, not this one's).
    let inner = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    number(inner).map(Some).ok_or_else(|| {
        Problem::from_core(
            &Error::invalid(
                "If-Match",
                format!(
                    "{:?} is not a layer's revision: send the ETag of the layer's read (\"12\") or the revision",
                    confstrata_core::clip(text, 100)
                ),
            ),
            "If-Match",
        )
    })
}

/// Whether an `If-None-Match` names `etag` (weak comparison, RFC 9110
/// 13.1.2: `W/` prefixes are ignored; `*` matches anything).
fn none_match(if_none_match: Option<&HeaderValue>, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let want = bare(etag);
    if_none_match
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == "*" || bare(t) == want))
}

/// A JSON answer with `etag`, or `304` when `If-None-Match` names it.
fn tagged(
    headers: &HeaderMap,
    etag: String,
    value: &impl serde::Serialize,
) -> Result<Response, Problem> {
    let tag = HeaderValue::from_str(&etag).map_err(Error::storage)?;
    if none_match(headers.get(header::IF_NONE_MATCH), &etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response());
    }
    let mut response = json_response(StatusCode::OK, value)?;
    response.headers_mut().insert(header::ETAG, tag);
    Ok(response)
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
    json_response(StatusCode::OK, &Committed::from(info))
}

pub(crate) fn json_response(
    status: StatusCode,
    value: &impl serde::Serialize,
) -> Result<Response, Problem> {
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

/// `POST /v1/changesets[?dry_run=true]`: a change set document (JSON,
/// TOML or YAML, as `confstrata apply -f` takes), committed as one
/// revision or not at all; with `dry_run`, what it would change and what
/// validation finds, committing nothing.
#[utoipa::path(
    post, path = "/v1/changesets", tag = "changes",
    params(("dry_run" = Option<bool>, Query, description = "Show what it would change and what validation finds; commit nothing")),
    request_body(content = ChangeSet, description = "A change set (JSON, TOML or YAML by `Content-Type`), as `confstrata apply -f` takes: committed as one revision or not at all",
        example = json!({"message": "raise the pool for the sale", "ops": [
            {"op": "set", "namespace": "webshop", "layer": "env/prod", "key": "db.pool.max", "value": 80},
            {"op": "unset", "namespace": "webshop", "layer": "env/prod", "key": "feature.banner"}
        ]})),
    responses(
        (status = 200, description = "Committed (or, with `dry_run`, what it would change and what validation finds)", body = ChangeSetAnswer),
        Refusals, WriteRefusals),
)]
async fn apply_change_set(
    State(runner): State<Runner>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
    Creds(a): Creds,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let query = query_of(query)?;
    let format = body_format(&headers)?;
    let body = body_of(body)?;
    let changes =
        confstrata_core::format::parse_change_set(&body, format, "body", &Limits::default())
            .map_err(|e| Problem::from_core(&e, "body"))?;
    commit_or_dry_run(&runner, a, changes, flag(&query, "dry_run")?).await
}

/// What `POST /v1/imports` takes: a namespace as files, the bundle
/// `confstrata export` writes.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportBody {
    /// Each file's path in the bundle and its text: `namespace.toml` (or
    /// `.yaml`, `.yml`, `.json`) and `layers/<layer path>.<toml|yaml|json|env>`.
    files: std::collections::BTreeMap<String, String>,
    /// The change set's message (default: "import NAMESPACE").
    #[serde(default)]
    message: Option<String>,
}

/// `POST /v1/imports[?dry_run=true]`: a namespace as files (the bundle
/// `confstrata export` writes and `confstrata import DIR` reads), turned
/// into one change set by the same step (`confstrata_core::bundle`) and
/// committed, validated like any other; with `dry_run`, what it would
/// change and what validation finds.
#[utoipa::path(
    post, path = "/v1/imports", tag = "changes",
    params(("dry_run" = Option<bool>, Query, description = "Show what it would change and what validation finds; commit nothing")),
    request_body(content = ImportBody, description = "The bundle's files (JSON, TOML or YAML by `Content-Type`)",
        example = json!({"files": {
            "namespace.toml": "name = \"web\"\nlevels = [\"defaults\", \"env/{env}\"]\n",
            "layers/defaults.toml": "port = 8080\n",
            "layers/env/prod.yaml": "port: 443\n"
        }})),
    responses(
        (status = 200, description = "Committed (or, with `dry_run`, what it would change and what validation finds)", body = ChangeSetAnswer),
        Refusals, WriteRefusals),
)]
async fn import_bundle(
    State(runner): State<Runner>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
    Creds(a): Creds,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let query = query_of(query)?;
    let request: ImportBody = structured_body(&headers, body)?;
    let files = request
        .files
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    let mut changes = confstrata_core::bundle::change_set(&files, &Limits::default())
        .map_err(|e| Problem::from_core(&e, "body"))?;
    if let Some(message) = request.message {
        changes.message = message;
    }
    commit_or_dry_run(&runner, a, changes, flag(&query, "dry_run")?).await
}

/// Commits a change set, or with `dry_run` answers what it would do.
async fn commit_or_dry_run(
    runner: &Runner,
    a: Credentials,
    changes: ChangeSet,
    dry_run: bool,
) -> Result<Response, Problem> {
    if dry_run {
        let dry = read(runner, a, "body", move |e, c| e.dry_run(c, &changes)).await?;
        return json_response(StatusCode::OK, &ChangeSetAnswer::DryRun(dry));
    }
    commit(runner, a, changes, "", false).await
}

/// `GET /v1/namespaces/{namespace}/layers[?revision=N]`: every layer the
/// caller may read, with its document.
#[utoipa::path(
    get, path = "/v1/namespaces/{namespace}/layers", tag = "layers",
    params(("namespace" = String, Path, min_length = 1, description = "The namespace (`/` as `%2F`)"), ("revision" = Option<u64>, Query, description = "Read as of this revision (default: the newest)"), ("at" = Option<String>, Query, description = "Read as of a time (RFC 3339: the newest revision committed at or before it), a revision, or `latest`; instead of `revision`")),
    responses((status = 200, description = "Every layer the caller may read, with its document", body = LayerList), Refusals),
)]
async fn list_layers(
    State(runner): State<Runner>,
    NsRequest { a, ns, query }: NsRequest,
) -> Result<Response, Problem> {
    let at = read_at(&query)?;
    let (revision, layers) = read(&runner, a, "namespace", move |e, c| {
        let rev = e.store().revision_at(at)?;
        Ok((rev, e.layers(c, &ns, At::Revision(rev))?))
    })
    .await?;
    let layers = layers
        .into_iter()
        .map(|l| LayerItem {
            layer: l.layer,
            revision: l.revision,
            document: l.document,
            sealed_keys: l.sealed_keys,
        })
        .collect();
    json_response(StatusCode::OK, &LayerList { revision, layers })
}

/// `GET /v1/namespaces/{namespace}/layers/{layer}[?revision=N]`: one
/// layer's document, with the revision that last changed it as its `ETag`
/// (send it back in `If-Match` to write only over that version).
#[utoipa::path(
    get, path = "/v1/namespaces/{namespace}/layers/{layer}", tag = "layers",
    params(("namespace" = String, Path, min_length = 1, description = "The namespace (`/` as `%2F`)"), ("layer" = String, Path, min_length = 1, description = "The layer's path (`/` as `%2F`: `env%2Fprod`)"), ("revision" = Option<u64>, Query, description = "Read as of this revision (default: the newest)"), ("at" = Option<String>, Query, description = "Read as of a time (RFC 3339: the newest revision committed at or before it), a revision, or `latest`; instead of `revision`"), ("If-None-Match" = Option<String>, Header, pattern = "^[ -~]*$", description = "An ETag of an earlier read: `304` while it holds")),
    responses(
        (status = 200, description = "The layer's document", body = LayerBody, headers(("ETag" = String, description = "The revision that last changed it, `\"12\"`: send it in `If-Match`"))),
        (status = 304, description = "Not modified since the ETag sent"),
        Refusals),
)]
async fn get_layer(
    State(runner): State<Runner>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
    Creds(a): Creds,
) -> Result<Response, Problem> {
    let query = query_of(query)?;
    let (ns, layer) = ns_and_layer(path)?;
    let at = read_at(&query)?;
    let record = read(&runner, a, "layer", move |e, c| e.layer(c, &ns, &layer, at)).await?;
    tagged(
        &headers,
        format!("\"{}\"", record.revision),
        &LayerBody {
            namespace: record.namespace,
            layer: record.layer,
            revision: record.revision,
            document: record.document,
            sealed_keys: record.sealed_keys,
        },
    )
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
#[utoipa::path(
    put, path = "/v1/namespaces/{namespace}/layers/{layer}", tag = "layers",
    params(("namespace" = String, Path, min_length = 1, description = "The namespace (`/` as `%2F`)"), ("layer" = String, Path, min_length = 1, description = "The layer's path (`/` as `%2F`: `env%2Fprod`)"), ("If-Match" = Option<String>, Header, pattern = "^(\"[0-9]+\"|[0-9]+)$", description = "Write only if the layer is at this revision: its ETag (`\"12\"`) or the number; `412` otherwise"), ("If-None-Match" = Option<String>, Header, pattern = "^[*]$", description = "`*`: create only, never replace (`409`/`412` if it exists)"), ("X-Confstrata-Message" = Option<String>, Header, pattern = "^[ -~]*$", max_length = 1000, description = "The change's message, kept in history")),
    request_body(content = Object, description = "The layer's whole document (JSON, TOML or YAML by `Content-Type`)",
        example = json!({"db": {"host": "db.prod.internal", "pool": {"max": 40}}, "log": {"level": "warn"}})),
    responses(
        (status = 200, description = "Committed", body = Committed),
        (status = 201, description = "Created (with `If-None-Match: *`, which only creates)", body = Committed, headers(("Location" = String, description = "The layer's URL"))),
        Refusals, WriteRefusals),
)]
async fn put_layer(
    State(runner): State<Runner>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    Creds(a): Creds,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let (ns, layer) = ns_and_layer(path)?;
    let expect = if_match(&headers)?;
    let format = body_format(&headers)?;
    let body = body_of(body)?;
    let document = confstrata_core::format::parse(&body, format, "body", &Limits::default())
        .map_err(|e| Problem::from_core(&e, "body"))?;
    // `If-None-Match: *` (expect revision 0) only creates: its success is
    // a creation, `201` with the layer's URL. (An unconditional PUT may
    // create or replace; it answers `200` either way.)
    let location = (expect == Some(0)).then(|| {
        format!(
            "/v1/namespaces/{}/layers/{}",
            ns.as_str().replace('/', "%2F"),
            layer.as_str().replace('/', "%2F")
        )
    });
    let changes = ChangeSet {
        author: String::new(),
        message: message_of(&headers)?,
        ops: vec![Op::Put {
            namespace: ns,
            layer,
            document,
            expect_revision: expect,
        }],
    };
    let mut response = commit(&runner, a, changes, "", expect.is_some()).await?;
    if let Some(location) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        *response.status_mut() = StatusCode::CREATED;
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `DELETE /v1/namespaces/{namespace}/layers/{layer}` (`If-Match` as for
/// `PUT`).
#[utoipa::path(
    delete, path = "/v1/namespaces/{namespace}/layers/{layer}", tag = "layers",
    params(("namespace" = String, Path, min_length = 1, description = "The namespace (`/` as `%2F`)"), ("layer" = String, Path, min_length = 1, description = "The layer's path (`/` as `%2F`: `env%2Fprod`)"), ("If-Match" = Option<String>, Header, pattern = "^(\"[0-9]+\"|[0-9]+)$", description = "Write only if the layer is at this revision: its ETag (`\"12\"`) or the number; `412` otherwise")),
    responses((status = 200, description = "Committed", body = Committed), Refusals, WriteRefusals),
)]
async fn delete_layer(
    State(runner): State<Runner>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    Creds(a): Creds,
) -> Result<Response, Problem> {
    let (ns, layer) = ns_and_layer(path)?;
    let expect = if_match(&headers)?;
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
#[utoipa::path(
    get, path = "/v1/namespaces", tag = "namespaces",
    params(("revision" = Option<u64>, Query, description = "Read as of this revision (default: the newest)"), ("at" = Option<String>, Query, description = "Read as of a time (RFC 3339: the newest revision committed at or before it), a revision, or `latest`; instead of `revision`")),
    responses((status = 200, description = "The namespaces the caller may read", body = NamespaceList), Refusals),
)]
async fn list_namespaces(
    State(runner): State<Runner>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    Creds(a): Creds,
) -> Result<Response, Problem> {
    let query = query_of(query)?;
    let at = read_at(&query)?;
    let (revision, list) = read(&runner, a, "revision", move |e, c| {
        let rev = e.store().revision_at(at)?;
        Ok((rev, e.namespaces(c, At::Revision(rev))?))
    })
    .await?;
    let namespaces = list
        .into_iter()
        .map(|r| NamespaceItem {
            name: r.spec.name.clone(),
            revision: r.revision,
            spec: r.spec,
        })
        .collect();
    json_response(
        StatusCode::OK,
        &NamespaceList {
            revision,
            namespaces,
        },
    )
}

/// A query's parameters, or why they do not parse.
pub(crate) fn query_of(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Vec<(String, String)>, Problem> {
    query
        .map(|Query(q)| q)
        .map_err(|e| Problem::from_core(&Error::invalid("query", e.body_text()), "query"))
}

/// A path segment, or why it does not decode (not UTF-8, say).
pub(crate) fn path_of(
    segment: Result<Path<String>, PathRejection>,
    field: &str,
) -> Result<String, Problem> {
    segment
        .map(|Path(s)| s)
        .map_err(|e| Problem::from_core(&Error::invalid(field, e.body_text()), field))
}

/// A revision or record number: decimal digits, at most 2^63 - 1 (the
/// OpenAPI description's `int64`; the store numbers nothing beyond).
pub(crate) fn number(text: &str) -> Option<u64> {
    text.parse::<i64>().ok().and_then(|n| u64::try_from(n).ok())
}

/// `revision=N` of a query (`At::Latest` without one).
fn read_at(query: &[(String, String)]) -> Result<At, Problem> {
    if let Some(v) = param(query, "at") {
        if param(query, "revision").is_some() {
            return Err(Problem::from_core(
                &Error::invalid("at", "give `revision` or `at`, not both"),
                "at",
            ));
        }
        // `latest`, a revision, or an RFC 3339 time (the newest revision
        // committed at or before it).
        return v.parse::<At>().map_err(|_| {
            Problem::from_core(
                &Error::invalid(
                    "at",
                    format!(
                        "{:?} is not `latest`, a revision or an RFC 3339 time (2026-12-05T14:02:00Z)",
                        confstrata_core::clip(v, 60)
                    ),
                ),
                "at",
            )
        });
    }
    match query.iter().find(|(k, _)| k == "revision") {
        None => Ok(At::Latest),
        Some((_, v)) => number(v).map(At::Revision).ok_or_else(|| {
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
#[utoipa::path(
    get, path = "/v1/namespaces/{namespace}/resolve", tag = "configuration",
    params(("namespace" = String, Path, min_length = 1, description = "The namespace (`/` as `%2F`)"),
        ("context" = Option<BTreeMap<String, String>>, Query, style = Form, explode, description = "The context: one parameter per variable (`env=prod&region=eu`); `context.NAME` for a variable named like a parameter below"),
        ("section" = Option<KeyPath>, Query, description = "Only this key's subtree (`db`)"),
        ("revision" = Option<u64>, Query, description = "Read as of this revision (default: the newest)"), ("at" = Option<String>, Query, description = "Read as of a time (RFC 3339: the newest revision committed at or before it), a revision, or `latest`; instead of `revision`"),
        ("provenance" = Option<bool>, Query, description = "Name every leaf's layer and revision"),
        ("index" = Option<u64>, Query, description = "Long poll: answer once what this view shows changed after this revision (`X-Confstrata-Index` of the last answer)"),
        ("wait" = Option<String>, Query, pattern = "^[0-9]+(ms|s|m)?$", description = "The long poll's longest wait: `500ms`, `30s`, `5m` (default 60 s, at most 10 min)"),
        ("If-None-Match" = Option<String>, Header, pattern = "^[ -~]*$", description = "The ETag of an earlier resolve: `304` while nothing shown changed")),
    responses(
        (status = 200, description = "The configuration of the context", body = Resolved, headers(
            ("ETag" = String, description = "Weak tag of what is shown: `W/\"r12.…\"`"),
            ("X-Confstrata-Index" = u64, description = "The newest revision that changed what is shown: the next long poll's `index`"))),
        (status = 304, description = "Nothing shown changed since the ETag sent"),
        Refusals),
)]
async fn resolve(
    State(runner): State<Runner>,
    axum::Extension(waits): axum::Extension<Waits>,
    NsRequest { a, ns, query }: NsRequest,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let ctx = context_of(
        &query,
        &["section", "revision", "at", "provenance", "index", "wait"],
    )?;
    let section = param(&query, "section")
        .map(|v| KeyPath::parse(v).map_err(|e| Problem::from_core(&e, "section")))
        .transpose()?;
    let provenance = flag(&query, "provenance")?;
    let at = read_at(&query)?;
    let if_none_match = headers.get(header::IF_NONE_MATCH).cloned();
    let index = match param(&query, "index") {
        None => None,
        Some(v) => Some(number(v).ok_or_else(|| {
            Problem::from_core(
                &Error::invalid("index", format!("{v:?} is not a revision number")),
                "index",
            )
        })?),
    };
    let wait = wait_of(&query)?;
    let deadline = tokio::time::Instant::now() + wait;
    let (mut revisions, mut stopping) = (waits.revisions.clone(), waits.stopping.clone());
    let want = Want {
        ns,
        ctx,
        section,
        at,
        provenance,
    };
    loop {
        // Seen before the read: a commit landing during it wakes the wait.
        revisions.borrow_and_update();
        let shown = want.view(&runner, &a).await?;
        let waiting = index.is_some_and(|i| shown.changed <= i) && at == At::Latest;
        if !waiting || *stopping.borrow() {
            return shown.respond(if_none_match.as_ref());
        }
        // Consul's blocking query: answer once anything this view shows is
        // newer than `index`, at the deadline, or when the server stops.
        tokio::select! {
            changed = revisions.changed() => if changed.is_err() {
                return shown.respond(if_none_match.as_ref());
            },
            () = tokio::time::sleep_until(deadline) => return shown.respond(if_none_match.as_ref()),
            _ = stopping.wait_for(|s| *s) => return shown.respond(if_none_match.as_ref()),
        }
    }
}

/// What a long poll waits on: the newest revision, and the stop.
#[derive(Clone)]
pub(crate) struct Waits {
    pub(crate) revisions: tokio::sync::watch::Receiver<u64>,
    pub(crate) stopping: tokio::sync::watch::Receiver<bool>,
}

/// The longest `wait` of a long poll (as Consul's), and the default.
const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(600);
const DEFAULT_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// `wait=30s` (`ms`, `s`, `m`; a bare number is seconds), at most 10 min.
fn wait_of(query: &[(String, String)]) -> Result<std::time::Duration, Problem> {
    let Some(v) = param(query, "wait") else {
        return Ok(DEFAULT_WAIT);
    };
    let (digits, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => v.split_at(i),
        None => (v, "s"),
    };
    let n: u64 = digits.parse().map_err(|_| bad_wait(v))?;
    let d = match unit {
        "ms" => std::time::Duration::from_millis(n),
        "s" => std::time::Duration::from_secs(n),
        "m" => std::time::Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(bad_wait(v)),
    };
    Ok(d.min(MAX_WAIT))
}

fn bad_wait(v: &str) -> Problem {
    Problem::from_core(
        &Error::invalid(
            "wait",
            format!(
                "{:?} is not a duration: send 500ms, 30s or 5m",
                confstrata_core::clip(v, 40)
            ),
        ),
        "wait",
    )
}

/// A resolve as asked for.
struct Want {
    ns: NamespaceName,
    ctx: Context,
    section: Option<KeyPath>,
    at: At,
    provenance: bool,
}

impl Want {
    /// The view: from the cache on this thread when it can, else read.
    async fn view(&self, runner: &Runner, a: &Credentials) -> Result<Shown, Problem> {
        if self.at == At::Latest
            && !self.provenance
            && let Some(shared) = runner.fast(a, |e, c| {
                e.resolve_cached(c, &self.ns, &self.ctx, self.section.as_ref())
            })
        {
            return Ok(Shown {
                ns: self.ns.clone(),
                ctx: self.ctx.clone(),
                revision: shared.revision,
                changed: shared
                    .layers()
                    .iter()
                    .map(|p| p.revision)
                    .max()
                    .unwrap_or(0),
                layers: serde_json::to_string(shared.layers()).map_err(Error::storage)?,
                document: std::sync::Arc::clone(&shared.json),
                provenance: None,
                partial: false,
            });
        }
        let (ns, ctx, section, at) = (
            self.ns.clone(),
            self.ctx.clone(),
            self.section.clone(),
            self.at,
        );
        let view = read(runner, a.clone(), "context", move |e, c| {
            e.resolve_section(c, &ns, &ctx, section.as_ref(), at)
        })
        .await?;
        let provenance = if self.provenance {
            let all = serde_json::to_value(&view).map_err(Error::storage)?;
            Some(serde_json::to_string(&all["provenance"]).map_err(Error::storage)?)
        } else {
            None
        };
        Ok(Shown {
            changed: view.layers.iter().map(|p| p.revision).max().unwrap_or(0),
            layers: serde_json::to_string(&view.layers).map_err(Error::storage)?,
            document: serde_json::to_string(&view.document)
                .map_err(Error::storage)?
                .into(),
            provenance,
            partial: view.partial,
            revision: view.revision,
            ns: view.namespace,
            ctx: view.context,
        })
    }
}

/// A resolve's answer, its parts as JSON text: the cached path has the
/// document's JSON already, the other path makes it, and both give the
/// same bytes for the same view.
struct Shown {
    ns: NamespaceName,
    ctx: Context,
    revision: u64,
    /// The newest revision that changed what it shows.
    changed: u64,
    layers: String,
    document: std::sync::Arc<str>,
    provenance: Option<String>,
    partial: bool,
}

impl Shown {
    /// The answer with its `ETag`, or `304` when the request's
    /// `If-None-Match` names it. The tag is the newest revision that
    /// changed what the answer shows and a hash of what it shows (the
    /// layers, the document, the provenance): a commit that changes
    /// nothing of it keeps the tag, and so does the store's revision
    /// moving on; a change only in what the caller may see (a secret
    /// unmasked) changes it. `X-Confstrata-Index` is that revision, for
    /// the next long poll's `index`.
    fn respond(&self, if_none_match: Option<&HeaderValue>) -> Result<Response, Problem> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (
            &self.layers,
            &*self.document,
            &self.provenance,
            self.partial,
        )
            .hash(&mut hasher);
        // Weak: the body also says the store's revision, which moves on
        // with commits that change nothing shown; the tag does not.
        let etag = format!("W/\"r{}.{:016x}\"", self.changed, hasher.finish());
        let matches = none_match(if_none_match, &etag);
        let etag = HeaderValue::from_str(&etag).map_err(Error::storage)?;
        let index = HeaderValue::from(self.changed);
        if matches {
            return Ok((
                StatusCode::NOT_MODIFIED,
                [(header::ETAG, etag), (INDEX.clone(), index)],
            )
                .into_response());
        }
        let mut body = format!(
            "{{\"namespace\":{},\"context\":{},\"revision\":{},\"layers\":{},\"document\":{}",
            serde_json::to_string(self.ns.as_str()).map_err(Error::storage)?,
            serde_json::to_string(&self.ctx).map_err(Error::storage)?,
            self.revision,
            self.layers,
            self.document,
        );
        if let Some(p) = &self.provenance {
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
                (INDEX.clone(), index),
            ],
            body,
        )
            .into_response())
    }
}

/// The response header that carries a resolve's index.
static INDEX: axum::http::HeaderName = axum::http::HeaderName::from_static("x-confstrata-index");

/// The context variables of a query (every parameter not in `reserved`;
/// `context.NAME` for a variable named like a reserved one).
pub(crate) fn context_of(
    query: &[(String, String)],
    reserved: &[&str],
) -> Result<Context, Problem> {
    let mut ctx = Context::new();
    for (k, v) in query {
        if reserved.contains(&k.as_str()) {
            continue;
        }
        let name = k.strip_prefix("context.").unwrap_or(k);
        if ctx.insert(name.to_owned(), v.clone()).is_some() {
            return Err(Problem::from_core(
                &Error::invalid("context", format!("variable {name:?} is given twice")),
                "context",
            ));
        }
    }
    Ok(ctx)
}

/// A query parameter's value, if given.
pub(crate) fn param<'q>(query: &'q [(String, String)], name: &str) -> Option<&'q str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A yes-or-no query parameter: `true`, `1` or present without a value;
/// `false` or `0`; absent is no.
pub(crate) fn flag(query: &[(String, String)], name: &str) -> Result<bool, Problem> {
    match param(query, name) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(v) => Err(Problem::from_core(
            &Error::invalid(name, format!("{v:?} is not true or false")),
            name,
        )),
    }
}

/// `POST /v1/namespaces[?replace=true]`: declares a namespace (body: its
/// declaration, JSON, TOML or YAML, as `confstrata ns create -f` takes).
/// `201 Created` with `Location`; an existing one is `409` unless
/// `replace=true` (then `200`).
#[utoipa::path(
    post, path = "/v1/namespaces", tag = "namespaces",
    params(("replace" = Option<bool>, Query, description = "Replace an existing declaration (`200`) instead of refusing it (`409`)")),
    request_body(content = NamespaceSpec, description = "The declaration (JSON, TOML or YAML by `Content-Type`), as `confstrata ns create -f` takes",
        example = json!({"name": "webshop", "description": "the shop's services", "levels": ["defaults", "env/{env}", "env/{env}/region/{region}"],
            "matrix": {"env": ["dev", "staging", "prod"], "region": ["eu", "us"]}})),
    responses(
        (status = 201, description = "Declared", body = NamespaceCreated, headers(("Location" = String, description = "The namespace's URL"))),
        (status = 200, description = "Replaced (`replace=true`)", body = NamespaceCreated),
        Refusals, WriteRefusals),
)]
async fn create_namespace(
    State(runner): State<Runner>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
    Creds(a): Creds,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let query = query_of(query)?;
    let replace = flag(&query, "replace")?;
    let spec: confstrata_core::NamespaceSpec = structured_body(&headers, body)?;
    let (record, info) = runner
        .write(a, move |e, c| e.create_namespace(c, spec, replace, ""))
        .await
        .map_err(|e| Problem::from_core(&e, "body"))?;
    let status = if replace {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut response = json_response(
        status,
        &NamespaceCreated {
            namespace: record.clone(),
            revision: info.revision,
            time_ms: info.time.0,
        },
    )?;
    let location = format!(
        "/v1/namespaces/{}",
        record.spec.name.as_str().replace('/', "%2F")
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// `GET /v1/namespaces/{namespace}[?revision=N]`: its declaration and the
/// revision that last changed it (also the `ETag`).
#[utoipa::path(
    get, path = "/v1/namespaces/{namespace}", tag = "namespaces",
    params(("namespace" = String, Path, min_length = 1, description = "The namespace (`/` as `%2F`)"), ("revision" = Option<u64>, Query, description = "Read as of this revision (default: the newest)"), ("at" = Option<String>, Query, description = "Read as of a time (RFC 3339: the newest revision committed at or before it), a revision, or `latest`; instead of `revision`"), ("If-None-Match" = Option<String>, Header, pattern = "^[ -~]*$", description = "An ETag of an earlier read: `304` while it still holds")),
    responses(
        (status = 200, description = "Its declaration and the revision that last changed it", body = NamespaceRecord, headers(("ETag" = String, description = "The revision, `\"12\"`"))),
        (status = 304, description = "Not modified since the ETag sent"),
        Refusals),
)]
async fn get_namespace(
    State(runner): State<Runner>,
    NsRequest { a, ns, query }: NsRequest,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let at = read_at(&query)?;
    let record = read(&runner, a, "namespace", move |e, c| e.namespace(c, &ns, at)).await?;
    tagged(&headers, format!("\"{}\"", record.revision), &record)
}

/// `DELETE /v1/namespaces/{namespace}`: the declaration and every layer
/// (their history stays); refused while another namespace imports it.
/// `If-Match` names the declaration's revision.
#[utoipa::path(
    delete, path = "/v1/namespaces/{namespace}", tag = "namespaces",
    params(("namespace" = String, Path, min_length = 1, description = "The namespace (`/` as `%2F`)"), ("If-Match" = Option<String>, Header, pattern = "^(\"[0-9]+\"|[0-9]+)$", description = "Delete only if the declaration is at this revision: its ETag (`\"12\"`) or the number; `412` otherwise"), ("X-Confstrata-Message" = Option<String>, Header, pattern = "^[ -~]*$", max_length = 1000, description = "The change's message, kept in history")),
    responses((status = 200, description = "Committed", body = Committed), Refusals, WriteRefusals),
)]
async fn delete_namespace(
    State(runner): State<Runner>,
    NsRequest { a, ns, .. }: NsRequest,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let expect = if_match(&headers)?;
    let changes = ChangeSet {
        author: String::new(),
        message: message_of(&headers)?,
        ops: vec![Op::DeleteNamespace {
            namespace: ns,
            expect_revision: expect,
        }],
    };
    commit(&runner, a, changes, "", expect.is_some()).await
}

/// `GET /v1/namespaces/{namespace}/explain?key=KEY&VAR=VALUE...[&revision=N]`:
/// where a key's value comes from, layer by layer.
#[utoipa::path(
    get, path = "/v1/namespaces/{namespace}/explain", tag = "configuration",
    params(("namespace" = String, Path, min_length = 1, description = "The namespace (`/` as `%2F`)"),
        ("key" = KeyPath, Query, description = "The key to explain (`db.pool`)"),
        ("context" = Option<BTreeMap<String, String>>, Query, style = Form, explode, description = "The context, one parameter per variable"),
        ("revision" = Option<u64>, Query, description = "Read as of this revision (default: the newest)"), ("at" = Option<String>, Query, description = "Read as of a time (RFC 3339: the newest revision committed at or before it), a revision, or `latest`; instead of `revision`")),
    responses((status = 200, description = "Where the key's value comes from, layer by layer", body = ExplainView), Refusals),
)]
async fn explain(
    State(runner): State<Runner>,
    NsRequest { a, ns, query }: NsRequest,
) -> Result<Response, Problem> {
    let key = match param(&query, "key") {
        Some(k) => KeyPath::parse(k).map_err(|e| Problem::from_core(&e, "key"))?,
        None => {
            return Err(Problem::from_core(
                &Error::invalid("key", "it is required"),
                "key",
            ));
        }
    };
    let ctx = context_of(&query, &["key", "revision", "at"])?;
    let at = read_at(&query)?;
    let view = read(&runner, a, "context", move |e, c| {
        e.explain(c, &ns, &ctx, &key, at)
    })
    .await?;
    json_response(StatusCode::OK, &view)
}

/// The most versions one history answer holds.
const MAX_HISTORY: usize = 10_000;

/// `GET /v1/namespaces/{namespace}/history[?layer=LAYER][&limit=N]`: the
/// versions of its layers (or of one), newest first (100 unless `limit`).
#[utoipa::path(
    get, path = "/v1/namespaces/{namespace}/history", tag = "configuration",
    params(("namespace" = String, Path, min_length = 1, description = "The namespace (`/` as `%2F`)"),
        ("layer" = Option<String>, Query, min_length = 1, description = "Only this layer"),
        ("limit" = Option<usize>, Query, minimum = 1, description = "At most this many versions (default 100, at most 10,000)")),
    responses((status = 200, description = "The versions of its layers, newest first", body = History), Refusals),
)]
async fn history(
    State(runner): State<Runner>,
    NsRequest { a, ns, query }: NsRequest,
) -> Result<Response, Problem> {
    let layer = param(&query, "layer").map(layer_path).transpose()?;
    let limit = count(&query, "limit", 100, MAX_HISTORY)?;
    let versions = read(&runner, a, "namespace", move |e, c| {
        e.history(c, &ns, layer.as_ref(), limit)
    })
    .await?;
    json_response(StatusCode::OK, &History { versions })
}

/// `GET /v1/stats`: the server's counters (`stats` right).
#[utoipa::path(
    get, path = "/v1/stats", tag = "server",
    responses((status = 200, description = "Cache counters and budget, stage timings (`audit` right)", body = Object), Refusals),
)]
async fn stats(State(runner): State<Runner>, Creds(a): Creds) -> Result<Response, Problem> {
    let stats = read(&runner, a, "", |e, c| e.stats(c)).await?;
    json_response(StatusCode::OK, &stats)
}

/// A positive count parameter (`limit`), `default` when absent.
fn count(
    query: &[(String, String)],
    name: &str,
    default: usize,
    max: usize,
) -> Result<usize, Problem> {
    match param(query, name) {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n.min(max)),
            _ => Err(Problem::from_core(
                &Error::invalid(name, format!("{v:?} is not a positive number")),
                name,
            )),
        },
    }
}

/// `GET /v1/namespaces/{namespace}/declarations[?limit=N]`: the versions
/// of its declaration, newest first.
#[utoipa::path(
    get, path = "/v1/namespaces/{namespace}/declarations", tag = "namespaces",
    params(("namespace" = String, Path, min_length = 1, description = "The namespace (`/` as `%2F`)"), ("limit" = Option<usize>, Query, minimum = 1, description = "At most this many versions (default 100)")),
    responses((status = 200, description = "The versions of its declaration, newest first", body = Declarations), Refusals),
)]
async fn declarations(
    State(runner): State<Runner>,
    NsRequest { a, ns, query }: NsRequest,
) -> Result<Response, Problem> {
    let limit = count(&query, "limit", 100, MAX_HISTORY)?;
    let versions = read(&runner, a, "namespace", move |e, c| {
        e.declaration_history(c, &ns, limit)
    })
    .await?;
    json_response(StatusCode::OK, &Declarations { versions })
}

/// `POST /v1/namespaces/{namespace}/rollback?revision=N[&layer=LAYER][&dry_run=true][&message=TEXT]`:
/// a new change set that puts the namespace (or one layer) back as it was
/// at revision `N`, validated like any other; with `dry_run`, the change
/// set it would commit. `change_set` is `null` when nothing differs.
#[utoipa::path(
    post, path = "/v1/namespaces/{namespace}/rollback", tag = "changes",
    params(("namespace" = String, Path, min_length = 1, description = "The namespace (`/` as `%2F`)"),
        ("revision" = u64, Query, description = "The revision to go back to"),
        ("layer" = Option<String>, Query, min_length = 1, description = "Only this layer"),
        ("dry_run" = Option<bool>, Query, description = "Show the change set, commit nothing"),
        ("from_backup" = Option<bool>, Query, description = "Read the state to go back to from the server's backups (for a revision retention removed; `backup` right too)"),
        ("message" = Option<String>, Query, description = "The change's message")),
    responses((status = 200, description = "The change set made (and its commit unless a dry run)", body = RollbackDone), Refusals, WriteRefusals),
)]
async fn rollback(
    State(runner): State<Runner>,
    NsRequest { a, ns, query }: NsRequest,
) -> Result<Response, Problem> {
    if param(&query, "revision").is_none() {
        return Err(Problem::from_core(
            &Error::invalid("revision", "it is required: the revision to go back to"),
            "revision",
        ));
    }
    let to = read_at(&query)?;
    let layer = param(&query, "layer").map(layer_path).transpose()?;
    let dry_run = flag(&query, "dry_run")?;
    let from_backup = flag(&query, "from_backup")?;
    let message = param(&query, "message").unwrap_or("").to_owned();
    let done = runner
        .write(a, move |e, c| {
            if from_backup {
                e.rollback_from_backup(c, &ns, layer.as_ref(), to, &message, dry_run)
            } else {
                e.rollback(c, &ns, layer.as_ref(), to, &message, dry_run)
            }
        })
        .await
        .map_err(|e| Problem::from_core(&e, "revision"))?;
    json_response(StatusCode::OK, &RollbackDone::from(done))
}

/// `GET /v1/validate[?namespace=NS]`: runs the validation chains of every
/// namespace (or one) over their context matrices, committing nothing.
#[utoipa::path(
    get, path = "/v1/validate", tag = "changes",
    params(("namespace" = Option<String>, Query, min_length = 1, description = "Only this namespace")),
    responses((status = 200, description = "What the validation chains find over the context matrices", body = Validated), Refusals),
)]
async fn validate(
    State(runner): State<Runner>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    Creds(a): Creds,
) -> Result<Response, Problem> {
    let query = query_of(query)?;
    let ns = param(&query, "namespace").map(namespace).transpose()?;
    let (revision, findings) = read(&runner, a, "namespace", move |e, c| {
        Ok((e.revision()?, e.validate(c, ns.as_ref())?))
    })
    .await?;
    let errors = findings
        .iter()
        .filter(|f| f.severity == confstrata_core::Severity::Error)
        .count();
    json_response(
        StatusCode::OK,
        &Validated {
            revision,
            ok: errors == 0,
            errors,
            findings,
        },
    )
}

/// `GET /v1/status`: revision, retained range, namespaces, store size and
/// the server's version.
#[utoipa::path(
    get, path = "/v1/status", tag = "server",
    responses((status = 200, description = "Revision, retained range, namespaces, store size, version", body = ServerStatus), Refusals),
)]
async fn status(State(runner): State<Runner>, Creds(a): Creds) -> Result<Response, Problem> {
    let status = read(&runner, a, "", |e, c| e.status(c)).await?;
    json_response(StatusCode::OK, &status)
}

/// The most audit records one answer holds.
const MAX_AUDIT: usize = 10_000;

/// `GET /v1/audit[?after=SEQ][&limit=N]`: audit records after `after`,
/// oldest first (the `audit` right); page with the last `seq`.
#[utoipa::path(
    get, path = "/v1/audit", tag = "server",
    params(("after" = Option<u64>, Query, description = "Records after this `seq`"), ("limit" = Option<usize>, Query, minimum = 1, description = "At most this many (default 1000)")),
    responses((status = 200, description = "Audit records, oldest first (`audit` right)", body = AuditPage), Refusals),
)]
async fn audit(
    State(runner): State<Runner>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    Creds(a): Creds,
) -> Result<Response, Problem> {
    let query = query_of(query)?;
    let after = match param(&query, "after") {
        None => 0,
        Some(v) => number(v).ok_or_else(|| {
            Problem::from_core(
                &Error::invalid("after", format!("{v:?} is not a record number")),
                "after",
            )
        })?,
    };
    let limit = count(&query, "limit", 1000, MAX_AUDIT)?;
    let records = read(&runner, a, "", move |e, c| e.audit_records(c, after, limit)).await?;
    let records = records
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()
        .map_err(Error::storage)?;
    json_response(StatusCode::OK, &AuditPage { records })
}

/// `GET /v1/audit/verify`: checks the whole audit chain (every MAC and
/// link); a broken chain is a `500` problem of code `integrity` naming the
/// first bad record.
#[utoipa::path(
    get, path = "/v1/audit/verify", tag = "server",
    responses((status = 200, description = "The whole chain verified (a broken one is a `500` problem `integrity` naming the first bad record)", body = AuditVerification), Refusals),
)]
async fn audit_verify(State(runner): State<Runner>, Creds(a): Creds) -> Result<Response, Problem> {
    let v = read(&runner, a, "", |e, c| e.audit_verify(c)).await?;
    json_response(StatusCode::OK, &v)
}

/// The body of a `PATCH` of a layer: keys to set (dotted paths to JSON
/// values), which of them to seal, and keys to remove.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Patch {
    /// Keys to set: dotted key paths to values (`{"db.pool": 40}`).
    #[schema(value_type = Object)]
    #[serde(default)]
    set: serde_json::Map<String, Value>,
    /// Which of the keys set to seal (secret values).
    #[serde(default)]
    secret: Vec<String>,
    /// Keys to remove.
    #[serde(default)]
    unset: Vec<String>,
}

/// `PATCH /v1/namespaces/{namespace}/layers/{layer}`: sets and removes
/// keys of a layer as one change set (`confstrata set` / `unset`), the
/// body `{"set": {"db.pool": 40}, "secret": ["db.password"], "unset":
/// ["log"]}` in JSON, TOML or YAML; keys listed in `secret` are sealed.
/// `If-Match` as for `PUT`.
#[utoipa::path(
    patch, path = "/v1/namespaces/{namespace}/layers/{layer}", tag = "layers",
    params(("namespace" = String, Path, min_length = 1, description = "The namespace (`/` as `%2F`)"), ("layer" = String, Path, min_length = 1, description = "The layer's path (`/` as `%2F`: `env%2Fprod`)"), ("If-Match" = Option<String>, Header, pattern = "^(\"[0-9]+\"|[0-9]+)$", description = "Write only if the layer is at this revision: its ETag (`\"12\"`) or the number; `412` otherwise"), ("X-Confstrata-Message" = Option<String>, Header, pattern = "^[ -~]*$", max_length = 1000, description = "The change's message, kept in history")),
    request_body(content = Patch, description = "Keys to set, seal and remove, as one change set (JSON, TOML or YAML by `Content-Type`)",
        example = json!({"set": {"db.pool.max": 40, "db.password": "s3cret"}, "secret": ["db.password"], "unset": ["feature.banner"]})),
    responses((status = 200, description = "Committed", body = Committed), Refusals, WriteRefusals),
)]
async fn patch_layer(
    State(runner): State<Runner>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    Creds(a): Creds,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let (ns, layer) = ns_and_layer(path)?;
    let expect = if_match(&headers)?;
    let patch: Patch = structured_body(&headers, body)?;
    let key = |field: &str, k: &str| {
        KeyPath::parse(k).map_err(|e| Problem::from_core(&e, &format!("{field}.{k}")))
    };
    for k in &patch.secret {
        if !patch.set.contains_key(k) {
            return Err(Problem::from_core(
                &Error::invalid("secret", format!("{k:?} is not a key this patch sets")),
                "secret",
            ));
        }
    }
    let mut entries = Vec::with_capacity(patch.set.len());
    for (k, v) in patch.set {
        let secret = patch.secret.contains(&k);
        entries.push((key("set", &k)?, v, secret));
    }
    let unset = patch
        .unset
        .iter()
        .map(|k| key("unset", k))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ops = Op::set_keys(&ns, &layer, entries, expect);
    let unset_expect = if ops.is_empty() { expect } else { None };
    ops.extend(Op::unset_keys(&ns, &layer, unset, unset_expect));
    let changes = ChangeSet {
        author: String::new(),
        message: message_of(&headers)?,
        ops,
    };
    commit(&runner, a, changes, "", expect.is_some()).await
}

/// The most bytes of a write's message header.
const MAX_MESSAGE_BYTES: usize = 1000;

/// A write's message, from `X-Confstrata-Message` (empty without one):
/// printable ASCII (a header carries no more), at most 1000 bytes.
fn message_of(headers: &HeaderMap) -> Result<String, Problem> {
    let Some(v) = headers.get("x-confstrata-message") else {
        return Ok(String::new());
    };
    let bad = |reason: &str| {
        Problem::from_core(
            &Error::invalid("X-Confstrata-Message", reason.to_owned()),
            "X-Confstrata-Message",
        )
    };
    if v.len() > MAX_MESSAGE_BYTES {
        return Err(bad("it is over 1000 bytes"));
    }
    match v.to_str() {
        Ok(text) if text.bytes().all(|b| (b' '..=b'~').contains(&b)) => Ok(text.to_owned()),
        _ => Err(bad(
            "it holds bytes other than printable ASCII (send the message in a change set's body for more)",
        )),
    }
}
