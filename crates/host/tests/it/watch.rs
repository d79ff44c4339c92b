//! The watch feed's sharing: the watchers of one group (namespace, context,
//! principal) get the same event, and a front door's encoding of it is
//! made once, whoever sends it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use confstrata_core::ChangeSet;
use confstrata_core::serde_json::json;
use confstrata_core::view::WatchEvent;
use confstrata_engine::Caller;
use confstrata_host::watch::{self, Encoding, Event, WatchSpec};
use futures_util::StreamExt as _;

fn cs(v: confstrata_core::serde_json::Value) -> ChangeSet {
    confstrata_core::serde_json::from_value(v).unwrap()
}

/// Counts its encodings; the bytes name the revision.
struct Counted;
static ENCODED: AtomicUsize = AtomicUsize::new(0);

impl Encoding for Counted {
    fn encode(event: &WatchEvent) -> Bytes {
        ENCODED.fetch_add(1, Ordering::SeqCst);
        match event {
            WatchEvent::Change { info, .. } => Bytes::from(format!("counted {}", info.revision)),
            _ => Bytes::from_static(b"counted other"),
        }
    }
}

/// Another front door's encoding of the same events.
struct Other;

impl Encoding for Other {
    fn encode(_: &WatchEvent) -> Bytes {
        Bytes::from_static(b"other")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_shares_each_event_and_its_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let engine = confstrata_host::open(dir.path()).unwrap();
    let ops = Caller::local("ops");
    engine
        .commit(
            &ops,
            &cs(json!({"ops": [
                {"op": "put-namespace", "spec": {"name": "p", "levels": ["defaults"]}},
                {"op": "put", "namespace": "p", "layer": "defaults", "document": {"v": 0}}]})),
        )
        .unwrap();
    let host = confstrata_host::Host::new(engine.clone()).unwrap();
    let spec = WatchSpec {
        namespace: "p".parse().unwrap(),
        context: None,
        start_revision: 0,
    };
    let open = |who: &str| {
        Box::pin(watch::stream(
            engine.clone(),
            host.watches(),
            Caller::local(who),
            spec.clone(),
        ))
    };
    let (mut a, mut b, mut c) = (open("alice"), open("alice"), open("carol"));
    // Each starts with its caught-up marker.
    for s in [&mut a, &mut b, &mut c] {
        let first = s.next().await.unwrap().unwrap();
        assert!(
            matches!(first.get(), WatchEvent::CaughtUp { .. }),
            "{first:?}"
        );
    }
    let rev = engine
        .commit(
            &ops,
            &cs(json!({"ops": [{"op": "set", "namespace": "p", "layer": "defaults", "key": "v", "value": 1}]})),
        )
        .unwrap()
        .revision;
    let next = |e: Arc<Event>| {
        let WatchEvent::Change { info, .. } = e.get() else {
            panic!("not a change: {e:?}");
        };
        assert_eq!(info.revision, rev);
        e
    };
    let ea = next(a.next().await.unwrap().unwrap());
    let eb = next(b.next().await.unwrap().unwrap());
    let ec = next(c.next().await.unwrap().unwrap());
    assert!(Arc::ptr_eq(&ea, &eb), "one group, one event");
    assert!(!Arc::ptr_eq(&ea, &ec), "another principal is another group");

    let before = ENCODED.load(Ordering::SeqCst);
    let expected = Bytes::from(format!("counted {rev}"));
    assert_eq!(ea.encoded::<Counted>(), expected);
    assert_eq!(eb.encoded::<Counted>(), expected);
    assert_eq!(
        ENCODED.load(Ordering::SeqCst) - before,
        1,
        "encoded once for the group"
    );
    assert_eq!(ec.encoded::<Counted>(), expected);
    assert_eq!(
        ENCODED.load(Ordering::SeqCst) - before,
        2,
        "the other group's own"
    );
    // A second encoding of an event never gets the first one's bytes.
    assert_eq!(ea.encoded::<Other>(), Bytes::from_static(b"other"));
    assert_eq!(ea.encoded::<Counted>(), expected);
}

/// A watcher of a namespace hears of changes to what it imports: a
/// namespace watch of every change there, a context watch of those to the
/// import's layers for its context (with the importer resolved anew); a
/// change elsewhere reaches neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_importer_watcher_hears_of_changes_to_its_imports() {
    let dir = tempfile::tempdir().unwrap();
    let engine = confstrata_host::open(dir.path()).unwrap();
    let ops = Caller::local("ops");
    engine
        .commit(
            &ops,
            &cs(json!({"ops": [
                {"op": "put-namespace", "spec": {"name": "shared/log", "levels": ["defaults", "env/{env}"]}},
                {"op": "put", "namespace": "shared/log", "layer": "defaults", "document": {"level": "info"}},
                {"op": "put-namespace", "spec": {"name": "other", "levels": ["defaults"]}},
                {"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults", "env/{env}"],
                    "imports": ["shared/log"]}},
                {"op": "put", "namespace": "web", "layer": "defaults", "document": {"port": 1}}]})),
        )
        .unwrap();
    let host = confstrata_host::Host::new(engine.clone()).unwrap();
    let open = |context: Option<confstrata_core::Context>| {
        Box::pin(watch::stream(
            engine.clone(),
            host.watches(),
            Caller::local("alice"),
            WatchSpec {
                namespace: "web".parse().unwrap(),
                context,
                start_revision: 0,
            },
        ))
    };
    let prod = confstrata_core::parse_context("env=prod").unwrap();
    let (mut all, mut in_prod) = (open(None), open(Some(prod)));
    for s in [&mut all, &mut in_prod] {
        let first = s.next().await.unwrap().unwrap();
        assert!(matches!(first.get(), WatchEvent::CaughtUp { .. }));
    }
    let commit =
        |v: confstrata_core::serde_json::Value| engine.commit(&ops, &cs(v)).unwrap().revision;
    let elsewhere = commit(
        json!({"ops": [{"op": "put", "namespace": "other", "layer": "defaults", "document": {"x": 1}}]}),
    );
    let dev = commit(
        json!({"ops": [{"op": "set", "namespace": "shared/log", "layer": "env/dev", "key": "level", "value": "debug"}]}),
    );
    let prod_rev = commit(
        json!({"ops": [{"op": "set", "namespace": "shared/log", "layer": "env/prod", "key": "level", "value": "warn"}]}),
    );
    let change = |e: Arc<Event>| match e.get() {
        WatchEvent::Change {
            info,
            items,
            resolved_json,
        } => (
            info.revision,
            items
                .iter()
                .map(|i| i.namespace.to_string())
                .collect::<Vec<_>>(),
            resolved_json.clone(),
        ),
        other => panic!("not a change: {other:?}"),
    };
    // The namespace watch: both changes to the import, not the other one.
    let (rev, items, _) = change(all.next().await.unwrap().unwrap());
    assert_eq!((rev, items), (dev, vec!["shared/log".to_owned()]));
    let (rev, _, _) = change(all.next().await.unwrap().unwrap());
    assert_eq!(rev, prod_rev);
    // The context watch: only the import's env/prod, resolved anew.
    let (rev, _, resolved) = change(in_prod.next().await.unwrap().unwrap());
    assert_eq!(rev, prod_rev, "not {elsewhere} nor {dev}");
    let resolved: confstrata_core::serde_json::Value =
        confstrata_core::serde_json::from_str(&resolved.unwrap()).unwrap();
    assert_eq!(resolved, json!({"level": "warn", "port": 1}));
}
