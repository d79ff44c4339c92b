//! The validation chain on the request path: which namespaces and contexts a
//! change set can affect, their resolved configuration as the change would
//! leave it, and the compiled chains (`confstrata-rules`) that check it.
//!
//! - A namespace is checked when the change set touches it, and when its
//!   cross-namespace rules read one it touches (`config("billing")`).
//! - A changed declaration (its levels, matrix or chain) checks every
//!   context of its matrix; a changed layer checks the contexts whose
//!   layers include it (a layer with a variable outside the matrix, such as
//!   `instance/i-7`, adds that binding to each matrix context).
//! - Rules see sealed values as `"<sealed>"`: a finding can never carry a
//!   secret, and schemas still see a string.
//! - Chains are compiled once per declaration and cached.
//! - A commit that may need validation holds the engine's validation lock
//!   for writing from the check to the commit, so nothing another commit
//!   writes can slip in between: the committed state is the validated one.
//!   Commits that touch no chain hold it for reading and keep group commit.
//! - The user library (schema entries and global validators shared by every
//!   namespace) is the validation chain declared on the reserved namespace
//!   [`LIBRARY_NAMESPACE`]: versioned like any declaration. A change to it is
//!   checked on its own and then re-checks every namespace with a chain.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use confstrata_core::{
    Context, Document, Error, Finding, LayerInput, LayerPath, NamespaceName, NamespaceSpec, Plan,
    Result, Severity, Store, resolve,
};
use confstrata_rules::{Compiled, Library, Limits, Lookup};

/// The reserved namespace whose declared validation chain is the user
/// library: `validation.schema."$defs"` are schema entries (`"$ref":
/// "confstrata:<name>"`), `validation.validators` are global validators.
pub const LIBRARY_NAMESPACE: &str = "_library";

fn is_library(ns: &NamespaceName) -> bool {
    ns.as_str() == LIBRARY_NAMESPACE
}

/// Which namespaces have a chain, and which read which.
#[derive(Default)]
struct Index {
    /// Namespaces with a validation chain.
    chained: std::collections::HashSet<NamespaceName>,
    /// Referenced namespace → the namespaces whose rules read it.
    readers: HashMap<NamespaceName, BTreeSet<NamespaceName>>,
}

/// Compiled chains by namespace and declaration, and which namespaces read
/// which (for cross-namespace rules).
#[derive(Default)]
pub(crate) struct Validator {
    compiled: Mutex<HashMap<(NamespaceName, String), Arc<Compiled>>>,
    /// The user library, by its declaration's text.
    library: Mutex<Option<(String, Arc<Library>)>>,
    /// Referenced namespace → the namespaces whose rules read it; rebuilt
    /// after any declaration changes.
    dependents: Mutex<Option<Index>>,
    /// Shared by commits that touch no chain, exclusive from validation to
    /// commit for those that may.
    /// (`parking_lot`, whose guards may be released on another thread: an
    /// async commit's shared guard is released by the store's writer.)
    pub(crate) lock: Arc<parking_lot::RwLock<()>>,
    limits: Limits,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The state a change set would leave: the committed state at `revision`
/// with the plan's writes on top.
pub(crate) struct Candidate<'a> {
    pub(crate) store: &'a dyn Store,
    pub(crate) revision: u64,
    pub(crate) specs: BTreeMap<NamespaceName, NamespaceSpec>,
    pub(crate) layers: BTreeMap<(NamespaceName, LayerPath), Option<Document>>,
    /// Inside a commit's transaction: reads the state the change set lands
    /// on (the store at `revision` plus the change sets before it in the
    /// same group commit) instead of the store at `revision`.
    pub(crate) in_commit: Option<std::cell::RefCell<&'a mut dyn confstrata_core::StateReader>>,
}

impl<'a> Candidate<'a> {
    /// The committed state at `revision` (nothing on top).
    pub(crate) fn current(store: &'a dyn Store, revision: u64) -> Candidate<'a> {
        Candidate {
            store,
            revision,
            specs: BTreeMap::new(),
            layers: BTreeMap::new(),
            in_commit: None,
        }
    }

    /// `plan`'s writes over the state a store's transaction reads through
    /// `reader` (see [`confstrata_core::CheckFn`]). `store` and `revision`
    /// serve only the index of chains, which no commit on this path changes.
    pub(crate) fn in_commit(
        store: &'a dyn Store,
        revision: u64,
        plan: &Plan,
        reader: &'a mut dyn confstrata_core::StateReader,
    ) -> Candidate<'a> {
        let mut c = Candidate::with_plan(store, revision, plan);
        c.in_commit = Some(std::cell::RefCell::new(reader));
        c
    }

    /// `plan`'s writes over the state at `revision`.
    pub(crate) fn with_plan(store: &'a dyn Store, revision: u64, plan: &Plan) -> Candidate<'a> {
        let mut c = Candidate::current(store, revision);
        for s in &plan.namespaces {
            c.specs.insert(s.name.clone(), s.clone());
        }
        for (ns, layer, doc) in &plan.layers {
            c.layers.insert((ns.clone(), layer.clone()), doc.clone());
        }
        c
    }

    fn spec(&self, ns: &NamespaceName) -> Result<Option<NamespaceSpec>> {
        if let Some(s) = self.specs.get(ns) {
            return Ok(Some(s.clone()));
        }
        if let Some(reader) = &self.in_commit {
            return Ok(reader.borrow_mut().namespace(ns)?.map(|(spec, _)| spec));
        }
        Ok(self.store.namespace(ns, self.revision)?.map(|r| r.spec))
    }

    fn layer(&self, ns: &NamespaceName, layer: &LayerPath) -> Result<Option<Document>> {
        if let Some(d) = self.layers.get(&(ns.clone(), layer.clone())) {
            return Ok(d.clone());
        }
        if let Some(reader) = &self.in_commit {
            return Ok(reader.borrow_mut().layer(ns, layer)?.map(|(doc, _)| doc));
        }
        Ok(self
            .store
            .layer(ns, layer, self.revision)?
            .map(|r| r.document))
    }

    /// The resolved configuration of `ns` in `ctx` (restricted to the
    /// variables `ns` uses), sealed values masked; `None` if `ns` does not
    /// exist.
    pub(crate) fn resolve(&self, ns: &NamespaceName, ctx: &Context) -> Result<Option<Document>> {
        let Some(spec) = self.spec(ns)? else {
            return Ok(None);
        };
        let vars = spec.variables();
        let ctx: Context = ctx
            .iter()
            .filter(|(k, _)| vars.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let wanted = spec.layers_for(&ctx)?;
        let mut docs = Vec::with_capacity(wanted.len());
        for l in &wanted {
            if let Some(d) = self.layer(ns, l)? {
                docs.push((l.clone(), d));
            }
        }
        let inputs: Vec<LayerInput<'_>> = docs
            .iter()
            .map(|(layer, document)| LayerInput {
                layer,
                revision: 0,
                document,
            })
            .collect();
        let mut doc = resolve(&inputs).to_document();
        confstrata_crypto::mask(&mut doc);
        Ok(Some(doc))
    }
}

impl Lookup for Candidate<'_> {
    fn resolved(
        &self,
        namespace: &NamespaceName,
        context: &Context,
    ) -> std::result::Result<Option<Document>, String> {
        Candidate::resolve(self, namespace, context).map_err(|e| e.to_string())
    }
}

/// The contexts of `spec`'s matrix whose layers include `layer`, with the
/// layer's own bindings for variables outside the matrix.
fn contexts_of_layer(spec: &NamespaceSpec, layer: &LayerPath) -> Vec<Context> {
    let bindings = spec
        .levels
        .iter()
        .find_map(|l| l.matches(layer))
        .unwrap_or_default();
    spec.matrix_contexts()
        .into_iter()
        .filter(|c| {
            bindings
                .iter()
                .all(|(k, v)| c.get(k).is_none_or(|x| x == v))
        })
        .map(|mut c| {
            c.extend(bindings.clone());
            c
        })
        .filter(|c| {
            spec.layers_for(c)
                .is_ok_and(|layers| layers.contains(layer))
        })
        .collect()
}

impl Validator {
    /// The user library as the candidate state declares it (cached by its
    /// declaration); one that does not check is an error naming it.
    pub(crate) fn library(&self, candidate: &Candidate<'_>) -> Result<(String, Arc<Library>)> {
        let name: NamespaceName = LIBRARY_NAMESPACE
            .parse()
            .map_err(|e: Error| Error::storage(e))?;
        let validation = candidate
            .spec(&name)?
            .map(|s| s.validation)
            .unwrap_or_default();
        let text = confstrata_core::serde_json::to_string(&validation)
            .map_err(|e| Error::storage(format!("encoding the library: {e}")))?;
        if let Some((t, l)) = lock(&self.library).as_ref()
            && *t == text
        {
            return Ok((text, Arc::clone(l)));
        }
        let invalid = |e: Error| {
            Error::invalid(
                format!("the validation library (namespace {LIBRARY_NAMESPACE})"),
                e.to_string(),
            )
        };
        let library = Library::from_validation(&validation).map_err(invalid)?;
        library.check(&self.limits).map_err(invalid)?;
        let library = Arc::new(library);
        *lock(&self.library) = Some((text.clone(), Arc::clone(&library)));
        Ok((text, library))
    }

    /// The compiled chain of a declaration with the library (cached); a
    /// chain that does not compile is an error naming the namespace.
    pub(crate) fn compiled(
        &self,
        spec: &NamespaceSpec,
        library: &(String, Arc<Library>),
    ) -> Result<Arc<Compiled>> {
        let key_text = confstrata_core::serde_json::to_string(&spec.validation)
            .map_err(|e| Error::storage(format!("encoding a validation chain: {e}")))?;
        let key = (spec.name.clone(), format!("{key_text}\n{}", library.0));
        if let Some(c) = lock(&self.compiled).get(&key) {
            return Ok(Arc::clone(c));
        }
        let c = Arc::new(
            Compiled::compile_with(&spec.name, &spec.validation, &library.1, &self.limits)
                .map_err(|e| {
                    Error::invalid(
                        format!("the validation chain of namespace {}", spec.name),
                        e.to_string(),
                    )
                })?,
        );
        let mut cache = lock(&self.compiled);
        // Old declarations of the same namespace are dropped.
        cache.retain(|(n, _), _| n != &spec.name);
        cache.insert(key, Arc::clone(&c));
        Ok(c)
    }

    /// Forgets which namespaces read which (a declaration changed).
    pub(crate) fn declarations_changed(&self) {
        *lock(&self.dependents) = None;
    }

    /// Runs `f` on the index of chains, building it if a declaration
    /// changed since.
    fn with_index<T>(
        &self,
        store: &dyn Store,
        revision: u64,
        f: impl FnOnce(&Index) -> T,
    ) -> Result<T> {
        let mut guard = lock(&self.dependents);
        if guard.is_none() {
            let mut index = Index::default();
            let library = self
                .library(&Candidate::current(store, revision))
                .unwrap_or_else(|_| (String::new(), Arc::new(Library::default())));
            for r in store.namespaces(revision)? {
                if r.spec.validation.is_empty() || is_library(&r.spec.name) {
                    continue;
                }
                index.chained.insert(r.spec.name.clone());
                // A stored chain that no longer compiles reads nothing here;
                // checking that namespace reports the compile error.
                if let Ok(c) = self.compiled(&r.spec, &library) {
                    for referenced in c.references() {
                        index
                            .readers
                            .entry(referenced)
                            .or_default()
                            .insert(r.spec.name.clone());
                    }
                }
            }
            *guard = Some(index);
        }
        Ok(match guard.as_ref() {
            Some(i) => f(i),
            None => f(&Index::default()),
        })
    }

    /// The namespaces whose rules read `ns`.
    fn dependents(
        &self,
        store: &dyn Store,
        revision: u64,
        ns: &NamespaceName,
    ) -> Result<BTreeSet<NamespaceName>> {
        self.with_index(store, revision, |i| {
            i.readers.get(ns).cloned().unwrap_or_default()
        })
    }

    /// Whether a change set could need validation, from its ops alone (no
    /// reads beyond the cached index): it touches a namespace with a chain
    /// or one that chains read, the library, or declares a chain. When this
    /// is false the commit skips planning here and goes straight to the
    /// store, keeping the cost of unvalidated commits as it was.
    pub(crate) fn may_need(
        &self,
        store: &dyn Store,
        revision: u64,
        changes: &confstrata_core::ChangeSet,
    ) -> Result<bool> {
        use confstrata_core::Op;
        self.with_index(store, revision, |i| {
            changes.ops.iter().any(|op| {
                let ns = match op {
                    Op::PutNamespace { spec, .. } => {
                        if !spec.validation.is_empty() {
                            return true;
                        }
                        &spec.name
                    }
                    Op::Put { namespace, .. }
                    | Op::Set { namespace, .. }
                    | Op::Unset { namespace, .. }
                    | Op::Delete { namespace, .. } => namespace,
                };
                is_library(ns) || i.chained.contains(ns) || i.readers.contains_key(ns)
            })
        })
    }

    /// Whether a plan touches anything with a validation chain, directly or
    /// through a namespace whose rules read what it touches.
    pub(crate) fn needed(&self, candidate: &Candidate<'_>, plan: &Plan) -> Result<bool> {
        for ns in touched(plan).keys() {
            if is_library(ns) {
                return Ok(true);
            }
            if candidate
                .spec(ns)?
                .is_some_and(|s| !s.validation.is_empty())
            {
                return Ok(true);
            }
            if !self
                .dependents(candidate.store, candidate.revision, ns)?
                .is_empty()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Runs the chains a plan can affect, over the state it would leave.
    pub(crate) fn check_plan(
        &self,
        candidate: &Candidate<'_>,
        plan: &Plan,
    ) -> Result<Vec<Finding>> {
        let touched = touched(plan);
        let library = self.library(candidate)?;
        let mut work: BTreeMap<NamespaceName, BTreeSet<Context>> = BTreeMap::new();
        if touched.keys().any(is_library) {
            if candidate.in_commit.is_some() {
                // A library change declares: it takes the exclusive path.
                return Err(Error::storage(
                    "a library change cannot be checked inside a group commit",
                ));
            }
            // Every chain may read the library: check them all.
            let mut names: BTreeSet<NamespaceName> = candidate
                .store
                .namespaces(candidate.revision)?
                .into_iter()
                .map(|r| r.spec.name)
                .collect();
            names.extend(candidate.specs.keys().cloned());
            for name in names {
                if let Some(spec) = candidate.spec(&name)?
                    && !spec.validation.is_empty()
                    && !is_library(&name)
                {
                    work.entry(name).or_default().extend(spec.matrix_contexts());
                }
            }
        }
        for (ns, (spec_changed, layers)) in &touched {
            if is_library(ns) {
                continue;
            }
            let Some(spec) = candidate.spec(ns)? else {
                continue;
            };
            if !spec.validation.is_empty() {
                let contexts = work.entry(ns.clone()).or_default();
                if *spec_changed {
                    contexts.extend(spec.matrix_contexts());
                } else {
                    for l in layers {
                        contexts.extend(contexts_of_layer(&spec, l));
                    }
                }
            }
            for dependent in self.dependents(candidate.store, candidate.revision, ns)? {
                if let Some(dspec) = candidate.spec(&dependent)? {
                    work.entry(dependent)
                        .or_default()
                        .extend(dspec.matrix_contexts());
                }
            }
        }
        let mut findings = Vec::new();
        for (ns, contexts) in work {
            let Some(spec) = candidate.spec(&ns)? else {
                continue;
            };
            findings.extend(self.check_namespace(candidate, &library, &spec, contexts.iter())?);
        }
        Ok(findings)
    }

    /// Runs one namespace's chain in the given contexts.
    pub(crate) fn check_namespace<'c>(
        &self,
        candidate: &Candidate<'_>,
        library: &(String, Arc<Library>),
        spec: &NamespaceSpec,
        contexts: impl Iterator<Item = &'c Context>,
    ) -> Result<Vec<Finding>> {
        if is_library(&spec.name) {
            return Ok(Vec::new());
        }
        let compiled = self.compiled(spec, library)?;
        let mut findings = Vec::new();
        for ctx in contexts {
            let doc = candidate.resolve(&spec.name, ctx)?.unwrap_or_default();
            for f in compiled.check(ctx, &doc, candidate) {
                findings.push(Finding {
                    namespace: spec.name.to_string(),
                    stage: f.stage.to_string(),
                    rule: f.rule,
                    severity: f.severity,
                    context: f.context,
                    key: f.key,
                    message: f.message,
                });
            }
        }
        Ok(findings)
    }
}

/// The namespaces a plan touches: whether their declaration changed, and
/// which layers changed.
fn touched(plan: &Plan) -> BTreeMap<NamespaceName, (bool, Vec<LayerPath>)> {
    let mut out: BTreeMap<NamespaceName, (bool, Vec<LayerPath>)> = BTreeMap::new();
    for s in &plan.namespaces {
        out.entry(s.name.clone()).or_default().0 = true;
    }
    for (ns, layer, _) in &plan.layers {
        out.entry(ns.clone()).or_default().1.push(layer.clone());
    }
    out
}

/// Whether any finding blocks.
pub(crate) fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}
