//! Decisions: deny by default, deny wins, admin, groups, revocation,
//! refusals that reveal nothing, and storage round trips.

use confstrata_access::{
    Action, Decision, Error, Grant, GroupName, Policy, PrincipalKind, RefusalCause, Role,
};
use confstrata_core::Timestamp;

use crate::{id, pat, res, role};

fn group(s: &str) -> GroupName {
    GroupName::parse(s).unwrap()
}

fn policy() -> Policy {
    let mut p = Policy::with_builtin_roles();
    p.put_role(Role {
        name: role("no-payments-secrets"),
        description: String::new(),
        grants: vec![Grant::deny(
            &[Action::ReadSecrets],
            pat("payments#db.password"),
        )],
    })
    .unwrap();
    p.put_role(Role {
        name: role("no-prod-at-all"),
        description: String::new(),
        grants: vec![Grant::deny(&[Action::Admin], pat("*:env/prod"))],
    })
    .unwrap();
    for who in ["alice", "bob", "carol"] {
        p.add_principal(id(who), who, PrincipalKind::User).unwrap();
    }
    p.add_group(group("sre")).unwrap();
    p
}

fn cause(d: Decision) -> RefusalCause {
    match d {
        Decision::Deny(r) => r.cause,
        Decision::Allow => panic!("allowed"),
    }
}

#[test]
fn deny_is_the_default() {
    let p = policy();
    let d = p.decide(&id("alice"), Action::Read, &res("payments"));
    assert_eq!(cause(d), RefusalCause::NoGrant);
    let d = p.decide(&id("mallory"), Action::Read, &res("payments"));
    assert_eq!(cause(d), RefusalCause::UnknownPrincipal);
}

#[test]
fn a_deny_wins_over_any_allow_from_any_source() {
    let mut p = policy();
    // Allowed directly (admin), denied through a group.
    p.grant_role(&id("alice"), &role("admin")).unwrap();
    let secret = res("payments:env/prod#db.password");
    assert!(
        p.decide(&id("alice"), Action::ReadSecrets, &secret)
            .is_allowed()
    );
    p.add_member(&group("sre"), &id("alice")).unwrap();
    p.grant_group_role(&group("sre"), &role("no-payments-secrets"))
        .unwrap();
    assert_eq!(
        cause(p.decide(&id("alice"), Action::ReadSecrets, &secret)),
        RefusalCause::DeniedBy(role("no-payments-secrets"))
    );
    // Reading the whole db table would include the password: refused too.
    assert!(
        !p.decide(
            &id("alice"),
            Action::ReadSecrets,
            &res("payments:env/prod#db")
        )
        .is_allowed()
    );
    assert!(
        !p.decide(&id("alice"), Action::ReadSecrets, &res("payments"))
            .is_allowed()
    );
    // Other keys, and plain reads, are untouched.
    assert!(
        p.decide(&id("alice"), Action::ReadSecrets, &res("payments#db.host"))
            .is_allowed()
    );
    assert!(p.decide(&id("alice"), Action::Read, &secret).is_allowed());
    // Leaving the group gives the right back at once.
    p.remove_member(&group("sre"), &id("alice")).unwrap();
    assert!(
        p.decide(&id("alice"), Action::ReadSecrets, &secret)
            .is_allowed()
    );
}

#[test]
fn admin_stands_for_every_action_in_allow_and_deny() {
    let mut p = policy();
    p.grant_role(&id("bob"), &role("admin")).unwrap();
    for a in Action::ALL {
        assert!(
            p.decide(&id("bob"), a, &res("payments:env/prod"))
                .is_allowed()
        );
    }
    p.grant_role(&id("bob"), &role("no-prod-at-all")).unwrap();
    for a in Action::ALL {
        assert!(
            !p.decide(&id("bob"), a, &res("payments:env/prod"))
                .is_allowed(),
            "{a}"
        );
        assert!(
            p.decide(&id("bob"), a, &res("payments:env/dev"))
                .is_allowed(),
            "{a}"
        );
    }
}

#[test]
fn changes_take_effect_for_the_next_decision() {
    let mut p = policy();
    let r = res("payments:env/dev");
    p.put_role(Role {
        name: role("reader"),
        description: "reads".into(),
        grants: vec![Grant::allow(&[Action::Read], pat("**"))],
    })
    .unwrap();
    p.grant_role(&id("carol"), &role("reader")).unwrap();
    assert!(p.decide(&id("carol"), Action::Read, &r).is_allowed());
    // Changing a role changes every holder.
    p.put_role(Role {
        name: role("reader"),
        description: "narrowed".into(),
        grants: vec![Grant::allow(&[Action::Read], pat("shared/**"))],
    })
    .unwrap();
    assert!(!p.decide(&id("carol"), Action::Read, &r).is_allowed());
    assert!(
        p.decide(&id("carol"), Action::Read, &res("shared/logging"))
            .is_allowed()
    );
    // Built-in roles are fixed.
    let e = p
        .put_role(Role {
            name: role("viewer"),
            description: "narrowed".into(),
            grants: vec![Grant::allow(&[Action::Read], pat("shared/**"))],
        })
        .unwrap_err();
    assert!(matches!(e, Error::BuiltinRole { .. }), "{e}");
    // Taking the role away.
    p.revoke_role(&id("carol"), &role("reader")).unwrap();
    assert!(
        !p.decide(&id("carol"), Action::Read, &res("shared/logging"))
            .is_allowed()
    );
    // Through a group.
    p.add_member(&group("sre"), &id("carol")).unwrap();
    p.grant_group_role(&group("sre"), &role("editor")).unwrap();
    assert!(p.decide(&id("carol"), Action::Write, &r).is_allowed());
    p.revoke_group_role(&group("sre"), &role("editor")).unwrap();
    assert!(!p.decide(&id("carol"), Action::Write, &r).is_allowed());
    // Revoking the principal.
    p.grant_role(&id("carol"), &role("admin")).unwrap();
    assert!(p.decide(&id("carol"), Action::Write, &r).is_allowed());
    p.revoke_principal(&id("carol")).unwrap();
    assert_eq!(
        cause(p.decide(&id("carol"), Action::Write, &r)),
        RefusalCause::PrincipalRevoked
    );
}

#[test]
fn a_refusal_names_the_action_and_resource_and_nothing_else() {
    let mut p = policy();
    p.grant_role(&id("alice"), &role("admin")).unwrap();
    p.grant_role(&id("alice"), &role("no-payments-secrets"))
        .unwrap();
    let denied = p.decide(
        &id("alice"),
        Action::ReadSecrets,
        &res("payments:env/prod#db.password"),
    );
    let no_grant = p.decide(
        &id("bob"),
        Action::ReadSecrets,
        &res("payments:env/prod#db.password"),
    );
    let denied = denied.into_result().unwrap_err().to_string();
    let no_grant = no_grant.into_result().unwrap_err().to_string();
    // The same words whatever the cause (and the policy cannot know whether
    // the key exists, so neither can the message).
    assert_eq!(denied.replace("alice", "X"), no_grant.replace("bob", "X"));
    assert_eq!(
        no_grant,
        "permission denied: bob may not read-secrets payments:env/prod#db.password; \
         ask an administrator for a role that grants `read-secrets` on it"
    );
    assert!(!denied.contains("no-payments-secrets"));
}

#[test]
fn authorize_combines_authentication_and_decision() {
    let mut p = policy();
    p.grant_role(&id("alice"), &role("viewer")).unwrap();
    let t = p.issue_token(&id("alice"), "", Timestamp(0)).unwrap();
    assert_eq!(
        p.authorize(&t, Action::Read, &res("x")).unwrap().id(),
        &id("alice")
    );
    match p.authorize(&t, Action::Write, &res("x")) {
        Err(Error::Forbidden(r)) => {
            assert_eq!(r.action, Action::Write);
            assert_eq!(r.resource, res("x"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn policy_changes_refuse_bad_references() {
    let mut p = policy();
    assert!(matches!(
        p.grant_role(&id("alice"), &role("nope")),
        Err(Error::NotFound { kind: "role", .. })
    ));
    assert!(matches!(
        p.grant_role(&id("nope"), &role("viewer")),
        Err(Error::NotFound {
            kind: "principal",
            ..
        })
    ));
    assert!(matches!(
        p.add_member(&group("sre"), &id("nope")),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        p.add_principal(id("alice"), "again", PrincipalKind::User),
        Err(Error::AlreadyExists {
            kind: "principal",
            ..
        })
    ));
    p.grant_role(&id("alice"), &role("no-prod-at-all")).unwrap();
    let err = p.remove_role(&role("no-prod-at-all")).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"role "no-prod-at-all" is still held by principal "alice"; take it away first"#
    );
    p.revoke_role(&id("alice"), &role("no-prod-at-all"))
        .unwrap();
    assert!(p.remove_role(&role("no-prod-at-all")).is_ok());
    assert!(matches!(
        p.remove_role(&role("viewer")),
        Err(Error::BuiltinRole { .. })
    ));
    let err = p.revoke_role(&id("alice"), &role("viewer")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "principal alice does not hold viewer; it holds no binding of that role"
    );
    let t = p.issue_token(&id("bob"), "", Timestamp(0)).unwrap();
    assert!(matches!(
        p.add_token_hash(&id("carol"), t.hash(), "", Timestamp(0)),
        Err(Error::AlreadyExists { kind: "token", .. })
    ));
}

#[test]
fn a_stored_policy_loads_back_and_decides_the_same() {
    let mut p = policy();
    p.grant_role(&id("alice"), &role("admin")).unwrap();
    p.add_member(&group("sre"), &id("alice")).unwrap();
    p.grant_group_role(&group("sre"), &role("no-payments-secrets"))
        .unwrap();
    p.grant_role(&id("bob"), &role("non-prod-editor")).unwrap();
    let t = p.issue_token(&id("bob"), "ci", Timestamp(5)).unwrap();
    let json = serde_json::to_value(&p).unwrap();
    let loaded: Policy = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(serde_json::to_value(&loaded).unwrap(), json);
    assert_eq!(loaded.authenticate(&t).unwrap().id(), &id("bob"));
    for who in ["alice", "bob", "carol"] {
        for r in ["payments:env/prod#db.password", "payments:env/dev", "**"] {
            for a in Action::ALL {
                assert_eq!(
                    p.decide(&id(who), a, &res(r)),
                    loaded.decide(&id(who), a, &res(r))
                );
            }
        }
    }
    assert_eq!(
        json["roles"][0]["grants"][0],
        serde_json::json!({"effect": "allow", "actions": ["admin"], "on": "**"})
    );
}

#[test]
fn an_inconsistent_stored_policy_is_refused() {
    let mut p = policy();
    p.grant_role(&id("alice"), &role("no-prod-at-all")).unwrap();
    let t = p.issue_token(&id("alice"), "", Timestamp(0)).unwrap();
    let good = serde_json::to_value(&p).unwrap();

    // Without its custom roles (the built-in ones always exist).
    let mut bad = good.clone();
    bad["roles"] = serde_json::json!([]);
    let err = serde_json::from_value::<Policy>(bad)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("principal alice holds role no-prod-at-all, which does not exist"),
        "{err}"
    );

    let mut bad = good.clone();
    let bob = bad["principals"]
        .as_array()
        .unwrap()
        .iter()
        .position(|p| p["id"] == "bob")
        .unwrap();
    bad["principals"][bob]["tokens"] =
        serde_json::json!([{"hash": t.hash().to_string(), "created": 0}]);
    let err = serde_json::from_value::<Policy>(bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("belongs to both alice and bob"), "{err}");

    let mut bad = good;
    bad["roles"][0]["grants"][0]["on"] = "payments:env/../x".into();
    let err = serde_json::from_value::<Policy>(bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("the layer part: segment 2 is \"..\""), "{err}");
}
