//! Every RPC over TCP, plus health and reflection.

use confstrata_proto::v1;
use serde_json::json;
use tokio_stream::StreamExt as _;

use crate::{Server, at_rev, change_set, ctx, parse};

#[tokio::test]
async fn namespaces_layers_and_keys() {
    let mut s = Server::start().await;
    let spec = v1::NamespaceSpec {
        name: "web".into(),
        description: "d".into(),
        validation_json: String::new(),
        template: None,
        imports: Vec::new(),
        generators: Vec::new(),
        levels: vec!["defaults".into(), "env/{env}".into()],
        matrix: [(
            "env".to_owned(),
            v1::MatrixValues {
                values: vec!["dev".into(), "prod".into()],
            },
        )]
        .into(),
    };
    let r = s
        .client
        .create_namespace(v1::CreateNamespaceRequest {
            spec: Some(spec.clone()),
            replace: false,
            author: "ana".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.commit.unwrap().revision, 1);
    assert_eq!(r.namespace.unwrap().spec.unwrap(), spec);
    let e = s
        .client
        .create_namespace(v1::CreateNamespaceRequest {
            spec: Some(spec.clone()),
            replace: false,
            author: "ana".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::AlreadyExists, "{e:?}");

    let c = s
        .client
        .put_layer(v1::PutLayerRequest {
            namespace: "web".into(),
            layer: "defaults".into(),
            document_json: r#"{"db": {"pool": 5, "big": 9007199254740993}}"#.into(),
            expect_revision: Some(0),
            message: "init".into(),
            author: "ana".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.commit.unwrap().revision, 2);
    s.client
        .set_keys(v1::SetKeysRequest {
            namespace: "web".into(),
            layer: "env/prod".into(),
            entries: vec![
                v1::KeyValue {
                    key: "db.pool".into(),
                    value_json: "50".into(),
                    secret: false,
                },
                v1::KeyValue {
                    key: "labels.\"app.io/name\"".into(),
                    value_json: "\"shop\"".into(),
                    secret: false,
                },
            ],
            expect_revision: None,
            message: String::new(),
            author: String::new(),
        })
        .await
        .unwrap();
    s.client
        .unset_keys(v1::UnsetKeysRequest {
            namespace: "web".into(),
            layer: "env/prod".into(),
            keys: vec!["labels".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let l = s
        .client
        .get_layer(v1::GetLayerRequest {
            namespace: "web".into(),
            layer: "env/prod".into(),
            at: None,
        })
        .await
        .unwrap()
        .into_inner()
        .layer
        .unwrap();
    assert_eq!(parse(&l.document_json), json!({"db": {"pool": 50}}));
    assert_eq!(l.revision, 4);
    let old = s
        .client
        .get_layer(v1::GetLayerRequest {
            namespace: "web".into(),
            layer: "env/prod".into(),
            at: at_rev(3),
        })
        .await
        .unwrap()
        .into_inner()
        .layer
        .unwrap();
    assert_eq!(
        parse(&old.document_json),
        json!({"db": {"pool": 50}, "labels": {"app.io/name": "shop"}})
    );

    let v = s
        .client
        .resolve(v1::ResolveRequest {
            namespace: "web".into(),
            context: ctx(&[("env", "prod")]),
            at: None,
            with_provenance: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        parse(&v.document_json),
        json!({"db": {"pool": 50, "big": 9007199254740993u64}})
    );
    assert_eq!(v.provenance["db.pool"].layer, "env/prod");
    assert_eq!(v.provenance["db.big"].layer, "defaults");
    assert_eq!(v.revision, 4);

    s.client
        .delete_layer(v1::DeleteLayerRequest {
            namespace: "web".into(),
            layer: "env/prod".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let list = s
        .client
        .list_layers(v1::ListLayersRequest {
            namespace: "web".into(),
            at: None,
            mask_secrets: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.layers.len(), 1);
    assert_eq!(list.revision, 5);
    let h = s
        .client
        .history(v1::HistoryRequest {
            namespace: "web".into(),
            layer: "env/prod".into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let revs: Vec<(u64, bool)> = h
        .versions
        .iter()
        .map(|v| (v.info.as_ref().unwrap().revision, v.deleted))
        .collect();
    assert_eq!(revs, [(5, true), (4, false), (3, false)]);
    let n = s
        .client
        .get_namespace(v1::GetNamespaceRequest {
            name: "web".into(),
            at: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(n.namespace.unwrap().revision, 1);
    s.stop().await;
}

#[tokio::test]
async fn explain_diff_dry_run_and_rollback() {
    let mut s = Server::start().await;
    s.seed().await;
    let x = s
        .client
        .explain(v1::ExplainRequest {
            namespace: "web".into(),
            context: ctx(&[("env", "prod")]),
            key: "db.host".into(),
            at: None,
        })
        .await
        .unwrap()
        .into_inner();
    let layers: Vec<(&str, bool)> = x
        .entries
        .iter()
        .map(|e| (e.layer.as_str(), e.winner))
        .collect();
    assert_eq!(layers, [("env/prod", true), ("defaults", false)]);
    assert_eq!(x.entries[0].change.as_ref().unwrap().author, "admin");
    assert_eq!(parse(&x.value_json), json!("db.prod"));

    use v1::diff_request::Comparison;
    let d = s
        .client
        .diff(v1::DiffRequest {
            namespace: "web".into(),
            comparison: Some(Comparison::Contexts(v1::ContextsComparison {
                old_context: ctx(&[("env", "dev")]),
                new_context: ctx(&[("env", "prod")]),
                ..Default::default()
            })),
        })
        .await
        .unwrap()
        .into_inner();
    let keys: Vec<&str> = d.changes.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, ["db.host", "debug"]);

    let cs = change_set(json!([
        {"set": {"namespace": "web", "layer": "defaults", "key": "db.pool", "value_json": "9"}},
        {"put": {"namespace": "web", "layer": "env/dev", "document_json": "{\"x\": 1}"}},
    ]));
    let dry = s
        .client
        .dry_run(v1::DryRunRequest {
            change_set: Some(cs.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    let st: Vec<(&str, i32)> = dry
        .layers
        .iter()
        .map(|l| (l.layer.as_str(), l.status))
        .collect();
    assert_eq!(
        st,
        [
            ("defaults", v1::layer_diff::Status::Changed as i32),
            ("env/dev", v1::layer_diff::Status::Created as i32)
        ]
    );
    assert_eq!(
        s.snapshot().await["revision"],
        1,
        "a dry run commits nothing"
    );
    s.client.commit(crate::req::commit(cs)).await.unwrap();

    let d = s
        .client
        .diff(v1::DiffRequest {
            namespace: "web".into(),
            comparison: Some(Comparison::Revisions(v1::RevisionsComparison {
                layer: String::new(),
                from: at_rev(1),
                to: None,
            })),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.layers.len(), 2);

    let plan = s
        .client
        .rollback(v1::RollbackRequest {
            namespace: "web".into(),
            to: at_rev(1),
            dry_run: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(plan.commit.is_none());
    assert_eq!(plan.change_set.unwrap().ops.len(), 2);
    let done = s
        .client
        .rollback(v1::RollbackRequest {
            namespace: "web".into(),
            to: at_rev(1),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.commit.unwrap().revision, 3);
    let v = s
        .client
        .resolve(crate::req::resolve("web", ctx(&[("env", "dev")])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        parse(&v.document_json),
        json!({"db": {"host": "localhost", "pool": 5}, "debug": true})
    );
    s.stop().await;
}

#[tokio::test]
async fn health_and_reflection_work_without_proto_files() {
    let s = Server::start().await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    for service in [
        "",
        "confstrata.v1.ConfigService",
        "confstrata.v1.AdminService",
    ] {
        let r = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            r.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{service:?}"
        );
    }

    // v1alpha is what most tools (and Python's grpcio-reflection) speak.
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("{resp:?}")
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"confstrata.v1.ConfigService"), "{names:?}");
    assert!(names.contains(&"confstrata.v1.AdminService"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");

    use tonic_reflection::pb::v1 as r1;
    let mut reflection = r1::server_reflection_client::ServerReflectionClient::new(channel);
    let req = r1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            r1::server_reflection_request::MessageRequest::FileContainingSymbol(
                "confstrata.v1.ConfigService".into(),
            ),
        ),
    };
    let mut stream = reflection
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.next().await.unwrap().unwrap();
    assert!(
        matches!(
            resp.message_response,
            Some(r1::server_reflection_response::MessageResponse::FileDescriptorResponse(_))
        ),
        "{resp:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn health_turns_not_serving_on_shutdown() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let s = Server::start().await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let mut watch = health
        .watch(tonic_health::pb::HealthCheckRequest {
            service: "confstrata.v1.ConfigService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    let stopping = tokio::spawn(s.stop());
    // The next status the server publishes, before it goes away, is NOT_SERVING.
    let next = tokio::time::timeout(std::time::Duration::from_secs(60), watch.next())
        .await
        .unwrap();
    match next {
        Some(Ok(r)) => assert_eq!(r.status, ServingStatus::NotServing as i32),
        other => panic!("expected NOT_SERVING, got {other:?}"),
    }
    stopping.await.unwrap();
}
