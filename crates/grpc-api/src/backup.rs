//! `BackupService`: take a backup now, list, verify, on the target the
//! server is configured with. The engine authorizes (`backup` on
//! everything) and audits; this module only translates.

use confstrata_engine::confstrata_backup::{Kind, Listed, Manifest};
use confstrata_proto::v1::{self, backup_service_server::BackupService};
use tonic::{Request, Response, Status};

use crate::call::{Calls, auth};

pub(crate) struct Service {
    pub(crate) calls: Calls,
}

type Res<T> = Result<Response<T>, Status>;

fn info(m: &Manifest) -> v1::BackupInfo {
    v1::BackupInfo {
        id: m.id.clone(),
        kind: match m.kind {
            Kind::Full => "full",
            Kind::Incremental => "incremental",
        }
        .to_owned(),
        store_id: m.store_id.clone(),
        parent_id: m.parent.as_ref().map(|p| p.id.clone()).unwrap_or_default(),
        revision: m.revision,
        revision_time_ms: m.revision_time.0,
        created_ms: m.created.0,
        duration_ms: m.duration_ms,
        stored_bytes: m.stored_bytes(),
        parts: m.parts.len() as u64,
        note: m.note.clone().unwrap_or_default(),
        problem: String::new(),
        manifest_json: confstrata_core::serde_json::to_string(m).unwrap_or_default(),
    }
}

fn listed(l: &Listed) -> v1::BackupInfo {
    match &l.manifest {
        Some(m) => info(m),
        None => v1::BackupInfo {
            id: l.id.clone(),
            problem: l.problem.clone().unwrap_or_default(),
            ..v1::BackupInfo::default()
        },
    }
}

#[tonic::async_trait]
impl BackupService for Service {
    async fn create_backup(
        &self,
        req: Request<v1::CreateBackupRequest>,
    ) -> Res<v1::CreateBackupResponse> {
        let a = auth(&req);
        let incremental = req.into_inner().incremental;
        let (m, pruned) = self
            .calls
            .run(a, "", move |e, c| e.backup_now(c, incremental, &mut |_| {}))
            .await?;
        Ok(Response::new(v1::CreateBackupResponse {
            backup: Some(info(&m)),
            pruned,
        }))
    }

    async fn list_backups(
        &self,
        req: Request<v1::ListBackupsRequest>,
    ) -> Res<v1::ListBackupsResponse> {
        let (target, all) = self.calls.run(auth(&req), "", |e, c| e.backups(c)).await?;
        Ok(Response::new(v1::ListBackupsResponse {
            backups: all.iter().map(listed).collect(),
            target,
        }))
    }

    async fn verify_backup(
        &self,
        req: Request<v1::VerifyBackupRequest>,
    ) -> Res<v1::VerifyBackupResponse> {
        let a = auth(&req);
        let id = req.into_inner().id;
        let v = self
            .calls
            .run(a, "id", move |e, c| {
                e.verify_backup(
                    c,
                    Some(id.as_str()).filter(|s| !s.is_empty() && *s != "latest"),
                    &mut |_| {},
                )
            })
            .await?;
        Ok(Response::new(v1::VerifyBackupResponse {
            chain: v.backup.chain.clone(),
            revision: v.backup.revision,
            parts: v.backup.parts as u64,
            records: v.backup.records,
            stored_bytes: v.backup.stored_bytes,
            audit_records: v.audit_records,
            contexts_resolved: v.contexts_resolved,
            namespaces: v.namespaces,
        }))
    }
}
