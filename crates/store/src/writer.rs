//! The writer: one connection, group commit, retention.
//!
//! Every change to the database goes through [`Writer`], which owns the only
//! read-write connection. Committers queue up; the one at the front of the
//! queue becomes the leader and writes, in its own thread, every change set
//! queued so far (up to `max_batch`) as one transaction with one fsync
//! (LevelDB's writer-queue design). Each change set runs in its own savepoint,
//! so a failed one changes nothing and does not consume a revision. Waiters
//! learn their result only once the batch's `COMMIT` has returned, then the
//! next waiter in line becomes the leader.
//!
//! An uncontended commit therefore runs entirely in the caller's thread: no
//! hand-off to another thread and back, which on a small VM costs as much as
//! the rest of the commit.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

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

/// One queued commit.
struct Entry {
    id: u64,
    changes: Option<ChangeSet>,
    wake: Arc<Condvar>,
}

#[derive(Default)]
struct Queue {
    entries: VecDeque<Entry>,
    done: HashMap<u64, Result<CommitInfo>>,
    next_id: u64,
}

/// The single writer of a store.
pub(crate) struct Writer {
    conn: Mutex<Connection>,
    queue: Mutex<Queue>,
    counters: Arc<Counters>,
    limits: Limits,
    max_batch: usize,
}

/// Locks a mutex, ignoring poisoning: the state it guards is only changed
/// by code that cannot panic half-way (queue bookkeeping), or is a SQLite
/// connection whose transactions roll back on their own.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        counters: Arc<Counters>,
        limits: Limits,
        max_batch: usize,
    ) -> Self {
        Writer {
            conn: Mutex::new(conn),
            queue: Mutex::default(),
            counters,
            limits,
            max_batch: max_batch.max(1),
        }
    }

    /// Commits a change set, batching it with concurrent ones.
    pub(crate) fn commit(&self, changes: &ChangeSet) -> Result<CommitInfo> {
        let wake = Arc::new(Condvar::new());
        let mut queue = lock(&self.queue);
        let id = queue.next_id;
        queue.next_id += 1;
        queue.entries.push_back(Entry {
            id,
            changes: Some(changes.clone()),
            wake: Arc::clone(&wake),
        });
        loop {
            if let Some(result) = queue.done.remove(&id) {
                return result;
            }
            if queue.entries.front().map(|e| e.id) == Some(id) {
                break;
            }
            queue = wake.wait(queue).unwrap_or_else(PoisonError::into_inner);
        }
        // This thread leads: write everything queued so far.
        let batch: Vec<(u64, ChangeSet)> = queue
            .entries
            .iter_mut()
            .take(self.max_batch)
            .filter_map(|e| e.changes.take().map(|c| (e.id, c)))
            .collect();
        drop(queue);
        let mut guard = BatchGuard {
            writer: self,
            ids: batch.iter().map(|(id, _)| *id).collect(),
            results: None,
        };
        let (ids, changes): (Vec<u64>, Vec<ChangeSet>) = batch.into_iter().unzip();
        let results = {
            let mut conn = lock(&self.conn);
            commit_batch(&mut conn, &self.limits, &changes)
        };
        if let Some(newest) = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|i| i.revision)
            .max()
        {
            self.counters.current.fetch_max(newest, Ordering::SeqCst);
        }
        guard.results = Some(ids.into_iter().zip(results).collect());
        guard.finish(id)
    }

    /// Applies a retention policy, serialized with commits.
    pub(crate) fn apply_retention(
        &self,
        policy: &RetentionPolicy,
        now: Timestamp,
    ) -> Result<RetentionReport> {
        let mut conn = lock(&self.conn);
        let report = apply_retention(&mut conn, policy, now)?;
        self.counters
            .oldest
            .store(report.oldest_revision, Ordering::SeqCst);
        Ok(report)
    }
}

/// Hands a batch's results to its waiters and wakes the next leader; if the
/// leader unwinds before it has results, its waiters get an error instead of
/// waiting forever.
struct BatchGuard<'w> {
    writer: &'w Writer,
    ids: Vec<u64>,
    results: Option<Vec<(u64, Result<CommitInfo>)>>,
}

impl BatchGuard<'_> {
    fn finish(mut self, mine: u64) -> Result<CommitInfo> {
        let mut queue = lock(&self.writer.queue);
        let mut own = None;
        for (id, result) in self.results.take().unwrap_or_default() {
            if id == mine {
                own = Some(result);
            } else {
                queue.done.insert(id, result);
            }
        }
        self.ids.clear();
        Self::release(&mut queue, self.writer.max_batch);
        own.unwrap_or_else(|| Err(Error::storage("commit result lost")))
    }

    /// Pops the finished batch, wakes its waiters and the next leader.
    fn release(queue: &mut Queue, max_batch: usize) {
        let mut popped = 0;
        while popped < max_batch && queue.entries.front().is_some_and(|e| e.changes.is_none()) {
            if let Some(e) = queue.entries.pop_front() {
                e.wake.notify_one();
            }
            popped += 1;
        }
        if let Some(front) = queue.entries.front() {
            front.wake.notify_one();
        }
    }
}

impl Drop for BatchGuard<'_> {
    fn drop(&mut self) {
        if self.ids.is_empty() {
            return;
        }
        let mut queue = lock(&self.writer.queue);
        for id in self.ids.drain(..) {
            queue.done.insert(
                id,
                Err(Error::storage(
                    "the commit was interrupted; nothing was written",
                )),
            );
        }
        Self::release(&mut queue, self.writer.max_batch);
    }
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
