//! `AdminService`: data keys, principals and tokens, and the audit log.
//!
//! Each RPC validates its request (naming the offending field) and calls
//! the engine, which authorizes the caller (`admin`, or `audit` for the
//! log) and audits the change itself; this module only translates.

use confstrata_core::view::Holder;
use confstrata_proto::convert;
use confstrata_proto::v1::{self, admin_service_server::AdminService};
use tonic::{Request, Response, Status};

use crate::call::{Calls, auth, missing};
use crate::status;

/// Audit records per ListAuditRecords call when the request says 0.
const DEFAULT_AUDIT_PAGE: u32 = 100;
/// The most audit records one ListAuditRecords call returns.
const MAX_AUDIT_PAGE: u32 = 10_000;

pub(crate) struct Service {
    pub(crate) calls: Calls,
}

type Res<T> = Result<Response<T>, Status>;

/// A required text field: INVALID_ARGUMENT naming it when empty.
fn required(field: &'static str, value: String) -> Result<String, Status> {
    if value.is_empty() {
        Err(status::field(missing(field)))
    } else {
        Ok(value)
    }
}

/// The holder a GrantRole or RevokeRole names: exactly one of
/// `principal_id` and `group`.
fn holder(principal_id: String, group: String) -> Result<Holder, Status> {
    match (principal_id.is_empty(), group.is_empty()) {
        (false, true) => Ok(Holder::Principal(principal_id)),
        (true, false) => Ok(Holder::Group(group)),
        (true, true) => Err(status::field(missing("principal_id"))),
        (false, false) => Err(status::field(confstrata_proto::convert::FieldError {
            field: "group".to_owned(),
            error: Box::new(confstrata_core::Error::invalid(
                "group",
                "give a principal_id or a group, not both",
            )),
        })),
    }
}

#[tonic::async_trait]
impl AdminService for Service {
    async fn rotate_key(&self, req: Request<v1::RotateKeyRequest>) -> Res<v1::RotateKeyResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let ns = convert::namespace_name("namespace", &r.namespace).map_err(status::field)?;
        let key_id = self
            .calls
            .write(a, "namespace", move |e, c| e.rotate_key(c, &ns))
            .await?;
        Ok(Response::new(v1::RotateKeyResponse { key_id }))
    }

    async fn rotate_master_key(
        &self,
        req: Request<v1::RotateMasterKeyRequest>,
    ) -> Res<v1::RotateMasterKeyResponse> {
        let rotated = self
            .calls
            .write(auth(&req), "", |e, c| e.rotate_master_key(c))
            .await?;
        Ok(Response::new((&rotated).into()))
    }

    async fn compact(&self, req: Request<v1::CompactRequest>) -> Res<v1::CompactResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        if r.keep_versions == 0 {
            return Err(status::field(confstrata_proto::convert::FieldError {
                field: "keep_versions".to_owned(),
                error: Box::new(confstrata_core::Error::invalid(
                    "keep_versions",
                    "keep at least one version (the current one)",
                )),
            }));
        }
        let policy = confstrata_core::RetentionPolicy {
            keep_versions: usize::try_from(r.keep_versions).unwrap_or(usize::MAX),
            keep_days: r.keep_days,
        };
        let report = self
            .calls
            .write(a, "", move |e, c| e.apply_retention(c, &policy))
            .await?;
        Ok(Response::new(v1::CompactResponse {
            oldest_revision: report.oldest_revision,
            removed_versions: report.removed_versions as u64,
            freed_bytes: report.freed_bytes,
        }))
    }

    async fn list_keys(&self, req: Request<v1::ListKeysRequest>) -> Res<v1::ListKeysResponse> {
        let keys = self.calls.run(auth(&req), "", |e, c| e.keys(c)).await?;
        Ok(Response::new(v1::ListKeysResponse {
            keys: keys.iter().map(Into::into).collect(),
        }))
    }

    async fn rewrap_keys(
        &self,
        req: Request<v1::RewrapKeysRequest>,
    ) -> Res<v1::RewrapKeysResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let ns = convert::namespace_name("namespace", &r.namespace).map_err(status::field)?;
        let commit = self
            .calls
            .write(a, "namespace", move |e, c| e.rewrap(c, &ns))
            .await?;
        Ok(Response::new(v1::RewrapKeysResponse {
            commit: commit.map(Into::into),
        }))
    }

    async fn retire_key(&self, req: Request<v1::RetireKeyRequest>) -> Res<v1::RetireKeyResponse> {
        let a = auth(&req);
        let key = required("key_id", req.into_inner().key_id)?;
        self.calls
            .write(a, "key_id", move |e, c| e.retire_key(c, &key))
            .await?;
        Ok(Response::new(v1::RetireKeyResponse {}))
    }

    async fn add_principal(
        &self,
        req: Request<v1::AddPrincipalRequest>,
    ) -> Res<v1::AddPrincipalResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let id = required("id", r.id)?;
        let kind = convert::principal_kind("kind", r.kind).map_err(status::field)?;
        let (name, roles) = (r.name, r.roles);
        self.calls
            .write(a, "id", move |e, c| {
                e.add_principal(c, &id, &name, kind, &roles)
            })
            .await?;
        Ok(Response::new(v1::AddPrincipalResponse {}))
    }

    async fn list_principals(
        &self,
        req: Request<v1::ListPrincipalsRequest>,
    ) -> Res<v1::ListPrincipalsResponse> {
        let list = self
            .calls
            .run(auth(&req), "", |e, c| e.principals(c))
            .await?;
        Ok(Response::new(v1::ListPrincipalsResponse {
            principals: list.iter().map(Into::into).collect(),
        }))
    }

    async fn grant_role(&self, req: Request<v1::GrantRoleRequest>) -> Res<v1::GrantRoleResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let holder = holder(r.principal_id, r.group)?;
        let role = required("role", r.role)?;
        let on = r.on;
        let granted = self
            .calls
            .write(a, "role", move |e, c| {
                e.bind(c, &holder, &role, on.as_deref())
            })
            .await?;
        Ok(Response::new(v1::GrantRoleResponse { granted }))
    }

    async fn revoke_role(
        &self,
        req: Request<v1::RevokeRoleRequest>,
    ) -> Res<v1::RevokeRoleResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let holder = holder(r.principal_id, r.group)?;
        let role = required("role", r.role)?;
        let on = r.on;
        self.calls
            .write(a, "role", move |e, c| {
                e.unbind(c, &holder, &role, on.as_deref())
            })
            .await?;
        Ok(Response::new(v1::RevokeRoleResponse {}))
    }

    async fn get_principal(
        &self,
        req: Request<v1::GetPrincipalRequest>,
    ) -> Res<v1::GetPrincipalResponse> {
        let a = auth(&req);
        let id = required("principal_id", req.into_inner().principal_id)?;
        let detail = self
            .calls
            .run(a, "principal_id", move |e, c| e.principal(c, &id))
            .await?;
        Ok(Response::new((&detail).into()))
    }

    async fn check_access(
        &self,
        req: Request<v1::CheckAccessRequest>,
    ) -> Res<v1::CheckAccessResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let id = required("principal_id", r.principal_id)?;
        let action = required("action", r.action)?;
        let resource = required("resource", r.resource)?;
        let check = self
            .calls
            .run(a, "resource", move |e, c| {
                e.can_i(c, &id, &action, &resource)
            })
            .await?;
        Ok(Response::new((&check).into()))
    }

    async fn list_roles(&self, req: Request<v1::ListRolesRequest>) -> Res<v1::ListRolesResponse> {
        let roles = self.calls.run(auth(&req), "", |e, c| e.roles(c)).await?;
        Ok(Response::new(v1::ListRolesResponse {
            roles: roles.iter().map(Into::into).collect(),
        }))
    }

    async fn put_role(&self, req: Request<v1::PutRoleRequest>) -> Res<v1::PutRoleResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let role = r.role.ok_or_else(|| status::field(missing("role")))?;
        let name = required("role.name", role.name)?;
        let grants: Vec<_> = role.grants.iter().map(Into::into).collect();
        // Checked here too, so that a bad grant is named as a field of
        // the request (`role.grants[0].on`).
        if let Err(e) = confstrata_engine::grants_from_info(&grants) {
            let field = match &e {
                confstrata_core::Error::Invalid { what, .. } => format!("role.{what}"),
                _ => "role.grants".to_owned(),
            };
            return Err(status::from_core(&e, &field));
        }
        let (description, create_only) = (role.description, r.create_only);
        self.calls
            .write(a, "role", move |e, c| {
                e.put_role(c, &name, &description, &grants, create_only)
            })
            .await?;
        Ok(Response::new(v1::PutRoleResponse {}))
    }

    async fn delete_role(
        &self,
        req: Request<v1::DeleteRoleRequest>,
    ) -> Res<v1::DeleteRoleResponse> {
        let a = auth(&req);
        let name = required("name", req.into_inner().name)?;
        self.calls
            .write(a, "name", move |e, c| e.delete_role(c, &name))
            .await?;
        Ok(Response::new(v1::DeleteRoleResponse {}))
    }

    async fn list_groups(
        &self,
        req: Request<v1::ListGroupsRequest>,
    ) -> Res<v1::ListGroupsResponse> {
        let groups = self.calls.run(auth(&req), "", |e, c| e.groups(c)).await?;
        Ok(Response::new(v1::ListGroupsResponse {
            groups: groups.iter().map(Into::into).collect(),
        }))
    }

    async fn put_group(&self, req: Request<v1::PutGroupRequest>) -> Res<v1::PutGroupResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let name = required("name", r.name)?;
        let (description, create_only) = (r.description, r.create_only);
        self.calls
            .write(a, "name", move |e, c| {
                e.put_group(c, &name, &description, create_only)
            })
            .await?;
        Ok(Response::new(v1::PutGroupResponse {}))
    }

    async fn delete_group(
        &self,
        req: Request<v1::DeleteGroupRequest>,
    ) -> Res<v1::DeleteGroupResponse> {
        let a = auth(&req);
        let name = required("name", req.into_inner().name)?;
        self.calls
            .write(a, "name", move |e, c| e.delete_group(c, &name))
            .await?;
        Ok(Response::new(v1::DeleteGroupResponse {}))
    }

    async fn update_group_members(
        &self,
        req: Request<v1::UpdateGroupMembersRequest>,
    ) -> Res<v1::UpdateGroupMembersResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let group = required("group", r.group)?;
        let (add, remove) = (r.add, r.remove);
        self.calls
            .write(a, "group", move |e, c| {
                e.update_group_members(c, &group, &add, &remove)
            })
            .await?;
        Ok(Response::new(v1::UpdateGroupMembersResponse {}))
    }

    async fn export_policy(
        &self,
        req: Request<v1::ExportPolicyRequest>,
    ) -> Res<v1::ExportPolicyResponse> {
        let doc = self
            .calls
            .run(auth(&req), "", |e, c| e.export_policy(c))
            .await?;
        Ok(Response::new(v1::ExportPolicyResponse {
            policy: Some((&doc).into()),
        }))
    }

    async fn apply_policy(
        &self,
        req: Request<v1::ApplyPolicyRequest>,
    ) -> Res<v1::ApplyPolicyResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let wire = r.policy.ok_or_else(|| status::field(missing("policy")))?;
        let doc = convert::policy_document("policy", &wire).map_err(status::field)?;
        let dry_run = r.dry_run;
        let out = self
            .calls
            .write(a, "policy", move |e, c| e.apply_policy(c, &doc, dry_run))
            .await?;
        Ok(Response::new(v1::ApplyPolicyResponse {
            changes: out.changes,
            applied: out.applied,
        }))
    }

    async fn issue_token(
        &self,
        req: Request<v1::IssueTokenRequest>,
    ) -> Res<v1::IssueTokenResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let id = required("principal_id", r.principal_id)?;
        let label = r.label;
        let token = self
            .calls
            .write(a, "principal_id", move |e, c| e.issue_token(c, &id, &label))
            .await?;
        Ok(Response::new(v1::IssueTokenResponse {
            token: token.expose_secret().to_owned(),
            hash_prefix: token.hash().short(),
        }))
    }

    async fn revoke_token(
        &self,
        req: Request<v1::RevokeTokenRequest>,
    ) -> Res<v1::RevokeTokenResponse> {
        let a = auth(&req);
        let prefix = required("hash_prefix", req.into_inner().hash_prefix)?;
        self.calls
            .write(a, "hash_prefix", move |e, c| e.revoke_token(c, &prefix))
            .await?;
        Ok(Response::new(v1::RevokeTokenResponse {}))
    }

    async fn revoke_principal(
        &self,
        req: Request<v1::RevokePrincipalRequest>,
    ) -> Res<v1::RevokePrincipalResponse> {
        let a = auth(&req);
        let id = required("principal_id", req.into_inner().principal_id)?;
        self.calls
            .write(a, "principal_id", move |e, c| e.revoke_principal(c, &id))
            .await?;
        Ok(Response::new(v1::RevokePrincipalResponse {}))
    }

    async fn list_audit_records(
        &self,
        req: Request<v1::ListAuditRecordsRequest>,
    ) -> Res<v1::ListAuditRecordsResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let limit = match r.limit {
            0 => DEFAULT_AUDIT_PAGE,
            n => n.min(MAX_AUDIT_PAGE),
        } as usize;
        let after = r.after_seq;
        let records = self
            .calls
            .run(a, "after_seq", move |e, c| e.audit_records(c, after, limit))
            .await?;
        let record_json = records
            .iter()
            .map(|rec| {
                confstrata_core::serde_json::to_string(rec).map_err(|err| {
                    Status::internal(format!(
                        "audit record {} cannot be written as JSON: {err}",
                        rec.seq
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Response::new(v1::ListAuditRecordsResponse { record_json }))
    }

    async fn verify_audit(
        &self,
        req: Request<v1::VerifyAuditRequest>,
    ) -> Res<v1::VerifyAuditResponse> {
        let v = self
            .calls
            .run(auth(&req), "", |e, c| e.audit_verify(c))
            .await?;
        Ok(Response::new(v.into()))
    }

    async fn get_stats(&self, req: Request<v1::GetStatsRequest>) -> Res<v1::GetStatsResponse> {
        let s = self.calls.run(auth(&req), "", |e, c| e.stats(c)).await?;
        Ok(Response::new(v1::GetStatsResponse {
            revision: s.revision,
            cache: Some(v1::CacheCounters {
                hits: s.cache.hits,
                misses: s.cache.misses,
                evictions: s.cache.evictions,
                invalidations: s.cache.invalidations,
                rebuilt: s.cache.rebuilt,
                entries: s.cache.entries,
                bytes: s.cache.bytes,
                max_entries: s.cache_budget.max_entries as u64,
                max_bytes: s.cache_budget.max_bytes as u64,
            }),
            stages: s
                .timings
                .stages
                .into_iter()
                .map(|t| v1::StageTiming {
                    stage: t.stage,
                    count: t.count,
                    sum_seconds: t.sum_seconds,
                    p50_seconds: t.p50_seconds,
                    p90_seconds: t.p90_seconds,
                    p99_seconds: t.p99_seconds,
                })
                .collect(),
            store_batches: s.timings.batches,
            store_batched_jobs: s.timings.batched_jobs,
            newest_backup: s.newest_backup.as_ref().map(Into::into),
        }))
    }
}
