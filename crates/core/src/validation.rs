//! What a namespace declares about valid configuration, as data: a JSON
//! Schema, named validator functions and business rules (rhai source).
//! `confstrata-rules` compiles and runs it; here it is only declared, so
//! that it travels in the namespace's declaration and is versioned, diffed
//! and rolled back with it, by ordinary change sets.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::namespace::Context;

/// A namespace's validation chain: syntax (always), then the schema, then
/// the custom validators the schema names, then the business rules, then
/// the cross-namespace rules (rules that read another namespace with
/// `config("name")`).
///
/// Only a table is a validation chain: serde would also take a sequence
/// for a struct (`[]` as "nothing declared"), so deserializing accepts a
/// map and nothing else.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Validation {
    /// A JSON Schema (draft 2020-12) that the resolved configuration of
    /// every context must satisfy. `$ref` may name the schema library
    /// (`"$ref": "confstrata:port"`), and `"x-validator": "name"` calls a
    /// custom validator on the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// Named rhai functions: usable from rules and from the schema.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validators: Vec<ValidatorSpec>,
    /// Business rules over the resolved configuration (`cfg`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleSpec>,
    /// Whether a failing stage stops the chain.
    #[serde(default, skip_serializing_if = "ChainMode::is_default")]
    pub mode: ChainMode,
}

/// The fields of [`Validation`] as serde reads them from a map.
#[derive(Deserialize)]
#[serde(remote = "Validation", deny_unknown_fields)]
struct ValidationFields {
    #[serde(default)]
    schema: Option<Value>,
    #[serde(default)]
    validators: Vec<ValidatorSpec>,
    #[serde(default)]
    rules: Vec<RuleSpec>,
    #[serde(default)]
    mode: ChainMode,
}

impl<'de> Deserialize<'de> for Validation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Table;
        impl<'de> serde::de::Visitor<'de> for Table {
            type Value = Validation;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a validation chain: a table (schema, validators, rules, mode)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Validation, A::Error> {
                ValidationFields::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(Table)
    }
}

impl Validation {
    /// Whether nothing is declared.
    pub fn is_empty(&self) -> bool {
        self.schema.is_none() && self.validators.is_empty() && self.rules.is_empty()
    }
}

/// A named validator: a rhai function `fn name(value, params...) -> bool`
/// (or a string: the failure message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ValidatorSpec {
    /// Its name, an identifier: `is_power_of_two`.
    pub name: String,
    /// Names of its parameters after the value (`["db"]` for `valid_pool_for(value, db)`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<String>,
    /// The function body, rhai: `value > 0 && (value & (value - 1)) == 0`.
    pub body: String,
    /// What it checks, for people and for its failure message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// A business rule: a rhai expression over the resolved configuration
/// `cfg` (and `ctx`, the context) that must be true.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Its id, unique in the namespace: `pool-fits-connections`.
    pub id: String,
    /// The check, rhai: `cfg.db.pool.max <= cfg.db.max_connections / cfg.replicas`.
    pub check: String,
    /// Whether a failure blocks the commit (`error`) or only warns.
    #[serde(default)]
    pub severity: Severity,
    /// The message of a failure; `{{key.path}}` is replaced by the value at
    /// that key of the resolved configuration.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The key the finding is about (for people and tools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// How much a finding matters.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Blocks the commit.
    #[default]
    Error,
    /// Reported, never blocks.
    Warning,
}

/// Whether the chain stops at the first stage with an error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ChainMode {
    /// Stop after the first stage that found an error (later stages would
    /// mostly repeat it).
    #[default]
    StopAtFirstFailingStage,
    /// Run every stage and report everything.
    CollectAll,
}

impl ChainMode {
    fn is_default(&self) -> bool {
        *self == ChainMode::default()
    }
}

/// The stage of the chain a finding comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// The JSON Schema.
    Schema,
    /// A named validator called by `x-validator` in the schema.
    Validator,
    /// A business rule over the resolved configuration.
    Rule,
    /// A rule that reads another namespace with `config("name")`.
    Cross,
    /// The validation budget: the chain ran out of time.
    Budget,
}

impl Stage {
    /// Every stage.
    pub const ALL: [Stage; 5] = [
        Stage::Schema,
        Stage::Validator,
        Stage::Rule,
        Stage::Cross,
        Stage::Budget,
    ];

    /// The name used in text and JSON: `schema`, `validator`, `rule`, `cross`, `budget`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Schema => "schema",
            Stage::Validator => "validator",
            Stage::Rule => "rule",
            Stage::Cross => "cross",
            Stage::Budget => "budget",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Stage {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stage::ALL
            .into_iter()
            .find(|stage| stage.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "{:?} is not a validation stage (one of schema, validator, rule, cross, budget)",
                    crate::clip(s, 40)
                )
            })
    }
}

/// One thing the validation chain found, in one context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Finding {
    /// The namespace whose chain found it.
    pub namespace: String,
    /// Which stage found it.
    pub stage: Stage,
    /// What found it: the schema keyword location
    /// (`/properties/port/maximum`), the validator's name or the rule's id.
    pub rule: String,
    /// Whether it blocks (schema and validator findings and script errors
    /// are always errors; a rule's own failure has the rule's severity).
    pub severity: Severity,
    /// The context whose resolved configuration was checked.
    pub context: Context,
    /// The key it is about, dotted (`db.pool.max`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// What is wrong, for people.
    pub message: String,
}

impl fmt::Display for Finding {
    /// One line: `error [rule pool-fits] web env=prod,region=eu db.pool.max: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let ctx: Vec<String> = self
            .context
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let ctx = if ctx.is_empty() {
            "(no context)".to_owned()
        } else {
            ctx.join(",")
        };
        write!(
            f,
            "{sev} [{} {}] {} {}",
            self.stage,
            crate::clip(&self.rule, 200),
            self.namespace,
            crate::clip(&ctx, 200)
        )?;
        if let Some(k) = &self.key {
            write!(f, " {}", crate::clip(k, 200))?;
        }
        write!(f, ": {}", crate::clip(&self.message, 500))
    }
}
