//! Administration: data keys (rotate, rewrap, retire), principals and
//! tokens, and the audit log (list, verify). Every operation needs `admin`
//! (or `audit` for the log) and is itself audited, in the same transaction
//! as the setting it changes.

use std::collections::BTreeSet;

use confstrata_access::{
    Action, AuditRecord, Head, Outcome, Policy, PrincipalId, PrincipalKind, Resource, RoleName,
    Token, TokenHash,
};
use confstrata_core::view::{AuditVerification, KeyInfo, PrincipalInfo, TokenInfo};
use confstrata_core::{ChangeSet, CommitInfo, Error, NamespaceName, Op, Result, Timestamp};
use confstrata_crypto::KeyId;

use crate::Engine;
use crate::security::{
    self, Caller, Gate, crypto_error, from_access, from_journal, journal_fn, keyring_write,
    policy_write,
};

const PAGE: usize = 1000;

impl Engine {
    /// On the first start of a store (no stored policy yet), creates the
    /// principal `admin` with the `admin` role and returns its token, to be
    /// shown once. `None` on every later start.
    pub fn bootstrap_admin(&self) -> Result<Option<Token>> {
        let _admin = self
            .security
            .admin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.store.setting(security::POLICY_SETTING)?.is_some() {
            return Ok(None);
        }
        let mut policy = (*self.security.policy()).clone();
        let id = PrincipalId::parse("admin").map_err(from_access)?;
        if policy.principal(&id).is_none() {
            policy
                .add_principal(id.clone(), "first administrator", PrincipalKind::User)
                .map_err(from_access)?;
        }
        policy
            .grant_role(&id, &RoleName::parse("admin").map_err(from_access)?)
            .map_err(from_access)?;
        let token = policy
            .issue_token(&id, "created on first start", Timestamp::now())
            .map_err(from_access)?;
        let entry = confstrata_access::AuditEntry::new(
            Timestamp::now(),
            None,
            Action::Admin,
            Resource::everything(),
            Outcome::Success,
        )
        .detail("operation", "bootstrap")
        .detail("principal", "admin");
        self.store.write_settings(
            &[policy_write(&policy)?],
            Some(journal_fn(&self.security, entry)),
        )?;
        self.security.set_policy(policy);
        Ok(Some(token))
    }

    // ---- data keys ---------------------------------------------------------

    /// Adds a new current data key for a namespace; old values stay readable.
    pub fn rotate_key(&self, caller: &Caller, ns: &NamespaceName) -> Result<String> {
        let g = self.gate(caller);
        g.require(Action::Admin, Resource::namespace(ns.clone()))?;
        self.rotate_key_inner(&g, ns, "rotate")
    }

    pub(crate) fn rotate_key_inner(
        &self,
        g: &Gate<'_>,
        ns: &NamespaceName,
        why: &str,
    ) -> Result<String> {
        let _admin = self
            .security
            .admin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut keyring = self
            .security
            .keyring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if why != "rotate"
            && let Some(current) = keyring.current(ns)
        {
            // Another request created the first key meanwhile.
            return Ok(current.to_string());
        }
        let id = keyring.rotate(ns).map_err(crypto_error)?;
        let entry = g
            .entry(
                Action::Admin,
                Resource::namespace(ns.clone()),
                Outcome::Success,
            )
            .detail("operation", "key rotate")
            .detail("reason", why)
            .detail("key", id.to_string());
        if let Err(e) = self.store.write_settings(
            &[keyring_write(&keyring)?],
            Some(journal_fn(&self.security, entry)),
        ) {
            // Not stored: forget it again, so nothing is sealed with a key
            // that would be lost on restart.
            let stored = self
                .store
                .setting(security::KEYRING_SETTING)?
                .map(|t| confstrata_core::serde_json::from_str(&t))
                .transpose()
                .map_err(|e| Error::Integrity {
                    message: format!("the stored keyring cannot be read: {e}"),
                })?
                .unwrap_or_else(|| confstrata_crypto::WrappedKeyring::from_keys(Vec::new()));
            keyring.reload(&stored).map_err(crypto_error)?;
            return Err(e);
        }
        Ok(id.to_string())
    }

    /// The data keys, per namespace (admin).
    pub fn keys(&self, caller: &Caller) -> Result<Vec<KeyInfo>> {
        let g = self.gate(caller);
        g.require(Action::Admin, Resource::everything())?;
        let keyring = self
            .security
            .keyring
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(keyring
            .key_ids()
            .map(|id| KeyInfo {
                id: id.to_string(),
                current: keyring.current(id.namespace()) == Some(id),
            })
            .collect())
    }

    /// Re-seals every sealed value of a namespace's current layers under its
    /// current key, as one new revision; `None` if nothing needed it.
    pub fn rewrap(&self, caller: &Caller, ns: &NamespaceName) -> Result<Option<CommitInfo>> {
        let g = self.gate(caller);
        g.require(Action::Admin, Resource::namespace(ns.clone()))?;
        let rev = self.store.revision()?;
        let mut ops = Vec::new();
        {
            let keyring = self
                .security
                .keyring
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for mut r in self.store.layers(ns, rev)? {
                if confstrata_crypto::rewrap(&mut r.document, &keyring, ns, &r.layer)
                    .map_err(crypto_error)?
                {
                    ops.push(Op::Put {
                        namespace: ns.clone(),
                        layer: r.layer,
                        document: r.document,
                        expect_revision: Some(r.revision),
                    });
                }
            }
        }
        if ops.is_empty() {
            return Ok(None);
        }
        let cs = ChangeSet {
            author: caller.author(),
            message: format!("rewrap the sealed values of {ns} under the current key"),
            ops,
        };
        self.store_commit(&g, &cs, Action::Admin, "key rewrap", None)
            .map(Some)
    }

    /// Retires a data key. Refused while any retained version of the
    /// namespace (history included, so rollbacks still open) uses it, and
    /// for the current key.
    pub fn retire_key(&self, caller: &Caller, key: &str) -> Result<()> {
        let id = KeyId::parse(key).map_err(crypto_error)?;
        let ns = id.namespace().clone();
        let g = self.gate(caller);
        g.require(Action::Admin, Resource::namespace(ns.clone()))?;
        let _admin = self
            .security
            .admin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut referenced = BTreeSet::new();
        for v in self.store.history(&ns, None, usize::MAX)? {
            if let Some(doc) = &v.document {
                referenced.extend(confstrata_crypto::key_ids(doc).map_err(crypto_error)?);
            }
        }
        let mut keyring = self
            .security
            .keyring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !keyring.contains(&id) {
            return Err(Error::invalid(
                format!("key id {id}"),
                "there is no such data key (retired already?); `keys list` shows the keys",
            ));
        }
        if referenced.contains(&id) && keyring.current(&ns) != Some(&id) {
            return Err(Error::invalid(
                format!("key id {id}"),
                "sealed values in retained versions still use it (current layers or history, which rollbacks need); \
                 run `keys rewrap`, then retire it once retention (`compact`) has dropped the older versions",
            ));
        }
        let before = keyring.to_wrapped();
        keyring.retire(&id, &referenced).map_err(crypto_error)?;
        let entry = g
            .entry(Action::Admin, Resource::namespace(ns), Outcome::Success)
            .detail("operation", "key retire")
            .detail("key", id.to_string());
        if let Err(e) = self.store.write_settings(
            &[keyring_write(&keyring)?],
            Some(journal_fn(&self.security, entry)),
        ) {
            keyring.reload(&before).map_err(crypto_error)?;
            return Err(e);
        }
        Ok(())
    }

    // ---- principals and tokens ----------------------------------------------

    /// Changes the policy with `f`, stores it with its audit record, and
    /// tells long-lived requests to re-check their callers.
    pub(crate) fn change_policy<T>(
        &self,
        caller: &Caller,
        operation: &str,
        subject: &str,
        f: impl FnOnce(&mut Policy) -> confstrata_access::Result<T>,
    ) -> Result<T> {
        self.change_policy_with(caller, operation, subject, |p| f(p).map_err(from_access))
    }

    /// [`Engine::change_policy`] for a change whose errors are the
    /// engine's own (naming fields of a request or file).
    pub(crate) fn change_policy_with<T>(
        &self,
        caller: &Caller,
        operation: &str,
        subject: &str,
        f: impl FnOnce(&mut Policy) -> Result<T>,
    ) -> Result<T> {
        let g = self.gate(caller);
        g.require(Action::Admin, Resource::everything())?;
        let _admin = self
            .security
            .admin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut policy = (*self.security.policy()).clone();
        let out = f(&mut policy)?;
        // No change may leave the server with nobody to administer it over
        // the API (the local user of the data directory always can).
        if crate::rbac::administered(&self.security.policy()) && !crate::rbac::administered(&policy)
        {
            return Err(Error::invalid(
                format!("{operation} {subject}"),
                "after this change no principal could administer the server (`admin` on **); \
                 grant admin to another principal first",
            ));
        }
        let entry = g
            .entry(Action::Admin, Resource::everything(), Outcome::Success)
            .detail("operation", operation)
            .detail("subject", subject);
        self.store.write_settings(
            &[policy_write(&policy)?],
            Some(journal_fn(&self.security, entry)),
        )?;
        self.security.set_policy(policy);
        drop(_admin);
        self.notify_policy();
        Ok(out)
    }

    /// Adds a principal with roles.
    pub fn add_principal(
        &self,
        caller: &Caller,
        id: &str,
        name: &str,
        kind: PrincipalKind,
        roles: &[String],
    ) -> Result<()> {
        let pid = PrincipalId::parse(id).map_err(from_access)?;
        let roles = roles
            .iter()
            .map(|r| RoleName::parse(r))
            .collect::<confstrata_access::Result<Vec<_>>>()
            .map_err(from_access)?;
        self.change_policy(caller, "principal add", id, |p| {
            p.add_principal(pid.clone(), name, kind)?;
            for r in &roles {
                p.grant_role(&pid, r)?;
            }
            Ok(())
        })
    }

    /// Grants a role to a principal.
    pub fn grant_role(&self, caller: &Caller, id: &str, role: &str) -> Result<()> {
        let pid = PrincipalId::parse(id).map_err(from_access)?;
        let role = RoleName::parse(role).map_err(from_access)?;
        self.change_policy(caller, "role grant", &format!("{id} {role}"), |p| {
            p.grant_role(&pid, &role)
        })
    }

    /// Takes a role from a principal.
    pub fn revoke_role(&self, caller: &Caller, id: &str, role: &str) -> Result<()> {
        let pid = PrincipalId::parse(id).map_err(from_access)?;
        let role = RoleName::parse(role).map_err(from_access)?;
        self.change_policy(caller, "role revoke", &format!("{id} {role}"), |p| {
            p.revoke_role(&pid, &role)
        })
    }

    /// Issues a new token for a principal; the token is returned once and
    /// stored only as its hash.
    pub fn issue_token(&self, caller: &Caller, id: &str, label: &str) -> Result<Token> {
        let pid = PrincipalId::parse(id).map_err(from_access)?;
        self.change_policy(caller, "token issue", id, |p| {
            p.issue_token(&pid, label, Timestamp::now())
        })
    }

    /// Revokes one token, named by its hash or a unique prefix of it (as
    /// `principals list` shows it). Open watches of the token end.
    pub fn revoke_token(&self, caller: &Caller, hash_prefix: &str) -> Result<()> {
        let policy = self.security.policy();
        let matches: Vec<TokenHash> = policy
            .principals()
            .flat_map(|p| p.tokens())
            .map(|t| t.hash)
            .filter(|h| !hash_prefix.is_empty() && h.to_string().starts_with(hash_prefix))
            .collect();
        let hash = match matches.as_slice() {
            [one] => *one,
            [] => {
                // Same refusal as for a real token when the caller is no admin.
                self.gate(caller)
                    .require(Action::Admin, Resource::everything())?;
                return Err(Error::invalid(
                    "token revoke",
                    format!("no token's hash starts with {hash_prefix:?}"),
                ));
            }
            _ => {
                self.gate(caller)
                    .require(Action::Admin, Resource::everything())?;
                return Err(Error::invalid(
                    "token revoke",
                    format!("{hash_prefix:?} names more than one token; give more of the hash"),
                ));
            }
        };
        self.change_policy(caller, "token revoke", &hash.short(), |p| {
            p.revoke_token(&hash)
        })
    }

    /// Revokes a principal and so all its tokens.
    pub fn revoke_principal(&self, caller: &Caller, id: &str) -> Result<()> {
        let pid = PrincipalId::parse(id).map_err(from_access)?;
        self.change_policy(caller, "principal revoke", id, |p| p.revoke_principal(&pid))
    }

    /// Every principal with its roles and token hashes (admin).
    pub fn principals(&self, caller: &Caller) -> Result<Vec<PrincipalInfo>> {
        self.gate(caller)
            .require(Action::Admin, Resource::everything())?;
        let policy = self.security.policy();
        Ok(policy.principals().map(principal_info).collect())
    }

    // ---- the audit log -----------------------------------------------------

    /// Audit records with `seq > after`, oldest first (`audit` on everything).
    pub fn audit_records(
        &self,
        caller: &Caller,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>> {
        self.gate(caller)
            .require(Action::Audit, Resource::everything())?;
        self.store
            .journal(after, limit)?
            .iter()
            .map(from_journal)
            .collect()
    }

    /// Verifies the whole audit chain: every record's MAC under the audit
    /// key (derived from the master key, never stored), and every link.
    /// An edited, deleted, inserted or reordered record is an
    /// [`Error::Integrity`] naming the first bad one.
    pub fn audit_verify(&self, caller: &Caller) -> Result<AuditVerification> {
        self.gate(caller)
            .require(Action::Audit, Resource::everything())?;
        let (key, older) = self.security.audit_keys();
        let verified = verify_journal(&*self.store, &key, &older)?;
        self.check_backup_heads(verified.last_seq)?;
        Ok(verified)
    }
}

/// Verifies the journal of `store` under the audit keys `key` (current)
/// and `older`: every record's MAC, and every link.
pub(crate) fn verify_journal(
    store: &dyn confstrata_core::Store,
    key: &confstrata_access::audit::AuditKey,
    older: &[confstrata_access::audit::AuditKey],
) -> Result<AuditVerification> {
    let mut head: Option<Head> = None;
    let mut count = 0u64;
    let mut after = 0;
    loop {
        let rows = store.journal(after, PAGE)?;
        let Some(last) = rows.last() else { break };
        after = last.seq;
        let records = rows.iter().map(from_journal).collect::<Result<Vec<_>>>()?;
        head = confstrata_access::audit::verify_from_keys(head, &records, key, older).map_err(
            |e| Error::Integrity {
                message: e.to_string(),
            },
        )?;
        count += records.len() as u64;
    }
    Ok(AuditVerification {
        records: count,
        last_seq: head.map_or(0, |h| h.seq),
    })
}

/// The listed form of a principal.
pub(crate) fn principal_info(p: &confstrata_access::Principal) -> PrincipalInfo {
    PrincipalInfo {
        id: p.id().to_string(),
        name: p.name().to_owned(),
        kind: p.kind(),
        roles: p.bindings().iter().map(crate::rbac::binding_info).collect(),
        tokens: p
            .tokens()
            .iter()
            .map(|t| TokenInfo {
                hash: t.hash.short(),
                label: t.label.clone(),
                revoked: t.revoked,
            })
            .collect(),
        revoked: p.is_revoked(),
    }
}
