//! The resolved-view cache on the engine's read path: a read after a commit
//! never returns the old value (also under concurrent commits and reads),
//! each caller still gets its own view of sealed values, and hits happen.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use confstrata_core::serde_json::{Value, json};
use confstrata_core::{At, ChangeSet, parse_context};
use confstrata_engine::{Caller, Engine, PrincipalKind};

fn cs(v: Value) -> ChangeSet {
    confstrata_core::serde_json::from_value(v).unwrap()
}

fn set(n: u64) -> ChangeSet {
    cs(
        json!({"ops": [{"op": "set", "namespace": "web", "layer": "env/prod", "key": "n", "value": n}]}),
    )
}

fn engine() -> (tempfile::TempDir, Engine, Caller) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(&dir.path().join("data")).unwrap();
    let me = Caller::local("test");
    engine
        .commit(
            &me,
            &cs(json!({"ops": [
                {"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults", "env/{env}"]}},
                {"op": "put-namespace", "spec": {"name": "other", "levels": ["defaults"]}},
                {"op": "put", "namespace": "web", "layer": "defaults", "document": {"n": 0, "password": "s3cret"}},
            ]})),
        )
        .unwrap();
    (dir, engine, me)
}

#[test]
fn reads_after_commits_are_never_stale_and_hits_happen() {
    let (_dir, engine, me) = engine();
    let web = "web".parse().unwrap();
    let prod = parse_context("env=prod").unwrap();
    for n in 1..50u64 {
        engine.commit(&me, &set(n)).unwrap();
        for _ in 0..3 {
            let v = engine.resolve(&me, &web, &prod, At::Latest).unwrap();
            assert_eq!(v.document["n"], n);
            assert_eq!(v.revision, engine.revision().unwrap());
        }
        // A commit to another namespace leaves web's view cached, and the
        // view says the newest revision.
        engine
            .commit(
                &me,
                &cs(json!({"ops": [{"op": "set", "namespace": "other", "layer": "defaults", "key": "k", "value": n}]})),
            )
            .unwrap();
        let v = engine.resolve(&me, &web, &prod, At::Latest).unwrap();
        assert_eq!(v.document["n"], n);
        assert_eq!(v.revision, engine.revision().unwrap());
    }
    let s = engine.cache_stats();
    assert!(s.hits >= 49 * 3, "{s:?}");
    assert!(s.misses <= 60, "{s:?}");
    // Reads in the past bypass the cache and see the past.
    let v = engine.resolve(&me, &web, &prod, At::Revision(1)).unwrap();
    assert_eq!(v.document["n"], 0);
}

#[test]
fn concurrent_reads_never_see_a_value_older_than_an_acknowledged_commit() {
    let (_dir, engine, me) = engine();
    let acked = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (engine, me, acked, done) = (
                engine.clone(),
                me.clone(),
                Arc::clone(&acked),
                Arc::clone(&done),
            );
            std::thread::spawn(move || {
                let web = "web".parse().unwrap();
                let prod = parse_context("env=prod").unwrap();
                let mut last = 0;
                while done.load(Ordering::SeqCst) == 0 {
                    let floor = acked.load(Ordering::SeqCst);
                    let v = engine.resolve(&me, &web, &prod, At::Latest).unwrap();
                    let n = v.document["n"].as_u64().unwrap();
                    assert!(n >= floor, "read {n} after {floor} was acknowledged");
                    assert!(n >= last, "went back from {last} to {n}");
                    last = n;
                }
            })
        })
        .collect();
    for n in 1..=200u64 {
        engine.commit(&me, &set(n)).unwrap();
        acked.store(n, Ordering::SeqCst);
    }
    done.store(1, Ordering::SeqCst);
    for r in readers {
        r.join().unwrap();
    }
}

#[test]
fn a_cached_view_is_presented_per_caller() {
    let (_dir, engine, me) = engine();
    let web = "web".parse().unwrap();
    let prod = parse_context("env=prod").unwrap();
    for (id, role) in [("vic", "viewer"), ("rita", "secret-reader")] {
        engine
            .add_principal(&me, id, id, PrincipalKind::User, &[role.into()])
            .unwrap();
    }
    let token = |id: &str| {
        let t = engine.issue_token(&me, id, "t").unwrap();
        engine
            .authenticate(Some(&format!("Bearer {}", t.expose_secret())), "r")
            .unwrap()
    };
    let (vic, rita) = (token("vic"), token("rita"));
    for _ in 0..3 {
        let v = engine.resolve(&vic, &web, &prod, At::Latest).unwrap();
        assert_eq!(v.document["password"], "<sealed>");
        let r = engine.resolve(&rita, &web, &prod, At::Latest).unwrap();
        assert_eq!(r.document["password"], "s3cret");
    }
    assert!(engine.cache_stats().hits >= 5);
    // Revoking read takes effect on cached views too.
    engine.revoke_role(&me, "vic", "viewer").unwrap();
    assert!(engine.resolve(&vic, &web, &prod, At::Latest).is_err());
}
