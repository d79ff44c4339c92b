//! Roles, groups, bindings and access checks, both directions.

use confstrata_core::view::{
    AccessCheck, BindingInfo, EffectiveGrant, GrantInfo, GroupInfo, PolicyDocument, PolicyGroup,
    PolicyPrincipal, PolicyRole, PrincipalDetail, RoleInfo,
};

use super::{FieldResult, missing};
use crate::v1;

impl From<&BindingInfo> for v1::RoleBinding {
    fn from(b: &BindingInfo) -> Self {
        v1::RoleBinding {
            role: b.role.clone(),
            on: b.on.clone(),
        }
    }
}

impl From<&v1::RoleBinding> for BindingInfo {
    fn from(b: &v1::RoleBinding) -> Self {
        BindingInfo {
            role: b.role.clone(),
            on: b.on.clone(),
        }
    }
}

impl From<&GrantInfo> for v1::RoleGrant {
    fn from(g: &GrantInfo) -> Self {
        v1::RoleGrant {
            effect: g.effect.clone(),
            actions: g.actions.clone(),
            on: g.on.clone(),
        }
    }
}

impl From<&v1::RoleGrant> for GrantInfo {
    fn from(g: &v1::RoleGrant) -> Self {
        GrantInfo {
            effect: g.effect.clone(),
            actions: g.actions.clone(),
            on: g.on.clone(),
        }
    }
}

impl From<&RoleInfo> for v1::Role {
    fn from(r: &RoleInfo) -> Self {
        v1::Role {
            name: r.name.clone(),
            description: r.description.clone(),
            builtin: r.builtin,
            grants: r.grants.iter().map(Into::into).collect(),
        }
    }
}

impl From<&v1::Role> for RoleInfo {
    fn from(r: &v1::Role) -> Self {
        RoleInfo {
            name: r.name.clone(),
            description: r.description.clone(),
            builtin: r.builtin,
            grants: r.grants.iter().map(Into::into).collect(),
        }
    }
}

impl From<&GroupInfo> for v1::Group {
    fn from(g: &GroupInfo) -> Self {
        v1::Group {
            name: g.name.clone(),
            description: g.description.clone(),
            members: g.members.clone(),
            bindings: g.roles.iter().map(Into::into).collect(),
        }
    }
}

impl From<&v1::Group> for GroupInfo {
    fn from(g: &v1::Group) -> Self {
        GroupInfo {
            name: g.name.clone(),
            description: g.description.clone(),
            members: g.members.clone(),
            roles: g.bindings.iter().map(Into::into).collect(),
        }
    }
}

impl From<&EffectiveGrant> for v1::EffectiveGrant {
    fn from(g: &EffectiveGrant) -> Self {
        v1::EffectiveGrant {
            grant: Some((&g.grant).into()),
            role: g.role.clone(),
            index: g.index,
            scope: g.scope.clone(),
            group: g.group.clone(),
        }
    }
}

/// An effective grant from the wire; its grant is required.
pub fn effective_grant(field: &str, g: &v1::EffectiveGrant) -> FieldResult<EffectiveGrant> {
    let grant = g
        .grant
        .as_ref()
        .ok_or_else(|| missing(&format!("{field}.grant")))?;
    Ok(EffectiveGrant {
        grant: grant.into(),
        role: g.role.clone(),
        index: g.index,
        scope: g.scope.clone(),
        group: g.group.clone(),
    })
}

impl From<&AccessCheck> for v1::CheckAccessResponse {
    fn from(c: &AccessCheck) -> Self {
        v1::CheckAccessResponse {
            allowed: c.allowed,
            deciding: c.deciding.as_ref().map(Into::into),
            reason: c.reason.clone(),
        }
    }
}

/// An access check from the wire.
pub fn access_check(r: &v1::CheckAccessResponse) -> FieldResult<AccessCheck> {
    Ok(AccessCheck {
        allowed: r.allowed,
        deciding: r
            .deciding
            .as_ref()
            .map(|g| effective_grant("deciding", g))
            .transpose()?,
        reason: r.reason.clone(),
    })
}

impl From<&PrincipalDetail> for v1::GetPrincipalResponse {
    fn from(d: &PrincipalDetail) -> Self {
        v1::GetPrincipalResponse {
            principal: Some((&d.principal).into()),
            groups: d.groups.clone(),
            effective: d.effective.iter().map(Into::into).collect(),
        }
    }
}

/// A principal's detail from the wire.
pub fn principal_detail(r: &v1::GetPrincipalResponse) -> FieldResult<PrincipalDetail> {
    let p = r.principal.as_ref().ok_or_else(|| missing("principal"))?;
    Ok(PrincipalDetail {
        principal: super::principal("principal", p)?,
        groups: r.groups.clone(),
        effective: r
            .effective
            .iter()
            .enumerate()
            .map(|(i, g)| effective_grant(&format!("effective[{i}]"), g))
            .collect::<FieldResult<_>>()?,
    })
}

impl From<&PolicyDocument> for v1::PolicyDocument {
    fn from(d: &PolicyDocument) -> Self {
        v1::PolicyDocument {
            roles: d
                .roles
                .iter()
                .map(|r| v1::Role {
                    name: r.name.clone(),
                    description: r.description.clone(),
                    builtin: false,
                    grants: r.grants.iter().map(Into::into).collect(),
                })
                .collect(),
            groups: d
                .groups
                .iter()
                .map(|g| v1::Group {
                    name: g.name.clone(),
                    description: g.description.clone(),
                    members: g.members.clone(),
                    bindings: g.roles.iter().map(Into::into).collect(),
                })
                .collect(),
            principals: d
                .principals
                .iter()
                .map(|p| v1::PolicyPrincipal {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    kind: v1::PrincipalKind::from(p.kind) as i32,
                    bindings: p.roles.iter().map(Into::into).collect(),
                    revoked: p.revoked,
                })
                .collect(),
        }
    }
}

/// A policy document from the wire.
pub fn policy_document(field: &str, d: &v1::PolicyDocument) -> FieldResult<PolicyDocument> {
    Ok(PolicyDocument {
        roles: d
            .roles
            .iter()
            .map(|r| PolicyRole {
                name: r.name.clone(),
                description: r.description.clone(),
                grants: r.grants.iter().map(Into::into).collect(),
            })
            .collect(),
        groups: d
            .groups
            .iter()
            .map(|g| PolicyGroup {
                name: g.name.clone(),
                description: g.description.clone(),
                members: g.members.clone(),
                roles: g.bindings.iter().map(Into::into).collect(),
            })
            .collect(),
        principals: d
            .principals
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Ok(PolicyPrincipal {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    kind: super::principal_kind(&format!("{field}.principals[{i}].kind"), p.kind)?,
                    roles: p.bindings.iter().map(Into::into).collect(),
                    revoked: p.revoked,
                })
            })
            .collect::<FieldResult<_>>()?,
    })
}
