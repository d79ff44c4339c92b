//! Backups through the engine: authorized (`backup` on everything),
//! audited, and sealed with the master key or a separate backup key file
//! through `confstrata-crypto` (the backup crate itself holds no cipher).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use confstrata_access::{Action, Outcome, Resource};
use confstrata_backup::{
    CreateOptions, DataKey, Keys, Listed, Manifest, Progress, PruneReport, RestoreOptions,
    RestoreReport, Retention, Target, VerifyReport,
};
use confstrata_core::{
    Error, LayerInput, MemoryStore, Result, SettingWrite, Store, Timestamp, resolve,
};
use confstrata_crypto::{BlobKey, MasterKey};
use serde::Serialize;

use crate::security::{MASTER_KEY_ID_SETTING, Security, crypto_error, read_lock};
use crate::{Caller, Engine};

/// What data keys of backups are wrapped with, for [`MasterKey::wrap_secret`].
const PURPOSE: &str = "backup data key";

/// The manifest fact naming the master key a backup's store needs.
pub const MASTER_KEY_FACT: &str = "master_key_id";

/// The key-encryption key of backups: the server's master key (the
/// default), or a separate key file kept with off-site copies.
pub struct BackupKeys {
    kek: Kek,
}

enum Kek {
    Master(Arc<Security>),
    File(MasterKey),
}

impl BackupKeys {
    /// Backups sealed under `key` (a master key, or a backup key).
    pub fn with_key(key: MasterKey) -> BackupKeys {
        BackupKeys {
            kek: Kek::File(key),
        }
    }

    /// Backups sealed under the key in `path`: 32 random bytes, as hex or
    /// base64, mode 0600 (the master key file's format; `openssl rand -hex
    /// 32`).
    pub fn from_key_file(path: &Path) -> Result<BackupKeys> {
        let key = MasterKey::load_file(path)
            .map_err(|e| Error::invalid("backup key file", e.to_string()))?;
        Ok(BackupKeys::with_key(key))
    }

    fn with<T>(&self, f: impl FnOnce(&MasterKey) -> Result<T>) -> Result<T> {
        match &self.kek {
            Kek::File(key) => f(key),
            Kek::Master(security) => f(read_lock(&security.keyring).master()),
        }
    }
}

struct Data(BlobKey);

impl DataKey for Data {
    fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
        self.0.seal(aad, plain).map_err(crypto_error)
    }
    fn open(&self, place: &str, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        self.0.open(place, aad, sealed).map_err(crypto_error)
    }
}

impl Keys for BackupKeys {
    fn kek_id(&self) -> Result<String> {
        self.with(|k| k.id().map_err(crypto_error))
    }
    fn new_data_key(&self) -> Result<(Box<dyn DataKey>, String)> {
        self.with(|k| {
            let (key, wrapped) = BlobKey::generate_wrapped(k, PURPOSE).map_err(crypto_error)?;
            Ok((Box::new(Data(key)) as Box<dyn DataKey>, wrapped))
        })
    }
    fn open_data_key(&self, wrapped: &str) -> Result<Box<dyn DataKey>> {
        self.with(|k| {
            let key = BlobKey::unwrap(k, PURPOSE, wrapped).map_err(crypto_error)?;
            Ok(Box::new(Data(key)) as Box<dyn DataKey>)
        })
    }
}

/// What `backup verify` found beyond the format: the audit chain and
/// every context resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupVerification {
    /// The format checks and the trial restore.
    #[serde(flatten)]
    pub backup: VerifyReport,
    /// Audit records verified (MACs and links).
    pub audit_records: u64,
    /// Contexts resolved (every namespace's matrix at the backup's revision).
    pub contexts_resolved: u64,
    /// Namespaces in it.
    pub namespaces: u64,
}

/// Where the server takes its backups, with what key, and what it keeps.
pub struct BackupConfig {
    /// The target.
    pub target: Box<dyn Target>,
    /// A separate key file's key (default: the master key).
    pub keys: Option<BackupKeys>,
    /// What to keep after each backup.
    pub retention: Retention,
}

/// The server's backups: its configuration and the newest good backup.
#[derive(Default)]
pub(crate) struct Backups {
    config: std::sync::RwLock<Option<Arc<BackupConfig>>>,
    newest: std::sync::RwLock<Option<(String, u64, Timestamp)>>,
}

impl Engine {
    /// Configures where [`Engine::backup_now`] takes backups, and learns
    /// the newest one already there (for `status`); a target that cannot
    /// be read now is logged, not refused (it may be mounted later).
    pub fn set_backups(&self, config: BackupConfig) {
        match confstrata_backup::latest_good(
            &*config.target,
            &self.store.store_id().unwrap_or_default(),
        ) {
            Ok(found) => self.note_backup(found.as_ref()),
            Err(e) => {
                tracing::warn!(target_url = %config.target.url(), error = %e, "cannot list the backups on the backup target")
            }
        }
        *crate::security::write_lock(&self.backups.config) = Some(Arc::new(config));
    }

    fn note_backup(&self, m: Option<&Manifest>) {
        if let Some(m) = m {
            *crate::security::write_lock(&self.backups.newest) =
                Some((m.id.clone(), m.revision, m.created));
        }
    }

    fn backup_config(&self) -> Result<Arc<BackupConfig>> {
        read_lock(&self.backups.config).clone().ok_or_else(|| {
            Error::invalid(
                "backup",
                "this server has no backup target: set backup_to in its settings",
            )
        })
    }

    /// The configured target and the newest backup on it, for `status`.
    pub(crate) fn backup_status(&self) -> (String, Option<confstrata_core::view::BackupStatus>) {
        let target = read_lock(&self.backups.config)
            .as_ref()
            .map(|c| c.target.url())
            .unwrap_or_default();
        let newest = read_lock(&self.backups.newest)
            .clone()
            .map(
                |(id, revision, created)| confstrata_core::view::BackupStatus {
                    id,
                    revision,
                    created,
                    age_seconds: u64::try_from((Timestamp::now().0 - created.0).max(0) / 1000)
                        .unwrap_or(0),
                },
            );
        (target, newest)
    }

    /// Takes a backup now on the configured target (`backup` on
    /// everything), then applies the configured retention (a retention
    /// that fails is logged: the backup is taken). Returns the manifest and
    /// the ids retention removed.
    pub fn backup_now(
        &self,
        caller: &Caller,
        incremental: bool,
        report: &mut dyn FnMut(Progress),
    ) -> Result<(Manifest, Vec<String>)> {
        let config = self.backup_config()?;
        let options = CreateOptions {
            incremental,
            ..CreateOptions::default()
        };
        let m = self.backup_create(
            caller,
            &*config.target,
            config.keys.as_ref(),
            &options,
            report,
        )?;
        self.note_backup(Some(&m));
        let pruned = match self.backup_prune(caller, &*config.target, &config.retention) {
            Ok(r) => r.removed,
            Err(e) => {
                tracing::warn!(error = %e, "backup retention failed; the backup was taken");
                Vec::new()
            }
        };
        Ok((m, pruned))
    }

    /// This store as of `to`, restored from its backups on the configured
    /// target into memory (for a rollback past retention).
    pub(crate) fn restore_in_memory(
        &self,
        to: confstrata_core::At,
    ) -> Result<(MemoryStore, RestoreReport)> {
        let config = self.backup_config()?;
        let master = self.backup_keys();
        let keys = config.keys.as_ref().unwrap_or(&master);
        let point = match to {
            confstrata_core::At::Latest => confstrata_backup::Point::Latest,
            confstrata_core::At::Revision(r) => confstrata_backup::Point::Revision(r),
            confstrata_core::At::Time(t) => confstrata_backup::Point::Time(t),
        };
        let store = MemoryStore::new();
        let report = confstrata_backup::restore(
            &*config.target,
            keys,
            &store,
            &RestoreOptions {
                point,
                store_id: Some(self.store.store_id()?),
                bump: 1,
            },
            &mut |_| {},
        )?;
        Ok((store, report))
    }

    /// How many backups the chain of the newest backup of this store on
    /// the configured target holds (0: none): the schedule takes a full
    /// one when it reaches its length, whatever restarts happened since.
    pub fn newest_chain_len(&self) -> Result<usize> {
        let config = self.backup_config()?;
        let store_id = self.store.store_id()?;
        let mine: BTreeMap<String, Manifest> = confstrata_backup::list(&*config.target)?
            .into_iter()
            .filter_map(|l| l.manifest)
            .filter(|m| m.store_id == store_id)
            .map(|m| (m.id.clone(), m))
            .collect();
        let mut at = mine.values().max_by_key(|m| (m.revision, m.created));
        let mut n = 0;
        while let Some(m) = at {
            n += 1;
            if n > mine.len() {
                break;
            }
            at = m.parent.as_ref().and_then(|p| mine.get(&p.id));
        }
        Ok(n)
    }

    /// The backups on the configured target (`backup` on everything).
    pub fn backups(&self, caller: &Caller) -> Result<(String, Vec<Listed>)> {
        let config = self.backup_config()?;
        Ok((
            config.target.url(),
            self.backup_list(caller, &*config.target)?,
        ))
    }

    /// Verifies a backup on the configured target (default: the newest of
    /// this store).
    pub fn verify_backup(
        &self,
        caller: &Caller,
        id: Option<&str>,
        report: &mut dyn FnMut(Progress),
    ) -> Result<BackupVerification> {
        let config = self.backup_config()?;
        let id = match id {
            Some(id) => id.to_owned(),
            None => {
                self.gate(caller)
                    .require(Action::Backup, Resource::everything())?;
                confstrata_backup::latest_good(&*config.target, &self.store.store_id()?)?
                    .map(|m| m.id)
                    .ok_or_else(|| {
                        Error::invalid(
                            "backup",
                            format!(
                                "no complete backup of this store on {}",
                                config.target.url()
                            ),
                        )
                    })?
            }
        };
        self.backup_verify(caller, &*config.target, config.keys.as_ref(), &id, report)
    }

    /// Checks that the live journal extends the head every retained
    /// backup of this store recorded: the chain that is left after its
    /// newest records were cut off still verifies on its own, but not
    /// against a backup taken before the cut. Nothing to check without a
    /// backup target; an unreadable target is logged, not an error of the
    /// journal.
    pub(crate) fn check_backup_heads(&self, last_seq: u64) -> Result<()> {
        let Some(config) = read_lock(&self.backups.config).clone() else {
            return Ok(());
        };
        let listed = match confstrata_backup::list(&*config.target) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the backups to check the journal against them");
                return Ok(());
            }
        };
        let store_id = self.store.store_id()?;
        let master = self.backup_keys();
        let keys = config.keys.as_ref().unwrap_or(&master);
        for listed in listed.iter().filter_map(|l| l.manifest.as_ref()) {
            if listed.store_id != store_id || listed.journal.is_none() {
                continue;
            }
            // Only what the key vouches for counts.
            let m = confstrata_backup::open_manifest(&*config.target, keys, &listed.id).map_err(
                |e| Error::Integrity {
                    message: format!(
                        "backup {} cannot be compared with the audit log: {e}",
                        listed.id
                    ),
                },
            )?;
            let Some(mark) = m.journal.as_ref() else {
                continue;
            };
            if mark.seq > last_seq {
                return Err(Error::Integrity {
                    message: format!(
                        "the audit log ends at record {last_seq}, but backup {} recorded record {}: its newest records were cut off",
                        m.id, mark.seq
                    ),
                });
            }
            let found = self.store.journal(mark.seq.saturating_sub(1), 1)?;
            if !found.first().is_some_and(|r| mark.is(&r.head())) {
                return Err(Error::Integrity {
                    message: format!(
                        "audit record {} is not the one backup {} recorded: the log was rewritten after it",
                        mark.seq, m.id
                    ),
                });
            }
        }
        Ok(())
    }

    /// The keys backups are sealed with by default: the master key's.
    pub fn backup_keys(&self) -> BackupKeys {
        BackupKeys {
            kek: Kek::Master(Arc::clone(&self.security)),
        }
    }

    /// The options a backup is taken with: the caller's, plus the id of
    /// the master key its sealed values and audit chain need.
    fn backup_options(&self, options: &CreateOptions) -> Result<CreateOptions> {
        let mut options = options.clone();
        let master = read_lock(&self.security.keyring)
            .master_id()
            .map_err(crypto_error)?;
        options.facts.insert(MASTER_KEY_FACT.to_owned(), master);
        Ok(options)
    }

    /// Takes a backup onto `target` (`backup` on everything), sealed under
    /// `keys` (default: the master key), online; audited.
    pub fn backup_create(
        &self,
        caller: &Caller,
        target: &dyn Target,
        keys: Option<&BackupKeys>,
        options: &CreateOptions,
        report: &mut dyn FnMut(Progress),
    ) -> Result<Manifest> {
        let g = self.gate(caller);
        g.require(Action::Backup, Resource::everything())?;
        let master = self.backup_keys();
        let keys = keys.unwrap_or(&master);
        let options = self.backup_options(options)?;
        let result = confstrata_backup::create(&*self.store, target, keys, &options, report);
        let entry = match &result {
            Ok(m) => g
                .entry(Action::Backup, Resource::everything(), Outcome::Success)
                .detail("operation", "backup create")
                .detail("backup", m.id.clone())
                .detail("revision", m.revision.to_string())
                .detail("target", target.url()),
            Err(e) => g
                .entry(Action::Backup, Resource::everything(), Outcome::Failed)
                .detail("operation", "backup create")
                .detail("target", target.url())
                .detail("error", e.to_string()),
        };
        g.audit(entry)?;
        result
    }

    /// The backups on `target` (`backup` on everything).
    pub fn backup_list(&self, caller: &Caller, target: &dyn Target) -> Result<Vec<Listed>> {
        self.gate(caller)
            .require(Action::Backup, Resource::everything())?;
        confstrata_backup::list(target)
    }

    /// Verifies backup `id` on `target` (`backup` on everything): every
    /// seal, checksum and link, a trial restore into memory, the audit
    /// chain under this server's audit keys, and every context of every
    /// namespace resolved.
    pub fn backup_verify(
        &self,
        caller: &Caller,
        target: &dyn Target,
        keys: Option<&BackupKeys>,
        id: &str,
        report: &mut dyn FnMut(Progress),
    ) -> Result<BackupVerification> {
        self.gate(caller)
            .require(Action::Backup, Resource::everything())?;
        let master = self.backup_keys();
        let keys = keys.unwrap_or(&master);
        let (format, store) = confstrata_backup::verify(target, keys, id, report)?;
        let (key, older) = self.security.audit_keys();
        let audit =
            crate::admin::verify_journal(&store, &key, &older).map_err(|e| Error::Integrity {
                message: format!("backup {id}: {e}"),
            })?;
        let (namespaces, contexts_resolved) =
            resolve_all(&store, format.revision).map_err(|e| Error::Integrity {
                message: format!("backup {id}: {e}"),
            })?;
        Ok(BackupVerification {
            backup: format,
            audit_records: audit.records,
            contexts_resolved,
            namespaces,
        })
    }

    /// Removes the backups `retention` does not keep (`backup` on everything).
    pub fn backup_prune(
        &self,
        caller: &Caller,
        target: &dyn Target,
        retention: &Retention,
    ) -> Result<PruneReport> {
        let g = self.gate(caller);
        g.require(Action::Backup, Resource::everything())?;
        let report = confstrata_backup::prune(target, retention, Timestamp::now())?;
        g.audit(
            g.entry(Action::Backup, Resource::everything(), Outcome::Success)
                .detail("operation", "backup prune")
                .detail("removed", report.removed.len().to_string())
                .detail("target", target.url()),
        )?;
        Ok(report)
    }
}

/// Resolves every context of every namespace's matrix at `revision`:
/// (namespaces, contexts).
fn resolve_all(store: &MemoryStore, revision: u64) -> Result<(u64, u64)> {
    let mut contexts = 0;
    let namespaces = store.namespaces(revision)?;
    for ns in &namespaces {
        let layers = store.layers(&ns.spec.name, revision)?;
        for ctx in ns.spec.matrix_contexts() {
            let inputs: Vec<LayerInput<'_>> = ns
                .spec
                .layers_for(&ctx)?
                .iter()
                .filter_map(|want| layers.iter().find(|l| &l.layer == want))
                .map(|l| LayerInput {
                    namespace: None,
                    layer: &l.layer,
                    revision: l.revision,
                    document: &l.document,
                })
                .collect();
            let _ = resolve(&inputs);
            contexts += 1;
        }
    }
    Ok((namespaces.len() as u64, contexts))
}

/// Restores a store from backups into the empty `into` (offline: no
/// caller; whoever holds the key and the files may), as
/// [`confstrata_backup::restore`] does, and records the master key the
/// restored store needs, so that it is never opened with another (a new
/// key would be generated, and no sealed value would open).
pub fn restore(
    target: &dyn Target,
    keys: &BackupKeys,
    into: &dyn Store,
    options: &RestoreOptions,
    report: &mut dyn FnMut(Progress),
) -> Result<RestoreReport> {
    let done = confstrata_backup::restore(target, keys, into, options, report)?;
    if into.setting(MASTER_KEY_ID_SETTING)?.is_none()
        && let Some(id) = done.facts.get(MASTER_KEY_FACT)
    {
        into.write_settings(
            &[SettingWrite {
                key: MASTER_KEY_ID_SETTING.to_owned(),
                value: Some(id.clone()),
            }],
            None,
        )?;
    }
    Ok(done)
}
