//! Backups on a schedule: the server takes them by itself, incremental
//! between full ones, and applies the backup retention after each.

use std::time::Duration;

use confstrata_engine::Caller;

use crate::Host;

/// The principal scheduled backups are audited under (`local:backup`).
pub const BACKUP_CALLER: &str = "backup";

impl Host {
    /// Takes a backup every `every` (the first one period after the start)
    /// until the server stops, on the blocking pool, audited as
    /// `local:backup`: incremental while the newest chain on the target
    /// holds fewer than `full_every` backups, then a full one (0 or 1:
    /// all full). A failed run is logged and the next one tried.
    ///
    /// With `retention`, the history retention runs in the same job, right
    /// before each full backup, instead of on its own timer: an incremental
    /// backup cannot carry what retention removed (it would fall back to
    /// full), so retention between the backups of one chain would make
    /// every backup full.
    pub fn schedule_backups(
        &self,
        every: Duration,
        full_every: u32,
        retention: Option<confstrata_core::RetentionPolicy>,
    ) {
        self.every(every, "backup", move |engine| {
            scheduled_backup(engine, full_every, retention.as_ref()).map(|_| ())
        });
    }
}

/// One scheduled backup: retention first when this one is full (see
/// [`Host::schedule_backups`]), then the backup and the backup retention.
pub fn scheduled_backup(
    engine: &confstrata_engine::Engine,
    full_every: u32,
    retention: Option<&confstrata_core::RetentionPolicy>,
) -> confstrata_core::Result<confstrata_engine::confstrata_backup::Manifest> {
    // Counted on the target, not in memory: restarts do not keep a
    // chain from ever ending.
    let chain = engine.newest_chain_len().unwrap_or(0);
    let incremental = chain > 0 && chain < usize::try_from(full_every).unwrap_or(usize::MAX);
    if !incremental && let Some(policy) = retention {
        // A failed retention does not cost the backup.
        if let Err(e) = crate::retention::run_retention(engine, policy) {
            tracing::warn!(error = %e, "retention before a full backup failed; backing up anyway");
        }
    }
    let (m, pruned) = engine.backup_now(&Caller::local(BACKUP_CALLER), incremental, &mut |p| {
        tracing::debug!(
            records = p.records,
            parts = p.parts,
            bytes = p.stored_bytes,
            "backup progress"
        );
    })?;
    tracing::info!(
        backup = %m.id,
        revision = m.revision,
        incremental = m.parent.is_some(),
        pruned = pruned.len(),
        "scheduled backup taken"
    );
    Ok(m)
}
