//! Watch over gRPC: the host's watch feed ([`confstrata_host::watch`]),
//! each event encoded once as a `WatchResponse` and its bytes shared by
//! every stream of the group.
//!
//! The watch method has a route of its own ([`Route`], beside the
//! generated `ConfigService` server): the generated server's codec takes
//! `WatchResponse` values and encodes them per stream, where this route's
//! codec ([`PreEncoded`]) takes the shared bytes. The `ConfigService`
//! trait's `watch` ([`stream`]) serves the same feed as values, for callers
//! of the trait itself.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use confstrata_core::view::WatchEvent;
use confstrata_engine::Caller;
use confstrata_host::Host;
use confstrata_host::watch::{self, Encoding, WatchError, WatchSpec};
use confstrata_proto::codec::PreEncoded;
use confstrata_proto::convert;
use confstrata_proto::v1;
use futures_util::{Stream, StreamExt as _};
use prost::Message as _;
use tonic::{Request, Response, Status};

use crate::call::{Calls, auth};
use crate::status;

/// The method's path: requests to it come to [`Route`].
pub(crate) const PATH: &str = "/confstrata.v1.ConfigService/Watch";

/// Protobuf, as a `WatchResponse`.
struct Protobuf;

impl Encoding for Protobuf {
    fn encode(event: &WatchEvent) -> Bytes {
        v1::WatchResponse::from(event).encode_to_vec().into()
    }
}

/// What a watch needs: the runner (to authenticate) and the host's feed.
#[derive(Clone)]
pub(crate) struct Watches {
    pub(crate) calls: Calls,
    pub(crate) host: Host,
}

type Items<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

impl Watches {
    /// Checks the request and authenticates its caller.
    async fn open(&self, req: Request<v1::WatchRequest>) -> Result<(Caller, WatchSpec), Status> {
        let a = auth(&req);
        let r = req.into_inner();
        let spec = WatchSpec {
            namespace: convert::namespace_name("namespace", &r.namespace).map_err(status::field)?,
            context: if !r.resolve && r.context.is_empty() {
                None
            } else {
                Some(convert::context(&r.context))
            },
            start_revision: r.start_revision,
        };
        // From memory on this thread when the credentials check out
        // quietly; else on the blocking pool, which audits a failure.
        let caller = match self.calls.fast(&a, |_, c| Some(c.clone())) {
            Some(caller) => caller,
            None => self.calls.run(a, "", |_, c| Ok(c.clone())).await?,
        };
        Ok((caller, spec))
    }

    fn feed(
        &self,
        caller: Caller,
        spec: WatchSpec,
    ) -> impl Stream<Item = Result<std::sync::Arc<watch::Event>, Status>> + Send + 'static {
        watch::stream(
            self.host.engine().clone(),
            self.host.watches(),
            caller,
            spec,
        )
        .map(|item| item.map_err(|WatchError { error, field }| status::from_core(&error, field)))
    }

    /// The watch as `WatchResponse` values (the trait's method).
    pub(crate) async fn stream(
        &self,
        req: Request<v1::WatchRequest>,
    ) -> Result<Response<Items<v1::WatchResponse>>, Status> {
        let (caller, spec) = self.open(req).await?;
        let items = self
            .feed(caller, spec)
            .map(|item| item.map(|event| v1::WatchResponse::from(event.get())));
        Ok(Response::new(Box::pin(items)))
    }

    /// The watch as encoded `WatchResponse`s, shared across the group.
    async fn encoded(
        &self,
        req: Request<v1::WatchRequest>,
    ) -> Result<Response<Items<Bytes>>, Status> {
        let (caller, spec) = self.open(req).await?;
        let items = self
            .feed(caller, spec)
            .map(|item| item.map(|event| event.encoded::<Protobuf>()));
        Ok(Response::new(Box::pin(items)))
    }
}

impl tonic::server::ServerStreamingService<v1::WatchRequest> for Watches {
    type Response = Bytes;
    type ResponseStream = Items<Bytes>;
    type Future =
        Pin<Box<dyn Future<Output = Result<Response<Items<Bytes>>, Status>> + Send + 'static>>;

    fn call(&mut self, req: Request<v1::WatchRequest>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.encoded(req).await })
    }
}

/// The route of [`PATH`]: the generated server's handling of the method
/// (message size limits, request decoding, status trailers), with the
/// pre-encoded codec.
#[derive(Clone)]
pub(crate) struct Route {
    pub(crate) watches: Watches,
    pub(crate) max_message_bytes: usize,
}

impl tower::Service<http::Request<axum::body::Body>> for Route {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<axum::body::Body>) -> Self::Future {
        let method = self.watches.clone();
        let max = self.max_message_bytes;
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(PreEncoded::<v1::WatchRequest>::default())
                .apply_max_message_size_config(Some(max), Some(max));
            Ok(grpc.server_streaming(method, req).await)
        })
    }
}
