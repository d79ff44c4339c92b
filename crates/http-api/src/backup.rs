//! The backup resources under `/v1` (docs/REST.md, "Backups"): the REST
//! form of gRPC's `BackupService`, on the target the server is configured
//! with (`backup_to`). The engine authorizes (`backup` on everything) and
//! audits; restoring is offline, never through the server.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use confstrata_core::serde_json::{self, Value};
use confstrata_engine::confstrata_backup::Listed;
use confstrata_host::Runner;
use serde::Serialize;
use utoipa::ToSchema;

use crate::openapi::{Refusals, WriteRefusals};
use crate::problem::Problem;
use crate::v1::{Creds, json_response, optional_body, path_of, read};

/// What `POST /v1/backups` takes (the body may be empty: a full backup).
#[derive(serde::Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackupBody {
    /// Only what changed since the newest backup of this store (full when
    /// there is none it can continue; the manifest's `note` says why).
    #[serde(default)]
    incremental: bool,
}

/// A backup taken.
#[derive(Serialize, ToSchema)]
pub(crate) struct BackupTaken {
    /// Its manifest (docs/BACKUP.md).
    #[schema(value_type = Object)]
    backup: Value,
    /// Backups the server's retention removed after it.
    pruned: Vec<String>,
}

/// One backup on the target.
#[derive(Serialize, ToSchema)]
pub(crate) struct BackupEntry {
    /// Its id.
    id: String,
    /// Its manifest, when it has a readable one.
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    manifest: Option<Value>,
    /// Why it cannot be used (incomplete, damaged), when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

/// The backups on the server's target.
#[derive(Serialize, ToSchema)]
pub(crate) struct BackupList {
    /// The target, as a URL.
    target: String,
    /// Oldest first.
    backups: Vec<BackupEntry>,
}

/// What a verification found.
#[derive(Serialize, ToSchema)]
pub(crate) struct BackupVerified {
    /// The backups read, full first.
    chain: Vec<String>,
    /// The revision the backup holds.
    revision: u64,
    /// Parts checked.
    parts: u64,
    /// Records read.
    records: u64,
    /// Bytes read.
    stored_bytes: u64,
    /// Audit records verified.
    audit_records: u64,
    /// Contexts resolved.
    contexts_resolved: u64,
    /// Namespaces.
    namespaces: u64,
}

fn entry(l: &Listed) -> BackupEntry {
    BackupEntry {
        id: l.id.clone(),
        manifest: l
            .manifest
            .as_ref()
            .and_then(|m| serde_json::to_value(m).ok()),
        problem: l.problem.clone(),
    }
}

/// `POST /v1/backups`: takes a backup now on the server's target, online
/// (`backup` on everything), then applies the backup retention.
#[utoipa::path(
    post, path = "/v1/backups", tag = "backups",
    request_body(content = BackupBody, description = "Full or incremental (JSON, TOML or YAML by `Content-Type`; empty: full)"),
    responses((status = 201, description = "The backup taken", body = BackupTaken), Refusals, WriteRefusals),
)]
pub(crate) async fn create_backup(
    State(runner): State<Runner>,
    headers: HeaderMap,
    Creds(a): Creds,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let request: BackupBody = optional_body(&headers, raw)?;
    let incremental = request.incremental;
    let (m, pruned) = read(&runner, a, "", move |e, c| {
        e.backup_now(c, incremental, &mut |_| {})
    })
    .await?;
    json_response(
        StatusCode::CREATED,
        &BackupTaken {
            backup: serde_json::to_value(&m).unwrap_or(Value::Null),
            pruned,
        },
    )
}

/// `GET /v1/backups`: the backups on the server's target, oldest first,
/// complete or not (`backup` on everything).
#[utoipa::path(
    get, path = "/v1/backups", tag = "backups",
    responses((status = 200, description = "The backups", body = BackupList), Refusals),
)]
pub(crate) async fn list_backups(
    State(runner): State<Runner>,
    Creds(a): Creds,
) -> Result<Response, Problem> {
    let (target, all) = read(&runner, a, "", |e, c| e.backups(c)).await?;
    json_response(
        StatusCode::OK,
        &BackupList {
            target,
            backups: all.iter().map(entry).collect(),
        },
    )
}

/// `POST /v1/backups/{id}/verify`: verifies a backup end to end (`latest`:
/// the newest of this store): every seal, checksum and link of its chain,
/// a trial restore into memory, the audit chain, every context resolved.
#[utoipa::path(
    post, path = "/v1/backups/{id}/verify", tag = "backups",
    params(("id" = String, Path, min_length = 1, description = "The backup's id, or `latest`")),
    responses((status = 200, description = "What it checked", body = BackupVerified), Refusals),
)]
pub(crate) async fn verify_backup(
    State(runner): State<Runner>,
    id: Result<Path<String>, PathRejection>,
    Creds(a): Creds,
) -> Result<Response, Problem> {
    let id = path_of(id, "id")?;
    let v = read(&runner, a, "id", move |e, c| {
        e.verify_backup(c, Some(id.as_str()).filter(|i| *i != "latest"), &mut |_| {})
    })
    .await?;
    json_response(
        StatusCode::OK,
        &BackupVerified {
            chain: v.backup.chain,
            revision: v.backup.revision,
            parts: v.backup.parts as u64,
            records: v.backup.records,
            stored_bytes: v.backup.stored_bytes,
            audit_records: v.audit_records,
            contexts_resolved: v.contexts_resolved,
            namespaces: v.namespaces,
        },
    )
}
