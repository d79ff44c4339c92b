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
    let engine = confstrata_host::open(&dir.path().join("data")).unwrap();
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

/// Tokens for principals with the given roles.
fn callers(engine: &Engine, me: &Caller, who: &[(&str, &str)]) -> Vec<Caller> {
    who.iter()
        .map(|(id, role)| {
            engine
                .add_principal(me, id, id, PrincipalKind::User, &[(*role).into()])
                .unwrap();
            let t = engine.issue_token(me, id, "t").unwrap();
            engine
                .authenticate(Some(&format!("Bearer {}", t.expose_secret())), "r")
                .unwrap()
        })
        .collect()
}

#[test]
fn the_fast_path_answers_what_the_slow_path_would_or_nothing() {
    let (_dir, engine, me) = engine();
    let web = "web".parse().unwrap();
    let prod = parse_context("env=prod").unwrap();
    let c = callers(
        &engine,
        &me,
        &[
            ("vic", "viewer"),
            ("rita", "secret-reader"),
            ("nobody", "auditor"),
        ],
    );
    let (vic, rita, nobody) = (&c[0], &c[1], &c[2]);
    // Nothing cached yet: the fast path leaves it to the slow one.
    assert!(engine.resolve_cached(vic, &web, &prod, None).is_none());
    let slow = engine.resolve(vic, &web, &prod, At::Latest).unwrap();
    let fast = engine.resolve_cached(vic, &web, &prod, None).unwrap();
    assert_eq!(fast.document().unwrap(), slow.document);
    assert_eq!(fast.provenance().unwrap(), slow.provenance);
    assert_eq!(fast.layers(), &slow.layers[..]);
    assert_eq!(fast.revision, slow.revision);
    let json: Value = confstrata_core::serde_json::from_str(&fast.json).unwrap();
    assert_eq!(json["password"], "<sealed>");
    // Two viewers share one presented view: nothing is copied per request.
    let again = engine.resolve_cached(vic, &web, &prod, None).unwrap();
    assert!(fast.shares_json_with(&again));
    // A caller who may open the secret is answered by the slow path
    // (opening is audited), and one who may not read gets no answer here
    // (the slow path refuses and audits).
    assert!(engine.resolve_cached(rita, &web, &prod, None).is_none());
    assert!(engine.resolve_cached(nobody, &web, &prod, None).is_none());
    assert!(engine.resolve(nobody, &web, &prod, At::Latest).is_err());
    // After a commit, the fast path never answers the old value.
    engine.commit(&me, &set(7)).unwrap();
    match engine.resolve_cached(vic, &web, &prod, None) {
        None => {}
        Some(v) => assert_eq!(v.document().unwrap()["n"], 7),
    }
    engine.resolve(vic, &web, &prod, At::Latest).unwrap();
    let v = engine.resolve_cached(vic, &web, &prod, None).unwrap();
    assert_eq!(v.document().unwrap()["n"], 7);
    assert_eq!(v.revision, engine.revision().unwrap());
}

#[test]
fn the_fast_path_stays_off_when_every_read_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = confstrata_host::open_with(
        &dir.path().join("data"),
        &confstrata_host::OpenOptions {
            audit_reads: true,
            ..Default::default()
        },
    )
    .unwrap();
    let me = Caller::local("test");
    engine
        .commit(
            &me,
            &cs(json!({"ops": [
                {"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults"]}},
                {"op": "put", "namespace": "web", "layer": "defaults", "document": {"n": 1}},
            ]})),
        )
        .unwrap();
    let web = "web".parse().unwrap();
    let none = confstrata_core::Context::new();
    engine.resolve(&me, &web, &none, At::Latest).unwrap();
    assert!(engine.resolve_cached(&me, &web, &none, None).is_none());
}

#[test]
fn a_section_is_the_same_from_the_cache_the_store_and_the_past() {
    let (_dir, engine, me) = engine();
    engine
        .commit(
            &me,
            &cs(json!({"ops": [
                {"op": "put", "namespace": "web", "layer": "defaults", "document": {
                    "db": {"host": "a", "pool": {"max": 5, "min": 1}}, "log": "info"}},
                {"op": "set", "namespace": "web", "layer": "env/prod", "key": "db.pool.max", "value": 50},
            ]})),
        )
        .unwrap();
    let web = "web".parse().unwrap();
    let prod = parse_context("env=prod").unwrap();
    let pool: confstrata_core::KeyPath = "db.pool".parse().unwrap();
    let expected = json!({"db": {"pool": {"max": 50, "min": 1}}});
    // Nothing cached yet: the fast path declines.
    assert!(
        engine
            .resolve_cached(&me, &web, &prod, Some(&pool))
            .is_none()
    );
    // A miss merges the whole context and caches it.
    let miss = engine
        .resolve_section(&me, &web, &prod, Some(&pool), At::Latest)
        .unwrap();
    assert_eq!(Value::Object(miss.document.clone()), expected);
    let keys: Vec<String> = miss.provenance.iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(keys, ["db.pool.max", "db.pool.min"]);
    assert_eq!(miss.provenance[0].1.layer.as_str(), "env/prod");
    // The whole view was cached by that miss; sections are cut from it,
    // on the fast path too, whatever their depth.
    for (section, want) in [
        (
            "db",
            json!({"db": {"host": "a", "pool": {"max": 50, "min": 1}}}),
        ),
        ("log", json!({"log": "info"})),
        ("db.pool.max", json!({"db": {"pool": {"max": 50}}})),
        ("nope", json!({})),
        ("db.nope", json!({})),
        ("log.deeper", json!({})),
    ] {
        let key: confstrata_core::KeyPath = section.parse().unwrap();
        let fast = engine.resolve_cached(&me, &web, &prod, Some(&key)).unwrap();
        assert_eq!(
            confstrata_core::serde_json::from_str::<Value>(&fast.json).unwrap(),
            want,
            "{section}"
        );
        let slow = engine
            .resolve_section(&me, &web, &prod, Some(&key), At::Latest)
            .unwrap();
        assert_eq!(Value::Object(slow.document), want, "{section}");
    }
    let hit = engine
        .resolve_section(&me, &web, &prod, Some(&pool), At::Latest)
        .unwrap();
    assert_eq!(hit.document, miss.document);
    assert_eq!(hit.provenance, miss.provenance);
    let fast = engine
        .resolve_cached(&me, &web, &prod, Some(&pool))
        .unwrap();
    assert_eq!(
        confstrata_core::serde_json::from_str::<Value>(&fast.json).unwrap(),
        expected
    );
    // In the past too; and a section that is not there is empty.
    let past = engine
        .resolve_section(
            &me,
            &web,
            &prod,
            Some(&pool),
            At::Revision(engine.revision().unwrap()),
        )
        .unwrap();
    assert_eq!(past.document, miss.document);
    let nothing: confstrata_core::KeyPath = "db.host.port".parse().unwrap();
    let empty = engine
        .resolve_section(&me, &web, &prod, Some(&nothing), At::Latest)
        .unwrap();
    assert!(empty.document.is_empty() && empty.provenance.is_empty());
}

#[test]
fn stage_timings_count_what_ran_and_need_audit() {
    let (_dir, engine, me) = engine();
    let web = "web".parse().unwrap();
    let prod = parse_context("env=prod").unwrap();
    let before = engine.stats(&me).unwrap();
    let count = |s: &confstrata_engine::EngineStats, stage: &str| {
        s.timings
            .stages
            .iter()
            .find(|t| t.stage == stage)
            .unwrap()
            .count
    };
    engine.resolve(&me, &web, &prod, At::Latest).unwrap();
    engine.resolve(&me, &web, &prod, At::Latest).unwrap();
    engine.commit(&me, &set(3)).unwrap();
    let after = engine.stats(&me).unwrap();
    assert_eq!(
        count(&after, "resolve") - count(&before, "resolve"),
        1,
        "one miss"
    );
    assert_eq!(
        count(&after, "cache-lookup") - count(&before, "cache-lookup"),
        2
    );
    assert_eq!(count(&after, "commit") - count(&before, "commit"), 1);
    assert!(count(&after, "fsync") > count(&before, "fsync"));
    assert!(after.timings.batched_jobs > before.timings.batched_jobs);
    assert_eq!(after.cache.hits - before.cache.hits, 1);
    assert!(after.cache.bytes > 0 && after.cache.entries >= 1);
    let p = after
        .timings
        .stages
        .iter()
        .find(|t| t.stage == "commit")
        .unwrap();
    assert!(
        p.p50_seconds > 0.0 && p.p50_seconds <= p.p99_seconds,
        "{p:?}"
    );
    // A viewer may not see them.
    let vic = &callers(&engine, &me, &[("vic", "viewer")])[0];
    assert!(matches!(
        engine.stats(vic),
        Err(confstrata_core::Error::PermissionDenied { .. })
    ));
}
