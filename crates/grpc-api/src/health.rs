//! gRPC health whose Watch streams end when the server shuts down.
//!
//! tonic-health's own Watch streams never end, and a graceful shutdown waits
//! for every in-flight stream: one health watcher (a load balancer, a
//! Kubernetes probe) would hold the server open forever. This wrapper sends
//! NOT_SERVING, then ends the stream. Once the host is stopping, Check and
//! the last Watch answer are NOT_SERVING whatever the reporter says yet.

use std::pin::Pin;

use futures_util::StreamExt as _;
use tokio::sync::watch;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_server::Health;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_health::server::{HealthReporter, HealthService};

pub(crate) struct ShutdownAwareHealth {
    pub(crate) reporter: HealthReporter,
    pub(crate) stop: watch::Receiver<bool>,
}

impl ShutdownAwareHealth {
    fn service(&self) -> HealthService {
        HealthService::from_health_reporter(self.reporter.clone())
    }
}

#[tonic::async_trait]
impl Health for ShutdownAwareHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let stopping = *self.stop.borrow();
        let answer = self.service().check(request).await?;
        Ok(if stopping {
            Response::new(not_serving())
        } else {
            answer
        })
    }

    type WatchStream =
        Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send + 'static>>;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let service = request.get_ref().service.clone();
        let inner = self.service().watch(request).await?.into_inner();
        let mut stop = self.stop.clone();
        // The last answer: NOT_SERVING for a known service (the stop signal
        // may win the race against the reporter's update), the reporter's
        // NOT_FOUND for an unknown one.
        let checker = self.service();
        let last = futures_util::stream::once(async move {
            checker
                .check(Request::new(HealthCheckRequest { service }))
                .await
                .map(|_| not_serving())
        });
        let stopped = async move {
            while !*stop.borrow_and_update() {
                if stop.changed().await.is_err() {
                    break;
                }
            }
        };
        Ok(Response::new(Box::pin(
            inner.take_until(stopped).chain(last),
        )))
    }
}

fn not_serving() -> HealthCheckResponse {
    HealthCheckResponse {
        status: tonic_health::pb::health_check_response::ServingStatus::NotServing as i32,
    }
}
