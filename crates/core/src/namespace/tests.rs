use super::*;

pub(crate) fn webshop() -> NamespaceSpec {
    let spec: NamespaceSpec = serde_json::from_value(serde_json::json!({
        "name": "webshop",
        "levels": ["defaults", "env/{env}", "region/{region}", "env/{env}/region/{region}", "instance/{instance}"],
        "matrix": {"env": ["dev", "staging", "prod"], "region": ["eu", "us"]},
    }))
    .unwrap();
    spec.validate().unwrap();
    spec
}

#[test]
fn layers_for_a_context_skip_levels_with_missing_variables() {
    let ns = webshop();
    let ctx = parse_context("env=prod").unwrap();
    let l: Vec<String> = ns
        .layers_for(&ctx)
        .unwrap()
        .iter()
        .map(|l| l.to_string())
        .collect();
    assert_eq!(l, ["defaults", "env/prod"]);
    let ctx = parse_context("env=prod, region=eu,instance=i-7").unwrap();
    let l: Vec<String> = ns
        .layers_for(&ctx)
        .unwrap()
        .iter()
        .map(|l| l.to_string())
        .collect();
    assert_eq!(
        l,
        [
            "defaults",
            "env/prod",
            "region/eu",
            "env/prod/region/eu",
            "instance/i-7"
        ]
    );
}

#[test]
fn bad_contexts_are_named() {
    let ns = webshop();
    let e = ns
        .layers_for(&parse_context("colour=red").unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("\"colour\" is not used by namespace \"webshop\""),
        "{e}"
    );
    let e = ns
        .layers_for(&parse_context("env=qa").unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("allowed: dev, staging, prod"), "{e}");
    let e = ns
        .layers_for(&parse_context("instance=../x").unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("single path segment"), "{e}");
    assert!(parse_context("env").is_err());
    assert!(parse_context("env=a,env=b").is_err());
}

#[test]
fn level_of_checks_the_matrix() {
    let ns = webshop();
    assert_eq!(
        ns.level_of(&LayerPath::parse("env/prod/region/eu").unwrap())
            .unwrap(),
        3
    );
    let e = ns
        .level_of(&LayerPath::parse("env/qa").unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("matches no level") && e.contains("allowed: dev, staging, prod"),
        "{e}"
    );
    assert!(ns.level_of(&LayerPath::parse("nope").unwrap()).is_err());
}

#[test]
fn bad_specs_are_rejected() {
    for (levels, matrix, expected) in [
        (vec![], serde_json::json!({}), "declares no levels"),
        (
            vec!["defaults", "defaults"],
            serde_json::json!({}),
            "declared twice",
        ),
        (
            vec!["env/{env}", "env/prod"],
            serde_json::json!({}),
            "can name the same layer",
        ),
        (
            vec!["defaults"],
            serde_json::json!({"env": ["a"]}),
            "used by no level",
        ),
        (
            vec!["env/{env}"],
            serde_json::json!({"env": []}),
            "has no values",
        ),
    ] {
        let spec: NamespaceSpec = serde_json::from_value(serde_json::json!({
            "name": "t", "levels": levels, "matrix": matrix,
        }))
        .unwrap();
        let e = spec.validate().unwrap_err().to_string();
        assert!(e.contains(expected), "{e}");
    }
    for bad in ["env/{env", "env/x{env}", "{Env}", "a//b", "{env}/{env}"] {
        assert!(LevelTemplate::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn matrix_contexts_is_the_product() {
    assert_eq!(webshop().matrix_contexts().len(), 6);
}

#[test]
fn only_a_table_is_a_validation_chain() {
    use crate::validation::Validation;
    for text in ["[]", "[null]", "null", "\"x\"", "1", "true"] {
        let e = serde_json::from_str::<Validation>(text).unwrap_err();
        assert!(e.to_string().contains("a table"), "{text}: {e}");
    }
    assert!(serde_json::from_str::<Validation>("{}").unwrap().is_empty());
    assert!(serde_json::from_str::<Validation>("{\"rulez\": []}").is_err());
    let v: Validation =
        serde_json::from_str("{\"rules\": [{\"id\": \"a\", \"check\": \"true\"}]}").unwrap();
    assert_eq!(v.rules.len(), 1);
}
