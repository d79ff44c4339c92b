//! Bearer tokens, and the hashes that are stored in their place.
//!
//! A token is `cst_` followed by 32 random bytes in unpadded base64url (43
//! characters): 47 bytes, 256 bits of entropy. It is shown once, when it is
//! made; only its [`TokenHash`] (SHA-256 of the whole text) is kept. SHA-256
//! is enough because the token is random: there is nothing to guess, so a
//! slow password hash would only add latency. The hash of a token is what
//! `printf %s "$TOKEN" | sha256sum` prints.

use std::fmt;
use std::hash::{Hash, Hasher};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{Error, Result, shown};

/// What every token starts with, so secret scanners and people recognise one.
pub const TOKEN_PREFIX: &str = "cst_";
/// Random bytes in a token (256 bits).
pub const TOKEN_RANDOM_BYTES: usize = 32;
/// Length of every token's text, in bytes: the prefix and 43 base64url characters.
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + 43;

/// A bearer token. Its `Debug` and `Display` never show the secret, and its
/// text is wiped from memory when it is dropped.
///
/// ```
/// use confstrata_access::Token;
/// let token = Token::generate().unwrap();
/// let shown_once = token.expose_secret().to_owned();
/// assert!(shown_once.starts_with("cst_") && shown_once.len() == 47);
/// assert_eq!(format!("{token:?}"), "Token(cst_…redacted)");
/// let again = Token::parse(&shown_once).unwrap();
/// assert!(token.hash().verify(&again));
/// ```
#[derive(Clone)]
pub struct Token(Zeroizing<String>);

impl Token {
    /// Makes a new random token from the operating system's generator.
    pub fn generate() -> Result<Token> {
        let mut bytes = Zeroizing::new([0u8; TOKEN_RANDOM_BYTES]);
        getrandom::fill(&mut *bytes).map_err(|source| Error::Randomness { source })?;
        let mut text = Zeroizing::new(String::with_capacity(TOKEN_LEN));
        text.push_str(TOKEN_PREFIX);
        URL_SAFE_NO_PAD.encode_string(*bytes, &mut text);
        Ok(Token(text))
    }

    /// Parses a presented token. Each way to be wrong has its own error:
    /// [`Error::EmptyToken`], [`Error::TokenTooLong`], [`Error::MalformedToken`].
    /// No error contains any of the text.
    pub fn parse(text: &str) -> Result<Token> {
        if text.is_empty() {
            return Err(Error::EmptyToken);
        }
        if text.len() > TOKEN_LEN {
            return Err(Error::TokenTooLong {
                len: text.len(),
                max: TOKEN_LEN,
            });
        }
        let malformed = |reason: String| Error::MalformedToken { reason };
        let Some(body) = text.strip_prefix(TOKEN_PREFIX) else {
            return Err(malformed(format!(
                "it does not start with {TOKEN_PREFIX:?}; Confstrata tokens look like {TOKEN_PREFIX}<43 characters>"
            )));
        };
        if text.len() < TOKEN_LEN {
            return Err(malformed(format!(
                "it is {} bytes long; a Confstrata token is {TOKEN_LEN} bytes (was it cut off?)",
                text.len()
            )));
        }
        if let Some(i) = body
            .bytes()
            .position(|b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        {
            return Err(malformed(format!(
                "character {} is not a base64url character (A-Z, a-z, 0-9, '-', '_')",
                TOKEN_PREFIX.len() + i + 1
            )));
        }
        let mut buf = Zeroizing::new([0u8; 48]);
        match URL_SAFE_NO_PAD.decode_slice(body, &mut *buf) {
            Ok(TOKEN_RANDOM_BYTES) => {}
            _ => {
                return Err(malformed(
                    "its last character is not one a generated token can end with".into(),
                ));
            }
        }
        Ok(Token(Zeroizing::new(text.to_owned())))
    }

    /// Parses the value of an HTTP `Authorization` header (or gRPC
    /// `authorization` metadata): `Bearer <token>`. `None` (no header) is
    /// [`Error::MissingToken`].
    ///
    /// ```
    /// use confstrata_access::{Error, Token};
    /// assert!(matches!(Token::from_authorization(None), Err(Error::MissingToken)));
    /// assert!(matches!(Token::from_authorization(Some("Bearer ")), Err(Error::EmptyToken)));
    /// assert!(matches!(Token::from_authorization(Some("Basic eDp5")), Err(Error::MalformedToken { .. })));
    /// ```
    pub fn from_authorization(header: Option<&str>) -> Result<Token> {
        let Some(value) = header else {
            return Err(Error::MissingToken);
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(Error::EmptyToken);
        }
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Error::MalformedToken {
                reason: "the Authorization header does not use the Bearer scheme; send `Authorization: Bearer <token>`".into(),
            });
        }
        Token::parse(rest.trim_start())
    }

    /// The token's text, to show once to whoever it was made for.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// The hash that is stored in place of the token.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({TOKEN_PREFIX}…redacted)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{TOKEN_PREFIX}…redacted")
    }
}

/// SHA-256 of a token's text: what a policy stores instead of the token.
///
/// Equality is constant-time. Text and serde form: 64 lowercase hex digits.
#[derive(Clone, Copy)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Builds a hash from its raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> TokenHash {
        TokenHash(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses 64 hex digits.
    pub fn parse(text: &str) -> Result<TokenHash> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(|_| Error::InvalidHex {
            kind: "token hash",
            input: shown(text),
            expected: 64,
        })?;
        Ok(TokenHash(out))
    }

    /// Whether `token` hashes to this hash, compared in constant time.
    pub fn verify(&self, token: &Token) -> bool {
        *self == token.hash()
    }

    /// A short, non-secret label for logs and listings: the first 12 hex digits.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }
}

impl PartialEq for TokenHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for TokenHash {}

impl Hash for TokenHash {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The bytes are a SHA-256 output of a random token: uniformly
        // distributed and not chosen by an attacker, so 8 of them are a
        // perfect hash-table key.
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(word));
    }
}

impl fmt::Display for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({})", self.short())
    }
}

confstrata_core::text_serde!(TokenHash, Error);

/// A hasher for maps keyed by [`TokenHash`]: the key is already uniformly
/// random, so its first word is used as is (no SipHash rounds per lookup).
#[derive(Default)]
pub(crate) struct TokenHashHasher(u64);

impl Hasher for TokenHashHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}
