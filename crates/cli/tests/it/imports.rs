//! Shared namespaces imported as an importer's lowest layers, from the
//! CLI: declared with `ns create --import`, shown by `ns show`, named in
//! `resolve --provenance` and `explain`; bad imports refused, naming them.

use crate::Env;

fn shared(env: &Env) {
    env.ok(&[
        "ns",
        "create",
        "shared/logging",
        "--level",
        "defaults",
        "--level",
        "env/{env}",
        "--matrix",
        "env=dev,prod",
    ]);
    env.ok(&[
        "set",
        "shared/logging",
        "defaults",
        "log.level=info",
        "log.format=json",
    ]);
    env.ok(&["set", "shared/logging", "env/prod", "log.level=warn"]);
    env.ok(&[
        "ns",
        "create",
        "web",
        "--level",
        "defaults",
        "--level",
        "env/{env}/region/{region}",
        "--matrix",
        "env=dev,qa,prod",
        "--matrix",
        "region=eu,us",
        "--import",
        "shared/logging",
    ]);
    env.ok(&["set", "web", "defaults", "port=8080", "log.format=text"]);
}

#[test]
fn an_importer_resolves_over_its_imports_and_names_them() {
    let env = Env::new();
    shared(&env);
    let v = env
        .ok(&[
            "resolve",
            "web",
            "-c",
            "env=prod,region=eu",
            "--provenance",
            "-o",
            "json",
        ])
        .json();
    assert_eq!(
        v["document"],
        serde_json::json!({"port": 8080, "log": {"level": "warn", "format": "text"}})
    );
    assert_eq!(
        v["provenance"]["log.level"],
        serde_json::json!({"namespace": "shared/logging", "layer": "env/prod", "revision": 3})
    );
    assert_eq!(
        v["provenance"]["log.format"]["namespace"],
        serde_json::Value::Null
    );
    let table = env
        .ok(&["resolve", "web", "-c", "env=prod,region=eu", "--provenance"])
        .stdout;
    assert!(table.contains("shared/logging:env/prod"), "{table}");
    // qa is outside the import's matrix: only its defaults apply there.
    let v = env
        .ok(&["resolve", "web", "-c", "env=qa,region=eu", "-o", "json"])
        .json();
    assert_eq!(v["log"]["level"], "info");
    let table = env
        .ok(&["explain", "web", "log.format", "-c", "env=prod,region=eu"])
        .stdout;
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert!(
        rows[0].starts_with("defaults") && rows[0].contains("<- wins"),
        "{table}"
    );
    assert!(rows[1].starts_with("shared/logging:defaults"), "{table}");
    let shown = env.ok(&["ns", "show", "web"]).stdout;
    assert!(
        shown.contains("imports") && shown.contains("shared/logging"),
        "{shown}"
    );
}

#[test]
fn bad_imports_are_refused_naming_them() {
    let env = Env::new();
    shared(&env);
    env.fails(
        &[
            "ns",
            "create",
            "api",
            "--level",
            "defaults",
            "--import",
            "shared/tls",
        ],
        1,
        "api imports shared/tls, which does not exist",
    );
    env.fails(
        &[
            "ns", "create", "api", "--level", "defaults", "--import", "api",
        ],
        1,
        "it imports itself",
    );
    env.fails(
        &[
            "ns", "create", "api", "--level", "defaults", "--import", "web", "--import", "web",
        ],
        1,
        "it imports web twice",
    );
    env.fails(
        &[
            "ns",
            "create",
            "shared/logging",
            "--level",
            "defaults",
            "--replace",
            "--import",
            "web",
        ],
        1,
        "cycle: shared/logging -> web -> shared/logging",
    );
    env.fails(
        &[
            "ns", "create", "api", "--level", "defaults", "--import", "no//name",
        ],
        1,
        "no//name",
    );
    insta::assert_snapshot!(env.transcript());
}

#[test]
fn a_namespace_is_deleted_unless_imported() {
    let env = Env::new();
    shared(&env);
    env.fails(
        &["ns", "delete", "shared/logging"],
        1,
        "namespace web imports it; remove the import from web first",
    );
    env.fails(&["ns", "delete", "nope"], 4, "namespace \"nope\" not found");
    env.fails(
        &["ns", "delete", "web", "--expect-revision", "1"],
        3,
        "namespace web",
    );
    let r = env
        .ok(&["ns", "delete", "web", "-m", "retire web", "-o", "json"])
        .json();
    let rev = r["revision"].as_u64().unwrap();
    env.fails(
        &["resolve", "web", "-c", "env=prod,region=eu"],
        4,
        "namespace \"web\" not found",
    );
    // As it was before, it still resolves.
    let before = (rev - 1).to_string();
    let v = env
        .ok(&[
            "resolve",
            "web",
            "-c",
            "env=prod,region=eu",
            "--at",
            &before,
            "-o",
            "json",
        ])
        .json();
    assert_eq!(v["port"], 8080);
    env.ok(&["ns", "delete", "shared/logging", "--expect-revision", "1"]);
    let list = env.ok(&["ns", "list", "-o", "json"]).json();
    assert_eq!(list, serde_json::json!([]));
    // Its history stays: the deletion is its newest version.
    let history = env.ok(&["history", "web", "-o", "json"]).json();
    let newest = &history.as_array().unwrap()[0];
    assert_eq!(newest["message"], "retire web", "{history}");
    assert_eq!(newest["document"], serde_json::Value::Null, "{history}");
    // Rollback brings both back whole: the import first (the importer
    // names it while it is missing), one layer alone refused.
    env.fails(
        &["rollback", "web", "defaults", "--to", &before],
        1,
        "roll back the whole namespace",
    );
    env.fails(&["rollback", "web", "--to", &before], 1, "shared/logging");
    env.ok(&["rollback", "shared/logging", "--to", &before]);
    env.ok(&["rollback", "web", "--to", &before]);
    let v = env
        .ok(&["resolve", "web", "-c", "env=prod,region=eu", "-o", "json"])
        .json();
    assert_eq!(v["port"], 8080);
    assert_eq!(v["log"]["level"], "warn", "{v}");
}

/// The postgres-client template's pool rule reads the server's
/// max_connections from an imported platform namespace: importing one
/// that admits fewer connections than the pool is refused, and so is
/// lowering the platform's value below an importer's pool.
#[test]
fn a_pool_is_held_to_the_max_connections_of_an_imported_platform() {
    let env = Env::new();
    env.ok(&[
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
    env.ok(&["ns", "create", "platform/postgres", "--level", "defaults"]);
    env.ok(&[
        "set",
        "platform/postgres",
        "defaults",
        "postgres_server.max_connections=30",
    ]);
    let mut spec = env.ok(&["ns", "show", "db", "-o", "json"]).json()["spec"].clone();
    spec["imports"] = serde_json::json!(["platform/postgres"]);
    let file = env.write("db.json", spec.to_string().as_bytes());
    // A refusal lists every finding, one per line, and changes nothing.
    let refused = |args: &[&str], needles: &[&str]| {
        let before = env.snapshot();
        let r = env.run(args);
        assert_eq!(r.code, 6, "{args:?}: {}", r.stderr);
        for n in needles {
            assert!(r.stderr.contains(n), "{args:?}: {} lacks {n:?}", r.stderr);
        }
        assert_eq!(env.snapshot(), before, "{args:?} changed the store");
    };
    refused(
        &["ns", "create", "-f", &file, "--replace"],
        &[
            "[rule pool-within-server] db env=prod,region=eu pool.max_size",
            "the server admits 30",
        ],
    );
    env.ok(&[
        "set",
        "platform/postgres",
        "defaults",
        "postgres_server.max_connections=100",
    ]);
    env.ok(&["ns", "create", "-f", &file, "--replace"]);
    refused(
        &[
            "set",
            "platform/postgres",
            "defaults",
            "postgres_server.max_connections=20",
        ],
        &[
            "[rule pool-within-server] db env=prod,region=us",
            "the server admits 20",
        ],
    );
}

/// `template apply --import` makes the new namespace an importer at
/// once: its rules validate it over the import before it is created, the
/// declaration records the import, `template diff` does not count it as
/// a change of the declaration, and a server applies it the same way.
#[test]
fn a_template_is_applied_with_imports() {
    let env = Env::new();
    env.ok(&["ns", "create", "platform/postgres", "--level", "defaults"]);
    env.ok(&[
        "set",
        "platform/postgres",
        "defaults",
        "postgres_server.max_connections=30",
    ]);
    let apply = |ns: &str, import: &str| {
        vec![
            "template".to_owned(),
            "apply".into(),
            "postgres-client".into(),
            ns.into(),
            "--param".into(),
            "host=db.example.com".into(),
            "--param".into(),
            "pool_max=40".into(),
            "--import".into(),
            import.into(),
            "--commit".into(),
        ]
    };
    let args = apply("db", "platform/postgres");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = env.run(&args);
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(
        r.stderr.contains("[rule pool-within-server] db env=prod"),
        "{}",
        r.stderr
    );
    let missing = apply("db", "platform/nope");
    let missing: Vec<&str> = missing.iter().map(String::as_str).collect();
    env.fails(&missing, 1, "platform/nope");
    let bad = apply("db", "Not A Name");
    let bad: Vec<&str> = bad.iter().map(String::as_str).collect();
    env.fails(&bad, 1, "Not A Name");
    let own = apply("db", "db");
    let own: Vec<&str> = own.iter().map(String::as_str).collect();
    env.fails(&own, 1, "imports itself");

    env.ok(&[
        "set",
        "platform/postgres",
        "defaults",
        "postgres_server.max_connections=100",
    ]);
    env.ok(&args);
    let spec = env.ok(&["ns", "show", "db", "-o", "json"]).json()["spec"].clone();
    assert_eq!(spec["imports"], serde_json::json!(["platform/postgres"]));
    assert_eq!(spec["template"]["name"], "postgres-client");
    let d = env.ok(&["template", "diff", "db", "-o", "json"]).json();
    assert_eq!(d["declaration_changed"], false, "{d}");
    let v = env
        .ok(&[
            "resolve",
            "db",
            "-c",
            "env=prod,region=eu",
            "--provenance",
            "-o",
            "json",
        ])
        .json();
    assert_eq!(
        v["provenance"]["postgres_server.max_connections"]["namespace"], "platform/postgres",
        "{v}"
    );

    // Over gRPC: the same request, the same refusal and the same result.
    let server = crate::remote::Server::start();
    let remote = crate::template::remote_as(&server, &server.token);
    let r = remote(&["ns", "create", "platform/postgres", "--level", "defaults"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = remote(&[
        "set",
        "platform/postgres",
        "defaults",
        "postgres_server.max_connections=30",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(remote(&args).code, 6);
    let r = remote(&[
        "set",
        "platform/postgres",
        "defaults",
        "postgres_server.max_connections=100",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = remote(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let spec: serde_json::Value =
        serde_json::from_str(&remote(&["ns", "show", "db", "-o", "json"]).stdout).unwrap();
    assert_eq!(
        spec["spec"]["imports"],
        serde_json::json!(["platform/postgres"])
    );
}
