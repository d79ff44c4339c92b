//! The RPCs of `confstrata.v1.AdminService` on [`Client`]: data keys,
//! principals and tokens, and the audit log. The names and answers mirror
//! the embedded engine's (`Engine::rotate_key`, `Engine::principals`, …).
//!
//! Every call needs the token of a principal with the `admin` role (`audit`
//! for the log); others get `PERMISSION_DENIED`.

use confstrata_core::serde_json::Value;
use confstrata_core::{CommitInfo, NamespaceName};
use confstrata_proto::convert;
use confstrata_proto::v1;

use crate::client::{Client, commit_of};
use crate::error::Result;
use crate::types::{
    AuditVerification, IssuedToken, KeyInfo, MasterKeyRotation, PrincipalInfo, PrincipalKind,
};
use crate::wire;
use confstrata_core::view::{
    AccessCheck, GroupInfo, Holder, PolicyApply, PolicyDocument, PrincipalDetail, RoleInfo,
};

impl Client {
    /// Adds a new current data key for a namespace and returns its id
    /// (`web#2`); values sealed under older keys stay readable.
    pub async fn rotate_key(&self, ns: &NamespaceName) -> Result<String> {
        let r = self
            .raw_admin()
            .rotate_key(self.request(v1::RotateKeyRequest {
                namespace: ns.to_string(),
            }))
            .await?
            .into_inner();
        Ok(r.key_id)
    }

    /// Rotates the server's master key (see `AdminService.RotateMasterKey`).
    pub async fn rotate_master_key(&self) -> Result<MasterKeyRotation> {
        let r = self
            .raw_admin()
            .rotate_master_key(self.request(v1::RotateMasterKeyRequest {}))
            .await?
            .into_inner();
        Ok(r.into())
    }

    /// Drops old history now (see `AdminService.Compact`).
    pub async fn compact(
        &self,
        policy: &confstrata_core::RetentionPolicy,
    ) -> Result<confstrata_core::RetentionReport> {
        let r = self
            .raw_admin()
            .compact(self.request(v1::CompactRequest {
                keep_versions: policy.keep_versions as u64,
                keep_days: policy.keep_days,
            }))
            .await?
            .into_inner();
        Ok(confstrata_core::RetentionReport {
            oldest_revision: r.oldest_revision,
            removed_versions: usize::try_from(r.removed_versions).unwrap_or(usize::MAX),
            freed_bytes: r.freed_bytes,
        })
    }

    /// Every data key, by namespace.
    pub async fn keys(&self) -> Result<Vec<KeyInfo>> {
        let r = self
            .raw_admin()
            .list_keys(self.request(v1::ListKeysRequest {}))
            .await?
            .into_inner();
        Ok(r.keys.iter().map(KeyInfo::from).collect())
    }

    /// Re-seals every sealed value of a namespace's current layers under its
    /// current key, as one new revision; `None` if nothing needed it.
    pub async fn rewrap(&self, ns: &NamespaceName) -> Result<Option<CommitInfo>> {
        let r = self
            .raw_admin()
            .rewrap_keys(self.request(v1::RewrapKeysRequest {
                namespace: ns.to_string(),
            }))
            .await?
            .into_inner();
        r.commit.as_ref().map(|c| commit_of(Some(c))).transpose()
    }

    /// Retires a data key. Refused (`INVALID_ARGUMENT`) for a namespace's
    /// current key and for a key any retained version still uses.
    pub async fn retire_key(&self, key_id: &str) -> Result<()> {
        self.raw_admin()
            .retire_key(self.request(v1::RetireKeyRequest {
                key_id: key_id.to_owned(),
            }))
            .await?;
        Ok(())
    }

    /// Adds a principal with roles.
    pub async fn add_principal(
        &self,
        id: &str,
        name: &str,
        kind: PrincipalKind,
        roles: &[String],
    ) -> Result<()> {
        self.raw_admin()
            .add_principal(self.request(v1::AddPrincipalRequest {
                id: id.to_owned(),
                name: name.to_owned(),
                kind: v1::PrincipalKind::from(kind) as i32,
                roles: roles.to_vec(),
            }))
            .await?;
        Ok(())
    }

    /// Every principal with its roles and token hashes.
    pub async fn principals(&self) -> Result<Vec<PrincipalInfo>> {
        let r = self
            .raw_admin()
            .list_principals(self.request(v1::ListPrincipalsRequest {}))
            .await?
            .into_inner();
        Ok(wire::list("principals", &r.principals, convert::principal)?)
    }

    /// Grants a role to a principal, over everything its grants name.
    pub async fn grant_role(&self, id: &str, role: &str) -> Result<()> {
        self.bind(&Holder::Principal(id.to_owned()), role, None)
            .await
            .map(drop)
    }

    /// Takes a role (held over everything) from a principal.
    pub async fn revoke_role(&self, id: &str, role: &str) -> Result<()> {
        self.unbind(&Holder::Principal(id.to_owned()), role, None)
            .await
    }

    /// Grants a role to a principal or group, over everything or within
    /// the pattern `on`. `false` when that binding was held already.
    pub async fn bind(&self, holder: &Holder, role: &str, on: Option<&str>) -> Result<bool> {
        let (principal_id, group) = holder_fields(holder);
        let r = self
            .raw_admin()
            .grant_role(self.request(v1::GrantRoleRequest {
                principal_id,
                group,
                role: role.to_owned(),
                on: on.map(str::to_owned),
            }))
            .await?
            .into_inner();
        Ok(r.granted)
    }

    /// Takes a binding (the role over everything, or within `on`) from a
    /// principal or group.
    pub async fn unbind(&self, holder: &Holder, role: &str, on: Option<&str>) -> Result<()> {
        let (principal_id, group) = holder_fields(holder);
        self.raw_admin()
            .revoke_role(self.request(v1::RevokeRoleRequest {
                principal_id,
                group,
                role: role.to_owned(),
                on: on.map(str::to_owned),
            }))
            .await?;
        Ok(())
    }

    /// A principal with its groups and effective grants.
    pub async fn principal(&self, id: &str) -> Result<PrincipalDetail> {
        let r = self
            .raw_admin()
            .get_principal(self.request(v1::GetPrincipalRequest {
                principal_id: id.to_owned(),
            }))
            .await?
            .into_inner();
        Ok(convert::principal_detail(&r)?)
    }

    /// Whether `principal` may do `action` on `resource`, and the grant
    /// that decides.
    pub async fn can_i(
        &self,
        principal: &str,
        action: &str,
        resource: &str,
    ) -> Result<AccessCheck> {
        let r = self
            .raw_admin()
            .check_access(self.request(v1::CheckAccessRequest {
                principal_id: principal.to_owned(),
                action: action.to_owned(),
                resource: resource.to_owned(),
            }))
            .await?
            .into_inner();
        Ok(convert::access_check(&r)?)
    }

    /// Every role, built-in and custom.
    pub async fn roles(&self) -> Result<Vec<RoleInfo>> {
        let r = self
            .raw_admin()
            .list_roles(self.request(v1::ListRolesRequest {}))
            .await?
            .into_inner();
        Ok(r.roles.iter().map(Into::into).collect())
    }

    /// Creates a custom role (`create_only`), or creates or replaces one.
    pub async fn put_role(&self, role: &RoleInfo, create_only: bool) -> Result<()> {
        self.raw_admin()
            .put_role(self.request(v1::PutRoleRequest {
                role: Some(role.into()),
                create_only,
            }))
            .await?;
        Ok(())
    }

    /// Deletes a custom role nobody holds.
    pub async fn delete_role(&self, name: &str) -> Result<()> {
        self.raw_admin()
            .delete_role(self.request(v1::DeleteRoleRequest {
                name: name.to_owned(),
            }))
            .await?;
        Ok(())
    }

    /// The access policy as a document for review.
    pub async fn export_policy(&self) -> Result<PolicyDocument> {
        let r = self
            .raw_admin()
            .export_policy(self.request(v1::ExportPolicyRequest {}))
            .await?
            .into_inner();
        let doc = r.policy.ok_or_else(|| wire::missing("policy"))?;
        Ok(convert::policy_document("policy", &doc)?)
    }

    /// Makes the policy what `doc` says (or, with `dry_run`, says what
    /// would change).
    pub async fn apply_policy(&self, doc: &PolicyDocument, dry_run: bool) -> Result<PolicyApply> {
        let r = self
            .raw_admin()
            .apply_policy(self.request(v1::ApplyPolicyRequest {
                policy: Some(doc.into()),
                dry_run,
            }))
            .await?
            .into_inner();
        Ok(PolicyApply {
            changes: r.changes,
            applied: r.applied,
        })
    }

    /// Every group with its members and roles.
    pub async fn groups(&self) -> Result<Vec<GroupInfo>> {
        let r = self
            .raw_admin()
            .list_groups(self.request(v1::ListGroupsRequest {}))
            .await?
            .into_inner();
        Ok(r.groups.iter().map(Into::into).collect())
    }

    /// Creates a group (`create_only`), or creates one or changes its
    /// description.
    pub async fn put_group(&self, name: &str, description: &str, create_only: bool) -> Result<()> {
        self.raw_admin()
            .put_group(self.request(v1::PutGroupRequest {
                name: name.to_owned(),
                description: description.to_owned(),
                create_only,
            }))
            .await?;
        Ok(())
    }

    /// Deletes a group; its members lose the roles held through it.
    pub async fn delete_group(&self, name: &str) -> Result<()> {
        self.raw_admin()
            .delete_group(self.request(v1::DeleteGroupRequest {
                name: name.to_owned(),
            }))
            .await?;
        Ok(())
    }

    /// Adds and removes members of a group, all or nothing.
    pub async fn update_group_members(
        &self,
        group: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<()> {
        self.raw_admin()
            .update_group_members(self.request(v1::UpdateGroupMembersRequest {
                group: group.to_owned(),
                add: add.to_vec(),
                remove: remove.to_vec(),
            }))
            .await?;
        Ok(())
    }

    /// The server's measurements since it started: the view cache's
    /// counters and each stage's timings (needs `audit`).
    pub async fn stats(&self) -> Result<v1::GetStatsResponse> {
        Ok(self
            .raw_admin()
            .get_stats(self.request(v1::GetStatsRequest {}))
            .await?
            .into_inner())
    }

    /// Issues a new token for a principal. The server keeps only its hash:
    /// store the token now.
    pub async fn issue_token(&self, id: &str, label: &str) -> Result<IssuedToken> {
        let r = self
            .raw_admin()
            .issue_token(self.request(v1::IssueTokenRequest {
                principal_id: id.to_owned(),
                label: label.to_owned(),
            }))
            .await?
            .into_inner();
        if r.token.is_empty() {
            return Err(wire::missing("token").into());
        }
        Ok(IssuedToken {
            token: r.token,
            hash: r.hash_prefix,
        })
    }

    /// Revokes one token, named by its hash or a unique prefix of it (as
    /// [`Client::principals`] and [`Client::issue_token`] show it). Its open
    /// watches end with `UNAUTHENTICATED`.
    pub async fn revoke_token(&self, hash_prefix: &str) -> Result<()> {
        self.raw_admin()
            .revoke_token(self.request(v1::RevokeTokenRequest {
                hash_prefix: hash_prefix.to_owned(),
            }))
            .await?;
        Ok(())
    }

    /// Revokes a principal and so all its tokens.
    pub async fn revoke_principal(&self, id: &str) -> Result<()> {
        self.raw_admin()
            .revoke_principal(self.request(v1::RevokePrincipalRequest {
                principal_id: id.to_owned(),
            }))
            .await?;
        Ok(())
    }

    /// Audit records with `seq > after_seq`, oldest first, at most `limit`
    /// (0: the server's default of 100; the server caps it at 10000). Each
    /// is the record's JSON form (`seq`, `time`, `principal`, `action`,
    /// `resource`, `outcome`, `details`, …). To page, pass the last `seq`.
    pub async fn audit_records(&self, after_seq: u64, limit: u32) -> Result<Vec<Value>> {
        let r = self
            .raw_admin()
            .list_audit_records(self.request(v1::ListAuditRecordsRequest { after_seq, limit }))
            .await?
            .into_inner();
        Ok(wire::list("record_json", &r.record_json, |field, json| {
            convert::value(field, json, &wire::response_limits())
        })?)
    }

    /// Verifies the whole audit chain on the server. A tampered log fails
    /// with `DATA_LOSS` naming the first bad record.
    pub async fn audit_verify(&self) -> Result<AuditVerification> {
        let r = self
            .raw_admin()
            .verify_audit(self.request(v1::VerifyAuditRequest {}))
            .await?
            .into_inner();
        Ok(AuditVerification::from(&r))
    }
}

fn holder_fields(holder: &Holder) -> (String, String) {
    match holder {
        Holder::Principal(id) => (id.clone(), String::new()),
        Holder::Group(g) => (String::new(), g.clone()),
    }
}
