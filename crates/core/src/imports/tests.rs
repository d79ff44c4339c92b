use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::{KeyPath, LayerInput, Provenance, resolve};

fn spec(v: serde_json::Value) -> NamespaceSpec {
    serde_json::from_value(v).expect("a declaration")
}

fn ns(name: &str, imports: &[&str]) -> NamespaceSpec {
    spec(json!({"name": name, "levels": ["defaults", "env/{env}"], "imports": imports}))
}

fn order_of(root: &str, all: &[NamespaceSpec]) -> Result<Vec<String>> {
    let by_name: BTreeMap<NamespaceName, NamespaceSpec> =
        all.iter().map(|s| (s.name.clone(), s.clone())).collect();
    let root = by_name[&root.parse::<NamespaceName>()?].clone();
    let order = import_order(&root, &mut |n| Ok(by_name.get(n).cloned()))?;
    Ok(order.iter().map(|s| s.name.to_string()).collect())
}

#[test]
fn imports_come_first_in_order_and_a_diamond_counts_once() {
    let all = [
        ns("base", &[]),
        ns("shared/logging", &["base"]),
        ns("shared/tls", &["base"]),
        ns("web", &["shared/logging", "shared/tls"]),
    ];
    assert_eq!(
        order_of("web", &all).expect("an order"),
        ["base", "shared/logging", "shared/tls", "web"]
    );
    assert_eq!(order_of("base", &all).expect("an order"), ["base"]);
}

#[test]
fn a_cycle_is_refused_naming_it() {
    let all = [ns("a", &["b"]), ns("b", &["c"]), ns("c", &["a"])];
    let err = order_of("a", &all).expect_err("a cycle").to_string();
    assert!(err.contains("cycle: a -> b -> c -> a"), "{err}");
    let err = order_of("b", &all).expect_err("a cycle").to_string();
    assert!(err.contains("cycle: b -> c -> a -> b"), "{err}");
}

#[test]
fn a_missing_import_and_a_chain_too_deep_are_refused() {
    let err = order_of("web", &[ns("web", &["gone"])])
        .expect_err("missing")
        .to_string();
    assert!(
        err.contains("web imports gone, which does not exist"),
        "{err}"
    );

    let mut all: Vec<NamespaceSpec> = (0..=MAX_IMPORT_DEPTH + 1)
        .map(|i| {
            let next = format!("n{}", i + 1);
            ns(&format!("n{i}"), &[next.as_str()])
        })
        .collect();
    all.push(ns(&format!("n{}", MAX_IMPORT_DEPTH + 2), &[]));
    let err = order_of("n0", &all).expect_err("too deep").to_string();
    assert!(err.contains("deeper than 16"), "{err}");
    // Exactly the limit is fine.
    assert_eq!(
        order_of("n2", &all).expect("at the limit").len(),
        MAX_IMPORT_DEPTH + 1
    );
}

#[test]
fn a_declaration_may_not_import_itself_or_one_namespace_twice() {
    let err = ns("web", &["web"])
        .validate()
        .expect_err("self")
        .to_string();
    assert!(err.contains("it imports itself"), "{err}");
    let err = ns("web", &["a", "a"])
        .validate()
        .expect_err("twice")
        .to_string();
    assert!(err.contains("imports a twice"), "{err}");
    ns("web", &["a", "b"]).validate().expect("two imports");
}

#[test]
fn an_import_contributes_the_layers_of_the_variables_it_uses_within_its_matrix() {
    let shared = spec(json!({
        "name": "shared",
        "levels": ["defaults", "env/{env}", "dc/{dc}"],
        "matrix": {"env": ["dev", "prod"]},
    }));
    let web = spec(json!({
        "name": "web",
        "levels": ["defaults", "env/{env}/region/{region}"],
        "matrix": {"env": ["dev", "qa", "prod"], "region": ["eu"]},
        "imports": ["shared"],
    }));
    let order = [shared, web];
    let ctx =
        |env: &str| Context::from([("env".into(), env.into()), ("region".into(), "eu".into())]);
    let shown = |env| -> Vec<String> {
        chain_layers(&order, &ctx(env))
            .expect("layers")
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    // `dc` is not bound: that level selects nothing.
    assert_eq!(
        shown("prod"),
        [
            "shared:defaults",
            "shared:env/prod",
            "web:defaults",
            "web:env/prod/region/eu"
        ]
    );
    // `qa` is outside the import's matrix: its env level selects nothing.
    assert_eq!(
        shown("qa"),
        ["shared:defaults", "web:defaults", "web:env/qa/region/eu"]
    );
    // The root's own context is checked as always.
    chain_layers(&order, &ctx("test")).expect_err("outside the root's matrix");
}

#[test]
fn provenance_and_explain_name_the_imported_namespace() {
    let shared: NamespaceName = "shared/logging".parse().expect("a name");
    let d = crate::LayerPath::parse("defaults").expect("a path");
    let base = json!({"log": {"level": "info", "format": "json"}});
    let own = json!({"log": {"level": "warn"}});
    let r = resolve(&[
        LayerInput {
            namespace: Some(&shared),
            layer: &d,
            revision: 1,
            document: base.as_object().expect("a table"),
        },
        LayerInput {
            namespace: None,
            layer: &d,
            revision: 2,
            document: own.as_object().expect("a table"),
        },
    ]);
    let key = |k| KeyPath::parse(k).expect("a key");
    let (_, from) = r.get(&key("log.format")).expect("resolves");
    assert_eq!(
        from,
        Provenance {
            namespace: Some(shared.clone()),
            layer: d.clone(),
            revision: 1
        }
    );
    let (_, from) = r.get(&key("log.level")).expect("resolves");
    assert_eq!(from.namespace, None);
    let explained = r.explain(&key("log.level"));
    assert_eq!(explained.entries.len(), 2);
    assert!(explained.entries[0].winner && explained.entries[0].namespace.is_none());
    assert!(!explained.entries[1].winner);
    assert_eq!(explained.entries[1].namespace.as_ref(), Some(&shared));
    assert_eq!(
        serde_json::to_value(&from).expect("json"),
        json!({"layer": "defaults", "revision": 2})
    );
}
