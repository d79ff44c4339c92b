//! Namespace imports through the engine, over the real SQLite store: an
//! importer resolves over its imports (provenance naming them), its cached
//! views go stale when an import changes, sealed values of an import open
//! with the import's key for those who may read them, a caller who may
//! not read an import gets the importer without its values, a change to an
//! import is validated against every importer's chain, and a declaration
//! may import only what its author may read.

use confstrata_core::serde_json::{Value, json};
use confstrata_core::{At, Error, KeyPath, NamespaceName, parse_context};

use crate::scoped::with_role;
use crate::security::{World, cs, prod, world};

fn shared_world() -> World {
    let w = world();
    w.engine
        .commit(
            &w.admin,
            &cs(json!({"message": "shared", "ops": [
                {"op": "put-namespace", "spec": {"name": "shared/logging", "levels": ["defaults", "env/{env}"],
                    "matrix": {"env": ["staging", "prod"]}}},
                {"op": "put", "namespace": "shared/logging", "layer": "defaults",
                 "document": {"log": {"level": "info", "format": "json"}}},
                {"op": "set", "namespace": "shared/logging", "layer": "defaults", "key": "log.token",
                 "value": "canary-shared-3", "secret": true},
                {"op": "set", "namespace": "shared/logging", "layer": "env/prod", "key": "log.level", "value": "warn"},
                {"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults", "env/{env}"],
                    "matrix": {"env": ["staging", "prod"]}, "imports": ["shared/logging"],
                    "validation": {"rules": [{"id": "no-debug", "check": "cfg.log.level != \"debug\""}]}}},
                {"op": "put", "namespace": "web", "layer": "defaults", "document": {"port": 8080, "log": {"format": "text"}}},
            ]})),
        )
        .unwrap();
    w
}

fn name(s: &str) -> NamespaceName {
    s.parse().unwrap()
}

fn value_of(w: &World, caller: &confstrata_engine::Caller, key: &str) -> Option<Value> {
    let v = w
        .engine
        .resolve(caller, &name("web"), &prod(), At::Latest)
        .unwrap();
    confstrata_core::doc::get(&v.document, &KeyPath::parse(key).unwrap()).cloned()
}

#[test]
fn an_importer_resolves_over_its_imports_and_sees_their_changes_at_once() {
    let w = shared_world();
    let (e, web) = (&w.engine, name("web"));
    let v = e.resolve(&w.admin, &web, &prod(), At::Latest).unwrap();
    assert_eq!(
        Value::Object(v.document.clone()),
        json!({"port": 8080, "log": {"level": "warn", "format": "text", "token": "canary-shared-3"}})
    );
    let from = |key: &str| {
        v.provenance
            .iter()
            .find(|(k, _)| k.to_string() == key)
            .map(|(_, p)| {
                (
                    p.namespace.as_ref().map(ToString::to_string),
                    p.layer.to_string(),
                )
            })
            .unwrap()
    };
    assert_eq!(
        from("log.level"),
        (Some("shared/logging".into()), "env/prod".into())
    );
    assert_eq!(from("log.format"), (None, "defaults".into()));
    let layers: Vec<String> = v
        .layers
        .iter()
        .map(|p| format!("{:?}:{}", p.namespace.as_ref().map(|n| n.as_str()), p.layer))
        .collect();
    assert_eq!(
        layers,
        [
            "Some(\"shared/logging\"):defaults",
            "Some(\"shared/logging\"):env/prod",
            "None:defaults"
        ]
    );

    // Cached now; a change to the import is seen at once, from the cache
    // path as from the store.
    assert_eq!(value_of(&w, &w.admin, "log.level"), Some(json!("warn")));
    let before = e.cache_stats();
    e.commit(
        &w.admin,
        &cs(json!({"ops": [{"op": "set", "namespace": "shared/logging", "layer": "env/prod", "key": "log.level", "value": "error"}]})),
    )
    .unwrap();
    assert!(
        e.resolve_cached(&w.admin, &web, &prod(), None).is_none(),
        "stale"
    );
    assert_eq!(value_of(&w, &w.admin, "log.level"), Some(json!("error")));
    assert_eq!(
        e.cache_stats().rebuilt,
        before.rebuilt,
        "a view with imports is merged again, not patched"
    );
    // The importer's own layers are above every layer of its imports:
    // its defaults override the import's env/prod.
    e.commit(
        &w.admin,
        &cs(json!({"ops": [{"op": "set", "namespace": "web", "layer": "defaults", "key": "log.level", "value": "info"}]})),
    )
    .unwrap();
    assert_eq!(value_of(&w, &w.admin, "log.level"), Some(json!("info")));
    let x = e
        .explain(
            &w.admin,
            &web,
            &prod(),
            &KeyPath::parse("log.level").unwrap(),
            At::Latest,
        )
        .unwrap();
    let entries: Vec<(Option<String>, String, bool)> = x
        .explanation
        .entries
        .iter()
        .map(|en| {
            (
                en.namespace.as_ref().map(ToString::to_string),
                en.layer.to_string(),
                en.winner,
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            (None, "defaults".into(), true),
            (Some("shared/logging".into()), "env/prod".into(), false),
            (Some("shared/logging".into()), "defaults".into(), false),
        ]
    );
    // The past resolves with the imports as they were.
    let past = e.resolve(&w.admin, &web, &prod(), At::Revision(2)).unwrap();
    assert_eq!(past.document["log"]["level"], "warn");
}

#[test]
fn an_imported_secret_opens_with_its_namespace_key_for_those_who_may_read_it() {
    let w = shared_world();
    let (e, web) = (&w.engine, name("web"));
    let viewer = w.user("vic", &["viewer"]);
    let reader = w.user("rita", &["secret-reader"]);
    for _ in 0..2 {
        // Twice: from the store, then from the cache.
        assert_eq!(value_of(&w, &viewer, "log.token"), Some(json!("<sealed>")));
        assert_eq!(
            value_of(&w, &reader, "log.token"),
            Some(json!("canary-shared-3"))
        );
    }
    let x = e
        .explain(
            &reader,
            &web,
            &prod(),
            &KeyPath::parse("log.token").unwrap(),
            At::Latest,
        )
        .unwrap();
    assert_eq!(x.explanation.value, Some(json!("canary-shared-3")));
    let x = e
        .explain(
            &viewer,
            &web,
            &prod(),
            &KeyPath::parse("log").unwrap(),
            At::Latest,
        )
        .unwrap();
    let text = confstrata_core::serde_json::to_string(&x).unwrap();
    assert!(
        !text.contains("canary") && !text.contains("$sealed"),
        "{text}"
    );
}

#[test]
fn a_caller_who_may_not_read_an_import_gets_the_importer_without_it() {
    let w = shared_world();
    let web = name("web");
    let svc = with_role(&w, "svc", &[("allow", &["read"], "web")]);
    for _ in 0..2 {
        let v = w.engine.resolve(&svc, &web, &prod(), At::Latest).unwrap();
        assert!(v.partial);
        assert_eq!(
            Value::Object(v.document),
            json!({"port": 8080, "log": {"format": "text"}})
        );
        assert!(v.layers.iter().all(|p| p.namespace.is_none()));
    }
    let x = w
        .engine
        .explain(
            &svc,
            &web,
            &prod(),
            &KeyPath::parse("log.level").unwrap(),
            At::Latest,
        )
        .unwrap();
    assert!(x.explanation.value.is_none() && x.explanation.entries.is_empty());
    // Nor may it declare an import of what it cannot read.
    let writer = with_role(
        &w,
        "wes",
        &[
            ("allow", &["read", "write"], "web"),
            ("allow", &["read", "write"], "api"),
        ],
    );
    let err = w
        .engine
        .commit(
            &writer,
            &cs(json!({"ops": [{"op": "put-namespace", "spec": {"name": "api", "levels": ["defaults"],
                "imports": ["shared/logging"]}}]})),
        )
        .unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    assert!(err.to_string().contains("shared/logging"), "{err}");
    w.engine
        .commit(
            &writer,
            &cs(json!({"ops": [{"op": "put-namespace", "spec": {"name": "api", "levels": ["defaults"],
                "imports": ["web"]}}]})),
        )
        .unwrap();
}

#[test]
fn a_change_to_an_import_is_checked_against_every_importer() {
    let w = shared_world();
    let e = &w.engine;
    let revision = e.revision().unwrap();
    let err = e
        .commit(
            &w.admin,
            &cs(json!({"ops": [{"op": "set", "namespace": "shared/logging", "layer": "env/prod", "key": "log.level", "value": "debug"}]})),
        )
        .unwrap_err();
    let Error::Validation { findings } = &err else {
        panic!("{err}");
    };
    assert!(
        findings
            .iter()
            .any(|f| f.namespace == "web" && f.rule == "no-debug" && f.context == prod()),
        "{findings:?}"
    );
    assert_eq!(e.revision().unwrap(), revision, "nothing was written");
    // Through a chain of imports too: shared/base under shared/logging.
    e.commit(
        &w.admin,
        &cs(json!({"ops": [
            {"op": "put-namespace", "spec": {"name": "shared/base", "levels": ["defaults"]}},
            {"op": "put", "namespace": "shared/base", "layer": "defaults", "document": {"log": {"level": "info"}}},
            {"op": "put-namespace", "spec": {"name": "shared/logging", "levels": ["defaults", "env/{env}"],
                "matrix": {"env": ["staging", "prod"]}, "imports": ["shared/base"]}},
            {"op": "unset", "namespace": "shared/logging", "layer": "defaults", "key": "log.level"},
        ]})),
    )
    .unwrap();
    let staging = parse_context("env=staging").unwrap();
    let v = e
        .resolve(&w.admin, &name("web"), &staging, At::Latest)
        .unwrap();
    assert_eq!(v.document["log"]["level"], "info");
    let err = e
        .commit(
            &w.admin,
            &cs(json!({"ops": [{"op": "set", "namespace": "shared/base", "layer": "defaults", "key": "log.level", "value": "debug"}]})),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Validation { .. }), "{err}");
    // A cycle through the chain is refused when declared.
    let err = e
        .commit(
            &w.admin,
            &cs(json!({"ops": [{"op": "put-namespace", "spec": {"name": "shared/base", "levels": ["defaults"], "imports": ["web"]}}]})),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("cycle: shared/base -> web -> shared/logging -> shared/base"),
        "{err}"
    );
}

#[test]
fn a_namespace_is_deleted_whole_and_not_while_imported() {
    let w = shared_world();
    let (e, web, shared) = (&w.engine, name("web"), name("shared/logging"));
    // Cached first: the deletion must not be answered from the cache.
    assert!(value_of(&w, &w.admin, "port").is_some());
    let delete = |ns: &str| cs(json!({"ops": [{"op": "delete-namespace", "namespace": ns}]}));
    let err = e.commit(&w.admin, &delete("shared/logging")).unwrap_err();
    assert!(
        err.to_string().contains("namespace web imports it"),
        "{err}"
    );
    let viewer = w.user("vic", &["viewer"]);
    let err = e.commit(&viewer, &delete("web")).unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    let err = e.commit(&w.admin, &delete("_templates")).unwrap_err();
    assert!(err.to_string().contains("_templates"), "{err}");
    let gone = e.commit(&w.admin, &delete("web")).unwrap().revision;
    for _ in 0..2 {
        let err = e.resolve(&w.admin, &web, &prod(), At::Latest).unwrap_err();
        assert!(matches!(err, Error::NamespaceNotFound { .. }), "{err}");
        assert!(e.resolve_cached(&w.admin, &web, &prod(), None).is_none());
    }
    // As it was, it still resolves; the import may go now.
    let past = e
        .resolve(&w.admin, &web, &prod(), At::Revision(gone - 1))
        .unwrap();
    assert_eq!(past.document["port"], 8080);
    e.commit(&w.admin, &delete("shared/logging")).unwrap();
    assert!(
        e.namespaces(&w.admin, At::Latest)
            .unwrap()
            .iter()
            .all(|r| r.spec.name != shared)
    );
    // The audit names the operation.
    let records = e.audit_records(&w.admin, 0, 10_000).unwrap();
    let text = format!("{records:?}");
    assert!(text.contains("delete-namespace web"), "{text}");
}

/// A deleted namespace comes back with `rollback` to a revision before its
/// deletion: the declaration (imports included) and every layer, sealed
/// values opening as before; one layer alone is refused (the namespace
/// does not exist), and so is bringing back an importer whose import is
/// gone too.
#[test]
fn rollback_brings_a_deleted_namespace_back_whole() {
    let w = shared_world();
    let (e, web) = (&w.engine, name("web"));
    e.commit(
        &w.admin,
        &cs(json!({"ops": [{"op": "set", "namespace": "web", "layer": "env/prod", "key": "db.password",
            "value": "canary-web-9"}]})),
    )
    .unwrap();
    let before = e.resolve(&w.admin, &web, &prod(), At::Latest).unwrap();
    let delete = |ns: &str| cs(json!({"ops": [{"op": "delete-namespace", "namespace": ns}]}));
    let gone = e.commit(&w.admin, &delete("web")).unwrap().revision;

    let err = e
        .rollback(
            &w.admin,
            &web,
            Some(&"defaults".parse().unwrap()),
            At::Revision(gone - 1),
            "",
            false,
        )
        .unwrap_err();
    assert!(err.to_string().contains("does not exist now"), "{err}");
    let dry = e
        .rollback(&w.admin, &web, None, At::Revision(gone - 1), "", true)
        .unwrap();
    let text = format!("{:?}", dry.change_set);
    assert!(!text.contains("canary"), "{text}");
    assert!(matches!(
        e.resolve(&w.admin, &web, &prod(), At::Latest),
        Err(Error::NamespaceNotFound { .. })
    ));
    let back = e
        .rollback(&w.admin, &web, None, At::Revision(gone - 1), "", false)
        .unwrap();
    assert!(back.commit.is_some());
    let now = e.resolve(&w.admin, &web, &prod(), At::Latest).unwrap();
    assert_eq!(now.document, before.document);
    assert_eq!(now.document["db"]["password"], "canary-web-9");
    assert_eq!(
        e.namespace(&w.admin, &web, At::Latest)
            .unwrap()
            .spec
            .imports,
        vec![name("shared/logging")]
    );
    // Rolled back again (nothing differs), nothing is written.
    let again = e
        .rollback(&w.admin, &web, None, At::Revision(gone - 1), "", false)
        .unwrap();
    assert!(again.change_set.is_none());

    // An importer whose import is deleted too comes back only with it.
    e.commit(&w.admin, &delete("web")).unwrap();
    let shared_gone = e
        .commit(&w.admin, &delete("shared/logging"))
        .unwrap()
        .revision;
    let err = e
        .rollback(&w.admin, &web, None, At::Revision(gone - 1), "", false)
        .unwrap_err();
    assert!(err.to_string().contains("shared/logging"), "{err}");
    e.rollback(
        &w.admin,
        &name("shared/logging"),
        None,
        At::Revision(shared_gone - 1),
        "",
        false,
    )
    .unwrap();
    e.rollback(&w.admin, &web, None, At::Revision(gone - 1), "", false)
        .unwrap();
    assert_eq!(
        e.resolve(&w.admin, &web, &prod(), At::Latest)
            .unwrap()
            .document,
        before.document
    );
}
