//! Envelope keys: per-namespace data keys, wrapped by the master key.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, Payload};
use confstrata_core::NamespaceName;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::key::{KEY_LEN, MasterKey, cipher_from, random_key};
use crate::sealed::{NONCE_LEN, random_nonce};

/// Domain separation for wrapped data keys (never equal to a sealed value's).
const WRAP_AAD_PREFIX: &[u8] = b"confstrata/data-key/v1\0";

/// The version of [`WrappedKeyring`]'s serialized form.
pub const KEYRING_VERSION: u32 = 1;

/// The id of one data key: `<namespace>#<n>`, for example `webshop#3`.
///
/// `n` counts up from 1 per namespace and is never reused within a keyring.
/// Namespace names cannot contain `#`, so the text form is unambiguous.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId {
    namespace: NamespaceName,
    number: u32,
}

impl KeyId {
    /// The key id `namespace#number` (`number` ≥ 1).
    pub fn new(namespace: NamespaceName, number: u32) -> Result<KeyId> {
        if number == 0 {
            return Err(Error::InvalidKeyId {
                input: format!("{namespace}#0"),
                reason: "key numbers start at 1".into(),
            });
        }
        Ok(KeyId { namespace, number })
    }

    /// Parses `<namespace>#<n>`.
    ///
    /// ```
    /// use confstrata_crypto::KeyId;
    /// let id: KeyId = "shared/logging#12".parse().unwrap();
    /// assert_eq!(id.namespace().as_str(), "shared/logging");
    /// assert_eq!(id.number(), 12);
    /// assert!("webshop".parse::<KeyId>().is_err());
    /// assert!("webshop#01".parse::<KeyId>().is_err());
    /// ```
    pub fn parse(input: &str) -> Result<KeyId> {
        let err = |reason: &str| Error::InvalidKeyId {
            input: input.chars().take(80).collect(),
            reason: reason.to_owned(),
        };
        let (ns, n) = input
            .rsplit_once('#')
            .ok_or_else(|| err("expected <namespace>#<number>"))?;
        let namespace = NamespaceName::parse(ns).map_err(|e| err(&e.to_string()))?;
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || n.starts_with('0') {
            return Err(err(
                "the number after '#' must be a decimal number from 1, without leading zeros",
            ));
        }
        let number = n
            .parse()
            .map_err(|_| err("the number after '#' is too large"))?;
        Ok(KeyId { namespace, number })
    }

    /// The namespace whose values this key seals.
    pub fn namespace(&self) -> &NamespaceName {
        &self.namespace
    }

    /// The key's number within its namespace (1, 2, ...).
    pub fn number(&self) -> u32 {
        self.number
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.namespace, self.number)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

confstrata_core::text_serde!(KeyId, Error);

/// One data key as stored: wrapped (XChaCha20-Poly1305) by the master key,
/// with the key id bound into the associated data, so a wrapped key cannot
/// be passed off under another id.
///
/// Safe to store in the database: without the master key it reveals nothing.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrappedKey {
    kid: KeyId,
    /// Base64 of the 24-byte nonce.
    nonce: String,
    /// Base64 of the encrypted 32-byte key and its 16-byte tag.
    key: String,
}

impl WrappedKey {
    /// The key's id.
    pub fn key_id(&self) -> &KeyId {
        &self.kid
    }
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WrappedKey({})", self.kid)
    }
}

/// The storable form of a [`Keyring`]: every data key wrapped, the master
/// key absent. Serialize it with serde (JSON:
/// `{"v":1,"keys":[{"kid":"webshop#1","nonce":"…","key":"…"}]}`), or store
/// each [`WrappedKey`] as a row and rebuild with [`WrappedKeyring::from_keys`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrappedKeyring {
    v: u32,
    keys: Vec<WrappedKey>,
}

impl WrappedKeyring {
    /// A stored keyring made of these wrapped keys.
    pub fn from_keys(keys: Vec<WrappedKey>) -> WrappedKeyring {
        WrappedKeyring {
            v: KEYRING_VERSION,
            keys,
        }
    }

    /// The wrapped keys, in key id order.
    pub fn keys(&self) -> &[WrappedKey] {
        &self.keys
    }
}

struct DataKey {
    cipher: XChaCha20Poly1305,
    wrapped: WrappedKey,
}

/// The master key and every namespace's data keys, unwrapped in memory.
///
/// A namespace's *current* key, the one new seals use, is its highest
/// numbered key. [`Keyring::rotate`] adds a new current key; older keys stay
/// for opening what they sealed until [`Keyring::retire`] removes them.
/// Persist [`Keyring::to_wrapped`] after every change; the master key is
/// never part of it. `Debug` shows key ids only.
pub struct Keyring {
    master: MasterKey,
    keys: BTreeMap<KeyId, DataKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("master", &self.master)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Keyring {
    /// An empty keyring: no namespace has a data key yet.
    pub fn new(master: MasterKey) -> Keyring {
        Keyring {
            master,
            keys: BTreeMap::new(),
        }
    }

    /// Unwraps a stored keyring with the master key.
    ///
    /// Fails with [`Error::WrongMasterKey`] if any data key was wrapped by
    /// another master key (or altered), and [`Error::InvalidKeyring`] if the
    /// stored form is malformed.
    pub fn from_wrapped(master: MasterKey, stored: &WrappedKeyring) -> Result<Keyring> {
        let keys = unwrap_all(&master, stored)?;
        Ok(Keyring { master, keys })
    }

    /// Replaces the data keys with a stored keyring's (for example after
    /// another process rotated keys), unwrapped with this keyring's master
    /// key. On error the keyring is unchanged.
    pub fn reload(&mut self, stored: &WrappedKeyring) -> Result<()> {
        self.keys = unwrap_all(&self.master, stored)?;
        Ok(())
    }

    /// The storable form: every data key wrapped, the master key absent.
    pub fn to_wrapped(&self) -> WrappedKeyring {
        WrappedKeyring::from_keys(self.keys.values().map(|k| k.wrapped.clone()).collect())
    }

    /// Adds a new data key for `namespace` and makes it current: new seals
    /// use it, values sealed under older keys still open. Returns its id.
    /// The first rotation of a namespace creates its first key.
    pub fn rotate(&mut self, namespace: &NamespaceName) -> Result<KeyId> {
        let number = match self.current(namespace) {
            None => 1,
            Some(id) => id
                .number
                .checked_add(1)
                .ok_or_else(|| Error::InvalidKeyring {
                    reason: format!("namespace {namespace:?} has used every key number"),
                })?,
        };
        let kid = KeyId::new(namespace.clone(), number)?;
        let bytes = random_key()?;
        let key = DataKey {
            cipher: cipher_from(&bytes[..]),
            wrapped: wrap_key(&self.master, &kid, &bytes[..])?,
        };
        self.keys.insert(kid.clone(), key);
        Ok(kid)
    }

    /// This keyring's data keys wrapped by another master key (for
    /// rotating the master key): the same keys, so every sealed value
    /// still opens; only their stored form changes. Fails, changing
    /// nothing, if a data key cannot be unwrapped.
    pub fn rewrapped(&self, master: MasterKey) -> Result<Keyring> {
        let mut keys = BTreeMap::new();
        for (kid, k) in &self.keys {
            let plain = unwrap_one(&self.master, &k.wrapped)?;
            keys.insert(
                kid.clone(),
                DataKey {
                    cipher: cipher_from(&plain),
                    wrapped: wrap_key(&master, kid, &plain)?,
                },
            );
        }
        Ok(Keyring { master, keys })
    }

    /// The master key's id (see [`MasterKey::id`]).
    pub fn master_id(&self) -> Result<String> {
        self.master.id()
    }

    /// The master key, for purposes beside the data keys (wrapping the
    /// secrets a store keeps, deriving the audit key).
    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// The key new seals in `namespace` use, if it has any.
    pub fn current(&self, namespace: &NamespaceName) -> Option<&KeyId> {
        self.key_ids_of(namespace).next_back()
    }

    /// Every key id in the keyring, ordered by namespace, then number.
    pub fn key_ids(&self) -> impl DoubleEndedIterator<Item = &KeyId> {
        self.keys.keys()
    }

    /// The key ids of one namespace, oldest first.
    pub fn key_ids_of(&self, namespace: &NamespaceName) -> impl DoubleEndedIterator<Item = &KeyId> {
        let first = KeyId {
            namespace: namespace.clone(),
            number: 0,
        };
        let last = KeyId {
            namespace: namespace.clone(),
            number: u32::MAX,
        };
        self.keys.range(first..=last).map(|(id, _)| id)
    }

    /// Whether the keyring holds this key.
    pub fn contains(&self, id: &KeyId) -> bool {
        self.keys.contains_key(id)
    }

    /// Removes a data key for good. Refused for a key that is not in the
    /// keyring, the current key of its namespace, and a key in `referenced`
    /// (the key ids that sealed values anywhere in the store still use; see
    /// [`crate::key_ids`]): removing it would make them unreadable.
    pub fn retire(&mut self, id: &KeyId, referenced: &BTreeSet<KeyId>) -> Result<()> {
        if !self.contains(id) {
            return Err(Error::UnknownKeyId {
                place: "retire".into(),
                key_id: id.to_string(),
            });
        }
        if self.current(&id.namespace) == Some(id) {
            return Err(Error::CurrentKey {
                key_id: id.to_string(),
                namespace: id.namespace.to_string(),
            });
        }
        if referenced.contains(id) {
            return Err(Error::KeyInUse {
                key_id: id.to_string(),
            });
        }
        self.keys.remove(id);
        Ok(())
    }

    pub(crate) fn cipher(&self, id: &KeyId) -> Option<&XChaCha20Poly1305> {
        self.keys.get(id).map(|k| &k.cipher)
    }
}

fn wrap_aad(kid: &KeyId) -> Vec<u8> {
    let kid = kid.to_string();
    let mut aad = Vec::with_capacity(WRAP_AAD_PREFIX.len() + 8 + kid.len());
    aad.extend_from_slice(WRAP_AAD_PREFIX);
    crate::sealed::push_field(&mut aad, kid.as_bytes());
    aad
}

/// Unwraps every key of a stored keyring.
fn unwrap_all(master: &MasterKey, stored: &WrappedKeyring) -> Result<BTreeMap<KeyId, DataKey>> {
    if stored.v != KEYRING_VERSION {
        return Err(Error::InvalidKeyring {
            reason: format!(
                "version {} is not supported (this build reads version {KEYRING_VERSION})",
                stored.v
            ),
        });
    }
    let mut keys = BTreeMap::new();
    for w in &stored.keys {
        let plain = unwrap_one(master, w)?;
        let key = DataKey {
            cipher: cipher_from(&plain),
            wrapped: w.clone(),
        };
        if keys.insert(w.kid.clone(), key).is_some() {
            return Err(Error::InvalidKeyring {
                reason: format!("data key {}: it appears twice", w.kid),
            });
        }
    }
    Ok(keys)
}

/// Wraps a data key's bytes under `master`, binding its id.
fn wrap_key(master: &MasterKey, kid: &KeyId, bytes: &[u8]) -> Result<WrappedKey> {
    let nonce = random_nonce()?;
    let wrapped = master
        .cipher
        .encrypt(
            &nonce.into(),
            Payload {
                msg: bytes,
                aad: &wrap_aad(kid),
            },
        )
        // A 32-byte message is far below the AEAD's length limit.
        .map_err(|_| Error::InvalidKeyring {
            reason: "wrapping a data key failed".into(),
        })?;
    Ok(WrappedKey {
        kid: kid.clone(),
        nonce: B64.encode(nonce),
        key: B64.encode(wrapped),
    })
}

/// Unwraps one stored data key with `master`: its 32 bytes.
fn unwrap_one(master: &MasterKey, w: &WrappedKey) -> Result<Zeroizing<Vec<u8>>> {
    let bad = |what: &str| Error::InvalidKeyring {
        reason: format!("data key {}: {what}", w.kid),
    };
    let nonce = B64
        .decode(&w.nonce)
        .map_err(|_| bad("the nonce is not base64"))?;
    let nonce: [u8; NONCE_LEN] = nonce
        .as_slice()
        .try_into()
        .map_err(|_| bad("the nonce is not 24 bytes"))?;
    let ct = B64
        .decode(&w.key)
        .map_err(|_| bad("the wrapped key is not base64"))?;
    let plain = Zeroizing::new(
        master
            .cipher
            .decrypt(
                &nonce.into(),
                Payload {
                    msg: &ct,
                    aad: &wrap_aad(&w.kid),
                },
            )
            .map_err(|_| Error::WrongMasterKey {
                key_id: w.kid.to_string(),
            })?,
    );
    if plain.len() != KEY_LEN {
        return Err(bad("the unwrapped key is not 32 bytes"));
    }
    Ok(plain)
}
