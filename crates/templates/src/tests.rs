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
            imports: Vec::new(),
            generators: Vec::new(),
        }
    }

    fn rendered(doc: &Document) -> Rendered {
        Rendered {
            spec: spec(),
            layers: vec![("defaults".parse().unwrap(), doc.clone())],
            parameters: Map::new(),
            generated: Vec::new(),
            sealed: Vec::new(),
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

mod generators {
    use super::*;
    use confstrata_core::KeyPath;

    fn postgres() -> Template {
        find("postgres-client").unwrap()
    }

    fn render(t: &Template, pairs: &[(&str, Value)]) -> Result<Rendered> {
        let params = t.resolve_parameters(&given(pairs))?;
        t.render(&ns(), &params)
    }

    #[test]
    fn generators_compute_values_per_layer_of_their_level() {
        let t = postgres();
        let r = render(
            &t,
            &[("host", json!("db.example.com")), ("pool_max", json!(40))],
        )
        .unwrap();
        let layer = |p: &str| r.layer(&p.parse().unwrap()).cloned().unwrap_or_default();
        assert_eq!(layer("env/dev")["pool"]["max_size"], json!(10));
        assert_eq!(layer("env/staging")["pool"]["max_size"], json!(10));
        assert!(!layer("env/prod").contains_key("pool"));
        assert_eq!(
            layer("env/prod/region/eu")["postgres"]["host"],
            json!("prod-eu.db.example.com")
        );
        assert_eq!(
            layer("env/dev/region/us")["postgres"]["host"],
            json!("dev-us.db.example.com")
        );
        // Provenance: the generator, the layers table, or nothing.
        let key = |k: &str| KeyPath::parse(k).unwrap();
        assert_eq!(
            r.source(&"env/dev".parse().unwrap(), &key("pool.max_size")),
            Some(Source::Generator("pool-by-env".into()))
        );
        assert_eq!(
            r.source(&"env/prod".parse().unwrap(), &key("postgres.sslmode")),
            Some(Source::Layers)
        );
        assert_eq!(
            r.source(&"env/prod".parse().unwrap(), &key("pool.max_size")),
            None
        );
        // The minimum wins over a quarter; localhost gets no regional host.
        let r = render(&t, &[("pool_max", json!(8)), ("pool_min", json!(4))]).unwrap();
        assert_eq!(
            r.layer(&"env/dev".parse().unwrap()).unwrap()["pool"]["max_size"],
            json!(4)
        );
        assert!(r.layer(&"env/prod/region/eu".parse().unwrap()).is_none());
        assert!(r.validate(&NoLookup).unwrap().is_empty());
        // Deterministic: the same inputs render the same output.
        assert_eq!(
            r,
            render(&t, &[("pool_max", json!(8)), ("pool_min", json!(4))]).unwrap()
        );
    }

    #[test]
    fn a_bad_generator_is_refused_when_the_template_is_checked() {
        let with = |level: &str, reads: &[&str], script: &str| {
            let mut t = postgres();
            t.generators = vec![GeneratorSpec {
                id: "g".into(),
                level: level.into(),
                description: String::new(),
                reads: reads.iter().map(|s| (*s).to_owned()).collect(),
                script: script.into(),
            }];
            t.check().map_err(|e| e.to_string())
        };
        let cases = [
            (
                with("env/{env}", &[], r#"config("platform")"#),
                "does not declare: add it to reads",
            ),
            (
                with("env/{env}", &["platform"], "#{}"),
                "never calls config(\"platform\")",
            ),
            (
                with("tier/{tier}", &[], "#{}"),
                "not one of the namespace's levels",
            ),
            (with("env/{env}", &[], "#{ a: "), "does not compile"),
            (
                with("env/{env}", &[], "loop {}"),
                "stopped after 100000 operations",
            ),
            (
                with("env/{env}", &[], "#{ postgres: #{ sslmode: \"disable\" } }"),
                "already set there",
            ),
            (with("env/{env}", &[], "42"), "must be a map"),
        ];
        for (got, says) in cases {
            let err = got.unwrap_err();
            assert!(err.contains(says), "{says}: {err}");
            assert!(err.contains("generator \"g\""), "{err}");
        }
        // A generator that reads another namespace compiles when checked
        // and runs when rendered with a lookup that has it.
        assert!(
            with(
                "env/{env}",
                &["platform"],
                r#"let p = config("platform"); ()"#
            )
            .is_ok()
        );
    }

    #[test]
    fn every_shipped_template_validates_clean_over_its_matrix() {
        for t in library().unwrap() {
            let r = t
                .render(&ns(), &t.resolve_parameters(&BTreeMap::new()).unwrap())
                .unwrap();
            let findings = r.validate(&NoLookup).unwrap();
            assert!(findings.is_empty(), "{}: {findings:?}", t.id());
        }
    }
}

mod reads {
    use super::*;

    /// A platform namespace whose max_connections depends on the env.
    struct Platform;
    impl Lookup for Platform {
        fn resolved(
            &self,
            ns: &NamespaceName,
            ctx: &Context,
        ) -> std::result::Result<Option<Document>, String> {
            if ns.as_str() != "platform" {
                return Ok(None);
            }
            let max = match ctx.get("env").map(String::as_str) {
                Some("prod") => 400,
                _ => 40,
            };
            Ok(json!({"postgres": {"max_connections": max}})
                .as_object()
                .cloned())
        }
    }

    #[test]
    fn a_generator_derives_limits_from_a_namespace_it_declares() {
        let mut t = find("postgres-client").unwrap();
        t.generators = vec![GeneratorSpec {
            id: "pool-from-platform".into(),
            level: "env/{env}".into(),
            description: "a tenth of the server's connections".into(),
            reads: vec!["platform".into()],
            script: r#"#{ pool: #{ max_size: config("platform").postgres.max_connections / 10 } }"#
                .into(),
        }];
        t.check().unwrap();
        let params = t.resolve_parameters(&BTreeMap::new()).unwrap();
        let r = t.render_with(&ns(), &params, &Platform).unwrap();
        let size = |env: &str| {
            r.layer(&format!("env/{env}").parse().unwrap()).unwrap()["pool"]["max_size"].clone()
        };
        assert_eq!((size("prod"), size("dev")), (json!(40), json!(4)));
        // Without the namespace, the render fails naming it.
        let err = t.render(&ns(), &params).unwrap_err().to_string();
        assert!(
            err.contains("pool-from-platform") && err.contains("no namespace named \"platform\""),
            "{err}"
        );
    }
}

mod secrets {
    use super::*;
    use confstrata_core::KeyPath;

    /// http-service@1 with a secret parameter filling `db.password`, used
    /// in a rule message, and seen by a generator.
    fn with_secret() -> Template {
        let mut t = http();
        t.parameters["properties"]["db_password"] = json!({"type": "string", "minLength": 12, "x-secret": true, "description": "the password"});
        t.parameters["required"] = json!(["db_password"]);
        t.layers.get_mut("defaults").unwrap().insert(
            "db".into(),
            json!({"password": {"$param": "db_password"}, "user": "app"}),
        );
        t.namespace.validation.rules.push(
            serde_json::from_value(
                json!({"id": "shown", "check": "false", "severity": "warning",
                "message": "the password is {{db.password}}"}),
            )
            .unwrap(),
        );
        t.generators.push(GeneratorSpec {
            id: "echo".into(),
            level: "defaults".into(),
            description: String::new(),
            reads: Vec::new(),
            script: "#{ echoed: params.db_password }".into(),
        });
        t
    }

    #[test]
    fn a_secret_parameter_is_sealed_masked_and_never_recorded() {
        let t = with_secret();
        assert_eq!(
            t.secret_parameters().into_iter().collect::<Vec<_>>(),
            ["db_password"]
        );
        let params = t
            .resolve_parameters(&given(&[("db_password", json!("s3cret-canary-77"))]))
            .unwrap();
        let r = t.render(&ns(), &params).unwrap();
        let key = KeyPath::parse("db.password").unwrap();
        assert_eq!(r.sealed, [("defaults".parse().unwrap(), key.clone())]);
        // Recorded and shown as the mask; a generator sees the mask.
        let text = format!("{:?} {:?}", r.spec.template, r.parameters);
        assert!(
            !text.contains("s3cret-canary-77") && text.contains(SEALED),
            "{text}"
        );
        assert_eq!(
            r.layer(&"defaults".parse().unwrap()).unwrap()["echoed"],
            json!(SEALED)
        );
        // A rule shows the mask, never the value.
        let findings = r.validate(&NoLookup).unwrap();
        assert!(!findings.is_empty());
        assert!(
            findings
                .iter()
                .all(|f| !f.message.contains("s3cret-canary-77")),
            "{findings:?}"
        );
        // The value goes in by a sealing set, not in the layer's put.
        let ops = r.create_ops();
        let sets: Vec<&Op> = ops
            .iter()
            .filter(|op| matches!(op, Op::Set { secret: true, .. }))
            .collect();
        assert_eq!(sets.len(), 1, "{ops:?}");
        assert!(
            matches!(sets[0], Op::Set { key: k, value, .. } if *k == key && *value == json!("s3cret-canary-77"))
        );
        for op in &ops {
            if let Op::Put { document, .. } = op {
                assert!(
                    !Value::Object(document.clone())
                        .to_string()
                        .contains("s3cret-canary-77")
                );
            }
        }
        // Read back from a namespace's origin, the mask stands for the
        // stored secret; anything else is checked.
        let again = t
            .resolve_parameters(&r.parameters.clone().into_iter().collect())
            .unwrap();
        assert_eq!(again["db_password"], json!(SEALED));
        assert!(
            t.resolve_parameters(&given(&[("db_password", json!("short"))]))
                .is_err()
        );
        // A secret inside an array is refused.
        let mut t = with_secret();
        t.layers
            .get_mut("defaults")
            .unwrap()
            .insert("list".into(), json!([{"$param": "db_password"}]));
        let err = t.render(&ns(), &params).unwrap_err().to_string();
        assert!(err.contains("not an item of an array"), "{err}");
    }
}
