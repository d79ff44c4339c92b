//! Validated commits in a pipeline: a commit to a namespace with a chain
//! releases the namespace's locks as soon as it is queued in the store's
//! writer, not once it is durable, so the next commit to that namespace
//! validates while the previous one is written, and both share a group
//! commit.
//!
//! The next commit must then see what the queued ones will write: the
//! queue keeps each queued validated commit's writes, and a commit is
//! planned and validated against the store *plus* those writes (the
//! overlay), read in queue order (the writer's order: a commit is queued
//! while it holds its exclusive locks, so commits that touch the same
//! namespaces enter this list and the writer's queue in the same order).
//!
//! - The overlay is the writes of the entries not yet done, merged in
//!   list order, read *before* the store's revision: an entry done by then
//!   (committed, so durable, or failed) is in the store that is read, or
//!   nowhere.
//! - Anything else that can make the overlay differ from what the commit
//!   lands on (a queued commit that fails in the writer, a write that
//!   takes no ticket such as a key rewrap) is caught in the writer: each
//!   commit's check compares the overlay it was validated against with
//!   what the transaction holds, and if they differ it is refused unwritten
//!   and validated again. A change set that does not plan against a
//!   non-empty overlay is never sent unchecked: it waits for the queue and
//!   is planned again.
//! - Commits with preconditions (`expect_revision`) and declarations are
//!   not pipelined: they wait until no queued commit touches their
//!   namespaces, then validate against the store alone, and hold their
//!   locks until durable.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use confstrata_core::{
    Document, LayerPath, NamespaceName, NamespaceSpec, Plan, Result, StateReader, Store,
};

/// One queued validated commit: what it writes.
pub(crate) struct Queued {
    namespaces: BTreeSet<NamespaceName>,
    specs: BTreeMap<NamespaceName, NamespaceSpec>,
    layers: BTreeMap<(NamespaceName, LayerPath), Option<Document>>,
    done: AtomicBool,
    failed: AtomicBool,
}

impl Queued {
    /// The writes of `plan`.
    pub(crate) fn of(plan: &Plan) -> Queued {
        let mut namespaces = BTreeSet::new();
        let mut specs = BTreeMap::new();
        for s in &plan.namespaces {
            namespaces.insert(s.name.clone());
            specs.insert(s.name.clone(), s.clone());
        }
        namespaces.extend(plan.deleted.iter().cloned());
        let mut layers = BTreeMap::new();
        for (ns, layer, doc) in &plan.layers {
            namespaces.insert(ns.clone());
            layers.insert((ns.clone(), layer.clone()), doc.clone());
        }
        Queued {
            namespaces,
            specs,
            layers,
            done: AtomicBool::new(false),
            failed: AtomicBool::new(false),
        }
    }
}

/// The validated commits queued in the store's writer and not yet done.
#[derive(Default)]
pub(crate) struct Queue {
    entries: Mutex<VecDeque<Arc<Queued>>>,
    changed: Condvar,
}

/// What queued commits will write, merged in queue order.
#[derive(Default, Clone)]
pub(crate) struct Overlay {
    pub(crate) specs: BTreeMap<NamespaceName, NamespaceSpec>,
    pub(crate) layers: BTreeMap<(NamespaceName, LayerPath), Option<Document>>,
}

impl Overlay {
    pub(crate) fn is_empty(&self) -> bool {
        self.specs.is_empty() && self.layers.is_empty()
    }

    /// Whether the state a transaction reads through `reader` holds every
    /// write of the overlay (the queued commits it was made of committed).
    pub(crate) fn holds_in(&self, reader: &mut dyn StateReader) -> Result<bool> {
        for (ns, spec) in &self.specs {
            if reader.namespace(ns)?.map(|(s, _)| s).as_ref() != Some(spec) {
                return Ok(false);
            }
        }
        for ((ns, layer), doc) in &self.layers {
            if reader.layer(ns, layer)?.map(|(d, _)| d) != *doc {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Queued>>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The writes of every queued commit that touches `namespaces` and did
    /// not fail, merged in queue order. Read it before the store's revision.
    pub(crate) fn overlay(&self, namespaces: &BTreeSet<NamespaceName>) -> Overlay {
        let mut out = Overlay::default();
        for e in self.lock().iter() {
            // Done: committed (and so in the store read after this) or
            // failed (and so nowhere).
            if e.done.load(Ordering::SeqCst) || e.namespaces.is_disjoint(namespaces) {
                continue;
            }
            for (ns, spec) in &e.specs {
                if namespaces.contains(ns) {
                    out.specs.insert(ns.clone(), spec.clone());
                }
            }
            for ((ns, layer), doc) in &e.layers {
                if namespaces.contains(ns) {
                    out.layers.insert((ns.clone(), layer.clone()), doc.clone());
                }
            }
        }
        out
    }

    /// Adds a commit about to be queued in the writer (its locks held).
    pub(crate) fn push(&self, entry: Arc<Queued>) {
        self.lock().push_back(entry);
    }

    /// A queued commit is done (committed, or failed).
    pub(crate) fn finish(&self, entry: &Queued, committed: bool) {
        if !committed {
            entry.failed.store(true, Ordering::SeqCst);
        }
        entry.done.store(true, Ordering::SeqCst);
        let mut entries = self.lock();
        while entries
            .front()
            .is_some_and(|e| e.done.load(Ordering::SeqCst))
        {
            entries.pop_front();
        }
        drop(entries);
        self.changed.notify_all();
    }

    /// Waits until no queued commit that touches `namespaces` is pending.
    pub(crate) fn wait_idle(&self, namespaces: &BTreeSet<NamespaceName>) {
        let mut entries = self.lock();
        while entries
            .iter()
            .any(|e| !e.done.load(Ordering::SeqCst) && !e.namespaces.is_disjoint(namespaces))
        {
            entries = self
                .changed
                .wait(entries)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

/// Reads the store at a revision with an overlay on top (for planning a
/// pipelined commit). Overlay layers have no revision yet: pipelined change
/// sets carry no preconditions, so none is compared.
pub(crate) struct OverlayReader<'a> {
    pub(crate) store: &'a dyn Store,
    pub(crate) revision: u64,
    pub(crate) overlay: &'a Overlay,
}

impl StateReader for OverlayReader<'_> {
    fn current_revision(&mut self) -> Result<u64> {
        Ok(self.revision)
    }

    fn namespace(&mut self, name: &NamespaceName) -> Result<Option<(NamespaceSpec, u64)>> {
        if let Some(spec) = self.overlay.specs.get(name) {
            return Ok(Some((spec.clone(), self.revision)));
        }
        Ok(self
            .store
            .namespace(name, self.revision)?
            .map(|r| (r.spec, r.revision)))
    }

    fn layer(&mut self, ns: &NamespaceName, layer: &LayerPath) -> Result<Option<(Document, u64)>> {
        if let Some(doc) = self.overlay.layers.get(&(ns.clone(), layer.clone())) {
            return Ok(doc.clone().map(|d| (d, self.revision)));
        }
        Ok(self
            .store
            .layer(ns, layer, self.revision)?
            .map(|r| (r.document, r.revision)))
    }

    fn layer_paths(&mut self, ns: &NamespaceName) -> Result<Vec<LayerPath>> {
        let mut paths: BTreeSet<LayerPath> = self
            .store
            .layers(ns, self.revision)?
            .into_iter()
            .map(|r| r.layer)
            .collect();
        for ((n, layer), doc) in &self.overlay.layers {
            if n == ns {
                if doc.is_some() {
                    paths.insert(layer.clone());
                } else {
                    paths.remove(layer);
                }
            }
        }
        Ok(paths.into_iter().collect())
    }

    /// A namespace deletion commits alone, so no queued commit deletes
    /// one: the overlay only adds declarations.
    fn namespace_names(&mut self) -> Result<Vec<NamespaceName>> {
        let mut names: BTreeSet<NamespaceName> = self
            .store
            .namespaces(self.revision)?
            .into_iter()
            .map(|r| r.spec.name)
            .collect();
        names.extend(self.overlay.specs.keys().cloned());
        Ok(names.into_iter().collect())
    }
}

/// A commit's place in the [`Queue`]: finished (as failed, if nothing
/// said otherwise) when dropped, so no entry can hold the list up forever.
pub(crate) struct Ticket {
    queue: Arc<Queue>,
    entry: Arc<Queued>,
    finished: bool,
}

impl Ticket {
    /// Puts the writes of `plan` in the queue; call it with the commit's
    /// locks held, right before the commit is queued in the writer.
    pub(crate) fn push(queue: &Arc<Queue>, plan: &Plan) -> Ticket {
        let entry = Arc::new(Queued::of(plan));
        queue.push(Arc::clone(&entry));
        Ticket {
            queue: Arc::clone(queue),
            entry,
            finished: false,
        }
    }

    /// The commit is done: `committed` says whether it was.
    pub(crate) fn finish(mut self, committed: bool) {
        self.finished = true;
        self.queue.finish(&self.entry, committed);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.finished {
            self.queue.finish(&self.entry, false);
        }
    }
}

#[cfg(test)]
mod tests;
