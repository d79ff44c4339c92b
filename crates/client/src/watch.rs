//! Watching: the raw event stream, a resolved stream that reconnects
//! without gaps, and [`Reloader`], which keeps the latest configuration.

use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use confstrata_core::{At, Context, NamespaceName};
use confstrata_proto::v1;
use futures_core::Stream;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::error::{Error, OneLine, Result};
use crate::fallback;
use crate::types::{ResolvedView, WatchEvent};
use crate::wire;

/// The events of one `Watch` call: see [`Client::watch`].
///
/// Ends with an error when the connection breaks, and without one when the
/// server closes the stream (for example when it shuts down). Resume with
/// the last revision seen + 1 to miss nothing.
pub struct WatchStream {
    inner: tonic::Streaming<v1::WatchResponse>,
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream").finish_non_exhaustive()
    }
}

impl WatchStream {
    pub(crate) fn new(inner: tonic::Streaming<v1::WatchResponse>) -> Self {
        WatchStream { inner }
    }
}

impl Stream for WatchStream {
    type Item = Result<WatchEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx).map(|item| {
            item.map(|r| match r {
                Ok(msg) => wire::watch_event(&msg).map_err(Error::from),
                Err(status) => Err(Error::from(status)),
            })
        })
    }
}

/// How [`ResolvedStream`] retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatchOptions {
    /// The first wait before reconnecting.
    pub initial_backoff: Duration,
    /// The longest wait between attempts (the wait doubles up to it).
    pub max_backoff: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl WatchOptions {
    /// Sets the first and the longest wait between reconnection attempts.
    #[must_use]
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }
}

/// Exponential backoff: `initial`, doubled after each failure up to `max`,
/// back to `initial` after a success.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    options: WatchOptions,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(options: WatchOptions) -> Self {
        Backoff {
            options,
            next: options.initial_backoff,
        }
    }

    /// The wait before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.options.max_backoff);
        delay
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.options.initial_backoff;
    }
}

/// The resolved configuration of one context, now and after every change:
/// the stream of [`Client::watch_resolved`].
///
/// The first item is the configuration at the latest revision (with its
/// layers); each later item is the configuration after one revision that
/// changed the namespace, built from the watch event (its `layers` and
/// `provenance` are empty: call [`Client::resolve`] for them).
///
/// When the server cannot be reached (also before the first item), the
/// connection breaks, or the server closes the stream, it reconnects with
/// backoff and resumes from the last revision seen + 1, so it misses no
/// revision; transient errors are logged (`tracing`), not yielded. It
/// yields an error and ends only when resuming is impossible: the revision
/// to resume from was removed by retention (`OUT_OF_RANGE`), or the server
/// rejects the request (an unknown namespace, an invalid context).
pub struct ResolvedStream {
    inner: Pin<Box<dyn Stream<Item = Result<ResolvedView>> + Send>>,
}

impl std::fmt::Debug for ResolvedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedStream").finish_non_exhaustive()
    }
}

struct State {
    client: Client,
    namespace: NamespaceName,
    context: Context,
    /// The last revision reported (or known to need no report).
    last: Option<u64>,
    stream: Option<WatchStream>,
    backoff: Backoff,
    done: bool,
}

impl State {
    /// Waits before retrying after `error`, or gives up with it.
    async fn retry_or_fail(&mut self, error: Error, what: &str) -> Option<Error> {
        self.stream = None;
        if !error.is_retryable() {
            self.done = true;
            return Some(error);
        }
        let delay = self.backoff.next_delay();
        tracing::warn!(
            namespace = %self.namespace,
            addr = self.client.addr(),
            resume_from = self.last.map(|r| r + 1),
            "{what} failed, retrying in {delay:?}: {}",
            OneLine(&error)
        );
        tokio::time::sleep(delay).await;
        None
    }

    async fn next(&mut self) -> Option<Result<ResolvedView>> {
        while !self.done {
            let Some(last) = self.last else {
                match self
                    .client
                    .resolve(&self.namespace, &self.context, At::Latest, false)
                    .await
                {
                    Ok(r) => {
                        self.last = Some(r.revision);
                        self.backoff.reset();
                        return Some(Ok(r));
                    }
                    Err(e) => match self.retry_or_fail(e, "resolve").await {
                        Some(e) => return Some(Err(e)),
                        None => continue,
                    },
                }
            };
            let Some(stream) = &mut self.stream else {
                match self
                    .client
                    .watch(&self.namespace, Some(&self.context), last + 1)
                    .await
                {
                    Ok(s) => self.stream = Some(s),
                    Err(e) => {
                        if let Some(e) = self.retry_or_fail(e, "watch").await {
                            return Some(Err(e));
                        }
                    }
                }
                continue;
            };
            match stream.next().await {
                Some(Ok(WatchEvent::CaughtUp { revision })) => {
                    // Everything up to `revision` has been delivered.
                    self.last = Some(last.max(revision));
                    self.backoff.reset();
                }
                Some(Ok(WatchEvent::Change { info, resolved, .. })) => {
                    self.backoff.reset();
                    let document = match resolved {
                        Some(d) => d,
                        // The server sent no document (the context may have
                        // stopped resolving): ask for it at that revision, so
                        // a failure is reported as the server words it.
                        None => match self
                            .client
                            .resolve(
                                &self.namespace,
                                &self.context,
                                At::Revision(info.revision),
                                false,
                            )
                            .await
                        {
                            Ok(r) => r.document,
                            Err(e) => match self.retry_or_fail(e, "resolve").await {
                                Some(e) => return Some(Err(e)),
                                None => continue,
                            },
                        },
                    };
                    self.last = Some(info.revision);
                    return Some(Ok(ResolvedView {
                        namespace: self.namespace.clone(),
                        context: self.context.clone(),
                        revision: info.revision,
                        layers: Vec::new(),
                        document,
                        provenance: Vec::new(),
                        partial: false,
                    }));
                }
                Some(Err(e)) => {
                    if let Some(e) = self.retry_or_fail(e, "watch").await {
                        return Some(Err(e));
                    }
                }
                None => {
                    // The server closed the stream (shutting down): resume.
                    self.stream = None;
                    let delay = self.backoff.next_delay();
                    tracing::info!(
                        namespace = %self.namespace,
                        addr = self.client.addr(),
                        "the server closed the watch; resuming from revision {} in {delay:?}",
                        last + 1
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
        None
    }
}

impl ResolvedStream {
    pub(crate) fn new(
        client: Client,
        namespace: NamespaceName,
        context: Context,
        options: WatchOptions,
    ) -> Self {
        let state = State {
            client,
            namespace,
            context,
            last: None,
            stream: None,
            backoff: Backoff::new(options),
            done: false,
        };
        let inner = futures_util::stream::unfold(state, |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        });
        ResolvedStream {
            inner: Box::pin(inner),
        }
    }
}

impl Stream for ResolvedStream {
    type Item = Result<ResolvedView>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// Keeps the latest resolved configuration of one context, updated in the
/// background by [`Client::watch_resolved`], and optionally mirrors each
/// update to a fallback file that [`ConfstrataProvider`](crate::ConfstrataProvider)
/// can read when the server is down.
///
/// ```no_run
/// # async fn demo() -> Result<(), confstrata_client::Error> {
/// use confstrata_client::{Client, Reloader, model::parse_context};
/// let client = Client::connect("127.0.0.1:7400").await?;
/// let reloader = Reloader::builder(&client, "webshop".parse()?, parse_context("env=prod")?)
///     .fallback_file("/var/cache/webshop/config.json")
///     .start()
///     .await?;
/// let mut updates = reloader.subscribe();
/// while updates.changed().await.is_ok() {
///     let config = updates.borrow_and_update().clone();
///     println!("now at revision {}", config.revision);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Reloader {
    rx: watch::Receiver<ResolvedView>,
    task: Option<JoinHandle<Result<()>>>,
}

/// Builds a [`Reloader`].
#[derive(Debug)]
pub struct ReloaderBuilder {
    client: Client,
    namespace: NamespaceName,
    context: Context,
    fallback: Option<PathBuf>,
    options: WatchOptions,
}

impl ReloaderBuilder {
    /// Rewrites this file (atomically) with every update.
    #[must_use]
    pub fn fallback_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.fallback = Some(path.into());
        self
    }

    /// Sets how the watch reconnects.
    #[must_use]
    pub fn watch_options(mut self, options: WatchOptions) -> Self {
        self.options = options;
        self
    }

    /// Resolves the configuration, then keeps it up to date in a background
    /// task. Waits (retrying while the server is unreachable) until the first
    /// configuration is read; wrap it in `tokio::time::timeout` to bound that.
    pub async fn start(self) -> Result<Reloader> {
        let mut stream =
            self.client
                .watch_resolved_with(&self.namespace, &self.context, self.options);
        let first = match stream.next().await {
            Some(r) => r?,
            None => {
                return Err(Error::Runtime(
                    "the watch ended before the first configuration".into(),
                ));
            }
        };
        let addr = self.client.addr().to_owned();
        let fallback = self.fallback;
        mirror(fallback.as_ref(), &addr, &first).await;
        let (tx, rx) = watch::channel(first);
        let task = tokio::spawn(async move {
            while let Some(item) = stream.next().await {
                let mut resolved = item?;
                // Updates from the watch carry no layer list: keep the last known.
                if resolved.layers.is_empty() {
                    resolved.layers = tx.borrow().layers.clone();
                }
                mirror(fallback.as_ref(), &addr, &resolved).await;
                tx.send_replace(resolved);
            }
            Ok(())
        });
        Ok(Reloader {
            rx,
            task: Some(task),
        })
    }
}

/// Writes the fallback file, logging (not failing) on error.
async fn mirror(path: Option<&PathBuf>, addr: &str, resolved: &ResolvedView) {
    let Some(path) = path else { return };
    let (path, addr, resolved) = (path.clone(), addr.to_owned(), resolved.clone());
    let result =
        tokio::task::spawn_blocking(move || fallback::write(&path, &addr, &resolved)).await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("cannot update the fallback file: {}", OneLine(&e)),
        Err(e) => tracing::warn!("cannot update the fallback file: {e}"),
    }
}

impl Reloader {
    /// A builder for the configuration of `context` in `namespace`.
    pub fn builder(client: &Client, namespace: NamespaceName, context: Context) -> ReloaderBuilder {
        ReloaderBuilder {
            client: client.clone(),
            namespace,
            context,
            fallback: None,
            options: WatchOptions::default(),
        }
    }

    /// The latest configuration.
    pub fn current(&self) -> ResolvedView {
        self.rx.borrow().clone()
    }

    /// A receiver that sees every update (`changed().await`); it errors
    /// once the reloader stops.
    pub fn subscribe(&self) -> watch::Receiver<ResolvedView> {
        self.rx.clone()
    }

    /// Waits until the background watch gives up, and returns why
    /// (for example the resume revision was compacted away).
    pub async fn join(mut self) -> Result<()> {
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| Error::Runtime(format!("the reloader task failed: {e}")))?,
            None => Ok(()),
        }
    }
}

impl Drop for Reloader {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
