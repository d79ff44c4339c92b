//! The writer thread: one connection, group commit, retention.
//!
//! Every change to the database goes through [`run`], on one thread that owns
//! the only read-write connection. Commits that queue up while a batch is
//! being written are taken together as the next batch: one transaction, one
//! fsync, each change set in its own savepoint so that a failed one changes
//! nothing and does not consume a revision. Replies go out only once the
//! batch's `COMMIT` has returned.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};

use confstrata_core::{
    ChangeSet, CommitInfo, Error, Limits, Plan, Result, RetentionPolicy, RetentionReport,
    Timestamp, plan, retention_floor,
};
use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::db::{self, TxReader, db, to_sql};

/// Revision counters shared by the writer and the store handle.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// The newest committed revision; updated after `COMMIT` returns.
    pub(crate) current: AtomicU64,
    /// The oldest readable revision; updated after retention commits.
    pub(crate) oldest: AtomicU64,
}

/// Work for the writer thread.
pub(crate) enum Request {
    /// Commit a change set.
    Commit {
        changes: ChangeSet,
        reply: Sender<Result<CommitInfo>>,
    },
    /// Apply a retention policy.
    Retention {
        policy: RetentionPolicy,
        now: Timestamp,
        reply: Sender<Result<RetentionReport>>,
    },
}

/// The writer thread's loop; returns when every sender is gone.
pub(crate) fn run(
    mut conn: Connection,
    requests: Receiver<Request>,
    counters: Arc<Counters>,
    limits: Limits,
    max_batch: usize,
) {
    let max_batch = max_batch.max(1);
    let mut pending: Option<Request> = None;
    loop {
        let first = match pending.take() {
            Some(r) => r,
            None => match requests.recv() {
                Ok(r) => r,
                Err(_) => break,
            },
        };
        match first {
            Request::Retention { policy, now, reply } => {
                let result = apply_retention(&mut conn, &policy, now);
                if let Ok(report) = &result {
                    counters
                        .oldest
                        .store(report.oldest_revision, Ordering::SeqCst);
                }
                // The caller may have given up waiting; nothing to do then.
                let _ = reply.send(result);
            }
            Request::Commit { changes, reply } => {
                let mut batch = vec![(changes, reply)];
                while batch.len() < max_batch {
                    match requests.try_recv() {
                        Ok(Request::Commit { changes, reply }) => batch.push((changes, reply)),
                        Ok(other) => {
                            pending = Some(other);
                            break;
                        }
                        Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                    }
                }
                let (changes, replies): (Vec<ChangeSet>, Vec<_>) = batch.into_iter().unzip();
                let results = commit_batch(&mut conn, &limits, &changes);
                if let Some(newest) = results
                    .iter()
                    .filter_map(|r| r.as_ref().ok())
                    .map(|i| i.revision)
                    .max()
                {
                    counters.current.fetch_max(newest, Ordering::SeqCst);
                }
                for (reply, result) in replies.into_iter().zip(results) {
                    // The caller may have given up waiting; nothing to do then.
                    let _ = reply.send(result);
                }
            }
        }
    }
    tracing::debug!("store writer stopped");
}

/// Commits change sets in one transaction and returns one result per change
/// set, in order. An `Ok` means the change set is durable.
pub(crate) fn commit_batch(
    conn: &mut Connection,
    limits: &Limits,
    batch: &[ChangeSet],
) -> Vec<Result<CommitInfo>> {
    let fail_all = |e: Error| batch.iter().map(|_| Err(e.clone())).collect();
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return fail_all(db(e)),
    };
    let mut results = Vec::with_capacity(batch.len());
    for changes in batch {
        match commit_one(&mut tx, limits, changes) {
            Ok(result) => results.push(result),
            // The savepoint machinery itself failed: the transaction's state is
            // unknown, so nothing of the batch may be committed.
            Err(e) => {
                let message = match e {
                    Error::Storage { message } => message,
                    other => other.to_string(),
                };
                let e = Error::storage(format!("{message}; nothing of this commit was written"));
                tracing::warn!(error = %e, "store batch aborted");
                return fail_all(e);
            }
        }
    }
    if results.iter().any(Result::is_ok) {
        if let Err(e) = tx.commit() {
            let e = Error::storage(format!(
                "SQLite: COMMIT failed: {e}; the change set was rolled back"
            ));
            tracing::warn!(error = %e, "store commit failed");
            for r in &mut results {
                if r.is_ok() {
                    *r = Err(e.clone());
                }
            }
        }
    } else if let Err(e) = tx.rollback() {
        tracing::warn!(error = %e, "rolling back an empty batch failed");
    }
    tracing::trace!(size = batch.len(), "store batch done");
    results
}

/// Plans and writes one change set inside its own savepoint. The outer error
/// means the savepoint could not be released or rolled back, or SQLite ended
/// the whole transaction: then nothing of the batch may be committed.
fn commit_one(
    tx: &mut Transaction<'_>,
    limits: &Limits,
    changes: &ChangeSet,
) -> Result<Result<CommitInfo>> {
    let sp = tx.savepoint().map_err(db)?;
    let result = plan(changes, &mut TxReader(&sp), limits).and_then(|p| write(&sp, changes, p));
    match result {
        Ok(_) => sp.commit().map_err(db)?,
        // The default drop behaviour: ROLLBACK TO the savepoint, then RELEASE it.
        Err(_) => sp.finish().map_err(db)?,
    }
    if tx.is_autocommit() {
        return Err(Error::storage(
            "SQLite rolled the transaction back (disk full or I/O error?)",
        ));
    }
    Ok(result)
}

/// Writes the revision row and the versions a plan computed.
fn write(conn: &Connection, changes: &ChangeSet, plan: Plan) -> Result<CommitInfo> {
    let (revision, time) = match db::last_revision(conn)? {
        Some((rev, last)) => (rev + 1, Timestamp::now().max(last)),
        None => (1, Timestamp::now()),
    };
    let rev = to_sql(revision)?;
    conn.prepare_cached(
        "INSERT INTO revisions (rev, time_ms, author, message) VALUES (?1, ?2, ?3, ?4)",
    )
    .map_err(db)?
    .execute(rusqlite::params![
        rev,
        time.0,
        changes.author,
        changes.message
    ])
    .map_err(db)?;
    for spec in &plan.namespaces {
        conn.prepare_cached("INSERT INTO namespace_versions (name, rev, spec) VALUES (?1, ?2, ?3)")
            .map_err(db)?
            .execute(rusqlite::params![
                spec.name.as_str(),
                rev,
                db::encode_spec(spec)?
            ])
            .map_err(db)?;
    }
    for (ns, layer, doc) in &plan.layers {
        let text = doc.as_ref().map(db::encode_document).transpose()?;
        conn.prepare_cached(
            "INSERT INTO layer_versions (ns, layer, rev, doc) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(db)?
        .execute(rusqlite::params![ns.as_str(), layer.as_str(), rev, text])
        .map_err(db)?;
    }
    Ok(CommitInfo { revision, time })
}

/// Drops what the policy does not keep, exactly as the memory store does: for
/// every object, the versions older than its newest version at or before the
/// floor, and that version too if it is a deletion; and the revision rows
/// below the floor.
pub(crate) fn apply_retention(
    conn: &mut Connection,
    policy: &RetentionPolicy,
    now: Timestamp,
) -> Result<RetentionReport> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)?;
    let current = db::current_revision(&tx)?;
    let previous = db::oldest_revision(&tx)?;
    let versions = db::version_lists(&tx)?;
    let times = db::revision_times(&tx)?;
    let floor = retention_floor(
        policy,
        now,
        current,
        previous,
        versions.iter().map(Vec::as_slice),
        &times,
    );
    let f = to_sql(floor)?;
    let mut removed = 0;
    for sql in [
        "DELETE FROM namespace_versions AS v WHERE rev < (
             SELECT max(w.rev) FROM namespace_versions AS w WHERE w.name = v.name AND w.rev <= ?1)",
        "DELETE FROM namespace_versions WHERE rev <= ?1 AND spec IS NULL",
        "DELETE FROM layer_versions AS v WHERE rev < (
             SELECT max(w.rev) FROM layer_versions AS w WHERE w.ns = v.ns AND w.layer = v.layer AND w.rev <= ?1)",
        "DELETE FROM layer_versions WHERE rev <= ?1 AND doc IS NULL",
    ] {
        removed += tx.execute(sql, [f]).map_err(db)?;
    }
    tx.execute("DELETE FROM revisions WHERE rev < ?1", [f])
        .map_err(db)?;
    db::set_oldest_revision(&tx, floor)?;
    tx.commit().map_err(db)?;
    tracing::info!(
        oldest_revision = floor,
        removed_versions = removed,
        "store retention applied"
    );
    Ok(RetentionReport {
        oldest_revision: floor,
        removed_versions: removed,
    })
}
