//! Reads: namespaces, layers, resolves (the view cache, the no-I/O fast
//! path, sections, rebuilding stale views), explain, and what a caller may
//! see of a change (watch events).

use std::collections::BTreeMap;
use std::sync::Arc;

use confstrata_access::{Action, Resource};
use confstrata_cache::ViewKey;
use confstrata_core::imports::{ChainLayer, chain_layers};
use confstrata_core::timing::{Phase, Timings as _};
use confstrata_core::view::{ExplainView, ResolvedView};
use confstrata_core::{
    At, Context, Error, KeyPath, LayerInput, LayerPath, LayerRecord, NamespaceName,
    NamespaceRecord, Result, resolve,
};

use crate::present::mask_value;
use crate::security::{self, Caller, Gate, ReadScope};
use crate::view::incremental;
use crate::view::{CachedView, SharedView, context_key, cut_to_section, section_json};
use crate::{Engine, lock, security_read};

impl Engine {
    /// What `caller` may see of a change in `namespaces` (a watch event:
    /// the watched namespace and what it imports, [`Engine::resolved_from`]):
    /// the change's items in them that it may read, a layer by `read` on
    /// some of the layer (a resolved document is then cut to the keys it
    /// may read), a declaration by `read` on some of the namespace. Empty:
    /// nothing of it.
    pub fn visible_items(
        &self,
        caller: &Caller,
        namespaces: &[NamespaceName],
        change: &confstrata_core::Change,
    ) -> Vec<confstrata_core::ChangeItem> {
        let policy = self.security.policy();
        change
            .items
            .iter()
            .filter(|i| namespaces.contains(&i.namespace))
            .filter(|i| match &i.layer {
                Some(l) => self.security.allows_some(
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

    pub(crate) fn namespace_at(&self, name: &NamespaceName, rev: u64) -> Result<NamespaceRecord> {
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
        g.present_record(&mut record, rev)?;
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
                g.present_record(&mut r, rev)?;
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
                r.sealed_keys =
                    confstrata_crypto::sealed_paths(&r.document).map_err(security::crypto_error)?;
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
            let (merged, scope) = self.timed(Phase::Resolve, || {
                self.with_resolved_scoped(&g, ns, ctx, at, section, |rev, resolved, _| {
                    view_of(ns, ctx, rev, resolved)
                })
            })?;
            let mut view = match section {
                Some(key) => cut_to_section(&merged, key),
                None => merged,
            };
            if scope == ReadScope::Keys {
                self.keep_readable(&g, &mut view);
            }
            view
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
        for l in &cached.wanted {
            if !g.allows(
                Action::Read,
                &Resource::layer(l.namespace.clone(), l.layer.clone()),
            ) {
                return None;
            }
        }
        for (key, in_ns, layer) in &cached.sealed {
            if g.allows(
                Action::ReadSecrets,
                &Resource::key(in_ns.clone(), layer.clone(), key.clone()),
            ) {
                return None;
            }
        }
        authorize.stop(&*self.timings, Phase::Authorize);
        let json = cached.masked().ok()?;
        let json = match section {
            None => json,
            Some(key) => section_json(&json, key)?,
        };
        Some(SharedView {
            revision: current,
            json,
            cached,
            section: section.cloned(),
        })
    }

    /// The raw (sealed) resolved view at the latest revision, from the view
    /// cache when the namespace has not changed since it was computed. The
    /// caller's rights are checked on the cached list of the context's
    /// layers exactly as on a miss. A section is cut from a cached view; on
    /// a miss, only the section is merged (and nothing is cached).
    pub(crate) fn resolve_latest(
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
        // A caller whose grants cover only some keys gets the view with
        // the others left out; the cache keeps the whole view.
        let scoped = |scope: ReadScope, mut view: ResolvedView| {
            if scope == ReadScope::Keys {
                self.keep_readable(g, &mut view);
            }
            view
        };
        if let Some((_, cached)) = self.timed(Phase::CacheLookup, || self.views.get(&key)) {
            let scope = self.timed(Phase::Authorize, || g.read_scope(&cached.wanted))?;
            return Ok(scoped(scope, cached.view(current, section)?));
        }
        if let Some(rebuilt) = self.rebuild(&key, ns, current) {
            let scope = self.timed(Phase::Authorize, || g.read_scope(&rebuilt.wanted))?;
            return Ok(scoped(scope, rebuilt.view(current, section)?));
        }
        // A miss merges the whole context, section or not: the view is
        // cached, and the next section reads of the context are cut from it.
        // Every layer of the context, present or not, is what authorization
        // checks (the chain, imports first).
        let mut wanted = Vec::new();
        let (view, scope) = self.timed(Phase::Resolve, || {
            self.with_resolved_scoped(
                g,
                ns,
                ctx,
                At::Revision(current),
                None,
                |rev, resolved, chain| {
                    wanted = chain.to_vec();
                    view_of(ns, ctx, rev, resolved)
                },
            )
        })?;
        let cached = CachedView::new(wanted, view.clone());
        let weight = cached.weight();
        let deps = cached.imports.clone();
        self.views
            .insert_with(&key, current, Arc::new(cached), weight, &deps);
        Ok(match section {
            Some(s) => scoped(scope, cut_to_section(&view, s)),
            None => scoped(scope, view),
        })
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
    pub(crate) fn rebuild(
        &self,
        key: &ViewKey,
        ns: &NamespaceName,
        current: u64,
    ) -> Option<Arc<CachedView>> {
        if !self.incremental.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let (revision, stale) = self.views.take_stale(key)?;
        // The change log covers the namespace's own commits: a view that
        // resolves from imports is merged again.
        if !stale.imports.is_empty() {
            return None;
        }
        let started = self.timings.start();
        let patches = incremental::patches_between(&lock(&self.changes), ns, revision, current)?;
        let rebuilt = Arc::new(stale.rebuilt(&patches)?);
        let weight = rebuilt.weight();
        self.views
            .insert_rebuilt(key, current, Arc::clone(&rebuilt), weight);
        started.stop(&*self.timings, Phase::Resolve);
        Some(rebuilt)
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
        let ((rev, mut explanation), scope) =
            self.with_resolved_scoped(&g, ns, ctx, at, None, |rev, resolved, _| {
                (rev, resolved.explain(key))
            })?;
        if scope == ReadScope::Keys {
            // Grants on some keys only: a key the caller may not read in the
            // layer that wins it is answered as a missing key (a refusal
            // would say that it exists, and where); otherwise the other
            // layers' say is shown only where the caller may read the key.
            let readable = |in_ns: &NamespaceName, layer: &LayerPath| {
                g.allows(
                    Action::Read,
                    &Resource::key(in_ns.clone(), layer.clone(), key.clone()),
                )
            };
            let winner_hidden = match &explanation.from {
                Some(from) => !readable(from.namespace_or(ns), &from.layer),
                None => false,
            };
            if winner_hidden {
                explanation.value = None;
                explanation.from = None;
                explanation.entries.clear();
            } else {
                explanation
                    .entries
                    .retain(|e| readable(e.namespace_or(ns), &e.layer));
            }
        }
        let mut opened = Vec::new();
        {
            let keyring = security_read(&self.security);
            for e in &mut explanation.entries {
                let Some(v) = e.value.as_mut() else { continue };
                if confstrata_crypto::is_sealed(v) {
                    // An imported layer's values are sealed under its
                    // namespace's key.
                    let in_ns = e.namespace.as_ref().unwrap_or(ns);
                    let resource = Resource::key(in_ns.clone(), e.layer.clone(), key.clone());
                    if g.allows(Action::ReadSecrets, &resource) {
                        *v = confstrata_crypto::open_value(&keyring, in_ns, &e.layer, key, v)
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
        if !explanation.entries.is_empty()
            && let Some(spec) = self.store.namespace(ns, rev)?
        {
            self.explain_origins(caller, &spec.spec, At::Revision(rev), &mut explanation);
        }
        Ok(ExplainView {
            explanation,
            changes,
        })
    }

    /// Merges the layers of a context, whole (the caller must be able to
    /// read all of every layer).
    #[cfg(test)]
    pub(crate) fn with_resolved<T>(
        &self,
        g: &Gate<'_>,
        ns: &NamespaceName,
        ctx: &Context,
        at: At,
        f: impl FnOnce(u64, &confstrata_core::Resolved<'_>) -> T,
    ) -> Result<T> {
        match self.with_resolved_scoped(g, ns, ctx, at, None, |rev, r, _| f(rev, r))? {
            (out, ReadScope::All) => Ok(out),
            (_, ReadScope::Keys) => Err(Error::PermissionDenied {
                action: "read".to_owned(),
                resource: ns.to_string(),
                message: "only some keys may be read".to_owned(),
            }),
        }
    }

    /// Merges the layers of a context (its imports' first), only
    /// `section` of each layer if given (the merge can leave values
    /// outside it that block it: cut the result), and says how much of
    /// them the caller may read: the caller must cut a
    /// [`ReadScope::Keys`] answer to what it may read. `f` also gets every
    /// layer of the context, present or not.
    pub(crate) fn with_resolved_scoped<T>(
        &self,
        g: &Gate<'_>,
        ns: &NamespaceName,
        ctx: &Context,
        at: At,
        section: Option<&KeyPath>,
        f: impl FnOnce(u64, &confstrata_core::Resolved<'_>, &[ChainLayer]) -> T,
    ) -> Result<(T, ReadScope)> {
        g.require_some(Action::Read, ns)?;
        let rev = self.store.revision_at(at)?;
        let spec = self.namespace_at(ns, rev)?.spec;
        let order = self.import_order_at(&spec, rev)?;
        let wanted = chain_layers(&order, ctx)?;
        let scope = g.read_scope(&wanted)?;
        let mut records = Vec::with_capacity(wanted.len());
        let top = section.and_then(|s| s.segments().first());
        for l in &wanted {
            // A section reads only its top-level part of each layer.
            let record = match top {
                Some(top) => self.store.layer_section(&l.namespace, &l.layer, rev, top)?,
                None => self.store.layer(&l.namespace, &l.layer, rev)?,
            };
            if let Some(mut r) = record {
                if let Some(key) = section {
                    r.document = confstrata_core::doc::section(&r.document, key, true);
                }
                records.push((l.imported, r));
            }
        }
        let inputs: Vec<LayerInput<'_>> = records
            .iter()
            .map(|(imported, r)| LayerInput {
                namespace: imported.then_some(&r.namespace),
                layer: &r.layer,
                revision: r.revision,
                document: &r.document,
            })
            .collect();
        Ok((f(rev, &resolve(&inputs), &wanted), scope))
    }
}

/// The whole view a merge gives, before any cut or presentation.
fn view_of(
    ns: &NamespaceName,
    ctx: &Context,
    revision: u64,
    resolved: &confstrata_core::Resolved<'_>,
) -> ResolvedView {
    ResolvedView {
        namespace: ns.clone(),
        context: ctx.clone(),
        revision,
        layers: resolved.layers().collect(),
        document: resolved.to_document(),
        provenance: resolved.provenance(),
        partial: false,
    }
}
