//! The writer: one connection, group commit, retention.
//!
//! Every change to the database goes through [`Writer`], which owns the only
//! read-write connection. Jobs queue up; whoever leads writes every job
//! queued so far (up to `max_batch`) as one transaction with one fsync,
//! while the next jobs queue behind it (group commit, LevelDB's writer-queue
//! design). Each change set is planned and checked, and its journal record
//! made, before its first write, so a refused one writes nothing and does
//! not consume a revision; a write that fails (disk full, I/O error) fails
//! the whole batch, whose state is then unknown. Submitters learn their
//! result only once the batch's `COMMIT` has returned.
//!
//! Two kinds of submitters share the queue:
//! - a thread that waits ([`Writer::run`]): when its job is at the front it
//!   leads, in its own thread, so an uncontended commit has no hand-off to
//!   another thread and back;
//! - a callback ([`Writer::submit`], for async callers, which must not park
//!   a thread of their own: each parked thread is two context switches per
//!   commit, which on this 2-core VM cost as much as the SQL): a job of
//!   this kind at the front is led by the store's writer thread, and its
//!   callback is called by whoever led its batch.
//!
//! A job submitted from the writer thread itself (a callback writing an
//! audit record) runs at once in its own transaction.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};

use confstrata_core::timing::{NoTimings, Phase, Timings};
use confstrata_core::{
    ChangeSet, CheckFn, CommitInfo, Error, JournalFn, JournalHead, JournalRecord, JournalSlot,
    Limits, NamespaceName, Result, RetentionPolicy, RetentionReport, SettingWrite, Timestamp,
    check_next, plan, retention_floor,
};
use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::db::{self, TxReader, db, to_sql};
use crate::latest::{Kept, Key, LatestLayers, Pending};

/// Revision counters shared by the writer and the store handle.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// The newest committed revision; updated after `COMMIT` returns.
    pub(crate) current: AtomicU64,
    /// The oldest readable revision; updated after retention commits.
    pub(crate) oldest: AtomicU64,
}

/// One queued write.
pub(crate) enum Job {
    /// A change set, the journal record made for it, and the check its
    /// plan must pass inside the transaction.
    Commit(ChangeSet, Option<JournalFn>, Option<CheckFn>),
    /// A journal record with no commit.
    Journal(JournalFn),
    /// Settings, and the journal record that explains them.
    Settings(Vec<SettingWrite>, Option<JournalFn>),
}

/// What a job produced.
#[derive(Debug, Clone)]
pub(crate) enum Done {
    /// A commit's revision.
    Commit(CommitInfo),
    /// The journal record written (if any).
    Journal(Option<JournalRecord>),
}

/// Where a job's result goes.
pub(crate) type Callback = Box<dyn FnOnce(Result<Done>) + Send>;

enum Reply {
    /// A thread waiting in [`Writer::run`], woken through its condvar.
    Wait(Arc<Condvar>),
    /// A callback (taken when it is called).
    Call(Option<Callback>),
}

/// One queued job; `job` is taken when a batch takes it, and the entry
/// leaves the queue when the batch is done.
struct Entry {
    id: u64,
    job: Option<Job>,
    reply: Reply,
}

#[derive(Default)]
struct Queue {
    entries: VecDeque<Entry>,
    /// Results of waiting threads' jobs, until they pick them up.
    done: HashMap<u64, Result<Done>>,
    next_id: u64,
    /// The store is closing: no more jobs are taken.
    closed: bool,
}

impl Queue {
    fn push(&mut self, job: Job, reply: Reply) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.push_back(Entry {
            id,
            job: Some(job),
            reply,
        });
        id
    }

    /// Takes the jobs of the next batch, from the front.
    fn take_batch(&mut self, max: usize) -> (Vec<u64>, Vec<Job>) {
        self.entries
            .iter_mut()
            .take(max)
            .filter_map(|e| e.job.take().map(|j| (e.id, j)))
            .unzip()
    }

    /// Whether the store's writer thread should lead: the front job is a
    /// callback's and not yet taken.
    fn front_is_callback(&self) -> bool {
        self.entries
            .front()
            .is_some_and(|e| e.job.is_some() && matches!(e.reply, Reply::Call(_)))
    }
}

/// What the submitters and the writer thread share.
struct Shared {
    /// The connection, the `synchronous` mode last set on it, and the
    /// newest versions of the layers written (`latest.rs`).
    conn: Mutex<(Connection, Option<&'static str>, LatestLayers)>,
    queue: Mutex<Queue>,
    /// Wakes the writer thread (a callback's job is at the front, or the
    /// store is closing).
    work: Condvar,
    counters: Arc<Counters>,
    limits: Limits,
    max_batch: usize,
    /// Where batch timings go (none until the engine sets them).
    timings: RwLock<Arc<dyn Timings>>,
}

/// The single writer of a store.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

thread_local! {
    /// Whether this thread is a store's writer thread.
    static ON_WRITER: Cell<bool> = const { Cell::new(false) };
}

/// Locks a mutex, ignoring poisoning: the state it guards is only changed
/// by code that cannot panic half-way (queue bookkeeping), or is a SQLite
/// connection whose transactions roll back on their own.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn interrupted() -> Error {
    Error::storage("the commit was interrupted; nothing was written")
}

fn closing() -> Error {
    Error::storage("the store is closing; nothing was written")
}

impl Writer {
    /// A writer on `conn`, with its thread started.
    pub(crate) fn new(
        conn: Connection,
        counters: Arc<Counters>,
        limits: Limits,
        max_batch: usize,
    ) -> Result<Self> {
        let shared = Arc::new(Shared {
            conn: Mutex::new((conn, None, LatestLayers::default())),
            queue: Mutex::default(),
            work: Condvar::new(),
            counters,
            limits,
            max_batch: max_batch.max(1),
            timings: RwLock::new(Arc::new(NoTimings)),
        });
        let on_thread = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("confstrata-writer".into())
            .spawn(move || {
                ON_WRITER.with(|w| w.set(true));
                on_thread.serve();
            })
            .map_err(|e| Error::storage(format!("cannot start the store's writer thread: {e}")))?;
        Ok(Writer {
            shared,
            thread: Some(thread),
        })
    }

    /// Sends batch timings to `timings` from now on.
    pub(crate) fn set_timings(&self, timings: Arc<dyn Timings>) {
        *self
            .shared
            .timings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = timings;
    }

    /// Runs a job (a commit, a journal record, settings), batching it with
    /// concurrent ones, and waits for its result.
    pub(crate) fn run(&self, job: Job) -> Result<Done> {
        if ON_WRITER.with(Cell::get) {
            return self.shared.run_here(job);
        }
        let wake = Arc::new(Condvar::new());
        let mut queue = lock(&self.shared.queue);
        if queue.closed {
            return Err(closing());
        }
        let id = queue.push(job, Reply::Wait(Arc::clone(&wake)));
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
        let (ids, jobs) = queue.take_batch(self.shared.max_batch);
        drop(queue);
        let results = self.shared.write(jobs);
        self.shared
            .finish(ids.into_iter().zip(results), Some(id))
            .unwrap_or_else(|| Err(Error::storage("commit result lost")))
    }

    /// Queues a job; `done` gets its result once its batch is written (on
    /// the thread that wrote it), or at once if the store is closing.
    pub(crate) fn submit(&self, job: Job, done: Callback) {
        if ON_WRITER.with(Cell::get) {
            done(self.shared.run_here(job));
            return;
        }
        let mut queue = lock(&self.shared.queue);
        if queue.closed {
            drop(queue);
            done(Err(closing()));
            return;
        }
        queue.push(job, Reply::Call(Some(done)));
        let lead = queue.front_is_callback();
        drop(queue);
        if lead {
            self.shared.work.notify_one();
        }
    }

    /// Applies a retention policy, serialized with commits.
    pub(crate) fn apply_retention(
        &self,
        policy: &RetentionPolicy,
        now: Timestamp,
    ) -> Result<RetentionReport> {
        let mut guard = lock(&self.shared.conn);
        let report = apply_retention(&mut guard.0, policy, now)?;
        self.shared
            .counters
            .oldest
            .store(report.oldest_revision, Ordering::SeqCst);
        Ok(report)
    }
}

impl Writer {
    /// Loads a dump into the empty database, serialized with commits.
    pub(crate) fn load(
        &self,
        records: &mut dyn Iterator<Item = Result<confstrata_core::DumpRecord>>,
        end: &confstrata_core::LoadEnd,
    ) -> Result<()> {
        let mut guard = lock(&self.shared.conn);
        let loaded = crate::dump::load(&mut guard.0, records, end)?;
        // Nothing the writer kept describes the loaded layers.
        guard.2 = LatestLayers::default();
        self.shared
            .counters
            .current
            .store(loaded.current, Ordering::SeqCst);
        self.shared
            .counters
            .oldest
            .store(loaded.oldest, Ordering::SeqCst);
        Ok(())
    }
}

impl Drop for Writer {
    /// Writes the callbacks' jobs still queued, then stops the writer
    /// thread (its connection closes before the store's lock is released).
    fn drop(&mut self) {
        lock(&self.shared.queue).closed = true;
        self.shared.work.notify_all();
        // Dropped on the writer thread itself (a callback held the last
        // reference): it cannot join itself; it ends when this returns.
        if ON_WRITER.with(std::cell::Cell::get) {
            tracing::warn!("the store was closed from its own writer thread");
            self.thread.take();
            return;
        }
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("the store's writer thread panicked");
        }
    }
}

impl Shared {
    /// The writer thread: leads every batch whose front job is a callback's,
    /// until the store closes and no such job is left.
    fn serve(&self) {
        loop {
            let mut queue = lock(&self.queue);
            while !queue.front_is_callback() {
                if queue.closed && queue.entries.is_empty() {
                    return;
                }
                queue = self
                    .work
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            let (ids, jobs) = queue.take_batch(self.max_batch);
            drop(queue);
            let results = self.write(jobs);
            self.finish(ids.into_iter().zip(results), None);
        }
    }

    /// Hands a written batch's results out: `mine` (the leading thread's
    /// own job) is returned, waiting threads are woken, callbacks are
    /// called (after the queue is unlocked); then the next leader is woken.
    fn finish(
        &self,
        results: impl Iterator<Item = (u64, Result<Done>)>,
        mine: Option<u64>,
    ) -> Option<Result<Done>> {
        let mut own = None;
        let mut calls = Vec::new();
        let mut queue = lock(&self.queue);
        for (id, result) in results {
            if Some(id) == mine {
                own = Some(result);
            } else {
                queue.done.insert(id, result);
            }
        }
        // Pop the finished entries (jobs taken), in order.
        while queue.entries.front().is_some_and(|e| e.job.is_none()) {
            let Some(entry) = queue.entries.pop_front() else {
                break;
            };
            match entry.reply {
                Reply::Wait(wake) => wake.notify_one(),
                Reply::Call(done) => {
                    let result = queue
                        .done
                        .remove(&entry.id)
                        .unwrap_or_else(|| Err(interrupted()));
                    if let Some(done) = done {
                        calls.push((done, result));
                    }
                }
            }
        }
        match queue.entries.front() {
            Some(Entry {
                reply: Reply::Wait(wake),
                ..
            }) => wake.notify_one(),
            Some(_) => self.work.notify_one(),
            None if queue.closed => self.work.notify_one(),
            None => {}
        }
        drop(queue);
        for (done, result) in calls {
            let called = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| done(result)));
            if called.is_err() {
                tracing::error!("a commit callback panicked");
            }
        }
        own
    }

    /// A job submitted from the writer thread: its own transaction, now.
    fn run_here(&self, job: Job) -> Result<Done> {
        self.write(vec![job])
            .pop()
            .unwrap_or_else(|| Err(interrupted()))
    }

    /// Writes jobs as one transaction; one result per job (all errors if
    /// the batch panicked: it was rolled back).
    fn write(&self, jobs: Vec<Job>) -> Vec<Result<Done>> {
        let n = jobs.len();
        let timings = Arc::clone(&self.timings.read().unwrap_or_else(PoisonError::into_inner));
        timings.batch(n);
        let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut guard = lock(&self.conn);
            let (conn, mode, latest) = &mut *guard;
            let started = timings.start();
            let results = commit_batch_in_mode(conn, mode, latest, &self.limits, jobs, &*timings);
            started.stop(&*timings, Phase::StoreBatch);
            results
        }));
        let results = written.unwrap_or_else(|_| {
            lock(&self.conn).2.clear();
            tracing::error!("the store's writer panicked in a batch; it was rolled back");
            (0..n).map(|_| Err(interrupted())).collect()
        });
        if let Some(newest) = results
            .iter()
            .filter_map(|r| match r {
                Ok(Done::Commit(i)) => Some(i.revision),
                _ => None,
            })
            .max()
        {
            self.counters.current.fetch_max(newest, Ordering::SeqCst);
        }
        results
    }
}
/// [`commit_batch_in_mode`] on a connection in an unknown mode.
#[cfg(test)]
pub(crate) fn commit_batch(
    conn: &mut Connection,
    limits: &Limits,
    batch: Vec<Job>,
    timings: &dyn Timings,
) -> Vec<Result<Done>> {
    commit_batch_in_mode(
        conn,
        &mut None,
        &mut LatestLayers::default(),
        limits,
        batch,
        timings,
    )
}

/// [`commit_batch`] with the writer's kept versions carried from batch to
/// batch, as the writer thread does.
#[cfg(test)]
pub(crate) fn commit_batch_kept(
    conn: &mut Connection,
    latest: &mut LatestLayers,
    limits: &Limits,
    batch: Vec<Job>,
) -> Vec<Result<Done>> {
    commit_batch_in_mode(
        conn,
        &mut None,
        latest,
        limits,
        batch,
        &confstrata_core::timing::NoTimings,
    )
}

/// Runs jobs in one transaction and returns one result per job, in order.
/// An `Ok` means the job is durable. `mode` is the `synchronous` mode last
/// set on the connection (`None`: unknown); it is set only when it changes.
fn commit_batch_in_mode(
    conn: &mut Connection,
    mode: &mut Option<&'static str>,
    latest: &mut LatestLayers,
    limits: &Limits,
    batch: Vec<Job>,
    timings: &dyn Timings,
) -> Vec<Result<Done>> {
    let n = batch.len();
    // A batch of journal records alone (reads and refusals being audited)
    // commits without waiting for fsync: its frames are in the WAL, so they
    // survive a crash of this process, and the next commit's fsync makes
    // them durable against power loss too. Commits and settings keep
    // `synchronous=FULL`.
    // Every batch makes sure of its mode first (setting it when the last
    // batch left another, or when setting it failed), so a failure to set
    // FULL fails the batch rather than leaving commits relaxed.
    let relaxed = batch.iter().all(|j| matches!(j, Job::Journal(_)));
    let wanted = if relaxed { "NORMAL" } else { "FULL" };
    if *mode != Some(wanted) {
        *mode = None;
        if let Err(e) = conn.pragma_update(None, "synchronous", wanted) {
            let e = db(e);
            return (0..n).map(|_| Err(e.clone())).collect();
        }
        *mode = Some(wanted);
    }
    commit_batch_inner(conn, latest, limits, batch, timings)
}

fn commit_batch_inner(
    conn: &mut Connection,
    latest: &mut LatestLayers,
    limits: &Limits,
    batch: Vec<Job>,
    timings: &dyn Timings,
) -> Vec<Result<Done>> {
    let n = batch.len();
    let fail_all = |e: Error| (0..n).map(|_| Err(e.clone())).collect();
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return fail_all(db(e)),
    };
    let mut head = match db::journal_head(&tx) {
        Ok(h) => h,
        Err(e) => return fail_all(e),
    };
    let mut results = Vec::with_capacity(n);
    let mut pending = Pending::default();
    for job in batch {
        match run_one(&mut tx, limits, job, &mut head, latest, &mut pending) {
            Ok(result) => results.push(result),
            // A write failed: the transaction's state is unknown, so nothing
            // of the batch may be committed.
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
        let started = timings.start();
        let committed = tx.commit();
        started.stop(timings, Phase::Fsync);
        if committed.is_ok() {
            latest.commit(pending);
        }
        if let Err(e) = committed {
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
    tracing::trace!(size = n, "store batch done");
    results
}

/// Runs one job. Everything that can refuse it (planning, the check,
/// making its journal record, encoding what it writes) runs before its
/// first write, so a refused job has written nothing and needs no
/// savepoint to roll back (a savepoint copies every page the job then
/// touches into a sub-journal: the writer's largest memcpy, `perf`). The
/// outer error means a write itself failed (disk full, I/O error), which
/// leaves the transaction's state unknown: then nothing of the batch may
/// be committed.
fn run_one(
    tx: &mut Transaction<'_>,
    limits: &Limits,
    job: Job,
    head: &mut Option<JournalHead>,
    latest: &mut LatestLayers,
    pending: &mut Pending,
) -> Result<Result<Done>> {
    let conn: &Connection = tx;
    let mut prepared = match prepare(conn, limits, job, *head, latest, pending) {
        Ok(p) => p,
        Err(refused) => return Ok(Err(refused)),
    };
    let record = prepared.record.clone();
    let kept = std::mem::take(&mut prepared.kept);
    if let Writes::Commit { namespaces, .. } = &prepared.writes {
        for (name, _) in namespaces {
            pending.wrote_namespace(name.clone());
        }
    }
    let done = prepared
        .write(conn)
        .map_err(|e| Error::storage(format!("a write failed mid-batch: {}", e.root())))?;
    if let Some(r) = &record {
        *head = Some(r.head());
    }
    if tx.is_autocommit() {
        return Err(Error::storage(
            "SQLite rolled the transaction back (disk full or I/O error?)",
        ));
    }
    for (key, version) in kept {
        pending.wrote(key, version);
    }
    Ok(Ok(done))
}

/// A job checked and ready to write.
struct Prepared {
    record: Option<JournalRecord>,
    writes: Writes,
    /// The layer versions it writes, for the writer's cache once written.
    kept: Vec<(Key, Kept)>,
}

enum Writes {
    Commit {
        info: CommitInfo,
        author: String,
        message: String,
        namespaces: Vec<(NamespaceName, Option<String>)>,
        layers: Vec<db::VersionWrite>,
    },
    Journal,
    Settings(Vec<SettingWrite>),
}

/// Plans and checks a job and makes its journal record, writing nothing.
fn prepare(
    conn: &Connection,
    limits: &Limits,
    job: Job,
    head: Option<JournalHead>,
    latest: &mut LatestLayers,
    pending: &mut Pending,
) -> Result<Prepared> {
    let record = |f: JournalFn, revision: Option<u64>| -> Result<JournalRecord> {
        let record = f(JournalSlot { revision, head })?;
        check_next(head, &record)?;
        Ok(record)
    };
    match job {
        Job::Commit(changes, journal, check) => {
            let mut reader = TxReader::new(conn, Some((latest, pending)));
            let p = plan(&changes, &mut reader, limits)?;
            if let Some(check) = check {
                check(&p, &mut reader)?;
            }
            let (revision, time) = match db::last_revision(conn)? {
                Some((rev, last)) => (rev + 1, Timestamp::now().max(last)),
                None => (1, Timestamp::now()),
            };
            // A deleted namespace's row holds no declaration.
            let namespaces = p
                .deleted
                .iter()
                .map(|name| Ok((name.clone(), None)))
                .chain(
                    p.namespaces
                        .iter()
                        .map(|spec| Ok((spec.name.clone(), Some(db::encode_spec(spec)?)))),
                )
                .collect::<Result<_>>()?;
            // Each layer as a delta from its newest version, or whole.
            // Decided here, before the first write, from the versions
            // that earlier jobs of the batch may have written.
            let layers: Vec<db::VersionWrite> = p
                .layers
                .iter()
                .zip(&p.touched)
                .enumerate()
                .map(|(i, ((ns, layer, doc), touched))| {
                    let before = p.before.get(i).and_then(Option::as_ref);
                    // The version before, as far as the delta needs it:
                    // whole, or (when the planner changed the writer's
                    // copy in place) the entries under the touched keys.
                    let known = match reader.read_layer(ns, layer).flatten() {
                        Some((Some(old), rev)) => Some((old, rev)),
                        Some((None, rev)) => before.filter(|_| touched.is_some()).map(|b| (b, rev)),
                        None => None,
                    };
                    db::version_write(conn, ns, layer, doc.as_ref(), known, touched.as_deref())
                })
                .collect::<Result<_>>()?;
            drop(reader);
            let kept = p
                .layers
                .into_iter()
                .zip(&layers)
                .zip(p.sizes)
                .map(|(((ns, layer, doc), w), size_bound)| {
                    let weight = size_bound
                        .and_then(|s| u64::try_from(s).ok())
                        .or_else(|| w.base_bytes.and_then(|b| u64::try_from(b).ok()))
                        .unwrap_or(0);
                    let version = doc.map(|d| crate::latest::Version {
                        revision,
                        document: Arc::new(d),
                        size_bound,
                        weight,
                    });
                    ((ns, layer), version)
                })
                .collect();
            let record = journal.map(|f| record(f, Some(revision))).transpose()?;
            let ChangeSet {
                author, message, ..
            } = changes;
            Ok(Prepared {
                record,
                writes: Writes::Commit {
                    info: CommitInfo { revision, time },
                    author,
                    message,
                    namespaces,
                    layers,
                },
                kept,
            })
        }
        Job::Journal(f) => Ok(Prepared {
            record: Some(record(f, None)?),
            writes: Writes::Journal,
            kept: Vec::new(),
        }),
        Job::Settings(writes, journal) => Ok(Prepared {
            record: journal.map(|f| record(f, None)).transpose()?,
            writes: Writes::Settings(writes),
            kept: Vec::new(),
        }),
    }
}

impl Prepared {
    /// Writes the job's rows.
    fn write(self, conn: &Connection) -> Result<Done> {
        let done = match self.writes {
            Writes::Commit {
                info,
                author,
                message,
                namespaces,
                layers,
            } => {
                let rev = to_sql(info.revision)?;
                conn.prepare_cached(
                    "INSERT INTO revisions (rev, time_ms, author, message) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(db)?
                .execute(rusqlite::params![rev, info.time.0, author, message])
                .map_err(db)?;
                for (name, spec) in &namespaces {
                    conn.prepare_cached(
                        "INSERT INTO namespace_versions (name, rev, spec) VALUES (?1, ?2, ?3)",
                    )
                    .map_err(db)?
                    .execute(rusqlite::params![name.as_str(), rev, spec])
                    .map_err(db)?;
                }
                for v in &layers {
                    db::insert_version(conn, rev, v)?;
                }
                Done::Commit(info)
            }
            Writes::Journal => Done::Journal(self.record.clone()),
            Writes::Settings(writes) => {
                for w in &writes {
                    db::write_setting(conn, w)?;
                }
                Done::Journal(self.record.clone())
            }
        };
        if let Some(r) = &self.record {
            db::insert_journal(conn, r)?;
        }
        Ok(done)
    }
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
    let before = db::storage_size(conn)?;
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
    // A layer's version at the floor is kept and everything older goes: a
    // delta there would lose the chain it is read through, so it is
    // stored whole first, and the deltas after it start from it.
    db::rebase_versions_at(&tx, f)?;
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
    // Give the freed pages back to the file system (a transaction of its
    // own; the retention above is committed whether or not this works).
    if let Err(e) = db::incremental_vacuum(conn) {
        tracing::warn!(error = %e, "the space retention freed could not be given back");
    }
    let after = db::storage_size(conn)?;
    let freed_bytes = before.bytes.saturating_sub(after.bytes);
    tracing::info!(
        oldest_revision = floor,
        removed_versions = removed,
        freed_bytes,
        "store retention applied"
    );
    Ok(RetentionReport {
        oldest_revision: floor,
        removed_versions: removed,
        freed_bytes,
    })
}
