use std::collections::BTreeMap;

use confstrata_core::serde_json::json;
use proptest::prelude::*;

use super::*;

fn http() -> Template {
    find("http-service").unwrap()
}

fn given(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn ns() -> NamespaceName {
    "checkout".parse().unwrap()
}

#[test]
fn every_shipped_template_reads_and_checks() {
    let all = library().unwrap();
    assert!(!all.is_empty());
    for t in &all {
        t.check().unwrap();
        assert!(!t.why.is_empty(), "{} says why", t.id());
        assert!(!t.references.is_empty(), "{} has references", t.id());
        assert!(
            t.parameters_list()
                .iter()
                .all(|p| !p.description.is_empty()),
            "{}: every parameter is described",
            t.id()
        );
    }
}

#[test]
fn parameters_are_typed_values_with_defaults() {
    let t = http();
    let params = t
        .resolve_parameters(&given(&[
            ("port", json!(9090)),
            ("public_host", json!(443)),
        ]))
        .unwrap();
    let r = t.render(&ns(), &params).unwrap();
    assert_eq!(r.spec.name, ns());
    let (layer, defaults) = &r.layers[0];
    assert_eq!(layer.as_str(), "defaults");
    assert_eq!(defaults["server"]["port"], json!(9090));
    assert_eq!(defaults["server"]["request_timeout_ms"], json!(5000));
    // A number given for a string parameter is the string.
    assert_eq!(defaults["server"]["public_url"], json!("https://443:9090/"));
    let ops = r.create_ops();
    assert!(matches!(
        ops[0],
        Op::PutNamespace {
            expect_revision: Some(0),
            ..
        }
    ));
    assert_eq!(ops.len(), 1 + r.layers.len());
}

#[test]
fn bad_parameters_name_the_parameter_and_what_it_expects() {
    let t = http();
    for (pairs, says) in [
        (vec![("port", json!("eighty"))], "parameter port"),
        (
            vec![("port", json!("eighty"))],
            "expects integer, 1..=65535",
        ),
        (vec![("port", json!(70000))], "parameter port"),
        (vec![("log_level", json!("loud"))], "one of \"debug\""),
        (vec![("colour", json!(1))], "parameter colour"),
        (vec![("colour", json!(1))], "its parameters: log_level"),
        (vec![("public_host", json!(""))], "parameter public_host"),
    ] {
        let err = t
            .resolve_parameters(&given(&pairs))
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{pairs:?}: {err}");
    }
    // A required parameter without a default is named when missing.
    let mut strict = t.clone();
    strict.parameters["required"] = json!(["service"]);
    strict.parameters["properties"]["service"] =
        json!({"type": "string", "description": "the service's name"});
    let err = strict
        .resolve_parameters(&BTreeMap::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"service\" is a required property"), "{err}");
}

#[test]
fn a_template_that_does_not_hold_together_is_refused() {
    let mut t = http();
    t.layers
        .get_mut("defaults")
        .unwrap()
        .insert("extra".into(), json!({"$param": "nope"}));
    let err = t.check().unwrap_err().to_string();
    assert!(err.contains("\"nope\""), "{err}");
    let mut t = http();
    t.parameters["properties"]["port"]["default"] = json!(0);
    let err = t.check().unwrap_err().to_string();
    assert!(
        err.contains("defaults do not pass") && err.contains("port"),
        "{err}"
    );
    let mut t = http();
    t.namespace.validation.rules[0].check = "cfg.server.(".into();
    assert!(
        t.check()
            .unwrap_err()
            .to_string()
            .contains("validation chain")
    );
    let mut t = http();
    t.layers
        .get_mut("defaults")
        .unwrap()
        .insert("broken".into(), json!({"$format": "{unclosed"}));
    assert!(t.check().is_err());
    assert!(matches!(
        find("no-such-template"),
        Err(Error::TemplateNotFound { .. })
    ));
    assert!(find("http-service@1").is_ok());
    assert!(find("http-service@9").is_err());
    assert!(find("http-service@x").is_err());
}

#[test]
fn format_escapes_braces() {
    let params: Map<String, Value> = [("a".to_owned(), json!("x")), ("n".to_owned(), json!(2))]
        .into_iter()
        .collect();
    assert_eq!(format_with("{{a}}={a}:{n}}}", &params).unwrap(), "{a}=x:2}");
    assert!(format_with("{a", &params).is_err());
    assert!(format_with("a}", &params).is_err());
    assert!(format_with("{}", &params).is_err());
    assert!(format_with("{missing}", &params).is_err());
}

proptest! {
    /// Whatever text a string parameter holds — quotes, newlines, `]]`,
    /// braces, TOML or JSON syntax — it lands as one string value at the
    /// keys that use it, and the document's shape does not change.
    #[test]
    fn a_parameter_cannot_change_a_documents_shape(host in "[ -~\n\t\"\\]\\[{}'#=]{1,60}") {
        let t = http();
        let Ok(params) = t.resolve_parameters(&given(&[("public_host", json!(host.clone()))])) else {
            // Only the schema's own bounds refuse a string here.
            prop_assert!(host.is_empty() || host.len() > 253);
            return Ok(());
        };
        let with = t.render(&ns(), &params).unwrap();
        let plain = t
            .render(&ns(), &t.resolve_parameters(&BTreeMap::new()).unwrap())
            .unwrap();
        let keys = |r: &Rendered| -> Vec<Vec<String>> {
            r.layers
                .iter()
                .map(|(_, d)| {
                    confstrata_core::doc::leaves(d)
                        .into_iter()
                        .map(|(k, _)| k.to_string())
                        .collect()
                })
                .collect()
        };
        prop_assert_eq!(keys(&with), keys(&plain));
        let url = with.layers[0].1["server"]["public_url"].as_str().unwrap().to_owned();
        prop_assert_eq!(url, format!("https://{host}:8080/"));
    }
}

mod upgrade {
    use confstrata_core::{KeyPath, LayerRecord, NamespaceRecord, NamespaceSpec, Op};
    use proptest::prelude::*;

    use super::*;

    fn spec() -> NamespaceSpec {
        NamespaceSpec {
            name: "web".parse().unwrap(),
            description: String::new(),
            levels: vec![confstrata_core::LevelTemplate::parse("defaults").unwrap()],
            matrix: BTreeMap::new(),
            validation: confstrata_core::Validation::default(),
            template: None,
        }
    }

    fn rendered(doc: &Document) -> Rendered {
        Rendered {
            spec: spec(),
            layers: vec![("defaults".parse().unwrap(), doc.clone())],
            parameters: Map::new(),
        }
    }

    /// A flat document over a few keys, values from a few choices, so the
    /// three sides agree and differ in every way.
    fn flat() -> impl Strategy<Value = Document> {
        proptest::collection::btree_map("[abcd]", 0i64..3, 0..4)
            .prop_map(|m| m.into_iter().map(|(k, v)| (k, json!(v))).collect())
    }

    fn apply(doc: &mut Document, ops: &[Op]) {
        for op in ops {
            match op {
                Op::Set { key, value, .. } => {
                    confstrata_core::doc::set(doc, key, value.clone()).unwrap();
                }
                Op::Unset { key, .. } => {
                    confstrata_core::doc::unset(doc, key);
                }
                _ => {}
            }
        }
    }

    proptest! {
        /// Local overrides are kept, the template's changes are taken
        /// where the namespace did not touch the key, conflicts are
        /// reported (and left as they are) exactly where both sides
        /// changed a key differently, and an upgrade to the same output is
        /// a no-op.
        #[test]
        fn a_three_way_merge_keeps_overrides_and_reports_conflicts(
            base in flat(), theirs in flat(), ours in flat(),
        ) {
            let current = NamespaceRecord { spec: spec(), revision: 7 };
            let layers = [LayerRecord::new("web".parse().unwrap(), "defaults".parse().unwrap(), ours.clone(), 5)];
            let up = plan_upgrade(&rendered(&base), &rendered(&theirs), &current, &layers, None);
            let mut result = ours.clone();
            apply(&mut result, &up.ops);
            for k in ["a", "b", "c", "d"] {
                let key = KeyPath::parse(k).unwrap();
                let (b, t, o, r) = (base.get(k), theirs.get(k), ours.get(k), result.get(k));
                let conflict = up.conflicts.iter().any(|c| c.key == k);
                if o == b {
                    prop_assert_eq!(r, t, "{} untouched locally takes the template's", k);
                } else if t == b {
                    prop_assert_eq!(r, o, "{} overridden locally is kept", k);
                } else if o == t {
                    prop_assert_eq!(r, o);
                } else {
                    prop_assert!(conflict, "{} changed on both sides is a conflict", k);
                    prop_assert_eq!(r, o, "{} a conflict is left as it is", k);
                }
                prop_assert_eq!(conflict, o != b && t != b && o != t, "{}", k);
                let _ = key;
            }
            // Every layer op carries the layer's revision once.
            let expects: Vec<_> = up.ops.iter().filter_map(|op| match op {
                Op::Set { expect_revision: Some(r), .. } | Op::Unset { expect_revision: Some(r), .. } => Some(*r),
                _ => None,
            }).collect();
            prop_assert!(expects.len() <= 1 && expects.iter().all(|r| *r == 5));
            // Upgrading again, from the new output to itself, changes no key.
            let mut after = layers[0].clone();
            after.document = result;
            let again = plan_upgrade(&rendered(&theirs), &rendered(&theirs), &current, &[after], None);
            prop_assert!(again.changes.is_empty() && again.conflicts.is_empty());
            prop_assert_eq!(again.ops.len(), 1, "only the declaration's origin");
        }
    }

    #[test]
    fn resolving_takes_a_side() {
        let current = NamespaceRecord {
            spec: spec(),
            revision: 7,
        };
        let ours = [LayerRecord::new(
            "web".parse().unwrap(),
            "defaults".parse().unwrap(),
            json!({"a": 1}).as_object().unwrap().clone(),
            5,
        )];
        let base = rendered(json!({"a": 0}).as_object().unwrap());
        let theirs = rendered(json!({"a": 2}).as_object().unwrap());
        for (resolve, want) in [
            (None, 1),
            (Some(Resolve::Ours), 1),
            (Some(Resolve::Theirs), 2),
        ] {
            let up = plan_upgrade(&base, &theirs, &current, &ours, resolve);
            assert_eq!(up.conflicts.len(), 1);
            let mut doc = ours[0].document.clone();
            apply(&mut doc, &up.ops);
            assert_eq!(doc["a"], json!(want), "{resolve:?}");
        }
    }
}
