//! Who is asking, whether they may, and what they may see: the engine's one
//! authorization point, the audit journal, sealing on write and opening or
//! masking on read.
//!
//! - A [`Caller`] is either a principal authenticated by a bearer token
//!   ([`Engine::authenticate`](crate::Engine::authenticate)) or the local
//!   operating-system user of a data directory ([`Caller::local`]), who acts
//!   with admin rights (the data directory's permissions guard it) and is
//!   audited under the name `local:<user>`.
//! - Every engine operation calls `Gate::require` (or a filter built on
//!   [`Security::allows`]) before it reads anything. A refusal is written to
//!   the audit journal and returned as [`Error::PermissionDenied`].
//! - Change sets are sealed before they are planned: `set` with `secret`
//!   seals the value, and every leaf the [`SecretRule`] matches is sealed.
//!   A user may not write a `$sealed` table itself.
//! - Reads open a sealed value for a caller with `read-secrets` on its key,
//!   and show [`MASK`](confstrata_crypto::MASK) to everyone else. Every
//!   opened value is audited (the read fails if it cannot be).

use std::sync::{Arc, Mutex, PoisonError, RwLock};

use confstrata_access::{
    Action, AuditChain, AuditEntry, AuditKey, AuditRecord, Head, Mac, Outcome, Policy, PrincipalId,
    Resource, Token, TokenHash,
};
use confstrata_core::serde_json::Value;
use confstrata_core::{
    Document, Error, JournalFn, JournalRecord, JournalSlot, KeyPath, LayerPath, LayerRecord,
    NamespaceName, Result, SettingWrite, Store, Timestamp,
};
use confstrata_crypto::{Keyring, MasterKey, SecretRule, WrappedKeyring};

/// The setting that holds the access policy.
pub const POLICY_SETTING: &str = "policy";
/// The setting that holds the wrapped data keys.
pub const KEYRING_SETTING: &str = "keyring";
/// The setting that holds the id of the master key the data keys are
/// wrapped by (written by the first master-key rotation; absent before).
pub const MASTER_KEY_ID_SETTING: &str = "master_key_id";
/// The setting that holds the audit keys of earlier master keys, wrapped
/// by the current one, so records they made still verify.
pub const AUDIT_KEYS_SETTING: &str = "audit_keys";
/// The label the audit key is derived from the master key with.
pub(crate) const AUDIT_KEY_LABEL: &[u8; 24] = b"confstrata audit key v1\0";
/// What the earlier audit keys are wrapped for (bound into their wrapping).
pub(crate) const AUDIT_KEY_PURPOSE: &str = "audit key";

/// The stored form of the earlier audit keys.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoredAuditKeys {
    pub(crate) v: u32,
    /// Oldest first: each the audit key of a master key since rotated away,
    /// wrapped by the current master key.
    pub(crate) keys: Vec<String>,
}

/// How a caller proved who they are.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Credential {
    /// The local operating-system user, acting on a data directory.
    Local,
    /// A bearer token, by its hash.
    Token(TokenHash),
    /// A verified client certificate that the server's rule maps to the
    /// principal (mutual TLS, no token).
    Certificate,
}

/// What the server read from a request's verified client certificate
/// (mutual TLS): the principal its rule maps the certificate to, or why it
/// maps to none, and how, for audit records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateIdentity {
    /// The principal id the certificate names, or why it names none.
    pub principal: std::result::Result<String, String>,
    /// How: `certificate CN=billing`, `certificate URI spiffe://...`.
    pub via: String,
}

/// Who is asking: the subject of every engine operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    principal: PrincipalId,
    credential: Credential,
    request_id: String,
    /// For the local user: the author recorded on changes (`--author`).
    author: Option<String>,
    /// The client certificate that also named the caller, if any (audit
    /// records carry it).
    via: Option<String>,
}

impl Caller {
    /// The local operating-system user `user`: admin rights, audited as
    /// `local:<user>` (characters a principal id cannot hold become `_`).
    pub fn local(user: &str) -> Caller {
        let cleaned: String = user
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@') {
                    c
                } else {
                    '_'
                }
            })
            .take(100)
            .collect();
        let name = if cleaned.is_empty() {
            "local:unknown".to_owned()
        } else {
            format!("local:{cleaned}")
        };
        // Invariant: "local:" + [A-Za-z0-9-_.@]{1,100} is a valid principal id.
        let principal = PrincipalId::parse(&name)
            .unwrap_or_else(|_| unreachable!("a cleaned local user name is a principal id"));
        Caller {
            principal,
            credential: Credential::Local,
            request_id: String::new(),
            author: None,
            via: None,
        }
    }

    /// For the local user: records `author` on changes instead of the
    /// principal (audit records still name the principal). Ignored for a
    /// token's caller, whose changes always carry the principal's id.
    pub fn with_author(mut self, author: impl Into<String>) -> Caller {
        if self.is_local() {
            let a = author.into();
            self.author = (!a.is_empty()).then_some(a);
        }
        self
    }

    /// The local user this process runs as (`$USER`, else `unknown`).
    pub fn local_user() -> Caller {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_default();
        Caller::local(&user)
    }

    /// The same caller with a request id (joined with logs and audit records).
    pub fn with_request_id(mut self, id: impl Into<String>) -> Caller {
        self.request_id = id.into();
        self
    }

    /// The principal.
    pub fn principal(&self) -> &PrincipalId {
        &self.principal
    }

    /// The request id.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// Whether this is the local user (admin rights).
    pub fn is_local(&self) -> bool {
        self.credential == Credential::Local
    }

    /// The author a change set made by this caller records.
    pub fn author(&self) -> String {
        self.author
            .clone()
            .unwrap_or_else(|| self.principal.to_string())
    }
}

/// How to set up security when an engine opens.
pub struct SecurityOptions {
    /// The master key that wraps the data keys (and from which the audit
    /// key is derived).
    pub master_key: MasterKey,
    /// Which keys are sealed without being asked.
    pub secret_rule: SecretRule,
    /// Whether every read is audited (a read that cannot be audited fails).
    pub audit_reads: bool,
}

impl SecurityOptions {
    /// Default options around a master key.
    pub fn new(master_key: MasterKey) -> SecurityOptions {
        SecurityOptions {
            master_key,
            secret_rule: SecretRule::default(),
            audit_reads: false,
        }
    }
}

/// The engine's security state.
pub(crate) struct Security {
    pub(crate) keyring: RwLock<Keyring>,
    policy: RwLock<Arc<Policy>>,
    /// The audit key: the current master key's, and those of the master
    /// keys rotated away (their bytes, to wrap them again, and the keys).
    pub(crate) audit: RwLock<AuditKeys>,
    /// Where the master key is kept, when it can be rotated online.
    pub(crate) key_file: std::sync::OnceLock<Box<dyn crate::MasterKeyFile>>,
    pub(crate) rule: SecretRule,
    pub(crate) audit_reads: bool,
    /// Serializes changes to the policy and the keyring.
    pub(crate) admin: Mutex<()>,
}

pub(crate) fn read_lock<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn write_lock<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

/// Maps a crypto error to the engine's error type, keeping its message
/// (which never holds plaintext or key bytes).
pub fn crypto_error(e: confstrata_crypto::Error) -> Error {
    use confstrata_crypto::Error as C;
    match e {
        C::Core(e) => e,
        e @ (C::Integrity { .. }
        | C::BlobIntegrity { .. }
        | C::ForeignKeyId { .. }
        | C::MalformedSealed { .. }
        | C::NonceLength { .. }
        | C::Truncated { .. }
        | C::UnsupportedVersion { .. }
        | C::UnknownKeyId { .. }
        | C::WrongMasterKey { .. }
        | C::InvalidKeyring { .. }) => Error::Integrity {
            message: e.to_string(),
        },
        e @ (C::KeyInUse { .. }
        | C::CurrentKey { .. }
        | C::NotSealable { .. }
        | C::NoDataKey { .. }
        | C::InvalidKeyId { .. }) => Error::invalid("key operation", e.to_string()),
        e => Error::storage(e),
    }
}

pub(crate) fn from_access(e: confstrata_access::Error) -> Error {
    use confstrata_access::Error as A;
    match e {
        A::Forbidden(r) => Error::PermissionDenied {
            action: r.action.to_string(),
            resource: r.resource.to_string(),
            message: A::Forbidden(r).to_string(),
        },
        e @ (A::MissingToken
        | A::EmptyToken
        | A::MalformedToken { .. }
        | A::TokenTooLong { .. }
        | A::UnknownToken
        | A::RevokedToken
        | A::RevokedPrincipal { .. }) => Error::Unauthenticated {
            message: e.to_string(),
        },
        e @ (A::InvalidName { .. } | A::InvalidPattern { .. }) => {
            Error::invalid("access request", e.to_string())
        }
        A::AlreadyExists { kind, name } => Error::AlreadyExists {
            what: format!("{kind} {name:?}"),
        },
        e => Error::invalid("access", e.to_string()),
    }
}

impl Security {
    /// Loads the policy and keyring from the store.
    pub(crate) fn load(store: &dyn Store, options: SecurityOptions) -> Result<Security> {
        let master = options.master_key;
        if let Some(stored) = store.setting(MASTER_KEY_ID_SETTING)? {
            let given = master.id().map_err(crypto_error)?;
            if stored != given {
                return Err(Error::Integrity {
                    message: format!(
                        "this store's data keys are wrapped by master key {stored}, but the key given is {given}: \
                         start with the key file or CONFSTRATA_MASTER_KEY that holds {stored}"
                    ),
                });
            }
        }
        let audit = AuditKeys::load(store, &master)?;
        let policy = match store.setting(POLICY_SETTING)? {
            Some(text) => confstrata_core::serde_json::from_str::<Policy>(&text).map_err(|e| {
                Error::Integrity {
                    message: format!("the stored access policy cannot be read: {e}"),
                }
            })?,
            None => Policy::with_builtin_roles(),
        };
        let keyring = match store.setting(KEYRING_SETTING)? {
            Some(text) => {
                let wrapped: WrappedKeyring = confstrata_core::serde_json::from_str(&text)
                    .map_err(|e| Error::Integrity {
                        message: format!("the stored keyring cannot be read: {e}"),
                    })?;
                Keyring::from_wrapped(master, &wrapped).map_err(crypto_error)?
            }
            None => Keyring::new(master),
        };
        Ok(Security {
            keyring: RwLock::new(keyring),
            policy: RwLock::new(Arc::new(policy)),
            audit: RwLock::new(audit),
            key_file: std::sync::OnceLock::new(),
            rule: options.secret_rule,
            audit_reads: options.audit_reads,
            admin: Mutex::new(()),
        })
    }

    /// The current policy (a snapshot).
    pub(crate) fn policy(&self) -> Arc<Policy> {
        Arc::clone(&read_lock(&self.policy))
    }

    /// Replaces the policy in memory (after the store has it).
    pub(crate) fn set_policy(&self, policy: Policy) {
        *write_lock(&self.policy) = Arc::new(policy);
    }

    /// The current audit key (for fingerprints and new records).
    pub(crate) fn audit_key(&self) -> AuditKey {
        read_lock(&self.audit).current.clone()
    }

    /// The audit keys, current and earlier (for verification).
    pub(crate) fn audit_keys(&self) -> (AuditKey, Vec<AuditKey>) {
        let a = read_lock(&self.audit);
        (
            a.current.clone(),
            a.older.iter().map(|(_, k)| k.clone()).collect(),
        )
    }

    /// Authenticates a request: by the bearer token of its
    /// `Authorization` header, by its client certificate's principal, or
    /// by both, which must then name the same principal.
    pub(crate) fn authenticate(
        &self,
        header: Option<&str>,
        certificate: Option<&CertificateIdentity>,
    ) -> Result<Caller> {
        let unauthenticated = |message: String| Error::Unauthenticated { message };
        let policy = self.policy();
        let named = match certificate.map(|c| &c.principal) {
            Some(Ok(id)) => Some(PrincipalId::parse(id).map_err(|_| {
                unauthenticated(format!(
                    "the client certificate names {:?}, which is not a principal id",
                    confstrata_core::clip(id, 100)
                ))
            })?),
            _ => None,
        };
        let via = certificate
            .filter(|_| named.is_some())
            .map(|c| c.via.clone());
        if header.is_none()
            && let Some(c) = certificate
        {
            let Some(id) = named else {
                let why = c.principal.as_ref().err().map_or("", String::as_str);
                return Err(unauthenticated(format!(
                    "the client certificate names no principal ({why}); send a token, or ask an administrator for a certificate the server maps"
                )));
            };
            let p = policy.principal(&id).ok_or_else(|| {
                unauthenticated(format!(
                    "the client certificate names principal {id}, which does not exist"
                ))
            })?;
            if p.is_revoked() {
                return Err(from_access(confstrata_access::Error::RevokedPrincipal {
                    principal: id.to_string(),
                }));
            }
            return Ok(Caller {
                principal: id,
                credential: Credential::Certificate,
                request_id: String::new(),
                author: None,
                via,
            });
        }
        let token = Token::from_authorization(header).map_err(from_access)?;
        let p = policy.authenticate(&token).map_err(from_access)?;
        if let Some(id) = &named
            && id != p.id()
        {
            return Err(unauthenticated(format!(
                "the token is principal {}'s and the client certificate names {id}; they must name the same principal",
                p.id()
            )));
        }
        Ok(Caller {
            principal: p.id().clone(),
            credential: Credential::Token(token.hash()),
            request_id: String::new(),
            author: None,
            via,
        })
    }

    /// Whether a caller's credentials still hold (a token not revoked since).
    pub(crate) fn still_valid(&self, caller: &Caller) -> Result<()> {
        match &caller.credential {
            Credential::Local => Ok(()),
            Credential::Certificate => match self.policy().principal(&caller.principal) {
                Some(p) if !p.is_revoked() => Ok(()),
                Some(_) => Err(from_access(confstrata_access::Error::RevokedPrincipal {
                    principal: caller.principal.to_string(),
                })),
                None => Err(Error::Unauthenticated {
                    message: format!("principal {} no longer exists", caller.principal),
                }),
            },
            Credential::Token(hash) => self
                .policy()
                .authenticate_hash(hash)
                .map(drop)
                .map_err(from_access),
        }
    }

    /// Whether the caller may perform `action` on `resource`.
    pub(crate) fn allows(
        &self,
        policy: &Policy,
        caller: &Caller,
        action: Action,
        resource: &Resource,
    ) -> bool {
        match caller.credential {
            Credential::Local => true,
            Credential::Token(_) | Credential::Certificate => policy
                .decide(&caller.principal, action, resource)
                .is_allowed(),
        }
    }

    /// Whether the caller may perform `action` on some part of `resource`.
    pub(crate) fn allows_some(
        &self,
        policy: &Policy,
        caller: &Caller,
        action: Action,
        resource: &Resource,
    ) -> bool {
        match caller.credential {
            Credential::Local => true,
            Credential::Token(_) | Credential::Certificate => {
                policy.allows_some(&caller.principal, action, resource)
            }
        }
    }
}

/// How much of what a request reads the caller may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadScope {
    /// Everything.
    All,
    /// Only the keys its grants cover; the rest is left out.
    Keys,
}

/// A per-request view of the security state: the policy snapshot and the
/// caller, with the refusals and records it produced.
pub(crate) struct Gate<'a> {
    pub(crate) sec: &'a Security,
    pub(crate) store: &'a dyn Store,
    pub(crate) caller: &'a Caller,
    pub(crate) policy: Arc<Policy>,
}

impl Gate<'_> {
    /// Refuses unless the caller may perform `action` on `resource`; the
    /// refusal is audited.
    pub(crate) fn require(&self, action: Action, resource: Resource) -> Result<()> {
        if self
            .sec
            .allows(&self.policy, self.caller, action, &resource)
        {
            return Ok(());
        }
        Err(self.refuse(action, resource))
    }

    /// Refuses unless the caller has some grant for `action` in namespace
    /// `ns`: asked before anything about the namespace is looked up, so the
    /// refusal is the same whether it exists or not.
    pub(crate) fn require_some(&self, action: Action, ns: &NamespaceName) -> Result<()> {
        let resource = Resource::namespace(ns.clone());
        if self
            .sec
            .allows_some(&self.policy, self.caller, action, &resource)
        {
            return Ok(());
        }
        Err(self.refuse(action, resource))
    }

    /// Whether the caller may perform `action` on `resource` (no audit record).
    pub(crate) fn allows(&self, action: Action, resource: &Resource) -> bool {
        self.sec.allows(&self.policy, self.caller, action, resource)
    }

    /// How much of `layers` (of a namespace and its imports) the caller
    /// may read: [`ReadScope::All`] when all of every one;
    /// [`ReadScope::Keys`] when only some keys of some (a grant on
    /// `ns#db`, or none on an import): the answer then holds only those
    /// keys and says it is partial. Refused (audited, naming the first
    /// layer) when it may read nothing of any.
    pub(crate) fn read_scope(
        &self,
        layers: &[confstrata_core::imports::ChainLayer],
    ) -> Result<ReadScope> {
        let mut first_refused = None;
        let mut some = false;
        for l in layers {
            let r = Resource::layer(l.namespace.clone(), l.layer.clone());
            if self.allows(Action::Read, &r) {
                some = true;
                continue;
            }
            some |= self
                .sec
                .allows_some(&self.policy, self.caller, Action::Read, &r);
            first_refused.get_or_insert(r);
        }
        match first_refused {
            None => Ok(ReadScope::All),
            Some(_) if some => Ok(ReadScope::Keys),
            Some(r) => Err(self.refuse(Action::Read, r)),
        }
    }

    /// Audits a refusal and builds its error.
    pub(crate) fn refuse(&self, action: Action, resource: Resource) -> Error {
        let err = match self
            .policy
            .decide(&self.caller.principal, action, &resource)
        {
            confstrata_access::Decision::Deny(r) => {
                from_access(confstrata_access::Error::Forbidden(r))
            }
            confstrata_access::Decision::Allow => Error::PermissionDenied {
                action: action.to_string(),
                resource: resource.to_string(),
                message: format!(
                    "permission denied: {} may not {action} {resource}",
                    self.caller.principal
                ),
            },
        };
        let entry = self.entry(action, resource, Outcome::Denied);
        if let Err(e) = self.store.append_journal(journal_fn(self.sec, entry)) {
            tracing::warn!(error = %e, "the audit record of a refusal could not be written");
        }
        err
    }

    /// An audit entry for this caller.
    pub(crate) fn entry(&self, action: Action, resource: Resource, outcome: Outcome) -> AuditEntry {
        let entry = AuditEntry::new(
            Timestamp::now(),
            Some(self.caller.principal.clone()),
            action,
            resource,
            outcome,
        )
        .request_id(self.caller.request_id.clone());
        match &self.caller.via {
            Some(via) => entry.detail("credential", via.clone()),
            None => entry,
        }
    }

    /// Writes an audit record, failing the request if it cannot be written.
    pub(crate) fn audit(&self, entry: AuditEntry) -> Result<()> {
        self.store
            .append_journal(journal_fn(self.sec, entry))
            .map(drop)
            .map_err(|e| {
                Error::storage(format!(
                    "the request could not be audited, so it was not served: {e}"
                ))
            })
    }

    /// Audits a read when read-auditing is on.
    pub(crate) fn audit_read(&self, resource: Resource, revision: u64) -> Result<()> {
        if !self.sec.audit_reads {
            return Ok(());
        }
        self.audit(
            self.entry(Action::Read, resource, Outcome::Success)
                .revision(revision),
        )
    }

    /// Opens or masks every sealed value of a layer for this caller,
    /// auditing what it opened, and names the sealed keys in the record.
    pub(crate) fn present_record(&self, record: &mut LayerRecord, revision: u64) -> Result<()> {
        record.sealed_keys = self.present_layer(
            &record.namespace,
            &record.layer,
            &mut record.document,
            revision,
        )?;
        Ok(())
    }

    /// Opens or masks every sealed value of a layer document for this
    /// caller, auditing what it opened. Returns the sealed keys.
    pub(crate) fn present_layer(
        &self,
        ns: &NamespaceName,
        layer: &LayerPath,
        doc: &mut Document,
        revision: u64,
    ) -> Result<Vec<KeyPath>> {
        let paths = confstrata_crypto::sealed_paths(doc).map_err(crypto_error)?;
        if paths.is_empty() {
            return Ok(paths);
        }
        let keyring = read_lock(&self.sec.keyring);
        let mut opened = Vec::new();
        for key in &paths {
            let resource = Resource::key(ns.clone(), layer.clone(), key.clone());
            let Some(slot) = confstrata_core::doc::get_mut(doc, key) else {
                continue;
            };
            if self.allows(Action::ReadSecrets, &resource) && !slot.is_array() {
                *slot = confstrata_crypto::open_value(&keyring, ns, layer, key, slot)
                    .map_err(crypto_error)?;
                opened.push(resource.to_string());
            } else {
                let mut one = Document::new();
                one.insert(String::new(), std::mem::take(slot));
                confstrata_crypto::mask(&mut one);
                *slot = one.remove("").unwrap_or(Value::Null);
            }
        }
        drop(keyring);
        self.audit_opened(ns, &opened, revision)?;
        Ok(paths)
    }

    /// Audits the secret values a read opened (one record per read).
    pub(crate) fn audit_opened(
        &self,
        ns: &NamespaceName,
        opened: &[String],
        revision: u64,
    ) -> Result<()> {
        if opened.is_empty() {
            return Ok(());
        }
        let mut entry = self
            .entry(
                Action::ReadSecrets,
                Resource::namespace(ns.clone()),
                Outcome::Success,
            )
            .revision(revision)
            .detail("opened", opened.join(" "));
        entry = entry.detail("count", opened.len().to_string());
        self.audit(entry)
    }
}

/// Makes the journal function that turns an audit entry into the next
/// record of the chain, inside the store's transaction.
pub(crate) fn journal_fn(sec: &Security, entry: AuditEntry) -> JournalFn {
    let key = sec.audit_key();
    Box::new(move |slot: JournalSlot| {
        let head = slot.head.map(|h| Head {
            seq: h.seq,
            mac: Mac::from_bytes(h.mac),
        });
        let mut entry = entry;
        if let Some(rev) = slot.revision {
            entry = entry.revision(rev);
        }
        let record = AuditChain::resume(key, head).next_record(entry);
        to_journal(&record)
    })
}

/// The stored form of an audit record.
pub(crate) fn to_journal(record: &AuditRecord) -> Result<JournalRecord> {
    Ok(JournalRecord {
        seq: record.seq,
        time: record.time,
        revision: record.revision,
        mac: *record.mac.as_bytes(),
        body: confstrata_core::serde_json::to_string(record)
            .map_err(|e| Error::storage(format!("encoding an audit record: {e}")))?,
    })
}

/// An audit record from its stored form; a body that does not parse, or
/// whose indexed fields disagree with it, is an integrity error naming it.
pub fn from_journal(row: &JournalRecord) -> Result<AuditRecord> {
    let record: AuditRecord =
        confstrata_core::serde_json::from_str(&row.body).map_err(|e| Error::Integrity {
            message: format!(
                "audit record seq {}: its stored form does not parse: {e}",
                row.seq
            ),
        })?;
    if record.seq != row.seq || record.revision != row.revision || *record.mac.as_bytes() != row.mac
    {
        return Err(Error::Integrity {
            message: format!(
                "audit record seq {}: its indexed columns disagree with its body (edited?)",
                row.seq
            ),
        });
    }
    Ok(record)
}

/// Settings writes for a policy and a keyring.
pub(crate) fn policy_write(policy: &Policy) -> Result<SettingWrite> {
    Ok(SettingWrite {
        key: POLICY_SETTING.to_owned(),
        value: Some(
            confstrata_core::serde_json::to_string(policy)
                .map_err(|e| Error::storage(format!("encoding the policy: {e}")))?,
        ),
    })
}

pub(crate) fn keyring_write(keyring: &Keyring) -> Result<SettingWrite> {
    Ok(SettingWrite {
        key: KEYRING_SETTING.to_owned(),
        value: Some(
            confstrata_core::serde_json::to_string(&keyring.to_wrapped())
                .map_err(|e| Error::storage(format!("encoding the keyring: {e}")))?,
        ),
    })
}

/// The audit key of the current master key, and those of earlier ones.
pub(crate) struct AuditKeys {
    pub(crate) current: AuditKey,
    /// The bytes of the current key, to keep it when the master key moves on.
    pub(crate) current_bytes: zeroize::Zeroizing<[u8; 32]>,
    /// Earlier keys, oldest first, with their bytes.
    pub(crate) older: Vec<(zeroize::Zeroizing<[u8; 32]>, AuditKey)>,
}

impl AuditKeys {
    /// The audit key derived from `master`, and the earlier ones the store
    /// keeps wrapped by it.
    pub(crate) fn load(store: &dyn Store, master: &MasterKey) -> Result<AuditKeys> {
        let mut keys = AuditKeys::derive(master)?;
        if let Some(text) = store.setting(AUDIT_KEYS_SETTING)? {
            let stored: StoredAuditKeys =
                confstrata_core::serde_json::from_str(&text).map_err(|e| Error::Integrity {
                    message: format!("the stored earlier audit keys cannot be read: {e}"),
                })?;
            for wrapped in &stored.keys {
                let bytes = master
                    .unwrap_secret(AUDIT_KEY_PURPOSE, wrapped)
                    .map_err(crypto_error)?;
                let key = AuditKey::from_bytes(&bytes).map_err(from_access)?;
                keys.older.push((bytes, key));
            }
        }
        Ok(keys)
    }

    /// The audit key derived from `master`, with no earlier ones.
    pub(crate) fn derive(master: &MasterKey) -> Result<AuditKeys> {
        let bytes = master
            .derive_subkey(AUDIT_KEY_LABEL)
            .map_err(crypto_error)?;
        Ok(AuditKeys {
            current: AuditKey::from_bytes(&bytes).map_err(from_access)?,
            current_bytes: bytes,
            older: Vec::new(),
        })
    }
}

/// Whether a value holds a `$sealed` table anywhere.
pub(crate) fn contains_sealed(v: &Value) -> bool {
    match v {
        Value::Object(m) => {
            m.contains_key(confstrata_crypto::SEALED_KEY) || m.values().any(contains_sealed)
        }
        Value::Array(a) => a.iter().any(contains_sealed),
        _ => false,
    }
}
