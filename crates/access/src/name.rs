//! Validated names of principals, roles and groups.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result, shown};

/// Longest principal id, role name or group name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

fn check_name(kind: &'static str, input: &str) -> Result<()> {
    let err = |reason: String| Error::InvalidName {
        kind,
        input: shown(input),
        reason,
    };
    if input.is_empty() {
        return Err(err("it is empty".into()));
    }
    if input.len() > MAX_NAME_BYTES {
        return Err(err(format!(
            "it is {} bytes long; the limit is {MAX_NAME_BYTES}",
            input.len()
        )));
    }
    if !input.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(err("it must start with a letter or a digit".into()));
    }
    if let Some((i, c)) = input
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | ':')))
    {
        return Err(err(format!(
            "it contains {c:?} at byte {i}; only letters, digits, '-', '_', '.', '@' and ':' are allowed"
        )));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Parses and validates the text form.
            pub fn parse(input: &str) -> Result<Self> {
                check_name($kind, input)?;
                Ok($name(input.to_owned()))
            }

            /// The text form.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                $name::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// The stable id of a principal: `alice`, `svc.payments`, `os:deploy`.
    /// 1 to 128 bytes of letters, digits, `-`, `_`, `.`, `@` and `:`,
    /// starting with a letter or digit.
    PrincipalId,
    "principal id"
);

name_type!(
    /// The name of a role: `viewer`, `payments-editor`. Same grammar as [`PrincipalId`].
    RoleName,
    "role name"
);

name_type!(
    /// The name of a group of principals: `sre`, `team.payments`. Same grammar as [`PrincipalId`].
    GroupName,
    "group name"
);
