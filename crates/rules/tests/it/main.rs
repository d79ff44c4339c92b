//! Integration tests of `confstrata-rules` through its public API.

mod chain;
mod compile;
mod cross;
mod library;
mod props;
mod sandbox;
mod user_library;

use std::collections::BTreeMap;

use confstrata_core::{Context, Document, NamespaceName, Validation};
use confstrata_rules::{Compiled, Finding, Limits, Lookup};
use serde_json::Value;

/// A `Lookup` for chains that read no other namespace.
pub(crate) struct NoLookup;

impl Lookup for NoLookup {
    fn resolved(&self, _: &NamespaceName, _: &Context) -> Result<Option<Document>, String> {
        Ok(None)
    }
}

/// A `Lookup` test double: documents by namespace (the same for every
/// context unless a context-specific one is given), failures by namespace,
/// and a log of what was asked.
#[derive(Default)]
pub(crate) struct MapLookup {
    pub(crate) docs: BTreeMap<String, Document>,
    pub(crate) per_context: BTreeMap<(String, Context), Document>,
    pub(crate) failing: BTreeMap<String, String>,
    pub(crate) asked: std::sync::Mutex<Vec<String>>,
}

impl Lookup for MapLookup {
    fn resolved(&self, ns: &NamespaceName, ctx: &Context) -> Result<Option<Document>, String> {
        self.asked.lock().unwrap().push(ns.to_string());
        if let Some(reason) = self.failing.get(ns.as_str()) {
            return Err(reason.clone());
        }
        if let Some(doc) = self.per_context.get(&(ns.to_string(), ctx.clone())) {
            return Ok(Some(doc.clone()));
        }
        Ok(self.docs.get(ns.as_str()).cloned())
    }
}

pub(crate) fn validation(v: Value) -> Validation {
    serde_json::from_value(v).expect("a well-formed Validation")
}

pub(crate) fn compile(v: Value) -> Compiled {
    compile_with(v, &Limits::default())
}

pub(crate) fn compile_with(v: Value, limits: &Limits) -> Compiled {
    Compiled::compile(&"web".parse().unwrap(), &validation(v), limits)
        .unwrap_or_else(|e| panic!("should compile: {e}"))
}

/// The compile error's text.
pub(crate) fn compile_err(v: Value) -> String {
    match Compiled::compile(&"web".parse().unwrap(), &validation(v), &Limits::default()) {
        Ok(c) => panic!("should not compile: {c:?}"),
        Err(e) => e.to_string(),
    }
}

pub(crate) fn doc(v: Value) -> Document {
    match v {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

pub(crate) fn ctx(s: &str) -> Context {
    confstrata_core::parse_context(s).unwrap()
}

/// Checks `document` in context `env=prod` and renders each finding as its one line.
pub(crate) fn lines(compiled: &Compiled, document: Value) -> Vec<String> {
    render(&compiled.check(&ctx("env=prod"), &doc(document), &NoLookup))
}

pub(crate) fn render(findings: &[Finding]) -> Vec<String> {
    findings.iter().map(ToString::to_string).collect()
}

#[test]
fn compiled_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Compiled>();
}
