//! Templates on the engine, for every front end (CLI, gRPC, REST): the
//! catalogue (the library shipped in the binary and the user templates
//! stored in [`TEMPLATES_NAMESPACE`]), rendering a template into the change
//! set that creates a namespace, a namespace's local overrides of its
//! template, and the upgrade plan to another version. Generators read
//! other namespaces through the caller's grants, and `explain` says what a
//! template renders where a namespace was made from one.
//!
//! User templates are stored like everything else: one layer
//! `<name>/<version>` of the reserved namespace `_templates` per version,
//! its document the template. A commit that writes one is checked by the
//! validation step (`validate.rs`): the template must check on its own
//! (parameters schema, directives, generators compile), and its render with
//! the defaults must validate clean over its whole matrix; a version, once
//! stored, is not replaced (`expect_revision 0`).

use std::collections::BTreeMap;
use std::sync::PoisonError;

use confstrata_core::serde_json::{Map, Value};
use confstrata_core::{
    At, ChangeSet, Context, DiffKind, Document, EntryOrigin, Error, Explanation, Finding,
    LayerPath, LevelTemplate, NamespaceName, NamespaceSpec, Op, Result, Severity, Stage,
};
use confstrata_templates::{self as templates, Lookup, Rendered, Source, Template, Upgrade};
use serde::Serialize;

use crate::Engine;
use crate::security::Caller;

/// The reserved namespace that stores user templates, one layer
/// `<name>/<version>` per version.
pub const TEMPLATES_NAMESPACE: &str = "_templates";

/// Whether `ns` is the user templates' namespace.
pub(crate) fn is_templates(ns: &NamespaceName) -> bool {
    ns.as_str() == TEMPLATES_NAMESPACE
}

/// A template in the catalogue and where it comes from.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogueEntry {
    /// `library` (shipped in the binary) or `user` (stored in `_templates`).
    pub source: &'static str,
    /// The template.
    pub template: Template,
}

/// What applying a template would create.
#[derive(Debug, Clone, Serialize)]
pub struct TemplatePlan {
    /// The template, `name@version`.
    pub template: String,
    /// The parameters used, defaults filled in.
    pub parameters: Map<String, Value>,
    /// The change set that creates the namespace and its layers, each with
    /// `expect_revision 0` (from [`Engine::template_apply`], with the
    /// values of secret parameters shown as the mask).
    pub change_set: ChangeSet,
}

/// One key where a namespace differs from its template's output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Override {
    /// The layer.
    pub layer: LayerPath,
    /// The key.
    pub key: String,
    /// `added`, `removed` or `changed` (the namespace relative to the template).
    pub change: &'static str,
    /// The template's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<Value>,
    /// The namespace's value (sealed values masked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<Value>,
}

/// A namespace's local overrides of its template.
#[derive(Debug, Clone, Serialize)]
pub struct TemplateDiff {
    /// The namespace.
    pub namespace: NamespaceName,
    /// Its template, `name@version`.
    pub template: String,
    /// Key by key.
    pub overrides: Vec<Override>,
    /// Whether its declaration (levels, matrix, validation) differs from
    /// the template's.
    pub declaration_changed: bool,
}

/// What became of a template change set: its dry run, or its commit.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Checked, nothing changed: the diff and the validation findings.
    DryRun(confstrata_core::view::DryRun),
    /// Committed.
    Committed(confstrata_core::CommitInfo),
}

/// The plan to upgrade a namespace to another version of its template.
#[derive(Debug, Clone, Serialize)]
pub struct UpgradePlan {
    /// The namespace.
    pub namespace: NamespaceName,
    /// The template it is at, `name@version`.
    pub from: String,
    /// The template it would be at.
    pub to: String,
    /// The merge: changes, conflicts, overrides kept.
    #[serde(flatten)]
    pub upgrade: Upgrade,
    /// The change set (empty when there is nothing to upgrade).
    pub change_set: ChangeSet,
}

/// What generators (and a rendered namespace's cross-namespace rules)
/// read with `config("name")`: that namespace's resolved configuration, as
/// `caller` may read it (sealed values masked unless the caller may read
/// secrets), for the variables of the context that namespace uses.
///
/// One lookup reads each namespace once (a render runs a generator per
/// layer of its level, each asking again).
pub struct CallerLookup<'a> {
    engine: &'a Engine,
    caller: &'a Caller,
    at: At,
    /// Namespace → its declaration and masked layers (`None`: no such
    /// namespace).
    read: std::sync::Mutex<BTreeMap<NamespaceName, Option<ReadNamespace>>>,
}

/// A namespace as a lookup read it: its declaration and its layers,
/// masked.
type ReadNamespace = (NamespaceSpec, Vec<confstrata_core::LayerRecord>);

impl Engine {
    /// The catalogue: the library shipped in the binary, then the user
    /// templates the caller may read, each version.
    pub fn templates(&self, caller: &Caller) -> Result<Vec<CatalogueEntry>> {
        let mut out: Vec<CatalogueEntry> = templates::library()?
            .into_iter()
            .map(|template| CatalogueEntry {
                source: "library",
                template,
            })
            .collect();
        let ns = templates_namespace()?;
        // A caller who may not read `_templates` sees the library alone.
        let layers = match self.layers(caller, &ns, At::Latest) {
            Ok(layers) => layers,
            Err(Error::NamespaceNotFound { .. } | Error::PermissionDenied { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        for l in layers {
            out.push(CatalogueEntry {
                source: "user",
                template: stored_template(&l.layer, &l.document)?,
            });
        }
        Ok(out)
    }

    /// A template by `NAME` (its newest version) or `NAME@VERSION`, from
    /// the catalogue.
    pub fn template(&self, caller: &Caller, spec: &str) -> Result<Template> {
        match templates::find(spec) {
            Err(Error::TemplateNotFound { .. }) => {}
            other => return other,
        }
        let (name, version) = templates::split_id(spec)?;
        let all = self.templates(caller)?;
        let known: Vec<String> = all.iter().map(|e| e.template.id()).collect();
        all.into_iter()
            .map(|e| e.template)
            .filter(|t| t.name == name && version.is_none_or(|v| v == t.version))
            .max_by_key(|t| t.version)
            .ok_or_else(|| Error::TemplateNotFound {
                name: spec.to_owned(),
                known: known.join(", "),
            })
    }

    /// [`Engine::template`] with where it comes from (`library` or `user`).
    pub fn template_entry(&self, caller: &Caller, spec: &str) -> Result<CatalogueEntry> {
        let template = self.template(caller, spec)?;
        let source = if templates::find(&template.id()).is_ok() {
            "library"
        } else {
            "user"
        };
        Ok(CatalogueEntry { source, template })
    }

    /// Refuses, as the read it is, generators (a template's or a
    /// namespace's) that read a namespace the caller may not read (the run
    /// would otherwise fail as a script error).
    pub(crate) fn check_reads(
        &self,
        caller: &Caller,
        generators: &[templates::GeneratorSpec],
        at: At,
    ) -> Result<()> {
        for g in generators {
            for r in &g.reads {
                let ns: NamespaceName = r.parse()?;
                match self.namespace(caller, &ns, at) {
                    Ok(_) | Err(Error::NamespaceNotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Renders `spec` (`NAME[@VERSION]`) for a new namespace `ns` with the
    /// `given` parameters (checked, defaults filled in; generators read
    /// through the caller's grants), importing `imports` (shared
    /// namespaces as its lowest layers: the template's rules then validate
    /// the namespace over them): the change set that creates it. The caller
    /// commits it or dry-runs it.
    #[allow(clippy::too_many_arguments)]
    pub fn template_plan(
        &self,
        caller: &Caller,
        spec: &str,
        ns: &NamespaceName,
        given: &BTreeMap<String, Value>,
        imports: &[NamespaceName],
        author: &str,
        message: Option<String>,
    ) -> Result<TemplatePlan> {
        let t = self.template(caller, spec)?;
        let params = t.resolve_parameters(given)?;
        self.check_reads(caller, &t.generators, At::Latest)?;
        let mut rendered = t.render_with(ns, &params, &self.lookup(caller, At::Latest))?;
        rendered.spec.imports = imports.to_vec();
        rendered.spec.validate()?;
        Ok(TemplatePlan {
            template: t.id(),
            // Secret parameters are shown as the mask, as they are recorded.
            parameters: t.masked_parameters(&params),
            change_set: ChangeSet {
                author: author_of(caller, author),
                message: message.unwrap_or_else(|| format!("from template {}", t.id())),
                ops: rendered.create_ops(),
            },
        })
    }

    /// [`Engine::template_plan`], then the change set committed (`commit`)
    /// or dry-run. A namespace that exists already is a conflict (a
    /// template creates a new namespace).
    #[allow(clippy::too_many_arguments)]
    pub fn template_apply(
        &self,
        caller: &Caller,
        spec: &str,
        ns: &NamespaceName,
        given: &BTreeMap<String, Value>,
        imports: &[NamespaceName],
        commit: bool,
        author: &str,
        message: Option<String>,
    ) -> Result<(TemplatePlan, Outcome)> {
        let mut plan = self.template_plan(caller, spec, ns, given, imports, author, message)?;
        let outcome = self.run_change_set(caller, &plan.change_set, commit)?;
        // The answer shows secrets as the mask, like every read.
        for op in &mut plan.change_set.ops {
            if let Op::Set {
                value,
                secret: true,
                ..
            } = op
            {
                *value = Value::String(templates::SEALED.to_owned());
            }
        }
        Ok((plan, outcome))
    }

    /// [`Engine::template_upgrade`], then its change set committed
    /// (`commit`) or dry-run; `None` when there is nothing to upgrade. A
    /// commit with conflicts that `resolve` does not settle is refused and
    /// changes nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn template_upgrade_apply(
        &self,
        caller: &Caller,
        ns: &NamespaceName,
        to: Option<u32>,
        given: &BTreeMap<String, Value>,
        resolve: Option<templates::Resolve>,
        commit: bool,
        author: &str,
        message: Option<String>,
    ) -> Result<(UpgradePlan, Option<Outcome>)> {
        let plan = self.template_upgrade(caller, ns, to, given, resolve, author, message)?;
        if plan.change_set.ops.is_empty() {
            return Ok((plan, None));
        }
        if commit && resolve.is_none() && !plan.upgrade.conflicts.is_empty() {
            return Err(Error::invalid(
                format!("upgrade of {ns} to template {}", plan.to),
                format!(
                    "{} conflict(s) between the namespace's values and the new template (first: {}); nothing was changed: settle them with resolve ours or theirs (or change the keys first)",
                    plan.upgrade.conflicts.len(),
                    plan.upgrade.conflicts[0].key
                ),
            ));
        }
        let outcome = self.run_change_set(caller, &plan.change_set, commit)?;
        Ok((plan, Some(outcome)))
    }

    /// Stores a user template ([`Engine::template_put_plan`]): committed,
    /// or dry-run (`commit` false) to see what its check finds.
    pub fn template_put(
        &self,
        caller: &Caller,
        template: &Template,
        commit: bool,
        author: &str,
        message: Option<String>,
    ) -> Result<(ChangeSet, Outcome)> {
        let cs = self.template_put_plan(caller, template, author, message)?;
        let outcome = self.run_change_set(caller, &cs, commit)?;
        Ok((cs, outcome))
    }

    pub(crate) fn run_change_set(
        &self,
        caller: &Caller,
        cs: &ChangeSet,
        commit: bool,
    ) -> Result<Outcome> {
        Ok(if commit {
            Outcome::Committed(self.commit(caller, cs)?)
        } else {
            Outcome::DryRun(self.dry_run(caller, cs)?)
        })
    }

    /// The template a declaration records, rendered again with the
    /// parameters it recorded, its generators reading as `caller` at `at`;
    /// an error when it records none.
    fn render_origin(
        &self,
        caller: &Caller,
        spec: &NamespaceSpec,
        at: At,
    ) -> Result<(confstrata_core::TemplateOrigin, Template, Rendered)> {
        let Some(origin) = spec.template.clone() else {
            return Err(Error::invalid(
                format!("namespace {}", spec.name),
                "it was not made from a template (its declaration records none)",
            ));
        };
        let t = self.template(caller, &format!("{}@{}", origin.name, origin.version))?;
        self.check_reads(caller, &t.generators, at)?;
        let rendered = t.render_with(&spec.name, &origin.parameters, &self.lookup(caller, at))?;
        Ok((origin, t, rendered))
    }

    /// What a namespace changed relative to its template: its local
    /// overrides, key by key (sealed values masked).
    pub fn template_diff(&self, caller: &Caller, ns: &NamespaceName) -> Result<TemplateDiff> {
        let record = self.namespace(caller, ns, At::Latest)?;
        let (_, t, rendered) = self.render_origin(caller, &record.spec, At::Latest)?;
        let current = self.export_layers(caller, ns, At::Latest)?;
        let mut layers: BTreeMap<LayerPath, (Document, Document)> = BTreeMap::new();
        for (layer, doc) in &rendered.layers {
            layers.entry(layer.clone()).or_default().0 = doc.clone();
        }
        for r in current {
            layers.entry(r.layer).or_default().1 = r.document;
        }
        let mut overrides = Vec::new();
        for (layer, (theirs, ours)) in &layers {
            for d in confstrata_core::diff(theirs, ours) {
                overrides.push(Override {
                    layer: layer.clone(),
                    key: d.key.to_string(),
                    change: match d.kind {
                        DiffKind::Added => "added",
                        DiffKind::Removed => "removed",
                        DiffKind::Changed => "changed",
                    },
                    template: d.old,
                    current: d.new,
                });
            }
        }
        // Imports and generators are the namespace's own (a template
        // declares neither on it).
        let mut declared = rendered.spec.clone();
        declared.template = record.spec.template.clone();
        declared.imports = record.spec.imports.clone();
        declared.generators = record.spec.generators.clone();
        Ok(TemplateDiff {
            namespace: ns.clone(),
            template: t.id(),
            overrides,
            declaration_changed: declared != record.spec,
        })
    }

    /// Plans the upgrade of a namespace to version `to` of its template
    /// (its newest when `None`), with the parameters it recorded (those the
    /// new version still declares) overridden by `given`: a three-way merge
    /// that keeps local overrides and reports conflicts
    /// ([`templates::plan_upgrade`]). Nothing is committed here; the
    /// change set is empty when there is nothing to upgrade.
    #[allow(clippy::too_many_arguments)]
    pub fn template_upgrade(
        &self,
        caller: &Caller,
        ns: &NamespaceName,
        to: Option<u32>,
        given: &BTreeMap<String, Value>,
        resolve: Option<templates::Resolve>,
        author: &str,
        message: Option<String>,
    ) -> Result<UpgradePlan> {
        let record = self.namespace(caller, ns, At::Latest)?;
        let (origin, old, base) = self.render_origin(caller, &record.spec, At::Latest)?;
        let new = match to {
            Some(v) => self.template(caller, &format!("{}@{v}", origin.name))?,
            None => self.template(caller, &origin.name)?,
        };
        let mut params: BTreeMap<String, Value> = origin
            .parameters
            .iter()
            .filter(|(k, _)| new.parameters_list().iter().any(|p| &p.name == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        params.extend(given.clone());
        let new_params = new.resolve_parameters(&params)?;
        self.check_reads(caller, &new.generators, At::Latest)?;
        let change_set = |ops| ChangeSet {
            author: author_of(caller, author),
            message: message
                .clone()
                .unwrap_or_else(|| format!("upgrade to template {}", new.id())),
            ops,
        };
        if new.version == origin.version && new_params == origin.parameters {
            return Ok(UpgradePlan {
                namespace: ns.clone(),
                from: old.id(),
                to: new.id(),
                upgrade: Upgrade::default(),
                change_set: change_set(Vec::new()),
            });
        }
        let theirs = new.render_with(ns, &new_params, &self.lookup(caller, At::Latest))?;
        let layers = self.export_layers(caller, ns, At::Latest)?;
        let upgrade = templates::plan_upgrade(&base, &theirs, &record, &layers, resolve);
        let ops = upgrade.ops.clone();
        Ok(UpgradePlan {
            namespace: ns.clone(),
            from: old.id(),
            to: new.id(),
            upgrade,
            change_set: change_set(ops),
        })
    }

    /// The change set that stores a user template: `_templates` declared
    /// if it is not yet, and the layer `<name>/<version>` created (a
    /// version is never replaced). The commit's validation checks the
    /// template (see the module docs). Refused here: a name the library
    /// uses, a name that is not one path segment.
    pub fn template_put_plan(
        &self,
        caller: &Caller,
        template: &Template,
        author: &str,
        message: Option<String>,
    ) -> Result<ChangeSet> {
        let what = format!("template {}", template.id());
        if templates::library()?
            .iter()
            .any(|t| t.name == template.name)
        {
            return Err(Error::invalid(
                what,
                "the library shipped in the binary has a template of this name; choose another",
            ));
        }
        let layer = template_layer(template)?;
        let ns = templates_namespace()?;
        let mut ops = Vec::new();
        match self.namespace(caller, &ns, At::Latest) {
            Ok(_) => {}
            Err(Error::NamespaceNotFound { .. }) => ops.push(Op::PutNamespace {
                spec: NamespaceSpec {
                    name: ns.clone(),
                    description: "user templates, one layer <name>/<version> each".into(),
                    levels: vec![LevelTemplate::parse("{template}/{version}")?],
                    matrix: BTreeMap::new(),
                    validation: confstrata_core::Validation::default(),
                    template: None,
                    imports: Vec::new(),
                    generators: Vec::new(),
                },
                expect_revision: Some(0),
            }),
            Err(e) => return Err(e),
        }
        let document = match confstrata_core::serde_json::to_value(template) {
            Ok(Value::Object(doc)) => doc,
            _ => return Err(Error::invalid(what, "it does not encode as a table")),
        };
        ops.push(Op::Put {
            namespace: ns,
            layer,
            document,
            expect_revision: Some(0),
        });
        Ok(ChangeSet {
            author: author_of(caller, author),
            message: message.unwrap_or_else(|| format!("add template {}", template.id())),
            ops,
        })
    }

    /// A [`Lookup`] over this engine as `caller` at `at`, for rendering
    /// templates whose generators read other namespaces.
    pub fn lookup<'a>(&'a self, caller: &'a Caller, at: At) -> CallerLookup<'a> {
        CallerLookup {
            engine: self,
            caller,
            at,
            read: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// Fills each entry's [`EntryOrigin`] when the namespace was made from
    /// a template, or declares generators (whose value, where one computes
    /// the key in the entry's layer, is the origin). Best effort: a
    /// template or generator that cannot run again (it reads a namespace
    /// the caller may not read) leaves the entries as they are; explain
    /// never fails for it.
    pub(crate) fn explain_origins(
        &self,
        caller: &Caller,
        spec: &NamespaceSpec,
        at: At,
        explanation: &mut Explanation,
    ) {
        self.template_origins(caller, spec, at, explanation);
        if spec.generators.is_empty() {
            return;
        }
        let key = explanation.key.clone();
        for e in explanation
            .entries
            .iter_mut()
            .filter(|e| e.namespace.is_none())
        {
            if let Some((id, value)) = self.generated_value(caller, spec, at, &e.layer, &key) {
                e.origin = Some(EntryOrigin {
                    template: None,
                    generator: Some(id),
                    overridden: e.deleted || e.value.as_ref() != Some(&value),
                    template_value: Some(value),
                });
            }
        }
    }

    /// [`Engine::explain_origins`] of the template the namespace was made
    /// from.
    fn template_origins(
        &self,
        caller: &Caller,
        spec: &NamespaceSpec,
        at: At,
        explanation: &mut Explanation,
    ) {
        if spec.template.is_none() {
            return;
        }
        let Ok((_, t, rendered)) = self.render_origin(caller, spec, at) else {
            return;
        };
        let id = t.id();
        let key = explanation.key.clone();
        // An imported namespace's layers are not the template's.
        for e in explanation
            .entries
            .iter_mut()
            .filter(|e| e.namespace.is_none())
        {
            let source = rendered.source(&e.layer, &key);
            let template_value = rendered
                .layer(&e.layer)
                .and_then(|d| confstrata_core::doc::get(d, &key))
                .cloned();
            // A key a secret parameter fills renders as the mask: the
            // secret itself is neither recorded nor compared.
            let secret = rendered
                .sealed
                .iter()
                .any(|(l, k)| *l == e.layer && *k == key);
            let overridden =
                e.deleted || template_value.is_none() || (!secret && e.value != template_value);
            e.origin = Some(EntryOrigin {
                template: Some(id.clone()),
                generator: match source {
                    Some(Source::Generator(g)) => Some(g),
                    _ => None,
                },
                template_value,
                overridden,
            });
        }
    }
}

impl CallerLookup<'_> {
    /// The namespace's declaration and masked layers, read once.
    fn read(&self, namespace: &NamespaceName) -> Result<Option<ReadNamespace>> {
        let mut read = self.read.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = read.get(namespace) {
            return Ok(found.clone());
        }
        let found = match self.engine.namespace(self.caller, namespace, self.at) {
            Ok(record) => Some((
                record.spec,
                self.engine.export_layers(self.caller, namespace, self.at)?,
            )),
            Err(Error::NamespaceNotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        read.insert(namespace.clone(), found.clone());
        Ok(found)
    }
}

impl Lookup for CallerLookup<'_> {
    /// The namespace resolved from the layers the caller may read, every
    /// sealed value masked whatever the caller's rights: a generator's
    /// output is written in plain text, so it must never hold a secret
    /// (rules see sealed values masked the same way).
    fn resolved(
        &self,
        namespace: &NamespaceName,
        context: &Context,
    ) -> std::result::Result<Option<Document>, String> {
        let Some((spec, _)) = self.read(namespace).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        // Imports included, each read as the caller may read it.
        let order = confstrata_core::imports::import_order(&spec, &mut |n| {
            Ok(self.read(n)?.map(|(s, _)| s))
        })
        .map_err(|e| e.to_string())?;
        let wanted = confstrata_core::imports::chain_layers(&order, &spec.restrict(context))
            .map_err(|e| e.to_string())?;
        let mut read = Vec::with_capacity(order.len());
        for s in &order {
            if let Some((_, layers)) = self.read(&s.name).map_err(|e| e.to_string())? {
                read.push((s.name.clone(), layers));
            }
        }
        let inputs: Vec<confstrata_core::LayerInput<'_>> = wanted
            .iter()
            .filter_map(|w| {
                let (_, layers) = read.iter().find(|(n, _)| *n == w.namespace)?;
                let l = layers.iter().find(|l| l.layer == w.layer)?;
                Some(confstrata_core::LayerInput {
                    namespace: w.imported.then_some(&l.namespace),
                    layer: &l.layer,
                    revision: l.revision,
                    document: &l.document,
                })
            })
            .collect();
        Ok(Some(confstrata_core::resolve(&inputs).to_document()))
    }
}

/// The author a change set names: the one given, else the caller's (the
/// commit records the caller's anyway for a remote caller).
pub(crate) fn author_of(caller: &Caller, author: &str) -> String {
    if author.is_empty() {
        caller.author()
    } else {
        author.to_owned()
    }
}

fn templates_namespace() -> Result<NamespaceName> {
    TEMPLATES_NAMESPACE.parse()
}

/// The layer a user template is stored at: `<name>/<version>`.
fn template_layer(t: &Template) -> Result<LayerPath> {
    let layer = LayerPath::parse(&format!("{}/{}", t.name, t.version));
    match layer {
        Ok(l) if l.segments().count() == 2 => Ok(l),
        _ => Err(Error::invalid(
            format!("template {}", t.id()),
            "a user template's name is one path segment (letters, digits, '-', '_')",
        )),
    }
}

/// Reads a stored user template, checking that it is stored at its own
/// `<name>/<version>`.
fn stored_template(layer: &LayerPath, doc: &Document) -> Result<Template> {
    let what = format!("layer {TEMPLATES_NAMESPACE}:{layer}");
    let t: Template = confstrata_core::serde_json::from_value(Value::Object(doc.clone()))
        .map_err(|e| Error::invalid(&what, format!("not a template: {e}")))?;
    if template_layer(&t)? != *layer {
        return Err(Error::invalid(
            &what,
            format!(
                "it holds template {}, which belongs at {}/{}",
                t.id(),
                t.name,
                t.version
            ),
        ));
    }
    Ok(t)
}

/// Checks the user templates a commit writes: each checks on its own and
/// its render with the defaults validates clean over its matrix
/// (cross-namespace rules and generators read `lookup`, the state the
/// commit would leave). Every problem is an error finding on
/// `_templates`, naming the layer.
pub(crate) fn check_stored(
    layers: &[(LayerPath, Option<Document>, bool)],
    lookup: &dyn Lookup,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (layer, doc, existed) in layers {
        let finding = |message: String| Finding {
            namespace: TEMPLATES_NAMESPACE.to_owned(),
            stage: Stage::Schema,
            rule: "template".to_owned(),
            severity: Severity::Error,
            context: Context::new(),
            key: Some(layer.to_string()),
            message,
        };
        if *existed {
            // Namespaces record the version they came from, and explain,
            // diff and upgrade render it again: a stored version is never
            // changed or removed.
            out.push(finding(
                "a stored template version is never changed or deleted: store the change as the next version".to_owned(),
            ));
            continue;
        }
        let Some(doc) = doc else { continue };
        let t = match stored_template(layer, doc).and_then(|t| t.check().map(|()| t)) {
            Ok(t) => t,
            Err(e) => {
                out.push(finding(e.to_string()));
                continue;
            }
        };
        if t.parameters_list().iter().any(|p| p.required) {
            // No default render to validate: its parameters must be given.
            continue;
        }
        let probe: NamespaceName = match t.name.parse() {
            Ok(n) => n,
            Err(e) => {
                out.push(finding(format!("{e}")));
                continue;
            }
        };
        let rendered = t
            .resolve_parameters(&BTreeMap::new())
            .and_then(|p| t.render_with(&probe, &p, lookup));
        match rendered.and_then(|r| r.validate(lookup)) {
            Ok(findings) => out.extend(
                findings
                    .into_iter()
                    .filter(|f| f.severity == Severity::Error)
                    .map(|f| finding(format!("with its defaults, {f}"))),
            ),
            Err(e) => out.push(finding(format!("with its defaults: {e}"))),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_templates_mask_is_the_stores() {
        assert_eq!(confstrata_templates::SEALED, confstrata_crypto::MASK);
    }
}
