//! Every entry of the schema library, through `$ref`, with good and bad values.

use serde_json::{Value, json};

use crate::{compile, lines};

/// Checks that `{"$ref": "confstrata:<name>"}` accepts every `good` value
/// and refuses every `bad` one with a schema finding at key `v`.
fn check(name: &str, good: &[Value], bad: &[Value]) {
    let compiled = compile(json!({"schema": {
        "type": "object",
        "properties": {"v": {"$ref": format!("confstrata:{name}")}}
    }}));
    for value in good {
        let found = lines(&compiled, json!({ "v": value }));
        assert!(found.is_empty(), "{name}: {value} should pass: {found:?}");
    }
    for value in bad {
        let found = lines(&compiled, json!({ "v": value }));
        assert!(!found.is_empty(), "{name}: {value} should fail");
        for line in &found {
            assert!(
                line.starts_with("error [schema /properties/v/$ref/") && line.contains(" v: "),
                "{name}: {value}: {line}"
            );
        }
    }
}

#[test]
fn every_entry_is_tested_here() {
    let names: Vec<&str> = confstrata_rules::library()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        names,
        [
            "byte-size",
            "cidr",
            "cron",
            "duration",
            "email",
            "hostname",
            "ip",
            "ipv4",
            "ipv6",
            "log-level",
            "non-empty-string",
            "percentage",
            "port",
            "positive-integer",
            "semver",
            "timezone",
            "url",
        ]
    );
    for (name, schema) in confstrata_rules::library() {
        assert_eq!(schema["$id"], format!("confstrata:{name}"));
        assert!(
            schema["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty())
        );
        // Each entry's own examples pass it.
        let examples = schema["examples"].as_array().unwrap().clone();
        check(name, &examples, &[]);
    }
}

#[test]
fn port() {
    check(
        "port",
        &[json!(1), json!(80), json!(65535)],
        &[
            json!(0),
            json!(65536),
            json!(-1),
            json!("80"),
            json!(80.5),
            json!(null),
        ],
    );
}

#[test]
fn hostname() {
    check(
        "hostname",
        &[
            json!("db.internal"),
            json!("localhost"),
            json!("a-b.example.com"),
        ],
        &[
            json!(""),
            json!("-bad-"),
            json!("has space.com"),
            json!("a..b"),
            json!(1),
        ],
    );
}

#[test]
fn url() {
    check(
        "url",
        &[
            json!("https://example.com/api"),
            json!("postgres://db:5432/app"),
        ],
        &[
            json!("example.com"),
            json!("https://"),
            json!("mailto:a@b.c"),
            json!(42),
        ],
    );
}

#[test]
fn duration() {
    check(
        "duration",
        &[json!("30s"), json!("5m"), json!("1h30m"), json!("250ms")],
        &[json!("30"), json!("5 minutes"), json!("PT5M"), json!(30)],
    );
}

#[test]
fn byte_size() {
    check(
        "byte-size",
        &[
            json!("512MiB"),
            json!("1GB"),
            json!("64k"),
            json!(4096),
            json!(0),
        ],
        &[
            json!("512 MiBs"),
            json!("lots"),
            json!(-1),
            json!(1.5),
            json!(true),
        ],
    );
}

#[test]
fn percentage() {
    check(
        "percentage",
        &[json!(0), json!(12.5), json!(100), json!("75%")],
        &[
            json!(101),
            json!(-0.5),
            json!("75"),
            json!("150%"),
            json!([50]),
        ],
    );
}

#[test]
fn semver() {
    check(
        "semver",
        &[json!("1.2.3"), json!("2.0.0-rc.1+build.5")],
        &[json!("1.2"), json!("v1.2.3"), json!("01.2.3"), json!(1)],
    );
}

#[test]
fn cron() {
    check(
        "cron",
        &[
            json!("*/5 * * * *"),
            json!("0 30 2 * * MON-FRI"),
            json!("@hourly"),
        ],
        &[
            json!("* * * *"),
            json!("61 * * * *"),
            json!("@often"),
            json!(5),
        ],
    );
}

#[test]
fn email() {
    check(
        "email",
        &[json!("ops@example.com")],
        &[json!("ops"), json!("ops@"), json!("@example.com")],
    );
}

#[test]
fn ipv4_ipv6_ip() {
    check(
        "ipv4",
        &[json!("10.0.0.1")],
        &[json!("10.0.0"), json!("::1")],
    );
    check(
        "ipv6",
        &[json!("fd00::1"), json!("::1")],
        &[json!("10.0.0.1"), json!("fd00:::1")],
    );
    check(
        "ip",
        &[json!("10.0.0.1"), json!("::1")],
        &[json!("10.0.0.256"), json!("host")],
    );
}

#[test]
fn cidr() {
    check(
        "cidr",
        &[json!("10.0.0.0/8"), json!("fd00::/64")],
        &[json!("10.0.0.0"), json!("10.0.0.0/33"), json!("fd00::/129")],
    );
}

#[test]
fn log_level() {
    check(
        "log-level",
        &[json!("info"), json!("WARN"), json!("Trace"), json!("fatal")],
        &[json!("verbose"), json!(""), json!(3)],
    );
}

#[test]
fn positive_integer() {
    check(
        "positive-integer",
        &[json!(1), json!(1_000_000)],
        &[json!(0), json!(-3), json!(1.5), json!("1")],
    );
}

#[test]
fn non_empty_string() {
    check(
        "non-empty-string",
        &[json!("x"), json!(" x ")],
        &[json!(""), json!("   "), json!(1)],
    );
}

#[test]
fn timezone() {
    check(
        "timezone",
        &[json!("Europe/Paris"), json!("UTC"), json!("+05:30")],
        &[
            json!("Paris"),
            json!("Mars/Olympus"),
            json!("+25:00"),
            json!(1),
        ],
    );
}

#[test]
fn reference_with_a_fragment() {
    let compiled = compile(json!({"schema": {"properties": {"p": {"$ref": "confstrata:port#"}}}}));
    assert!(lines(&compiled, json!({"p": 80})).is_empty());
    assert_eq!(
        lines(&compiled, json!({"p": 0})),
        [
            "error [schema /properties/p/$ref/minimum] web env=prod p: 0 is less than the minimum of 1"
        ]
    );
}
