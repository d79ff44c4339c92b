//! Access control as a team uses it, through the binary: custom roles,
//! groups, roles granted within a scope, `auth can-i` naming the deciding
//! grant, `principal show`; then the same policy enforced by a server on
//! the callers' own tokens; and the bad inputs.

use std::process::{Command, Stdio};

use super::remote::Server;
use super::{Env, Run, to_run};

/// Two namespaces with defaults, staging and prod layers.
const SETUP: &str = r#"
message = "two team namespaces"

[[ops]]
op = "put-namespace"
spec = { name = "payments", levels = ["defaults", "env/{env}"], matrix = { env = ["staging", "prod"] } }

[[ops]]
op = "put-namespace"
spec = { name = "orders", levels = ["defaults", "env/{env}"], matrix = { env = ["staging", "prod"] } }

[[ops]]
op = "put"
namespace = "payments"
layer = "defaults"
document = { db = { host = "localhost", pool = 5 }, port = 8080 }

[[ops]]
op = "put"
namespace = "payments"
layer = "env/prod"
document = { db = { host = "db.prod" } }

[[ops]]
op = "put"
namespace = "orders"
layer = "defaults"
document = { port = 9090 }
"#;

/// The team's policy, made with the commands a platform admin runs.
fn team(run: &dyn Fn(&[&str]) -> Run) {
    let ok = |args: &[&str]| {
        let r = run(args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        r
    };
    ok(&["principal", "add", "ed", "--name", "Ed, payments team"]);
    ok(&["principal", "add", "billing-svc", "--service"]);
    ok(&["principal", "add", "audra"]);
    ok(&[
        "group",
        "create",
        "payments-team",
        "--description",
        "the payments team",
    ]);
    ok(&["group", "add-member", "payments-team", "ed"]);
    ok(&[
        "group",
        "grant",
        "payments-team",
        "non-prod-editor",
        "--on",
        "payments/**",
    ]);
    ok(&[
        "role",
        "create",
        "db-reader",
        "--description",
        "the db section, no password",
        "--allow",
        "read=**#db",
        "--deny",
        "read,read-secrets=**#db.password",
    ]);
    ok(&[
        "principal",
        "grant",
        "billing-svc",
        "db-reader",
        "--on",
        "payments",
    ]);
    ok(&["principal", "grant", "audra", "auditor"]);
}

#[test]
fn a_team_policy_is_built_asked_and_shown() {
    let env = Env::new();
    let setup = env.write("setup.toml", SETUP.as_bytes());
    env.ok(&["apply", "-f", &setup]);
    team(&|args| env.run(args));

    // Ask the policy: yes (exit 0) and the grant that allows.
    let r = env.ok(&["auth", "can-i", "ed", "write", "payments:env/staging"]);
    assert_eq!(
        r.stdout,
        "yes\nallowed by allow read,write on ** (role non-prod-editor grant 0, bound on payments/**, through group payments-team)\n"
    );
    // No (exit 1): the deny that refuses, or no grant at all.
    let r = env.run(&["auth", "can-i", "ed", "write", "payments:env/prod"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "no\nrefused by deny write,publish on **:env/prod/** (role non-prod-editor grant 1, bound on payments/**, through group payments-team); a deny wins over every allow\n"
    );
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    let r = env.run(&["auth", "can-i", "ed", "write", "orders:env/staging"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (
            1,
            "no\nrefused by default: no grant of ed allows write on all of orders:env/staging\n"
        )
    );
    let j = env
        .ok(&[
            "auth",
            "can-i",
            "billing-svc",
            "read",
            "payments#db.host",
            "-o",
            "json",
        ])
        .json();
    assert_eq!(j["allowed"], true);
    assert_eq!(j["deciding"]["role"], "db-reader");
    assert_eq!(j["deciding"]["scope"], "payments");
    let j = env.run(&[
        "auth",
        "can-i",
        "billing-svc",
        "read",
        "payments#db.password",
        "-o",
        "json",
    ]);
    assert_eq!(j.code, 1);
    assert_eq!(j.json()["deciding"]["grant"]["effect"], "deny");
    let r = env.run(&["auth", "can-i", "billing-svc", "read", "orders#db"]);
    assert_eq!(r.code, 1, "the scope keeps db-reader inside payments");

    // What ed may do, through its group.
    let show = env.ok(&["principal", "show", "ed"]).stdout;
    assert_eq!(
        show,
        "principal ed (user)\n\
         name:   Ed, payments team\n\
         roles:  (none)\n\
         groups: payments-team\n\
         tokens: 0\n\
         effective grants (a deny wins over every allow):\n  \
         deny write,publish on **:env/prod/** (role non-prod-editor grant 1, bound on payments/**, through group payments-team)\n  \
         allow read,write on ** (role non-prod-editor grant 0, bound on payments/**, through group payments-team)\n"
    );
    let list = env.ok(&["principal", "list"]).stdout;
    assert!(list.contains("db-reader on payments"), "{list}");
    let groups = env.ok(&["group", "list", "-o", "json"]).json();
    assert_eq!(groups[0]["name"], "payments-team");
    assert_eq!(groups[0]["members"][0], "ed");
    assert_eq!(
        groups[0]["roles"][0],
        serde_json::json!({"role": "non-prod-editor", "on": "payments/**"})
    );
    let role = env.ok(&["role", "show", "db-reader", "-o", "json"]).json();
    assert_eq!(role["builtin"], false);
    assert_eq!(role["grants"][1]["effect"], "deny");

    // Leaving the group takes the access away at once.
    env.ok(&["group", "remove-member", "payments-team", "ed"]);
    assert_eq!(
        env.run(&["auth", "can-i", "ed", "write", "payments:env/staging"])
            .code,
        1
    );
    // A role in use cannot be deleted; once nobody holds it, it can.
    env.fails(
        &["role", "delete", "db-reader"],
        1,
        "role \"db-reader\" is still held by principal \"billing-svc\"; take it away first",
    );
    env.ok(&[
        "principal",
        "ungrant",
        "billing-svc",
        "db-reader",
        "--on",
        "payments",
    ]);
    env.ok(&["role", "delete", "db-reader"]);
    // Every change was audited.
    let audit = env.ok(&["audit", "list", "-o", "json"]).json();
    let ops: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["details"]["operation"]["text"].as_str())
        .collect();
    for op in [
        "group create",
        "group members",
        "role grant",
        "role create",
        "role revoke",
        "role delete",
    ] {
        assert!(ops.contains(&op), "{op} not audited: {ops:?}");
    }
    env.ok(&["audit", "verify"]);
}

#[test]
fn bad_access_input_is_refused_naming_what_and_where() {
    let env = Env::new();
    team(&|args| env.run(args));
    let fails = |args: &[&str], needle: &str| {
        let r = env.run(args);
        assert_eq!(r.code, 1, "{args:?}: {} {}", r.stdout, r.stderr);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
    };
    fails(
        &["auth", "can-i", "ed", "fly", "payments"],
        "unknown action \"fly\"",
    );
    fails(
        &["role", "create", "r1", "--allow", "read,fly=payments"],
        "grants[0].actions",
    );
    fails(
        &["role", "create", "r1", "--allow", "readpayments"],
        "write ACTIONS=PATTERN",
    );
    fails(
        &["role", "create", "r1"],
        "give at least one --allow or --deny",
    );
    fails(
        &["role", "update", "viewer", "--allow", "read=**"],
        "role \"viewer\" is built in",
    );
    fails(&["role", "delete", "admin"], "role \"admin\" is built in");
    fails(
        &["role", "create", "non-prod-editor", "--allow", "read=**"],
        "role \"non-prod-editor\" already exists",
    );
    fails(
        &["group", "add-member", "payments-team", "ghost"],
        "principal \"ghost\" does not exist",
    );
    fails(
        &["group", "grant", "nobody", "viewer"],
        "group \"nobody\" does not exist",
    );
    fails(
        &["principal", "ungrant", "ed", "viewer"],
        "principal ed does not hold viewer; it holds no binding of that role",
    );
    // Every traversal encoding in a pattern, in a scope and in a grant.
    for bad in [
        "payments/../orders",
        "payments/%2e%2e/orders",
        "payments/..%2forders",
        "payments%2f..%2forders",
        "payments\\..\\orders",
        "./payments",
        "payments/./x",
        "/payments",
        "payments/",
        "payments//orders",
        "payments/\u{2025}/orders",
        "payments/\u{ff0e}\u{ff0e}/orders",
        "payments:env/../prod",
        "payments:env/%2e%2e/prod",
        "payments#db..password",
        "payments#../db",
        "",
    ] {
        fails(
            &["principal", "grant", "ed", "viewer", "--on", bad],
            "invalid resource pattern",
        );
        fails(
            &["role", "create", "r2", "--allow", &format!("read={bad}")],
            "grants[0].on",
        );
        let r = env.run(&["auth", "can-i", "ed", "read", bad]);
        assert_eq!(r.code, 1, "{bad:?}");
        assert!(
            r.stderr.contains("invalid resource"),
            "{bad:?}: {}",
            r.stderr
        );
    }
    // Nothing of it landed.
    let roles = env.ok(&["role", "list", "-o", "json"]).json();
    assert_eq!(roles.as_array().unwrap().len(), 9, "{roles}");
    let ed = env.ok(&["principal", "show", "ed", "-o", "json"]).json();
    assert_eq!(ed["principal"]["roles"], serde_json::json!([]));
}

/// Runs the binary against `server` with `token`.
fn remote(server: &Server, token: &str, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_confstrata"))
        .arg("--addr")
        .arg(&server.addr)
        .args(args)
        .env("CONFSTRATA_TOKEN", token)
        .env_remove("CONFSTRATA_DATA_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    to_run(out)
}

#[test]
fn a_server_enforces_the_team_policy_on_its_callers() {
    let server = Server::start();
    let admin = |args: &[&str]| remote(&server, &server.token, args);
    let cwd = tempfile::tempdir().unwrap();
    let setup = cwd.path().join("setup.toml");
    std::fs::write(&setup, SETUP).unwrap();
    let r = admin(&["apply", "-f", setup.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    team(&admin);
    let issue = |who: &str| {
        let r = admin(&["token", "issue", who]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stdout.trim().to_owned()
    };
    let (ed, svc) = (issue("ed"), issue("billing-svc"));
    let as_ed = |args: &[&str]| remote(&server, &ed, args);

    // The team editor changes staging, and only staging of payments.
    let r = as_ed(&["set", "payments", "env/staging", "db.pool=7"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = as_ed(&["set", "payments", "env/prod", "db.pool=7"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(
        r.stderr.contains("may not write payments:env/prod"),
        "{}",
        r.stderr
    );
    let r = as_ed(&["set", "orders", "env/staging", "port=1"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    // It may ask about itself, not about others.
    assert_eq!(
        as_ed(&["auth", "can-i", "ed", "write", "payments:env/staging"]).code,
        0
    );
    let r = as_ed(&["auth", "can-i", "audra", "audit", "**"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    // It cannot give itself more, scoped or not.
    for args in [
        &["principal", "grant", "ed", "admin", "--on", "payments/**"][..],
        &["principal", "grant", "ed", "admin"],
        &[
            "group",
            "grant",
            "payments-team",
            "admin",
            "--on",
            "payments",
        ],
        &["role", "create", "mine", "--allow", "admin=payments/**"],
        &["group", "add-member", "payments-team", "billing-svc"],
    ] {
        let r = as_ed(args);
        assert_eq!(r.code, 5, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("may not admin **"),
            "{args:?}: {}",
            r.stderr
        );
    }
    assert_eq!(as_ed(&["policy", "export"]).code, 5);
    // The policy over the wire: exported, and a file that matches changes nothing.
    let exported = admin(&["policy", "export"]);
    assert_eq!(exported.code, 0, "{}", exported.stderr);
    assert!(
        exported.stdout.contains("name = \"payments-team\""),
        "{}",
        exported.stdout
    );
    let file = cwd.path().join("policy.toml");
    std::fs::write(&file, &exported.stdout).unwrap();
    let r = admin(&["policy", "apply", "-f", file.to_str().unwrap()]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (
            0,
            "the policy already matches the file; nothing to change\n"
        ),
        "{}",
        r.stderr
    );
    let r = as_ed(&["policy", "apply", "-f", file.to_str().unwrap()]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    let show = admin(&["principal", "show", "ed", "-o", "json"]).json();
    assert_eq!(show["effective"].as_array().unwrap().len(), 2, "{show}");

    // The service may read its db section, and asks so itself; a whole
    // layer holds more than that, so reading all of it is refused.
    let r = remote(
        &server,
        &svc,
        &[
            "auth",
            "can-i",
            "billing-svc",
            "read",
            "payments:defaults#db.pool",
        ],
    );
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let r = remote(&server, &svc, &["get", "payments", "defaults"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    // It resolves payments and gets its db section only (no password:
    // db-reader denies it), told that the answer is partial.
    let r = remote(
        &server,
        &svc,
        &["resolve", "payments", "-c", "env=prod", "-o", "json"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.json(),
        serde_json::json!({"db": {"host": "db.prod", "pool": 5}})
    );
    assert!(r.stderr.contains("partial"), "{}", r.stderr);
    let r = remote(&server, &svc, &["resolve", "orders", "-c", "env=prod"]);
    assert_eq!(r.code, 5, "nothing of orders: {}", r.stderr);
    server.stop();
}

#[test]
fn the_policy_round_trips_through_a_file_with_a_diff_first() {
    let env = Env::new();
    env.ok(&["principal", "add", "root", "--role", "admin"]);
    team(&|args| env.run(args));
    env.ok(&["token", "issue", "ed"]);
    let before = env.ok(&["principal", "list", "-o", "json"]).json();

    // Exported, then applied unchanged: nothing to do.
    for (file, fmt) in [("p.toml", "toml"), ("p.yaml", "yaml"), ("p.json", "json")] {
        env.ok(&["policy", "export", "-f", file]);
        let text = std::fs::read_to_string(env.dir.path().join(file)).unwrap();
        assert!(!text.contains("cst_"), "no token in a policy file: {text}");
        assert!(!text.contains("\"viewer\"\n  description"), "{fmt}");
        let r = env.ok(&["policy", "apply", "-f", file]);
        assert_eq!(
            r.stdout, "the policy already matches the file; nothing to change\n",
            "{fmt}"
        );
    }
    let text = std::fs::read_to_string(env.dir.path().join("p.toml")).unwrap();
    assert!(text.contains("name = \"db-reader\""), "{text}");
    assert!(
        !text.contains("name = \"viewer\""),
        "built-in roles stay out: {text}"
    );

    // Edited: a new principal in the team, a scope moved, a role changed.
    let edited = text
        .replace("members = [\"ed\"]", "members = [\"ed\", \"nia\"]")
        .replace("on = \"payments\"", "on = \"payments/**\"")
        .replace("on = \"**#db\"", "on = \"**#db.*\"")
        + "\n[[principals]]\nid = \"nia\"\nname = \"Nia\"\nroles = [\"viewer\"]\n";
    let path = env.write("edited.toml", edited.as_bytes());
    let changes = "\
~ role db-reader: grants +allow read on **#db.* -allow read on **#db
~ group payments-team: members +nia
~ principal billing-svc: roles +db-reader on payments/** -db-reader on payments
+ principal nia (user): roles viewer
";
    let r = env.ok(&["policy", "diff", "-f", &path]);
    assert_eq!(
        r.stdout,
        format!("{changes}4 changes; nothing applied (dry run)\n")
    );
    assert_eq!(
        env.ok(&["policy", "export"]).stdout,
        text,
        "a diff changes nothing"
    );
    let r = env.ok(&["policy", "apply", "-f", &path]);
    assert_eq!(r.stdout, format!("{changes}applied 4 changes\n"));
    assert_eq!(env.ok(&["auth", "can-i", "nia", "read", "orders"]).code, 0);
    // Tokens are kept.
    let after = env.ok(&["principal", "list", "-o", "json"]).json();
    let tokens = |v: &serde_json::Value, id: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .unwrap()["tokens"]
            .clone()
    };
    assert_eq!(tokens(&before, "ed"), tokens(&after, "ed"));
    assert_eq!(tokens(&after, "ed").as_array().unwrap().len(), 1);
    let audit = env.ok(&["audit", "list", "-o", "json"]).json();
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["details"]["operation"]["text"] == "policy apply"),
        "{audit}"
    );

    // Bad files: refused naming the place, nothing changed.
    let current = env.ok(&["policy", "export"]).stdout;
    let cases: Vec<(String, &str)> = vec![
        (
            current.replace("[[groups]]", "[[groups]]\ncolour = \"red\""),
            "groups[0].colour: unknown field `colour`",
        ),
        (
            current.replacen(
                "[[roles]]",
                "[[roles]]\nname = \"viewer\"\ngrants = []\n\n[[roles]]",
                1,
            ),
            "roles[0].name: role \"viewer\" is built in",
        ),
        (
            current.replace("id = \"nia\"", "id = \"nia2\""),
            "principal \"nia\" is not in the file",
        ),
        (
            current.replace("on = \"payments/**\"", "on = \"payments/../orders\""),
            "principals[1].roles[0].on",
        ),
        (
            current.replace("actions = [\"read\"]", "actions = [\"fly\"]"),
            "roles[0].grants[0].actions",
        ),
        (
            current.replace("roles = [\"admin\"]", "roles = [\"viewer\"]"),
            "no principal could administer the server",
        ),
        (
            current.replace("    \"nia\",\n]", "    \"ghost\",\n]"),
            "groups[0].members[1]",
        ),
        ("roles = 7\n".to_owned(), "roles: invalid type: integer `7`"),
        ("[[principals]\n".to_owned(), "line 1, column 13"),
    ];
    for (text, needle) in cases {
        let path = env.write("bad.toml", text.as_bytes());
        let r = env.run(&["policy", "apply", "-f", &path]);
        assert_eq!(r.code, 1, "{needle}: {} {}", r.stdout, r.stderr);
        assert!(r.stderr.contains(needle), "{needle}: {}", r.stderr);
        assert_eq!(env.ok(&["policy", "export"]).stdout, current, "{needle}");
    }
    // A revoked principal stays revoked.
    env.ok(&["principal", "revoke", "nia"]);
    let revoked = env.ok(&["policy", "export"]).stdout;
    assert!(revoked.contains("revoked = true"), "{revoked}");
    let path = env.write(
        "unrevoke.toml",
        revoked.replace("revoked = true\n", "").as_bytes(),
    );
    let r = env.run(&["policy", "apply", "-f", &path]);
    assert!(r.stderr.contains("cannot be restored"), "{}", r.stderr);
}

#[test]
fn the_master_key_rotates_online_and_the_store_reopens_with_the_new_key() {
    let server = Server::start();
    let admin = |args: &[&str]| {
        let r = remote(&server, &server.token, args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        r
    };
    admin(&["ns", "create", "pay", "--level", "defaults"]);
    admin(&["set", "--secret", "pay", "defaults", "db.pass=canary-mk-1"]);
    let key_file = server.data_dir().join("master.key");
    let before = std::fs::read_to_string(&key_file).unwrap();

    // Only an admin rotates it.
    admin(&["principal", "add", "vic", "--role", "viewer"]);
    let vic = admin(&["token", "issue", "vic"]).stdout.trim().to_owned();
    let r = remote(&server, &vic, &["keys", "rotate-master"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stderr.contains("permission denied"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), before);

    // Online: the server goes on serving the same secrets, and the chain
    // goes on under the new audit key.
    let rotated: serde_json::Value =
        serde_json::from_str(&admin(&["keys", "rotate-master", "-o", "json"]).stdout).unwrap();
    assert_ne!(rotated["from"], rotated["to"], "{rotated}");
    assert_eq!(rotated["audit_keys_kept"], 1, "{rotated}");
    let after = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(after, before, "the key file holds the new key");
    assert!(!server.data_dir().join("master.key.next").exists());
    admin(&["set", "--secret", "pay", "defaults", "db.other=canary-mk-2"]);
    let shown = admin(&["get", "pay", "defaults", "-o", "json"]).stdout;
    assert!(
        shown.contains("canary-mk-1") && shown.contains("canary-mk-2"),
        "{shown}"
    );
    let verified = admin(&["audit", "verify"]).stdout;
    assert!(verified.contains("audit log intact"), "{verified}");

    // A restart opens the store with the new key, and everything holds.
    let data = server.stop_keeping_data();
    let local = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_confstrata"))
            .arg("--data-dir")
            .arg(data.path())
            .args(args)
            .env_remove("CONFSTRATA_ADDR")
            .env_remove("CONFSTRATA_MASTER_KEY")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let r = to_run(out);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        r
    };
    let shown = local(&["get", "pay", "defaults", "-o", "json"]).stdout;
    assert!(
        shown.contains("canary-mk-1") && shown.contains("canary-mk-2"),
        "{shown}"
    );
    local(&["audit", "verify"]);
    // Again, offline this time.
    local(&["keys", "rotate-master"]);
    local(&["audit", "verify"]);
    let shown = local(&["get", "pay", "defaults", "-o", "json"]).stdout;
    assert!(shown.contains("canary-mk-1"), "{shown}");

    // The old key file no longer opens the store, and says which key would.
    std::fs::write(data.path().join("master.key"), &before).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_confstrata"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["audit", "verify"])
        .env_remove("CONFSTRATA_MASTER_KEY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let r = to_run(out);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr.contains("wrapped by master key mk-"),
        "{}",
        r.stderr
    );
}
