//! The one error type of `confstrata-crypto`.
//!
//! No variant holds plaintext, key bytes or ciphertext: only names (files,
//! namespaces, layers, key paths, key ids) and sizes. Errors reach logs and
//! API responses, so that is a rule, not a habit.

use std::fmt;
use std::path::PathBuf;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong with keys and sealed values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A master key file could not be read or written.
    #[error("cannot {action} master key file {}: {source}{}", path.display(), hint(source))]
    KeyFileIo {
        /// The key file.
        path: PathBuf,
        /// What was being done: `read`, `create`, `write`, `inspect`.
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// `generate_file` refuses to overwrite an existing key file.
    #[error(
        "master key file {} already exists; refusing to overwrite it (a new key would make every sealed value unreadable). Load it, or move it away first if you really mean to replace it",
        path.display()
    )]
    KeyFileExists {
        /// The key file.
        path: PathBuf,
    },
    /// A master key file that group or others may read or write.
    #[error(
        "master key file {} has mode {mode:04o}, so group or others can access it; run `chmod 600 {}` (and consider the key exposed if others could read it)",
        path.display(), path.display()
    )]
    KeyFilePermissions {
        /// The key file.
        path: PathBuf,
        /// The file's permission bits.
        mode: u32,
    },
    /// A master key file that is not a regular file.
    #[error("master key file {} is not a regular file", path.display())]
    KeyFileNotRegular {
        /// The path.
        path: PathBuf,
    },
    /// A master key (from a file or `CONFSTRATA_MASTER_KEY`) is unusable.
    #[error("invalid master key from {origin}: {problem}")]
    InvalidMasterKey {
        /// Where the key came from: a file path or `CONFSTRATA_MASTER_KEY`.
        origin: String,
        /// What is wrong with it.
        problem: KeyProblem,
    },
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {message}")]
    Random {
        /// The generator's message.
        message: String,
    },
    /// A stored (wrapped) data key could not be unwrapped by this master key.
    #[error(
        "data key {key_id} cannot be unwrapped: it was wrapped by a different master key, or its stored form was altered. Start with the master key that wrapped it"
    )]
    WrongMasterKey {
        /// The data key's id.
        key_id: String,
    },
    /// A stored keyring is malformed.
    #[error("invalid stored keyring: {reason}")]
    InvalidKeyring {
        /// What is wrong.
        reason: String,
    },
    /// A key id that is not well formed (`<namespace>#<n>`).
    #[error("invalid key id {input:?}: {reason}")]
    InvalidKeyId {
        /// The text given (truncated if long).
        input: String,
        /// What is wrong.
        reason: String,
    },
    /// A key id the keyring does not hold.
    #[error(
        "{place}: key id {key_id} is not in the keyring (was it retired, or is this the wrong keyring?); restore the keyring that holds it"
    )]
    UnknownKeyId {
        /// Where: the sealed value's location, or `retire` / `keyring`.
        place: String,
        /// The key id.
        key_id: String,
    },
    /// The namespace has no data key yet.
    #[error(
        "namespace {namespace:?} has no data key yet; rotate its keys once to create the first (`confstrata keys rotate {namespace}`)"
    )]
    NoDataKey {
        /// The namespace.
        namespace: String,
    },
    /// A sealed value whose key id belongs to another namespace.
    #[error(
        "{place}: sealed with key {key_id} of namespace {key_namespace:?}; a sealed value cannot be moved between namespaces, seal it again here"
    )]
    ForeignKeyId {
        /// Where the sealed value was found.
        place: String,
        /// Its key id.
        key_id: String,
        /// The namespace that key id belongs to.
        key_namespace: String,
    },
    /// Authentication of a sealed value failed: it was altered, or moved from
    /// another namespace, layer or key path. Nothing was decrypted.
    #[error(
        "{place}: integrity check failed for the sealed value (key id {key_id}): it was altered, or copied from another namespace, layer or key; write the secret again"
    )]
    Integrity {
        /// Where the sealed value was found.
        place: String,
        /// Its key id.
        key_id: String,
    },
    /// A sealed value's nonce has the wrong length.
    #[error("{place}: the sealed value's nonce is {len} bytes; it must be {expected}")]
    NonceLength {
        /// Where the sealed value was found.
        place: String,
        /// The length found.
        len: usize,
        /// The length required.
        expected: usize,
    },
    /// A sealed value's ciphertext is too short to hold even the tag.
    #[error(
        "{place}: the sealed value's ciphertext is truncated ({len} bytes, shorter than the {min}-byte tag)"
    )]
    Truncated {
        /// Where the sealed value was found.
        place: String,
        /// The length found.
        len: usize,
        /// The minimum length.
        min: usize,
    },
    /// A sealed form written by a newer (or unknown) version.
    #[error(
        "{place}: sealed value format version {version} is not supported (this build reads version 1)"
    )]
    UnsupportedVersion {
        /// Where the sealed value was found.
        place: String,
        /// The version found.
        version: u64,
    },
    /// A `{ "$sealed": ... }` table that is not a well-formed sealed value.
    #[error("{place}: malformed sealed value: {reason}")]
    MalformedSealed {
        /// Where it was found.
        place: String,
        /// What is wrong (never the content).
        reason: String,
    },
    /// A value that cannot be sealed (a delete marker, or a value already sealed).
    #[error("{place}: cannot seal {what}")]
    NotSealable {
        /// Where.
        place: String,
        /// What the value is.
        what: &'static str,
    },
    /// Retiring a key id that sealed values still reference.
    #[error(
        "key id {key_id} is still referenced by sealed values; run `confstrata keys rewrap` first, then retire it"
    )]
    KeyInUse {
        /// The key id.
        key_id: String,
    },
    /// Retiring the current key of a namespace.
    #[error(
        "key id {key_id} is the current key of namespace {namespace:?} and new writes use it; rotate first, rewrap, then retire it"
    )]
    CurrentKey {
        /// The key id.
        key_id: String,
        /// Its namespace.
        namespace: String,
    },
    /// A sealed blob (a backup part) failed to open: it was altered,
    /// truncated, moved, or sealed under another key. Nothing was returned.
    #[error(
        "{place}: integrity check failed: it was altered or truncated, belongs elsewhere, or was sealed under another key"
    )]
    BlobIntegrity {
        /// What the blob is.
        place: String,
    },
    /// An error from the model (a key path, a missing key).
    #[error(transparent)]
    Core(#[from] confstrata_core::Error),
}

/// What is wrong with a master key. Never includes the key's text or bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyProblem {
    /// No key text at all.
    Empty,
    /// Neither 64 hex digits nor base64.
    NotEncoded,
    /// Decodes to the wrong number of bytes.
    WrongLength {
        /// Bytes found.
        len: usize,
    },
    /// All zeros, one repeated byte, a counting sequence, text, or too few
    /// distinct bytes: not the output of a random generator.
    Weak {
        /// Which pattern was recognised.
        pattern: &'static str,
    },
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const FIX: &str = "generate a random one, e.g. with `openssl rand -hex 32`";
        match self {
            KeyProblem::Empty => write!(f, "it is empty; {FIX}"),
            KeyProblem::NotEncoded => write!(
                f,
                "it is neither 64 hex digits nor base64 of 32 bytes; {FIX}"
            ),
            KeyProblem::WrongLength { len } => {
                write!(f, "it is {len} bytes; a master key is 32 bytes; {FIX}")
            }
            KeyProblem::Weak { pattern } => write!(
                f,
                "it is {pattern}, not random bytes: an obviously default or made-up key; {FIX}"
            ),
        }
    }
}

fn hint(err: &std::io::Error) -> &'static str {
    match err.kind() {
        std::io::ErrorKind::NotFound => {
            "; create one (e.g. `(umask 077; openssl rand -hex 32 > FILE)`) or set CONFSTRATA_MASTER_KEY"
        }
        std::io::ErrorKind::PermissionDenied => {
            "; run the server as the user that owns the key file"
        }
        _ => "",
    }
}

impl Error {
    pub(crate) fn random(err: getrandom::Error) -> Self {
        Error::Random {
            message: err.to_string(),
        }
    }
}
