//! What differs, over REST on a real server: a namespace and one layer
//! between revisions, two layers, two contexts, a declaration; bad
//! requests named.

use confstrata_core::serde_json::{self, Value, json};
use confstrata_engine::Caller;
use confstrata_http_api::HttpOptions;

use crate::Server;

async fn body(server: &Server, path: &str) -> (u16, Value) {
    let r = server.get(path).await;
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diffs_of_revisions_layers_contexts_and_declarations() {
    let server = Server::start(HttpOptions::default()).await;
    let before = server.host.engine().store().revision().unwrap();
    let cs = serde_json::from_value(json!({"author": "t", "message": "", "ops": [
        {"op": "put", "namespace": "web", "layer": "defaults", "document": {"a": 2, "b": true}},
        {"op": "put", "namespace": "web", "layer": "env/prod", "document": {"a": 3}},
        {"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults", "env/{env}"], "matrix": {"env": ["dev", "prod", "qa"]}}},
    ]}))
    .unwrap();
    let after = server
        .host
        .engine()
        .commit(&Caller::local("test"), &cs)
        .unwrap()
        .revision;

    let (status, d) = body(&server, &format!("/v1/namespaces/web/diff?from={before}")).await;
    assert_eq!(status, 200, "{d}");
    let layers: Vec<&str> = d["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["layer"].as_str().unwrap())
        .collect();
    assert_eq!(layers, ["defaults", "env/prod"], "{d}");
    assert_eq!(d["changes"], json!([]));

    let (_, d) = body(
        &server,
        &format!("/v1/namespaces/web/diff?from={before}&to={after}&layer=defaults"),
    )
    .await;
    let keys: Vec<(&str, &str)> = d["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["key"].as_str().unwrap(), c["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(keys, [("a", "changed"), ("b", "added")], "{d}");

    let (_, d) = body(
        &server,
        "/v1/namespaces/web/diff/layers?old=defaults&new=env%2Fprod",
    )
    .await;
    let keys: Vec<&str> = d["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["a", "b"], "{d}");
    // The old side at the revision before: `defaults` was `{"a": 1}`.
    let (_, d) = body(
        &server,
        &format!("/v1/namespaces/web/diff/layers?old=defaults&new=defaults&old_revision={before}"),
    )
    .await;
    assert_eq!(d["changes"].as_array().unwrap().len(), 2, "{d}");

    let (_, d) = body(
        &server,
        "/v1/namespaces/web/diff/contexts?old.env=dev&new.env=prod",
    )
    .await;
    assert_eq!(d["changes"][0]["key"], "a", "{d}");
    assert_eq!(d["changes"][0]["old"], 2);
    assert_eq!(d["changes"][0]["new"], 3);
    assert_eq!(d["changes"].as_array().unwrap().len(), 1);

    let (_, d) = body(
        &server,
        &format!("/v1/namespaces/web/declarations/diff?from={before}"),
    )
    .await;
    assert!(
        d["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["key"].as_str().unwrap().starts_with("matrix")),
        "{d}"
    );

    // Reads as of a revision, by `revision` or `at`; a time in the future
    // reads the newest state.
    let (_, old) = body(
        &server,
        &format!("/v1/namespaces/web/resolve?env=prod&at={before}"),
    )
    .await;
    assert_eq!(old["document"], json!({"a": 1}), "{old}");
    let (_, same) = body(
        &server,
        &format!("/v1/namespaces/web/resolve?env=prod&revision={before}"),
    )
    .await;
    assert_eq!(same["document"], old["document"]);
    let (_, now) = body(
        &server,
        "/v1/namespaces/web/resolve?env=prod&at=2999-01-01T00:00:00Z",
    )
    .await;
    assert_eq!(now["document"], json!({"a": 3, "b": true}), "{now}");

    // Bad requests, each named.
    for (path, field) in [
        ("/v1/namespaces/web/resolve?at=yesterday", "at"),
        ("/v1/namespaces/web/resolve?at=1&revision=1", "at"),
        ("/v1/namespaces/web/diff", "from"),
        ("/v1/namespaces/web/diff?from=x", "from"),
        ("/v1/namespaces/web/diff?from=1&layer=..%2Fetc", "layer"),
        ("/v1/namespaces/web/diff/layers?old=defaults", "new"),
        ("/v1/namespaces/web/diff/contexts?env=prod", "query"),
        (
            "/v1/namespaces/web/diff/contexts?old.env=staging&new.env=prod",
            "context",
        ),
        ("/v1/namespaces/web/declarations/diff?to=1", "from"),
    ] {
        let (status, d) = body(&server, path).await;
        assert_eq!(status, 400, "{path}: {d}");
        assert_eq!(d["errors"][0]["field"], field, "{path}: {d}");
    }
    let (status, _) = body(&server, "/v1/namespaces/nope/diff?from=1").await;
    assert_eq!(status, 404);
    server.stop().await;
}
