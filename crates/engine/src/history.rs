//! History and diffs: layer versions, declaration versions, diffs of
//! layers, contexts and whole namespaces between states, and retention.

use std::collections::BTreeSet;

use confstrata_access::{Action, Outcome, Resource};
use confstrata_core::serde_json::Value;
use confstrata_core::view::{LayerDiff, LayerStatus};
use confstrata_core::{
    At, Context, DiffEntry, Document, Error, LayerPath, LayerVersion, NamespaceName,
    NamespaceRecord, Result, RetentionPolicy, RetentionReport, Timestamp, diff,
};

use crate::Engine;
use crate::present::readable_layer;
use crate::security::Caller;

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

impl Engine {
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
            if readable_layer(&g, ns, layer, None).is_none() {
                return Err(g.refuse(Action::Read, Resource::layer(ns.clone(), layer.clone())));
            }
        }
        // Keys the caller may not read are left out of both sides.
        let read = |(ns, layer, at): (&NamespaceName, &LayerPath, At)| -> Result<(Document, u64)> {
            let rev = self.store.revision_at(at)?;
            self.namespace_at(ns, rev)?;
            let mut doc = self
                .store
                .layer(ns, layer, rev)?
                .map(|r| r.document)
                .unwrap_or_default();
            readable_layer(&g, ns, layer, Some(&mut doc));
            Ok((doc, rev))
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
            if readable_layer(&g, ns, p, None).is_none() {
                continue;
            }
            let a = old.iter().find(|r| &r.layer == p);
            let b = new.iter().find(|r| &r.layer == p);
            // Keys the caller may not read are left out of both sides.
            let cut = |r: Option<&confstrata_core::LayerRecord>| {
                let mut doc = r.map_or_else(|| empty.clone(), |r| r.document.clone());
                readable_layer(&g, ns, p, Some(&mut doc));
                doc
            };
            let changes = diff(&cut(a), &cut(b));
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
        if let Some(l) = layer
            && readable_layer(&g, ns, l, None).is_none()
        {
            return Err(g.refuse(Action::Read, Resource::layer(ns.clone(), l.clone())));
        }
        let current = self.store.revision()?;
        // A deleted namespace's history stays readable.
        if let Err(e) = self.namespace_at(ns, current)
            && self.store.declaration_history(ns, 1)?.is_empty()
        {
            return Err(e);
        }
        let mut out = Vec::new();
        // Filtering after the store's limit could return fewer versions than
        // exist; ask for more until enough readable ones are found.
        let mut fetch = limit;
        loop {
            let versions = self.store.history(ns, layer, fetch)?;
            let exhausted = versions.len() < fetch;
            out.clear();
            for mut v in versions {
                // Versions of layers the caller may read only some keys of
                // hold only those keys, and say so.
                let Some(partial) = readable_layer(&g, ns, &v.layer, v.document.as_mut()) else {
                    continue;
                };
                v.partial = partial;
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
