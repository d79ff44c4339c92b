use serde_json::json;

use std::sync::Mutex;

use super::*;
use confstrata_core::view::LayerStatus;
use confstrata_core::{At, ChangeSet, Context, Error, KeyPath, MemoryStore, parse_context};

use crate::view::Winners;

fn engine() -> Engine {
    let e = Engine::new(Arc::new(MemoryStore::new())).unwrap();
    let cs: ChangeSet = serde_json::from_value(json!({"ops": [
        {"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults", "env/{env}", "env/{env}/region/{region}"],
          "matrix": {"env": ["dev", "prod"], "region": ["eu", "us"]}}},
        {"op": "put", "namespace": "web", "layer": "defaults", "document": {"db": {"host": "localhost", "pool": 5}, "debug": true}},
        {"op": "put", "namespace": "web", "layer": "env/prod", "document": {"db": {"host": "db.prod"}, "debug": false}},
        {"op": "put", "namespace": "web", "layer": "env/prod/region/eu", "document": {"db": {"pool": 20}}},
    ]}))
    .unwrap();
    e.commit(&me(), &cs).unwrap();
    e
}

fn me() -> Caller {
    Caller::local("tester")
}

fn web() -> NamespaceName {
    "web".parse().unwrap()
}

#[test]
fn resolve_and_explain() {
    let e = engine();
    let v = e
        .resolve(
            &me(),
            &web(),
            &parse_context("env=prod,region=eu").unwrap(),
            At::Latest,
        )
        .unwrap();
    assert_eq!(
        Value::Object(v.document),
        json!({"db": {"host": "db.prod", "pool": 20}, "debug": false})
    );
    assert_eq!(v.layers.len(), 3);
    let x = e
        .explain(
            &me(),
            &web(),
            &parse_context("env=prod,region=eu").unwrap(),
            &"db.pool".parse().unwrap(),
            At::Latest,
        )
        .unwrap();
    let layers: Vec<&str> = x
        .explanation
        .entries
        .iter()
        .map(|e| e.layer.as_str())
        .collect();
    assert_eq!(layers, ["env/prod/region/eu", "defaults"]);
    assert!(x.explanation.entries[0].winner);
    assert_eq!(x.changes[&1].revision, 1);
}

use serde_json::Value;

#[test]
fn rollback_restores_and_is_a_new_revision() {
    let e = engine();
    let cs: ChangeSet = serde_json::from_value(json!({"ops": [
        {"op": "set", "namespace": "web", "layer": "defaults", "key": "db.pool", "value": 9},
        {"op": "delete", "namespace": "web", "layer": "env/prod"},
        {"op": "put", "namespace": "web", "layer": "env/dev", "document": {"x": 1}},
    ]}))
    .unwrap();
    e.commit(&me(), &cs).unwrap();
    let before = e.layers(&me(), &web(), At::Revision(1)).unwrap();
    let planned = e
        .rollback(&me(), &web(), None, At::Revision(1), "", true)
        .unwrap();
    assert!(planned.commit.is_none(), "a dry run commits nothing");
    assert_eq!(e.revision().unwrap(), 2);
    let done = e
        .rollback(&me(), &web(), None, At::Revision(1), "", false)
        .unwrap();
    assert_eq!(done.change_set, planned.change_set);
    let info = done.commit.unwrap();
    assert_eq!(info.revision, 3);
    assert_eq!(
        e.layers(&me(), &web(), At::Latest)
            .unwrap()
            .iter()
            .map(|l| (&l.layer, &l.document))
            .collect::<Vec<_>>(),
        before
            .iter()
            .map(|l| (&l.layer, &l.document))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        e.store().revision_info(3).unwrap().unwrap().message,
        "rollback web to revision 1"
    );
    // Nothing left to do.
    assert!(
        e.rollback(&me(), &web(), None, At::Revision(1), "", false)
            .unwrap()
            == confstrata_core::view::Rollback {
                commit: None,
                change_set: None
            }
    );
    // Namespace diff between revisions.
    let d = e
        .diff_namespace(&me(), &web(), At::Revision(1), At::Revision(2))
        .unwrap();
    let s: Vec<(&str, LayerStatus)> = d.iter().map(|d| (d.layer.as_str(), d.status)).collect();
    assert_eq!(
        s,
        [
            ("defaults", LayerStatus::Changed),
            ("env/dev", LayerStatus::Created),
            ("env/prod", LayerStatus::Deleted)
        ]
    );
}

#[test]
fn rollback_across_a_wider_declaration_deletes_first() {
    // The matrix gains `qa` and a layer for it; rolling the namespace back
    // to before must delete that layer while `qa` is still declared.
    let e = engine();
    let cs: ChangeSet = serde_json::from_value(json!({"ops": [
        {"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults", "env/{env}", "env/{env}/region/{region}"],
          "matrix": {"env": ["dev", "prod", "qa"], "region": ["eu", "us"]}}},
        {"op": "put", "namespace": "web", "layer": "env/qa", "document": {"x": 1}},
        {"op": "set", "namespace": "web", "layer": "defaults", "key": "debug", "value": false},
    ]}))
    .unwrap();
    e.commit(&me(), &cs).unwrap();
    let done = e
        .rollback(&me(), &web(), None, At::Revision(1), "", false)
        .unwrap();
    assert!(done.commit.is_some());
    let layers: Vec<String> = e
        .layers(&me(), &web(), At::Latest)
        .unwrap()
        .iter()
        .map(|l| l.layer.to_string())
        .collect();
    assert_eq!(layers, ["defaults", "env/prod", "env/prod/region/eu"]);
    let spec = e.namespace(&me(), &web(), At::Latest).unwrap().spec;
    assert_eq!(spec.matrix["env"].len(), 2);
}

#[test]
fn diff_resolved_contexts() {
    let e = engine();
    let d = e
        .diff_resolved(
            &me(),
            &web(),
            (&parse_context("env=dev").unwrap(), At::Latest),
            (&parse_context("env=prod,region=eu").unwrap(), At::Latest),
        )
        .unwrap();
    let keys: Vec<String> = d.iter().map(|d| d.key.to_string()).collect();
    assert_eq!(keys, ["db.host", "db.pool", "debug"]);
}

#[test]
fn errors_name_what_is_missing() {
    let e = engine();
    let nope: NamespaceName = "nope".parse().unwrap();
    assert!(matches!(
        e.resolve(&me(), &nope, &Context::new(), At::Latest),
        Err(Error::NamespaceNotFound { .. })
    ));
    assert!(matches!(
        e.layer(&me(), &web(), &"env/dev".parse().unwrap(), At::Latest),
        Err(Error::LayerNotFound { .. })
    ));
    assert!(matches!(
        e.resolve(&me(), &web(), &parse_context("zone=a").unwrap(), At::Latest),
        Err(Error::UnknownContextVariable { .. })
    ));
    assert!(matches!(
        e.resolve(&me(), &web(), &Context::new(), At::Revision(99)),
        Err(Error::FutureRevision { .. })
    ));
}

#[test]
fn dry_run_shows_the_diff_and_commits_nothing() {
    let e = engine();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    e.on_commit(Arc::new(move |rev| sink.lock().unwrap().push(rev)));
    let cs: ChangeSet = serde_json::from_value(json!({"ops": [
        {"op": "set", "namespace": "web", "layer": "defaults", "key": "db.pool", "value": 9},
        {"op": "put", "namespace": "web", "layer": "env/dev", "document": {"x": 1}},
        {"op": "delete", "namespace": "web", "layer": "env/prod"},
    ]}))
    .unwrap();
    let d = e.dry_run(&me(), &cs).unwrap();
    assert_eq!(d.revision, 1);
    let s: Vec<(&str, LayerStatus, usize)> = d
        .layers
        .iter()
        .map(|l| (l.layer.as_str(), l.status, l.changes.len()))
        .collect();
    assert_eq!(
        s,
        [
            ("defaults", LayerStatus::Changed, 1),
            ("env/dev", LayerStatus::Created, 1),
            ("env/prod", LayerStatus::Deleted, 2)
        ]
    );
    assert_eq!(e.store().revision().unwrap(), 1);
    assert!(seen.lock().unwrap().is_empty());
    // A bad change set fails the dry run exactly as it would fail a commit.
    let bad: ChangeSet = serde_json::from_value(json!({"ops": [
        {"op": "set", "namespace": "web", "layer": "defaults", "key": "a", "value": 1, "expect_revision": 5},
    ]}))
    .unwrap();
    assert!(matches!(
        e.dry_run(&me(), &bad).unwrap_err().root(),
        Error::Conflict { .. }
    ));
    e.commit(&me(), &cs).unwrap();
    assert_eq!(*seen.lock().unwrap(), [2]);
}

#[test]
fn a_compact_cached_view_reads_back_as_the_view_it_was_made_from() {
    let e = Engine::new(Arc::new(MemoryStore::new())).unwrap();
    let cs: ChangeSet = serde_json::from_value(json!({"ops": [
        {"op": "put-namespace", "spec": {"name": "odd", "levels": ["defaults", "env/{env}"]}},
        {"op": "put", "namespace": "odd", "layer": "defaults", "document": {
            "empty": {}, "big": 9007199254740993u64, "neg": -3, "ratio": 1.618033988749,
            "list": [1, {"a": [true, null]}], "text": "ünïcødé \"quoted\"\n",
            "labels": {"app.io/name": "x", "a b": {"c.d": 1}}, "db": {"password": "hunter2"}}},
        {"op": "set", "namespace": "odd", "layer": "env/prod", "key": "labels.\"a b\".e", "value": "prod"},
        {"op": "set", "namespace": "odd", "layer": "env/prod", "key": "empty", "value": {"now": "full"}},
    ]}))
    .unwrap();
    e.commit(&me(), &cs).unwrap();
    let odd: NamespaceName = "odd".parse().unwrap();
    let prod = parse_context("env=prod").unwrap();
    let rev = e.revision().unwrap();
    let caller = me();
    let g = e.gate(&caller);
    let view = e
        .with_resolved(&g, &odd, &prod, At::Latest, |rev, r| ResolvedView {
            partial: false,
            namespace: odd.clone(),
            context: prod.clone(),
            revision: rev,
            layers: r.layers().collect(),
            document: r.to_document(),
            provenance: r.provenance(),
        })
        .unwrap();
    let cached = CachedView::new(vec![], view.clone());
    assert!(
        matches!(cached.winners, Winners::Compact(_)),
        "a resolve's leaves and provenance line up"
    );
    assert!(cached.any_sealed && cached.sealed.len() == 1);
    let back = cached.view(rev, None).unwrap();
    assert_eq!(back.document, view.document);
    assert_eq!(back.provenance, view.provenance);
    assert_eq!(back.layers, view.layers);
    // 2 bytes of provenance per leaf, and the JSON.
    assert!(cached.weight() < cached.raw.len() * 2 + 2 * view.provenance.len() + 1024);
    let masked: Value = serde_json::from_str(&cached.masked().unwrap()).unwrap();
    assert_eq!(masked["db"]["password"], "<sealed>");
    assert_eq!(masked["big"], 9007199254740993u64);
    // A section of it.
    let labels: KeyPath = "labels".parse().unwrap();
    let part = cached.view(rev, Some(&labels)).unwrap();
    assert_eq!(
        Value::Object(part.document),
        json!({"labels": {"app.io/name": "x", "a b": {"c.d": 1, "e": "prod"}}})
    );
    assert!(
        part.provenance
            .iter()
            .all(|(k, _)| k.segments()[0] == "labels")
    );
}
