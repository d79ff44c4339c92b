//! Rotating the master key online.
//!
//! The master key wraps every data key, and the audit key is derived from
//! it. A rotation, under the policy-and-keyring lock:
//!
//! 1. the key file writes a new random key beside the current one
//!    (`master.key.next`), flushed to disk ([`MasterKeyFile::stage`]);
//! 2. one store transaction writes the data keys wrapped by the new key,
//!    the audit keys of every earlier master key (the current one's
//!    included) wrapped by the new key, the new key's id, and the audit
//!    record of the rotation;
//! 3. the key file renames the new key over the old one
//!    ([`MasterKeyFile::promote`]), and the engine switches to it: new
//!    audit records are keyed by the new key's audit key.
//!
//! A kill at any point leaves a store that opens: before step 2 commits
//! the store names the old key, which the file still holds (the staged
//! key is discarded at the next open); after it, the store names the new
//! key, held by `master.key.next` until the rename and by the file after
//! it (the next open finishes the rename). Opening picks the key by the
//! id the store records, never by trying keys. The data keys themselves do
//! not change, so no sealed value is rewritten.
//!
//! Records keyed by an earlier audit key still verify: each record names
//! its key's id, and `audit verify` checks it under that key, which the
//! store keeps wrapped by the current master key.

use confstrata_access::{Action, Outcome, Resource};
use confstrata_core::view::MasterKeyRotation;
use confstrata_core::{Error, Result, SettingWrite};
use confstrata_crypto::MasterKey;

use crate::Engine;
use crate::security::{
    self, AUDIT_KEY_PURPOSE, AUDIT_KEYS_SETTING, AuditKeys, Caller, MASTER_KEY_ID_SETTING,
    StoredAuditKeys, crypto_error, journal_fn, keyring_write,
};

/// Where the master key is kept, for rotating it: a host gives the engine
/// one when the key comes from a file (see `confstrata-host`). Every step
/// must be durable when it returns.
pub trait MasterKeyFile: Send + Sync + 'static {
    /// Writes a new random master key beside the current one and returns
    /// it; a staged key left by an earlier attempt is replaced.
    fn stage(&self) -> Result<MasterKey>;
    /// Makes the staged key the current one (an atomic rename).
    fn promote(&self) -> Result<()>;
    /// Removes a staged key that was not used.
    fn discard(&self);
    /// Where the key is kept, for messages.
    fn describe(&self) -> String;
}

impl Engine {
    /// Gives the engine the file its master key lives in, so the key can be
    /// rotated online ([`Engine::rotate_master_key`]). Set once; `false` if
    /// one was set already.
    pub fn set_master_key_file(&self, file: Box<dyn MasterKeyFile>) -> bool {
        self.security.key_file.set(file).is_ok()
    }

    /// Rotates the master key (`admin` on everything): every data key is
    /// wrapped by a new master key and the audit chain goes on under the
    /// new key's audit key; see the module docs for the steps and why a
    /// kill at any point leaves a store that opens.
    pub fn rotate_master_key(&self, caller: &Caller) -> Result<MasterKeyRotation> {
        let g = self.gate(caller);
        g.require(Action::Admin, Resource::everything())?;
        let Some(file) = self.security.key_file.get() else {
            return Err(Error::invalid(
                "master key",
                "this server's master key does not come from a key file it can replace \
                 (it comes from CONFSTRATA_MASTER_KEY, or is in memory only); \
                 see docs/SECURITY.md, \"Rotating the master key\"",
            ));
        };
        let _admin = self
            .security
            .admin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Held across the store write: no data key is added or retired
        // under the old master key meanwhile.
        let mut keyring = self
            .security
            .keyring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let from = keyring.master_id().map_err(crypto_error)?;
        let new = file.stage()?;
        let prepared = (|| -> Result<_> {
            let to = new.id().map_err(crypto_error)?;
            let mut audit = AuditKeys::derive(&new)?;
            let mut wrapped = Vec::new();
            {
                let old = security::read_lock(&self.security.audit);
                for (bytes, key) in &old.older {
                    wrapped.push(
                        new.wrap_secret(AUDIT_KEY_PURPOSE, bytes)
                            .map_err(crypto_error)?,
                    );
                    audit.older.push((bytes.clone(), key.clone()));
                }
                wrapped.push(
                    new.wrap_secret(AUDIT_KEY_PURPOSE, &old.current_bytes)
                        .map_err(crypto_error)?,
                );
                audit
                    .older
                    .push((old.current_bytes.clone(), old.current.clone()));
            }
            let stored = StoredAuditKeys {
                v: 1,
                keys: wrapped,
            };
            let rewrapped = keyring.rewrapped(new).map_err(crypto_error)?;
            let writes = vec![
                keyring_write(&rewrapped)?,
                SettingWrite {
                    key: AUDIT_KEYS_SETTING.to_owned(),
                    value: Some(
                        confstrata_core::serde_json::to_string(&stored)
                            .map_err(|e| Error::storage(format!("encoding the audit keys: {e}")))?,
                    ),
                },
                SettingWrite {
                    key: MASTER_KEY_ID_SETTING.to_owned(),
                    value: Some(to.clone()),
                },
            ];
            Ok((to, audit, rewrapped, writes))
        })();
        let (to, audit, rewrapped, writes) = match prepared {
            Ok(p) => p,
            Err(e) => {
                file.discard();
                return Err(e);
            }
        };
        let entry = g
            .entry(Action::Admin, Resource::everything(), Outcome::Success)
            .detail("operation", "master key rotate")
            .detail("from", from.clone())
            .detail("to", to.clone())
            .detail("audit_key", audit.current.id().to_string());
        if let Err(e) = self
            .store
            .write_settings(&writes, Some(journal_fn(&self.security, entry)))
        {
            file.discard();
            return Err(e);
        }
        // Committed: the store names the new key from here on, so the
        // engine switches whether or not the rename below succeeds (the
        // next open finishes it).
        let data_keys = rewrapped.key_ids().count();
        let audit_keys = audit.older.len();
        let audit_key_id = audit.current.id().to_string();
        *keyring = rewrapped;
        *security::write_lock(&self.security.audit) = audit;
        drop(keyring);
        let promoted = file.promote();
        if let Err(e) = &promoted {
            tracing::error!(
                error = %e,
                file = %file.describe(),
                "the new master key is committed but could not replace the key file; \
                 the next start finishes the rename from the staged file"
            );
        }
        promoted?;
        Ok(MasterKeyRotation {
            from,
            to,
            data_keys,
            audit_keys_kept: audit_keys,
            audit_key: audit_key_id,
        })
    }

    /// The id of the master key in use.
    pub fn master_key_id(&self, caller: &Caller) -> Result<String> {
        self.gate(caller)
            .require(Action::Admin, Resource::everything())?;
        security::read_lock(&self.security.keyring)
            .master_id()
            .map_err(crypto_error)
    }
}
