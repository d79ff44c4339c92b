//! The administration resources under `/v1` (docs/REST.md,
//! "Administration"): the REST form of gRPC's `AdminService` — data keys,
//! the master key, compaction, principals and their tokens, roles, groups,
//! access checks and the policy document. The audit log and the counters
//! (`/v1/audit`, `/v1/stats`) are in [`crate::v1`].
//!
//! Each handler checks the shape of its request (naming the field) and
//! calls the engine as the gRPC door does; the engine parses every name
//! (principal ids, role and group names, patterns, key ids), authorizes the
//! caller (`admin`; `admin` or `audit` to read the policy) and audits the
//! change itself. A principal named in the path that does not exist is
//! `404`; other names the engine refuses are `400` naming the field.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use confstrata_core::format::Format;
use confstrata_core::view::{
    AccessCheck, GrantInfo, GroupInfo, Holder, KeyInfo, MasterKeyRotation, PolicyApply,
    PolicyDocument, PrincipalDetail, PrincipalInfo, PrincipalKind, RoleInfo,
};
use confstrata_core::{Error, ErrorKind, RetentionReport};
use confstrata_engine::{Caller, Engine};
use confstrata_host::Runner;
use serde::Serialize;
use utoipa::ToSchema;

use crate::openapi::{Committed, Refusals, WriteRefusals};
use crate::problem::Problem;
use crate::v1::{
    Creds, NsRequest, body_format, body_of, flag, json_response, param, path_of, query_of, read,
    structured_body,
};

// ---- answers ----------------------------------------------------------------

/// The data keys.
#[derive(Serialize, ToSchema)]
pub(crate) struct KeyList {
    /// Every data key, by namespace.
    keys: Vec<KeyInfo>,
}

/// A namespace's new current data key.
#[derive(Serialize, ToSchema)]
pub(crate) struct KeyRotated {
    /// Its id, `web#2`.
    key_id: String,
}

/// What a rewrap committed.
#[derive(Serialize, ToSchema)]
pub(crate) struct Rewrapped {
    /// The commit; `null` when every sealed value already used the current
    /// key.
    commit: Option<Committed>,
}

/// The principals.
#[derive(Serialize, ToSchema)]
pub(crate) struct PrincipalList {
    /// Every principal, by id, with its roles and token hashes (never a
    /// token).
    principals: Vec<PrincipalInfo>,
}

/// The answer of a grant.
#[derive(Serialize, ToSchema)]
pub(crate) struct Granted {
    /// `false` when the binding was held already (nothing changed).
    granted: bool,
}

/// A new token, shown this once.
#[derive(Serialize, ToSchema)]
pub(crate) struct IssuedToken {
    /// The token (`cst_…`): store it now, the server keeps only its hash.
    token: String,
    /// The first characters of its SHA-256, as the principal's `tokens`
    /// list it: `DELETE /v1/tokens/{hash_prefix}` revokes it.
    hash_prefix: String,
}

/// The roles.
#[derive(Serialize, ToSchema)]
pub(crate) struct RoleList {
    /// Every role, built-in and custom, by name.
    roles: Vec<RoleInfo>,
}

/// The groups.
#[derive(Serialize, ToSchema)]
pub(crate) struct GroupList {
    /// Every group, by name, with its members and roles.
    groups: Vec<GroupInfo>,
}

// ---- request bodies ---------------------------------------------------------

/// How much history a compaction keeps (both required: it drops the rest).
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompactBody {
    /// Versions to keep for every layer and declaration, at least (1 or
    /// more).
    #[schema(minimum = 1, maximum = 4294967295_u64)]
    keep_versions: u64,
    /// Days of history to keep, at least (at most a million).
    #[schema(maximum = 1000000)]
    keep_days: u64,
}

/// The most days a compaction may be asked to keep.
const MAX_KEEP_DAYS: u64 = 1_000_000;

/// A principal to add.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewPrincipal {
    /// Its id (`bob`, `ci-deploy`): what tokens and the audit log name.
    id: String,
    /// Its display name.
    #[serde(default)]
    name: String,
    /// A person or a program (default `user`).
    #[serde(default)]
    kind: Option<PrincipalKind>,
    /// The roles to grant it over everything (`viewer`).
    #[serde(default)]
    roles: Vec<String>,
}

/// What a token is for (the body may be left out).
#[derive(Default, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenBody {
    /// `laptop`, `ci`.
    #[serde(default)]
    label: String,
}

/// A custom role.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleBody {
    /// What it is for.
    #[serde(default)]
    description: String,
    /// Its grants; a deny wins over every allow.
    #[serde(default)]
    grants: Vec<GrantInfo>,
}

/// A group's description (the body may be left out).
#[derive(Default, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupBody {
    /// What it is for.
    #[serde(default)]
    description: String,
}

/// Members to add to a group and to take out of it, all or nothing.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MembersPatch {
    /// Principals to add.
    #[serde(default)]
    add: Vec<String>,
    /// Principals to remove (each must be a member).
    #[serde(default)]
    remove: Vec<String>,
}

// ---- helpers ----------------------------------------------------------------

/// [`structured_body`] for a body that may be left out: none (no bytes), or JSON
/// `null` (as the description allows), is `T::default()`.
fn optional_body<T: serde::de::DeserializeOwned + Default>(
    headers: &HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<T, Problem> {
    let raw = body_of(raw)?;
    if raw.is_empty() {
        return Ok(T::default());
    }
    if raw.trim_ascii() == b"null" && body_format(headers)? == Format::Json {
        return Ok(T::default());
    }
    structured_body(headers, Ok(raw))
}

/// The two segments of a path (`{id}` and `{role}`, say), decoded.
fn segments(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(String, String), Problem> {
    path.map(|Path(p)| p)
        .map_err(|e| Problem::from_core(&Error::invalid("path", e.body_text()), "path"))
}

/// A required query parameter.
fn required(query: &[(String, String)], name: &str) -> Result<String, Problem> {
    param(query, name)
        .map(str::to_owned)
        .ok_or_else(|| Problem::from_core(&Error::invalid(name, "it is required"), name))
}

/// An engine refusal as a problem. Invalid input the engine names by one
/// of `fields`' words (`(its word, the request's field)`; `grants[0].on`
/// matches the word `grants`) names that field (`grants[0].on`); anything
/// else names `field`.
fn refusal(e: &Error, field: &str, fields: &[(&str, &str)]) -> Problem {
    let named = match e.root() {
        Error::Invalid { what, .. } => fields.iter().find_map(|(word, name)| {
            let rest = what.strip_prefix(word)?;
            (rest.is_empty() || rest.starts_with(['[', '.'])).then(|| format!("{name}{rest}"))
        }),
        _ => None,
    };
    Problem::from_core(e, named.as_deref().unwrap_or(field))
}

/// A `204 No Content` answer.
fn done() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// The problem of a principal in the path that does not exist.
fn no_principal(id: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        &format!(
            "there is no principal {:?}; GET /v1/principals lists them",
            confstrata_core::clip(id, 200)
        ),
    )
}

/// Principal `id` as the engine shows it, or `None` when nobody has that
/// id. [`Engine::principal`] refuses an id that does not parse and one
/// nobody has alike, as invalid input; [`Engine::can_i`] parses the id the
/// same way first and applies the same rights check, but answers an unknown
/// principal with a refusal rather than an error: so an id it takes that
/// `principal` refused names nobody, and one it refuses is malformed (the
/// error `principal` gave, naming the field).
fn principal_of(
    e: &Engine,
    c: &Caller,
    id: &str,
) -> confstrata_core::Result<Option<PrincipalDetail>> {
    match e.principal(c, id) {
        Ok(detail) => Ok(Some(detail)),
        Err(err) if err.kind() == ErrorKind::InvalidInput => match e.can_i(c, id, "read", "**") {
            Ok(_) => Ok(None),
            Err(_) => Err(err),
        },
        Err(err) => Err(err),
    }
}

/// Runs `f` on principal `id` once it is known to exist: `404` when it does
/// not (principals are never deleted, only revoked, so it still exists
/// when `f` runs). `field` and `fields` as for [`refusal`].
async fn on_principal<T: Send + 'static>(
    runner: &Runner,
    a: confstrata_host::Credentials,
    id: String,
    field: &str,
    fields: &[(&str, &str)],
    f: impl FnOnce(&Engine, &Caller, &str) -> confstrata_core::Result<T> + Send + 'static,
) -> Result<T, Problem> {
    let shown = id.clone();
    runner
        .write(a, move |e, c| {
            if principal_of(e, c, &id)?.is_none() {
                return Ok(None);
            }
            f(e, c, &id).map(Some)
        })
        .await
        .map_err(|e| refusal(&e, field, fields))?
        .ok_or_else(|| no_principal(&shown))
}

/// The engine's words for the parts of a role binding, and the request's.
const BINDING_FIELDS: &[(&str, &str)] = &[
    ("principal", "id"),
    ("group", "name"),
    ("role", "role"),
    ("on", "on"),
];

// ---- data keys, master key, compaction --------------------------------------

/// `GET /v1/keys`: every data key, by namespace (`admin`).
#[utoipa::path(
    get, path = "/v1/keys", tag = "administration",
    responses((status = 200, description = "Every data key, by namespace (`admin`)", body = KeyList), Refusals),
)]
pub(crate) async fn list_keys(
    State(runner): State<Runner>,
    Creds(a): Creds,
) -> Result<Response, Problem> {
    let keys = read(&runner, a, "", |e, c| e.keys(c)).await?;
    json_response(StatusCode::OK, &KeyList { keys })
}

/// `POST /v1/keys/{namespace}/rotate`: a new current data key for a
/// namespace; values sealed under older keys stay readable.
#[utoipa::path(
    post, path = "/v1/keys/{namespace}/rotate", tag = "administration",
    params(("namespace" = String, Path, min_length = 1, description = "The namespace (`/` as `%2F`)")),
    responses((status = 200, description = "The namespace's new current key", body = KeyRotated), Refusals, WriteRefusals),
)]
pub(crate) async fn rotate_key(
    State(runner): State<Runner>,
    NsRequest { a, ns, .. }: NsRequest,
) -> Result<Response, Problem> {
    let key_id = runner
        .write(a, move |e, c| e.rotate_key(c, &ns))
        .await
        .map_err(|e| Problem::from_core(&e, "namespace"))?;
    json_response(StatusCode::OK, &KeyRotated { key_id })
}

/// `POST /v1/keys/{namespace}/rewrap`: re-seals every sealed value of the
/// namespace's current layers under its current key, as one new revision.
#[utoipa::path(
    post, path = "/v1/keys/{namespace}/rewrap", tag = "administration",
    params(("namespace" = String, Path, min_length = 1, description = "The namespace (`/` as `%2F`)")),
    responses((status = 200, description = "The commit (`null` when every sealed value already used the current key)", body = Rewrapped), Refusals, WriteRefusals),
)]
pub(crate) async fn rewrap_keys(
    State(runner): State<Runner>,
    NsRequest { a, ns, .. }: NsRequest,
) -> Result<Response, Problem> {
    let commit = runner
        .write(a, move |e, c| e.rewrap(c, &ns))
        .await
        .map_err(|e| Problem::from_core(&e, "namespace"))?;
    json_response(
        StatusCode::OK,
        &Rewrapped {
            commit: commit.map(Committed::from),
        },
    )
}

/// `DELETE /v1/keys/{key}`: retires a data key (`web%231` for `web#1`).
/// Refused for a namespace's current key and for a key a retained version
/// still uses.
#[utoipa::path(
    delete, path = "/v1/keys/{key}", tag = "administration",
    params(("key" = String, Path, min_length = 1, description = "The key's id as `GET /v1/keys` lists it, `#` as `%23` (`web%231`)")),
    responses((status = 204, description = "Retired"), Refusals, WriteRefusals),
)]
pub(crate) async fn retire_key(
    State(runner): State<Runner>,
    key: Result<Path<String>, PathRejection>,
    Creds(a): Creds,
) -> Result<Response, Problem> {
    let key = path_of(key, "key")?;
    runner
        .write(a, move |e, c| e.retire_key(c, &key))
        .await
        .map_err(|e| Problem::from_core(&e, "key"))?;
    Ok(done())
}

/// `POST /v1/master-key/rotate`: wraps every data key by a new master key;
/// the audit chain goes on under the new key's audit key (`admin` on
/// everything). `400` when the master key does not come from a key file
/// the server can replace.
#[utoipa::path(
    post, path = "/v1/master-key/rotate", tag = "administration",
    responses((status = 200, description = "What the rotation did", body = MasterKeyRotation), Refusals, WriteRefusals),
)]
pub(crate) async fn rotate_master_key(
    State(runner): State<Runner>,
    Creds(a): Creds,
) -> Result<Response, Problem> {
    let rotated = runner
        .write(a, |e, c| e.rotate_master_key(c))
        .await
        .map_err(|e| Problem::from_core(&e, ""))?;
    json_response(StatusCode::OK, &rotated)
}

/// `POST /v1/compact`: drops old history now (`admin` on everything),
/// keeping at least `keep_versions` versions of every layer and
/// declaration and every version of the last `keep_days` days.
#[utoipa::path(
    post, path = "/v1/compact", tag = "administration",
    request_body(content = CompactBody, description = "How much history to keep (JSON, TOML or YAML by `Content-Type`)"),
    responses((status = 200, description = "What it dropped", body = RetentionReport), Refusals, WriteRefusals),
)]
pub(crate) async fn compact(
    State(runner): State<Runner>,
    headers: HeaderMap,
    Creds(a): Creds,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let request: CompactBody = structured_body(&headers, raw)?;
    if request.keep_days > MAX_KEEP_DAYS {
        return Err(Problem::from_core(
            &Error::invalid("keep_days", "it is over a million days"),
            "keep_days",
        ));
    }
    if request.keep_versions > u64::from(u32::MAX) {
        return Err(Problem::from_core(
            &Error::invalid("keep_versions", "it is over 2^32 - 1"),
            "keep_versions",
        ));
    }
    if request.keep_versions == 0 {
        return Err(Problem::from_core(
            &Error::invalid(
                "keep_versions",
                "keep at least one version (the current one)",
            ),
            "keep_versions",
        ));
    }
    let policy = confstrata_core::RetentionPolicy {
        keep_versions: usize::try_from(request.keep_versions).unwrap_or(usize::MAX),
        keep_days: request.keep_days,
    };
    let report = runner
        .write(a, move |e, c| e.apply_retention(c, &policy))
        .await
        .map_err(|e| Problem::from_core(&e, "body"))?;
    json_response(StatusCode::OK, &report)
}

// ---- principals and tokens --------------------------------------------------

/// `GET /v1/principals`: every principal with its roles and token hashes
/// (`admin`).
#[utoipa::path(
    get, path = "/v1/principals", tag = "administration",
    responses((status = 200, description = "Every principal, by id (`admin`)", body = PrincipalList), Refusals),
)]
pub(crate) async fn list_principals(
    State(runner): State<Runner>,
    Creds(a): Creds,
) -> Result<Response, Problem> {
    let principals = read(&runner, a, "", |e, c| e.principals(c)).await?;
    json_response(StatusCode::OK, &PrincipalList { principals })
}

/// `POST /v1/principals`: adds a principal (a person or a program) with
/// roles. `201 Created` with `Location` and the principal; `409` if the id
/// is taken.
#[utoipa::path(
    post, path = "/v1/principals", tag = "administration",
    request_body(content = NewPrincipal, description = "The principal (JSON, TOML or YAML by `Content-Type`)"),
    responses(
        (status = 201, description = "Added", body = PrincipalDetail, headers(("Location" = String, description = "The principal's URL"))),
        Refusals, WriteRefusals),
)]
pub(crate) async fn add_principal(
    State(runner): State<Runner>,
    headers: HeaderMap,
    Creds(a): Creds,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let new: NewPrincipal = structured_body(&headers, raw)?;
    for (i, role) in new.roles.iter().enumerate() {
        confstrata_engine::binding(role, None)
            .map_err(|e| Problem::from_core(&e, &format!("roles[{i}]")))?;
    }
    let NewPrincipal {
        id,
        name,
        kind,
        roles,
    } = new;
    let kind = kind.unwrap_or(PrincipalKind::User);
    let detail = runner
        .write(a, move |e, c| {
            e.add_principal(c, &id, &name, kind, &roles)?;
            e.principal(c, &id)
        })
        .await
        .map_err(|e| Problem::from_core(&e, "id"))?;
    let location = format!("/v1/principals/{}", detail.principal.id);
    let mut response = json_response(StatusCode::CREATED, &detail)?;
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// `GET /v1/principals/{id}`: a principal with its groups and every grant
/// it holds, directly and through groups. About itself anyone may ask;
/// about others the caller needs `admin` or `audit`.
#[utoipa::path(
    get, path = "/v1/principals/{id}", tag = "administration",
    params(("id" = String, Path, min_length = 1, description = "The principal's id")),
    responses((status = 200, description = "The principal, its groups and its effective grants (denies first)", body = PrincipalDetail), Refusals),
)]
pub(crate) async fn get_principal(
    State(runner): State<Runner>,
    id: Result<Path<String>, PathRejection>,
    Creds(a): Creds,
) -> Result<Response, Problem> {
    let id = path_of(id, "id")?;
    let shown = id.clone();
    let detail = read(&runner, a, "id", move |e, c| principal_of(e, c, &id))
        .await?
        .ok_or_else(|| no_principal(&shown))?;
    json_response(StatusCode::OK, &detail)
}

/// `POST /v1/principals/{id}/revoke`: revokes a principal and so every
/// token of it (for good: a revoked principal cannot be restored).
#[utoipa::path(
    post, path = "/v1/principals/{id}/revoke", tag = "administration",
    params(("id" = String, Path, min_length = 1, description = "The principal's id")),
    responses((status = 204, description = "Revoked"), Refusals, WriteRefusals),
)]
pub(crate) async fn revoke_principal(
    State(runner): State<Runner>,
    id: Result<Path<String>, PathRejection>,
    Creds(a): Creds,
) -> Result<Response, Problem> {
    let id = path_of(id, "id")?;
    on_principal(&runner, a, id, "id", &[], |e, c, id| {
        e.revoke_principal(c, id)
    })
    .await?;
    Ok(done())
}

/// `PUT /v1/principals/{id}/roles/{role}[?on=PATTERN]`: grants a role to a
/// principal, over everything or within a resource pattern.
#[utoipa::path(
    put, path = "/v1/principals/{id}/roles/{role}", tag = "administration",
    params(("id" = String, Path, min_length = 1, description = "The principal's id"),
        ("role" = String, Path, min_length = 1, description = "The role (`viewer`)"),
        ("on" = Option<String>, Query, min_length = 1, description = "Only within this resource pattern (`payments/**`); absent: wherever the role's grants say")),
    responses((status = 200, description = "Granted (`granted` is `false` when the binding was held already)", body = Granted), Refusals, WriteRefusals),
)]
pub(crate) async fn grant_principal_role(
    State(runner): State<Runner>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    Creds(a): Creds,
) -> Result<Response, Problem> {
    let (id, role) = segments(path)?;
    let on = param(&query_of(query)?, "on").map(str::to_owned);
    let granted = on_principal(&runner, a, id, "role", BINDING_FIELDS, move |e, c, id| {
        e.bind(c, &Holder::Principal(id.to_owned()), &role, on.as_deref())
    })
    .await?;
    json_response(StatusCode::OK, &Granted { granted })
}

/// `DELETE /v1/principals/{id}/roles/{role}[?on=PATTERN]`: takes a role
/// binding from a principal (the one within `on`, or the one over
/// everything); one not held is `400` listing those held.
#[utoipa::path(
    delete, path = "/v1/principals/{id}/roles/{role}", tag = "administration",
    params(("id" = String, Path, min_length = 1, description = "The principal's id"),
        ("role" = String, Path, min_length = 1, description = "The role"),
        ("on" = Option<String>, Query, min_length = 1, description = "The scope of the binding to take away; absent: the binding over everything")),
    responses((status = 204, description = "Taken away"), Refusals, WriteRefusals),
)]
pub(crate) async fn revoke_principal_role(
    State(runner): State<Runner>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    Creds(a): Creds,
) -> Result<Response, Problem> {
    let (id, role) = segments(path)?;
    let on = param(&query_of(query)?, "on").map(str::to_owned);
    on_principal(&runner, a, id, "role", BINDING_FIELDS, move |e, c, id| {
        e.unbind(c, &Holder::Principal(id.to_owned()), &role, on.as_deref())
    })
    .await?;
    Ok(done())
}

/// `POST /v1/principals/{id}/tokens`: issues a new token for a principal
/// (body `{"label": "laptop"}`, or none). `201 Created`; the token is in
/// this answer only (`Cache-Control: no-store`): the server keeps its hash.
#[utoipa::path(
    post, path = "/v1/principals/{id}/tokens", tag = "administration",
    params(("id" = String, Path, min_length = 1, description = "The principal's id")),
    request_body(content = Option<TokenBody>, description = "What the token is for (JSON, TOML or YAML by `Content-Type`); may be left out"),
    responses((status = 201, description = "The token, shown this once, and its hash prefix", body = IssuedToken), Refusals, WriteRefusals),
)]
pub(crate) async fn issue_token(
    State(runner): State<Runner>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    Creds(a): Creds,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let id = path_of(id, "id")?;
    let TokenBody { label } = optional_body(&headers, raw)?;
    let token = on_principal(&runner, a, id, "id", &[], move |e, c, id| {
        e.issue_token(c, id, &label)
    })
    .await?;
    let mut response = json_response(
        StatusCode::CREATED,
        &IssuedToken {
            token: token.expose_secret().to_owned(),
            hash_prefix: token.hash().short(),
        },
    )?;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `DELETE /v1/tokens/{hash_prefix}`: revokes one token, named by its
/// SHA-256 in hex or a prefix that names one token (as a principal's
/// `tokens` and the issue answer show it). Open watches made with it end.
#[utoipa::path(
    delete, path = "/v1/tokens/{hash_prefix}", tag = "administration",
    params(("hash_prefix" = String, Path, min_length = 1, description = "The token's hash, or a prefix of it that names one token")),
    responses((status = 204, description = "Revoked"), Refusals, WriteRefusals),
)]
pub(crate) async fn revoke_token(
    State(runner): State<Runner>,
    prefix: Result<Path<String>, PathRejection>,
    Creds(a): Creds,
) -> Result<Response, Problem> {
    let prefix = path_of(prefix, "hash_prefix")?;
    runner
        .write(a, move |e, c| e.revoke_token(c, &prefix))
        .await
        .map_err(|e| Problem::from_core(&e, "hash_prefix"))?;
    Ok(done())
}

/// `GET /v1/access/check?principal_id=ID&action=ACTION&resource=RESOURCE`:
/// whether a principal may do an action on a resource, and the grant that
/// decides (`kubectl auth can-i`). About itself anyone may ask; about
/// others the caller needs `admin` or `audit`.
#[utoipa::path(
    get, path = "/v1/access/check", tag = "administration",
    params(("principal_id" = String, Query, min_length = 1, description = "The principal asked about"),
        ("action" = String, Query, min_length = 1, description = "The action: read, read-secrets, write, publish, admin, audit or backup"),
        ("resource" = String, Query, min_length = 1, description = "The resource: `namespace[:layer][#key]` (`payments:env/prod#db`), or `**` for everything")),
    responses((status = 200, description = "The decision and the grant that decides it", body = AccessCheck), Refusals),
)]
pub(crate) async fn check_access(
    State(runner): State<Runner>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    Creds(a): Creds,
) -> Result<Response, Problem> {
    let query = query_of(query)?;
    let id = required(&query, "principal_id")?;
    let action = required(&query, "action")?;
    let resource = required(&query, "resource")?;
    let check = runner
        .run(a, move |e, c| e.can_i(c, &id, &action, &resource))
        .await
        .map_err(|e| {
            refusal(
                &e,
                "resource",
                &[("principal", "principal_id"), ("action", "action")],
            )
        })?;
    json_response(StatusCode::OK, &check)
}

// ---- roles --------------------------------------------------------------------

/// `GET /v1/roles`: every role, built-in and custom, with its grants
/// (`admin` or `audit`).
#[utoipa::path(
    get, path = "/v1/roles", tag = "administration",
    responses((status = 200, description = "Every role, by name (`admin` or `audit`)", body = RoleList), Refusals),
)]
pub(crate) async fn list_roles(
    State(runner): State<Runner>,
    Creds(a): Creds,
) -> Result<Response, Problem> {
    let roles = read(&runner, a, "", |e, c| e.roles(c)).await?;
    json_response(StatusCode::OK, &RoleList { roles })
}

/// `PUT /v1/roles/{name}[?create_only=true]`: creates a custom role or
/// replaces one; every holder's decisions change on their next request.
/// Built-in roles cannot be replaced; with `create_only`, an existing role
/// is `409`.
#[utoipa::path(
    put, path = "/v1/roles/{name}", tag = "administration",
    params(("name" = String, Path, min_length = 1, description = "The role's name"),
        ("create_only" = Option<bool>, Query, description = "Refuse (`409`) if a role of that name exists")),
    request_body(content = RoleBody, description = "The role's description and grants (JSON, TOML or YAML by `Content-Type`)"),
    responses((status = 204, description = "Stored"), Refusals, WriteRefusals),
)]
pub(crate) async fn put_role(
    State(runner): State<Runner>,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
    Creds(a): Creds,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let name = path_of(name, "name")?;
    let create_only = flag(&query_of(query)?, "create_only")?;
    let RoleBody {
        description,
        grants,
    } = structured_body(&headers, raw)?;
    // Checked here too, so that a bad grant names its field
    // (`grants[0].on`) before anything is authorized.
    confstrata_engine::grants_from_info(&grants)
        .map_err(|e| refusal(&e, "grants", &[("grants", "grants")]))?;
    runner
        .write(a, move |e, c| {
            e.put_role(c, &name, &description, &grants, create_only)
        })
        .await
        .map_err(|e| refusal(&e, "name", &[("grants", "grants")]))?;
    Ok(done())
}

/// `DELETE /v1/roles/{name}`: deletes a custom role. Refused while any
/// principal or group holds it (the problem names one), and for built-in
/// roles.
#[utoipa::path(
    delete, path = "/v1/roles/{name}", tag = "administration",
    params(("name" = String, Path, min_length = 1, description = "The role's name")),
    responses((status = 204, description = "Deleted"), Refusals, WriteRefusals),
)]
pub(crate) async fn delete_role(
    State(runner): State<Runner>,
    name: Result<Path<String>, PathRejection>,
    Creds(a): Creds,
) -> Result<Response, Problem> {
    let name = path_of(name, "name")?;
    runner
        .write(a, move |e, c| e.delete_role(c, &name))
        .await
        .map_err(|e| Problem::from_core(&e, "name"))?;
    Ok(done())
}

// ---- groups -------------------------------------------------------------------

/// `GET /v1/groups`: every group with its members and roles (`admin` or
/// `audit`).
#[utoipa::path(
    get, path = "/v1/groups", tag = "administration",
    responses((status = 200, description = "Every group, by name (`admin` or `audit`)", body = GroupList), Refusals),
)]
pub(crate) async fn list_groups(
    State(runner): State<Runner>,
    Creds(a): Creds,
) -> Result<Response, Problem> {
    let groups = read(&runner, a, "", |e, c| e.groups(c)).await?;
    json_response(StatusCode::OK, &GroupList { groups })
}

/// `PUT /v1/groups/{name}[?create_only=true]`: creates a group, or changes
/// its description (body `{"description": "…"}`, or none); with
/// `create_only`, an existing group is `409`.
#[utoipa::path(
    put, path = "/v1/groups/{name}", tag = "administration",
    params(("name" = String, Path, min_length = 1, description = "The group's name"),
        ("create_only" = Option<bool>, Query, description = "Refuse (`409`) if a group of that name exists")),
    request_body(content = Option<GroupBody>, description = "Its description (JSON, TOML or YAML by `Content-Type`); may be left out"),
    responses((status = 204, description = "Stored"), Refusals, WriteRefusals),
)]
pub(crate) async fn put_group(
    State(runner): State<Runner>,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
    Creds(a): Creds,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let name = path_of(name, "name")?;
    let create_only = flag(&query_of(query)?, "create_only")?;
    let GroupBody { description } = optional_body(&headers, raw)?;
    runner
        .write(a, move |e, c| {
            e.put_group(c, &name, &description, create_only)
        })
        .await
        .map_err(|e| Problem::from_core(&e, "name"))?;
    Ok(done())
}

/// `DELETE /v1/groups/{name}`: deletes a group; its members lose the roles
/// held through it at once.
#[utoipa::path(
    delete, path = "/v1/groups/{name}", tag = "administration",
    params(("name" = String, Path, min_length = 1, description = "The group's name")),
    responses((status = 204, description = "Deleted"), Refusals, WriteRefusals),
)]
pub(crate) async fn delete_group(
    State(runner): State<Runner>,
    name: Result<Path<String>, PathRejection>,
    Creds(a): Creds,
) -> Result<Response, Problem> {
    let name = path_of(name, "name")?;
    runner
        .write(a, move |e, c| e.delete_group(c, &name))
        .await
        .map_err(|e| Problem::from_core(&e, "name"))?;
    Ok(done())
}

/// `PATCH /v1/groups/{name}/members`: adds and removes members, all or
/// nothing (body `{"add": ["ann"], "remove": ["bob"]}`).
#[utoipa::path(
    patch, path = "/v1/groups/{name}/members", tag = "administration",
    params(("name" = String, Path, min_length = 1, description = "The group's name")),
    request_body(content = MembersPatch, description = "Principals to add and to remove (JSON, TOML or YAML by `Content-Type`)"),
    responses((status = 204, description = "Changed"), Refusals, WriteRefusals),
)]
pub(crate) async fn update_group_members(
    State(runner): State<Runner>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    Creds(a): Creds,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let name = path_of(name, "name")?;
    let MembersPatch { add, remove } = structured_body(&headers, raw)?;
    runner
        .write(a, move |e, c| {
            e.update_group_members(c, &name, &add, &remove)
        })
        .await
        .map_err(|e| {
            refusal(
                &e,
                "name",
                &[("group", "name"), ("add", "add"), ("remove", "remove")],
            )
        })?;
    Ok(done())
}

/// `PUT /v1/groups/{name}/roles/{role}[?on=PATTERN]`: grants a role to a
/// group's members, over everything or within a resource pattern.
#[utoipa::path(
    put, path = "/v1/groups/{name}/roles/{role}", tag = "administration",
    params(("name" = String, Path, min_length = 1, description = "The group's name"),
        ("role" = String, Path, min_length = 1, description = "The role (`viewer`)"),
        ("on" = Option<String>, Query, min_length = 1, description = "Only within this resource pattern (`payments/**`); absent: wherever the role's grants say")),
    responses((status = 200, description = "Granted (`granted` is `false` when the binding was held already)", body = Granted), Refusals, WriteRefusals),
)]
pub(crate) async fn grant_group_role(
    State(runner): State<Runner>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    Creds(a): Creds,
) -> Result<Response, Problem> {
    let (name, role) = segments(path)?;
    let on = param(&query_of(query)?, "on").map(str::to_owned);
    let granted = runner
        .write(a, move |e, c| {
            e.bind(c, &Holder::Group(name), &role, on.as_deref())
        })
        .await
        .map_err(|e| refusal(&e, "role", BINDING_FIELDS))?;
    json_response(StatusCode::OK, &Granted { granted })
}

/// `DELETE /v1/groups/{name}/roles/{role}[?on=PATTERN]`: takes a role
/// binding from a group.
#[utoipa::path(
    delete, path = "/v1/groups/{name}/roles/{role}", tag = "administration",
    params(("name" = String, Path, min_length = 1, description = "The group's name"),
        ("role" = String, Path, min_length = 1, description = "The role"),
        ("on" = Option<String>, Query, min_length = 1, description = "The scope of the binding to take away; absent: the binding over everything")),
    responses((status = 204, description = "Taken away"), Refusals, WriteRefusals),
)]
pub(crate) async fn revoke_group_role(
    State(runner): State<Runner>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    Creds(a): Creds,
) -> Result<Response, Problem> {
    let (name, role) = segments(path)?;
    let on = param(&query_of(query)?, "on").map(str::to_owned);
    runner
        .write(a, move |e, c| {
            e.unbind(c, &Holder::Group(name), &role, on.as_deref())
        })
        .await
        .map_err(|e| refusal(&e, "role", BINDING_FIELDS))?;
    Ok(done())
}

// ---- the policy document ------------------------------------------------------

/// `GET /v1/policy`: the access policy as a document for review — custom
/// roles, groups, and principals with their roles; never tokens, never
/// built-in roles (`admin` or `audit`). `POST` it back to apply it.
#[utoipa::path(
    get, path = "/v1/policy", tag = "administration",
    responses((status = 200, description = "The access policy (`admin` or `audit`)", body = PolicyDocument), Refusals),
)]
pub(crate) async fn export_policy(
    State(runner): State<Runner>,
    Creds(a): Creds,
) -> Result<Response, Problem> {
    let doc = read(&runner, a, "", |e, c| e.export_policy(c)).await?;
    json_response(StatusCode::OK, &doc)
}

/// `POST /v1/policy[?dry_run=true]`: makes the policy what the document
/// says, as one audited change (tokens are kept), and lists what changed;
/// with `dry_run`, only lists it. Refused, naming the place in the
/// document (`principals[2].roles[0].on`), for anything malformed, a
/// principal left out (every principal must be listed), a revoked
/// principal restored, or a change after which nobody could administer
/// the server.
#[utoipa::path(
    post, path = "/v1/policy", tag = "administration",
    params(("dry_run" = Option<bool>, Query, description = "Only say what would change")),
    request_body(content = PolicyDocument, description = "The policy, as `GET /v1/policy` answers it (JSON, TOML or YAML by `Content-Type`)"),
    responses((status = 200, description = "What changed (or would), and whether it was applied", body = PolicyApply), Refusals, WriteRefusals),
)]
pub(crate) async fn apply_policy(
    State(runner): State<Runner>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
    Creds(a): Creds,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let dry_run = flag(&query_of(query)?, "dry_run")?;
    let doc: PolicyDocument = structured_body(&headers, raw)?;
    let applied = runner
        .write(a, move |e, c| e.apply_policy(c, &doc, dry_run))
        .await
        .map_err(|e| {
            refusal(
                &e,
                "body",
                &[
                    ("roles", "roles"),
                    ("groups", "groups"),
                    ("principals", "principals"),
                ],
            )
        })?;
    json_response(StatusCode::OK, &applied)
}
