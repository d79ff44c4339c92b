//! Authentication attacks over the real server: every bad credential is
//! UNAUTHENTICATED with a message that never echoes the token, headers that
//! let requests through in other config servers do nothing, and traversal
//! in every encoding is refused on every endpoint that takes a path.

use confstrata_proto::v1;
use tonic::Code;
use tonic::metadata::MetadataValue;

use crate::{Server, client_with, ctx};

fn resolve_req() -> v1::ResolveRequest {
    crate::req::resolve("web", ctx(&[("env", "prod")]))
}

#[tokio::test]
async fn bad_credentials_are_unauthenticated_and_never_echoed() {
    let mut s = Server::start().await;
    s.seed().await;
    let secret_looking = format!("cst_{}", "Q".repeat(43));
    let revoked = {
        let t = s
            .engine
            .issue_token(
                &confstrata_engine::Caller::local("test"),
                "admin",
                "to revoke",
            )
            .unwrap();
        let text = t.expose_secret().to_owned();
        s.engine
            .revoke_token(
                &confstrata_engine::Caller::local("test"),
                &t.hash().to_string(),
            )
            .unwrap();
        text
    };
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("empty", Some(String::new())),
        ("bearer without token", Some("Bearer ".into())),
        ("wrong scheme", Some(format!("Basic {secret_looking}"))),
        ("malformed", Some("Bearer cst_not-base64!!".into())),
        ("too short", Some("Bearer cst_abc".into())),
        ("unknown", Some(format!("Bearer {secret_looking}"))),
        ("revoked", Some(format!("Bearer {revoked}"))),
        (
            "too long",
            Some(format!("Bearer cst_{}", "A".repeat(10_000))),
        ),
        (
            "lower-case scheme of an unknown token",
            Some(format!("bearer {secret_looking}")),
        ),
    ];
    for (what, header) in cases {
        let mut c = client_with(s.addr, header.as_deref()).await;
        let e = c.resolve(resolve_req()).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{what}: {e:?}");
        assert!(
            !e.message().contains("QQQQ"),
            "{what} echoed the token: {}",
            e.message()
        );
        assert!(
            !e.message().contains(&revoked[4..]),
            "{what} echoed the token"
        );
        // Writes are refused the same way, and change nothing.
        let e = c
            .commit(crate::req::commit(crate::change_set(serde_json::json!([
                {"put": {"namespace": "web", "layer": "defaults", "document_json": "{}"}}
            ]))))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{what}: {e:?}");
    }
    // Headers that bypassed authentication elsewhere do nothing here.
    let mut c = client_with(s.addr, None).await;
    for (name, value) in [
        ("x-forwarded-for", "127.0.0.1"),
        ("x-real-ip", "127.0.0.1"),
        ("user-agent", "confstrata-admin/1.0"),
        ("x-confstrata-principal", "admin"),
        ("x-remote-user", "admin"),
    ] {
        let mut req = tonic::Request::new(resolve_req());
        req.metadata_mut()
            .insert(name, MetadataValue::try_from(value).unwrap());
        let e = c.resolve(req).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{name}: {e:?}");
    }
    // Every failure was audited, without the token text: the first from
    // this client at once, the rest counted into one record.
    let records = s
        .engine
        .audit_records(&confstrata_engine::Caller::local("test"), 0, 10_000)
        .unwrap();
    let unauthenticated = records
        .iter()
        .filter(|r| r.outcome.as_str() == "unauthenticated")
        .count();
    assert!(unauthenticated >= 1, "{unauthenticated} audited refusals");
    let text = serde_json::to_string(&records).unwrap();
    assert!(
        !text.contains("QQQQ") && !text.contains(&revoked[4..]),
        "a token reached the audit log"
    );
    let before = s.snapshot().await;
    assert_eq!(before["revision"], 1, "nothing was written");
    let dir = s.stop().await;
    let failures = failed_authentications(dir.path());
    assert!(failures >= 15, "{failures} failures on record");
}

/// Failed authentications on record in a stopped server's data dir: one
/// per record, plus each record's count of repeats.
fn failed_authentications(dir: &std::path::Path) -> u64 {
    let engine = confstrata_host::open(dir).unwrap();
    let records = engine
        .audit_records(&confstrata_engine::Caller::local("test"), 0, 1_000_000)
        .unwrap();
    records
        .iter()
        .filter(|r| r.outcome.as_str() == "unauthenticated")
        .map(|r| {
            let v = serde_json::to_value(r).unwrap();
            1 + v["details"]["repeated"]["text"]
                .as_str()
                .map_or(0, |n| n.parse::<u64>().unwrap())
        })
        .sum()
}

/// Issue 12, item 9: 10,000 failed authentications from one client are
/// not 10,000 durable records (a caller with no credentials could fill
/// the disk), yet none is lost: the first is on record at once, the rest
/// as a count when the server stops.
#[tokio::test]
async fn repeated_failed_authentications_are_counted_not_each_written() {
    let s = Server::start().await;
    let mut c = client_with(s.addr, Some("Bearer cst_not-a-real-token")).await;
    let journal = |s: &Server| {
        s.engine
            .audit_records(&confstrata_engine::Caller::local("test"), 0, 1_000_000)
            .unwrap()
            .len()
    };
    let before = journal(&s);
    for _ in 0..10_000 {
        let e = c.resolve(resolve_req()).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
    }
    let written = journal(&s) - before;
    // One record per source and minute, and the counts of minutes that
    // ended: a handful however slow the machine, never thousands.
    assert!(
        (1..=20).contains(&written),
        "{written} records for 10,000 failures"
    );
    let dir = s.stop().await;
    // Every one is on record (the server's own start may add one).
    let failures = failed_authentications(dir.path());
    assert!((10_000..10_010).contains(&failures), "{failures}");
}

#[tokio::test]
async fn traversal_in_every_encoding_is_refused_on_every_endpoint() {
    let mut s = Server::start().await;
    s.seed().await;
    let before = s.snapshot().await;
    let evil = [
        "../etc",
        "..",
        ".",
        "env/../../etc",
        "%2e%2e",
        "%2E%2E/x",
        "..%2f..",
        "..\\x",
        "env/%2e%2e",
        "\u{2025}",
        "env//prod",
        "/abs",
        "env/prod/",
        "..;/x",
        "\u{0}",
        "env/\u{ff0e}\u{ff0e}",
    ];
    for bad in evil {
        let c = &mut s.client;
        let layer_calls = [
            c.get_layer(v1::GetLayerRequest {
                namespace: "web".into(),
                layer: bad.into(),
                at: None,
            })
            .await
            .map(drop),
            c.put_layer(v1::PutLayerRequest {
                namespace: "web".into(),
                layer: bad.into(),
                document_json: "{}".into(),
                ..Default::default()
            })
            .await
            .map(drop),
            c.delete_layer(v1::DeleteLayerRequest {
                namespace: "web".into(),
                layer: bad.into(),
                ..Default::default()
            })
            .await
            .map(drop),
            c.history(v1::HistoryRequest {
                namespace: "web".into(),
                layer: bad.into(),
                limit: 1,
            })
            .await
            .map(drop),
            c.get_namespace(v1::GetNamespaceRequest {
                name: bad.into(),
                at: None,
            })
            .await
            .map(drop),
            c.resolve(v1::ResolveRequest {
                namespace: bad.into(),
                ..Default::default()
            })
            .await
            .map(drop),
            c.list_layers(v1::ListLayersRequest {
                namespace: bad.into(),
                at: None,
                mask_secrets: false,
            })
            .await
            .map(drop),
        ];
        for (i, r) in layer_calls.into_iter().enumerate() {
            let e = r.expect_err(&format!("{bad:?} accepted by call {i}"));
            assert!(
                matches!(e.code(), Code::InvalidArgument | Code::NotFound),
                "{bad:?} call {i}: {e:?}"
            );
        }
    }
    // Keys are not file paths (a key may be named `%2e%2e`), but empty and
    // dot segments are refused.
    for bad in ["..", ".", "a..b", ".a", "a.", "", "a.\u{0}"] {
        let e = s
            .client
            .set_keys(crate::req::set("web", "defaults", bad, "1"))
            .await
            .expect_err(bad);
        assert_eq!(e.code(), Code::InvalidArgument, "{bad:?}: {e:?}");
    }
    assert_eq!(s.snapshot().await, before, "nothing changed");
}

/// Every method of every service in `proto/`, as a gRPC path.
fn every_method() -> Vec<String> {
    use prost::Message as _;
    let set =
        prost_types::FileDescriptorSet::decode(confstrata_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut out = Vec::new();
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                out.push(format!(
                    "/{}.{}/{}",
                    file.package(),
                    service.name(),
                    method.name()
                ));
            }
        }
    }
    out
}

/// Calls `path` with an empty message (`()` encodes as nothing) and the
/// given `authorization`; the status it ends with.
async fn call_empty(
    channel: &tonic::transport::Channel,
    path: &str,
    authorization: Option<&str>,
) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let mut req = tonic::Request::new(());
    if let Some(a) = authorization {
        req.metadata_mut()
            .insert("authorization", MetadataValue::try_from(a).unwrap());
    }
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    match grpc.unary(req, path.parse().unwrap(), codec).await {
        Ok(_) => tonic::Status::ok(""),
        Err(s) => s,
    }
}

#[tokio::test]
async fn every_method_refuses_a_caller_without_a_token_before_reading_its_message() {
    let s = Server::start().await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let methods = every_method();
    assert!(methods.len() >= 33, "{methods:?}");
    for path in &methods {
        for authorization in [
            None,
            Some("Bearer cst_nope"),
            Some("Basic YWRtaW46YWRtaW4="),
        ] {
            let status = call_empty(&channel, path, authorization).await;
            assert_eq!(
                status.code(),
                Code::Unauthenticated,
                "{path} with {authorization:?}: {status:?}"
            );
        }
    }
    // With a token the same empty message reaches the method, which checks
    // it: the gate let it through.
    let admin = format!("Bearer {}", s.admin_token);
    let status = call_empty(
        &channel,
        "/confstrata.v1.ConfigService/Resolve",
        Some(&admin),
    )
    .await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    // Health and reflection stay open without a token:
    // `api::health_and_reflection_work_without_proto_files`.
    // Nothing was written by any of it.
    assert_eq!(s.engine.store().revision().unwrap(), 0);
}
