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
    AccessCheck, BindingInfo, EffectiveGrant, GrantInfo, GroupInfo, Holder, PolicyApply,
    PolicyDocument, PolicyGroup, PolicyPrincipal, PolicyRole, PrincipalDetail, RoleInfo,
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

/// The policy file of a policy: custom roles, groups, principals.
fn document(p: &confstrata_access::Policy) -> PolicyDocument {
    PolicyDocument {
        roles: p
            .roles()
            .filter(|r| !Role::is_builtin(&r.name))
            .map(|r| PolicyRole {
                name: r.name.to_string(),
                description: r.description.clone(),
                grants: r.grants.iter().map(grant_info).collect(),
            })
            .collect(),
        groups: p
            .groups()
            .map(|g| PolicyGroup {
                name: g.name().to_string(),
                description: g.description().to_owned(),
                members: g.members().iter().map(ToString::to_string).collect(),
                roles: g.bindings().iter().map(binding_info).collect(),
            })
            .collect(),
        principals: p
            .principals()
            .map(|pr| PolicyPrincipal {
                id: pr.id().to_string(),
                name: pr.name().to_owned(),
                kind: pr.kind(),
                roles: pr.bindings().iter().map(binding_info).collect(),
                revoked: pr.is_revoked(),
            })
            .collect(),
    }
}

/// Whether some principal that is not revoked may administer everything.
pub(crate) fn administered(p: &confstrata_access::Policy) -> bool {
    p.principals().any(|pr| {
        p.decide(pr.id(), Action::Admin, &Resource::everything())
            .is_allowed()
    })
}

/// The policy `doc` describes, keeping `old`'s tokens, and the changes
/// from `old` to it. Every error names its place in the file
/// (`principals[2].roles[0].on`).
fn rebuild(
    old: &confstrata_access::Policy,
    doc: &PolicyDocument,
) -> Result<(confstrata_access::Policy, Vec<String>)> {
    use std::collections::BTreeSet;
    let mut new = confstrata_access::Policy::with_builtin_roles();
    let invalid = |what: String, e: &dyn std::fmt::Display| Error::invalid(what, e.to_string());
    for (i, r) in doc.roles.iter().enumerate() {
        let name = role_name(&format!("roles[{i}].name"), &r.name)?;
        if new.role(&name).is_some() {
            return Err(Error::invalid(
                format!("roles[{i}].name"),
                if Role::is_builtin(&name) {
                    format!("role {name:?} is built in; leave the built-in roles out of the file")
                } else {
                    format!("role {name:?} appears twice")
                },
            ));
        }
        let grants = grants_from_info(&r.grants).map_err(|e| match e {
            Error::Invalid { what, reason } => Error::invalid(format!("roles[{i}].{what}"), reason),
            e => e,
        })?;
        new.put_role(Role {
            name,
            description: r.description.clone(),
            grants,
        })
        .map_err(|e| invalid(format!("roles[{i}]"), &e))?;
    }
    let bind = |new: &mut confstrata_access::Policy,
                subject: &Subject,
                place: &str,
                roles: &[BindingInfo]|
     -> Result<()> {
        for (j, b) in roles.iter().enumerate() {
            let at = format!("{place}.roles[{j}]");
            let binding = binding(&b.role, b.on.as_deref()).map_err(|e| match e {
                Error::Invalid { what, reason } => Error::invalid(format!("{at}.{what}"), reason),
                e => e,
            })?;
            new.bind(subject, binding)
                .map_err(|e| invalid(at.clone(), &e))?;
        }
        Ok(())
    };
    let mut listed = BTreeSet::new();
    for (i, p) in doc.principals.iter().enumerate() {
        let place = format!("principals[{i}]");
        let id = principal_id(&format!("{place}.id"), &p.id)?;
        if !listed.insert(id.clone()) {
            return Err(Error::invalid(
                format!("{place}.id"),
                format!("principal {id:?} appears twice"),
            ));
        }
        new.add_principal(id.clone(), p.name.clone(), p.kind)
            .map_err(|e| invalid(place.clone(), &e))?;
        if let Some(before) = old.principal(&id) {
            if before.is_revoked() && !p.revoked {
                return Err(Error::invalid(
                    format!("{place}.revoked"),
                    format!(
                        "principal {id:?} is revoked and cannot be restored; add a new principal instead"
                    ),
                ));
            }
            for t in before.tokens() {
                new.add_token_hash(&id, t.hash, t.label.clone(), t.created)
                    .map_err(|e| invalid(place.clone(), &e))?;
                if t.revoked {
                    new.revoke_token(&t.hash)
                        .map_err(|e| invalid(place.clone(), &e))?;
                }
            }
        }
        bind(&mut new, &Subject::Principal(id.clone()), &place, &p.roles)?;
        if p.revoked {
            new.revoke_principal(&id)
                .map_err(|e| invalid(place.clone(), &e))?;
        }
    }
    if let Some(missing) = old.principals().find(|p| !listed.contains(p.id())) {
        return Err(Error::invalid(
            "principals",
            format!(
                "principal {:?} is not in the file; a policy file lists every principal (revoke one to take it out of service: `principal revoke`, or `revoked = true`)",
                missing.id().as_str()
            ),
        ));
    }
    for (i, g) in doc.groups.iter().enumerate() {
        let place = format!("groups[{i}]");
        let name = group_name(&format!("{place}.name"), &g.name)?;
        new.put_group(name.clone(), g.description.clone(), true)
            .map_err(|e| invalid(place.clone(), &e))?;
        for (j, m) in g.members.iter().enumerate() {
            let id = principal_id(&format!("{place}.members[{j}]"), m)?;
            new.add_member(&name, &id)
                .map_err(|e| invalid(format!("{place}.members[{j}]"), &e))?;
        }
        bind(&mut new, &Subject::Group(name), &place, &g.roles)?;
    }
    if administered(old) && !administered(&new) {
        return Err(Error::invalid(
            "principals",
            "after this change no principal could administer the server (`admin` on **); keep at least one",
        ));
    }
    let changes = changes(&document(old), &document(&new));
    Ok((new, changes))
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "(none)".to_owned();
    }
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `+x -y` between two lists.
fn delta<T: std::fmt::Display + PartialEq>(old: &[T], new: &[T]) -> String {
    let mut parts = Vec::new();
    parts.extend(
        new.iter()
            .filter(|x| !old.contains(x))
            .map(|x| format!("+{x}")),
    );
    parts.extend(
        old.iter()
            .filter(|x| !new.contains(x))
            .map(|x| format!("-{x}")),
    );
    parts.join(" ")
}

/// One line per change from `old` to `new`.
fn changes(old: &PolicyDocument, new: &PolicyDocument) -> Vec<String> {
    let mut out = Vec::new();
    for r in &old.roles {
        if !new.roles.iter().any(|n| n.name == r.name) {
            out.push(format!("- role {}", r.name));
        }
    }
    for r in &new.roles {
        match old.roles.iter().find(|o| o.name == r.name) {
            None => out.push(format!("+ role {}: {}", r.name, join(&r.grants))),
            Some(o) if o != r => {
                let mut what = Vec::new();
                if o.grants != r.grants {
                    what.push(format!("grants {}", delta(&o.grants, &r.grants)));
                }
                if o.description != r.description {
                    what.push(format!("description {:?}", r.description));
                }
                out.push(format!("~ role {}: {}", r.name, what.join("; ")));
            }
            Some(_) => {}
        }
    }
    for g in &old.groups {
        if !new.groups.iter().any(|n| n.name == g.name) {
            out.push(format!("- group {}", g.name));
        }
    }
    for g in &new.groups {
        match old.groups.iter().find(|o| o.name == g.name) {
            None => out.push(format!(
                "+ group {}: members {}; roles {}",
                g.name,
                join(&g.members),
                join(&g.roles)
            )),
            Some(o) if o != g => {
                let mut what = Vec::new();
                if o.members != g.members {
                    what.push(format!("members {}", delta(&o.members, &g.members)));
                }
                if o.roles != g.roles {
                    what.push(format!("roles {}", delta(&o.roles, &g.roles)));
                }
                if o.description != g.description {
                    what.push(format!("description {:?}", g.description));
                }
                out.push(format!("~ group {}: {}", g.name, what.join("; ")));
            }
            Some(_) => {}
        }
    }
    for p in &new.principals {
        let kind = format!("{:?}", p.kind).to_lowercase();
        match old.principals.iter().find(|o| o.id == p.id) {
            None => out.push(format!(
                "+ principal {} ({kind}): roles {}",
                p.id,
                join(&p.roles)
            )),
            Some(o) if o != p => {
                let mut what = Vec::new();
                if o.roles != p.roles {
                    what.push(format!("roles {}", delta(&o.roles, &p.roles)));
                }
                if o.name != p.name {
                    what.push(format!("name {:?}", p.name));
                }
                if o.kind != p.kind {
                    what.push(format!("kind {kind}"));
                }
                if p.revoked && !o.revoked {
                    what.push("revoked".to_owned());
                }
                out.push(format!("~ principal {}: {}", p.id, what.join("; ")));
            }
            Some(_) => {}
        }
    }
    out
}

impl Engine {
    /// The access policy as a file for review (`admin` or `audit`).
    pub fn export_policy(&self, caller: &Caller) -> Result<PolicyDocument> {
        self.require_admin_or_audit(caller)?;
        Ok(document(&self.security.policy()))
    }

    /// Makes the policy what `doc` says (tokens kept), as one audited
    /// change; or, with `dry_run`, only says what would change. Refused,
    /// naming the place in the file, for anything malformed, a principal
    /// left out, a revoked principal restored, or a change after which no
    /// principal could administer the server.
    pub fn apply_policy(
        &self,
        caller: &Caller,
        doc: &PolicyDocument,
        dry_run: bool,
    ) -> Result<PolicyApply> {
        self.gate(caller)
            .require(Action::Admin, Resource::everything())?;
        let (_, changes) = rebuild(&self.security.policy(), doc)?;
        if dry_run || changes.is_empty() {
            return Ok(PolicyApply {
                changes,
                applied: false,
            });
        }
        let subject = format!("{} changes", changes.len());
        let changes = self.change_policy_with(caller, "policy apply", &subject, |p| {
            // Again under the policy lock: the policy may have moved on.
            let (new, changes) = rebuild(p, doc)?;
            *p = new;
            Ok(changes)
        })?;
        Ok(PolicyApply {
            applied: !changes.is_empty(),
            changes,
        })
    }
}
