//! The actions a grant can allow or deny.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result, shown};

/// Something a principal asks to do to a resource.
///
/// Actions are independent, except that [`Action::Admin`] in a grant stands
/// for every action (in an allow grant and in a deny grant alike).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Action {
    /// Read configuration (sealed values masked).
    Read,
    /// See the plaintext of sealed values (in addition to `read`).
    ReadSecrets,
    /// Change layers and namespaces.
    Write,
    /// Publish (promote, roll back, release) configuration.
    Publish,
    /// Manage principals, roles, keys and everything else; implies every action.
    Admin,
    /// Read and verify the audit log.
    Audit,
    /// Take and restore backups.
    Backup,
}

impl Action {
    /// Every action, in a fixed order.
    pub const ALL: [Action; 7] = [
        Action::Read,
        Action::ReadSecrets,
        Action::Write,
        Action::Publish,
        Action::Admin,
        Action::Audit,
        Action::Backup,
    ];

    /// The text form: `read`, `read-secrets`, `write`, `publish`, `admin`, `audit`, `backup`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::ReadSecrets => "read-secrets",
            Action::Write => "write",
            Action::Publish => "publish",
            Action::Admin => "admin",
            Action::Audit => "audit",
            Action::Backup => "backup",
        }
    }

    /// Parses the text form.
    pub fn parse(input: &str) -> Result<Self> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == input)
            .ok_or_else(|| Error::UnknownAction {
                input: shown(input),
            })
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

confstrata_core::text_serde!(Action, Error);

/// A set of actions; serialized as a list such as `["read", "write"]`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ActionSet(u8);

impl ActionSet {
    /// No action.
    pub const EMPTY: ActionSet = ActionSet(0);

    /// The set holding exactly `actions`.
    pub fn of(actions: &[Action]) -> ActionSet {
        actions.iter().copied().collect()
    }

    /// Whether `action` is in the set (literally; see [`ActionSet::effective`]).
    pub fn contains(self, action: Action) -> bool {
        self.0 & action.bit() != 0
    }

    /// Adds an action.
    pub fn insert(&mut self, action: Action) {
        self.0 |= action.bit();
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The actions in the set, in [`Action::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Action> {
        Action::ALL.into_iter().filter(move |a| self.contains(*a))
    }

    /// The actions the set stands for: every action if it holds `admin`,
    /// otherwise itself.
    pub fn effective(self) -> ActionSet {
        if self.contains(Action::Admin) {
            Action::ALL.into_iter().collect()
        } else {
            self
        }
    }
}

impl FromIterator<Action> for ActionSet {
    fn from_iter<I: IntoIterator<Item = Action>>(iter: I) -> Self {
        let mut set = ActionSet::EMPTY;
        for a in iter {
            set.insert(a);
        }
        set
    }
}

impl fmt::Display for ActionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(a.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Debug for ActionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for ActionSet {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for ActionSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = Vec::<Action>::deserialize(d)?;
        Ok(v.into_iter().collect())
    }
}
