//! Roles, groups, bindings and access checks, on either backend.

use anyhow::Result;
use confstrata_core::view::{
    AccessCheck, GroupInfo, Holder, PolicyApply, PolicyDocument, PrincipalDetail, RoleInfo,
};

use super::Backend;

/// Runs `$local` on the embedded engine or `$remote` on the client.
macro_rules! either {
    ($self:ident, |$engine:ident, $caller:ident| $local:expr, |$client:ident| $remote:expr) => {
        match $self {
            Backend::Local {
                engine: $engine,
                caller: $caller,
                ..
            } => Ok($local?),
            Backend::Remote { client, runtime } => {
                Backend::call(client, runtime, |$client| async move { $remote.await })
            }
        }
    };
}

impl Backend {
    pub(crate) fn bind(&self, holder: &Holder, role: &str, on: Option<&str>) -> Result<bool> {
        either!(self, |e, c| e.bind(c, holder, role, on), |cl| cl
            .bind(holder, role, on))
    }

    pub(crate) fn unbind(&self, holder: &Holder, role: &str, on: Option<&str>) -> Result<()> {
        either!(self, |e, c| e.unbind(c, holder, role, on), |cl| cl
            .unbind(holder, role, on))
    }

    pub(crate) fn principal(&self, id: &str) -> Result<PrincipalDetail> {
        either!(self, |e, c| e.principal(c, id), |cl| cl.principal(id))
    }

    pub(crate) fn can_i(
        &self,
        principal: &str,
        action: &str,
        resource: &str,
    ) -> Result<AccessCheck> {
        either!(self, |e, c| e.can_i(c, principal, action, resource), |cl| {
            cl.can_i(principal, action, resource)
        })
    }

    pub(crate) fn roles(&self) -> Result<Vec<RoleInfo>> {
        either!(self, |e, c| e.roles(c), |cl| cl.roles())
    }

    pub(crate) fn put_role(&self, role: &RoleInfo, create_only: bool) -> Result<()> {
        either!(
            self,
            |e, c| e.put_role(c, &role.name, &role.description, &role.grants, create_only),
            |cl| cl.put_role(role, create_only)
        )
    }

    pub(crate) fn delete_role(&self, name: &str) -> Result<()> {
        either!(self, |e, c| e.delete_role(c, name), |cl| cl
            .delete_role(name))
    }

    pub(crate) fn groups(&self) -> Result<Vec<GroupInfo>> {
        either!(self, |e, c| e.groups(c), |cl| cl.groups())
    }

    pub(crate) fn put_group(&self, name: &str, description: &str, create_only: bool) -> Result<()> {
        either!(
            self,
            |e, c| e.put_group(c, name, description, create_only),
            |cl| cl.put_group(name, description, create_only)
        )
    }

    pub(crate) fn delete_group(&self, name: &str) -> Result<()> {
        either!(self, |e, c| e.delete_group(c, name), |cl| cl
            .delete_group(name))
    }

    pub(crate) fn update_group_members(
        &self,
        group: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<()> {
        either!(
            self,
            |e, c| e.update_group_members(c, group, add, remove),
            |cl| cl.update_group_members(group, add, remove)
        )
    }

    pub(crate) fn export_policy(&self) -> Result<PolicyDocument> {
        either!(self, |e, c| e.export_policy(c), |cl| cl.export_policy())
    }

    pub(crate) fn apply_policy(&self, doc: &PolicyDocument, dry_run: bool) -> Result<PolicyApply> {
        either!(self, |e, c| e.apply_policy(c, doc, dry_run), |cl| cl
            .apply_policy(doc, dry_run))
    }
}
