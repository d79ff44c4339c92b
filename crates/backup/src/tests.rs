//! Backups on a local directory, of and into the memory store (the SQLite
//! store's dump and load have their own tests; the server's are in the CLI).

use confstrata_core::serde_json::{Value, json};
use confstrata_core::{
    ChangeSet, Error, JournalFn, JournalRecord, MemoryStore, NamespaceName, RetentionPolicy,
    SettingWrite, Store, Timestamp,
};
use confstrata_crypto::{BlobKey, MasterKey};
use proptest::prelude::*;

use super::*;

/// Backup encryption with the crypto crate, as the engine does it.
struct TestKeys(MasterKey);
struct TestDataKey(BlobKey);

fn crypto(e: confstrata_crypto::Error) -> Error {
    Error::Integrity {
        message: e.to_string(),
    }
}

impl Keys for TestKeys {
    fn kek_id(&self) -> confstrata_core::Result<String> {
        self.0.id().map_err(crypto)
    }
    fn new_data_key(&self) -> confstrata_core::Result<(Box<dyn DataKey>, String)> {
        let (key, wrapped) = BlobKey::generate_wrapped(&self.0, "backup").map_err(crypto)?;
        Ok((Box::new(TestDataKey(key)), wrapped))
    }
    fn open_data_key(&self, wrapped: &str) -> confstrata_core::Result<Box<dyn DataKey>> {
        let key = BlobKey::unwrap(&self.0, "backup", wrapped).map_err(crypto)?;
        Ok(Box::new(TestDataKey(key)))
    }
}

impl DataKey for TestDataKey {
    fn seal(&self, aad: &[u8], plain: &[u8]) -> confstrata_core::Result<Vec<u8>> {
        self.0.seal(aad, plain).map_err(crypto)
    }
    fn open(&self, place: &str, aad: &[u8], sealed: &[u8]) -> confstrata_core::Result<Vec<u8>> {
        self.0.open(place, aad, sealed).map_err(crypto)
    }
}

fn keys() -> TestKeys {
    TestKeys(MasterKey::generate().unwrap())
}

fn cs(v: Value) -> ChangeSet {
    confstrata_core::serde_json::from_value(v).unwrap()
}

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

fn declare(store: &dyn Store) {
    store
        .commit_checked(
            &cs(json!({"author": "ana", "message": "declare", "ops": [
                {"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults", "env/{env}"], "matrix": {"env": ["dev", "prod"]}}},
            ]})),
            Some(record("declare")),
            None,
        )
        .unwrap();
}

/// Commit `i`: a value in one of two layers.
fn commit(store: &dyn Store, i: u64) -> u64 {
    let layer = if i.is_multiple_of(3) {
        "env/prod"
    } else {
        "defaults"
    };
    store
        .commit_checked(
            &cs(json!({"author": format!("w{}", i % 2), "message": format!("c{i}"), "ops": [
                {"op": "set", "namespace": "web", "layer": layer, "key": format!("k{}", i % 5), "value": i},
            ]})),
            Some(record(&format!("commit {i}"))),
            None,
        )
        .unwrap()
        .revision
}

/// Every read at every revision, the journal and the settings.
fn state(store: &dyn Store, upto: u64) -> Value {
    let web: NamespaceName = "web".parse().unwrap();
    let oldest = store.oldest_revision().unwrap();
    let reads: Vec<Value> = (oldest..=upto)
        .map(|r| {
            json!([
                r,
                store.revision_info(r).unwrap(),
                store.namespaces(r).unwrap(),
                store.layers(&web, r).unwrap()
            ])
        })
        .collect();
    json!({"reads": reads, "settings": store.settings("").unwrap()})
}

fn journal_upto(store: &dyn Store, upto: u64) -> Vec<JournalRecord> {
    let all = store.journal(0, usize::MAX).unwrap();
    let cut = all
        .iter()
        .position(|r| r.revision.is_some_and(|x| x > upto))
        .unwrap_or(all.len());
    all[..cut].to_vec()
}

fn quiet() -> impl FnMut(Progress) {
    |_| {}
}

fn backup(store: &dyn Store, target: &dyn Target, keys: &dyn Keys, incremental: bool) -> Manifest {
    let options = CreateOptions {
        incremental,
        part_bytes: 600,
        ..CreateOptions::default()
    };
    create(store, target, keys, &options, &mut quiet()).unwrap()
}

fn restored(target: &dyn Target, keys: &dyn Keys, point: Point) -> (MemoryStore, RestoreReport) {
    let into = MemoryStore::new();
    let report = restore(
        target,
        keys,
        &into,
        &RestoreOptions {
            point,
            ..RestoreOptions::default()
        },
        &mut quiet(),
    )
    .unwrap();
    (into, report)
}

#[test]
fn a_full_backup_restores_the_store_and_resumes_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let target = LocalDir::new(dir.path());
    let keys = keys();
    let store = MemoryStore::new();
    declare(&store);
    for i in 0..20 {
        commit(&store, i);
    }
    store
        .write_settings(
            &[SettingWrite {
                key: "principal/ana".into(),
                value: Some("{\"token_hash\": \"ab\"}".into()),
            }],
            Some(record("principal")),
        )
        .unwrap();
    let m = backup(&store, &target, &keys, false);
    assert_eq!(m.kind, Kind::Full);
    assert_eq!(m.revision, 21);
    assert!(m.parts.len() > 1, "several parts: {:?}", m.parts);
    assert_eq!(m.counts.revisions, 21);
    assert_eq!(m.counts.journal, 22);
    assert_eq!(m.counts.settings, 1);
    assert_eq!(m.journal.as_ref().unwrap().seq, 22);

    let (copy, report) = restored(&target, &keys, Point::Latest);
    assert_eq!(report.revision, 21);
    assert_eq!(report.resumed_at, 21 + 1_000_000);
    assert_eq!(report.from_store_id, store.store_id().unwrap());
    assert_ne!(report.store_id, report.from_store_id);
    assert_eq!(state(&copy, 21), state(&store, 21));
    assert_eq!(
        copy.journal(0, 100).unwrap(),
        store.journal(0, 100).unwrap()
    );
    assert_eq!(copy.revision().unwrap(), report.resumed_at);
    // The store goes on after the resume revision.
    assert_eq!(commit(&copy, 99), report.resumed_at + 1);

    let (v, _) = verify(&target, &keys, &m.id, &mut quiet()).unwrap();
    assert_eq!(v.revision, 21);
    assert_eq!(v.parts, m.parts.len());
}

#[test]
fn an_empty_store_backs_up_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let target = LocalDir::new(dir.path());
    let keys = keys();
    let store = MemoryStore::new();
    let m = backup(&store, &target, &keys, false);
    assert_eq!((m.revision, m.parts.len()), (0, 0));
    let (copy, report) = restored(&target, &keys, Point::Latest);
    assert_eq!(report.revision, 0);
    assert_eq!(copy.revision().unwrap(), report.resumed_at);
    verify(&target, &keys, &m.id, &mut quiet()).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Point-in-time recovery: restored as of any revision or time the
    /// backups cover, the store equals the history at the last commit at
    /// or before it, and its journal is the prefix up to that commit.
    #[test]
    fn a_restore_as_of_any_point_equals_the_history_then(
        batches in prop::collection::vec(1u64..6, 1..5),
        retain in prop::option::of(1usize..4),
        pick in any::<prop::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let target = LocalDir::new(dir.path());
        let keys = keys();
        let store = MemoryStore::new();
        declare(&store);
        let mut i = 0;
        if let Some(n) = retain {
            for _ in 0..4 { commit(&store, i); i += 1; }
            store.apply_retention(&RetentionPolicy { keep_versions: n, keep_days: 0 }, Timestamp(i64::MAX)).unwrap();
        }
        for (b, n) in batches.iter().enumerate() {
            for _ in 0..*n { commit(&store, i); i += 1; }
            let m = backup(&store, &target, &keys, b > 0);
            prop_assert_eq!(m.kind, if b > 0 { Kind::Incremental } else { Kind::Full });
        }
        let current = store.revision().unwrap();
        let oldest = store.oldest_revision().unwrap();
        let r = oldest.max(1) + pick.index(usize::try_from(current - oldest.max(1) + 1).unwrap()) as u64;
        let (copy, report) = restored(&target, &keys, Point::Revision(r));
        prop_assert_eq!(report.revision, r);
        prop_assert_eq!(state(&copy, r), state(&store, r));
        prop_assert_eq!(copy.journal(0, usize::MAX).unwrap(), journal_upto(&store, r));

        // As of a time: the commit at that time, and a moment after it.
        let t = store.revision_info(r).unwrap().unwrap().time;
        let (copy, report) = restored(&target, &keys, Point::Time(t));
        let want = store.revision_for_time(t).unwrap();
        prop_assert_eq!(report.revision, want);
        prop_assert_eq!(state(&copy, want), state(&store, want));
    }
}

/// A chain of three backups on a fresh target, and the target.
fn chain_of_three() -> (
    tempfile::TempDir,
    LocalDir,
    TestKeys,
    MemoryStore,
    Vec<Manifest>,
) {
    let dir = tempfile::tempdir().unwrap();
    let target = LocalDir::new(dir.path());
    let keys = keys();
    let store = MemoryStore::new();
    declare(&store);
    let mut out = Vec::new();
    for b in 0..3 {
        for i in 0..6 {
            commit(&store, b * 10 + i);
        }
        out.push(backup(&store, &target, &keys, b > 0));
    }
    (dir, target, keys, store, out)
}

fn restore_err(target: &dyn Target, keys: &dyn Keys, point: Point) -> String {
    let into = MemoryStore::new();
    let err = restore(
        target,
        keys,
        &into,
        &RestoreOptions {
            point,
            ..RestoreOptions::default()
        },
        &mut quiet(),
    )
    .unwrap_err()
    .to_string();
    // Nothing of a refused restore is loaded.
    assert_eq!(into.revision().unwrap(), 0, "{err}");
    err
}

#[test]
fn a_flipped_byte_in_any_part_or_manifest_is_refused_naming_it() {
    let (dir, target, keys, _, backups) = chain_of_three();
    for m in &backups {
        for part in m
            .parts
            .iter()
            .map(|p| p.name.clone())
            .chain([MANIFEST.to_owned()])
        {
            let path = dir.path().join(&m.id).join(&part);
            let good = std::fs::read(&path).unwrap();
            let mut bad = good.clone();
            let at = bad.len() / 2;
            bad[at] ^= 0x20;
            std::fs::write(&path, &bad).unwrap();
            let err = restore_err(&target, &keys, Point::Latest);
            assert!(err.contains(&m.id), "{part}: {err}");
            if part != MANIFEST {
                assert!(err.contains(&part), "{err}");
            }
            let err = verify(&target, &keys, &backups[2].id, &mut quiet())
                .map(drop)
                .unwrap_err()
                .to_string();
            assert!(err.contains(&m.id), "{err}");
            // Truncated.
            std::fs::write(&path, &good[..good.len() - 3]).unwrap();
            let err = restore_err(&target, &keys, Point::Latest);
            assert!(err.contains(&m.id), "{part} truncated: {err}");
            std::fs::write(&path, &good).unwrap();
        }
    }
    // All restored: it works again.
    restored(&target, &keys, Point::Latest);
}

#[test]
fn a_changed_manifest_field_is_refused() {
    let (dir, target, keys, _, backups) = chain_of_three();
    let path = dir.path().join(&backups[0].id).join(MANIFEST);
    let good = std::fs::read_to_string(&path).unwrap();
    let mut m: Value = confstrata_core::serde_json::from_str(&good).unwrap();
    m["revision"] = json!(3);
    std::fs::write(&path, m.to_string()).unwrap();
    let err = verify(&target, &keys, &backups[0].id, &mut quiet())
        .map(drop)
        .unwrap_err()
        .to_string();
    assert!(err.contains("changed after it was sealed"), "{err}");
}

#[test]
fn a_missing_part_or_incremental_and_a_wrong_key_are_refused() {
    let (dir, target, keys, _, backups) = chain_of_three();
    let part = dir
        .path()
        .join(&backups[1].id)
        .join(&backups[1].parts[0].name);
    let saved = std::fs::read(&part).unwrap();
    std::fs::remove_file(&part).unwrap();
    let err = restore_err(&target, &keys, Point::Latest);
    assert!(
        err.contains("is missing") && err.contains(&backups[1].parts[0].name),
        "{err}"
    );
    std::fs::write(&part, saved).unwrap();
    restored(&target, &keys, Point::Latest);

    // The middle of the chain gone.
    let middle = dir.path().join(&backups[1].id);
    let elsewhere = tempfile::tempdir().unwrap();
    let aside = elsewhere.path().join("aside");
    std::fs::rename(&middle, &aside).unwrap();
    let err = restore_err(&target, &keys, Point::Latest);
    assert!(
        err.contains("chain is broken") && err.contains(&backups[1].id),
        "{err}"
    );
    // An older point needs only the full backup.
    restored(&target, &keys, Point::Backup(backups[0].id.clone()));
    std::fs::rename(&aside, &middle).unwrap();

    // Another store's backup in its place.
    let other_dir = tempfile::tempdir().unwrap();
    let other_target = LocalDir::new(other_dir.path());
    let other = MemoryStore::new();
    declare(&other);
    let o = backup(&other, &other_target, &keys, false);
    std::fs::rename(&middle, &aside).unwrap();
    std::fs::rename(other_dir.path().join(&o.id), &middle).unwrap();
    let err = restore_err(&target, &keys, Point::Backup(backups[2].id.clone()));
    assert!(
        err.contains(&backups[1].id) && err.contains("copied from another backup"),
        "{err}"
    );
    std::fs::remove_dir_all(&middle).unwrap();
    std::fs::rename(&aside, &middle).unwrap();

    // The wrong key.
    let err = restore_err(
        &target,
        &TestKeys(MasterKey::generate().unwrap()),
        Point::Latest,
    );
    assert!(err.contains("encrypted under key"), "{err}");

    // A store that is not empty.
    let (full, _) = restored(&target, &keys, Point::Latest);
    let err = restore(
        &target,
        &keys,
        &full,
        &RestoreOptions::default(),
        &mut quiet(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("empty store"), "{err}");
}

#[test]
fn points_outside_the_backups_are_refused() {
    let (_dir, target, keys, store, backups) = chain_of_three();
    let top = backups[2].revision;
    let err = restore_err(&target, &keys, Point::Revision(top + 1));
    assert!(err.contains("after the newest backup"), "{err}");
    let err = restore_err(&target, &keys, Point::Time(Timestamp(1)));
    assert!(err.contains("before the oldest revision"), "{err}");
    // A time after the newest backup restores it, and says what is missing.
    let (_, report) = restored(&target, &keys, Point::Time(Timestamp(i64::MAX)));
    assert_eq!(report.revision, store.revision().unwrap());
    assert!(report.note.unwrap().contains("in no backup"));
    let err = restore_err(&target, &keys, Point::Backup("nope".into()));
    assert!(err.contains("no complete backup nope"), "{err}");
}

#[test]
fn an_incremental_after_retention_moved_is_a_full_one_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let target = LocalDir::new(dir.path());
    let keys = keys();
    let store = MemoryStore::new();
    declare(&store);
    for i in 0..6 {
        commit(&store, i);
    }
    backup(&store, &target, &keys, false);
    for i in 6..12 {
        commit(&store, i);
    }
    store
        .apply_retention(
            &RetentionPolicy {
                keep_versions: 2,
                keep_days: 0,
            },
            Timestamp(i64::MAX),
        )
        .unwrap();
    let m = backup(&store, &target, &keys, true);
    assert_eq!(m.kind, Kind::Full);
    assert!(m.note.unwrap().contains("retention moved"));
    let (copy, _) = restored(&target, &keys, Point::Latest);
    let top = store.revision().unwrap();
    assert_eq!(state(&copy, top), state(&store, top));
}

#[test]
fn an_incomplete_backup_is_listed_never_used_and_pruned_when_old() {
    let (dir, target, keys, _, backups) = chain_of_three();
    std::fs::remove_file(dir.path().join(&backups[2].id).join(MANIFEST)).unwrap();
    let listed = list(&target).unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().any(|l| l.id == backups[2].id
        && l.manifest.is_none()
        && l.problem.as_deref().unwrap().contains("incomplete")));
    let (_, report) = restored(&target, &keys, Point::Latest);
    assert_eq!(report.revision, backups[1].revision);
    // Young: kept (it may be being written); a day later: removed.
    let now = backups[2].created;
    assert!(plan_prune(&listed, &Retention::default(), now).is_empty());
    let later = Timestamp(now.0 + 25 * 3600 * 1000);
    assert_eq!(
        plan_prune(&listed, &Retention::default(), later),
        [backups[2].id.clone()]
    );
}

#[test]
fn pruning_keeps_the_newest_and_everything_they_are_built_on() {
    let (_dir, target, keys, store, backups) = chain_of_three();
    let mut all = backups.clone();
    all.push(backup(&store, &target, &keys, false));
    all.push(backup(&store, &target, &keys, true));
    let now = all[4].created;
    // Keep the last one: it is an incremental on the second full.
    let policy = Retention {
        keep_last: 1,
        keep_daily_days: 0,
    };
    let report = prune(&target, &policy, now).unwrap();
    let mut removed = report.removed.clone();
    removed.sort();
    let mut want: Vec<String> = all[..3].iter().map(|m| m.id.clone()).collect();
    want.sort();
    assert_eq!(removed, want);
    let left: Vec<String> = list(&target).unwrap().into_iter().map(|l| l.id).collect();
    assert_eq!(left.len(), 2);
    restored(&target, &keys, Point::Latest);
    // Keep the newest of today: the same two.
    let policy = Retention {
        keep_last: 0,
        keep_daily_days: 1,
    };
    assert!(prune(&target, &policy, now).unwrap().removed.is_empty());
    let _ = backups;
}

#[test]
fn a_time_covered_only_by_an_incremental_restores() {
    // The full backup is of an empty store (a fresh server); the
    // incremental after it covers the time asked for.
    let dir = tempfile::tempdir().unwrap();
    let target = LocalDir::new(dir.path());
    let keys = keys();
    let store = MemoryStore::new();
    store
        .write_settings(
            &[SettingWrite {
                key: "principal/admin".into(),
                value: Some("{}".into()),
            }],
            Some(record("admin")),
        )
        .unwrap();
    assert_eq!(backup(&store, &target, &keys, false).revision, 0);
    declare(&store);
    for i in 0..3 {
        commit(&store, i);
    }
    assert_eq!(backup(&store, &target, &keys, true).kind, Kind::Incremental);
    let t = store.revision_info(2).unwrap().unwrap().time;
    let (copy, report) = restored(&target, &keys, Point::Time(t));
    let want = store.revision_for_time(t).unwrap();
    assert_eq!(report.revision, want);
    assert_eq!(state(&copy, want), state(&store, want));
}
