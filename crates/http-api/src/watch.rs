//! Watch over HTTP: Server-Sent Events (`text/event-stream`) from the
//! host's watch feed, the same feed as gRPC's `Watch` (every revision that
//! changed the namespace, in order, none missed; a context watch carries
//! the resolved document), resumable with `Last-Event-ID`.
//!
//! ```text
//! id: 12
//! event: change
//! data: {"revision":12,"time_ms":…,"author":"ann","message":"…","items":[…],"document":{…}}
//!
//! id: 12
//! event: caught-up
//! data: {"revision":12}
//! ```
//!
//! Every event that reports revisions carries the newest as its `id`, so a
//! client (a browser's `EventSource` does it by itself) reconnects with
//! `Last-Event-ID` and gets exactly the revisions after it: none twice,
//! none lost, across a server restart. A start the store no longer has
//! ends the stream with one `compacted` event (the oldest revision it
//! has: read the state there and watch from it); a later error (the
//! token revoked, a right taken away) with one `error` event holding a
//! problem. The stream ends when the server stops; a comment line every
//! 15 s keeps idle connections open through proxies.

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use confstrata_core::serde_json::{self, value::RawValue};
use confstrata_core::view::WatchEvent;
use confstrata_core::{ChangeItem, Error};
use confstrata_host::watch::{self, Encoding, WatchError, WatchSpec};
use confstrata_host::{Host, Runner};
use futures_util::{Stream, StreamExt as _};
use serde::Serialize;

use crate::openapi::Refusals;
use crate::problem::Problem;
use crate::v1::{NsRequest, context_of, flag, number, param};

/// How often an idle stream sends a comment line.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// The host a watch reads its feed from (a router extension).
#[derive(Clone)]
pub(crate) struct Feeds(pub(crate) Host);

/// One event of the stream, as the OpenAPI description shows it (the
/// fields of an SSE event; `data` is JSON text).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = WatchStreamEvent)]
pub(crate) struct EventDoc {
    /// `change`, `caught-up`, `compacted` or `error`.
    #[schema(pattern = "^(change|caught-up|compacted|error)$")]
    event: String,
    /// The newest revision the event reports (`change`, `caught-up`): send
    /// it back as `Last-Event-ID` to resume after it.
    id: Option<String>,
    /// The event's JSON: a change, `{"revision": N}`, or a problem.
    data: String,
}

/// The JSON of a `change` event (`caught-up` is `{"revision": N}`).
#[derive(Serialize)]
struct ChangeData<'a> {
    revision: u64,
    time_ms: i64,
    author: &'a str,
    message: &'a str,
    items: &'a [ChangeItem],
    /// A context watch's resolved document at this revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    document: Option<&'a RawValue>,
}

/// An event's `data` line, made once per event for every stream of its
/// group ([`watch::Event::encoded`]).
struct SseJson;

impl Encoding for SseJson {
    fn encode(event: &WatchEvent) -> Bytes {
        let text = match event {
            WatchEvent::Change {
                info,
                items,
                resolved_json,
            } => serde_json::to_string(&ChangeData {
                revision: info.revision,
                time_ms: info.time.0,
                author: &info.author,
                message: &info.message,
                items,
                document: resolved_json
                    .as_deref()
                    .and_then(|j| serde_json::from_str::<&RawValue>(j).ok()),
            }),
            WatchEvent::CaughtUp { revision } => {
                serde_json::to_string(&serde_json::json!({ "revision": revision }))
            }
        };
        Bytes::from(text.unwrap_or_default())
    }
}

/// An event of the feed as SSE.
fn sse_event(event: &watch::Event) -> SseEvent {
    let data = event.encoded::<SseJson>();
    let text = std::str::from_utf8(&data).unwrap_or("{}");
    let (kind, id) = match event.get() {
        WatchEvent::Change { info, .. } => ("change", info.revision),
        WatchEvent::CaughtUp { revision } => ("caught-up", *revision),
    };
    SseEvent::default()
        .event(kind)
        .id(id.to_string())
        .data(text)
}

/// The last event of a stream that ends on an error: `compacted` for a
/// start the store no longer has, else `error`; a problem either way.
fn closing_event(e: &WatchError) -> SseEvent {
    let kind = if matches!(e.error, Error::Compacted { .. }) {
        "compacted"
    } else {
        "error"
    };
    let problem = Problem::from_core(&e.error, e.field);
    SseEvent::default()
        .event(kind)
        .data(serde_json::to_string(problem.body()).unwrap_or_default())
}

/// The first revision a request asks for: after `Last-Event-ID`, else
/// `start_revision`, else the next one (0).
fn start_of(headers: &HeaderMap, query: &[(String, String)]) -> Result<u64, Problem> {
    let bad = |field: &str, v: &str| {
        Problem::from_core(
            &Error::invalid(
                field,
                format!(
                    "{:?} is not a revision number",
                    confstrata_core::clip(v, 40)
                ),
            ),
            field,
        )
    };
    if let Some(v) = headers.get("last-event-id") {
        let text = v.to_str().unwrap_or("");
        let last = number(text.trim()).ok_or_else(|| bad("Last-Event-ID", text))?;
        return Ok(last.saturating_add(1));
    }
    match param(query, "start_revision") {
        None => Ok(0),
        Some(v) => number(v).ok_or_else(|| bad("start_revision", v)),
    }
}

/// `GET /v1/namespaces/{namespace}/watch[?VAR=VALUE…][&resolve=true][&start_revision=N]`:
/// Server-Sent Events for every revision that changes the namespace
/// (see the module's documentation).
#[utoipa::path(
    get, path = "/v1/namespaces/{namespace}/watch", tag = "configuration",
    params(
        ("namespace" = String, Path, min_length = 1, description = "The namespace (`/` as `%2F`)"),
        ("context" = Option<BTreeMap<String, String>>, Query, style = Form, explode, description = "A context watch: one parameter per variable; each `change` event carries the context's resolved document"),
        ("resolve" = Option<bool>, Query, description = "A context watch of the empty context"),
        ("start_revision" = Option<u64>, Query, description = "The first revision to report (default: the next one)"),
        ("Last-Event-ID" = Option<String>, Header, pattern = "^[0-9]+$", description = "Resume after this event's revision (wins over `start_revision`)"),
    ),
    responses(
        (status = 200, description = "The events: `change` (`id` and `revision`, `time_ms`, `author`, `message`, `items`, `document`), `caught-up` once the backlog is sent, and at most one last `compacted` or `error` (a problem)", content_type = "text/event-stream", body = EventDoc),
        Refusals,
    ),
)]
pub(crate) async fn watch(
    State(runner): State<Runner>,
    axum::Extension(Feeds(host)): axum::Extension<Feeds>,
    NsRequest { a, ns, query }: NsRequest,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let start_revision = start_of(&headers, &query)?;
    let resolve = flag(&query, "resolve")?;
    let ctx = context_of(&query, &["resolve", "start_revision"])?;
    let spec = WatchSpec {
        namespace: ns,
        context: (resolve || !ctx.is_empty()).then_some(ctx),
        start_revision,
    };
    let caller = match runner.fast(&a, |_, c| Some(c.clone())) {
        Some(caller) => caller,
        None => crate::v1::read(&runner, a, "", |_, c| Ok(c.clone())).await?,
    };
    let mut feed = Box::pin(watch::stream(
        host.engine().clone(),
        host.watches(),
        caller,
        spec,
    ));
    // The first item says whether the watch could start at all: if not
    // (no such namespace, no right, a future start), the answer is a
    // problem with its status, not a stream.
    let first = match feed.next().await {
        Some(Err(e)) if !matches!(e.error, Error::Compacted { .. }) => {
            return Err(Problem::from_core(&e.error, e.field));
        }
        first => first,
    };
    let events = futures_util::stream::iter(first)
        .chain(feed)
        .scan(false, |ended, item| {
            if *ended {
                return std::future::ready(None);
            }
            let event = match item {
                Ok(event) => sse_event(&event),
                Err(e) => {
                    *ended = true;
                    closing_event(&e)
                }
            };
            std::future::ready(Some(Ok::<_, std::convert::Infallible>(event)))
        });
    Ok(sse(events))
}

fn sse(
    events: impl Stream<Item = Result<SseEvent, std::convert::Infallible>> + Send + 'static,
) -> Response {
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    // Proxies must pass events on as they come (nginx buffers otherwise).
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-cache"),
    );
    response.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    response
}
