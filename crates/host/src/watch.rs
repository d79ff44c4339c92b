//! The watch feed: one fan-out for every watcher, yielding shared events
//! ([`Event`]: a model [`WatchEvent`] and its wire form, which a front door
//! encodes once per event and every stream of the group copies).
//!
//! The engine calls an observer after each commit; one hub task reads the new
//! revisions from the store once and broadcasts them. Each watcher subscribes
//! to the broadcast *before* reading its backlog from the store, and fills
//! any gap (a lagging receiver, a revision it has not seen) from the store,
//! so a watcher never misses a revision and the store is not polled per
//! watcher.
//!
//! A watcher sees only what its caller may read: events name only layers
//! the caller may read (the engine decides: `Engine::visible_items`), a
//! resolved document is the caller's view (sealed values masked without
//! `read-secrets`), and after any change to the access policy every
//! watcher re-checks its caller: a revoked token's watch ends at once with
//! UNAUTHENTICATED, and one whose caller may no longer read any of the
//! namespace (a role, binding or group membership taken away) with
//! PERMISSION_DENIED.

use std::any::TypeId;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use confstrata_core::imports::ChainLayer;
use confstrata_core::view::WatchEvent;
use confstrata_core::{At, Change, Context, Error, NamespaceName};
use confstrata_engine::{Caller, Engine};
use futures_util::Stream;
use tokio::sync::{OnceCell, Semaphore, broadcast, watch};

/// What a watched namespace resolves from: the namespaces (its imports,
/// then itself) and, for a context watch, their layers for the context.
type ResolvedFrom = (Vec<NamespaceName>, Vec<ChainLayer>);

/// How many changes one store read returns.
const PAGE: usize = 256;

/// Why a watch ended with an error: the model error, and the request
/// field it is about (`""` when none).
#[derive(Debug, Clone, PartialEq)]
pub struct WatchError {
    /// What went wrong.
    pub error: Error,
    /// The request field it is about: `context`, `start_revision`, or `""`.
    pub field: &'static str,
}

fn fail(error: Error, field: &'static str) -> WatchError {
    WatchError { error, field }
}

/// What a watch stream yields.
pub type WatchItem = Result<Arc<Event>, WatchError>;

/// A front door's wire form of watch events (gRPC's protobuf message,
/// say): made once per event and shared by every stream that sends it.
pub trait Encoding: 'static {
    /// The event's bytes on the wire.
    fn encode(event: &WatchEvent) -> Bytes;
}

/// An event as every watcher of a group shares it: the model event and,
/// made by the first stream that sends it, its wire encoding, so that
/// 10,000 streams of one group encode it once and each copies the bytes.
#[derive(Debug)]
pub struct Event {
    event: WatchEvent,
    /// The first encoding asked for, and what made it.
    wire: OnceLock<(TypeId, Bytes)>,
}

impl Event {
    fn new(event: WatchEvent) -> Event {
        Event {
            event,
            wire: OnceLock::new(),
        }
    }

    /// The model event.
    pub fn get(&self) -> &WatchEvent {
        &self.event
    }

    /// The event encoded by `E`: made once and shared (a second encoding
    /// of the same event, from another front door, is made per call).
    pub fn encoded<E: Encoding>(&self) -> Bytes {
        let (made_by, bytes) = self
            .wire
            .get_or_init(|| (TypeId::of::<E>(), E::encode(&self.event)));
        if *made_by == TypeId::of::<E>() {
            bytes.clone()
        } else {
            E::encode(&self.event)
        }
    }
}

/// What the hub broadcasts: one channel for all three, so a waiting
/// watcher is registered with one waiter list, not three (10,000 streams
/// re-register on every event).
#[derive(Clone)]
enum Signal {
    /// A committed revision.
    Change(Arc<Change>),
    /// The access policy changed: each watcher re-checks its caller.
    Policy,
    /// The server is stopping: every watch ends.
    Stop,
}

/// The broadcast side: shared by every watcher of a server.
#[derive(Clone)]
pub struct Hub {
    changes: broadcast::Sender<Signal>,
    /// Whether the server is stopping (for a watcher that joins after the
    /// stop was broadcast).
    shutdown: watch::Receiver<bool>,
    events: Arc<EventCache>,
    /// The runner's bound on concurrent reads: a burst of watches opening
    /// (10,000 services restarting) waits its turn for the store instead
    /// of starting a blocking thread each.
    reads: Arc<Semaphore>,
    /// The newest committed revision, as the engine announces it.
    revisions: watch::Receiver<u64>,
}

/// One event, built once for every watcher of a group (`None`: the group
/// has nothing to see in this change).
type Cell = Arc<OnceCell<Option<Arc<Event>>>>;

/// Which watchers see the same events: the namespace, the context (as
/// JSON; empty for a namespace watch) and the principal (each principal has
/// its own view: the layers it may read, its view of sealed values).
type GroupKey = (NamespaceName, String, String);

/// A group under one access policy generation.
type Generation = (GroupKey, u64);

/// The events of the newest revision, built once per group: the first
/// watcher of a group filters the change, resolves the context and builds
/// the event; the others of the group await the same cell and send a copy.
///
/// A group's event depends on its principal's rights (which layers it
/// names, whether sealed values are masked), so cells are per access
/// policy generation: a watcher that asks after a policy change (a role
/// taken away, `read-secrets` revoked) builds anew under the new policy
/// rather than copy an event built under the old one.
#[derive(Default)]
struct EventCache {
    /// The newest revision, and its cells by group and policy generation.
    inner: std::sync::Mutex<(u64, HashMap<Generation, Cell>)>,
    /// Raised by the hub on every policy change, before it is broadcast.
    generation: std::sync::atomic::AtomicU64,
}

impl EventCache {
    /// The cell of `group` at `revision`; `None` for an older revision than
    /// the newest seen (a watcher catching up builds its own).
    fn cell(&self, group: &GroupKey, revision: u64) -> Option<Cell> {
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (rev, map) = &mut *guard;
        if revision > *rev {
            *rev = revision;
            map.clear();
        }
        if revision < *rev {
            return None;
        }
        let key = (
            group.clone(),
            self.generation.load(std::sync::atomic::Ordering::SeqCst),
        );
        if let Some(c) = map.get(&key) {
            return Some(Arc::clone(c));
        }
        let c = Cell::default();
        map.insert(key, Arc::clone(&c));
        Some(c)
    }

    /// A new policy generation: events built from now are built anew.
    fn policy_changed(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The old generation's cells are never asked for again.
        guard.1.clear();
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("watchers", &self.changes.receiver_count())
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// Starts the hub task (on the current tokio runtime); it stops when
    /// `shutdown` turns true. Watchers read the store holding a permit of
    /// `reads` (the runner's read bound).
    pub fn start(
        engine: &Engine,
        shutdown: watch::Receiver<bool>,
        reads: Arc<Semaphore>,
    ) -> Result<Hub, confstrata_core::Error> {
        let (changes, _) = broadcast::channel(1024);
        let start = engine.store().revision()?;
        let (revision_tx, mut revision_rx) = watch::channel(start);
        let revisions = revision_rx.clone();
        engine.on_commit(Arc::new(move |rev| {
            revision_tx.send_if_modified(|r| {
                let newer = rev > *r;
                if newer {
                    *r = rev;
                }
                newer
            });
        }));
        let events: Arc<EventCache> = Arc::default();
        let policy_tx = changes.clone();
        let policy_events = Arc::clone(&events);
        engine.on_policy_change(Arc::new(move || {
            policy_events.policy_changed();
            // No receivers is fine: nobody watches right now.
            let _ = policy_tx.send(Signal::Policy);
        }));
        let hub = Hub {
            changes: changes.clone(),
            shutdown: shutdown.clone(),
            events,
            reads,
            revisions,
        };
        let engine = engine.clone();
        let mut stop = shutdown;
        tokio::spawn(async move {
            let mut last = start;
            loop {
                tokio::select! {
                    changed = revision_rx.changed() => if changed.is_err() { break },
                    _ = stop.changed() => break,
                }
                if *stop.borrow() {
                    break;
                }
                let target = *revision_rx.borrow_and_update();
                if changes.receiver_count() == 0 {
                    // Nobody watches: nothing to read. A watcher that joins
                    // later subscribes first and reads its backlog from the
                    // store, whose revision is already at least `target`.
                    last = target;
                    continue;
                }
                while last < target {
                    let e = engine.clone();
                    let after = last;
                    let page =
                        tokio::task::spawn_blocking(move || e.store().changes_since(after, PAGE))
                            .await;
                    match page {
                        Ok(Ok(page)) if !page.is_empty() => {
                            let mut sent = false;
                            for c in page {
                                // Only what the counter already shows: a
                                // revision read before its batch raised the
                                // counter goes out with its own notice, so a
                                // watcher that starts from the counter (and
                                // skips reading the store) never misses it.
                                if c.info.revision > target {
                                    break;
                                }
                                last = c.info.revision;
                                sent = true;
                                // No receivers is fine: nobody watches right now.
                                let _ = changes.send(Signal::Change(Arc::new(c)));
                            }
                            if !sent {
                                break;
                            }
                        }
                        Ok(Ok(_)) => break,
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "watch hub cannot read changes; watchers will catch up from the store");
                            break;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "watch hub read task failed");
                            break;
                        }
                    }
                }
            }
            let _ = changes.send(Signal::Stop);
            tracing::debug!("watch hub stopped");
        });
        Ok(hub)
    }
}

impl Hub {
    /// The newest committed revision, changing as commits land (for a
    /// long poll: wait for it to move past what a client has seen).
    pub fn revisions(&self) -> watch::Receiver<u64> {
        self.revisions.clone()
    }
}

/// A validated watch request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSpec {
    /// The namespace watched.
    pub namespace: NamespaceName,
    /// For a context watch: the context whose resolved document each event
    /// carries.
    pub context: Option<Context>,
    /// The first revision to report (0: the next one).
    pub start_revision: u64,
}

/// Runs a store read on the blocking pool, within the read bound.
async fn blocking<T: Send + 'static>(
    engine: &Engine,
    reads: &Arc<Semaphore>,
    f: impl FnOnce(&Engine) -> confstrata_core::Result<T> + Send + 'static,
) -> Result<T, WatchError> {
    let permit = Arc::clone(reads).acquire_owned().await.map_err(|_| {
        fail(
            Error::Unavailable {
                message: "the server is shutting down".to_owned(),
            },
            "",
        )
    })?;
    let e = engine.clone();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        f(&e)
    })
    .await
    .map_err(|e| {
        fail(
            Error::Internal {
                message: format!("task failed: {e}"),
            },
            "",
        )
    })?
    .map_err(|e| fail(e, ""))
}

/// One watcher, as the response stream itself: the stream is polled when
/// the connection can take more, and each poll does the watcher's next
/// step (no task and channel of its own between the broadcast and the
/// connection: one wake-up per watcher per event instead of two). It ends
/// when the server shuts down, after an error it sends, or when the client
/// goes away (the stream is dropped).
pub fn stream(
    engine: Engine,
    hub: &Hub,
    caller: Caller,
    spec: WatchSpec,
) -> impl Stream<Item = WatchItem> + Send + 'static {
    // Subscribed before the backlog is read: nothing falls between.
    let rx = hub.changes.subscribe();
    let group = (
        spec.namespace.clone(),
        spec.context
            .as_ref()
            .map(|c| confstrata_core::serde_json::to_string(c).unwrap_or_default())
            .unwrap_or_default(),
        caller.principal().to_string(),
    );
    let state = State {
        w: Watcher {
            engine,
            caller,
            spec,
            out: VecDeque::new(),
            next: 0,
            from: None,
            events: Arc::clone(&hub.events),
            reads: Arc::clone(&hub.reads),
            group,
        },
        rx,
        shutdown: hub.shutdown.clone(),
        phase: Phase::Start,
    };
    futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(item) = st.w.out.pop_front() {
                return Some((item, st));
            }
            let next = match st.phase {
                Phase::Done => return None,
                Phase::Start => {
                    if *st.shutdown.borrow() {
                        // Subscribed after the stop was broadcast.
                        return None;
                    }
                    st.w.start().await.map(|()| Phase::CatchUp { marker: true })
                }
                Phase::CatchUp { .. } if *st.shutdown.borrow() => return None,
                Phase::CatchUp { marker } => match st.w.catch_up_page().await {
                    Ok(true) => Ok(Phase::CatchUp { marker }),
                    Ok(false) => {
                        if marker {
                            st.w.send(Arc::new(Event::new(WatchEvent::CaughtUp {
                                revision: st.w.next - 1,
                            })));
                        }
                        Ok(Phase::Live)
                    }
                    Err(e) => Err(e),
                },
                Phase::Live => st.live().await,
            };
            st.phase = next.unwrap_or_else(|e| {
                st.w.out.push_back(Err(e));
                Phase::Done
            });
        }
    })
}

/// Where a watcher is.
#[derive(Clone, Copy)]
enum Phase {
    /// Not started: the request is checked and the start revision set.
    Start,
    /// Reading retained revisions from the store, a page per step; then
    /// the caught-up marker if `marker` (after the start, not after a gap).
    CatchUp { marker: bool },
    /// Following the broadcast.
    Live,
    /// Ended (after anything still buffered).
    Done,
}

struct State {
    w: Watcher,
    rx: broadcast::Receiver<Signal>,
    shutdown: watch::Receiver<bool>,
    phase: Phase,
}

impl State {
    /// Waits for the next change (or the end) and emits it.
    async fn live(&mut self) -> Result<Phase, WatchError> {
        let signal = self.rx.recv().await;
        // Stopping: end now, not after the changes queued before the stop.
        if *self.shutdown.borrow() {
            return Ok(Phase::Done);
        }
        match signal {
            Ok(Signal::Change(change)) if change.info.revision < self.w.next => Ok(Phase::Live),
            Ok(Signal::Change(change)) if change.info.revision == self.w.next => {
                self.w.emit(&change).await.map(|()| Phase::Live)
            }
            // A gap: read what was missed from the store.
            Ok(Signal::Change(_)) => Ok(Phase::CatchUp { marker: false }),
            // The policy changed: a revoked token, or a caller that may no
            // longer read the namespace (a role or group membership taken
            // away), ends the watch now.
            Ok(Signal::Policy) => self.w.check_caller().await.map(|()| Phase::Live),
            Ok(Signal::Stop) | Err(broadcast::error::RecvError::Closed) => Ok(Phase::Done),
            // A lagging receiver may have missed any signal: check each,
            // then read the missed changes from the store.
            Err(broadcast::error::RecvError::Lagged(_)) => {
                if *self.shutdown.borrow() {
                    return Ok(Phase::Done);
                }
                self.w
                    .check_caller()
                    .await
                    .map(|()| Phase::CatchUp { marker: false })
            }
        }
    }
}

struct Watcher {
    engine: Engine,
    caller: Caller,
    spec: WatchSpec,
    /// Events built and not yet taken by the stream.
    out: VecDeque<WatchItem>,
    /// The next revision to report.
    next: u64,
    /// What the namespace resolves from: its imports and itself and, for
    /// a context watch, their layers for the context (`Some(None)`: the
    /// namespace is gone; `None`: read it again before the next event
    /// this watcher builds itself, after a declaration among them changed).
    from: Option<Option<ResolvedFrom>>,
    events: Arc<EventCache>,
    reads: Arc<Semaphore>,
    group: GroupKey,
}

impl Watcher {
    /// Whether the caller may still watch (its token valid, some of the
    /// namespace readable). On the blocking pool: a refusal is audited,
    /// which writes.
    async fn check_caller(&self) -> Result<(), WatchError> {
        let (caller, ns) = (self.caller.clone(), self.spec.namespace.clone());
        blocking(&self.engine, &self.reads, move |e| {
            e.check_watch(&caller, &ns)
        })
        .await
    }

    /// Checks the request against the store and sets the start revision.
    async fn start(&mut self) -> Result<(), WatchError> {
        let ns = self.spec.namespace.clone();
        let caller = self.caller.clone();
        let (current, spec) = blocking(&self.engine, &self.reads, move |e| {
            // The caller was authenticated before this watcher subscribed;
            // a policy change in between was broadcast before it listened.
            e.check_watch(&caller, &ns)?;
            let current = e.store().revision()?;
            Ok((current, e.namespace(&caller, &ns, At::Latest)?.spec))
        })
        .await?;
        if let Some(ctx) = &self.spec.context {
            spec.check_context(ctx).map_err(|e| fail(e, "context"))?;
        }
        let start = if self.spec.start_revision == 0 {
            current + 1
        } else {
            self.spec.start_revision
        };
        if start > current + 1 {
            return Err(fail(
                Error::FutureRevision {
                    requested: start,
                    current,
                },
                "start_revision",
            ));
        }
        self.next = start;
        Ok(())
    }

    /// Reads one page of retained revisions from `next` on and emits them;
    /// `false` once there is nothing more to read.
    async fn catch_up_page(&mut self) -> Result<bool, WatchError> {
        let after = self.next - 1;
        // Nothing committed after it (a watch from now, the usual case):
        // no store read. A commit that lands meanwhile comes through the
        // broadcast, which this watcher joined before.
        if self
            .engine
            .store()
            .revision()
            .is_ok_and(|current| current <= after)
        {
            return Ok(false);
        }
        let page = blocking(&self.engine, &self.reads, move |e| {
            e.store().changes_since(after, PAGE)
        })
        .await?;
        if page.is_empty() {
            return Ok(false);
        }
        for c in &page {
            if c.info.revision >= self.next {
                self.emit(c).await?;
            }
        }
        Ok(true)
    }

    async fn emit(&mut self, change: &Change) -> Result<(), WatchError> {
        if change.info.author == confstrata_core::dump::RESTORE_AUTHOR && change.items.is_empty() {
            return Err(fail(
                Error::Restored {
                    requested: self.next,
                    resumed: change.info.revision,
                },
                "start_revision",
            ));
        }
        self.next = change.info.revision + 1;
        let Some(cell) = self.events.cell(&self.group, change.info.revision) else {
            if let Some(event) = self.build(change).await? {
                self.send(Arc::new(Event::new(event)));
            }
            return Ok(());
        };
        let mut built_here = false;
        let event = cell
            .get_or_try_init(|| async {
                built_here = true;
                Ok::<_, WatchError>(self.build(change).await?.map(|e| Arc::new(Event::new(e))))
            })
            .await?
            .clone();
        if !built_here && self.declaration_changed(change) {
            // Another watcher of the group read the new declarations; this
            // one reads them before it next builds an event itself.
            self.from = None;
        }
        if let Some(event) = event {
            self.send(event);
        }
        Ok(())
    }

    /// Whether `change` declares the watched namespace or one it imports
    /// (as far as this watcher knows them).
    fn declaration_changed(&self, change: &Change) -> bool {
        change.items.iter().any(|i| {
            i.layer.is_none()
                && match &self.from {
                    Some(Some(from)) => from.0.contains(&i.namespace),
                    _ => i.namespace == self.spec.namespace,
                }
        })
    }

    /// The event this watcher sees for a change (`None`: nothing of it).
    async fn build(&mut self, change: &Change) -> Result<Option<WatchEvent>, WatchError> {
        let declaration_changed = self.declaration_changed(change);
        if declaration_changed {
            self.from = None;
        }
        // A change to the namespace's own layers alone needs nothing more
        // for a namespace watch; otherwise learn what it imports (once).
        let own_only = change
            .items
            .iter()
            .all(|i| i.namespace == self.spec.namespace);
        if self.from.is_none() && (self.spec.context.is_some() || !own_only) {
            let (ns, ctx, rev) = (
                self.spec.namespace.clone(),
                self.spec.context.clone(),
                change.info.revision,
            );
            self.from = Some(
                blocking(&self.engine, &self.reads, move |e| {
                    e.resolved_from(&ns, ctx.as_ref(), rev)
                })
                .await?,
            );
        }
        let names = match &self.from {
            Some(Some((names, _))) => names.clone(),
            _ => vec![self.spec.namespace.clone()],
        };
        let items = self.engine.visible_items(&self.caller, &names, change);
        if items.is_empty() {
            return Ok(None);
        }
        let mut resolved_json = None;
        if let Some(ctx) = self.spec.context.clone() {
            let Some(Some((_, layers))) = &self.from else {
                // The namespace is gone at this revision: nothing resolves.
                return Ok(Some(WatchEvent::Change {
                    info: change.info.clone(),
                    items,
                    resolved_json: None,
                }));
            };
            let relevant = declaration_changed
                || change.items.iter().any(|i| {
                    i.layer.as_ref().is_some_and(|l| {
                        layers
                            .iter()
                            .any(|c| c.namespace == i.namespace && c.layer == *l)
                    })
                });
            if !relevant {
                return Ok(None);
            }
            let rev = change.info.revision;
            let (ns, caller) = (self.spec.namespace.clone(), self.caller.clone());
            let view = blocking(&self.engine, &self.reads, move |e| {
                // The newest revision is resolved from the view cache (a
                // view made stale by this very commit is rebuilt from the
                // change, not merged again); if another commit landed
                // meanwhile, this revision is merged as it was.
                if e.revision()? == rev {
                    let latest = e.resolve(&caller, &ns, &ctx, At::Latest)?;
                    if latest.revision == rev {
                        return Ok(latest);
                    }
                }
                e.resolve(&caller, &ns, &ctx, At::Revision(rev))
            })
            .await?;
            resolved_json =
                Some(confstrata_core::serde_json::to_string(&view.document).unwrap_or_default());
        }
        Ok(Some(WatchEvent::Change {
            info: change.info.clone(),
            items,
            resolved_json,
        }))
    }

    /// Queues an event for the stream.
    fn send(&mut self, event: Arc<Event>) {
        self.out.push_back(Ok(event));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(principal: &str) -> GroupKey {
        (
            NamespaceName::parse("app").expect("a valid name"),
            String::new(),
            principal.to_owned(),
        )
    }

    #[test]
    fn a_policy_change_starts_new_cells_so_no_event_is_shared_across_it() {
        let cache = EventCache::default();
        let before = cache.cell(&group("alice"), 7).expect("the newest revision");
        let again = cache.cell(&group("alice"), 7).expect("the newest revision");
        assert!(
            Arc::ptr_eq(&before, &again),
            "one cell per group and revision"
        );
        let other = cache.cell(&group("bob"), 7).expect("the newest revision");
        assert!(!Arc::ptr_eq(&before, &other), "each principal has its own");

        cache.policy_changed();
        let after = cache.cell(&group("alice"), 7).expect("the newest revision");
        assert!(
            !Arc::ptr_eq(&before, &after),
            "an event built under the old policy is not handed out after the change"
        );
        let after_again = cache.cell(&group("alice"), 7).expect("the newest revision");
        assert!(Arc::ptr_eq(&after, &after_again));
        assert!(
            cache.cell(&group("alice"), 6).is_none(),
            "older: built alone"
        );
    }
}
