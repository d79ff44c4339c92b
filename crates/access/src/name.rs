//! Validated names of principals, roles and groups.

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
        confstrata_core::text_newtype!($(#[$doc])* $name, $kind, check_name, Error);
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
