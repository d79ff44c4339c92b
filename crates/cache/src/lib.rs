//! The resolved-view cache: resolved configurations keyed by namespace and
//! context, shared as immutable snapshots (`Arc`), and invalidated by
//! revision.
//!
//! - A commit that changes a namespace (a layer or its declaration) calls
//!   [`ViewCache::begin`] before it writes and [`ViewCache::finish`] with
//!   its revision before it is acknowledged. While any change to a
//!   namespace is in flight its views are not served, so no read can get a
//!   view from before a change that is already visible in the store, and a
//!   view that is served is current at any revision read before the lookup.
//! - A view is inserted with the revision it was computed at, and only if no
//!   change to its namespace is newer: a reader that raced a commit cannot
//!   put an old view back.
//! - Only the namespaces a commit touched are invalidated, nothing more. A
//!   view that also depends on other namespaces (a namespace's imports) is
//!   inserted with them ([`ViewCache::insert_with`]) and is stale when any
//!   of them changed after it was computed, under the same rules.
//! - Bounded by a [`Budget`]: a number of views and a total weight (the
//!   engine weighs a view by its approximate bytes). Past either bound the
//!   least recently used views are evicted. Reads take no lock beyond a
//!   shard's; hit, miss, eviction, invalidation and size counters are kept
//!   for monitoring.
//! - Lookups take a [`ViewKey`] built once per request, so a hit allocates
//!   nothing: a shard read lock, an `Arc` clone, two atomic loads.
//!
//! ```
//! use confstrata_cache::{ViewCache, ViewKey};
//!
//! let cache: ViewCache<String> = ViewCache::new(1000);
//! let web = "web".parse().unwrap();
//! let prod = ViewKey::new(&web, "env=prod");
//! cache.insert(&prod, 5, "resolved at 5".to_owned().into(), 13);
//! assert_eq!(cache.get(&prod).unwrap().0, 5);
//! cache.invalidate(&web, 6); // a commit at revision 6 changed web
//! assert!(cache.get(&prod).is_none());
//! // A reader that computed at 5 (before the commit) cannot put it back.
//! cache.insert(&prod, 5, "stale".to_owned().into(), 5);
//! assert!(cache.get(&prod).is_none());
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use confstrata_core::NamespaceName;
use dashmap::DashMap;

/// Counters of a cache, for monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Reads answered from the cache.
    pub hits: u64,
    /// Reads that had to resolve.
    pub misses: u64,
    /// Views dropped to stay within the budget.
    pub evictions: u64,
    /// Stale views taken out because their namespace changed (to be
    /// rebuilt or replaced).
    pub invalidations: u64,
    /// Of those, the views rebuilt from the stale view plus the change
    /// (incremental re-resolve) instead of merged again from the layers.
    pub rebuilt: u64,
    /// Views held now.
    pub entries: u64,
    /// The weight (approximate bytes) of the views held now.
    pub bytes: u64,
}

/// How much a cache may hold: past either bound, the least recently used
/// views are evicted until both are under 90% of their bound (so the scan
/// that finds them runs once per many inserts, not on every one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Budget {
    /// Views (at least 1).
    pub max_entries: usize,
    /// The sum of the views' weights, in the unit the inserter weighs in
    /// (the engine uses approximate bytes).
    pub max_bytes: usize,
}

impl Default for Budget {
    /// 10,000 views and 256 MiB.
    fn default() -> Self {
        Budget {
            max_entries: 10_000,
            max_bytes: 256 << 20,
        }
    }
}

/// The key of a view: a namespace and a context in canonical text form.
/// Build it once per request; lookups with it allocate nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ViewKey {
    /// `<namespace>\0<context>` (neither may contain NUL).
    text: Box<str>,
    ns_len: usize,
}

impl ViewKey {
    /// The key of `ns` in `context` (any canonical text of the context;
    /// two texts of one context would be two entries).
    pub fn new(ns: &NamespaceName, context: &str) -> ViewKey {
        let ns = ns.as_str();
        let mut text = String::with_capacity(ns.len() + 1 + context.len());
        text.push_str(ns);
        text.push('\0');
        text.push_str(context);
        ViewKey {
            text: text.into_boxed_str(),
            ns_len: ns.len(),
        }
    }

    fn namespace(&self) -> &str {
        &self.text[..self.ns_len]
    }
}

struct Entry<V> {
    revision: u64,
    /// Other namespaces the view depends on.
    deps: Box<[Box<str>]>,
    seq: u64,
    weight: usize,
    /// The tick of the last read that used it (for eviction).
    used: AtomicU64,
    value: Arc<V>,
}

/// Resolved views by namespace and context. See the [crate docs](crate).
pub struct ViewCache<V> {
    views: DashMap<Box<str>, Entry<V>>,
    /// Per namespace: changes in flight, and the newest revision that
    /// changed it.
    changed: DashMap<Box<str>, (u32, u64)>,
    budget: Budget,
    bytes: AtomicUsize,
    seq: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    invalidations: AtomicU64,
    rebuilt: AtomicU64,
}

impl<V> ViewCache<V> {
    /// An empty cache holding at most `max_entries` views (at least 1) of
    /// any weight.
    pub fn new(max_entries: usize) -> Self {
        Self::with_budget(Budget {
            max_entries,
            max_bytes: usize::MAX,
        })
    }

    /// An empty cache within `budget`.
    pub fn with_budget(budget: Budget) -> Self {
        ViewCache {
            views: DashMap::new(),
            changed: DashMap::new(),
            budget: Budget {
                max_entries: budget.max_entries.max(1),
                max_bytes: budget.max_bytes,
            },
            bytes: AtomicUsize::new(0),
            seq: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            rebuilt: AtomicU64::new(0),
        }
    }

    /// The budget it keeps to.
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// The revision a view must be at least to be current (`u64::MAX`
    /// while a change is in flight).
    fn changed_at(&self, ns: &str) -> u64 {
        self.changed
            .get(ns)
            .map_or(0, |r| if r.0 > 0 { u64::MAX } else { r.1 })
    }

    /// The view under `key` and the revision it was computed at, if it is
    /// still current. Counts a hit or a miss.
    pub fn get(&self, key: &ViewKey) -> Option<(u64, Arc<V>)> {
        let found = self.lookup(key);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// [`get`](ViewCache::get) for a fast path that falls back to a slower
    /// one on a miss: counts a hit, but leaves the miss to the fallback's
    /// own `get`.
    pub fn get_or_fall_back(&self, key: &ViewKey) -> Option<(u64, Arc<V>)> {
        let found = self.lookup(key);
        if found.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    /// Whether an entry of `ns` is older than a change to `ns` or to a
    /// namespace it depends on (or one is in flight).
    fn is_stale(&self, ns: &str, e: &Entry<V>) -> bool {
        e.revision < self.changed_at(ns) || e.deps.iter().any(|d| e.revision < self.changed_at(d))
    }

    fn lookup(&self, key: &ViewKey) -> Option<(u64, Arc<V>)> {
        let e = self.views.get(&*key.text)?;
        if self.is_stale(key.namespace(), &e) {
            // Stale: left for `take_stale` (its successor may be built
            // from it) or for a later insert or eviction to replace.
            return None;
        }
        e.used
            .store(self.seq.load(Ordering::Relaxed), Ordering::Relaxed);
        Some((e.revision, Arc::clone(&e.value)))
    }

    /// Takes out the view under `key` if its namespace changed after it was
    /// computed, with the revision it was computed at: the caller builds
    /// the current view from it (or drops it). `None` if there is no such
    /// view, or while a change to its namespace is in flight (the change's
    /// revision is not known yet).
    pub fn take_stale(&self, key: &ViewKey) -> Option<(u64, Arc<V>)> {
        let ns = key.namespace();
        let in_flight = |e: &Entry<V>| {
            self.changed_at(ns) == u64::MAX || e.deps.iter().any(|d| self.changed_at(d) == u64::MAX)
        };
        let (_, e) = self
            .views
            .remove_if(&*key.text, |_, e| !in_flight(e) && self.is_stale(ns, e))?;
        self.bytes.fetch_sub(e.weight, Ordering::Relaxed);
        self.invalidations.fetch_add(1, Ordering::Relaxed);
        Some((e.revision, e.value))
    }

    /// [`insert`](ViewCache::insert) for a view rebuilt from a stale one
    /// (counted as `rebuilt`).
    pub fn insert_rebuilt(&self, key: &ViewKey, revision: u64, value: Arc<V>, weight: usize) {
        self.rebuilt.fetch_add(1, Ordering::Relaxed);
        self.insert(key, revision, value, weight);
    }

    /// Keeps a view computed at `revision`, weighing `weight`, unless its
    /// namespace changed after that revision (then it is already stale and
    /// is dropped) or it alone is over the budget.
    pub fn insert(&self, key: &ViewKey, revision: u64, value: Arc<V>, weight: usize) {
        self.insert_with(key, revision, value, weight, &[]);
    }

    /// [`insert`](ViewCache::insert) for a view that also depends on the
    /// namespaces `deps`: it is stale once any of them changes after
    /// `revision`, as for its own namespace.
    pub fn insert_with(
        &self,
        key: &ViewKey,
        revision: u64,
        value: Arc<V>,
        weight: usize,
        deps: &[NamespaceName],
    ) {
        if revision < self.changed_at(key.namespace()) || weight > self.budget.max_bytes {
            return;
        }
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(weight, Ordering::Relaxed);
        let old = self.views.insert(
            key.text.clone(),
            Entry {
                revision,
                deps: deps.iter().map(|d| d.as_str().into()).collect(),
                seq,
                weight,
                used: AtomicU64::new(seq),
                value,
            },
        );
        if let Some(old) = old {
            self.bytes.fetch_sub(old.weight, Ordering::Relaxed);
        }
        // Re-check: an invalidation may have run between the check above
        // and the insert.
        if revision < self.changed_at(key.namespace())
            && let Some((_, e)) = self.views.remove_if(&*key.text, |_, e| e.seq == seq)
        {
            self.bytes.fetch_sub(e.weight, Ordering::Relaxed);
        }
        self.evict();
    }

    /// Past the budget, drops the least recently used views until both
    /// bounds are under 90%.
    fn evict(&self) {
        let entries = self.views.len();
        let bytes = self.bytes.load(Ordering::Relaxed);
        if entries <= self.budget.max_entries && bytes <= self.budget.max_bytes {
            return;
        }
        let entry_goal = self.budget.max_entries - self.budget.max_entries / 10;
        let byte_goal = self.budget.max_bytes - self.budget.max_bytes / 10;
        let mut by_use: Vec<(u64, u64, Box<str>)> = self
            .views
            .iter()
            .map(|e| (e.used.load(Ordering::Relaxed), e.seq, e.key().clone()))
            .collect();
        by_use.sort_unstable_by_key(|(used, seq, _)| (*used, *seq));
        let mut left = (entries, bytes);
        for (_, seq, key) in by_use {
            if left.0 <= entry_goal && left.1 <= byte_goal {
                break;
            }
            if let Some((_, e)) = self.views.remove_if(&key, |_, e| e.seq == seq) {
                self.bytes.fetch_sub(e.weight, Ordering::Relaxed);
                self.evictions.fetch_add(1, Ordering::Relaxed);
                left = (left.0.saturating_sub(1), left.1.saturating_sub(e.weight));
            }
        }
    }

    /// A change to `ns` is about to be written: its views are not served
    /// (nor kept) until [`finish`](ViewCache::finish).
    ///
    /// O(1): stale views are not searched for here (a commit must not pay
    /// for the size of the cache); a reader takes the one it finds stale
    /// ([`take_stale`](ViewCache::take_stale)).
    pub fn begin(&self, ns: &NamespaceName) {
        self.changed.entry(ns.as_str().into()).or_insert((0, 0)).0 += 1;
    }

    /// The change begun on `ns` is done: committed at `revision`, or not
    /// committed (`None`).
    pub fn finish(&self, ns: &NamespaceName, revision: Option<u64>) {
        let mut slot = self.changed.entry(ns.as_str().into()).or_insert((1, 0));
        slot.0 = slot.0.saturating_sub(1);
        if let Some(r) = revision {
            slot.1 = slot.1.max(r);
        }
    }

    /// A commit at `revision` changed `ns` ([`begin`](ViewCache::begin)
    /// then [`finish`](ViewCache::finish)).
    pub fn invalidate(&self, ns: &NamespaceName, revision: u64) {
        self.begin(ns);
        self.finish(ns, Some(revision));
    }

    /// The counters.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
            rebuilt: self.rebuilt.load(Ordering::Relaxed),
            entries: self.views.len() as u64,
            bytes: self.bytes.load(Ordering::Relaxed) as u64,
        }
    }
}

#[cfg(test)]
mod tests;
