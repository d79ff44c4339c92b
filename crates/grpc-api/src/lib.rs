//! Confstrata's gRPC server: `ConfigService` and `AdminService` (data keys,
//! principals and tokens, the audit log) over the [`Engine`], with watch
//! fan-out, gRPC health and reflection (v1 and v1alpha), so grpcurl, grpcui
//! and Postman work with no proto files.
//!
//! [`serve`] runs until its shutdown future completes, then shuts down
//! gracefully: health turns NOT_SERVING, watches end cleanly, in-flight
//! requests finish, and it returns.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use confstrata_engine::Engine;
//! use confstrata_grpc_api::{ServeOptions, serve};
//!
//! let engine = Engine::open(std::path::Path::new("./confstrata-data"))?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7400").await?;
//! serve(engine, listener, ServeOptions::default(), async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! # Ok(())
//! # }
//! ```
//!
//! This crate holds no model logic: requests become model values through
//! `confstrata_proto::convert`, errors become statuses in one place
//! (`status.rs`), and everything else is the engine's.

mod admin;
mod call;
mod health;
mod service;
mod status;
mod watch;

use std::future::Future;

use confstrata_core::Limits;
use confstrata_engine::Engine;
use confstrata_proto::v1::admin_service_server::{
    AdminServiceServer, SERVICE_NAME as ADMIN_SERVICE_NAME,
};
use confstrata_proto::v1::config_service_server::{ConfigServiceServer, SERVICE_NAME};
use tokio::net::TcpListener;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;

pub use crate::status::ERROR_DOMAIN;

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The largest gRPC message accepted or sent, in bytes. Keep it above
    /// `limits.max_change_set_bytes` so that an oversized change set gets the
    /// precise RESOURCE_EXHAUSTED of the size limit rather than a transport error.
    pub max_message_bytes: usize,
    /// Size and depth limits for documents and change sets.
    pub limits: Limits,
    /// How long a graceful shutdown waits for in-flight requests (after
    /// watches and health watches have been ended) before closing the
    /// remaining connections anyway.
    pub shutdown_grace: std::time::Duration,
    /// Serve over TLS (rustls) instead of plaintext HTTP/2.
    pub tls: Option<TlsOptions>,
}

/// TLS for the server: its certificate chain and key, and optionally the CA
/// that client certificates must chain to (mutual TLS: a client without
/// such a certificate cannot even connect; tokens still say who it is).
#[derive(Clone)]
pub struct TlsOptions {
    /// The server's certificate chain, PEM.
    pub cert_pem: Vec<u8>,
    /// The server's private key, PEM.
    pub key_pem: Vec<u8>,
    /// The CA that client certificates must chain to, PEM; `None`: no
    /// client certificates asked for.
    pub client_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("TlsOptions")
            .field("mutual", &self.client_ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        let limits = Limits::default();
        ServeOptions {
            max_message_bytes: limits.max_change_set_bytes * 2,
            limits,
            shutdown_grace: std::time::Duration::from_secs(30),
            tls: None,
        }
    }
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store could not be read at start-up.
    #[error("cannot start: {0}")]
    Store(#[from] confstrata_core::Error),
    /// The reflection service could not load the descriptors.
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed.
    #[error("gRPC transport error: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The HTTP/2 connection window the server advertises (see `serve`).
const CONNECTION_WINDOW_BYTES: u32 = 16 << 20;

/// Serves the Confstrata API on `listener` until `shutdown` completes.
pub async fn serve(
    engine: Engine,
    listener: TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let hub = watch::Hub::start(&engine, stop_rx.clone())?;
    // One set of concurrency bounds for both services: they share the engine.
    let calls = call::Calls::new(engine);
    let service = service::Service {
        calls: calls.clone(),
        hub,
        limits: options.limits,
    };
    let config = ConfigServiceServer::new(service)
        .max_decoding_message_size(options.max_message_bytes)
        .max_encoding_message_size(options.max_message_bytes);
    let admin = AdminServiceServer::new(admin::Service { calls })
        .max_decoding_message_size(options.max_message_bytes)
        .max_encoding_message_size(options.max_message_bytes);

    let (health, _) = tonic_health::server::health_reporter();
    let health_service =
        tonic_health::pb::health_server::HealthServer::new(health::ShutdownAwareHealth {
            reporter: health.clone(),
            stop: stop_rx.clone(),
        });
    health
        .set_serving::<ConfigServiceServer<service::Service>>()
        .await;
    health
        .set_serving::<AdminServiceServer<admin::Service>>()
        .await;
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(confstrata_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(confstrata_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let incoming = TcpListenerStream::new(listener).map(|conn| {
        if let Ok(stream) = &conn {
            // Small request/response pairs: do not wait to coalesce packets.
            let _ = stream.set_nodelay(true);
        }
        conn
    });
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: health NOT_SERVING, closing watches, finishing requests");
        health
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        health
            .set_service_status(SERVICE_NAME, tonic_health::ServingStatus::NotServing)
            .await;
        health
            .set_service_status(ADMIN_SERVICE_NAME, tonic_health::ServingStatus::NotServing)
            .await;
        // Watch streams end; tonic then waits for in-flight requests.
        let _ = stop_tx.send(true);
    };
    // A 16 MiB connection window. h2 closes a connection whose peer has more
    // small DATA frames buffered than half the connection window can pay
    // for (GOAWAY "too_many_data_frames", a flood protection); with the
    // default 64 KiB window, a client opening ~150 watches at once on one
    // connection tripped it and lost every stream on it. Half of 16 MiB
    // covers ~37,000 watch requests in flight per connection.
    let mut builder =
        tonic::transport::Server::builder().initial_connection_window_size(CONNECTION_WINDOW_BYTES);
    if let Some(tls) = &options.tls {
        let mut config = tonic::transport::ServerTlsConfig::new().identity(
            tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem),
        );
        if let Some(ca) = &tls.client_ca_pem {
            config = config.client_ca_root(tonic::transport::Certificate::from_pem(ca));
        }
        builder = builder.tls_config(config)?;
    }
    let server = builder
        .layer(tower::util::MapResponseLayer::new(
            status::oversize_is_resource_exhausted,
        ))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(config)
        .add_service(admin)
        .serve_with_incoming_shutdown(incoming, signal);
    // A backstop: a client-held stream (reflection, say) must not keep a
    // stopping server alive forever.
    let mut stopping = stop_rx;
    let grace = options.shutdown_grace;
    let backstop = async move {
        while !*stopping.borrow_and_update() {
            if stopping.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result?,
        () = backstop => tracing::warn!(?grace, "closing connections with requests still in flight after the shutdown grace period"),
    }
    tracing::info!("server stopped");
    Ok(())
}
