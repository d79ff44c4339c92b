//! The journal and settings: records written in the transaction of the
//! change they describe, on both stores; and what the SQLite store adds
//! (append-only triggers, records surviving a reopen and retention).

use std::sync::Arc;

use confstrata_core::serde_json::json;
use confstrata_core::{
    JournalFn, JournalRecord, JournalSlot, MemoryStore, RetentionPolicy, SettingWrite, Store,
    Timestamp,
};

use crate::{cs, open, sqlite};

fn both(check: impl Fn(&dyn Store)) {
    check(&MemoryStore::new());
    let (_dir, store) = sqlite();
    check(&store);
}

/// A journal function whose record's MAC is a toy chain over the body (the
/// real one is keyed BLAKE3 in `confstrata-access`).
fn record(body: &str) -> JournalFn {
    let body = body.to_owned();
    Box::new(move |slot: JournalSlot| {
        let prev = slot.head.map_or([0; 32], |h| h.mac);
        let mut mac = prev;
        mac[0] = mac[0].wrapping_add(1);
        mac[1] = u8::try_from(body.len() % 256).unwrap();
        Ok(JournalRecord {
            seq: slot.head.map_or(1, |h| h.seq + 1),
            time: Timestamp(0),
            revision: slot.revision,
            mac,
            body: format!("{body}@{:?}", slot.revision),
        })
    })
}

fn setup() -> confstrata_core::ChangeSet {
    cs(json!({"ops": [
        {"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults"]}},
        {"op": "put", "namespace": "web", "layer": "defaults", "document": {"n": 1}},
    ]}))
}

#[test]
fn a_commit_and_its_record_land_together() {
    both(|store| {
        let info = store
            .commit_checked(&setup(), Some(record("c1")), None)
            .unwrap();
        store.append_journal(record("read")).unwrap();
        let records = store.journal(0, 10).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].seq, 1);
        assert_eq!(records[0].revision, Some(info.revision));
        assert_eq!(records[0].body, format!("c1@Some({})", info.revision));
        assert_eq!(records[1].seq, 2);
        assert_eq!(records[1].revision, None);
        assert_eq!(store.journal(1, 10).unwrap(), records[1..]);
        assert_eq!(store.journal(0, 1).unwrap(), records[..1]);
        // After a number beyond SQLite's integers (a caller's `after`):
        // nothing, not an error.
        assert!(store.journal(u64::MAX, 10).unwrap().is_empty());
        assert!(store.journal(1 << 63, 10).unwrap().is_empty());
    });
}

#[test]
fn a_record_that_cannot_be_made_stops_the_commit() {
    both(|store| {
        let failing: JournalFn =
            Box::new(|_| Err(confstrata_core::Error::storage("the audit key is gone")));
        let err = store
            .commit_checked(&setup(), Some(failing), None)
            .unwrap_err();
        assert!(err.to_string().contains("the audit key is gone"), "{err}");
        assert_eq!(store.revision().unwrap(), 0, "nothing was committed");
        assert!(store.journal(0, 10).unwrap().is_empty());
        // A record that does not continue the chain is refused too.
        let wrong_seq: JournalFn = Box::new(|slot| {
            Ok(JournalRecord {
                seq: 7,
                time: Timestamp(0),
                revision: slot.revision,
                mac: [0; 32],
                body: String::new(),
            })
        });
        let err = store
            .commit_checked(&setup(), Some(wrong_seq), None)
            .unwrap_err();
        assert!(err.to_string().contains("does not follow"), "{err}");
        assert_eq!(store.revision().unwrap(), 0);
        // And a conflicting change set writes no record.
        store
            .commit_checked(&setup(), Some(record("ok")), None)
            .unwrap();
        let conflict = cs(json!({"ops": [
            {"op": "put", "namespace": "web", "layer": "defaults", "document": {}, "expect_revision": 0},
        ]}));
        store
            .commit_checked(&conflict, Some(record("no")), None)
            .unwrap_err();
        assert_eq!(store.journal(0, 10).unwrap().len(), 1);
    });
}

#[test]
fn settings_change_with_their_record() {
    both(|store| {
        let w = |k: &str, v: Option<&str>| SettingWrite {
            key: k.to_owned(),
            value: v.map(str::to_owned),
        };
        store
            .write_settings(
                &[
                    w("keyring/a", Some("1")),
                    w("keyring/b", Some("2")),
                    w("policy", Some("p")),
                ],
                Some(record("s")),
            )
            .unwrap();
        assert_eq!(store.setting("policy").unwrap().as_deref(), Some("p"));
        assert_eq!(store.setting("keyring").unwrap(), None);
        assert_eq!(
            store.settings("keyring/").unwrap(),
            vec![
                ("keyring/a".into(), "1".into()),
                ("keyring/b".into(), "2".into())
            ]
        );
        store.write_settings(&[w("keyring/a", None)], None).unwrap();
        assert_eq!(store.settings("keyring/").unwrap().len(), 1);
        let failing: JournalFn = Box::new(|_| Err(confstrata_core::Error::storage("no")));
        store
            .write_settings(&[w("policy", Some("q"))], Some(failing))
            .unwrap_err();
        assert_eq!(store.setting("policy").unwrap().as_deref(), Some("p"));
        assert_eq!(store.journal(0, 10).unwrap().len(), 1);
    });
}

#[test]
fn concurrent_commits_form_one_unbroken_chain() {
    let (_dir, store) = sqlite();
    store
        .commit_checked(&setup(), Some(record("setup")), None)
        .unwrap();
    let store = Arc::new(store);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..20 {
                    let c = cs(json!({"ops": [
                        {"op": "set", "namespace": "web", "layer": "defaults", "key": format!("k{t}_{i}"), "value": i},
                    ]}));
                    store.commit_checked(&c, Some(record("c")), None).unwrap();
                    if i % 5 == 0 {
                        store.append_journal(record("r")).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let records = store.journal(0, 1000).unwrap();
    assert_eq!(records.len(), 1 + 8 * 20 + 8 * 4);
    for (i, pair) in records.windows(2).enumerate() {
        assert_eq!(pair[1].seq, pair[0].seq + 1, "gap after record {i}");
        let mut want = pair[0].mac;
        want[0] = want[0].wrapping_add(1);
        assert_eq!(
            pair[1].mac[0], want[0],
            "record {} chains on the one before",
            pair[1].seq
        );
    }
    let mut revisions: Vec<u64> = records.iter().filter_map(|r| r.revision).collect();
    let n = revisions.len();
    revisions.dedup();
    assert_eq!(revisions.len(), n, "one record per commit");
}

#[test]
fn the_journal_is_append_only_survives_reopening_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    {
        let store = open(&path);
        store
            .commit_checked(&setup(), Some(record("a")), None)
            .unwrap();
        for i in 0..5 {
            let c = cs(json!({"ops": [
                {"op": "set", "namespace": "web", "layer": "defaults", "key": "n", "value": i},
            ]}));
            store.commit_checked(&c, Some(record("b")), None).unwrap();
        }
        store
            .apply_retention(
                &RetentionPolicy {
                    keep_versions: 1,
                    keep_days: 0,
                },
                Timestamp::now(),
            )
            .unwrap();
        assert_eq!(store.journal(0, 100).unwrap().len(), 6);
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    for sql in [
        "UPDATE journal SET body = 'forged' WHERE seq = 2",
        "DELETE FROM journal WHERE seq = 3",
    ] {
        let err = conn.execute(sql, []).unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    drop(conn);
    let store = open(&path);
    let records = store.journal(0, 100).unwrap();
    assert_eq!(records.len(), 6);
    store.append_journal(record("after")).unwrap();
    assert_eq!(store.journal(6, 10).unwrap()[0].seq, 7);
}
