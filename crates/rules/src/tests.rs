//! Unit tests of the pieces that have no public entry point of their own:
//! the library's format checks, the `config("name")` scanner and message
//! templates.

use serde_json::json;

use crate::library::{
    is_byte_size, is_cidr, is_cron, is_duration, is_ip, is_log_level, is_percentage, is_semver,
    is_timezone, is_url,
};
use crate::script::{scan_config_calls, truncate};
use crate::{fill_template, first_line, template_keys};

fn check_format(name: &str, f: fn(&str) -> bool, good: &[&str], bad: &[&str]) {
    for s in good {
        assert!(f(s), "{name}: {s:?} should be accepted");
    }
    for s in bad {
        assert!(!f(s), "{name}: {s:?} should be refused");
    }
}

#[test]
fn duration() {
    check_format(
        "duration",
        is_duration,
        &[
            "30s", "5m", "1h30m", "250ms", "1.5h", "0", "10us", "2d", "1h0m0s",
        ],
        &[
            "", "30", "s", "5 m", "1h 30m", "-5s", "1.s", ".5s", "5x", "5mm", "1h30",
        ],
    );
}

#[test]
fn byte_size() {
    check_format(
        "byte-size",
        is_byte_size,
        &[
            "512MiB", "1GB", "64k", "100", "1.5 GiB", "10b", "2tb", "1PiB",
        ],
        &["", "MiB", "12 34", "1XB", "-1MB", "1.MB", "1  MB", "1GiBs"],
    );
}

#[test]
fn percentage() {
    check_format(
        "percentage",
        is_percentage,
        &["0%", "50%", "12.5%", "100%", "75 %"],
        &["50", "%", "101%", "-1%", "100.1%", "abc%", "5%%"],
    );
}

#[test]
fn semver() {
    check_format(
        "semver",
        is_semver,
        &[
            "1.2.3",
            "0.0.0",
            "2.0.0-rc.1",
            "1.0.0+build.5",
            "1.0.0-alpha-beta.0+x-y",
        ],
        &[
            "1.2",
            "1.2.3.4",
            "01.2.3",
            "1.2.3-",
            "1.2.3-01",
            "1.2.3+",
            "v1.2.3",
            "1.2.3-a..b",
            "a.b.c",
        ],
    );
}

#[test]
fn cron() {
    check_format(
        "cron",
        is_cron,
        &[
            "* * * * *",
            "*/5 * * * *",
            "0 2 * * MON-FRI",
            "0 30 2 * * mon-fri",
            "0,15,30,45 0-23/2 1 JAN,JUL ?",
            "@daily",
            "@hourly",
            "0 0 * * 7",
        ],
        &[
            "",
            "* * * *",
            "* * * * * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "* * * * 8",
            "*/0 * * * *",
            "5-1 * * * *",
            "? * * * *",
            "@reboot",
            "@sometimes",
            "* * * FOO *",
            "a b c d e",
        ],
    );
}

#[test]
fn ip_and_cidr() {
    check_format(
        "ip",
        is_ip,
        &["10.0.0.1", "::1", "fd00::1", "255.255.255.255"],
        &["", "10.0.0", "256.0.0.1", "fd00:::1", "host"],
    );
    check_format(
        "cidr",
        is_cidr,
        &[
            "10.0.0.0/8",
            "0.0.0.0/0",
            "fd00::/64",
            "::/128",
            "192.168.1.1/32",
        ],
        &[
            "10.0.0.0",
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "x/8",
            "10.0.0.0/0008",
        ],
    );
}

#[test]
fn log_level() {
    check_format(
        "log-level",
        is_log_level,
        &["trace", "debug", "info", "WARN", "Error", "fatal"],
        &["", "verbose", "warning", "inf", "info "],
    );
}

#[test]
fn timezone() {
    check_format(
        "timezone",
        is_timezone,
        &[
            "UTC",
            "Europe/Paris",
            "America/Argentina/Buenos_Aires",
            "America/Port-au-Prince",
            "Etc/GMT+5",
            "US/Eastern",
            "EST5EDT",
            "+02:00",
            "-0530",
        ],
        &[
            "",
            "Paris",
            "Mars/Olympus",
            "Europe/",
            "Europe/Paris Time",
            "+25:00",
            "+02:60",
            "02:00",
            "utc",
        ],
    );
}

#[test]
fn url() {
    check_format(
        "url",
        is_url,
        &[
            "https://example.com",
            "http://localhost:8080/x?y=1#z",
            "postgres://u:p@db:5432/app",
        ],
        &[
            "",
            "example.com",
            "https://",
            "mailto:a@b.c",
            "https:// example.com",
            "1http://x",
            "http://:80/",
        ],
    );
}

#[test]
fn scanner_finds_literal_config_calls() {
    let check = |source: &str, expected: &[&str]| {
        assert_eq!(scan_config_calls(source).unwrap(), expected, "{source}");
    };
    check("config(\"billing\").a == 1", &["billing"]);
    check(
        "config( \"a\" ) == config(/* c */\"shared/x\")",
        &["a", "shared/x"],
    );
    check("// config(x)\ntrue", &[]);
    check("/* config(x) /* nested */ config(y) */ true", &[]);
    check("\"config(x)\" == 'c'", &[]);
    check("`${config(\"a\").x} and config(x)`", &["a"]);
    check("`${ if true { config(\"a\") } else { #{} } }`", &["a"]);
    check("cfg.config == 1 && cfg.config(1)", &[]);
    check("let configured = 1; configured == 1", &[]);
    check("let config = 1; config == 1", &[]);
}

#[test]
fn scanner_refuses_computed_names() {
    for source in [
        "config(name)",
        "config(\"a\" + \"b\")",
        "config(\"a\\\"b\")",
        "config()",
        "config(\"unterminated",
        "`${config(x)}`",
    ] {
        let err = scan_config_calls(source).unwrap_err();
        assert!(err.contains("string literal"), "{source}: {err}");
    }
}

#[test]
fn scanner_refuses_absurd_nesting() {
    let deep = "`${".repeat(10_000);
    assert!(
        scan_config_calls(&deep)
            .unwrap_err()
            .contains("nest deeper")
    );
}

#[test]
fn scanner_survives_truncated_input() {
    for source in [
        "\"",
        "'",
        "`",
        "`${",
        "/*",
        "config(",
        "config(\"x\"",
        "\"\\",
    ] {
        let _ = scan_config_calls(source);
    }
}

#[test]
fn templates() {
    let doc = json!({"db": {"pool": {"max": 50}, "name": "main", "tags": ["a"]}, "x.y": 1})
        .as_object()
        .unwrap()
        .clone();
    let fill = |t: &str| fill_template(t, &doc);
    assert_eq!(
        fill("pool {{db.pool.max}} on {{ db.name }}"),
        "pool 50 on main"
    );
    assert_eq!(fill("{{db.tags}} {{db.pool}}"), r#"["a"] {"max":50}"#);
    assert_eq!(fill("{{\"x.y\"}}"), "1");
    assert_eq!(fill("{{db.nope}} left"), "<no db.nope> left");
    assert_eq!(fill("no template {single}"), "no template {single}");
    assert!(template_keys("{{a..b}}").is_err());
    assert!(template_keys("{{a").is_err());
    assert_eq!(template_keys("{{a}} {{b.c}}").unwrap().len(), 2);
}

#[test]
fn default_messages_show_the_check() {
    assert_eq!(first_line("cfg.a > 1"), "cfg.a > 1");
    assert_eq!(first_line("\nlet x = cfg.a;\nx > 1"), "let x = cfg.a;…");
    assert_eq!(first_line(&"x".repeat(100)).chars().count(), 81);
}

#[test]
fn truncation_respects_characters() {
    let long = "é".repeat(400);
    let short = truncate(long);
    assert!(short.ends_with('…'));
    assert!(short.len() <= 503);
    assert_eq!(truncate("short".into()), "short");
}
