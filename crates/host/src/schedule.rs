//! Background jobs on a fixed period (retention, backups): one loop for
//! all of them, ending when the server stops.

use std::time::Duration;

use confstrata_engine::Engine;

use crate::Host;

impl Host {
    /// Runs `job` every `every` (the first run one period after the start)
    /// until the server stops, on the blocking pool; a run never overlaps
    /// the one before. The job logs what it did; a failed run is logged as
    /// `scheduled {what} failed` and the next one tried.
    pub(crate) fn every(
        &self,
        every: Duration,
        what: &'static str,
        job: impl Fn(&Engine) -> confstrata_core::Result<()> + Send + Sync + 'static,
    ) {
        let engine = self.engine().clone();
        let mut stopping = self.stopping();
        let job = std::sync::Arc::new(job);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = stopping.wait_for(|s| *s) => return,
                }
                let (engine, job) = (engine.clone(), std::sync::Arc::clone(&job));
                match tokio::task::spawn_blocking(move || job(&engine)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "scheduled {what} failed; trying again next period");
                    }
                    Err(e) => tracing::warn!(error = %e, "scheduled {what} stopped"),
                }
            }
        });
    }
}
