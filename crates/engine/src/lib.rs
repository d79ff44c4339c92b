//! The assembled Confstrata service, with no network code: the one place where
//! a request is authorized, resolved, diffed, sealed, committed, audited and
//! rolled back over any [`Store`]. Every front end (CLI, gRPC, REST) calls
//! the same methods, each with the [`Caller`] it authenticated.
//!
//! ```
//! use std::sync::Arc;
//! use confstrata_core::{At, ChangeSet, MemoryStore, parse_context};
//! use confstrata_engine::{Caller, Engine, PrincipalKind};
//!
//! let engine = Engine::new(Arc::new(MemoryStore::new())).unwrap();
//! let me = Caller::local("ana"); // the local user: admin rights, audited
//! let cs: ChangeSet = serde_json::from_str(r#"{"ops": [
//!   {"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults", "env/{env}"]}},
//!   {"op": "put", "namespace": "web", "layer": "defaults", "document": {"port": 80}},
//!   {"op": "set", "namespace": "web", "layer": "env/prod", "key": "port", "value": 443},
//!   {"op": "set", "namespace": "web", "layer": "env/prod", "key": "db.password", "value": "hunter2"}
//! ]}"#).unwrap();
//! engine.commit(&me, &cs).unwrap();
//! let prod = parse_context("env=prod").unwrap();
//! let web = "web".parse().unwrap();
//! let view = engine.resolve(&me, &web, &prod, At::Latest).unwrap();
//! assert_eq!(view.document["port"], 443);
//! assert_eq!(view.document["db"]["password"], "hunter2"); // sealed at rest, opened for admin
//! assert_eq!(view.provenance[0].1.layer.as_str(), "env/prod");
//!
//! // A viewer authenticates with a token and sees the secret masked.
//! engine.add_principal(&me, "bob", "Bob", PrincipalKind::User, &["viewer".into()]).unwrap();
//! let token = engine.issue_token(&me, "bob", "laptop").unwrap();
//! let bob = engine
//!     .authenticate(Some(&format!("Bearer {}", token.expose_secret())), "req-1")
//!     .unwrap();
//! let view = engine.resolve(&bob, &web, &prod, At::Latest).unwrap();
//! assert_eq!(view.document["db"]["password"], "<sealed>");
//! assert!(engine.commit(&bob, &cs).unwrap_err().to_string().contains("bob may not write"));
//! // Every change, refusal and secret read is in the audit log, and it verifies.
//! assert!(engine.audit_verify(&me).unwrap().records >= 4);
//! ```

use std::collections::{BTreeMap, BTreeSet};

use std::sync::{Arc, Mutex, PoisonError};

use confstrata_access::Outcome;
use confstrata_core::serde_json::Value;
use confstrata_core::{
    At, Context, DiffEntry, Document, Error, KeyPath, LayerInput, LayerPath, LayerRecord,
    LayerVersion, NamespaceName, NamespaceRecord, Provenance, Result, RetentionPolicy,
    RetentionReport, Store, Timestamp, diff, resolve,
};
pub use confstrata_crypto::{MASTER_KEY_ENV, MasterKey};
use serde::Serialize;

mod admin;
mod auth_failures;
mod incremental;
mod locks;
mod pipeline;
mod security;
mod validate;
mod write;

pub use confstrata_access::{Action, AuditRecord, PrincipalKind, Resource, Token};
use confstrata_analytics::StageTimings;
pub use confstrata_analytics::{StageSummary, TimingsSnapshot};
pub use confstrata_cache::{Budget, CacheStats};
use confstrata_cache::{ViewCache, ViewKey};
use confstrata_core::timing::{Phase, Timings as _};
pub use confstrata_core::view::{
    AuditVerification, DryRun, ExplainView, KeyInfo, LayerDiff, LayerStatus, PrincipalInfo,
    ResolvedView, Rollback, ServerStatus, TokenInfo,
};
pub use confstrata_rules::{CHECK_STACK_BYTES, assume_check_stack};
pub use security::{
    Caller, KEYRING_SETTING, POLICY_SETTING, SecurityOptions, crypto_error, from_journal,
};
pub use validate::{DEFAULT_VALIDATION_BUDGET, LIBRARY_NAMESPACE, ValidationHook};
pub use write::{BlockingCommit, Route};

/// The built-in schema library (`"$ref": "confstrata:<name>"`): name → schema.
pub fn schema_library() -> &'static BTreeMap<String, Value> {
    confstrata_rules::library()
}
use security::{Gate, Security};

/// The engine: operations over a store.
#[derive(Clone)]
pub struct Engine {
    store: Arc<dyn Store>,
    observers: Arc<Mutex<Vec<CommitObserver>>>,
    policy_observers: Arc<Mutex<Vec<PolicyObserver>>>,
    security: Arc<Security>,
    validator: Arc<validate::Validator>,
    /// Failed authentications, counted per source (`auth_failures`).
    auth_failures: Arc<auth_failures::AuthFailures>,
    views: Arc<ViewCache<CachedView>>,
    /// What recent commits changed, per namespace, for rebuilding stale
    /// views (`incremental`).
    changes: Arc<Mutex<incremental::ChangeLogs>>,
    /// Whether stale views are rebuilt from their predecessor when the
    /// change allows it (else every stale view is merged again).
    incremental: Arc<std::sync::atomic::AtomicBool>,
    timings: Arc<StageTimings>,
}

/// A resolved view as cached, compact: the raw document (sealed values as
/// stored) as its JSON text, the winning layer of each leaf as a small
/// index, and every layer of its context for authorization. About the size
/// of the JSON itself (a parsed tree with per-leaf provenance is 20 times
/// that: PERFORMANCE.md); a request that needs the tree parses it.
struct CachedView {
    wanted: Vec<LayerPath>,
    namespace: NamespaceName,
    context: Context,
    /// The layers that exist for the context, most general first.
    layers: Vec<Provenance>,
    /// The raw document, as JSON.
    raw: Arc<str>,
    /// Where each top-level section of `raw` starts (for rebuilding the
    /// view after a change: `incremental`).
    spans: Box<[incremental::Span]>,
    /// The provenance of each leaf (in `doc::leaves` order).
    winners: Winners,
    /// The leaves holding a sealed value, with the layer that set each:
    /// a caller who may open one of them is answered by the slow path
    /// (opening is audited).
    sealed: Vec<(KeyPath, LayerPath)>,
    /// Whether some leaf holds a sealed value or a value that contains one.
    any_sealed: bool,
    /// What a caller who opens nothing gets (every sealed value masked), as
    /// JSON: the raw JSON itself when nothing is sealed, else made on first
    /// use and shared by every such caller.
    masked: std::sync::OnceLock<Arc<str>>,
}

/// Each leaf's winning layer: an index into the view's layers when the
/// leaves and the provenance line up one to one (always, for a resolve),
/// else the provenance itself.
enum Winners {
    Compact(Vec<u16>),
    Full(Vec<(KeyPath, Provenance)>),
}

impl CachedView {
    fn new(wanted: Vec<LayerPath>, view: ResolvedView) -> CachedView {
        let is_sealed = |v: &Value| confstrata_crypto::is_sealed(v);
        let sealed = view
            .provenance
            .iter()
            .filter(|(key, _)| {
                confstrata_core::doc::get(&view.document, key).is_some_and(is_sealed)
            })
            .map(|(key, prov)| (key.clone(), prov.layer.clone()))
            .collect();
        let leaves = confstrata_core::doc::leaves(&view.document);
        let any_sealed = leaves
            .iter()
            .any(|(_, v)| confstrata_crypto::is_sealed(v) || security::contains_sealed(v));
        let compact: Option<Vec<u16>> = (leaves.len() == view.provenance.len())
            .then(|| {
                leaves
                    .iter()
                    .zip(&view.provenance)
                    .map(|((k, _), (pk, p))| {
                        if k != pk {
                            return None;
                        }
                        let i = view.layers.iter().position(|l| l == p)?;
                        u16::try_from(i).ok()
                    })
                    .collect()
            })
            .flatten();
        drop(leaves);
        let (raw, spans) = incremental::indexed_json(&view.document);
        CachedView {
            wanted,
            namespace: view.namespace,
            context: view.context,
            winners: match compact {
                Some(c) => Winners::Compact(c),
                None => Winners::Full(view.provenance),
            },
            layers: view.layers,
            raw,
            spans,
            sealed,
            any_sealed,
            masked: std::sync::OnceLock::new(),
        }
    }

    /// The raw document, parsed.
    fn document(&self) -> Result<Document> {
        confstrata_core::serde_json::from_str(&self.raw).map_err(|e| Error::Integrity {
            message: format!(
                "a cached view of {} cannot be read back: {e}",
                self.namespace
            ),
        })
    }

    /// Each leaf's provenance, for `document` (the raw one).
    fn provenance(&self, document: &Document) -> Vec<(KeyPath, Provenance)> {
        match &self.winners {
            Winners::Full(p) => p.clone(),
            Winners::Compact(c) => confstrata_core::doc::leaves(document)
                .into_iter()
                .zip(c)
                .filter_map(|((k, _), i)| Some((k, self.layers.get(usize::from(*i))?.clone())))
                .collect(),
        }
    }

    /// The raw view, parsed, labelled with `revision`, cut to `section`.
    fn view(&self, revision: u64, section: Option<&KeyPath>) -> Result<ResolvedView> {
        let document = self.document()?;
        let provenance = self.provenance(&document);
        let view = ResolvedView {
            namespace: self.namespace.clone(),
            context: self.context.clone(),
            revision,
            layers: self.layers.clone(),
            document,
            provenance,
        };
        Ok(match section {
            Some(s) => cut_to_section(&view, s),
            None => view,
        })
    }

    /// The JSON of the view with every sealed value masked.
    fn masked(&self) -> Result<Arc<str>> {
        if !self.any_sealed {
            return Ok(Arc::clone(&self.raw));
        }
        if let Some(m) = self.masked.get() {
            return Ok(Arc::clone(m));
        }
        let mut document = self.document()?;
        mask_all(&mut document);
        let json = document_json(&document);
        Ok(Arc::clone(self.masked.get_or_init(|| json)))
    }

    /// Approximate bytes held, for the cache's budget.
    fn weight(&self) -> usize {
        let winners = match &self.winners {
            Winners::Compact(c) => 2 * c.len(),
            Winners::Full(p) => p.len() * 160,
        };
        // A masked copy, if one will be made, is about the same size.
        let masked = if self.any_sealed { self.raw.len() } else { 0 };
        self.raw.len()
            + masked
            + winners
            + size_of_val(&*self.spans)
            + 64 * (self.wanted.len() + self.layers.len())
            + 256
    }
}

/// Masks every sealed value in a document (the leaves that are sealed or
/// contain a sealed value).
fn mask_all(document: &mut Document) {
    let keys: Vec<KeyPath> = confstrata_core::doc::leaves(document)
        .into_iter()
        .filter(|(_, v)| confstrata_crypto::is_sealed(v) || security::contains_sealed(v))
        .map(|(k, _)| k)
        .collect();
    for key in keys {
        if let Some(slot) = confstrata_core::doc::get_mut(document, &key) {
            mask_value(slot);
        }
    }
}

/// A document as compact JSON (a document is a map of JSON values, so
/// this cannot fail; `{}` stands in if it ever did).
fn document_json(doc: &Document) -> Arc<str> {
    confstrata_core::serde_json::to_string(doc)
        .unwrap_or_else(|_| "{}".to_owned())
        .into()
}

/// A resolved view answered from the view cache: see
/// [`Engine::resolve_cached`]. It holds the document as JSON (what a front
/// end sends); the parsed document and the provenance are made on demand.
#[derive(Clone)]
pub struct SharedView {
    /// The revision it is current at (the latest when it was looked up).
    pub revision: u64,
    /// The document (or the asked-for section of it) as the caller may see
    /// it, as compact JSON.
    pub json: Arc<str>,
    cached: Arc<CachedView>,
    section: Option<KeyPath>,
}

impl std::fmt::Debug for SharedView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedView")
            .field("revision", &self.revision)
            .field("json", &self.json)
            .finish_non_exhaustive()
    }
}

impl SharedView {
    /// The layers that exist for the context, most general first.
    pub fn layers(&self) -> &[Provenance] {
        &self.cached.layers
    }

    /// Each leaf's provenance (in the section, if one was asked for), in
    /// key order.
    pub fn provenance(&self) -> Result<Vec<(KeyPath, Provenance)>> {
        let document = self.cached.document()?;
        let mut p = self.cached.provenance(&document);
        if let Some(s) = &self.section {
            p.retain(|(k, _)| in_section(k, s));
        }
        Ok(p)
    }

    /// The document, parsed from [`SharedView::json`].
    pub fn document(&self) -> Result<Document> {
        confstrata_core::serde_json::from_str(&self.json).map_err(|e| Error::Integrity {
            message: format!("a shared view cannot be read back: {e}"),
        })
    }

    /// Whether two answers share one JSON text (nothing was copied).
    pub fn shares_json_with(&self, other: &SharedView) -> bool {
        Arc::ptr_eq(&self.json, &other.json)
    }
}

/// What [`Engine::stats`] reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineStats {
    /// The store's revision.
    pub revision: u64,
    /// The resolved-view cache's counters.
    pub cache: CacheStats,
    /// What the cache may hold.
    pub cache_budget: Budget,
    /// Every stage's timings.
    pub timings: TimingsSnapshot,
}

/// A context as a cache key: `k=v,...` in key order (values are path
/// segments, so `,` and `=` cannot occur in them).
fn context_key(ns: &NamespaceName, ctx: &Context) -> ViewKey {
    let mut out = String::new();
    for (k, v) in ctx {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    ViewKey::new(ns, &out)
}

/// The provenance entries at `section` or below it.
fn in_section(key: &KeyPath, section: &KeyPath) -> bool {
    key.segments().starts_with(section.segments())
}

/// Cuts a view down to a section of its document.
fn cut_to_section(view: &ResolvedView, section: &KeyPath) -> ResolvedView {
    ResolvedView {
        namespace: view.namespace.clone(),
        context: view.context.clone(),
        revision: view.revision,
        layers: view.layers.clone(),
        document: confstrata_core::doc::section(&view.document, section, false),
        provenance: view
            .provenance
            .iter()
            .filter(|(k, _)| in_section(k, section))
            .cloned()
            .collect(),
    }
}

/// Called after every change to the access policy.
pub type PolicyObserver = Arc<dyn Fn() + Send + Sync>;

/// Called with the new revision after every commit made through the engine.
pub type CommitObserver = Arc<dyn Fn(u64) + Send + Sync>;

/// Reads the committed state at one revision, for planning a dry run.
pub(crate) struct StoreReader<'s> {
    pub(crate) store: &'s dyn Store,
    pub(crate) revision: u64,
}

impl confstrata_core::StateReader for StoreReader<'_> {
    fn current_revision(&mut self) -> Result<u64> {
        Ok(self.revision)
    }
    fn namespace(
        &mut self,
        name: &NamespaceName,
    ) -> Result<Option<(confstrata_core::NamespaceSpec, u64)>> {
        Ok(self
            .store
            .namespace(name, self.revision)?
            .map(|r| (r.spec, r.revision)))
    }
    fn layer(&mut self, ns: &NamespaceName, layer: &LayerPath) -> Result<Option<(Document, u64)>> {
        Ok(self
            .store
            .layer(ns, layer, self.revision)?
            .map(|r| (r.document, r.revision)))
    }
}

impl Engine {
    /// An engine over any store, with a fresh in-memory master key (so
    /// sealed values live only as long as the process: for tests and
    /// embedded use). Use [`Engine::with_security`] to keep them.
    pub fn new(store: Arc<dyn Store>) -> Result<Self> {
        let key = MasterKey::generate().map_err(security::crypto_error)?;
        Self::with_security(store, SecurityOptions::new(key))
    }

    /// An engine over any store, with the given master key and settings.
    pub fn with_security(store: Arc<dyn Store>, options: SecurityOptions) -> Result<Self> {
        Self::with_cache(store, options, Budget::default())
    }

    /// [`Engine::with_security`] with a budget for the resolved-view cache.
    pub fn with_cache(
        store: Arc<dyn Store>,
        options: SecurityOptions,
        cache: Budget,
    ) -> Result<Self> {
        let timings = Arc::new(StageTimings::new());
        store.set_timings(Arc::clone(&timings) as Arc<dyn confstrata_core::timing::Timings>);
        let security = Arc::new(Security::load(&*store, options)?);
        Ok(Engine {
            auth_failures: Arc::new(auth_failures::AuthFailures::new(
                Arc::clone(&store),
                Arc::clone(&security),
            )),
            store,
            observers: Arc::default(),
            policy_observers: Arc::default(),
            security,
            validator: Arc::default(),
            views: Arc::new(ViewCache::with_budget(cache)),
            changes: Arc::default(),
            incremental: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            timings,
        })
    }

    /// Turns incremental re-resolve on (the default) or off: with it off,
    /// every view made stale by a commit is merged again from its layers.
    /// For measuring what it saves, and for ruling it out.
    pub fn set_incremental(&self, on: bool) {
        self.incremental
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Registers a function called with the new revision after every commit
    /// made through this engine (or its clones). Keep it cheap, and never
    /// commit from it: it runs on the committing thread, or on the store's
    /// writer thread for a commit made with [`Engine::submit`].
    pub fn on_commit(&self, observer: CommitObserver) {
        lock(&self.observers).push(observer);
    }

    /// Registers a function called after every change to the access policy
    /// (a revoked token, a changed role), so that long-lived requests can
    /// re-check their caller with [`Engine::check_caller`].
    pub fn on_policy_change(&self, observer: PolicyObserver) {
        lock(&self.policy_observers).push(observer);
    }

    fn notify(&self, revision: u64) {
        let observers = lock(&self.observers).clone();
        for o in observers {
            o(revision);
        }
    }

    pub(crate) fn notify_policy(&self) {
        let observers = lock(&self.policy_observers).clone();
        for o in observers {
            o();
        }
    }

    /// The underlying store. Reading it directly bypasses authorization:
    /// front ends use it only for revision numbers.
    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// The newest revision (no authorization: revision numbers reveal
    /// nothing but that changes happened).
    pub fn revision(&self) -> Result<u64> {
        self.store.revision()
    }

    pub(crate) fn gate<'a>(&'a self, caller: &'a Caller) -> Gate<'a> {
        Gate {
            sec: &self.security,
            store: &*self.store,
            caller,
            policy: self.security.policy(),
        }
    }

    /// Authenticates a request by its `Authorization` header value
    /// (`Bearer cst_...`). A failure is audited (without the token), as
    /// from the source `unknown`: see [`Engine::authenticate_from`].
    pub fn authenticate(&self, authorization: Option<&str>, request_id: &str) -> Result<Caller> {
        self.authenticate_from(authorization, request_id, "unknown")
    }

    /// [`Engine::authenticate`] for a request from `source` (a client's
    /// address). Failures are audited per source without letting a caller
    /// fill the disk: the first in a minute is a record at once, the rest
    /// of that minute become one record with their count (written when the
    /// source fails again after the minute, or when the engine is dropped).
    pub fn authenticate_from(
        &self,
        authorization: Option<&str>,
        request_id: &str,
        source: &str,
    ) -> Result<Caller> {
        let checked = self.timed(Phase::Authenticate, || {
            self.security.authenticate(authorization)
        });
        match checked {
            Ok(c) => Ok(c.with_request_id(request_id)),
            Err(e) => {
                self.auth_failures
                    .failed(source, request_id, &e.to_string());
                Err(e)
            }
        }
    }

    /// [`Engine::authenticate`] for a fast path: `None` on any failure,
    /// which is not audited here (the slow path that answers it audits it).
    pub fn authenticate_quietly(
        &self,
        authorization: Option<&str>,
        request_id: &str,
    ) -> Option<Caller> {
        self.timed(Phase::Authenticate, || {
            self.security.authenticate(authorization)
        })
        .ok()
        .map(|c| c.with_request_id(request_id))
    }

    /// Sets the longest a whole validation may take from now on (a
    /// commit's, a declaration's, a dry run's, `validate`'s): a check still
    /// running then stops, and the change is refused with a finding that
    /// names the slowest rule and context.
    pub fn set_validation_budget(&self, budget: std::time::Duration) {
        self.validator.set_budget(budget);
    }

    /// Calls `hook` before each commit's validation, from the committing
    /// thread, with the commit's locks held (`None` removes it). For tests
    /// that must hold a commit inside its validation to see what waits.
    #[doc(hidden)]
    pub fn set_validation_hook(&self, hook: Option<validate::ValidationHook>) {
        self.validator.set_hook(hook);
    }

    /// Checks that a caller's credentials still hold (its token was not
    /// revoked since it authenticated).
    pub fn check_caller(&self, caller: &Caller) -> Result<()> {
        self.security.still_valid(caller)
    }

    /// Whether the caller may perform `action` on `resource` (for front
    /// ends that filter what they stream, such as watch).
    pub fn allows(&self, caller: &Caller, action: Action, resource: &Resource) -> bool {
        let policy = self.security.policy();
        self.security.allows(&policy, caller, action, resource)
    }

    /// Whether the caller may perform `action` on some part of `resource`.
    pub fn allows_some(&self, caller: &Caller, action: Action, resource: &Resource) -> bool {
        let policy = self.security.policy();
        self.security.allows_some(&policy, caller, action, resource)
    }

    /// What `caller` may see of a change in namespace `ns` (a watch
    /// event): the change's items in `ns` that it may read, a layer by
    /// `read` on the layer, a declaration by `read` on some of the
    /// namespace. Empty: nothing of it.
    pub fn visible_items(
        &self,
        caller: &Caller,
        ns: &NamespaceName,
        change: &confstrata_core::Change,
    ) -> Vec<confstrata_core::ChangeItem> {
        let policy = self.security.policy();
        change
            .items
            .iter()
            .filter(|i| &i.namespace == ns)
            .filter(|i| match &i.layer {
                Some(l) => self.security.allows(
                    &policy,
                    caller,
                    Action::Read,
                    &Resource::layer(i.namespace.clone(), l.clone()),
                ),
                None => self.security.allows_some(
                    &policy,
                    caller,
                    Action::Read,
                    &Resource::namespace(i.namespace.clone()),
                ),
            })
            .cloned()
            .collect()
    }

    /// Every namespace at a revision that the caller may read some of.
    pub fn namespaces(&self, caller: &Caller, at: At) -> Result<Vec<NamespaceRecord>> {
        let g = self.gate(caller);
        let rev = self.store.revision_at(at)?;
        let all = self.store.namespaces(rev)?;
        Ok(all
            .into_iter()
            .filter(|r| {
                self.security.allows_some(
                    &g.policy,
                    caller,
                    Action::Read,
                    &Resource::namespace(r.spec.name.clone()),
                )
            })
            .collect())
    }

    /// One namespace, or [`Error::NamespaceNotFound`].
    pub fn namespace(
        &self,
        caller: &Caller,
        name: &NamespaceName,
        at: At,
    ) -> Result<NamespaceRecord> {
        let g = self.gate(caller);
        g.require_some(Action::Read, name)?;
        let rev = self.store.revision_at(at)?;
        self.namespace_at(name, rev)
    }

    fn namespace_at(&self, name: &NamespaceName, rev: u64) -> Result<NamespaceRecord> {
        self.store
            .namespace(name, rev)?
            .ok_or_else(|| Error::NamespaceNotFound {
                namespace: name.to_string(),
            })
    }

    /// One layer, or [`Error::LayerNotFound`] (or [`Error::NamespaceNotFound`]).
    /// Sealed values are opened for a caller with `read-secrets`, masked otherwise.
    pub fn layer(
        &self,
        caller: &Caller,
        ns: &NamespaceName,
        layer: &LayerPath,
        at: At,
    ) -> Result<LayerRecord> {
        let g = self.gate(caller);
        g.require_some(Action::Read, ns)?;
        g.require(Action::Read, Resource::layer(ns.clone(), layer.clone()))?;
        let rev = self.store.revision_at(at)?;
        self.namespace_at(ns, rev)?;
        let mut record = self
            .store
            .layer(ns, layer, rev)?
            .ok_or_else(|| Error::LayerNotFound {
                namespace: ns.to_string(),
                layer: layer.to_string(),
            })?;
        g.present_layer(ns, layer, &mut record.document, rev)?;
        g.audit_read(Resource::layer(ns.clone(), layer.clone()), rev)?;
        Ok(record)
    }

    /// Every layer of a namespace that the caller may read (the others are
    /// left out, as if they did not exist).
    pub fn layers(&self, caller: &Caller, ns: &NamespaceName, at: At) -> Result<Vec<LayerRecord>> {
        let g = self.gate(caller);
        g.require_some(Action::Read, ns)?;
        let rev = self.store.revision_at(at)?;
        self.namespace_at(ns, rev)?;
        let mut out = Vec::new();
        for mut r in self.store.layers(ns, rev)? {
            if g.allows(Action::Read, &Resource::layer(ns.clone(), r.layer.clone())) {
                g.present_layer(ns, &r.layer, &mut r.document, rev)?;
                out.push(r);
            }
        }
        g.audit_read(Resource::namespace(ns.clone()), rev)?;
        Ok(out)
    }

    /// Every layer of a namespace the caller may read, with every sealed
    /// value masked whatever the caller's rights: for exports, which are
    /// files that leave the server (backups carry ciphertext instead).
    pub fn export_layers(
        &self,
        caller: &Caller,
        ns: &NamespaceName,
        at: At,
    ) -> Result<Vec<LayerRecord>> {
        let g = self.gate(caller);
        g.require_some(Action::Read, ns)?;
        let rev = self.store.revision_at(at)?;
        self.namespace_at(ns, rev)?;
        let mut out = Vec::new();
        for mut r in self.store.layers(ns, rev)? {
            if g.allows(Action::Read, &Resource::layer(ns.clone(), r.layer.clone())) {
                confstrata_crypto::mask(&mut r.document);
                out.push(r);
            }
        }
        g.audit_read(Resource::namespace(ns.clone()), rev)?;
        Ok(out)
    }

    /// Resolves a namespace for a context. The caller needs `read` on every
    /// layer of the context; sealed values are opened where the caller has
    /// `read-secrets` on the key in the winning layer, masked elsewhere.
    pub fn resolve(
        &self,
        caller: &Caller,
        ns: &NamespaceName,
        ctx: &Context,
        at: At,
    ) -> Result<ResolvedView> {
        self.resolve_section(caller, ns, ctx, None, at)
    }

    /// [`Engine::resolve`] of one section of the configuration (`db` for
    /// `db.*`): the document holds only what is at `section` or below (under
    /// its full path), and so does the provenance. Authorization is that of
    /// the whole resolve. Only the section of each layer is merged, unless
    /// a cached view of the whole context is at hand.
    pub fn resolve_section(
        &self,
        caller: &Caller,
        ns: &NamespaceName,
        ctx: &Context,
        section: Option<&KeyPath>,
        at: At,
    ) -> Result<ResolvedView> {
        let g = self.gate(caller);
        let mut view = if at == At::Latest {
            self.resolve_latest(&g, ns, ctx, section)?
        } else {
            let merged = self.timed(Phase::Resolve, || {
                self.with_resolved_section(&g, ns, ctx, at, section, |rev, resolved| ResolvedView {
                    namespace: ns.clone(),
                    context: ctx.clone(),
                    revision: rev,
                    layers: resolved.layers().collect(),
                    document: resolved.to_document(),
                    provenance: resolved.provenance(),
                })
            })?;
            match section {
                Some(key) => cut_to_section(&merged, key),
                None => merged,
            }
        };
        self.timed(Phase::Present, || self.present_resolved(&g, &mut view))?;
        g.audit_read(Resource::namespace(ns.clone()), view.revision)?;
        Ok(view)
    }

    /// Answers a resolve at the latest revision from the view cache, with no
    /// I/O and no copy of the view: for front ends that answer on their
    /// async threads and fall back to [`Engine::resolve_section`] on `None`.
    ///
    /// `None` (never a refusal) when the slow path must answer: the view is
    /// not cached, every read is audited, the caller may open a sealed
    /// value of it (opening is audited), or the caller may not read it (a
    /// refusal is audited). So what this answers is exactly what the slow
    /// path would, minus the audit records neither writes.
    pub fn resolve_cached(
        &self,
        caller: &Caller,
        ns: &NamespaceName,
        ctx: &Context,
        section: Option<&KeyPath>,
    ) -> Option<SharedView> {
        if self.security.audit_reads {
            return None;
        }
        let g = self.gate(caller);
        let authorize = self.timings.start();
        if !self.security.allows_some(
            &g.policy,
            caller,
            Action::Read,
            &Resource::namespace(ns.clone()),
        ) {
            return None;
        }
        authorize.stop(&*self.timings, Phase::Authorize);
        // Read first: a view that is current now is current at this revision.
        let current = self.store.revision().ok()?;
        let key = context_key(ns, ctx);
        let lookup = self.timings.start();
        let (_, cached) = self.views.get_or_fall_back(&key)?;
        lookup.stop(&*self.timings, Phase::CacheLookup);
        let authorize = self.timings.start();
        for layer in &cached.wanted {
            if !g.allows(Action::Read, &Resource::layer(ns.clone(), layer.clone())) {
                return None;
            }
        }
        for (key, layer) in &cached.sealed {
            if g.allows(
                Action::ReadSecrets,
                &Resource::key(ns.clone(), layer.clone(), key.clone()),
            ) {
                return None;
            }
        }
        authorize.stop(&*self.timings, Phase::Authorize);
        let json = cached.masked().ok()?;
        let json = match section {
            None => json,
            Some(key) => {
                let document: Document = confstrata_core::serde_json::from_str(&json).ok()?;
                document_json(&confstrata_core::doc::section(&document, key, false))
            }
        };
        Some(SharedView {
            revision: current,
            json,
            cached,
            section: section.cloned(),
        })
    }

    /// Times `f` as `stage`.
    fn timed<T>(&self, stage: Phase, f: impl FnOnce() -> T) -> T {
        let started = self.timings.start();
        let out = f();
        started.stop(&*self.timings, stage);
        out
    }

    /// The raw (sealed) resolved view at the latest revision, from the view
    /// cache when the namespace has not changed since it was computed. The
    /// caller's rights are checked on the cached list of the context's
    /// layers exactly as on a miss. A section is cut from a cached view; on
    /// a miss, only the section is merged (and nothing is cached).
    fn resolve_latest(
        &self,
        g: &Gate<'_>,
        ns: &NamespaceName,
        ctx: &Context,
        section: Option<&KeyPath>,
    ) -> Result<ResolvedView> {
        self.timed(Phase::Authorize, || g.require_some(Action::Read, ns))?;
        // Read first: a view that is current now is current at this revision.
        let current = self.store.revision()?;
        let key = context_key(ns, ctx);
        if let Some((_, cached)) = self.timed(Phase::CacheLookup, || self.views.get(&key)) {
            self.timed(Phase::Authorize, || {
                cached.wanted.iter().try_for_each(|layer| {
                    g.require(Action::Read, Resource::layer(ns.clone(), layer.clone()))
                })
            })?;
            return cached.view(current, section);
        }
        if let Some(rebuilt) = self.rebuild(&key, ns, current) {
            self.timed(Phase::Authorize, || {
                rebuilt.wanted.iter().try_for_each(|layer| {
                    g.require(Action::Read, Resource::layer(ns.clone(), layer.clone()))
                })
            })?;
            return rebuilt.view(current, section);
        }
        let mut wanted = Vec::new();
        let view = self.timed(Phase::Resolve, || {
            self.with_resolved_section(
                g,
                ns,
                ctx,
                At::Revision(current),
                section,
                |rev, resolved| {
                    wanted = resolved.layers().map(|p| p.layer).collect();
                    ResolvedView {
                        namespace: ns.clone(),
                        context: ctx.clone(),
                        revision: rev,
                        layers: resolved.layers().collect(),
                        document: resolved.to_document(),
                        provenance: resolved.provenance(),
                    }
                },
            )
        })?;
        if let Some(s) = section {
            return Ok(cut_to_section(&view, s));
        }
        // Every layer of the context, present or not, is what authorization
        // checks: take them from the declaration, as `with_resolved` did.
        let spec = self.namespace_at(ns, current)?.spec;
        let wanted = spec.layers_for(ctx).unwrap_or(wanted);
        let cached = CachedView::new(wanted, view.clone());
        let weight = cached.weight();
        self.views.insert(&key, current, Arc::new(cached), weight);
        Ok(view)
    }

    /// Brings the cached view of a context up to date, as a resolve at the
    /// latest revision does on a miss (rebuilt from its stale predecessor
    /// when the change allows it, else merged from the layers), without
    /// answering with it; returns the revision it is current at. For
    /// warming the cache (the contexts that matter, after start-up or a
    /// commit) and for measuring what a miss costs. Needs `read` on the
    /// namespace.
    pub fn refresh_view(&self, caller: &Caller, ns: &NamespaceName, ctx: &Context) -> Result<u64> {
        let g = self.gate(caller);
        g.require_some(Action::Read, ns)?;
        let current = self.store.revision()?;
        let key = context_key(ns, ctx);
        if self.views.get_or_fall_back(&key).is_some() || self.rebuild(&key, ns, current).is_some()
        {
            return Ok(current);
        }
        self.resolve_latest(&g, ns, ctx, None).map(|v| v.revision)
    }

    /// The view of `key` at `current`, rebuilt from its stale predecessor
    /// and the patches committed since, when they allow it (and kept).
    fn rebuild(&self, key: &ViewKey, ns: &NamespaceName, current: u64) -> Option<Arc<CachedView>> {
        if !self.incremental.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let (revision, stale) = self.views.take_stale(key)?;
        let started = self.timings.start();
        let patches = incremental::patches_between(&lock(&self.changes), ns, revision, current)?;
        let rebuilt = Arc::new(stale.rebuilt(&patches)?);
        let weight = rebuilt.weight();
        self.views
            .insert_rebuilt(key, current, Arc::clone(&rebuilt), weight);
        started.stop(&*self.timings, Phase::Resolve);
        Some(rebuilt)
    }

    /// The view cache's counters.
    pub fn cache_stats(&self) -> CacheStats {
        self.views.stats()
    }

    /// The view cache's counters and budget, and every stage's timings since
    /// the engine started. Needs `audit` on everything.
    pub fn stats(&self, caller: &Caller) -> Result<EngineStats> {
        self.gate(caller)
            .require(Action::Audit, Resource::everything())?;
        Ok(EngineStats {
            revision: self.store.revision().unwrap_or(0),
            cache: self.views.stats(),
            cache_budget: self.views.budget(),
            timings: self.timings.snapshot(),
        })
    }

    /// The registry holding the stage histograms (for a metrics endpoint).
    pub fn metrics_registry(&self) -> &confstrata_analytics::prometheus::Registry {
        self.timings.registry()
    }

    /// Opens or masks the sealed leaves of a resolved view.
    fn present_resolved(&self, g: &Gate<'_>, view: &mut ResolvedView) -> Result<()> {
        let ns = &view.namespace;
        let mut opened = Vec::new();
        let keyring = security_read(&self.security);
        for (key, prov) in &view.provenance {
            let Some(slot) = confstrata_core::doc::get_mut(&mut view.document, key) else {
                continue;
            };
            if !confstrata_crypto::is_sealed(slot) && !security::contains_sealed(slot) {
                continue;
            }
            let resource = Resource::key(ns.clone(), prov.layer.clone(), key.clone());
            if confstrata_crypto::is_sealed(slot) && g.allows(Action::ReadSecrets, &resource) {
                *slot = confstrata_crypto::open_value(&keyring, ns, &prov.layer, key, slot)
                    .map_err(security::crypto_error)?;
                opened.push(resource.to_string());
            } else {
                mask_value(slot);
            }
        }
        drop(keyring);
        g.audit_opened(ns, &opened, view.revision)
    }

    /// Explains one key of a resolved configuration: every layer that sets it,
    /// most specific first, and the change (author, message, time) behind
    /// each layer's version.
    pub fn explain(
        &self,
        caller: &Caller,
        ns: &NamespaceName,
        ctx: &Context,
        key: &KeyPath,
        at: At,
    ) -> Result<ExplainView> {
        let g = self.gate(caller);
        let (rev, mut explanation) = self.with_resolved(&g, ns, ctx, at, |rev, resolved| {
            (rev, resolved.explain(key))
        })?;
        let mut opened = Vec::new();
        {
            let keyring = security_read(&self.security);
            for e in &mut explanation.entries {
                let Some(v) = e.value.as_mut() else { continue };
                if confstrata_crypto::is_sealed(v) {
                    let resource = Resource::key(ns.clone(), e.layer.clone(), key.clone());
                    if g.allows(Action::ReadSecrets, &resource) {
                        *v = confstrata_crypto::open_value(&keyring, ns, &e.layer, key, v)
                            .map_err(security::crypto_error)?;
                        opened.push(resource.to_string());
                        continue;
                    }
                }
                mask_value(v);
            }
        }
        // The resolved value is the winner's, as just presented (a value
        // that is a table holding sealed leaves is masked where they are).
        explanation.value = match explanation.entries.iter().find(|e| e.winner) {
            Some(w)
                if w.value.is_some()
                    && explanation
                        .value
                        .as_ref()
                        .is_some_and(|v| !v.is_object() || confstrata_crypto::is_sealed(v)) =>
            {
                w.value.clone()
            }
            _ => explanation.value.map(|mut v| {
                if security::contains_sealed(&v) {
                    mask_value(&mut v);
                }
                v
            }),
        };
        g.audit_opened(ns, &opened, rev)?;
        let mut changes = BTreeMap::new();
        for e in &explanation.entries {
            if let std::collections::btree_map::Entry::Vacant(slot) = changes.entry(e.revision)
                && let Some(info) = self.store.revision_info(e.revision)?
            {
                slot.insert(info);
            }
        }
        g.audit_read(Resource::namespace(ns.clone()), rev)?;
        Ok(ExplainView {
            explanation,
            changes,
        })
    }

    fn with_resolved<T>(
        &self,
        g: &Gate<'_>,
        ns: &NamespaceName,
        ctx: &Context,
        at: At,
        f: impl FnOnce(u64, &confstrata_core::Resolved<'_>) -> T,
    ) -> Result<T> {
        self.with_resolved_section(g, ns, ctx, at, None, f)
    }

    /// [`Engine::with_resolved`] merging only `section` of each layer (the
    /// merge can leave values outside it that block it: cut the result).
    fn with_resolved_section<T>(
        &self,
        g: &Gate<'_>,
        ns: &NamespaceName,
        ctx: &Context,
        at: At,
        section: Option<&KeyPath>,
        f: impl FnOnce(u64, &confstrata_core::Resolved<'_>) -> T,
    ) -> Result<T> {
        g.require_some(Action::Read, ns)?;
        let rev = self.store.revision_at(at)?;
        let spec = self.namespace_at(ns, rev)?.spec;
        let wanted = spec.layers_for(ctx)?;
        for layer in &wanted {
            g.require(Action::Read, Resource::layer(ns.clone(), layer.clone()))?;
        }
        let mut records = Vec::with_capacity(wanted.len());
        let top = section.and_then(|s| s.segments().first());
        for layer in &wanted {
            // A section reads only its top-level part of each layer.
            let record = match top {
                Some(top) => self.store.layer_section(ns, layer, rev, top)?,
                None => self.store.layer(ns, layer, rev)?,
            };
            if let Some(mut r) = record {
                if let Some(key) = section {
                    r.document = confstrata_core::doc::section(&r.document, key, true);
                }
                records.push(r);
            }
        }
        let inputs: Vec<LayerInput<'_>> = records
            .iter()
            .map(|r| LayerInput {
                layer: &r.layer,
                revision: r.revision,
                document: &r.document,
            })
            .collect();
        Ok(f(rev, &resolve(&inputs)))
    }

    /// Opens or masks the sealed values of diff entries between two layer
    /// versions; for a caller who may read them, entries whose plaintexts
    /// are equal (a value sealed again) are dropped.
    fn present_diff(
        &self,
        g: &Gate<'_>,
        entries: Vec<DiffEntry>,
        a: (&NamespaceName, &LayerPath),
        b: (&NamespaceName, &LayerPath),
        revision: u64,
    ) -> Result<Vec<DiffEntry>> {
        let mut out = Vec::with_capacity(entries.len());
        let mut opened = Vec::new();
        let keyring = security_read(&self.security);
        for mut e in entries {
            let mut show =
                |v: &mut Option<Value>, (ns, layer): (&NamespaceName, &LayerPath)| -> Result<()> {
                    let Some(v) = v.as_mut() else { return Ok(()) };
                    if confstrata_crypto::is_sealed(v) {
                        let resource = Resource::key(ns.clone(), layer.clone(), e.key.clone());
                        if g.allows(Action::ReadSecrets, &resource) {
                            *v = confstrata_crypto::open_value(&keyring, ns, layer, &e.key, v)
                                .map_err(security::crypto_error)?;
                            opened.push(resource.to_string());
                            return Ok(());
                        }
                    }
                    if security::contains_sealed(v) {
                        mask_value(v);
                    }
                    Ok(())
                };
            show(&mut e.old, a)?;
            show(&mut e.new, b)?;
            let sealed_both = e.old.is_some() && e.old == e.new;
            if !sealed_both || e.old.as_ref().is_some_and(|v| v == confstrata_crypto::MASK) {
                out.push(e);
            }
        }
        drop(keyring);
        g.audit_opened(a.0, &opened, revision)?;
        Ok(out)
    }

    /// Diffs two layers (possibly at different revisions or in different namespaces).
    /// A missing layer counts as empty.
    pub fn diff_layers(
        &self,
        caller: &Caller,
        a: (&NamespaceName, &LayerPath, At),
        b: (&NamespaceName, &LayerPath, At),
    ) -> Result<Vec<DiffEntry>> {
        let g = self.gate(caller);
        for (ns, layer, _) in [a, b] {
            g.require_some(Action::Read, ns)?;
            g.require(Action::Read, Resource::layer(ns.clone(), layer.clone()))?;
        }
        let read = |(ns, layer, at): (&NamespaceName, &LayerPath, At)| -> Result<(Document, u64)> {
            let rev = self.store.revision_at(at)?;
            self.namespace_at(ns, rev)?;
            Ok((
                self.store
                    .layer(ns, layer, rev)?
                    .map(|r| r.document)
                    .unwrap_or_default(),
                rev,
            ))
        };
        let (old, _) = read(a)?;
        let (new, rev) = read(b)?;
        self.present_diff(&g, diff(&old, &new), (a.0, a.1), (b.0, b.1), rev)
    }

    /// Diffs two resolved contexts (possibly at different revisions).
    pub fn diff_resolved(
        &self,
        caller: &Caller,
        ns: &NamespaceName,
        a: (&Context, At),
        b: (&Context, At),
    ) -> Result<Vec<DiffEntry>> {
        let old = self.resolve(caller, ns, a.0, a.1)?.document;
        let new = self.resolve(caller, ns, b.0, b.1)?.document;
        Ok(diff(&old, &new))
    }

    /// Diffs every layer of a namespace that the caller may read between two revisions.
    pub fn diff_namespace(
        &self,
        caller: &Caller,
        ns: &NamespaceName,
        from: At,
        to: At,
    ) -> Result<Vec<LayerDiff>> {
        let g = self.gate(caller);
        g.require_some(Action::Read, ns)?;
        let (from, to) = (self.store.revision_at(from)?, self.store.revision_at(to)?);
        let old = self.store.layers(ns, from)?;
        let new = self.store.layers(ns, to)?;
        if self.store.namespace(ns, from)?.is_none() && self.store.namespace(ns, to)?.is_none() {
            return Err(Error::NamespaceNotFound {
                namespace: ns.to_string(),
            });
        }
        let paths: BTreeSet<&LayerPath> = old.iter().chain(&new).map(|r| &r.layer).collect();
        let empty = Document::new();
        let mut out = Vec::new();
        for p in paths {
            if !g.allows(Action::Read, &Resource::layer(ns.clone(), p.clone())) {
                continue;
            }
            let a = old.iter().find(|r| &r.layer == p);
            let b = new.iter().find(|r| &r.layer == p);
            let changes = diff(
                a.map_or(&empty, |r| &r.document),
                b.map_or(&empty, |r| &r.document),
            );
            let changes = self.present_diff(&g, changes, (ns, p), (ns, p), to)?;
            let status = match (a, b) {
                (None, _) => LayerStatus::Created,
                (_, None) => LayerStatus::Deleted,
                _ if changes.is_empty() => continue,
                _ => LayerStatus::Changed,
            };
            out.push(LayerDiff {
                namespace: ns.clone(),
                layer: p.clone(),
                status,
                changes,
            });
        }
        g.audit_read(Resource::namespace(ns.clone()), to)?;
        Ok(out)
    }

    /// Versions of one layer or of every layer the caller may read, newest first.
    pub fn history(
        &self,
        caller: &Caller,
        ns: &NamespaceName,
        layer: Option<&LayerPath>,
        limit: usize,
    ) -> Result<Vec<LayerVersion>> {
        let g = self.gate(caller);
        g.require_some(Action::Read, ns)?;
        if let Some(l) = layer {
            g.require(Action::Read, Resource::layer(ns.clone(), l.clone()))?;
        }
        let current = self.store.revision()?;
        self.namespace_at(ns, current)?;
        let mut out = Vec::new();
        // Filtering after the store's limit could return fewer versions than
        // exist; ask for more until enough readable ones are found.
        let mut fetch = limit;
        loop {
            let versions = self.store.history(ns, layer, fetch)?;
            let exhausted = versions.len() < fetch;
            out.clear();
            for mut v in versions {
                if !g.allows(Action::Read, &Resource::layer(ns.clone(), v.layer.clone())) {
                    continue;
                }
                if let Some(doc) = v.document.as_mut() {
                    g.present_layer(ns, &v.layer, doc, v.info.revision)?;
                }
                out.push(v);
                if out.len() == limit {
                    break;
                }
            }
            if out.len() >= limit || exhausted {
                break;
            }
            fetch = fetch.saturating_mul(4);
        }
        g.audit_read(Resource::namespace(ns.clone()), current)?;
        Ok(out)
    }

    /// Versions of a namespace's declaration (levels, matrix, validation
    /// chain), newest first.
    pub fn declaration_history(
        &self,
        caller: &Caller,
        ns: &NamespaceName,
        limit: usize,
    ) -> Result<Vec<confstrata_core::DeclarationVersion>> {
        let g = self.gate(caller);
        g.require_some(Action::Read, ns)?;
        let versions = self.store.declaration_history(ns, limit)?;
        if versions.is_empty() && limit > 0 {
            return Err(Error::NamespaceNotFound {
                namespace: ns.to_string(),
            });
        }
        g.audit_read(Resource::namespace(ns.clone()), self.store.revision()?)?;
        Ok(versions)
    }

    /// Diffs a namespace's declaration between two revisions (as documents:
    /// `levels`, `matrix`, `validation.rules`, ...). A revision where it did
    /// not exist counts as empty.
    pub fn diff_declaration(
        &self,
        caller: &Caller,
        ns: &NamespaceName,
        from: At,
        to: At,
    ) -> Result<Vec<DiffEntry>> {
        let g = self.gate(caller);
        g.require_some(Action::Read, ns)?;
        let read = |at| -> Result<(Option<NamespaceRecord>, u64)> {
            let rev = self.store.revision_at(at)?;
            Ok((self.store.namespace(ns, rev)?, rev))
        };
        let ((a, _), (b, _)) = (read(from)?, read(to)?);
        if a.is_none() && b.is_none() {
            return Err(Error::NamespaceNotFound {
                namespace: ns.to_string(),
            });
        }
        Ok(diff(&spec_document(a)?, &spec_document(b)?))
    }

    /// Applies a retention policy now (`admin` on everything).
    pub fn apply_retention(
        &self,
        caller: &Caller,
        policy: &RetentionPolicy,
    ) -> Result<RetentionReport> {
        let g = self.gate(caller);
        g.require(Action::Admin, Resource::everything())?;
        let report = self.store.apply_retention(policy, Timestamp::now())?;
        g.audit(
            g.entry(Action::Admin, Resource::everything(), Outcome::Success)
                .detail("operation", "compact")
                .detail("oldest_revision", report.oldest_revision.to_string()),
        )?;
        Ok(report)
    }
}

/// A declaration as a document, for diffs (empty if absent).
pub fn spec_document(record: Option<NamespaceRecord>) -> Result<Document> {
    match record {
        None => Ok(Document::new()),
        Some(r) => match confstrata_core::serde_json::to_value(&r.spec) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Ok(Document::new()),
            Err(e) => Err(Error::storage(format!("encoding a declaration: {e}"))),
        },
    }
}

/// Replaces a value that holds sealed tables with the mask.
pub(crate) fn mask_value(v: &mut Value) {
    if confstrata_crypto::is_sealed(v) {
        *v = Value::String(confstrata_crypto::MASK.to_owned());
        return;
    }
    let mut one = Document::new();
    one.insert(String::new(), std::mem::take(v));
    confstrata_crypto::mask(&mut one);
    *v = one.remove("").unwrap_or(Value::Null);
}

fn security_read(sec: &Security) -> std::sync::RwLockReadGuard<'_, confstrata_crypto::Keyring> {
    sec.keyring.read().unwrap_or_else(PoisonError::into_inner)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
