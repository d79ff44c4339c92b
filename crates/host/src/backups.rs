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
    /// `local:backup`: every `full_every`-th one full, the others
    /// incremental (0: all full). A failed run is logged and the next one
    /// tried.
    pub fn schedule_backups(&self, every: Duration, full_every: u32) {
        let engine = self.engine().clone();
        let mut stopping = self.stopping();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n: u64 = 0;
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = stopping.wait_for(|s| *s) => return,
                }
                n += 1;
                let incremental = full_every != 0 && !n.is_multiple_of(u64::from(full_every));
                let engine = engine.clone();
                let run = tokio::task::spawn_blocking(move || {
                    engine.backup_now(&Caller::local(BACKUP_CALLER), incremental, &mut |p| {
                        tracing::debug!(
                            records = p.records,
                            parts = p.parts,
                            bytes = p.stored_bytes,
                            "backup progress"
                        );
                    })
                })
                .await;
                match run {
                    Ok(Ok((m, pruned))) => tracing::info!(
                        backup = %m.id,
                        revision = m.revision,
                        incremental = m.parent.is_some(),
                        pruned = pruned.len(),
                        "scheduled backup taken"
                    ),
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "scheduled backup failed; trying again next period")
                    }
                    Err(e) => tracing::error!(error = %e, "scheduled backup stopped"),
                }
            }
        });
    }
}
