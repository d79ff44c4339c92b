//! Authorization per request: token check plus decision, on a policy of
//! realistic size (1,000 principals, 50 roles, 500 grants, 20 groups).
//!
//! Run: `cargo bench -p confstrata-benches --bench access`

use std::hint::black_box;

use confstrata_access::{
    Action, Grant, GroupName, Policy, PrincipalId, PrincipalKind, Resource, ResourcePattern, Role,
    RoleName, Token,
};
use confstrata_core::Timestamp;
use criterion::{Criterion, criterion_group, criterion_main};

const PRINCIPALS: usize = 1_000;
const ROLES: usize = 50;
const GRANTS_PER_ROLE: usize = 10;
const GROUPS: usize = 20;

fn role_name(i: usize) -> RoleName {
    RoleName::parse(&format!("role-{i}")).unwrap()
}

/// 50 roles of 10 grants each: allows over namespaces, layers and key
/// subtrees with `*` and `**`, and one deny in every role.
fn policy() -> (Policy, Vec<Token>) {
    let mut p = Policy::new();
    for r in 0..ROLES {
        let grants = (0..GRANTS_PER_ROLE)
            .map(|g| {
                let ns = (r * GRANTS_PER_ROLE + g) % 40;
                let (pattern, actions): (String, &[Action]) = match g {
                    0 => (format!("team{ns}/**"), &[Action::Read]),
                    1 => (
                        format!("team{ns}/app:env/*"),
                        &[Action::Read, Action::Write],
                    ),
                    2 => (
                        format!("team{ns}/app:env/*/region/*#db.*"),
                        &[Action::ReadSecrets],
                    ),
                    3 => (format!("team{ns}/app:env/staging"), &[Action::Publish]),
                    4 => (format!("shared/*:defaults#s{g}"), &[Action::Read]),
                    5 => (format!("team{ns}/**:**#features.**"), &[Action::Write]),
                    6 => (
                        format!("team{ns}/app:env/prod#db.password"),
                        &[Action::ReadSecrets],
                    ),
                    7 => (format!("team{ns}/svc{g}"), &[Action::Read, Action::Write]),
                    8 => (format!("team{ns}/app:instance/*"), &[Action::Read]),
                    _ => (
                        format!("team{ns}/app:env/prod#payments.keys"),
                        &[Action::ReadSecrets],
                    ),
                };
                let on = ResourcePattern::parse(&pattern).unwrap();
                if g == GRANTS_PER_ROLE - 1 {
                    Grant::deny(actions, on)
                } else {
                    Grant::allow(actions, on)
                }
            })
            .collect();
        p.put_role(Role {
            name: role_name(r),
            description: String::new(),
            grants,
        })
        .expect("a well-formed custom role");
    }
    for g in 0..GROUPS {
        let name = GroupName::parse(&format!("group-{g}")).unwrap();
        p.add_group(name.clone()).unwrap();
        p.grant_group_role(&name, &role_name(g)).unwrap();
        p.grant_group_role(&name, &role_name(g + GROUPS)).unwrap();
    }
    let mut tokens = Vec::new();
    for i in 0..PRINCIPALS {
        let id = PrincipalId::parse(&format!("user-{i}")).unwrap();
        p.add_principal(id.clone(), format!("User {i}"), PrincipalKind::User)
            .unwrap();
        for r in [i % ROLES, (i * 7 + 3) % ROLES, (i * 13 + 5) % ROLES] {
            p.grant_role(&id, &role_name(r)).unwrap();
        }
        p.add_member(
            &GroupName::parse(&format!("group-{}", i % GROUPS)).unwrap(),
            &id,
        )
        .unwrap();
        tokens.push(p.issue_token(&id, "bench", Timestamp(0)).unwrap());
    }
    (p, tokens)
}

fn authorization(c: &mut Criterion) {
    let (policy, tokens) = policy();
    // user-1 holds role-1 (directly) and role-1, role-21 (group-1): role-1's
    // grant 1 covers `team11/app:env/*` (namespace (1 * 10 + 1) % 40).
    let token = &tokens[1];
    let header = format!("Bearer {}", token.expose_secret());
    let allowed = Resource::parse("team11/app:env/prod#db.pool.max").unwrap();
    let refused = Resource::parse("team39/other:env/prod#db.pool.max").unwrap();
    let who = policy.authenticate(token).unwrap().id().clone();
    assert!(policy.decide(&who, Action::Write, &allowed).is_allowed());
    assert!(!policy.decide(&who, Action::Write, &refused).is_allowed());

    let mut g = c.benchmark_group("authorize_1000_principals_50_roles_500_grants");
    g.bench_function("header_parse_token_check_and_decision_allowed", |b| {
        b.iter(|| {
            let t = Token::from_authorization(Some(black_box(&header))).unwrap();
            black_box(
                policy
                    .authorize(&t, Action::Write, black_box(&allowed))
                    .is_ok(),
            )
        })
    });
    g.bench_function("header_parse_token_check_and_decision_refused", |b| {
        b.iter(|| {
            let t = Token::from_authorization(Some(black_box(&header))).unwrap();
            black_box(
                policy
                    .authorize(&t, Action::Write, black_box(&refused))
                    .is_ok(),
            )
        })
    });
    g.bench_function("token_parse", |b| {
        b.iter(|| black_box(Token::from_authorization(Some(black_box(&header))).is_ok()))
    });
    g.bench_function("token_check_only", |b| {
        b.iter(|| black_box(policy.authenticate(black_box(token)).is_ok()))
    });
    g.bench_function("decision_only_allowed", |b| {
        b.iter(|| black_box(policy.decide(black_box(&who), Action::Write, black_box(&allowed))))
    });
    g.bench_function("decision_only_refused", |b| {
        b.iter(|| black_box(policy.decide(black_box(&who), Action::Write, black_box(&refused))))
    });
    g.finish();
}

criterion_group!(benches, authorization);
criterion_main!(benches);
