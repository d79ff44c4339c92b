//! A client in another language: Python stubs generated from proto/ with
//! grpcio-tools, run against the real server over TCP.
//!
//! The virtual environment lives in `target/python-venv` and is created (or
//! refreshed when clients/python/requirements.txt changes) by this test;
//! `.ci/run` creates it up front so a package problem shows early.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Server;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{text}",
        out.status
    );
    text
}

/// The venv's python, creating the venv when it is missing or stale.
fn venv_python() -> PathBuf {
    let requirements = repo().join("clients/python/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).unwrap();
    let venv = std::env::var_os("CONFSTRATA_PYTHON_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/python-venv"));
    let python = venv.join("bin/python");
    let stamp = venv.join("confstrata-requirements.txt");
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return python;
    }
    let system = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    run(Command::new(&system).args(["-m", "venv"]).arg(&venv));
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&requirements));
    std::fs::write(&stamp, wanted).unwrap();
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_end_to_end() {
    let python = tokio::task::spawn_blocking(venv_python).await.unwrap();
    let stubs = tempfile::tempdir().unwrap();
    let proto = repo().join("proto");
    let mut protos: Vec<PathBuf> = std::fs::read_dir(proto.join("confstrata/v1"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "proto"))
        .collect();
    protos.sort();
    run(Command::new(&python)
        .args(["-m", "grpc_tools.protoc", "-I"])
        .arg(&proto)
        .arg(format!("--python_out={}", stubs.path().display()))
        .arg(format!("--grpc_python_out={}", stubs.path().display()))
        .args(&protos));

    let server = Server::start().await;
    let script = repo().join("clients/python/e2e_test.py");
    let addr = server.addr.to_string();
    let stubs_dir = stubs.path().to_owned();
    let token = server.admin_token.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .arg(&script)
            .arg(&addr)
            .env("PYTHONPATH", &stubs_dir)
            .env("CONFSTRATA_TOKEN", &token)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "python e2e failed:\n{text}");
    assert!(text.contains("python e2e: 12 passed, 0 failed"), "{text}");
    server.stop().await;
}
