//! Principals, groups, roles and grants, and the decisions made from them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::hash::BuildHasherDefault;

use confstrata_core::Timestamp;
use serde::{Deserialize, Serialize};

use crate::action::{Action, ActionSet};
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

impl Role {
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
    roles: BTreeSet<RoleName>,
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

    /// The roles held directly (not through groups).
    pub fn roles(&self) -> &BTreeSet<RoleName> {
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
    members: BTreeSet<PrincipalId>,
    #[serde(default)]
    roles: BTreeSet<RoleName>,
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

    /// The roles every member holds.
    pub fn roles(&self) -> &BTreeSet<RoleName> {
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

/// A grant as the decision loop sees it: the actions expanded (`admin` → all).
#[derive(Clone, Debug)]
struct CompiledGrant {
    deny: bool,
    actions: ActionSet,
    on: ResourcePattern,
    role: RoleName,
}

#[derive(Clone, Debug, Default)]
struct CompiledPrincipal {
    revoked: bool,
    /// Deny grants first, then allow grants.
    grants: Vec<CompiledGrant>,
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
        for g in &compiled.grants {
            if !g.actions.contains(action) {
                continue;
            }
            if g.deny {
                if g.on.overlaps(resource) {
                    return refuse(RefusalCause::DeniedBy(g.role.clone()));
                }
            } else if g.on.covers(resource) {
                // Deny grants come first, so none applies.
                return Decision::Allow;
            }
        }
        refuse(RefusalCause::NoGrant)
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
            if g.deny {
                if g.on.covers(resource) {
                    return false;
                }
            } else if g.on.overlaps(resource) {
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

    /// Adds a role, or replaces the one with the same name.
    pub fn put_role(&mut self, role: Role) {
        self.roles.insert(role.name.clone(), role);
        self.recompile_all();
    }

    /// Removes a role that no principal or group holds.
    pub fn remove_role(&mut self, name: &RoleName) -> Result<Role> {
        if let Some(p) = self.principals.values().find(|p| p.roles.contains(name)) {
            return Err(Error::RoleInUse {
                role: name.to_string(),
                holder: format!("principal {:?}", p.id.as_str()),
            });
        }
        if let Some(g) = self.groups.values().find(|g| g.roles.contains(name)) {
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
                roles: BTreeSet::new(),
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

    /// Gives a principal a role.
    pub fn grant_role(&mut self, id: &PrincipalId, role: &RoleName) -> Result<()> {
        self.require_role(role)?;
        let p = self
            .principals
            .get_mut(id)
            .ok_or_else(|| not_found("principal", id))?;
        p.roles.insert(role.clone());
        self.recompile(id);
        Ok(())
    }

    /// Takes a role away from a principal (groups may still give it).
    pub fn revoke_role(&mut self, id: &PrincipalId, role: &RoleName) -> Result<()> {
        let p = self
            .principals
            .get_mut(id)
            .ok_or_else(|| not_found("principal", id))?;
        p.roles.remove(role);
        self.recompile(id);
        Ok(())
    }

    /// Adds an empty group.
    pub fn add_group(&mut self, name: GroupName) -> Result<()> {
        if self.groups.contains_key(&name) {
            return Err(Error::AlreadyExists {
                kind: "group",
                name: name.to_string(),
            });
        }
        self.groups.insert(
            name.clone(),
            Group {
                name,
                members: BTreeSet::new(),
                roles: BTreeSet::new(),
            },
        );
        Ok(())
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
        g.members.remove(id);
        self.recompile(id);
        Ok(())
    }

    /// Gives every member of a group a role.
    pub fn grant_group_role(&mut self, group: &GroupName, role: &RoleName) -> Result<()> {
        self.require_role(role)?;
        let g = self
            .groups
            .get_mut(group)
            .ok_or_else(|| not_found("group", group))?;
        g.roles.insert(role.clone());
        let members: Vec<_> = g.members.iter().cloned().collect();
        for m in &members {
            self.recompile(m);
        }
        Ok(())
    }

    /// Takes a role away from a group.
    pub fn revoke_group_role(&mut self, group: &GroupName, role: &RoleName) -> Result<()> {
        let g = self
            .groups
            .get_mut(group)
            .ok_or_else(|| not_found("group", group))?;
        g.roles.remove(role);
        let members: Vec<_> = g.members.iter().cloned().collect();
        for m in &members {
            self.recompile(m);
        }
        Ok(())
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
    let mut held: BTreeSet<&RoleName> = p.roles.iter().collect();
    for g in groups.values().filter(|g| g.members.contains(&p.id)) {
        held.extend(g.roles.iter());
    }
    let mut grants = Vec::new();
    for role in held.into_iter().filter_map(|r| roles.get(r)) {
        for g in &role.grants {
            grants.push(CompiledGrant {
                deny: g.effect == Effect::Deny,
                actions: g.actions.effective(),
                on: g.on.clone(),
                role: role.name.clone(),
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
        let mut hashes = HashMap::new();
        for pr in data.principals {
            if p.principals.contains_key(&pr.id) {
                return Err(invalid(format!("principal {} appears twice", pr.id)));
            }
            if let Some(r) = pr.roles.iter().find(|r| !p.roles.contains_key(*r)) {
                return Err(invalid(format!(
                    "principal {} holds role {r}, which does not exist",
                    pr.id
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
            if let Some(r) = g.roles.iter().find(|r| !p.roles.contains_key(*r)) {
                return Err(invalid(format!(
                    "group {} holds role {r}, which does not exist",
                    g.name
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
