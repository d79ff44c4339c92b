//! Dumps and loads: a store loaded from a dump reads exactly like the one
//! it was dumped from at every revision (history, journal and settings
//! too), into SQLite and into the memory store; a full dump followed by an
//! incremental one loads like one full dump; a dump is one snapshot.

use confstrata_core::dump::{DumpFrom, DumpRecord, LoadEnd, RESTORE_AUTHOR};
use confstrata_core::serde_json::{Value, json};
use confstrata_core::{
    JournalFn, JournalRecord, MemoryStore, RetentionPolicy, RevisionInfo, SettingWrite, Store,
    Timestamp,
};
use proptest::prelude::*;

use crate::deltas::{Step, change, reads, step};
use crate::{cs, sqlite};

fn record(body: &str) -> JournalFn {
    let body = body.to_owned();
    Box::new(move |slot| {
        let seq = slot.head.map_or(1, |h| h.seq + 1);
        Ok(JournalRecord {
            seq,
            time: Timestamp(1_000 + i64::try_from(seq).unwrap()),
            revision: slot.revision,
            mac: [u8::try_from(seq % 251).unwrap(); 32],
            body,
        })
    })
}

fn dump(store: &dyn Store, from: DumpFrom) -> (confstrata_core::DumpHead, Vec<DumpRecord>) {
    let mut out = Vec::new();
    let head = store
        .dump(from, &mut |r| {
            out.push(r);
            Ok(())
        })
        .unwrap();
    (head, out)
}

fn load(store: &dyn Store, records: Vec<DumpRecord>, end: &LoadEnd) {
    store
        .load(&mut records.into_iter().map(Ok), end)
        .unwrap_or_else(|e| panic!("load: {e}"));
}

/// Everything a reader can see: every read at every revision, the
/// journal and the settings.
fn everything(store: &dyn Store) -> Vec<Value> {
    let mut out = reads(store);
    out.push(json!(store.journal(0, usize::MAX).unwrap()));
    out.push(json!(store.settings("").unwrap()));
    let infos: Vec<Option<RevisionInfo>> = (0..=store.revision().unwrap())
        .map(|r| store.revision_info(r).unwrap())
        .collect();
    out.push(json!(infos));
    out
}

/// Applies the steps to `store`, with a journal record for every commit and
/// a setting written now and then.
fn run(store: &dyn Store, steps: &[Step]) {
    for (i, step) in steps.iter().enumerate() {
        match change(step) {
            Some(c) => {
                let _ = store.commit_checked(&c, Some(record(&format!("commit {i}"))), None);
            }
            None => {
                let Step::Retain(n) = step else {
                    unreachable!()
                };
                let policy = RetentionPolicy {
                    keep_versions: *n,
                    keep_days: 0,
                };
                store.apply_retention(&policy, Timestamp(i64::MAX)).unwrap();
                store
                    .write_settings(
                        &[SettingWrite {
                            key: format!("s/{}", i % 3),
                            value: Some(format!("v{i}")),
                        }],
                        Some(record("setting")),
                    )
                    .unwrap();
            }
        }
    }
}

fn declare(store: &dyn Store) {
    store
        .commit(&cs(json!({"author": "t", "message": "declare", "ops": [
            {"op": "put-namespace", "spec": {"name": "p", "levels": ["l/{x}"], "matrix": {"x": ["a", "b"]}}},
        ]})))
        .unwrap();
}

fn end_of(head: &confstrata_core::DumpHead) -> LoadEnd {
    LoadEnd {
        store_id: "restored".to_owned(),
        oldest_revision: head.oldest_revision,
        resume: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_loaded_dump_reads_like_its_store(
        steps in prop::collection::vec(step(), 1..60),
        more in prop::collection::vec(step(), 0..30),
    ) {
        let (_dir, source) = sqlite();
        declare(&source);
        run(&source, &steps);
        let (first_head, first) = dump(&source, DumpFrom::default());
        let before = first_head.oldest_revision;
        run(&source, &more);
        let (head, full) = dump(&source, DumpFrom::default());
        prop_assert_eq!(head.revision, source.revision().unwrap());
        prop_assert_eq!(&head.store_id, &source.store_id().unwrap());
        let want = everything(&source);

        // A full dump, into SQLite and into the memory store.
        let (_d2, copy) = sqlite();
        load(&copy, full.clone(), &end_of(&head));
        prop_assert_eq!(&everything(&copy), &want);
        prop_assert_eq!(copy.store_id().unwrap(), "restored");
        let memory = MemoryStore::new();
        load(&memory, full.clone(), &end_of(&head));
        prop_assert_eq!(&everything(&memory), &want);
        // Dumped again, the copy gives the same records.
        prop_assert_eq!(&dump(&copy, DumpFrom::default()).1, &full);

        // A full dump, then the incremental one after it: the same store,
        // unless retention moved its floor in between (an incremental
        // cannot say what retention removed; a backup takes a full one
        // instead).
        let (_, incremental) = dump(&source, DumpFrom {
            revision: first_head.revision,
            journal_seq: first_head.journal.map_or(0, |h| h.seq),
        });
        if head.oldest_revision == before {
            let (_d3, chained) = sqlite();
            let settings_free = first.into_iter().filter(|r| !matches!(r, DumpRecord::Setting { .. }));
            let all: Vec<DumpRecord> = settings_free.chain(incremental).collect();
            load(&chained, all, &end_of(&head));
            prop_assert_eq!(&everything(&chained), &want);
        }
    }
}

#[test]
fn a_dump_is_the_snapshot_it_started_on() {
    let (_dir, store) = sqlite();
    declare(&store);
    run(&store, &[Step::Set(0, vec![0], json!(1))]);
    let before = store.revision().unwrap();
    let mut seen = Vec::new();
    let mut committed = false;
    let head = store
        .dump(DumpFrom::default(), &mut |r| {
            if !committed {
                committed = true;
                // Another writer commits while the dump runs, and waits
                // for nothing: the dump holds no lock the writer needs.
                std::thread::scope(|s| {
                    s.spawn(|| run(&store, &[Step::Set(1, vec![1], json!(2))]))
                        .join()
                        .unwrap();
                });
            }
            seen.push(r);
            Ok(())
        })
        .unwrap();
    assert_eq!(store.revision().unwrap(), before + 1);
    assert_eq!(head.revision, before);
    assert!(seen.iter().all(|r| match r {
        DumpRecord::Revision(i) => i.revision <= before,
        DumpRecord::Layer { revision, .. } => *revision <= before,
        DumpRecord::Journal(j) => j.revision.is_none_or(|r| r <= before),
        _ => true,
    }));
}

#[test]
fn a_load_refuses_a_store_with_data_and_a_dump_out_of_order_and_writes_nothing() {
    let (_dir, store) = sqlite();
    declare(&store);
    run(
        &store,
        &[
            Step::Set(0, vec![0], json!(1)),
            Step::Set(0, vec![0], json!(2)),
        ],
    );
    let (head, records) = dump(&store, DumpFrom::default());
    let err = store
        .load(&mut records.clone().into_iter().map(Ok), &end_of(&head))
        .unwrap_err();
    assert!(
        err.to_string().contains("only into an empty store"),
        "{err}"
    );

    let (_d2, empty) = sqlite();
    let mut reversed = records.clone();
    let layers: Vec<usize> = (0..reversed.len())
        .filter(|i| matches!(reversed[*i], DumpRecord::Layer { .. }))
        .collect();
    reversed.swap(layers[0], layers[1]);
    let err = empty
        .load(&mut reversed.into_iter().map(Ok), &end_of(&head))
        .unwrap_err();
    assert!(err.to_string().contains("out of order"), "{err}");
    assert_eq!(empty.revision().unwrap(), 0);
    assert!(empty.journal(0, 10).unwrap().is_empty());

    // A failing source stops the load, and nothing of it stays.
    let failing = records
        .into_iter()
        .map(Ok)
        .take(3)
        .chain(std::iter::once(Err(confstrata_core::Error::storage(
            "part 2 is truncated",
        ))));
    let err = empty
        .load(&mut failing.into_iter(), &end_of(&head))
        .unwrap_err();
    assert!(err.to_string().contains("part 2 is truncated"), "{err}");
    assert_eq!(empty.revision().unwrap(), 0);
}

#[test]
fn a_restore_resumes_at_a_later_revision_and_commits_go_on_after_it() {
    let (_dir, store) = sqlite();
    declare(&store);
    run(&store, &[Step::Set(0, vec![0], json!(1))]);
    let (head, records) = dump(&store, DumpFrom::default());
    let (_d2, copy) = sqlite();
    let resume = RevisionInfo {
        revision: head.revision + 1000,
        time: Timestamp::now().max(head.time),
        author: RESTORE_AUTHOR.to_owned(),
        message: format!("restored as of revision {}", head.revision),
    };
    let end = LoadEnd {
        resume: Some(resume.clone()),
        ..end_of(&head)
    };
    load(&copy, records, &end);
    assert_eq!(copy.revision().unwrap(), head.revision + 1000);
    assert_eq!(copy.revision_info(resume.revision).unwrap(), Some(resume));
    run(&copy, &[Step::Set(0, vec![0], json!(3))]);
    assert_eq!(copy.revision().unwrap(), head.revision + 1001);
    let changes = copy.changes_since(head.revision, 10).unwrap();
    assert_eq!(changes.len(), 2);
    assert!(changes[0].items.is_empty());
}
