//! Every built-in role (and a scoped custom role) against every action and a
//! set of resources: each decision is asserted.

use confstrata_access::{Action, ActionSet, Grant, Policy, PrincipalKind, Role, Role as R};

use crate::{id, pat, res, role};

const RESOURCES: [&str; 6] = [
    "**",
    "payments",
    "payments:env/prod",
    "payments:env/prod#db.password",
    "payments:env/staging#db.password",
    "shared/logging:defaults#level",
];

/// For one role: per resource (in `RESOURCES` order), the actions allowed; all others refused.
fn check(role_name: &str, policy: &Policy, expected: [&str; 6]) {
    let who = id(&format!("holder-of-{role_name}"));
    for (resource, allowed) in RESOURCES.iter().zip(expected) {
        let allowed: ActionSet = if allowed.is_empty() {
            ActionSet::EMPTY
        } else {
            allowed.split(',').map(|a| a.parse().unwrap()).collect()
        };
        for action in Action::ALL {
            let d = policy.decide(&who, action, &res(resource));
            assert_eq!(
                d.is_allowed(),
                allowed.contains(action),
                "role {role_name}: {action} on {resource}: {d:?}"
            );
        }
    }
}

fn policy_with_all_roles() -> Policy {
    let mut p = Policy::with_builtin_roles();
    p.put_role(R {
        name: role("payments-db"),
        description: "the payments db section outside prod secrets".into(),
        grants: vec![
            Grant::allow(&[Action::Read, Action::Write], pat("payments:env/*#db")),
            Grant::deny(&[Action::Write], pat("payments:env/prod#db.password")),
        ],
    })
    .unwrap();
    let names: Vec<_> = p.roles().map(|r| r.name.clone()).collect();
    for name in names {
        let who = id(&format!("holder-of-{name}"));
        p.add_principal(who.clone(), name.as_str(), PrincipalKind::Service)
            .unwrap();
        p.grant_role(&who, &name).unwrap();
    }
    p
}

#[test]
fn every_role_against_every_action_and_resource() {
    let p = policy_with_all_roles();
    let everything = "read,read-secrets,write,publish,admin,audit,backup";
    check("viewer", &p, ["read"; 6]);
    check("editor", &p, ["read,write"; 6]);
    check("publisher", &p, ["read,write,publish"; 6]);
    check("secret-reader", &p, ["read,read-secrets"; 6]);
    check("auditor", &p, ["audit"; 6]);
    check("backup-operator", &p, ["read,read-secrets,backup"; 6]);
    check("admin", &p, [everything; 6]);
    // The deny on `**:env/prod/**` overlaps everything, all of payments and
    // the prod layer, so write is refused there; staging and shared are open.
    check(
        "non-prod-editor",
        &p,
        ["read", "read", "read", "read", "read,write", "read,write"],
    );
    // Allowed only on whole `db` subtrees of payments env layers; the deny
    // takes write away on the prod password.
    check("payments-db", &p, ["", "", "", "read", "read,write", ""]);
}

#[test]
fn a_principal_without_roles_is_refused_everything() {
    let mut p = Policy::with_builtin_roles();
    p.add_principal(id("nobody"), "Nobody", PrincipalKind::User)
        .unwrap();
    for r in RESOURCES {
        for a in Action::ALL {
            assert!(!p.decide(&id("nobody"), a, &res(r)).is_allowed());
        }
    }
}

#[test]
fn builtin_roles_are_distinct_and_documented() {
    let roles = Role::builtin();
    let mut names: Vec<_> = roles.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), roles.len());
    assert!(
        roles
            .iter()
            .all(|r| !r.description.is_empty() && !r.grants.is_empty())
    );
    assert!(roles.iter().any(|r| {
        r.grants
            .iter()
            .any(|g| g.effect == confstrata_access::Effect::Deny)
    }));
}
