//! Generators declared on a namespace, through the engine over the real
//! SQLite store: they compute layer values per context of the matrix
//! (reading a platform namespace through the caller's grants), their
//! output is an ordinary change set that writes only what differs (run
//! twice, the second writes nothing), `explain` names the generator of a
//! value and says when a layer overrides it, and bad declarations, bombs,
//! secrets and races are refused with nothing written.

use confstrata_core::serde_json::{Value, json};
use confstrata_core::{At, Error, KeyPath, NamespaceName, Op};

use crate::scoped::with_role;
use crate::security::{World, cs, prod, world};

fn name(s: &str) -> NamespaceName {
    s.parse().unwrap()
}

/// `platform` admits connections per env; `web` declares two generators:
/// replicas by env, and a pool a tenth of the platform's connections.
fn generating_world() -> World {
    let w = world();
    w.engine
        .commit(
            &w.admin,
            &cs(json!({"message": "platform and web", "ops": [
                {"op": "put-namespace", "spec": {"name": "platform", "levels": ["defaults", "env/{env}"],
                    "matrix": {"env": ["staging", "prod"]}}},
                {"op": "put", "namespace": "platform", "layer": "defaults",
                 "document": {"postgres": {"max_connections": 50}}},
                {"op": "set", "namespace": "platform", "layer": "env/prod",
                 "key": "postgres.max_connections", "value": 200},
                {"op": "put-namespace", "spec": web_spec(GENERATORS.clone())},
                {"op": "put", "namespace": "web", "layer": "defaults", "document": {"port": 8080}},
                {"op": "set", "namespace": "web", "layer": "env/prod", "key": "log.level", "value": "warn"},
            ]})),
        )
        .unwrap();
    w
}

static GENERATORS: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
    json!([
        {"id": "replicas", "level": "env/{env}", "description": "replicas by env",
         "script": "#{replicas: if ctx.env == \"prod\" { 6 } else { 2 }}"},
        {"id": "pool", "level": "env/{env}", "reads": ["platform"],
         "script": "let p = config(\"platform\"); #{db: #{pool: p.postgres.max_connections / 10}}"},
    ])
});

fn web_spec(generators: Value) -> Value {
    json!({"name": "web", "levels": ["defaults", "env/{env}"],
        "matrix": {"env": ["staging", "prod"]}, "generators": generators})
}

fn value_at(w: &World, layer: &str, key: &str) -> Option<Value> {
    let l = w
        .engine
        .layer(&w.admin, &name("web"), &layer.parse().unwrap(), At::Latest)
        .ok()?;
    confstrata_core::doc::get(&l.document, &KeyPath::parse(key).unwrap()).cloned()
}

fn op_targets(ops: &[Op]) -> Vec<String> {
    ops.iter()
        .map(|op| match op {
            Op::Set {
                layer, key, value, ..
            } => format!("set {layer} {key}={value}"),
            Op::Put {
                layer, document, ..
            } => format!("put {layer} {}", Value::Object(document.clone())),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn generators_write_only_what_differs_and_a_second_run_writes_nothing() {
    let w = generating_world();
    let (e, web) = (&w.engine, name("web"));

    let plan = e.generate_plan(&w.admin, &web, "", None).unwrap();
    let mut by_layer: Vec<(String, String, Value)> = plan
        .generated
        .iter()
        .map(|g| {
            (
                g.layer.to_string(),
                g.generator.clone(),
                Value::Object(g.document.clone()),
            )
        })
        .collect();
    by_layer.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    assert_eq!(
        by_layer,
        vec![
            (
                "env/prod".into(),
                "pool".into(),
                json!({"db": {"pool": 20}})
            ),
            ("env/prod".into(), "replicas".into(), json!({"replicas": 6})),
            (
                "env/staging".into(),
                "pool".into(),
                json!({"db": {"pool": 5}})
            ),
            (
                "env/staging".into(),
                "replicas".into(),
                json!({"replicas": 2})
            ),
        ]
    );
    // env/prod exists (log.level): a set per key, the first holding the
    // revision it was read at; env/staging does not: one put, expecting none.
    assert_eq!(
        op_targets(&plan.change_set.ops),
        vec![
            "set env/prod db.pool=20",
            "set env/prod replicas=6",
            r#"put env/staging {"db":{"pool":5},"replicas":2}"#,
        ]
    );
    let expects: Vec<Option<u64>> = plan
        .change_set
        .ops
        .iter()
        .map(|op| match op {
            Op::Set {
                expect_revision, ..
            }
            | Op::Put {
                expect_revision, ..
            } => *expect_revision,
            _ => None,
        })
        .collect();
    assert_eq!(expects, vec![Some(plan.revision), None, Some(0)]);

    let (_, done) = e
        .generate_apply(&w.admin, &web, true, "", Some("gen".into()))
        .unwrap();
    assert!(done.is_some());
    assert_eq!(value_at(&w, "env/prod", "replicas"), Some(json!(6)));
    assert_eq!(value_at(&w, "env/prod", "log.level"), Some(json!("warn")));
    assert_eq!(value_at(&w, "env/staging", "db.pool"), Some(json!(5)));

    // Run again: the layers hold it, nothing is written.
    let before = e.history(&w.admin, &web, None, 100).unwrap().len();
    let (plan, done) = e.generate_apply(&w.admin, &web, true, "", None).unwrap();
    assert!(plan.change_set.ops.is_empty() && done.is_none());
    assert_eq!(e.history(&w.admin, &web, None, 100).unwrap().len(), before);

    // The platform admits fewer connections in prod: one key changes.
    e.commit(
        &w.admin,
        &cs(
            json!({"ops": [{"op": "set", "namespace": "platform", "layer": "env/prod",
            "key": "postgres.max_connections", "value": 120}]}),
        ),
    )
    .unwrap();
    let plan = e.generate_plan(&w.admin, &web, "", None).unwrap();
    assert_eq!(
        op_targets(&plan.change_set.ops),
        vec!["set env/prod db.pool=12"]
    );
}

#[test]
fn explain_names_the_generator_and_sees_an_override() {
    let w = generating_world();
    let (e, web) = (&w.engine, name("web"));
    e.generate_apply(&w.admin, &web, true, "", None).unwrap();
    let origin = |w: &World| {
        let x = w
            .engine
            .explain(
                &w.admin,
                &web,
                &prod(),
                &KeyPath::parse("replicas").unwrap(),
                At::Latest,
            )
            .unwrap();
        let entry = x
            .explanation
            .entries
            .iter()
            .find(|en| en.layer.to_string() == "env/prod")
            .unwrap()
            .clone();
        entry.origin.unwrap()
    };
    let o = origin(&w);
    assert_eq!(
        (
            o.template,
            o.generator.as_deref(),
            o.template_value,
            o.overridden
        ),
        (None, Some("replicas"), Some(json!(6)), false)
    );
    // A local edit of a generated key: explain says it overrides the
    // generator; generate would set it back (the generator is its source).
    e.commit(
        &w.admin,
        &cs(json!({"ops": [{"op": "set", "namespace": "web", "layer": "env/prod", "key": "replicas", "value": 9}]})),
    )
    .unwrap();
    let o = origin(&w);
    assert!(o.overridden);
    assert_eq!(o.template_value, Some(json!(6)));
    let plan = e.generate_plan(&w.admin, &web, "", None).unwrap();
    assert_eq!(
        op_targets(&plan.change_set.ops),
        vec!["set env/prod replicas=6"]
    );
}

#[test]
fn bad_generator_declarations_are_refused_when_declared() {
    let w = world();
    let declare = |generators: Value| {
        w.engine
            .commit(
                &w.admin,
                &cs(json!({"ops": [{"op": "put-namespace", "spec": web_spec(generators)}]})),
            )
            .unwrap_err()
            .to_string()
    };
    let cases = [
        (
            json!([{"id": "g", "level": "env/{env}", "script": "let p = config(\"platform\"); #{}"}]),
            "which it does not declare: add it to reads",
        ),
        (
            json!([{"id": "g", "level": "env/{env}", "reads": ["platform"], "script": "#{}"}]),
            "never calls config(\"platform\")",
        ),
        (
            json!([{"id": "g", "level": "region/{region}", "script": "#{}"}]),
            "is not one of the namespace's levels",
        ),
        (
            json!([{"id": "g", "level": "env/{env}", "script": "#{a: "}]),
            "generator \"g\"",
        ),
        (
            json!([{"id": "g", "level": "env/{env}", "script": "#{}"},
                   {"id": "g", "level": "defaults", "script": "#{}"}]),
            "declared twice",
        ),
        (
            json!([{"id": "", "level": "env/{env}", "script": "#{}"}]),
            "must be non-empty",
        ),
        (
            json!([{"id": "g", "level": "env/{env}", "reads": ["Not A Name"], "script": "#{}"}]),
            "reads[0]",
        ),
    ];
    for (generators, expected) in cases {
        let err = declare(generators.clone());
        assert!(err.contains(expected), "{generators}: {err}");
    }
    assert!(matches!(
        w.engine.namespace(&w.admin, &name("web"), At::Latest),
        Err(Error::NamespaceNotFound { .. })
    ));
}

#[test]
fn bombs_secrets_and_missing_grants_are_refused_and_write_nothing() {
    let w = generating_world();
    let (e, web) = (&w.engine, name("web"));
    let redeclare = |generators: Value| {
        e.commit(
            &w.admin,
            &cs(json!({"ops": [{"op": "put-namespace", "spec": web_spec(generators)}]})),
        )
        .unwrap();
    };
    // Refused, and nothing written.
    let refused = |caller: &confstrata_engine::Caller| {
        let before = e.revision().unwrap();
        let err = e
            .generate_apply(caller, &web, true, "", None)
            .unwrap_err()
            .to_string();
        assert_eq!(e.revision().unwrap(), before, "{err}");
        err
    };

    // A namespace with no generators.
    let err = e
        .generate_apply(&w.admin, &name("platform"), true, "", None)
        .unwrap_err();
    assert!(err.to_string().contains("declares no generators"), "{err}");

    // A reader of web without read on platform: refused as the read it is.
    let svc = with_role(&w, "svc", &[("allow", &["read", "write"], "web")]);
    assert!(refused(&svc).contains("permission denied"));
    // A viewer may read both but not write.
    let viewer = w.user("vic", &["viewer"]);
    assert!(refused(&viewer).contains("permission denied"));

    // An infinite loop and a huge output are stopped as the rules are.
    redeclare(json!([{"id": "spin", "level": "env/{env}", "script": "loop { } #{}"}]));
    let err = refused(&w.admin);
    assert!(err.contains("generator \"spin\""), "{err}");
    redeclare(json!([{"id": "big", "level": "env/{env}",
        "script": "let m = #{}; for i in 0..1000000 { m[`k${i}`] = i; } m"}]));
    let err = refused(&w.admin);
    assert!(err.contains("generator \"big\""), "{err}");

    // A key the secret rule seals, and a key holding a sealed value.
    redeclare(json!([{"id": "pw", "level": "env/{env}", "script": "#{db: #{password: \"x\"}}"}]));
    let err = refused(&w.admin);
    assert!(
        err.contains("db.password") && err.contains("secret rule"),
        "{err}"
    );
    e.commit(
        &w.admin,
        &cs(
            json!({"ops": [{"op": "set", "namespace": "web", "layer": "env/prod", "key": "api.key",
            "value": "canary-gen-7", "secret": true}]}),
        ),
    )
    .unwrap();
    redeclare(json!([{"id": "over", "level": "env/{env}", "script": "#{api: #{key: \"plain\"}}"}]));
    let err = refused(&w.admin);
    assert!(err.contains("api.key") && err.contains("sealed"), "{err}");
    assert!(!err.contains("canary"), "{err}");
}

#[test]
fn a_layer_changed_after_the_plan_makes_its_commit_a_conflict() {
    let w = generating_world();
    let (e, web) = (&w.engine, name("web"));
    let plan = e.generate_plan(&w.admin, &web, "", None).unwrap();
    e.commit(
        &w.admin,
        &cs(json!({"ops": [{"op": "set", "namespace": "web", "layer": "env/prod", "key": "replicas", "value": 3}]})),
    )
    .unwrap();
    let err = e.commit(&w.admin, &plan.change_set).unwrap_err();
    assert_eq!(err.kind(), confstrata_core::ErrorKind::Conflict, "{err}");
    assert_eq!(value_at(&w, "env/prod", "replicas"), Some(json!(3)));
}
