//! Key-scoped reads: a caller whose grants cover only some keys of a
//! namespace's layers (`read` on `pay#db`) resolves, explains, diffs and
//! reads the history of the namespace and gets only those keys, marked
//! partial, from the cache as from the store; a caller with nothing to
//! read is still refused.

use confstrata_core::serde_json::json;
use confstrata_core::{At, Error, KeyPath, parse_context};
use confstrata_engine::{Caller, GrantInfo};

use crate::security::{World, prod, world};

pub(crate) fn with_role(w: &World, id: &str, grants: &[(&str, &[&str], &str)]) -> Caller {
    let grants: Vec<GrantInfo> = grants
        .iter()
        .map(|(effect, actions, on)| GrantInfo {
            effect: (*effect).to_owned(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
            on: (*on).to_owned(),
        })
        .collect();
    let role = format!("{id}-role");
    w.engine
        .put_role(&w.admin, &role, "", &grants, true)
        .unwrap();
    w.user(id, &[&role])
}

#[test]
fn a_key_scoped_reader_sees_only_its_keys() {
    let w = world();
    let svc = with_role(&w, "svc", &[("allow", &["read"], "pay#db")]);
    let e = &w.engine;
    let pay = "pay".parse().unwrap();

    // The whole view first, so the cache holds it: the scoped reader is
    // served from the cache too, cut to its keys.
    let full = e.resolve(&w.admin, &pay, &prod(), At::Latest).unwrap();
    assert!(!full.partial);
    assert!(full.document.contains_key("api"));
    for _ in 0..2 {
        let v = e.resolve(&svc, &pay, &prod(), At::Latest).unwrap();
        assert!(v.partial);
        assert_eq!(
            confstrata_core::serde_json::Value::Object(v.document.clone()),
            json!({"db": {"host": "db.prod", "pool": 5, "password": "<sealed>"}})
        );
        assert!(
            v.provenance
                .iter()
                .all(|(k, _)| k.to_string().starts_with("db."))
        );
    }
    // The past, a section and another context, the same way.
    let past = e.resolve(&svc, &pay, &prod(), At::Revision(1)).unwrap();
    assert!(past.partial && !past.document.contains_key("api"));
    let section = e
        .resolve_section(
            &svc,
            &pay,
            &prod(),
            Some(&KeyPath::parse("db").unwrap()),
            At::Latest,
        )
        .unwrap();
    assert!(section.partial);
    let staging = parse_context("env=staging").unwrap();
    let diff = e
        .diff_resolved(&svc, &pay, (&staging, At::Latest), (&prod(), At::Latest))
        .unwrap();
    let keys: Vec<String> = diff.iter().map(|d| d.key.to_string()).collect();
    assert_eq!(
        keys,
        ["db.host"],
        "the prod-only api key is not in the diff"
    );

    // Explain: its keys, yes; a key it may not read is answered exactly as
    // a key that does not exist (a refusal would say that it exists).
    let x = e
        .explain(
            &svc,
            &pay,
            &prod(),
            &KeyPath::parse("db.host").unwrap(),
            At::Latest,
        )
        .unwrap();
    assert_eq!(x.explanation.entries.len(), 2);
    let explain = |key: &str| {
        e.explain(
            &svc,
            &pay,
            &prod(),
            &KeyPath::parse(key).unwrap(),
            At::Latest,
        )
        .unwrap()
        .explanation
    };
    let hidden = explain("api.signing");
    let missing = explain("api.nothing");
    assert!(hidden.entries.is_empty() && hidden.value.is_none() && hidden.from.is_none());
    assert_eq!(
        (hidden.entries, hidden.value, hidden.from),
        (missing.entries, missing.value, missing.from)
    );

    // History and the namespace diff hold only its keys.
    let history = e.history(&svc, &pay, None, 100).unwrap();
    assert!(!history.is_empty());
    for v in &history {
        assert!(v.partial, "{v:?}");
        if let Some(doc) = &v.document {
            assert!(doc.keys().all(|k| k == "db"), "{doc:?}");
        }
    }
    let layers = e
        .diff_namespace(&svc, &pay, At::Revision(0), At::Latest)
        .unwrap();
    for l in &layers {
        assert!(
            l.changes.iter().all(|c| c.key.segments()[0] == "db"),
            "{l:?}"
        );
    }
    assert!(layers.iter().any(|l| l.layer.as_str() == "env/prod"));
}

#[test]
fn a_partial_view_names_only_the_layers_it_may_read_and_no_empty_tables() {
    let w = world();
    // `read` on the prod layer's `api` only: the defaults layer, of which
    // it may read nothing, is not named, and `db` (set by both layers,
    // readable in neither) leaves no empty table behind.
    let svc = with_role(&w, "svc", &[("allow", &["read"], "pay:env/prod#api")]);
    let e = &w.engine;
    let pay = "pay".parse().unwrap();
    for _ in 0..2 {
        let v = e.resolve(&svc, &pay, &prod(), At::Latest).unwrap();
        assert!(v.partial);
        assert_eq!(
            confstrata_core::serde_json::Value::Object(v.document.clone()),
            json!({"api": {"signing": "<sealed>"}})
        );
        let layers: Vec<&str> = v.layers.iter().map(|p| p.layer.as_str()).collect();
        assert_eq!(layers, ["env/prod"]);
    }
    // A deny on every `db` key of a reader of the rest: no `"db": {}`.
    let reader = with_role(
        &w,
        "reader",
        &[("allow", &["read"], "pay"), ("deny", &["read"], "pay#db")],
    );
    let v = e.resolve(&reader, &pay, &prod(), At::Latest).unwrap();
    assert!(
        v.partial && !v.document.contains_key("db"),
        "{:?}",
        v.document
    );
    let history = e.history(&reader, &pay, None, 100).unwrap();
    for h in &history {
        if let Some(doc) = &h.document {
            assert!(!doc.contains_key("db"), "{h:?}");
        }
    }
}

#[test]
fn a_deny_on_one_key_hides_that_key_instead_of_refusing_the_resolve() {
    let w = world();
    let reader = with_role(
        &w,
        "reader",
        &[
            ("allow", &["read"], "pay"),
            ("deny", &["read"], "pay#db.password"),
        ],
    );
    let v = w
        .engine
        .resolve(&reader, &"pay".parse().unwrap(), &prod(), At::Latest)
        .unwrap();
    assert!(v.partial);
    assert!(
        confstrata_core::doc::get(&v.document, &KeyPath::parse("db.password").unwrap()).is_none()
    );
    assert!(confstrata_core::doc::get(&v.document, &KeyPath::parse("db.host").unwrap()).is_some());
    assert!(v.document.contains_key("api"));
}

#[test]
fn a_caller_with_nothing_to_read_is_still_refused() {
    let w = world();
    let other = with_role(&w, "other", &[("allow", &["read"], "hidden")]);
    let err = w
        .engine
        .resolve(&other, &"pay".parse().unwrap(), &prod(), At::Latest)
        .unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    // A grant on another layer only: nothing of this context.
    let staging_only = with_role(&w, "staging", &[("allow", &["read"], "pay:env/staging#db")]);
    let err = w
        .engine
        .resolve(&staging_only, &"pay".parse().unwrap(), &prod(), At::Latest)
        .unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
}
