//! Watch: one fan-out for every watcher.
//!
//! The engine calls an observer after each commit; one hub task reads the new
//! revisions from the store once and broadcasts them. Each watcher subscribes
//! to the broadcast *before* reading its backlog from the store, and fills
//! any gap (a lagging receiver, a revision it has not seen) from the store,
//! so a watcher never misses a revision and the store is not polled per
//! watcher.
//!
//! A watcher sees only what its caller may read: events name only layers
//! the caller may read, a resolved document is the caller's view (sealed
//! values masked without `read-secrets`), and after any change to the access
//! policy every watcher re-checks its token; a revoked token's watch ends
//! at once with UNAUTHENTICATED.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use confstrata_core::{At, Change, Context, NamespaceName, NamespaceSpec};
use confstrata_engine::{Action, Caller, Engine, Resource};
use confstrata_proto::convert;
use confstrata_proto::v1;
use futures_util::Stream;
use tokio::sync::{OnceCell, broadcast, watch};
use tonic::Status;

use crate::status;

/// How many changes one store read returns.
const PAGE: usize = 256;

/// The broadcast side: shared by every watcher of a server.
#[derive(Clone)]
pub(crate) struct Hub {
    changes: broadcast::Sender<Arc<Change>>,
    /// Bumped after every change to the access policy.
    policy: watch::Receiver<u64>,
    shutdown: watch::Receiver<bool>,
    events: Arc<EventCache>,
}

/// One event, built once for every watcher of a group (`None`: the group
/// has nothing to see in this change).
type Cell = Arc<OnceCell<Option<Arc<v1::WatchResponse>>>>;

/// Which watchers see the same events: the namespace, the context (as
/// JSON; empty for a namespace watch) and the principal (each principal has
/// its own view: the layers it may read, its view of sealed values).
type GroupKey = (NamespaceName, String, String);

/// The events of the newest revision, built once per group: the first
/// watcher of a group filters the change, resolves the context and builds
/// the event; the others of the group await the same cell and send a copy.
#[derive(Default)]
struct EventCache {
    inner: std::sync::Mutex<(u64, HashMap<GroupKey, Cell>)>,
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
        if let Some(c) = map.get(group) {
            return Some(Arc::clone(c));
        }
        let c = Cell::default();
        map.insert(group.clone(), Arc::clone(&c));
        Some(c)
    }
}

impl Hub {
    /// Starts the hub task; it stops when `shutdown` turns true.
    pub(crate) fn start(
        engine: &Engine,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Hub, confstrata_core::Error> {
        let (changes, _) = broadcast::channel(1024);
        let start = engine.store().revision()?;
        let (revision_tx, mut revision_rx) = watch::channel(start);
        engine.on_commit(Arc::new(move |rev| {
            revision_tx.send_if_modified(|r| {
                let newer = rev > *r;
                if newer {
                    *r = rev;
                }
                newer
            });
        }));
        let (policy_tx, policy) = watch::channel(0u64);
        engine.on_policy_change(Arc::new(move || {
            policy_tx.send_modify(|n| *n = n.wrapping_add(1));
        }));
        let hub = Hub {
            changes: changes.clone(),
            policy,
            shutdown: shutdown.clone(),
            events: Arc::default(),
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
                let target = *revision_rx.borrow_and_update();
                while last < target {
                    let e = engine.clone();
                    let after = last;
                    let page =
                        tokio::task::spawn_blocking(move || e.store().changes_since(after, PAGE))
                            .await;
                    match page {
                        Ok(Ok(page)) if !page.is_empty() => {
                            for c in page {
                                last = c.info.revision;
                                // No receivers is fine: nobody watches right now.
                                let _ = changes.send(Arc::new(c));
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
            tracing::debug!("watch hub stopped");
        });
        Ok(hub)
    }
}

/// A validated watch request.
pub(crate) struct WatchSpec {
    pub(crate) namespace: NamespaceName,
    pub(crate) context: Option<Context>,
    pub(crate) start_revision: u64,
}

async fn blocking<T: Send + 'static>(
    engine: &Engine,
    f: impl FnOnce(&Engine) -> confstrata_core::Result<T> + Send + 'static,
) -> Result<T, Status> {
    let e = engine.clone();
    tokio::task::spawn_blocking(move || f(&e))
        .await
        .map_err(|e| Status::internal(format!("task failed: {e}")))?
        .map_err(|e| status::from_core(&e, ""))
}

/// One watcher, as the response stream itself: the stream is polled when
/// the connection can take more, and each poll does the watcher's next
/// step (no task and channel of its own between the broadcast and the
/// connection: one wake-up per watcher per event instead of two). It ends
/// when the server shuts down, after an error it sends, or when the client
/// goes away (the stream is dropped).
pub(crate) fn stream(
    engine: Engine,
    hub: &Hub,
    caller: Caller,
    spec: WatchSpec,
) -> impl Stream<Item = Result<v1::WatchResponse, Status>> + Send + 'static {
    // Subscribed before the backlog is read: nothing falls between.
    let rx = hub.changes.subscribe();
    let group = (
        spec.namespace.clone(),
        spec.context
            .as_ref()
            .map(convert::to_json)
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
            ns_spec: None,
            events: Arc::clone(&hub.events),
            group,
        },
        rx,
        shutdown: hub.shutdown.clone(),
        policy: hub.policy.clone(),
        phase: Phase::Start,
    };
    futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(item) = st.w.out.pop_front() {
                return Some((item, st));
            }
            let next = match st.phase {
                Phase::Done => return None,
                Phase::Start => st.w.start().await.map(|()| Phase::CatchUp { marker: true }),
                Phase::CatchUp { marker } => match st.w.catch_up_page().await {
                    Ok(true) => Ok(Phase::CatchUp { marker }),
                    Ok(false) => {
                        if marker {
                            st.w.send(v1::WatchResponse {
                                caught_up_revision: st.w.next - 1,
                                ..Default::default()
                            });
                        }
                        Ok(Phase::Live)
                    }
                    Err(status) => Err(status),
                },
                Phase::Live => st.live().await,
            };
            st.phase = next.unwrap_or_else(|status| {
                st.w.out.push_back(Err(status));
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
    rx: broadcast::Receiver<Arc<Change>>,
    shutdown: watch::Receiver<bool>,
    policy: watch::Receiver<u64>,
    phase: Phase,
}

impl State {
    /// Waits for the next change (or the end) and emits it.
    async fn live(&mut self) -> Result<Phase, Status> {
        tokio::select! {
            r = self.rx.recv() => match r {
                Ok(change) if change.info.revision < self.w.next => Ok(Phase::Live),
                Ok(change) if change.info.revision == self.w.next => {
                    self.w.emit(&change).await.map(|()| Phase::Live)
                }
                // A gap (or a lagging receiver): read what was missed from the store.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    Ok(Phase::CatchUp { marker: false })
                }
                Err(broadcast::error::RecvError::Closed) => Ok(Phase::Done),
            },
            _ = self.shutdown.changed() => Ok(Phase::Done),
            // The policy changed: a revoked token ends the watch now.
            _ = self.policy.changed() => self
                .w
                .engine
                .check_caller(&self.w.caller)
                .map(|()| Phase::Live)
                .map_err(|e| status::from_core(&e, "")),
        }
    }
}

struct Watcher {
    engine: Engine,
    caller: Caller,
    spec: WatchSpec,
    /// Events built and not yet taken by the stream.
    out: VecDeque<Result<v1::WatchResponse, Status>>,
    /// The next revision to report.
    next: u64,
    /// The namespace declaration, for context watches (`None`: read it
    /// again before the next event this watcher builds itself).
    ns_spec: Option<NamespaceSpec>,
    events: Arc<EventCache>,
    group: GroupKey,
}

impl Watcher {
    /// Checks the request against the store and sets the start revision.
    async fn start(&mut self) -> Result<(), Status> {
        let ns = self.spec.namespace.clone();
        let caller = self.caller.clone();
        let (current, spec) = blocking(&self.engine, move |e| {
            let current = e.store().revision()?;
            Ok((current, e.namespace(&caller, &ns, At::Latest)?.spec))
        })
        .await?;
        if let Some(ctx) = &self.spec.context {
            spec.check_context(ctx)
                .map_err(|e| status::from_core(&e, "context"))?;
        }
        self.ns_spec = Some(spec);
        let start = if self.spec.start_revision == 0 {
            current + 1
        } else {
            self.spec.start_revision
        };
        if start > current + 1 {
            return Err(status::from_core(
                &confstrata_core::Error::FutureRevision {
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
    async fn catch_up_page(&mut self) -> Result<bool, Status> {
        let after = self.next - 1;
        let page = blocking(&self.engine, move |e| e.store().changes_since(after, PAGE)).await?;
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

    async fn emit(&mut self, change: &Change) -> Result<(), Status> {
        self.next = change.info.revision + 1;
        let Some(cell) = self.events.cell(&self.group, change.info.revision) else {
            if let Some(event) = self.build(change).await? {
                self.send(event);
            }
            return Ok(());
        };
        let mut built_here = false;
        let event = cell
            .get_or_try_init(|| async {
                built_here = true;
                Ok::<_, Status>(self.build(change).await?.map(Arc::new))
            })
            .await?
            .clone();
        let spec_changed = change
            .items
            .iter()
            .any(|i| i.namespace == self.spec.namespace && i.layer.is_none());
        if !built_here && spec_changed {
            // Another watcher of the group read the new declaration; this
            // one reads it before it next builds an event itself.
            self.ns_spec = None;
        }
        if let Some(event) = event {
            self.send(v1::WatchResponse::clone(&event));
        }
        Ok(())
    }

    /// The event this watcher sees for a change (`None`: nothing of it).
    async fn build(&mut self, change: &Change) -> Result<Option<v1::WatchResponse>, Status> {
        let items: Vec<v1::ChangeItem> = change
            .items
            .iter()
            .filter(|i| i.namespace == self.spec.namespace)
            .filter(|i| match &i.layer {
                Some(l) => self.engine.allows(
                    &self.caller,
                    Action::Read,
                    &Resource::layer(i.namespace.clone(), l.clone()),
                ),
                None => self.engine.allows_some(
                    &self.caller,
                    Action::Read,
                    &Resource::namespace(i.namespace.clone()),
                ),
            })
            .map(Into::into)
            .collect();
        if items.is_empty() {
            return Ok(None);
        }
        let mut event = v1::WatchResponse {
            info: Some((&change.info).into()),
            items,
            ..Default::default()
        };
        if let Some(ctx) = self.spec.context.clone() {
            let spec_changed = change
                .items
                .iter()
                .any(|i| i.namespace == self.spec.namespace && i.layer.is_none());
            if spec_changed || self.ns_spec.is_none() {
                let ns = self.spec.namespace.clone();
                let rev = change.info.revision;
                self.ns_spec = blocking(&self.engine, move |e| {
                    Ok(e.store().namespace(&ns, rev)?.map(|r| r.spec))
                })
                .await?;
            }
            let Some(spec) = &self.ns_spec else {
                // The namespace is gone at this revision: nothing resolves.
                return Ok(Some(event));
            };
            let layers = spec.layers_for(&ctx).unwrap_or_default();
            let relevant = spec_changed
                || change.items.iter().any(|i| {
                    i.namespace == self.spec.namespace
                        && i.layer.as_ref().is_some_and(|l| layers.contains(l))
                });
            if !relevant {
                return Ok(None);
            }
            let rev = change.info.revision;
            let (ns, caller) = (self.spec.namespace.clone(), self.caller.clone());
            let view = blocking(&self.engine, move |e| {
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
            event.resolved_json = convert::to_json(&view.document);
        }
        Ok(Some(event))
    }

    /// Queues an event for the stream.
    fn send(&mut self, event: v1::WatchResponse) {
        self.out.push_back(Ok(event));
    }
}
