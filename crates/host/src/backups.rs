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
    pub fn schedule_backups(&self, every: Duration, full_every: u32) {
        self.every(every, "backup", move |engine| {
            // Counted on the target, not in memory: restarts do not keep a
            // chain from ever ending.
            let chain = engine.newest_chain_len().unwrap_or(0);
            let incremental =
                chain > 0 && chain < usize::try_from(full_every).unwrap_or(usize::MAX);
            let (m, pruned) =
                engine.backup_now(&Caller::local(BACKUP_CALLER), incremental, &mut |p| {
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
            Ok(())
        });
    }
}
