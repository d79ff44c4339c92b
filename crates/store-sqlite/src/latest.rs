//! The writer's cache of the newest version of the layers it writes.
//!
//! Planning a change set reads the newest version of every layer it
//! touches, and storing the result as a delta needs it too. Rebuilt from
//! SQLite that is a parse of the layer's whole version (and of its
//! deltas) for every commit, which for a large layer costs more than the
//! commit's fsync. The writer keeps the documents it wrote instead, keyed
//! by layer with the revision of the version they are: an entry is used
//! only when the layer's newest row still has that revision (one index
//! lookup inside the transaction), so nothing else needs invalidating.
//!
//! A batch's own writes are kept apart (`Pending`) until its transaction
//! commits: a batch that fails leaves the cache as it was, so a revision
//! number that a failed batch used, and the next batch reuses, is never
//! mistaken for the failed batch's version.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use confstrata_core::{Document, LayerPath, NamespaceName, NamespaceSpec};

/// The most layers kept; past it the cache starts over (a simple bound:
/// a writer that touches more layers than this gains little from it).
const MAX_LAYERS: usize = 4096;
/// The most bytes (of JSON, as stored whole) kept.
const MAX_BYTES: u64 = 64 << 20;

/// A layer.
pub(crate) type Key = (NamespaceName, LayerPath);
/// A version kept: `None` for a deletion.
pub(crate) type Kept = Option<Version>;

/// A layer version the writer keeps.
#[derive(Clone)]
pub(crate) struct Version {
    /// Its revision.
    pub(crate) revision: u64,
    /// Its document.
    pub(crate) document: Arc<Document>,
    /// Bytes its JSON form does not exceed, if known.
    pub(crate) size_bound: Option<usize>,
    /// Its approximate size, for the cache's budget.
    pub(crate) weight: u64,
}

/// The most namespace declarations kept.
const MAX_SPECS: usize = 4096;

/// Committed newest versions, by layer; and the namespace declarations
/// read, each with the revision of its version (planning reads the
/// declaration of every namespace a change set touches: parsing it from
/// its JSON was ~3% of a commit-heavy server's CPU, `perf`).
#[derive(Default)]
pub(crate) struct LatestLayers {
    entries: HashMap<Key, Version>,
    bytes: u64,
    /// Filled as the writer reads declarations: a version is immutable, so
    /// an entry is right whenever the namespace's newest row still has its
    /// revision. Only versions committed before the batch go in (see
    /// [`Pending::wrote_namespace`]).
    specs: RefCell<HashMap<NamespaceName, (u64, Arc<NamespaceSpec>)>>,
}

/// A batch's writes, kept until its transaction commits: a version
/// (`Some`) or a deletion (`None`).
#[derive(Default)]
pub(crate) struct Pending {
    entries: HashMap<Key, Kept>,
    /// Namespaces this batch declared or deleted: their newest row may be
    /// this batch's, not yet committed, so it is not kept.
    namespaces: HashSet<NamespaceName>,
}

impl LatestLayers {
    /// The document of the layer's version at `revision`, if kept.
    pub(crate) fn get(&self, key: &Key, revision: u64) -> Option<&Version> {
        self.entries.get(key).filter(|v| v.revision == revision)
    }

    /// Moves the layer's version at `revision` out, if kept (the writer
    /// changes it in place into the next version).
    pub(crate) fn take(&mut self, key: &Key, revision: u64) -> Option<Version> {
        if self.entries.get(key)?.revision != revision {
            return None;
        }
        let v = self.entries.remove(key)?;
        self.bytes = self.bytes.saturating_sub(v.weight);
        Some(v)
    }

    /// Takes in a committed batch's writes.
    pub(crate) fn commit(&mut self, pending: Pending) {
        for (key, entry) in pending.entries {
            if let Some(old) = self.entries.remove(&key) {
                self.bytes = self.bytes.saturating_sub(old.weight);
            }
            if let Some(entry) = entry {
                self.bytes = self.bytes.saturating_add(entry.weight);
                self.entries.insert(key, entry);
            }
        }
        if self.entries.len() > MAX_LAYERS || self.bytes > MAX_BYTES {
            self.clear();
        }
    }

    /// Forgets everything (after a batch panicked).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
        self.specs.get_mut().clear();
    }

    /// The declaration of `name` whose version is at `revision`, if kept.
    pub(crate) fn spec(&self, name: &NamespaceName, revision: u64) -> Option<Arc<NamespaceSpec>> {
        self.specs
            .borrow()
            .get(name)
            .filter(|(rev, _)| *rev == revision)
            .map(|(_, spec)| Arc::clone(spec))
    }

    /// Keeps a declaration read at `revision`, unless `pending` declared or
    /// deleted that namespace (the row read may be its own, uncommitted).
    pub(crate) fn keep_spec(
        &self,
        pending: &Pending,
        name: &NamespaceName,
        revision: u64,
        spec: Arc<NamespaceSpec>,
    ) {
        if pending.namespaces.contains(name) {
            return;
        }
        let mut specs = self.specs.borrow_mut();
        if specs.len() >= MAX_SPECS {
            specs.clear();
        }
        specs.insert(name.clone(), (revision, spec));
    }
}

impl Pending {
    /// What this batch wrote to the layer: `Some(Some(..))` a version at
    /// that revision, `Some(None)` a deletion, `None` nothing.
    pub(crate) fn get(&self, key: &Key) -> Option<Option<&Version>> {
        self.entries.get(key).map(Option::as_ref)
    }

    /// Moves the version this batch wrote to the layer out, if any (the
    /// next job changes it in place).
    pub(crate) fn take(&mut self, key: &Key) -> Option<Version> {
        match self.entries.remove(key) {
            Some(Some(v)) => Some(v),
            Some(None) => {
                self.entries.insert(key.clone(), None);
                None
            }
            None => None,
        }
    }

    /// Records a version written at `revision` (`None`: the layer was
    /// deleted); `bytes` approximates its size.
    pub(crate) fn wrote(&mut self, key: Key, version: Kept) {
        self.entries.insert(key, version);
    }

    /// Records that this batch declared or deleted namespace `name`.
    pub(crate) fn wrote_namespace(&mut self, name: NamespaceName) {
        self.namespaces.insert(name);
    }
}
