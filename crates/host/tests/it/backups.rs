//! Scheduled backups and retention together: with backups on, history
//! retention runs right before each full backup, so the incrementals of a
//! chain are never turned into full ones by a moved floor. One job run at
//! a time, called directly: no timer involved.

use confstrata_core::serde_json::json;
use confstrata_core::{ChangeSet, RetentionPolicy};
use confstrata_engine::Caller;
use confstrata_engine::backup::BackupConfig;
use confstrata_engine::confstrata_backup::{LocalDir, Retention};
use confstrata_host::scheduled_backup;

fn cs(v: confstrata_core::serde_json::Value) -> ChangeSet {
    confstrata_core::serde_json::from_value(v).unwrap()
}

#[test]
fn retention_runs_before_full_backups_only_and_chains_stay_incremental() {
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let engine = confstrata_host::open(&dir.path().join("data")).unwrap();
    engine.set_backups(BackupConfig {
        target: Box::new(LocalDir::new(&backups)),
        keys: None,
        retention: Retention::default(),
    });
    let ops = Caller::local("ops");
    let write = |n: i64| {
        for i in 0..n {
            engine
                .commit(
                    &ops,
                    &cs(json!({"ops": [{"op": "set", "namespace": "p", "layer": "defaults", "key": "v", "value": i}]})),
                )
                .unwrap();
        }
    };
    engine
        .commit(
            &ops,
            &cs(json!({"ops": [{"op": "put-namespace", "spec": {"name": "p", "levels": ["defaults"]}}]})),
        )
        .unwrap();
    write(10);
    let policy = RetentionPolicy {
        keep_versions: 2,
        keep_days: 0,
    };
    let oldest = || engine.store().oldest_revision().unwrap();
    let start = oldest();

    // The first backup is full, and retention ran right before it.
    let full = scheduled_backup(&engine, 3, Some(&policy)).unwrap();
    assert!(full.parent.is_none());
    let floor = oldest();
    assert!(
        floor > start,
        "retention did not run before the full backup"
    );
    assert_eq!(full.oldest_revision, floor);

    // More history that the policy would drop: the next backups of the
    // chain are incremental, and retention waits for the next full one.
    write(5);
    let inc = scheduled_backup(&engine, 3, Some(&policy)).unwrap();
    assert_eq!(
        inc.parent.as_ref().map(|p| p.id.as_str()),
        Some(full.id.as_str())
    );
    assert!(inc.note.is_none(), "{:?}", inc.note);
    assert_eq!(oldest(), floor);
    write(5);
    let inc2 = scheduled_backup(&engine, 3, Some(&policy)).unwrap();
    assert_eq!(
        inc2.parent.as_ref().map(|p| p.id.as_str()),
        Some(inc.id.as_str())
    );
    assert_eq!(oldest(), floor);

    // The chain is full (3): the next one is full, after retention.
    write(5);
    let next = scheduled_backup(&engine, 3, Some(&policy)).unwrap();
    assert!(next.parent.is_none());
    assert!(
        oldest() > floor,
        "retention did not run before the second full backup"
    );

    // Retention run on its own between backups of a chain is what the
    // schedule avoids: the incremental after it falls back to full, saying why.
    write(5);
    engine.apply_retention(&ops, &policy).unwrap();
    let fell_back = scheduled_backup(&engine, 3, None).unwrap();
    assert!(fell_back.parent.is_none());
    assert!(
        fell_back
            .note
            .as_deref()
            .is_some_and(|n| n.contains("retention moved the oldest revision")),
        "{:?}",
        fell_back.note
    );
}
