//! TLS and mutual TLS over the real server, with certificates made by
//! rcgen for the test: plaintext clients, clients that do not trust the CA,
//! and (with mTLS) clients without a certificate cannot talk to it at all;
//! the rest still need a token.

use confstrata_client::{Client, ClientOptions, ClientTls};
use confstrata_grpc_api::{ServeOptions, TlsOptions, serve};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

struct Pki {
    ca: Vec<u8>,
    server: (Vec<u8>, Vec<u8>),
    client: (Vec<u8>, Vec<u8>),
    /// A client certificate from another CA.
    stranger: (Vec<u8>, Vec<u8>),
    other_ca: Vec<u8>,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(ca: &CertifiedIssuer<'static, KeyPair>, names: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, ca)
        .unwrap();
    (cert.pem().into_bytes(), key.serialize_pem().into_bytes())
}

fn pki() -> Pki {
    let ours = ca("confstrata test CA");
    let theirs = ca("someone else's CA");
    Pki {
        ca: ours.pem().into_bytes(),
        server: leaf(&ours, &["localhost", "127.0.0.1"]),
        client: leaf(&ours, &["billing.client"]),
        stranger: leaf(&theirs, &["intruder.client"]),
        other_ca: theirs.pem().into_bytes(),
    }
}

/// Starts a TLS server; returns its address and the admin token.
async fn start(dir: &std::path::Path, tls: TlsOptions) -> (String, String) {
    let engine = confstrata_host::open(dir).unwrap();
    let token = engine.bootstrap_admin().unwrap().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = ServeOptions {
        tls: Some(tls),
        ..ServeOptions::default()
    };
    tokio::spawn(serve(engine, listener, options, std::future::pending()));
    (format!("https://{addr}"), token.expose_secret().to_owned())
}

async fn status(addr: &str, options: ClientOptions) -> Result<u64, String> {
    let client = Client::connect_with(addr, options)
        .await
        .map_err(|e| e.to_string())?;
    client
        .status()
        .await
        .map(|s| s.revision)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn tls_and_mutual_tls() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();

    // Server-side TLS only.
    let (addr, token) = start(
        &dir.path().join("tls"),
        TlsOptions {
            cert_pem: pki.server.0.clone(),
            key_pem: pki.server.1.clone(),
            client_ca_pem: None,
        },
    )
    .await;
    let trusted = ClientOptions::default()
        .token(token.clone())
        .tls(ClientTls::new(pki.ca.clone()));
    assert_eq!(status(&addr, trusted.clone()).await, Ok(0));
    // Trusting the CA is not enough: the token is still required.
    let e = status(
        &addr,
        ClientOptions::default().tls(ClientTls::new(pki.ca.clone())),
    )
    .await
    .unwrap_err();
    assert!(e.contains("unauthenticated") || e.contains("token"), "{e}");
    // A client that does not trust the server's CA cannot connect.
    let e = status(
        &addr,
        ClientOptions::default()
            .token(token.clone())
            .tls(ClientTls::new(pki.other_ca.clone())),
    )
    .await
    .unwrap_err();
    assert!(!e.is_empty());
    // Plaintext to a TLS port fails.
    let plain = addr.replace("https://", "http://");
    assert!(
        status(&plain, ClientOptions::default().token(token.clone()))
            .await
            .is_err()
    );
    // An https:// address without a CA is refused up front.
    let e = status(&addr, ClientOptions::default().token(token.clone()))
        .await
        .unwrap_err();
    assert!(e.contains("--tls-ca"), "{e}");

    // Mutual TLS: the client certificate must chain to the configured CA.
    let (addr, token) = start(
        &dir.path().join("mtls"),
        TlsOptions {
            cert_pem: pki.server.0.clone(),
            key_pem: pki.server.1.clone(),
            client_ca_pem: Some(pki.ca.clone()),
        },
    )
    .await;
    let with = |identity: Option<(Vec<u8>, Vec<u8>)>| {
        let mut tls = ClientTls::new(pki.ca.clone());
        if let Some((c, k)) = identity {
            tls = tls.identity(c, k);
        }
        ClientOptions::default().token(token.clone()).tls(tls)
    };
    assert_eq!(status(&addr, with(Some(pki.client.clone()))).await, Ok(0));
    assert!(
        status(&addr, with(None)).await.is_err(),
        "no client certificate"
    );
    assert!(
        status(&addr, with(Some(pki.stranger.clone())))
            .await
            .is_err(),
        "a certificate from another CA"
    );
}
