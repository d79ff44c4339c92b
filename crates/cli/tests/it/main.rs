//! End-to-end tests of the `confstrata` binary on a real store directory,
//! and (`remote`) on a `confstrata serve` child process with `--addr`.

mod access;
mod backup;
mod canary;
mod generate;
mod imports;
mod openapi;
mod remote;
mod sync;
mod template;
mod tls;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

struct Env {
    dir: tempfile::TempDir,
    /// The failures seen by [`Env::fails`], for snapshots.
    transcript: std::cell::RefCell<Vec<String>>,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

impl Env {
    fn new() -> Self {
        Env {
            dir: tempfile::tempdir().unwrap(),
            transcript: std::cell::RefCell::default(),
        }
    }

    fn with_example() -> Self {
        let env = Env::new();
        env.ok(&["import", examples().join("webshop").to_str().unwrap()]);
        env
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_confstrata"));
        c.arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(args);
        c.env("CONFSTRATA_AUTHOR", "tester")
            .current_dir(self.dir.path());
        c
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Run {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        to_run(child.wait_with_output().unwrap())
    }

    fn run(&self, args: &[&str]) -> Run {
        to_run(self.cmd(args).stdin(Stdio::null()).output().unwrap())
    }

    fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(r.code, 0, "{args:?} failed: {}", r.stderr);
        r
    }

    /// Runs a command that must fail with `code`, and checks its one-line
    /// error mentions `needle` and that the store did not change.
    fn fails(&self, args: &[&str], code: i32, needle: &str) -> String {
        let before = self.snapshot();
        let r = self.run(args);
        let stderr = self.check_failure(args, &r, code, needle, &before);
        let shown = stderr.replace(&self.dir.path().display().to_string(), "<dir>");
        self.transcript.borrow_mut().push(format!(
            "$ confstrata {}\nexit {code}: {}",
            args.join(" ")
                .replace(&self.dir.path().display().to_string(), "<dir>"),
            shown.trim_end()
        ));
        stderr
    }

    /// Every failure [`Env::fails`] saw, with its command and exit code,
    /// paths shown relative to the test's directory: what a snapshot holds.
    fn transcript(&self) -> String {
        self.transcript.borrow().join("\n\n")
    }

    fn check_failure(
        &self,
        args: &[&str],
        r: &Run,
        code: i32,
        needle: &str,
        before: &Value,
    ) -> String {
        assert_eq!(
            r.code, code,
            "{args:?}: stdout {} stderr {}",
            r.stdout, r.stderr
        );
        assert!(
            r.stderr.contains(needle),
            "{args:?}: {:?} does not mention {needle:?}",
            r.stderr
        );
        assert_eq!(
            r.stderr.trim_end().lines().count(),
            1,
            "{args:?}: error is not one line: {}",
            r.stderr
        );
        assert!(r.stdout.is_empty(), "{args:?} printed {}", r.stdout);
        assert_eq!(&self.snapshot(), before, "{args:?} changed the store");
        r.stderr.clone()
    }

    /// The store's revision and every layer of every namespace.
    fn snapshot(&self) -> Value {
        let status = self.ok(&["status", "-o", "json"]).json();
        let mut layers = serde_json::Map::new();
        for ns in self
            .ok(&["ns", "list", "-o", "json"])
            .json()
            .as_array()
            .unwrap()
        {
            let name = ns["spec"]["name"].as_str().unwrap().to_owned();
            layers.insert(
                name.clone(),
                self.ok(&["layers", &name, "-o", "json"]).json(),
            );
        }
        json!({"revision": status["revision"], "layers": layers})
    }

    fn write(&self, name: &str, content: &[u8]) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p.to_str().unwrap().to_owned()
    }
}

fn to_run(o: Output) -> Run {
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8(o.stdout).unwrap(),
        stderr: String::from_utf8(o.stderr).unwrap(),
    }
}

#[test]
fn the_example_resolves_as_documented() {
    let env = Env::with_example();
    let eu = env
        .ok(&[
            "resolve",
            "webshop",
            "-c",
            "env=prod,region=eu",
            "-o",
            "json",
        ])
        .json();
    assert_eq!(eu["db"]["host"], "db.prod.eu.internal");
    assert_eq!(
        eu["db"]["pool"],
        json!({"min": 10, "max": 100, "idle_timeout_s": 300})
    );
    assert_eq!(eu["payments"]["currency"], "EUR");
    assert_eq!(eu["server"]["workers"], 16);
    assert!(
        eu["features"].get("debug_toolbar").is_none(),
        "the delete marker removes the key"
    );
    assert_eq!(eu["features"]["recommendations"], true);

    // The region/us layer is JSON and env/prod/region/us is a .env file.
    let us = env
        .ok(&[
            "resolve",
            "webshop",
            "-c",
            "env=prod",
            "-c",
            "region=us",
            "-o",
            "json",
        ])
        .json();
    assert_eq!(us["db"]["host"], "db.prod.us.internal");
    assert_eq!(us["server"]["workers"], 24);
    assert_eq!(us["payments"]["currency"], "USD");

    // YAML layer (staging), and a context without region skips region levels.
    let staging = env
        .ok(&["resolve", "webshop", "-c", "env=staging", "-o", "json"])
        .json();
    assert_eq!(
        staging["logging"],
        json!({"level": "info", "format": "json"})
    );
    assert!(staging.get("compliance").is_none());

    // The table view and the env view carry the same values.
    let table = env
        .ok(&["resolve", "webshop", "-c", "env=prod,region=eu"])
        .stdout;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("db.host") && l.ends_with("db.prod.eu.internal")),
        "{table}"
    );
    let dotenv = env
        .ok(&[
            "resolve",
            "webshop",
            "-c",
            "env=prod,region=eu",
            "-o",
            "env",
        ])
        .stdout;
    assert!(dotenv.contains("DB__POOL__MAX=100\n"), "{dotenv}");
}

#[test]
fn provenance_and_explain_name_the_layers() {
    let env = Env::with_example();
    let v = env
        .ok(&[
            "resolve",
            "webshop",
            "-c",
            "env=prod,region=eu",
            "--provenance",
            "-o",
            "json",
        ])
        .json();
    assert_eq!(v["provenance"]["db.host"]["layer"], "env/prod/region/eu");
    assert_eq!(v["provenance"]["db.port"]["layer"], "defaults");
    assert_eq!(
        v["provenance"]["db.pool.max"],
        json!({"layer": "env/prod", "revision": 1})
    );
    assert_eq!(v["layers"].as_array().unwrap().len(), 4);

    let x = env
        .ok(&[
            "explain",
            "webshop",
            "db.host",
            "-c",
            "env=prod,region=eu",
            "-o",
            "json",
        ])
        .json();
    let layers: Vec<(&str, bool)> = x["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["layer"].as_str().unwrap(), e["winner"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        layers,
        [
            ("env/prod/region/eu", true),
            ("env/prod", false),
            ("defaults", false)
        ]
    );
    assert_eq!(x["changes"]["1"]["author"], "tester");
    assert!(
        x["changes"]["1"]["message"]
            .as_str()
            .unwrap()
            .starts_with("import ")
    );
    let table = env
        .ok(&[
            "explain",
            "webshop",
            "features.debug_toolbar",
            "-c",
            "env=prod",
        ])
        .stdout;
    assert!(table.contains("(deleted)"), "{table}");
    env.fails(
        &["explain", "webshop", "no.such.key", "-c", "env=prod"],
        4,
        "key no.such.key not found",
    );
}

#[test]
fn edits_history_diff_and_rollback() {
    let env = Env::with_example();
    let r = env
        .ok(&[
            "set",
            "webshop",
            "env/prod",
            "db.pool.max=150",
            "features.new_checkout=true",
            "-m",
            "sale",
            "-o",
            "json",
        ])
        .json();
    assert_eq!(r["revision"], 2);
    assert_eq!(r["operations"], 2);
    env.ok(&["unset", "webshop", "env/prod", "cache.ttl_s"]);
    let layer = env.ok(&["get", "webshop", "env/prod", "-o", "json"]).json();
    assert_eq!(layer["db"]["pool"]["max"], 150);
    assert!(layer["cache"].get("ttl_s").is_none());
    // The past is still readable.
    let old = env
        .ok(&["get", "webshop", "env/prod", "--at", "1", "-o", "json"])
        .json();
    assert_eq!(old["db"]["pool"]["max"], 100);

    let h = env
        .ok(&["history", "webshop", "env/prod", "-o", "json"])
        .json();
    let revs: Vec<u64> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(revs, [3, 2, 1]);
    assert_eq!(h[1]["message"], "sale");
    assert_eq!(h[1]["author"], "tester");

    let d = env
        .ok(&["diff", "webshop", "env/prod", "--from", "1", "-o", "json"])
        .json();
    let keys: Vec<(&str, &str)> = d
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["key"].as_str().unwrap(), e["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        keys,
        [
            ("cache.ttl_s", "removed"),
            ("db.pool.max", "changed"),
            ("features.new_checkout", "added")
        ]
    );
    let d = env
        .ok(&[
            "diff",
            "webshop",
            "-c",
            "env=staging",
            "-c",
            "env=prod",
            "-o",
            "json",
        ])
        .json();
    assert!(
        d.as_array()
            .unwrap()
            .iter()
            .any(|e| e["key"] == "db.host" && e["old"] == "db.staging.internal")
    );
    let d = env
        .ok(&[
            "diff", "webshop", "--layer", "env/dev", "--layer", "env/prod", "-o", "json",
        ])
        .json();
    assert!(
        d.as_array()
            .unwrap()
            .iter()
            .any(|e| e["key"] == "server.workers" && e["old"] == 1 && e["new"] == 16)
    );

    let plan = env
        .ok(&[
            "rollback",
            "webshop",
            "--to",
            "1",
            "--dry-run",
            "-o",
            "json",
        ])
        .json();
    assert_eq!(plan["ops"].as_array().unwrap().len(), 1);
    assert_eq!(
        env.ok(&["status", "-o", "json"]).json()["revision"],
        3,
        "a dry run commits nothing"
    );
    env.ok(&["rollback", "webshop", "--to", "1"]);
    let now = env.ok(&["get", "webshop", "env/prod", "-o", "json"]).json();
    assert_eq!(now, old);
    let ns_diff = env
        .ok(&["diff", "webshop", "--from", "1", "--to", "4", "-o", "json"])
        .json();
    assert_eq!(ns_diff, json!([]));
}

#[test]
fn apply_commits_a_bulk_change_set_atomically() {
    let env = Env::with_example();
    let file = examples().join("bulk-change.toml");
    let d = env
        .ok(&[
            "apply",
            "-f",
            file.to_str().unwrap(),
            "--dry-run",
            "-o",
            "json",
        ])
        .json();
    assert_eq!(d["revision"], 1);
    assert_eq!(d["layers"].as_array().unwrap().len(), 3, "{d}");
    assert_eq!(
        env.ok(&["status", "-o", "json"]).json()["revision"],
        1,
        "a dry run commits nothing"
    );
    let r = env
        .ok(&["apply", "-f", file.to_str().unwrap(), "-o", "json"])
        .json();
    assert_eq!(
        (r["revision"].as_u64(), r["operations"].as_u64()),
        (Some(2), Some(4))
    );
    let us = env
        .ok(&[
            "resolve",
            "webshop",
            "-c",
            "env=prod,region=us",
            "-o",
            "json",
        ])
        .json();
    assert_eq!(
        (
            us["server"]["workers"].as_u64(),
            us["db"]["pool"]["max"].as_u64()
        ),
        (Some(32), Some(200))
    );

    // Many operations (no 64-op cap) in one revision.
    let ops: Vec<Value> = (0..500)
        .map(|i| json!({"op": "set", "namespace": "webshop", "layer": "instance/i-1", "key": format!("k.n{i}"), "value": i}))
        .collect();
    let path = env.write(
        "big.json",
        json!({"message": "many", "ops": ops})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(
        env.ok(&["apply", "-f", &path, "-o", "json"]).json()["revision"],
        3
    );

    // A change set whose last operation fails changes nothing at all.
    let bad = json!({"ops": [
        {"op": "set", "namespace": "webshop", "layer": "env/dev", "key": "a", "value": 1},
        {"op": "set", "namespace": "webshop", "layer": "env/dev", "key": "b", "value": 2, "expect_revision": 99}
    ]});
    let path = env.write("bad.json", bad.to_string().as_bytes());
    env.fails(
        &["apply", "-f", &path],
        3,
        "operation 1 (set webshop:env/dev b): conflict",
    );
}

#[test]
fn export_then_import_round_trips() {
    let env = Env::with_example();
    let out = env.dir.path().join("export");
    // .env cannot hold the delete marker that env/prod uses: a clear error, no files half-written matter.
    let dir = out.join("env");
    let r = env.run(&[
        "export",
        "webshop",
        dir.to_str().unwrap(),
        "--format",
        "env",
    ]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("delete marker at features.debug_toolbar"),
        "{}",
        r.stderr
    );
    // Exports never carry secrets: sealed values are written as the mask,
    // and importing the mask is refused (it would overwrite the secrets).
    for format in ["toml", "yaml", "json"] {
        let dir = out.join(format);
        env.ok(&[
            "export",
            "webshop",
            dir.to_str().unwrap(),
            "--format",
            format,
        ]);
        let text = all_text(&dir);
        assert!(text.contains("<sealed>"), "{format}: {text}");
        assert!(
            !text.contains("to-be-sealed"),
            "{format} export holds a secret"
        );
        let r = Env::new().run(&["import", dir.to_str().unwrap()]);
        assert_eq!(r.code, 1);
        assert!(r.stderr.contains("is the mask of a secret"), "{}", r.stderr);
    }
    // Without the masked keys, the rest round-trips exactly.
    let dir = out.join("json");
    strip_masks(&dir);
    let other = Env::new();
    other.ok(&["import", dir.to_str().unwrap()]);
    for ctx in ["env=prod,region=eu", "env=dev,region=us", "env=staging"] {
        let mut a = env
            .ok(&["resolve", "webshop", "-c", ctx, "-o", "json"])
            .json();
        let b = other
            .ok(&["resolve", "webshop", "-c", ctx, "-o", "json"])
            .json();
        for (t, k) in [("db", "password"), ("payments", "api_key")] {
            if let Some(m) = a[t].as_object_mut() {
                m.remove(k);
            }
        }
        assert_eq!(a, b, "{ctx}");
    }
}

/// Every file's text under `dir`.
fn all_text(dir: &Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.push_str(&all_text(&p));
        } else {
            out.push_str(&std::fs::read_to_string(&p).unwrap());
        }
    }
    out
}

/// Removes every `"<sealed>"` leaf from the JSON layer files under `dir`.
fn strip_masks(dir: &Path) {
    fn strip(v: &mut Value) {
        if let Value::Object(m) = v {
            m.retain(|_, v| v != "<sealed>");
            m.values_mut().for_each(strip);
        }
    }
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            strip_masks(&p);
        } else if p.extension().is_some_and(|x| x == "json") {
            let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            strip(&mut v);
            std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
        }
    }
}

#[test]
fn namespaces_are_declared_and_checked() {
    let env = Env::new();
    env.ok(&[
        "ns",
        "create",
        "payments",
        "--level",
        "defaults",
        "--level",
        "env/{env}",
        "--matrix",
        "env=dev,prod",
    ]);
    let list = env.ok(&["ns", "list", "-o", "json"]).json();
    assert_eq!(list[0]["spec"]["levels"], json!(["defaults", "env/{env}"]));
    env.fails(
        &["ns", "create", "payments", "--level", "defaults"],
        1,
        "already exists",
    );
    env.fails(
        &["ns", "create", "x", "--level", "env/{env"],
        1,
        "does not close",
    );
    env.fails(
        &[
            "ns", "create", "x", "--level", "defaults", "--matrix", "env=a",
        ],
        1,
        "used by no level",
    );
    env.fails(
        &["ns", "create", "../x", "--level", "defaults"],
        1,
        "segment 1 is \"..\"",
    );
    let show = env.ok(&["ns", "show", "payments"]).stdout;
    assert!(
        show.contains("matrix env") && show.contains("dev, prod"),
        "{show}"
    );
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let env = Env::with_example();
    let bad_toml = env.write("bad.toml", b"[db]\nport = \n");
    env.fails(
        &["put", "webshop", "env/dev", "-f", &bad_toml],
        1,
        "bad.toml: line 2, column 8",
    );
    let bad_yaml = env.write("bad.yaml", b"a: 1\n b: [\n");
    env.fails(
        &["put", "webshop", "env/dev", "-f", &bad_yaml],
        1,
        "bad.yaml: line 2",
    );
    let bad_json = env.write("bad.json", b"{\"a\": }");
    env.fails(
        &["put", "webshop", "env/dev", "-f", &bad_json],
        1,
        "bad.json: line 1, column 7",
    );
    let utf8 = env.write("utf8.toml", b"a = \"\xc3\x28\"\n");
    env.fails(
        &["put", "webshop", "env/dev", "-f", &utf8],
        1,
        "not valid UTF-8 (first bad byte at offset 5)",
    );
    let deep = env.write(
        "deep.json",
        format!("{}{}", "[".repeat(50_000), "]".repeat(50_000)).as_bytes(),
    );
    env.fails(
        &["put", "webshop", "env/dev", "-f", &deep],
        1,
        "nests deeper than the limit of 32",
    );
    let nested = format!("{{\"a\": {}1{}}}", "{\"b\": ".repeat(40), "}".repeat(40));
    let nested = env.write("nested.json", nested.as_bytes());
    env.fails(
        &["put", "webshop", "env/dev", "-f", &nested],
        1,
        "nests deeper than the limit of 32",
    );
    let big = env.write(
        "big.json",
        json!({"blob": "x".repeat(1_100_000)})
            .to_string()
            .as_bytes(),
    );
    env.fails(
        &["put", "webshop", "env/dev", "-f", &big],
        1,
        "over the limit of 1048576 bytes",
    );
    let before = env.snapshot();
    let r = env.run_with_stdin(&["put", "webshop", "env/dev"], b"a = [1,\n");
    env.check_failure(
        &["put (stdin)"],
        &r,
        1,
        "<stdin>: line 1, column 9",
        &before,
    );

    for (layer, needle) in [
        ("../x", "segment 1 is \"..\""),
        ("a//b", "segment 2 is empty"),
        ("%2e%2e", "contains '%'"),
        ("env/qa", "matches no level"),
        ("nowhere", "matches no level"),
    ] {
        env.fails(&["set", "webshop", layer, "a=1"], 1, needle);
    }
    env.fails(
        &["set", "webshop", "env/dev", "a..b=1"],
        1,
        "segment 2 is empty",
    );
    env.fails(
        &["set", "webshop", "env/dev", "novalue"],
        1,
        "not of the form KEY=VALUE",
    );
    env.fails(
        &["set", "webshop", "env/prod", "db.host.x=1"],
        1,
        "db.host holds a value that is not a table",
    );
    let e = env.fails(
        &["set", "nope", "defaults", "a=1"],
        4,
        "namespace \"nope\" not found",
    );
    assert_eq!(
        e.matches("not found").count(),
        1,
        "the cause is not repeated: {e}"
    );
    env.fails(
        &["get", "nope", "defaults"],
        4,
        "namespace \"nope\" not found",
    );
    env.fails(
        &["get", "webshop", "env/dev/region/eu"],
        4,
        "layer webshop:env/dev/region/eu not found",
    );
    env.fails(
        &["unset", "webshop", "env/dev", "no.such"],
        4,
        "key no.such not found",
    );
    env.fails(
        &["set", "webshop", "env/dev", "a=1", "--expect-revision", "7"],
        3,
        "expected revision 7, found 1",
    );
    env.fails(
        &["resolve", "webshop", "-c", "colour=red"],
        1,
        "context variable \"colour\" is not used",
    );
    env.fails(
        &["resolve", "webshop", "-c", "env=qa"],
        1,
        "allowed: dev, staging, prod",
    );
    env.fails(
        &["resolve", "webshop", "-c", "env"],
        1,
        "not of the form var=value",
    );
    env.fails(
        &["resolve", "webshop", "--at", "99"],
        1,
        "revision 99 is in the future",
    );
    env.fails(
        &["resolve", "webshop", "--at", "yesterday"],
        1,
        "use RFC 3339",
    );
    let unknown_op = env.write("op.toml", b"[[ops]]\nop = \"rename\"\n");
    env.fails(&["apply", "-f", &unknown_op], 1, "unknown variant `rename`");
    let empty = env.write("empty.toml", b"ops = []\n");
    env.fails(&["apply", "-f", &empty], 1, "it has no operations");
    env.fails(
        &["get", "webshop", "env/prod", "-o", "env", "--at", "0"],
        4,
        "namespace \"webshop\" not found",
    );
    // Every message whole, as a user reads it: a change to any wording or
    // exit code shows in review.
    insta::assert_snapshot!("bad_input_errors", env.transcript());
}

#[test]
fn a_precondition_guards_concurrent_edits() {
    let env = Env::with_example();
    let rev = env
        .ok(&["history", "webshop", "env/dev", "-o", "json"])
        .json()[0]["revision"]
        .as_u64()
        .unwrap();
    env.ok(&[
        "set",
        "webshop",
        "env/dev",
        "a=1",
        "--expect-revision",
        &rev.to_string(),
    ]);
    // The second writer read the same revision: it must fail and change nothing.
    env.fails(
        &[
            "set",
            "webshop",
            "env/dev",
            "a=2",
            "--expect-revision",
            &rev.to_string(),
        ],
        3,
        "conflict",
    );
    // Revision 0 means "must not exist": create-once.
    env.ok(&[
        "set",
        "webshop",
        "instance/i-9",
        "a=1",
        "--expect-revision",
        "0",
    ]);
    env.fails(
        &[
            "set",
            "webshop",
            "instance/i-9",
            "a=2",
            "--expect-revision",
            "0",
        ],
        3,
        "expected revision 0",
    );
}

#[test]
fn serve_refuses_weak_or_exposed_master_keys() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |data: &Path, key: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_confstrata"));
        c.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .env_remove("CONFSTRATA_MASTER_KEY")
            .stdin(Stdio::null());
        if let Some(k) = key {
            c.env("CONFSTRATA_MASTER_KEY", k);
        }
        to_run(c.output().unwrap())
    };
    for (what, key) in [
        ("empty", ""),
        ("short", "c2hvcnQ="),
        ("all zeros", &"0".repeat(64)[..]),
        (
            "counting",
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        ),
    ] {
        let r = serve(&dir.path().join(what.replace(' ', "_")), Some(key));
        assert_eq!(r.code, 1, "{what}: {}", r.stderr);
        assert!(
            r.stderr.contains("CONFSTRATA_MASTER_KEY"),
            "{what}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("listening"), "{what}");
    }
    // A key file others can read.
    let env = Env::new();
    env.ok(&["status"]);
    let data = env.dir.path().join("data");
    let key = data.join("master.key");
    assert!(key.is_file(), "the first local use created the key file");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = serve(&data, None);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("master.key"), "{}", r.stderr);
}

#[test]
fn validation_refuses_bad_changes_with_every_finding() {
    let env = Env::new();
    let ex = examples().join("validated");
    env.ok(&["import", ex.join("platform").to_str().unwrap()]);
    env.ok(&["import", ex.join("orders").to_str().unwrap()]);
    let r = env.ok(&["validate"]);
    assert!(!r.stdout.contains("error"), "{}", r.stdout);
    let bad = ex.join("bad-change.toml");
    let before = env.ok(&["status", "-o", "json"]).json()["revision"].clone();
    // validate -f: the diff and the findings, exit 6.
    let r = env.run(&["validate", "-f", bad.to_str().unwrap()]);
    assert_eq!(r.code, 6, "{}{}", r.stdout, r.stderr);
    for needle in [
        "SEVERITY",
        "schema",
        "validator",
        "rule",
        "cross",
        "server.port",
        "prod-has-replicas",
        "pool-within-platform-budget",
    ] {
        assert!(r.stdout.contains(needle), "{needle} missing:\n{}", r.stdout);
    }
    assert!(r.stderr.contains("validation failed with"), "{}", r.stderr);
    // apply: refused, nothing committed, exit 6.
    let r = env.run(&["apply", "-f", bad.to_str().unwrap()]);
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(r.stderr.contains("nothing was committed"), "{}", r.stderr);
    assert_eq!(env.ok(&["status", "-o", "json"]).json()["revision"], before);
    // JSON output of validate is the findings.
    let r = env.run(&["validate", "-f", bad.to_str().unwrap(), "-o", "json"]);
    assert_eq!(r.code, 6);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v["findings"].as_array().unwrap().len() >= 4, "{v}");
}

#[test]
fn the_validation_library_is_put_shown_and_used() {
    let env = Env::new();
    let lib = env.write(
        "library.toml",
        b"[schemas.team-port]\ntype = \"integer\"\nminimum = 10000\nmaximum = 20000\ndescription = \"ports our team may use\"\n\n[[validators]]\nname = \"is_even\"\nbody = \"value % 2 == 0\"\ndescription = \"must be even\"\n",
    );
    env.ok(&["library", "put", "-f", &lib]);
    let r = env.ok(&["library", "show"]);
    for needle in [
        "confstrata:port",
        "confstrata:team-port",
        "ports our team may use",
        "is_even(value)",
    ] {
        assert!(r.stdout.contains(needle), "{needle}: {}", r.stdout);
    }
    let spec = env.write(
        "svc.toml",
        b"name = \"svc\"\nlevels = [\"defaults\"]\n[validation.schema.properties.port]\n\"$ref\" = \"confstrata:team-port\"\n",
    );
    env.ok(&["ns", "create", "-f", &spec]);
    env.ok(&["set", "svc", "defaults", "port=15000"]);
    let r = env.run(&["set", "svc", "defaults", "port=80"]);
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(r.stderr.contains("port"), "{}", r.stderr);
    // A library that would break svc is refused; a bad one too.
    let narrow = env.write(
        "narrow.toml",
        b"[schemas.team-port]\ntype = \"integer\"\nmaximum = 12000\n",
    );
    let r = env.run(&["library", "put", "-f", &narrow]);
    assert_eq!(r.code, 6, "{}", r.stderr);
    let bad = env.write("bad.toml", b"[schemas.port]\ntype = \"integer\"\n");
    let r = env.run(&["library", "put", "-f", &bad]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("built-in") || r.stderr.contains("shadow"),
        "{}",
        r.stderr
    );
    let r = env.ok(&["ns", "history", "_library"]);
    assert_eq!(
        r.stdout.lines().count(),
        2,
        "one accepted version: {}",
        r.stdout
    );
}
