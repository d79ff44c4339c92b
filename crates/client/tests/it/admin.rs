//! The `AdminService` calls of `Client`: principals and tokens, data keys
//! and the audit log, as an administrator and as a mere viewer.

use confstrata_client::model::{At, Context};
use confstrata_client::{Client, KeyInfo, PrincipalKind, WriteOptions};

use crate::{Server, seed};

#[tokio::test]
async fn admin_calls_principals_keys_and_audit() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = server.client().await;
    admin.commit(&seed()).await.unwrap();
    let web = "web".parse().unwrap();

    // A viewer with a token.
    admin
        .add_principal("bob", "Bob", PrincipalKind::User, &["viewer".to_owned()])
        .await
        .unwrap();
    let issued = admin.issue_token("bob", "laptop").await.unwrap();
    assert!(!format!("{issued:?}").contains(&issued.token));
    let bob_info = admin
        .principals()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.id == "bob")
        .unwrap();
    assert_eq!(
        (bob_info.kind, bob_info.roles.as_slice()),
        (
            PrincipalKind::User,
            [confstrata_client::BindingInfo {
                role: "viewer".to_owned(),
                on: None
            }]
            .as_slice()
        )
    );
    assert_eq!(bob_info.tokens[0].hash, issued.hash);

    let bob = Client::connect_with(
        &server.addr(),
        confstrata_client::ClientOptions::default().token(issued.token.clone()),
    )
    .await
    .unwrap();
    bob.resolve(&web, &Context::default(), At::Latest, false)
        .await
        .unwrap();
    let e = bob
        .set_keys(
            &web,
            &"defaults".parse().unwrap(),
            &[("debug".parse().unwrap(), false.into())],
            &WriteOptions::message("no"),
        )
        .await
        .unwrap_err();
    assert!(e.is_permission_denied(), "{e}");
    assert!(e.to_string().contains("bob may not write"), "{e}");
    let e = bob.keys().await.unwrap_err();
    assert!(e.is_permission_denied(), "{e}");

    // Keys: a sealed value, a rotation, a rewrap; the old key stays in use
    // by history, so retiring it is refused.
    admin
        .set_keys(
            &web,
            &"defaults".parse().unwrap(),
            &[("db.password".parse().unwrap(), "s3cret".into())],
            &WriteOptions {
                secret: true,
                ..WriteOptions::message("a secret")
            },
        )
        .await
        .unwrap();
    assert_eq!(admin.rotate_key(&web).await.unwrap(), "web#2");
    assert_eq!(
        admin.keys().await.unwrap(),
        [
            KeyInfo {
                id: "web#1".into(),
                current: false
            },
            KeyInfo {
                id: "web#2".into(),
                current: true
            }
        ]
    );
    assert!(admin.rewrap(&web).await.unwrap().is_some());
    assert_eq!(admin.rewrap(&web).await.unwrap(), None);
    let e = admin.retire_key("web#1").await.unwrap_err();
    assert!(
        e.is_invalid_argument() && e.to_string().contains("web#1"),
        "{e}"
    );

    // Roles.
    admin.grant_role("bob", "auditor").await.unwrap();
    admin.revoke_role("bob", "auditor").await.unwrap();

    // The audit log.
    let records = admin.audit_records(0, 0).await.unwrap();
    assert!(
        records
            .iter()
            .any(|r| r["principal"] == "bob" && r["action"] == "write"),
        "bob's refusal is audited"
    );
    let page = admin.audit_records(1, 2).await.unwrap();
    assert_eq!(page, records[1..3]);
    let v = admin.audit_verify().await.unwrap();
    assert!(v.records >= records.len() as u64);
    assert_eq!(v.last_seq, v.records);

    // Revocation.
    admin.revoke_token(&issued.hash).await.unwrap();
    let e = bob
        .resolve(&web, &Context::default(), At::Latest, false)
        .await
        .unwrap_err();
    assert!(e.is_unauthenticated(), "{e}");
    admin.revoke_principal("bob").await.unwrap();
    assert!(
        admin
            .principals()
            .await
            .unwrap()
            .iter()
            .any(|p| p.id == "bob" && p.revoked)
    );

    server.stop().await;
}
