//! Scheduled retention: the host drops old history by itself, audited.

use std::time::Duration;

use confstrata_core::serde_json::json;
use confstrata_core::{ChangeSet, RetentionPolicy};
use confstrata_engine::Caller;

fn cs(v: confstrata_core::serde_json::Value) -> ChangeSet {
    confstrata_core::serde_json::from_value(v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_retention_drops_old_history_and_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let engine = confstrata_host::open(dir.path()).unwrap();
    let ops = Caller::local("ops");
    engine
        .commit(
            &ops,
            &cs(json!({"ops": [{"op": "put-namespace", "spec": {"name": "p", "levels": ["defaults"]}}]})),
        )
        .unwrap();
    for i in 0..10 {
        engine
            .commit(
                &ops,
                &cs(json!({"ops": [{"op": "set", "namespace": "p", "layer": "defaults", "key": "v", "value": i}]})),
            )
            .unwrap();
    }
    let host = confstrata_host::Host::new(engine.clone()).unwrap();
    host.schedule_retention(
        RetentionPolicy {
            keep_versions: 2,
            keep_days: 0,
        },
        Duration::from_millis(20),
    );
    // Wait for the run's audit record, written after the retention itself
    // (the bound only guards against a hang).
    let audited = |engine: &confstrata_engine::Engine| {
        engine
            .audit_records(&ops, 0, usize::MAX)
            .unwrap()
            .iter()
            .any(|r| {
                r.principal
                    .as_ref()
                    .is_some_and(|p| p.as_str() == "local:retention")
            })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !audited(&engine) {
        assert!(std::time::Instant::now() < deadline, "retention never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(engine.store().oldest_revision().unwrap(), 10);
}
