use serde_json::json;

use super::*;
use crate::{MemoryStore, Store};

fn cs(v: serde_json::Value) -> ChangeSet {
    serde_json::from_value(v).unwrap()
}

fn seeded() -> MemoryStore {
    let store = MemoryStore::new();
    store
        .commit(&cs(json!({"ops": [
            {"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults", "env/{env}"], "matrix": {"env": ["dev", "prod"]}}},
            {"op": "put", "namespace": "web", "layer": "defaults", "document": {"db": {"pool": 5}}},
        ]})))
        .unwrap();
    store
}

fn state(store: &MemoryStore) -> (u64, Vec<crate::LayerRecord>) {
    let rev = store.revision().unwrap();
    (rev, store.layers(&"web".parse().unwrap(), rev).unwrap())
}

#[test]
fn ops_compose_within_one_change_set() {
    let store = seeded();
    let info = store
        .commit(&cs(json!({"author": "ana", "message": "m", "ops": [
            {"op": "set", "namespace": "web", "layer": "env/prod", "key": "db.pool", "value": 50},
            {"op": "set", "namespace": "web", "layer": "env/prod", "key": "db.host", "value": "h"},
            {"op": "unset", "namespace": "web", "layer": "env/prod", "key": "db.host"},
        ]})))
        .unwrap();
    assert_eq!(info.revision, 2);
    let l = store
        .layer(&"web".parse().unwrap(), &"env/prod".parse().unwrap(), 2)
        .unwrap()
        .unwrap();
    assert_eq!(Value::Object(l.document), json!({"db": {"pool": 50}}));
    let r = store.revision_info(2).unwrap().unwrap();
    assert_eq!((r.author.as_str(), r.message.as_str()), ("ana", "m"));
}

#[test]
fn a_failed_precondition_changes_nothing() {
    let store = seeded();
    let before = state(&store);
    let e = store
        .commit(&cs(json!({"ops": [
            {"op": "set", "namespace": "web", "layer": "env/prod", "key": "a", "value": 1},
            {"op": "set", "namespace": "web", "layer": "defaults", "key": "a", "value": 1, "expect_revision": 7},
        ]})))
        .unwrap_err();
    match e.root() {
        Error::Conflict {
            expected: 7,
            actual: 1,
            current_revision: 1,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    assert!(
        e.to_string().contains("operation 1 (set web:defaults a)"),
        "{e}"
    );
    assert_eq!(state(&store), before);
    // expect_revision 0 means "must not exist".
    assert!(store
        .commit(&cs(json!({"ops": [{"op": "put", "namespace": "web", "layer": "defaults", "document": {}, "expect_revision": 0}]})))
        .is_err());
    store
        .commit(&cs(json!({"ops": [{"op": "put", "namespace": "web", "layer": "env/dev", "document": {}, "expect_revision": 0}]})))
        .unwrap();
}

#[test]
fn bad_operations_are_named_and_change_nothing() {
    let store = seeded();
    let before = state(&store);
    for (ops, expected) in [
        (json!([]), "no operations"),
        (
            json!([{"op": "set", "namespace": "nope", "layer": "defaults", "key": "a", "value": 1}]),
            "namespace \"nope\" not found",
        ),
        (
            json!([{"op": "set", "namespace": "web", "layer": "env/qa", "key": "a", "value": 1}]),
            "matches no level",
        ),
        (
            json!([{"op": "unset", "namespace": "web", "layer": "defaults", "key": "db.nope"}]),
            "key db.nope not found",
        ),
        (
            json!([{"op": "unset", "namespace": "web", "layer": "env/dev", "key": "a"}]),
            "layer web:env/dev not found",
        ),
        (
            json!([{"op": "delete", "namespace": "web", "layer": "env/dev"}]),
            "not found",
        ),
        (
            json!([{"op": "set", "namespace": "web", "layer": "defaults", "key": "db.pool.x", "value": 1}]),
            "db.pool holds a value",
        ),
    ] {
        let e = store
            .commit(&cs(json!({"ops": ops})))
            .unwrap_err()
            .to_string();
        assert!(e.contains(expected), "{e}");
        assert_eq!(state(&store), before);
    }
}

#[test]
fn size_limits_apply_to_documents_and_change_sets() {
    let store = MemoryStore::with_limits(Limits {
        max_document_bytes: 100,
        max_change_set_bytes: 150,
        max_depth: 8,
    });
    store
        .commit(&cs(json!({"ops": [{"op": "put-namespace", "spec": {"name": "w", "levels": ["defaults", "x/{x}"]}}]})))
        .unwrap();
    let big = "x".repeat(120);
    let e = store
        .commit(&cs(json!({"ops": [{"op": "put", "namespace": "w", "layer": "defaults", "document": {"a": big}}]})))
        .unwrap_err();
    assert!(matches!(e.root(), Error::TooLarge { .. }), "{e}");
    let half = "x".repeat(60);
    let e = store
        .commit(&cs(json!({"ops": [
            {"op": "put", "namespace": "w", "layer": "x/a", "document": {"a": half}},
            {"op": "put", "namespace": "w", "layer": "x/b", "document": {"a": half}},
            {"op": "put", "namespace": "w", "layer": "x/c", "document": {"a": half}},
        ]})))
        .unwrap_err();
    assert!(
        matches!(e, Error::TooLarge { ref what, .. } if what == "change set"),
        "{e}"
    );
    assert_eq!(store.revision().unwrap(), 1);
}

#[test]
fn unknown_fields_in_change_set_files_are_rejected() {
    let e = serde_json::from_value::<ChangeSet>(json!({"ops": [{"op": "set", "namespace": "w", "layer": "d", "key": "a", "value": 1, "expect": 3}]}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `expect`"), "{e}");
    let e = serde_json::from_value::<ChangeSet>(
        json!({"ops": [{"op": "set", "namespace": "../w", "layer": "d", "key": "a", "value": 1}]}),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("segment 1 is \"..\""), "{e}");
}

#[test]
fn set_and_unset_keys_guard_only_their_first_op() {
    let ns: NamespaceName = "web".parse().unwrap();
    let layer: LayerPath = "defaults".parse().unwrap();
    let ops = Op::set_keys(
        &ns,
        &layer,
        [
            (KeyPath::parse("a").unwrap(), serde_json::json!(1), false),
            (KeyPath::parse("b").unwrap(), serde_json::json!("s"), true),
        ],
        Some(7),
    );
    let guards: Vec<Option<u64>> = ops
        .iter()
        .map(|op| match op {
            Op::Set {
                expect_revision, ..
            } => *expect_revision,
            other => panic!("not a set: {other:?}"),
        })
        .collect();
    assert_eq!(guards, [Some(7), None]);
    assert!(matches!(&ops[1], Op::Set { secret: true, key, .. } if key.to_string() == "b"));
    let ops = Op::unset_keys(
        &ns,
        &layer,
        [KeyPath::parse("a").unwrap(), KeyPath::parse("b").unwrap()],
        Some(0),
    );
    assert!(matches!(
        ops.as_slice(),
        [
            Op::Unset {
                expect_revision: Some(0),
                ..
            },
            Op::Unset {
                expect_revision: None,
                ..
            }
        ]
    ));
}

/// A reader over one namespace and its layers at revision 1.
struct Fixed(NamespaceSpec, BTreeMap<LayerPath, Document>);

impl StateReader for Fixed {
    fn current_revision(&mut self) -> Result<u64> {
        Ok(1)
    }
    fn namespace(&mut self, _: &NamespaceName) -> Result<Option<(NamespaceSpec, u64)>> {
        Ok(Some((self.0.clone(), 1)))
    }
    fn layer(&mut self, _: &NamespaceName, layer: &LayerPath) -> Result<Option<(Document, u64)>> {
        Ok(self.1.get(layer).map(|d| (d.clone(), 1)))
    }
}

#[test]
fn a_plan_keeps_the_entries_under_the_touched_keys_as_they_were() {
    let spec: NamespaceSpec =
        serde_json::from_value(json!({"name": "web", "levels": ["defaults", "env/{env}"]}))
            .unwrap();
    let doc = |v: serde_json::Value| v.as_object().unwrap().clone();
    let mut layers = BTreeMap::new();
    layers.insert(
        "defaults".parse().unwrap(),
        doc(json!({"db": {"pool": 5, "host": "h"}, "log": "info", "other": [1, 2]})),
    );
    layers.insert("env/prod".parse().unwrap(), doc(json!({"x": 1})));
    let mut reader = Fixed(spec, layers);
    let plan = super::plan(
        &cs(json!({"ops": [
            {"op": "set", "namespace": "web", "layer": "defaults", "key": "db.pool", "value": 6},
            {"op": "unset", "namespace": "web", "layer": "defaults", "key": "db.host"},
            {"op": "set", "namespace": "web", "layer": "defaults", "key": "db", "value": 1},
            {"op": "set", "namespace": "web", "layer": "defaults", "key": "new.key", "value": true},
            {"op": "set", "namespace": "web", "layer": "env/prod", "key": "y", "value": 2},
            {"op": "put", "namespace": "web", "layer": "env/prod", "document": {"z": 3}},
        ]})),
        &mut reader,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(plan.before.len(), plan.layers.len());
    // The first change to `db` recorded it as it was; `new` did not exist;
    // `log` and `other` were not touched.
    assert_eq!(
        plan.before[0],
        Some(doc(json!({"db": {"pool": 5, "host": "h"}})))
    );
    assert_eq!(
        plan.layers[0].2,
        Some(doc(
            json!({"db": 1, "log": "info", "other": [1, 2], "new": {"key": true}})
        ))
    );
    // A put replaces the layer: no keys to compare, nothing kept.
    assert_eq!(plan.touched[1], None);
    assert_eq!(plan.before[1], None);
}

#[test]
fn imports_must_exist_and_form_no_cycle_across_the_store_and_the_change_set() {
    let store = seeded();
    let decl = |name: &str, imports: &[&str]| json!({"op": "put-namespace", "spec": {"name": name, "levels": ["defaults"], "imports": imports}});
    // A missing import, named with its op.
    let e = store
        .commit(&cs(json!({"ops": [decl("api", &["shared/gone"])]})))
        .unwrap_err();
    assert!(matches!(e, Error::Operation { index: 0, .. }), "{e}");
    assert!(
        e.to_string()
            .contains("api imports shared/gone, which does not exist"),
        "{e}"
    );
    // An import declared in the same change set, after its importer.
    store
        .commit(&cs(
            json!({"ops": [decl("api", &["shared/log"]), decl("shared/log", &["web"])]}),
        ))
        .unwrap();
    // A cycle through the store: web -> api -> shared/log -> web.
    let before = store.revision().unwrap();
    let e = store
        .commit(&cs(json!({"ops": [
            {"op": "set", "namespace": "web", "layer": "defaults", "key": "a", "value": 1},
            {"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults", "env/{env}"], "imports": ["api"]}},
        ]})))
        .unwrap_err();
    assert!(matches!(e, Error::Operation { index: 1, .. }), "{e}");
    assert!(
        e.to_string()
            .contains("cycle: web -> api -> shared/log -> web"),
        "{e}"
    );
    assert_eq!(store.revision().unwrap(), before, "nothing was written");
}

#[test]
fn a_namespace_is_deleted_with_its_layers_and_not_while_imported() {
    let store = seeded();
    let web: NamespaceName = "web".parse().unwrap();
    store
        .commit(&cs(json!({"ops": [
            {"op": "set", "namespace": "web", "layer": "env/prod", "key": "a", "value": 1},
            {"op": "put-namespace", "spec": {"name": "api", "levels": ["defaults"], "imports": ["web"]}},
        ]})))
        .unwrap();
    let before = store.revision().unwrap();
    // Imported: refused, naming the importer; nothing written.
    let e = store
        .commit(&cs(
            json!({"ops": [{"op": "delete-namespace", "namespace": "web"}]}),
        ))
        .unwrap_err();
    assert!(e.to_string().contains("namespace api imports it"), "{e}");
    assert_eq!(store.revision().unwrap(), before);
    // A missing one, and a stale precondition.
    let e = store
        .commit(&cs(
            json!({"ops": [{"op": "delete-namespace", "namespace": "nope"}]}),
        ))
        .unwrap_err();
    assert!(matches!(e.root(), Error::NamespaceNotFound { .. }), "{e}");
    let e = store
        .commit(&cs(
            json!({"ops": [{"op": "delete-namespace", "namespace": "api", "expect_revision": 1}]}),
        ))
        .unwrap_err();
    assert!(matches!(e.root(), Error::Conflict { .. }), "{e}");
    // The importer and the import in one change set: the importer goes
    // first, and a layer written earlier in the change set goes too.
    let info = store
        .commit(&cs(json!({"ops": [
            {"op": "set", "namespace": "web", "layer": "env/dev", "key": "b", "value": 2},
            {"op": "delete-namespace", "namespace": "api"},
            {"op": "delete-namespace", "namespace": "web", "expect_revision": 1},
        ]})))
        .unwrap();
    let rev = info.revision;
    assert!(store.namespace(&web, rev).unwrap().is_none());
    assert!(store.layers(&web, rev).unwrap().is_empty());
    assert_eq!(store.namespaces(rev).unwrap().len(), 0);
    let items: Vec<(String, Option<String>, bool)> = store
        .changes_since(rev - 1, 1)
        .unwrap()
        .remove(0)
        .items
        .into_iter()
        .map(|i| {
            (
                i.namespace.to_string(),
                i.layer.map(|l| l.to_string()),
                i.deleted,
            )
        })
        .collect();
    assert!(items.contains(&("web".into(), None, true)), "{items:?}");
    assert!(
        items.contains(&("web".into(), Some("env/prod".into()), true)),
        "{items:?}"
    );
    assert!(
        !items
            .iter()
            .any(|(_, l, _)| l.as_deref() == Some("env/dev")),
        "{items:?}"
    );
    // The history stays; a layer op on it now finds no namespace; it can
    // be declared again, empty.
    assert_eq!(store.layers(&web, rev - 1).unwrap().len(), 2);
    let e = store
        .commit(&cs(json!({"ops": [{"op": "set", "namespace": "web", "layer": "defaults", "key": "a", "value": 1}]})))
        .unwrap_err();
    assert!(matches!(e.root(), Error::NamespaceNotFound { .. }), "{e}");
    store
        .commit(&cs(json!({"ops": [
            {"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults"]}, "expect_revision": 0},
        ]})))
        .unwrap();
    assert!(
        store
            .layers(&web, store.revision().unwrap())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_declaration_that_would_leave_an_importer_unresolvable_is_refused() {
    use crate::imports::MAX_IMPORT_DEPTH;
    let store = MemoryStore::new();
    let decl = |name: String, imports: Vec<String>| json!({"op": "put-namespace", "spec": {"name": name, "levels": ["defaults"], "imports": imports}});
    // top -> c0 -> ... -> c15: as deep as a chain may go.
    let mut ops = vec![decl("extra".into(), vec![])];
    for i in 0..MAX_IMPORT_DEPTH {
        let imports = if i + 1 < MAX_IMPORT_DEPTH {
            vec![format!("c{}", i + 1)]
        } else {
            vec![]
        };
        ops.push(decl(format!("c{i}"), imports));
    }
    ops.push(decl("top".into(), vec!["c0".into()]));
    store.commit(&cs(json!({"ops": ops}))).unwrap();
    // The end of the chain imports one more: fine for it, too deep for top.
    let last = format!("c{}", MAX_IMPORT_DEPTH - 1);
    let e = store
        .commit(&cs(json!({"ops": [decl(last, vec!["extra".into()])]})))
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("namespace top, which imports what this declares"),
        "{text}"
    );
    assert!(text.contains("deeper than 16"), "{text}");
}
