//! The validation chain on the commit path, over the real SQLite store and
//! the shipped example (`examples/validated`): every stage refuses what it
//! should, nothing is committed on a refusal, dry runs and `validate` report
//! the same findings, and only the affected contexts are checked.

use std::path::{Path, PathBuf};

use confstrata_core::serde_json::{Value, json};
use confstrata_core::{ChangeSet, Error, Finding, NamespaceSpec, Op, Severity, format};
use confstrata_engine::{Caller, Engine, Route};

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
    let engine = confstrata_host::open(&dir.path().join("data")).unwrap();
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
        .map(|f| (f.stage.to_string(), f.rule.clone(), f.key.clone()))
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
            && f.stage == confstrata_core::Stage::Cross
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
    let engine = confstrata_host::open(&dir.path().join("data")).unwrap();
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
    let engine = confstrata_host::open(&dir.path().join("data")).unwrap();
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

/// `submit`, which must queue the commit, waiting for its callback. A dry
/// run first builds the index of chains if a declaration cleared it: the
/// async path never reads the store to build it (it declines instead).
fn commit_async(engine: &Engine, me: &Caller, changes: &ChangeSet) -> confstrata_core::Result<u64> {
    engine.dry_run(me, changes)?;
    let (tx, rx) = std::sync::mpsc::channel();
    let route = engine.submit(me, changes.clone(), Box::new(move |r| tx.send(r).unwrap()));
    assert!(matches!(route, Route::Queued), "the async path declined");
    rx.recv().unwrap().map(|i| i.revision)
}

/// Whether `submit` sends a commit to the blocking path (the commit is not run).
fn declined(engine: &Engine, me: &Caller, changes: &ChangeSet) -> bool {
    matches!(
        engine.submit(me, changes.clone(), Box::new(|_| panic!("not called"))),
        Route::Blocking(_)
    )
}

/// A change a chain must check never validates on an async thread or in
/// the store's writer (issue 12, item 7): the async path hands it back, and
/// the blocking path validates it, with the same findings. A change no
/// chain reads is committed on the async path and read back.
#[test]
fn async_commits_leave_validation_to_the_blocking_path() {
    let (_dir, engine, me) = engine();
    let before = engine.revision().unwrap();
    assert!(
        declined(&engine, &me, &bad_change()),
        "a validated change is handed back"
    );
    assert!(matches!(
        engine.commit(&me, &bad_change()).unwrap_err(),
        Error::Validation { .. }
    ));
    assert_eq!(engine.revision().unwrap(), before, "nothing was committed");
    engine
        .commit(
            &me,
            &cs(json!({"ops": [
                {"op": "put-namespace", "spec": {"name": "plain", "levels": ["defaults"]}},
            ]})),
        )
        .unwrap();
    let good = cs(
        json!({"ops": [{"op": "set", "namespace": "plain", "layer": "defaults",
        "key": "note", "value": "async"}]}),
    );
    let rev = commit_async(&engine, &me, &good).unwrap();
    assert_eq!(rev, before + 2);
    let view = engine
        .resolve(
            &me,
            &"plain".parse().unwrap(),
            &Default::default(),
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
        declined(&engine, &me, &declares),
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
        declined(&engine, &vic, &change),
        "a refusal is audited on the blocking path"
    );
    let refused = engine.commit(&vic, &change).unwrap_err();
    assert!(refused.to_string().contains("vic"), "{refused}");
}

/// Issue 12, item 7: a commit held inside its validation makes only the
/// commits whose outcome can depend on it wait. Unrelated commits (plain,
/// validated, declarations) finish meanwhile; a commit to the namespace
/// being checked, or to one whose rules read it, lands after it.
#[test]
fn a_validation_holds_only_the_commits_that_depend_on_it() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, mpsc};
    use std::time::Duration;

    let (_dir, engine, admin) = engine();
    let chain = |ns: &str, check: &str| {
        json!({"op": "put-namespace", "spec": {"name": ns, "levels": ["defaults"],
            "validation": {"rules": [{"id": "r", "check": check}]}}})
    };
    let put = |ns: &str, n: i64| json!({"op": "put", "namespace": ns, "layer": "defaults", "document": {"n": n}});
    engine
        .commit(
            &admin,
            &cs(json!({"ops": [
                chain("slow", "cfg.n < 100"), put("slow", 1),
                chain("reader", "cfg.n <= config(\"slow\").n"), put("reader", 1),
                chain("other", "cfg.n < 100"), put("other", 1),
                {"op": "put-namespace", "spec": {"name": "plain", "levels": ["defaults"]}},
                put("plain", 1),
            ]})),
        )
        .unwrap();

    // The first validation after this waits until released.
    let (entered_tx, entered) = mpsc::channel::<()>();
    let (release, released) = mpsc::channel::<()>();
    let released = Mutex::new(released);
    let first = AtomicBool::new(true);
    let entered_tx = Mutex::new(entered_tx);
    engine.set_validation_hook(Some(Arc::new(move || {
        if first.swap(false, Ordering::SeqCst) {
            entered_tx.lock().unwrap().send(()).unwrap();
            released.lock().unwrap().recv().unwrap();
        }
    })));
    // A hang guard only: a commit that waits for the held one never comes back.
    let guard = Duration::from_secs(120);
    let commit = |changes: Value| {
        let (engine, admin) = (engine.clone(), admin.clone());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(engine.commit(&admin, &cs(changes)));
        });
        rx
    };

    let held = commit(
        json!({"ops": [{"op": "set", "namespace": "slow", "layer": "defaults", "key": "n", "value": 2}]}),
    );
    entered
        .recv_timeout(guard)
        .expect("the held commit never validated");

    // Unrelated commits finish while it is held.
    for changes in [
        json!({"ops": [{"op": "set", "namespace": "plain", "layer": "defaults", "key": "n", "value": 2}]}),
        json!({"ops": [{"op": "set", "namespace": "other", "layer": "defaults", "key": "n", "value": 2}]}),
        json!({"ops": [chain("fresh", "cfg.n < 5"), put("fresh", 1)]}),
        json!({"ops": [chain("other", "cfg.n < 50")]}),
    ] {
        let r = commit(changes.clone())
            .recv_timeout(guard)
            .unwrap_or_else(|_| panic!("{changes} waited for an unrelated validation"));
        r.unwrap();
    }

    // Dependent commits wait: they land after the held one.
    let same = commit(
        json!({"ops": [{"op": "set", "namespace": "slow", "layer": "defaults", "key": "n", "value": 3}]}),
    );
    let reading = commit(
        json!({"ops": [{"op": "set", "namespace": "reader", "layer": "defaults", "key": "n", "value": 2}]}),
    );
    release.send(()).unwrap();
    let held = held.recv_timeout(guard).unwrap().unwrap();
    let same = same.recv_timeout(guard).unwrap().unwrap();
    let reading = reading.recv_timeout(guard).unwrap().unwrap();
    assert!(
        same.revision > held.revision,
        "{same:?} landed before {held:?}"
    );
    assert!(
        reading.revision > held.revision,
        "{reading:?} landed before {held:?}"
    );
    engine.set_validation_hook(None);
}

/// Issue 12, item 8: a whole validation has a budget. Past it the change
/// (a declaration, a commit) is refused with a finding that names the
/// slowest rule and its context and how much was checked; `validate` says
/// the same. A budget of zero makes this deterministic: the first context
/// runs with its deadline already passed.
#[test]
fn a_validation_over_its_budget_is_refused_naming_the_slowest_rule() {
    let (_dir, engine, admin) = engine();
    let before = engine.revision().unwrap();
    let heavy = json!({"op": "put-namespace", "spec": {"name": "heavy",
        "levels": ["defaults", "env/{env}"], "matrix": {"env": ["a", "b", "c"]},
        "validation": {"rules": [{"id": "spin", "check": "let x = 0; loop { x += 1; }"}]}}});
    engine.set_validation_budget(std::time::Duration::ZERO);
    let budget_finding = |e: Error| -> Finding {
        let Error::Validation { findings } = e else {
            panic!("{e}");
        };
        findings
            .into_iter()
            .find(|f| f.rule == "validation-budget")
            .expect("a budget finding")
    };
    let f = budget_finding(
        engine
            .commit(&admin, &cs(json!({"ops": [heavy]})))
            .unwrap_err(),
    );
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.namespace, "heavy");
    for needle in [
        "budget of 0 ms",
        "1 of 3 contexts",
        "rule \"spin\" in env=a",
        "validation_budget_ms",
    ] {
        assert!(f.message.contains(needle), "{needle}: {}", f.message);
    }
    assert_eq!(engine.revision().unwrap(), before, "nothing was committed");

    // With a budget it fits, the same declaration is checked in full (and
    // refused by its rule, which never ends): only the rule's own limit.
    engine.set_validation_budget(std::time::Duration::from_secs(60));
    let Error::Validation { findings } = engine
        .commit(&admin, &cs(json!({"ops": [heavy]})))
        .unwrap_err()
    else {
        panic!()
    };
    assert_eq!(findings.len(), 3, "{findings:#?}");
    assert!(findings.iter().all(|f| f.rule == "spin"), "{findings:#?}");

    // A cheap chain is declared; with no budget left, a commit to it and
    // `validate` are stopped the same way.
    engine
        .commit(
            &admin,
            &cs(
                json!({"ops": [{"op": "put-namespace", "spec": {"name": "cheap",
                "levels": ["defaults", "env/{env}"], "matrix": {"env": ["a", "b"]},
                "validation": {"rules": [{"id": "small", "check": "cfg.n < 10"}]}}},
                {"op": "put", "namespace": "cheap", "layer": "defaults", "document": {"n": 1}}]}),
            ),
        )
        .unwrap();
    engine.set_validation_budget(std::time::Duration::ZERO);
    let f = budget_finding(
        engine
            .commit(
                &admin,
                &cs(json!({"ops": [{"op": "set", "namespace": "cheap", "layer": "defaults", "key": "n", "value": 2}]})),
            )
            .unwrap_err(),
    );
    assert!(f.message.contains("1 of 2 contexts"), "{}", f.message);
    let findings = engine
        .validate(&admin, Some(&"cheap".parse().unwrap()))
        .unwrap();
    assert!(
        findings.iter().any(|f| f.rule == "validation-budget"),
        "{findings:#?}"
    );
}

/// A declaration that removes a chain (so no chain runs on it) still
/// refreshes which namespaces are read: commits to what it used to read
/// are plain commits again, and take the async path.
#[test]
fn removing_a_chain_frees_what_it_read() {
    let (_dir, engine, me) = engine();
    engine
        .commit(
            &me,
            &cs(json!({"ops": [
                {"op": "put-namespace", "spec": {"name": "src", "levels": ["defaults"]}},
                {"op": "put", "namespace": "src", "layer": "defaults", "document": {"n": 1}},
                {"op": "put-namespace", "spec": {"name": "z", "levels": ["defaults"],
                    "validation": {"rules": [{"id": "r", "check": "config(\"src\").n < 10"}]}}},
            ]})),
        )
        .unwrap();
    let change = cs(
        json!({"ops": [{"op": "set", "namespace": "src", "layer": "defaults", "key": "n", "value": 2}]}),
    );
    assert!(
        declined(&engine, &me, &change),
        "z's rules read src: validated, on the blocking path"
    );
    engine
        .commit(
            &me,
            &cs(json!({"ops": [{"op": "put-namespace", "spec": {"name": "z", "levels": ["defaults"]}}]})),
        )
        .unwrap();
    assert!(
        declined(&engine, &me, &change),
        "the declaration cleared the index of chains: rebuilding it reads the store, \
         which the async path never does"
    );
    let rev = commit_async(&engine, &me, &change).unwrap();
    assert_eq!(rev, engine.revision().unwrap());
}
