//! The master key: where it comes from, and what is refused.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

use base64::Engine as _;
use chacha20poly1305::{Key, KeyInit, XChaCha20Poly1305};
use zeroize::Zeroizing;

use crate::error::{Error, KeyProblem, Result};

/// The environment variable that may hold the master key (hex or base64).
pub const MASTER_KEY_ENV: &str = "CONFSTRATA_MASTER_KEY";

/// Length of every key (master and data keys), in bytes.
pub const KEY_LEN: usize = 32;

/// The label a master key's id is derived with.
const ID_LABEL: &[u8; 24] = b"confstrata master id v1\0";

/// Domain separation for secrets wrapped by the master key.
fn secret_aad(purpose: &str) -> Vec<u8> {
    let mut aad = b"confstrata/secret/v1\0".to_vec();
    crate::sealed::push_field(&mut aad, purpose.as_bytes());
    aad
}

/// Largest key file read, in bytes: a key is 64 hex digits and a newline.
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// The key that wraps every namespace's data keys.
///
/// It is never serialized, never printed (`Debug` shows `MasterKey(<redacted>)`,
/// there is no `Display`) and wiped from memory when dropped. It never comes
/// from the database: only from a key file or [`MASTER_KEY_ENV`].
///
/// Every constructor refuses an empty key, a key that is not 32 bytes, and
/// one that is obviously not random (all zeros, one repeated byte, a counting
/// sequence, printable text, or very few distinct bytes).
pub struct MasterKey {
    // The cipher holds the only copy of the key and zeroizes it on drop
    // (chacha20poly1305's `zeroize` feature).
    pub(crate) cipher: XChaCha20Poly1305,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A 32-byte key derived from the master key for another purpose (the
    /// audit chain's MAC key), so that one key file protects both: the
    /// XChaCha20 keystream under the master key for the nonce `label`,
    /// which is a pseudorandom function of the key and the label. Distinct
    /// labels give independent keys; no sealed value uses a fixed nonce.
    pub fn derive_subkey(&self, label: &[u8; 24]) -> Result<zeroize::Zeroizing<[u8; 32]>> {
        use chacha20poly1305::aead::Aead;
        // Encrypting 32 zero bytes returns the keystream and a 16-byte tag.
        let ct =
            zeroize::Zeroizing::new(self.cipher.encrypt(label.into(), &[0u8; 32][..]).map_err(
                |_| Error::InvalidKeyring {
                    reason: "deriving a subkey from the master key failed".into(),
                },
            )?);
        let mut out = zeroize::Zeroizing::new([0u8; 32]);
        out.copy_from_slice(ct.get(..32).unwrap_or(&[0u8; 32]));
        Ok(out)
    }

    /// The key's id: `mk-` and 16 hex digits, derived from the key (a
    /// pseudorandom function of it, so it says nothing of the key). A
    /// store records the id of the master key its data keys are wrapped
    /// by, so that the right key file can be told from a wrong or stale one.
    pub fn id(&self) -> Result<String> {
        let sub = self.derive_subkey(ID_LABEL)?;
        Ok(format!("mk-{}", hex(&sub[..8])))
    }

    /// Wraps a 32-byte secret (an old audit key kept for verification)
    /// under this key: base64 of a fresh nonce and the ciphertext, bound to
    /// `purpose`, so it opens only for the same purpose.
    pub fn wrap_secret(&self, purpose: &str, secret: &[u8; KEY_LEN]) -> Result<String> {
        use chacha20poly1305::aead::{Aead, Payload};
        let nonce = crate::sealed::random_nonce()?;
        let ct = self
            .cipher
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: &secret[..],
                    aad: &secret_aad(purpose),
                },
            )
            .map_err(|_| Error::InvalidKeyring {
                reason: format!("wrapping the {purpose} failed"),
            })?;
        let mut out = Vec::with_capacity(nonce.len() + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(base64::engine::general_purpose::STANDARD.encode(out))
    }

    /// Opens what [`MasterKey::wrap_secret`] made for `purpose`; an integrity
    /// error when it was made under another key or for another purpose, or
    /// was altered.
    pub fn unwrap_secret(&self, purpose: &str, text: &str) -> Result<Zeroizing<[u8; KEY_LEN]>> {
        use chacha20poly1305::aead::{Aead, Payload};
        let bad = |what: &str| Error::InvalidKeyring {
            reason: format!("the wrapped {purpose}: {what}"),
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| bad("not base64"))?;
        let (nonce, ct) = raw
            .split_at_checked(crate::sealed::NONCE_LEN)
            .ok_or_else(|| bad("too short"))?;
        let nonce: [u8; crate::sealed::NONCE_LEN] =
            nonce.try_into().map_err(|_| bad("too short"))?;
        let plain = Zeroizing::new(
            self.cipher
                .decrypt(
                    &nonce.into(),
                    Payload {
                        msg: ct,
                        aad: &secret_aad(purpose),
                    },
                )
                .map_err(|_| {
                    bad("it was wrapped by a different master key, or its stored form was altered")
                })?,
        );
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        if plain.len() != KEY_LEN {
            return Err(bad("not 32 bytes"));
        }
        out.copy_from_slice(&plain);
        Ok(out)
    }

    /// A new random master key from the operating system's generator.
    pub fn generate() -> Result<MasterKey> {
        let bytes = random_key()?;
        MasterKey::from_bytes(&bytes[..], "the random generator")
    }

    /// A master key from its 32 bytes. `origin` names where they came from,
    /// for errors.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<MasterKey> {
        let invalid = |problem| Error::InvalidMasterKey {
            origin: origin.to_owned(),
            problem,
        };
        if bytes.is_empty() {
            return Err(invalid(KeyProblem::Empty));
        }
        if bytes.len() != KEY_LEN {
            return Err(invalid(KeyProblem::WrongLength { len: bytes.len() }));
        }
        if let Some(pattern) = weak_pattern(bytes) {
            return Err(invalid(KeyProblem::Weak { pattern }));
        }
        Ok(MasterKey {
            cipher: cipher_from(bytes),
        })
    }

    /// A master key from text: 64 hex digits, or base64 (standard or
    /// URL-safe, padded or not) of 32 bytes. Surrounding whitespace is ignored.
    ///
    /// ```
    /// use confstrata_crypto::MasterKey;
    /// let err = MasterKey::from_text("", "CONFSTRATA_MASTER_KEY").unwrap_err();
    /// assert!(err.to_string().contains("CONFSTRATA_MASTER_KEY: it is empty"));
    /// let zeros = "0".repeat(64);
    /// assert!(MasterKey::from_text(&zeros, "test").unwrap_err().to_string().contains("all zeros"));
    /// ```
    pub fn from_text(text: &str, origin: &str) -> Result<MasterKey> {
        let bytes = decode_key_text(text).map_err(|problem| Error::InvalidMasterKey {
            origin: origin.to_owned(),
            problem,
        })?;
        MasterKey::from_bytes(&bytes, origin)
    }

    /// The master key from [`MASTER_KEY_ENV`], or `None` when it is not set.
    /// Set but empty or invalid is an error, never `None`.
    pub fn from_env() -> Result<Option<MasterKey>> {
        match std::env::var_os(MASTER_KEY_ENV) {
            None => Ok(None),
            Some(value) => {
                let Ok(text) = value.into_string().map(Zeroizing::new) else {
                    return Err(Error::InvalidMasterKey {
                        origin: MASTER_KEY_ENV.to_owned(),
                        problem: KeyProblem::NotEncoded,
                    });
                };
                MasterKey::from_text(&text, MASTER_KEY_ENV).map(Some)
            }
        }
    }

    /// Loads the master key from a key file (64 hex digits or base64).
    ///
    /// On unix the file must not be accessible to group or others (mode
    /// `0600` or stricter): the check is on the opened file, so it cannot be
    /// swapped between check and read.
    pub fn load_file(path: &Path) -> Result<MasterKey> {
        let io = |action, source| Error::KeyFileIo {
            path: path.to_owned(),
            action,
            source,
        };
        let file = File::open(path).map_err(|e| io("read", e))?;
        let meta = file.metadata().map_err(|e| io("inspect", e))?;
        if !meta.is_file() {
            return Err(Error::KeyFileNotRegular {
                path: path.to_owned(),
            });
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(Error::KeyFilePermissions {
                    path: path.to_owned(),
                    mode,
                });
            }
        }
        let mut text = Zeroizing::new(String::new());
        file.take(MAX_KEY_FILE_BYTES)
            .read_to_string(&mut text)
            .map_err(|e| io("read", e))?;
        MasterKey::from_text(&text, &path.display().to_string())
    }

    /// Creates a new key file holding a new random master key (64 hex digits
    /// and a newline), with mode `0600` on unix, and returns the key.
    ///
    /// Never overwrites: if the file exists this fails with
    /// [`Error::KeyFileExists`]. The file is flushed to disk before returning;
    /// if writing fails the partial file is removed.
    pub fn generate_file(path: &Path) -> Result<MasterKey> {
        let bytes = random_key()?;
        let key = MasterKey::from_bytes(&bytes[..], "the random generator")?;
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::KeyFileExists {
                    path: path.to_owned(),
                }
            } else {
                Error::KeyFileIo {
                    path: path.to_owned(),
                    action: "create",
                    source: e,
                }
            }
        })?;
        let mut text = Zeroizing::new(hex(&bytes[..]));
        text.push('\n');
        let written = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_all());
        if let Err(source) = written {
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(Error::KeyFileIo {
                path: path.to_owned(),
                action: "write",
                source,
            });
        }
        sync_parent(path);
        Ok(key)
    }

    /// Loads the key file, or creates it with a new key if it does not exist.
    /// The flag says whether it was created (so the caller can say so).
    /// Two processes racing to create it end up with the same key.
    pub fn load_or_generate_file(path: &Path) -> Result<(MasterKey, bool)> {
        match MasterKey::generate_file(path) {
            Ok(key) => Ok((key, true)),
            Err(Error::KeyFileExists { .. }) => Ok((MasterKey::load_file(path)?, false)),
            Err(e) => Err(e),
        }
    }
}

/// Makes a cipher from 32 key bytes (checked by callers).
pub(crate) fn cipher_from(bytes: &[u8]) -> XChaCha20Poly1305 {
    let mut key = Key::default();
    key.copy_from_slice(bytes);
    let cipher = XChaCha20Poly1305::new(&key);
    zeroize::Zeroize::zeroize(key.as_mut_slice());
    cipher
}

/// 32 random bytes, wiped on drop.
pub(crate) fn random_key() -> Result<Zeroizing<[u8; KEY_LEN]>> {
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    getrandom::fill(&mut bytes[..]).map_err(Error::random)?;
    Ok(bytes)
}

fn decode_key_text(text: &str) -> std::result::Result<Zeroizing<Vec<u8>>, KeyProblem> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let text = text.trim();
    if text.is_empty() {
        return Err(KeyProblem::Empty);
    }
    if text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let bytes = text
            .as_bytes()
            .chunks_exact(2)
            .map(|pair| (nibble(pair[0]) << 4) | nibble(pair[1]))
            .collect();
        return Ok(Zeroizing::new(bytes));
    }
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        if let Ok(bytes) = engine.decode(text) {
            return Ok(Zeroizing::new(bytes));
        }
    }
    Err(KeyProblem::NotEncoded)
}

/// The value of one ASCII hex digit (callers check `is_ascii_hexdigit`).
fn nibble(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// The pattern a 32-byte key obviously follows, if any. Each is practically
/// impossible for random bytes: fewer than 16 distinct values among 32
/// random bytes has a probability below 10^-15, all-printable about 10^-14.
fn weak_pattern(bytes: &[u8]) -> Option<&'static str> {
    let [first, second, ..] = *bytes else {
        return None;
    };
    if bytes.iter().all(|&b| b == 0) {
        return Some("all zeros");
    }
    if bytes.iter().all(|&b| b == first) {
        return Some("one byte repeated");
    }
    let step = second.wrapping_sub(first);
    if bytes.windows(2).all(|w| w[1].wrapping_sub(w[0]) == step) {
        return Some("a counting sequence");
    }
    if bytes.iter().all(|b| (0x20..=0x7e).contains(b)) {
        return Some("printable text");
    }
    let mut seen = [false; 256];
    for &b in bytes {
        seen[usize::from(b)] = true;
    }
    if seen.iter().filter(|&&s| s).count() < 16 {
        return Some("made of fewer than 16 distinct byte values");
    }
    None
}

/// Flushes the directory entry of a new file (best effort: some file
/// systems do not support syncing a directory).
fn sync_parent(path: &Path) {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}
