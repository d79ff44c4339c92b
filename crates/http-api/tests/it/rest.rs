//! The REST resources over real TCP on a real store: authentication before
//! anything, problem details that say what and where, resolve with ETag
//! revalidation.

use confstrata_core::serde_json::{self, Value, json};
use confstrata_engine::Caller;
use confstrata_host::{Doors, Host};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A response: status code, headers (lower-case names) and body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One GET on a fresh HTTP/1.1 connection, with extra header lines.
async fn get(addr: std::net::SocketAddr, target: &str, headers: &[String]) -> Answer {
    call(addr, "GET", target, headers, b"").await
}

/// One request on a fresh HTTP/1.1 connection.
async fn call(
    addr: std::net::SocketAddr,
    method: &str,
    target: &str,
    headers: &[String],
    body: &[u8],
) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: test\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // A server may answer (413) before taking all of a large body.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let out = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

struct Server {
    addr: std::net::SocketAddr,
    host: Host,
    token: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<Result<(), confstrata_host::ServeError>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let engine = confstrata_host::open(&dir.path().join("data")).unwrap();
        let token = engine
            .bootstrap_admin()
            .unwrap()
            .unwrap()
            .expose_secret()
            .to_owned();
        let local = Caller::local("test");
        let seed = json!([
            {"op": "put-namespace", "spec": {"name": "web", "levels": ["defaults", "env/{env}"], "matrix": {"env": ["dev", "prod"]}}},
            {"op": "put", "namespace": "web", "layer": "defaults", "document": {"db": {"host": "localhost", "pool": 5}, "log": "info"}},
            {"op": "put", "namespace": "web", "layer": "env/prod", "document": {"db": {"host": "db.prod"}}},
            {"op": "put-namespace", "spec": {"name": "other", "levels": ["defaults"]}},
        ]);
        let cs =
            serde_json::from_value(json!({"author": "t", "message": "seed", "ops": seed})).unwrap();
        engine.commit(&local, &cs).unwrap();
        let host = Host::new(engine).unwrap();
        let doors = Doors::new(confstrata_http_api::router(&host));
        let (addr, stop, served) = crate::serve(&host, doors).await;
        Server {
            addr,
            host,
            token,
            stop: Some(stop),
            served,
            _dir: dir,
        }
    }

    fn bearer(&self) -> Vec<String> {
        vec![format!("Authorization: Bearer {}", self.token)]
    }

    async fn get(&self, target: &str) -> Answer {
        get(self.addr, target, &self.bearer()).await
    }

    /// A request with the token, a content type and a body.
    async fn send(&self, method: &str, target: &str, content_type: &str, body: &[u8]) -> Answer {
        let mut h = self.bearer();
        if !content_type.is_empty() {
            h.push(format!("Content-Type: {content_type}"));
        }
        call(self.addr, method, target, &h, body).await
    }

    fn revision(&self) -> u64 {
        self.host.runner().engine().store().revision().unwrap()
    }

    fn commit(&self, ops: Value) {
        let cs =
            serde_json::from_value(json!({"author": "t", "message": "m", "ops": ops})).unwrap();
        self.host
            .runner()
            .engine()
            .commit(&Caller::local("test"), &cs)
            .unwrap();
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.served).await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn a_request_without_a_valid_token_is_refused_before_anything_of_it_is_read() {
    let s = Server::start().await;
    let targets = [
        "/v1/namespaces",
        "/v1/namespaces/web/resolve?env=prod",
        // Invalid in every way, yet the answer is about the token.
        "/v1/namespaces/..%2F..%2Fetc/resolve?section=..&revision=abc",
        "/v1/nope",
        "/anything",
    ];
    let bad = [
        vec![],
        vec!["Authorization: Bearer cst_nope".to_owned()],
        vec!["Authorization: Basic YWRtaW46YWRtaW4=".to_owned()],
        vec![
            "X-Forwarded-For: 127.0.0.1".to_owned(),
            "X-Remote-User: admin".to_owned(),
            "X-Real-IP: 127.0.0.1".to_owned(),
        ],
    ];
    for target in targets {
        for headers in &bad {
            let a = get(s.addr, target, headers).await;
            assert_eq!(a.status, 401, "{target} {headers:?}: {}", a.body);
            assert_eq!(
                a.header("www-authenticate"),
                Some("Bearer realm=\"confstrata\"")
            );
            assert_eq!(a.header("content-type"), Some("application/problem+json"));
            let p = a.json();
            assert_eq!(p["status"], 401);
            assert_eq!(p["code"], "unauthenticated");
            assert_eq!(p["type"], "https://confstrata.dev/problems/unauthenticated");
            assert!(
                !a.body.contains("cst_nope"),
                "the token is echoed: {}",
                a.body
            );
        }
    }
    // The probes stay open.
    assert_eq!(get(s.addr, "/healthz", &[]).await.status, 200);
    assert_eq!(get(s.addr, "/readyz", &[]).await.status, 200);
    // With the token, an unknown path is a 404 problem.
    let a = s.get("/v1/nope").await;
    assert_eq!(
        (a.status, a.json()["code"].clone()),
        (404, json!("not-found"))
    );
    s.stop().await;
}

#[tokio::test]
async fn resolve_answers_the_context_with_an_etag_and_304_while_nothing_changed() {
    let s = Server::start().await;
    let list = s.get("/v1/namespaces").await;
    assert_eq!(list.status, 200, "{}", list.body);
    let names: Vec<Value> = list.json()["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].clone())
        .collect();
    assert_eq!(names, [json!("other"), json!("web")]);

    let a = s.get("/v1/namespaces/web/resolve?env=prod").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("content-type"), Some("application/json"));
    let body = a.json();
    assert_eq!(
        body["document"],
        json!({"db": {"host": "db.prod", "pool": 5}, "log": "info"})
    );
    assert_eq!(body["context"], json!({"env": "prod"}));
    assert_eq!(body["revision"], 1);
    let etag = a.header("etag").unwrap().to_owned();
    assert!(etag.starts_with("W/\"r1."), "{etag}");
    // The same again, now from the view cache: the same bytes, the same tag.
    let b = s.get("/v1/namespaces/web/resolve?env=prod").await;
    assert_eq!(
        (b.header("etag"), b.json()["document"].clone()),
        (Some(etag.as_str()), body["document"].clone())
    );

    let revalidate = |etag: &str| {
        let mut h = s.bearer();
        h.push(format!("If-None-Match: {etag}"));
        h
    };
    let c = get(
        s.addr,
        "/v1/namespaces/web/resolve?env=prod",
        &revalidate(&etag),
    )
    .await;
    assert_eq!((c.status, c.body.as_str()), (304, ""));
    // A change elsewhere changes nothing this context shows: still 304.
    s.commit(
        json!([{"op": "set", "namespace": "other", "layer": "defaults", "key": "x", "value": 1}]),
    );
    s.commit(json!([{"op": "set", "namespace": "web", "layer": "env/dev", "key": "log", "value": "debug"}]));
    let c = get(
        s.addr,
        "/v1/namespaces/web/resolve?env=prod",
        &revalidate(&etag),
    )
    .await;
    assert_eq!(c.status, 304, "{}", c.body);
    // A change it shows: a new document and tag.
    s.commit(json!([{"op": "set", "namespace": "web", "layer": "env/prod", "key": "db.pool", "value": 50}]));
    let d = get(
        s.addr,
        "/v1/namespaces/web/resolve?env=prod",
        &revalidate(&etag),
    )
    .await;
    assert_eq!(d.status, 200);
    assert_eq!(d.json()["document"]["db"]["pool"], 50);
    assert_ne!(d.header("etag"), Some(etag.as_str()));

    // A section, a revision back in time, provenance.
    let e = s
        .get("/v1/namespaces/web/resolve?env=prod&section=db.host")
        .await;
    assert_eq!(e.json()["document"], json!({"db": {"host": "db.prod"}}));
    let f = s
        .get("/v1/namespaces/web/resolve?env=prod&revision=1&provenance=true")
        .await;
    assert_eq!(f.status, 200, "{}", f.body);
    assert_eq!(f.json()["document"]["db"]["pool"], 5);
    assert_eq!(f.json()["provenance"]["db.host"]["layer"], "env/prod");
    // A context variable named like a parameter goes as `context.NAME`.
    let g = s.get("/v1/namespaces/web/resolve?context.env=prod").await;
    assert_eq!(g.json()["document"]["db"]["host"], "db.prod");
    s.stop().await;
}

#[tokio::test]
async fn bad_requests_get_problems_that_say_what_and_where() {
    let s = Server::start().await;
    let before = s.host.runner().engine().store().revision().unwrap();
    let cases = [
        (
            "/v1/namespaces/..%2Fetc/resolve",
            400,
            "invalid-input",
            Some("namespace"),
        ),
        (
            "/v1/namespaces/%2e%2e/resolve",
            400,
            "invalid-input",
            Some("namespace"),
        ),
        (
            "/v1/namespaces/web%00/resolve",
            400,
            "invalid-input",
            Some("namespace"),
        ),
        (
            "/v1/namespaces/%ff%fe/resolve",
            400,
            "invalid-input",
            Some("namespace"),
        ),
        (
            "/v1/namespaces/web/resolve?env=prod&section=..",
            400,
            "invalid-input",
            Some("section"),
        ),
        (
            "/v1/namespaces/web/resolve?env=prod&revision=abc",
            400,
            "invalid-input",
            Some("revision"),
        ),
        (
            "/v1/namespaces/web/resolve?env=prod&provenance=maybe",
            400,
            "invalid-input",
            Some("provenance"),
        ),
        (
            "/v1/namespaces/web/resolve?env=prod&env=dev",
            400,
            "invalid-input",
            Some("context"),
        ),
        (
            "/v1/namespaces/web/resolve?env=qa",
            400,
            "invalid-input",
            Some("context"),
        ),
        (
            "/v1/namespaces/web/resolve?nope=1",
            400,
            "invalid-input",
            Some("context"),
        ),
        (
            "/v1/namespaces/web/resolve?env=prod&revision=999",
            400,
            "out-of-range",
            None,
        ),
        ("/v1/namespaces/nope/resolve", 404, "not-found", None),
        (
            "/v1/namespaces?revision=-1",
            400,
            "invalid-input",
            Some("revision"),
        ),
    ];
    for (target, status, code, field) in cases {
        let a = s.get(target).await;
        assert_eq!(a.status, status, "{target}: {}", a.body);
        assert_eq!(
            a.header("content-type"),
            Some("application/problem+json"),
            "{target}"
        );
        let p = a.json();
        assert_eq!(p["code"], code, "{target}: {p}");
        assert_eq!(p["status"], status, "{target}");
        assert!(
            !p["detail"].as_str().unwrap_or_default().is_empty(),
            "{target}"
        );
        if let Some(field) = field {
            assert_eq!(p["errors"][0]["field"], field, "{target}: {p}");
        }
    }
    assert_eq!(
        s.host.runner().engine().store().revision().unwrap(),
        before,
        "nothing was written"
    );
    s.stop().await;
}

#[tokio::test]
async fn writes_take_json_toml_and_yaml_and_if_match_makes_them_conditional() {
    let s = Server::start().await;
    // A change set, as `confstrata apply -f` takes it, in each format.
    let json_cs = br#"{"message": "pool", "ops": [{"op": "set", "namespace": "web", "layer": "env/prod", "key": "db.pool", "value": 20}]}"#;
    let a = s
        .send("POST", "/v1/changesets", "application/json", json_cs)
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["revision"], 2);
    let toml_cs = b"message = \"log\"\n[[ops]]\nop = \"set\"\nnamespace = \"web\"\nlayer = \"defaults\"\nkey = \"log\"\nvalue = \"warn\"\n";
    let a = s
        .send(
            "POST",
            "/v1/changesets",
            "application/toml; charset=utf-8",
            toml_cs,
        )
        .await;
    assert_eq!(
        (a.status, a.json()["revision"].clone()),
        (200, json!(3)),
        "{}",
        a.body
    );
    let yaml_cs =
        b"ops:\n  - op: unset\n    namespace: web\n    layer: defaults\n    key: db.host\n";
    let a = s
        .send("POST", "/v1/changesets", "application/yaml", yaml_cs)
        .await;
    assert_eq!(
        (a.status, a.json()["revision"].clone()),
        (200, json!(4)),
        "{}",
        a.body
    );
    let r = s.get("/v1/namespaces/web/resolve?env=prod").await.json();
    assert_eq!(
        r["document"],
        json!({"db": {"host": "db.prod", "pool": 20}, "log": "warn"})
    );

    // A layer: read it, write it over the version read, then over a stale one.
    let layer = "/v1/namespaces/web/layers/env%2Fprod";
    let got = s.get(layer).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.json()["layer"], "env/prod");
    let etag = got.header("etag").unwrap().to_owned();
    assert_eq!(etag, "\"2\"");
    let conditional = |if_match: &str| {
        let mut h = s.bearer();
        h.push("Content-Type: application/json".to_owned());
        h.push(format!("If-Match: {if_match}"));
        h
    };
    let a = call(
        s.addr,
        "PUT",
        layer,
        &conditional(&etag),
        br#"{"db": {"host": "db2.prod"}}"#,
    )
    .await;
    assert_eq!(
        (a.status, a.json()["revision"].clone()),
        (200, json!(5)),
        "{}",
        a.body
    );
    let a = call(
        s.addr,
        "PUT",
        layer,
        &conditional(&etag),
        br#"{"db": {"host": "lost.update"}}"#,
    )
    .await;
    assert_eq!(a.status, 412, "{}", a.body);
    let p = a.json();
    assert_eq!(
        (
            p["code"].clone(),
            p["expected"].clone(),
            p["actual"].clone()
        ),
        (json!("conflict"), json!(2), json!(5))
    );
    // A read with the tag it has: 304.
    let mut h = s.bearer();
    h.push("If-None-Match: \"5\"".to_owned());
    assert_eq!(call(s.addr, "GET", layer, &h, b"").await.status, 304);
    // Create-only (`If-None-Match: *`): refused over an existing layer.
    let mut h = s.bearer();
    h.push("Content-Type: application/json".to_owned());
    h.push("If-None-Match: *".to_owned());
    let a = call(s.addr, "PUT", layer, &h, b"{}").await;
    assert_eq!(a.status, 412, "{}", a.body);
    // Not a layer's revision: a weak tag, a resolve's tag, a list.
    for bad in ["W/\"5\"", "W/\"r5.0011223344556677\"", "\"5\", \"6\"", "*"] {
        let a = call(s.addr, "PUT", layer, &conditional(bad), b"{}").await;
        assert_eq!(
            (a.status, a.json()["errors"][0]["field"].clone()),
            (400, json!("If-Match")),
            "{bad}: {}",
            a.body
        );
    }
    // A method a resource does not serve: a 405 problem.
    let a = s.send("DELETE", "/v1/namespaces", "", b"").await;
    assert_eq!(
        (a.status, a.json()["code"].clone()),
        (405, json!("method-not-allowed"))
    );
    // Create-only, in TOML (the layer is new); then the list and a delete.
    let mut h = s.bearer();
    h.push("Content-Type: application/toml".to_owned());
    h.push("If-None-Match: *".to_owned());
    let a = call(
        s.addr,
        "PUT",
        "/v1/namespaces/web/layers/env%2Fdev",
        &h,
        b"log = \"debug\"\n",
    )
    .await;
    assert_eq!(a.status, 201, "a create-only PUT creates: {}", a.body);
    assert_eq!(
        a.header("location"),
        Some("/v1/namespaces/web/layers/env%2Fdev")
    );
    let list = s.get("/v1/namespaces/web/layers").await.json();
    let names: Vec<Value> = list["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["layer"].clone())
        .collect();
    assert_eq!(
        names,
        [json!("defaults"), json!("env/dev"), json!("env/prod")]
    );
    let a = s
        .send("DELETE", "/v1/namespaces/web/layers/env%2Fdev", "", b"")
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        s.get("/v1/namespaces/web/layers/env%2Fdev").await.status,
        404
    );
    s.stop().await;
}

/// A bad request: method, target, content type, body, status, problem code.
type Case = (
    &'static str,
    &'static str,
    &'static str,
    Vec<u8>,
    u16,
    &'static str,
);

#[tokio::test]
async fn bad_bodies_and_paths_are_refused_with_problems_and_change_nothing() {
    let s = Server::start().await;
    let before = s.revision();
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let deep_cs = format!(
        r#"{{"ops": [{{"op": "put", "namespace": "web", "layer": "defaults", "document": {{"a": {deep}}}}}]}}"#
    );
    let huge = vec![b' '; 33 << 20];
    let cases: Vec<Case> = vec![
        ("POST", "/v1/changesets", "application/json", b"{\"ops\": [".to_vec(), 400, "invalid-input"),
        ("POST", "/v1/changesets", "application/toml", b"[[ops]\nop = ".to_vec(), 400, "invalid-input"),
        ("POST", "/v1/changesets", "application/yaml", b"ops: [\n  - {op: set,".to_vec(), 400, "invalid-input"),
        ("POST", "/v1/changesets", "application/json", br#"{"ops": [{"op": "explode"}]}"#.to_vec(), 400, "invalid-input"),
        ("POST", "/v1/changesets", "application/json", br#"{"ops": []}"#.to_vec(), 400, "invalid-input"),
        ("POST", "/v1/changesets", "application/json", deep_cs.into_bytes(), 400, "invalid-input"),
        ("POST", "/v1/changesets", "application/json", br#"{"ops": [{"op": "set", "namespace": "web", "layer": "defaults", "key": "a\u0000b", "value": 1}]}"#.to_vec(), 400, "invalid-input"),
        ("POST", "/v1/changesets", "application/json", b"\xff\xfe{}".to_vec(), 400, "invalid-input"),
        ("POST", "/v1/changesets", "text/plain", b"{}".to_vec(), 415, "unsupported-media-type"),
        ("POST", "/v1/changesets", "", b"{}".to_vec(), 415, "unsupported-media-type"),
        ("POST", "/v1/changesets", "application/json", huge, 413, "too-large"),
        ("PUT", "/v1/namespaces/web/layers/..%2F..%2Fetc", "application/json", b"{}".to_vec(), 400, "invalid-input"),
        ("PUT", "/v1/namespaces/web/layers/%2e%2e", "application/json", b"{}".to_vec(), 400, "invalid-input"),
        ("PUT", "/v1/namespaces/web/layers/env%2F..%2F..%2Fx", "application/json", b"{}".to_vec(), 400, "invalid-input"),
        ("PUT", "/v1/namespaces/web/layers/env%252Fprod", "application/json", b"{}".to_vec(), 400, "invalid-input"),
        ("PUT", "/v1/namespaces/web/layers/nowhere", "application/json", b"{}".to_vec(), 400, "invalid-input"),
        ("PUT", "/v1/namespaces/web/layers/defaults", "application/json", b"[1, 2]".to_vec(), 400, "invalid-input"),
        ("PUT", "/v1/namespaces/web/layers/defaults", "application/json", br#"{"$delete": true}"#.to_vec(), 400, "invalid-input"),
        ("DELETE", "/v1/namespaces/web/layers/env%2Fdev", "", Vec::new(), 404, "not-found"),
        ("DELETE", "/v1/namespaces/nope/layers/defaults", "", Vec::new(), 404, "not-found"),
    ];
    for (method, target, content_type, body, status, code) in cases {
        let a = s.send(method, target, content_type, &body).await;
        assert_eq!(
            a.status, status,
            "{method} {target} ({content_type}): {}",
            a.body
        );
        assert_eq!(
            a.header("content-type"),
            Some("application/problem+json"),
            "{method} {target}"
        );
        assert_eq!(a.json()["code"], code, "{method} {target}: {}", a.body);
        assert!(!a.body.contains("\u{0}"), "{method} {target}");
    }
    let mut h = s.bearer();
    h.push("Content-Type: application/json".to_owned());
    h.push("If-Match: \"not-a-revision\"".to_owned());
    let a = call(
        s.addr,
        "PUT",
        "/v1/namespaces/web/layers/defaults",
        &h,
        b"{}",
    )
    .await;
    assert_eq!(
        (a.status, a.json()["errors"][0]["field"].clone()),
        (400, json!("If-Match")),
        "{}",
        a.body
    );
    assert_eq!(s.revision(), before, "nothing was written");
    // The server goes on.
    assert_eq!(
        s.get("/v1/namespaces/web/resolve?env=prod").await.status,
        200
    );
    s.stop().await;
}

#[tokio::test]
async fn namespaces_are_declared_read_explained_and_their_history_listed() {
    let s = Server::start().await;
    let spec = b"name = \"shared/logging\"\nlevels = [\"defaults\", \"env/{env}\"]\n[matrix]\nenv = [\"dev\", \"prod\"]\n";
    let a = s
        .send("POST", "/v1/namespaces", "application/toml", spec)
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(
        a.header("location"),
        Some("/v1/namespaces/shared%2Flogging")
    );
    // Declared again without `replace`: a conflict of existence.
    let again = s
        .send("POST", "/v1/namespaces", "application/toml", spec)
        .await;
    assert_eq!(
        (again.status, again.json()["code"].clone()),
        (409, json!("already-exists")),
        "{}",
        again.body
    );
    let replaced = s
        .send(
            "POST",
            "/v1/namespaces?replace=true",
            "application/toml",
            spec,
        )
        .await;
    assert_eq!(replaced.status, 200, "{}", replaced.body);
    let got = s.get("/v1/namespaces/shared%2Flogging").await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.json()["spec"]["name"], "shared/logging");
    assert!(got.header("etag").is_some());

    // Explain: where db.host comes from for env=prod.
    let x = s
        .get("/v1/namespaces/web/explain?key=db.host&env=prod")
        .await;
    assert_eq!(x.status, 200, "{}", x.body);
    let text = x.body.clone();
    assert!(
        text.contains("env/prod") && text.contains("db.prod"),
        "{text}"
    );
    let missing = s.get("/v1/namespaces/web/explain?env=prod").await;
    assert_eq!(
        (missing.status, missing.json()["errors"][0]["field"].clone()),
        (400, json!("key"))
    );

    // History, of the namespace and of one layer.
    s.commit(json!([{"op": "set", "namespace": "web", "layer": "env/prod", "key": "db.pool", "value": 9}]));
    let h = s.get("/v1/namespaces/web/history").await;
    assert_eq!(h.status, 200, "{}", h.body);
    assert_eq!(h.json()["versions"].as_array().unwrap().len(), 3);
    let h = s
        .get("/v1/namespaces/web/history?layer=env%2Fprod&limit=1")
        .await
        .json();
    let versions = h["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0]["document"]["db"]["pool"], 9);
    for bad in ["limit=0", "limit=x", "layer=..%2Fx"] {
        let a = s.get(&format!("/v1/namespaces/web/history?{bad}")).await;
        assert_eq!(a.status, 400, "{bad}: {}", a.body);
    }

    // Stats, for the admin.
    let st = s.get("/v1/stats").await;
    assert_eq!(st.status, 200, "{}", st.body);
    assert!(st.json().is_object());
    // A bad declaration names where it is wrong.
    let bad = s
        .send(
            "POST",
            "/v1/namespaces",
            "application/json",
            br#"{"name": "x", "levels": 7}"#,
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(
        bad.json()["detail"].as_str().unwrap().contains("levels"),
        "{}",
        bad.body
    );
    s.stop().await;
}

#[tokio::test]
async fn dry_runs_rollbacks_validation_status_and_the_audit_log() {
    let s = Server::start().await;
    // A dry run says what would change and commits nothing.
    let cs = br#"{"ops": [{"op": "set", "namespace": "web", "layer": "defaults", "key": "log", "value": "debug"}]}"#;
    let before = s.revision();
    let dry = s
        .send(
            "POST",
            "/v1/changesets?dry_run=true",
            "application/json",
            cs,
        )
        .await;
    assert_eq!(dry.status, 200, "{}", dry.body);
    let d = dry.json();
    assert_eq!(d["revision"], before);
    assert_eq!(d["layers"].as_array().unwrap().len(), 1, "{d}");
    assert_eq!(s.revision(), before, "a dry run commits nothing");
    let a = s
        .send("POST", "/v1/changesets", "application/json", cs)
        .await;
    assert_eq!(a.status, 200, "{}", a.body);

    // Back to revision 1: first as a dry run, then for real.
    let target = "/v1/namespaces/web/rollback?revision=1&message=undo";
    let dry = s
        .send("POST", &format!("{target}&dry_run=true"), "", b"")
        .await;
    assert_eq!(dry.status, 200, "{}", dry.body);
    assert!(dry.json()["commit"].is_null());
    assert!(dry.json()["change_set"]["ops"].is_array(), "{}", dry.body);
    let done = s.send("POST", target, "", b"").await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.json()["commit"]["revision"], before + 2);
    let r = s.get("/v1/namespaces/web/resolve?env=dev").await.json();
    assert_eq!(r["document"]["log"], "info");
    let missing = s.send("POST", "/v1/namespaces/web/rollback", "", b"").await;
    assert_eq!(
        (missing.status, missing.json()["errors"][0]["field"].clone()),
        (400, json!("revision"))
    );

    // Validation, status, declarations.
    let v = s.get("/v1/validate?namespace=web").await;
    assert_eq!(v.status, 200, "{}", v.body);
    assert_eq!(v.json()["ok"], true);
    assert_eq!(s.get("/v1/validate?namespace=..%2Fx").await.status, 400);
    let st = s.get("/v1/status").await.json();
    assert_eq!(st["revision"], s.revision());
    assert_eq!(st["namespaces"], 2);
    let decl = s.get("/v1/namespaces/web/declarations").await.json();
    assert_eq!(decl["versions"].as_array().unwrap().len(), 1, "{decl}");

    // The audit log: the writes above are on it, and the chain verifies.
    let log = s.get("/v1/audit?limit=1000").await;
    assert_eq!(log.status, 200, "{}", log.body);
    let records = log.json()["records"].as_array().unwrap().clone();
    assert!(records.len() >= 3, "{records:?}");
    let last = records.last().unwrap()["seq"].as_u64().unwrap();
    let page = s.get(&format!("/v1/audit?after={last}")).await.json();
    assert!(page["records"].as_array().unwrap().len() <= 2, "{page}");
    let verified = s.get("/v1/audit/verify").await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    assert!(verified.json()["records"].as_u64().unwrap() >= 3);
    for bad in ["/v1/audit?after=x", "/v1/audit?limit=0"] {
        assert_eq!(s.get(bad).await.status, 400, "{bad}");
    }
    s.stop().await;
}

#[tokio::test]
async fn a_patch_sets_seals_and_removes_keys_as_one_change() {
    let s = Server::start().await;
    let layer = "/v1/namespaces/web/layers/env%2Fprod";
    let body = br#"{"set": {"db.pool": 40, "db.password": "hunter2"}, "secret": ["db.password"], "unset": ["db.host"]}"#;
    let a = s.send("PATCH", layer, "application/json", body).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let got = s.get(layer).await.json();
    assert_eq!(got["revision"], 2);
    assert_eq!(got["document"]["db"]["pool"], 40);
    assert!(got["document"]["db"].get("host").is_none(), "{got}");
    // The password went in sealed: the store holds no plaintext of it.
    let stored = s
        .host
        .runner()
        .engine()
        .store()
        .layer(&"web".parse().unwrap(), &"env/prod".parse().unwrap(), 2)
        .unwrap()
        .unwrap();
    let text = serde_json::to_string(&stored.document).unwrap();
    assert!(
        !text.contains("hunter2") && text.contains("$sealed"),
        "{text}"
    );
    let yaml = b"unset: [db.pool]\n";
    let a = s.send("PATCH", layer, "application/yaml", yaml).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let before = s.revision();
    for (body, field) in [
        (r#"{"set": {"..": 1}}"#, "body"),
        (r#"{"set": {"a..b": 1}}"#, "set.a..b"),
        (r#"{"unset": ["a..b"]}"#, "unset.a..b"),
        (r#"{"set": {"a": 1}, "secret": ["b"]}"#, "secret"),
    ] {
        let a = s
            .send("PATCH", layer, "application/json", body.as_bytes())
            .await;
        assert_eq!(a.status, 400, "{body}: {}", a.body);
        assert_eq!(a.json()["errors"][0]["field"], field, "{body}: {}", a.body);
    }
    for body in [r#"{"sett": {}}"#, r#"{}"#, r#"{"unset": ["nope"]}"#] {
        let a = s
            .send("PATCH", layer, "application/json", body.as_bytes())
            .await;
        assert!(matches!(a.status, 400 | 404), "{body}: {}", a.body);
    }
    assert_eq!(s.revision(), before, "nothing was written");
    s.stop().await;
}

#[tokio::test]
async fn a_long_poll_answers_when_the_view_changes_and_ends_when_the_server_stops() {
    let s = Server::start().await;
    let first = s.get("/v1/namespaces/web/resolve?env=prod").await;
    let index: u64 = first.header("x-confstrata-index").unwrap().parse().unwrap();
    assert_eq!(index, 1);
    // Nothing newer than `index` yet: the request waits; a commit this
    // view shows answers it (whether it lands before or during the wait).
    let poll = {
        let (addr, h) = (s.addr, s.bearer());
        tokio::spawn(async move {
            get(
                addr,
                &format!("/v1/namespaces/web/resolve?env=prod&index={index}&wait=10m"),
                &h,
            )
            .await
        })
    };
    // A commit elsewhere does not answer it; one it shows does.
    s.commit(
        json!([{"op": "set", "namespace": "other", "layer": "defaults", "key": "x", "value": 1}]),
    );
    s.commit(json!([{"op": "set", "namespace": "web", "layer": "env/prod", "key": "db.pool", "value": 77}]));
    let answered = poll.await.unwrap();
    assert_eq!(answered.status, 200, "{}", answered.body);
    assert_eq!(answered.json()["document"]["db"]["pool"], 77);
    assert_eq!(answered.header("x-confstrata-index"), Some("3"));
    // An index already behind answers at once.
    let now = s
        .get("/v1/namespaces/web/resolve?env=prod&index=1&wait=10m")
        .await;
    assert_eq!(now.json()["document"]["db"]["pool"], 77);
    for bad in ["index=x", "wait=soon", "wait=5h", "wait=-1s"] {
        let a = s
            .get(&format!("/v1/namespaces/web/resolve?env=prod&{bad}"))
            .await;
        assert_eq!(a.status, 400, "{bad}: {}", a.body);
    }
    // A poll in progress is answered when the server stops, not cut off
    // after the grace period.
    let reads = || {
        let c = s.host.runner().engine().cache_stats();
        c.hits + c.misses
    };
    let before = reads();
    let poll = {
        let (addr, h) = (s.addr, s.bearer());
        tokio::spawn(async move {
            get(
                addr,
                "/v1/namespaces/web/resolve?env=prod&index=3&wait=10m",
                &h,
            )
            .await
        })
    };
    // Once it has read its view it waits (or sees the stop at once).
    while reads() == before {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    s.stop().await;
    let answered = poll.await.unwrap();
    assert_eq!(answered.status, 200, "{}", answered.body);
    assert_eq!(answered.json()["document"]["db"]["pool"], 77);
}

/// Templates over REST: the catalogue, apply (dry run, then for real),
/// the overrides, an upgrade that keeps them, a user template stored after
/// its check, and the refusals (bad parameters, an existing namespace, a
/// version stored twice, a template that does not validate).
#[tokio::test]
async fn templates_are_listed_applied_diffed_upgraded_and_stored() {
    let s = Server::start().await;
    let list = s.get("/v1/templates").await;
    assert_eq!(list.status, 200, "{}", list.body);
    let names: Vec<String> = list.json()["templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| format!("{}@{}", t["name"].as_str().unwrap(), t["version"]))
        .collect();
    assert!(names.contains(&"http-service@2".to_owned()), "{names:?}");
    let one = s.get("/v1/templates/http-service@1").await;
    assert_eq!(one.status, 200, "{}", one.body);
    assert_eq!(one.json()["source"], "library");
    assert_eq!(s.get("/v1/templates/nope").await.status, 404);

    let json = "application/json";
    let before = s.revision();
    let dry = s
        .send(
            "POST",
            "/v1/templates/http-service@1/apply?dry_run=true",
            json,
            br#"{"namespace": "api", "parameters": {"port": 9090}}"#,
        )
        .await;
    assert_eq!(dry.status, 200, "{}", dry.body);
    let d = dry.json();
    assert_eq!(d["template"], "http-service@1");
    assert_eq!(d["parameters"]["port"], 9090);
    assert_eq!(d["dry_run"]["findings"], json!([]), "{d}");
    assert!(d.get("commit").is_none(), "{d}");
    assert_eq!(s.revision(), before, "a dry run creates nothing");
    let bad = s
        .send(
            "POST",
            "/v1/templates/http-service@1/apply",
            json,
            br#"{"namespace": "api", "parameters": {"port": 70000}}"#,
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("parameter port"), "{}", bad.body);
    let made = s
        .send(
            "POST",
            "/v1/templates/http-service@1/apply",
            json,
            br#"{"namespace": "api", "parameters": {"port": 9090}}"#,
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(made.json()["commit"]["revision"], before + 1);
    let again = s
        .send(
            "POST",
            "/v1/templates/http-service@1/apply",
            json,
            br#"{"namespace": "api"}"#,
        )
        .await;
    assert!(again.status == 409 || again.status == 412, "{}", again.body);
    // Imports given with the apply: named in the declaration it creates;
    // a bad name or a missing namespace is a 400 naming it.
    s.commit(json!([{"op": "put-namespace", "spec": {"name": "shared/log", "levels": ["defaults"]}},
        {"op": "put", "namespace": "shared/log", "layer": "defaults", "document": {"log": {"format": "json"}}}]));
    let imported = s
        .send(
            "POST",
            "/v1/templates/http-service@1/apply?dry_run=true",
            json,
            br#"{"namespace": "api2", "imports": ["shared/log"]}"#,
        )
        .await;
    assert_eq!(imported.status, 200, "{}", imported.body);
    let i = imported.json();
    assert_eq!(
        i["change_set"]["ops"][0]["spec"]["imports"],
        json!(["shared/log"]),
        "{i}"
    );
    for (body, needle) in [
        (
            &br#"{"namespace": "api2", "imports": ["Not A Name"]}"#[..],
            "imports",
        ),
        (
            &br#"{"namespace": "api2", "imports": ["shared/nope"]}"#[..],
            "shared/nope",
        ),
    ] {
        let r = s
            .send("POST", "/v1/templates/http-service@1/apply", json, body)
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.body.contains(needle), "{}", r.body);
    }

    // An override, seen by the diff and kept by the upgrade to @2.
    s.commit(json!([{"op": "set", "namespace": "api", "layer": "defaults", "key": "server.request_timeout_ms", "value": 2000}]));
    let diff = s.get("/v1/namespaces/api/template").await;
    assert_eq!(diff.status, 200, "{}", diff.body);
    let diff = diff.json();
    assert_eq!(diff["template"], "http-service@1");
    assert_eq!(
        diff["overrides"][0]["key"], "server.request_timeout_ms",
        "{diff}"
    );
    assert_eq!(diff["overrides"][0]["template"], 5000, "{diff}");
    let plan = s
        .send(
            "POST",
            "/v1/namespaces/api/template/upgrade?dry_run=true",
            json,
            br#"{"to_version": 2}"#,
        )
        .await;
    assert_eq!(plan.status, 200, "{}", plan.body);
    let plan = plan.json();
    assert_eq!(
        (&plan["from"], &plan["to"]),
        (&json!("http-service@1"), &json!("http-service@2"))
    );
    assert_eq!(plan["kept"], 1, "{plan}");
    let up = s
        .send("POST", "/v1/namespaces/api/template/upgrade", "", b"")
        .await;
    assert_eq!(up.status, 200, "{}", up.body);
    assert!(up.json()["commit"]["revision"].is_u64(), "{}", up.body);
    let r = s
        .get("/v1/namespaces/api/resolve?env=dev&region=eu")
        .await
        .json();
    assert_eq!(r["document"]["server"]["request_timeout_ms"], 2000, "kept");
    assert_eq!(
        r["document"]["server"]["idle_timeout_ms"], 30000,
        "taken from @2"
    );
    let none = s
        .send("POST", "/v1/namespaces/api/template/upgrade", "", b"")
        .await;
    assert_eq!(none.status, 200, "{}", none.body);
    assert_eq!(none.json()["change_set"]["ops"], json!([]), "{}", none.body);
    let refused = s
        .send("POST", "/v1/namespaces/web/template/upgrade", "", b"")
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("not made from a template"),
        "{}",
        refused.body
    );

    // A user template, in TOML; checked before it is stored.
    let worker = include_str!("../../../cli/tests/it/fixtures/worker-template.toml");
    let toml = "application/toml";
    let dry = s
        .send(
            "POST",
            "/v1/templates?dry_run=true",
            toml,
            worker.as_bytes(),
        )
        .await;
    assert_eq!(dry.status, 200, "{}", dry.body);
    assert_eq!(dry.json()["dry_run"]["findings"], json!([]), "{}", dry.body);
    let stored = s
        .send("POST", "/v1/templates", toml, worker.as_bytes())
        .await;
    assert_eq!(stored.status, 201, "{}", stored.body);
    let twice = s
        .send("POST", "/v1/templates", toml, worker.as_bytes())
        .await;
    assert!(twice.status == 409 || twice.status == 412, "{}", twice.body);
    let broken = worker
        .replace("version = 1", "version = 2")
        .replace("base * 4", "1");
    let broken = s
        .send("POST", "/v1/templates", toml, broken.as_bytes())
        .await;
    assert_eq!(broken.status, 422, "{}", broken.body);
    assert!(broken.body.contains("prod-has-headroom"), "{}", broken.body);
    let garbage = s
        .send("POST", "/v1/templates", json, br#"{"name": 1}"#)
        .await;
    assert_eq!(garbage.status, 400, "{}", garbage.body);
    let user = s.get("/v1/templates/worker").await;
    assert_eq!(user.json()["source"], "user", "{}", user.body);
    let made = s
        .send(
            "POST",
            "/v1/templates/worker/apply",
            json,
            br#"{"namespace": "jobs"}"#,
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let r = s.get("/v1/namespaces/jobs/resolve?env=prod").await.json();
    assert_eq!(r["document"]["concurrency"], 16, "{r}");

    // A secret parameter never comes back: not in the parameters, not in
    // the change set, not in the dry run; the store has it sealed.
    let secret_tpl = worker
        .replace("name = \"worker\"", "name = \"vault-client\"")
        .replace(
            "[namespace]",
            "properties.token = { type = \"string\", \"x-secret\" = true, description = \"t\" }\nrequired = [\"token\"]\n\n[namespace]",
        )
        .replace("max_retries = 5", "max_retries = 5\nauth.token = { \"$param\" = \"token\" }");
    let stored = s
        .send("POST", "/v1/templates", toml, secret_tpl.as_bytes())
        .await;
    assert_eq!(stored.status, 201, "{}", stored.body);
    let body = br#"{"namespace": "vc", "parameters": {"token": "canary-rest-tpl-5"}}"#;
    for target in [
        "/v1/templates/vault-client/apply?dry_run=true",
        "/v1/templates/vault-client/apply",
    ] {
        let a = s.send("POST", target, json, body).await;
        assert!(a.status == 200 || a.status == 201, "{}", a.body);
        assert!(!a.body.contains("canary-rest-tpl-5"), "{}", a.body);
        assert!(a.body.contains("<sealed>"), "{}", a.body);
    }
    // Sealed in the store (opened here for the admin, who may read secrets).
    let layer = s.get("/v1/namespaces/vc/layers/defaults").await.json();
    assert_eq!(layer["sealed_keys"], json!(["auth.token"]), "{layer}");
    s.stop().await;
}
