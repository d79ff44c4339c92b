//! Which keys are secret by default, without a schema.

use confstrata_core::KeyPath;
use serde::{Deserialize, Serialize};

/// Key names whose values are sealed by default, matched against the last
/// segment of a key path, ignoring ASCII case.
///
/// The default matches the names `password`, `passwd`, `secret`, `token`,
/// `api_key`, `apikey`, `private_key`, and any name ending in `_password`,
/// `_secret`, `_token`, `_api_key` or `_private_key`. It deserializes from
/// server configuration (`{ names = [...], suffixes = [...] }`; a missing
/// field keeps its default).
///
/// ```
/// use confstrata_crypto::SecretRule;
/// let rule = SecretRule::default();
/// assert!(rule.matches(&"db.Password".parse().unwrap()));
/// assert!(rule.matches(&"stripe.webhook_secret".parse().unwrap()));
/// assert!(!rule.matches(&"db.password_hint".parse().unwrap()));
/// assert!(!SecretRule::none().matches(&"password".parse().unwrap()));
/// assert!(SecretRule::none().with_suffix("_dsn").matches(&"sentry_dsn".parse().unwrap()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretRule {
    /// Whole key names that are secret.
    pub names: Vec<String>,
    /// Name endings that make a key secret (`_password` matches `db_password`).
    pub suffixes: Vec<String>,
}

impl Default for SecretRule {
    fn default() -> Self {
        let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        SecretRule {
            names: strings(&[
                "password",
                "passwd",
                "secret",
                "token",
                "api_key",
                "apikey",
                "private_key",
            ]),
            suffixes: strings(&["_password", "_secret", "_token", "_api_key", "_private_key"]),
        }
    }
}

impl SecretRule {
    /// A rule that matches nothing (every secret is marked explicitly).
    pub fn none() -> Self {
        SecretRule {
            names: Vec::new(),
            suffixes: Vec::new(),
        }
    }

    /// The rule with one more secret name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.names.push(name.into());
        self
    }

    /// The rule with one more secret name ending.
    #[must_use]
    pub fn with_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.suffixes.push(suffix.into());
        self
    }

    /// Whether the value at `key` is secret under this rule.
    pub fn matches(&self, key: &KeyPath) -> bool {
        key.segments()
            .last()
            .is_some_and(|name| self.matches_name(name))
    }

    /// Whether a key named `name` (one segment) is secret under this rule.
    pub fn matches_name(&self, name: &str) -> bool {
        let name = name.as_bytes();
        self.names
            .iter()
            .any(|n| n.as_bytes().eq_ignore_ascii_case(name))
            || self.suffixes.iter().any(|s| {
                let s = s.as_bytes();
                !s.is_empty()
                    && name.len() >= s.len()
                    && name[name.len() - s.len()..].eq_ignore_ascii_case(s)
            })
    }
}
