//! `confstrata serve` with mutual TLS from its settings file, and the CLI's
//! `--tls-ca`, `--tls-cert` and `--tls-key`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

fn write_pki(dir: &Path) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    for (name, sans) in [
        ("server", vec!["127.0.0.1".to_owned()]),
        ("client", vec!["cli".to_owned()]),
    ] {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(sans)
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

fn cli(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_confstrata"));
    c.current_dir(dir)
        .env_remove("CONFSTRATA_ADDR")
        .env_remove("CONFSTRATA_TOKEN")
        .env_remove("CONFSTRATA_MASTER_KEY")
        .stdin(Stdio::null());
    c
}

#[test]
fn remote_commands_over_mutual_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_pki(dir);
    // A principal and token made locally before the server starts.
    let out = cli(dir)
        .args([
            "--data-dir",
            "data",
            "principal",
            "add",
            "ops",
            "--role",
            "admin",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(dir)
        .args(["--data-dir", "data", "token", "issue", "ops"])
        .output()
        .unwrap();
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    std::fs::write(
        dir.join("serve.toml"),
        "tls_cert_file = \"server.pem\"\ntls_key_file = \"server.key\"\ntls_client_ca_file = \"ca.pem\"\n",
    )
    .unwrap();
    let mut child = cli(dir)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "data",
            "--config",
            "serve.toml",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("serve ended before `listening`")
            .unwrap();
        if let Some(a) = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("addr="))
        {
            break a.to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let run = |args: &[&str]| {
        let out = cli(dir)
            .args(["--addr", &format!("https://{addr}")])
            .args(args)
            .env("CONFSTRATA_TOKEN", &token)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let mtls = [
        "--tls-ca",
        "ca.pem",
        "--tls-cert",
        "client.pem",
        "--tls-key",
        "client.key",
    ];
    let (code, err) = run(&[&mtls[..], &["ns", "create", "web", "--level", "defaults"]].concat());
    assert_eq!(code, 0, "{err}");
    let (code, err) = run(&[&mtls[..], &["ns", "list"]].concat());
    assert_eq!(code, 0, "{err}");
    // Without a client certificate, or without TLS, nothing gets through.
    let (code, _) = run(&["--tls-ca", "ca.pem", "ns", "list"]);
    assert_eq!(code, 1);
    let (code, err) = run(&["ns", "list"]);
    assert_eq!(code, 1);
    assert!(err.contains("--tls-ca"), "{err}");
    let (code, err) = run(&["--tls-ca", "missing.pem", "ns", "list"]);
    assert_eq!(code, 1);
    assert!(err.contains("missing.pem"), "{err}");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "serve exited with {status}");
}
