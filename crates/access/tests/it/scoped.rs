//! Scoped role bindings, groups, custom roles and denies, decided against a
//! reference model: every resource is a set of points (namespace, layer,
//! key node) of a small universe, every pattern too (by a plain recursive
//! glob matcher), and a decision is set arithmetic. For random policies,
//! every (principal, action, resource) decision and its explanation must
//! agree with the model.

use std::collections::BTreeSet;

use confstrata_access::{
    Action, Binding, Effect, Grant, GroupName, Policy, PrincipalKind, RefusalCause, Role, Subject,
};
use proptest::prelude::*;

use crate::{id, pat, res, role};

const NAMESPACES: [&str; 3] = ["payments", "orders", "shared/logging"];
const LAYERS: [&str; 3] = ["defaults", "env/prod", "env/staging"];
/// Key nodes: `db` is a table holding `password` and `pool`.
const KEYS: [&str; 4] = ["db", "db.password", "db.pool", "port"];

/// The resources asked about.
const RESOURCES: [&str; 12] = [
    "payments",
    "orders",
    "shared/logging",
    "payments:env/prod",
    "payments:env/staging",
    "payments:defaults",
    "orders:env/prod",
    "payments:env/prod#db",
    "payments:env/prod#db.password",
    "payments:env/staging#db.pool",
    "payments#db",
    "orders:defaults#port",
];

/// The patterns grants and scopes are drawn from.
const PATTERNS: [&str; 12] = [
    "**",
    "payments",
    "payments/**",
    "orders",
    "*:env/prod",
    "**:env/**",
    "payments:env/staging",
    "payments#db",
    "payments:env/*#db.*",
    "**#db.password",
    "shared/**",
    "*:defaults#port",
];

type Point = (&'static str, &'static str, &'static str);

fn universe() -> Vec<Point> {
    let mut out = Vec::new();
    for n in NAMESPACES {
        for l in LAYERS {
            for k in KEYS {
                out.push((n, l, k));
            }
        }
    }
    out
}

/// A glob over segments: `*` one segment, `**` any number.
fn glob(p: &[&str], s: &[&str]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((&"**", rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((&"*", rest)) => !s.is_empty() && glob(rest, &s[1..]),
        Some((lit, rest)) => s.first() == Some(lit) && glob(rest, &s[1..]),
    }
}

/// The points a pattern names: namespace and layer match whole paths; the
/// key part names subtrees (a node is in when it or an ancestor matches).
fn pattern_points(text: &str) -> BTreeSet<Point> {
    let (head, key) = text.split_once('#').unwrap_or((text, "**"));
    let (ns, layer) = head.split_once(':').unwrap_or((head, "**"));
    let split = |s: &'static str, sep: char| -> Vec<&'static str> { s.split(sep).collect() };
    let (ns, layer, key): (Vec<&str>, Vec<&str>, Vec<&str>) = (
        ns.split('/').collect(),
        layer.split('/').collect(),
        key.split('.').collect(),
    );
    universe()
        .into_iter()
        .filter(|(n, l, k)| {
            let k = split(k, '.');
            glob(&ns, &split(n, '/'))
                && glob(&layer, &split(l, '/'))
                && (0..=k.len()).any(|i| glob(&key, &k[..i]))
        })
        .collect()
}

/// The points a resource is: a missing layer or key part is all of them;
/// a key names its node and everything under it.
fn resource_points(text: &str) -> BTreeSet<Point> {
    let (head, key) = match text.split_once('#') {
        Some((h, k)) => (h, Some(k)),
        None => (text, None),
    };
    let (ns, layer) = match head.split_once(':') {
        Some((n, l)) => (n, Some(l)),
        None => (head, None),
    };
    universe()
        .into_iter()
        .filter(|(n, l, k)| {
            *n == ns
                && layer.is_none_or(|x| x == *l)
                && key.is_none_or(|x| *k == x || k.starts_with(&format!("{x}.")))
        })
        .collect()
}

/// The custom roles of every generated policy.
fn custom_roles() -> Vec<Role> {
    let r = |name: &str, grants: Vec<Grant>| Role {
        name: role(name),
        description: format!("{name} for the model test"),
        grants,
    };
    vec![
        r(
            "db-reader",
            vec![
                Grant::allow(&[Action::Read], pat("**#db")),
                Grant::deny(&[Action::Read], pat("**#db.password")),
            ],
        ),
        r(
            "staging-writer",
            vec![Grant::allow(
                &[Action::Read, Action::Write],
                pat("**:env/staging"),
            )],
        ),
        r(
            "no-prod",
            vec![Grant::deny(
                &[Action::Write, Action::Publish],
                pat("*:env/prod"),
            )],
        ),
        r(
            "secrets",
            vec![Grant::allow(
                &[Action::ReadSecrets, Action::Read],
                pat("**"),
            )],
        ),
    ]
}

const ROLES: [&str; 8] = [
    "viewer",
    "editor",
    "admin",
    "non-prod-editor",
    "db-reader",
    "staging-writer",
    "no-prod",
    "secrets",
];
const PRINCIPALS: [&str; 3] = ["ann", "ben", "cat"];
const GROUPS: [&str; 2] = ["team", "ops"];

#[derive(Clone, Debug)]
struct Spec {
    /// (subject index: 0..3 principals, 3..5 groups; role; scope pattern).
    bindings: Vec<(usize, usize, Option<usize>)>,
    /// (group, principal) memberships.
    members: Vec<(usize, usize)>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::collection::vec(
            (
                0..PRINCIPALS.len() + GROUPS.len(),
                0..ROLES.len(),
                prop::option::of(0..PATTERNS.len()),
            ),
            0..8,
        ),
        prop::collection::vec((0..GROUPS.len(), 0..PRINCIPALS.len()), 0..4),
    )
        .prop_map(|(bindings, members)| Spec { bindings, members })
}

fn subject(i: usize) -> Subject {
    if i < PRINCIPALS.len() {
        Subject::Principal(id(PRINCIPALS[i]))
    } else {
        Subject::Group(GroupName::parse(GROUPS[i - PRINCIPALS.len()]).unwrap())
    }
}

fn build(spec: &Spec) -> Policy {
    let mut p = Policy::with_builtin_roles();
    for r in custom_roles() {
        p.put_role(r).unwrap();
    }
    for who in PRINCIPALS {
        p.add_principal(id(who), who, PrincipalKind::Service)
            .unwrap();
    }
    for g in GROUPS {
        p.add_group(GroupName::parse(g).unwrap()).unwrap();
    }
    for (g, m) in &spec.members {
        p.add_member(&GroupName::parse(GROUPS[*g]).unwrap(), &id(PRINCIPALS[*m]))
            .unwrap();
    }
    for (s, r, scope) in &spec.bindings {
        let binding = Binding {
            role: role(ROLES[*r]),
            on: scope.map(|i| pat(PATTERNS[i])),
        };
        p.bind(&subject(*s), binding).unwrap();
    }
    p
}

/// The model's decision: (allowed, denied by a deny grant).
fn model(spec: &Spec, policy: &Policy, who: usize, action: Action, resource: &str) -> (bool, bool) {
    let points = resource_points(resource);
    assert!(!points.is_empty(), "{resource} is in the universe");
    let everything: BTreeSet<Point> = universe().into_iter().collect();
    let mut held = Vec::new();
    for (s, r, scope) in &spec.bindings {
        let applies = *s == who
            || (*s >= PRINCIPALS.len()
                && spec
                    .members
                    .iter()
                    .any(|(g, m)| *g == *s - PRINCIPALS.len() && *m == who));
        if applies {
            held.push((ROLES[*r], scope.map(|i| PATTERNS[i])));
        }
    }
    let (mut allowed, mut denied) = (false, false);
    for (r, scope) in held {
        let scope = scope.map_or_else(|| everything.clone(), pattern_points);
        for g in &policy.role(&role(r)).unwrap().grants {
            if !g.actions.effective().contains(action) {
                continue;
            }
            let on = pattern_points(&g.on.to_string());
            match g.effect {
                Effect::Deny => {
                    denied |= !on.is_disjoint(&points) && !scope.is_disjoint(&points);
                }
                Effect::Allow => allowed |= points.is_subset(&on) && points.is_subset(&scope),
            }
        }
    }
    (allowed && !denied, denied)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn decisions_agree_with_the_reference_model(spec in spec()) {
        let policy = build(&spec);
        for (w, who) in PRINCIPALS.iter().enumerate() {
            for action in Action::ALL {
                for r in RESOURCES {
                    let (allowed, denied) = model(&spec, &policy, w, action, r);
                    let d = policy.decide(&id(who), action, &res(r));
                    prop_assert_eq!(d.is_allowed(), allowed, "{} {} {} in {:?}", who, action, r, spec);
                    let e = policy.explain(&id(who), action, &res(r));
                    prop_assert_eq!(e.allowed, allowed);
                    match (&e.deciding, allowed, denied) {
                        (Some(g), true, _) => prop_assert_eq!(g.grant.effect, Effect::Allow),
                        (Some(g), false, true) => {
                            prop_assert_eq!(g.grant.effect, Effect::Deny);
                            prop_assert_eq!(e.cause.clone(), Some(RefusalCause::DeniedBy(g.role.clone())));
                        }
                        (None, false, false) => prop_assert_eq!(e.cause.clone(), Some(RefusalCause::NoGrant)),
                        other => prop_assert!(false, "explanation {:?} for {:?}", e, other),
                    }
                    // The deciding grant is one of the principal's effective grants.
                    if let Some(g) = &e.deciding {
                        prop_assert!(policy.effective_grants(&id(who)).unwrap().contains(g));
                    }
                }
            }
        }
        // A stored policy with scopes loads back and decides the same.
        let json = serde_json::to_value(&policy).unwrap();
        let loaded: Policy = serde_json::from_value(json).unwrap();
        for who in PRINCIPALS {
            for r in RESOURCES {
                for action in Action::ALL {
                    prop_assert_eq!(
                        policy.decide(&id(who), action, &res(r)),
                        loaded.decide(&id(who), action, &res(r))
                    );
                }
            }
        }
    }
}

#[test]
fn the_reference_model_knows_its_patterns() {
    // The model's own matcher, against a few facts the docs state.
    assert!(pattern_points("payments#db.*").contains(&("payments", "env/prod", "db.pool")));
    assert!(!pattern_points("payments#db.*").contains(&("payments", "env/prod", "db")));
    assert!(pattern_points("payments#db").contains(&("payments", "env/prod", "db.password")));
    assert_eq!(resource_points("payments#db").len(), 3 * 3);
    assert_eq!(pattern_points("**").len(), 3 * 3 * 4);
}

#[test]
fn a_scoped_binding_of_a_built_in_role_reuses_it_per_namespace() {
    let mut p = Policy::with_builtin_roles();
    p.add_principal(id("billing-svc"), "billing", PrincipalKind::Service)
        .unwrap();
    p.bind(
        &Subject::Principal(id("billing-svc")),
        Binding::within(role("viewer"), pat("payments/**")),
    )
    .unwrap();
    let who = id("billing-svc");
    assert!(p.decide(&who, Action::Read, &res("payments")).is_allowed());
    assert!(
        p.decide(&who, Action::Read, &res("payments/eu:env/prod"))
            .is_allowed()
    );
    assert!(!p.decide(&who, Action::Read, &res("orders")).is_allowed());
    assert!(!p.decide(&who, Action::Write, &res("payments")).is_allowed());
    let e = p.explain(&who, Action::Read, &res("payments:env/prod"));
    let g = e.deciding.unwrap();
    assert_eq!(
        g.to_string(),
        "allow read on ** (role viewer grant 0, bound on payments/**, held directly)"
    );
    // Bound twice the same way: nothing changes; taking away a binding
    // that is not held names what is.
    assert!(
        !p.bind(
            &Subject::Principal(who.clone()),
            Binding::within(role("viewer"), pat("payments/**"))
        )
        .unwrap()
    );
    let err = p
        .unbind(
            &Subject::Principal(who.clone()),
            &Binding::within(role("viewer"), pat("payment/**")),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "principal billing-svc does not hold viewer on payment/**; it holds viewer on payments/**"
    );
}

#[test]
fn a_deny_through_a_group_beats_an_allow_through_a_role() {
    let mut p = Policy::with_builtin_roles();
    p.put_role(Role {
        name: role("no-prod"),
        description: String::new(),
        grants: vec![Grant::deny(&[Action::Write], pat("*:env/prod"))],
    })
    .unwrap();
    p.add_principal(id("ed"), "Ed", PrincipalKind::User)
        .unwrap();
    let team = GroupName::parse("payments-team").unwrap();
    p.add_group(team.clone()).unwrap();
    p.add_member(&team, &id("ed")).unwrap();
    p.grant_role(&id("ed"), &role("editor")).unwrap();
    p.bind(
        &Subject::Group(team.clone()),
        Binding::within(role("no-prod"), pat("payments")),
    )
    .unwrap();
    let e = p.explain(&id("ed"), Action::Write, &res("payments:env/prod"));
    assert!(!e.allowed);
    assert_eq!(
        e.deciding.unwrap().to_string(),
        "deny write on *:env/prod (role no-prod grant 0, bound on payments, through group payments-team)"
    );
    assert!(
        p.decide(&id("ed"), Action::Write, &res("orders:env/prod"))
            .is_allowed()
    );
    // Leaving the group ends the deny at once; removing the group too.
    p.remove_member(&team, &id("ed")).unwrap();
    assert!(
        p.decide(&id("ed"), Action::Write, &res("payments:env/prod"))
            .is_allowed()
    );
    p.add_member(&team, &id("ed")).unwrap();
    assert!(
        !p.decide(&id("ed"), Action::Write, &res("payments:env/prod"))
            .is_allowed()
    );
    p.remove_group(&team).unwrap();
    assert!(
        p.decide(&id("ed"), Action::Write, &res("payments:env/prod"))
            .is_allowed()
    );
}

#[test]
fn malformed_roles_and_bindings_are_refused() {
    let mut p = Policy::with_builtin_roles();
    let e = p
        .put_role(Role {
            name: role("empty"),
            description: String::new(),
            grants: vec![],
        })
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid role \"empty\": it has no grants; a role must allow or deny something"
    );
    let e = p
        .put_role(Role {
            name: role("nothing"),
            description: String::new(),
            grants: vec![Grant::allow(&[], pat("**"))],
        })
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid role \"nothing\": grant 0 names no action"
    );
    let e = p
        .put_role(Role {
            name: role("wordy"),
            description: "x".repeat(2000),
            grants: vec![Grant::allow(&[Action::Read], pat("**"))],
        })
        .unwrap_err();
    assert!(e.to_string().contains("2000 bytes long"), "{e}");
    assert!(matches!(
        p.bind(
            &Subject::Principal(id("ghost")),
            Binding::everywhere(role("viewer"))
        ),
        Err(confstrata_access::Error::NotFound {
            kind: "principal",
            ..
        })
    ));
    // A stored binding: a role name, or a table with role and on, nothing else.
    let b: Binding = serde_json::from_str(r#"{"role": "viewer", "on": "payments/**"}"#).unwrap();
    assert_eq!(b, Binding::within(role("viewer"), pat("payments/**")));
    for (bad, says) in [
        (
            r#"{"role": "viewer", "scope": "x"}"#,
            "unknown field `scope`",
        ),
        (r#"{"on": "payments"}"#, "missing field `role`"),
        (r#"{"role": "viewer", "on": "payments:"}"#, "the layer part"),
        (
            r#"{"role": "viewer", "on": "pay/../x"}"#,
            "the namespace part",
        ),
        (r#""bad role""#, "invalid role name"),
        ("7", "a role name, or a table"),
    ] {
        let e = serde_json::from_str::<Binding>(bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
}
