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
    /// How a client certificate names its principal (needs
    /// `client_ca_pem`); `None`: certificates gate connections only and
    /// tokens say who the caller is.
    pub client_identity: Option<crate::ClientIdentity>,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("TlsOptions")
            .field("mutual", &self.client_ca_pem.is_some())
            .field("client_identity", &self.client_identity)
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
    by_type: Vec<Door>,
    default: Router,
}

#[derive(Clone, Debug)]
struct Door {
    prefix: &'static str,
    router: Router,
    http2_only: bool,
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
    /// `text/event-stream`) to `router`.
    #[must_use]
    pub fn with(mut self, prefix: &'static str, router: Router) -> Doors {
        self.by_type.push(Door {
            prefix,
            router,
            http2_only: false,
        });
        self
    }

    /// As [`Doors::with`], for a protocol that needs HTTP/2 (gRPC): such a
    /// request over HTTP/1.x is answered `505 HTTP Version Not Supported`
    /// with a message saying so, and never reaches `router`.
    #[must_use]
    pub fn with_http2(mut self, prefix: &'static str, router: Router) -> Doors {
        self.by_type.push(Door {
            prefix,
            router,
            http2_only: true,
        });
        self
    }

    /// The router for `req`; `None` when its door needs HTTP/2 and it came
    /// over HTTP/1.x.
    fn door(&self, req: &http::Request<Incoming>) -> Option<Router> {
        match self
            .by_type
            .iter()
            .find(|d| content_type(req).starts_with(d.prefix))
        {
            None => Some(self.default.clone()),
            Some(d) if d.http2_only && req.version() < http::Version::HTTP_2 => None,
            Some(d) => Some(d.router.clone()),
        }
    }
}

fn content_type<B>(req: &http::Request<B>) -> &str {
    req.headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The answer to a request whose door needs HTTP/2, over HTTP/1.x.
fn needs_http2(req: &http::Request<Incoming>) -> http::Response<axum::body::Body> {
    let mut response = http::Response::new(axum::body::Body::from(format!(
        "{} needs HTTP/2; this request came over {:?} (gRPC-Web is not served)\n",
        content_type(req),
        req.version()
    )));
    *response.status_mut() = http::StatusCode::HTTP_VERSION_NOT_SUPPORTED;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The client's certificate chain (leaf first) on a mutual-TLS connection:
/// an extension of every request on it, for the front doors to map to a
/// principal.
#[derive(Clone, Debug)]
pub struct PeerCertificates(pub Arc<[CertificateDer<'static>]>);

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
    if tls.client_identity.is_some() && tls.client_ca_pem.is_none() {
        return Err(ServeError::Tls(
            "a client identity rule needs a client CA (mutual TLS): without one no client certificate is asked for"
                .to_owned(),
        ));
    }
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
    let identity = options.tls.as_ref().and_then(|t| t.client_identity.clone());
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
    // Every connection task, so that those still running after the grace
    // period are aborted (their connections closed) before returning.
    let mut tasks = tokio::task::JoinSet::new();
    // Turns true on shutdown: ends TLS handshakes in progress.
    let (stop, _) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) if is_connection_error(&e) => {
                    // That connection is gone; the next may be fine.
                    tracing::debug!(error = %e, "a connection failed before it was accepted");
                    continue;
                }
                Err(e) => {
                    // Out of file descriptors or memory: accepting again at
                    // once would spin. Wait for connections to close.
                    tracing::warn!(error = %e, "cannot accept a connection; pausing");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        // Small request/response pairs: do not wait to coalesce packets.
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        let identity = identity.clone();
        let doors = doors.clone();
        let mut stopped = stop.subscribe();
        tasks.spawn(async move {
            let service = |certs: Option<PeerCertificates>| {
                // What the identity rule reads from the client's leaf
                // certificate, once per connection.
                let named = identity
                    .as_ref()
                    .zip(certs.as_ref().and_then(|c| c.0.first()))
                    .map(|(rule, leaf)| rule.read(leaf));
                hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
                    req.extensions_mut().insert(Peer(peer));
                    if let Some(certs) = &certs {
                        req.extensions_mut().insert(certs.clone());
                    }
                    if let Some(named) = &named {
                        req.extensions_mut().insert(named.clone());
                    }
                    let door = doors.door(&req).ok_or_else(|| needs_http2(&req));
                    async move {
                        Ok::<_, Infallible>(match door {
                            Ok(door) => door.oneshot(req).await.unwrap_or_else(|e| match e {}),
                            Err(refusal) => refusal,
                        })
                    }
                })
            };
            let result = match acceptor {
                None => {
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service(None));
                    watcher.watch(conn.into_owned()).await
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    let tls = tokio::select! {
                        done = handshake => match done {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        },
                        _ = stopped.wait_for(|s| *s) => {
                            tracing::debug!(%peer, "shutting down: TLS handshake abandoned");
                            return;
                        }
                    };
                    let certs = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .filter(|c| !c.is_empty())
                        .map(|c| {
                            PeerCertificates(c.iter().map(|c| c.clone().into_owned()).collect())
                        });
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(tls), service(certs));
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
    stop.send_replace(true);
    stopping();
    let grace = options.shutdown_grace;
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => tracing::warn!(
            ?grace,
            remaining = tasks.len(),
            "closing connections with requests still in flight after the shutdown grace period"
        ),
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    tracing::info!("server stopped");
    Ok(())
}

/// How long the listener pauses after an accept error that is not about
/// one connection (out of file descriptors or memory).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Whether an accept error concerns only the connection being accepted
/// (the peer gave up or reset it), so the next accept may go on at once;
/// hyper 0.14's listener drew the same line.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::Interrupted
            | std::io::ErrorKind::WouldBlock
    )
}

/// The peer address of a request served by the host.
pub fn peer<B>(req: &http::Request<B>) -> Option<SocketAddr> {
    req.extensions().get::<Peer>().map(|p| p.0)
}

#[cfg(test)]
mod tests {
    use super::{ServeError, TlsOptions, tls_acceptor};

    fn self_signed() -> (Vec<u8>, Vec<u8>) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        (
            c.cert.pem().into_bytes(),
            c.signing_key.serialize_pem().into_bytes(),
        )
    }

    fn refusal(tls: &TlsOptions) -> String {
        match tls_acceptor(tls) {
            Err(ServeError::Tls(m)) => m,
            Err(e) => panic!("not a TLS refusal: {e}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn unusable_tls_files_are_refused_naming_the_part() {
        let (cert, key) = self_signed();
        let (other_cert, other_key) = self_signed();
        let good = TlsOptions {
            cert_pem: cert.clone(),
            key_pem: key.clone(),
            client_ca_pem: Some(other_cert.clone()),
            client_identity: None,
        };
        assert!(tls_acceptor(&good).is_ok());

        let m = refusal(&TlsOptions {
            cert_pem: b"not pem at all".to_vec(),
            ..good.clone()
        });
        assert!(m.contains("holds no PEM certificate"), "{m}");
        let m = refusal(&TlsOptions {
            key_pem: b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_vec(),
            ..good.clone()
        });
        assert!(
            m.starts_with("the certificate and key") || m.starts_with("the private key"),
            "{m}"
        );
        let m = refusal(&TlsOptions {
            key_pem: other_key,
            ..good.clone()
        });
        assert!(m.starts_with("the certificate and key"), "{m}");
        // A bundle with one good CA and one entry that is not a certificate.
        let mut bundle = other_cert.clone();
        bundle.extend_from_slice(
            b"-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAKHBfpegPjMCMA0GCSqGSIb3DQEBCwUAMBEx\n-----END CERTIFICATE-----\n",
        );
        let m = refusal(&TlsOptions {
            client_ca_pem: Some(bundle),
            ..good.clone()
        });
        assert!(m.starts_with("the client CA"), "{m}");
        let m = refusal(&TlsOptions {
            client_ca_pem: Some(Vec::new()),
            ..good.clone()
        });
        assert!(m.starts_with("the client CA"), "{m}");
        let m = refusal(&TlsOptions {
            client_ca_pem: None,
            client_identity: Some(crate::ClientIdentity::CommonName),
            ..good
        });
        assert!(
            m.starts_with("a client identity rule needs a client CA"),
            "{m}"
        );
    }
}
