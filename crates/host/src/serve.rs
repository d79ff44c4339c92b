//! The listener: HTTP/1.1 and HTTP/2 (cleartext or TLS) on one port, each
//! request handed to the front door its content type names, and a graceful
//! shutdown.
//!
//! The host has its own TLS acceptor (rustls), offering `h2` and
//! `http/1.1` in ALPN so that HTTP/1.1 clients work over TLS too (tonic's
//! own acceptor offers only `h2`).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tower::ServiceExt as _;

use crate::runner::Peer;

/// Listener settings.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// How long a graceful shutdown waits for in-flight requests (after
    /// watches and health watches have been ended) before closing the
    /// remaining connections anyway.
    pub shutdown_grace: Duration,
    /// Serve over TLS (rustls) instead of cleartext.
    pub tls: Option<TlsOptions>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            shutdown_grace: Duration::from_secs(30),
            tls: None,
        }
    }
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

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The TLS settings are unusable (a certificate or key that does not
    /// parse, a key that does not match).
    #[error("cannot use the TLS settings: {0}")]
    Tls(String),
    /// The store could not be read at start-up, or a front door could not
    /// be built.
    #[error("cannot start: {0}")]
    Start(#[from] confstrata_core::Error),
}

/// The front doors of one listener: requests whose `content-type` starts
/// with a registered prefix go to that door's router; all others to the
/// default router. Routers are never merged, so each keeps its own
/// fallback.
#[derive(Clone, Debug)]
pub struct Doors {
    by_type: Vec<(&'static str, Router)>,
    default: Router,
}

impl Doors {
    /// Doors where every request goes to `default`.
    pub fn new(default: Router) -> Doors {
        Doors {
            by_type: Vec::new(),
            default,
        }
    }

    /// Sends requests whose `content-type` starts with `prefix` (e.g.
    /// `application/grpc`) to `router`.
    #[must_use]
    pub fn with(mut self, prefix: &'static str, router: Router) -> Doors {
        self.by_type.push((prefix, router));
        self
    }

    fn door(&self, headers: &http::HeaderMap) -> Router {
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        self.by_type
            .iter()
            .find(|(prefix, _)| content_type.starts_with(prefix))
            .map_or_else(|| self.default.clone(), |(_, r)| r.clone())
    }
}

/// The HTTP/2 connection window the server advertises. h2 closes a
/// connection whose peer has more small DATA frames buffered than half the
/// connection window can pay for (GOAWAY "too_many_data_frames", a flood
/// protection); with the default 64 KiB window, a client opening ~150
/// watches at once on one connection tripped it and lost every stream on
/// it. Half of 16 MiB covers ~37,000 watch requests in flight per
/// connection.
const CONNECTION_WINDOW_BYTES: u32 = 16 << 20;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn tls_acceptor(tls: &TlsOptions) -> Result<TlsAcceptor, ServeError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| ServeError::Tls(format!("{what}: {e}"));
    let certs = CertificateDer::pem_slice_iter(&tls.cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("the certificate chain", &e))?;
    if certs.is_empty() {
        return Err(ServeError::Tls(
            "the certificate file holds no PEM certificate".to_owned(),
        ));
    }
    let key =
        PrivateKeyDer::from_pem_slice(&tls.key_pem).map_err(|e| bad("the private key", &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("the protocol versions", &e))?;
    let builder = match &tls.client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca) {
                let cert = cert.map_err(|e| bad("the client CA", &e))?;
                roots.add(cert).map_err(|e| bad("the client CA", &e))?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .map_err(|e| bad("the client CA", &e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| bad("the certificate and key", &e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `doors` on `listener` until `shutdown` completes, then: calls
/// `stopping` (health turns NOT_SERVING, watches end), stops accepting,
/// lets in-flight requests finish for up to `options.shutdown_grace`, and
/// returns.
pub(crate) async fn serve(
    listener: TcpListener,
    doors: Doors,
    options: &ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
    stopping: impl FnOnce(),
) -> Result<(), ServeError> {
    let acceptor = options.tls.as_ref().map(tls_acceptor).transpose()?;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        // As tonic's server: no per-connection limit on concurrent streams
        // (hyper's default of 200 would cap watches per connection).
        .max_concurrent_streams(None);
    // hyper enforces its HTTP/1 header read timeout only with a timer.
    builder.http1().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, say: try again shortly.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Small request/response pairs: do not wait to coalesce packets.
        let _ = stream.set_nodelay(true);
        let doors = doors.clone();
        let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            req.extensions_mut().insert(Peer(peer));
            let door = doors.door(req.headers());
            async move { Ok::<_, Infallible>(door.oneshot(req).await.unwrap_or_else(|e| match e {})) }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let result = match acceptor {
                None => {
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(conn.into_owned()).await
                }
                Some(acceptor) => {
                    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
                    watcher.watch(conn.into_owned()).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: health NOT_SERVING, closing watches, finishing requests");
    stopping();
    let grace = options.shutdown_grace;
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => tracing::warn!(
            ?grace,
            "closing connections with requests still in flight after the shutdown grace period"
        ),
    }
    tracing::info!("server stopped");
    Ok(())
}

/// The peer address of a request served by the host.
pub fn peer<B>(req: &http::Request<B>) -> Option<SocketAddr> {
    req.extensions().get::<Peer>().map(|p| p.0)
}
