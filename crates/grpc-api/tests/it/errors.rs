//! Bad input over the wire: the right status code, the offending field in
//! the details, and a store that did not change. The server keeps serving.

use confstrata_proto::v1;
use serde_json::json;
use tonic::Code;
use tonic_types::StatusExt;

use crate::{Server, at_rev, change_set, ctx};

fn field_of(s: &tonic::Status) -> Option<String> {
    s.get_details_bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
}

fn info_of(s: &tonic::Status, key: &str) -> Option<String> {
    s.get_details_error_info()
        .and_then(|i| i.metadata.get(key).cloned())
}

#[tokio::test]
async fn bad_requests_get_precise_statuses_and_change_nothing() {
    let mut s = Server::start().await;
    s.seed().await;
    let before = s.snapshot().await;

    let put = |layer: &str, doc: &str, expect: Option<u64>| v1::PutLayerRequest {
        namespace: "web".into(),
        layer: layer.into(),
        document_json: doc.into(),
        expect_revision: expect,
        ..Default::default()
    };
    let cases: Vec<(v1::PutLayerRequest, Code, Option<&str>, &str)> = vec![
        (
            put("../x", "{}", None),
            Code::InvalidArgument,
            Some("layer"),
            "segment 1 is \"..\"",
        ),
        (
            put("a//b", "{}", None),
            Code::InvalidArgument,
            Some("layer"),
            "segment 2 is empty",
        ),
        (
            put("%2e%2e", "{}", None),
            Code::InvalidArgument,
            Some("layer"),
            "contains '%'",
        ),
        (
            put("env%2F..", "{}", None),
            Code::InvalidArgument,
            Some("layer"),
            "contains '%'",
        ),
        (
            put("env/qa", "{}", None),
            Code::InvalidArgument,
            Some("layer"),
            "matches no level",
        ),
        (
            put("defaults", "{\"a\": ", None),
            Code::InvalidArgument,
            Some("document_json"),
            "line 1",
        ),
        (
            put("defaults", "[1, 2]", None),
            Code::InvalidArgument,
            Some("document_json"),
            "must be a table",
        ),
        (
            put(
                "defaults",
                &format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
                None,
            ),
            Code::InvalidArgument,
            Some("document_json"),
            "nests deeper",
        ),
        (
            put(
                "defaults",
                &json!({"a": "x".repeat(1_100_000)}).to_string(),
                None,
            ),
            Code::ResourceExhausted,
            None,
            "over the limit",
        ),
        // proto3 has no presence: no document is not an empty document.
        (
            put("defaults", "", None),
            Code::InvalidArgument,
            Some("document_json"),
            "required",
        ),
        (
            put("defaults", "  ", None),
            Code::InvalidArgument,
            Some("document_json"),
            "required",
        ),
        (
            put("defaults", r#"{"$sealed": {"v": 1, "kid": "web#1"}}"#, None),
            Code::InvalidArgument,
            None,
            "top of a document",
        ),
        (
            put("defaults", r#"{"$delete": true}"#, None),
            Code::InvalidArgument,
            None,
            "top of a document",
        ),
        (
            put("defaults", "{\"a\": 1,\n\"a\": 2}", None),
            Code::InvalidArgument,
            Some("document_json"),
            "line 2",
        ),
        (
            put("defaults", r#"{"a": {"..": 1}}"#, None),
            Code::InvalidArgument,
            None,
            "not allowed",
        ),
        (
            put("defaults", "{}", Some(7)),
            Code::Aborted,
            None,
            "expected revision 7, found 1",
        ),
    ];
    for (req, code, field, needle) in cases {
        let layer = req.layer.clone();
        let e = s.client.put_layer(req).await.unwrap_err();
        assert_eq!(e.code(), code, "{layer}: {e:?}");
        assert!(e.message().contains(needle), "{layer}: {}", e.message());
        if let Some(f) = field {
            assert_eq!(field_of(&e).as_deref(), Some(f), "{layer}: {e:?}");
        }
        if code == Code::Aborted {
            assert_eq!(info_of(&e, "current_revision").as_deref(), Some("1"));
            assert_eq!(info_of(&e, "actual").as_deref(), Some("1"));
        }
        assert_eq!(s.snapshot().await, before, "{layer} changed the store");
    }

    // Unknown things are NOT_FOUND.
    let e = s
        .client
        .get_layer(v1::GetLayerRequest {
            namespace: "nope".into(),
            layer: "defaults".into(),
            at: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(e.get_details_resource_info().unwrap().resource_name, "nope");
    let e = s
        .client
        .get_layer(v1::GetLayerRequest {
            namespace: "web".into(),
            layer: "env/dev".into(),
            at: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = s
        .client
        .unset_keys(v1::UnsetKeysRequest {
            namespace: "web".into(),
            layer: "defaults".into(),
            keys: vec!["no.such".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");

    // Contexts and keys.
    let e = s
        .client
        .resolve(crate::req::resolve("web", ctx(&[("colour", "red")])))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), field_of(&e).as_deref()),
        (Code::InvalidArgument, Some("context")),
        "{e:?}"
    );
    let e = s
        .client
        .set_keys(v1::SetKeysRequest {
            namespace: "web".into(),
            layer: "defaults".into(),
            entries: vec![
                v1::KeyValue {
                    key: "ok".into(),
                    value_json: "1".into(),
                    secret: false,
                },
                v1::KeyValue {
                    key: "a..b".into(),
                    value_json: "1".into(),
                    secret: false,
                },
            ],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), field_of(&e).as_deref()),
        (Code::InvalidArgument, Some("entries[1].key")),
        "{e:?}"
    );
    let e = s
        .client
        .set_keys(crate::req::set("web", "defaults", "a", "not json"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), field_of(&e).as_deref()),
        (Code::InvalidArgument, Some("entries[0].value_json")),
        "{e:?}"
    );

    // Revisions out of range.
    let e = s
        .client
        .resolve(v1::ResolveRequest {
            namespace: "web".into(),
            at: at_rev(99),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange);
    assert_eq!(info_of(&e, "current_revision").as_deref(), Some("1"));

    // A change set with a bad operation deep inside names it.
    let cs = change_set(json!([
        {"set": {"namespace": "web", "layer": "defaults", "key": "a", "value_json": "1"}},
        {"set": {"namespace": "web", "layer": "defaults", "key": "b", "value_json": "2"}, "expect_revision": 42},
    ]));
    let e = s.client.commit(crate::req::commit(cs)).await.unwrap_err();
    assert_eq!(e.code(), Code::Aborted, "{e:?}");
    assert!(e.message().contains("operation 1"), "{}", e.message());
    let cs = change_set(
        json!([{"set": {"namespace": "web", "layer": "../../etc", "key": "a", "value_json": "1"}}]),
    );
    let e = s.client.commit(crate::req::commit(cs)).await.unwrap_err();
    assert_eq!(
        (e.code(), field_of(&e).as_deref()),
        (Code::InvalidArgument, Some("change_set.ops[0].set.layer")),
        "{e:?}"
    );
    let e = s
        .client
        .commit(v1::CommitRequest { change_set: None })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), field_of(&e).as_deref()),
        (Code::InvalidArgument, Some("change_set"))
    );
    let e = s
        .client
        .commit(crate::req::commit(v1::ChangeSet::default()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "an empty change set");

    // An oversized message is refused by the transport, and the server goes on.
    let huge = v1::PutLayerRequest {
        namespace: "web".into(),
        layer: "defaults".into(),
        document_json: format!("{{\"a\": \"{}\"}}", "x".repeat(40 << 20)),
        ..Default::default()
    };
    let e = s.client.put_layer(huge).await.unwrap_err();
    assert!(
        matches!(e.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{e:?}"
    );

    assert_eq!(s.snapshot().await, before);
    s.stop().await;
}

/// Sends raw bytes as a request body.
#[derive(Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        buf: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        prost::bytes::BufMut::put_slice(buf, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        buf: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use prost::bytes::Buf;
        let mut out = vec![0; buf.remaining()];
        buf.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

#[tokio::test]
async fn malformed_bodies_are_invalid_argument_and_the_server_goes_on() {
    let mut s = Server::start().await;
    s.seed().await;
    let before = s.snapshot().await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    for (path, body) in [
        // Field 1 (namespace, a string) sent as a varint: a wrong wire type.
        ("/confstrata.v1.ConfigService/Resolve", vec![0x08, 0x01]),
        // A length prefix longer than the body.
        (
            "/confstrata.v1.ConfigService/PutLayer",
            vec![0x0a, 0x7f, b'w'],
        ),
        // Bytes that are no protobuf at all.
        (
            "/confstrata.v1.ConfigService/Commit",
            vec![0xff, 0xff, 0xff, 0xff],
        ),
    ] {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.unwrap();
        // An authenticated caller's malformed message (without a token it
        // never gets this far: `auth::every_method_refuses_...`).
        let mut req = tonic::Request::new(body);
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", s.admin_token).parse().unwrap(),
        );
        let r = grpc
            .unary(
                req,
                tonic::codegen::http::uri::PathAndQuery::from_static(path),
                RawCodec,
            )
            .await;
        let e = r.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{path}: {e:?}");
        assert!(
            e.message().contains("is not a valid"),
            "{path}: {}",
            e.message()
        );
    }
    assert_eq!(s.snapshot().await, before);
    s.stop().await;
}

/// Issue 12, item 4: every JSON field a write needs is required, in every
/// request that carries one (proto3 cannot tell absent from empty).
#[tokio::test]
async fn an_absent_json_field_is_refused_not_taken_as_empty() {
    let mut s = Server::start().await;
    s.seed().await;
    let before = s.snapshot().await;
    let e = s
        .client
        .set_keys(crate::req::set("web", "defaults", "a", String::new()))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), field_of(&e).as_deref()),
        (Code::InvalidArgument, Some("entries[0].value_json")),
        "{e:?}"
    );
    for op in [
        json!({"put": {"namespace": "web", "layer": "defaults", "document_json": ""}}),
        json!({"set": {"namespace": "web", "layer": "defaults", "key": "a", "value_json": ""}}),
    ] {
        let e = s
            .client
            .commit(v1::CommitRequest {
                change_set: Some(change_set(json!([op.clone()]))),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{op}: {e:?}");
        assert!(
            field_of(&e)
                .is_some_and(|f| f.starts_with("change_set.ops[0].") && f.ends_with("_json")),
            "{op}: {e:?}"
        );
    }
    // `validation_json` is absent (no chain) or an object, nothing else.
    for bad in ["[]", "null", "\"x\"", "[{}]"] {
        let e = s
            .client
            .create_namespace(v1::CreateNamespaceRequest {
                spec: Some(v1::NamespaceSpec {
                    name: "v".into(),
                    levels: vec!["defaults".into()],
                    validation_json: bad.into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(
            (e.code(), field_of(&e).as_deref()),
            (Code::InvalidArgument, Some("spec.validation_json")),
            "{bad}: {e:?}"
        );
    }
    assert_eq!(s.snapshot().await, before);
    s.stop().await;
}

/// Issue 12, item 9: a request message over the size limit is
/// RESOURCE_EXHAUSTED like every other size limit, not OUT_OF_RANGE (which
/// means a revision outside the readable range here).
#[tokio::test]
async fn an_oversize_message_is_resource_exhausted() {
    let mut s = Server::start().await;
    s.seed().await;
    let limit = confstrata_grpc_api::ServeOptions::default().max_message_bytes;
    let e = s
        .client
        .put_layer(v1::PutLayerRequest {
            namespace: "web".into(),
            layer: "defaults".into(),
            document_json: format!("{{\"a\": \"{}\"}}", "x".repeat(limit + 10)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    // The server goes on serving.
    s.snapshot().await;
    s.stop().await;
}

/// Issue 12, item 3: a refusal with 10,000 findings reaches the caller as
/// INVALID_ARGUMENT with the first findings and the total count, within
/// what peers accept in trailers; DryRun returns every one.
#[tokio::test]
async fn a_refusal_with_ten_thousand_findings_reaches_the_caller() {
    let mut s = Server::start().await;
    let values: Vec<String> = (0..200).map(|i| format!("v{i}")).collect();
    let spec = |validation: Option<serde_json::Value>| {
        let mut spec = json!({"name": "many", "levels": ["defaults", "k/{k}"],
            "matrix": {"k": {"values": values}}});
        if let Some(v) = validation {
            spec["validation"] = v;
        }
        spec
    };
    s.client
        .commit(v1::CommitRequest {
            change_set: Some(change_set(json!([
                {"put_namespace": {"spec": spec(None)}},
                {"put": {"namespace": "many", "layer": "defaults", "document_json": "{\"n\": 1}"}},
            ]))),
        })
        .await
        .unwrap();
    let rules: Vec<serde_json::Value> = (0..50)
        .map(|i| json!({"id": format!("r{i}"), "check": "cfg.n > 1", "message": format!("n is too small {}", "x".repeat(300))}))
        .collect();
    let declare = change_set(json!([
        {"put_namespace": {"spec": spec(Some(json!({"rules": rules})))}},
    ]));
    let dry = s
        .client
        .dry_run(v1::DryRunRequest {
            change_set: Some(declare.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dry.findings.len(), 10_000);
    let e = s
        .client
        .commit(crate::req::commit(declare))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    assert_eq!(info_of(&e, "errors").as_deref(), Some("10000"));
    let reported: usize = info_of(&e, "reported").unwrap().parse().unwrap();
    let violations = e.get_details_bad_request().unwrap().field_violations;
    assert_eq!(violations.len(), reported);
    assert!((1..10_000).contains(&reported), "{reported}");
    assert!(
        e.details().len() < 6_000,
        "{} bytes of details",
        e.details().len()
    );
    assert!(
        e.message().len() <= 1_100,
        "{} bytes of message",
        e.message().len()
    );
    // The Rust client keeps the count.
    let ce = confstrata_client::Error::from(e);
    assert_eq!(ce.error_count(), Some(10_000));
    s.stop().await;
}

/// Issue 12, item 1: a declaration whose check would recurse past what any
/// thread can hold is refused when declared, naming the limit, and the
/// server goes on (it used to accept it, then abort on the next commit).
/// At the bound, commits to the namespace are checked on any path.
#[tokio::test]
async fn a_schema_too_deep_to_check_is_refused_when_declared() {
    let mut s = Server::start().await;
    let chain = |n: usize| {
        let mut defs = serde_json::Map::new();
        for i in 0..n {
            defs.insert(
                format!("a{i}"),
                json!({"$ref": format!("#/$defs/a{}", i + 1)}),
            );
        }
        defs.insert(format!("a{n}"), json!({"type": "object"}));
        json!({"schema": {"$defs": defs, "$ref": "#/$defs/a0"}})
    };
    let declare = |n: usize| {
        change_set(json!([
            {"put_namespace": {"spec": {"name": "deep", "levels": ["defaults"], "validation": chain(n)}}},
            {"put": {"namespace": "deep", "layer": "defaults", "document_json": "{\"a\": {\"b\": [1, 2]}}"}},
        ]))
    };
    let e = s
        .client
        .commit(crate::req::commit(declare(20_000)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("the limit is 128"), "{}", e.message());
    // At the bound: declared, and every later commit is checked.
    s.client
        .commit(crate::req::commit(declare(120)))
        .await
        .unwrap();
    for i in 0..3 {
        s.client
            .set_keys(crate::req::set("deep", "defaults", format!("k{i}"), "1"))
            .await
            .unwrap();
    }
    assert_eq!(s.snapshot().await["revision"], 4);
    s.stop().await;
}

/// Issue 12, item 9: an error never echoes a whole input back (a 5,000
/// character context value made a 5 KB message).
#[tokio::test]
async fn errors_quote_long_inputs_only_in_part() {
    let mut s = Server::start().await;
    s.seed().await;
    let long = "x".repeat(5_000);
    let calls = [
        crate::req::resolve("web", ctx(&[("env", &long)])),
        crate::req::resolve("web", ctx(&[(&long, "prod")])),
        v1::ResolveRequest {
            namespace: "web".into(),
            section: long.clone(),
            ..Default::default()
        },
    ];
    for req in calls {
        let e = s.client.resolve(req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().len() < 1_000, "{} bytes", e.message().len());
        assert!(e.message().contains("xxxx"), "{}", e.message());
    }
    let e = s
        .client
        .put_layer(v1::PutLayerRequest {
            namespace: "web".into(),
            layer: "defaults".into(),
            document_json: format!("{{\"a\": {long}}}"),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().len() < 1_100, "{} bytes", e.message().len());
    s.stop().await;
}
