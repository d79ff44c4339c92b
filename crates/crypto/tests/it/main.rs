//! Behaviour of `confstrata-crypto` through its public API.

use std::collections::BTreeSet;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use confstrata_core::{Document, KeyPath, LayerPath, NamespaceName};
use confstrata_crypto::{
    Error, KeyId, KeyProblem, Keyring, MASK, MasterKey, Sealed, SecretRule, WrappedKeyring,
    is_sealed, key_ids, mask, open, open_document, open_value, rewrap, seal, seal_matching,
    seal_paths, sealed_paths,
};
use proptest::prelude::*;
use serde_json::{Value, json};

/// A fixed, random-looking master key so tests can rebuild the same key.
const MASTER_HEX: &str = "9f3b1c7a5e2d48f0a6c4e2b19d7f3a5c8e1b4d6f2a9c7e5b3d1f0a2c4e6b8d9f";

fn master() -> MasterKey {
    MasterKey::from_text(MASTER_HEX, "test").unwrap()
}
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
fn doc(v: Value) -> Document {
    v.as_object().cloned().unwrap()
}

/// A keyring with one key for `webshop` and one for `billing`.
fn keyring() -> Keyring {
    let mut k = Keyring::new(master());
    k.rotate(&ns("webshop")).unwrap();
    k.rotate(&ns("billing")).unwrap();
    k
}

fn seal_at(k: &Keyring, n: &str, l: &str, p: &str, v: &Value) -> Value {
    seal(k, &ns(n), &layer(l), &key(p), v).unwrap().to_value()
}

fn open_at(k: &Keyring, n: &str, l: &str, p: &str, v: &Value) -> Result<Value, Error> {
    open_value(k, &ns(n), &layer(l), &key(p), v)
}

/// Replaces one field of the sealed form.
fn with_field(sealed: &Value, field: &str, new: Value) -> Value {
    let mut v = sealed.clone();
    v["$sealed"][field] = new;
    v
}

fn field_bytes(sealed: &Value, field: &str) -> Vec<u8> {
    B64.decode(sealed["$sealed"][field].as_str().unwrap())
        .unwrap()
}

// --- round trips -------------------------------------------------------------

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(Value::from),
        ".*".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[^\\p{Cc}]{1,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn key_path() -> impl Strategy<Value = KeyPath> {
    // `.` and `..` are not keys (issue 12).
    prop::collection::vec("[^\\p{Cc}]{1,12}", 1..5)
        .prop_filter("a key is not . or ..", |segs| {
            segs.iter().all(|s| s != "." && s != "..")
        })
        .prop_map(|segs| KeyPath::from_segments(segs).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn seal_then_open_is_identity(value in json_value(), key in key_path(), l in "[a-z0-9_-]{1,8}(/[a-z0-9_-]{1,8}){0,3}") {
        let k = keyring();
        prop_assume!(!is_sealed(&value) && !confstrata_core::doc::is_delete_marker(&value));
        let layer: LayerPath = l.parse().unwrap();
        let sealed = seal(&k, &ns("webshop"), &layer, &key, &value).unwrap();
        let stored = sealed.to_value();
        prop_assert!(is_sealed(&stored));
        let parsed = Sealed::from_value(&stored).unwrap();
        prop_assert_eq!(&parsed, &sealed);
        // Through the JSON text a store would keep, too.
        let text = serde_json::to_string(&stored).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(open_value(&k, &ns("webshop"), &layer, &key, &back).unwrap(), value);
    }

    #[test]
    fn parsing_any_json_never_panics(value in json_value()) {
        let _ = Sealed::from_value(&value);
        let wrapped = json!({"$sealed": value});
        let _ = Sealed::from_value(&wrapped);
        let _ = open_value(&keyring(), &ns("webshop"), &layer("defaults"), &key("a"), &wrapped);
    }

    #[test]
    fn parsing_near_miss_forms_never_panics(v in any::<u64>(), kid_text in ".{0,20}", nonce in ".{0,40}", ct in ".{0,60}") {
        let value = json!({"$sealed": {"v": v, "kid": kid_text, "nonce": nonce, "ct": ct}});
        prop_assert!(Sealed::from_value(&value).is_err() || v == 1);
    }
}

#[test]
fn two_seals_of_one_value_differ() {
    let k = keyring();
    let a = seal_at(&k, "webshop", "defaults", "db.password", &json!("hunter2"));
    let b = seal_at(&k, "webshop", "defaults", "db.password", &json!("hunter2"));
    assert_ne!(a["$sealed"]["nonce"], b["$sealed"]["nonce"]);
    assert_ne!(a["$sealed"]["ct"], b["$sealed"]["ct"]);
}

#[test]
fn sealed_form_is_the_documented_table() {
    let k = keyring();
    let v = seal_at(&k, "webshop", "env/prod", "db.password", &json!("hunter2"));
    let inner = v["$sealed"].as_object().unwrap();
    assert_eq!(
        inner.keys().collect::<Vec<_>>(),
        ["ct", "kid", "nonce", "v"]
    );
    assert_eq!(inner["v"], 1);
    assert_eq!(inner["kid"], "webshop#1");
    assert_eq!(field_bytes(&v, "nonce").len(), 24);
    // JSON `"hunter2"` is 9 bytes, plus the 16-byte tag.
    assert_eq!(field_bytes(&v, "ct").len(), 9 + 16);
    assert!(!v.to_string().contains("hunter2"));
}

// --- binding to the place -----------------------------------------------------

#[test]
fn a_sealed_value_opens_only_where_it_was_sealed() {
    let k = keyring();
    let v = seal_at(&k, "webshop", "env/prod", "db.password", &json!("hunter2"));
    assert_eq!(
        open_at(&k, "webshop", "env/prod", "db.password", &v).unwrap(),
        "hunter2"
    );
    for (l, p) in [
        ("env/dev", "db.password"),
        ("defaults", "db.password"),
        ("env/prod", "db.user"),
        ("env/prod", "db"),
        ("env/prod", "\"db.password\""),
        ("env/prod", "db.password.x"),
    ] {
        let err = open_at(&k, "webshop", l, p, &v).unwrap_err();
        assert!(matches!(err, Error::Integrity { .. }), "{l} {p}: {err}");
        let msg = err.to_string();
        assert!(msg.contains("integrity check failed"), "{msg}");
        assert!(msg.contains(&format!("layer webshop:{l}")), "{msg}");
    }
    // Another namespace: refused before decrypting, naming both.
    let err = open_at(&k, "billing", "env/prod", "db.password", &v).unwrap_err();
    assert!(matches!(err, Error::ForeignKeyId { .. }), "{err}");
    assert!(err.to_string().contains("\"webshop\""), "{err}");
    // ... and relabelling it with the other namespace's key id fails integrity.
    let relabelled = with_field(&v, "kid", json!("billing#1"));
    let err = open_at(&k, "billing", "env/prod", "db.password", &relabelled).unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
}

#[test]
fn ciphertexts_swapped_between_keys_do_not_open() {
    let k = keyring();
    let a = seal_at(&k, "webshop", "defaults", "db.password", &json!("pw-a"));
    let b = seal_at(&k, "webshop", "defaults", "api.token", &json!("tok-b"));
    // Swap the whole sealed values between the two keys.
    for (v, p) in [(&a, "api.token"), (&b, "db.password")] {
        let err = open_at(&k, "webshop", "defaults", p, v).unwrap_err();
        assert!(matches!(err, Error::Integrity { .. }), "{err}");
    }
    // Swap only nonce and ciphertext, keeping everything else.
    let mixed = with_field(&a, "ct", b["$sealed"]["ct"].clone());
    let mixed = with_field(&mixed, "nonce", b["$sealed"]["nonce"].clone());
    let err = open_at(&k, "webshop", "defaults", "db.password", &mixed).unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    // Between two key ids of one namespace.
    let mut k = k;
    k.rotate(&ns("webshop")).unwrap();
    let relabelled = with_field(&a, "kid", json!("webshop#2"));
    let err = open_at(&k, "webshop", "defaults", "db.password", &relabelled).unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
}

// --- tampering ----------------------------------------------------------------

#[test]
fn every_flipped_byte_fails_the_integrity_check() {
    let k = keyring();
    let v = seal_at(
        &k,
        "webshop",
        "defaults",
        "db.password",
        &json!({"user": "u", "pw": "secret value"}),
    );
    for field in ["ct", "nonce"] {
        let bytes = field_bytes(&v, field);
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= flip;
                let tampered = with_field(&v, field, json!(B64.encode(&b)));
                let err = open_at(&k, "webshop", "defaults", "db.password", &tampered).unwrap_err();
                assert!(
                    matches!(err, Error::Integrity { .. }),
                    "{field}[{i}] ^ {flip:#x}: {err}"
                );
                assert!(err.to_string().contains("integrity check failed"));
            }
        }
    }
}

#[test]
fn truncated_and_extended_ciphertexts() {
    let k = keyring();
    let v = seal_at(&k, "webshop", "defaults", "a", &json!("some secret"));
    let ct = field_bytes(&v, "ct");
    for len in 0..ct.len() {
        let cut = with_field(&v, "ct", json!(B64.encode(&ct[..len])));
        let err = open_at(&k, "webshop", "defaults", "a", &cut).unwrap_err();
        if len < 16 {
            assert!(
                matches!(err, Error::Truncated { len: l, min: 16, .. } if l == len),
                "{len}: {err}"
            );
            assert!(err.to_string().contains("truncated"));
        } else {
            assert!(matches!(err, Error::Integrity { .. }), "{len}: {err}");
        }
    }
    let mut longer = ct.clone();
    longer.push(0);
    let err = open_at(
        &k,
        "webshop",
        "defaults",
        "a",
        &with_field(&v, "ct", json!(B64.encode(&longer))),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
}

#[test]
fn wrong_nonce_lengths() {
    let k = keyring();
    let v = seal_at(&k, "webshop", "defaults", "a", &json!(1));
    let nonce = field_bytes(&v, "nonce");
    for len in [0usize, 12, 23, 25, 32] {
        let mut n = nonce.clone();
        n.resize(len, 7);
        let err = open_at(
            &k,
            "webshop",
            "defaults",
            "a",
            &with_field(&v, "nonce", json!(B64.encode(&n))),
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::NonceLength { len: l, expected: 24, .. } if l == len),
            "{len}: {err}"
        );
        assert!(
            err.to_string().contains("key a of layer webshop:defaults"),
            "{err}"
        );
    }
}

#[test]
fn unknown_key_id() {
    let k = keyring();
    let v = seal_at(&k, "webshop", "defaults", "a", &json!(1));
    let err = open_at(
        &k,
        "webshop",
        "defaults",
        "a",
        &with_field(&v, "kid", json!("webshop#7")),
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownKeyId { key_id, .. } if key_id == "webshop#7"),
        "{err}"
    );
    assert!(err.to_string().contains("not in the keyring"));
}

/// Malformed sealed forms: each is refused with a message naming the problem.
#[test]
fn malformed_forms() {
    fn check(input: Value, expected: &str) {
        let err = Sealed::from_value(&input).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(expected), "{input}: {msg}");
    }
    let good = keyring();
    let good = seal_at(&good, "webshop", "defaults", "a", &json!(1));
    let nonce = good["$sealed"]["nonce"].clone();
    let ct = good["$sealed"]["ct"].clone();
    check(json!("text"), "expected a table, found a string");
    check(json!({}), "no \"$sealed\" key");
    check(
        json!({"$sealed": 1}),
        "\"$sealed\" must be a table, found a number",
    );
    check(json!({"$sealed": {}, "x": 1}), "unexpected key \"x\"");
    check(json!({"$sealed": {}}), "missing field \"v\"");
    check(
        json!({"$sealed": {"v": "1"}}),
        "\"v\" must be a whole number, found a string",
    );
    check(
        json!({"$sealed": {"v": -1}}),
        "\"v\" must be a whole number",
    );
    check(
        json!({"$sealed": {"v": 2, "other": true}}),
        "format version 2 is not supported",
    );
    check(
        json!({"$sealed": {"v": 1, "kid": "webshop#1", "nonce": nonce, "ct": ct, "extra": 1}}),
        "unknown field \"extra\"",
    );
    check(
        json!({"$sealed": {"v": 1, "nonce": nonce, "ct": ct}}),
        "missing field \"kid\"",
    );
    check(
        json!({"$sealed": {"v": 1, "kid": 5, "nonce": nonce, "ct": ct}}),
        "\"kid\" must be a string, found a number",
    );
    check(
        json!({"$sealed": {"v": 1, "kid": "webshop", "nonce": nonce, "ct": ct}}),
        "\"kid\": invalid key id",
    );
    check(
        json!({"$sealed": {"v": 1, "kid": "webshop#1", "ct": ct}}),
        "missing field \"nonce\"",
    );
    check(
        json!({"$sealed": {"v": 1, "kid": "webshop#1", "nonce": "%%%", "ct": ct}}),
        "\"nonce\" is not base64",
    );
    check(
        json!({"$sealed": {"v": 1, "kid": "webshop#1", "nonce": nonce, "ct": "not base64!"}}),
        "\"ct\" is not base64",
    );
    check(
        json!({"$sealed": {"v": 1, "kid": "webshop#1", "nonce": nonce}}),
        "missing field \"ct\"",
    );
    check(
        json!({"$sealed": {"v": 1, "kid": "webshop#1", "nonce": nonce, "ct": ""}}),
        "truncated (0 bytes",
    );
    assert!(is_sealed(&json!({"$sealed": 1})));
    assert!(!is_sealed(&json!({"$sealed": 1, "x": 2})));
    assert!(!is_sealed(&json!("$sealed")));
}

#[test]
fn refuses_to_seal_markers_and_sealed_values() {
    let k = keyring();
    let err = seal(
        &k,
        &ns("webshop"),
        &layer("a"),
        &key("b"),
        &confstrata_core::doc::delete_marker(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("cannot seal a delete marker"),
        "{err}"
    );
    let v = seal_at(&k, "webshop", "a", "b", &json!(1));
    let err = seal(&k, &ns("webshop"), &layer("a"), &key("b"), &v).unwrap_err();
    assert!(err.to_string().contains("already sealed"), "{err}");
    let err = seal(&k, &ns("nokeys"), &layer("a"), &key("b"), &json!(1)).unwrap_err();
    assert!(matches!(err, Error::NoDataKey { .. }), "{err}");
    assert!(err.to_string().contains("keys rotate nokeys"), "{err}");
}

// --- keyring: rotation, retire, persistence ---------------------------------------

#[test]
fn rotation_keeps_old_values_readable_and_rewrap_moves_them() {
    let mut k = keyring();
    let webshop = ns("webshop");
    let l = layer("env/prod");
    let mut d = doc(json!({
        "db": {"password": "pw1", "host": "h"},
        "api_token": "t1",
        "plain": 5,
    }));
    assert_eq!(
        seal_matching(&mut d, &k, &webshop, &l, &SecretRule::default()).unwrap(),
        2
    );
    let ids = |d: &Document| {
        key_ids(d)
            .unwrap()
            .into_iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&d), ["webshop#1"]);

    let new = k.rotate(&webshop).unwrap();
    assert_eq!(new, kid("webshop#2"));
    assert_eq!(k.current(&webshop), Some(&new));
    assert_eq!(
        k.key_ids().map(ToString::to_string).collect::<Vec<_>>(),
        ["billing#1", "webshop#1", "webshop#2"]
    );
    assert_eq!(k.key_ids_of(&webshop).count(), 2);

    // Old ciphertexts still open.
    let mut opened = d.clone();
    open_document(&mut opened, &k, &webshop, &l).unwrap();
    assert_eq!(opened["db"]["password"], "pw1");
    // New writes use the new key.
    let mut d2 = d.clone();
    seal_paths(&mut d2, &k, &webshop, &l, &[key("db.host")]).unwrap();
    assert_eq!(d2["db"]["host"]["$sealed"]["kid"], "webshop#2");
    assert_eq!(ids(&d2), ["webshop#1", "webshop#2"]);

    // Retiring the old key is refused while referenced...
    let referenced = key_ids(&d2).unwrap();
    let err = k.retire(&kid("webshop#1"), &referenced).unwrap_err();
    assert!(matches!(err, Error::KeyInUse { .. }), "{err}");
    assert!(err.to_string().contains("keys rewrap"), "{err}");
    // ... the current key is never retired, an unknown one is an error.
    let err = k.retire(&kid("webshop#2"), &BTreeSet::new()).unwrap_err();
    assert!(matches!(err, Error::CurrentKey { .. }), "{err}");
    let err = k.retire(&kid("webshop#9"), &BTreeSet::new()).unwrap_err();
    assert!(matches!(err, Error::UnknownKeyId { .. }), "{err}");

    // Rewrap moves everything to the current key; a second rewrap changes nothing.
    assert!(rewrap(&mut d2, &k, &webshop, &l).unwrap());
    assert_eq!(ids(&d2), ["webshop#2"]);
    assert!(!rewrap(&mut d2, &k, &webshop, &l).unwrap());
    k.retire(&kid("webshop#1"), &key_ids(&d2).unwrap()).unwrap();
    assert!(!k.contains(&kid("webshop#1")));

    let mut opened = d2.clone();
    assert_eq!(open_document(&mut opened, &k, &webshop, &l).unwrap(), 3);
    assert_eq!(
        Value::Object(opened),
        json!({"db": {"password": "pw1", "host": "h"}, "api_token": "t1", "plain": 5})
    );
    // The document sealed under the retired key no longer opens.
    let err = open_document(&mut d, &k, &webshop, &l).unwrap_err();
    assert!(matches!(err, Error::UnknownKeyId { .. }), "{err}");
    // Key numbers are never reused after a retire.
    assert_eq!(k.rotate(&webshop).unwrap(), kid("webshop#3"));
}

#[test]
fn the_stored_keyring_round_trips_and_needs_the_right_master_key() {
    let mut k = keyring();
    k.rotate(&ns("webshop")).unwrap();
    let v = seal_at(&k, "webshop", "defaults", "a", &json!("x"));
    let stored = serde_json::to_string(&k.to_wrapped()).unwrap();
    assert!(!stored.contains(MASTER_HEX));
    let wrapped: WrappedKeyring = serde_json::from_str(&stored).unwrap();
    assert_eq!(wrapped.keys().len(), 3);

    let again = Keyring::from_wrapped(master(), &wrapped).unwrap();
    assert_eq!(again.current(&ns("webshop")), Some(&kid("webshop#2")));
    assert_eq!(
        open_at(&again, "webshop", "defaults", "a", &v).unwrap(),
        "x"
    );
    assert_eq!(again.to_wrapped(), wrapped);

    // Another process rotates; this one reloads and opens its new values.
    let mut other = Keyring::from_wrapped(master(), &wrapped).unwrap();
    other.rotate(&ns("webshop")).unwrap();
    let newer = seal_at(&other, "webshop", "defaults", "a", &json!("y"));
    let mut this = Keyring::from_wrapped(master(), &wrapped).unwrap();
    assert!(open_at(&this, "webshop", "defaults", "a", &newer).is_err());
    this.reload(&other.to_wrapped()).unwrap();
    assert_eq!(
        open_at(&this, "webshop", "defaults", "a", &newer).unwrap(),
        "y"
    );
    assert_eq!(this.current(&ns("webshop")), Some(&kid("webshop#3")));

    let err = Keyring::from_wrapped(MasterKey::generate().unwrap(), &wrapped).unwrap_err();
    assert!(matches!(err, Error::WrongMasterKey { .. }), "{err}");
    assert!(err.to_string().contains("different master key"), "{err}");

    // A wrapped key passed off under another id does not unwrap.
    let mut raw: Value = serde_json::from_str(&stored).unwrap();
    raw["keys"][1]["kid"] = json!("webshop#9");
    let relabelled: WrappedKeyring = serde_json::from_value(raw.clone()).unwrap();
    let err = Keyring::from_wrapped(master(), &relabelled).unwrap_err();
    assert!(
        matches!(&err, Error::WrongMasterKey { key_id } if key_id == "webshop#9"),
        "{err}"
    );

    // Malformed stored forms.
    let mut dup = raw.clone();
    dup["keys"][1] = raw["keys"][2].clone();
    let dup: WrappedKeyring = serde_json::from_value(dup).unwrap();
    let err = Keyring::from_wrapped(master(), &dup).unwrap_err();
    assert!(err.to_string().contains("appears twice"), "{err}");
    let mut v2 = raw.clone();
    v2["v"] = json!(2);
    let v2: WrappedKeyring = serde_json::from_value(v2).unwrap();
    assert!(
        Keyring::from_wrapped(master(), &v2)
            .unwrap_err()
            .to_string()
            .contains("version 2")
    );
    let mut extra = raw;
    extra["master"] = json!("x");
    assert!(serde_json::from_value::<WrappedKeyring>(extra).is_err());
}

// --- documents ----------------------------------------------------------------

#[test]
fn document_helpers() {
    let k = keyring();
    let (n, l) = (ns("webshop"), layer("env/prod"));
    let original = doc(json!({
        "db": {"host": "h", "pool": {"max": 5}, "creds": {"user": "u", "pw": "p"}, "gone": {"$delete": true}},
        "tags": ["a", "b"],
        "empty": {},
    }));
    let mut d = original.clone();
    // A table path seals every leaf beneath it; arrays are one leaf.
    let count = seal_paths(
        &mut d,
        &k,
        &n,
        &l,
        &[key("db.creds"), key("tags"), key("empty"), key("db.gone")],
    )
    .unwrap();
    assert_eq!(count, 3);
    assert_eq!(
        sealed_paths(&d).unwrap(),
        [key("db.creds.pw"), key("db.creds.user"), key("tags")]
    );
    assert_eq!(d["db"]["gone"], json!({"$delete": true}));
    assert_eq!(d["empty"], json!({}));
    // Nothing reaches inside a sealed value.
    let inside = key("db.creds.pw.\"$sealed\".kid");
    assert!(seal_paths(&mut d.clone(), &k, &n, &l, &[inside]).is_err());
    // Sealing again changes nothing.
    assert_eq!(
        seal_paths(&mut d, &k, &n, &l, &[key("db.creds")]).unwrap(),
        0
    );

    // A missing path is an error and leaves the document as it was.
    let before = d.clone();
    let err = seal_paths(&mut d, &k, &n, &l, &[key("db.host"), key("db.nope")]).unwrap_err();
    assert!(err.to_string().contains("db.nope"), "{err}");
    assert_eq!(d, before);

    let mut masked = d.clone();
    assert_eq!(mask(&mut masked), 3);
    assert_eq!(
        Value::Object(masked),
        json!({
            "db": {"host": "h", "pool": {"max": 5}, "creds": {"user": MASK, "pw": MASK}, "gone": {"$delete": true}},
            "tags": MASK,
            "empty": {},
        })
    );

    let mut opened = d.clone();
    assert_eq!(open_document(&mut opened, &k, &n, &l).unwrap(), 3);
    assert_eq!(opened, original);

    // One bad value fails the whole open and changes nothing.
    let mut bad = d.clone();
    bad["db"]["creds"]["pw"] = bad["db"]["creds"]["user"].clone();
    let before = bad.clone();
    let err = open_document(&mut bad, &k, &n, &l).unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("key db.creds.pw of layer webshop:env/prod"),
        "{err}"
    );
    assert_eq!(bad, before);
    // A document moved to another layer does not open.
    assert!(open_document(&mut d.clone(), &k, &n, &layer("env/dev")).is_err());
}

#[test]
fn sealed_values_inside_arrays_are_masked_counted_and_refused() {
    let k = keyring();
    let s = seal_at(&k, "webshop", "a", "list", &json!("x"));
    let mut d = doc(json!({"list": [1, s, {"deep": [s]}]}));
    assert_eq!(key_ids(&d).unwrap(), BTreeSet::from([kid("webshop#1")]));
    let err = open_document(&mut d.clone(), &k, &ns("webshop"), &layer("a")).unwrap_err();
    assert!(err.to_string().contains("inside an array"), "{err}");
    assert_eq!(mask(&mut d), 2);
    assert_eq!(
        Value::Object(d),
        json!({"list": [1, MASK, {"deep": [MASK]}]})
    );
}

#[test]
fn key_ids_refuses_malformed_sealed_values() {
    let d = doc(json!({"a": {"$sealed": {"v": 1}}}));
    let err = key_ids(&d).unwrap_err();
    assert!(err.to_string().contains("key a"), "{err}");
}

#[test]
fn the_default_secret_rule() {
    let rule = SecretRule::default();
    for (k, secret) in [
        ("password", true),
        ("db.password", true),
        ("db.PASSWORD", true),
        ("db.Passwd", true),
        ("secret", true),
        ("token", true),
        ("api_key", true),
        ("ApiKey", true),
        ("tls.private_key", true),
        ("db_password", true),
        ("github_token", true),
        ("webhook_SECRET", true),
        ("stripe_api_key", true),
        ("password.length", false),
        ("password_hint", false),
        ("tokens", false),
        ("secretary", false),
        ("token_ttl", false),
        ("db.host", false),
        ("\"é_token\"", true),
        ("\"ñ\"", false),
    ] {
        assert_eq!(rule.matches(&key(k)), secret, "{k}");
    }
    let custom: SecretRule = serde_json::from_value(json!({"names": ["dsn"]})).unwrap();
    assert!(custom.matches(&key("sentry.DSN")));
    assert!(
        custom.matches(&key("x_token")),
        "a missing field keeps its default"
    );
    assert!(serde_json::from_value::<SecretRule>(json!({"nmes": []})).is_err());
}

#[test]
fn seal_matching_seals_only_plain_matching_leaves() {
    let k = keyring();
    let (n, l) = (ns("webshop"), layer("defaults"));
    let mut d = doc(
        json!({"a": {"token": "t", "password": {"$delete": true}, "x": 1}, "secret": ["s1", "s2"]}),
    );
    assert_eq!(
        seal_matching(&mut d, &k, &n, &l, &SecretRule::default()).unwrap(),
        2
    );
    assert!(is_sealed(&d["a"]["token"]));
    assert!(is_sealed(&d["secret"]));
    assert_eq!(d["a"]["password"], json!({"$delete": true}));
    assert_eq!(
        seal_matching(&mut d, &k, &n, &l, &SecretRule::default()).unwrap(),
        0
    );
}

// --- the master key -----------------------------------------------------------

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
fn write_key_file(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(unix)]
#[test]
fn key_file_is_created_0600_and_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let key = MasterKey::generate_file(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.len(), 65);
    assert!(text.ends_with('\n'));

    let err = MasterKey::generate_file(&path).unwrap_err();
    assert!(matches!(err, Error::KeyFileExists { .. }), "{err}");
    assert!(err.to_string().contains("refusing to overwrite"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);

    // The loaded key is the generated one: a keyring wrapped by one unwraps with the other.
    let mut k = Keyring::new(key);
    k.rotate(&ns("webshop")).unwrap();
    let (loaded, created) = MasterKey::load_or_generate_file(&path).unwrap();
    assert!(!created);
    Keyring::from_wrapped(loaded, &k.to_wrapped()).unwrap();
    Keyring::from_wrapped(MasterKey::load_file(&path).unwrap(), &k.to_wrapped()).unwrap();

    let other = dir.path().join("other.key");
    let (_, created) = MasterKey::load_or_generate_file(&other).unwrap();
    assert!(created);
    assert_ne!(std::fs::read_to_string(&other).unwrap(), text);
}

#[cfg(unix)]
#[test]
fn key_file_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    let path_text = path.display().to_string();
    let load = |text: &str, mode: u32| {
        let _ = std::fs::remove_file(&path);
        write_key_file(&path, text, mode);
        MasterKey::load_file(&path).unwrap_err()
    };
    let problem = |err: Error| match err {
        Error::InvalidMasterKey { origin, problem } => {
            assert_eq!(origin, path_text);
            problem
        }
        other => panic!("{other}"),
    };
    assert_eq!(problem(load("", 0o600)), KeyProblem::Empty);
    assert_eq!(problem(load("\n", 0o400)), KeyProblem::Empty);
    assert_eq!(
        problem(load("abcd\n", 0o600)),
        KeyProblem::WrongLength { len: 2 }
    );
    assert_eq!(
        problem(load(&"ab".repeat(31), 0o600)),
        KeyProblem::WrongLength { len: 31 }
    );
    assert!(matches!(
        problem(load(&"0".repeat(64), 0o600)),
        KeyProblem::Weak {
            pattern: "all zeros"
        }
    ));
    let msg = load(&"0".repeat(64), 0o600).to_string();
    assert!(
        msg.contains(&path_text) && msg.contains("all zeros") && msg.contains("openssl rand"),
        "{msg}"
    );

    for m in [0o644, 0o640, 0o604, 0o660, 0o602, 0o610] {
        let err = load(MASTER_HEX, m);
        assert!(
            matches!(err, Error::KeyFilePermissions { mode, .. } if mode == m),
            "{m:o}: {err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(&path_text) && msg.contains(&format!("chmod 600 {path_text}")),
            "{msg}"
        );
    }
    // 0600 and 0400 load.
    for m in [0o600, 0o400] {
        let _ = std::fs::remove_file(&path);
        write_key_file(&path, MASTER_HEX, m);
        MasterKey::load_file(&path).unwrap();
    }

    let missing = dir.path().join("missing.key");
    let err = MasterKey::load_file(&missing).unwrap_err();
    assert!(
        matches!(&err, Error::KeyFileIo { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&missing.display().to_string()) && msg.contains("CONFSTRATA_MASTER_KEY"),
        "{msg}"
    );

    let err = MasterKey::load_file(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::KeyFileNotRegular { .. }
                | Error::KeyFileIo { .. }
                | Error::KeyFilePermissions { .. }
        ),
        "{err}"
    );
    let err = MasterKey::generate_file(&dir.path().join("no/such/dir/k")).unwrap_err();
    assert!(
        matches!(
            err,
            Error::KeyFileIo {
                action: "create",
                ..
            }
        ),
        "{err}"
    );
}

// --- nothing secret in Debug or errors ---------------------------------------

#[cfg(unix)]
#[test]
fn debug_never_shows_key_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let key = MasterKey::generate_file(&path).unwrap();
    let hex = std::fs::read_to_string(&path).unwrap().trim().to_owned();
    let bytes: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let forms = [
        hex.clone(),
        hex.to_uppercase(),
        B64.encode(&bytes),
        format!("{bytes:?}"),
        format!("{:?}", &bytes[..8]),
    ];

    let mut shown = vec![format!("{key:?}"), format!("{key:#?}")];
    assert_eq!(shown[0], "MasterKey(<redacted>)");
    let mut k = Keyring::new(key);
    k.rotate(&ns("webshop")).unwrap();
    shown.push(format!("{k:?}"));
    shown.push(format!("{k:#?}"));
    shown.push(format!("{:?}", k.to_wrapped()));
    for s in &shown {
        for f in &forms {
            assert!(!s.contains(f.as_str()), "{s} shows the key");
        }
    }
    assert!(shown[2].contains("webshop#1"), "{}", shown[2]);
    let from_text = MasterKey::from_text(&hex, "x").unwrap();
    assert!(!format!("{from_text:?}").contains(&hex));
}

#[test]
fn errors_and_debug_never_show_plaintext() {
    const CANARY: &str = "canary-7f1e-plaintext";
    let mut k = keyring();
    let (n, l) = (ns("webshop"), layer("defaults"));
    let v = seal_at(&k, "webshop", "defaults", "db.password", &json!(CANARY));
    let sealed = Sealed::from_value(&v).unwrap();
    let mut messages = vec![format!("{sealed:?}"), v.to_string()];
    let mut push = |r: Result<Value, Error>| {
        let e = r.unwrap_err();
        messages.push(e.to_string());
        messages.push(format!("{e:?}"));
    };
    push(open_at(&k, "webshop", "env/x", "db.password", &v));
    push(open_at(&k, "billing", "defaults", "db.password", &v));
    let mut ct = field_bytes(&v, "ct");
    ct[0] ^= 1;
    push(open_at(
        &k,
        "webshop",
        "defaults",
        "db.password",
        &with_field(&v, "ct", json!(B64.encode(&ct))),
    ));
    push(open(&k, &n, &l, &key("other"), &sealed));
    k.rotate(&n).unwrap();
    let mut d = doc(json!({"db": {"password": v.clone(), "other": v}}));
    messages.push(
        open_document(&mut d.clone(), &k, &n, &l)
            .unwrap_err()
            .to_string(),
    );
    messages.push(rewrap(&mut d, &k, &n, &l).unwrap_err().to_string());
    for m in &messages {
        assert!(!m.contains(CANARY), "{m}");
    }
}

#[test]
fn a_keyring_rewrapped_by_a_new_master_key_opens_everything_only_with_it() {
    let mut keyring = Keyring::new(master());
    keyring.rotate(&ns("webshop")).unwrap();
    let old = seal_at(&keyring, "webshop", "defaults", "a", &json!("x"));
    keyring.rotate(&ns("webshop")).unwrap();
    let new = MasterKey::generate().unwrap();
    let new_id = new.id().unwrap();
    assert_ne!(new_id, master().id().unwrap());
    assert_eq!(
        master().id().unwrap(),
        master().id().unwrap(),
        "ids are stable"
    );
    assert!(new_id.starts_with("mk-") && new_id.len() == 19, "{new_id}");
    let rewrapped = keyring.rewrapped(new).unwrap();
    assert_eq!(rewrapped.master_id().unwrap(), new_id);
    // The same data keys: what the old keyring sealed opens.
    assert_eq!(
        open_at(&rewrapped, "webshop", "defaults", "a", &old).unwrap(),
        "x"
    );
    let stored = rewrapped.to_wrapped();
    assert_ne!(stored, keyring.to_wrapped());
    // The stored form opens with the new master key only.
    let err = Keyring::from_wrapped(master(), &stored).unwrap_err();
    assert!(matches!(err, Error::WrongMasterKey { .. }), "{err}");
    assert_eq!(stored.keys().len(), 2);
}

#[test]
fn secrets_wrapped_by_the_master_key_open_only_with_it_and_for_their_purpose() {
    let secret = [7u8; 32];
    let wrapped = master().wrap_secret("audit key", &secret).unwrap();
    assert_ne!(
        wrapped,
        master().wrap_secret("audit key", &secret).unwrap(),
        "fresh nonces"
    );
    assert_eq!(
        *master().unwrap_secret("audit key", &wrapped).unwrap(),
        secret
    );
    for (key, purpose, text) in [
        (MasterKey::generate().unwrap(), "audit key", wrapped.clone()),
        (master(), "other", wrapped.clone()),
        (master(), "audit key", "not base64!".to_owned()),
        (master(), "audit key", B64.encode([1u8; 10])),
        (master(), "audit key", {
            let mut raw = B64.decode(&wrapped).unwrap();
            raw[30] ^= 1;
            B64.encode(raw)
        }),
    ] {
        let err = key.unwrap_secret(purpose, &text).unwrap_err().to_string();
        assert!(err.contains("the wrapped"), "{err}");
    }
}
