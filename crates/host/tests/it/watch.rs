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
