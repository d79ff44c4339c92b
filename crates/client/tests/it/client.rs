//! Every RPC through `Client`, on model types, with the server's errors.

use confstrata_client::model::serde_json::json;
use confstrata_client::model::{At, Context, NamespaceSpec, Op, parse_context, serde_json};
use confstrata_client::{Code, Error, LayerStatus, WatchEvent, WriteOptions};
use futures_util::StreamExt;

use crate::{GUARD, Server, change_set, seed};

fn ctx(text: &str) -> Context {
    parse_context(text).unwrap()
}

#[tokio::test]
async fn crud_resolve_explain_diff_history_and_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = server.client().await;
    assert_eq!(client.addr(), format!("http://{}", server.addr));
    let web = "web".parse().unwrap();

    // Namespaces.
    let spec: NamespaceSpec = serde_json::from_value(json!({
        "name": "pay", "description": "payments", "levels": ["defaults", "env/{env}"]
    }))
    .unwrap();
    let (created, commit) = client.create_namespace(&spec, false, "ann").await.unwrap();
    assert_eq!((created.spec.clone(), created.revision), (spec.clone(), 1));
    assert_eq!(commit.revision, 1);
    let again = client
        .create_namespace(&spec, false, "ann")
        .await
        .unwrap_err();
    assert!(again.is_already_exists(), "{again}");
    let c1 = client.commit(&seed()).await.unwrap();
    assert_eq!(c1.revision, 2);
    assert_eq!(client.revision().await.unwrap(), 2);
    let names: Vec<String> = client
        .namespaces(At::Latest)
        .await
        .unwrap()
        .iter()
        .map(|n| n.spec.name.to_string())
        .collect();
    assert_eq!(names, ["pay", "web"]);
    assert_eq!(client.namespaces(At::Revision(1)).await.unwrap().len(), 1);
    assert_eq!(
        client
            .namespace(&web, At::Latest)
            .await
            .unwrap()
            .spec
            .levels
            .len(),
        3
    );

    // Layers.
    let prod = "env/prod".parse().unwrap();
    let layer = client.layer(&web, &prod, At::Latest).await.unwrap();
    assert_eq!(
        (layer.revision, layer.document["db"]["host"].clone()),
        (2, json!("db.prod"))
    );
    let c3 = client
        .set_keys(
            &web,
            &prod,
            &[
                ("db.pool".parse().unwrap(), json!(50)),
                ("features.\"new.checkout\"".parse().unwrap(), json!(true)),
            ],
            &WriteOptions::message("tune")
                .author("bob")
                .expect_revision(2),
        )
        .await
        .unwrap();
    assert_eq!(c3.revision, 3);
    let listed = client.layers(&web, At::Latest).await.unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[1].document["features"]["new.checkout"], json!(true));

    // A stale precondition is a conflict naming the store's revision.
    let stale = client
        .set_keys(
            &web,
            &prod,
            &[("db.pool".parse().unwrap(), json!(1))],
            &WriteOptions::default().expect_revision(2),
        )
        .await
        .unwrap_err();
    assert!(stale.is_conflict(), "{stale}");
    assert_eq!(stale.current_revision(), Some(3));
    assert!(stale.to_string().contains("expected revision 2"), "{stale}");

    // Resolve, with provenance.
    let eu = ctx("env=prod,region=eu");
    let r = client.resolve(&web, &eu, At::Latest, true).await.unwrap();
    assert_eq!(r.revision, 3);
    assert_eq!(
        serde_json::Value::Object(r.document.clone()),
        json!({"db": {"host": "db.prod", "pool": 20}, "debug": false, "name": "web",
               "features": {"new.checkout": true}})
    );
    let layers: Vec<String> = r.layers.iter().map(|p| p.layer.to_string()).collect();
    assert_eq!(layers, ["defaults", "env/prod", "env/prod/region/eu"]);
    let prov: Vec<(String, String)> = r
        .provenance
        .iter()
        .map(|(k, p)| (k.to_string(), p.layer.to_string()))
        .collect();
    assert_eq!(
        prov,
        [
            ("db.host".into(), "env/prod".into()),
            ("db.pool".into(), "env/prod/region/eu".into()),
            ("debug".into(), "env/prod".into()),
            ("features.\"new.checkout\"".into(), "env/prod".into()),
            ("name".into(), "defaults".into()),
        ]
    );
    let without = client
        .resolve(&web, &eu, At::Revision(2), false)
        .await
        .unwrap();
    assert!(without.provenance.is_empty());
    assert_eq!(without.document["db"]["pool"], json!(20));
    assert_eq!(without.revision, 2);

    // Explain names every layer and the change behind it.
    let x = client
        .explain(
            &web,
            &ctx("env=prod"),
            &"db.pool".parse().unwrap(),
            At::Latest,
        )
        .await
        .unwrap();
    assert_eq!(x.explanation.value, Some(json!(50)));
    let from = x.explanation.from.clone().unwrap();
    assert_eq!(
        (from.layer.to_string(), from.revision),
        ("env/prod".into(), 3)
    );
    assert_eq!(x.explanation.entries.len(), 2);
    assert!(x.explanation.entries[0].winner);
    // The author is the authenticated principal, whatever the request said.
    assert_eq!(x.changes[&3].author, "admin");
    assert_eq!(x.changes[&3].message, "tune");

    // Diffs: two layers, two contexts, the namespace over time.
    let defaults = "defaults".parse().unwrap();
    let d = client
        .diff_layers(&web, (&defaults, At::Latest), (&prod, At::Latest))
        .await
        .unwrap();
    let keys: Vec<String> = d.iter().map(|e| e.key.to_string()).collect();
    assert_eq!(keys, ["db.host", "db.pool", "debug", "features", "name"]);
    let over_time = client
        .diff_layers(&web, (&prod, At::Revision(2)), (&prod, At::Latest))
        .await
        .unwrap();
    assert_eq!(over_time.len(), 2);
    let d = client
        .diff_contexts(
            &web,
            (&ctx("env=dev"), At::Latest),
            (&ctx("env=prod"), At::Latest),
        )
        .await
        .unwrap();
    assert!(d.iter().any(|e| e.key.to_string() == "db.host"));
    let d = client
        .diff_revisions(&web, None, At::Revision(1), At::Latest)
        .await
        .unwrap();
    assert_eq!(d.len(), 3);
    assert!(d.iter().all(|l| l.status == LayerStatus::Created));

    // Unset, delete, history.
    client
        .unset_keys(
            &web,
            &prod,
            &["features".parse().unwrap()],
            &WriteOptions::message("drop"),
        )
        .await
        .unwrap();
    let eu_layer = "env/prod/region/eu".parse().unwrap();
    let c5 = client
        .delete_layer(
            &web,
            &eu_layer,
            &WriteOptions::message("no eu").expect_revision(2),
        )
        .await
        .unwrap();
    assert_eq!(c5.revision, 5);
    let gone = client.layer(&web, &eu_layer, At::Latest).await.unwrap_err();
    assert!(gone.is_not_found(), "{gone}");
    let h = client.history(&web, None, 100).await.unwrap();
    let revs: Vec<u64> = h.iter().map(|v| v.info.revision).collect();
    assert_eq!(revs, [5, 4, 3, 2, 2, 2]);
    assert!(h[0].document.is_none(), "revision 5 deleted the layer");
    let h = client.history(&web, Some(&prod), 2).await.unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].info.message, "drop");

    // Dry run, then rollback (dry and real).
    let cs = change_set(json!({"ops": [
        {"op": "set", "namespace": "web", "layer": "env/dev", "key": "debug", "value": "verbose"}
    ]}));
    let dry = client.dry_run(&cs).await.unwrap();
    assert_eq!(dry.revision, 5);
    assert_eq!(dry.layers[0].status, LayerStatus::Created);
    assert_eq!(dry.layers[0].changes[0].new, Some(json!("verbose")));
    assert_eq!(
        client.revision().await.unwrap(),
        5,
        "a dry run commits nothing"
    );
    let plan = client
        .rollback(&web, None, At::Revision(2), &WriteOptions::default(), true)
        .await
        .unwrap();
    assert!(plan.commit.is_none());
    let ops = plan.change_set.unwrap().ops;
    assert_eq!(ops.len(), 2);
    assert!(ops.iter().all(|o| matches!(o, Op::Put { .. })));
    let done = client
        .rollback(
            &web,
            None,
            At::Revision(2),
            &WriteOptions::message("undo"),
            false,
        )
        .await
        .unwrap();
    assert_eq!(done.commit.unwrap().revision, 6);
    let back = client.resolve(&web, &eu, At::Latest, false).await.unwrap();
    assert_eq!(back.document, without.document);
    let nothing = client
        .rollback(&web, None, At::Revision(2), &WriteOptions::default(), false)
        .await
        .unwrap();
    assert_eq!((nothing.commit, nothing.change_set), (None, None));
}

#[tokio::test]
async fn errors_carry_codes_and_fields() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = server.client().await;
    client.commit(&seed()).await.unwrap();
    let web = "web".parse().unwrap();

    let e = client
        .resolve(&"nope".parse().unwrap(), &Context::new(), At::Latest, false)
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert!(
        e.to_string().contains("namespace \"nope\" not found"),
        "{e}"
    );

    let e = client
        .resolve(&web, &ctx("env=qa"), At::Latest, false)
        .await
        .unwrap_err();
    assert!(e.is_invalid_argument(), "{e}");
    assert_eq!(e.field(), Some("context"));

    let e = client
        .resolve(&web, &Context::new(), At::Revision(99), false)
        .await
        .unwrap_err();
    assert!(e.is_out_of_range(), "{e}");
    assert_eq!(e.current_revision(), Some(1));

    // What the typed API cannot send, the raw stub can (with the token
    // sent by hand): a bad name names its field.
    let mut req = tonic::Request::new(confstrata_client::proto::GetLayerRequest {
        namespace: "web".into(),
        layer: "../etc".into(),
        at: None,
    });
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", server.token).parse().unwrap(),
    );
    let status = client.raw().get_layer(req).await.unwrap_err();
    let e = Error::from(status);
    assert_eq!(
        (e.code(), e.field()),
        (Some(Code::InvalidArgument), Some("layer"))
    );
}

#[tokio::test]
async fn a_raw_watch_sends_the_backlog_then_caught_up_then_live_changes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = server.client().await;
    client.commit(&seed()).await.unwrap();
    let web = "web".parse().unwrap();
    client
        .set_keys(
            &web,
            &"env/dev".parse().unwrap(),
            &[("debug".parse().unwrap(), json!(1))],
            &WriteOptions::default(),
        )
        .await
        .unwrap();
    let mut events = client.watch(&web, None, 1).await.unwrap();
    let mut next = async || {
        tokio::time::timeout(GUARD, events.next())
            .await
            .expect("hang guard")
            .expect("the stream ended")
            .unwrap()
    };
    let revs = |e: &WatchEvent| match e {
        WatchEvent::Change { info, .. } => info.revision,
        WatchEvent::CaughtUp { revision } => revision + 1000,
    };
    assert_eq!(revs(&next().await), 1);
    assert_eq!(revs(&next().await), 2);
    assert_eq!(next().await, WatchEvent::CaughtUp { revision: 2 });
    client
        .delete_layer(&web, &"env/dev".parse().unwrap(), &WriteOptions::default())
        .await
        .unwrap();
    let WatchEvent::Change {
        info,
        items,
        resolved,
    } = next().await
    else {
        panic!("expected a change")
    };
    assert_eq!(info.revision, 3);
    assert!(items[0].deleted);
    assert_eq!(resolved, None, "a namespace watch carries no document");
}
