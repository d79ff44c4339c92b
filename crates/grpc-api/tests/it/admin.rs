//! AdminService end to end: principals and tokens (a viewer may read but
//! not write or administer; a revoked token ends its calls and its open
//! watches), data keys (rotate, rewrap, retire and its refusals), and the
//! audit log (list, verify, and tampering with the store file caught).

use std::time::Duration;

use confstrata_proto::v1;
use serde_json::Value;
use tokio_stream::StreamExt as _;
use tonic::Code;
use tonic_types::StatusExt;

use crate::{AdminClient, Server, admin_client_with, client_with, parse};

/// A hang guard only: tests never assert on time.
const GUARD: Duration = Duration::from_secs(60);

async fn admin_of(s: &Server) -> AdminClient {
    admin_client_with(s.addr, Some(&format!("Bearer {}", s.admin_token))).await
}

/// Adds `id` with `roles` and issues it a token: (token, hash prefix).
async fn principal_with_token(
    admin: &mut AdminClient,
    id: &str,
    roles: &[&str],
) -> (String, String) {
    admin
        .add_principal(v1::AddPrincipalRequest {
            id: id.into(),
            name: format!("{id} (test)"),
            kind: v1::PrincipalKind::Unspecified as i32,
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        })
        .await
        .unwrap();
    let t = admin
        .issue_token(v1::IssueTokenRequest {
            principal_id: id.into(),
            label: "laptop".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(t.token.starts_with("cst_"), "{}", t.token);
    (t.token, t.hash_prefix)
}

fn resolve_req() -> v1::ResolveRequest {
    v1::ResolveRequest {
        namespace: "web".into(),
        ..Default::default()
    }
}

fn set_req(key: &str, value_json: &str, secret: bool) -> v1::SetKeysRequest {
    v1::SetKeysRequest {
        namespace: "web".into(),
        layer: "defaults".into(),
        entries: vec![v1::KeyValue {
            key: key.into(),
            value_json: value_json.into(),
            secret,
        }],
        ..Default::default()
    }
}

/// Asserts a refusal: PERMISSION_DENIED whose message names the principal,
/// the action and the resource, with the same in its ErrorInfo.
fn assert_denied(s: &tonic::Status, action: &str, resource: &str) {
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    let m = s.message();
    assert!(
        m.contains("bob") && m.contains(action) && m.contains(resource),
        "{m}"
    );
    let info = s.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.metadata["action"], action);
    assert_eq!(info.metadata["resource"], resource);
}

#[tokio::test]
async fn a_viewer_reads_but_may_not_write_or_administer_and_revocation_ends_its_access() {
    let mut s = Server::start().await;
    s.seed().await;
    let mut admin = admin_of(&s).await;
    let (token, hash_prefix) = principal_with_token(&mut admin, "bob", &["viewer"]).await;

    let listed = admin
        .list_principals(v1::ListPrincipalsRequest {})
        .await
        .unwrap()
        .into_inner()
        .principals;
    let bob_listed = listed.iter().find(|p| p.id == "bob").expect("bob listed");
    assert_eq!(bob_listed.kind, v1::PrincipalKind::User as i32);
    assert_eq!(bob_listed.roles, ["viewer"]);
    assert_eq!(bob_listed.tokens.len(), 1);
    assert_eq!(bob_listed.tokens[0].hash_prefix, hash_prefix);
    assert_eq!(bob_listed.tokens[0].label, "laptop");
    assert!(!bob_listed.tokens[0].revoked && !bob_listed.revoked);
    assert!(listed.iter().any(|p| p.id == "admin"));
    // The listing never carries a token.
    assert!(!format!("{listed:?}").contains(&token));

    let bearer = format!("Bearer {token}");
    let mut bob = client_with(s.addr, Some(&bearer)).await;
    let mut bob_admin = admin_client_with(s.addr, Some(&bearer)).await;

    // Reads work.
    let view = bob.resolve(resolve_req()).await.unwrap().into_inner();
    assert_eq!(parse(&view.document_json)["db"]["host"], "localhost");

    // A write is refused, naming the action and the layer.
    let e = bob
        .set_keys(set_req("debug", "false", false))
        .await
        .unwrap_err();
    assert_denied(&e, "write", "web:defaults#debug");

    // So is every admin call, including giving itself a token or a role.
    let e = bob_admin
        .list_principals(v1::ListPrincipalsRequest {})
        .await
        .unwrap_err();
    assert_denied(&e, "admin", "**");
    let e = bob_admin
        .rotate_key(v1::RotateKeyRequest {
            namespace: "web".into(),
        })
        .await
        .unwrap_err();
    assert_denied(&e, "admin", "web");
    let e = bob_admin
        .grant_role(v1::GrantRoleRequest {
            principal_id: "bob".into(),
            role: "admin".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_denied(&e, "admin", "**");
    let e = bob_admin
        .issue_token(v1::IssueTokenRequest {
            principal_id: "bob".into(),
            label: "mine".into(),
        })
        .await
        .unwrap_err();
    assert_denied(&e, "admin", "**");
    let e = bob_admin
        .list_audit_records(v1::ListAuditRecordsRequest::default())
        .await
        .unwrap_err();
    assert_denied(&e, "audit", "**");

    // An open watch of bob's...
    let mut watch = bob
        .watch(v1::WatchRequest {
            namespace: "web".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let caught_up = tokio::time::timeout(GUARD, watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(caught_up.info.is_none());

    // ...ends with UNAUTHENTICATED as soon as the token is revoked.
    admin
        .revoke_token(v1::RevokeTokenRequest {
            hash_prefix: hash_prefix.clone(),
        })
        .await
        .unwrap();
    let end = tokio::time::timeout(GUARD, watch.next())
        .await
        .expect("the watch ends")
        .expect("with a status");
    let e = end.expect_err("an error, not an event");
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert!(e.message().contains("revoked"), "{}", e.message());

    // Every later call of bob's is refused the same way.
    let e = bob.resolve(resolve_req()).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    let e = bob_admin
        .list_keys(v1::ListKeysRequest {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");

    let listed = admin
        .list_principals(v1::ListPrincipalsRequest {})
        .await
        .unwrap()
        .into_inner()
        .principals;
    let bob_listed = listed.iter().find(|p| p.id == "bob").unwrap();
    assert!(bob_listed.tokens[0].revoked && !bob_listed.revoked);

    // A new token works again, until the principal itself is revoked.
    let t = admin
        .issue_token(v1::IssueTokenRequest {
            principal_id: "bob".into(),
            label: "second".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut bob = client_with(s.addr, Some(&format!("Bearer {}", t.token))).await;
    bob.resolve(resolve_req()).await.unwrap();
    admin
        .revoke_principal(v1::RevokePrincipalRequest {
            principal_id: "bob".into(),
        })
        .await
        .unwrap();
    let e = bob.resolve(resolve_req()).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
}

#[tokio::test]
async fn roles_can_be_granted_and_revoked() {
    let mut s = Server::start().await;
    s.seed().await;
    let mut admin = admin_of(&s).await;
    let (token, _) = principal_with_token(&mut admin, "bob", &["viewer"]).await;
    let mut bob = client_with(s.addr, Some(&format!("Bearer {token}"))).await;
    bob.set_keys(set_req("debug", "false", false))
        .await
        .unwrap_err();

    admin
        .grant_role(v1::GrantRoleRequest {
            principal_id: "bob".into(),
            role: "editor".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    bob.set_keys(set_req("debug", "false", false))
        .await
        .unwrap();

    admin
        .revoke_role(v1::RevokeRoleRequest {
            principal_id: "bob".into(),
            role: "editor".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let e = bob
        .set_keys(set_req("debug", "true", false))
        .await
        .unwrap_err();
    assert_denied(&e, "write", "web:defaults#debug");
}

#[tokio::test]
async fn bad_admin_requests_name_the_field() {
    let s = Server::start().await;
    let mut admin = admin_of(&s).await;
    let field = |e: &tonic::Status| {
        e.get_details_bad_request()
            .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
    };

    let e = admin
        .add_principal(v1::AddPrincipalRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), field(&e).as_deref()),
        (Code::InvalidArgument, Some("id"))
    );
    let e = admin
        .add_principal(v1::AddPrincipalRequest {
            id: "carol".into(),
            kind: 7,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), field(&e).as_deref()),
        (Code::InvalidArgument, Some("kind"))
    );
    let e = admin
        .rotate_key(v1::RotateKeyRequest {
            namespace: "Not A Name".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), field(&e).as_deref()),
        (Code::InvalidArgument, Some("namespace"))
    );
    let e = admin
        .grant_role(v1::GrantRoleRequest {
            principal_id: "nobody".into(),
            role: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), field(&e).as_deref()),
        (Code::InvalidArgument, Some("role"))
    );
    let e = admin
        .revoke_token(v1::RevokeTokenRequest {
            hash_prefix: "0000000000".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("0000000000"), "{}", e.message());

    // A service principal is listed as one.
    admin
        .add_principal(v1::AddPrincipalRequest {
            id: "ci-deploy".into(),
            name: "CI".into(),
            kind: v1::PrincipalKind::Service as i32,
            roles: vec!["editor".into()],
        })
        .await
        .unwrap();
    let listed = admin
        .list_principals(v1::ListPrincipalsRequest {})
        .await
        .unwrap()
        .into_inner()
        .principals;
    let ci = listed.iter().find(|p| p.id == "ci-deploy").unwrap();
    assert_eq!(ci.kind, v1::PrincipalKind::Service as i32);
    assert_eq!(ci.name, "CI");
}

async fn keys(admin: &mut AdminClient) -> Vec<(String, bool)> {
    admin
        .list_keys(v1::ListKeysRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys
        .into_iter()
        .map(|k| (k.id, k.current))
        .collect()
}

async fn retire(admin: &mut AdminClient, key_id: &str) -> Result<(), tonic::Status> {
    admin
        .retire_key(v1::RetireKeyRequest {
            key_id: key_id.into(),
        })
        .await
        .map(drop)
}

#[tokio::test]
async fn keys_rotate_rewrap_and_retire() {
    let mut s = Server::start().await;
    s.seed().await;
    let mut admin = admin_of(&s).await;

    // A sealed value creates the namespace's first key.
    s.client
        .set_keys(set_req("db.password", r#""s3cret""#, true))
        .await
        .unwrap();
    assert_eq!(keys(&mut admin).await, [("web#1".to_owned(), true)]);

    let rotated = admin
        .rotate_key(v1::RotateKeyRequest {
            namespace: "web".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rotated.key_id, "web#2");
    assert_eq!(
        keys(&mut admin).await,
        [("web#1".to_owned(), false), ("web#2".to_owned(), true)]
    );

    // The current key cannot be retired; nor can one a value is sealed with.
    let e = retire(&mut admin, "web#2").await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(
        e.message().contains("web#2") && e.message().contains("current"),
        "{}",
        e.message()
    );
    let e = retire(&mut admin, "web#1").await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("web#1"), "{}", e.message());

    // Rewrap re-seals the value under web#2, as one new revision; a second
    // rewrap has nothing to do.
    let before = s
        .client
        .get_status(v1::GetStatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .revision;
    let commit = admin
        .rewrap_keys(v1::RewrapKeysRequest {
            namespace: "web".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .commit
        .expect("a rewrap commit");
    assert_eq!(commit.revision, before + 1);
    let again = admin
        .rewrap_keys(v1::RewrapKeysRequest {
            namespace: "web".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.commit, None);

    // The value still reads back.
    let view = s.client.resolve(resolve_req()).await.unwrap().into_inner();
    assert_eq!(parse(&view.document_json)["db"]["password"], "s3cret");

    // web#1 is still refused: the retained history sealed under it would
    // no longer open (rollbacks to it would fail).
    let e = retire(&mut admin, "web#1").await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("web#1"), "{}", e.message());
    assert_eq!(keys(&mut admin).await.len(), 2);

    // A key no version uses is retired.
    for expected in ["api#1", "api#2"] {
        let r = admin
            .rotate_key(v1::RotateKeyRequest {
                namespace: "api".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.key_id, expected);
    }
    retire(&mut admin, "api#1").await.unwrap();
    assert_eq!(
        keys(&mut admin).await,
        [
            ("api#2".to_owned(), true),
            ("web#1".to_owned(), false),
            ("web#2".to_owned(), true)
        ]
    );

    // Unknown and malformed key ids are the caller's mistake, not data loss.
    for bad in ["api#1", "web#9", "no-hash"] {
        let e = retire(&mut admin, bad).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad}: {e:?}");
        assert!(e.message().contains(bad), "{}", e.message());
    }
    let e = retire(&mut admin, "").await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
}

async fn audit_records(admin: &mut AdminClient, after_seq: u64, limit: u32) -> Vec<Value> {
    admin
        .list_audit_records(v1::ListAuditRecordsRequest { after_seq, limit })
        .await
        .unwrap()
        .into_inner()
        .record_json
        .iter()
        .map(|j| parse(j))
        .collect()
}

#[tokio::test]
async fn the_audit_log_lists_verifies_and_catches_tampering() {
    let mut s = Server::start().await;
    s.seed().await;
    let mut admin = admin_of(&s).await;
    let (token, _) = principal_with_token(&mut admin, "bob", &["viewer"]).await;
    let mut bob = client_with(s.addr, Some(&format!("Bearer {token}"))).await;
    bob.set_keys(set_req("debug", "false", false))
        .await
        .unwrap_err();

    let all = audit_records(&mut admin, 0, 0).await;
    assert!(all.len() >= 4, "{all:#?}");
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r["seq"], i as u64 + 1, "{r}");
        for field in ["principal", "action", "outcome", "time", "mac"] {
            assert!(r.get(field).is_some(), "{field} missing in {r}");
        }
    }
    let added = all
        .iter()
        .find(|r| r["details"].to_string().contains("principal add"))
        .expect("the principal add is audited");
    assert_eq!(added["principal"], "admin");
    assert_eq!(added["action"], "admin");
    let refused = all
        .iter()
        .find(|r| r["principal"] == "bob" && r["action"] == "write")
        .expect("bob's refused write is audited");
    assert_ne!(refused["outcome"], added["outcome"]);

    // Paging: after_seq and limit.
    let page = audit_records(&mut admin, 1, 2).await;
    assert_eq!(page, all[1..3]);

    let v = admin
        .verify_audit(v1::VerifyAuditRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(v.records >= all.len() as u64, "{v:?}");
    assert_eq!(v.last_seq, v.records);

    // An attacker with the file drops the trigger that keeps the journal
    // append-only and edits one record's body.
    let victim = added["seq"].as_u64().unwrap();
    let victim_row = i64::try_from(victim).unwrap();
    let dir = s.stop().await;
    {
        let db = rusqlite::Connection::open(dir.path().join("confstrata.db")).unwrap();
        let edit = db.execute(
            "UPDATE journal SET body = replace(body, '\"admin\"', '\"bob\"') WHERE seq = ?1",
            [victim_row],
        );
        assert!(
            edit.unwrap_err().to_string().contains("append-only"),
            "the trigger stops a plain edit"
        );
        db.execute_batch("DROP TRIGGER journal_no_update").unwrap();
        let changed = db
            .execute(
                "UPDATE journal SET body = replace(body, '\"principal\":\"admin\"', '\"principal\":\"bob\"') WHERE seq = ?1",
                [victim_row],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }

    let s = Server::start_in(dir, "127.0.0.1:0").await;
    let mut admin = admin_of(&s).await;
    // The forged record reads as forged...
    let forged = audit_records(&mut admin, victim - 1, 1).await;
    assert_eq!(forged[0]["principal"], "bob");
    // ...and verification names it.
    let e = admin
        .verify_audit(v1::VerifyAuditRequest {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::DataLoss, "{e:?}");
    assert!(
        e.message().contains(&format!("seq {victim} ")),
        "{}",
        e.message()
    );
    s.stop().await;
}

#[tokio::test]
async fn groups_scoped_roles_and_denies_hold_on_the_wire_and_on_open_watches() {
    let mut s = Server::start().await;
    s.seed().await;
    let mut admin = admin_of(&s).await;
    let (token, _) = principal_with_token(&mut admin, "bob", &["editor"]).await;
    let mut ed = client_with(s.addr, Some(&format!("Bearer {token}"))).await;
    admin
        .put_role(v1::PutRoleRequest {
            role: Some(v1::Role {
                name: "no-debug".into(),
                description: "debug stays as it is".into(),
                builtin: false,
                grants: vec![v1::RoleGrant {
                    effect: "deny".into(),
                    actions: vec!["write".into()],
                    on: "**#debug".into(),
                }],
            }),
            create_only: true,
        })
        .await
        .unwrap();
    admin
        .put_group(v1::PutGroupRequest {
            name: "web-team".into(),
            description: "the web team".into(),
            create_only: true,
        })
        .await
        .unwrap();
    admin
        .update_group_members(v1::UpdateGroupMembersRequest {
            group: "web-team".into(),
            add: vec!["bob".into()],
            remove: vec![],
        })
        .await
        .unwrap();
    let granted = admin
        .grant_role(v1::GrantRoleRequest {
            group: "web-team".into(),
            role: "no-debug".into(),
            on: Some("web".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(granted.granted);

    // A deny through the group beats the allow of bob's own role.
    let e = ed
        .set_keys(set_req("debug", "false", false))
        .await
        .unwrap_err();
    assert_denied(&e, "write", "web:defaults#debug");
    ed.set_keys(set_req("other", "1", false)).await.unwrap();
    let check = admin
        .check_access(v1::CheckAccessRequest {
            principal_id: "bob".into(),
            action: "write".into(),
            resource: "web:defaults#debug".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!check.allowed);
    let deciding = check.deciding.unwrap();
    assert_eq!(
        (
            deciding.role.as_str(),
            deciding.group.as_deref(),
            deciding.scope.as_deref()
        ),
        ("no-debug", Some("web-team"), Some("web"))
    );
    let detail = admin
        .get_principal(v1::GetPrincipalRequest {
            principal_id: "bob".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(detail.groups, ["web-team"]);
    assert_eq!(detail.effective.len(), 2);
    assert_eq!(detail.principal.unwrap().roles, ["editor"]);
    let groups = admin
        .list_groups(v1::ListGroupsRequest {})
        .await
        .unwrap()
        .into_inner()
        .groups;
    assert_eq!(groups[0].members, ["bob"]);

    // Reading through a group only: the watch ends when the membership does.
    admin
        .revoke_role(v1::RevokeRoleRequest {
            principal_id: "bob".into(),
            role: "editor".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    admin
        .grant_role(v1::GrantRoleRequest {
            group: "web-team".into(),
            role: "viewer".into(),
            on: Some("web".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut watch = ed
        .watch(v1::WatchRequest {
            namespace: "web".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let caught_up = tokio::time::timeout(GUARD, watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(caught_up.info.is_none());
    admin
        .update_group_members(v1::UpdateGroupMembersRequest {
            group: "web-team".into(),
            add: vec![],
            remove: vec!["bob".into()],
        })
        .await
        .unwrap();
    let end = tokio::time::timeout(GUARD, watch.next())
        .await
        .expect("the watch ends")
        .expect("with a status");
    let e = end.expect_err("an error, not an event");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");

    // Bad requests name the field.
    let field = |e: &tonic::Status| {
        e.get_details_bad_request()
            .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
    };
    let e = admin
        .grant_role(v1::GrantRoleRequest {
            principal_id: "bob".into(),
            group: "web-team".into(),
            role: "viewer".into(),
            on: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), field(&e).as_deref()),
        (Code::InvalidArgument, Some("group"))
    );
    let e = admin
        .put_role(v1::PutRoleRequest {
            role: Some(v1::Role {
                name: "bad".into(),
                grants: vec![v1::RoleGrant {
                    effect: "permit".into(),
                    actions: vec!["read".into()],
                    on: "**".into(),
                }],
                ..Default::default()
            }),
            create_only: false,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), field(&e).as_deref()),
        (Code::InvalidArgument, Some("role.grants[0].effect"))
    );
    let e = admin
        .put_group(v1::PutGroupRequest {
            name: "web-team".into(),
            description: String::new(),
            create_only: true,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");
    let e = admin
        .check_access(v1::CheckAccessRequest {
            principal_id: "bob".into(),
            action: "read".into(),
            resource: "web:../x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), field(&e).as_deref()),
        (Code::InvalidArgument, Some("resource"))
    );
    s.stop().await;
}

#[tokio::test]
async fn a_key_scoped_reader_resolves_and_watches_only_its_keys() {
    let mut s = Server::start().await;
    s.seed().await;
    let mut admin = admin_of(&s).await;
    admin
        .put_role(v1::PutRoleRequest {
            role: Some(v1::Role {
                name: "db-only".into(),
                grants: vec![v1::RoleGrant {
                    effect: "allow".into(),
                    actions: vec!["read".into()],
                    on: "web#db".into(),
                }],
                ..Default::default()
            }),
            create_only: true,
        })
        .await
        .unwrap();
    let (token, _) = principal_with_token(&mut admin, "bob", &["db-only"]).await;
    let mut bob = client_with(s.addr, Some(&format!("Bearer {token}"))).await;
    let prod = std::collections::HashMap::from([("env".to_owned(), "prod".to_owned())]);
    let r = bob
        .resolve(v1::ResolveRequest {
            namespace: "web".into(),
            context: prod.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.partial);
    assert_eq!(
        parse(&r.document_json),
        serde_json::json!({"db": {"host": "db.prod", "pool": 5}})
    );
    let mut watch = bob
        .watch(v1::WatchRequest {
            namespace: "web".into(),
            context: prod.clone(),
            start_revision: 0,
            resolve: true,
        })
        .await
        .unwrap()
        .into_inner();
    let caught_up = tokio::time::timeout(GUARD, watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(caught_up.info.is_none());
    s.client
        .set_keys(v1::SetKeysRequest {
            namespace: "web".into(),
            layer: "env/prod".into(),
            entries: vec![
                v1::KeyValue {
                    key: "db.pool".into(),
                    value_json: "50".into(),
                    secret: false,
                },
                v1::KeyValue {
                    key: "debug".into(),
                    value_json: "true".into(),
                    secret: false,
                },
            ],
            ..Default::default()
        })
        .await
        .unwrap();
    let event = tokio::time::timeout(GUARD, watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        parse(&event.resolved_json),
        serde_json::json!({"db": {"host": "db.prod", "pool": 50}}),
        "the event carries db.* only"
    );
    s.stop().await;
}

#[tokio::test]
async fn compact_runs_online_for_admins_and_refuses_keeping_nothing() {
    let mut s = Server::start().await;
    s.seed().await;
    let mut admin = admin_of(&s).await;
    let mut c = client_with(s.addr, Some(&format!("Bearer {}", s.admin_token))).await;
    for v in ["1", "2", "3"] {
        c.set_keys(set_req("debug", v, false)).await.unwrap();
    }
    let e = admin
        .compact(v1::CompactRequest {
            keep_versions: 0,
            keep_days: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("keep_versions"), "{e:?}");
    let r = admin
        .compact(v1::CompactRequest {
            keep_versions: 1,
            keep_days: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.removed_versions >= 3, "{r:?}");
    let status = c
        .get_status(v1::GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.oldest_revision, r.oldest_revision);
    assert!(status.store_bytes.is_some_and(|b| b > 0), "{status:?}");
    // A viewer may not.
    let (token, _) = principal_with_token(&mut admin, "vic", &["viewer"]).await;
    let mut vic = admin_client_with(s.addr, Some(&format!("Bearer {token}"))).await;
    let e = vic
        .compact(v1::CompactRequest {
            keep_versions: 1,
            keep_days: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
}
