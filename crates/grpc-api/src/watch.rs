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

use std::collections::HashMap;
use std::sync::Arc;

use confstrata_core::{At, Change, Context, NamespaceName, NamespaceSpec};
use confstrata_engine::{Action, Caller, Engine, Resource};
use confstrata_proto::convert;
use confstrata_proto::v1;
use tokio::sync::{OnceCell, broadcast, mpsc, watch};
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
    resolved: Arc<ResolvedCache>,
}

/// One resolved document, computed once.
type Cell = Arc<OnceCell<Arc<String>>>;

/// The cells of one revision, by namespace, context and principal (each
/// principal has its own view of sealed values).
type Cells = HashMap<(NamespaceName, String, String), Cell>;

/// Resolved documents of the newest revision that context watchers asked
/// for, so that many watchers of one context resolve it once per revision:
/// the first computes, the others await the same cell.
#[derive(Default)]
struct ResolvedCache {
    inner: std::sync::Mutex<(u64, Cells)>,
}

impl ResolvedCache {
    fn cell(&self, ns: &NamespaceName, ctx: &Context, who: &Caller, revision: u64) -> Cell {
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
            // An older revision (a watcher catching up): not worth caching.
            return Arc::new(OnceCell::new());
        }
        let key = (
            ns.clone(),
            convert::to_json(ctx),
            who.principal().to_string(),
        );
        Arc::clone(map.entry(key).or_default())
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
            resolved: Arc::default(),
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

type Out = mpsc::Sender<Result<v1::WatchResponse, Status>>;

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

/// Runs one watcher until the client goes away, the server shuts down, or an
/// error is sent.
pub(crate) async fn run(engine: Engine, hub: Hub, caller: Caller, spec: WatchSpec, out: Out) {
    let mut rx = hub.changes.subscribe();
    let mut shutdown = hub.shutdown.clone();
    let mut policy = hub.policy.clone();
    let mut w = Watcher {
        engine,
        caller,
        spec,
        out,
        next: 0,
        ns_spec: None,
        cache: Arc::clone(&hub.resolved),
    };
    if let Err(status) = w.start().await {
        let _ = w.out.send(Err(status)).await;
        return;
    }
    loop {
        let result = tokio::select! {
            r = rx.recv() => match r {
                Ok(change) if change.info.revision < w.next => Ok(()),
                Ok(change) if change.info.revision == w.next => w.emit(&change).await,
                // A gap (or a lagging receiver): read what was missed from the store.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => w.catch_up().await,
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = w.out.closed() => break,
            _ = shutdown.changed() => break,
            // The policy changed: a revoked token ends the watch now.
            _ = policy.changed() => w
                .engine
                .check_caller(&w.caller)
                .map_err(|e| status::from_core(&e, "")),
        };
        if let Err(status) = result {
            let _ = w.out.send(Err(status)).await;
            break;
        }
    }
}

struct Watcher {
    engine: Engine,
    caller: Caller,
    spec: WatchSpec,
    out: Out,
    /// The next revision to report.
    next: u64,
    /// The namespace declaration, for context watches.
    ns_spec: Option<NamespaceSpec>,
    cache: Arc<ResolvedCache>,
}

impl Watcher {
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
        self.catch_up().await?;
        let caught_up = v1::WatchResponse {
            caught_up_revision: self.next - 1,
            ..Default::default()
        };
        self.send(caught_up).await
    }

    /// Reads and emits every retained revision from `next` on.
    async fn catch_up(&mut self) -> Result<(), Status> {
        loop {
            let after = self.next - 1;
            let page =
                blocking(&self.engine, move |e| e.store().changes_since(after, PAGE)).await?;
            if page.is_empty() {
                return Ok(());
            }
            for c in &page {
                if c.info.revision >= self.next {
                    self.emit(c).await?;
                }
            }
        }
    }

    async fn emit(&mut self, change: &Change) -> Result<(), Status> {
        self.next = change.info.revision + 1;
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
            return Ok(());
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
                return self.send(event).await;
            };
            let layers = spec.layers_for(&ctx).unwrap_or_default();
            let relevant = spec_changed
                || change.items.iter().any(|i| {
                    i.namespace == self.spec.namespace
                        && i.layer.as_ref().is_some_and(|l| layers.contains(l))
                });
            if !relevant {
                return Ok(());
            }
            let rev = change.info.revision;
            let cell = self
                .cache
                .cell(&self.spec.namespace, &ctx, &self.caller, rev);
            let (engine, ns) = (self.engine.clone(), self.spec.namespace.clone());
            let caller = self.caller.clone();
            let json = cell
                .get_or_try_init(|| async move {
                    let view = blocking(&engine, move |e| {
                        e.resolve(&caller, &ns, &ctx, At::Revision(rev))
                    })
                    .await?;
                    Ok::<_, Status>(Arc::new(convert::to_json(&view.document)))
                })
                .await?;
            event.resolved_json = String::clone(json);
        }
        self.send(event).await
    }

    async fn send(&self, event: v1::WatchResponse) -> Result<(), Status> {
        // A closed channel means the client went away; the loop notices.
        let _ = self.out.send(Ok(event)).await;
        Ok(())
    }
}
