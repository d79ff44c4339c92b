use super::*;

fn ns(s: &str) -> NamespaceName {
    s.parse().unwrap()
}

fn key(n: &str, ctx: &str) -> ViewKey {
    ViewKey::new(&ns(n), ctx)
}

#[test]
fn invalidation_touches_only_the_changed_namespace() {
    let c: ViewCache<u32> = ViewCache::new(100);
    c.insert(&key("a", "x"), 3, Arc::new(1), 1);
    c.insert(&key("b", "x"), 3, Arc::new(2), 1);
    c.invalidate(&ns("a"), 4);
    assert!(c.get(&key("a", "x")).is_none());
    assert_eq!(*c.get(&key("b", "x")).unwrap().1, 2);
    // The stale view is there to be taken (once), not served.
    assert_eq!(*c.take_stale(&key("a", "x")).unwrap().1, 1);
    assert!(c.take_stale(&key("a", "x")).is_none());
    assert!(c.take_stale(&key("b", "x")).is_none(), "b is current");
    // A view computed at or after the change is current.
    c.insert(&key("a", "x"), 4, Arc::new(3), 1);
    assert_eq!(c.get(&key("a", "x")).unwrap().0, 4);
    let s = c.stats();
    assert_eq!((s.hits, s.misses, s.invalidations, s.entries), (2, 1, 1, 2));
}

#[test]
fn a_namespace_that_is_a_prefix_of_another_is_its_own() {
    let c: ViewCache<u32> = ViewCache::new(100);
    c.insert(&key("a", "x"), 3, Arc::new(1), 1);
    c.insert(&key("a/b", "x"), 3, Arc::new(2), 1);
    c.invalidate(&ns("a/b"), 4);
    assert!(c.get(&key("a", "x")).is_some());
    assert!(c.get(&key("a/b", "x")).is_none());
}

#[test]
fn nothing_is_served_while_a_change_is_in_flight() {
    let c: ViewCache<u32> = ViewCache::new(100);
    c.insert(&key("a", "x"), 3, Arc::new(1), 1);
    c.begin(&ns("a"));
    assert!(c.get(&key("a", "x")).is_none());
    c.insert(&key("a", "x"), 9, Arc::new(2), 1);
    assert!(c.get(&key("a", "x")).is_none(), "not kept while in flight");
    c.finish(&ns("a"), None);
    c.insert(&key("a", "x"), 3, Arc::new(3), 1);
    assert_eq!(
        *c.get(&key("a", "x")).unwrap().1,
        3,
        "a failed change changes nothing"
    );
}

#[test]
fn the_entry_bound_evicts_the_least_recently_used() {
    let c: ViewCache<u32> = ViewCache::new(10);
    for i in 0..10u32 {
        c.insert(&key("a", &i.to_string()), 1, Arc::new(i), 1);
    }
    // 0 is the oldest insert but was just read; 1 and 2 were not.
    assert!(c.get(&key("a", "0")).is_some());
    c.insert(&key("a", "10"), 1, Arc::new(10), 1);
    // Over 10: down to 9 (90%).
    assert_eq!(c.stats().entries, 9);
    assert_eq!(c.stats().evictions, 2);
    assert!(c.get(&key("a", "0")).is_some(), "recently used stays");
    assert!(c.get(&key("a", "1")).is_none());
    assert!(c.get(&key("a", "2")).is_none());
    assert!(c.get(&key("a", "10")).is_some());
}

#[test]
fn the_byte_budget_is_kept_and_counted() {
    let c: ViewCache<u32> = ViewCache::with_budget(Budget {
        max_entries: 1000,
        max_bytes: 1000,
    });
    for i in 0..10u32 {
        c.insert(&key("a", &i.to_string()), 1, Arc::new(i), 100);
    }
    assert_eq!(c.stats().bytes, 1000);
    c.insert(&key("a", "big"), 1, Arc::new(99), 300);
    let s = c.stats();
    assert!(s.bytes <= 900, "{s:?}");
    assert!(c.get(&key("a", "big")).is_some(), "the newest is kept");
    // Replacing a view replaces its weight.
    c.insert(&key("a", "big"), 2, Arc::new(98), 10);
    assert_eq!(c.stats().bytes, s.bytes - 290);
    // A view over the whole budget is not kept (and evicts nothing).
    c.insert(&key("a", "huge"), 1, Arc::new(0), 5000);
    assert!(c.get(&key("a", "huge")).is_none());
    // Invalidation gives the weight back when the stale view is taken.
    c.invalidate(&ns("a"), 3);
    for i in 0..10u32 {
        let _ = c.take_stale(&key("a", &i.to_string()));
    }
    let _ = c.take_stale(&key("a", "big"));
    assert_eq!(c.stats().bytes, 0);
    assert_eq!(c.stats().entries, 0);
}

#[test]
fn a_stale_view_is_not_taken_while_a_change_is_in_flight() {
    let c: ViewCache<u32> = ViewCache::new(10);
    c.insert(&key("a", "x"), 3, Arc::new(1), 1);
    c.invalidate(&ns("a"), 4);
    c.begin(&ns("a"));
    assert!(c.take_stale(&key("a", "x")).is_none());
    c.finish(&ns("a"), Some(5));
    let (rev, v) = c.take_stale(&key("a", "x")).unwrap();
    assert_eq!((rev, *v), (3, 1));
    // A rebuilt view is kept and counted like any insert.
    c.insert_rebuilt(&key("a", "x"), 5, Arc::new(2), 1);
    assert_eq!(*c.get(&key("a", "x")).unwrap().1, 2);
    let s = c.stats();
    assert_eq!((s.invalidations, s.rebuilt, s.entries), (1, 1, 1));
}

#[test]
fn a_fast_path_miss_is_not_counted_twice() {
    let c: ViewCache<u32> = ViewCache::new(10);
    assert!(c.get_or_fall_back(&key("a", "x")).is_none());
    assert!(c.get(&key("a", "x")).is_none());
    c.insert(&key("a", "x"), 1, Arc::new(1), 1);
    assert!(c.get_or_fall_back(&key("a", "x")).is_some());
    let s = c.stats();
    assert_eq!((s.hits, s.misses), (1, 1));
}

#[test]
fn concurrent_readers_never_see_a_view_older_than_an_acknowledged_change() {
    let c: Arc<ViewCache<u64>> = Arc::new(ViewCache::new(1000));
    let web = ns("web");
    let k = ViewKey::new(&web, "ctx");
    let writer = {
        let c = Arc::clone(&c);
        let web = web.clone();
        let k = k.clone();
        std::thread::spawn(move || {
            for rev in 1..2000u64 {
                c.invalidate(&web, rev);
                // A reader that computed at rev-1 tries to insert late.
                c.insert(&k, rev - 1, Arc::new(rev - 1), 1);
                assert!(c.get(&k).is_none_or(|(r, _)| r >= rev));
                c.insert(&k, rev, Arc::new(rev), 1);
            }
        })
    };
    writer.join().unwrap();
    assert_eq!(*c.get(&k).unwrap().1, 1999);
}

#[test]
fn a_view_is_stale_when_a_namespace_it_depends_on_changes() {
    let c: ViewCache<u32> = ViewCache::new(100);
    let web = key("web", "env=prod");
    c.insert_with(&web, 3, Arc::new(1), 1, &[ns("shared/log")]);
    assert!(c.get(&web).is_some());
    // While a change to the import is in flight, the view is neither
    // served nor taken.
    c.begin(&ns("shared/log"));
    assert!(c.get(&web).is_none());
    assert!(c.take_stale(&web).is_none());
    c.finish(&ns("shared/log"), Some(4));
    assert!(c.get(&web).is_none(), "the import changed after it");
    assert_eq!(*c.take_stale(&web).unwrap().1, 1);
    // One computed after the change is current; a change to an unrelated
    // namespace leaves it be.
    c.insert_with(&web, 4, Arc::new(2), 1, &[ns("shared/log")]);
    c.invalidate(&ns("shared/tls"), 5);
    assert_eq!(*c.get(&web).unwrap().1, 2);
    // An import changed that was not finished with a revision (a failed
    // commit) does not make it stale.
    c.begin(&ns("shared/log"));
    c.finish(&ns("shared/log"), None);
    assert_eq!(*c.get(&web).unwrap().1, 2);
}
