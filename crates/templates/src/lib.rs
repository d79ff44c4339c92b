//! Confstrata's templates.
//!
//! A **template** is a versioned, parameterized bundle: a namespace
//! declaration (levels, context matrix, validation chain) and layer
//! documents, plus typed parameters described by a JSON Schema (types,
//! defaults, bounds, enums, descriptions). [`Template::render`] turns it
//! into a declaration and layers for one namespace.
//!
//! Parameters are substituted as typed values into the structured
//! documents, never by pasting text into TOML: a layer value
//! `{"$param" = "port"}` becomes the parameter's value (a number stays a
//! number), and `{"$format" = "https://{host}:{port}"}` becomes a string
//! with each `{name}` replaced by the parameter's text (`{{` and `}}` for
//! braces). A parameter holding quotes, newlines or `]]` is a string value
//! inside the document and cannot change its shape.
//!
//! Parameters are checked by the same JSON Schema machinery as
//! configuration ([`confstrata_rules`]): an unknown name, a missing
//! required one, a wrong type or a value out of bounds is refused, naming
//! the parameter and what it expects.
//!
//! [`library`] is the best-practice library shipped in the binary: each
//! template with a schema and rules that encode its practice and a short
//! note that says why, with references.

use std::collections::BTreeMap;

pub use confstrata_core::GeneratorSpec;
use confstrata_core::doc::Document;
use confstrata_core::serde_json::{Map, Value};
use confstrata_core::validation::Validation;
use confstrata_core::{
    Context, Error, LayerPath, LevelTemplate, NamespaceName, NamespaceSpec, Op, Result,
    TemplateOrigin,
};
use confstrata_rules::{Compiled, Limits};
use serde::{Deserialize, Serialize};

/// The directive a layer value uses to take a parameter's value.
pub const PARAM: &str = "$param";
/// What a secret parameter reads as wherever it is shown or recorded: the
/// store's mask of a sealed value (`confstrata_crypto::MASK`).
pub const SEALED: &str = "<sealed>";
/// The annotation that makes a parameter secret: `"x-secret": true` in its
/// schema. The keys it fills are sealed when the template is applied, and
/// it is recorded, shown and handed to generators as [`SEALED`].
pub const X_SECRET: &str = "x-secret";
/// The directive a layer value uses to build a string from parameters.
pub const FORMAT: &str = "$format";

/// A template, as written in its TOML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// Its name: `http-service`.
    pub name: String,
    /// Its version: a new version of a template is a new number.
    pub version: u32,
    /// One line: what it sets up.
    pub description: String,
    /// Why the practices it encodes matter (a short paragraph).
    #[serde(default)]
    pub why: String,
    /// Where the practices come from.
    #[serde(default)]
    pub references: Vec<String>,
    /// The parameters: a JSON Schema of an object, each property a
    /// parameter with its type, bounds, `default` and `description`.
    pub parameters: Value,
    /// The namespace it declares.
    pub namespace: TemplateNamespace,
    /// The layer documents, by layer path, with `$param` and `$format`
    /// directives.
    #[serde(default)]
    pub layers: BTreeMap<String, Document>,
    /// The generators: rhai scripts that compute layer values per context
    /// of the matrix (replicas by tier, URLs by region).
    #[serde(default)]
    pub generators: Vec<GeneratorSpec>,
    /// The mistakes its rules exist to catch: one per rule, each a value
    /// that, set in a namespace made from the template with its defaults,
    /// the rule refuses. Shown by `template show`, and tested.
    #[serde(default)]
    pub mistakes: Vec<Mistake>,
}

/// A mistake a template's validation catches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mistake {
    /// The rule (its id) or schema place that refuses it.
    pub rule: String,
    /// The layer the value is set in.
    pub layer: String,
    /// The key.
    pub key: String,
    /// The value.
    pub value: Value,
}

/// The declaration a template gives a namespace (its name is the one the
/// template is applied to).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateNamespace {
    /// A human description.
    #[serde(default)]
    pub description: String,
    /// Level templates, most general first.
    pub levels: Vec<LevelTemplate>,
    /// The context matrix.
    #[serde(default)]
    pub matrix: BTreeMap<String, Vec<String>>,
    /// The validation chain.
    #[serde(default)]
    pub validation: Validation,
}

/// One parameter, as [`Template::parameters_list`] shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Parameter {
    /// Its name.
    pub name: String,
    /// Its JSON Schema type (`integer`, `string`, ...), or `any`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its default, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Whether it must be given (required and without a default).
    pub required: bool,
    /// What it is for.
    pub description: String,
}

/// A template rendered for one namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The declaration.
    pub spec: NamespaceSpec,
    /// The layers, in path order.
    pub layers: Vec<(LayerPath, Document)>,
    /// The parameters used, defaults filled in.
    pub parameters: Map<String, Value>,
    /// What each generator computed: the layer, the generator's id, and
    /// its output (already merged into `layers`).
    pub generated: Vec<(LayerPath, String, Document)>,
    /// The keys a secret parameter fills, sealed by [`Rendered::create_ops`].
    pub sealed: Vec<(LayerPath, confstrata_core::KeyPath)>,
}

/// Where a rendered value came from (see [`Rendered::source`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "name")]
pub enum Source {
    /// The template's `[layers]` table.
    Layers,
    /// A generator, by id.
    Generator(String),
}

impl Rendered {
    /// The document of `layer`, if the template renders one.
    pub fn layer(&self, layer: &LayerPath) -> Option<&Document> {
        self.layers.iter().find(|(l, _)| l == layer).map(|(_, d)| d)
    }

    /// Which part of the template rendered `key` in `layer`: a generator,
    /// the `[layers]` table, or nothing (`None`: the template does not set
    /// it there).
    pub fn source(&self, layer: &LayerPath, key: &confstrata_core::KeyPath) -> Option<Source> {
        if let Some((_, id, _)) = self
            .generated
            .iter()
            .find(|(l, _, d)| l == layer && confstrata_core::doc::get(d, key).is_some())
        {
            return Some(Source::Generator(id.clone()));
        }
        self.layer(layer)
            .and_then(|d| confstrata_core::doc::get(d, key))
            .map(|_| Source::Layers)
    }

    /// Validates the rendered namespace over its whole matrix: each
    /// context's configuration resolved from the rendered layers and
    /// checked with the declared chain (cross-namespace rules read
    /// `lookup`). The findings, context by context.
    pub fn validate(&self, lookup: &dyn Lookup) -> Result<Vec<Finding>> {
        let compiled =
            Compiled::compile(&self.spec.name, &self.spec.validation, &Limits::default())?;
        let mut findings = Vec::new();
        if compiled.is_empty() {
            return Ok(findings);
        }
        // One thread with the check stack for every context (each check
        // would otherwise start its own).
        // Rules see a secret as the mask, as they do in the store.
        let masked: Vec<(LayerPath, Document)> = self
            .layers
            .iter()
            .map(|(l, d)| {
                let mut d = d.clone();
                for (sl, key) in &self.sealed {
                    if sl == l && confstrata_core::doc::get(&d, key).is_some() {
                        let _ =
                            confstrata_core::doc::set(&mut d, key, Value::String(SEALED.into()));
                    }
                }
                (l.clone(), d)
            })
            .collect();
        confstrata_rules::on_check_stack(|| -> Result<()> {
            for ctx in self.spec.matrix_contexts() {
                let paths = self.spec.layers_for(&ctx)?;
                let inputs: Vec<confstrata_core::LayerInput<'_>> = paths
                    .iter()
                    .filter_map(|p| {
                        masked.iter().find(|(l, _)| l == p).map(|(l, d)| {
                            confstrata_core::LayerInput {
                                namespace: None,
                                layer: l,
                                revision: 0,
                                document: d,
                            }
                        })
                    })
                    .collect();
                let resolved = confstrata_core::resolve(&inputs).to_document();
                findings.extend(compiled.check(&ctx, &resolved, lookup));
            }
            Ok(())
        })
        .map_err(|message| Error::Internal { message })??;
        Ok(findings)
    }

    /// The operations that create the namespace and its layers, each with
    /// `expect_revision = 0` (must not exist yet): applying a template
    /// never overwrites a namespace.
    pub fn create_ops(&self) -> Vec<Op> {
        let mut ops = vec![Op::PutNamespace {
            spec: self.spec.clone(),
            expect_revision: Some(0),
        }];
        let mut secrets = Vec::new();
        for (layer, document) in &self.layers {
            // A secret goes in by a `set` that seals it: a `put` cannot.
            let mut document = document.clone();
            for (l, key) in &self.sealed {
                if l == layer
                    && let Some(value) = confstrata_core::doc::unset(&mut document, key)
                {
                    secrets.push(Op::Set {
                        namespace: self.spec.name.clone(),
                        layer: layer.clone(),
                        key: key.clone(),
                        value,
                        secret: true,
                        expect_revision: None,
                    });
                }
            }
            ops.push(Op::Put {
                namespace: self.spec.name.clone(),
                layer: layer.clone(),
                document,
                expect_revision: Some(0),
            });
        }
        ops.extend(secrets);
        ops
    }
}

impl Template {
    /// Reads a template from TOML, refusing unknown fields and a template
    /// that does not pass [`Template::check`].
    pub fn from_toml(text: &str, source_name: &str) -> Result<Template> {
        let template: Template = confstrata_core::format::parse_structured(
            text.as_bytes(),
            confstrata_core::format::Format::Toml,
            source_name,
            &confstrata_core::Limits::default(),
        )?;
        template.check()?;
        Ok(template)
    }

    /// `name@version`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    fn what(&self) -> String {
        format!("template {}", self.id())
    }

    /// Checks the template on its own: a parameters schema that is an
    /// object schema and compiles, defaults that pass it, every directive
    /// naming a declared parameter, layer paths that parse, and a render
    /// with the defaults whose declaration is valid and whose validation
    /// chain compiles.
    pub fn check(&self) -> Result<()> {
        let what = self.what();
        NamespaceName::parse(&self.name)
            .map_err(|e| Error::invalid(&what, format!("its name is not a valid name: {e}")))?;
        let properties = self.properties()?;
        for (layer, doc) in &self.layers {
            LayerPath::parse(layer)
                .map_err(|e| Error::invalid(&what, format!("layer {layer:?}: {e}")))?;
            for_each_directive(doc, &mut |directive| {
                for name in directive.parameters() {
                    if !properties.contains_key(&name) {
                        return Err(Error::invalid(
                            &what,
                            format!(
                                "layer {layer}: {} names parameter {name:?}, which the template does not declare",
                                directive.name()
                            ),
                        ));
                    }
                }
                Ok(())
            })?;
        }
        confstrata_core::check_generators(
            &what,
            &self.namespace.levels,
            &self.namespace.matrix,
            &self.generators,
        )?;
        for g in &self.generators {
            compile_generator(&what, g)?;
        }
        for rule in &self.namespace.validation.rules {
            if !self.mistakes.iter().any(|m| m.rule == rule.id) {
                return Err(Error::invalid(
                    &what,
                    format!(
                        "rule {} has no mistake: add a [[mistakes]] entry it refuses",
                        rule.id
                    ),
                ));
            }
        }
        for m in &self.mistakes {
            LayerPath::parse(&m.layer).map_err(|e| {
                Error::invalid(&what, format!("mistake for {}: layer: {e}", m.rule))
            })?;
            confstrata_core::KeyPath::parse(&m.key)
                .map_err(|e| Error::invalid(&what, format!("mistake for {}: key: {e}", m.rule)))?;
        }
        let defaults = self.resolve_parameters(&BTreeMap::new()).map_err(|e| {
            Error::invalid(
                &what,
                format!("its defaults do not pass its parameters: {e}"),
            )
        });
        // A template whose parameters are all required has no default
        // render to check further; everything else is checked with them.
        let params = match defaults {
            Ok(p) => p,
            Err(e) if self.parameters_list().iter().any(|p| p.required) => {
                let _ = e;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let probe =
            NamespaceName::parse(&self.name).map_err(|e| Error::invalid(&what, e.to_string()))?;
        let rendered = self.render_inner(&probe, &params, None)?;
        Compiled::compile(&probe, &rendered.spec.validation, &Limits::default())
            .map_err(|e| Error::invalid(&what, format!("its validation chain: {e}")))?;
        Ok(())
    }

    /// The parameter schema's `properties`.
    fn properties(&self) -> Result<&Map<String, Value>> {
        let what = self.what();
        let schema = self
            .parameters
            .as_object()
            .ok_or_else(|| Error::invalid(&what, "parameters must be a JSON Schema object"))?;
        if schema.get("type").and_then(Value::as_str) != Some("object") {
            return Err(Error::invalid(
                &what,
                "parameters must be a schema of type \"object\" (each property a parameter)",
            ));
        }
        match schema.get("properties") {
            None => Ok(EMPTY.get_or_init(Map::new)),
            Some(Value::Object(p)) => Ok(p),
            Some(_) => Err(Error::invalid(
                &what,
                "parameters.properties must be a table",
            )),
        }
    }

    /// The names of the secret parameters (`"x-secret": true`).
    pub fn secret_parameters(&self) -> std::collections::BTreeSet<String> {
        self.properties()
            .map(|p| {
                p.iter()
                    .filter(|(_, s)| s.get(X_SECRET).and_then(Value::as_bool) == Some(true))
                    .map(|(n, _)| n.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `params` with every secret parameter replaced by [`SEALED`]: what
    /// is recorded, shown, and handed to generators.
    pub fn masked_parameters(&self, params: &Map<String, Value>) -> Map<String, Value> {
        let secret = self.secret_parameters();
        params
            .iter()
            .map(|(k, v)| {
                if secret.contains(k) {
                    (k.clone(), Value::String(SEALED.into()))
                } else {
                    (k.clone(), v.clone())
                }
            })
            .collect()
    }

    /// The parameters, in name order.
    pub fn parameters_list(&self) -> Vec<Parameter> {
        let required: Vec<&str> = self
            .parameters
            .get("required")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let Ok(properties) = self.properties() else {
            return Vec::new();
        };
        properties
            .iter()
            .map(|(name, p)| {
                let default = p.get("default").cloned();
                Parameter {
                    name: name.clone(),
                    kind: p
                        .get("type")
                        .and_then(Value::as_str)
                        .or_else(|| p.get("enum").map(|_| "enum"))
                        .unwrap_or("any")
                        .to_owned(),
                    required: required.contains(&name.as_str()) && default.is_none(),
                    default,
                    description: p
                        .get("description")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                }
            })
            .collect()
    }

    /// The parameters to render with: `given` checked against the
    /// parameters schema, defaults filled in. A string given where the
    /// schema wants a string is kept as given (`--param name=8080` is the
    /// string `"8080"` for a string parameter).
    pub fn resolve_parameters(
        &self,
        given: &BTreeMap<String, Value>,
    ) -> Result<Map<String, Value>> {
        let what = self.what();
        let properties = self.properties()?;
        let mut out = Map::new();
        for (name, value) in given {
            let Some(schema) = properties.get(name) else {
                let known: Vec<&str> = properties.keys().map(String::as_str).collect();
                return Err(Error::invalid(
                    format!("parameter {name}"),
                    format!(
                        "{what} has no such parameter; its parameters: {}",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            };
            let value = match (schema.get("type").and_then(Value::as_str), value) {
                (Some("string"), Value::Number(n)) => Value::String(n.to_string()),
                (Some("string"), Value::Bool(b)) => Value::String(b.to_string()),
                _ => value.clone(),
            };
            out.insert(name.clone(), value);
        }
        for (name, schema) in properties {
            if !out.contains_key(name)
                && let Some(d) = schema.get("default")
            {
                out.insert(name.clone(), d.clone());
            }
        }
        // A secret parameter recorded as the mask (a namespace's origin,
        // read back for an upgrade) stands for the sealed value already in
        // the store: it is kept as it is, not checked.
        let secret = self.secret_parameters();
        let kept: Vec<(String, Value)> = out
            .iter()
            .filter(|(k, v)| secret.contains(*k) && v.as_str() == Some(SEALED))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, _) in &kept {
            out.remove(k);
        }
        // The parameters schema, run as a namespace's schema stage on the
        // parameters as a document.
        let probe =
            NamespaceName::parse(&self.name).map_err(|e| Error::invalid(&what, e.to_string()))?;
        let mut schema = self.parameters.clone();
        if let Some(Value::Array(required)) = schema.get_mut("required") {
            required.retain(|r| !kept.iter().any(|(k, _)| r.as_str() == Some(k)));
        }
        let validation = Validation {
            schema: Some(schema),
            ..Validation::default()
        };
        let compiled = Compiled::compile(&probe, &validation, &Limits::default())
            .map_err(|e| Error::invalid(&what, format!("its parameters schema: {e}")))?;
        let findings = compiled.check(&Context::default(), &out, &NoLookup);
        if findings.is_empty() {
            out.extend(kept);
            return Ok(out);
        }
        let problems: Vec<String> = findings
            .iter()
            .map(|f| match &f.key {
                Some(key) => {
                    let expects = properties
                        .get(key.split('.').next().unwrap_or(key))
                        .map(expectation)
                        .unwrap_or_default();
                    format!("parameter {key}: {}{expects}", f.message)
                }
                None => f.message.clone(),
            })
            .collect();
        Err(Error::invalid(
            format!("parameters of {what}"),
            problems.join("; "),
        ))
    }

    /// Renders the template for `namespace` with resolved `params` (see
    /// [`Template::resolve_parameters`]), its generators reading no other
    /// namespace (one that calls `config()` fails: use
    /// [`Template::render_with`]).
    pub fn render(
        &self,
        namespace: &NamespaceName,
        params: &Map<String, Value>,
    ) -> Result<Rendered> {
        self.render_with(namespace, params, &NoLookup)
    }

    /// [`Template::render`] with the generators' `config("name")` reading
    /// `lookup`, for the same context as the layer they compute.
    pub fn render_with(
        &self,
        namespace: &NamespaceName,
        params: &Map<String, Value>,
        lookup: &dyn Lookup,
    ) -> Result<Rendered> {
        self.render_inner(namespace, params, Some(lookup))
    }

    /// Renders; with `lookup` `None`, generators that read other
    /// namespaces are compiled but not run (checking a template on its own).
    fn render_inner(
        &self,
        namespace: &NamespaceName,
        params: &Map<String, Value>,
        lookup: Option<&dyn Lookup>,
    ) -> Result<Rendered> {
        let what = self.what();
        let spec = NamespaceSpec {
            name: namespace.clone(),
            description: if self.namespace.description.is_empty() {
                format!("from template {}", self.id())
            } else {
                self.namespace.description.clone()
            },
            levels: self.namespace.levels.clone(),
            matrix: self.namespace.matrix.clone(),
            validation: self.namespace.validation.clone(),
            template: Some(TemplateOrigin {
                name: self.name.clone(),
                version: self.version,
                parameters: self.masked_parameters(params),
            }),
            imports: Vec::new(),
            generators: Vec::new(),
        };
        spec.validate()
            .map_err(|e| Error::invalid(&what, format!("its declaration: {e}")))?;
        let secret = self.secret_parameters();
        let mut sealed = Vec::new();
        let mut layers = Vec::new();
        for (path, doc) in &self.layers {
            let layer = LayerPath::parse(path)
                .map_err(|e| Error::invalid(&what, format!("layer {path:?}: {e}")))?;
            if !secret.is_empty() {
                let mut keys = Vec::new();
                secret_keys(doc, &[], &secret, &mut keys)
                    .map_err(|reason| Error::invalid(format!("{what} layer {path}"), reason))?;
                sealed.extend(keys.into_iter().map(|k| (layer.clone(), k)));
            }
            let mut doc = doc.clone();
            substitute_table(&mut doc, params)
                .map_err(|reason| Error::invalid(format!("{what} layer {path}"), reason))?;
            layers.push((layer, doc));
        }
        // Generators see secret parameters as the mask: what they return
        // is written in plain text.
        let generator_params = self.masked_parameters(params);
        let generated = run_generators(
            &what,
            &spec,
            &self.generators,
            &generator_params,
            lookup,
            None,
        )?;
        for (path, id, out) in &generated {
            let index = match layers.iter().position(|(l, _)| l == path) {
                Some(i) => i,
                None => {
                    layers.push((path.clone(), Document::new()));
                    layers.len() - 1
                }
            };
            merge_generated(&mut layers[index].1, out, "").map_err(|key| {
                Error::invalid(
                    format!("{what} generator {id:?} for layer {path}"),
                    format!(
                        "it sets {key}, which the template's layers or another generator already set there; a key has one source"
                    ),
                )
            })?;
        }
        layers.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Rendered {
            spec,
            layers,
            parameters: self.masked_parameters(params),
            generated,
            sealed,
        })
    }
}

/// Generators compiled already, by where they are declared, script and
/// reads: compiling one builds a sandboxed rhai engine, most of what an
/// `explain` naming a generator costs, and every `ns generate`, `explain`
/// and render compiles the same declarations again. Emptied when full.
type CompiledKey = (String, String, Vec<String>);
static COMPILED: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<CompiledKey, confstrata_rules::Generator>>,
> = std::sync::LazyLock::new(Default::default);
/// At most this many in [`COMPILED`].
const COMPILED_MAX: usize = 256;

/// Compiles one generator of `owner` (`template web@1`, `namespace web`),
/// checking that it declares exactly the namespaces it reads (once per
/// declaration: see [`COMPILED`]).
pub fn compile_generator(owner: &str, g: &GeneratorSpec) -> Result<confstrata_rules::Generator> {
    let here = format!("{owner} generator {:?}", g.id);
    let key = (here, g.script.clone(), g.reads.clone());
    let lock = || {
        COMPILED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    if let Some(found) = lock().get(&key) {
        return Ok(found.clone());
    }
    let compiled = compile_checked(&key.0, g)?;
    let mut cache = lock();
    if cache.len() >= COMPILED_MAX {
        cache.clear();
    }
    cache.insert(key, compiled.clone());
    Ok(compiled)
}

/// [`compile_generator`] without the cache.
fn compile_checked(here: &str, g: &GeneratorSpec) -> Result<confstrata_rules::Generator> {
    let compiled = confstrata_rules::Generator::compile(here, &g.script, &Limits::default())?;
    for ns in compiled.references() {
        if !g.reads.iter().any(|r| r == ns.as_str()) {
            return Err(Error::invalid(
                here,
                format!(
                    "it reads namespace {:?} with config(), which it does not declare: add it to reads",
                    ns.as_str()
                ),
            ));
        }
    }
    for r in &g.reads {
        if !compiled.references().iter().any(|ns| ns.as_str() == r) {
            return Err(Error::invalid(
                here,
                format!("it declares it reads {r:?} but never calls config({r:?})"),
            ));
        }
    }
    Ok(compiled)
}

/// Checks the generators a namespace declares: their shape (in the
/// declaration's own check) and that each compiles, declaring what it reads.
pub fn check_namespace_generators(spec: &NamespaceSpec) -> Result<()> {
    let owner = format!("namespace {}", spec.name);
    confstrata_core::check_generators(&owner, &spec.levels, &spec.matrix, &spec.generators)?;
    for g in &spec.generators {
        compile_generator(&owner, g)?;
    }
    Ok(())
}

/// What generators computed: the layer, the generator's id, and its output.
pub type Generated = Vec<(LayerPath, String, Document)>;

/// Runs `generators` of `owner` over `spec`'s matrix: each once per layer
/// of its level that the matrix selects (only `layer` when given), with
/// `ctx` that layer's variables, `params` as `params` and `config("name")`
/// reading `lookup` for the same context. With `lookup` `None`, generators
/// that read other namespaces are compiled but not run (checking a
/// template on its own). A layer two generators both set a key of is
/// refused: a key has one source. Runs on the rules' check stack.
pub fn run_generators(
    owner: &str,
    spec: &NamespaceSpec,
    generators: &[GeneratorSpec],
    params: &Map<String, Value>,
    lookup: Option<&dyn Lookup>,
    layer: Option<&LayerPath>,
) -> Result<Generated> {
    // Every run on one thread with the check stack (each would otherwise
    // start its own).
    confstrata_rules::on_check_stack(|| -> Result<Generated> {
        let mut generated: Generated = Vec::new();
        let mut merged: BTreeMap<LayerPath, Document> = BTreeMap::new();
        for g in generators {
            let here = format!("{owner} generator {:?}", g.id);
            // Compiled (and so checked) even when it will not run.
            let compiled = compile_generator(owner, g)?;
            if lookup.is_none() && !g.reads.is_empty() {
                continue;
            }
            let level = spec
                .levels
                .iter()
                .find(|l| l.as_str() == g.level)
                .ok_or_else(|| {
                    Error::invalid(
                        &here,
                        format!("level {:?} is not one of the namespace's levels", g.level),
                    )
                })?;
            // One run per layer of the level that the matrix selects.
            let mut paths = BTreeMap::new();
            for ctx in spec.matrix_contexts() {
                if let Some(path) = level.fill(&ctx)
                    && layer.is_none_or(|l| *l == path)
                {
                    let bindings = level.matches(&path).unwrap_or_default();
                    paths.entry(path).or_insert(bindings);
                }
            }
            for (path, ctx) in paths {
                let out = compiled
                    .run(&ctx, params, lookup.unwrap_or(&NoLookup))
                    .map_err(|reason| Error::invalid(format!("{here} for layer {path}"), reason))?;
                let Some(out) = out else { continue };
                merge_generated(merged.entry(path.clone()).or_default(), &out, "").map_err(
                    |key| {
                        Error::invalid(
                            format!("{here} for layer {path}"),
                            format!(
                                "it sets {key}, which another generator already set there; a key has one source"
                            ),
                        )
                    },
                )?;
                generated.push((path, g.id.clone(), out));
            }
        }
        Ok(generated)
    })
    .map_err(|message| Error::Internal { message })?
}

mod upgrade;

/// What generators and cross-namespace rules read other namespaces through.
pub use confstrata_rules::{Finding, Lookup};
pub use upgrade::{Resolve, Upgrade, UpgradeChange, plan_upgrade};

static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();

/// What a parameter's schema expects, for an error: ` (expects integer,
/// 1..=65535)`.
fn expectation(schema: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        parts.push(t.to_owned());
    }
    match (schema.get("minimum"), schema.get("maximum")) {
        (Some(lo), Some(hi)) => parts.push(format!("{lo}..={hi}")),
        (Some(lo), None) => parts.push(format!(">= {lo}")),
        (None, Some(hi)) => parts.push(format!("<= {hi}")),
        (None, None) => {}
    }
    if let Some(Value::Array(values)) = schema.get("enum") {
        let shown: Vec<String> = values.iter().map(Value::to_string).collect();
        parts.push(format!("one of {}", shown.join(", ")));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" (expects {})", parts.join(", "))
    }
}

/// Parameters checks look up no other namespace.
struct NoLookup;

impl Lookup for NoLookup {
    fn resolved(
        &self,
        _namespace: &NamespaceName,
        _context: &Context,
    ) -> std::result::Result<Option<Document>, String> {
        Ok(None)
    }
}

/// The key paths in a template layer whose value a secret parameter fills
/// (a `$param` of one, or a `$format` that uses one). One inside an array
/// is refused: a sealed value is a whole key's value.
fn secret_keys(
    doc: &Document,
    prefix: &[String],
    secret: &std::collections::BTreeSet<String>,
    out: &mut Vec<confstrata_core::KeyPath>,
) -> std::result::Result<(), String> {
    fn uses_secret(v: &Value, secret: &std::collections::BTreeSet<String>) -> bool {
        if let Some(Ok(d)) = directive(v) {
            return d.parameters().iter().any(|p| secret.contains(p));
        }
        match v {
            Value::Object(m) => m.values().any(|v| uses_secret(v, secret)),
            Value::Array(a) => a.iter().any(|v| uses_secret(v, secret)),
            _ => false,
        }
    }
    for (k, v) in doc {
        let mut path = prefix.to_vec();
        path.push(k.clone());
        if let Some(Ok(d)) = directive(v) {
            if d.parameters().iter().any(|p| secret.contains(p)) {
                out.push(
                    confstrata_core::KeyPath::from_segments(&path).map_err(|e| e.to_string())?,
                );
            }
            continue;
        }
        match v {
            Value::Object(m) => secret_keys(m, &path, secret, out)?,
            Value::Array(_) if uses_secret(v, secret) => {
                return Err(format!(
                    "{}: a secret parameter fills a whole key's value, not an item of an array (a sealed value is a key's value)",
                    path.join(".")
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Merges a generator's output into a layer, refusing a key both set (the
/// error is its path).
fn merge_generated(
    into: &mut Document,
    out: &Document,
    prefix: &str,
) -> std::result::Result<(), String> {
    for (k, v) in out {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match (into.get_mut(k), v) {
            (None, _) => {
                into.insert(k.clone(), v.clone());
            }
            (Some(Value::Object(existing)), Value::Object(new)) => {
                merge_generated(existing, new, &path)?;
            }
            (Some(_), _) => return Err(path),
        }
    }
    Ok(())
}

/// A directive found in a layer document.
enum Directive<'a> {
    Param(&'a str),
    Format(&'a str),
}

impl Directive<'_> {
    fn name(&self) -> &'static str {
        match self {
            Directive::Param(_) => PARAM,
            Directive::Format(_) => FORMAT,
        }
    }

    /// The parameters it names.
    fn parameters(&self) -> Vec<String> {
        match self {
            Directive::Param(p) => vec![(*p).to_owned()],
            Directive::Format(f) => format_names(f).unwrap_or_default(),
        }
    }
}

/// Reads a value as a directive: a table with exactly one key, `$param`
/// or `$format`, holding a string.
fn directive(value: &Value) -> Option<std::result::Result<Directive<'_>, String>> {
    let map = value.as_object()?;
    if map.len() != 1 {
        return None;
    }
    let (key, arg) = map.iter().next()?;
    let which = match key.as_str() {
        PARAM => Directive::Param,
        FORMAT => Directive::Format,
        _ => return None,
    };
    Some(match arg.as_str() {
        Some(s) => Ok(which(s)),
        None => Err(format!("{key} takes a string, not {arg}")),
    })
}

fn for_each_directive(
    doc: &Document,
    f: &mut dyn FnMut(&Directive<'_>) -> Result<()>,
) -> Result<()> {
    fn walk(v: &Value, f: &mut dyn FnMut(&Directive<'_>) -> Result<()>) -> Result<()> {
        if let Some(d) = directive(v) {
            return match d {
                Ok(d) => f(&d),
                Err(reason) => Err(Error::invalid("template layer", reason)),
            };
        }
        match v {
            Value::Object(m) => m.values().try_for_each(|v| walk(v, f)),
            Value::Array(a) => a.iter().try_for_each(|v| walk(v, f)),
            _ => Ok(()),
        }
    }
    doc.values().try_for_each(|v| walk(v, f))
}

fn substitute_table(
    doc: &mut Document,
    params: &Map<String, Value>,
) -> std::result::Result<(), String> {
    doc.values_mut().try_for_each(|v| substitute(v, params))
}

/// Replaces every directive in `value` by what it stands for.
fn substitute(value: &mut Value, params: &Map<String, Value>) -> std::result::Result<(), String> {
    if let Some(d) = directive(value) {
        let new = match d? {
            Directive::Param(name) => params.get(name).cloned().ok_or_else(|| {
                format!(
                    "{PARAM} {name:?}: the parameter has no value (give it, or give it a default)"
                )
            })?,
            Directive::Format(text) => Value::String(format_with(text, params)?),
        };
        *value = new;
        return Ok(());
    }
    match value {
        Value::Object(m) => m.values_mut().try_for_each(|v| substitute(v, params)),
        Value::Array(a) => a.iter_mut().try_for_each(|v| substitute(v, params)),
        _ => Ok(()),
    }
}

/// The parameter names a `$format` string uses.
fn format_names(text: &str) -> std::result::Result<Vec<String>, String> {
    let mut names = Vec::new();
    scan_format(text, &mut |name| {
        names.push(name.to_owned());
        Ok(String::new())
    })?;
    Ok(names)
}

/// A `$format` string with each `{name}` replaced by the parameter's text.
fn format_with(text: &str, params: &Map<String, Value>) -> std::result::Result<String, String> {
    scan_format(text, &mut |name| match params.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::Bool(b)) => Ok(b.to_string()),
        Some(other) => Err(format!(
            "{FORMAT} {text:?}: parameter {name:?} is {other}, not a string, number or boolean"
        )),
        None => Err(format!(
            "{FORMAT} {text:?}: parameter {name:?} has no value"
        )),
    })
}

fn scan_format(
    text: &str,
    each: &mut dyn FnMut(&str) -> std::result::Result<String, String>,
) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => {
                            return Err(format!(
                                "{FORMAT} {text:?}: a '{{' is not closed (write '{{{{' for a brace)"
                            ));
                        }
                    }
                }
                if name.is_empty() {
                    return Err(format!("{FORMAT} {text:?}: an empty {{}}"));
                }
                out.push_str(&each(&name)?);
            }
            '}' => {
                return Err(format!(
                    "{FORMAT} {text:?}: a '}}' without '{{' (write '}}}}' for a brace)"
                ));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// The templates shipped in the binary, in name order.
const SHIPPED: &[(&str, &str)] = &[
    (
        "feature-flags.toml",
        include_str!("../library/feature-flags.toml"),
    ),
    (
        "grpc-client.toml",
        include_str!("../library/grpc-client.toml"),
    ),
    (
        "http-service.toml",
        include_str!("../library/http-service.toml"),
    ),
    (
        "http-service-2.toml",
        include_str!("../library/http-service-2.toml"),
    ),
    (
        "kafka-consumer.toml",
        include_str!("../library/kafka-consumer.toml"),
    ),
    (
        "logging-tracing.toml",
        include_str!("../library/logging-tracing.toml"),
    ),
    (
        "postgres-client.toml",
        include_str!("../library/postgres-client.toml"),
    ),
    (
        "postgres-client-2.toml",
        include_str!("../library/postgres-client-2.toml"),
    ),
    (
        "rate-limits.toml",
        include_str!("../library/rate-limits.toml"),
    ),
    (
        "redis-client.toml",
        include_str!("../library/redis-client.toml"),
    ),
    ("tls.toml", include_str!("../library/tls.toml")),
];

/// The best-practice library shipped in the binary. Each template passed
/// [`Template::check`] in this crate's tests; one that does not read is an
/// internal error.
pub fn library() -> Result<Vec<Template>> {
    // Read and checked once per process: each check compiles a chain.
    static LIBRARY: std::sync::OnceLock<std::result::Result<Vec<Template>, String>> =
        std::sync::OnceLock::new();
    LIBRARY
        .get_or_init(|| {
            SHIPPED
                .iter()
                .map(|(name, text)| {
                    Template::from_toml(text, name)
                        .map_err(|e| format!("the shipped template {name} does not read: {e}"))
                })
                .collect()
        })
        .clone()
        .map_err(|message| Error::Internal { message })
}

/// Splits `NAME[@VERSION]`.
pub fn split_id(spec: &str) -> Result<(&str, Option<u32>)> {
    Ok(match spec.split_once('@') {
        Some((n, v)) => (
            n,
            Some(v.parse::<u32>().map_err(|_| {
                Error::invalid(
                    format!("template {spec}"),
                    "the version after @ is a number",
                )
            })?),
        ),
        None => (spec, None),
    })
}

/// A shipped template by `NAME` or `NAME@VERSION`.
pub fn find(spec: &str) -> Result<Template> {
    let (name, version) = split_id(spec)?;
    let all = library()?;
    let names: Vec<String> = all.iter().map(Template::id).collect();
    all.into_iter()
        .filter(|t| t.name == name && version.is_none_or(|v| v == t.version))
        .max_by_key(|t| t.version)
        .ok_or_else(|| Error::TemplateNotFound {
            name: spec.to_owned(),
            known: names.join(", "),
        })
}

#[cfg(test)]
mod tests;
