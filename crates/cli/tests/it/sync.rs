//! `confstrata sync` between two real servers (a staging and a production
//! one, each `confstrata serve` on its own SQLite file): a namespace copied
//! with its secrets re-sealed on the target, a dry run first, a second run
//! that does nothing, a plan refused when the target changed after it was
//! reviewed, the target's validation refusing a bad copy, a source token
//! without `read-secrets` refused naming the key, a layer promoted with
//! include and exclude patterns, and no canary secret in any output or in
//! any file of either data directory.

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::remote::Server;
use super::{Run, to_run};

const CANARIES: [&str; 2] = ["CANARY-5y1c-explicit", "CANARY-5y1c-rule"];

/// A command on `server` as its admin, with `stdin`.
fn on(server: &Server, args: &[&str], stdin: &str) -> Run {
    on_as(server, &server.token, args, stdin)
}

fn on_as(server: &Server, token: &str, args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_confstrata"))
        .arg("--addr")
        .arg(&server.addr)
        .args(args)
        .env("CONFSTRATA_TOKEN", token)
        .env_remove("CONFSTRATA_DATA_DIR")
        .env_remove("CONFSTRATA_FROM_ADDR")
        .env_remove("CONFSTRATA_FROM_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    to_run(child.wait_with_output().unwrap())
}

fn ok(server: &Server, args: &[&str]) -> String {
    let run = on(server, args, "");
    assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
    run.stdout
}

/// `sync` into `target` from `source`, with the source's `token`.
fn sync(target: &Server, source: &Server, token: &str, args: &[&str]) -> Run {
    let mut all = vec!["sync", "--from-addr", &source.addr, "--from-token", token];
    all.extend_from_slice(args);
    let run = on(target, &all, "");
    for c in CANARIES {
        assert!(
            !run.stdout.contains(c) && !run.stderr.contains(c),
            "{args:?} printed a secret: {} {}",
            run.stdout,
            run.stderr
        );
    }
    run
}

fn layer(server: &Server, ns_layer: &[&str]) -> Value {
    let mut args = vec!["get"];
    args.extend_from_slice(ns_layer);
    args.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&ok(server, &args)).unwrap()
}

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn changed_keys(plan: &Value) -> Vec<String> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}:{}",
                c["layer"].as_str().unwrap(),
                c["key"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn sync_between_two_servers_reseals_secrets_and_refuses_conflicts() {
    let staging = Server::start();
    let prod = Server::start();
    let spec = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        spec.path(),
        r#"name = "shop"
levels = ["defaults", "env/{env}"]
[matrix]
env = ["staging", "prod"]
[validation.schema.properties.db.properties.pool]
type = "integer"
maximum = 50
"#,
    )
    .unwrap();
    // The source: no schema; a value the target's schema refuses.
    ok(
        &staging,
        &[
            "ns",
            "create",
            "shop",
            "--level",
            "defaults",
            "--level",
            "env/{env}",
            "--matrix",
            "env=staging,prod",
        ],
    );
    ok(
        &staging,
        &[
            "set",
            "shop",
            "defaults",
            "db.host=localhost",
            "db.pool=100",
            "log.level=info",
        ],
    );
    ok(&staging, &["set", "shop", "env/prod", "db.host=db.prod"]);
    let run = on(
        &staging,
        &["set", "shop", "env/prod", "--secret", "api.key=-"],
        CANARIES[0],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    ok(
        &staging,
        &[
            "set",
            "shop",
            "env/prod",
            &format!("db.password={}", CANARIES[1]),
        ],
    );
    // The target: declared with the schema, one layer of its own.
    ok(
        &prod,
        &["ns", "create", "-f", spec.path().to_str().unwrap()],
    );
    ok(&prod, &["set", "shop", "env/staging", "only.here=1"]);

    // A source token that may read but not open secrets is refused,
    // naming the key; nothing is changed.
    ok(&staging, &["principal", "add", "peek", "--role", "viewer"]);
    let viewer = ok(&staging, &["token", "issue", "peek"]).trim().to_owned();
    let refused = sync(&prod, &staging, &viewer, &["shop", "shop"]);
    assert_eq!(refused.code, 5, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("read-secrets"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("--exclude"), "{}", refused.stderr);
    ok(
        &staging,
        &["principal", "add", "syncer", "--role", "secret-reader"],
    );
    let reader = ok(&staging, &["token", "issue", "syncer"])
        .trim()
        .to_owned();

    // The dry run shows the difference and the target's findings: the
    // schema refuses pool = 100 (exit 6), and nothing is changed.
    let dry = sync(&prod, &staging, &reader, &["shop", "shop", "-o", "json"]);
    assert_eq!(dry.code, 6, "{}", dry.stderr);
    let plan = json(&dry);
    assert!(plan["findings"].to_string().contains("db.pool"), "{plan}");
    assert!(plan["notes"].to_string().contains("declarations"), "{plan}");
    let committed = sync(&prod, &staging, &reader, &["shop", "shop", "--commit"]);
    assert_eq!(committed.code, 6, "{}", committed.stderr);
    assert!(on(&prod, &["get", "shop", "defaults"], "").code != 0);

    // Fixed at the source, the dry run is clean and shows secrets masked.
    ok(&staging, &["set", "shop", "defaults", "db.pool=20"]);
    let dry = sync(&prod, &staging, &reader, &["shop", "shop", "-o", "json"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let plan = json(&dry);
    assert_eq!(
        changed_keys(&plan),
        [
            "defaults:db.host",
            "defaults:db.pool",
            "defaults:log.level",
            "env/prod:api.key",
            "env/prod:db.host",
            "env/prod:db.password"
        ]
    );
    let secrets: Vec<&Value> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["secret"] == true)
        .collect();
    assert_eq!(secrets.len(), 2, "{plan}");
    assert!(secrets.iter().all(|c| c["new"] == "<sealed>"), "{plan}");
    let fingerprint = plan["plan"].as_str().unwrap().to_owned();
    assert_eq!(fingerprint.len(), 16, "{plan}");

    // Applied as reviewed: one revision on the target; the layer only the
    // target has is kept; secrets open for the admin and are sealed there.
    let applied = sync(
        &prod,
        &staging,
        &reader,
        &["shop", "shop", "--commit", "--plan", &fingerprint],
    );
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    let got = layer(&prod, &["shop", "env/prod"]);
    assert_eq!(got["api"]["key"], CANARIES[0]);
    assert_eq!(got["db"]["password"], CANARIES[1]);
    let record: Value =
        serde_json::from_str(&ok(&prod, &["layers", "shop", "-o", "json"])).unwrap();
    let prod_layer = record
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["layer"] == "env/prod")
        .unwrap();
    assert_eq!(
        prod_layer["sealed_keys"],
        serde_json::json!(["api.key", "db.password"]),
        "{prod_layer}"
    );
    assert_eq!(layer(&prod, &["shop", "env/staging"])["only"]["here"], 1);

    // A second run has nothing to do.
    let again = sync(&prod, &staging, &reader, &["shop", "shop", "--commit"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains("nothing to sync"), "{}", again.stderr);

    // The target changes after the review: the reviewed plan is refused
    // (exit 3) and the target keeps its value.
    ok(&staging, &["set", "shop", "env/prod", "db.host=db2.prod"]);
    let dry = sync(&prod, &staging, &reader, &["shop", "shop", "-o", "json"]);
    let fingerprint = json(&dry)["plan"].as_str().unwrap().to_owned();
    ok(&prod, &["set", "shop", "env/prod", "db.host=hotfix.prod"]);
    let conflict = sync(
        &prod,
        &staging,
        &reader,
        &["shop", "shop", "--commit", "--plan", &fingerprint],
    );
    assert_eq!(conflict.code, 3, "{}", conflict.stderr);
    assert!(
        conflict.stderr.contains("changed since the dry run"),
        "{}",
        conflict.stderr
    );
    assert_eq!(
        layer(&prod, &["shop", "env/prod"])["db"]["host"],
        "hotfix.prod"
    );

    // A layer promoted on one server with patterns: only db, not db.host.
    ok(
        &prod,
        &[
            "set",
            "shop",
            "env/staging",
            "db.pool=8",
            "db.host=db.staging",
            "log.level=debug",
        ],
    );
    let promote = on(
        &prod,
        &[
            "sync",
            "shop:env/staging",
            "shop:env/prod",
            "--include",
            "db",
            "--exclude",
            "db.host",
            "--commit",
            "-o",
            "json",
        ],
        "",
    );
    assert_eq!(promote.code, 0, "{}", promote.stderr);
    assert_eq!(changed_keys(&json(&promote)), ["env/prod:db.pool"]);
    let got = layer(&prod, &["shop", "env/prod"]);
    assert_eq!(got["db"]["pool"], 8);
    assert_eq!(got["db"]["host"], "hotfix.prod");
    assert!(got.get("log").is_none(), "{got}");

    // Bad input: a clear error, nothing changed.
    for (args, says) in [
        (vec!["sync", "shop", "shop"], "the same"),
        (vec!["sync", "shop:env/staging", "shop"], "both be layers"),
        (
            vec!["sync", "shop", "nope:x", "--include", "db"],
            "both be layers",
        ),
        (
            vec![
                "sync",
                "shop:env/staging",
                "shop:env/prod",
                "--include",
                "db.p*",
            ],
            "--include",
        ),
        (vec!["sync", "missing", "shop2"], "missing"),
        (
            vec!["sync", "shop:env/staging", "missing:env/prod"],
            "missing",
        ),
    ] {
        let run = on(&prod, &args, "");
        assert_ne!(run.code, 0, "{args:?}");
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    }

    // No canary in either store's files: sealed on both sides.
    let staging_dir = staging.stop_keeping_data();
    let prod_dir = prod.stop_keeping_data();
    for dir in [staging_dir.path(), prod_dir.path()] {
        let mut files = Vec::new();
        walk(dir, &mut files);
        assert!(!files.is_empty());
        for f in files {
            let bytes = std::fs::read(&f).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            for c in CANARIES {
                assert!(!text.contains(c), "{c} in {}", f.display());
            }
        }
    }
}

fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}
