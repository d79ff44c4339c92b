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
//! - A commit that may need validation holds exclusive locks on every
//!   namespace the check reads or writes (`locks`) from the check to the
//!   commit, so nothing another commit writes can slip in between: the
//!   committed state is the validated one. Commits that touch no chain hold
//!   shared locks on what they write and keep group commit; unrelated
//!   namespaces never wait for a validation.
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
    /// Namespace with a chain → the namespaces its rules read.
    reads: HashMap<NamespaceName, BTreeSet<NamespaceName>>,
}

/// What a change set's commit must hold while it is checked and committed
/// (see `locks`).
pub(crate) enum Scope {
    /// It changes the validation library, which every chain reads: it
    /// holds the validation lock alone.
    Everything,
    /// These namespaces; `validated` when some chain must run.
    Namespaces {
        want: crate::locks::Want,
        validated: bool,
    },
}

/// Compiled chains by namespace and declaration, and which namespaces read
/// which (for cross-namespace rules).
pub(crate) struct Validator {
    compiled: Mutex<HashMap<(NamespaceName, String), Arc<Compiled>>>,
    /// The user library, by its declaration's text.
    library: Mutex<Option<(String, Arc<Library>)>>,
    /// Referenced namespace → the namespaces whose rules read it; rebuilt
    /// after any declaration changes.
    dependents: Mutex<Option<Index>>,
    /// Shared by every commit but one that changes the validation library
    /// (which every chain reads): that one holds it alone.
    /// (`parking_lot`, whose guards may be released on another thread: an
    /// async commit's shared guard is released by the store's writer.)
    pub(crate) lock: Arc<parking_lot::RwLock<()>>,
    /// Moves on each change of declarations (see `declarations_changed`).
    generation: std::sync::atomic::AtomicU64,
    /// Which commits wait for which (`locks`).
    pub(crate) ns_locks: Arc<crate::locks::NamespaceLocks>,
    /// Validated commits queued in the store's writer (`pipeline`).
    pub(crate) queue: Arc<crate::pipeline::Queue>,
    /// Called before each commit's validation (tests hold a commit there).
    hook: Mutex<Option<ValidationHook>>,
    /// Longest a whole validation (a commit's, a declaration's, a dry
    /// run's, `validate`'s) may take.
    budget: Mutex<std::time::Duration>,
    limits: Limits,
}

/// The default [`Validator`] budget: what a commit, a declaration or a
/// `validate` may spend on validation in all.
pub const DEFAULT_VALIDATION_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

impl Default for Validator {
    fn default() -> Self {
        Validator {
            compiled: Mutex::default(),
            library: Mutex::default(),
            dependents: Mutex::default(),
            lock: Arc::default(),
            generation: std::sync::atomic::AtomicU64::default(),
            ns_locks: Arc::default(),
            queue: Arc::default(),
            hook: Mutex::default(),
            budget: Mutex::new(DEFAULT_VALIDATION_BUDGET),
            limits: Limits::default(),
        }
    }
}

/// Where one validation's time goes, against its budget.
pub(crate) struct Spend {
    started: std::time::Instant,
    budget: std::time::Duration,
    /// The slowest stage or rule so far, its context, and its time.
    slowest: Option<(String, Context, std::time::Duration)>,
    /// Whether it ran out (and said so in a finding).
    stopped: bool,
}

impl Spend {
    fn new(budget: std::time::Duration) -> Spend {
        Spend {
            started: std::time::Instant::now(),
            budget,
            slowest: None,
            stopped: false,
        }
    }

    fn deadline(&self) -> Option<std::time::Instant> {
        self.started.checked_add(self.budget)
    }

    fn over(&self) -> bool {
        self.started.elapsed() >= self.budget
    }

    fn note(&mut self, slowest: Option<(String, std::time::Duration)>, ctx: &Context) {
        if let Some((what, took)) = slowest
            && self.slowest.as_ref().is_none_or(|(_, _, t)| took > *t)
        {
            self.slowest = Some((what, ctx.clone(), took));
        }
    }

    /// The error finding of a validation stopped by its budget.
    fn exhausted(&mut self, ns: &NamespaceName, checked: usize, total: usize) -> Finding {
        self.stopped = true;
        let (context, slowest) = match &self.slowest {
            Some((what, ctx, took)) => {
                let shown: Vec<String> = ctx.iter().map(|(k, v)| format!("{k}={v}")).collect();
                (
                    ctx.clone(),
                    format!(
                        "; the slowest was {what} in {} ({} ms)",
                        if shown.is_empty() {
                            "(no context)".to_owned()
                        } else {
                            shown.join(",")
                        },
                        took.as_millis()
                    ),
                )
            }
            None => (Context::new(), String::new()),
        };
        Finding {
            namespace: ns.to_string(),
            stage: confstrata_core::Stage::Budget,
            rule: "validation-budget".to_owned(),
            severity: Severity::Error,
            context,
            key: None,
            message: format!(
                "validation ran out of its budget of {} ms after {} ms, with {checked} of {total} contexts of {ns} checked{slowest}; make the rules cheaper, narrow the matrix, or raise the server's validation_budget_ms",
                self.budget.as_millis(),
                self.started.elapsed().as_millis(),
            ),
        }
    }
}

/// A function called before each commit's validation.
pub type ValidationHook = Arc<dyn Fn() + Send + Sync>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The state a change set would leave: the committed state at `revision`
/// with the plan's writes on top.
pub(crate) struct Candidate<'a> {
    pub(crate) store: &'a dyn Store,
    pub(crate) revision: u64,
    pub(crate) specs: BTreeMap<NamespaceName, NamespaceSpec>,
    /// Namespaces the plan deletes.
    pub(crate) deleted: BTreeSet<NamespaceName>,
    pub(crate) layers: BTreeMap<(NamespaceName, LayerPath), Option<Document>>,
    /// What queued commits will write, under the plan's writes and over
    /// the store (`pipeline`).
    pub(crate) overlay: crate::pipeline::Overlay,
}

impl<'a> Candidate<'a> {
    /// The committed state at `revision` (nothing on top).
    pub(crate) fn current(store: &'a dyn Store, revision: u64) -> Candidate<'a> {
        Candidate {
            store,
            revision,
            specs: BTreeMap::new(),
            deleted: BTreeSet::new(),
            layers: BTreeMap::new(),
            overlay: crate::pipeline::Overlay::default(),
        }
    }

    /// `plan`'s writes over the state at `revision`.
    pub(crate) fn with_plan(store: &'a dyn Store, revision: u64, plan: &Plan) -> Candidate<'a> {
        let mut c = Candidate::current(store, revision);
        c.deleted.extend(plan.deleted.iter().cloned());
        for s in &plan.namespaces {
            c.specs.insert(s.name.clone(), s.clone());
        }
        for (ns, layer, doc) in &plan.layers {
            c.layers.insert((ns.clone(), layer.clone()), doc.clone());
        }
        c
    }

    fn spec(&self, ns: &NamespaceName) -> Result<Option<NamespaceSpec>> {
        if self.deleted.contains(ns) {
            return Ok(None);
        }
        if let Some(s) = self.specs.get(ns) {
            return Ok(Some(s.clone()));
        }
        if let Some(s) = self.overlay.specs.get(ns) {
            return Ok(Some(s.clone()));
        }
        Ok(self.store.namespace(ns, self.revision)?.map(|r| r.spec))
    }

    pub(crate) fn layer(&self, ns: &NamespaceName, layer: &LayerPath) -> Result<Option<Document>> {
        if let Some(d) = self.layers.get(&(ns.clone(), layer.clone())) {
            return Ok(d.clone());
        }
        if let Some(d) = self.overlay.layers.get(&(ns.clone(), layer.clone())) {
            return Ok(d.clone());
        }
        Ok(self
            .store
            .layer(ns, layer, self.revision)?
            .map(|r| r.document))
    }

    /// The resolved configuration of `ns` in `ctx` (restricted to the
    /// variables `ns` uses), imports included, sealed values masked;
    /// `None` if `ns` does not exist.
    pub(crate) fn resolve(&self, ns: &NamespaceName, ctx: &Context) -> Result<Option<Document>> {
        let Some(spec) = self.spec(ns)? else {
            return Ok(None);
        };
        let order = confstrata_core::imports::import_order(&spec, &mut |n| self.spec(n))?;
        let wanted = confstrata_core::imports::chain_layers(&order, &spec.restrict(ctx))?;
        let mut docs = Vec::with_capacity(wanted.len());
        for l in wanted {
            if let Some(d) = self.layer(&l.namespace, &l.layer)? {
                docs.push((l, d));
            }
        }
        let inputs: Vec<LayerInput<'_>> = docs
            .iter()
            .map(|(l, document)| LayerInput {
                namespace: l.imported.then_some(&l.namespace),
                layer: &l.layer,
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

    /// Forgets which namespaces read which (a declaration changed). Called
    /// while the declaring commit still holds its locks, so a commit that
    /// decided its scope before sees the generation move and decides again.
    pub(crate) fn declarations_changed(&self) {
        *lock(&self.dependents) = None;
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// A new [`Spend`] of the current budget.
    pub(crate) fn spend(&self) -> Spend {
        Spend::new(*lock(&self.budget))
    }

    /// Sets the budget of every validation from now on.
    pub(crate) fn set_budget(&self, budget: std::time::Duration) {
        *lock(&self.budget) = budget;
    }

    /// The hook called before each commit's validation.
    pub(crate) fn hook(&self) -> Option<ValidationHook> {
        lock(&self.hook).clone()
    }

    /// Sets [`Validator::hook`].
    pub(crate) fn set_hook(&self, hook: Option<ValidationHook>) {
        *lock(&self.hook) = hook;
    }

    /// Moves on each change of declarations.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// What a commit of `changes` must hold (see `locks`): shared locks on
    /// the namespaces it writes when no chain is affected; otherwise
    /// exclusive locks on what it writes, on every namespace whose chain
    /// it must run, and on every namespace those chains read. From the ops
    /// and the cached index alone (and the chains the change set declares).
    pub(crate) fn scope(
        &self,
        store: &dyn Store,
        revision: u64,
        changes: &confstrata_core::ChangeSet,
    ) -> Result<Scope> {
        match self.scope_with(store, revision, changes, true)? {
            Some(scope) => Ok(scope),
            None => Err(Error::Internal {
                message: "the index of chains was not built".to_owned(),
            }),
        }
    }

    /// [`Validator::scope`] without I/O, for a commit on an async thread:
    /// `None` when finding the scope would read the store (the index of
    /// chains must be rebuilt, or the change set declares a chain).
    pub(crate) fn scope_in_memory(
        &self,
        store: &dyn Store,
        revision: u64,
        changes: &confstrata_core::ChangeSet,
    ) -> Result<Option<Scope>> {
        self.scope_with(store, revision, changes, false)
    }

    fn scope_with(
        &self,
        store: &dyn Store,
        revision: u64,
        changes: &confstrata_core::ChangeSet,
        may_read: bool,
    ) -> Result<Option<Scope>> {
        use crate::locks::Mode;
        use confstrata_core::Op;
        let mut touched: BTreeSet<&NamespaceName> = BTreeSet::new();
        let mut declared: BTreeMap<&NamespaceName, &NamespaceSpec> = BTreeMap::new();
        let mut deletes = false;
        for op in &changes.ops {
            match op {
                Op::PutNamespace { spec, .. } => {
                    touched.insert(&spec.name);
                    declared.insert(&spec.name, spec);
                }
                Op::DeleteNamespace { namespace, .. } => {
                    touched.insert(namespace);
                    deletes = true;
                }
                Op::Put { namespace, .. }
                | Op::Set { namespace, .. }
                | Op::Unset { namespace, .. }
                | Op::Delete { namespace, .. } => {
                    touched.insert(namespace);
                }
            }
        }
        // A declaration with imports is checked for cycles against every
        // other declaration: two made at once could close one between
        // them, so it is made alone.
        // So is a namespace's deletion, which must not race a declaration
        // importing it.
        if touched.iter().any(|ns| is_library(ns))
            || declared.values().any(|s| !s.imports.is_empty())
            || deletes
        {
            return Ok(Some(Scope::Everything));
        }
        // The references of chains this change set declares.
        let mut declared_reads: HashMap<NamespaceName, BTreeSet<NamespaceName>> = HashMap::new();
        if declared.values().any(|s| !s.validation.is_empty()) {
            if !may_read {
                // Reading the library reads the store.
                return Ok(None);
            }
            let library = self
                .library(&Candidate::current(store, revision))
                .unwrap_or_else(|_| (String::new(), Arc::new(Library::default())));
            for (ns, spec) in &declared {
                if spec.validation.is_empty() {
                    continue;
                }
                // A chain that does not compile is refused by the check;
                // it reads nothing meanwhile.
                let reads = self
                    .compiled(spec, &library)
                    .map(|c| c.references().into_iter().collect())
                    .unwrap_or_default();
                declared_reads.insert((*ns).clone(), reads);
            }
        }
        // Building the index reads every declaration: without `may_read`,
        // only an index already built will do (checked under its lock).
        self.with_index(store, may_read, |i| {
            let mut checked: BTreeSet<NamespaceName> = BTreeSet::new();
            for ns in &touched {
                // User templates are checked whole when written.
                let chained = crate::templates::is_templates(ns)
                    || match declared.get(ns) {
                        Some(spec) => !spec.validation.is_empty(),
                        None => i.chained.contains(*ns),
                    };
                if chained {
                    checked.insert((*ns).clone());
                }
                if let Some(readers) = i.readers.get(*ns) {
                    checked.extend(readers.iter().cloned());
                }
            }
            if checked.is_empty() {
                return Scope::Namespaces {
                    want: crate::locks::all(touched.iter().copied(), Mode::Shared),
                    validated: false,
                };
            }
            let mut want = crate::locks::all(touched.iter().copied(), Mode::Exclusive);
            for ns in &checked {
                want.add(ns, Mode::Exclusive);
                let reads = declared_reads.get(ns).or_else(|| {
                    if declared.contains_key(ns) {
                        None
                    } else {
                        i.reads.get(ns)
                    }
                });
                for r in reads.into_iter().flatten() {
                    want.add(r, Mode::Exclusive);
                }
            }
            Scope::Namespaces {
                want,
                validated: true,
            }
        })
    }

    /// Runs `f` on the index of chains, building it if a declaration
    /// changed since; `None` (and `f` not run) when it must be built and
    /// `may_build` is false. Whether it is built is decided under the
    /// index's lock, so a declaration clearing it in between cannot make a
    /// caller on an async thread read the store.
    ///
    /// The index is built from the store's newest revision, read under the
    /// index's lock, never from a revision the caller read earlier: a
    /// declaration commits before it clears the index, so an index built
    /// after the clearing always includes it (one built from an older
    /// revision could be kept as current and miss it).
    fn with_index<T>(
        &self,
        store: &dyn Store,
        may_build: bool,
        f: impl FnOnce(&Index) -> T,
    ) -> Result<Option<T>> {
        let mut guard = lock(&self.dependents);
        if guard.is_none() {
            if !may_build {
                return Ok(None);
            }
            let revision = store.revision()?;
            let mut index = Index::default();
            let library = self
                .library(&Candidate::current(store, revision))
                .unwrap_or_else(|_| (String::new(), Arc::new(Library::default())));
            let all = store.namespaces(revision)?;
            let specs: HashMap<&NamespaceName, &NamespaceSpec> =
                all.iter().map(|r| (&r.spec.name, &r.spec)).collect();
            for r in &all {
                if r.spec.validation.is_empty() || is_library(&r.spec.name) {
                    continue;
                }
                index.chained.insert(r.spec.name.clone());
                // A namespace reads what it imports, as a rule reads what
                // it names (a stored chain of imports that no longer
                // resolves adds nothing here; checking reports it).
                let order = confstrata_core::imports::import_order(&r.spec, &mut |n| {
                    Ok(specs.get(n).map(|s| (*s).clone()))
                })
                .unwrap_or_default();
                let mut reads: BTreeSet<NamespaceName> = order
                    .into_iter()
                    .map(|s| s.name)
                    .filter(|n| *n != r.spec.name)
                    .collect();
                // A stored chain that no longer compiles reads nothing here;
                // checking that namespace reports the compile error.
                if let Ok(c) = self.compiled(&r.spec, &library) {
                    reads.extend(c.references());
                }
                for read in reads {
                    index
                        .readers
                        .entry(read.clone())
                        .or_default()
                        .insert(r.spec.name.clone());
                    index
                        .reads
                        .entry(r.spec.name.clone())
                        .or_default()
                        .insert(read);
                }
            }
            *guard = Some(index);
        }
        Ok(Some(match guard.as_ref() {
            Some(i) => f(i),
            None => f(&Index::default()),
        }))
    }

    /// The namespaces whose rules read `ns`.
    fn dependents(&self, store: &dyn Store, ns: &NamespaceName) -> Result<BTreeSet<NamespaceName>> {
        Ok(self
            .with_index(store, true, |i| i.readers.get(ns).cloned())?
            .flatten()
            .unwrap_or_default())
    }

    /// Whether a plan touches anything with a validation chain, directly or
    /// through a namespace whose rules read what it touches.
    pub(crate) fn needed(&self, candidate: &Candidate<'_>, plan: &Plan) -> Result<bool> {
        for ns in touched(plan).keys() {
            if is_library(ns) || crate::templates::is_templates(ns) {
                return Ok(true);
            }
            if candidate
                .spec(ns)?
                .is_some_and(|s| !s.validation.is_empty())
            {
                return Ok(true);
            }
            if !self.dependents(candidate.store, ns)?.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Runs the chains a plan can affect, over the state it would leave.
    ///
    /// Runs on a thread whose stack fits the deepest check a declaration
    /// can make ([`confstrata_rules::on_check_stack`]).
    pub(crate) fn check_plan(
        &self,
        candidate: &Candidate<'_>,
        plan: &Plan,
    ) -> Result<Vec<Finding>> {
        confstrata_rules::on_check_stack(|| self.check_plan_here(candidate, plan))
            .map_err(Error::storage)?
    }

    fn check_plan_here(&self, candidate: &Candidate<'_>, plan: &Plan) -> Result<Vec<Finding>> {
        let touched = touched(plan);
        let library = self.library(candidate)?;
        let mut work: BTreeMap<NamespaceName, BTreeSet<Context>> = BTreeMap::new();
        if touched.keys().any(is_library) {
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
        let mut findings = Vec::new();
        for (ns, (spec_changed, layers)) in &touched {
            if is_library(ns) {
                continue;
            }
            if crate::templates::is_templates(ns) {
                // User templates: each one written is checked as a whole.
                let mut written = Vec::with_capacity(layers.len());
                for l in layers {
                    let existed = candidate.store.layer(ns, l, candidate.revision)?.is_some();
                    written.push((l.clone(), candidate.layer(ns, l)?, existed));
                }
                findings.extend(crate::templates::check_stored(&written, candidate));
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
            for dependent in self.dependents(candidate.store, ns)? {
                if let Some(dspec) = candidate.spec(&dependent)? {
                    work.entry(dependent)
                        .or_default()
                        .extend(dspec.matrix_contexts());
                }
            }
        }
        let mut spend = self.spend();
        for (ns, contexts) in work {
            let Some(spec) = candidate.spec(&ns)? else {
                continue;
            };
            if spend.stopped {
                break;
            }
            findings.extend(self.check_namespace(
                candidate,
                &library,
                &spec,
                contexts.iter(),
                &mut spend,
            )?);
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
        spend: &mut Spend,
    ) -> Result<Vec<Finding>> {
        if is_library(&spec.name) {
            return Ok(Vec::new());
        }
        let compiled = self.compiled(spec, library)?;
        let contexts: Vec<&Context> = contexts.collect();
        let mut findings = Vec::new();
        for (i, ctx) in contexts.iter().enumerate() {
            // The first context is always checked (its rules stop at the
            // deadline), so a refusal can name what took the time.
            if i > 0 && spend.over() {
                findings.push(spend.exhausted(&spec.name, i, contexts.len()));
                break;
            }
            let doc = candidate.resolve(&spec.name, ctx)?.unwrap_or_default();
            let checked = compiled.check_until(ctx, &doc, candidate, spend.deadline());
            spend.note(checked.slowest, ctx);
            if spend.over() {
                // Its rules may have been cut short: say why.
                findings.push(spend.exhausted(&spec.name, i + 1, contexts.len()));
            }
            findings.extend(checked.findings);
            if spend.stopped {
                break;
            }
        }
        Ok(findings)
    }
}

/// The namespaces a plan touches: whether their declaration changed, and
/// which layers changed.
fn touched(plan: &Plan) -> BTreeMap<NamespaceName, (bool, Vec<LayerPath>)> {
    let mut out: BTreeMap<NamespaceName, (bool, Vec<LayerPath>)> = BTreeMap::new();
    for name in plan.namespaces.iter().map(|s| &s.name).chain(&plan.deleted) {
        out.entry(name.clone()).or_default().0 = true;
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
