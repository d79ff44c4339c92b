//! Watch: events as they happen, resumption without gaps, retention and
//! future revisions answered with OUT_OF_RANGE, many watchers, and clean
//! ends on disconnect and shutdown.

use std::time::Duration;

use confstrata_core::{RetentionPolicy, Timestamp};
use confstrata_proto::v1;
use serde_json::json;
use tokio_stream::StreamExt as _;
use tonic::Code;
use tonic_types::StatusExt;

use crate::{Server, change_set, ctx, parse};

/// A hang guard only: tests never assert on time.
const GUARD: Duration = Duration::from_secs(60);

async fn set(s: &mut Server, layer: &str, key: &str, value: &str) -> u64 {
    s.client
        .set_keys(v1::SetKeysRequest {
            namespace: "web".into(),
            layer: layer.into(),
            entries: vec![v1::KeyValue {
                key: key.into(),
                value_json: value.into(),
                secret: false,
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .commit
        .unwrap()
        .revision
}

async fn next(stream: &mut tonic::Streaming<v1::WatchResponse>) -> v1::WatchResponse {
    tokio::time::timeout(GUARD, stream.next())
        .await
        .expect("watch event")
        .expect("stream open")
        .expect("event")
}

/// Reads events until the caught-up marker; returns the revisions before it.
async fn backlog(stream: &mut tonic::Streaming<v1::WatchResponse>) -> (Vec<u64>, u64) {
    let mut revs = Vec::new();
    loop {
        let e = next(stream).await;
        match e.info {
            Some(i) => revs.push(i.revision),
            None => return (revs, e.caught_up_revision),
        }
    }
}

fn req(namespace: &str, context: &[(&str, &str)], start: u64) -> v1::WatchRequest {
    v1::WatchRequest {
        namespace: namespace.into(),
        context: ctx(context),
        start_revision: start,
        resolve: false,
    }
}

#[tokio::test]
async fn an_empty_context_can_be_watched_resolved() {
    let mut s = Server::start().await;
    s.seed().await;
    // `web` at the empty context resolves `defaults` only.
    let mut w = s
        .client
        .watch(v1::WatchRequest {
            resolve: true,
            ..req("web", &[], 0)
        })
        .await
        .unwrap()
        .into_inner();
    backlog(&mut w).await;
    set(&mut s, "env/prod", "x", "1").await; // not part of the empty context
    let r = set(&mut s, "defaults", "x", "2").await;
    let e = next(&mut w).await;
    assert_eq!(e.info.unwrap().revision, r);
    assert_eq!(
        parse(&e.resolved_json),
        json!({"db": {"host": "localhost", "pool": 5}, "debug": true, "x": 2})
    );
    s.stop().await;
}

#[tokio::test]
async fn namespace_and_context_watches_see_every_change() {
    let mut s = Server::start().await;
    s.seed().await;
    let mut all = s
        .client
        .watch(req("web", &[], 1))
        .await
        .unwrap()
        .into_inner();
    let (revs, caught_up) = backlog(&mut all).await;
    assert_eq!((revs, caught_up), (vec![1], 1));
    let mut prod = s
        .client
        .watch(req("web", &[("env", "prod")], 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(backlog(&mut prod).await, (vec![], 1));

    let r2 = set(&mut s, "env/dev", "a", "1").await; // not in env=prod
    let r3 = set(&mut s, "env/prod", "db.pool", "50").await;
    let e = next(&mut all).await;
    assert_eq!(e.info.unwrap().revision, r2);
    assert_eq!(e.items[0].layer, "env/dev");
    assert_eq!(next(&mut all).await.info.unwrap().revision, r3);
    // The context watch skips r2 and carries the new resolved document.
    let e = next(&mut prod).await;
    assert_eq!(e.info.unwrap().revision, r3);
    assert_eq!(
        parse(&e.resolved_json),
        json!({"db": {"host": "db.prod", "pool": 50}, "debug": false})
    );
    s.stop().await;
}

#[tokio::test]
async fn a_reconnecting_watcher_misses_nothing() {
    let mut s = Server::start().await;
    s.seed().await;
    let mut w = s
        .client
        .watch(req("web", &[], 0))
        .await
        .unwrap()
        .into_inner();
    backlog(&mut w).await;
    let r2 = set(&mut s, "defaults", "n", "2").await;
    let last = next(&mut w).await.info.unwrap().revision;
    assert_eq!(last, r2);
    drop(w); // disconnect mid-stream
    let mut missed = Vec::new();
    for n in 3..=6 {
        missed.push(set(&mut s, "defaults", "n", &n.to_string()).await);
    }
    let mut w = s
        .client
        .watch(req("web", &[], last + 1))
        .await
        .unwrap()
        .into_inner();
    let (revs, caught_up) = backlog(&mut w).await;
    assert_eq!(revs, missed);
    assert_eq!(caught_up, 6);
    let r7 = set(&mut s, "defaults", "n", "7").await;
    assert_eq!(next(&mut w).await.info.unwrap().revision, r7);

    // The server kept serving through the disconnect.
    assert_eq!(s.snapshot().await["revision"], 7);
    s.stop().await;
}

#[tokio::test]
async fn compacted_and_future_starts_are_out_of_range() {
    let mut s = Server::start().await;
    s.seed().await;
    for n in 0..5 {
        set(&mut s, "defaults", "n", &n.to_string()).await;
    }
    let report = s
        .engine
        .store()
        .apply_retention(
            &RetentionPolicy {
                keep_versions: 1,
                keep_days: 0,
            },
            Timestamp(i64::MAX),
        )
        .unwrap();
    assert_eq!(report.oldest_revision, 6);
    let mut w = s
        .client
        .watch(req("web", &[], 2))
        .await
        .unwrap()
        .into_inner();
    let e = tokio::time::timeout(GUARD, w.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
    assert_eq!(
        e.get_details_error_info().unwrap().metadata["oldest_revision"],
        "6"
    );
    // From the oldest retained revision on, it works.
    let mut w = s
        .client
        .watch(req("web", &[], 6))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(backlog(&mut w).await, (vec![6], 6));

    let mut w = s
        .client
        .watch(req("web", &[], 99))
        .await
        .unwrap()
        .into_inner();
    let e = tokio::time::timeout(GUARD, w.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
    let e = s.client.watch(req("../x", &[], 0)).await;
    let e = match e {
        Err(e) => e,
        Ok(mut stream) => tokio::time::timeout(GUARD, stream.get_mut().next())
            .await
            .unwrap()
            .unwrap()
            .unwrap_err(),
    };
    assert_eq!(e.code(), Code::InvalidArgument);
    let mut w = s
        .client
        .watch(req("nope", &[], 0))
        .await
        .unwrap()
        .into_inner();
    let e = tokio::time::timeout(GUARD, w.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let mut w = s
        .client
        .watch(req("web", &[("env", "qa")], 0))
        .await
        .unwrap()
        .into_inner();
    let e = tokio::time::timeout(GUARD, w.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    s.stop().await;
}

#[tokio::test]
async fn a_thousand_watchers_each_get_every_event() {
    let mut s = Server::start().await;
    s.seed().await;
    let mut streams = Vec::new();
    for i in 0..1000 {
        let context: &[(&str, &str)] = if i % 2 == 0 { &[] } else { &[("env", "prod")] };
        let mut w = s
            .client
            .watch(req("web", context, 0))
            .await
            .unwrap()
            .into_inner();
        backlog(&mut w).await;
        streams.push(w);
    }
    let cs = change_set(
        json!([{"set": {"namespace": "web", "layer": "env/prod", "key": "x", "value_json": "1"}}]),
    );
    let rev = s
        .client
        .commit(crate::req::commit(cs))
        .await
        .unwrap()
        .into_inner()
        .commit
        .unwrap()
        .revision;
    for w in &mut streams {
        assert_eq!(next(w).await.info.unwrap().revision, rev);
    }
    s.stop().await;
}

#[tokio::test]
async fn shutdown_ends_watches_cleanly() {
    let mut s = Server::start().await;
    s.seed().await;
    let mut w = s
        .client
        .watch(req("web", &[], 0))
        .await
        .unwrap()
        .into_inner();
    backlog(&mut w).await;
    let dir = s.stop().await;
    // The stream ends without an error status.
    let end = tokio::time::timeout(GUARD, w.next()).await.unwrap();
    assert!(matches!(end, None | Some(Ok(_))), "{end:?}");
    // The store was closed and reopens with everything in it.
    let mut s = Server::start_in(dir, "127.0.0.1:0").await;
    assert_eq!(s.snapshot().await["revision"], 1);
    s.stop().await;
}

#[tokio::test]
async fn each_watcher_sees_its_own_view_of_sealed_values() {
    let mut s = Server::start().await;
    s.seed().await;
    let admin = confstrata_engine::Caller::local("test");
    let mut clients = Vec::new();
    for (id, role) in [("vic", "viewer"), ("rita", "secret-reader")] {
        s.engine
            .add_principal(
                &admin,
                id,
                id,
                confstrata_engine::PrincipalKind::User,
                &[role.into()],
            )
            .unwrap();
        let t = s.engine.issue_token(&admin, id, "test").unwrap();
        let c = crate::client_with(s.addr, Some(&format!("Bearer {}", t.expose_secret()))).await;
        clients.push(c);
    }
    let mut streams = Vec::new();
    for c in &mut clients {
        let mut st = c
            .watch(req("web", &[("env", "prod")], 0))
            .await
            .unwrap()
            .into_inner();
        backlog(&mut st).await;
        streams.push(st);
    }
    s.client
        .set_keys(v1::SetKeysRequest {
            namespace: "web".into(),
            layer: "env/prod".into(),
            entries: vec![v1::KeyValue {
                key: "db.pass".into(),
                value_json: "\"watch-canary\"".into(),
                secret: true,
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    let vic = next(&mut streams[0]).await;
    let rita = next(&mut streams[1]).await;
    assert_eq!(parse(&vic.resolved_json)["db"]["pass"], "<sealed>");
    assert!(!vic.resolved_json.contains("watch-canary"));
    assert_eq!(parse(&rita.resolved_json)["db"]["pass"], "watch-canary");
}

/// Thousands of watches opened at once on one connection: each request's
/// small DATA frame waits in the server's HTTP/2 layer until its handler
/// reads it, and h2's budget for such frames (half the connection window)
/// once closed the whole connection (GOAWAY "too_many_data_frames"), so
/// every watch on it failed with "broken pipe". Every one must open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_watches_on_one_connection_all_open() {
    let mut s = Server::start().await;
    s.seed().await;
    let opens: Vec<_> = (0..4000)
        .map(|i| {
            let mut client = s.client.clone();
            tokio::spawn(async move {
                let context: &[(&str, &str)] = if i % 2 == 0 { &[] } else { &[("env", "prod")] };
                let mut w = client.watch(req("web", context, 0)).await?.into_inner();
                // Its first answer (the backlog) arrives on the stream.
                w.message().await?;
                Ok::<_, tonic::Status>(w)
            })
        })
        .collect();
    let mut open = Vec::new();
    for o in opens {
        match o.await.unwrap() {
            Ok(w) => open.push(w),
            Err(e) => panic!("a watch failed to open after {} opened: {e}", open.len()),
        }
    }
    assert_eq!(open.len(), 4000);
    drop(open);
    s.stop().await;
}
