//! Retention on a schedule: the server drops old history by itself, so a
//! store left alone does not grow without bound.

use std::time::Duration;

use confstrata_core::RetentionPolicy;
use confstrata_engine::Caller;

use crate::Host;

/// The principal scheduled retention is audited under (`local:retention`).
pub const RETENTION_CALLER: &str = "retention";

impl Host {
    /// Applies `policy` every `every` (the first run one period after the
    /// start) until the server stops, on the blocking pool, audited as
    /// `local:retention`. A failed run is logged and the next one tried.
    pub fn schedule_retention(&self, policy: RetentionPolicy, every: Duration) {
        self.every(every, "retention", move |engine| {
            run_retention(engine, &policy)
        });
    }
}

/// One scheduled retention run, audited as `local:retention`.
pub(crate) fn run_retention(
    engine: &confstrata_engine::Engine,
    policy: &RetentionPolicy,
) -> confstrata_core::Result<()> {
    let r = engine.apply_retention(&Caller::local(RETENTION_CALLER), policy)?;
    tracing::info!(
        oldest_revision = r.oldest_revision,
        removed_versions = r.removed_versions,
        freed_bytes = r.freed_bytes,
        "scheduled retention ran"
    );
    Ok(())
}
