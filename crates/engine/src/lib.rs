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
//!
//! The engine is given its store and never opens one (`confstrata-host`
//! opens the data directory). Its rooms: `read.rs` (namespaces, layers,
//! resolves, explain), `view/` (the cached view and its incremental
//! rebuild), `present.rs` (opening or masking sealed values for a caller),
//! `history.rs` (history, diffs, retention), `write.rs` (the commit: one
//! entry, [`Engine::commit`], and for async front ends [`Engine::submit`];
//! dry run, rollback, namespace creation), `validate.rs`, `locks.rs` and
//! `pipeline.rs` (validation on the commit path), `security.rs` (the one
//! authorization point) and `admin.rs` (keys, principals, the audit log),
//! `stats.rs` (measurements).

use std::collections::BTreeMap;

use std::sync::{Arc, Mutex, PoisonError};

/// The backup crate, for callers of [`backup`] (its types and targets).
pub use confstrata_backup;
use confstrata_core::serde_json::Value;
use confstrata_core::{Document, LayerPath, NamespaceName, Result, Store};
pub use confstrata_crypto::{Error as CryptoError, MASTER_KEY_ENV, MasterKey};
pub use confstrata_templates;

mod admin;
mod auth_failures;
pub mod backup;
mod generate;
mod history;
mod imports;
mod locks;
mod master;
mod pipeline;
mod present;
mod rbac;
mod read;
mod security;
mod stats;
pub mod sync;
mod templates;
mod validate;
mod view;
mod write;

pub use confstrata_access::{Action, AuditRecord, PrincipalKind, Resource, Token};
use confstrata_analytics::StageTimings;
pub use confstrata_analytics::{StageSummary, TimingsSnapshot};
use confstrata_cache::ViewCache;
pub use confstrata_cache::{Budget, CacheStats};
use confstrata_core::timing::{Phase, Timings as _};
pub use confstrata_core::view::{
    AccessCheck, AuditVerification, BindingInfo, DryRun, EffectiveGrant, ExplainView, GrantInfo,
    GroupInfo, Holder, KeyInfo, LayerDiff, LayerStatus, MasterKeyRotation, PolicyApply,
    PolicyDocument, PolicyGroup, PolicyPrincipal, PolicyRole, PrincipalDetail, PrincipalInfo,
    ResolvedView, RoleInfo, Rollback, ServerStatus, TokenInfo,
};
pub use confstrata_rules::{CHECK_STACK_BYTES, assume_check_stack};
pub use generate::{GeneratePlan, GeneratedLayer};
pub use history::spec_document;
pub use master::MasterKeyFile;
pub use rbac::{binding, grants_from_info};
pub use security::{
    AUDIT_KEYS_SETTING, Caller, CertificateIdentity, KEYRING_SETTING, MASTER_KEY_ID_SETTING,
    POLICY_SETTING, SecurityOptions, crypto_error, from_journal,
};
pub use stats::EngineStats;
pub use templates::{
    CallerLookup, CatalogueEntry, Outcome, Override, TEMPLATES_NAMESPACE, TemplateDiff,
    TemplatePlan, UpgradePlan,
};
pub use validate::{DEFAULT_VALIDATION_BUDGET, LIBRARY_NAMESPACE, ValidationHook};
pub use view::SharedView;
pub use write::{BlockingCommit, Route};

/// The built-in schema library (`"$ref": "confstrata:<name>"`): name → schema.
pub fn schema_library() -> &'static BTreeMap<String, Value> {
    confstrata_rules::library()
}
use security::{Gate, Security};
use view::CachedView;

/// The engine: operations over a store.
#[derive(Clone)]
pub struct Engine {
    store: Arc<dyn Store>,
    observers: Arc<Mutex<Vec<CommitObserver>>>,
    policy_observers: Arc<Mutex<Vec<PolicyObserver>>>,
    security: Arc<Security>,
    backups: Arc<backup::Backups>,
    validator: Arc<validate::Validator>,
    /// Failed authentications, counted per source (`auth_failures`).
    auth_failures: Arc<auth_failures::AuthFailures>,
    views: Arc<ViewCache<CachedView>>,
    /// What recent commits changed, per namespace, for rebuilding stale
    /// views (`incremental`).
    changes: Arc<Mutex<view::incremental::ChangeLogs>>,
    /// Whether stale views are rebuilt from their predecessor when the
    /// change allows it (else every stale view is merged again).
    incremental: Arc<std::sync::atomic::AtomicBool>,
    timings: Arc<StageTimings>,
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
    fn layer_paths(&mut self, ns: &NamespaceName) -> Result<Vec<LayerPath>> {
        Ok(self
            .store
            .layers(ns, self.revision)?
            .into_iter()
            .map(|r| r.layer)
            .collect())
    }
    fn namespace_names(&mut self) -> Result<Vec<NamespaceName>> {
        Ok(self
            .store
            .namespaces(self.revision)?
            .into_iter()
            .map(|r| r.spec.name)
            .collect())
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
            backups: Arc::default(),
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
        self.authenticate_from(authorization, None, request_id, "unknown")
    }

    /// [`Engine::authenticate`] for a request from `source` (a client's
    /// address). Failures are audited per source without letting a caller
    /// fill the disk: the first in a minute is a record at once, the rest
    /// of that minute become one record with their count (written when the
    /// source fails again after the minute, or when the engine is dropped).
    ///
    /// With mutual TLS, `certificate` is what the server's rule read from
    /// the client's verified certificate: it names the caller when no
    /// token is sent, and must name the token's principal when one is.
    pub fn authenticate_from(
        &self,
        authorization: Option<&str>,
        certificate: Option<&CertificateIdentity>,
        request_id: &str,
        source: &str,
    ) -> Result<Caller> {
        let checked = self.timed(Phase::Authenticate, || {
            self.security.authenticate(authorization, certificate)
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
        certificate: Option<&CertificateIdentity>,
        request_id: &str,
    ) -> Option<Caller> {
        self.timed(Phase::Authenticate, || {
            self.security.authenticate(authorization, certificate)
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

    /// Whether a watch of `ns` may go on after a policy change: the
    /// caller's token still holds, and it may still read some of the
    /// namespace (as when the watch began). A refusal is audited.
    pub fn check_watch(&self, caller: &Caller, ns: &NamespaceName) -> Result<()> {
        self.security.still_valid(caller)?;
        self.gate(caller).require_some(Action::Read, ns)
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

    /// Times `f` as `stage`.
    fn timed<T>(&self, stage: Phase, f: impl FnOnce() -> T) -> T {
        let started = self.timings.start();
        let out = f();
        started.stop(&*self.timings, stage);
        out
    }
}

fn security_read(sec: &Security) -> std::sync::RwLockReadGuard<'_, confstrata_crypto::Keyring> {
    sec.keyring.read().unwrap_or_else(PoisonError::into_inner)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
