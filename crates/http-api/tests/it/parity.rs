//! Parity: one scripted sequence run over gRPC against one server and over
//! REST against another (each on a fresh store seeded alike) gives equal
//! results: revisions, documents, explanations, history, findings, and
//! errors by kind (the REST problem's code maps to the gRPC status code
//! through the two doors' tables).

use std::collections::HashMap;

use confstrata_core::serde_json::{self, Value, json};
use confstrata_core::{ErrorKind, ErrorKind as K};
use confstrata_http_api::HttpOptions;
use confstrata_proto::v1::{self, config_service_client::ConfigServiceClient};

use crate::Server;

/// What the sequence saw, step by step, in a form both APIs can give.
type Seen = Vec<(&'static str, Value)>;

/// An error as the kind the REST problem names, or the gRPC code.
fn kind_of_code(code: &str) -> ErrorKind {
    *ErrorKind::ALL
        .iter()
        .find(|k| k.as_str() == code)
        .unwrap_or_else(|| panic!("unknown problem code {code}"))
}

fn err(code: tonic::Code) -> Value {
    json!({"error": i32::from(code)})
}

/// The gRPC code the REST problem's kind maps to.
fn rest_err(body: &Value) -> Value {
    let kind = kind_of_code(body["code"].as_str().unwrap());
    err(confstrata_grpc_api::code_of(kind))
}

async fn over_grpc(server: &Server) -> Seen {
    let host = &server.host;
    let grpc = confstrata_grpc_api::router(host, &confstrata_grpc_api::ServeOptions::default())
        .await
        .unwrap();
    let doors = confstrata_host::Doors::new(confstrata_http_api::router(host))
        .with_http2(confstrata_grpc_api::CONTENT_TYPE, grpc);
    let (addr, stop, served) = crate::serve(host, doors).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let token: tonic::metadata::MetadataValue<_> =
        format!("Bearer {}", server.token).parse().unwrap();
    let mut c =
        ConfigServiceClient::with_interceptor(channel.clone(), move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", token.clone());
            Ok(r)
        });
    let ctx = |env: &str| HashMap::from([("env".to_owned(), env.to_owned())]);
    let mut seen = Seen::new();
    let put = |layer: &str, doc: Value, expect: Option<u64>| v1::PutLayerRequest {
        namespace: "web".into(),
        layer: layer.into(),
        document_json: doc.to_string(),
        expect_revision: expect,
        ..Default::default()
    };
    let r = c
        .put_layer(put(
            "defaults",
            json!({"db": {"pool": 5, "host": "h"}, "log": "info"}),
            None,
        ))
        .await
        .unwrap()
        .into_inner();
    seen.push(("put", json!(r.commit.unwrap().revision)));
    let r = c
        .set_keys(v1::SetKeysRequest {
            namespace: "web".into(),
            layer: "env/prod".into(),
            entries: vec![v1::KeyValue {
                key: "db.pool".into(),
                value_json: "40".into(),
                secret: false,
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    seen.push(("set", json!(r.commit.unwrap().revision)));
    let r = c
        .resolve(v1::ResolveRequest {
            namespace: "web".into(),
            context: ctx("prod"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let doc: Value = serde_json::from_str(&r.document_json).unwrap();
    seen.push(("resolve", json!([r.revision, doc])));
    let r = c
        .explain(v1::ExplainRequest {
            namespace: "web".into(),
            context: ctx("prod"),
            key: "db.pool".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let entries: Vec<Value> = r
        .entries
        .iter()
        .map(|e| json!([e.layer, e.revision, e.winner]))
        .collect();
    seen.push(("explain", json!(entries)));
    let r = c
        .history(v1::HistoryRequest {
            namespace: "web".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let versions: Vec<Value> = r
        .versions
        .iter()
        .map(|v| json!([v.layer, v.info.as_ref().unwrap().revision]))
        .collect();
    seen.push(("history", json!(versions)));
    let r = c
        .validate(v1::ValidateRequest {
            namespace: "web".into(),
        })
        .await
        .unwrap()
        .into_inner();
    seen.push(("validate", json!(r.findings.len())));
    // Errors by kind.
    let e = c
        .put_layer(put("defaults", json!({}), Some(1)))
        .await
        .unwrap_err();
    seen.push(("stale put", err(e.code())));
    let e = c.put_layer(put("../x", json!({}), None)).await.unwrap_err();
    seen.push(("bad layer", err(e.code())));
    let e = c
        .resolve(v1::ResolveRequest {
            namespace: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    seen.push(("no namespace", err(e.code())));
    let e = c
        .resolve(v1::ResolveRequest {
            namespace: "web".into(),
            context: ctx("staging"),
            ..Default::default()
        })
        .await
        .unwrap_err();
    seen.push(("bad context", err(e.code())));
    let r = c
        .delete_layer(v1::DeleteLayerRequest {
            namespace: "web".into(),
            layer: "env/prod".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    seen.push(("delete", json!(r.commit.unwrap().revision)));
    let e = c
        .delete_layer(v1::DeleteLayerRequest {
            namespace: "web".into(),
            layer: "env/prod".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    seen.push(("delete again", err(e.code())));
    // A namespace as files: imported, then a bad bundle refused.
    let files = |extra: Option<(&str, &str)>| {
        let mut f: HashMap<String, Vec<u8>> = bundle()
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect();
        if let Some((k, v)) = extra {
            f.insert(k.to_owned(), v.as_bytes().to_vec());
        }
        f
    };
    let r = c
        .import_namespace(v1::ImportNamespaceRequest {
            files: files(None),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    seen.push(("import", json!(r.commit.unwrap().revision)));
    let r = c
        .resolve(v1::ResolveRequest {
            namespace: "imported".into(),
            context: ctx("prod"),
            with_provenance: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    seen.push((
        "imported",
        serde_json::from_str::<Value>(&r.document_json).unwrap(),
    ));
    // The key that comes from the namespace it imports, and from where.
    let p = &r.provenance["db.pool"];
    seen.push(("from import", json!([p.namespace, p.layer])));
    let e = c
        .import_namespace(v1::ImportNamespaceRequest {
            files: files(Some(("README.md", "hi"))),
            ..Default::default()
        })
        .await
        .unwrap_err();
    seen.push(("bad bundle", err(e.code())));
    // Deleting a namespace: refused while imported, then done.
    let delete = |ns: &str| v1::CommitRequest {
        change_set: Some(v1::ChangeSet {
            ops: vec![v1::Operation {
                op: Some(v1::operation::Op::DeleteNamespace(v1::DeleteNamespaceOp {
                    namespace: ns.into(),
                })),
                expect_revision: None,
            }],
            ..Default::default()
        }),
    };
    let e = c.commit(delete("web")).await.unwrap_err();
    seen.push(("delete imported", err(e.code())));
    let r = c.commit(delete("imported")).await.unwrap().into_inner();
    seen.push(("delete namespace", json!(r.commit.unwrap().revision)));
    let e = c
        .resolve(v1::ResolveRequest {
            namespace: "imported".into(),
            context: ctx("prod"),
            ..Default::default()
        })
        .await
        .unwrap_err();
    seen.push(("deleted", err(e.code())));
    // Generators declared on a namespace (a bundle declares them): a dry
    // run, the commit, then nothing left to write; explain names one.
    let gen_files: HashMap<String, Vec<u8>> = generating_bundle()
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect();
    let r = c
        .import_namespace(v1::ImportNamespaceRequest {
            files: gen_files,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    seen.push(("import generating", json!(r.commit.unwrap().revision)));
    let mut t = v1::template_service_client::TemplateServiceClient::new(channel);
    let token: tonic::metadata::MetadataValue<_> =
        format!("Bearer {}", server.token).parse().unwrap();
    let generate_as = |commit: bool, plan_only: bool| {
        let mut r = tonic::Request::new(v1::GenerateRequest {
            namespace: "gen".into(),
            commit,
            message: String::new(),
            plan_only,
        });
        r.metadata_mut().insert("authorization", token.clone());
        r
    };
    let generate = |commit: bool| generate_as(commit, false);
    // Plan only: the change set, neither dry-run nor committed.
    let r = t
        .generate(generate_as(false, true))
        .await
        .unwrap()
        .into_inner();
    seen.push((
        "generate plan only",
        json!([
            r.change_set.map_or(0, |cs| cs.ops.len()),
            r.dry_run.is_some() || r.commit.is_some()
        ]),
    ));
    // Both asked for: refused (REST has no commit flag to clash with).
    let e = t.generate(generate_as(true, true)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    let r = t.generate(generate(false)).await.unwrap().into_inner();
    let dry_ops = r.change_set.map_or(0, |cs| cs.ops.len());
    let mut generated: Vec<Value> = r
        .generated
        .iter()
        .map(|g| {
            json!([
                g.layer,
                g.generator,
                serde_json::from_str::<Value>(&g.document_json).unwrap()
            ])
        })
        .collect();
    generated.sort_by_key(ToString::to_string);
    seen.push((
        "generate dry run",
        json!([dry_ops, r.dry_run.is_some(), generated]),
    ));
    let r = t.generate(generate(true)).await.unwrap().into_inner();
    seen.push(("generate", json!(r.commit.unwrap().revision)));
    let r = t.generate(generate(true)).await.unwrap().into_inner();
    seen.push((
        "generate again",
        json!([
            r.change_set.map_or(0, |cs| cs.ops.len()),
            r.commit.is_some()
        ]),
    ));
    let r = c
        .explain(v1::ExplainRequest {
            namespace: "gen".into(),
            key: "replicas".into(),
            context: ctx("prod"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let o = r.entries[0].origin.clone().unwrap();
    seen.push(("generated origin", json!([o.template, o.generator])));
    let e = t
        .generate(tonic::Request::new(v1::GenerateRequest {
            namespace: "nope".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    seen.push(("generate unauthenticated", err(e.code())));
    drop(c);
    stop.send(()).unwrap();
    served.await.unwrap().unwrap();
    seen
}

async fn over_rest(server: &Server) -> Seen {
    let send = |method: reqwest::Method, path: &str| {
        server
            .request(method, path)
            .bearer_auth(&server.token)
            .header("content-type", "application/json")
    };
    let json_of = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        (status, body)
    };
    let mut seen = Seen::new();
    let (_, b) = json_of(
        send(reqwest::Method::PUT, "/v1/namespaces/web/layers/defaults")
            .body(json!({"db": {"pool": 5, "host": "h"}, "log": "info"}).to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    seen.push(("put", b["revision"].clone()));
    let (_, b) = json_of(
        send(
            reqwest::Method::PATCH,
            "/v1/namespaces/web/layers/env%2Fprod",
        )
        .body(json!({"set": {"db.pool": 40}}).to_string())
        .send()
        .await
        .unwrap(),
    )
    .await;
    seen.push(("set", b["revision"].clone()));
    let (_, b) = json_of(server.get("/v1/namespaces/web/resolve?env=prod").await).await;
    seen.push(("resolve", json!([b["revision"], b["document"]])));
    let (_, b) = json_of(
        server
            .get("/v1/namespaces/web/explain?key=db.pool&env=prod")
            .await,
    )
    .await;
    let entries: Vec<Value> = b["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| json!([e["layer"], e["revision"], e["winner"]]))
        .collect();
    seen.push(("explain", json!(entries)));
    let (_, b) = json_of(server.get("/v1/namespaces/web/history").await).await;
    let versions: Vec<Value> = b["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| json!([v["layer"], v["revision"]]))
        .collect();
    seen.push(("history", json!(versions)));
    let (_, b) = json_of(server.get("/v1/validate?namespace=web").await).await;
    seen.push(("validate", json!(b["findings"].as_array().unwrap().len())));
    let (status, b) = json_of(
        send(reqwest::Method::PUT, "/v1/namespaces/web/layers/defaults")
            .header("if-match", "1")
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    // A write with If-Match answers 412; its problem's kind is the conflict.
    assert_eq!(status, 412);
    seen.push(("stale put", rest_err(&b)));
    let (_, b) = json_of(
        send(reqwest::Method::PUT, "/v1/namespaces/web/layers/..%2Fx")
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    seen.push(("bad layer", rest_err(&b)));
    let (_, b) = json_of(server.get("/v1/namespaces/nope/resolve").await).await;
    seen.push(("no namespace", rest_err(&b)));
    let (_, b) = json_of(server.get("/v1/namespaces/web/resolve?env=staging").await).await;
    seen.push(("bad context", rest_err(&b)));
    let delete = || {
        send(
            reqwest::Method::DELETE,
            "/v1/namespaces/web/layers/env%2Fprod",
        )
        .send()
    };
    let (_, b) = json_of(delete().await.unwrap()).await;
    seen.push(("delete", b["revision"].clone()));
    let (_, b) = json_of(delete().await.unwrap()).await;
    seen.push(("delete again", rest_err(&b)));
    let import = |extra: Option<(&str, &str)>| {
        let mut files: serde_json::Map<String, Value> = bundle()
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        if let Some((k, v)) = extra {
            files.insert(k.to_owned(), json!(v));
        }
        send(reqwest::Method::POST, "/v1/imports")
            .header("content-type", "application/json")
            .body(json!({"files": files}).to_string())
            .send()
    };
    let (_, b) = json_of(import(None).await.unwrap()).await;
    seen.push(("import", b["revision"].clone()));
    let (_, b) = json_of(
        server
            .get("/v1/namespaces/imported/resolve?env=prod&provenance=true")
            .await,
    )
    .await;
    seen.push(("imported", b["document"].clone()));
    let p = &b["provenance"]["db.pool"];
    seen.push(("from import", json!([p["namespace"], p["layer"]])));
    let (_, b) = json_of(import(Some(("README.md", "hi"))).await.unwrap()).await;
    seen.push(("bad bundle", rest_err(&b)));
    let delete = |ns: &str| send(reqwest::Method::DELETE, &format!("/v1/namespaces/{ns}")).send();
    let (_, b) = json_of(delete("web").await.unwrap()).await;
    seen.push(("delete imported", rest_err(&b)));
    let (_, b) = json_of(delete("imported").await.unwrap()).await;
    seen.push(("delete namespace", b["revision"].clone()));
    let (_, b) = json_of(server.get("/v1/namespaces/imported/resolve?env=prod").await).await;
    seen.push(("deleted", rest_err(&b)));
    let files: serde_json::Map<String, Value> = generating_bundle()
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    let (_, b) = json_of(
        send(reqwest::Method::POST, "/v1/imports")
            .body(json!({"files": files}).to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    seen.push(("import generating", b["revision"].clone()));
    let generate = |query: &str| {
        send(
            reqwest::Method::POST,
            &format!("/v1/namespaces/gen/generate{query}"),
        )
        .send()
    };
    let (_, b) = json_of(generate("?plan_only=true").await.unwrap()).await;
    seen.push((
        "generate plan only",
        json!([
            b["change_set"]["ops"].as_array().unwrap().len(),
            b.get("dry_run").is_some() || b.get("commit").is_some()
        ]),
    ));
    let (_, b) = json_of(generate("?dry_run=true").await.unwrap()).await;
    let mut generated: Vec<Value> = b["generated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| json!([g["layer"], g["generator"], g["document"]]))
        .collect();
    generated.sort_by_key(ToString::to_string);
    seen.push((
        "generate dry run",
        json!([
            b["change_set"]["ops"].as_array().unwrap().len(),
            b.get("dry_run").is_some(),
            generated
        ]),
    ));
    let (_, b) = json_of(generate("").await.unwrap()).await;
    seen.push(("generate", b["commit"]["revision"].clone()));
    let (_, b) = json_of(generate("").await.unwrap()).await;
    seen.push((
        "generate again",
        json!([
            b["change_set"]["ops"].as_array().unwrap().len(),
            b.get("commit").is_some()
        ]),
    ));
    let (_, b) = json_of(
        server
            .get("/v1/namespaces/gen/explain?key=replicas&env=prod")
            .await,
    )
    .await;
    let o = &b["entries"][0]["origin"];
    seen.push((
        "generated origin",
        json!([o["template"].as_str().unwrap_or_default(), o["generator"]]),
    ));
    let (_, b) = json_of(
        server
            .request(reqwest::Method::POST, "/v1/namespaces/nope/generate")
            .send()
            .await
            .unwrap(),
    )
    .await;
    seen.push(("generate unauthenticated", rest_err(&b)));
    seen
}

/// A namespace whose declaration has generators, as files.
fn generating_bundle() -> [(&'static str, &'static str); 2] {
    [
        (
            "namespace.toml",
            "name = \"gen\"\nlevels = [\"defaults\", \"env/{env}\"]\n[matrix]\nenv = [\"dev\", \"prod\"]\n\
             [[generators]]\nid = \"replicas\"\nlevel = \"env/{env}\"\n\
             script = 'if ctx.env == \"prod\" { #{replicas: 6} } else { #{replicas: 2} }'\n",
        ),
        ("layers/env/prod.toml", "port = 443\n"),
    ]
}

/// A namespace as files, for both doors.
fn bundle() -> [(&'static str, &'static str); 3] {
    [
        (
            "namespace.toml",
            "name = \"imported\"\nlevels = [\"defaults\", \"env/{env}\"]\nimports = [\"web\"]\n",
        ),
        ("layers/defaults.toml", "port = 8080\nlog = \"info\"\n"),
        ("layers/env/prod.yaml", "port: 443\n"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sequence_over_grpc_and_over_rest_gives_equal_results() {
    let a = Server::start(HttpOptions::default()).await;
    let b = Server::start(HttpOptions::default()).await;
    let grpc = over_grpc(&a).await;
    let rest = over_rest(&b).await;
    assert_eq!(grpc, rest);
    // The sequence saw what it should (not two equal failures).
    let step = |name: &str| &grpc.iter().find(|(n, _)| *n == name).unwrap().1;
    assert_eq!(
        step("resolve")[1],
        json!({"db": {"pool": 40, "host": "h"}, "log": "info"})
    );
    assert_eq!(
        step("stale put"),
        &err(confstrata_grpc_api::code_of(K::Conflict))
    );
    assert_eq!(step("bad layer"), &err(tonic::Code::InvalidArgument));
    assert_eq!(step("no namespace"), &err(tonic::Code::NotFound));
    assert_eq!(step("delete again"), &err(tonic::Code::NotFound));
    assert!(step("import").is_u64(), "{grpc:?}");
    // Over what it imports from web (whose log it overrides).
    assert_eq!(
        step("imported"),
        &json!({"port": 443, "log": "info", "db": {"pool": 5, "host": "h"}})
    );
    assert_eq!(step("from import"), &json!(["web", "defaults"]));
    assert_eq!(step("bad bundle"), &err(tonic::Code::InvalidArgument));
    assert_eq!(step("delete imported"), &err(tonic::Code::InvalidArgument));
    assert!(step("delete namespace").is_u64(), "{grpc:?}");
    assert_eq!(step("deleted"), &err(tonic::Code::NotFound));
    assert_eq!(
        step("generate dry run"),
        &json!([2, true, [["env/dev", "replicas", {"replicas": 2}], ["env/prod", "replicas", {"replicas": 6}]]])
    );
    assert_eq!(step("generate plan only"), &json!([2, false]));
    assert!(step("generate").is_u64(), "{grpc:?}");
    assert_eq!(step("generate again"), &json!([0, false]));
    assert_eq!(step("generated origin"), &json!(["", "replicas"]));
    assert_eq!(
        step("generate unauthenticated"),
        &err(tonic::Code::Unauthenticated)
    );
    a.stop().await;
    b.stop().await;
}
