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
//! - Only the namespaces a commit touched are invalidated, nothing more.
//! - Bounded by a number of views; past it, the oldest-inserted views are
//!   evicted (reads take no lock beyond a shard's; eviction scans, which is
//!   fine for a bound that is rarely reached, and a memory budget with a
//!   real usefulness measure is the performance issue's next step). Hit,
//!   miss, eviction and size counters are kept for the analytics work.
//!
//! ```
//! use confstrata_cache::ViewCache;
//!
//! let cache: ViewCache<String> = ViewCache::new(1000);
//! let web = "web".parse().unwrap();
//! cache.insert(&web, "env=prod", 5, "resolved at 5".to_owned().into());
//! assert_eq!(cache.get(&web, "env=prod").unwrap().0, 5);
//! cache.invalidate(&web, 6); // a commit at revision 6 changed web
//! assert!(cache.get(&web, "env=prod").is_none());
//! // A reader that computed at 5 (before the commit) cannot put it back.
//! cache.insert(&web, "env=prod", 5, "stale".to_owned().into());
//! assert!(cache.get(&web, "env=prod").is_none());
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use confstrata_core::NamespaceName;
use dashmap::DashMap;

/// Counters of a cache, for monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Reads answered from the cache.
    pub hits: u64,
    /// Reads that had to resolve.
    pub misses: u64,
    /// Views dropped to stay within the bound.
    pub evictions: u64,
    /// Views dropped because their namespace changed.
    pub invalidations: u64,
    /// Views held now.
    pub entries: u64,
}

struct Entry<V> {
    revision: u64,
    seq: u64,
    value: Arc<V>,
}

/// Resolved views by (namespace, context key). See the [crate docs](crate).
pub struct ViewCache<V> {
    views: DashMap<(NamespaceName, String), Entry<V>>,
    /// Per namespace: changes in flight, and the newest revision that
    /// changed it.
    changed: DashMap<NamespaceName, (u32, u64)>,
    max_entries: usize,
    seq: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    invalidations: AtomicU64,
}

impl<V> ViewCache<V> {
    /// An empty cache holding at most `max_entries` views (at least 1).
    pub fn new(max_entries: usize) -> Self {
        ViewCache {
            views: DashMap::new(),
            changed: DashMap::new(),
            max_entries: max_entries.max(1),
            seq: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
        }
    }

    /// The revision a view must be at least to be current (`u64::MAX`
    /// while a change is in flight).
    fn changed_at(&self, ns: &NamespaceName) -> u64 {
        self.changed
            .get(ns)
            .map_or(0, |r| if r.0 > 0 { u64::MAX } else { r.1 })
    }

    /// The view of `ns` in `context` and the revision it was computed at,
    /// if it is still current.
    pub fn get(&self, ns: &NamespaceName, context: &str) -> Option<(u64, Arc<V>)> {
        let changed = self.changed_at(ns);
        let key = (ns.clone(), context.to_owned());
        let found = match self.views.get(&key) {
            Some(e) if e.revision >= changed => Some((e.revision, Arc::clone(&e.value))),
            Some(e) => {
                let stale = e.seq;
                drop(e);
                // Not while a change is in flight: its revision is not known yet.
                if changed != u64::MAX
                    && self.views.remove_if(&key, |_, e| e.seq == stale).is_some()
                {
                    self.invalidations.fetch_add(1, Ordering::Relaxed);
                }
                None
            }
            None => None,
        };
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Keeps a view computed at `revision`, unless its namespace changed
    /// after that revision (then it is already stale and is dropped).
    pub fn insert(&self, ns: &NamespaceName, context: &str, revision: u64, value: Arc<V>) {
        if revision < self.changed_at(ns) {
            return;
        }
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        self.views.insert(
            (ns.clone(), context.to_owned()),
            Entry {
                revision,
                seq,
                value,
            },
        );
        // Re-check: an invalidation may have run between the check above
        // and the insert.
        if revision < self.changed_at(ns) {
            self.views
                .remove_if(&(ns.clone(), context.to_owned()), |_, e| e.seq == seq);
        }
        self.evict();
    }

    /// Drops the oldest views while over the bound.
    fn evict(&self) {
        let over = self.views.len().saturating_sub(self.max_entries);
        if over == 0 {
            return;
        }
        let mut oldest: Vec<(u64, (NamespaceName, String))> = self
            .views
            .iter()
            .map(|e| (e.seq, e.key().clone()))
            .collect();
        oldest.sort_unstable_by_key(|(seq, _)| *seq);
        for (_, key) in oldest.into_iter().take(over) {
            if self.views.remove(&key).is_some() {
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A change to `ns` is about to be written: its views are not served
    /// (nor kept) until [`finish`](ViewCache::finish).
    ///
    /// O(1): stale views are not searched for here (a commit must not pay
    /// for the size of the cache); a lookup drops the one it finds stale.
    pub fn begin(&self, ns: &NamespaceName) {
        self.changed.entry(ns.clone()).or_insert((0, 0)).0 += 1;
    }

    /// The change begun on `ns` is done: committed at `revision`, or not
    /// committed (`None`).
    pub fn finish(&self, ns: &NamespaceName, revision: Option<u64>) {
        let mut slot = self.changed.entry(ns.clone()).or_insert((1, 0));
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
            entries: self.views.len() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(s: &str) -> NamespaceName {
        s.parse().unwrap()
    }

    #[test]
    fn invalidation_touches_only_the_changed_namespace() {
        let c: ViewCache<u32> = ViewCache::new(100);
        c.insert(&ns("a"), "x", 3, Arc::new(1));
        c.insert(&ns("b"), "x", 3, Arc::new(2));
        c.invalidate(&ns("a"), 4);
        assert!(c.get(&ns("a"), "x").is_none());
        assert_eq!(*c.get(&ns("b"), "x").unwrap().1, 2);
        // A view computed at or after the change is current.
        c.insert(&ns("a"), "x", 4, Arc::new(3));
        assert_eq!(c.get(&ns("a"), "x").unwrap().0, 4);
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.invalidations, s.entries), (2, 1, 1, 2));
    }

    #[test]
    fn nothing_is_served_while_a_change_is_in_flight() {
        let c: ViewCache<u32> = ViewCache::new(100);
        c.insert(&ns("a"), "x", 3, Arc::new(1));
        c.begin(&ns("a"));
        assert!(c.get(&ns("a"), "x").is_none());
        c.insert(&ns("a"), "x", 9, Arc::new(2));
        assert!(c.get(&ns("a"), "x").is_none(), "not kept while in flight");
        c.finish(&ns("a"), None);
        c.insert(&ns("a"), "x", 3, Arc::new(3));
        assert_eq!(
            *c.get(&ns("a"), "x").unwrap().1,
            3,
            "a failed change changes nothing"
        );
    }

    #[test]
    fn the_bound_evicts_the_oldest() {
        let c: ViewCache<u32> = ViewCache::new(2);
        for (i, k) in ["x", "y", "z"].iter().enumerate() {
            c.insert(&ns("a"), k, 1, Arc::new(i as u32));
        }
        assert!(c.get(&ns("a"), "x").is_none());
        assert!(c.get(&ns("a"), "z").is_some());
        assert_eq!(c.stats().evictions, 1);
        assert_eq!(c.stats().entries, 2);
    }

    #[test]
    fn concurrent_readers_never_see_a_view_older_than_an_acknowledged_change() {
        let c: Arc<ViewCache<u64>> = Arc::new(ViewCache::new(1000));
        let web = ns("web");
        let writer = {
            let c = Arc::clone(&c);
            let web = web.clone();
            std::thread::spawn(move || {
                for rev in 1..2000u64 {
                    c.invalidate(&web, rev);
                    // A reader that computed at rev-1 tries to insert late.
                    c.insert(&web, "ctx", rev - 1, Arc::new(rev - 1));
                    assert!(c.get(&web, "ctx").is_none_or(|(r, _)| r >= rev));
                    c.insert(&web, "ctx", rev, Arc::new(rev));
                }
            })
        };
        writer.join().unwrap();
        assert_eq!(*c.get(&web, "ctx").unwrap().1, 1999);
    }
}
