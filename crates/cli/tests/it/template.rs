//! `confstrata template`: every shipped template applied with its defaults
//! to a new namespace validates clean over its whole matrix; each rule of
//! the HTTP-service template refuses the mistake it exists for; bad
//! parameters, an unknown template and a namespace that exists are refused
//! clearly; and the same apply works against a real server.

use std::process::{Command, Stdio};

use serde_json::{Value, json};

use super::remote::Server;
use super::{Run, to_run};

/// Runs the binary against `server` with `token`.
pub(crate) fn remote_as<'a>(server: &'a Server, token: &'a str) -> impl Fn(&[&str]) -> Run + 'a {
    move |args| {
        let out = Command::new(env!("CARGO_BIN_EXE_confstrata"))
            .args(["--addr", &server.addr])
            .args(args)
            .env("CONFSTRATA_TOKEN", token)
            .env_remove("CONFSTRATA_DATA_DIR")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        to_run(out)
    }
}

fn run(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_confstrata"))
        .args(args)
        .env_remove("CONFSTRATA_ADDR")
        .env_remove("CONFSTRATA_DATA_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    to_run(out)
}

#[test]
fn shipped_templates_apply_clean_and_their_rules_catch_their_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let local = |args: &[&str]| run(&[&["--data-dir", data.to_str().unwrap()], args].concat());
    // list and show need no store.
    let list = run(&["template", "list", "-o", "json"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    let list: Vec<Value> = serde_json::from_str(&list.stdout).unwrap();
    assert!(!list.is_empty());
    // ... and make none: no data directory appears where they ran.
    let cwd = dir.path().join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let shown = Command::new(env!("CARGO_BIN_EXE_confstrata"))
        .args(["template", "show", "http-service"])
        .current_dir(&cwd)
        .env_remove("CONFSTRATA_DATA_DIR")
        .env_remove("CONFSTRATA_ADDR")
        .output()
        .unwrap();
    assert!(shown.status.success());
    assert_eq!(std::fs::read_dir(&cwd).unwrap().count(), 0);
    for t in &list {
        let name = &format!("{}@{}", t["name"].as_str().unwrap(), t["version"]);
        let show = run(&["template", "show", name]);
        assert_eq!(show.code, 0, "{}", show.stderr);
        assert!(show.stdout.contains("Parameters:"), "{}", show.stdout);
        // Applied with its defaults, the namespace validates clean in
        // every context of its matrix.
        let ns = format!("t-{}", name.replace('@', "-"));
        let dry = local(&["template", "apply", name, &ns, "-o", "json"]);
        assert_eq!(dry.code, 0, "{name}: {}", dry.stderr);
        let dry: Value = serde_json::from_str(&dry.stdout).unwrap();
        assert_eq!(dry["dry_run"]["findings"], serde_json::json!([]), "{name}");
        let made = local(&["template", "apply", name, &ns, "--commit"]);
        assert_eq!(made.code, 0, "{name}: {}", made.stderr);
        let checked = local(&["validate", &ns]);
        assert_eq!(
            checked.code, 0,
            "{name}: {} {}",
            checked.stdout, checked.stderr
        );
    }

    // Each rule of each template refuses the mistake it exists for,
    // naming itself; nothing is changed.
    for t in &list {
        let name = &format!("{}@{}", t["name"].as_str().unwrap(), t["version"]);
        let ns = format!("t-{}", name.replace('@', "-"));
        let shown = run(&["template", "show", name, "-o", "json"]);
        let shown: Value = serde_json::from_str(&shown.stdout).unwrap();
        let mistakes = shown["mistakes"].as_array().unwrap();
        let rules = shown["namespace"]["validation"]["rules"]
            .as_array()
            .unwrap();
        assert!(mistakes.len() >= rules.len(), "{name}");
        for m in mistakes {
            let (layer, key, rule) = (
                m["layer"].as_str().unwrap(),
                m["key"].as_str().unwrap(),
                m["rule"].as_str().unwrap(),
            );
            let pair = format!("{key}={}", m["value"]);
            let r = local(&["set", &ns, layer, &pair]);
            assert_eq!(r.code, 6, "{name} {layer} {pair}: {}", r.stderr);
            assert!(r.stderr.contains(rule), "{name} {pair}: {}", r.stderr);
        }
        assert_eq!(
            local(&["validate", &ns]).code,
            0,
            "{name}: a refused set changed something"
        );
    }
    assert_eq!(
        local(&[
            "template",
            "apply",
            "http-service",
            "web",
            "--param",
            "port=9000",
            "--commit"
        ])
        .code,
        0
    );
    let resolved = local(&["resolve", "web", "-c", "env=prod,region=eu", "-o", "json"]);
    let resolved: Value = serde_json::from_str(&resolved.stdout).unwrap();
    assert_eq!(resolved["server"]["port"], 9000);
    assert_eq!(resolved["replicas"], 3);

    // Bad input: the parameter, the template or the namespace named.
    for (args, code, says) in [
        (
            vec![
                "template",
                "apply",
                "http-service",
                "x",
                "--param",
                "port=eighty",
            ],
            1,
            "parameter port",
        ),
        (
            vec![
                "template",
                "apply",
                "http-service",
                "x",
                "--param",
                "colour=red",
            ],
            1,
            "no such parameter",
        ),
        (
            vec![
                "template",
                "apply",
                "http-service",
                "x",
                "--param",
                "nonsense",
            ],
            1,
            "--param",
        ),
        (
            vec!["template", "apply", "nope", "x"],
            4,
            "template nope not found (known: ",
        ),
        (
            vec!["template", "apply", "http-service", "web", "--commit"],
            3,
            "exists already",
        ),
    ] {
        let r = local(&args);
        assert_eq!(r.code, code, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
    }
    // The namespace records its template; diff shows the local overrides.
    let shown: Value =
        serde_json::from_str(&local(&["ns", "show", "web", "-o", "json"]).stdout).unwrap();
    assert_eq!(shown["spec"]["template"]["name"], "http-service", "{shown}");
    assert_eq!(
        shown["spec"]["template"]["parameters"]["port"], 9000,
        "{shown}"
    );
    let none: Value =
        serde_json::from_str(&local(&["template", "diff", "web", "-o", "json"]).stdout).unwrap();
    assert_eq!(none["overrides"], serde_json::json!([]), "{none}");
    assert_eq!(local(&["set", "web", "env/prod", "replicas=5"]).code, 0);
    assert_eq!(
        local(&["set", "web", "env/dev", "log.level=\"debug\""]).code,
        0
    );
    assert_eq!(
        local(&["unset", "web", "defaults", "server.public_url"]).code,
        0
    );
    let d: Value =
        serde_json::from_str(&local(&["template", "diff", "web", "-o", "json"]).stdout).unwrap();
    let got: Vec<(String, String, String)> = d["overrides"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["layer"].as_str().unwrap().to_owned(),
                o["key"].as_str().unwrap().to_owned(),
                o["change"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "defaults".into(),
                "server.public_url".into(),
                "removed".into()
            ),
            ("env/dev".into(), "log".into(), "added".into()),
            ("env/prod".into(), "replicas".into(), "changed".into()),
        ]
    );
    assert_eq!(d["declaration_changed"], false);
    assert_eq!(
        local(&["ns", "create", "plain", "--level", "defaults"]).code,
        0
    );
    let r = local(&["template", "diff", "plain"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("not made from a template"),
        "{}",
        r.stderr
    );

    // Upgrade: a namespace made from version 1, with one local override the
    // new version does not touch (kept) and one it changes (a conflict).
    assert_eq!(
        local(&["template", "apply", "http-service@1", "up", "--commit"]).code,
        0
    );
    assert_eq!(local(&["set", "up", "env/prod", "replicas=5"]).code, 0);
    assert_eq!(
        local(&["set", "up", "defaults", "server.idle_timeout_ms=45000"]).code,
        0
    );
    let dry = local(&["template", "upgrade", "up", "-o", "json"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let dry: Value = serde_json::from_str(&dry.stdout).unwrap();
    assert_eq!(dry["to"], "http-service@2");
    assert_eq!(
        dry["changes"][0]["key"], "server.read_header_timeout_ms",
        "{dry}"
    );
    assert_eq!(
        dry["conflicts"][0]["key"], "server.idle_timeout_ms",
        "{dry}"
    );
    assert_eq!(dry["kept_overrides"], 1);
    let refused = local(&["template", "upgrade", "up", "--commit"]);
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(refused.stderr.contains("--resolve"), "{}", refused.stderr);
    let still: Value =
        serde_json::from_str(&local(&["get", "up", "defaults", "-o", "json"]).stdout).unwrap();
    assert!(
        still["server"].get("read_header_timeout_ms").is_none(),
        "nothing changed: {still}"
    );
    let done = local(&["template", "upgrade", "up", "--commit", "--resolve", "ours"]);
    assert_eq!(done.code, 0, "{}", done.stderr);
    let now: Value = serde_json::from_str(
        &local(&["resolve", "up", "-c", "env=prod,region=eu", "-o", "json"]).stdout,
    )
    .unwrap();
    assert_eq!(now["server"]["read_header_timeout_ms"], 2000);
    assert_eq!(now["server"]["idle_timeout_ms"], 45000);
    assert_eq!(now["replicas"], 5);
    assert_eq!(local(&["validate", "up"]).code, 0);
    let again = local(&["template", "upgrade", "up", "--commit"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stderr.contains("nothing to upgrade"),
        "{}",
        again.stderr
    );
    let r = local(&["template", "upgrade", "plain"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("not made from a template"),
        "{}",
        r.stderr
    );

    // A parameters file, with --param winning over it.
    let params = dir.path().join("params.toml");
    std::fs::write(&params, "port = 7000\nprod_replicas = 5\n").unwrap();
    let r = local(&[
        "template",
        "apply",
        "http-service",
        "svc",
        "-f",
        params.to_str().unwrap(),
        "--param",
        "port=7001",
        "--commit",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let got = local(&["resolve", "svc", "-c", "env=prod,region=us", "-o", "json"]);
    let got: Value = serde_json::from_str(&got.stdout).unwrap();
    assert_eq!(
        (got["server"]["port"].clone(), got["replicas"].clone()),
        (7001.into(), 5.into())
    );
}

#[test]
fn a_template_applies_on_a_server() {
    let server = Server::start();
    let remote = remote_as(&server, &server.token);
    let r = remote(&["template", "apply", "http-service", "api", "--commit"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = remote(&["validate", "api"]);
    assert_eq!(v.code, 0, "{}", v.stderr);
    let got = remote(&["resolve", "api", "-c", "env=dev,region=eu", "-o", "json"]);
    let got: Value = serde_json::from_str(&got.stdout).unwrap();
    assert_eq!(got["server"]["public_url"], "https://localhost:8080/");
    // The recorded origin crosses the wire: diff works remotely.
    assert_eq!(
        remote(&["set", "api", "defaults", "server.port=8443"]).code,
        0
    );
    let d = remote(&["template", "diff", "api", "-o", "json"]);
    assert_eq!(d.code, 0, "{}", d.stderr);
    let d: Value = serde_json::from_str(&d.stdout).unwrap();
    assert_eq!(d["overrides"][0]["key"], "server.port", "{d}");
    assert_eq!(d["overrides"][0]["template"], 8080, "{d}");
}

/// Generators compute per-layer values, and explain says, entry by entry,
/// which template (and which generator) a value came from and where a
/// local value overrides it — locally and over gRPC.
#[test]
fn explain_names_the_template_and_generator_behind_a_value() {
    let server = Server::start();
    let remote = remote_as(&server, &server.token);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let local = |args: &[&str]| {
        let mut all = vec!["--data-dir", data.as_str()];
        all.extend_from_slice(args);
        run(&all)
    };
    for cli in [&local as &dyn Fn(&[&str]) -> Run, &remote] {
        let r = cli(&[
            "template",
            "apply",
            "postgres-client",
            "db",
            "--param",
            "host=db.example.com",
            "--param",
            "pool_max=40",
            "--commit",
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(cli(&["set", "db", "env/dev", "pool.max_size=7"]).code, 0);
        let x = cli(&[
            "explain",
            "db",
            "pool.max_size",
            "-c",
            "env=dev,region=eu",
            "-o",
            "json",
        ]);
        assert_eq!(x.code, 0, "{}", x.stderr);
        let x: Value = serde_json::from_str(&x.stdout).unwrap();
        let dev = &x["entries"][0];
        assert_eq!(dev["layer"], "env/dev");
        assert_eq!(dev["value"], 7);
        assert_eq!(dev["origin"]["template"], "postgres-client@2", "{x}");
        assert_eq!(dev["origin"]["generator"], "pool-by-env", "{x}");
        assert_eq!(dev["origin"]["template_value"], 10, "{x}");
        assert_eq!(dev["origin"]["overridden"], true, "{x}");
        let defaults = &x["entries"][1];
        assert_eq!(defaults["origin"]["template_value"], 40, "{x}");
        assert_eq!(defaults["origin"]["overridden"], false, "{x}");
        assert!(defaults["origin"].get("generator").is_none(), "{x}");
        // The regional primary, computed per env and region.
        let x = cli(&["explain", "db", "postgres.host", "-c", "env=prod,region=us"]);
        assert_eq!(x.code, 0, "{}", x.stderr);
        assert!(
            x.stdout.contains("prod-us.db.example.com")
                && x.stdout
                    .contains("from postgres-client@2, generator regional-primary"),
            "{}",
            x.stdout
        );
    }
    // A namespace made without a template explains as before.
    assert_eq!(
        local(&["ns", "create", "plain", "--level", "defaults"]).code,
        0
    );
    assert_eq!(local(&["set", "plain", "defaults", "a=1"]).code, 0);
    let x = local(&["explain", "plain", "a"]);
    assert_eq!(x.code, 0, "{}", x.stderr);
    assert!(!x.stdout.contains("ORIGIN"), "{}", x.stdout);
}

/// A user template: stored after its check (its render with the defaults
/// validated over its matrix), listed beside the library, applied like a
/// shipped one — on the embedded store and over gRPC; a version is never
/// replaced, and one that does not check is refused naming the rule.
#[test]
fn user_templates_are_checked_stored_and_applied() {
    let server = Server::start();
    let remote = remote_as(&server, &server.token);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").to_str().unwrap().to_owned();
    let local = |args: &[&str]| {
        let mut all = vec!["--data-dir", data.as_str()];
        all.extend_from_slice(args);
        run(&all)
    };
    let good = include_str!("fixtures/worker-template.toml");
    let tdir = dir.path().join("worker");
    std::fs::create_dir_all(&tdir).unwrap();
    std::fs::write(tdir.join("template.toml"), good).unwrap();
    let tdir = tdir.to_str().unwrap().to_owned();
    // Version 2 drops production's headroom: its own rule refuses it.
    let bad = dir.path().join("worker-2.toml");
    std::fs::write(
        &bad,
        good.replace("version = 1", "version = 2")
            .replace("base * 4", "1"),
    )
    .unwrap();
    let bad = bad.to_str().unwrap().to_owned();
    // Named like a shipped template.
    let clash = dir.path().join("tls.toml");
    std::fs::write(&clash, good.replace("name = \"worker\"", "name = \"tls\"")).unwrap();
    let clash = clash.to_str().unwrap().to_owned();

    for cli in [&local as &dyn Fn(&[&str]) -> Run, &remote] {
        let dry = cli(&["template", "put", "-f", &tdir]);
        assert_eq!(dry.code, 0, "{}", dry.stderr);
        assert!(dry.stderr.contains("checks clean"), "{}", dry.stderr);
        assert!(!cli(&["template", "list"]).stdout.contains("worker"));
        let put = cli(&["template", "put", "-f", &tdir, "--commit"]);
        assert_eq!(put.code, 0, "{}", put.stderr);
        let again = cli(&["template", "put", "-f", &tdir, "--commit"]);
        assert_eq!(again.code, 3, "{}", again.stderr);
        assert!(again.stderr.contains("never replaced"), "{}", again.stderr);
        let refused = cli(&["template", "put", "-f", &bad, "--commit"]);
        assert_eq!(refused.code, 6, "{}", refused.stderr);
        assert!(
            refused.stderr.contains("worker/2") && refused.stderr.contains("prod-has-headroom"),
            "{}",
            refused.stderr
        );
        let clash = cli(&["template", "put", "-f", &clash]);
        assert_ne!(clash.code, 0);
        assert!(
            clash.stderr.contains("library shipped in the binary"),
            "{}",
            clash.stderr
        );

        let list = cli(&["template", "list", "-o", "json"]);
        let list: Value = serde_json::from_str(&list.stdout).unwrap();
        let mine: Vec<&Value> = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["name"] == "worker")
            .collect();
        assert_eq!(mine.len(), 1, "{list}");
        assert_eq!(
            (&mine[0]["version"], &mine[0]["source"]),
            (&json!(1), &json!("user"))
        );
        assert!(
            cli(&["template", "show", "worker"])
                .stdout
                .contains("concurrency-by-env")
        );
        // The schema library is part of the catalogue.
        let schemas = cli(&["template", "list", "--kind", "schema", "-o", "json"]);
        let schemas: Value = serde_json::from_str(&schemas.stdout).unwrap();
        let names: Vec<&str> = schemas
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"confstrata:port") && !names.contains(&"worker"),
            "{names:?}"
        );
        let all = cli(&["template", "list", "--kind", "all"]).stdout;
        assert!(
            all.contains("confstrata:port") && all.contains("worker"),
            "{all}"
        );

        let apply = cli(&[
            "template",
            "apply",
            "worker",
            "jobs",
            "--param",
            "base_concurrency=3",
            "--commit",
        ]);
        assert_eq!(apply.code, 0, "{}", apply.stderr);
        let prod = cli(&["resolve", "jobs", "-c", "env=prod", "-o", "json"]);
        let prod: Value = serde_json::from_str(&prod.stdout).unwrap();
        assert_eq!(prod["concurrency"], 12, "{prod}");
        assert_eq!(prod["queue"], "jobs");
        let x = cli(&["explain", "jobs", "concurrency", "-c", "env=dev"]);
        assert!(
            x.stdout
                .contains("from worker@1, generator concurrency-by-env"),
            "{}",
            x.stdout
        );
        let d = cli(&["template", "diff", "jobs", "-o", "json"]);
        assert_eq!(d.code, 0, "{}", d.stderr);
        let d: Value = serde_json::from_str(&d.stdout).unwrap();
        assert_eq!(d["overrides"], json!([]), "{d}");
    }
}

/// A generator reads other namespaces with the caller's grants and never
/// sees a secret; a caller who may not read what a generator reads is
/// refused as a read; a caller who may not read `_templates` sees the
/// library; a stored version cannot be changed or deleted behind `put`.
#[test]
fn generators_never_copy_secrets_and_reads_follow_grants() {
    let server = Server::start();
    let as_ = |token: &str, args: &[&str]| remote_as(&server, token)(args);
    let admin = |args: &[&str]| {
        let r = as_(&server.token, args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        r
    };
    admin(&["ns", "create", "platform", "--level", "defaults"]);
    admin(&["set", "platform", "defaults", "queue.max_consumers=12"]);
    admin(&[
        "set",
        "--secret",
        "platform",
        "defaults",
        "queue.password=canary-tpl-1",
    ]);
    // Templates whose generator reads the platform: one copies the secret.
    let dir = tempfile::tempdir().unwrap();
    let reader = |name: &str, copy: &str| {
        let generator = format!(
            "[[generators]]\nid = \"from-platform\"\nlevel = \"defaults\"\nreads = [\"platform\"]\nscript = '''\nlet q = config(\"platform\").queue;\n#{{ max_consumers: q.max_consumers{copy} }}\n'''\n\n[[generators]]\nid = \"concurrency-by-env\""
        );
        let text = include_str!("fixtures/worker-template.toml")
            .replace("name = \"worker\"", &format!("name = \"{name}\""))
            .replace("[[generators]]\nid = \"concurrency-by-env\"", &generator);
        let file = dir.path().join(format!("{name}.toml"));
        std::fs::write(&file, text).unwrap();
        admin(&["template", "put", "-f", file.to_str().unwrap(), "--commit"]);
    };
    reader("reader", "");
    reader("copier", ", copied: q.password");
    admin(&["template", "apply", "reader", "svc", "--commit"]);
    let got = admin(&["get", "svc", "defaults", "-o", "json"]).stdout;
    let got: Value = serde_json::from_str(&got).unwrap();
    assert_eq!(got["max_consumers"], 12, "{got}");
    // The generator sees the mask, never the secret, and a layer cannot
    // hold the mask: the copy is refused and nothing is created.
    let copied = as_(
        &server.token,
        &["template", "apply", "copier", "svc2", "--commit"],
    );
    assert_ne!(copied.code, 0);
    assert!(
        copied.stderr.contains("copied") && copied.stderr.contains("mask of a secret"),
        "{}",
        copied.stderr
    );
    assert!(!copied.stderr.contains("canary-tpl-1"));
    assert_eq!(as_(&server.token, &["layers", "svc2"]).code, 4);
    let audit = admin(&["audit", "export"]).stdout;
    assert!(!audit.contains("canary-tpl-1"));

    // A viewer of one namespace only: the catalogue is the library, and a
    // template that reads the platform is refused as a read (exit 5).
    admin(&["ns", "create", "mine", "--level", "defaults"]);
    admin(&["principal", "add", "ed"]);
    admin(&["principal", "grant", "ed", "editor", "--on", "mine"]);
    admin(&["principal", "grant", "ed", "editor", "--on", "mine2"]);
    let ed = admin(&["token", "issue", "ed"]).stdout.trim().to_owned();
    let list = as_(&ed, &["template", "list"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(
        list.stdout.contains("http-service") && !list.stdout.contains("reader"),
        "{}",
        list.stdout
    );
    let shown = as_(&ed, &["template", "show", "nope"]);
    assert_eq!(shown.code, 4, "{}", shown.stderr);
    let fine = as_(&ed, &["template", "apply", "http-service", "mine2"]);
    assert_eq!(
        fine.code, 0,
        "a template that reads nothing: {}",
        fine.stderr
    );
    admin(&["principal", "grant", "ed", "viewer", "--on", "_templates"]);
    assert!(as_(&ed, &["template", "list"]).stdout.contains("reader"));
    let refused = as_(&ed, &["template", "apply", "reader", "mine2"]);
    assert_eq!(refused.code, 5, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("permission denied") && refused.stderr.contains("platform"),
        "{}",
        refused.stderr
    );

    // A stored version is never changed or deleted, whatever the path.
    let set = as_(
        &server.token,
        &["set", "_templates", "reader/1", "description=changed"],
    );
    assert_eq!(set.code, 6, "{}", set.stderr);
    assert!(
        set.stderr.contains("never changed or deleted"),
        "{}",
        set.stderr
    );
    let del = as_(&server.token, &["delete", "_templates", "reader/1"]);
    assert_eq!(del.code, 6, "{}", del.stderr);
    assert!(admin(&["template", "list"]).stdout.contains("reader"));
}

/// A secret parameter: sealed in the store (a `set --secret`, not the
/// layer's put), recorded and shown as the mask, never in a dry run, the
/// audit log or the declaration; explain and diff do not call it an
/// override.
#[test]
fn a_secret_parameter_is_sealed_and_never_shown() {
    let server = Server::start();
    let remote = remote_as(&server, &server.token);
    let ok = |args: &[&str]| {
        let r = remote(args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        r
    };
    let secret = "canary-tpl-secret-99";
    let text = include_str!("fixtures/worker-template.toml")
        .replace("name = \"worker\"", "name = \"queue-client\"")
        .replace(
            "[namespace]",
            "properties.password = { type = \"string\", minLength = 12, \"x-secret\" = true, description = \"The queue's password\" }\nrequired = [\"password\"]\n\n[namespace]",
        )
        .replace("max_retries = 5", "max_retries = 5\nauth.password = { \"$param\" = \"password\" }");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("queue-client.toml");
    std::fs::write(&file, text).unwrap();
    ok(&["template", "put", "-f", file.to_str().unwrap(), "--commit"]);
    let param = format!("password={secret}");
    let dry = remote(&["template", "apply", "queue-client", "q", "--param", &param]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let dry_json = remote(&[
        "template",
        "apply",
        "queue-client",
        "q",
        "--param",
        &param,
        "-o",
        "json",
    ]);
    for shown in [&dry.stdout, &dry.stderr, &dry_json.stdout] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(dry_json.stdout.contains("<sealed>"), "{}", dry_json.stdout);
    let short = remote(&[
        "template",
        "apply",
        "queue-client",
        "q",
        "--param",
        "password=short",
    ]);
    assert_ne!(short.code, 0);
    assert!(
        short.stderr.contains("parameter password"),
        "{}",
        short.stderr
    );
    ok(&[
        "template",
        "apply",
        "queue-client",
        "q",
        "--param",
        &param,
        "--commit",
    ]);

    // Sealed in the store: opened for the admin, counted as sealed.
    let got: Value =
        serde_json::from_str(&ok(&["get", "q", "defaults", "-o", "json"]).stdout).unwrap();
    assert_eq!(got["auth"]["password"], secret, "{got}");
    let layers: Value = serde_json::from_str(&ok(&["layers", "q", "-o", "json"]).stdout).unwrap();
    let defaults = layers
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["layer"] == "defaults")
        .unwrap()
        .clone();
    assert_eq!(
        defaults["sealed_keys"],
        json!(["auth.password"]),
        "{defaults}"
    );
    // Never in the declaration, the audit log, or the diff.
    let declared = ok(&["ns", "show", "q", "-o", "json"]).stdout;
    assert!(
        !declared.contains(secret) && declared.contains("<sealed>"),
        "{declared}"
    );
    assert!(!ok(&["audit", "export"]).stdout.contains(secret));
    let d: Value =
        serde_json::from_str(&ok(&["template", "diff", "q", "-o", "json"]).stdout).unwrap();
    assert_eq!(d["overrides"], json!([]), "{d}");
    let x: Value = serde_json::from_str(
        &ok(&[
            "explain",
            "q",
            "auth.password",
            "-c",
            "env=dev",
            "-o",
            "json",
        ])
        .stdout,
    )
    .unwrap();
    assert_eq!(x["entries"][0]["origin"]["overridden"], false, "{x}");
    assert_eq!(
        x["entries"][0]["origin"]["template_value"], "<sealed>",
        "{x}"
    );
}
