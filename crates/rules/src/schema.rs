//! The schema stage: a JSON Schema (draft 2020-12) compiled once with
//! jsonschema, the schema library served from memory, every other external
//! `$ref` refused, and `x-validator` as a custom keyword that calls a
//! validator (its failures are reported as the Validator stage).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use confstrata_core::{Context, Error, KeyPath};
use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::{Location, LocationSegment};
use jsonschema::{Draft, Keyword, Retrieve, Uri, ValidationError, Validator};
use rhai::Dynamic;
use serde_json::{Map, Value};

use crate::library::{self, SCHEME};
use crate::script::{Sandbox, to_dynamic, truncate};
use crate::{Finding, Stage};
use confstrata_core::Severity;

/// The custom keyword that calls a validator.
pub(crate) const X_VALIDATOR: &str = "x-validator";

/// Serves `confstrata:<name>` from the library and refuses everything else.
struct LibraryOnly;

impl Retrieve for LibraryOnly {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        if uri.scheme().as_str() == SCHEME {
            let name = uri.path().as_str();
            return library::library().get(name).cloned().ok_or_else(|| {
                format!(
                    "the schema library has no entry {name:?} (it has: {})",
                    library_names()
                )
                .into()
            });
        }
        Err(format!(
            "external references are refused (no network or file access); use `#/...` inside the schema or `{SCHEME}:<name>` from the schema library ({})",
            library_names()
        )
        .into())
    }
}

fn library_names() -> String {
    library::library()
        .keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `x-validator` at one place of the schema.
struct XValidator {
    sandbox: Arc<Sandbox>,
    name: String,
    args: Vec<Dynamic>,
}

impl<'i> Keyword<'i> for XValidator {
    fn validate(&self, instance: &'i Value) -> Result<(), ValidationError<'i>> {
        self.sandbox
            .run_validator(&self.name, instance, &self.args)
            .map_err(ValidationError::custom)
    }

    fn is_valid(&self, instance: &'i Value) -> bool {
        self.sandbox
            .run_validator(&self.name, instance, &self.args)
            .is_ok()
    }
}

/// Reads `"name"` or `{"name": "...", "args": [...]}`.
fn parse_x_validator(value: &Value) -> Result<(String, Vec<Value>), String> {
    match value {
        Value::String(name) => Ok((name.clone(), Vec::new())),
        Value::Object(map) => {
            if let Some(other) = map.keys().find(|k| *k != "name" && *k != "args") {
                return Err(format!(
                    "unknown field {other:?}; x-validator takes \"name\" and \"args\""
                ));
            }
            let name = map
                .get("name")
                .and_then(Value::as_str)
                .ok_or("x-validator needs a \"name\" string")?;
            let args = match map.get("args") {
                None => Vec::new(),
                Some(Value::Array(args)) => args.clone(),
                Some(_) => return Err("x-validator \"args\" must be an array".into()),
            };
            Ok((name.to_owned(), args))
        }
        _ => Err("x-validator must be a validator name or {\"name\": ..., \"args\": [...]}".into()),
    }
}

/// The compiled schema stage.
pub(crate) struct SchemaStage {
    validator: Validator,
    /// Keyword location of each `x-validator` → the validator's name.
    x_validators: BTreeMap<String, String>,
}

impl SchemaStage {
    pub(crate) fn compile(
        what: &str,
        schema: &Value,
        sandbox: &Arc<Sandbox>,
    ) -> Result<SchemaStage, Error> {
        let invalid = |reason: String| Error::invalid(format!("{what}: schema"), reason);
        check_refs(schema).map_err(invalid)?;

        let names = Arc::new(Mutex::new(BTreeMap::new()));
        let factory_names = Arc::clone(&names);
        let factory_sandbox = Arc::clone(sandbox);
        let mut options = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .with_retriever(LibraryOnly)
            .should_validate_formats(true)
            .with_keyword(
                X_VALIDATOR,
                move |_parent: &Map<String, Value>, value: &Value, location: Location| {
                    let (name, args) = parse_x_validator(value).map_err(ValidationError::schema)?;
                    let Some(spec) = factory_sandbox.validators.get(&name) else {
                        let known: Vec<&str> = factory_sandbox
                            .validators
                            .keys()
                            .map(String::as_str)
                            .collect();
                        return Err(ValidationError::schema(format!(
                            "unknown validator {name:?} (declared validators: {})",
                            if known.is_empty() {
                                "none".to_owned()
                            } else {
                                known.join(", ")
                            }
                        )));
                    };
                    if args.len() != spec.params.len() {
                        return Err(ValidationError::schema(format!(
                            "validator {name:?} takes {} argument(s) after the value ({}), got {}",
                            spec.params.len(),
                            spec.params.join(", "),
                            args.len()
                        )));
                    }
                    factory_names
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(location.as_str().to_owned(), name.clone());
                    Ok(Box::new(XValidator {
                        sandbox: Arc::clone(&factory_sandbox),
                        name,
                        args: args.iter().map(to_dynamic).collect(),
                    }) as Box<dyn for<'i> Keyword<'i>>)
                },
            );
        for (name, check) in library::FORMATS {
            options = options.with_format(*name, *check);
        }
        let validator = options
            .build(schema)
            .map_err(|err| invalid(explain_build_error(&err)))?;
        let x_validators =
            std::mem::take(&mut *names.lock().unwrap_or_else(PoisonError::into_inner));
        Ok(SchemaStage {
            validator,
            x_validators,
        })
    }

    /// Validates `instance`; returns the schema findings and the validator findings.
    pub(crate) fn run(&self, instance: &Value, context: &Context) -> (Vec<Finding>, Vec<Finding>) {
        let mut schema = Vec::new();
        let mut validators = Vec::new();
        for err in self.validator.iter_errors(instance) {
            let key = key_of(err.instance_path());
            match err.kind() {
                ValidationErrorKind::Custom { keyword, message } if keyword == X_VALIDATOR => {
                    let rule = self
                        .x_validators
                        .get(err.schema_path().as_str())
                        .cloned()
                        .unwrap_or_else(|| X_VALIDATOR.to_owned());
                    validators.push(Finding {
                        stage: Stage::Validator,
                        rule,
                        severity: Severity::Error,
                        context: context.clone(),
                        key,
                        message: truncate(message.clone()),
                    });
                }
                _ => {
                    let location = err.evaluation_path().as_str();
                    schema.push(Finding {
                        stage: Stage::Schema,
                        rule: if location.is_empty() {
                            "#".to_owned()
                        } else {
                            location.to_owned()
                        },
                        severity: Severity::Error,
                        context: context.clone(),
                        key,
                        message: render(&err),
                    });
                }
            }
        }
        (schema, validators)
    }
}

/// jsonschema's message, with the instance replaced by "value" when it is
/// a container or long: a finding never carries the whole document.
fn render(err: &ValidationError<'_>) -> String {
    let instance = err.instance();
    let short_scalar =
        !instance.is_object() && !instance.is_array() && instance.to_string().len() <= 80;
    let text = if short_scalar {
        err.to_string()
    } else {
        err.masked().to_string()
    };
    truncate(text)
}

/// The dotted key path of an instance location (`None` at the root).
fn key_of(location: &Location) -> Option<String> {
    let segments: Vec<String> = location
        .iter()
        .map(|segment| match segment {
            LocationSegment::Property(p) => p.into_owned(),
            LocationSegment::Index(i) => i.to_string(),
        })
        .collect();
    if segments.is_empty() {
        return None;
    }
    Some(match KeyPath::from_segments(&segments) {
        Ok(path) => path.to_string(),
        Err(_) => location.as_str().to_owned(),
    })
}

fn explain_build_error(err: &ValidationError<'_>) -> String {
    match err.kind() {
        ValidationErrorKind::Referencing(reference) => {
            format!("a $ref cannot be resolved: {reference}")
        }
        ValidationErrorKind::Custom { message, .. } => {
            format!("at {}: {message}", err.instance_path().as_str())
        }
        kind => {
            let at = match err.instance_path().as_str() {
                "" => "the top".to_owned(),
                path => path.to_owned(),
            };
            let mut text = format!(
                "it is not valid JSON Schema (draft 2020-12): at {at}: {}",
                render(err)
            );
            let context = match kind {
                ValidationErrorKind::AnyOf { context }
                | ValidationErrorKind::OneOfNotValid { context } => Some(context),
                _ => None,
            };
            if let Some(context) = context {
                let details: Vec<String> = context.iter().flatten().map(render).collect();
                if !details.is_empty() {
                    text.push_str(&format!(" ({})", details.join("; ")));
                }
            }
            truncate(text)
        }
    }
}

fn escape_segment(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Keywords whose value is one subschema.
const ONE: &[&str] = &[
    "items",
    "additionalItems",
    "additionalProperties",
    "unevaluatedProperties",
    "unevaluatedItems",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
    "contentSchema",
];
/// Keywords whose value is an array of subschemas.
const MANY: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems"];
/// Keywords whose value is a map of name → subschema.
const NAMED: &[&str] = &[
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
];

/// What the walk of the schema collects.
#[derive(Default)]
struct Refs<'a> {
    /// (pointer of the schema holding the `$ref`, the reference)
    refs: Vec<(String, &'a str)>,
    anchors: BTreeMap<String, String>,
    /// Whether a subschema declares its own `$id` (an embedded resource).
    embedded: bool,
    /// Where the schema first nests deeper than [`MAX_SCHEMA_DEPTH`].
    too_deep: Option<String>,
}

/// Deepest nesting of subschemas accepted.
const MAX_SCHEMA_DEPTH: usize = 128;

fn walk<'a>(value: &'a Value, pointer: &str, embedded: bool, depth: usize, out: &mut Refs<'a>) {
    let Value::Object(map) = value else {
        return;
    };
    if depth > MAX_SCHEMA_DEPTH {
        out.too_deep.get_or_insert_with(|| pointer.to_owned());
        return;
    }
    let embedded = embedded || (!pointer.is_empty() && map.contains_key("$id"));
    out.embedded |= embedded;
    if !embedded {
        if let Some(Value::String(r)) = map.get("$ref") {
            out.refs.push((pointer.to_owned(), r));
        }
        if let Some(Value::String(anchor)) = map.get("$anchor") {
            out.anchors.insert(anchor.clone(), pointer.to_owned());
        }
    }
    for (key, sub) in map {
        let here = format!("{pointer}/{}", escape_segment(key));
        if ONE.contains(&key.as_str()) {
            match sub {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        walk(item, &format!("{here}/{i}"), embedded, depth + 1, out);
                    }
                }
                _ => walk(sub, &here, embedded, depth + 1, out),
            }
        } else if MANY.contains(&key.as_str()) {
            if let Value::Array(items) = sub {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{here}/{i}"), embedded, depth + 1, out);
                }
            }
        } else if NAMED.contains(&key.as_str())
            && let Value::Object(children) = sub
        {
            for (name, child) in children {
                walk(
                    child,
                    &format!("{here}/{}", escape_segment(name)),
                    embedded,
                    depth + 1,
                    out,
                );
            }
        }
    }
}

/// Resolves a local reference (`#`, `#/json/pointer`, `#anchor`) to a pointer.
fn resolve_local(
    root: &Value,
    anchors: &BTreeMap<String, String>,
    reference: &str,
) -> Option<String> {
    let fragment = percent_decode(reference.strip_prefix('#')?)?;
    if fragment.is_empty() {
        return Some(String::new());
    }
    if fragment.starts_with('/') {
        return root.pointer(&fragment).map(|_| fragment);
    }
    anchors.get(&fragment).cloned()
}

/// Checks every `$ref` before jsonschema sees the schema, to name where a
/// bad one is: a local one must point at something, a library one must
/// name an entry, anything else (http, file, relative) is refused. Then
/// refuses reference loops that never reach a value.
fn check_refs(root: &Value) -> Result<(), String> {
    let mut found = Refs::default();
    walk(root, "", false, 0, &mut found);
    if let Some(at) = found.too_deep {
        return Err(format!(
            "subschemas nest deeper than {MAX_SCHEMA_DEPTH} levels (at {at}); flatten it with $defs"
        ));
    }
    let mut edges: BTreeMap<String, String> = BTreeMap::new();
    for (at, reference) in &found.refs {
        let at_ref = format!("{at}/$ref");
        if reference.starts_with('#') {
            let target = resolve_local(root, &found.anchors, reference).ok_or_else(|| {
                format!("$ref {reference:?} at {at_ref} points to nothing in the schema")
            })?;
            edges.insert(at.clone(), target);
        } else if let Some(rest) = reference.strip_prefix(&format!("{SCHEME}:")) {
            let name = rest.split('#').next().unwrap_or_default();
            if !library::library().contains_key(name) {
                return Err(format!(
                    "$ref {reference:?} at {at_ref}: the schema library has no entry {name:?} (it has: {})",
                    library_names()
                ));
            }
        } else if !found.embedded {
            return Err(format!(
                "$ref {reference:?} at {at_ref} is refused: external references (http, file, relative paths) are not fetched; use `#/...` inside the schema or `{SCHEME}:<name>` from the schema library ({})",
                library_names()
            ));
        }
    }
    check_cycles(root, &edges)
}

/// The subschemas applied to the same instance as the schema at `pointer`
/// (combinators, conditionals and its `$ref`).
fn in_place(root: &Value, refs: &BTreeMap<String, String>, pointer: &str) -> Vec<String> {
    let mut next = Vec::new();
    let Some(Value::Object(map)) = root.pointer(pointer) else {
        return next;
    };
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(items)) = map.get(key) {
            next.extend((0..items.len()).map(|i| format!("{pointer}/{key}/{i}")));
        }
    }
    for key in ["not", "if", "then", "else"] {
        if map.contains_key(key) {
            next.push(format!("{pointer}/{key}"));
        }
    }
    if let Some(Value::Object(deps)) = map.get("dependentSchemas") {
        next.extend(
            deps.keys()
                .map(|k| format!("{pointer}/dependentSchemas/{}", escape_segment(k))),
        );
    }
    if let Some(target) = refs.get(pointer) {
        next.push(target.clone());
    }
    next
}

/// A `$ref` loop that never descends into a property or item would recurse
/// forever on every value: refuse it.
fn check_cycles(root: &Value, refs: &BTreeMap<String, String>) -> Result<(), String> {
    let mut done: BTreeSet<String> = BTreeSet::new();
    for start in refs.keys() {
        if done.contains(start) {
            continue;
        }
        // Iterative depth-first search; `path` is the current chain.
        let mut path: Vec<(String, Vec<String>)> =
            vec![(start.clone(), in_place(root, refs, start))];
        let mut on_path: BTreeSet<String> = BTreeSet::from([start.clone()]);
        while let Some((node, pending)) = path.last_mut() {
            let Some(next) = pending.pop() else {
                let node = node.clone();
                on_path.remove(&node);
                done.insert(node);
                path.pop();
                continue;
            };
            if on_path.contains(&next) {
                let mut chain: Vec<String> = path
                    .iter()
                    .map(|(n, _)| n.clone())
                    .skip_while(|n| *n != next)
                    .collect();
                chain.push(next);
                let shown: Vec<String> = chain
                    .iter()
                    .map(|p| {
                        if p.is_empty() {
                            "#".to_owned()
                        } else {
                            format!("#{p}")
                        }
                    })
                    .collect();
                return Err(format!(
                    "$ref loop {} never reaches a property or item, so it would recurse forever; break the loop",
                    shown.join(" -> ")
                ));
            }
            if !done.contains(&next) {
                let succ = in_place(root, refs, &next);
                on_path.insert(next.clone());
                path.push((next, succ));
            }
        }
    }
    Ok(())
}
