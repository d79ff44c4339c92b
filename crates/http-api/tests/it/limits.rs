//! The REST door's limits and cross-origin policy on a real server: the
//! request timeout and the in-flight bound answer `503` problems (the long
//! poll and the event stream are outside both), CORS is off by default and
//! an allow-list turns it on for the origins listed.

use std::time::Duration;

use confstrata_core::serde_json::{self, Value};
use confstrata_http_api::HttpOptions;

use crate::Server;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

async fn problem(r: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    (status, retry, body)
}

/// A PUT of `web`'s `defaults` whose body is sent only in part: the
/// request waits for the rest (as long as the test wants).
async fn half_sent_put(server: &Server) -> (tokio::net::TcpStream, &'static [u8]) {
    let body: &'static [u8] = br#"{"a": 2}"#;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "PUT /v1/namespaces/web/layers/defaults HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.token,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..3]).await.unwrap();
    (stream, &body[3..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_timeout_is_a_503_problem_but_a_long_poll_is_not_cut() {
    // A zero timeout, and a request that cannot be done at once (its body
    // is not all there): it is over the timeout, whatever the timing.
    let server = Server::start(HttpOptions {
        request_timeout: Duration::ZERO,
        ..HttpOptions::default()
    })
    .await;
    let (mut stream, _rest) = half_sent_put(&server).await;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 503"), "{answer}");
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("retry-after:"),
        "503 says when to retry: {answer}"
    );
    assert!(
        head.contains("content-type: application/problem+json"),
        "{answer}"
    );
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["code"], "unavailable");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("http_request_timeout_ms"),
        "{body}"
    );
    // Nothing was written (read through the resolve: outside the timeout).
    let r = server.get("/v1/namespaces/web/resolve").await;
    let view: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(view["document"]["a"], 1, "{view}");
    // The resolve (with its long poll) and the probes are not bounded.
    let r = server.get("/v1/namespaces/web/resolve").await;
    assert_eq!(r.status(), 200);
    let index = r.headers()["x-confstrata-index"]
        .to_str()
        .unwrap()
        .to_owned();
    let r = server
        .get(&format!(
            "/v1/namespaces/web/resolve?index={index}&wait=10ms"
        ))
        .await;
    assert_eq!(r.status(), 200, "the long poll answered at its deadline");
    assert_eq!(server.get("/healthz").await.status(), 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_in_flight_bound_are_refused_at_once() {
    let server = Server::start(HttpOptions {
        max_in_flight: 1,
        ..HttpOptions::default()
    })
    .await;
    // A PUT whose body is not all sent holds the one slot, and requests
    // meanwhile are refused. (Unless a request of the loop held the slot
    // when the PUT came in: then the PUT itself is refused, and the test
    // tries again; either way one of two is refused.)
    let mut shown = false;
    for _attempt in 0..50 {
        let (mut held, rest) = half_sent_put(&server).await;
        let mut refused = None;
        for _ in 0..200 {
            let r = server.get("/v1/status").await;
            if r.status() == 503 {
                refused = Some(problem(r).await);
                break;
            }
            assert_eq!(r.status(), 200);
            tokio::task::yield_now().await;
        }
        let Some((status, retry, body_json)) = refused else {
            // The PUT was refused, or taken in only after the loop: either
            // way it answers once its body is all there.
            let _ = held.write_all(rest).await;
            let mut answer = String::new();
            let _ = held.read_to_string(&mut answer).await;
            assert!(
                answer.starts_with("HTTP/1.1 503") || answer.starts_with("HTTP/1.1 200"),
                "{answer}"
            );
            continue;
        };
        assert_eq!(status, 503);
        assert!(retry.is_some());
        assert!(
            body_json["detail"]
                .as_str()
                .unwrap()
                .contains("http_max_in_flight"),
            "{body_json}"
        );
        // The held request finishes and frees the slot.
        held.write_all(rest).await.unwrap();
        let mut answer = String::new();
        held.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        shown = true;
        break;
    }
    assert!(
        shown,
        "a request over the bound was refused while one held it"
    );
    assert_eq!(server.get("/v1/status").await.status(), 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_off_by_default_and_an_allow_list_turns_it_on() {
    let preflight = |server: &Server, origin: &str| {
        server
            .request(
                reqwest::Method::OPTIONS,
                "/v1/namespaces/web/layers/defaults",
            )
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "PUT")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type, if-match",
            )
            .send()
    };
    let off = Server::start(HttpOptions::default()).await;
    let r = preflight(&off, "https://console.example.com")
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    assert_eq!(
        r.status(),
        401,
        "no CORS: a preflight is just a request without a token"
    );
    off.stop().await;

    let origin = "https://console.example.com";
    let on = Server::start(HttpOptions {
        cors_origins: vec![origin.to_owned()],
        ..HttpOptions::default()
    })
    .await;
    // The preflight needs no token.
    let r = preflight(&on, origin).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], origin);
    let methods = r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(methods.contains("PUT"), "{methods}");
    // A real request from it carries the header and still needs the token.
    let r = on
        .request(reqwest::Method::GET, "/v1/status")
        .header("Origin", origin)
        .bearer_auth(&on.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], origin);
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(exposed.to_ascii_lowercase().contains("etag"), "{exposed}");
    let r = on
        .request(reqwest::Method::GET, "/v1/status")
        .header("Origin", origin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Another origin gets nothing that lets a browser read the answer.
    let r = preflight(&on, "https://evil.example.com").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    on.stop().await;

    // Bad origins are named.
    for bad in [
        "console.example.com",
        "https://x.example.com/path",
        "*",
        "https://",
    ] {
        let options = HttpOptions {
            cors_origins: vec![bad.to_owned()],
            ..HttpOptions::default()
        };
        let e = options.check().unwrap_err();
        assert!(e.contains(&format!("{bad:?}")), "{e}");
    }
}
