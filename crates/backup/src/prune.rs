//! Retention of backups: which to keep, never breaking a chain.

use std::collections::{BTreeMap, BTreeSet};

use confstrata_core::{Result, Timestamp};
use serde::{Deserialize, Serialize};

use crate::Target;
use crate::format::{Manifest, id_time};
use crate::read::{Listed, list};

/// Which backups to keep: the union of the newest `keep_last`, and the
/// newest of each of the last `keep_daily_days` days (UTC), of each store,
/// with every backup a kept one is built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Retention {
    /// The newest backups to keep.
    pub keep_last: usize,
    /// Days back for which the newest backup of the day is kept.
    pub keep_daily_days: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep_last: 24,
            keep_daily_days: 30,
        }
    }
}

/// An incomplete backup younger than this may still be being written.
const INCOMPLETE_GRACE_MS: i64 = 24 * 3600 * 1000;

const DAY_MS: i64 = 86_400_000;

/// The ids a retention policy removes from a listing, at time `now`.
pub fn plan_prune(listed: &[Listed], policy: &Retention, now: Timestamp) -> Vec<String> {
    let mut by_store: BTreeMap<&str, Vec<&Manifest>> = BTreeMap::new();
    for m in listed.iter().filter_map(|l| l.manifest.as_ref()) {
        by_store.entry(m.store_id.as_str()).or_default().push(m);
    }
    let by_id: BTreeMap<&str, &Manifest> = listed
        .iter()
        .filter_map(|l| l.manifest.as_ref())
        .map(|m| (m.id.as_str(), m))
        .collect();
    let mut keep: BTreeSet<&str> = BTreeSet::new();
    for backups in by_store.values_mut() {
        backups.sort_by_key(|m| std::cmp::Reverse((m.created, m.revision)));
        keep.extend(backups.iter().take(policy.keep_last).map(|m| m.id.as_str()));
        let today = now.0.div_euclid(DAY_MS);
        let mut days = BTreeSet::new();
        for m in backups.iter() {
            let day = m.created.0.div_euclid(DAY_MS);
            let age = today - day;
            if age >= 0 && (age as u64) < policy.keep_daily_days && days.insert(day) {
                keep.insert(m.id.as_str());
            }
        }
    }
    // Everything a kept backup is built on.
    let mut stack: Vec<&str> = keep.iter().copied().collect();
    while let Some(id) = stack.pop() {
        if let Some(parent) = by_id.get(id).and_then(|m| m.parent.as_ref())
            && keep.insert(parent.id.as_str())
        {
            stack.push(parent.id.as_str());
        }
    }
    listed
        .iter()
        .filter(|l| match &l.manifest {
            Some(m) => !keep.contains(m.id.as_str()),
            // Unfinished (no manifest): only once it cannot be in progress.
            // A manifest that does not read (damaged, or written by a newer
            // build) is never removed here: someone has to look at it.
            None => {
                l.problem
                    .as_deref()
                    .is_some_and(|p| p.starts_with(crate::read::INCOMPLETE))
                    && id_time(&l.id).is_some_and(|t| now.0 - t.0 > INCOMPLETE_GRACE_MS)
            }
        })
        .map(|l| l.id.clone())
        .collect()
}

/// What a prune did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Backups removed.
    pub removed: Vec<String>,
    /// Backups kept.
    pub kept: usize,
}

/// Removes what the policy does not keep from `target`.
pub fn prune(target: &dyn Target, policy: &Retention, now: Timestamp) -> Result<PruneReport> {
    let listed = list(target)?;
    let remove = plan_prune(&listed, policy, now);
    for id in &remove {
        target.remove(id)?;
        tracing::info!(backup = %id, "backup removed by retention");
    }
    Ok(PruneReport {
        kept: listed.len() - remove.len(),
        removed: remove,
    })
}
