//! Unit tests of the internals; behaviour through the public API is tested
//! in `tests/it`.

use confstrata_core::{KeyPath, LayerPath, NamespaceName};

use crate::error::KeyProblem;
use crate::keyring::KeyId;
use crate::sealed::aad;
use crate::{Error, MasterKey};

fn ns(s: &str) -> NamespaceName {
    s.parse().unwrap()
}
fn layer(s: &str) -> LayerPath {
    s.parse().unwrap()
}
fn key(s: &str) -> KeyPath {
    s.parse().unwrap()
}
fn kid(s: &str) -> KeyId {
    s.parse().unwrap()
}

fn problem(text: &str) -> KeyProblem {
    match MasterKey::from_text(text, "test") {
        Err(Error::InvalidMasterKey { problem, origin }) => {
            assert_eq!(origin, "test");
            problem
        }
        other => panic!("expected an invalid key for {text:?}, got {other:?}"),
    }
}

#[test]
fn key_text_encodings() {
    let hex = "9f3b1c7a5e2d48f0a6c4e2b19d7f3a5c8e1b4d6f2a9c7e5b3d1f0a2c4e6b8d9f".to_owned();
    let bytes: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    assert_eq!(crate::key::hex(&bytes), hex);
    assert_eq!(hex.len(), 64);
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    for text in [
        hex.clone(),
        hex.to_uppercase(),
        format!("  {hex}\n"),
        STANDARD.encode(&bytes),
        URL_SAFE_NO_PAD.encode(&bytes),
    ] {
        MasterKey::from_text(&text, "test").unwrap_or_else(|e| panic!("{text:?}: {e}"));
    }
}

#[test]
fn key_text_refusals() {
    assert_eq!(problem(""), KeyProblem::Empty);
    assert_eq!(problem(" \n\t"), KeyProblem::Empty);
    assert_eq!(problem("not a key!"), KeyProblem::NotEncoded);
    assert_eq!(
        problem(&"ab".repeat(16)),
        KeyProblem::WrongLength { len: 16 }
    );
    assert_eq!(
        problem(&"ab".repeat(33)),
        KeyProblem::WrongLength { len: 33 }
    );
    let check = |text: &str, want: &str| match problem(text) {
        KeyProblem::Weak { pattern } => assert_eq!(pattern, want, "{text}"),
        other => panic!("{text}: {other:?}"),
    };
    check(&"00".repeat(32), "all zeros");
    check(&"ff".repeat(32), "one byte repeated");
    let counting: Vec<u8> = (0u8..32).collect();
    check(&crate::key::hex(&counting), "a counting sequence");
    let down: Vec<u8> = (0u8..32).map(|i| 200 - 3 * i).collect();
    check(&crate::key::hex(&down), "a counting sequence");
    check(
        &crate::key::hex(b"correct horse battery staple!!!!"),
        "printable text",
    );
    check(
        &"deadbeef".repeat(8),
        "made of fewer than 16 distinct byte values",
    );
}

#[test]
fn key_problem_messages_say_what_to_do() {
    for p in [
        KeyProblem::Empty,
        KeyProblem::NotEncoded,
        KeyProblem::WrongLength { len: 3 },
        KeyProblem::Weak {
            pattern: "all zeros",
        },
    ] {
        assert!(p.to_string().contains("openssl rand -hex 32"), "{p}");
    }
}

#[test]
fn key_ids_parse_strictly() {
    assert_eq!(kid("webshop#3").to_string(), "webshop#3");
    assert_eq!(
        kid("shared/logging#1").namespace().as_str(),
        "shared/logging"
    );
    for bad in [
        "",
        "#1",
        "webshop",
        "webshop#",
        "webshop#0",
        "webshop#01",
        "webshop#+1",
        "webshop#-1",
        "webshop#1x",
        "web shop#1",
        "../x#1",
        "webshop#99999999999",
    ] {
        let err = bad.parse::<KeyId>().unwrap_err();
        assert!(matches!(err, Error::InvalidKeyId { .. }), "{bad}: {err}");
    }
    assert!(KeyId::new(ns("a"), 0).is_err());
    assert_eq!(
        serde_json::to_value(kid("a#2")).unwrap(),
        serde_json::json!("a#2")
    );
    assert!(serde_json::from_value::<KeyId>(serde_json::json!("a#0")).is_err());
}

#[test]
fn associated_data_is_unambiguous() {
    // Places whose naive concatenations collide must still differ.
    let cases = [
        ("a", "b/c", "d", "a#1"),
        ("a", "b", "c.d", "a#1"),
        ("a", "b", "\"c.d\"", "a#1"),
        ("a", "bc", "d", "a#1"),
        ("ab", "c", "d", "ab#1"),
        ("a", "b", "c", "a#1"),
        ("a", "b", "c", "a#2"),
        ("a", "b", "c.d.e", "a#1"),
        ("a", "b", "\"c.d\".e", "a#1"),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (n, l, k, id) in cases {
        assert!(
            seen.insert(aad(&ns(n), &layer(l), &key(k), &kid(id))),
            "collision for {n} {l} {k} {id}"
        );
    }
}

#[test]
fn hex_is_lowercase() {
    assert_eq!(crate::key::hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
}
