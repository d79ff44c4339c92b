//! The user library: schema entries and validators shared by every
//! namespace, declared on a reserved namespace and passed to every
//! [`Compiled::compile_with`](crate::Compiled::compile_with).

use std::collections::BTreeMap;
use std::sync::Arc;

use confstrata_core::{Error, Validation, ValidatorSpec};
use serde_json::{Map, Value};

use crate::Limits;
use crate::library::{self, SCHEME};
use crate::schema::{self, Catalog};
use crate::script::{self, Sandbox};

/// What errors about the library name.
const WHAT: &str = "user library";

/// Longest entry name, in bytes.
pub const MAX_ENTRY_NAME: usize = 64;

/// Schema entries and validators shared by every namespace.
///
/// The engine keeps it, versioned, as the [`Validation`] of a reserved
/// namespace ([`Library::from_validation`] reads it back) and passes it to
/// every [`Compiled::compile_with`](crate::Compiled::compile_with).
///
/// ```
/// use confstrata_core::Validation;
/// use confstrata_rules::{Compiled, Library, Limits};
/// use serde_json::json;
///
/// let declared: Validation = serde_json::from_value(json!({
///     "schema": {"$defs": {
///         "pool-size": {"type": "integer", "minimum": 1, "x-validator": "is_even"}
///     }},
///     "validators": [{"name": "is_even", "body": "value % 2 == 0", "description": "even"}]
/// })).unwrap();
/// let library = Library::from_validation(&declared).unwrap();
/// library.check(&Limits::default()).unwrap();
///
/// let validation: Validation = serde_json::from_value(json!({
///     "schema": {"properties": {"pool": {"$ref": "confstrata:pool-size"}}},
///     "rules": [{"id": "even-port", "check": "is_even(cfg.port)"}]
/// })).unwrap();
/// let compiled =
///     Compiled::compile_with(&"web".parse().unwrap(), &validation, &library, &Limits::default())
///         .unwrap();
/// # let _ = compiled;
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Library {
    /// Extra schema library entries: `"$ref": "confstrata:<name>"` resolves
    /// to them like the built-ins.
    pub schemas: BTreeMap<String, Value>,
    /// Global validators: callable from every namespace's rules and
    /// `x-validator`s.
    pub validators: Vec<ValidatorSpec>,
}

impl Library {
    /// Builds a library from a [`Validation`] declared on the reserved
    /// library namespace: `validation.schema` must be an object whose
    /// `$defs` holds the entries (other schema keys are an error), and
    /// `validation.validators` are the global validators;
    /// `validation.rules` must be empty. No schema at all is an empty set
    /// of entries; `validation.mode` means nothing here and is ignored.
    ///
    /// This only reads the declaration: [`Library::check`] checks it.
    pub fn from_validation(v: &Validation) -> Result<Library, Error> {
        if let Some(first) = v.rules.first() {
            return Err(Error::invalid(
                WHAT,
                format!(
                    "it declares {} rule(s) (first {:?}); the user library holds only schema entries (in `schema.$defs`) and validators, rules belong to namespaces",
                    v.rules.len(),
                    first.id
                ),
            ));
        }
        let schemas = match &v.schema {
            None => BTreeMap::new(),
            Some(Value::Object(map)) => {
                let mut others = map.keys().filter(|k| *k != "$defs").peekable();
                if others.peek().is_some() {
                    let others: Vec<String> = others.map(|k| format!("{k:?}")).collect();
                    return Err(Error::invalid(
                        format!("{WHAT}: schema"),
                        format!(
                            "only `$defs` (the entries) is allowed, found {}",
                            others.join(", ")
                        ),
                    ));
                }
                match map.get("$defs") {
                    Some(Value::Object(defs)) => defs
                        .iter()
                        .map(|(name, schema)| (name.clone(), schema.clone()))
                        .collect(),
                    Some(_) => {
                        return Err(Error::invalid(
                            format!("{WHAT}: schema"),
                            "`$defs` must be an object of entry name → JSON Schema",
                        ));
                    }
                    None => {
                        return Err(Error::invalid(
                            format!("{WHAT}: schema"),
                            "it has no `$defs`; write the entries as {\"$defs\": {\"<name>\": <JSON Schema>, ...}}",
                        ));
                    }
                }
            }
            Some(_) => {
                return Err(Error::invalid(
                    format!("{WHAT}: schema"),
                    "it must be an object {\"$defs\": {\"<name>\": <JSON Schema>, ...}}",
                ));
            }
        };
        Ok(Library {
            schemas,
            validators: v.validators.clone(),
        })
    }

    /// The declaration [`Library::from_validation`] reads back: the entries
    /// under `schema.$defs` (no schema when there are none), the
    /// validators, no rules.
    pub fn to_validation(&self) -> Validation {
        let schema = (!self.schemas.is_empty()).then(|| {
            let defs: Map<String, Value> = self
                .schemas
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let mut map = Map::new();
            map.insert("$defs".into(), Value::Object(defs));
            Value::Object(map)
        });
        Validation {
            schema,
            validators: self.validators.clone(),
            ..Validation::default()
        }
    }

    /// Checks the library on its own: entry names are lower-case
    /// kebab-case identifiers (`[a-z0-9][a-z0-9-]*`, at most
    /// [`MAX_ENTRY_NAME`] bytes), no entry shadows a built-in, every entry
    /// is a JSON Schema object (its `$id`, if any, must be
    /// `confstrata:<name>`) that is valid JSON Schema and whose `$ref`s
    /// resolve (to built-ins or other entries; no loops that never reach a
    /// property or item, as for namespace schemas), every `x-validator` in
    /// an entry names a global validator, validator names are valid and
    /// unique, and every validator compiles.
    ///
    /// Errors are [`Error::Invalid`] naming the entry or validator:
    /// `invalid user library: schema entry "pool-size": ...`.
    pub fn check(&self, limits: &Limits) -> Result<(), Error> {
        self.check_entry_names(WHAT)?;
        let sandbox = Arc::new(self.sandbox(WHAT, limits)?);
        let catalog = Catalog::new(&self.schemas);
        schema::check_entries(&catalog, &sandbox).map_err(|(name, reason)| {
            Error::invalid(format!("{WHAT}: schema entry {name:?}"), reason)
        })
    }

    /// Whether it declares nothing.
    pub fn is_empty(&self) -> bool {
        self.schemas.is_empty() && self.validators.is_empty()
    }

    /// Checks the entries' names and shapes (cheap: no schema is compiled).
    pub(crate) fn check_entry_names(&self, what: &str) -> Result<(), Error> {
        for (name, entry) in &self.schemas {
            let invalid =
                |reason: String| Error::invalid(format!("{what}: schema entry {name:?}"), reason);
            if !is_entry_name(name) {
                return Err(invalid(format!(
                    "an entry name must be lower-case kebab-case (`[a-z0-9][a-z0-9-]*`, at most {MAX_ENTRY_NAME} bytes), like `pool-size`"
                )));
            }
            if library::library().contains_key(name) {
                return Err(invalid(format!(
                    "it shadows the built-in `{SCHEME}:{name}`; choose another name"
                )));
            }
            let Value::Object(map) = entry else {
                return Err(invalid(
                    "an entry must be a JSON Schema object, like {\"type\": \"integer\"}".into(),
                ));
            };
            let own_id = format!("{SCHEME}:{name}");
            if let Some(id) = map.get("$id")
                && id.as_str() != Some(own_id.as_str())
            {
                return Err(invalid(format!(
                    "its `$id` must be absent or {own_id:?} (it is set to that), not {id}"
                )));
            }
        }
        Ok(())
    }

    /// The sandbox with the global validators only.
    fn sandbox(&self, what: &str, limits: &Limits) -> Result<Sandbox, Error> {
        let engine = script::engine(limits);
        let (lib, validators) = script::compile_validators(&engine, what, &self.validators)?;
        Ok(Sandbox {
            engine,
            limits: limits.clone(),
            lib,
            validators,
        })
    }
}

/// `[a-z0-9][a-z0-9-]*`, at most [`MAX_ENTRY_NAME`] bytes.
fn is_entry_name(name: &str) -> bool {
    name.len() <= MAX_ENTRY_NAME
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}
