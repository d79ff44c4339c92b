//! The schema stage: a JSON Schema (draft 2020-12) compiled once with
//! jsonschema, the schema library served from memory, every other external
//! `$ref` refused, and `x-validator` as a custom keyword that calls a
//! validator (its failures are reported as the Validator stage).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

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

/// Most user entries named in a message listing the library.
const MAX_LISTED: usize = 40;

/// The schema library one compile sees: the built-in entries and the
/// user's entries (each served with `$id: "confstrata:<name>"`, like the
/// built-ins). Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Catalog {
    user: Arc<BTreeMap<String, Value>>,
}

impl Catalog {
    /// A catalog with the user's entries, which must not shadow built-ins
    /// (see `Library::check_entries`).
    pub(crate) fn new(user: &BTreeMap<String, Value>) -> Catalog {
        let user = user
            .iter()
            .map(|(name, schema)| {
                let mut schema = schema.clone();
                if let Value::Object(map) = &mut schema {
                    map.insert("$id".into(), Value::String(format!("{SCHEME}:{name}")));
                }
                (name.clone(), schema)
            })
            .collect();
        Catalog {
            user: Arc::new(user),
        }
    }

    /// An entry, built-in or the user's, with its name.
    fn get(&self, name: &str) -> Option<(&str, &Value)> {
        library::library()
            .get_key_value(name)
            .or_else(|| self.user.get_key_value(name))
            .map(|(k, v)| (k.as_str(), v))
    }

    /// Whether `name` is one of the user's entries.
    fn is_user(&self, name: &str) -> bool {
        self.user.contains_key(name)
    }

    /// The user's entries, with their `$id`.
    pub(crate) fn user_entries(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.user.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The names of every entry, for messages.
    fn names(&self) -> String {
        let mut text = library::library()
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        if !self.user.is_empty() {
            let shown: Vec<&str> = self
                .user
                .keys()
                .take(MAX_LISTED)
                .map(String::as_str)
                .collect();
            text.push_str("; user entries: ");
            text.push_str(&shown.join(", "));
            if self.user.len() > MAX_LISTED {
                text.push_str(&format!(" and {} more", self.user.len() - MAX_LISTED));
            }
        }
        text
    }
}

/// Serves `confstrata:<name>` from the catalog and refuses everything else.
struct LibraryOnly(Catalog);

impl Retrieve for LibraryOnly {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        if uri.scheme().as_str() == SCHEME {
            let name = uri.path().as_str();
            return self
                .0
                .get(name)
                .map(|(_, schema)| schema.clone())
                .ok_or_else(|| {
                    format!(
                        "the schema library has no entry {name:?} (it has: {})",
                        self.0.names()
                    )
                    .into()
                });
        }
        Err(format!(
            "external references are refused (no network or file access); use `#/...` inside the schema or `{SCHEME}:<name>` from the schema library ({})",
            self.0.names()
        )
        .into())
    }
}

/// Separates the validator's name from the failure message in an
/// `x-validator` error (a name is an identifier, so it never contains it).
/// The name travels with the error: a keyword location does not tell
/// which library entry it is in.
const NAME_END: char = '\0';

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
            .map_err(|message| ValidationError::custom(format!("{}{NAME_END}{message}", self.name)))
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
}

impl SchemaStage {
    /// Compiles a namespace's schema: checks its `$ref`s and those of every
    /// library entry it reaches, checks each user entry it reaches as
    /// `Library::check` does, then builds it.
    pub(crate) fn compile(
        what: &str,
        schema: &Value,
        sandbox: &Arc<Sandbox>,
        catalog: &Catalog,
    ) -> Result<SchemaStage, Error> {
        let what = format!("{what}: schema");
        let in_entry = |entry: &str, reason: String| {
            Error::invalid(
                &what,
                format!("in schema library entry {entry:?}: {reason}"),
            )
        };
        let reached =
            check_refs(catalog, Some(schema), std::iter::empty()).map_err(|err| {
                match err.entry {
                    None => Error::invalid(&what, err.reason),
                    Some(entry) => in_entry(&entry, err.reason),
                }
            })?;
        for name in reached {
            if let Some((_, entry)) = catalog.get(name) {
                SchemaStage::build(entry, sandbox, catalog)
                    .map_err(|reason| in_entry(name, reason))?;
            }
        }
        SchemaStage::build(schema, sandbox, catalog).map_err(|reason| Error::invalid(&what, reason))
    }

    /// Builds a schema whose `$ref`s were checked.
    fn build(
        schema: &Value,
        sandbox: &Arc<Sandbox>,
        catalog: &Catalog,
    ) -> Result<SchemaStage, String> {
        let factory_sandbox = Arc::clone(sandbox);
        let mut options = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .with_retriever(LibraryOnly(catalog.clone()))
            .should_validate_formats(true)
            .with_keyword(
                X_VALIDATOR,
                move |_parent: &Map<String, Value>, value: &Value, _location: Location| {
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
            .map_err(|err| explain_build_error(&err))?;
        Ok(SchemaStage { validator })
    }

    /// Validates `instance`; returns the schema findings and the validator findings.
    ///
    /// jsonschema recurses along the schema and the instance; both are
    /// bounded when declared ([`MAX_SCHEMA_DEPTH`], [`MAX_REF_CHAIN`], the
    /// document depth limit), and the check runs on a thread whose stack
    /// is sized for that bound (`stack::CHECK_STACK_BYTES`), whatever thread
    /// asked.
    pub(crate) fn run(
        &self,
        namespace: &str,
        instance: &Value,
        context: &Context,
    ) -> (Vec<Finding>, Vec<Finding>) {
        let ran = crate::stack::on_check_stack(|| self.run_here(namespace, instance, context));
        ran.unwrap_or_else(|reason| {
            (
                vec![Finding {
                    namespace: namespace.to_owned(),
                    stage: Stage::Schema,
                    rule: "#".to_owned(),
                    severity: Severity::Error,
                    context: context.clone(),
                    key: None,
                    message: format!("the schema could not be checked: {reason}"),
                }],
                Vec::new(),
            )
        })
    }

    fn run_here(
        &self,
        namespace: &str,
        instance: &Value,
        context: &Context,
    ) -> (Vec<Finding>, Vec<Finding>) {
        let mut schema = Vec::new();
        let mut validators = Vec::new();
        for err in self.validator.iter_errors(instance) {
            let key = key_of(err.instance_path());
            match err.kind() {
                ValidationErrorKind::Custom { keyword, message } if keyword == X_VALIDATOR => {
                    let (rule, message) = message
                        .split_once(NAME_END)
                        .unwrap_or((X_VALIDATOR, message.as_str()));
                    validators.push(Finding {
                        namespace: namespace.to_owned(),
                        stage: Stage::Validator,
                        rule: rule.to_owned(),
                        severity: Severity::Error,
                        context: context.clone(),
                        key,
                        message: truncate(message.to_owned()),
                    });
                }
                _ => {
                    let location = err.evaluation_path().as_str();
                    schema.push(Finding {
                        namespace: namespace.to_owned(),
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

/// Checks the user's entries on their own, for `Library::check`: the
/// `$ref`s of all of them, then each one built as a schema of its own.
/// The error names the entry.
pub(crate) fn check_entries(
    catalog: &Catalog,
    sandbox: &Arc<Sandbox>,
) -> Result<(), (String, String)> {
    let names: Vec<&str> = catalog.user_entries().map(|(name, _)| name).collect();
    check_refs(catalog, None, names.iter().copied()).map_err(|err| {
        // Without a namespace schema, every error is in an entry.
        (err.entry.unwrap_or_default(), err.reason)
    })?;
    for (name, entry) in catalog.user_entries() {
        SchemaStage::build(entry, sandbox, catalog).map_err(|reason| (name.to_owned(), reason))?;
    }
    Ok(())
}

/// A document `$ref`s lead to: the schema being compiled, or a library entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Doc<'a> {
    Root,
    Entry(&'a str),
}

/// A subschema: its document and its JSON pointer there.
type Node<'a> = (Doc<'a>, String);

fn show(node: &Node<'_>) -> String {
    match node {
        (Doc::Root, p) if p.is_empty() => "#".to_owned(),
        (Doc::Root, p) => format!("#{p}"),
        (Doc::Entry(name), p) if p.is_empty() => format!("{SCHEME}:{name}"),
        (Doc::Entry(name), p) => format!("{SCHEME}:{name}#{p}"),
    }
}

/// A bad `$ref`, and the library entry it is in (`None`: the schema being compiled).
struct RefError {
    entry: Option<String>,
    reason: String,
}

/// The documents walked so far and the `$ref` edges between subschemas.
struct RefGraph<'a> {
    catalog: &'a Catalog,
    root: Option<&'a Value>,
    walked: BTreeMap<Doc<'a>, Refs<'a>>,
    edges: BTreeMap<Node<'a>, Node<'a>>,
}

impl<'a> RefGraph<'a> {
    fn value(&self, doc: Doc<'a>) -> Option<&'a Value> {
        match doc {
            Doc::Root => self.root,
            Doc::Entry(name) => self.catalog.get(name).map(|(_, v)| v),
        }
    }

    fn error(doc: Doc<'_>, reason: String) -> RefError {
        RefError {
            entry: match doc {
                Doc::Root => None,
                Doc::Entry(name) => Some(name.to_owned()),
            },
            reason,
        }
    }

    /// Walks `doc` once.
    fn walk(&mut self, doc: Doc<'a>) -> Result<(), RefError> {
        if self.walked.contains_key(&doc) {
            return Ok(());
        }
        let mut found = Refs::default();
        if let Some(value) = self.value(doc) {
            walk(value, "", false, 0, &mut found);
        }
        if let Some(at) = &found.too_deep {
            return Err(Self::error(
                doc,
                format!(
                    "subschemas nest deeper than {MAX_SCHEMA_DEPTH} levels (at {at}); flatten it with $defs"
                ),
            ));
        }
        self.walked.insert(doc, found);
        Ok(())
    }

    /// Resolves a fragment (`#`, `#/json/pointer`, `#anchor`) in a walked document.
    fn resolve(&self, doc: Doc<'a>, reference: &str) -> Option<String> {
        let value = self.value(doc)?;
        let anchors = &self.walked.get(&doc)?.anchors;
        resolve_local(value, anchors, reference)
    }
}

/// Checks every `$ref` before jsonschema sees the schema, to name where a
/// bad one is: a local one must point at something, a library one must
/// name an entry (and its fragment point at something in it), anything
/// else (http, file, relative) is refused. The library entries referred to
/// are checked the same way, transitively. Then refuses reference loops
/// that never reach a value, across documents.
///
/// Walks `root` (the schema being compiled) and the user entries named in
/// `entries`; returns the user entries reached from `root`.
fn check_refs<'a>(
    catalog: &'a Catalog,
    root: Option<&'a Value>,
    entries: impl Iterator<Item = &'a str>,
) -> Result<BTreeSet<&'a str>, RefError> {
    let mut graph = RefGraph {
        catalog,
        root,
        walked: BTreeMap::new(),
        edges: BTreeMap::new(),
    };
    let mut queue: Vec<Doc<'a>> = root.map(|_| Doc::Root).into_iter().collect();
    queue.extend(entries.filter_map(|name| catalog.get(name).map(|(name, _)| Doc::Entry(name))));
    queue.reverse();
    let mut seen: BTreeSet<Doc<'a>> = queue.iter().copied().collect();
    let mut reached = BTreeSet::new();
    while let Some(doc) = queue.pop() {
        graph.walk(doc)?;
        let (refs, embedded) = match graph.walked.get(&doc) {
            Some(found) => (found.refs.clone(), found.embedded),
            None => continue,
        };
        let error = |reason: String| RefGraph::error(doc, reason);
        for (at, reference) in refs {
            let at_ref = format!("{at}/$ref");
            if reference.starts_with('#') {
                let target = graph.resolve(doc, reference).ok_or_else(|| {
                    error(format!(
                        "$ref {reference:?} at {at_ref} points to nothing in the schema"
                    ))
                })?;
                graph.edges.insert((doc, at), (doc, target));
            } else if let Some(rest) = reference.strip_prefix(&format!("{SCHEME}:")) {
                let (name, fragment) = rest.split_once('#').unwrap_or((rest, ""));
                let Some((name, _)) = catalog.get(name) else {
                    return Err(error(format!(
                        "$ref {reference:?} at {at_ref}: the schema library has no entry {name:?} (it has: {})",
                        catalog.names()
                    )));
                };
                let target_doc = Doc::Entry(name);
                graph.walk(target_doc)?;
                let target = graph
                    .resolve(target_doc, &format!("#{fragment}"))
                    .ok_or_else(|| {
                        error(format!(
                            "$ref {reference:?} at {at_ref} points to nothing in schema library entry {name:?}"
                        ))
                    })?;
                graph.edges.insert((doc, at), (target_doc, target));
                if catalog.is_user(name) && root.is_some() {
                    reached.insert(name);
                }
                if seen.insert(target_doc) {
                    queue.push(target_doc);
                }
            } else if !embedded {
                return Err(error(format!(
                    "$ref {reference:?} at {at_ref} is refused: external references (http, file, relative paths) are not fetched; use `#/...` inside the schema or `{SCHEME}:<name>` from the schema library ({})",
                    catalog.names()
                )));
            }
        }
    }
    check_cycles(&graph)?;
    check_chains(&graph)?;
    Ok(reached)
}

/// Longest chain of subschemas applied to one instance (through `$ref`s
/// and combinators) that a schema may have.
///
/// With [`MAX_SCHEMA_DEPTH`] and the document depth limit, this bounds how
/// deep validation recurses, so a declaration that could overflow the
/// stack of the thread that checks it is refused when it is declared.
/// jsonschema recurses once (a few frames) per subschema in the chain.
pub(crate) const MAX_REF_CHAIN: usize = 128;

/// Refuses a chain of in-place subschemas longer than [`MAX_REF_CHAIN`]
/// (the graph has no loops: [`check_cycles`] ran first). Iterative, so the
/// check itself cannot overflow whatever the chain's length.
fn check_chains(graph: &RefGraph<'_>) -> Result<(), RefError> {
    let mut longest: BTreeMap<Node<'_>, usize> = BTreeMap::new();
    for start in graph.edges.keys() {
        if longest.contains_key(start) {
            continue;
        }
        let mut stack: Vec<(Node<'_>, Vec<Node<'_>>, usize)> =
            vec![(start.clone(), in_place(graph, start), 0)];
        while let Some((node, pending, best)) = stack.last_mut() {
            if let Some(next) = pending.pop() {
                match longest.get(&next) {
                    Some(len) => *best = (*best).max(len + 1),
                    None => {
                        let succ = in_place(graph, &next);
                        stack.push((next, succ, 0));
                    }
                }
                continue;
            }
            let (node, len) = (node.clone(), *best);
            stack.pop();
            if len > MAX_REF_CHAIN {
                return Err(RefGraph::error(
                    node.0,
                    format!(
                        "$ref chain from {} is {len} subschemas long; the limit is {MAX_REF_CHAIN} (validation recurses once per link): shorten it",
                        show(&node)
                    ),
                ));
            }
            if let Some((_, _, parent)) = stack.last_mut() {
                *parent = (*parent).max(len + 1);
            }
            longest.insert(node, len);
        }
    }
    Ok(())
}

/// The subschemas applied to the same instance as the one at `node`
/// (combinators, conditionals and its `$ref`).
fn in_place<'a>(graph: &RefGraph<'a>, node: &Node<'a>) -> Vec<Node<'a>> {
    let (doc, pointer) = node;
    let mut next = Vec::new();
    let Some(Value::Object(map)) = graph.value(*doc).and_then(|v| v.pointer(pointer)) else {
        return next;
    };
    let here = |sub: String| (*doc, sub);
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(items)) = map.get(key) {
            next.extend((0..items.len()).map(|i| here(format!("{pointer}/{key}/{i}"))));
        }
    }
    for key in ["not", "if", "then", "else"] {
        if map.contains_key(key) {
            next.push(here(format!("{pointer}/{key}")));
        }
    }
    if let Some(Value::Object(deps)) = map.get("dependentSchemas") {
        next.extend(
            deps.keys()
                .map(|k| here(format!("{pointer}/dependentSchemas/{}", escape_segment(k)))),
        );
    }
    if let Some(target) = graph.edges.get(node) {
        next.push(target.clone());
    }
    next
}

/// A `$ref` loop that never descends into a property or item would recurse
/// forever on every value: refuse it.
fn check_cycles(graph: &RefGraph<'_>) -> Result<(), RefError> {
    let mut done: BTreeSet<Node<'_>> = BTreeSet::new();
    for start in graph.edges.keys() {
        if done.contains(start) {
            continue;
        }
        // Iterative depth-first search; `path` is the current chain.
        let mut path: Vec<(Node<'_>, Vec<Node<'_>>)> =
            vec![(start.clone(), in_place(graph, start))];
        let mut on_path: BTreeSet<Node<'_>> = BTreeSet::from([start.clone()]);
        while let Some((node, pending)) = path.last_mut() {
            let Some(next) = pending.pop() else {
                let node = node.clone();
                on_path.remove(&node);
                done.insert(node);
                path.pop();
                continue;
            };
            if on_path.contains(&next) {
                let mut chain: Vec<Node<'_>> = path
                    .iter()
                    .map(|(n, _)| n.clone())
                    .skip_while(|n| *n != next)
                    .collect();
                chain.push(next);
                let shown: Vec<String> = chain.iter().map(show).collect();
                let doc = if chain.iter().any(|(doc, _)| *doc == Doc::Root) {
                    Doc::Root
                } else {
                    chain[0].0
                };
                return Err(RefGraph::error(
                    doc,
                    format!(
                        "$ref loop {} never reaches a property or item, so it would recurse forever; break the loop",
                        shown.join(" -> ")
                    ),
                ));
            }
            if !done.contains(&next) {
                let succ = in_place(graph, &next);
                on_path.insert(next.clone());
                path.push((next, succ));
            }
        }
    }
    Ok(())
}
