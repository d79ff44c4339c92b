//! Confstrata's validation chain: compile a namespace's [`Validation`]
//! once, then check the resolved configuration of any number of contexts
//! with it.
//!
//! The chain runs four stages, in order:
//!
//! 1. **Schema** — a JSON Schema (draft 2020-12). `$ref` may name the
//!    built-in [`library`] (`{"$ref": "confstrata:port"}`) or point inside
//!    the schema (`#/$defs/...`); any other reference (http, file, relative)
//!    is refused when compiling, so validation never touches the network or
//!    the disk. `format` is asserted, not only annotated.
//! 2. **Validator** — `"x-validator": "name"` (or
//!    `{"name": "valid_pool_for", "args": ["postgres"]}`) in the schema calls
//!    a named validator, a rhai function `fn name(value, params...)`, on the
//!    value at that place. It is a jsonschema custom keyword, so it goes
//!    wherever the schema goes (properties, items, `$defs` through `$ref`)
//!    and runs in the same pass as the schema; its failures are reported as
//!    this stage (inside `anyOf`, `oneOf` or `not` it is part of that
//!    keyword's verdict, which the schema stage reports). A validator
//!    returns `true` (ok), `false` (fails with its description) or a string
//!    (fails with that message).
//! 3. **Rule** — each rule's check is rhai over `cfg` (the resolved
//!    configuration) and `ctx` (the context), and must return `true`; `false`
//!    is a finding with the rule's severity and message, where `{{a.b}}` is
//!    replaced by the value at key `a.b`. A rule may also return a string: it
//!    fails with that message (so a rule can be just `is_pool_ok(cfg.db)`).
//!    Validators are callable from rules by name.
//! 4. **Cross** — rules that call `config("other")` read another namespace's
//!    resolved configuration for the same context, through [`Lookup`]. The
//!    name must be a string literal, so [`Compiled::references`] knows at
//!    compile time every namespace the chain reads.
//!
//! With [`ChainMode::StopAtFirstFailingStage`](confstrata_core::ChainMode),
//! a stage with at least one *error* finding stops the chain; warnings never
//! stop anything. A script error (a throw, a type error, a missing key, a
//! limit) is an error finding naming the rule, never a panic.
//!
//! # Sandbox
//!
//! rhai runs with only pure packages (arithmetic, logic, strings, arrays,
//! maps, math, ranges): no `eval`, no `import`, no file, network, clock or
//! `sleep`; `print` and `debug` go nowhere. Every script run is bounded by
//! [`Limits`]: operations, call depth, expression depth, string, array and
//! map sizes, and wall time. Maps fail on a missing key (`cfg.db.pool` is an
//! error when `db` has no `pool`; test with `"pool" in cfg.db`).
//!
//! # User library
//!
//! Users add their own schema entries and global validators in a
//! [`Library`] (declared on a reserved namespace, read with
//! [`Library::from_validation`], checked with [`Library::check`]) that the
//! engine passes to every [`Compiled::compile_with`]: its entries resolve as
//! `confstrata:<name>` like the built-ins (and may refer to built-ins and
//! to each other), and its validators are callable from every namespace's
//! rules and `x-validator`s, and from its own entries' `x-validator`s.
//!
//! This crate is the only one that knows rhai or jsonschema: none of their
//! types appear in its API.
//!
//! # Example
//!
//! ```
//! use confstrata_core::{Context, Document, NamespaceName, Validation};
//! use confstrata_rules::{Compiled, Limits, Lookup, Stage};
//! use serde_json::json;
//!
//! let validation: Validation = serde_json::from_value(json!({
//!     "schema": {
//!         "type": "object",
//!         "properties": {
//!             "port": {"$ref": "confstrata:port"},
//!             "workers": {"type": "integer", "x-validator": "is_power_of_two"}
//!         },
//!         "required": ["port"]
//!     },
//!     "validators": [{
//!         "name": "is_power_of_two",
//!         "body": "value > 0 && (value & (value - 1)) == 0",
//!         "description": "a power of two"
//!     }],
//!     "rules": [{
//!         "id": "workers-fit",
//!         "check": "cfg.workers <= 4 * cfg.cpus",
//!         "severity": "warning",
//!         "message": "{{workers}} workers for {{cpus}} CPUs",
//!         "key": "workers"
//!     }],
//!     "mode": "collect-all"
//! })).unwrap();
//! let ns: NamespaceName = "web".parse().unwrap();
//! let compiled = Compiled::compile(&ns, &validation, &Limits::default()).unwrap();
//!
//! /// This example reads no other namespace.
//! struct NoOther;
//! impl Lookup for NoOther {
//!     fn resolved(&self, _: &NamespaceName, _: &Context) -> Result<Option<Document>, String> {
//!         Ok(None)
//!     }
//! }
//!
//! let ctx: Context = [("env".to_owned(), "prod".to_owned())].into();
//! let doc = |v: serde_json::Value| v.as_object().unwrap().clone();
//!
//! let good = doc(json!({"port": 8080, "workers": 8, "cpus": 4}));
//! assert!(compiled.check(&ctx, &good, &NoOther).is_empty());
//!
//! let bad = doc(json!({"port": 70000, "workers": 24, "cpus": 4}));
//! let findings = compiled.check(&ctx, &bad, &NoOther);
//! let lines: Vec<String> = findings.iter().map(ToString::to_string).collect();
//! assert_eq!(lines, [
//!     "error [schema /properties/port/$ref/maximum] web env=prod port: 70000 is greater than the maximum of 65535",
//!     "error [validator is_power_of_two] web env=prod workers: failed is_power_of_two: a power of two",
//!     "warning [rule workers-fit] web env=prod workers: 24 workers for 4 CPUs",
//! ]);
//! assert_eq!(findings[1].stage, Stage::Validator);
//! ```

mod generate;
mod library;
mod schema;
mod script;
mod shared;
mod stack;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use confstrata_core::{
    ChainMode, Context, Document, Error, KeyPath, NamespaceName, Severity, Validation,
};
use rhai::{AST, Dynamic};
use serde_json::Value;

pub use confstrata_core::validation::{Finding, Stage};
pub use generate::Generator;
pub use library::library;
pub use shared::{Library, MAX_ENTRY_NAME};
pub use stack::{CHECK_STACK_BYTES, assume_check_stack, on_check_stack};

use schema::{Catalog, SchemaStage};
use script::{Failure, Origin, Sandbox};

/// Bounds on every script run (one rule check, or one validator call).
///
/// A script that crosses one is stopped and reported as an error finding;
/// the same [`Compiled`] keeps working for the next run. For
/// `max_operations`, `max_expr_depth` and the three sizes, 0 means "no
/// limit" (rhai's convention); `max_call_depth` 0 allows a check no
/// function calls; `max_duration` is always enforced (`Duration::ZERO`
/// stops every script at its first look at the clock). Sizes are checked
/// as rhai builds values (a map grown by `m[k] = v` is measured at its next
/// use), and the operation limit bounds any loop meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most operations (roughly: expressions evaluated) per run.
    pub max_operations: u64,
    /// Deepest nesting of function calls from a check: a rule calling a
    /// validator is depth 1, that validator calling another is depth 2.
    pub max_call_depth: usize,
    /// Deepest nesting of expressions, checked when compiling.
    pub max_expr_depth: usize,
    /// Longest string a script may build, in bytes.
    pub max_string_size: usize,
    /// Most items in an array a script may build.
    pub max_array_size: usize,
    /// Most entries in a map a script may build.
    pub max_map_size: usize,
    /// Longest wall time of one run.
    pub max_duration: Duration,
}

impl Default for Limits {
    /// 100 000 operations, depth 32, 64 KiB strings, 10 000 items or
    /// entries, 100 ms.
    fn default() -> Self {
        Limits {
            max_operations: 100_000,
            max_call_depth: 32,
            max_expr_depth: 32,
            max_string_size: 64 * 1024,
            max_array_size: 10_000,
            max_map_size: 10_000,
            max_duration: Duration::from_millis(100),
        }
    }
}

/// What [`Compiled::check_until`] found, and where the time went.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Checked {
    /// Every finding, as [`Compiled::check`] returns them.
    pub findings: Vec<Finding>,
    /// The stage or rule that took longest (`the schema`, `rule "id"`),
    /// and how long.
    pub slowest: Option<(String, std::time::Duration)>,
}

/// Reads other namespaces for cross-namespace rules. `Sync`: a check may
/// run on a thread of its own (see [`on_check_stack`]).
pub trait Lookup: Sync {
    /// The resolved configuration of `namespace` for `context`, or `None`
    /// when there is no such namespace. An `Err` is reported to the rule
    /// that asked, as a script error.
    fn resolved(
        &self,
        namespace: &NamespaceName,
        context: &Context,
    ) -> Result<Option<Document>, String>;
}

/// A rule, compiled.
struct Rule {
    id: String,
    source: String,
    severity: Severity,
    message: String,
    key: Option<String>,
    ast: AST,
    stage: Stage,
}

struct Inner {
    /// The namespace whose chain this is, named by every finding.
    namespace: String,
    mode: ChainMode,
    sandbox: Arc<Sandbox>,
    schema: Option<SchemaStage>,
    rules: Vec<Rule>,
    references: BTreeSet<NamespaceName>,
}

/// A namespace's validation chain, compiled: compile once, check many
/// contexts, from many threads (it is `Send + Sync` and cheap to clone).
#[derive(Clone)]
pub struct Compiled {
    inner: Arc<Inner>,
}

impl fmt::Debug for Compiled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compiled")
            .field("schema", &self.inner.schema.is_some())
            .field("validators", &self.inner.sandbox.validators.keys())
            .field(
                "rules",
                &self.inner.rules.iter().map(|r| &r.id).collect::<Vec<_>>(),
            )
            .field("references", &self.inner.references)
            .finish()
    }
}

/// Checks a `{{key.path}}` message template; returns its key paths.
fn template_keys(template: &str) -> Result<Vec<(std::ops::Range<usize>, KeyPath)>, String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(open) = template[from..].find("{{").map(|i| i + from) {
        let Some(close) = template[open + 2..].find("}}").map(|i| i + open + 2) else {
            return Err(format!("`{{{{` at byte {open} is never closed with `}}}}`"));
        };
        let text = template[open + 2..close].trim();
        let key = KeyPath::parse(text).map_err(|e| format!("{{{{{text}}}}}: {e}"))?;
        out.push((open..close + 2, key));
        from = close + 2;
    }
    Ok(out)
}

/// Fills a message template from the resolved configuration.
fn fill_template(template: &str, doc: &Document) -> String {
    let Ok(keys) = template_keys(template) else {
        return template.to_owned();
    };
    let mut out = String::with_capacity(template.len());
    let mut last = 0;
    for (range, key) in keys {
        out.push_str(&template[last..range.start]);
        match confstrata_core::doc::get(doc, &key) {
            Some(Value::String(s)) => out.push_str(s),
            Some(other) => out.push_str(&other.to_string()),
            None => out.push_str(&format!("<no {key}>")),
        }
        last = range.end;
    }
    out.push_str(&template[last..]);
    script::truncate(out)
}

fn first_line(source: &str) -> String {
    let line = source.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut shown: String = line.trim().chars().take(80).collect();
    if line.trim().chars().count() > 80 || source.trim().lines().count() > 1 {
        shown.push('…');
    }
    shown
}

impl Compiled {
    /// Compiles a namespace's validation chain.
    ///
    /// Refused (as [`Error::Invalid`], naming the namespace, the rule,
    /// validator or schema place, and the line and column for scripts): a
    /// rule or validator that does not compile, duplicate rule ids, a
    /// validator name that is not an identifier or is declared twice, a
    /// schema that is not valid JSON Schema, an `x-validator` naming an
    /// unknown validator, a `$ref` that points to nothing, outside the
    /// schema and the library, or into a loop; `config()` with anything but
    /// a string literal naming a valid namespace.
    pub fn compile(
        namespace: &NamespaceName,
        validation: &Validation,
        limits: &Limits,
    ) -> Result<Compiled, Error> {
        Compiled::compile_with(namespace, validation, &Library::default(), limits)
    }

    /// [`Compiled::compile`] with a user [`Library`]: its schema entries
    /// resolve as `confstrata:<name>` like the built-ins, and its
    /// validators are callable from the namespace's rules and
    /// `x-validator`s like the namespace's own.
    ///
    /// Refused, besides what `compile` refuses: a namespace validator with
    /// the same name as a global one (the error names both). The library
    /// itself is meant to have passed [`Library::check`]; here its entry
    /// names and validators are checked again (the validators are compiled
    /// anyway), and the entries the namespace's schema reaches are checked
    /// as `Library::check` does. Errors in the library read
    /// `invalid validation of namespace "web": user library: ...` or
    /// `... schema: in schema library entry "pool-size": ...`.
    pub fn compile_with(
        namespace: &NamespaceName,
        validation: &Validation,
        library: &Library,
        limits: &Limits,
    ) -> Result<Compiled, Error> {
        let what = format!("validation of namespace {:?}", namespace.as_str());
        let library_what = format!("{what}: user library");
        library.check_entry_names(&library_what)?;
        let engine = script::engine(limits);
        let (global_lib, mut validators) =
            script::compile_validators(&engine, &library_what, &library.validators)?;
        if let Some(clash) = validation
            .validators
            .iter()
            .find(|spec| validators.contains_key(&spec.name))
        {
            return Err(Error::invalid(
                format!("{what}: validator {:?}", clash.name),
                format!(
                    "it has the same name as the global validator {:?} of the user library; rename one of them",
                    clash.name
                ),
            ));
        }
        let (lib, own) = script::compile_validators(&engine, &what, &validation.validators)?;
        validators.extend(own);
        let sandbox = Arc::new(Sandbox {
            engine,
            limits: limits.clone(),
            lib: global_lib.merge(&lib),
            validators,
        });

        let mut rules = Vec::with_capacity(validation.rules.len());
        let mut ids = BTreeSet::new();
        let mut references = BTreeSet::new();
        for spec in &validation.rules {
            let here = format!("{what}: rule {:?}", spec.id);
            let invalid = |reason: String| Error::invalid(&here, reason);
            if spec.id.trim().is_empty() || spec.id.chars().any(char::is_control) {
                return Err(invalid(
                    "a rule id must be non-empty, without control characters".into(),
                ));
            }
            if !ids.insert(spec.id.as_str()) {
                return Err(invalid(
                    "declared twice; rule ids must be unique in the namespace".into(),
                ));
            }
            let reads = script::scan_config_calls(&spec.check).map_err(invalid)?;
            let mut stage = Stage::Rule;
            for name in reads {
                let ns = NamespaceName::parse(&name)
                    .map_err(|e| invalid(format!("config({name:?}): {e}")))?;
                references.insert(ns);
                stage = Stage::Cross;
            }
            template_keys(&spec.message).map_err(|e| invalid(format!("message template: {e}")))?;
            let key = spec
                .key
                .as_deref()
                .map(|k| KeyPath::parse(k).map(|k| k.to_string()))
                .transpose()
                .map_err(|e| invalid(format!("key: {e}")))?;
            let ast = script::compile_rule(&sandbox.engine, &sandbox.lib, &spec.check)
                .map_err(|reason| invalid(format!("check does not compile: {reason}")))?;
            rules.push(Rule {
                id: spec.id.clone(),
                source: spec.check.clone(),
                severity: spec.severity,
                message: spec.message.clone(),
                key,
                ast,
                stage,
            });
        }

        let schema = validation
            .schema
            .as_ref()
            .map(|schema| {
                SchemaStage::compile(&what, schema, &sandbox, &Catalog::new(&library.schemas))
            })
            .transpose()?;

        Ok(Compiled {
            inner: Arc::new(Inner {
                namespace: namespace.to_string(),
                mode: validation.mode,
                sandbox,
                schema,
                rules,
                references,
            }),
        })
    }

    /// Runs the chain on one context's resolved configuration. Never
    /// panics on any document; script errors and limits become findings.
    pub fn check(
        &self,
        context: &Context,
        resolved: &Document,
        lookup: &dyn Lookup,
    ) -> Vec<Finding> {
        self.check_until(context, resolved, lookup, None).findings
    }

    /// [`Compiled::check`] with a deadline over the whole check (a
    /// commit's validation budget): a rule still running then stops as if
    /// at its own time limit. Says which stage or rule took longest.
    pub fn check_until(
        &self,
        context: &Context,
        resolved: &Document,
        lookup: &dyn Lookup,
        deadline: Option<std::time::Instant>,
    ) -> Checked {
        // On a stack that fits the deepest check the chain allows: at once
        // on a thread that has one (the engine validates on one), else on
        // a thread started for it.
        let ran = on_check_stack(|| {
            let mut slowest = None;
            let findings = script::with_outer_deadline(deadline, || {
                self.check_timed(context, resolved, lookup, &mut slowest)
            });
            Checked { findings, slowest }
        });
        ran.unwrap_or_else(|reason| Checked {
            findings: vec![Finding {
                namespace: self.inner.namespace.clone(),
                stage: Stage::Rule,
                rule: "#".to_owned(),
                severity: Severity::Error,
                context: context.clone(),
                key: None,
                message: format!("the chain could not be checked: {reason}"),
            }],
            slowest: None,
        })
    }

    fn check_timed(
        &self,
        context: &Context,
        resolved: &Document,
        lookup: &dyn Lookup,
        slowest: &mut Option<(String, std::time::Duration)>,
    ) -> Vec<Finding> {
        // `what` is a rule's id, or `None` for the schema; the name is made
        // only for a new slowest.
        let mut note = |what: Option<&str>, started: std::time::Instant| {
            let took = started.elapsed();
            if slowest.as_ref().is_none_or(|(_, t)| took > *t) {
                let name =
                    what.map_or_else(|| "the schema".to_owned(), |id| format!("rule {id:?}"));
                *slowest = Some((name, took));
            }
        };
        let inner = &*self.inner;
        let stop = inner.mode == ChainMode::StopAtFirstFailingStage;
        let blocks =
            |findings: &[Finding]| stop && findings.iter().any(|f| f.severity == Severity::Error);
        let mut out = Vec::new();

        if let Some(schema) = &inner.schema {
            let started = std::time::Instant::now();
            let (schema_findings, validator_findings) =
                schema.run(&inner.namespace, &Value::Object(resolved.clone()), context);
            note(None, started);
            let schema_blocks = blocks(&schema_findings);
            out.extend(schema_findings);
            if schema_blocks {
                return out;
            }
            let validator_blocks = blocks(&validator_findings);
            out.extend(validator_findings);
            if validator_blocks {
                return out;
            }
        }
        if inner.rules.is_empty() {
            return out;
        }

        let cfg = script::document_to_dynamic(resolved);
        let ctx = script::context_to_dynamic(context);
        let local = self.run_rules(
            Stage::Rule,
            context,
            resolved,
            (&cfg, &ctx),
            None,
            &mut note,
        );
        let local_blocks = blocks(&local);
        out.extend(local);
        if local_blocks || !inner.rules.iter().any(|r| r.stage == Stage::Cross) {
            return out;
        }
        let fetched = script::fetch(&inner.references, context, lookup);
        out.extend(self.run_rules(
            Stage::Cross,
            context,
            resolved,
            (&cfg, &ctx),
            Some(&fetched),
            &mut note,
        ));
        out
    }

    fn run_rules(
        &self,
        stage: Stage,
        context: &Context,
        resolved: &Document,
        (cfg, ctx): (&Dynamic, &Dynamic),
        fetched: Option<&Arc<script::Fetched>>,
        note: &mut dyn FnMut(Option<&str>, std::time::Instant),
    ) -> Vec<Finding> {
        let sandbox = &self.inner.sandbox;
        let mut out = Vec::new();
        for rule in self.inner.rules.iter().filter(|r| r.stage == stage) {
            let started = std::time::Instant::now();
            let ran = sandbox.run_rule(&rule.ast, cfg, ctx, fetched);
            note(Some(&rule.id), started);
            let finding = |severity: Severity, message: String| Finding {
                namespace: self.inner.namespace.clone(),
                stage,
                rule: rule.id.clone(),
                severity,
                context: context.clone(),
                key: rule.key.clone(),
                message,
            };
            match ran {
                Err(err) => out.push(finding(
                    Severity::Error,
                    format!(
                        "script error: {}",
                        sandbox.explain(&err, Origin::Rule(&rule.source))
                    ),
                )),
                Ok(value) => match script::outcome(value) {
                    Ok(()) => {}
                    Err(Failure::False) => {
                        let message = if rule.message.is_empty() {
                            format!("check failed: {}", first_line(&rule.source))
                        } else {
                            fill_template(&rule.message, resolved)
                        };
                        out.push(finding(rule.severity, message));
                    }
                    Err(Failure::Message(message)) => out.push(finding(rule.severity, message)),
                    Err(Failure::Type(t)) => out.push(finding(
                        Severity::Error,
                        format!(
                            "script error: the check returned a value of type {t}; it must return true or false"
                        ),
                    )),
                },
            }
        }
        out
    }

    /// The namespaces the cross-namespace rules read (every
    /// `config("name")`), known at compile time.
    pub fn references(&self) -> BTreeSet<NamespaceName> {
        self.inner.references.clone()
    }

    /// Whether checking can find nothing: no schema and no rules
    /// (validators alone run only when the schema or a rule calls them).
    pub fn is_empty(&self) -> bool {
        self.inner.schema.is_none() && self.inner.rules.is_empty()
    }
}

#[cfg(test)]
mod tests;
