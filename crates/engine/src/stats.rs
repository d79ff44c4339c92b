//! What the engine measures: cache counters, stage timings, the metrics
//! registry.

use confstrata_access::{Action, Resource};
use confstrata_analytics::TimingsSnapshot;
use confstrata_cache::{Budget, CacheStats};
use confstrata_core::Result;
use serde::Serialize;

use crate::Engine;
use crate::security::Caller;

/// What [`Engine::stats`] reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineStats {
    /// The store's revision.
    pub revision: u64,
    /// The resolved-view cache's counters.
    pub cache: CacheStats,
    /// What the cache may hold.
    pub cache_budget: Budget,
    /// Every stage's timings.
    pub timings: TimingsSnapshot,
    /// The newest backup on the server's backup target, and its age (none:
    /// no target, or no backup there yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest_backup: Option<confstrata_core::view::BackupStatus>,
}

impl Engine {
    /// The view cache's counters.
    pub fn cache_stats(&self) -> CacheStats {
        self.views.stats()
    }

    /// The store's state, as `status` shows it: the newest and the oldest
    /// readable revision, how many namespaces the caller may read, the
    /// store's size, and this build's version.
    pub fn status(&self, caller: &Caller) -> Result<confstrata_core::view::ServerStatus> {
        let revision = self.revision()?;
        let size = self.store.storage_size()?;
        let (mut backup_target, newest_backup) = self.backup_status();
        // Where backups go is for those who may take them; their age is
        // for every monitor.
        if !self.allows(caller, Action::Backup, &Resource::everything())
            && !backup_target.is_empty()
        {
            backup_target = "(configured)".to_owned();
        }
        let namespaces = self
            .namespaces(caller, confstrata_core::At::Revision(revision))?
            .len();
        Ok(confstrata_core::view::ServerStatus {
            revision,
            oldest_revision: self.store.oldest_revision()?,
            namespaces: u64::try_from(namespaces).unwrap_or(u64::MAX),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            store_bytes: size.map(|s| s.bytes),
            store_free_bytes: size.map(|s| s.free_bytes),
            backup_target,
            newest_backup,
        })
    }

    /// The view cache's counters and budget, and every stage's timings since
    /// the engine started. Needs `audit` on everything.
    pub fn stats(&self, caller: &Caller) -> Result<EngineStats> {
        self.gate(caller)
            .require(Action::Audit, Resource::everything())?;
        Ok(EngineStats {
            revision: self.store.revision().unwrap_or(0),
            cache: self.views.stats(),
            cache_budget: self.views.budget(),
            timings: self.timings.snapshot(),
            newest_backup: self.backup_status().1,
        })
    }

    /// The registry holding the stage histograms (for a metrics endpoint).
    pub fn metrics_registry(&self) -> &confstrata_analytics::prometheus::Registry {
        self.timings.registry()
    }
}
