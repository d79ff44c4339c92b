//! The REST API's description against the real server: the served
//! `/v1/openapi.json` is the checked-in one, schemathesis finds no answer
//! that breaks it, and `/docs` renders it in headless Chromium with no
//! request leaving loopback.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::remote::Server;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python of the tools venv (schemathesis, selenium, moto), made when it is
/// missing or its requirements changed (`.ci/run` makes it first).
pub(crate) fn tools_python() -> PathBuf {
    let requirements = repo().join("crates/cli/tests/python/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).unwrap();
    let venv = repo().join("target/python-venv-tools");
    let python = venv.join("bin/python");
    let stamp = venv.join("confstrata-requirements.txt");
    if !(python.exists() && std::fs::read_to_string(&stamp).ok() == Some(wanted.clone())) {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap();
        assert!(made.success(), "python3 -m venv failed");
        let installed = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements)
            .status()
            .unwrap();
        assert!(
            installed.success(),
            "pip install -r {requirements:?} failed"
        );
        std::fs::write(&stamp, wanted).unwrap();
    }
    python
}

/// `GET path` over HTTP/1.1 on a fresh connection: status and body.
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// The operations of a description: `(METHOD, path)`, sorted.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut ops: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|m| ["get", "put", "post", "delete", "patch"].contains(&m.as_str()))
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    ops.sort();
    ops
}

/// `confstrata openapi` prints the checked-in file byte for byte, so CI needs
/// no separate build to check it (`cargo xtask openapi` rewrites it).
#[test]
fn the_openapi_command_prints_the_checked_in_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_confstrata"))
        .arg("openapi")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checked_in = std::fs::read_to_string(repo().join("docs/openapi.json")).unwrap();
    assert!(
        String::from_utf8(out.stdout).unwrap() == checked_in,
        "docs/openapi.json is out of date: run `cargo xtask openapi` and commit it"
    );
}

#[test]
fn the_served_description_is_the_checked_in_one_and_open() {
    let server = Server::start();
    // No token: the description and the docs page are open.
    let (status, body) = get(&server.addr, "/v1/openapi.json");
    assert_eq!(status, 200, "{body}");
    let served: Value = serde_json::from_str(&body).unwrap();
    let checked_in: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("docs/openapi.json")).unwrap())
            .unwrap();
    assert_eq!(served, checked_in, "run `cargo xtask openapi`");
    assert_eq!(served["openapi"], "3.1.0");
    assert!(served["components"]["securitySchemes"]["bearer"].is_object());
    // Every operation needs the token and lists the refusals.
    for (method, path) in operations(&served) {
        let op = &served["paths"][&path][method.to_lowercase()];
        for status in ["400", "401", "403", "404", "500", "503"] {
            assert!(
                op["responses"][status]["content"]["application/problem+json"].is_object(),
                "{method} {path} does not document {status}"
            );
        }
    }
    assert!(operations(&served).len() >= 19);
    let (status, page) = get(&server.addr, "/docs/");
    assert_eq!(status, 200);
    assert!(page.contains("swagger-ui"), "{page}");
    // Everything else still needs one.
    assert_eq!(get(&server.addr, "/v1/status").0, 401);
    server.stop();
}

#[test]
fn schemathesis_finds_no_answer_that_breaks_the_description() {
    let python = tools_python();
    let server = Server::start();
    let (_, body) = get(&server.addr, "/v1/openapi.json");
    let count = operations(&serde_json::from_str(&body).unwrap()).len();
    let st = python.with_file_name("st");
    // Its cache of found failures goes to the working directory.
    let scratch = tempfile::tempdir().unwrap();
    let out = Command::new(&st)
        .current_dir(scratch.path())
        .arg("--config-file")
        .arg(repo().join("crates/cli/tests/python/schemathesis.toml"))
        .args(["run", &format!("http://{}/v1/openapi.json", server.addr)])
        .args(["-H", &format!("Authorization: Bearer {}", server.token)])
        // Every check but `positive_data_acceptance`: a request the schema
        // allows may still be refused for what no schema says (a revision
        // in the future, a change set naming a namespace that does not
        // exist, an empty patch): 400, 404 or 422, each a problem.
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        // The event stream never ends by itself (it would hold every case
        // to the request timeout); crates/http-api/tests/it/sse.rs tests it.
        // Revoking tokens and principals could revoke the run's own token
        // (every later case a 401); crates/http-api/tests/it/admin.rs
        // tests them.
        .args(["--exclude-path-regex", "/watch$|^/v1/tokens/|/revoke$"])
        // Bounded and repeatable: the same cases on every run.
        .args(["--max-examples", "40", "--seed", "1", "--workers", "1"])
        .args(["--no-color", "--request-timeout", "30"])
        .args(["--report", "json", "--report-json-path", "run.json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_slice(
        &std::fs::read(scratch.path().join("run.json")).unwrap_or_else(|e| {
            panic!(
                "no report ({e}):\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        }),
    )
    .unwrap();
    // Every answer within the description: no failure of any check.
    assert_eq!(
        report["failures"],
        serde_json::json!([]),
        "schemathesis found problems:\n{stdout}"
    );
    // The tool's own crashes (a hypothesis internal error on some runs)
    // are not answers of ours; anything else (a connection the server
    // dropped or never answered, a schema it could not use) is.
    for error in report["errors"].as_array().unwrap() {
        assert_eq!(
            error["title"], "Runtime Error",
            "schemathesis could not test:\n{stdout}"
        );
    }
    let excluded = ["/watch", "/v1/tokens/", "/revoke"];
    let left_out = operations(&serde_json::from_str(&body).unwrap())
        .iter()
        .filter(|(_, p)| excluded.iter().any(|e| p.ends_with(e) || p.starts_with(e)))
        .count();
    assert!(left_out >= 3, "{left_out}");
    assert_eq!(report["operations"]["tested"], count - left_out, "{stdout}");
    assert!(report["test_cases"]["generated"].as_u64().unwrap() > 1000);
    server.stop();
}

#[test]
fn the_docs_page_shows_every_operation_in_chromium_with_nothing_leaving_loopback() {
    let python = tools_python();
    let server = Server::start();
    let (_, body) = get(&server.addr, "/v1/openapi.json");
    let expected = operations(&serde_json::from_str(&body).unwrap());
    let shots = tempfile::tempdir().unwrap();
    let screenshot = shots.path().join("docs.png");
    let out = Command::new(&python)
        .arg(repo().join("crates/cli/tests/python/docs_page.py"))
        .arg(format!("http://{}", server.addr))
        .arg(&screenshot)
        .arg(expected.len().to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium on /docs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        seen["title"]
            .as_str()
            .unwrap()
            .contains("Confstrata REST API"),
        "{seen}"
    );
    let mut shown: Vec<(String, String)> = seen["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["method"].as_str().unwrap().to_uppercase(),
                o["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    shown.sort();
    assert_eq!(shown, expected, "the page shows every operation once");
    let requests: Vec<&str> = seen["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    let origin = format!("http://{}/", server.addr);
    assert!(
        requests.iter().any(|u| u.ends_with("/v1/openapi.json")),
        "{requests:?}"
    );
    for url in &requests {
        // Chromium's own pages (its new tab before the first navigation)
        // and inline data are not network requests; anything else must go
        // to the server.
        let internal = ["chrome:", "chrome-untrusted:", "about:", "data:", "blob:"]
            .iter()
            .any(|s| url.starts_with(s));
        assert!(
            internal || url.starts_with(&origin),
            "the page asked for {url}, off the server's loopback origin"
        );
    }
    // A page that rendered: a PNG, far larger than a blank one.
    let png = std::fs::read(&screenshot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 50_000, "screenshot is {} bytes", png.len());
    server.stop();
}
