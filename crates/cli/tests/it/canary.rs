//! The canary test: secret values written through every path never land
//! anywhere but an authorized response. A server logs at TRACE into files;
//! canary secrets are written (sealed explicitly, by the secret rule, by
//! put, import and apply); every read command and many error paths run,
//! as the admin and as a viewer; then the server's stdout and stderr, every
//! file of the data directory (database, WAL), the exports and the audit
//! export are searched for the canaries. The admin's authorized reads are
//! the only place they may appear (and must: the values are readable).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CANARIES: [&str; 5] = [
    "CANARY-7f3a9-stdin",
    "CANARY-2b81c-rule",
    "CANARY-91e0d-put",
    "CANARY-55aa1-apply",
    "CANARY-c0ffe-import",
];

struct Serve {
    child: Child,
    addr: String,
    token: String,
}

fn confstrata() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_confstrata"));
    c.env_remove("CONFSTRATA_ADDR")
        .env_remove("CONFSTRATA_TOKEN")
        .env_remove("CONFSTRATA_DATA_DIR")
        .env_remove("CONFSTRATA_MASTER_KEY");
    c
}

/// Starts `serve` at TRACE with stdout and stderr in files; reads the first
/// start's admin token and the address from the stderr file.
fn serve(data: &Path, logs: &Path, backups: &Path) -> Serve {
    let stdout = std::fs::File::create(logs.join("serve.out")).unwrap();
    let stderr_path = logs.join("serve.err");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let child = confstrata()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log",
            "trace",
            "--data-dir",
        ])
        .arg(data)
        .env_remove("CONFSTRATA_LOG")
        .env("CONFSTRATA_BACKUP_TO", backups)
        .env("CONFSTRATA_BACKUP_INTERVAL_S", "0")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap();
    let (mut addr, mut token) = (None, None);
    // A hang guard only: nothing asserts on time.
    for _ in 0..6000 {
        let f = std::fs::File::open(&stderr_path).unwrap();
        for line in BufReader::new(f).lines().map_while(Result::ok) {
            if let Some(t) = line.trim().strip_prefix("cst_") {
                token = Some(format!("cst_{t}"));
            }
            if line.contains("listening")
                && let Some(a) = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("addr="))
            {
                addr = Some(a.to_owned());
            }
        }
        if addr.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Serve {
        child,
        addr: addr.expect("the server did not log `listening`"),
        token: token.expect("the first start printed no admin token"),
    }
}

struct Out {
    code: i32,
    text: String,
}

fn run(addr: &str, token: &str, args: &[&str], stdin: &[u8], cwd: &Path) -> Out {
    let mut child = confstrata()
        .args(["--addr", addr])
        .args(args)
        .env("CONFSTRATA_TOKEN", token)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let o = child.wait_with_output().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        text: format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    }
}

/// One REST request on a fresh HTTP/1.1 connection: the whole answer.
fn http(addr: &str, token: &str, method: &str, path: &str, body: &str) -> String {
    use std::io::Read as _;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// Every canary found in `bytes`.
fn found(bytes: &[u8]) -> Vec<&'static str> {
    let text = String::from_utf8_lossy(bytes);
    CANARIES
        .iter()
        .copied()
        .filter(|c| text.contains(c))
        .collect()
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn canary_secrets_never_leave_the_authorized_response() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, logs, work) = (
        tmp.path().join("data"),
        tmp.path().join("logs"),
        tmp.path().join("work"),
    );
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let backups = tmp.path().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let mut server = serve(&data, &logs, &backups);
    let (addr, admin) = (server.addr.clone(), server.token.clone());
    let ok = |token: &str, args: &[&str], stdin: &[u8]| {
        let o = run(&addr, token, args, stdin, &work);
        assert_eq!(o.code, 0, "{args:?}: {}", o.text);
        o.text
    };

    // Writes, through every path that takes a value.
    ok(
        &admin,
        &[
            "ns",
            "create",
            "pay",
            "--level",
            "defaults",
            "--level",
            "env/{env}",
            "--matrix",
            "env=staging,prod",
        ],
        b"",
    );
    ok(
        &admin,
        &["set", "--secret", "pay", "env/prod", "db.pass=-"],
        CANARIES[0].as_bytes(),
    );
    ok(
        &admin,
        &[
            "set",
            "pay",
            "defaults",
            &format!("db.password={}", CANARIES[1]),
            "db.pool=5",
        ],
        b"",
    );
    std::fs::write(
        work.join("layer.toml"),
        format!("[api]\ntoken = \"{}\"\nurl = \"https://x\"\n", CANARIES[2]),
    )
    .unwrap();
    ok(
        &admin,
        &["put", "pay", "env/staging", "-f", "layer.toml"],
        b"",
    );
    std::fs::write(
        work.join("change.toml"),
        format!(
            "message = \"rotate\"\n[[ops]]\nop = \"set\"\nnamespace = \"pay\"\nlayer = \"env/prod\"\nkey = \"smtp.secret\"\nvalue = \"{}\"\n",
            CANARIES[3]
        ),
    )
    .unwrap();
    ok(&admin, &["apply", "-f", "change.toml", "--dry-run"], b"");
    ok(&admin, &["apply", "-f", "change.toml"], b"");
    let imp = work.join("imp");
    std::fs::create_dir_all(&imp).unwrap();
    ok(&admin, &["ns", "create", "imp", "--level", "defaults"], b"");
    std::fs::write(
        imp.join("defaults.json"),
        format!("{{\"db_password\": \"{}\"}}", CANARIES[4]),
    )
    .unwrap();
    ok(
        &admin,
        &["put", "imp", "defaults", "-f", "imp/defaults.json"],
        b"",
    );

    // The admin reads them: the authorized response (and only it) has them.
    let resolved = ok(
        &admin,
        &["resolve", "pay", "-c", "env=prod", "-o", "json"],
        b"",
    );
    assert_eq!(
        found(resolved.as_bytes()),
        [CANARIES[0], CANARIES[1], CANARIES[3]],
        "{resolved}"
    );

    // A viewer reads everything it may: masks only.
    ok(
        &admin,
        &["principal", "add", "vic", "--role", "viewer"],
        b"",
    );
    let viewer = ok(&admin, &["token", "issue", "vic"], b"")
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_owned();
    let mut exposed = Vec::new();
    for args in [
        vec!["resolve", "pay", "-c", "env=prod", "-o", "json"],
        vec!["resolve", "pay", "-c", "env=staging", "--provenance"],
        vec!["get", "pay", "env/prod"],
        vec!["layers", "pay"],
        vec!["history", "pay", "-o", "json"],
        vec!["explain", "pay", "db.pass", "-c", "env=prod"],
        vec!["diff", "pay", "env/prod", "--from", "1"],
        vec!["diff", "pay", "-c", "env=staging", "-c", "env=prod"],
        vec!["diff", "pay", "--from", "1"],
        vec!["resolve", "imp", "-o", "yaml"],
    ] {
        let o = run(&addr, &viewer, &args, b"", &work);
        assert_eq!(o.code, 0, "{args:?}: {}", o.text);
        assert!(
            o.text.contains("<sealed>") || args[0] == "layers" || args[0] == "diff",
            "{args:?}: {}",
            o.text
        );
        exposed.push((format!("viewer {args:?}"), o.text));
    }
    // The same over REST: every read a viewer may make, masks only; and
    // refused writes with canaries in the body, path and query.
    for (method, path, body) in [
        ("GET", "/v1/namespaces/pay/resolve?env=prod", ""),
        (
            "GET",
            "/v1/namespaces/pay/resolve?env=staging&provenance=true",
            "",
        ),
        ("GET", "/v1/namespaces/pay/layers", ""),
        ("GET", "/v1/namespaces/pay/layers/env%2Fprod", ""),
        ("GET", "/v1/namespaces/pay/history", ""),
        ("GET", "/v1/namespaces/pay/explain?key=db.pass&env=prod", ""),
        ("GET", "/v1/namespaces/pay/diff?from=1", ""),
        (
            "GET",
            "/v1/namespaces/pay/diff/layers?old=env%2Fstaging&new=env%2Fprod",
            "",
        ),
        (
            "GET",
            "/v1/namespaces/pay/diff/contexts?old.env=staging&new.env=prod",
            "",
        ),
        ("GET", "/v1/namespaces/imp/resolve", ""),
        ("GET", "/v1/namespaces/pay/rollback?revision=1", ""),
        (
            "POST",
            "/v1/namespaces/pay/rollback?revision=1&dry_run=true",
            "",
        ),
        (
            "PATCH",
            "/v1/namespaces/pay/layers/env%2Fprod",
            &format!(
                "{{\"set\": {{\"db.pass\": \"{}\"}}, \"secret\": [\"db.pass\"]}}",
                CANARIES[0]
            ),
        ),
        (
            "PUT",
            "/v1/namespaces/pay/layers/defaults",
            &format!("{{\"x\": {{\"password\": \"{}\"", CANARIES[1]),
        ),
        (
            "POST",
            "/v1/changesets?dry_run=true",
            &format!(
                "{{\"ops\": [{{\"op\": \"set\", \"namespace\": \"pay\", \"layer\": \"env/prod\", \"key\": \"bad..key\", \"value\": \"{}\"}}]}}",
                CANARIES[3]
            ),
        ),
    ] {
        let answer = http(&addr, &viewer, method, path, body);
        if method == "GET" && !path.contains("rollback") {
            assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
        }
        if path.contains("resolve?env=prod") {
            assert!(answer.contains("<sealed>"), "{path}: {answer}");
        }
        exposed.push((format!("viewer REST {method} {path}"), answer));
    }
    // Error paths, as the viewer and as the admin, with canaries in the request.
    let deep = format!("k={}\"{}\"{}", "[".repeat(40), CANARIES[3], "]".repeat(40));
    for (token, args, stdin) in [
        (
            &viewer,
            vec!["set", "--secret", "pay", "env/prod", "db.pass=-"],
            CANARIES[0].as_bytes(),
        ),
        (
            &viewer,
            vec![
                "set",
                "pay",
                "defaults",
                &format!("x.password={}", CANARIES[1]),
            ],
            &b""[..],
        ),
        (
            &admin,
            vec![
                "set",
                "pay",
                "env/prod",
                &format!("bad..key={}", CANARIES[1]),
            ],
            &b""[..],
        ),
        (
            &admin,
            vec![
                "set",
                "--secret",
                "pay",
                "env/prod",
                "db.pass=-",
                "--expect-revision",
                "999",
            ],
            CANARIES[0].as_bytes(),
        ),
        (
            &admin,
            vec![
                "set",
                "pay",
                "env/nope/x",
                &format!("password={}", CANARIES[2]),
            ],
            &b""[..],
        ),
        (
            &admin,
            vec!["set", "--secret", "pay", "env/prod", &deep],
            &b""[..],
        ),
        (
            &"cst_wrong".to_owned(),
            vec!["resolve", "pay", "-c", "env=prod"],
            &b""[..],
        ),
        (&viewer, vec!["keys", "rotate", "pay"], &b""[..]),
        (&viewer, vec!["audit", "list"], &b""[..]),
    ] {
        let o = run(&addr, token, &args, stdin, &work);
        assert_ne!(o.code, 0, "{args:?} should fail: {}", o.text);
        if token == &viewer || token.as_str() == "cst_wrong" {
            assert_eq!(o.code, 5, "{args:?}: refusals exit 5: {}", o.text);
        }
        exposed.push((format!("error {args:?}"), o.text));
    }
    // Exports, by the admin.
    ok(
        &admin,
        &["export", "pay", "export", "--format", "json"],
        b"",
    );
    ok(&admin, &["audit", "export", "-f", "audit.jsonl"], b"");
    let verify = ok(&admin, &["audit", "verify"], b"");
    assert!(verify.contains("intact"), "{verify}");

    // Backups: full over gRPC, incremental over REST, verified; a viewer
    // may take none.
    exposed.push((
        "backup create".into(),
        ok(&admin, &["backup", "create"], b""),
    ));
    let incremental = http(
        &addr,
        &admin,
        "POST",
        "/v1/backups",
        r#"{"incremental": true}"#,
    );
    assert!(incremental.contains("\"incremental\""), "{incremental}");
    exposed.push(("POST /v1/backups".into(), incremental));
    let verified = ok(&admin, &["backup", "verify"], b"");
    assert!(verified.contains("is good"), "{verified}");
    exposed.push(("backup verify".into(), verified));
    let o = run(&addr, &viewer, &["backup", "create"], b"", &work);
    assert_eq!(o.code, 5, "a viewer takes no backup: {}", o.text);

    server_stop(&mut server);

    // Restored into a new data directory, sealed values are still sealed.
    let restored = tmp.path().join("restored");
    let o = confstrata()
        .args(["backup", "restore", "--data-dir"])
        .arg(&restored)
        .arg("--from")
        .arg(&backups)
        .arg("--key-file")
        .arg(data.join("master.key"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{text}");
    exposed.push(("backup restore".into(), text));

    for (what, text) in &exposed {
        assert!(found(text.as_bytes()).is_empty(), "{what} leaked: {text}");
    }
    let mut all = Vec::new();
    files(&data, &mut all);
    files(&logs, &mut all);
    files(&backups, &mut all);
    files(&restored, &mut all);
    files(&work.join("export"), &mut all);
    all.push(work.join("audit.jsonl"));
    let names: Vec<String> = all
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "confstrata.db"), "{names:?}");
    assert!(names.iter().any(|n| n == "serve.err"), "{names:?}");
    assert!(
        names.iter().filter(|n| *n == "manifest.json").count() == 2,
        "{names:?}"
    );
    assert!(
        names.iter().filter(|n| *n == "confstrata.db").count() == 2,
        "{names:?}"
    );
    for p in &all {
        let bytes = std::fs::read(p).unwrap();
        assert!(
            found(&bytes).is_empty(),
            "{} holds {:?}",
            p.display(),
            found(&bytes)
        );
    }
    // The log really is at TRACE, so the search meant something.
    let log = std::fs::read_to_string(logs.join("serve.err")).unwrap();
    assert!(log.contains("TRACE"), "the server did not log at TRACE");
    assert!(
        std::fs::read_to_string(work.join("audit.jsonl"))
            .unwrap()
            .lines()
            .count()
            > 10
    );
}

fn server_stop(s: &mut Serve) {
    let pid = s.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = s.child.wait().unwrap();
    assert!(status.success(), "serve exited with {status}");
}
