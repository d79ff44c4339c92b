//! The transport under the services, seen by a client that enforces
//! nothing itself (curl): the server's own `grpc-timeout` enforcement,
//! and gRPC over HTTP/1.1 refused with a word rather than reaching tonic.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use confstrata_proto::v1;
use prost::Message as _;
use serde_json::json;

use crate::{Server, change_set};

/// A unary gRPC call by curl: `message` framed (uncompressed), sent with
/// `headers`; curl's response headers and trailers, as text. curl has no
/// idea of gRPC deadlines, so whatever answers is the server.
async fn curl(addr: SocketAddr, method: &str, message: Vec<u8>, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(&message);
    std::fs::write(&body, framed).unwrap();
    let url = format!("http://{addr}/confstrata.v1.ConfigService/{method}");
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "-D", "-", "-o", "/dev/null", "--max-time", "120"])
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
        .args(args)
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .arg(url);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("curl is installed (.ci/run installs it)");
    assert!(out.status.success(), "curl: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn the_server_enforces_the_deadline_a_client_sends() {
    let mut s = Server::start().await;
    let ops = json!([
        {"put_namespace": {"spec": {"name": "slow", "levels": ["defaults"],
            "validation": {"rules": [{"id": "small", "check": "cfg.n < 100"}]}}}},
        {"set": {"namespace": "slow", "layer": "defaults", "key": "n", "value_json": "1"}},
    ]);
    s.client
        .commit(crate::req::commit(change_set(ops)))
        .await
        .unwrap();
    // The next validation waits until released.
    let (release, released) = mpsc::channel::<()>();
    let released = Mutex::new(released);
    let first = AtomicBool::new(true);
    s.engine.set_validation_hook(Some(Arc::new(move || {
        if first.swap(false, Ordering::SeqCst) {
            let _ = released.lock().unwrap().recv();
        }
    })));
    let held = v1::CommitRequest {
        change_set: Some(change_set(json!([
            {"set": {"namespace": "slow", "layer": "defaults", "key": "n", "value_json": "2"}},
        ]))),
    };
    let auth = format!("authorization: Bearer {}", s.admin_token);
    let answer = curl(
        s.addr,
        "Commit",
        held.encode_to_vec(),
        &[
            "--http2-prior-knowledge",
            "-H",
            "grpc-timeout: 200m",
            "-H",
            &auth,
        ],
    )
    .await;
    // Answered while the commit is still held: by the deadline.
    assert!(answer.contains("grpc-status: 4\r\n"), "{answer}");
    assert!(
        answer.contains("grpc-timeout"),
        "the message says why: {answer}"
    );
    release.send(()).unwrap();

    // A deadline that is not the spec's `value unit` is ignored, as tonic
    // does: the call is answered normally.
    let resolve = crate::req::resolve("slow", std::collections::HashMap::new());
    for bad in ["5x", "123456789m", "-1S", ""] {
        let answer = curl(
            s.addr,
            "Resolve",
            resolve.encode_to_vec(),
            &[
                "--http2-prior-knowledge",
                "-H",
                &format!("grpc-timeout: {bad}"),
                "-H",
                &auth,
            ],
        )
        .await;
        assert!(answer.contains("grpc-status: 0\r\n"), "{bad:?}: {answer}");
    }
    s.engine.set_validation_hook(None);
    s.stop().await;
}

#[tokio::test]
async fn grpc_over_http1_is_told_it_needs_http2() {
    let s = Server::start().await;
    let request = crate::req::resolve("web", std::collections::HashMap::new());
    let answer = curl(s.addr, "Resolve", request.encode_to_vec(), &["--http1.1"]).await;
    assert!(
        answer.starts_with("HTTP/1.1 505 HTTP Version Not Supported\r\n"),
        "{answer}"
    );
    // The same request over HTTP/2 reaches the service (no token: refused
    // by it, not by the transport).
    let answer = curl(
        s.addr,
        "Resolve",
        request.encode_to_vec(),
        &["--http2-prior-knowledge"],
    )
    .await;
    assert!(answer.contains("grpc-status: 16\r\n"), "{answer}");
    s.stop().await;
}
