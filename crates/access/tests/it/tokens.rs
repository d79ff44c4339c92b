//! Tokens: generation, hashing, parsing errors, verification, revocation.

use std::collections::{HashMap, HashSet};

use confstrata_access::{Error, Policy, PrincipalKind, TOKEN_LEN, TOKEN_PREFIX, Token, TokenHash};
use confstrata_core::Timestamp;

use crate::{id, role};

fn policy_with_alice() -> (Policy, Token) {
    let mut p = Policy::with_builtin_roles();
    p.add_principal(id("alice"), "Alice", PrincipalKind::User)
        .unwrap();
    p.grant_role(&id("alice"), &role("viewer")).unwrap();
    let t = p.issue_token(&id("alice"), "laptop", Timestamp(1)).unwrap();
    (p, t)
}

#[test]
fn generated_tokens_have_the_prefix_the_length_and_256_random_bits() {
    let tokens: Vec<Token> = (0..1000).map(|_| Token::generate().unwrap()).collect();
    let mut seen = HashSet::new();
    let mut ones = 0u32;
    for t in &tokens {
        let s = t.expose_secret();
        assert_eq!(s.len(), TOKEN_LEN);
        assert_eq!(TOKEN_LEN, 47);
        assert!(s.starts_with(TOKEN_PREFIX));
        let body = &s[TOKEN_PREFIX.len()..];
        assert!(
            body.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert!(seen.insert(s.to_owned()), "a token repeated");
        // Every token parses back.
        assert!(Token::parse(s).is_ok());
        // Count set bits of the 256 random bits (43 chars × 6 bits, last 2 are padding).
        for (i, c) in body.bytes().enumerate() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'-' => 62,
                _ => 63,
            };
            let v = if i == 42 { v >> 2 } else { v };
            ones += v.count_ones();
        }
    }
    // 256,000 fair bits: mean 128,000, standard deviation 253. ±5,000 is ~20σ.
    assert!(
        (123_000..133_000).contains(&ones),
        "{ones} set bits of 256000"
    );
}

#[test]
fn only_the_hash_is_stored() {
    let (p, t) = policy_with_alice();
    let json = serde_json::to_string(&p).unwrap();
    let body = &t.expose_secret()[TOKEN_PREFIX.len()..];
    assert!(
        !json.contains(body),
        "the token's text reached the stored policy"
    );
    assert!(json.contains(&t.hash().to_string()));
    // SHA-256 of the text, as `sha256sum` would print it: 64 hex digits.
    assert_eq!(t.hash().to_string().len(), 64);
    assert_eq!(
        p.principal(&id("alice")).unwrap().tokens()[0].hash,
        t.hash()
    );
}

#[test]
fn debug_and_display_never_show_the_secret() {
    let t = Token::generate().unwrap();
    let body = &t.expose_secret()[TOKEN_PREFIX.len()..];
    for shown in [format!("{t:?}"), format!("{t}"), format!("{:?}", Some(&t))] {
        assert!(!shown.contains(body), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }
}

#[test]
fn hashes_compare_all_bytes_even_when_the_table_key_collides() {
    // The table hashes only the first 8 bytes; two hashes that agree there
    // land in one bucket and must still be told apart by the constant-time
    // comparison of all 32 bytes.
    let a = TokenHash::from_bytes([7; 32]);
    let mut b_bytes = [7; 32];
    b_bytes[31] = 8;
    let b = TokenHash::from_bytes(b_bytes);
    assert_ne!(a, b);
    let mut map = HashMap::new();
    map.insert(a, "a");
    assert_eq!(map.get(&b), None);
    assert_eq!(map.get(&a), Some(&"a"));
    let t = Token::generate().unwrap();
    assert!(t.hash().verify(&t));
    assert!(!a.verify(&t));
}

#[test]
fn a_valid_token_authenticates() {
    let (p, t) = policy_with_alice();
    let again = Token::parse(t.expose_secret()).unwrap();
    assert_eq!(p.authenticate(&again).unwrap().id(), &id("alice"));
    let header = format!("Bearer {}", t.expose_secret());
    let from_header = Token::from_authorization(Some(&header)).unwrap();
    assert_eq!(p.authenticate(&from_header).unwrap().id(), &id("alice"));
    let lower = format!("bearer   {}", t.expose_secret());
    assert!(Token::from_authorization(Some(&lower)).is_ok());
}

/// A token that differs from `t` in one character.
fn altered(t: &Token, at: usize) -> String {
    let mut s = t.expose_secret().to_owned().into_bytes();
    s[at] = if s[at] == b'A' { b'E' } else { b'A' };
    String::from_utf8(s).unwrap()
}

#[test]
fn each_bad_token_has_its_own_error() {
    let (mut p, t) = policy_with_alice();
    let secret = t.expose_secret().to_owned();
    let body = secret[TOKEN_PREFIX.len()..].to_owned();

    // Missing.
    assert!(matches!(
        Token::from_authorization(None),
        Err(Error::MissingToken)
    ));
    // Empty.
    assert!(matches!(Token::parse(""), Err(Error::EmptyToken)));
    assert!(matches!(
        Token::from_authorization(Some("")),
        Err(Error::EmptyToken)
    ));
    assert!(matches!(
        Token::from_authorization(Some("Bearer ")),
        Err(Error::EmptyToken)
    ));
    // Over-long (a valid token with something appended, or a huge header).
    let long = format!("{secret}x");
    match Token::parse(&long) {
        Err(e @ Error::TokenTooLong { len: 48, max: 47 }) => {
            assert!(!e.to_string().contains(&body));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Token::parse(&"a".repeat(1 << 20)),
        Err(Error::TokenTooLong { .. })
    ));
    // Malformed, each with a reason that shows none of the text.
    let malformed = [
        (format!("xyz_{body}"), "does not start with \"cst_\""),
        (
            secret[..40].to_owned(),
            "is 40 bytes long; a Confstrata token is 47 bytes",
        ),
        (
            format!("{}!{}", &secret[..10], &secret[11..]),
            "character 11 is not a base64url character",
        ),
        (
            format!("{}B", &secret[..46]),
            "last character is not one a generated token can end with",
        ),
        (
            format!("{}=", &secret[..46]),
            "character 47 is not a base64url character",
        ),
    ];
    for (text, reason) in malformed {
        match Token::parse(&text) {
            Err(e @ Error::MalformedToken { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(reason), "{msg}");
                assert!(!msg.contains(&body[..20]), "{msg}");
            }
            other => panic!("{text}: {other:?}"),
        }
    }
    assert!(matches!(
        Token::from_authorization(Some(&format!("Basic {secret}"))),
        Err(Error::MalformedToken { .. })
    ));
    // Unknown: well formed, but one character off.
    let unknown = Token::parse(&altered(&t, 20)).unwrap();
    assert!(matches!(p.authenticate(&unknown), Err(Error::UnknownToken)));
    // Revoked token: refused from the next call on; other tokens still work.
    let second = p.issue_token(&id("alice"), "ci", Timestamp(2)).unwrap();
    p.revoke_token(&t.hash()).unwrap();
    assert!(matches!(p.authenticate(&t), Err(Error::RevokedToken)));
    assert!(p.authenticate(&second).is_ok());
    assert!(p.principal(&id("alice")).unwrap().tokens()[0].revoked);
    // Revoked principal: every token refused.
    p.revoke_principal(&id("alice")).unwrap();
    assert!(matches!(
        p.authenticate(&second),
        Err(Error::RevokedPrincipal { .. })
    ));
}

#[test]
fn revocation_survives_a_round_trip_through_storage() {
    let (mut p, t) = policy_with_alice();
    p.revoke_token(&t.hash()).unwrap();
    let loaded: Policy = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert!(matches!(loaded.authenticate(&t), Err(Error::RevokedToken)));
}
