//! Remote mode: the same commands with `--addr`, against `confstrata serve`
//! running as a child process, print what they print on the embedded store.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::{Env, Run, examples, to_run};

/// `confstrata serve` on a free port, over its own data directory.
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: String,
    /// A token of the principal `tester` (an admin), made on the data dir
    /// before the server started, so that remote changes carry the same
    /// author as local ones (`CONFSTRATA_AUTHOR=tester`).
    pub(crate) token: String,
    /// Every stderr line after `listening`, for the shutdown check.
    log: mpsc::Receiver<String>,
    /// The data directory.
    data_dir: std::path::PathBuf,
    _data: tempfile::TempDir,
}

impl Server {
    pub(crate) fn start() -> Server {
        Server::start_in(tempfile::tempdir().unwrap(), None, None, &[])
    }

    /// `serve` on `root` (or `dir` under it, when given) with extra
    /// environment variables; with `token`, the data directory already has
    /// the principal `tester` and that is its token.
    pub(crate) fn start_in(
        root: tempfile::TempDir,
        dir: Option<std::path::PathBuf>,
        token: Option<String>,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Server {
        let data = root;
        let data_dir = dir.unwrap_or_else(|| data.path().to_owned());
        let local = |args: &[&str]| {
            let out = Command::new(env!("CARGO_BIN_EXE_confstrata"))
                .arg("--data-dir")
                .arg(&data_dir)
                .args(args)
                .env_remove("CONFSTRATA_ADDR")
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        let token = token.unwrap_or_else(|| {
            local(&["principal", "add", "tester", "--role", "admin"]);
            local(&["token", "issue", "tester"]).trim().to_owned()
        });
        assert!(token.starts_with("cst_"), "{token}");
        let mut command = Command::new(env!("CARGO_BIN_EXE_confstrata"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .env_remove("CONFSTRATA_LOG")
            .env_remove("CONFSTRATA_LOG_FORMAT")
            .env_remove("CONFSTRATA_CONFIG");
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Reads stderr to the end, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // The hang guard only bounds a broken start; nothing asserts on time.
        let addr = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("the server did not log `listening`");
            assert!(
                !line.contains('\u{1b}'),
                "a log piped to a file must carry no colour codes: {line:?}"
            );
            if line.contains("listening")
                && let Some(a) = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("addr="))
            {
                break a.to_owned();
            }
        };
        assert!(addr.starts_with("127.0.0.1:"), "{addr}");
        Server {
            child,
            addr,
            token,
            log: rx,
            data_dir,
            _data: data,
        }
    }

    /// SIGKILL, and waits for the process to be gone.
    pub(crate) fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self._data, tempfile::tempdir().unwrap())
    }

    /// The data directory the server runs on.
    pub(crate) fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// [`Server::stop`], keeping the data directory for a look after.
    pub(crate) fn stop_keeping_data(mut self) -> tempfile::TempDir {
        let data = std::mem::replace(&mut self._data, tempfile::tempdir().unwrap());
        self.stop();
        data
    }

    /// SIGTERM; the server must exit 0 and say it stopped.
    pub(crate) fn stop(mut self) {
        let pid = self.child.id().to_string();
        let kill = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(kill.success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "serve exited with {status}");
        // The reader thread forwards lines until it reads the end of the
        // pipe, then drops its sender: `iter` waits for that, so no line
        // the server wrote before exiting is missed (`try_iter` raced it).
        let rest: Vec<String> = self.log.iter().collect();
        assert!(
            rest.iter().any(|l| l.contains("SIGTERM received")),
            "{rest:?}"
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs commands with `--addr`, from a temp dir of its own.
struct Remote<'s> {
    server: &'s Server,
    cwd: tempfile::TempDir,
}

impl Remote<'_> {
    fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_confstrata"))
            .arg("--addr")
            .arg(&self.server.addr)
            .args(args)
            .env("CONFSTRATA_AUTHOR", "tester")
            .env("CONFSTRATA_TOKEN", &self.server.token)
            .env_remove("CONFSTRATA_DATA_DIR")
            .current_dir(self.cwd.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        to_run(out)
    }
}

/// Hides what legitimately differs between two runs: commit times (and the
/// table padding their width changes).
fn normalize(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if let Some(len) = timestamp_at(&chars[i..]) {
            out.push_str("<time>");
            i += len;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out.lines().map(normalize_line).collect()
}

/// One line with its `time` in milliseconds (JSON, YAML) hidden and runs of
/// spaces collapsed.
fn normalize_line(line: &str) -> String {
    let trimmed = line.trim_start();
    for key in ["\"time\": ", "time: "] {
        if let Some(rest) = trimmed.strip_prefix(key)
            && !rest.is_empty()
            && rest
                .trim_end_matches(',')
                .chars()
                .all(|c| c.is_ascii_digit())
        {
            let comma = if rest.ends_with(',') { "," } else { "" };
            return format!("{key}<ms>{comma}\n");
        }
    }
    let words: Vec<&str> = line.split(' ').filter(|w| !w.is_empty()).collect();
    words.join(" ") + "\n"
}

/// The length of an RFC 3339 UTC time (`2026-11-26T11:36:44.12Z`) at the start of `s`.
fn timestamp_at(s: &[char]) -> Option<usize> {
    let shape = "dddd-dd-ddTdd:dd:dd";
    if s.len() < shape.len() {
        return None;
    }
    for (c, want) in s.iter().zip(shape.chars()) {
        let ok = if want == 'd' {
            c.is_ascii_digit()
        } else {
            *c == want
        };
        if !ok {
            return None;
        }
    }
    let mut n = shape.len();
    if s.get(n) == Some(&'.') {
        n += 1;
        while s.get(n).is_some_and(char::is_ascii_digit) {
            n += 1;
        }
    }
    (s.get(n) == Some(&'Z')).then_some(n + 1)
}

/// Runs `args` on both stores: same exit code, same stdout and stderr
/// (times aside). Returns the remote run.
fn same(local: &Env, remote: &Remote<'_>, args: &[&str]) -> Run {
    let l = local.run(args);
    let r = remote.run(args);
    assert_eq!(
        (l.code, normalize(&l.stdout), normalize(&l.stderr)),
        (r.code, normalize(&r.stdout), normalize(&r.stderr)),
        "{args:?}: local (left) and remote (right) differ"
    );
    if r.code != 0 && r.code != 6 {
        assert_eq!(
            r.stderr.trim_end().lines().count(),
            1,
            "{args:?}: {}",
            r.stderr
        );
        // A failed validation prints its findings on stdout; any other
        // failure prints nothing there.
        if r.code != 6 || args[0] != "validate" {
            assert!(r.stdout.is_empty(), "{args:?}: {}", r.stdout);
        }
    }
    r
}

fn files(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn remote_mode_prints_what_local_mode_prints() {
    let server = Server::start();
    let remote = Remote {
        server: &server,
        cwd: tempfile::tempdir().unwrap(),
    };
    let local = Env::new();
    let webshop = examples().join("webshop");
    let bulk = examples().join("bulk-change.toml");
    let (webshop, bulk) = (webshop.to_str().unwrap(), bulk.to_str().unwrap());

    let r = same(&local, &remote, &["import", webshop, "-o", "json"]);
    assert_eq!(r.json()["revision"], 1);
    for args in [
        &["ns", "list"][..],
        &["ns", "list", "-o", "json"],
        &["ns", "show", "webshop", "-o", "yaml"],
        &["layers", "webshop"],
        &["get", "webshop", "env/prod", "-o", "json"],
        &["get", "webshop", "env/prod", "-o", "toml"],
        &["resolve", "webshop", "-c", "env=prod,region=eu"],
        &[
            "resolve",
            "webshop",
            "-c",
            "env=prod",
            "-c",
            "region=us",
            "-o",
            "json",
        ],
        &["resolve", "webshop", "-c", "env=staging", "-o", "env"],
        &[
            "resolve",
            "webshop",
            "-c",
            "env=prod,region=eu",
            "--provenance",
        ],
        &[
            "resolve",
            "webshop",
            "-c",
            "env=prod,region=eu",
            "--provenance",
            "-o",
            "json",
        ],
        // A section: merged from the store here, cut from the cached view
        // the second time (the server answers it on its fast path).
        &[
            "resolve",
            "webshop",
            "-c",
            "env=prod,region=eu",
            "--section",
            "db.pool",
            "-o",
            "json",
        ],
        &[
            "resolve",
            "webshop",
            "-c",
            "env=prod,region=eu",
            "--section",
            "db.pool",
            "--provenance",
        ],
        &["explain", "webshop", "db.host", "-c", "env=prod,region=eu"],
        &[
            "explain",
            "webshop",
            "db.pool.max",
            "-c",
            "env=prod,region=eu",
            "-o",
            "json",
        ],
    ] {
        same(&local, &remote, args);
    }

    // Edits, a stale precondition (exit 3), unknown things (exit 4).
    let r = same(
        &local,
        &remote,
        &[
            "set",
            "webshop",
            "env/prod",
            "db.pool.max=150",
            "features.new_checkout=true",
            "-m",
            "sale",
            "-o",
            "json",
        ],
    );
    assert_eq!(r.json()["revision"], 2);
    same(
        &local,
        &remote,
        &["unset", "webshop", "env/prod", "cache.ttl_s"],
    );
    let r = same(
        &local,
        &remote,
        &[
            "set",
            "webshop",
            "env/prod",
            "a=1",
            "--expect-revision",
            "1",
        ],
    );
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("conflict"), "{}", r.stderr);
    let r = same(&local, &remote, &["get", "webshop", "env/nowhere"]);
    assert_eq!(r.code, 4);
    let r = same(&local, &remote, &["resolve", "nope", "-c", "env=prod"]);
    assert_eq!(r.code, 4);
    let r = same(
        &local,
        &remote,
        &["explain", "webshop", "no.such.key", "-c", "env=prod"],
    );
    assert_eq!(r.code, 4);
    let r = same(
        &local,
        &remote,
        &["ns", "create", "webshop", "--level", "defaults"],
    );
    assert_eq!(r.code, 1);
    same(&local, &remote, &["set", "webshop", "env/nowhere/x", "a=1"]);
    same(
        &local,
        &remote,
        &[
            "ns",
            "create",
            "payments",
            "--level",
            "defaults",
            "--level",
            "env/{env}",
            "--matrix",
            "env=dev,prod",
            "-o",
            "json",
        ],
    );
    same(&local, &remote, &["delete", "webshop", "instance/i-42"]);

    // History, diffs, rollback, bulk changes.
    for args in [
        &["history", "webshop", "env/prod"][..],
        &["history", "webshop", "-o", "json", "--limit", "5"],
        &["diff", "webshop", "env/prod", "--from", "1", "-o", "json"],
        &["diff", "webshop", "env/prod", "--from", "1", "--to", "2"],
        &["diff", "webshop", "-c", "env=staging", "-c", "env=prod"],
        &[
            "diff", "webshop", "--layer", "env/dev", "--layer", "env/prod", "-o", "json",
        ],
        &["diff", "webshop", "--from", "1"],
        &["diff", "webshop", "--from", "1", "-o", "json"],
        &[
            "rollback",
            "webshop",
            "--to",
            "1",
            "--dry-run",
            "-o",
            "json",
        ],
        &["rollback", "webshop", "env/prod", "--to", "1", "--dry-run"],
        &["rollback", "webshop", "--to", "1", "-o", "json"],
        &["rollback", "webshop", "--to", "1"],
        &["apply", "-f", bulk, "--dry-run"],
        &["apply", "-f", bulk, "--dry-run", "-o", "json"],
        &["apply", "-f", bulk, "-o", "json"],
        &[
            "resolve",
            "webshop",
            "-c",
            "env=prod,region=eu",
            "--at",
            "3",
            "-o",
            "json",
        ],
        &["ns", "list", "--at", "1", "-o", "json"],
        &["history", "webshop"],
        &["ns", "history", "webshop"],
        &["ns", "diff", "webshop", "--from", "1"],
    ] {
        same(&local, &remote, args);
    }

    // Validation: the example with chains, the same findings and exit 6 both ways.
    let validated = examples().join("validated");
    let (platform, orders, bad) = (
        validated.join("platform"),
        validated.join("orders"),
        validated.join("bad-change.toml"),
    );
    let (platform, orders, bad) = (
        platform.to_str().unwrap(),
        orders.to_str().unwrap(),
        bad.to_str().unwrap(),
    );
    for args in [
        &["import", platform][..],
        &["import", orders],
        &["validate"],
        &["validate", "orders", "-o", "json"],
        &["ns", "show", "orders"],
    ] {
        same(&local, &remote, args);
    }
    for args in [
        &["validate", "-f", bad][..],
        &["validate", "-f", bad, "-o", "json"],
        &["apply", "-f", bad],
        &["apply", "-f", bad, "--dry-run"],
    ] {
        // A refused commit, `validate -f` and `apply --dry-run` of the same
        // bad change agree: exit 6.
        let r = same(&local, &remote, args);
        assert_eq!(r.code, 6, "{args:?}: {}", r.stderr);
    }

    // Export writes the same files.
    let (lx, rx) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    local.ok(&[
        "export",
        "webshop",
        lx.path().to_str().unwrap(),
        "--format",
        "yaml",
    ]);
    let r = remote.run(&[
        "export",
        "webshop",
        rx.path().to_str().unwrap(),
        "--format",
        "yaml",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(files(lx.path()), files(rx.path()));

    // Status names the server instead of a directory, with the size.
    let l = local.ok(&["status", "-o", "json"]).json();
    let r = remote.run(&["status", "-o", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = r.json();
    assert_eq!(
        (&r["revision"], &r["namespaces"]),
        (&l["revision"], &l["namespaces"])
    );
    assert_eq!(r["server"], format!("http://{}", server.addr));
    assert!(r["store_bytes"].as_u64().unwrap() > 0, "{r}");
    assert!(l["store_bytes"].as_u64().unwrap() > 0, "{l}");
    // Compaction online, as locally: the same floor, the same versions gone.
    let l = local
        .ok(&[
            "compact",
            "--keep-versions",
            "1",
            "--keep-days",
            "0",
            "-o",
            "json",
        ])
        .json();
    let r = remote.run(&[
        "compact",
        "--keep-versions",
        "1",
        "--keep-days",
        "0",
        "-o",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = r.json();
    assert_eq!(
        (&r["oldest_revision"], &r["removed_versions"]),
        (&l["oldest_revision"], &l["removed_versions"])
    );
    assert!(r["removed_versions"].as_u64().unwrap() > 0, "{r}");
    let after = remote.run(&["status", "-o", "json"]).json();
    assert_eq!(after["oldest_revision"], r["oldest_revision"]);
    let r = remote.run(&["compact", "--keep-versions", "0"]);
    assert_eq!(r.code, 2, "{}", r.stderr);

    server.stop();
}

#[test]
fn an_unreachable_server_is_a_one_line_error() {
    let server = Server::start();
    let addr = server.addr.clone();
    server.stop();
    let env = Env::new();
    let r = to_run(
        env.cmd(&["--addr", &addr, "ns", "list"])
            .stdin(Stdio::null())
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("cannot connect to Confstrata at http://{addr}")),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.trim_end().lines().count(), 1, "{}", r.stderr);
    let r = to_run(
        env.cmd(&["--addr", "https://x:1", "ns", "list"])
            .stdin(Stdio::null())
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("--tls-ca"), "{}", r.stderr);
}

#[test]
fn stats_show_a_servers_stage_timings_and_cache() {
    let server = Server::start();
    let remote = Remote {
        server: &server,
        cwd: tempfile::tempdir().unwrap(),
    };
    let ok = |args: &[&str]| {
        let r = remote.run(args);
        assert_eq!(r.code, 0, "{args:?} failed: {}", r.stderr);
        r
    };
    let webshop = examples().join("webshop");
    ok(&["import", webshop.to_str().unwrap()]);
    for _ in 0..3 {
        ok(&["resolve", "webshop", "-c", "env=prod,region=eu"]);
    }
    let s = ok(&["stats", "-o", "json"]).json();
    let count = |stage: &str| {
        s["timings"]["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["stage"] == stage)
            .unwrap_or_else(|| panic!("no stage {stage} in {s}"))["count"]
            .as_u64()
            .unwrap()
    };
    // The import committed (fsync'd), the first resolve missed, the next two hit.
    assert!(count("commit") >= 1 && count("fsync") >= 1, "{s}");
    assert!(count("resolve") >= 1, "{s}");
    assert!(count("authenticate") >= 4, "{s}");
    assert!(s["cache"]["hits"].as_u64().unwrap() >= 2, "{s}");
    assert!(s["cache"]["entries"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(s["revision"], 1);
    let table = ok(&["stats"]).stdout;
    for word in ["STAGE", "cache-lookup", "fsync", "P99 MS", "hits"] {
        assert!(table.contains(word), "{word} missing from\n{table}");
    }
    // A bad section is refused before anything is sent.
    let bad = remote.run(&[
        "resolve",
        "webshop",
        "-c",
        "env=prod",
        "--section",
        "db..pool",
    ]);
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert!(bad.stderr.contains("--section"), "{}", bad.stderr);
}

/// Issue 12, item 3: a refusal with 10,000 findings reaches the CLI from a
/// server (it used to be `INTERNAL: h2 protocol error`, exit 1): exit 6,
/// the first findings, and how many more there are, as locally.
#[test]
fn a_refusal_with_ten_thousand_findings_reaches_the_cli() {
    let server = Server::start();
    let remote = Remote {
        server: &server,
        cwd: tempfile::tempdir().unwrap(),
    };
    let local = Env::new();
    let values: Vec<String> = (0..200).map(|i| format!("\"v{i}\"")).collect();
    let plain = format!(
        "name = \"many\"\nlevels = [\"defaults\", \"k/{{k}}\"]\n[matrix]\nk = [{}]\n",
        values.join(", ")
    );
    let rules: String = (0..50)
        .map(|i| format!("\n[[validation.rules]]\nid = \"r{i}\"\ncheck = \"cfg.n > 1\"\nmessage = \"n is too small\"\n"))
        .collect();
    let spec = local.write("many.toml", plain.as_bytes());
    let checked = local.write("many-checked.toml", format!("{plain}{rules}").as_bytes());
    let layer = local.write("n.toml", b"n = 1\n");
    let run_both = |args: &[&str]| (local.run(args), remote.run(args));
    for args in [
        &["ns", "create", "-f", spec.as_str()][..],
        &["put", "many", "defaults", "-f", layer.as_str()],
    ] {
        let (l, r) = run_both(args);
        assert_eq!(
            (l.code, r.code),
            (0, 0),
            "{args:?}: {}{}",
            l.stderr,
            r.stderr
        );
    }
    let (l, r) = run_both(&["ns", "create", "-f", checked.as_str(), "--replace"]);
    for (mode, run) in [("local", &l), ("remote", &r)] {
        assert_eq!(run.code, 6, "{mode}: {}", run.stderr);
        assert!(
            run.stderr.contains("validation failed with 10000 errors"),
            "{mode}: {}",
            run.stderr
        );
        let listed = run
            .stderr
            .lines()
            .filter(|l| l.starts_with("  error "))
            .count();
        assert!(
            (1..=20).contains(&listed),
            "{mode}: {listed} findings listed"
        );
        assert!(
            run.stderr
                .contains(&format!("… and {} more errors", 10_000 - listed)),
            "{mode}: {}",
            run.stderr
        );
    }
    // Nothing was declared: the namespace has no chain.
    let (l, r) = run_both(&["validate", "many"]);
    assert_eq!((l.code, r.code), (0, 0), "{}{}", l.stderr, r.stderr);
    server.stop();
}
