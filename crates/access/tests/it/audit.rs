//! The audit chain: a clean chain verifies; every kind of tampering is caught
//! at the first bad record, with what is wrong.

use confstrata_access::audit::{verify, verify_from};
use confstrata_access::{
    Action, AuditChain, AuditEntry, AuditKey, AuditRecord, ChainProblem, Detail, Error, KeyId, Mac,
    Outcome, Resource,
};
use confstrata_core::Timestamp;

use crate::{id, res};

const DB_PASSWORD: &[u8] = b"hunter2-canary-7f3a";

fn key() -> AuditKey {
    AuditKey::parse(&"2a".repeat(32)).unwrap()
}

fn chain(key: &AuditKey, n: u64) -> Vec<AuditRecord> {
    let mut chain = AuditChain::new(key.clone());
    (1..=n)
        .map(|i| {
            let mut e = AuditEntry::new(
                Timestamp(1_700_000_000_000 + i as i64),
                (i % 3 != 0).then(|| id("alice")),
                if i % 2 == 0 {
                    Action::Write
                } else {
                    Action::Read
                },
                res("payments:env/prod#db.password"),
                if i % 3 == 0 {
                    Outcome::Unauthenticated
                } else {
                    Outcome::Success
                },
            )
            .request_id(format!("req-{i}"))
            .detail("operation", "set");
            if i % 2 == 0 {
                e = e.revision(i * 10).secret_detail("value", key, DB_PASSWORD);
            }
            chain.append(e)
        })
        .collect()
}

#[track_caller]
fn broken(records: &[AuditRecord], key: &AuditKey) -> (usize, u64, ChainProblem) {
    match verify(records, key) {
        Err(Error::AuditChain {
            index,
            seq,
            problem,
        }) => (index, seq, problem),
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

#[test]
fn a_clean_chain_verifies_and_survives_serialization() {
    let k = key();
    let records = chain(&k, 6);
    assert_eq!(records[0].prev, Mac::ZERO);
    assert_eq!(records[1].prev, records[0].mac);
    let head = verify(&records, &k).unwrap().unwrap();
    assert_eq!(head.seq, 6);
    assert_eq!(head.mac, records[5].mac);
    assert_eq!(verify(&[], &k).unwrap(), None);

    let json = serde_json::to_string(&records).unwrap();
    let loaded: Vec<AuditRecord> = serde_json::from_str(&json).unwrap();
    assert_eq!(loaded, records);
    assert_eq!(verify(&loaded, &k).unwrap(), Some(head));

    // Page by page from a verified head.
    let first = verify(&records[..3], &k).unwrap();
    assert_eq!(verify_from(first, &records[3..], &k).unwrap(), Some(head));
}

#[test]
fn the_record_format_is_stable() {
    let k = key();
    let r = &chain(&k, 2)[1];
    let v = serde_json::to_value(r).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "action",
            "details",
            "key_id",
            "mac",
            "outcome",
            "prev",
            "principal",
            "request_id",
            "resource",
            "revision",
            "seq",
            "time"
        ]
    );
    assert_eq!(v["action"], "write");
    assert_eq!(v["resource"], "payments:env/prod#db.password");
    assert_eq!(
        v["details"]["operation"],
        serde_json::json!({"text": "set"})
    );
    assert_eq!(v["mac"].as_str().unwrap().len(), 64);
}

#[test]
fn secrets_appear_only_as_keyed_fingerprints() {
    let k = key();
    let records = chain(&k, 4);
    let json = serde_json::to_string(&records).unwrap();
    assert!(!json.contains(std::str::from_utf8(DB_PASSWORD).unwrap()));
    assert!(!json.contains(&hex(DB_PASSWORD)));
    let fp = k.fingerprint(DB_PASSWORD);
    assert_eq!(records[1].details["value"], Detail::Secret(fp));
    assert_eq!(records[3].details["value"], Detail::Secret(fp));
    // Another key gives another fingerprint: nothing to look up without the key.
    let other = AuditKey::parse(&"17".repeat(32)).unwrap();
    assert_ne!(other.fingerprint(DB_PASSWORD), fp);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn every_single_field_edit_is_caught_at_that_record() {
    let k = key();
    let clean = chain(&k, 5);
    type Edit = fn(&mut AuditRecord);
    type Expect = fn(&ChainProblem) -> bool;
    let edits: &[(&str, Edit, Expect)] = &[
        (
            "seq",
            |r| r.seq = 9,
            |p| *p == ChainProblem::UnexpectedSeq { expected: 2 },
        ),
        (
            "time",
            |r| r.time = Timestamp(r.time.0 + 1),
            |p| *p == ChainProblem::BadMac,
        ),
        (
            "principal (changed)",
            |r| r.principal = Some(id("mallory")),
            |p| *p == ChainProblem::BadMac,
        ),
        (
            "principal (removed)",
            |r| r.principal = None,
            |p| *p == ChainProblem::BadMac,
        ),
        (
            "action",
            |r| r.action = Action::Admin,
            |p| *p == ChainProblem::BadMac,
        ),
        (
            "resource",
            |r| r.resource = Resource::everything(),
            |p| *p == ChainProblem::BadMac,
        ),
        (
            "outcome",
            |r| r.outcome = Outcome::Denied,
            |p| *p == ChainProblem::BadMac,
        ),
        (
            "request_id",
            |r| r.request_id.push('x'),
            |p| *p == ChainProblem::BadMac,
        ),
        (
            "revision",
            |r| r.revision = Some(1),
            |p| *p == ChainProblem::BadMac,
        ),
        (
            "details (changed)",
            |r| {
                r.details
                    .insert("operation".into(), Detail::Text("delete".into()));
            },
            |p| *p == ChainProblem::BadMac,
        ),
        (
            "details (added)",
            |r| {
                r.details.insert("note".into(), Detail::Text(String::new()));
            },
            |p| *p == ChainProblem::BadMac,
        ),
        (
            "details (removed)",
            |r| r.details.clear(),
            |p| *p == ChainProblem::BadMac,
        ),
        (
            "details (secret fingerprint)",
            |r| {
                r.details
                    .insert("value".into(), Detail::Secret(key().fingerprint(b"other")));
            },
            |p| *p == ChainProblem::BadMac,
        ),
        (
            "key_id",
            |r| r.key_id = KeyId::parse("0011223344556677").unwrap(),
            |p| matches!(p, ChainProblem::WrongKey { .. }),
        ),
        (
            "prev",
            |r| r.prev = Mac::ZERO,
            |p| *p == ChainProblem::BrokenLink,
        ),
        ("mac", |r| r.mac = Mac::ZERO, |p| *p == ChainProblem::BadMac),
    ];
    for (field, edit, expected) in edits {
        let mut records = clean.clone();
        // Record seq 2 has every optional field set.
        edit(&mut records[1]);
        assert_ne!(records[1], clean[1], "{field}: the edit changed nothing");
        let (index, seq, problem) = broken(&records, &k);
        assert_eq!(index, 1, "{field}");
        assert_eq!(seq, records[1].seq, "{field}");
        assert!(expected(&problem), "{field}: {problem:?}");
    }
}

#[test]
fn moving_text_between_fields_is_caught() {
    // The encoding is length-prefixed, so shifting bytes from one string
    // field to its neighbour changes the MAC.
    let k = key();
    let mut records = chain(&k, 2);
    records[0].request_id = "req-".into();
    records[0]
        .details
        .insert("operation".into(), Detail::Text("1set".into()));
    assert_eq!(broken(&records, &k), (0, 1, ChainProblem::BadMac));
}

#[test]
fn a_deleted_record_is_caught() {
    let k = key();
    let mut records = chain(&k, 5);
    records.remove(2);
    assert_eq!(
        broken(&records, &k),
        (2, 4, ChainProblem::UnexpectedSeq { expected: 3 })
    );
    // Renumbering the rest to hide the gap breaks the MACs instead.
    for r in &mut records[2..] {
        r.seq -= 1;
    }
    assert_eq!(broken(&records, &k), (2, 3, ChainProblem::BrokenLink));
    // The first record deleted.
    let mut records = chain(&k, 3);
    records.remove(0);
    assert_eq!(
        broken(&records, &k),
        (0, 2, ChainProblem::UnexpectedSeq { expected: 1 })
    );
}

#[test]
fn an_inserted_record_is_caught() {
    let k = key();
    let clean = chain(&k, 4);
    // A forged record that fits the numbering and the link: its MAC cannot be made.
    let mut forged = clean[2].clone();
    forged.outcome = Outcome::Success;
    forged.request_id = "forged".into();
    let mut records = clean.clone();
    records.insert(2, forged);
    assert_eq!(broken(&records, &k), (2, 3, ChainProblem::BadMac));
    // A genuine record replayed elsewhere.
    let mut records = clean.clone();
    records.insert(3, clean[0].clone());
    assert_eq!(
        broken(&records, &k),
        (3, 1, ChainProblem::UnexpectedSeq { expected: 4 })
    );
}

#[test]
fn a_swapped_pair_is_caught() {
    let k = key();
    let mut records = chain(&k, 5);
    records.swap(1, 2);
    assert_eq!(
        broken(&records, &k),
        (1, 3, ChainProblem::UnexpectedSeq { expected: 2 })
    );
    // Swapping the seqs back does not help: the links are wrong.
    let (a, b) = (records[1].seq, records[2].seq);
    records[1].seq = b;
    records[2].seq = a;
    assert_eq!(broken(&records, &k), (1, 2, ChainProblem::BrokenLink));
}

#[test]
fn the_wrong_key_is_named_and_a_rebuilt_chain_does_not_verify() {
    let k = key();
    let records = chain(&k, 3);
    let wrong = AuditKey::parse(&"17".repeat(32)).unwrap();
    let (index, seq, problem) = broken(&records, &wrong);
    assert_eq!((index, seq), (0, 1));
    assert_eq!(
        problem,
        ChainProblem::WrongKey {
            record: k.id(),
            given: wrong.id()
        }
    );
    // Someone with database access but not the key rebuilds the whole chain
    // under a key of their own and copies the real key id in: caught at seq 1.
    let mut rebuilt = chain(&wrong, 3);
    for r in &mut rebuilt {
        r.key_id = k.id();
    }
    assert_eq!(broken(&rebuilt, &k), (0, 1, ChainProblem::BadMac));
    let err = verify(&rebuilt, &k).unwrap_err().to_string();
    assert_eq!(
        err,
        "audit chain broken at record seq 1 (position 0): its MAC does not match its contents: the record was edited or forged"
    );
}

#[test]
fn the_chain_can_resume_after_a_failed_write() {
    let k = key();
    let mut records = chain(&k, 2);
    let mut chain = AuditChain::resume(k.clone(), records.last().map(AuditRecord::head));
    let entry = AuditEntry::new(
        Timestamp(9),
        Some(id("alice")),
        Action::Write,
        res("x"),
        Outcome::Success,
    );
    // The store failed to write this one: the chain does not move.
    let lost = chain.next_record(entry.clone());
    assert_eq!(lost.seq, 3);
    assert_eq!(chain.head(), records.last().map(AuditRecord::head));
    let stored = chain.next_record(entry);
    chain.advance(&stored);
    records.push(stored);
    assert_eq!(verify(&records, &k).unwrap().unwrap().seq, 3);
}

#[test]
fn audit_keys_are_checked_and_never_shown() {
    let text = "2a".repeat(32);
    let k = AuditKey::parse(&format!("  {text}\n")).unwrap();
    assert!(!format!("{k:?}").contains(&text));
    assert!(format!("{k:?}").contains("redacted"));
    for bad in [
        "",
        "abc",
        &"zz".repeat(32),
        &"00".repeat(32),
        &"2a".repeat(33),
    ] {
        let err = AuditKey::parse(bad).unwrap_err();
        assert!(matches!(err, Error::InvalidAuditKey { .. }), "{bad}");
        if !bad.is_empty() {
            assert!(!err.to_string().contains(bad), "{err}");
        }
    }
    let (generated, text) = AuditKey::generate_with_text().unwrap();
    assert_eq!(AuditKey::parse(&text).unwrap().id(), generated.id());
}

#[test]
fn a_chain_whose_key_changed_verifies_with_every_key_and_not_without_one() {
    let old = key();
    let new = AuditKey::parse(&"5c".repeat(32)).unwrap();
    let mut records = chain(&old, 4);
    // The chain runs on under the new key from the last old record.
    let mut next = AuditChain::resume(new.clone(), Some(records[3].head()));
    for i in 0..3 {
        records.push(next.append(AuditEntry::new(
            Timestamp(1_800_000_000_000 + i),
            Some(id("bob")),
            Action::Admin,
            res("**"),
            Outcome::Success,
        )));
    }
    let head = confstrata_access::audit::verify_from_keys(
        None,
        &records,
        &new,
        std::slice::from_ref(&old),
    )
    .unwrap()
    .unwrap();
    assert_eq!(head.seq, 7);
    // Without the old key, the first record fails; with the old key only,
    // the first new one.
    for (current, older, at) in [(&new, vec![], 0), (&old, vec![], 4)] {
        match confstrata_access::audit::verify_from_keys(None, &records, current, &older) {
            Err(Error::AuditChain {
                index,
                problem: ChainProblem::WrongKey { .. },
                ..
            }) => assert_eq!(index, at),
            other => panic!("expected a wrong key at {at}, got {other:?}"),
        }
    }
    // A record moved across the change of key still breaks the chain.
    records.swap(3, 4);
    assert!(confstrata_access::audit::verify_from_keys(None, &records, &new, &[old]).is_err());
}
