//! Many threads committing at once through the writer thread.

use std::collections::BTreeSet;

use confstrata_core::serde_json::json;
use confstrata_core::{Error, Store};
use confstrata_store_sqlite::{Options, SqliteStore};

use crate::{cs, lp, ns};

fn store_with(max_batch: usize) -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        max_batch,
        ..Options::default()
    };
    let store = SqliteStore::open_with(&dir.path().join("store.db"), options).unwrap();
    store
        .commit(&cs(json!({"ops": [{"op": "put-namespace", "spec": {"name": "c", "levels": ["counter", "t/{t}"]}}]})))
        .unwrap();
    (dir, store)
}

/// Revisions 1..=current each appear exactly once in the store's log.
fn assert_dense(store: &SqliteStore) {
    let current = store.revision().unwrap();
    let revs: Vec<u64> = store
        .changes_since(0, usize::MAX)
        .unwrap()
        .iter()
        .map(|c| c.info.revision)
        .collect();
    assert_eq!(revs, (1..=current).collect::<Vec<_>>());
}

#[test]
fn read_modify_write_with_expected_revisions_loses_no_update() {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 50;
    for max_batch in [64, 1] {
        let (_dir, store) = store_with(max_batch);
        let conflicts = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    for _ in 0..PER_THREAD {
                        loop {
                            let rev = store.revision().unwrap();
                            let current = store.layer(&ns("c"), &lp("counter"), rev).unwrap();
                            let (n, expect) = current.map_or((0, 0), |l| {
                                (l.document["n"].as_u64().unwrap(), l.revision)
                            });
                            let change = cs(
                                json!({"ops": [{"op": "put", "namespace": "c", "layer": "counter",
                                "document": {"n": n + 1}, "expect_revision": expect}]}),
                            );
                            match store.commit(&change) {
                                Ok(_) => break,
                                Err(e) if matches!(e.root(), Error::Conflict { .. }) => {
                                    conflicts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                }
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                });
            }
        });
        let rev = store.revision().unwrap();
        let counter = store.layer(&ns("c"), &lp("counter"), rev).unwrap().unwrap();
        assert_eq!(counter.document["n"], json!(THREADS * PER_THREAD));
        // The namespace, then one revision per increment: conflicts consumed none.
        assert_eq!(rev, 1 + THREADS * PER_THREAD);
        assert_dense(&store);
        let history: Vec<u64> = store
            .history(&ns("c"), Some(&lp("counter")), usize::MAX)
            .unwrap()
            .iter()
            .map(|v| v.document.as_ref().unwrap()["n"].as_u64().unwrap())
            .collect();
        assert_eq!(
            history,
            (1..=THREADS * PER_THREAD).rev().collect::<Vec<_>>()
        );
    }
}

#[test]
fn concurrent_independent_commits_all_succeed_with_distinct_revisions() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 30;
    let (_dir, store) = store_with(64);
    let revisions = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (store, revisions) = (&store, &revisions);
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    let change = cs(json!({"ops": [
                        {"op": "set", "namespace": "c", "layer": format!("t/{t}"), "key": "i", "value": i},
                    ]}));
                    let info = store.commit(&change).unwrap();
                    // Acknowledged means visible.
                    assert!(store.revision().unwrap() >= info.revision);
                    let seen = store.layer(&ns("c"), &lp(&format!("t/{t}")), info.revision).unwrap().unwrap();
                    assert_eq!((seen.document["i"].clone(), seen.revision), (json!(i), info.revision));
                    revisions.lock().unwrap().push(info.revision);
                }
            });
        }
    });
    let revisions = revisions.into_inner().unwrap();
    let distinct: BTreeSet<u64> = revisions.iter().copied().collect();
    assert_eq!(distinct.len(), THREADS * PER_THREAD);
    assert_eq!(
        distinct,
        (2..=1 + THREADS as u64 * PER_THREAD as u64).collect()
    );
    assert_dense(&store);
    for t in 0..THREADS {
        let rev = store.revision().unwrap();
        let layer = store
            .layer(&ns("c"), &lp(&format!("t/{t}")), rev)
            .unwrap()
            .unwrap();
        assert_eq!(layer.document["i"], json!(PER_THREAD - 1));
    }
}

#[test]
fn failing_change_sets_among_concurrent_commits_change_nothing() {
    const THREADS: usize = 6;
    const PER_THREAD: usize = 20;
    let (_dir, store) = store_with(64);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let store = &store;
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    // Every other change set fails its precondition after writing a layer.
                    let poisoned = i % 2 == 1;
                    let change = cs(json!({"ops": [
                        {"op": "set", "namespace": "c", "layer": format!("t/{t}"), "key": "i", "value": i},
                        {"op": "set", "namespace": "c", "layer": "counter", "key": "poison", "value": true,
                            "expect_revision": if poisoned { Some(u64::MAX) } else { None }},
                    ]}));
                    let result = store.commit(&change);
                    assert_eq!(result.is_err(), poisoned, "{result:?}");
                    // Readers may run alongside.
                    let rev = store.revision().unwrap();
                    store.layers(&ns("c"), rev).unwrap();
                }
            });
        }
    });
    assert_eq!(
        store.revision().unwrap(),
        1 + (THREADS * PER_THREAD / 2) as u64
    );
    assert_dense(&store);
    for change in store.changes_since(1, usize::MAX).unwrap() {
        assert_eq!(change.items.len(), 2);
    }
    let rev = store.revision().unwrap();
    for t in 0..THREADS {
        let layer = store
            .layer(&ns("c"), &lp(&format!("t/{t}")), rev)
            .unwrap()
            .unwrap();
        assert_eq!(layer.document["i"], json!(PER_THREAD - 2));
    }
}

/// A set of the counter layer of thread `t`, as a change set.
fn set_t(t: u64, n: u64) -> confstrata_core::ChangeSet {
    cs(
        json!({"ops": [{"op": "set", "namespace": "c", "layer": format!("t/{t}"), "key": "n", "value": n}]}),
    )
}

#[test]
fn callback_commits_and_waiting_commits_share_batches_and_lose_nothing() {
    const THREADS: u64 = 6;
    const PER_THREAD: u64 = 40;
    for max_batch in [64, 1] {
        let (_dir, store) = store_with(max_batch);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let (store, tx) = (&store, tx.clone());
                s.spawn(move || {
                    for n in 0..PER_THREAD {
                        if t % 2 == 0 {
                            // A waiting thread.
                            tx.send(store.commit(&set_t(t, n))).unwrap();
                        } else {
                            // A callback, as an async front end submits.
                            let tx = tx.clone();
                            store.commit_then(
                                set_t(t, n),
                                None,
                                None,
                                Box::new(move |r| tx.send(r).unwrap()),
                            );
                        }
                    }
                });
            }
        });
        drop(tx);
        let revisions: BTreeSet<u64> = rx.iter().map(|r| r.unwrap().revision).collect();
        assert_eq!(
            revisions.len() as u64,
            THREADS * PER_THREAD,
            "max_batch {max_batch}"
        );
        assert_dense(&store);
        for t in 0..THREADS {
            let l = store
                .layer(&ns("c"), &lp(&format!("t/{t}")), store.revision().unwrap())
                .unwrap()
                .unwrap();
            // Each thread's commits landed in order: its last value is last.
            if t % 2 == 0 {
                assert_eq!(l.document["n"], PER_THREAD - 1);
            }
        }
    }
}

#[test]
fn a_callback_may_write_to_the_store_and_a_refused_change_set_is_reported() {
    let (_dir, store) = store_with(64);
    let store = std::sync::Arc::new(store);
    let (tx, rx) = std::sync::mpsc::channel();
    let inner = std::sync::Arc::clone(&store);
    // The refused change set's callback writes a record of the refusal,
    // from whatever thread calls it: it must not wait for itself.
    store.commit_then(
        cs(json!({"ops": [{"op": "unset", "namespace": "c", "layer": "t/1", "key": "missing"}]})),
        None,
        None,
        Box::new(move |r| {
            let refused = r.unwrap_err();
            let follow_up = inner.commit(&set_t(9, 1));
            tx.send((refused, follow_up)).unwrap();
        }),
    );
    let (refused, follow_up) = rx.recv().unwrap();
    assert!(refused.to_string().contains("t/1"), "{refused}");
    assert_eq!(follow_up.unwrap().revision, 2);
    assert_dense(&store);
}

#[test]
fn callbacks_queued_when_the_store_is_dropped_are_written_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let store = SqliteStore::open(&path).unwrap();
        store
            .commit(&cs(json!({"ops": [{"op": "put-namespace", "spec": {"name": "c", "levels": ["counter", "t/{t}"]}}]})))
            .unwrap();
        for n in 0..20 {
            let tx = tx.clone();
            store.commit_then(
                set_t(0, n),
                None,
                None,
                Box::new(move |r| tx.send(r).unwrap()),
            );
        }
    }
    drop(tx);
    let results: Vec<_> = rx.iter().collect();
    assert_eq!(results.len(), 20);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.revision().unwrap(), 21);
}
