//! The audit log: append-only records in a keyed hash chain.
//!
//! Each [`AuditRecord`] carries `prev`, the MAC of the record before it (all
//! zeros for the first, seq 1), and its own `mac`: BLAKE3 in keyed mode, under
//! a key derived from the [`AuditKey`], over a canonical encoding of every
//! other field and `prev`. The key lives outside the database (a key file or
//! an environment variable), so someone who can only write the database can
//! neither edit a record nor forge a new one without [`verify`] noticing.
//!
//! # Canonical encoding (version 1)
//!
//! The MAC input is, in this order: the 20 bytes `confstrata-audit-v1\0`;
//! `seq` (u64); `key_id` (8 bytes); `prev` (32 bytes); `time` (i64,
//! milliseconds); `principal` (a presence byte 0/1, then a string);
//! `action`, `resource` (its text form), `outcome`, `request_id` (strings);
//! `revision` (a presence byte, then u64); the number of `details` (u64), then
//! for each, in key order, the key (string), a tag byte (0 text, 1 secret)
//! and the value (a string, or the 32 fingerprint bytes). Integers are
//! big-endian; a string is its byte length (u64) then its UTF-8 bytes. Every
//! field has a fixed size or a length in front, so no two records encode
//! alike.
//!
//! # What the chain does not catch alone
//!
//! Deleting the newest records leaves a shorter chain that still verifies.
//! Compare the verified head ([`verify`]'s result) with a head kept elsewhere
//! (a monitoring system, a periodic export) to detect that.

use std::collections::BTreeMap;
use std::fmt;

use confstrata_core::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::action::Action;
use crate::error::{Error, Result, shown};
use crate::name::PrincipalId;
use crate::pattern::Resource;

const DOMAIN: &[u8; 20] = b"confstrata-audit-v1\0";
const MAC_CONTEXT: &str = "confstrata 2026 audit chain MAC v1";
const FINGERPRINT_CONTEXT: &str = "confstrata 2026 audit secret fingerprint v1";
const KEY_ID_CONTEXT: &str = "confstrata 2026 audit key id v1";

/// The secret that keys the audit chain. Keep it out of the database.
///
/// Two sub-keys are derived from it with BLAKE3's key derivation: one for
/// record MACs and one for [secret fingerprints](AuditKey::fingerprint).
/// `Debug` never shows it; it is wiped from memory on drop.
#[derive(Clone)]
pub struct AuditKey {
    mac: [u8; 32],
    fingerprint: [u8; 32],
    id: KeyId,
}

impl AuditKey {
    /// Length of the key material in bytes.
    pub const LEN: usize = 32;

    /// Makes a new random key.
    pub fn generate() -> Result<AuditKey> {
        let mut bytes = Zeroizing::new([0u8; Self::LEN]);
        getrandom::fill(&mut *bytes).map_err(|source| Error::Randomness { source })?;
        AuditKey::from_bytes(&bytes)
    }

    /// A key from 32 bytes of key material; all zeros (an unset key) is refused.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<AuditKey> {
        if bytes.iter().all(|&b| b == 0) {
            return Err(Error::InvalidAuditKey {
                reason: "it is all zeros; generate a random key".into(),
            });
        }
        let id = blake3::derive_key(KEY_ID_CONTEXT, bytes);
        let mut short = [0u8; 8];
        short.copy_from_slice(&id[..8]);
        Ok(AuditKey {
            mac: blake3::derive_key(MAC_CONTEXT, bytes),
            fingerprint: blake3::derive_key(FINGERPRINT_CONTEXT, bytes),
            id: KeyId(short),
        })
    }

    /// Parses the text of a key file or environment variable: 64 hex digits,
    /// surrounding whitespace ignored. The error never contains the text.
    pub fn parse(text: &str) -> Result<AuditKey> {
        let text = text.trim();
        let mut bytes = Zeroizing::new([0u8; Self::LEN]);
        if hex::decode_to_slice(text, &mut *bytes).is_err() {
            return Err(Error::InvalidAuditKey {
                reason: format!(
                    "expected 64 hex digits, found {} characters that are not; make one with `openssl rand -hex 32`",
                    text.chars().count()
                ),
            });
        }
        AuditKey::from_bytes(&bytes)
    }

    /// Makes a new random key and returns it with its text (64 hex digits),
    /// to write once to a key file.
    pub fn generate_with_text() -> Result<(AuditKey, Zeroizing<String>)> {
        let mut bytes = Zeroizing::new([0u8; Self::LEN]);
        getrandom::fill(&mut *bytes).map_err(|source| Error::Randomness { source })?;
        let key = AuditKey::from_bytes(&bytes)?;
        Ok((key, Zeroizing::new(hex::encode(*bytes))))
    }

    /// The key's public id, stored in each record so that verifying with the
    /// wrong key says so.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// A keyed hash of a secret value, the only form in which a secret may
    /// enter a record: equal secrets give equal fingerprints under one key,
    /// and without the key nothing can be learnt or guessed from it.
    pub fn fingerprint(&self, secret: &[u8]) -> SecretFingerprint {
        SecretFingerprint(*blake3::keyed_hash(&self.fingerprint, secret).as_bytes())
    }
}

impl Drop for AuditKey {
    fn drop(&mut self) {
        self.mac.zeroize();
        self.fingerprint.zeroize();
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuditKey(id {}, redacted)", self.id)
    }
}

macro_rules! hex_bytes {
    ($(#[$doc:meta])* $name:ident, $n:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Eq)]
        pub struct $name([u8; $n]);

        impl $name {
            /// From raw bytes (as a store returns them).
            pub fn from_bytes(bytes: [u8; $n]) -> Self {
                $name(bytes)
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $n] {
                &self.0
            }

            /// Parses the hex text form.
            pub fn parse(text: &str) -> Result<Self> {
                let mut out = [0u8; $n];
                hex::decode_to_slice(text, &mut out).map_err(|_| Error::InvalidHex {
                    kind: $kind,
                    input: shown(text),
                    expected: 2 * $n,
                })?;
                Ok($name(out))
            }
        }

        impl PartialEq for $name {
            /// Constant-time.
            fn eq(&self, other: &Self) -> bool {
                self.0.ct_eq(&other.0).into()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), hex::encode(self.0))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_bytes!(
    /// A record's MAC (32 bytes, 64 hex digits). Compared in constant time.
    Mac,
    32,
    "MAC"
);

hex_bytes!(
    /// A keyed hash of a secret value (see [`AuditKey::fingerprint`]).
    SecretFingerprint,
    32,
    "secret fingerprint"
);

hex_bytes!(
    /// The public id of an [`AuditKey`] (8 bytes, 16 hex digits).
    KeyId,
    8,
    "audit key id"
);

impl Mac {
    /// The `prev` of the first record.
    pub const ZERO: Mac = Mac([0; 32]);
}

/// What came of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Outcome {
    /// Authorized and done.
    Success,
    /// Authorized, but the operation failed (a conflict, a validation error).
    Failed,
    /// Refused by the policy.
    Denied,
    /// The token was missing, malformed, unknown or revoked.
    Unauthenticated,
}

impl Outcome {
    /// The text form: `success`, `failed`, `denied`, `unauthenticated`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failed => "failed",
            Outcome::Denied => "denied",
            Outcome::Unauthenticated => "unauthenticated",
        }
    }
}

/// A value in a record's `details`. There is deliberately no way to store a
/// secret's plaintext: secrets go in as [`SecretFingerprint`]s.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Detail {
    /// Plain, non-secret text (an operation name, a change message, a reason).
    Text(String),
    /// A secret value, as its keyed hash.
    Secret(SecretFingerprint),
}

/// What the caller supplies for a new record; [`AuditChain`] adds `seq`,
/// `key_id`, `prev` and `mac`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// When it happened.
    pub time: Timestamp,
    /// Who, if authenticated.
    pub principal: Option<PrincipalId>,
    /// The action asked for.
    pub action: Action,
    /// What it touched.
    pub resource: Resource,
    /// What came of it.
    pub outcome: Outcome,
    /// The request id, to join with logs.
    pub request_id: String,
    /// The revision committed (or read at), if any.
    pub revision: Option<u64>,
    /// Anything else (operation, message, refusal cause, secret fingerprints).
    pub details: BTreeMap<String, Detail>,
}

impl AuditEntry {
    /// An entry with no request id, revision or details.
    pub fn new(
        time: Timestamp,
        principal: Option<PrincipalId>,
        action: Action,
        resource: Resource,
        outcome: Outcome,
    ) -> AuditEntry {
        AuditEntry {
            time,
            principal,
            action,
            resource,
            outcome,
            request_id: String::new(),
            revision: None,
            details: BTreeMap::new(),
        }
    }

    /// Sets the request id.
    pub fn request_id(mut self, id: impl Into<String>) -> AuditEntry {
        self.request_id = id.into();
        self
    }

    /// Sets the revision.
    pub fn revision(mut self, revision: u64) -> AuditEntry {
        self.revision = Some(revision);
        self
    }

    /// Adds a plain-text detail.
    pub fn detail(mut self, key: impl Into<String>, text: impl Into<String>) -> AuditEntry {
        self.details.insert(key.into(), Detail::Text(text.into()));
        self
    }

    /// Adds a secret detail, stored only as its keyed fingerprint.
    pub fn secret_detail(
        mut self,
        key: impl Into<String>,
        audit_key: &AuditKey,
        secret: &[u8],
    ) -> AuditEntry {
        self.details
            .insert(key.into(), Detail::Secret(audit_key.fingerprint(secret)));
        self
    }
}

/// One record of the audit log, as stored. Serialize it (JSON, or one column
/// per field) and load it back unchanged to verify it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Position in the chain: 1, 2, 3, … with no gaps.
    pub seq: u64,
    /// When it happened.
    pub time: Timestamp,
    /// Who, if authenticated.
    pub principal: Option<PrincipalId>,
    /// The action asked for.
    pub action: Action,
    /// What it touched.
    pub resource: Resource,
    /// What came of it.
    pub outcome: Outcome,
    /// The request id.
    pub request_id: String,
    /// The revision, if any.
    pub revision: Option<u64>,
    /// Anything else; secrets only as fingerprints.
    pub details: BTreeMap<String, Detail>,
    /// The id of the key that sealed it.
    pub key_id: KeyId,
    /// The MAC of the record before ([`Mac::ZERO`] for seq 1).
    pub prev: Mac,
    /// The keyed hash of all the fields above.
    pub mac: Mac,
}

impl AuditRecord {
    /// The chain position after this record.
    pub fn head(&self) -> Head {
        Head {
            seq: self.seq,
            mac: self.mac,
        }
    }

    /// Computes the MAC this record should have under `key`.
    fn compute_mac(&self, key: &AuditKey) -> Mac {
        let mut h = blake3::Hasher::new_keyed(&key.mac);
        h.update(DOMAIN);
        h.update(&self.seq.to_be_bytes());
        h.update(&self.key_id.0);
        h.update(&self.prev.0);
        h.update(&self.time.0.to_be_bytes());
        match &self.principal {
            None => {
                h.update(&[0]);
            }
            Some(p) => {
                h.update(&[1]);
                put_str(&mut h, p.as_str());
            }
        }
        put_str(&mut h, self.action.as_str());
        put_str(&mut h, &self.resource.to_string());
        put_str(&mut h, self.outcome.as_str());
        put_str(&mut h, &self.request_id);
        match self.revision {
            None => {
                h.update(&[0]);
            }
            Some(r) => {
                h.update(&[1]);
                h.update(&r.to_be_bytes());
            }
        }
        h.update(&(self.details.len() as u64).to_be_bytes());
        for (k, v) in &self.details {
            put_str(&mut h, k);
            match v {
                Detail::Text(t) => {
                    h.update(&[0]);
                    put_str(&mut h, t);
                }
                Detail::Secret(s) => {
                    h.update(&[1]);
                    h.update(&s.0);
                }
            }
        }
        Mac(*h.finalize().as_bytes())
    }
}

fn put_str(h: &mut blake3::Hasher, s: &str) {
    h.update(&(s.len() as u64).to_be_bytes());
    h.update(s.as_bytes());
}

/// The end of a chain: the last record's seq and MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The last record's seq.
    pub seq: u64,
    /// The last record's MAC.
    pub mac: Mac,
}

/// Makes the records of one chain.
///
/// ```
/// use confstrata_access::{audit, Action, AuditChain, AuditEntry, AuditKey, Outcome, Resource};
/// use confstrata_core::Timestamp;
///
/// let key = AuditKey::generate().unwrap();
/// let mut chain = AuditChain::new(key.clone());
/// let entry = AuditEntry::new(Timestamp(0), None, Action::Read, Resource::everything(), Outcome::Unauthenticated);
/// let records = vec![chain.append(entry.clone()), chain.append(entry)];
/// assert_eq!(audit::verify(&records, &key).unwrap().unwrap().seq, 2);
///
/// let mut forged = records.clone();
/// forged[0].outcome = Outcome::Success;
/// let err = audit::verify(&forged, &key).unwrap_err();
/// assert!(err.to_string().starts_with("audit chain broken at record seq 1"));
/// ```
#[derive(Debug, Clone)]
pub struct AuditChain {
    key: AuditKey,
    head: Option<Head>,
}

impl AuditChain {
    /// A new, empty chain: the first record will be seq 1.
    pub fn new(key: AuditKey) -> AuditChain {
        AuditChain { key, head: None }
    }

    /// Continues a stored chain after its last record (`None` if it is
    /// empty). Use it at start-up and after a failed write, with the last
    /// record the store actually holds.
    pub fn resume(key: AuditKey, last: Option<Head>) -> AuditChain {
        AuditChain { key, head: last }
    }

    /// The last record appended (or resumed from).
    pub fn head(&self) -> Option<Head> {
        self.head
    }

    /// The record that would come next, without advancing the chain: for a
    /// store that writes it in the same transaction as the change, then calls
    /// [`advance`](AuditChain::advance) once that transaction committed.
    pub fn next_record(&self, entry: AuditEntry) -> AuditRecord {
        let (seq, prev) = match self.head {
            // Saturating: 2^64 records cannot be written; `verify` would flag the repeat anyway.
            Some(h) => (h.seq.saturating_add(1), h.mac),
            None => (1, Mac::ZERO),
        };
        let AuditEntry {
            time,
            principal,
            action,
            resource,
            outcome,
            request_id,
            revision,
            details,
        } = entry;
        let mut record = AuditRecord {
            seq,
            time,
            principal,
            action,
            resource,
            outcome,
            request_id,
            revision,
            details,
            key_id: self.key.id,
            prev,
            mac: Mac::ZERO,
        };
        record.mac = record.compute_mac(&self.key);
        record
    }

    /// Moves the head to `record` (made by [`next_record`](AuditChain::next_record) and stored).
    pub fn advance(&mut self, record: &AuditRecord) {
        self.head = Some(record.head());
    }

    /// Makes the next record and advances the chain to it.
    pub fn append(&mut self, entry: AuditEntry) -> AuditRecord {
        let record = self.next_record(entry);
        self.advance(&record);
        record
    }
}

/// What is wrong with the first bad record of a chain.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainProblem {
    /// Its seq is not the one that follows the record before it.
    UnexpectedSeq {
        /// The seq that should be there.
        expected: u64,
    },
    /// Its `prev` is not the MAC of the record before it.
    BrokenLink,
    /// It was sealed with a different key than the one given.
    WrongKey {
        /// The key id stored in the record.
        record: KeyId,
        /// The id of the key given to `verify`.
        given: KeyId,
    },
    /// Its MAC does not match its contents.
    BadMac,
}

impl fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainProblem::UnexpectedSeq { expected } => write!(
                f,
                "seq {expected} was expected here: a record was deleted, inserted or moved"
            ),
            ChainProblem::BrokenLink => f.write_str(
                "its prev is not the MAC of the record before it: a record was deleted, inserted or moved, or prev was edited",
            ),
            ChainProblem::WrongKey { record, given } => write!(
                f,
                "it names audit key {record} but the key given is {given}: use the right key (or key_id was edited)"
            ),
            ChainProblem::BadMac => f.write_str(
                "its MAC does not match its contents: the record was edited or forged",
            ),
        }
    }
}

/// Verifies a whole chain from its first record (seq 1). Returns the head
/// (`None` for no records), or [`Error::AuditChain`] naming the first bad
/// record and what is wrong with it.
pub fn verify(records: &[AuditRecord], key: &AuditKey) -> Result<Option<Head>> {
    verify_from(None, records, key)
}

/// Verifies records that continue the chain after `after` (a head verified
/// before, or `None` for the start): for checking a chain page by page.
pub fn verify_from(
    after: Option<Head>,
    records: &[AuditRecord],
    key: &AuditKey,
) -> Result<Option<Head>> {
    verify_from_keys(after, records, key, &[])
}

/// [`verify_from`] for a chain whose key has changed over time (the master
/// key it derives from was rotated): each record is checked under the key
/// its `key_id` names, `current` or one of `older`. The chain runs on
/// across a change of key: the first record under a new key links to the
/// last one under the old. A record naming a key not given fails with
/// [`ChainProblem::WrongKey`].
pub fn verify_from_keys(
    after: Option<Head>,
    records: &[AuditRecord],
    current: &AuditKey,
    older: &[AuditKey],
) -> Result<Option<Head>> {
    let mut head = after;
    for (index, r) in records.iter().enumerate() {
        let fail = |problem| Error::AuditChain {
            index,
            seq: r.seq,
            problem,
        };
        let (expected, prev) = match head {
            Some(h) => (h.seq.saturating_add(1), h.mac),
            None => (1, Mac::ZERO),
        };
        let Some(key) = std::iter::once(current)
            .chain(older)
            .find(|k| k.id == r.key_id)
        else {
            return Err(fail(ChainProblem::WrongKey {
                record: r.key_id,
                given: current.id,
            }));
        };
        if r.seq != expected {
            return Err(fail(ChainProblem::UnexpectedSeq { expected }));
        }
        if r.prev != prev {
            return Err(fail(ChainProblem::BrokenLink));
        }
        if r.compute_mac(key) != r.mac {
            return Err(fail(ChainProblem::BadMac));
        }
        head = Some(r.head());
    }
    Ok(head)
}
