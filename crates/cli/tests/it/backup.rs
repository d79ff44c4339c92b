//! The restore drill, end to end on the real server: load namespaces with
//! secrets and history; take a full backup and incrementals while a writer
//! commits; SIGKILL the server; delete its data directory; restore onto a
//! new one with the master key kept apart; start on it. Every acknowledged
//! commit up to the backup's revision is there, every resolved context
//! equals its value at that revision, the audit chain verifies, the old
//! token works, and a watcher from before the restore gets OUT_OF_RANGE,
//! never a silent gap. Then the misuse cases of `backup restore`.

use std::ffi::OsStr;
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

use super::remote::Server;
use super::{Run, to_run};

const NAMESPACES: [&str; 3] = ["drill/a", "drill/b", "drill/c"];

fn remote(server: &Server, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_confstrata"))
        .arg("--addr")
        .arg(&server.addr)
        .args(args)
        .env("CONFSTRATA_TOKEN", &server.token)
        .env_remove("CONFSTRATA_DATA_DIR")
        .env_remove("CONFSTRATA_BACKUP_TO")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    to_run(out)
}

fn ok(server: &Server, args: &[&str]) -> Value {
    let run = remote(server, &[args, &["-o", "json"]].concat());
    assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap_or(Value::Null)
}

fn offline(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_confstrata"))
        .args(args)
        .env_remove("CONFSTRATA_ADDR")
        .env_remove("CONFSTRATA_DATA_DIR")
        .env_remove("CONFSTRATA_MASTER_KEY")
        .env_remove("CONFSTRATA_BACKUP_TO")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    to_run(out)
}

/// Every context of every namespace, resolved at `at`.
fn resolved(server: &Server, at: u64) -> Vec<Value> {
    let at = at.to_string();
    NAMESPACES
        .iter()
        .flat_map(|ns| ["dev", "prod"].map(|env| (ns, env)))
        .map(|(ns, env)| {
            ok(
                server,
                &["resolve", ns, "-c", &format!("env={env}"), "--at", &at],
            )
        })
        .collect()
}

/// A raw HTTP/1.1 GET, read to the end (a watch that ends).
fn http(addr: &str, token: &str, path: &str, headers: &str) -> String {
    request(addr, token, "GET", path, headers)
}

/// A raw HTTP/1.1 request with no body, read to the end.
fn request(addr: &str, token: &str, method: &str, path: &str, headers: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    // A hang guard only: the answer ends by itself.
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(120)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

fn backup_env(backups: &Path) -> Vec<(&'static str, &OsStr)> {
    vec![
        ("CONFSTRATA_BACKUP_TO", backups.as_os_str()),
        ("CONFSTRATA_BACKUP_INTERVAL_S", OsStr::new("0")),
    ]
}

#[test]
fn the_restore_drill() {
    let root = tempfile::tempdir().unwrap();
    let backups = root.path().join("backups");
    let keys = root.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::create_dir_all(&backups).unwrap();
    let server = Server::start_in(
        tempfile::tempdir().unwrap(),
        None,
        None,
        &backup_env(&backups),
    );
    // The master key is kept apart from the data, as the runbook says.
    std::fs::copy(
        server.data_dir().join("master.key"),
        keys.join("master.key"),
    )
    .unwrap();

    for (i, ns) in NAMESPACES.iter().enumerate() {
        ok(
            &server,
            &[
                "ns",
                "create",
                ns,
                "--level",
                "defaults",
                "--level",
                "env/{env}",
                "--matrix",
                "env=dev,prod",
            ],
        );
        for v in 0..4 {
            ok(
                &server,
                &[
                    "set",
                    ns,
                    "defaults",
                    &format!("port={}", 8000 + v),
                    &format!("name=n{i}"),
                ],
            );
        }
        ok(
            &server,
            &[
                "set",
                "--secret",
                ns,
                "env/prod",
                &format!("password=pw-{i}"),
            ],
        );
        ok(&server, &["set", ns, "env/dev", "debug=true"]);
    }
    ok(&server, &["ns", "create", "drill/w", "--level", "defaults"]);

    // A writer commits all along; every acknowledged (revision, value) is kept.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (addr, token, stop) = (server.addr.clone(), server.token.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let out = Command::new(env!("CARGO_BIN_EXE_confstrata"))
                    .args(["--addr", &addr, "-o", "json", "set", "drill/w", "defaults"])
                    .arg(format!("n={i}"))
                    .env("CONFSTRATA_TOKEN", &token)
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                if !out.status.success() {
                    break;
                }
                let v: Value = serde_json::from_slice(&out.stdout).unwrap();
                acked.push((v["revision"].as_u64().unwrap(), i));
                i += 1;
            }
            acked
        })
    };
    // Waits for the writer's progress (a bounded poll: nothing is asserted
    // on time).
    let wait_for_commits = |n: u64| {
        let start = ok(&server, &["status"])["revision"].as_u64().unwrap();
        for _ in 0..6000 {
            if ok(&server, &["status"])["revision"].as_u64().unwrap() >= start + n {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("the writer made no progress");
    };
    wait_for_commits(3);
    let full = ok(&server, &["backup", "create"]);
    assert_eq!(full["kind"], "full");
    wait_for_commits(3);
    let first = ok(&server, &["backup", "create", "--incremental"]);
    assert_eq!(first["kind"], "incremental", "{first}");
    wait_for_commits(3);
    let last = ok(&server, &["backup", "create", "--incremental"]);
    assert_eq!(last["parent"]["id"], first["id"]);
    let b = last["revision"].as_u64().unwrap();
    let want = resolved(&server, b);
    let status = ok(&server, &["status"]);
    assert_eq!(status["newest_backup"]["id"], last["id"], "{status}");
    let stats = ok(&server, &["stats"]);
    assert_eq!(stats["newest_backup"]["id"], last["id"], "{stats}");
    assert!(stats["newest_backup"]["age_seconds"].is_u64(), "{stats}");
    let verified = ok(&server, &["backup", "verify"]);
    assert_eq!(verified["chain"].as_array().unwrap().len(), 3, "{verified}");
    assert!(
        verified["audit_records"].as_u64().unwrap() > 20,
        "{verified}"
    );
    // Three namespaces of two contexts, and drill/w's one.
    assert_eq!(verified["contexts_resolved"], 7, "{verified}");
    // The same over REST.
    let listed = http(&server.addr, &server.token, "/v1/backups", "");
    assert!(listed.starts_with("HTTP/1.1 200"), "{listed}");
    assert_eq!(listed.matches("\"store_id\"").count(), 3, "{listed}");
    let checked = request(
        &server.addr,
        &server.token,
        "POST",
        "/v1/backups/latest/verify",
        "",
    );
    assert!(
        checked.starts_with("HTTP/1.1 200") && checked.contains("\"audit_records\""),
        "{checked}"
    );
    let unknown = request(
        &server.addr,
        &server.token,
        "POST",
        "/v1/backups/nope/verify",
        "",
    );
    assert!(
        unknown.starts_with("HTTP/1.1 400") && unknown.contains("nope"),
        "{unknown}"
    );
    wait_for_commits(2);

    // Disaster: the server dies, its data directory is lost.
    let token = server.token.clone();
    let data = server.kill();
    stop.store(true, Ordering::SeqCst);
    let acked = writer.join().unwrap();
    assert!(
        acked.iter().any(|(r, _)| *r > b),
        "the writer went on after the backup"
    );
    drop(data);

    let new_root = tempfile::tempdir().unwrap();
    let restored = new_root.path().join("data");
    let r = offline(&[
        "backup",
        "restore",
        "--data-dir",
        restored.to_str().unwrap(),
        "--from",
        backups.to_str().unwrap(),
        "--key-file",
        keys.join("master.key").to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["revision"].as_u64().unwrap(), b);
    let resumed = report["resumed_at"].as_u64().unwrap();
    assert!(resumed > acked.iter().map(|(r, _)| *r).max().unwrap());

    let mut env = backup_env(&backups);
    let key_file = keys.join("master.key");
    env.push(("CONFSTRATA_MASTER_KEY_FILE", key_file.as_os_str()));
    let server = Server::start_in(new_root, Some(restored), Some(token), &env);

    // Every resolved context is what it was at the backup's revision.
    assert_eq!(resolved(&server, b), want);
    assert_eq!(
        ok(&server, &["status"])["revision"].as_u64().unwrap(),
        resumed
    );
    // Every acknowledged commit up to it is in the history, with its value.
    let history = ok(
        &server,
        &["history", "drill/w", "defaults", "--limit", "100000"],
    );
    let have: Vec<u64> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["revision"].as_u64().unwrap())
        .collect();
    for (rev, i) in acked.iter().filter(|(r, _)| *r <= b) {
        assert!(have.contains(rev), "acknowledged revision {rev} lost");
        let got = ok(
            &server,
            &["get", "drill/w", "defaults", "--at", &rev.to_string()],
        );
        assert_eq!(got["n"], *i, "revision {rev}");
    }
    assert!(!have.iter().any(|r| *r > b && *r < resumed), "{have:?}");
    let audit = ok(&server, &["audit", "verify"]);
    assert_eq!(audit["ok"], true, "{audit}");
    // A watcher that saw revisions past the backup is told to read again.
    let newest_seen = acked.iter().map(|(r, _)| *r).max().unwrap();
    for seen in [b, newest_seen] {
        let answer = http(
            &server.addr,
            &server.token,
            "/v1/namespaces/drill%2Fw/watch",
            &format!("Last-Event-ID: {seen}\r\n"),
        );
        assert!(answer.contains("restored from a backup"), "{answer}");
        assert!(!answer.contains("event: change"), "{answer}");
    }
    // Commits go on after the resume revision; sealed values still open.
    let next = ok(&server, &["set", "drill/w", "defaults", "n=after"]);
    assert_eq!(next["revision"].as_u64().unwrap(), resumed + 1);
    let secret = ok(&server, &["get", "drill/a", "env/prod"]);
    assert_eq!(secret["password"], "pw-0", "{secret}");
    // The restored store's first backup is a full one: a new identity.
    let again = ok(&server, &["backup", "create", "--incremental"]);
    assert_eq!(again["kind"], "full", "{again}");
    server.stop();
}

#[test]
fn restore_refuses_misuse_and_leaves_nothing_behind() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let backups = root.path().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let local = |args: &[&str]| {
        let r = offline(&[&["--data-dir", data.to_str().unwrap()], args].concat());
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        r
    };
    local(&["ns", "create", "web", "--level", "defaults"]);
    local(&["set", "web", "defaults", "port=80"]);
    local(&["backup", "create", "--to", backups.to_str().unwrap()]);
    let key = data.join("master.key");
    let restore = |into: &Path, key: &Path| {
        offline(&[
            "backup",
            "restore",
            "--data-dir",
            into.to_str().unwrap(),
            "--from",
            backups.to_str().unwrap(),
            "--key-file",
            key.to_str().unwrap(),
        ])
    };
    // Into a directory that is not empty.
    let full = root.path().join("full");
    std::fs::create_dir_all(&full).unwrap();
    std::fs::write(full.join("keep.txt"), "mine").unwrap();
    let r = restore(&full, &key);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("is not empty"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(full.join("keep.txt")).unwrap(),
        "mine"
    );
    // With the wrong key: refused, and the new directory is not left behind.
    let other = root.path().join("other.key");
    {
        let mut f = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&other)
            .unwrap();
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .unwrap();
        f.write_all(b"5f2c0b7e9a1d3c4b6a8f0e2d4c6b8a0f1e3d5c7b9a2f4e6d8c0b1a3f5e7d9c2b\n")
            .unwrap();
    }
    let fresh = root.path().join("fresh");
    let r = restore(&fresh, &other);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("encrypted under key"), "{}", r.stderr);
    assert!(
        !fresh.exists(),
        "a refused restore leaves no directory behind"
    );
    // A damaged part: refused naming it, nothing left behind.
    let id = std::fs::read_dir(&backups)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let part = id.join("part-000001");
    let mut bytes = std::fs::read(&part).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&part, &bytes).unwrap();
    let r = restore(&fresh, &key);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("part-000001") && r.stderr.contains("checksum"),
        "{}",
        r.stderr
    );
    assert!(!fresh.exists());
    // A backup directory that cannot be written: a file in its way.
    let blocked = root.path().join("blocked");
    std::fs::write(&blocked, "a file, not a directory").unwrap();
    let r = offline(&[
        "--data-dir",
        data.to_str().unwrap(),
        "backup",
        "create",
        "--to",
        blocked.to_str().unwrap(),
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains(blocked.to_str().unwrap()), "{}", r.stderr);
    // A backup directory that is not there (an unmounted disk) is not made.
    let missing = root.path().join("not-mounted");
    let r = offline(&[
        "--data-dir",
        data.to_str().unwrap(),
        "backup",
        "create",
        "--to",
        missing.to_str().unwrap(),
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
    assert!(!missing.exists());
    // No restore without a key.
    let r = offline(&[
        "backup",
        "restore",
        "--data-dir",
        fresh.to_str().unwrap(),
        "--from",
        backups.to_str().unwrap(),
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("--key-file"), "{}", r.stderr);
}

/// A 512 KiB tmpfs, unmounted when dropped: a real full disk. Mounting
/// needs root, as CI has; without it the test fails, saying so.
struct SmallDisk {
    dir: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(dir: std::path::PathBuf) -> SmallDisk {
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=512k,mode=0700",
                "confstrata-test",
            ])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cannot mount a small tmpfs for the full-disk test (it needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Hex text that does not compress below half its size (xorshift bytes).
fn noise(seed: u64, len: usize) -> String {
    let mut x = seed | 1;
    let mut out = String::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push_str(&format!("{x:016x}"));
    }
    out.truncate(len);
    out
}

#[test]
fn a_full_disk_refuses_backup_and_restore_and_leaves_nothing() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let backups = root.path().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let local = |args: &[&str]| offline(&[&["--data-dir", data.to_str().unwrap()], args].concat());
    assert_eq!(
        local(&[
            "ns", "create", "big", "--level", "defaults", "--level", "part/{n}"
        ])
        .code,
        0
    );
    // About 2 MB of layers, more than 1 MB after zstd: twice the disk.
    let ops: Vec<Value> = (0..10)
        .map(|i| {
            serde_json::json!({"op": "put", "namespace": "big", "layer": format!("part/{i}"),
                "document": {"blob": noise(i + 1, 200_000)}})
        })
        .collect();
    let change = root.path().join("change.json");
    std::fs::write(&change, serde_json::json!({"ops": ops}).to_string()).unwrap();
    let r = local(&["apply", "-f", change.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    // A backup onto the full disk: refused naming the place, and the
    // parts it had written are gone.
    let disk = SmallDisk::mount(root.path().join("small"));
    let r = local(&["backup", "create", "--to", disk.dir.to_str().unwrap()]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("No space left on device")
            && r.stderr.contains(disk.dir.to_str().unwrap()),
        "{}",
        r.stderr
    );
    let left: Vec<_> = std::fs::read_dir(&disk.dir).unwrap().collect();
    assert!(left.is_empty(), "a failed backup left {left:?}");
    let r = local(&[
        "backup",
        "list",
        "--to",
        disk.dir.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        serde_json::from_str::<Value>(&r.stdout).unwrap(),
        serde_json::json!([])
    );

    // A restore onto the full disk: refused, nothing left behind.
    assert_eq!(
        local(&["backup", "create", "--to", backups.to_str().unwrap()]).code,
        0
    );
    let into = disk.dir.join("restored");
    let r = offline(&[
        "backup",
        "restore",
        "--data-dir",
        into.to_str().unwrap(),
        "--from",
        backups.to_str().unwrap(),
        "--key-file",
        data.join("master.key").to_str().unwrap(),
    ]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains(&format!("cannot restore into {}", into.display()))
            && (r.stderr.contains("full") || r.stderr.contains("No space left")),
        "{}",
        r.stderr
    );
    assert!(!into.exists(), "a failed restore left {}", into.display());
    let left: Vec<_> = std::fs::read_dir(&disk.dir).unwrap().collect();
    assert!(left.is_empty(), "a failed restore left {left:?}");
    // The store itself is untouched: a backup elsewhere still verifies.
    let r = local(&["backup", "verify", "--to", backups.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// moto's S3-compatible server on a loopback port it picks, stopped (by
/// pid) when dropped.
struct Moto {
    child: std::process::Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Moto {
        use std::io::BufRead as _;
        let python = super::openapi::tools_python();
        let server = python.with_file_name("moto_server");
        assert!(
            server.exists(),
            "{} is missing: the tools venv has no moto",
            server.display()
        );
        let mut child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let endpoint = loop {
            // A hang guard for a broken start only.
            let line = rx
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("moto_server did not say where it listens");
            if let Some(at) = line.find("http://127.0.0.1:") {
                break line[at..].trim().to_owned();
            }
        };
        Moto { child, endpoint }
    }

    /// Creates a bucket (path style, as object_store talks to it).
    fn bucket(&self, name: &str) {
        let addr = self.endpoint.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "PUT /{name} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    fn env(&self) -> Vec<(&'static str, &OsStr)> {
        vec![
            ("AWS_ACCESS_KEY_ID", OsStr::new("confstrata-test")),
            (
                "AWS_SECRET_ACCESS_KEY",
                OsStr::new("confstrata-test-secret"),
            ),
            ("AWS_REGION", OsStr::new("us-east-1")),
            ("AWS_ENDPOINT_URL", OsStr::new(&self.endpoint)),
            ("AWS_ALLOW_HTTP", OsStr::new("true")),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn backups_on_s3_compatible_storage() {
    let moto = Moto::start();
    moto.bucket("confstrata-backups");
    let url = "s3://confstrata-backups/prod/eu";
    let mut env = moto.env();
    env.push(("CONFSTRATA_BACKUP_TO", OsStr::new(url)));
    env.push(("CONFSTRATA_BACKUP_INTERVAL_S", OsStr::new("0")));
    let server = Server::start_in(tempfile::tempdir().unwrap(), None, None, &env);
    let keys = tempfile::tempdir().unwrap();
    std::fs::copy(
        server.data_dir().join("master.key"),
        keys.path().join("master.key"),
    )
    .unwrap();
    ok(&server, &["ns", "create", "web", "--level", "defaults"]);
    ok(&server, &["set", "web", "defaults", "port=80"]);
    ok(
        &server,
        &[
            "set",
            "--secret",
            "web",
            "defaults",
            "password=s3-canary-41",
        ],
    );
    let full = ok(&server, &["backup", "create"]);
    ok(&server, &["set", "web", "defaults", "port=81"]);
    let incremental = ok(&server, &["backup", "create", "--incremental"]);
    assert_eq!(incremental["kind"], "incremental", "{incremental}");
    assert_eq!(incremental["parent"]["id"], full["id"]);
    let listed = ok(&server, &["backup", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let verified = ok(&server, &["backup", "verify"]);
    assert_eq!(verified["chain"].as_array().unwrap().len(), 2, "{verified}");
    assert!(
        ok(&server, &["status"])["backup_target"]
            .as_str()
            .unwrap()
            .starts_with("s3://")
    );
    server.stop();

    // Restored from the bucket, offline, with the same AWS settings.
    let root = tempfile::tempdir().unwrap();
    let restored = root.path().join("data");
    let mut restore = Command::new(env!("CARGO_BIN_EXE_confstrata"));
    restore
        .args(["backup", "restore", "--data-dir"])
        .arg(&restored)
        .args(["--from", url, "--key-file"])
        .arg(keys.path().join("master.key"))
        .args(["-o", "json"])
        .env_remove("CONFSTRATA_ADDR")
        .env_remove("CONFSTRATA_MASTER_KEY");
    for (k, v) in moto.env() {
        restore.env(k, v);
    }
    let r = to_run(restore.output().unwrap());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["revision"], incremental["revision"]);
    std::fs::copy(keys.path().join("master.key"), restored.join("master.key")).unwrap();
    let got = offline(&[
        "--data-dir",
        restored.to_str().unwrap(),
        "get",
        "web",
        "defaults",
        "-o",
        "json",
    ]);
    assert_eq!(got.code, 0, "{}", got.stderr);
    let doc: Value = serde_json::from_str(&got.stdout).unwrap();
    assert_eq!(doc["port"], 81);
    assert_eq!(doc["password"], "s3-canary-41");
    // A bucket that does not exist: a clear error naming it, nothing kept.
    let mut wrong = Command::new(env!("CARGO_BIN_EXE_confstrata"));
    wrong
        .args(["backup", "restore", "--data-dir"])
        .arg(root.path().join("other"))
        .args(["--from", "s3://no-such-bucket/x", "--key-file"])
        .arg(keys.path().join("master.key"));
    for (k, v) in moto.env() {
        wrong.env(k, v);
    }
    let r = to_run(wrong.output().unwrap());
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("no-such-bucket"), "{}", r.stderr);
    assert!(!root.path().join("other").exists());
}

#[test]
fn a_rollback_past_retention_reads_the_backups() {
    let root = tempfile::tempdir().unwrap();
    let backups = root.path().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let server = Server::start_in(
        tempfile::tempdir().unwrap(),
        None,
        None,
        &backup_env(&backups),
    );
    ok(&server, &["ns", "create", "web", "--level", "defaults"]);
    let first = ok(
        &server,
        &["set", "web", "defaults", "port=1", "password=pw-1"],
    );
    let r1 = first["revision"].as_u64().unwrap().to_string();
    ok(&server, &["backup", "create"]);
    ok(&server, &["set", "web", "defaults", "port=2"]);
    ok(
        &server,
        &["set", "web", "defaults", "port=3", "password=pw-3"],
    );
    ok(
        &server,
        &["compact", "--keep-versions", "1", "--keep-days", "0"],
    );
    // The live history no longer has it...
    let live = remote(&server, &["rollback", "web", "defaults", "--to", &r1]);
    assert_ne!(live.code, 0);
    assert!(live.stderr.contains("compacted"), "{}", live.stderr);
    // ...the backups do: a dry run shows the change, sealed values masked.
    let dry = remote(
        &server,
        &[
            "rollback",
            "web",
            "defaults",
            "--to",
            &r1,
            "--from-backup",
            "--dry-run",
            "-o",
            "json",
        ],
    );
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        !dry.stdout.contains("pw-1") && !dry.stderr.contains("pw-1"),
        "{}",
        dry.stdout
    );
    let done = remote(
        &server,
        &["rollback", "web", "defaults", "--to", &r1, "--from-backup"],
    );
    assert_eq!(done.code, 0, "{}", done.stderr);
    let doc = ok(&server, &["get", "web", "defaults"]);
    assert_eq!(doc["port"], 1, "{doc}");
    assert_eq!(
        doc["password"], "pw-1",
        "the sealed value came back, and opens"
    );
    // A second time: nothing to do.
    let again = remote(
        &server,
        &["rollback", "web", "defaults", "--to", &r1, "--from-backup"],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stderr.contains("nothing to roll back"),
        "{}",
        again.stderr
    );
    server.stop();
}
