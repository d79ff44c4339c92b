//! Roles, groups and bindings as data: custom roles (create, replace,
//! delete, list), groups and their members, roles granted to principals or
//! groups over everything or within a scope, and the questions `auth
//! can-i` and `principal show` ask of the policy.
//!
//! Every change needs `admin` on everything, goes through
//! `Engine::change_policy` (stored with its audit record in one
//! transaction, then swapped in and announced to open watches), and so
//! takes effect on the next request.

use confstrata_access::{
    Action, Binding, Effect, Grant, GrantSource, GroupName, PrincipalId, Resource, ResourcePattern,
    Role, RoleName, Subject,
};
use confstrata_core::view::{
    AccessCheck, BindingInfo, EffectiveGrant, GrantInfo, GroupInfo, Holder, PrincipalDetail,
    RoleInfo,
};
use confstrata_core::{Error, Result};

use crate::Engine;
use crate::security::Caller;

/// A role's grants from their listed form; an error names the grant and
/// its field (`grants[2].on`).
pub fn grants_from_info(grants: &[GrantInfo]) -> Result<Vec<Grant>> {
    grants
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let field = |f: &str| format!("grants[{i}].{f}");
            let effect = match g.effect.as_str() {
                "allow" => Effect::Allow,
                "deny" => Effect::Deny,
                other => {
                    return Err(Error::invalid(
                        field("effect"),
                        format!("{other:?} is not an effect; write allow or deny"),
                    ));
                }
            };
            let actions = g
                .actions
                .iter()
                .map(|a| Action::parse(a))
                .collect::<confstrata_access::Result<_>>()
                .map_err(|e| Error::invalid(field("actions"), e.to_string()))?;
            let on = ResourcePattern::parse(&g.on)
                .map_err(|e| Error::invalid(field("on"), e.to_string()))?;
            Ok(Grant {
                effect,
                actions,
                on,
            })
        })
        .collect()
}

/// The listed form of a grant.
pub(crate) fn grant_info(g: &Grant) -> GrantInfo {
    GrantInfo {
        effect: match g.effect {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
        .to_owned(),
        actions: g.actions.iter().map(|a| a.as_str().to_owned()).collect(),
        on: g.on.to_string(),
    }
}

pub(crate) fn binding_info(b: &Binding) -> BindingInfo {
    BindingInfo {
        role: b.role.to_string(),
        on: b.on.as_ref().map(ToString::to_string),
    }
}

fn effective(g: &GrantSource) -> EffectiveGrant {
    EffectiveGrant {
        grant: grant_info(&g.grant),
        role: g.role.to_string(),
        index: u32::try_from(g.index).unwrap_or(u32::MAX),
        scope: g.scope.as_ref().map(ToString::to_string),
        group: g.group.as_ref().map(ToString::to_string),
    }
}

fn role_name(field: &str, name: &str) -> Result<RoleName> {
    RoleName::parse(name).map_err(|e| Error::invalid(field, e.to_string()))
}

fn group_name(field: &str, name: &str) -> Result<GroupName> {
    GroupName::parse(name).map_err(|e| Error::invalid(field, e.to_string()))
}

fn principal_id(field: &str, id: &str) -> Result<PrincipalId> {
    PrincipalId::parse(id).map_err(|e| Error::invalid(field, e.to_string()))
}

/// A binding from a role name and an optional scope pattern.
pub fn binding(role: &str, on: Option<&str>) -> Result<Binding> {
    Ok(Binding {
        role: role_name("role", role)?,
        on: on
            .map(|p| ResourcePattern::parse(p).map_err(|e| Error::invalid("on", e.to_string())))
            .transpose()?,
    })
}

fn subject(holder: &Holder) -> Result<Subject> {
    Ok(match holder {
        Holder::Principal(id) => Subject::Principal(principal_id("principal", id)?),
        Holder::Group(g) => Subject::Group(group_name("group", g)?),
    })
}

pub(crate) fn role_info(r: &Role) -> RoleInfo {
    RoleInfo {
        name: r.name.to_string(),
        description: r.description.clone(),
        builtin: Role::is_builtin(&r.name),
        grants: r.grants.iter().map(grant_info).collect(),
    }
}

pub(crate) fn group_info(g: &confstrata_access::Group) -> GroupInfo {
    GroupInfo {
        name: g.name().to_string(),
        description: g.description().to_owned(),
        members: g.members().iter().map(ToString::to_string).collect(),
        roles: g.bindings().iter().map(binding_info).collect(),
    }
}

impl Engine {
    /// Every role, built-in and custom (admin or audit).
    pub fn roles(&self, caller: &Caller) -> Result<Vec<RoleInfo>> {
        self.require_admin_or_audit(caller)?;
        Ok(self.security.policy().roles().map(role_info).collect())
    }

    /// Creates a custom role (`create_only`), or creates or replaces one:
    /// every holder's decisions change on their next request. Built-in
    /// roles cannot be replaced.
    pub fn put_role(
        &self,
        caller: &Caller,
        name: &str,
        description: &str,
        grants: &[GrantInfo],
        create_only: bool,
    ) -> Result<()> {
        let name = role_name("name", name)?;
        let grants = grants_from_info(grants)?;
        let role = Role {
            name: name.clone(),
            description: description.to_owned(),
            grants,
        };
        let op = if create_only {
            "role create"
        } else {
            "role put"
        };
        self.change_policy(caller, op, name.as_str(), |p| {
            if create_only && p.role(&name).is_some() {
                return Err(confstrata_access::Error::AlreadyExists {
                    kind: "role",
                    name: name.to_string(),
                });
            }
            p.put_role(role)
        })
    }

    /// Deletes a custom role; refused while anyone holds it (the error
    /// names one holder) and for the built-in roles.
    pub fn delete_role(&self, caller: &Caller, name: &str) -> Result<()> {
        let name = role_name("name", name)?;
        self.change_policy(caller, "role delete", name.as_str(), |p| {
            p.remove_role(&name).map(drop)
        })
    }

    /// Every group with its members and roles (admin or audit).
    pub fn groups(&self, caller: &Caller) -> Result<Vec<GroupInfo>> {
        self.require_admin_or_audit(caller)?;
        Ok(self.security.policy().groups().map(group_info).collect())
    }

    /// Creates a group (`create_only`), or creates one or changes its
    /// description.
    pub fn put_group(
        &self,
        caller: &Caller,
        name: &str,
        description: &str,
        create_only: bool,
    ) -> Result<()> {
        let name = group_name("name", name)?;
        let op = if create_only {
            "group create"
        } else {
            "group put"
        };
        self.change_policy(caller, op, name.as_str(), |p| {
            p.put_group(name.clone(), description.to_owned(), create_only)
        })
    }

    /// Deletes a group: its members lose the roles they held through it at
    /// once (open watches included) and keep everything else.
    pub fn delete_group(&self, caller: &Caller, name: &str) -> Result<()> {
        let name = group_name("name", name)?;
        self.change_policy(caller, "group delete", name.as_str(), |p| {
            p.remove_group(&name).map(drop)
        })
    }

    /// Adds and removes members of a group, all or nothing.
    pub fn update_group_members(
        &self,
        caller: &Caller,
        group: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<()> {
        let group = group_name("group", group)?;
        let ids = |field: &str, list: &[String]| -> Result<Vec<PrincipalId>> {
            list.iter()
                .enumerate()
                .map(|(i, id)| principal_id(&format!("{field}[{i}]"), id))
                .collect()
        };
        let (add, remove) = (ids("add", add)?, ids("remove", remove)?);
        let subject = format!(
            "{group} +[{}] -[{}]",
            add.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            remove
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        );
        self.change_policy(caller, "group members", &subject, |p| {
            for id in &add {
                p.add_member(&group, id)?;
            }
            for id in &remove {
                p.remove_member(&group, id)?;
            }
            Ok(())
        })
    }

    /// Grants a role to a principal or group, over everything or within
    /// `on`. `false` when it held that binding already.
    pub fn bind(
        &self,
        caller: &Caller,
        holder: &Holder,
        role: &str,
        on: Option<&str>,
    ) -> Result<bool> {
        let subject = subject(holder)?;
        let binding = binding(role, on)?;
        self.change_policy(
            caller,
            "role grant",
            &format!("{subject}: {binding}"),
            |p| p.bind(&subject, binding.clone()),
        )
    }

    /// Takes a binding away from a principal or group.
    pub fn unbind(
        &self,
        caller: &Caller,
        holder: &Holder,
        role: &str,
        on: Option<&str>,
    ) -> Result<()> {
        let subject = subject(holder)?;
        let binding = binding(role, on)?;
        self.change_policy(
            caller,
            "role revoke",
            &format!("{subject}: {binding}"),
            |p| p.unbind(&subject, &binding),
        )
    }

    /// Whether `principal` may do `action` on `resource`, and which grant
    /// decides: `auth can-i`. A caller may ask about itself; about others
    /// it needs `admin` or `audit` on everything.
    pub fn can_i(
        &self,
        caller: &Caller,
        principal: &str,
        action: &str,
        resource: &str,
    ) -> Result<AccessCheck> {
        let id = principal_id("principal", principal)?;
        let action = Action::parse(action).map_err(|e| Error::invalid("action", e.to_string()))?;
        let resource =
            Resource::parse(resource).map_err(|e| Error::invalid("resource", e.to_string()))?;
        if caller.principal() != &id || caller.is_local() {
            self.require_admin_or_audit(caller)?;
        }
        let policy = self.security.policy();
        let e = policy.explain(&id, action, &resource);
        let reason = match (&e.deciding, &e.cause) {
            (Some(g), _) if e.allowed => format!("allowed by {g}"),
            (Some(g), _) => format!("refused by {g}; a deny wins over every allow"),
            (None, Some(confstrata_access::RefusalCause::UnknownPrincipal)) => {
                format!("refused: there is no principal {id}")
            }
            (None, Some(confstrata_access::RefusalCause::PrincipalRevoked)) => {
                format!("refused: principal {id} is revoked")
            }
            (None, _) => {
                format!("refused by default: no grant of {id} allows {action} on all of {resource}")
            }
        };
        Ok(AccessCheck {
            allowed: e.allowed,
            deciding: e.deciding.as_ref().map(effective),
            reason,
        })
    }

    /// A principal with its groups and effective grants: `principal
    /// show`. About itself, anyone; about others, `admin` or `audit`.
    pub fn principal(&self, caller: &Caller, id: &str) -> Result<PrincipalDetail> {
        let pid = principal_id("principal", id)?;
        if caller.principal() != &pid || caller.is_local() {
            self.require_admin_or_audit(caller)?;
        }
        let policy = self.security.policy();
        let Some(p) = policy.principal(&pid) else {
            return Err(Error::invalid(
                "principal",
                format!("principal {pid:?} does not exist"),
            ));
        };
        Ok(PrincipalDetail {
            principal: crate::admin::principal_info(p),
            groups: policy
                .groups()
                .filter(|g| g.members().contains(&pid))
                .map(|g| g.name().to_string())
                .collect(),
            effective: policy
                .effective_grants(&pid)
                .unwrap_or_default()
                .iter()
                .map(effective)
                .collect(),
        })
    }

    /// Refuses unless the caller has `admin` or `audit` on everything (an
    /// auditor may read the policy, not change it).
    fn require_admin_or_audit(&self, caller: &Caller) -> Result<()> {
        let g = self.gate(caller);
        if g.allows(Action::Audit, &Resource::everything()) {
            return Ok(());
        }
        g.require(Action::Admin, Resource::everything())
    }
}
