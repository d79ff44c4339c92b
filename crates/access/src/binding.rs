//! Role bindings (a role held over everything or within a scope), the
//! subjects that hold them, and the explanations of decisions.

use std::fmt;

use confstrata_core::view::BindingInfo;
use serde::de;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::name::{GroupName, PrincipalId, RoleName};
use crate::pattern::ResourcePattern;
use crate::policy::{Grant, RefusalCause};

/// A role held by a principal or a group: over everything, or only within
/// a scope (`viewer` on `payments/**`), so that one role is reused per
/// namespace instead of copied.
///
/// # What a scope does
///
/// A binding's scope narrows each of its role's grants: an allow applies
/// to a request that both the grant's pattern and the scope *cover*; a
/// deny applies to a request that both the grant's pattern and the scope
/// *overlap*. So `non-prod-editor` on `payments/**` lets its holder change
/// `payments:env/staging` but not `payments:env/prod`, and gives nothing
/// outside `payments`. A scope never widens a role.
///
/// Stored and written in policy files as the role's name alone when it has
/// no scope (`"viewer"`), otherwise as a table (`{role = "viewer", on =
/// "payments/**"}`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Binding {
    /// The role.
    pub role: RoleName,
    /// Where it applies; `None`: everywhere its grants say.
    pub on: Option<ResourcePattern>,
}

impl Binding {
    /// The role over everything its grants name.
    pub fn everywhere(role: RoleName) -> Binding {
        Binding { role, on: None }
    }

    /// The role within `on`.
    pub fn within(role: RoleName, on: ResourcePattern) -> Binding {
        Binding { role, on: Some(on) }
    }
}

impl fmt::Display for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.on {
            None => write!(f, "{}", self.role),
            Some(on) => write!(f, "{} on {on}", self.role),
        }
    }
}

impl fmt::Debug for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Binding {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        BindingInfo {
            role: self.role.to_string(),
            on: self.on.as_ref().map(ToString::to_string),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Binding {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let info = BindingInfo::deserialize(d)?;
        Ok(Binding {
            role: RoleName::parse(&info.role).map_err(de::Error::custom)?,
            on: info
                .on
                .as_deref()
                .map(ResourcePattern::parse)
                .transpose()
                .map_err(de::Error::custom)?,
        })
    }
}

/// Who holds a binding: a principal, or a group (for all its members).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A principal.
    Principal(PrincipalId),
    /// A group.
    Group(GroupName),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Principal(p) => write!(f, "principal {p}"),
            Subject::Group(g) => write!(f, "group {g}"),
        }
    }
}

/// Where one of a principal's effective grants comes from: which grant of
/// which role, held through which binding, directly or through which group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantSource {
    /// The grant as the role states it.
    pub grant: Grant,
    /// Its role.
    pub role: RoleName,
    /// Its position among the role's grants (0-based).
    pub index: usize,
    /// The binding's scope, if any.
    pub scope: Option<ResourcePattern>,
    /// The group the role is held through; `None`: held directly.
    pub group: Option<GroupName>,
}

impl fmt::Display for GrantSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let effect = match self.grant.effect {
            crate::policy::Effect::Allow => "allow",
            crate::policy::Effect::Deny => "deny",
        };
        write!(
            f,
            "{effect} {} on {} (role {} grant {}",
            self.grant.actions, self.grant.on, self.role, self.index
        )?;
        if let Some(scope) = &self.scope {
            write!(f, ", bound on {scope}")?;
        }
        match &self.group {
            Some(g) => write!(f, ", through group {g})"),
            None => f.write_str(", held directly)"),
        }
    }
}

/// A decision with its reason, as `auth can-i` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// Whether the request would be allowed.
    pub allowed: bool,
    /// The grant that decided: the deny that refused or the allow that
    /// allowed; `None` when no grant applies (refused by default), or the
    /// principal is unknown or revoked.
    pub deciding: Option<GrantSource>,
    /// Why it would be refused; `None` when allowed.
    pub cause: Option<RefusalCause>,
}
