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
            client_identity: None,
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
            client_identity: None,
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

/// A client certificate from `ca` with a common name and/or a URI SAN,
/// valid now or (`expired`) only in 2020.
fn named(
    ca: &CertifiedIssuer<'static, KeyPair>,
    cn: Option<&str>,
    uri: Option<&str>,
    expired: bool,
) -> (Vec<u8>, Vec<u8>) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    // No default common name: only the one asked for.
    p.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = cn {
        p.distinguished_name.push(DnType::CommonName, cn);
    }
    if let Some(uri) = uri {
        p.subject_alt_names
            .push(rcgen::SanType::URI(uri.try_into().unwrap()));
    }
    if expired {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2020, 12, 31);
    }
    let cert = p.signed_by(&key, ca).unwrap();
    (cert.pem().into_bytes(), key.serialize_pem().into_bytes())
}

#[tokio::test]
async fn client_certificates_name_their_principals() {
    let ours = ca("confstrata test CA");
    let theirs = ca("someone else's CA");
    let server = leaf(&ours, &["localhost", "127.0.0.1"]);
    let dir = tempfile::tempdir().unwrap();
    for rule in [
        confstrata_host::ClientIdentity::CommonName,
        "uri:spiffe://corp.example/svc/".parse().unwrap(),
    ] {
        let by_cn = rule == confstrata_host::ClientIdentity::CommonName;
        let cert = |who: &str, expired: bool, ca: &CertifiedIssuer<'static, KeyPair>| {
            let uri = format!("spiffe://corp.example/svc/{who}");
            if by_cn {
                named(ca, Some(who), None, expired)
            } else {
                named(ca, Some("ignored"), Some(&uri), expired)
            }
        };
        let (addr, admin_token) = start(
            &dir.path().join(rule.to_string().replace([':', '/'], "_")),
            TlsOptions {
                cert_pem: server.0.clone(),
                key_pem: server.1.clone(),
                client_ca_pem: Some(ours.pem().into_bytes()),
                client_identity: Some(rule.clone()),
            },
        )
        .await;
        let connect = |identity: (Vec<u8>, Vec<u8>), token: Option<&str>| {
            let mut options = ClientOptions::default()
                .tls(ClientTls::new(ours.pem().into_bytes()).identity(identity.0, identity.1));
            if let Some(t) = token {
                options = options.token(t.to_owned());
            }
            Client::connect_with(&addr, options)
        };
        // The admin, by token, over a certificate that names nobody.
        let nobody = named(&ours, None, None, false);
        let admin = connect(nobody.clone(), Some(&admin_token)).await.unwrap();
        admin
            .add_principal(
                "billing-svc",
                "billing",
                confstrata_client::PrincipalKind::Service,
                &["editor".to_owned()],
            )
            .await
            .unwrap();

        // A mapped certificate is that principal, with no token.
        let billing = connect(cert("billing-svc", false, &ours), None)
            .await
            .unwrap();
        let me = billing.principal("billing-svc").await.unwrap();
        assert_eq!(me.principal.id, "billing-svc", "{rule}");
        let namespace = confstrata_core::NamespaceName::parse("svc").unwrap();
        billing.rotate_key(&namespace).await.unwrap_err();
        let e = billing.principal("admin").await.unwrap_err();
        assert!(e.to_string().contains("billing-svc may not"), "{rule}: {e}");
        // ...and what it does (here: a refusal) is audited with the certificate.
        let records = admin.audit_records(0, 1000).await.unwrap();
        let via = if by_cn {
            "certificate CN=billing-svc".to_owned()
        } else {
            "certificate URI spiffe://corp.example/svc/billing-svc".to_owned()
        };
        assert!(
            records.iter().any(|r| r["principal"] == "billing-svc"
                && r["details"]["credential"]["text"] == via.as_str()),
            "{rule}: {records:#?}"
        );

        // The same certificate with its own principal's token: fine; with
        // another principal's token: refused.
        let tokened = admin.issue_token("billing-svc", "ci").await.unwrap();
        let both = connect(cert("billing-svc", false, &ours), Some(&tokened.token))
            .await
            .unwrap();
        both.principal("billing-svc").await.unwrap();
        let mixed = connect(cert("billing-svc", false, &ours), Some(&admin_token))
            .await
            .unwrap();
        let e = mixed.keys().await.unwrap_err();
        assert!(
            e.to_string().contains("must name the same principal"),
            "{rule}: {e}"
        );
        // A certificate naming no principal, one naming a principal that
        // does not exist, and (without a token) one the rule cannot read.
        for (identity, says) in [
            (cert("ghost", false, &ours), "which does not exist"),
            (nobody.clone(), "names no principal"),
        ] {
            let client = connect(identity, None).await.unwrap();
            let e = client.principal("billing-svc").await.unwrap_err();
            assert!(e.to_string().contains(says), "{rule}: {e}");
            assert_eq!(
                e.kind(),
                Some(confstrata_client::ErrorKind::Unauthenticated),
                "{rule}: {e}"
            );
        }
        // An expired certificate, and one from another CA: no connection.
        for identity in [
            cert("billing-svc", true, &ours),
            cert("billing-svc", false, &theirs),
        ] {
            let refused = match connect(identity, None).await {
                Err(_) => true,
                Ok(c) => c.principal("billing-svc").await.is_err(),
            };
            assert!(refused, "{rule}");
        }
        // Revoking the principal ends its certificate's access too.
        admin.revoke_principal("billing-svc").await.unwrap();
        let e = billing.principal("billing-svc").await.unwrap_err();
        assert!(e.to_string().contains("revoked"), "{rule}: {e}");
    }
}
