//! The validation chain on the commit path, over the real SQLite store and
//! the shipped example (`examples/validated`): every stage refuses what it
//! should, nothing is committed on a refusal, dry runs and `validate` report
//! the same findings, and only the affected contexts are checked.

use std::path::{Path, PathBuf};

use confstrata_core::serde_json::{Value, json};
use confstrata_core::{ChangeSet, Error, Finding, NamespaceSpec, Op, Severity, format};
use confstrata_engine::{Caller, Engine};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/validated")
}

fn cs(v: Value) -> ChangeSet {
    confstrata_core::serde_json::from_value(v).unwrap()
}

/// One namespace directory of the example as a change set (what `import` does).
fn import(dir: &Path) -> ChangeSet {
    let spec_text = std::fs::read(dir.join("namespace.toml")).unwrap();
    let spec_doc = format::parse(
        &spec_text,
        format::Format::Toml,
        "namespace.toml",
        &Default::default(),
    )
    .unwrap();
    let spec: NamespaceSpec =
        confstrata_core::serde_json::from_value(Value::Object(spec_doc)).unwrap();
    let mut ops = vec![Op::PutNamespace {
        spec,
        expect_revision: None,
    }];
    let name = dir.file_name().unwrap().to_str().unwrap();
    for (layer, file) in [
        ("defaults", "layers/defaults.toml"),
        ("env/prod", "layers/env/prod.toml"),
    ] {
        let text = std::fs::read(dir.join(file)).unwrap();
        let document =
            format::parse(&text, format::Format::Toml, file, &Default::default()).unwrap();
        ops.push(Op::Put {
            namespace: name.parse().unwrap(),
            layer: layer.parse().unwrap(),
            document,
            expect_revision: None,
        });
    }
    ChangeSet {
        author: "test".into(),
        message: format!("import {name}"),
        ops,
    }
}

fn engine() -> (tempfile::TempDir, Engine, Caller) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(&dir.path().join("data")).unwrap();
    let me = Caller::local("test");
    engine
        .commit(&me, &import(&examples().join("platform")))
        .unwrap();
    engine
        .commit(&me, &import(&examples().join("orders")))
        .unwrap();
    (dir, engine, me)
}

fn bad_change() -> ChangeSet {
    let text = std::fs::read(examples().join("bad-change.toml")).unwrap();
    let doc = format::parse(
        &text,
        format::Format::Toml,
        "bad-change.toml",
        &Default::default(),
    )
    .unwrap();
    confstrata_core::serde_json::from_value(Value::Object(doc)).unwrap()
}

fn errors(findings: &[Finding]) -> Vec<(String, String, Option<String>)> {
    let mut v: Vec<_> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| (f.stage.clone(), f.rule.clone(), f.key.clone()))
        .collect();
    v.sort();
    v
}

#[test]
fn the_example_is_valid_and_the_bad_change_fails_every_stage() {
    let (_dir, engine, me) = engine();
    let all = engine.validate(&me, None).unwrap();
    assert!(
        all.iter().all(|f| f.severity == Severity::Warning),
        "{all:#?}"
    );
    let before = engine.revision().unwrap();
    let err = engine.commit(&me, &bad_change()).unwrap_err();
    let Error::Validation { findings } = &err else {
        panic!("{err}");
    };
    assert_eq!(engine.revision().unwrap(), before, "nothing was committed");
    let stages: std::collections::BTreeSet<&str> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.stage.as_str())
        .collect();
    assert_eq!(
        stages.into_iter().collect::<Vec<_>>(),
        ["cross", "rule", "schema", "validator"],
        "{findings:#?}"
    );
    for f in findings {
        assert_eq!(f.namespace, "orders");
        assert_eq!(
            f.context.get("env").map(String::as_str),
            Some("prod"),
            "{f}"
        );
    }
    let text = err.to_string();
    assert!(text.starts_with("validation failed with"), "{text}");
    // The dry run reports the same errors, and commits nothing either.
    let d = engine.dry_run(&me, &bad_change()).unwrap();
    assert_eq!(errors(&d.findings), errors(findings));
    assert_eq!(engine.revision().unwrap(), before);
}

#[test]
fn only_affected_contexts_are_checked_and_dependents_too() {
    let (_dir, engine, me) = engine();
    // A bad value in env/prod is found in env=prod only.
    let d = engine
        .dry_run(
            &me,
            &cs(json!({"ops": [{"op": "set", "namespace": "orders", "layer": "env/prod", "key": "replicas", "value": 1}]})),
        )
        .unwrap();
    let ctxs: Vec<&str> = d
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.context["env"].as_str())
        .collect();
    assert_eq!(ctxs, ["prod"], "{:#?}", d.findings);
    // Shrinking platform's budget breaks orders' cross-namespace rule: the
    // change to platform is refused because of orders.
    let err = engine
        .commit(
            &me,
            &cs(json!({"ops": [{"op": "set", "namespace": "platform", "layer": "env/prod", "key": "postgres.max_connections", "value": 100}]})),
        )
        .unwrap_err();
    let Error::Validation { findings } = err else {
        panic!("{err}")
    };
    assert!(
        findings.iter().any(|f| f.namespace == "orders"
            && f.stage == "cross"
            && f.rule == "pool-within-platform-budget"),
        "{findings:#?}"
    );
    // A good change passes and commits.
    engine
        .commit(
            &me,
            &cs(json!({"ops": [{"op": "set", "namespace": "orders", "layer": "env/prod", "key": "replicas", "value": 3}]})),
        )
        .unwrap();
}

#[test]
fn rules_change_with_change_sets_and_bad_rules_are_refused_when_declared() {
    let (_dir, engine, me) = engine();
    let spec = |check: &str| {
        cs(json!({"ops": [{"op": "put-namespace", "spec": {
            "name": "tiny", "levels": ["defaults"],
            "validation": {"rules": [{"id": "r1", "check": check, "message": "nope"}]}
        }}]}))
    };
    // A rule that does not compile: refused, naming the rule.
    let err = engine.commit(&me, &spec("cfg.a ++ ")).unwrap_err();
    assert!(err.to_string().contains("r1"), "{err}");
    // A rule that compiles, then a layer that breaks it, then a rule change
    // and the layer in one change set: checked against the new rule.
    // (A chain is checked when declared: with no layer yet, `cfg.a` is a
    // script error, so the first layer comes in the same change set.)
    let mut first = spec("cfg.a == 1");
    first.ops.push(
        cs(json!({"ops": [{"op": "put", "namespace": "tiny", "layer": "defaults", "document": {"a": 1}}]}))
            .ops
            .remove(0),
    );
    let e = engine.commit(&me, &spec("cfg.a == 1")).unwrap_err();
    assert!(e.to_string().contains("no key"), "{e}");
    engine.commit(&me, &first).unwrap();
    let bad = cs(
        json!({"ops": [{"op": "put", "namespace": "tiny", "layer": "defaults", "document": {"a": 2}}]}),
    );
    assert!(matches!(
        engine.commit(&me, &bad),
        Err(Error::Validation { .. })
    ));
    let mut both = spec("cfg.a == 2");
    both.ops.extend(bad.ops.clone());
    engine.commit(&me, &both).unwrap();
    // A rule that loops forever is stopped and reported, and the engine goes on.
    let err = engine.commit(&me, &spec("loop { }")).unwrap_err();
    assert!(err.to_string().contains("r1"), "{err}");
    engine.validate(&me, None).unwrap();
}

#[test]
fn the_user_library_is_shared_versioned_and_checked() {
    let (_dir, engine, me) = engine();
    let library = |max: u64| {
        cs(
            json!({"message": "library", "ops": [{"op": "put-namespace", "spec": {
            "name": confstrata_engine::LIBRARY_NAMESPACE, "levels": ["defaults"],
            "validation": {
                "schema": {"$defs": {"team-port": {"type": "integer", "minimum": 10000, "maximum": max,
                                                     "description": "ports our team may use"}}},
                "validators": [{"name": "is_even", "body": "value % 2 == 0", "description": "must be even"}]
            }}}]}),
        )
    };
    engine.commit(&me, &library(20000)).unwrap();
    let svc = cs(json!({"ops": [
        {"op": "put-namespace", "spec": {"name": "svc", "levels": ["defaults"],
            "validation": {
                "schema": {"type": "object", "properties": {"port": {"$ref": "confstrata:team-port"}}},
                "rules": [{"id": "even-workers", "check": "is_even(cfg.workers)", "message": "workers must be even"}]
            }}},
        {"op": "put", "namespace": "svc", "layer": "defaults", "document": {"port": 15000, "workers": 4}},
    ]}));
    engine.commit(&me, &svc).unwrap();
    let set = |k: &str, v: Value| {
        cs(
            json!({"ops": [{"op": "set", "namespace": "svc", "layer": "defaults", "key": k, "value": v}]}),
        )
    };
    let Err(Error::Validation { findings }) = engine.commit(&me, &set("port", json!(8080))) else {
        panic!("a port outside the team's range was accepted")
    };
    assert_eq!(findings[0].key.as_deref(), Some("port"), "{findings:#?}");
    let Err(Error::Validation { findings }) = engine.commit(&me, &set("workers", json!(3))) else {
        panic!("odd workers were accepted")
    };
    assert_eq!(findings[0].rule, "even-workers", "{findings:#?}");
    // Narrowing the library would break svc: refused, naming svc.
    let Err(Error::Validation { findings }) = engine.commit(&me, &library(12000)) else {
        panic!("a library change that breaks svc was accepted")
    };
    assert!(
        findings.iter().all(|f| f.namespace == "svc"),
        "{findings:#?}"
    );
    // A library that does not check is refused, naming it.
    let bad = cs(json!({"ops": [{"op": "put-namespace", "spec": {
        "name": confstrata_engine::LIBRARY_NAMESPACE, "levels": ["defaults"],
        "validation": {"schema": {"$defs": {"port": {"type": "integer"}}}}}}]}));
    let e = engine.commit(&me, &bad).unwrap_err();
    assert!(e.to_string().contains("library"), "{e}");
    // The library is versioned like any declaration.
    let h = engine
        .declaration_history(
            &me,
            &confstrata_engine::LIBRARY_NAMESPACE.parse().unwrap(),
            10,
        )
        .unwrap();
    assert_eq!(h.len(), 1, "only the accepted version was committed");
}

#[test]
fn concurrent_writers_never_leave_state_that_a_new_chain_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(&dir.path().join("data")).unwrap();
    let me = Caller::local("test");
    engine
        .commit(
            &me,
            &cs(json!({"ops": [
                {"op": "put-namespace", "spec": {"name": "x", "levels": ["defaults"]}},
                {"op": "put", "namespace": "x", "layer": "defaults", "document": {"a": 1}},
            ]})),
        )
        .unwrap();
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let (engine, me) = (engine.clone(), me.clone());
            std::thread::spawn(move || {
                for i in 0..60u64 {
                    let a = (i * 37 + t * 11) % 200;
                    let _ = engine.commit(
                        &me,
                        &cs(json!({"ops": [{"op": "set", "namespace": "x", "layer": "defaults", "key": "a", "value": a}]})),
                    );
                }
            })
        })
        .collect();
    let declare = cs(json!({"ops": [
        {"op": "put-namespace", "spec": {"name": "x", "levels": ["defaults"],
            "validation": {"rules": [{"id": "small", "check": "cfg.a < 100"}]}}},
        {"op": "set", "namespace": "x", "layer": "defaults", "key": "a", "value": 5},
    ]}));
    // Declared while the writers run (its own write makes it valid).
    engine.commit(&me, &declare).unwrap();
    for w in writers {
        w.join().unwrap();
    }
    let findings = engine.validate(&me, Some(&"x".parse().unwrap())).unwrap();
    assert!(findings.is_empty(), "{findings:#?}");
}

/// Write skew: each change set alone passes the rule, two together do
/// not. However the commits are batched (they share group commits now),
/// each is checked against the state it lands on, so the committed state
/// always passes, and each refusal carries its findings.
#[test]
fn concurrent_validated_commits_each_see_the_state_they_land_on() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(&dir.path().join("data")).unwrap();
    let me = Caller::local("test");
    engine
        .commit(
            &me,
            &cs(json!({"ops": [
                {"op": "put-namespace", "spec": {"name": "budget", "levels": ["defaults", "team/{team}"],
                    "validation": {"rules": [{"id": "total", "message": "too much",
                        "check": "cfg.a + cfg.b <= 10"}]}}},
                {"op": "put", "namespace": "budget", "layer": "defaults", "document": {"a": 0, "b": 0}},
            ]})),
        )
        .unwrap();
    let (ok, refused) = (
        std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
        std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
    );
    let writers: Vec<_> = (0..6u64)
        .map(|t| {
            let (engine, me, ok, refused) = (
                engine.clone(),
                me.clone(),
                std::sync::Arc::clone(&ok),
                std::sync::Arc::clone(&refused),
            );
            std::thread::spawn(move || {
                for i in 0..40u64 {
                    // Half the writers raise a, half raise b; both at 6 is over 10.
                    let key = if t % 2 == 0 { "a" } else { "b" };
                    let value = if i % 2 == 0 { 6 } else { 0 };
                    let r = engine.commit(
                        &me,
                        &cs(
                            json!({"ops": [{"op": "set", "namespace": "budget", "layer": "defaults",
                            "key": key, "value": value}]}),
                        ),
                    );
                    match r {
                        Ok(_) => ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                        Err(Error::Validation { findings }) => {
                            assert!(findings.iter().any(|f| f.rule == "total"));
                            refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                        }
                        Err(e) => panic!("unexpected {e}"),
                    };
                    // After every commit, committed or not, the state passes.
                    let v = engine
                        .resolve(
                            &me,
                            &"budget".parse().unwrap(),
                            &Default::default(),
                            confstrata_core::At::Latest,
                        )
                        .unwrap();
                    let sum = v.document["a"].as_i64().unwrap() + v.document["b"].as_i64().unwrap();
                    assert!(sum <= 10, "committed state {sum} breaks the rule");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let findings = engine
        .validate(&me, Some(&"budget".parse().unwrap()))
        .unwrap();
    assert!(findings.is_empty(), "{findings:#?}");
    let (ok, refused) = (
        ok.load(std::sync::atomic::Ordering::Relaxed),
        refused.load(std::sync::atomic::Ordering::Relaxed),
    );
    assert_eq!(ok + refused, 240);
    assert!(ok > 0, "some commits landed");
}

/// `commit_async`, waiting for its callback.
fn commit_async(engine: &Engine, me: &Caller, changes: &ChangeSet) -> confstrata_core::Result<u64> {
    let (tx, rx) = std::sync::mpsc::channel();
    engine
        .commit_async(me, changes, Box::new(move |r| tx.send(r).unwrap()))
        .unwrap_or_else(|_| panic!("the async path declined"));
    rx.recv().unwrap().map(|i| i.revision)
}

#[test]
fn async_commits_are_validated_audited_and_seen_like_blocking_ones() {
    let (_dir, engine, me) = engine();
    let before = engine.revision().unwrap();
    // Refused by the chain inside the store's transaction, with every finding.
    let err = commit_async(&engine, &me, &bad_change()).unwrap_err();
    let Error::Validation { findings } = &err else {
        panic!("{err}");
    };
    assert_eq!(
        errors(findings),
        errors(match &engine.commit(&me, &bad_change()).unwrap_err() {
            Error::Validation { findings } => findings,
            other => panic!("{other}"),
        })
    );
    assert_eq!(engine.revision().unwrap(), before, "nothing was committed");
    // The refusal is in the audit log, as a failure.
    let records = engine.audit_records(&me, 0, 10_000).unwrap();
    let failed = records
        .iter()
        .filter(|r| format!("{:?}", r.outcome) == "Failed")
        .count();
    assert!(failed >= 2, "both refusals audited: {failed}");
    // A good change lands, and a read after it sees it.
    let good = cs(
        json!({"ops": [{"op": "set", "namespace": "orders", "layer": "defaults",
        "key": "note", "value": "async"}]}),
    );
    let rev = commit_async(&engine, &me, &good).unwrap();
    assert_eq!(rev, before + 1);
    let ctx = confstrata_core::parse_context("env=prod").unwrap();
    let view = engine
        .resolve(
            &me,
            &"orders".parse().unwrap(),
            &ctx,
            confstrata_core::At::Latest,
        )
        .unwrap();
    assert_eq!(view.document["note"], json!("async"));
    assert!(engine.audit_verify(&me).is_ok());
}

#[test]
fn async_commits_decline_what_must_take_the_blocking_path() {
    let (_dir, engine, me) = engine();
    let declares = import(&examples().join("orders"));
    assert!(
        engine
            .commit_async(&me, &declares, Box::new(|_| panic!("not called")))
            .is_err(),
        "a declaration is validated under the exclusive lock"
    );
    engine
        .add_principal(
            &me,
            "vic",
            "vic",
            confstrata_engine::PrincipalKind::User,
            &["viewer".into()],
        )
        .unwrap();
    let token = engine.issue_token(&me, "vic", "t").unwrap();
    let vic = engine
        .authenticate(Some(&format!("Bearer {}", token.expose_secret())), "r")
        .unwrap();
    let change = cs(
        json!({"ops": [{"op": "set", "namespace": "orders", "layer": "defaults",
        "key": "note", "value": "x"}]}),
    );
    assert!(
        engine
            .commit_async(&vic, &change, Box::new(|_| panic!("not called")))
            .is_err(),
        "a refusal is audited on the blocking path"
    );
    let refused = engine.commit(&vic, &change).unwrap_err();
    assert!(refused.to_string().contains("vic"), "{refused}");
}
