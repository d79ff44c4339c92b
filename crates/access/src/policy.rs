//! Principals, groups, roles and grants, and the decisions made from them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::hash::BuildHasherDefault;

use confstrata_core::Timestamp;
use serde::{Deserialize, Serialize};

use crate::action::{Action, ActionSet};
use crate::binding::{Binding, Explanation, GrantSource, Subject};
use crate::error::{Error, Result};
use crate::name::{GroupName, PrincipalId, RoleName};
use crate::pattern::{Resource, ResourcePattern};
use crate::token::{Token, TokenHash, TokenHashHasher};

/// Whether a grant allows or denies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    /// The actions are allowed on resources the pattern covers.
    Allow,
    /// The actions are refused on resources the pattern overlaps, whatever else allows them.
    Deny,
}

/// One rule of a role: allow or deny some actions on a resource pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Allow or deny.
    pub effect: Effect,
    /// The actions; `admin` stands for every action.
    pub actions: ActionSet,
    /// The resources.
    pub on: ResourcePattern,
}

impl Grant {
    /// An allow grant.
    pub fn allow(actions: &[Action], on: ResourcePattern) -> Grant {
        Grant {
            effect: Effect::Allow,
            actions: ActionSet::of(actions),
            on,
        }
    }

    /// A deny grant.
    pub fn deny(actions: &[Action], on: ResourcePattern) -> Grant {
        Grant {
            effect: Effect::Deny,
            actions: ActionSet::of(actions),
            on,
        }
    }
}

/// A named set of grants that principals and groups hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// Its name.
    pub name: RoleName,
    /// What it is for, for people.
    #[serde(default)]
    pub description: String,
    /// Its grants; order does not matter (a deny always wins).
    pub grants: Vec<Grant>,
}

/// The most grants one role may hold.
pub const MAX_GRANTS: usize = 256;
/// The most role bindings one principal or group may hold.
pub const MAX_BINDINGS: usize = 1024;
/// The longest description of a role or group, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 1024;

fn check_description(d: &str) -> Result<()> {
    if d.len() > MAX_DESCRIPTION_BYTES {
        return Err(Error::InvalidPolicy {
            reason: format!(
                "a description is {} bytes long; the limit is {MAX_DESCRIPTION_BYTES}",
                d.len()
            ),
        });
    }
    Ok(())
}

impl Role {
    /// Whether `name` is one of the [built-in roles](Role::builtin), which
    /// cannot be replaced or removed.
    pub fn is_builtin(name: &RoleName) -> bool {
        matches!(
            name.as_str(),
            "viewer"
                | "editor"
                | "publisher"
                | "secret-reader"
                | "auditor"
                | "backup-operator"
                | "admin"
                | "non-prod-editor"
        )
    }

    /// Checks that the role is well formed: at least one grant and at
    /// most [`MAX_GRANTS`], each with at least one action, and a
    /// description of at most [`MAX_DESCRIPTION_BYTES`].
    pub fn check(&self) -> Result<()> {
        let bad = |reason: String| Error::InvalidRole {
            role: self.name.to_string(),
            reason,
        };
        if self.grants.is_empty() {
            return Err(bad(
                "it has no grants; a role must allow or deny something".into()
            ));
        }
        if self.grants.len() > MAX_GRANTS {
            return Err(bad(format!(
                "it has {} grants; the limit is {MAX_GRANTS}",
                self.grants.len()
            )));
        }
        if let Some(i) = self.grants.iter().position(|g| g.actions.is_empty()) {
            return Err(bad(format!("grant {i} names no action")));
        }
        check_description(&self.description).map_err(|e| bad(e.to_string()))
    }
    /// The built-in roles, which [`Policy::with_builtin_roles`] installs:
    ///
    /// | role | grants |
    /// |---|---|
    /// | `viewer` | allow `read` on `**` |
    /// | `editor` | allow `read`, `write` on `**` |
    /// | `publisher` | allow `read`, `write`, `publish` on `**` |
    /// | `secret-reader` | allow `read`, `read-secrets` on `**` |
    /// | `auditor` | allow `audit` on `**` |
    /// | `backup-operator` | allow `read`, `read-secrets`, `backup` on `**` |
    /// | `admin` | allow `admin` (every action) on `**` |
    /// | `non-prod-editor` | allow `read`, `write` on `**`; deny `write`, `publish` on `**:env/prod/**` |
    pub fn builtin() -> Vec<Role> {
        use Action::*;
        let all = ResourcePattern::everything;
        let role = |name: &str, description: &str, grants: Vec<Grant>| Role {
            // Invariant: the built-in names are valid role names (checked by a test).
            name: RoleName::parse(name).unwrap_or_else(|_| unreachable!("built-in role name")),
            description: description.to_owned(),
            grants,
        };
        // Invariant: a literal pattern known to parse (checked by a test).
        let prod = ResourcePattern::parse("**:env/prod/**")
            .unwrap_or_else(|_| unreachable!("built-in pattern"));
        vec![
            role(
                "viewer",
                "read configuration; sealed values stay masked",
                vec![Grant::allow(&[Read], all())],
            ),
            role(
                "editor",
                "read and change configuration",
                vec![Grant::allow(&[Read, Write], all())],
            ),
            role(
                "publisher",
                "read, change and publish configuration",
                vec![Grant::allow(&[Read, Write, Publish], all())],
            ),
            role(
                "secret-reader",
                "read configuration including sealed values",
                vec![Grant::allow(&[Read, ReadSecrets], all())],
            ),
            role(
                "auditor",
                "read and verify the audit log",
                vec![Grant::allow(&[Audit], all())],
            ),
            role(
                "backup-operator",
                "take and restore backups (which hold sealed values)",
                vec![Grant::allow(&[Read, ReadSecrets, Backup], all())],
            ),
            role("admin", "everything", vec![Grant::allow(&[Admin], all())]),
            role(
                "non-prod-editor",
                "read everything, change everything but production layers",
                vec![
                    Grant::allow(&[Read, Write], all()),
                    Grant::deny(&[Write, Publish], prod),
                ],
            ),
        ]
    }
}

/// Whether a principal is a person or a program (the answer type is core's).
pub use confstrata_core::view::PrincipalKind;

/// A stored token: its hash, never the token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    /// SHA-256 of the token.
    pub hash: TokenHash,
    /// What it is for (`laptop`, `ci`), for people.
    #[serde(default)]
    pub label: String,
    /// When it was issued.
    pub created: Timestamp,
    /// Whether it was revoked.
    #[serde(default)]
    pub revoked: bool,
}

/// A user or service that authenticates with tokens and holds roles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Principal {
    id: PrincipalId,
    name: String,
    kind: PrincipalKind,
    #[serde(default)]
    roles: Vec<Binding>,
    #[serde(default)]
    tokens: Vec<TokenRecord>,
    #[serde(default)]
    revoked: bool,
}

impl Principal {
    /// The stable id.
    pub fn id(&self) -> &PrincipalId {
        &self.id
    }

    /// The display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// User or service.
    pub fn kind(&self) -> PrincipalKind {
        self.kind
    }

    /// The roles held directly (not through groups), with their scopes.
    pub fn bindings(&self) -> &[Binding] {
        &self.roles
    }

    /// The stored token hashes, revoked ones included.
    pub fn tokens(&self) -> &[TokenRecord] {
        &self.tokens
    }

    /// Whether the principal was revoked (every decision refuses it).
    pub fn is_revoked(&self) -> bool {
        self.revoked
    }
}

/// A named set of principals that holds roles on their behalf.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    name: GroupName,
    #[serde(default)]
    description: String,
    #[serde(default)]
    members: BTreeSet<PrincipalId>,
    #[serde(default)]
    roles: Vec<Binding>,
}

impl Group {
    /// The name.
    pub fn name(&self) -> &GroupName {
        &self.name
    }

    /// The members.
    pub fn members(&self) -> &BTreeSet<PrincipalId> {
        &self.members
    }

    /// What it is for, for people.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The roles every member holds, with their scopes.
    pub fn bindings(&self) -> &[Binding] {
        &self.roles
    }
}

/// Why a request was refused. For the audit log and operators; never shown
/// to the caller (the [`Refusal`]'s message is the same whatever the cause).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalCause {
    /// No allow grant covers the resource.
    NoGrant,
    /// A deny grant of this role overlaps the resource.
    DeniedBy(RoleName),
    /// The principal was revoked.
    PrincipalRevoked,
    /// The principal is not in the policy.
    UnknownPrincipal,
}

impl fmt::Display for RefusalCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefusalCause::NoGrant => f.write_str("no grant allows it"),
            RefusalCause::DeniedBy(r) => write!(f, "denied by role {r}"),
            RefusalCause::PrincipalRevoked => f.write_str("the principal is revoked"),
            RefusalCause::UnknownPrincipal => f.write_str("the principal is unknown"),
        }
    }
}

/// A refused request: who, which action, on what, and (for the audit log) why.
///
/// Its message names only what was asked for, so it reads the same whether
/// or not the resource exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Who asked.
    pub principal: PrincipalId,
    /// The missing action.
    pub action: Action,
    /// The resource it was asked on.
    pub resource: Resource,
    /// Why (not for the caller's eyes).
    pub cause: RefusalCause,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "permission denied: {} may not {} {}; ask an administrator for a role that grants `{}` on it",
            self.principal, self.action, self.resource, self.action
        )
    }
}

/// The outcome of [`Policy::decide`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Decision {
    /// The request may go ahead.
    Allow,
    /// The request is refused.
    Deny(Box<Refusal>),
}

impl Decision {
    /// Whether the request may go ahead.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }

    /// `Ok(())` when allowed, [`Error::Forbidden`] otherwise.
    pub fn into_result(self) -> Result<()> {
        match self {
            Decision::Allow => Ok(()),
            Decision::Deny(r) => Err(Error::Forbidden(r)),
        }
    }
}

/// A grant as the decision loop sees it: the actions expanded (`admin` →
/// all), the binding's scope beside the grant's pattern (or in its place
/// when the grant's pattern is `**`).
#[derive(Clone, Debug)]
struct CompiledGrant {
    deny: bool,
    actions: ActionSet,
    on: ResourcePattern,
    scope: Option<ResourcePattern>,
    source: std::sync::Arc<GrantSource>,
}

impl CompiledGrant {
    /// Whether this grant decides a request for `resource`: a deny that
    /// overlaps it, or an allow that covers it.
    fn applies(&self, resource: &Resource) -> bool {
        if self.deny {
            self.on.overlaps(resource) && self.scope.as_ref().is_none_or(|s| s.overlaps(resource))
        } else {
            self.on.covers(resource) && self.scope.as_ref().is_none_or(|s| s.covers(resource))
        }
    }
}

#[derive(Clone, Debug, Default)]
struct CompiledPrincipal {
    revoked: bool,
    /// Deny grants first, then allow grants.
    grants: Vec<CompiledGrant>,
}

impl CompiledPrincipal {
    /// The grant that decides `action` on `resource`: the first deny that
    /// applies, else the first allow that does (denies come first).
    fn deciding(&self, action: Action, resource: &Resource) -> Option<&CompiledGrant> {
        self.grants
            .iter()
            .find(|g| g.actions.contains(action) && g.applies(resource))
    }
}

#[derive(Clone, Debug)]
struct TokenEntry {
    principal: PrincipalId,
    revoked: bool,
}

type TokenMap = HashMap<TokenHash, TokenEntry, BuildHasherDefault<TokenHashHasher>>;

/// Everything access control knows: roles, principals (with their token
/// hashes), groups. It decides requests and authenticates tokens.
///
/// Every change goes through a `&mut self` method that updates the lookup
/// indexes at once, so a revocation holds for the very next
/// [`authenticate`](Policy::authenticate) or [`decide`](Policy::decide).
/// A server shares one `Policy` behind a lock (or swaps an `Arc`): there is no
/// separately built cache that could go stale.
///
/// Serialized (for a store to persist) as `{"roles": [...], "principals":
/// [...], "groups": [...]}` with token hashes only; deserializing checks that
/// every role, member and token hash referred to exists and is unique.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    roles: BTreeMap<RoleName, Role>,
    principals: BTreeMap<PrincipalId, Principal>,
    groups: BTreeMap<GroupName, Group>,
    // Indexes, derived from the above.
    tokens: TokenMap,
    compiled: HashMap<PrincipalId, CompiledPrincipal>,
}

impl Policy {
    /// An empty policy: no roles, no principals, every request refused.
    pub fn new() -> Policy {
        Policy::default()
    }

    /// A policy holding the [built-in roles](Role::builtin).
    pub fn with_builtin_roles() -> Policy {
        let mut p = Policy::new();
        for r in Role::builtin() {
            p.roles.insert(r.name.clone(), r);
        }
        p
    }

    // ---- reading ------------------------------------------------------

    /// A role by name.
    pub fn role(&self, name: &RoleName) -> Option<&Role> {
        self.roles.get(name)
    }

    /// Every role, by name.
    pub fn roles(&self) -> impl Iterator<Item = &Role> {
        self.roles.values()
    }

    /// A principal by id.
    pub fn principal(&self, id: &PrincipalId) -> Option<&Principal> {
        self.principals.get(id)
    }

    /// Every principal, by id.
    pub fn principals(&self) -> impl Iterator<Item = &Principal> {
        self.principals.values()
    }

    /// A group by name.
    pub fn group(&self, name: &GroupName) -> Option<&Group> {
        self.groups.get(name)
    }

    /// Every group, by name.
    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    // ---- authentication and decisions ----------------------------------

    /// Maps a presented token to its principal: one SHA-256, one hash-table
    /// lookup by the hash, and a constant-time comparison of the hashes.
    ///
    /// Errors: [`Error::UnknownToken`], [`Error::RevokedToken`],
    /// [`Error::RevokedPrincipal`].
    pub fn authenticate(&self, token: &Token) -> Result<&Principal> {
        self.authenticate_hash(&token.hash())
    }

    /// [`authenticate`](Policy::authenticate) by the token's hash, for a
    /// long-lived request (a watch) that re-checks its token after a policy
    /// change without keeping the token itself.
    pub fn authenticate_hash(&self, token_hash: &TokenHash) -> Result<&Principal> {
        let hash = *token_hash;
        let Some((stored, entry)) = self.tokens.get_key_value(&hash) else {
            return Err(Error::UnknownToken);
        };
        // The map found the entry by the hash's first word; `==` on
        // `TokenHash` compares all 32 bytes in constant time.
        if *stored != hash {
            return Err(Error::UnknownToken);
        }
        if entry.revoked {
            return Err(Error::RevokedToken);
        }
        match self.principals.get(&entry.principal) {
            Some(p) if p.revoked => Err(Error::RevokedPrincipal {
                principal: p.id.to_string(),
            }),
            Some(p) => Ok(p),
            // Unreachable while the indexes are in sync; refuse rather than panic.
            None => Err(Error::UnknownToken),
        }
    }

    /// Decides whether `principal` may perform `action` on `resource`.
    ///
    /// Deny by default: allowed only if an allow grant of one of its roles
    /// (held directly or through a group) has the action and *covers* the
    /// resource, and no deny grant has the action and *overlaps* it. A
    /// revoked or unknown principal is refused.
    pub fn decide(&self, principal: &PrincipalId, action: Action, resource: &Resource) -> Decision {
        let refuse = |cause| {
            Decision::Deny(Box::new(Refusal {
                principal: principal.clone(),
                action,
                resource: resource.clone(),
                cause,
            }))
        };
        let Some(compiled) = self.compiled.get(principal) else {
            return refuse(RefusalCause::UnknownPrincipal);
        };
        if compiled.revoked {
            return refuse(RefusalCause::PrincipalRevoked);
        }
        match compiled.deciding(action, resource) {
            Some(g) if g.deny => refuse(RefusalCause::DeniedBy(g.source.role.clone())),
            Some(_) => Decision::Allow,
            None => refuse(RefusalCause::NoGrant),
        }
    }

    /// [`decide`](Policy::decide), with the grant that decided: the
    /// answer of `auth can-i`.
    pub fn explain(
        &self,
        principal: &PrincipalId,
        action: Action,
        resource: &Resource,
    ) -> Explanation {
        let refused = |cause| Explanation {
            allowed: false,
            deciding: None,
            cause: Some(cause),
        };
        let Some(compiled) = self.compiled.get(principal) else {
            return refused(RefusalCause::UnknownPrincipal);
        };
        if compiled.revoked {
            return refused(RefusalCause::PrincipalRevoked);
        }
        match compiled.deciding(action, resource) {
            Some(g) => Explanation {
                allowed: !g.deny,
                deciding: Some((*g.source).clone()),
                cause: g
                    .deny
                    .then(|| RefusalCause::DeniedBy(g.source.role.clone())),
            },
            None => refused(RefusalCause::NoGrant),
        }
    }

    /// Every grant a principal holds, directly and through its groups,
    /// denies first; `None` for an unknown principal.
    pub fn effective_grants(&self, principal: &PrincipalId) -> Option<Vec<GrantSource>> {
        self.compiled
            .get(principal)
            .map(|c| c.grants.iter().map(|g| (*g.source).clone()).collect())
    }

    /// Whether `principal` holds an allow grant for `action` on *some* part
    /// of `resource` (its pattern overlaps it), and no deny grant for it
    /// covers the whole resource. A listing shows a namespace on this
    /// answer, and a request about a namespace the caller has no grant on
    /// at all is refused before anything is looked up, so that a refusal
    /// never says whether the namespace exists.
    pub fn allows_some(
        &self,
        principal: &PrincipalId,
        action: Action,
        resource: &Resource,
    ) -> bool {
        let Some(compiled) = self.compiled.get(principal) else {
            return false;
        };
        if compiled.revoked {
            return false;
        }
        let mut allowed = false;
        for g in &compiled.grants {
            if !g.actions.contains(action) {
                continue;
            }
            let (on, scope) = if g.deny {
                (
                    g.on.covers(resource),
                    g.scope.as_ref().is_none_or(|s| s.covers(resource)),
                )
            } else {
                (
                    g.on.overlaps(resource),
                    g.scope.as_ref().is_none_or(|s| s.overlaps(resource)),
                )
            };
            if on && scope {
                if g.deny {
                    return false;
                }
                allowed = true;
            }
        }
        allowed
    }

    /// Authenticates `token` and decides the request in one call: the
    /// principal if allowed, [`Error::Forbidden`] (or an authentication
    /// error) otherwise.
    pub fn authorize(
        &self,
        token: &Token,
        action: Action,
        resource: &Resource,
    ) -> Result<&Principal> {
        let p = self.authenticate(token)?;
        self.decide(&p.id, action, resource).into_result()?;
        Ok(p)
    }

    // ---- changes --------------------------------------------------------

    /// Adds a role, or replaces the custom role with the same name (every
    /// holder's decisions change at once). Built-in roles cannot be
    /// replaced, and a role must be [well formed](Role::check).
    pub fn put_role(&mut self, role: Role) -> Result<()> {
        role.check()?;
        if Role::is_builtin(&role.name) {
            return Err(Error::BuiltinRole {
                role: role.name.to_string(),
            });
        }
        self.roles.insert(role.name.clone(), role);
        self.recompile_all();
        Ok(())
    }

    /// Removes a custom role. Refused while a principal or group holds it
    /// (take it away first: a deletion never silently changes what someone
    /// may do), and for the built-in roles.
    pub fn remove_role(&mut self, name: &RoleName) -> Result<Role> {
        if Role::is_builtin(name) {
            return Err(Error::BuiltinRole {
                role: name.to_string(),
            });
        }
        let holds = |b: &[Binding]| b.iter().any(|b| &b.role == name);
        if let Some(p) = self.principals.values().find(|p| holds(&p.roles)) {
            return Err(Error::RoleInUse {
                role: name.to_string(),
                holder: format!("principal {:?}", p.id.as_str()),
            });
        }
        if let Some(g) = self.groups.values().find(|g| holds(&g.roles)) {
            return Err(Error::RoleInUse {
                role: name.to_string(),
                holder: format!("group {:?}", g.name.as_str()),
            });
        }
        self.roles
            .remove(name)
            .ok_or_else(|| not_found("role", name))
    }

    /// Adds a principal with no roles and no tokens.
    pub fn add_principal(
        &mut self,
        id: PrincipalId,
        name: impl Into<String>,
        kind: PrincipalKind,
    ) -> Result<()> {
        if self.principals.contains_key(&id) {
            return Err(Error::AlreadyExists {
                kind: "principal",
                name: id.to_string(),
            });
        }
        self.principals.insert(
            id.clone(),
            Principal {
                id: id.clone(),
                name: name.into(),
                kind,
                roles: Vec::new(),
                tokens: Vec::new(),
                revoked: false,
            },
        );
        self.recompile(&id);
        Ok(())
    }

    /// Makes a new token for `principal`, stores its hash and returns the
    /// token: the only time its text is available.
    pub fn issue_token(
        &mut self,
        principal: &PrincipalId,
        label: impl Into<String>,
        now: Timestamp,
    ) -> Result<Token> {
        let token = Token::generate()?;
        self.add_token_hash(principal, token.hash(), label, now)?;
        Ok(token)
    }

    /// Stores a token hash made elsewhere (for example by an import).
    pub fn add_token_hash(
        &mut self,
        principal: &PrincipalId,
        hash: TokenHash,
        label: impl Into<String>,
        now: Timestamp,
    ) -> Result<()> {
        if self.tokens.contains_key(&hash) {
            return Err(Error::AlreadyExists {
                kind: "token",
                name: hash.short(),
            });
        }
        let p = self
            .principals
            .get_mut(principal)
            .ok_or_else(|| not_found("principal", principal))?;
        p.tokens.push(TokenRecord {
            hash,
            label: label.into(),
            created: now,
            revoked: false,
        });
        self.tokens.insert(
            hash,
            TokenEntry {
                principal: principal.clone(),
                revoked: false,
            },
        );
        Ok(())
    }

    /// Revokes one token; the next [`authenticate`](Policy::authenticate) refuses it.
    pub fn revoke_token(&mut self, hash: &TokenHash) -> Result<()> {
        let entry = self
            .tokens
            .get_mut(hash)
            .ok_or_else(|| not_found("token", hash.short()))?;
        entry.revoked = true;
        if let Some(p) = self.principals.get_mut(&entry.principal) {
            for t in p.tokens.iter_mut().filter(|t| t.hash == *hash) {
                t.revoked = true;
            }
        }
        Ok(())
    }

    /// Revokes a principal: every later decision refuses it and every
    /// token of it fails authentication.
    pub fn revoke_principal(&mut self, id: &PrincipalId) -> Result<()> {
        let p = self
            .principals
            .get_mut(id)
            .ok_or_else(|| not_found("principal", id))?;
        p.revoked = true;
        self.recompile(id);
        Ok(())
    }

    /// Gives a principal a role over everything its grants name.
    pub fn grant_role(&mut self, id: &PrincipalId, role: &RoleName) -> Result<()> {
        self.bind(
            &Subject::Principal(id.clone()),
            Binding::everywhere(role.clone()),
        )
        .map(drop)
    }

    /// Takes a role (held over everything) away from a principal; groups
    /// may still give it.
    pub fn revoke_role(&mut self, id: &PrincipalId, role: &RoleName) -> Result<()> {
        self.unbind(
            &Subject::Principal(id.clone()),
            &Binding::everywhere(role.clone()),
        )
    }

    /// Gives a principal or group a role, over everything or within a
    /// scope. `false` when the subject held that binding already.
    pub fn bind(&mut self, subject: &Subject, binding: Binding) -> Result<bool> {
        self.require_role(&binding.role)?;
        let bindings = self.bindings_mut(subject)?;
        if bindings.contains(&binding) {
            return Ok(false);
        }
        if bindings.len() >= MAX_BINDINGS {
            return Err(Error::InvalidPolicy {
                reason: format!(
                    "{subject} holds {MAX_BINDINGS} roles already, the most one may hold"
                ),
            });
        }
        bindings.push(binding);
        self.recompile_subject(subject);
        Ok(true)
    }

    /// Takes a binding away from a principal or group. A binding that is
    /// not held is an error that lists the subject's bindings of that role,
    /// so a scope mistyped is not taken for done.
    pub fn unbind(&mut self, subject: &Subject, binding: &Binding) -> Result<()> {
        let bindings = self.bindings_mut(subject)?;
        let Some(i) = bindings.iter().position(|b| b == binding) else {
            let held: Vec<String> = bindings
                .iter()
                .filter(|b| b.role == binding.role)
                .map(ToString::to_string)
                .collect();
            return Err(Error::NotHeld {
                subject: subject.to_string(),
                binding: binding.to_string(),
                held: if held.is_empty() {
                    "it holds no binding of that role".to_owned()
                } else {
                    format!("it holds {}", held.join(", "))
                },
            });
        };
        bindings.remove(i);
        self.recompile_subject(subject);
        Ok(())
    }

    fn bindings_mut(&mut self, subject: &Subject) -> Result<&mut Vec<Binding>> {
        match subject {
            Subject::Principal(id) => self
                .principals
                .get_mut(id)
                .map(|p| &mut p.roles)
                .ok_or_else(|| not_found("principal", id)),
            Subject::Group(g) => self
                .groups
                .get_mut(g)
                .map(|g| &mut g.roles)
                .ok_or_else(|| not_found("group", g)),
        }
    }

    fn recompile_subject(&mut self, subject: &Subject) {
        match subject {
            Subject::Principal(id) => self.recompile(id),
            Subject::Group(g) => self.recompile_members(g),
        }
    }

    fn recompile_members(&mut self, group: &GroupName) {
        let members: Vec<PrincipalId> = self
            .groups
            .get(group)
            .map(|g| g.members.iter().cloned().collect())
            .unwrap_or_default();
        for m in &members {
            self.recompile(m);
        }
    }

    /// Adds an empty group.
    pub fn add_group(&mut self, name: GroupName) -> Result<()> {
        self.put_group(name, String::new(), true)
    }

    /// Adds a group with no members and no roles, or (unless
    /// `create_only`) changes an existing group's description.
    pub fn put_group(
        &mut self,
        name: GroupName,
        description: String,
        create_only: bool,
    ) -> Result<()> {
        check_description(&description)?;
        match self.groups.get_mut(&name) {
            Some(_) if create_only => Err(Error::AlreadyExists {
                kind: "group",
                name: name.to_string(),
            }),
            Some(g) => {
                g.description = description;
                Ok(())
            }
            None => {
                self.groups.insert(
                    name.clone(),
                    Group {
                        name,
                        description,
                        members: BTreeSet::new(),
                        roles: Vec::new(),
                    },
                );
                Ok(())
            }
        }
    }

    /// Removes a group: its members lose the roles they held through it
    /// (at once), and keep everything else.
    pub fn remove_group(&mut self, name: &GroupName) -> Result<Group> {
        let g = self
            .groups
            .remove(name)
            .ok_or_else(|| not_found("group", name))?;
        for m in &g.members {
            self.recompile(m);
        }
        Ok(g)
    }

    /// Adds a principal to a group.
    pub fn add_member(&mut self, group: &GroupName, id: &PrincipalId) -> Result<()> {
        if !self.principals.contains_key(id) {
            return Err(not_found("principal", id));
        }
        let g = self
            .groups
            .get_mut(group)
            .ok_or_else(|| not_found("group", group))?;
        g.members.insert(id.clone());
        self.recompile(id);
        Ok(())
    }

    /// Removes a principal from a group.
    pub fn remove_member(&mut self, group: &GroupName, id: &PrincipalId) -> Result<()> {
        let g = self
            .groups
            .get_mut(group)
            .ok_or_else(|| not_found("group", group))?;
        if !g.members.remove(id) {
            return Err(Error::NotHeld {
                subject: format!("group {group}"),
                binding: format!("member {id}"),
                held: format!("{id} is not a member"),
            });
        }
        self.recompile(id);
        Ok(())
    }

    /// Gives every member of a group a role.
    pub fn grant_group_role(&mut self, group: &GroupName, role: &RoleName) -> Result<()> {
        self.bind(
            &Subject::Group(group.clone()),
            Binding::everywhere(role.clone()),
        )
        .map(drop)
    }

    /// Takes a role (held over everything) away from a group.
    pub fn revoke_group_role(&mut self, group: &GroupName, role: &RoleName) -> Result<()> {
        self.unbind(
            &Subject::Group(group.clone()),
            &Binding::everywhere(role.clone()),
        )
    }

    fn require_role(&self, role: &RoleName) -> Result<()> {
        if self.roles.contains_key(role) {
            Ok(())
        } else {
            Err(not_found("role", role))
        }
    }

    /// Rebuilds one principal's decision index.
    fn recompile(&mut self, id: &PrincipalId) {
        let Some(p) = self.principals.get(id) else {
            self.compiled.remove(id);
            return;
        };
        let compiled = compile(p, &self.roles, &self.groups);
        self.compiled.insert(id.clone(), compiled);
    }

    /// Rebuilds every index from the stored data.
    fn recompile_all(&mut self) {
        self.compiled = self
            .principals
            .values()
            .map(|p| (p.id.clone(), compile(p, &self.roles, &self.groups)))
            .collect();
        self.tokens = TokenMap::default();
        for p in self.principals.values() {
            for t in &p.tokens {
                self.tokens.insert(
                    t.hash,
                    TokenEntry {
                        principal: p.id.clone(),
                        revoked: t.revoked,
                    },
                );
            }
        }
    }
}

fn not_found(kind: &'static str, name: impl fmt::Display) -> Error {
    Error::NotFound {
        kind,
        name: name.to_string(),
    }
}

fn compile(
    p: &Principal,
    roles: &BTreeMap<RoleName, Role>,
    groups: &BTreeMap<GroupName, Group>,
) -> CompiledPrincipal {
    let mut held: Vec<(&Binding, Option<&GroupName>)> = p.roles.iter().map(|b| (b, None)).collect();
    for g in groups.values().filter(|g| g.members.contains(&p.id)) {
        held.extend(g.roles.iter().map(|b| (b, Some(&g.name))));
    }
    let mut grants = Vec::new();
    for (binding, group) in held {
        let Some(role) = roles.get(&binding.role) else {
            continue;
        };
        for (index, g) in role.grants.iter().enumerate() {
            // A scope over a grant on everything is just a pattern.
            let (on, scope) = match &binding.on {
                Some(scope) if g.on.is_everything() => (scope.clone(), None),
                scope => (g.on.clone(), scope.clone()),
            };
            grants.push(CompiledGrant {
                deny: g.effect == Effect::Deny,
                actions: g.actions.effective(),
                on,
                scope,
                source: std::sync::Arc::new(GrantSource {
                    grant: g.clone(),
                    role: role.name.clone(),
                    index,
                    scope: binding.on.clone(),
                    group: group.cloned(),
                }),
            });
        }
    }
    // Denies first: the loop in `decide` can then stop at the first covering allow.
    grants.sort_by_key(|g| !g.deny);
    CompiledPrincipal {
        revoked: p.revoked,
        grants,
    }
}

/// The persisted form of a [`Policy`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyData {
    roles: Vec<Role>,
    principals: Vec<Principal>,
    groups: Vec<Group>,
}

#[derive(Serialize)]
struct PolicyDataRef<'a> {
    roles: Vec<&'a Role>,
    principals: Vec<&'a Principal>,
    groups: Vec<&'a Group>,
}

impl Serialize for Policy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        PolicyDataRef {
            roles: self.roles.values().collect(),
            principals: self.principals.values().collect(),
            groups: self.groups.values().collect(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Policy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let data = PolicyData::deserialize(d)?;
        Policy::try_from_data(data).map_err(serde::de::Error::custom)
    }
}

impl Policy {
    fn try_from_data(data: PolicyData) -> Result<Policy> {
        let invalid = |reason: String| Error::InvalidPolicy { reason };
        let mut p = Policy::new();
        for r in data.roles {
            if p.roles.contains_key(&r.name) {
                return Err(invalid(format!("role {} appears twice", r.name)));
            }
            p.roles.insert(r.name.clone(), r);
        }
        // The built-in roles are the code's, whatever was stored.
        for r in Role::builtin() {
            p.roles.insert(r.name.clone(), r);
        }
        let mut hashes = HashMap::new();
        for pr in data.principals {
            if p.principals.contains_key(&pr.id) {
                return Err(invalid(format!("principal {} appears twice", pr.id)));
            }
            if let Some(r) = pr.roles.iter().find(|b| !p.roles.contains_key(&b.role)) {
                return Err(invalid(format!(
                    "principal {} holds role {}, which does not exist",
                    pr.id, r.role
                )));
            }
            for t in &pr.tokens {
                if let Some(other) = hashes.insert(t.hash, pr.id.clone()) {
                    return Err(invalid(format!(
                        "token {} belongs to both {other} and {}",
                        t.hash.short(),
                        pr.id
                    )));
                }
            }
            p.principals.insert(pr.id.clone(), pr);
        }
        for g in data.groups {
            if p.groups.contains_key(&g.name) {
                return Err(invalid(format!("group {} appears twice", g.name)));
            }
            if let Some(r) = g.roles.iter().find(|b| !p.roles.contains_key(&b.role)) {
                return Err(invalid(format!(
                    "group {} holds role {}, which does not exist",
                    g.name, r.role
                )));
            }
            if let Some(m) = g.members.iter().find(|m| !p.principals.contains_key(*m)) {
                return Err(invalid(format!(
                    "group {} has member {m}, who does not exist",
                    g.name
                )));
            }
            p.groups.insert(g.name.clone(), g);
        }
        p.recompile_all();
        Ok(p)
    }
}
