//! Generators: rhai scripts that compute configuration values (a template's
//! per-environment values: replicas by tier, URLs by region), in the same
//! sandbox and under the same [`Limits`] as the rules.

use std::collections::BTreeSet;
use std::sync::Arc;

use confstrata_core::{Context, Document, Error, NamespaceName};
use rhai::{AST, Dynamic, Scope};
use serde_json::{Map, Number, Value};

use crate::script::{self, Origin, Sandbox};
use crate::{Limits, Lookup, on_check_stack};

/// A generator, compiled: a rhai script whose value is a table of
/// configuration values.
///
/// The script sees `ctx` (the context it runs for, a map of strings) and
/// `params` (a map of parameter values), may define functions, may read
/// other namespaces' resolved configuration for the same context with
/// `config("name")` (a string literal, as in rules, so
/// [`Generator::references`] knows every namespace it reads), and ends with
/// its value: a map (`#{ replicas: 3 }`) or `()` for nothing. It runs with
/// only pure packages: no clock, no randomness, no I/O, so the same inputs
/// give the same output.
///
/// ```
/// use confstrata_core::{Context, Document, NamespaceName};
/// use confstrata_rules::{Generator, Limits, Lookup};
/// use serde_json::json;
///
/// struct NoOther;
/// impl Lookup for NoOther {
///     fn resolved(&self, _: &NamespaceName, _: &Context) -> Result<Option<Document>, String> {
///         Ok(None)
///     }
/// }
///
/// let g = Generator::compile(
///     "generator replicas",
///     r#"
///     fn replicas(env, base) { if env == "prod" { base * 3 } else { 1 } }
///     #{ replicas: replicas(ctx.env, params.base), url: `https://${ctx.env}.example.com` }
///     "#,
///     &Limits::default(),
/// ).unwrap();
/// let ctx: Context = [("env".to_owned(), "prod".to_owned())].into();
/// let params = json!({"base": 2}).as_object().unwrap().clone();
/// let out = g.run(&ctx, &params, &NoOther).unwrap().unwrap();
/// assert_eq!(json!(out), json!({"replicas": 6, "url": "https://prod.example.com"}));
/// ```
#[derive(Clone)]
pub struct Generator {
    inner: Arc<Inner>,
}

struct Inner {
    what: String,
    source: String,
    ast: AST,
    sandbox: Sandbox,
    references: BTreeSet<NamespaceName>,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("what", &self.inner.what)
            .field("references", &self.inner.references)
            .finish()
    }
}

impl Generator {
    /// Compiles a generator; `what` names it in errors (`template
    /// web@1 generator "replicas"`). Refused, naming the line and column: a
    /// script that does not compile, uses a variable other than `ctx`,
    /// `params` and its own, or calls `config()` with anything but a string
    /// literal naming a valid namespace.
    pub fn compile(what: &str, source: &str, limits: &Limits) -> Result<Generator, Error> {
        let invalid = |reason: String| Error::invalid(what, reason);
        let mut references = BTreeSet::new();
        for name in script::scan_config_calls(source).map_err(invalid)? {
            let ns = NamespaceName::parse(&name)
                .map_err(|e| invalid(format!("config({name:?}): {e}")))?;
            references.insert(ns);
        }
        let engine = script::engine(limits);
        let ast = engine
            .compile_with_scope(&scope(Dynamic::UNIT, Dynamic::UNIT), source)
            .map_err(|rhai::ParseError(kind, pos)| {
                let at = script::where_(pos, 0, script::line_count(source))
                    .map(|w| format!("{w}: "))
                    .unwrap_or_default();
                invalid(format!("the script does not compile: {at}{kind}"))
            })?;
        Ok(Generator {
            inner: Arc::new(Inner {
                what: what.to_owned(),
                source: source.to_owned(),
                ast,
                sandbox: Sandbox {
                    engine,
                    limits: limits.clone(),
                    lib: AST::empty(),
                    validators: std::collections::BTreeMap::new(),
                },
                references,
            }),
        })
    }

    /// The namespaces the script reads with `config("name")`.
    pub fn references(&self) -> &BTreeSet<NamespaceName> {
        &self.inner.references
    }

    /// Runs the script for one context with `params`; `config("name")`
    /// reads `lookup` for the same context. The value is a document, or
    /// `None` when the script ends with `()`.
    ///
    /// Every failure is an `Err` in words, never a panic: a script error
    /// with its line and column, a limit crossed (operations, call depth,
    /// sizes, wall time), a value that is not a map, a key holding `()` or
    /// a value configuration cannot hold (a function pointer, NaN), a
    /// result nested deeper than `max_depth`.
    pub fn run(
        &self,
        context: &Context,
        params: &Document,
        lookup: &dyn Lookup,
    ) -> Result<Option<Document>, String> {
        let inner = &*self.inner;
        on_check_stack(|| {
            let fetched = script::fetch(&inner.references, context, lookup);
            let result = script::with_fetched(fetched, || {
                inner.sandbox.run(|| {
                    let mut scope = scope(
                        script::context_to_dynamic(context),
                        script::document_to_dynamic(params),
                    );
                    inner
                        .sandbox
                        .engine
                        .eval_ast_with_scope::<Dynamic>(&mut scope, &inner.ast)
                })
            });
            match result {
                Err(err) => Err(format!(
                    "script error: {}",
                    inner.sandbox.explain(&err, Origin::Script(&inner.source))
                )),
                Ok(value) if value.is_unit() => Ok(None),
                Ok(value) => match to_value(&value, "", 0, &inner.sandbox.limits)? {
                    Value::Object(doc) => Ok(Some(doc)),
                    other => Err(format!(
                        "its value must be a map of configuration values (#{{ key: value }}) or (), not {}",
                        kind(&other)
                    )),
                },
            }
        })?
    }
}

fn scope(ctx: Dynamic, params: Dynamic) -> Scope<'static> {
    let mut scope = Scope::new();
    scope.push("ctx", ctx);
    scope.push("params", params);
    scope
}

/// How deep a generated value may nest: a layer document's limit.
const MAX_DEPTH: usize = 32;

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "()",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a map",
    }
}

/// Converts a script's value into JSON, naming the key path of anything
/// configuration cannot hold.
fn to_value(d: &Dynamic, path: &str, depth: usize, limits: &Limits) -> Result<Value, String> {
    let at = || {
        if path.is_empty() {
            "its value".to_owned()
        } else {
            format!("key {path}")
        }
    };
    if depth > MAX_DEPTH {
        return Err(format!(
            "{} nests deeper than {MAX_DEPTH} levels, the limit of a layer document",
            at()
        ));
    }
    if d.is_unit() {
        return Err(format!(
            "{} is () (nothing); leave the key out instead",
            at()
        ));
    }
    if let Ok(b) = d.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Ok(i) = d.as_int() {
        return Ok(Value::Number(i.into()));
    }
    if let Ok(f) = d.as_float() {
        return Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| format!("{} is {f}, which configuration cannot hold", at()));
    }
    if let Ok(c) = d.as_char() {
        return Ok(Value::String(c.to_string()));
    }
    if d.is_string() {
        return Ok(Value::String(d.clone().into_string().unwrap_or_default()));
    }
    if let Some(items) = d.read_lock::<rhai::Array>() {
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(to_value(item, &format!("{path}[{i}]"), depth + 1, limits)?);
        }
        return Ok(Value::Array(out));
    }
    if let Some(map) = d.read_lock::<rhai::Map>() {
        if limits.max_map_size > 0 && map.len() > limits.max_map_size {
            return Err(format!(
                "{} has {} entries, over the limit of {}",
                at(),
                map.len(),
                limits.max_map_size
            ));
        }
        let mut out = Map::new();
        for (k, v) in map.iter() {
            let here = if path.is_empty() {
                k.to_string()
            } else {
                format!("{path}.{k}")
            };
            out.insert(k.to_string(), to_value(v, &here, depth + 1, limits)?);
        }
        return Ok(Value::Object(out));
    }
    Err(format!(
        "{} is a {}, which configuration cannot hold (booleans, numbers, strings, arrays and maps)",
        at(),
        d.type_name()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    struct Platform;
    impl Lookup for Platform {
        fn resolved(&self, ns: &NamespaceName, ctx: &Context) -> Result<Option<Document>, String> {
            Ok((ns.as_str() == "platform").then(|| {
                let max = if ctx.get("env").map(String::as_str) == Some("prod") {
                    500
                } else {
                    50
                };
                json!({"postgres": {"max_connections": max}})
                    .as_object()
                    .cloned()
                    .unwrap_or_default()
            }))
        }
    }

    fn ctx(env: &str) -> Context {
        [("env".to_owned(), env.to_owned())].into()
    }

    fn params(v: serde_json::Value) -> Document {
        v.as_object().cloned().unwrap_or_default()
    }

    /// Limits whose wall time no debug run under load reaches, so the
    /// limit under test is the one that stops the script.
    fn untimed() -> Limits {
        Limits {
            max_duration: Duration::from_secs(600),
            ..Limits::default()
        }
    }

    fn run(source: &str, env: &str) -> Result<Option<Document>, String> {
        let g = Generator::compile("generator g", source, &untimed()).map_err(|e| e.to_string())?;
        g.run(&ctx(env), &params(json!({"instances": 4})), &Platform)
    }

    #[test]
    fn computes_values_from_the_context_parameters_and_other_namespaces() {
        let source = r#"
            let max = config("platform").postgres.max_connections;
            let pool = max / params.instances;
            #{ db: #{ pool: pool, url: `postgres://db.${ctx.env}.internal/app` }, ratio: 0.5, tags: ["a", 'b'] }
        "#;
        let out = run(source, "prod").unwrap().unwrap();
        assert_eq!(
            json!(out),
            json!({"db": {"pool": 125, "url": "postgres://db.prod.internal/app"}, "ratio": 0.5, "tags": ["a", "b"]})
        );
        let out = run(source, "dev").unwrap().unwrap();
        assert_eq!(out["db"]["pool"], json!(12));
        let g = Generator::compile("g", source, &untimed()).unwrap();
        assert_eq!(
            g.references()
                .iter()
                .map(NamespaceName::as_str)
                .collect::<Vec<_>>(),
            ["platform"]
        );
    }

    #[test]
    fn unit_means_nothing() {
        assert_eq!(
            run(r#"if ctx.env == "prod" { #{ a: 1 } }"#, "dev").unwrap(),
            None
        );
    }

    #[test]
    fn bombs_are_stopped_and_reported() {
        let cases = [
            ("loop { }", "stopped after 100000 operations"),
            ("fn f(n) { f(n + 1) } f(0)", "nested deeper than 32 levels"),
            ("let s = \"x\"; loop { s += s; }", "went over the limit"),
            (
                "let m = #{}; for i in 0..40 { m = #{ a: m }; } m",
                "nests deeper than 32 levels",
            ),
        ];
        for (source, expect) in cases {
            let err = run(source, "prod").unwrap_err();
            assert!(err.contains(expect), "{source}: {err}");
        }
        // Sizes stop a script whose operations are not limited.
        let unlimited = Limits {
            max_operations: 0,
            ..untimed()
        };
        for source in [
            "let s = \"x\"; loop { s += s; }",
            "let m = #{}; for i in 0..100000 { m[`k${i}`] = i; } m",
            "let a = []; loop { a.push(1); }",
        ] {
            let g = Generator::compile("g", source, &unlimited).unwrap();
            let err = g
                .run(&ctx("prod"), &Document::new(), &Platform)
                .unwrap_err();
            assert!(
                err.contains("went over the limit") || err.contains("over the limit of"),
                "{source}: {err}"
            );
        }
        let timed = Limits {
            max_operations: 0,
            max_duration: Duration::from_millis(50),
            ..Limits::default()
        };
        let g = Generator::compile("g", "loop { }", &timed).unwrap();
        let err = g
            .run(&ctx("prod"), &Document::new(), &Platform)
            .unwrap_err();
        assert!(err.contains("running longer than 50ms"), "{err}");
    }

    #[test]
    fn bad_scripts_and_values_are_refused_in_words() {
        let refused = |source: &str| {
            Generator::compile("generator g", source, &untimed())
                .unwrap_err()
                .to_string()
        };
        assert!(
            refused("#{ a: nope }").contains("line 1"),
            "{}",
            refused("#{ a: nope }")
        );
        assert!(refused("let n = \"platform\"; config(n)").contains("string literal"));
        assert!(refused("config(\"Not A Name\")").contains("config(\"Not A Name\")"));

        let failed = |source: &str| run(source, "prod").unwrap_err();
        assert!(failed("42").contains("not a number"), "{}", failed("42"));
        assert!(failed("#{ a: () }").contains("key a is ()"));
        assert!(failed("#{ a: #{ b: [1, ()] } }").contains("key a.b[1] is ()"));
        assert!(
            failed("#{ f: 0.0 / 0.0 }").contains("key f is NaN"),
            "{}",
            failed("#{ f: 0.0 / 0.0 }")
        );
        assert!(
            failed("#{ f: Fn(\"x\") }").contains("key f is a Fn"),
            "{}",
            failed("#{ f: Fn(\"x\") }")
        );
        assert!(failed("throw \"no\"").contains("threw no"));
        assert!(failed("config(\"billing\")").contains("no namespace named \"billing\""));
        assert!(
            failed("\n\nctx.region").contains("line 3"),
            "{}",
            failed("\n\nctx.region")
        );
        // No clock, no randomness: the pure packages only.
        assert!(failed("timestamp()").contains("no function"));
        assert!(failed("rand()").contains("no function"));
    }
}
