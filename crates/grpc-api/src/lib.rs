//! Confstrata's gRPC front door: `ConfigService`, `AdminService` (data
//! keys, principals and tokens, the audit log) and `BackupService` over the host's runner, with
//! watch, gRPC health and reflection (v1 and v1alpha), so grpcurl, grpcui
//! and Postman work with no proto files.
//!
//! [`router`] builds the services as an axum `Router` for the host's
//! listener ([`confstrata_host::Host::serve`], beside other front doors);
//! [`serve`] runs them alone on a listener until its shutdown future
//! completes, then shuts down gracefully: health turns NOT_SERVING,
//! watches end cleanly, in-flight requests finish, and it returns.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use confstrata_grpc_api::{ServeOptions, serve};
//!
//! let engine = confstrata_host::open(std::path::Path::new("./confstrata-data"))?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7400").await?;
//! serve(engine, listener, ServeOptions::default(), async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! # Ok(())
//! # }
//! ```
//!
//! Requests become model values through `confstrata_proto::convert`, model
//! errors become statuses by one table (`status.rs`); authorization,
//! validation and every use case are the engine's.

mod admin;
mod backup;
mod call;
mod deadline;
mod gate;
mod health;
mod service;
mod status;
mod template;
mod watch;

use std::future::Future;

use confstrata_core::Limits;
use confstrata_engine::Engine;
use confstrata_host::{Doors, Host};
use confstrata_proto::v1::admin_service_server::{
    AdminServiceServer, SERVICE_NAME as ADMIN_SERVICE_NAME,
};
use confstrata_proto::v1::backup_service_server::{
    BackupServiceServer, SERVICE_NAME as BACKUP_SERVICE_NAME,
};
use confstrata_proto::v1::config_service_server::{ConfigServiceServer, SERVICE_NAME};
use confstrata_proto::v1::template_service_server::{
    SERVICE_NAME as TEMPLATE_SERVICE_NAME, TemplateServiceServer,
};
use tokio::net::TcpListener;

pub use crate::status::ERROR_DOMAIN;

/// The gRPC code the server answers an error of `kind` with (the one
/// table, `status::CODES`; the HTTP door's is held to it by a test).
pub fn code_of(kind: confstrata_core::ErrorKind) -> tonic::Code {
    status::code(kind)
}
pub use confstrata_host::TlsOptions;

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
    /// The listener failed (TLS settings, ...).
    #[error(transparent)]
    Serve(#[from] confstrata_host::ServeError),
}

/// The content type of every gRPC request: the host sends requests with it
/// to this router.
pub const CONTENT_TYPE: &str = "application/grpc";

/// The gRPC services of a server as one axum router: health, reflection,
/// `ConfigService` and `AdminService`. Health answers NOT_SERVING once the
/// host is stopping, and its watch streams end then.
pub async fn router(host: &Host, options: &ServeOptions) -> Result<axum::Router, Error> {
    let calls = call::Calls {
        runner: host.runner().clone(),
    };
    let service = service::Service {
        calls: calls.clone(),
        host: host.clone(),
        limits: options.limits,
    };
    let watch_route = watch::Route {
        watches: watch::Watches {
            calls: calls.clone(),
            host: host.clone(),
        },
        max_message_bytes: options.max_message_bytes,
    };
    let config = ConfigServiceServer::new(service)
        .max_decoding_message_size(options.max_message_bytes)
        .max_encoding_message_size(options.max_message_bytes);
    let backups = BackupServiceServer::new(backup::Service {
        calls: calls.clone(),
    })
    .max_decoding_message_size(options.max_message_bytes)
    .max_encoding_message_size(options.max_message_bytes);
    let templates = TemplateServiceServer::new(template::Service {
        calls: calls.clone(),
        limits: options.limits,
    })
    .max_decoding_message_size(options.max_message_bytes)
    .max_encoding_message_size(options.max_message_bytes);
    let admin = AdminServiceServer::new(admin::Service { calls })
        .max_decoding_message_size(options.max_message_bytes)
        .max_encoding_message_size(options.max_message_bytes);

    let (health, _) = tonic_health::server::health_reporter();
    let health_service =
        tonic_health::pb::health_server::HealthServer::new(health::ShutdownAwareHealth {
            reporter: health.clone(),
            stop: host.stopping(),
        });
    health
        .set_serving::<ConfigServiceServer<service::Service>>()
        .await;
    health
        .set_serving::<AdminServiceServer<admin::Service>>()
        .await;
    health
        .set_serving::<BackupServiceServer<backup::Service>>()
        .await;
    health
        .set_serving::<TemplateServiceServer<template::Service>>()
        .await;
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let mut stopping = host.stopping();
    tokio::spawn(async move {
        while !*stopping.borrow_and_update() {
            if stopping.changed().await.is_err() {
                return;
            }
        }
        for name in [
            "",
            SERVICE_NAME,
            ADMIN_SERVICE_NAME,
            BACKUP_SERVICE_NAME,
            TEMPLATE_SERVICE_NAME,
        ] {
            health
                .set_service_status(name, tonic_health::ServingStatus::NotServing)
                .await;
        }
    });

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(confstrata_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(confstrata_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let routes = tonic::service::Routes::new(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(config)
        .add_service(admin)
        .add_service(backups)
        .add_service(templates);
    Ok(routes
        .into_axum_router()
        // Watch events are encoded once per group: the method's own route.
        .route_service(watch::PATH, watch_route)
        .layer(tower::util::MapResponseLayer::new(
            status::oversize_is_resource_exhausted,
        ))
        .layer(axum::middleware::from_fn(deadline::enforce))
        // Outermost: nothing of a request is read before its caller is known.
        .layer(axum::middleware::from_fn_with_state(
            host.runner().clone(),
            gate::require,
        )))
}

/// Serves the gRPC API alone on `listener` until `shutdown` completes.
pub async fn serve(
    engine: Engine,
    listener: TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let host = Host::new(engine)?;
    let grpc = router(&host, &options).await?;
    let serve = confstrata_host::ServeOptions {
        shutdown_grace: options.shutdown_grace,
        tls: options.tls,
    };
    // Alone on its listener: anything but gRPC is told so.
    let other = axum::Router::new().fallback(|| async {
        (
            http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "this listener serves gRPC only (content-type application/grpc over HTTP/2)\n",
        )
    });
    let doors = Doors::new(other).with_http2(CONTENT_TYPE, grpc);
    host.serve(listener, doors, &serve, shutdown).await?;
    Ok(())
}
