//! Failed authentications, audited without letting a caller with no
//! credentials fill the disk.
//!
//! The first failure from a source (a client address) in a window is a
//! durable audit record at once, so an attack is on record from its first
//! request. Further failures from that source within the window are
//! counted, and the count becomes one record ("N more, from T1 to T2") when
//! the window is over and the source fails again, when the table is full
//! and makes room, or when the engine is dropped (a server stopping). So a
//! source writes at most two records per window, and the table of sources
//! is bounded: past [`MAX_SOURCES`], sources share one overflow entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use confstrata_access::{Action, AuditEntry, Outcome, Resource};
use confstrata_core::{Store, Timestamp};

use crate::security::{self, Security};

/// How long failures from one source are counted into one record.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// Most sources counted separately; the rest share [`OVERFLOW`].
pub(crate) const MAX_SOURCES: usize = 1024;

/// The source that sources past [`MAX_SOURCES`] share.
const OVERFLOW: &str = "(other sources)";

struct Pending {
    started: Instant,
    first: Timestamp,
    last: Timestamp,
    repeated: u64,
    reason: String,
}

/// The failures being counted, and where their records go.
pub(crate) struct AuthFailures {
    store: Arc<dyn Store>,
    security: Arc<Security>,
    sources: Mutex<HashMap<String, Pending>>,
}

impl AuthFailures {
    pub(crate) fn new(store: Arc<dyn Store>, security: Arc<Security>) -> AuthFailures {
        AuthFailures {
            store,
            security,
            sources: Mutex::default(),
        }
    }

    /// Records a failed authentication from `source`: a record now if it
    /// is the source's first in its window, else one more in its count.
    pub(crate) fn failed(&self, source: &str, request_id: &str, reason: &str) {
        let now = Instant::now();
        let time = Timestamp::now();
        let mut flush = Vec::new();
        let first = {
            let mut sources = crate::lock(&self.sources);
            let mut key = source.to_owned();
            if !sources.contains_key(&key) && sources.len() >= MAX_SOURCES {
                // Make room: windows that are over go out (with their counts).
                let expired: Vec<String> = sources
                    .iter()
                    .filter(|(_, p)| now.duration_since(p.started) >= WINDOW)
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in expired {
                    if let Some(p) = sources.remove(&k) {
                        flush.push((k, p));
                    }
                }
                if sources.len() >= MAX_SOURCES {
                    key = OVERFLOW.to_owned();
                }
            }
            match sources.get_mut(&key) {
                Some(p) if now.duration_since(p.started) < WINDOW => {
                    p.repeated += 1;
                    p.last = time;
                    p.reason = reason.to_owned();
                    false
                }
                _ => {
                    let fresh = Pending {
                        started: now,
                        first: time,
                        last: time,
                        repeated: 0,
                        reason: reason.to_owned(),
                    };
                    if let Some(old) = sources.insert(key.clone(), fresh) {
                        flush.push((key, old));
                    }
                    true
                }
            }
        };
        for (source, pending) in flush {
            self.write_count(&source, &pending);
        }
        if first {
            let entry = AuditEntry::new(
                time,
                None,
                Action::Read,
                Resource::everything(),
                Outcome::Unauthenticated,
            )
            .request_id(request_id)
            .detail("reason", reason)
            .detail("source", source);
            self.write(entry);
        }
    }

    /// The record of a source's repeated failures, if it had any.
    fn write_count(&self, source: &str, p: &Pending) {
        if p.repeated == 0 {
            return;
        }
        let entry = AuditEntry::new(
            p.last,
            None,
            Action::Read,
            Resource::everything(),
            Outcome::Unauthenticated,
        )
        .detail("source", source)
        .detail("repeated", p.repeated.to_string())
        .detail("from", p.first.to_string())
        .detail("to", p.last.to_string())
        .detail(
            "reason",
            format!(
                "{} more failed authentications from {source} after the one recorded at {}; the last: {}",
                p.repeated, p.first, p.reason
            ),
        );
        self.write(entry);
    }

    fn write(&self, entry: AuditEntry) {
        if let Err(w) = self
            .store
            .append_journal(security::journal_fn(&self.security, entry))
        {
            tracing::warn!(error = %w, "the audit record of a failed authentication could not be written");
        }
    }

    /// Writes every count still pending.
    pub(crate) fn flush(&self) {
        let pending: Vec<(String, Pending)> = crate::lock(&self.sources).drain().collect();
        for (source, p) in pending {
            self.write_count(&source, &p);
        }
    }
}

impl Drop for AuthFailures {
    fn drop(&mut self) {
        self.flush();
    }
}
