//! watch_resolved and Reloader: updates after commits, resumption without
//! gaps across a server restart on the same port, and giving up when the
//! resume revision was compacted away.

use std::time::Duration;

use confstrata_client::model::serde_json::json;
use confstrata_client::model::{RetentionPolicy, parse_context};
use confstrata_client::{
    Client, ConfstrataProvider, Reloader, ResolvedStream, ResolvedView, WatchOptions, WriteOptions,
};
use confstrata_engine::Caller;
use figment::Provider;
use futures_util::StreamExt;

use crate::{GUARD, Server, seed};

fn fast() -> WatchOptions {
    WatchOptions::default().backoff(Duration::from_millis(20), Duration::from_millis(200))
}

async fn next(stream: &mut ResolvedStream) -> ResolvedView {
    tokio::time::timeout(GUARD, stream.next())
        .await
        .expect("hang guard: no update")
        .expect("the stream ended")
        .expect("the stream failed")
}

async fn set_pool(client: &Client, pool: u32) -> u64 {
    client
        .set_keys(
            &"web".parse().unwrap(),
            &"env/prod".parse().unwrap(),
            &[("db.pool".parse().unwrap(), json!(pool))],
            &WriteOptions::message(format!("pool {pool}")),
        )
        .await
        .unwrap()
        .revision
}

fn commit_offline(data: &std::path::Path, pool: u32) -> u64 {
    let engine = confstrata_host::open(data).unwrap();
    let mut cs = seed();
    cs.ops = vec![confstrata_client::model::Op::Set {
        namespace: "web".parse().unwrap(),
        layer: "env/prod".parse().unwrap(),
        key: "db.pool".parse().unwrap(),
        value: json!(pool),
        secret: false,
        expect_revision: None,
    }];
    engine.commit(&Caller::local("test"), &cs).unwrap().revision
}

#[tokio::test]
async fn watch_resolved_follows_commits_and_resumes_after_a_restart_without_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let port = server.addr.port();
    let client = server.client().await;
    client.commit(&seed()).await.unwrap();
    let web = "web".parse().unwrap();
    let ctx = parse_context("env=prod").unwrap();

    // A lazy client: it must outlive the server it first talked to.
    let watcher = Client::connect_lazy(&server.addr(), server.options()).unwrap();
    let mut stream = watcher.watch_resolved_with(&web, &ctx, fast());
    let first = next(&mut stream).await;
    assert_eq!(first.revision, 1);
    assert_eq!(first.document["db"]["pool"], json!(5));
    assert_eq!(first.layers.len(), 2, "the first item comes from resolve");

    let r2 = set_pool(&client, 10).await;
    let update = next(&mut stream).await;
    assert_eq!(
        (update.revision, update.document["db"]["pool"].clone()),
        (r2, json!(10))
    );

    // A change outside the context's layers is not an update of it.
    client
        .set_keys(
            &web,
            &"env/dev".parse().unwrap(),
            &[("debug".parse().unwrap(), json!(1))],
            &WriteOptions::default(),
        )
        .await
        .unwrap();

    // Down: revisions are committed straight to the store meanwhile.
    drop(client);
    server.stop().await;
    let r4 = commit_offline(dir.path(), 40);
    let r5 = commit_offline(dir.path(), 50);
    assert_eq!((r4, r5), (4, 5));

    // Back on the same port and data: the stream resumes from its last
    // revision + 1 and reports every revision missed, in order.
    let server = Server::start_on(dir.path(), port);
    assert_eq!(server.addr.port(), port);
    let client = server.client().await;
    let r6 = set_pool(&client, 60).await;
    let mut seen = Vec::new();
    while seen.last().map(|(r, _)| *r) != Some(r6) {
        let u = next(&mut stream).await;
        seen.push((u.revision, u.document["db"]["pool"].clone()));
    }
    assert_eq!(seen, [(4, json!(40)), (5, json!(50)), (6, json!(60))]);
}

#[tokio::test]
async fn watch_resolved_gives_up_when_the_resume_revision_was_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = server.client().await;
    client.commit(&seed()).await.unwrap();
    let watcher = Client::connect_lazy(&server.addr(), server.options()).unwrap();
    let mut stream = watcher.watch_resolved_with(
        &"web".parse().unwrap(),
        &parse_context("env=prod").unwrap(),
        fast(),
    );
    assert_eq!(next(&mut stream).await.revision, 1);

    drop(client);
    let server = {
        let port = server.addr.port();
        server.stop().await;
        commit_offline(dir.path(), 2);
        let last = commit_offline(dir.path(), 3);
        // Keep only the latest state. Retention counts days from "now" in
        // milliseconds: retry (bounded) until the clock has passed the
        // last commit and the floor reaches it.
        let engine = confstrata_host::open(dir.path()).unwrap();
        let policy = RetentionPolicy {
            keep_versions: 1,
            keep_days: 0,
        };
        let mut floor = 0;
        for _ in 0..10_000 {
            floor = engine
                .apply_retention(&Caller::local("test"), &policy)
                .unwrap()
                .oldest_revision;
            if floor == last {
                break;
            }
            std::thread::yield_now();
        }
        assert_eq!(floor, last);
        drop(engine);
        Server::start_on(dir.path(), port)
    };

    let end = tokio::time::timeout(GUARD, stream.next())
        .await
        .expect("hang guard")
        .expect("the stream ended without saying why");
    let err = end.unwrap_err();
    assert!(err.is_out_of_range(), "{err}");
    assert!(err.to_string().contains("compacted"), "{err}");
    assert!(
        tokio::time::timeout(GUARD, stream.next())
            .await
            .unwrap()
            .is_none(),
        "the stream ends after the error"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_reloader_keeps_the_latest_and_rewrites_the_fallback_file() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let file = cache.path().join("web.json");
    let server = Server::start(dir.path());
    let client = server.client().await;
    client.commit(&seed()).await.unwrap();
    let ctx = parse_context("env=prod").unwrap();

    let reloader = Reloader::builder(&client, "web".parse().unwrap(), ctx.clone())
        .fallback_file(&file)
        .watch_options(fast())
        .start()
        .await
        .unwrap();
    assert_eq!(reloader.current().revision, 1);
    let mut updates = reloader.subscribe();
    let r2 = set_pool(&client, 99).await;
    let stopped = tokio::time::timeout(GUARD, async {
        while updates.borrow_and_update().revision < r2 {
            if updates.changed().await.is_err() {
                return true;
            }
        }
        false
    })
    .await
    .expect("hang guard: no update");
    if stopped {
        // Say why the reloader gave up, not only that it did.
        panic!("the reloader stopped: {:?}", reloader.join().await);
    }
    let current = reloader.current();
    assert_eq!(current.document["db"]["pool"], json!(99));
    assert_eq!(
        current.layers.len(),
        2,
        "the layer list is kept across updates"
    );

    // The file was rewritten before the update was published: with the
    // server gone, a provider serves revision 2 from it.
    let addr = server.addr();
    drop(reloader);
    drop(client);
    server.stop().await;
    let provider = ConfstrataProvider::new(addr, "web", ctx).fallback_file(&file);
    let meta = provider.metadata();
    assert!(
        meta.name.contains("fallback file, revision 2"),
        "{}",
        meta.name
    );
    let data = provider.data().unwrap();
    let db = data[&figment::Profile::Default]["db"]
        .clone()
        .into_dict()
        .unwrap();
    assert_eq!(db["pool"].to_u128(), Some(99));
}
