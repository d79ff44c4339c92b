//! Sealed secret values for Confstrata.
//!
//! A leaf of a layer document can be **sealed**: its key stays readable, its
//! value becomes XChaCha20-Poly1305 ciphertext stored as the table
//! `{ "$sealed": { "v": 1, "kid": "webshop#3", "nonce": "<base64>", "ct": "<base64>" } }`.
//! The associated data binds the ciphertext to its namespace, layer, key path
//! and key id, so a sealed value copied to another place, or relabelled with
//! another key id, fails to open with an integrity error.
//!
//! Keys are enveloped: each namespace has data keys (`webshop#1`,
//! `webshop#2`, ...) wrapped by one [`MasterKey`], which comes from a key
//! file (mode `0600`) or [`MASTER_KEY_ENV`], never from the database. A
//! [`Keyring`] holds them unwrapped in memory; its [`WrappedKeyring`] form is
//! what a store persists. [`Keyring::rotate`] adds a new current key online:
//! old values still open, [`rewrap`] moves them to the current key, and
//! [`Keyring::retire`] refuses a key that sealed values still use.
//!
//! Document helpers seal the leaves a [`SecretRule`] or the caller names,
//! open everything for a caller allowed to read secrets, and [`mask`] them
//! for everyone else.
//!
//! This crate knows nothing of storage, transports or access rules, and no
//! error it returns contains plaintext or key bytes.
//!
//! ```
//! use confstrata_crypto::{Keyring, MasterKey, SecretRule, seal_matching, open_document, mask, rewrap, key_ids};
//! use serde_json::json;
//!
//! let mut keyring = Keyring::new(MasterKey::generate()?);
//! let ns = "webshop".parse()?;
//! let layer = "env/prod".parse()?;
//! keyring.rotate(&ns)?; // the namespace's first data key, webshop#1
//!
//! let mut doc = json!({"db": {"host": "db.internal", "password": "hunter2"}})
//!     .as_object().cloned().unwrap();
//! assert_eq!(seal_matching(&mut doc, &keyring, &ns, &layer, &SecretRule::default())?, 1);
//! assert_eq!(doc["db"]["host"], "db.internal");
//! assert_eq!(doc["db"]["password"]["$sealed"]["kid"], "webshop#1");
//!
//! // Without read-secrets: a mask.
//! let mut masked = doc.clone();
//! mask(&mut masked);
//! assert_eq!(masked["db"]["password"], "<sealed>");
//!
//! // Rotate, rewrap, retire the old key.
//! let new = keyring.rotate(&ns)?;
//! assert!(rewrap(&mut doc, &keyring, &ns, &layer)?);
//! assert_eq!(key_ids(&doc)?.into_iter().collect::<Vec<_>>(), [new]);
//! keyring.retire(&"webshop#1".parse()?, &key_ids(&doc)?)?;
//!
//! // With read-secrets: the plaintext.
//! open_document(&mut doc, &keyring, &ns, &layer)?;
//! assert_eq!(doc["db"]["password"], "hunter2");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod blob;
mod document;
mod error;
mod key;
mod keyring;
mod rule;
mod sealed;

pub use blob::BlobKey;
pub use document::{key_ids, mask, open_document, rewrap, seal_matching, seal_paths, sealed_paths};
pub use error::{Error, KeyProblem, Result};
pub use key::{KEY_LEN, MASTER_KEY_ENV, MasterKey};
pub use keyring::{KEYRING_VERSION, KeyId, Keyring, WrappedKey, WrappedKeyring};
pub use rule::SecretRule;
pub use sealed::{
    MASK, NONCE_LEN, SEALED_KEY, SEALED_VERSION, Sealed, TAG_LEN, is_sealed, open, open_value, seal,
};

#[cfg(test)]
mod tests;
