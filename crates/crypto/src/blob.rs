//! Whole byte blobs sealed under a one-off data key (backup parts): the
//! data key is random, used for one set of blobs, and kept only wrapped by
//! a key-encryption key (the master key, or a separate backup key file).

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};

use crate::error::{Error, Result};
use crate::key::{KEY_LEN, MasterKey, random_key};
use crate::sealed::{NONCE_LEN, TAG_LEN, random_nonce};

/// A data key for sealing blobs: XChaCha20-Poly1305, a fresh random nonce
/// per blob (stored in front of the ciphertext), the caller's associated
/// data binding each blob to its place.
pub struct BlobKey {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for BlobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlobKey(<redacted>)")
    }
}

impl BlobKey {
    /// A new random data key, and its form wrapped by `kek` for `purpose`
    /// (which [`BlobKey::unwrap`] needs again).
    pub fn generate_wrapped(kek: &MasterKey, purpose: &str) -> Result<(BlobKey, String)> {
        let bytes = random_key()?;
        let wrapped = kek.wrap_secret(purpose, &bytes)?;
        Ok((BlobKey::from_bytes(&bytes)?, wrapped))
    }

    /// Opens a data key that [`BlobKey::generate_wrapped`] wrapped.
    pub fn unwrap(kek: &MasterKey, purpose: &str, wrapped: &str) -> Result<BlobKey> {
        BlobKey::from_bytes(&*kek.unwrap_secret(purpose, wrapped)?)
    }

    fn from_bytes(bytes: &[u8; KEY_LEN]) -> Result<BlobKey> {
        let cipher =
            XChaCha20Poly1305::new_from_slice(&bytes[..]).map_err(|_| Error::InvalidKeyring {
                reason: "a data key is not 32 bytes".into(),
            })?;
        Ok(BlobKey { cipher })
    }

    /// Seals `plain`: nonce, then ciphertext and tag.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
        let nonce = random_nonce()?;
        let ct = self
            .cipher
            .encrypt(&nonce.into(), Payload { msg: plain, aad })
            .map_err(|_| Error::InvalidKeyring {
                reason: "sealing a blob failed".into(),
            })?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens what [`BlobKey::seal`] made with the same associated data; an
    /// integrity error naming `place` when it was altered, truncated, moved
    /// or sealed under another key.
    pub fn open(&self, place: &str, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        let integrity = || Error::BlobIntegrity {
            place: place.to_owned(),
        };
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(integrity());
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| integrity())?;
        self.cipher
            .decrypt(&nonce.into(), Payload { msg: ct, aad })
            .map_err(|_| integrity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_opens_with_its_key_and_place_only() {
        let kek = MasterKey::generate().unwrap();
        let (key, wrapped) = BlobKey::generate_wrapped(&kek, "backup").unwrap();
        let sealed = key.seal(b"part-1", b"hello").unwrap();
        let again = BlobKey::unwrap(&kek, "backup", &wrapped).unwrap();
        assert_eq!(again.open("p", b"part-1", &sealed).unwrap(), b"hello");
        // Another place, a flipped byte, a truncation, another key or purpose.
        assert!(again.open("p", b"part-2", &sealed).is_err());
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        let err = again.open("part 1 of b", b"part-1", &flipped).unwrap_err();
        assert!(err.to_string().contains("part 1 of b"), "{err}");
        assert!(again.open("p", b"part-1", &sealed[..20]).is_err());
        let other = MasterKey::generate().unwrap();
        assert!(BlobKey::unwrap(&other, "backup", &wrapped).is_err());
        assert!(BlobKey::unwrap(&kek, "audit", &wrapped).is_err());
    }
}
