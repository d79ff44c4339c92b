//! Sealed values: one leaf's ciphertext, bound to its place.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, Payload};
use confstrata_core::{KeyPath, LayerPath, NamespaceName};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keyring::{KeyId, Keyring};

/// The one key of a sealed value's table: `{ "$sealed": { ... } }`.
pub const SEALED_KEY: &str = "$sealed";

/// The sealed form's version, the `v` field.
pub const SEALED_VERSION: u64 = 1;

/// Length of an XChaCha20-Poly1305 nonce, in bytes.
pub const NONCE_LEN: usize = 24;

/// Length of the Poly1305 tag at the end of every ciphertext, in bytes.
pub const TAG_LEN: usize = 16;

/// What callers without the right to read secrets see instead of a sealed value.
pub const MASK: &str = "<sealed>";

/// Domain separation for sealed values' associated data.
const SEAL_AAD_PREFIX: &[u8] = b"confstrata/sealed/v1\0";

/// One sealed value: the key id, the nonce and the ciphertext (with its tag).
///
/// Inside a layer document it is the table
/// `{ "$sealed": { "v": 1, "kid": "webshop#3", "nonce": "<base64>", "ct": "<base64>" } }`
/// ([`Sealed::to_value`], [`Sealed::from_value`]). Holding a `Sealed` proves
/// the form is well formed (version, key id, nonce length, ciphertext at least
/// a tag long), not that it opens.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    key_id: KeyId,
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Sealed({}, {} bytes)",
            self.key_id,
            self.ciphertext.len()
        )
    }
}

impl Sealed {
    /// The id of the data key that sealed it.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The nonce.
    pub fn nonce(&self) -> &[u8; NONCE_LEN] {
        &self.nonce
    }

    /// The ciphertext, tag included.
    pub fn ciphertext(&self) -> &[u8] {
        &self.ciphertext
    }

    /// The form stored in a layer document.
    pub fn to_value(&self) -> Value {
        let mut inner = Map::new();
        inner.insert("v".into(), Value::from(SEALED_VERSION));
        inner.insert("kid".into(), Value::String(self.key_id.to_string()));
        inner.insert("nonce".into(), Value::String(B64.encode(self.nonce)));
        inner.insert("ct".into(), Value::String(B64.encode(&self.ciphertext)));
        let mut outer = Map::new();
        outer.insert(SEALED_KEY.into(), Value::Object(inner));
        Value::Object(outer)
    }

    /// Parses the stored form. Anything but a well-formed version-1 sealed
    /// table is an error that says what is wrong (never a panic).
    pub fn from_value(value: &Value) -> Result<Sealed> {
        Sealed::parse(value, "sealed value")
    }

    pub(crate) fn parse(value: &Value, place: &str) -> Result<Sealed> {
        let malformed = |reason: String| Error::MalformedSealed {
            place: place.to_owned(),
            reason,
        };
        let Value::Object(outer) = value else {
            return Err(malformed(format!(
                "expected a table, found {}",
                kind(value)
            )));
        };
        if let Some(other) = outer.keys().find(|k| *k != SEALED_KEY) {
            return Err(malformed(format!(
                "unexpected key {:?} next to {SEALED_KEY:?}",
                short(other)
            )));
        }
        let Some(inner) = outer.get(SEALED_KEY) else {
            return Err(malformed(format!("no {SEALED_KEY:?} key")));
        };
        let Value::Object(inner) = inner else {
            return Err(malformed(format!(
                "{SEALED_KEY:?} must be a table, found {}",
                kind(inner)
            )));
        };
        let version = match inner.get("v") {
            None => return Err(malformed("missing field \"v\" (the format version)".into())),
            Some(v) => v.as_u64().ok_or_else(|| {
                malformed(format!("\"v\" must be a whole number, found {}", kind(v)))
            })?,
        };
        if version != SEALED_VERSION {
            return Err(Error::UnsupportedVersion {
                place: place.to_owned(),
                version,
            });
        }
        if let Some(other) = inner
            .keys()
            .find(|k| !matches!(k.as_str(), "v" | "kid" | "nonce" | "ct"))
        {
            return Err(malformed(format!("unknown field {:?}", short(other))));
        }
        let text = |field: &str| -> Result<&str> {
            match inner.get(field) {
                None => Err(malformed(format!("missing field {field:?}"))),
                Some(Value::String(s)) => Ok(s),
                Some(v) => Err(malformed(format!(
                    "{field:?} must be a string, found {}",
                    kind(v)
                ))),
            }
        };
        let key_id = KeyId::parse(text("kid")?).map_err(|e| malformed(format!("\"kid\": {e}")))?;
        let nonce = B64
            .decode(text("nonce")?)
            .map_err(|_| malformed("\"nonce\" is not base64".into()))?;
        let nonce: [u8; NONCE_LEN] =
            nonce
                .as_slice()
                .try_into()
                .map_err(|_| Error::NonceLength {
                    place: place.to_owned(),
                    len: nonce.len(),
                    expected: NONCE_LEN,
                })?;
        let ciphertext = B64
            .decode(text("ct")?)
            .map_err(|_| malformed("\"ct\" is not base64".into()))?;
        if ciphertext.len() < TAG_LEN {
            return Err(Error::Truncated {
                place: place.to_owned(),
                len: ciphertext.len(),
                min: TAG_LEN,
            });
        }
        Ok(Sealed {
            key_id,
            nonce,
            ciphertext,
        })
    }
}

/// Whether `value` is a sealed value's table: a table whose only key is
/// `$sealed`. A malformed one counts too, so that it is reported as an
/// error rather than passed off as configuration.
pub fn is_sealed(value: &Value) -> bool {
    match value {
        Value::Object(m) => m.len() == 1 && m.contains_key(SEALED_KEY),
        _ => false,
    }
}

/// Seals `plaintext` (any JSON value) for the key `key` of layer `layer` in
/// `namespace`, under the namespace's current data key, with a fresh random
/// nonce.
///
/// Fails with [`Error::NoDataKey`] if the namespace has no key yet (rotate
/// once), and [`Error::NotSealable`] for a delete marker or a value that is
/// already sealed.
pub fn seal(
    keyring: &Keyring,
    namespace: &NamespaceName,
    layer: &LayerPath,
    key: &KeyPath,
    plaintext: &Value,
) -> Result<Sealed> {
    let place = || place(namespace, layer, key);
    if is_sealed(plaintext) {
        return Err(Error::NotSealable {
            place: place(),
            what: "a value that is already sealed",
        });
    }
    if confstrata_core::doc::is_delete_marker(plaintext) {
        return Err(Error::NotSealable {
            place: place(),
            what: "a delete marker",
        });
    }
    let key_id = keyring
        .current(namespace)
        .ok_or_else(|| Error::NoDataKey {
            namespace: namespace.to_string(),
        })?
        .clone();
    let cipher = keyring.cipher(&key_id).ok_or_else(|| Error::UnknownKeyId {
        place: place(),
        key_id: key_id.to_string(),
    })?;
    let msg = Zeroizing::new(
        serde_json::to_vec(plaintext).map_err(|_| Error::NotSealable {
            place: place(),
            what: "a value that cannot be written as JSON",
        })?,
    );
    let nonce = random_nonce()?;
    let ciphertext = cipher
        .encrypt(
            &nonce.into(),
            Payload {
                msg: &msg,
                aad: &aad(namespace, layer, key, &key_id),
            },
        )
        .map_err(|_| Error::NotSealable {
            place: place(),
            what: "a value this large",
        })?;
    Ok(Sealed {
        key_id,
        nonce,
        ciphertext,
    })
}

/// Opens a sealed value found at key `key` of layer `layer` in `namespace`.
///
/// Fails with [`Error::Integrity`] if the ciphertext, nonce or key id was
/// altered or the value was copied from another layer or key;
/// [`Error::ForeignKeyId`] if it was sealed for another namespace;
/// [`Error::UnknownKeyId`] if the keyring lacks its key. Nothing unverified
/// is ever returned.
pub fn open(
    keyring: &Keyring,
    namespace: &NamespaceName,
    layer: &LayerPath,
    key: &KeyPath,
    sealed: &Sealed,
) -> Result<Value> {
    open_at(
        keyring,
        namespace,
        layer,
        key,
        sealed,
        &place(namespace, layer, key),
    )
}

/// [`Sealed::from_value`] then [`open`]: opens the stored form of a sealed
/// value, naming the place in every error.
pub fn open_value(
    keyring: &Keyring,
    namespace: &NamespaceName,
    layer: &LayerPath,
    key: &KeyPath,
    value: &Value,
) -> Result<Value> {
    let place = place(namespace, layer, key);
    let sealed = Sealed::parse(value, &place)?;
    open_at(keyring, namespace, layer, key, &sealed, &place)
}

fn open_at(
    keyring: &Keyring,
    namespace: &NamespaceName,
    layer: &LayerPath,
    key: &KeyPath,
    sealed: &Sealed,
    place: &str,
) -> Result<Value> {
    let key_id = &sealed.key_id;
    if key_id.namespace() != namespace {
        return Err(Error::ForeignKeyId {
            place: place.to_owned(),
            key_id: key_id.to_string(),
            key_namespace: key_id.namespace().to_string(),
        });
    }
    let cipher = keyring.cipher(key_id).ok_or_else(|| Error::UnknownKeyId {
        place: place.to_owned(),
        key_id: key_id.to_string(),
    })?;
    let plain = Zeroizing::new(
        cipher
            .decrypt(
                &sealed.nonce.into(),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad(namespace, layer, key, key_id),
                },
            )
            .map_err(|_| Error::Integrity {
                place: place.to_owned(),
                key_id: key_id.to_string(),
            })?,
    );
    // Authenticated, so only a faulty writer holding the key could get here;
    // serde_json's message is dropped because it may quote the content.
    serde_json::from_slice(&plain).map_err(|_| Error::MalformedSealed {
        place: place.to_owned(),
        reason: "the decrypted content is not JSON".into(),
    })
}

/// The associated data of a sealed value: a domain prefix, then namespace,
/// layer, each key path segment and the key id, each length-prefixed, so no
/// two different places encode the same bytes.
pub(crate) fn aad(
    namespace: &NamespaceName,
    layer: &LayerPath,
    key: &KeyPath,
    key_id: &KeyId,
) -> Vec<u8> {
    let kid = key_id.to_string();
    let mut out = Vec::with_capacity(
        SEAL_AAD_PREFIX.len()
            + namespace.as_str().len()
            + layer.as_str().len()
            + key.segments().iter().map(|s| s.len() + 8).sum::<usize>()
            + kid.len()
            + 40,
    );
    out.extend_from_slice(SEAL_AAD_PREFIX);
    push_field(&mut out, namespace.as_str().as_bytes());
    push_field(&mut out, layer.as_str().as_bytes());
    out.extend_from_slice(&(key.segments().len() as u64).to_be_bytes());
    for seg in key.segments() {
        push_field(&mut out, seg.as_bytes());
    }
    push_field(&mut out, kid.as_bytes());
    out
}

/// Appends `bytes` with its length as 8 big-endian bytes in front.
pub(crate) fn push_field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A fresh random nonce from the operating system.
pub(crate) fn random_nonce() -> Result<[u8; NONCE_LEN]> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(Error::random)?;
    Ok(nonce)
}

/// How errors name a sealed value's place.
pub(crate) fn place(namespace: &NamespaceName, layer: &LayerPath, key: &KeyPath) -> String {
    format!("key {key} of layer {namespace}:{layer}")
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

fn short(s: &str) -> String {
    s.chars().take(40).collect()
}
