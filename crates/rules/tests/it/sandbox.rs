//! The sandbox: each limit stops a script with a clear error, and the
//! same `Compiled` keeps working afterwards.

use std::time::Duration;

use confstrata_rules::Limits;
use serde_json::json;

use crate::{compile, compile_with, lines};

/// The default limits with a wall-time budget no test run reaches: the
/// tests of the other limits must not depend on how busy the machine is
/// (under load, 10,000 pushes in a debug build once took longer than the
/// default 100 ms, and the clock stopped the script first).
fn untimed() -> Limits {
    Limits {
        max_duration: Duration::from_secs(3600),
        ..Limits::default()
    }
}

/// Compiles one rule that must be stopped, checks twice (the second
/// check proves nothing was left broken), then checks a passing document.
fn stopped(check: &str, limits: &Limits, expected: &str) {
    let compiled = compile_with(
        json!({"rules": [
            {"id": "bad", "check": check},
            {"id": "good", "check": "cfg.ok", "message": "not ok"}
        ]}),
        limits,
    );
    for _ in 0..2 {
        let found = lines(&compiled, json!({"ok": true}));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("error [rule bad] web env=prod: script error: ")
                && found[0].contains(expected),
            "{expected:?} not in {found:?}"
        );
    }
    // The rule after the stopped one still runs, and fails on its own.
    let found = lines(&compiled, json!({"ok": false}));
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[1], "error [rule good] web env=prod: not ok");
}

#[test]
fn operation_limit_stops_an_endless_loop() {
    stopped(
        "loop {}",
        &untimed(),
        "stopped after 100000 operations, the limit (an endless loop?)",
    );
    let small = Limits {
        max_operations: 50,
        ..untimed()
    };
    stopped(
        "let i = 0; while i < 1000 { i += 1; } true",
        &small,
        "stopped after 50 operations",
    );
}

#[test]
fn call_depth_limit_stops_endless_recursion() {
    let compiled = compile_with(
        json!({
            "validators": [{"name": "down", "body": "down(value + 1)"}],
            "rules": [{"id": "deep", "check": "down(0)"}]
        }),
        &untimed(),
    );
    for _ in 0..2 {
        let found = lines(&compiled, json!({}));
        assert_eq!(found.len(), 1);
        assert!(
            found[0].contains("stopped: function calls nested deeper than 32 levels, the limit (endless recursion?)"),
            "{found:?}"
        );
    }
}

#[test]
fn size_limits_stop_huge_values() {
    stopped(
        "let s = \"x\"; loop { s += s; } true",
        &untimed(),
        "stopped: Length of string went over the limit (strings 65536 bytes",
    );
    stopped(
        "let a = []; loop { a.push(1); } true",
        &untimed(),
        "stopped: Size of array/BLOB went over the limit",
    );
    let small_maps = Limits {
        max_map_size: 100,
        ..untimed()
    };
    stopped(
        "let m = #{}; let i = 0; loop { m.set(`k${i}`, i); i += 1; } true",
        &small_maps,
        "stopped: Size of object map went over the limit (strings 65536 bytes, arrays 10000 items, maps 100 entries)",
    );
}

#[test]
fn wall_time_limit_is_wired() {
    // A zero budget stops every script at its first look at the clock,
    // which happens on the first operation: no timing involved.
    let zero = Limits {
        max_duration: Duration::ZERO,
        ..Limits::default()
    };
    let compiled = compile_with(
        json!({"rules": [{"id": "spin", "check": "loop {}"}]}),
        &zero,
    );
    for _ in 0..2 {
        assert_eq!(
            lines(&compiled, json!({})),
            [
                "error [rule spin] web env=prod: script error: stopped after running longer than 0ns, the limit"
            ]
        );
    }
}

#[test]
fn limits_apply_to_validators_called_from_the_schema() {
    let compiled = compile(json!({
        "validators": [{"name": "spin", "body": "loop {}"}],
        "schema": {"properties": {"a": {"x-validator": "spin"}}}
    }));
    let found = lines(&compiled, json!({"a": 1}));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("error [validator spin] web env=prod a: validator spin failed with a script error: stopped after 100000 operations"),
        "{found:?}"
    );
}

#[test]
fn expression_depth_is_limited_when_compiling() {
    let deep = format!("{}1{} == 1", "(".repeat(200), ")".repeat(200));
    let err = crate::compile_err(json!({"rules": [{"id": "deep", "check": deep}]}));
    assert!(
        err.contains("rule \"deep\": check does not compile"),
        "{err}"
    );
}

#[test]
fn no_io_no_clock_no_sleep_no_output() {
    for (check, expected) in [
        ("sleep(10); true", "no function sleep (i64)"),
        ("timestamp() > 0", "no function timestamp ()"),
        ("open_file(\"/etc/passwd\") != ()", "no function open_file"),
        ("parse_json(\"{}\") != ()", "no function parse_json"),
        ("exit(1)", "no function exit"),
    ] {
        stopped(check, &untimed(), expected);
    }
    // print and debug are accepted and go nowhere.
    let compiled =
        compile(json!({"rules": [{"id": "p", "check": "print(\"hello\"); debug(cfg); true"}]}));
    assert!(lines(&compiled, json!({})).is_empty());
}

#[test]
fn script_errors_become_findings() {
    for (check, expected) in [
        (
            "cfg.db.pool.max > 1",
            "no key \"pool\" here (line 1, column 8)",
        ),
        (
            "cfg.name - 1 > 0",
            "no function - (string, i64) (line 1, column 10)",
        ),
        ("\n  throw \"nope\"", "threw nope (line 2, column 3)"),
        (
            "42",
            "the check returned a value of type i64; it must return true or false",
        ),
        ("cfg.list[5] == 1", "Array index 5 out of bounds"),
        ("1 / 0 == 1", "Division by zero"),
    ] {
        let compiled = compile(json!({"rules": [{"id": "r", "check": check}]}));
        let found = lines(&compiled, json!({"db": {}, "name": "x", "list": [1]}));
        assert_eq!(found.len(), 1, "{check}: {found:?}");
        assert!(
            found[0].starts_with("error [rule r] web env=prod: script error: ")
                && found[0].contains(expected),
            "{check}: {expected:?} not in {found:?}"
        );
    }
}

#[test]
fn rules_cannot_change_what_later_rules_see() {
    let compiled = compile(json!({"rules": [
        {"id": "writer", "check": "cfg.a = 5; ctx.env = \"dev\"; true"},
        {"id": "reader", "check": "cfg.a == 1 && ctx.env == \"prod\""}
    ]}));
    assert!(lines(&compiled, json!({"a": 1})).is_empty());
}

#[test]
fn errors_inside_a_validator_point_into_it() {
    let compiled = compile(json!({
        "validators": [{"name": "v", "body": "let y = 1;\nvalue.foo == y"}],
        "rules": [{"id": "calls", "check": "v(cfg.x)"}]
    }));
    let found = lines(&compiled, json!({"x": 5}));
    assert_eq!(found.len(), 1);
    assert!(
        found[0].contains("script error: in validator v (line 1, column 1): ")
            && found[0].contains("(line 2, column 7)"),
        "{found:?}"
    );
}
