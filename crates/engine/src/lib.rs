//! The assembled Confstrata service, with no network code: the one place where
//! a request is resolved, diffed, committed and rolled back over any
//! [`Store`]. Later capabilities (access, validation, sealing, audit, metrics)
//! plug in here, so every front end (CLI, gRPC, REST) gets them at once.
//!
//! ```
//! use std::sync::{Arc, Mutex, PoisonError};
//! use confstrata_core::{At, ChangeSet, MemoryStore, parse_context};
//! use confstrata_engine::Engine;
//!
//! let engine = Engine::new(Arc::new(MemoryStore::new()));
//! let cs: ChangeSet = serde_json::from_str(r#"{"ops": [
//!   {"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults", "env/{env}"]}},
//!   {"op": "put", "namespace": "web", "layer": "defaults", "document": {"port": 80}},
//!   {"op": "set", "namespace": "web", "layer": "env/prod", "key": "port", "value": 443}
//! ]}"#).unwrap();
//! engine.commit(&cs).unwrap();
//! let view = engine.resolve(&"web".parse().unwrap(), &parse_context("env=prod").unwrap(), At::Latest).unwrap();
//! assert_eq!(view.document["port"], 443);
//! assert_eq!(view.provenance[0].1.layer.as_str(), "env/prod");
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use confstrata_core::{
    At, ChangeSet, CommitInfo, Context, DiffEntry, Document, Error, Explanation, KeyPath,
    LayerInput, LayerPath, LayerRecord, LayerVersion, NamespaceName, NamespaceRecord, Op,
    Provenance, Result, RetentionPolicy, RetentionReport, RevisionInfo, Store, Timestamp, diff,
    resolve,
};
use serde::Serialize;

/// The file name of the SQLite database inside a data directory.
pub const DB_FILE: &str = "confstrata.db";

/// The engine: operations over a store.
#[derive(Clone)]
pub struct Engine {
    store: Arc<dyn Store>,
    observers: Arc<Mutex<Vec<CommitObserver>>>,
}

/// Called with the new revision after every commit made through the engine.
pub type CommitObserver = Arc<dyn Fn(u64) + Send + Sync>;

/// What a change set would do: the answer of [`Engine::dry_run`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DryRun {
    /// The revision the change set was checked against.
    pub revision: u64,
    /// The layers it would change, with their key-level diffs.
    pub layers: Vec<LayerDiff>,
    /// The namespaces whose declaration it would create or change.
    pub namespaces: Vec<NamespaceName>,
}

/// Reads the committed state at one revision, for planning a dry run.
struct StoreReader<'s> {
    store: &'s dyn Store,
    revision: u64,
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

/// A resolved configuration, owned.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResolvedView {
    /// The namespace.
    pub namespace: NamespaceName,
    /// The context it was resolved for.
    pub context: Context,
    /// The revision it was read at.
    pub revision: u64,
    /// The layers that exist for this context, most general first.
    pub layers: Vec<Provenance>,
    /// The resolved document.
    pub document: Document,
    /// Every leaf's provenance, in key order.
    #[serde(serialize_with = "serialize_provenance")]
    pub provenance: Vec<(KeyPath, Provenance)>,
}

fn serialize_provenance<S: serde::Serializer>(
    p: &[(KeyPath, Provenance)],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_map(p.iter().map(|(k, v)| (k.to_string(), v)))
}

/// An [`Explanation`] with the change sets behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExplainView {
    /// Every layer that sets the key, most specific first.
    #[serde(flatten)]
    pub explanation: Explanation,
    /// Who changed each of those layers last, when and why, by revision
    /// (absent where retention removed the record).
    pub changes: BTreeMap<u64, RevisionInfo>,
}

/// The key-level changes of one layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerDiff {
    /// The namespace.
    pub namespace: NamespaceName,
    /// The layer.
    pub layer: LayerPath,
    /// Whether the layer was created, deleted, or changed.
    pub status: LayerStatus,
    /// The keys that differ.
    pub changes: Vec<DiffEntry>,
}

/// What happened to a layer between two revisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerStatus {
    /// Exists only at the newer revision.
    Created,
    /// Exists only at the older revision.
    Deleted,
    /// Exists at both, with different content.
    Changed,
}

impl Engine {
    /// An engine over any store.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Engine {
            store,
            observers: Arc::default(),
        }
    }

    /// Registers a function called with the new revision after every commit
    /// made through this engine (or its clones). Keep it cheap: it runs on
    /// the committing thread.
    pub fn on_commit(&self, observer: CommitObserver) {
        self.observers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(observer);
    }

    fn notify(&self, revision: u64) {
        let observers = self
            .observers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for o in observers {
            o(revision);
        }
    }

    /// Opens (creating if needed) the embedded SQLite store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            Error::storage(format!(
                "cannot create data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let store = confstrata_store::SqliteStore::open(&data_dir.join(DB_FILE))?;
        Ok(Engine::new(Arc::new(store)))
    }

    /// The underlying store.
    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// Every namespace at a revision.
    pub fn namespaces(&self, at: At) -> Result<Vec<NamespaceRecord>> {
        let rev = self.store.revision_at(at)?;
        self.store.namespaces(rev)
    }

    /// One namespace, or [`Error::NamespaceNotFound`].
    pub fn namespace(&self, name: &NamespaceName, at: At) -> Result<NamespaceRecord> {
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
    pub fn layer(&self, ns: &NamespaceName, layer: &LayerPath, at: At) -> Result<LayerRecord> {
        let rev = self.store.revision_at(at)?;
        self.namespace_at(ns, rev)?;
        self.store
            .layer(ns, layer, rev)?
            .ok_or_else(|| Error::LayerNotFound {
                namespace: ns.to_string(),
                layer: layer.to_string(),
            })
    }

    /// Every layer of a namespace.
    pub fn layers(&self, ns: &NamespaceName, at: At) -> Result<Vec<LayerRecord>> {
        let rev = self.store.revision_at(at)?;
        self.namespace_at(ns, rev)?;
        self.store.layers(ns, rev)
    }

    /// Resolves a namespace for a context.
    pub fn resolve(&self, ns: &NamespaceName, ctx: &Context, at: At) -> Result<ResolvedView> {
        self.with_resolved(ns, ctx, at, |rev, resolved| ResolvedView {
            namespace: ns.clone(),
            context: ctx.clone(),
            revision: rev,
            layers: resolved.layers().collect(),
            document: resolved.to_document(),
            provenance: resolved.provenance(),
        })
    }

    /// Explains one key of a resolved configuration: every layer that sets it,
    /// most specific first, and the change (author, message, time) behind
    /// each layer's version.
    pub fn explain(
        &self,
        ns: &NamespaceName,
        ctx: &Context,
        key: &KeyPath,
        at: At,
    ) -> Result<ExplainView> {
        let explanation = self.with_resolved(ns, ctx, at, |_, resolved| resolved.explain(key))?;
        let mut changes = BTreeMap::new();
        for e in &explanation.entries {
            if let std::collections::btree_map::Entry::Vacant(slot) = changes.entry(e.revision)
                && let Some(info) = self.store.revision_info(e.revision)?
            {
                slot.insert(info);
            }
        }
        Ok(ExplainView {
            explanation,
            changes,
        })
    }

    fn with_resolved<T>(
        &self,
        ns: &NamespaceName,
        ctx: &Context,
        at: At,
        f: impl FnOnce(u64, &confstrata_core::Resolved<'_>) -> T,
    ) -> Result<T> {
        let rev = self.store.revision_at(at)?;
        let spec = self.namespace_at(ns, rev)?.spec;
        let wanted = spec.layers_for(ctx)?;
        let mut records = Vec::with_capacity(wanted.len());
        for layer in &wanted {
            if let Some(r) = self.store.layer(ns, layer, rev)? {
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

    /// Diffs two layers (possibly at different revisions or in different namespaces).
    /// A missing layer counts as empty.
    pub fn diff_layers(
        &self,
        a: (&NamespaceName, &LayerPath, At),
        b: (&NamespaceName, &LayerPath, At),
    ) -> Result<Vec<DiffEntry>> {
        let read = |(ns, layer, at): (&NamespaceName, &LayerPath, At)| -> Result<Document> {
            let rev = self.store.revision_at(at)?;
            self.namespace_at(ns, rev)?;
            Ok(self
                .store
                .layer(ns, layer, rev)?
                .map(|r| r.document)
                .unwrap_or_default())
        };
        Ok(diff(&read(a)?, &read(b)?))
    }

    /// Diffs two resolved contexts (possibly at different revisions).
    pub fn diff_resolved(
        &self,
        ns: &NamespaceName,
        a: (&Context, At),
        b: (&Context, At),
    ) -> Result<Vec<DiffEntry>> {
        let old = self.resolve(ns, a.0, a.1)?.document;
        let new = self.resolve(ns, b.0, b.1)?.document;
        Ok(diff(&old, &new))
    }

    /// Diffs every layer of a namespace between two revisions.
    pub fn diff_namespace(&self, ns: &NamespaceName, from: At, to: At) -> Result<Vec<LayerDiff>> {
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
            let a = old.iter().find(|r| &r.layer == p);
            let b = new.iter().find(|r| &r.layer == p);
            let changes = diff(
                a.map_or(&empty, |r| &r.document),
                b.map_or(&empty, |r| &r.document),
            );
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
        Ok(out)
    }

    /// Versions of one layer or all layers of a namespace, newest first.
    pub fn history(
        &self,
        ns: &NamespaceName,
        layer: Option<&LayerPath>,
        limit: usize,
    ) -> Result<Vec<LayerVersion>> {
        self.namespace_at(ns, self.store.revision()?)?;
        self.store.history(ns, layer, limit)
    }

    /// Commits a change set.
    pub fn commit(&self, changes: &ChangeSet) -> Result<CommitInfo> {
        let info = self.store.commit(changes)?;
        self.notify(info.revision);
        Ok(info)
    }

    /// Checks a change set against the current state exactly as a commit
    /// would, and returns the diff it would make, without committing.
    pub fn dry_run(&self, changes: &ChangeSet) -> Result<DryRun> {
        let revision = self.store.revision()?;
        let mut reader = StoreReader {
            store: &*self.store,
            revision,
        };
        let plan =
            confstrata_core::plan(changes, &mut reader, &confstrata_core::Limits::default())?;
        let mut layers = Vec::new();
        for (ns, layer, new) in &plan.layers {
            let old = self.store.layer(ns, layer, revision)?.map(|r| r.document);
            let empty = Document::new();
            let changes = diff(
                old.as_ref().unwrap_or(&empty),
                new.as_ref().unwrap_or(&empty),
            );
            let status = match (&old, new) {
                (None, _) => LayerStatus::Created,
                (_, None) => LayerStatus::Deleted,
                _ if changes.is_empty() => continue,
                _ => LayerStatus::Changed,
            };
            layers.push(LayerDiff {
                namespace: ns.clone(),
                layer: layer.clone(),
                status,
                changes,
            });
        }
        Ok(DryRun {
            revision,
            layers,
            namespaces: plan.namespaces.into_iter().map(|s| s.name).collect(),
        })
    }

    /// Builds the change set that brings a namespace (or one of its layers)
    /// back to its state at `to`; `None` if it is already there.
    pub fn rollback_plan(
        &self,
        ns: &NamespaceName,
        layer: Option<&LayerPath>,
        to: At,
        author: &str,
        message: &str,
    ) -> Result<Option<ChangeSet>> {
        let target = self.store.revision_at(to)?;
        let current = self.store.revision()?;
        let old_spec = self.store.namespace(ns, target)?.ok_or_else(|| {
            Error::invalid(
                format!("rollback of {ns}"),
                format!("the namespace did not exist at revision {target}"),
            )
        })?;
        let now_spec = self.namespace_at(ns, current)?;
        let mut ops = Vec::new();
        if layer.is_none() && old_spec.spec != now_spec.spec {
            ops.push(Op::PutNamespace {
                spec: old_spec.spec,
                expect_revision: Some(now_spec.revision),
            });
        }
        let (old, new) = match layer {
            Some(l) => (
                self.store
                    .layer(ns, l, target)?
                    .into_iter()
                    .collect::<Vec<_>>(),
                self.store
                    .layer(ns, l, current)?
                    .into_iter()
                    .collect::<Vec<_>>(),
            ),
            None => (
                self.store.layers(ns, target)?,
                self.store.layers(ns, current)?,
            ),
        };
        for r in &new {
            match old.iter().find(|o| o.layer == r.layer) {
                Some(o) if o.document == r.document => {}
                Some(o) => ops.push(Op::Put {
                    namespace: ns.clone(),
                    layer: r.layer.clone(),
                    document: o.document.clone(),
                    expect_revision: Some(r.revision),
                }),
                None => ops.push(Op::Delete {
                    namespace: ns.clone(),
                    layer: r.layer.clone(),
                    expect_revision: Some(r.revision),
                }),
            }
        }
        for o in &old {
            if !new.iter().any(|r| r.layer == o.layer) {
                ops.push(Op::Put {
                    namespace: ns.clone(),
                    layer: o.layer.clone(),
                    document: o.document.clone(),
                    expect_revision: Some(0),
                });
            }
        }
        if ops.is_empty() {
            return Ok(None);
        }
        let what = layer.map_or_else(|| ns.to_string(), |l| format!("{ns}:{l}"));
        let message = if message.is_empty() {
            format!("rollback {what} to revision {target}")
        } else {
            message.to_owned()
        };
        Ok(Some(ChangeSet {
            author: author.to_owned(),
            message,
            ops,
        }))
    }

    /// Rolls a namespace (or one layer) back to its state at `to`, as a new
    /// change set guarded by preconditions; `None` if nothing differs.
    pub fn rollback(
        &self,
        ns: &NamespaceName,
        layer: Option<&LayerPath>,
        to: At,
        author: &str,
        message: &str,
    ) -> Result<Option<CommitInfo>> {
        match self.rollback_plan(ns, layer, to, author, message)? {
            Some(cs) => self.commit(&cs).map(Some),
            None => Ok(None),
        }
    }

    /// Applies a retention policy now.
    pub fn apply_retention(&self, policy: &RetentionPolicy) -> Result<RetentionReport> {
        self.store.apply_retention(policy, Timestamp::now())
    }
}

#[cfg(test)]
mod tests;
