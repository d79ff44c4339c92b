//! The answers of Confstrata, as plain values: what the engine returns and
//! what every front end (gRPC, REST), the Rust client and the CLI pass on
//! and print. Each answer type is written once, here; a front end converts
//! it to its wire form (`confstrata_proto::convert` for gRPC) and back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    ChangeItem, ChangeSet, CommitInfo, Context, DiffEntry, Document, Explanation, Finding, KeyPath,
    LayerPath, NamespaceName, Provenance, RevisionInfo,
};

/// A resolved configuration: the answer of a resolve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResolvedView {
    /// The namespace.
    pub namespace: NamespaceName,
    /// The context it was resolved for.
    pub context: Context,
    /// The revision it was read at.
    pub revision: u64,
    /// The layers that exist for this context, most general first.
    pub layers: Vec<Provenance>,
    /// The resolved document.
    pub document: Document,
    /// Every leaf's provenance, in key order (empty unless asked for).
    #[serde(serialize_with = "serialize_provenance")]
    pub provenance: Vec<(KeyPath, Provenance)>,
    /// Whether keys the caller may not read were left out (its grants
    /// cover only some keys of the context's layers, e.g. `payments#db`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

fn serialize_provenance<S: serde::Serializer>(
    p: &[(KeyPath, Provenance)],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_map(p.iter().map(|(k, v)| (k.to_string(), v)))
}

/// Why a key has its value, with the change behind each layer: the answer
/// of an explain.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExplainView {
    /// Every layer that sets the key, most specific first.
    #[serde(flatten)]
    pub explanation: Explanation,
    /// Who changed each of those layers last, when and why, by revision
    /// (absent where retention removed the record).
    pub changes: BTreeMap<u64, RevisionInfo>,
}

/// What happened to a layer between two states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum LayerStatus {
    /// Exists only on the new side.
    Created,
    /// Exists only on the old side.
    Deleted,
    /// Exists on both sides, with different content.
    Changed,
}

/// The key-level changes of one layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LayerDiff {
    /// The namespace.
    pub namespace: NamespaceName,
    /// The layer.
    pub layer: LayerPath,
    /// Whether the layer was created, deleted, or changed.
    pub status: LayerStatus,
    /// The keys that differ.
    pub changes: Vec<DiffEntry>,
}

/// What a change set would do: the answer of a dry run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DryRun {
    /// The revision the change set was checked against.
    pub revision: u64,
    /// The layers it would change, with their key-level diffs.
    pub layers: Vec<LayerDiff>,
    /// The namespaces whose declaration it would create, change or delete.
    pub namespaces: Vec<NamespaceName>,
    /// What the validation chains of the affected namespaces and contexts
    /// found (a commit would be refused if any is an error).
    pub findings: Vec<Finding>,
}

/// The answer of a rollback.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rollback {
    /// The commit; `None` for a dry run or when nothing differs.
    pub commit: Option<CommitInfo>,
    /// The change set that was (or, for a dry run, would be) committed,
    /// with sealed values masked; `None` when the target already matches.
    pub change_set: Option<ChangeSet>,
}

/// Whether a principal is a person or a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum PrincipalKind {
    /// A person.
    User,
    /// A program (a service reading its configuration, a CI job).
    Service,
}

/// One data key, as `keys list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyInfo {
    /// `namespace#n`.
    pub id: String,
    /// Whether new values of its namespace are sealed with it.
    pub current: bool,
}

/// What a master-key rotation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MasterKeyRotation {
    /// The id of the master key rotated away.
    pub from: String,
    /// The id of the new master key.
    pub to: String,
    /// How many data keys were wrapped again.
    pub data_keys: usize,
    /// How many earlier audit keys the store keeps (for verifying the
    /// records they keyed).
    pub audit_keys_kept: usize,
    /// The id of the audit key new records are keyed by.
    pub audit_key: String,
}

/// A principal as listed (never a token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PrincipalInfo {
    /// Its id.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// A person or a program.
    pub kind: PrincipalKind,
    /// The roles it holds directly (not through groups), with their scopes.
    pub roles: Vec<BindingInfo>,
    /// Its tokens (hash prefixes, never the tokens).
    pub tokens: Vec<TokenInfo>,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// A role held by a principal or group, over everything or within a
/// pattern.
///
/// Written as the role's name alone when it has no scope (`"viewer"`),
/// otherwise as a table (`{role = "viewer", on = "payments/**"}`); read
/// in either form, and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BindingInfo {
    /// The role.
    pub role: String,
    /// The scope: a resource pattern such as `payments/**`; `None`: the
    /// role applies wherever its grants say.
    pub on: Option<String>,
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for BindingInfo {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("a role bound everywhere its grants say")),
            )
            .item(
                ObjectBuilder::new()
                    .property("role", ObjectBuilder::new().schema_type(Type::String))
                    .property("on", ObjectBuilder::new().schema_type(Type::String))
                    .required("role")
                    .required("on")
                    .description(Some(
                        "a role bound on a resource pattern such as `payments/**`",
                    )),
            )
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for BindingInfo {}

impl Serialize for BindingInfo {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Scoped<'a> {
            role: &'a str,
            on: &'a str,
        }
        match &self.on {
            None => s.serialize_str(&self.role),
            Some(on) => Scoped {
                role: &self.role,
                on,
            }
            .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for BindingInfo {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{self, MapAccess, Visitor};
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BindingInfo;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a role name, or a table {role = \"...\", on = \"pattern\"}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<BindingInfo, E> {
                Ok(BindingInfo {
                    role: v.to_owned(),
                    on: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BindingInfo, A::Error> {
                let mut role: Option<String> = None;
                let mut on: Option<String> = None;
                while let Some(k) = map.next_key::<String>()? {
                    match k.as_str() {
                        "role" if role.is_none() => role = Some(map.next_value()?),
                        "on" if on.is_none() => on = Some(map.next_value()?),
                        "role" | "on" => return Err(de::Error::duplicate_field("role or on")),
                        other => return Err(de::Error::unknown_field(other, &["role", "on"])),
                    }
                }
                let role = role.ok_or_else(|| de::Error::missing_field("role"))?;
                Ok(BindingInfo { role, on })
            }
        }
        d.deserialize_any(V)
    }
}

impl std::fmt::Display for BindingInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.on {
            None => f.write_str(&self.role),
            Some(on) => write!(f, "{} on {on}", self.role),
        }
    }
}

/// One grant of a role: allow or deny actions on a resource pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GrantInfo {
    /// `allow` or `deny`.
    pub effect: String,
    /// The actions: `read`, `read-secrets`, `write`, `publish`, `admin`,
    /// `audit`, `backup`.
    pub actions: Vec<String>,
    /// The resource pattern, e.g. `payments:env/prod#db.*`.
    pub on: String,
}

impl std::fmt::Display for GrantInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} on {}",
            self.effect,
            self.actions.join(","),
            self.on
        )
    }
}

/// A role as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoleInfo {
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Whether it is built in (fixed: cannot be changed or removed).
    pub builtin: bool,
    /// Its grants.
    pub grants: Vec<GrantInfo>,
}

/// A group as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupInfo {
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Its members' principal ids.
    pub members: Vec<String>,
    /// The roles its members hold through it.
    pub roles: Vec<BindingInfo>,
}

/// Who holds a role binding: a principal or a group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Holder {
    /// A principal, by id.
    Principal(String),
    /// A group, by name.
    Group(String),
}

/// One grant a principal holds, and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EffectiveGrant {
    /// The grant as its role states it.
    pub grant: GrantInfo,
    /// The role.
    pub role: String,
    /// The grant's position among the role's grants (0-based).
    pub index: u32,
    /// The binding's scope, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The group the role is held through; `None`: held directly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl std::fmt::Display for EffectiveGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (role {} grant {}", self.grant, self.role, self.index)?;
        if let Some(scope) = &self.scope {
            write!(f, ", bound on {scope}")?;
        }
        match &self.group {
            Some(g) => write!(f, ", through group {g})"),
            None => f.write_str(", held directly)"),
        }
    }
}

/// The answer of `auth can-i`: whether a principal may do an action on a
/// resource, and which grant decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessCheck {
    /// Whether it would be allowed.
    pub allowed: bool,
    /// The grant that decided: the deny that refuses or the allow that
    /// allows; `None` when refused by default or the principal is unknown
    /// or revoked.
    pub deciding: Option<EffectiveGrant>,
    /// The decision in words.
    pub reason: String,
}

/// A principal with everything it may do: its groups and every grant it
/// holds, directly and through them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PrincipalDetail {
    /// The principal.
    pub principal: PrincipalInfo,
    /// The groups it is a member of.
    pub groups: Vec<String>,
    /// Its effective grants, denies first.
    pub effective: Vec<EffectiveGrant>,
}

/// The access policy as a file for review in git (`confstrata policy
/// export`, `policy apply -f`): custom roles, groups and principals with
/// their roles. Never tokens (they stay as they are), never the built-in
/// roles (fixed). Unknown fields are refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// Custom roles.
    #[serde(default)]
    pub roles: Vec<PolicyRole>,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<PolicyGroup>,
    /// Principals (every one the server has: applying a file that leaves
    /// one out is refused, so nobody disappears by accident).
    #[serde(default)]
    pub principals: Vec<PolicyPrincipal>,
}

/// A custom role in a [`PolicyDocument`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyRole {
    /// Its name.
    pub name: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Its grants.
    pub grants: Vec<GrantInfo>,
}

/// A group in a [`PolicyDocument`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyGroup {
    /// Its name.
    pub name: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Its members.
    #[serde(default)]
    pub members: Vec<String>,
    /// The roles its members hold through it.
    #[serde(default)]
    pub roles: Vec<BindingInfo>,
}

/// A principal in a [`PolicyDocument`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyPrincipal {
    /// Its id.
    pub id: String,
    /// Its display name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// A person or a program.
    #[serde(default = "user")]
    pub kind: PrincipalKind,
    /// The roles it holds directly.
    #[serde(default)]
    pub roles: Vec<BindingInfo>,
    /// Whether it is revoked (a revoked principal cannot be restored).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoked: bool,
}

fn user() -> PrincipalKind {
    PrincipalKind::User
}

/// What applying a [`PolicyDocument`] changes (or, for a dry run, would).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyApply {
    /// One line per change: `+ role db-reader: ...`, `- group old`,
    /// `~ principal ed: roles viewer -> viewer, editor on payments/**`.
    pub changes: Vec<String>,
    /// Whether the changes were applied (false for a dry run, and when
    /// there was nothing to change).
    pub applied: bool,
}

/// A token as listed: a hash prefix, never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInfo {
    /// The first characters of its SHA-256, to name it in `token revoke`.
    pub hash: String,
    /// What it is for.
    pub label: String,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// What `audit verify` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditVerification {
    /// How many records were checked.
    pub records: u64,
    /// The last record's seq (0 for an empty log).
    pub last_seq: u64,
}

/// The state of a store: the answer of `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServerStatus {
    /// The newest committed revision.
    pub revision: u64,
    /// The oldest revision that can still be read.
    pub oldest_revision: u64,
    /// How many namespaces exist.
    pub namespaces: u64,
    /// The server's version.
    pub version: String,
    /// Bytes the store takes on disk, for a store on disk.
    pub store_bytes: Option<u64>,
    /// Of those, bytes free for reuse inside the database.
    pub store_free_bytes: Option<u64>,
    /// Where the server takes its backups (empty: it takes none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub backup_target: String,
    /// The newest complete backup of this store there, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_backup: Option<BackupStatus>,
}

/// The newest backup, as `status` shows it: how old the last point a
/// restore can reach is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupStatus {
    /// Its id.
    pub id: String,
    /// The revision it holds.
    pub revision: u64,
    /// When it was taken.
    pub created: crate::Timestamp,
    /// Its age when the status was read, in seconds.
    pub age_seconds: u64,
}

/// One event of a watch, as a server sends it.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// A revision that changed the watched namespace.
    Change {
        /// The revision, who made it and why.
        info: RevisionInfo,
        /// What it wrote in the watched namespace (what the watcher may
        /// read of it).
        items: Vec<ChangeItem>,
        /// For a context watch: the resolved document at this revision, as
        /// the watcher may see it, as compact JSON (made once for every
        /// watcher of the same namespace, context and principal).
        resolved_json: Option<String>,
    },
    /// Sent once per stream, after the backlog: every retained revision up
    /// to `revision` has been reported.
    CaughtUp {
        /// The store's revision when the stream started.
        revision: u64,
    },
}
