//! Namespaces: a hierarchy of level templates and a context matrix.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::path::{LayerPath, NamespaceName};
use crate::validation::Validation;

/// A context: the variables that pick layers, e.g. `env=prod, region=eu`.
pub type Context = BTreeMap<String, String>;

/// One part of a level template segment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Var(String),
}

/// A level template such as `env/{env}/region/{region}`: literal segments and
/// whole-segment `{variable}` placeholders.
#[derive(Clone, PartialEq, Eq)]
pub struct LevelTemplate {
    text: String,
    segments: Vec<Segment>,
}

impl LevelTemplate {
    /// Parses a level template.
    ///
    /// ```
    /// use confstrata_core::LevelTemplate;
    /// let t = LevelTemplate::parse("env/{env}/region/{region}").unwrap();
    /// assert_eq!(t.variables().collect::<Vec<_>>(), ["env", "region"]);
    /// assert!(LevelTemplate::parse("env/{env").is_err());
    /// ```
    pub fn parse(input: &str) -> Result<Self> {
        let err = |reason: String| Error::InvalidPath {
            kind: "level template",
            input: input.to_owned(),
            reason,
        };
        if input.is_empty() {
            return Err(err("it is empty".into()));
        }
        let mut segments = Vec::new();
        let mut literal_form = Vec::new();
        for (i, seg) in input.split('/').enumerate() {
            let n = i + 1;
            if let Some(inner) = seg.strip_prefix('{') {
                let Some(var) = inner.strip_suffix('}') else {
                    return Err(err(format!("segment {n} opens '{{' but does not close it")));
                };
                let valid = var
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                    && var
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                if !valid {
                    return Err(err(format!(
                        "segment {n}: variable {var:?} must be lowercase letters, digits and '_', starting with a letter"
                    )));
                }
                if segments.contains(&Segment::Var(var.to_owned())) {
                    return Err(err(format!("variable {var:?} appears twice")));
                }
                segments.push(Segment::Var(var.to_owned()));
                literal_form.push("x");
            } else {
                if seg.contains(['{', '}']) {
                    return Err(err(format!(
                        "segment {n}: a variable must fill a whole segment, like env/{{env}}"
                    )));
                }
                segments.push(Segment::Literal(seg.to_owned()));
                literal_form.push(seg);
            }
        }
        // The literal parts must themselves be valid layer path segments.
        LayerPath::parse(&literal_form.join("/")).map_err(|e| match e {
            Error::InvalidPath { reason, .. } => err(reason),
            other => other,
        })?;
        Ok(LevelTemplate {
            text: input.to_owned(),
            segments,
        })
    }

    /// The template text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The variables the template uses, in order.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Var(v) => Some(v.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// Fills the template from a context; `None` if a variable is missing.
    pub fn fill(&self, ctx: &Context) -> Option<LayerPath> {
        let mut parts = Vec::with_capacity(self.segments.len());
        for s in &self.segments {
            match s {
                Segment::Literal(l) => parts.push(l.as_str()),
                Segment::Var(v) => parts.push(ctx.get(v)?.as_str()),
            }
        }
        LayerPath::parse(&parts.join("/")).ok()
    }

    /// Matches a layer path against the template, returning the variable bindings.
    pub fn matches(&self, layer: &LayerPath) -> Option<Context> {
        let segs: Vec<&str> = layer.segments().collect();
        if segs.len() != self.segments.len() {
            return None;
        }
        let mut bindings = Context::new();
        for (t, s) in self.segments.iter().zip(segs) {
            match t {
                Segment::Literal(l) if l == s => {}
                Segment::Literal(_) => return None,
                Segment::Var(v) => {
                    bindings.insert(v.clone(), s.to_owned());
                }
            }
        }
        Some(bindings)
    }
}

impl fmt::Display for LevelTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for LevelTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for LevelTemplate {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::path::text_schema(
            "A level template: literal segments and whole-segment `{variable}` placeholders, e.g. `env/{env}/region/{region}`.",
        )
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for LevelTemplate {}

impl Serialize for LevelTemplate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for LevelTemplate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        LevelTemplate::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A namespace's declaration: its hierarchy of levels, general first, and its
/// context matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NamespaceSpec {
    /// The namespace name.
    pub name: NamespaceName,
    /// A human description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Level templates, most general first, e.g. `defaults`, `env/{env}`.
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub levels: Vec<LevelTemplate>,
    /// The values each matrix variable can take, e.g. `env = [dev, staging, prod]`.
    /// Variables used by levels but absent here (like `instance`) take any value.
    #[serde(default)]
    pub matrix: BTreeMap<String, Vec<String>>,
    /// What valid configuration looks like: schema, validators, rules.
    #[serde(default, skip_serializing_if = "Validation::is_empty")]
    pub validation: Validation,
    /// The template the namespace was made from, if any (`confstrata
    /// template apply`): `template diff` compares the layers with its
    /// output. Absent in declarations written before templates existed,
    /// which read as before; a binary older than this field refuses a
    /// declaration that has it (declarations refuse unknown fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateOrigin>,
    /// Shared namespaces whose layers are this one's lowest, for the same
    /// context (`shared/logging`, `shared/tls`): each import's own imports
    /// first, then the import, in the order given (a later one overrides
    /// an earlier one), then this namespace's own levels; a namespace
    /// reached twice counts once, at its first place. Cycles are refused
    /// when declared. Absent in older declarations, which read as before
    /// (a binary older than this field refuses a declaration that has it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<NamespaceName>,
    /// Generators declared on the namespace: rhai scripts that compute
    /// values of its layers per context of its matrix (replicas by tier,
    /// URLs by region, limits derived from a platform namespace). They run
    /// when asked (`confstrata ns generate`), and what they compute is
    /// written as an ordinary change set. Absent in older declarations,
    /// which read as before (a binary older than this field refuses a
    /// declaration that has it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub generators: Vec<GeneratorSpec>,
}

/// A generator: a rhai script run once per layer of one level over a
/// namespace's matrix, whose value (a map, or `()` for nothing) is merged
/// into that layer. Declared by a template or by a namespace; see
/// `confstrata_rules::Generator` for what a script sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GeneratorSpec {
    /// Its name, unique where it is declared: named by errors and by
    /// `explain`.
    pub id: String,
    /// The level whose layers it computes, one of the namespace's levels
    /// (`env/{env}`): it runs once per layer of that level the matrix
    /// selects, with `ctx` holding that layer's variables.
    pub level: String,
    /// What it computes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The namespaces it reads with `config("name")`: every one must be
    /// declared here (and every one declared must be read).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<String>,
    /// The script.
    pub script: String,
}

/// Checks the shape of generators declared over `levels` and `matrix`
/// (`what` names their owner in errors): ids non-empty and unique, each
/// level one of `levels` whose variables the matrix gives values (it would
/// otherwise never run), each read a valid namespace name, listed once.
/// Whether the scripts compile is `confstrata-rules`' to say.
pub fn check_generators(
    what: &str,
    levels: &[LevelTemplate],
    matrix: &BTreeMap<String, Vec<String>>,
    generators: &[GeneratorSpec],
) -> Result<()> {
    let mut ids = std::collections::BTreeSet::new();
    for g in generators {
        let here = format!("{what} generator {:?}", g.id);
        if g.id.trim().is_empty() || g.id.chars().any(char::is_control) {
            return Err(Error::invalid(
                &here,
                "a generator id must be non-empty, without control characters",
            ));
        }
        if !ids.insert(g.id.as_str()) {
            return Err(Error::invalid(
                &here,
                "declared twice; generator ids are unique where they are declared",
            ));
        }
        let Some(level) = levels.iter().find(|l| l.as_str() == g.level) else {
            let known: Vec<&str> = levels.iter().map(LevelTemplate::as_str).collect();
            return Err(Error::invalid(
                &here,
                format!(
                    "level {:?} is not one of the namespace's levels ({})",
                    g.level,
                    known.join(", ")
                ),
            ));
        };
        if let Some(var) = level.variables().find(|v| !matrix.contains_key(*v)) {
            return Err(Error::invalid(
                &here,
                format!(
                    "its level {} uses {{{var}}}, which the matrix gives no values, so it would never run",
                    g.level
                ),
            ));
        }
        for (i, r) in g.reads.iter().enumerate() {
            r.parse::<NamespaceName>()
                .map_err(|e| Error::invalid(&here, format!("reads[{i}]: {e}")))?;
            if g.reads[..i].contains(r) {
                return Err(Error::invalid(
                    &here,
                    format!("it lists {r:?} twice in reads"),
                ));
            }
        }
    }
    Ok(())
}

/// Which template, version and parameters made a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TemplateOrigin {
    /// The template's name: `http-service`.
    pub name: String,
    /// Its version.
    // As u64 with u32's bound: utoipa writes u32 as `int32`, whose range
    // tools take to end at 2^31 - 1.
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = u64, maximum = 4294967295_u64)
    )]
    pub version: u32,
    /// The parameters it was rendered with, defaults filled in.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub parameters: serde_json::Map<String, serde_json::Value>,
}

impl NamespaceSpec {
    /// Checks the spec's internal consistency.
    pub fn validate(&self) -> Result<()> {
        let what = format!("namespace {}", self.name);
        if self.levels.is_empty() {
            return Err(Error::invalid(
                what,
                "it declares no levels (add at least \"defaults\")",
            ));
        }
        for (i, l) in self.levels.iter().enumerate() {
            if self.levels[..i].iter().any(|o| o.as_str() == l.as_str()) {
                return Err(Error::invalid(what, format!("level {l} is declared twice")));
            }
            // Two templates that could produce the same layer path make the order ambiguous.
            for o in &self.levels[..i] {
                if templates_overlap(o, l) {
                    return Err(Error::invalid(
                        what,
                        format!("levels {o} and {l} can name the same layer"),
                    ));
                }
            }
        }
        for (i, import) in self.imports.iter().enumerate() {
            if import == &self.name {
                return Err(Error::invalid(what, "it imports itself"));
            }
            if self.imports[..i].contains(import) {
                return Err(Error::invalid(what, format!("it imports {import} twice")));
            }
        }
        let used: Vec<&str> = self
            .levels
            .iter()
            .flat_map(LevelTemplate::variables)
            .collect();
        for (var, values) in &self.matrix {
            if !used.contains(&var.as_str()) {
                return Err(Error::invalid(
                    what,
                    format!("matrix variable {var:?} is used by no level"),
                ));
            }
            if values.is_empty() {
                return Err(Error::invalid(
                    what,
                    format!("matrix variable {var:?} has no values"),
                ));
            }
            for v in values {
                LayerPath::parse(v)
                    .ok()
                    .filter(|p| p.segments().count() == 1)
                    .ok_or_else(|| {
                        Error::invalid(
                            what.clone(),
                            format!("matrix value {v:?} of {var:?} is not a valid path segment"),
                        )
                    })?;
            }
        }
        check_generators(&what, &self.levels, &self.matrix, &self.generators)
    }

    /// Every variable the levels use, sorted.
    pub fn variables(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .levels
            .iter()
            .flat_map(LevelTemplate::variables)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The part of `ctx` this namespace uses: its variables' bindings, the
    /// rest left out (how one namespace reads another for the same
    /// context: cross-namespace rules, generators).
    pub fn restrict(&self, ctx: &Context) -> Context {
        let vars = self.variables();
        ctx.iter()
            .filter(|(k, _)| vars.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Checks a context against the namespace: every variable must be used by
    /// a level, and matrix variables must take a value from the matrix.
    pub fn check_context(&self, ctx: &Context) -> Result<()> {
        let known = self.variables();
        for (var, value) in ctx {
            if !known.contains(&var.as_str()) {
                return Err(Error::UnknownContextVariable {
                    namespace: self.name.to_string(),
                    variable: var.clone(),
                    known: known.iter().map(|s| (*s).to_owned()).collect(),
                });
            }
            if let Some(allowed) = self.matrix.get(var) {
                if !allowed.contains(value) {
                    return Err(Error::ContextValueNotAllowed {
                        namespace: self.name.to_string(),
                        variable: var.clone(),
                        value: value.clone(),
                        allowed: allowed.clone(),
                    });
                }
            } else if LayerPath::parse(value).map(|p| p.segments().count()) != Ok(1) {
                return Err(Error::InvalidPath {
                    kind: "context value",
                    input: value.clone(),
                    reason: format!("the value of {var} must be a single path segment"),
                });
            }
        }
        Ok(())
    }

    /// The layer paths a context selects, most general first, with their level index.
    pub fn layers_for(&self, ctx: &Context) -> Result<Vec<LayerPath>> {
        self.check_context(ctx)?;
        Ok(self.levels.iter().filter_map(|l| l.fill(ctx)).collect())
    }

    /// The layer paths the part of `ctx` this namespace uses selects, most
    /// general first, as an import of another namespace reads them: a
    /// level whose variable `ctx` does not bind, or binds to a value
    /// outside this namespace's matrix, selects nothing (no layer of it
    /// can exist there).
    pub fn layers_within(&self, ctx: &Context) -> Vec<LayerPath> {
        let ctx = self.restrict(ctx);
        self.levels
            .iter()
            .filter(|l| {
                l.variables().all(|v| {
                    ctx.get(v).is_some_and(|value| {
                        self.check_context(&Context::from([(v.to_owned(), value.clone())]))
                            .is_ok()
                    })
                })
            })
            .filter_map(|l| l.fill(&ctx))
            .collect()
    }

    /// Which level a layer path belongs to; an error if none or if the
    /// bindings fall outside the matrix.
    pub fn level_of(&self, layer: &LayerPath) -> Result<usize> {
        let mut hint = None;
        for (i, l) in self.levels.iter().enumerate() {
            if let Some(bindings) = l.matches(layer) {
                match self.check_context(&bindings) {
                    Ok(()) => return Ok(i),
                    Err(e) => hint = Some(e.to_string()),
                }
            }
        }
        Err(Error::LayerOutsideHierarchy {
            namespace: self.name.to_string(),
            layer: layer.to_string(),
            levels: self.levels.iter().map(|l| l.to_string()).collect(),
            hint,
        })
    }

    /// Every context of the matrix (the cartesian product), for validation.
    pub fn matrix_contexts(&self) -> Vec<Context> {
        let mut out = vec![Context::new()];
        for (var, values) in &self.matrix {
            out = out
                .into_iter()
                .flat_map(|c| {
                    values.iter().map(move |v| {
                        let mut c = c.clone();
                        c.insert(var.clone(), v.clone());
                        c
                    })
                })
                .collect();
        }
        out
    }
}

fn templates_overlap(a: &LevelTemplate, b: &LevelTemplate) -> bool {
    a.segments.len() == b.segments.len()
        && a.segments.iter().zip(&b.segments).all(|pair| match pair {
            (Segment::Literal(x), Segment::Literal(y)) => x == y,
            _ => true,
        })
}

/// Parses a context from `var=value` pairs separated by commas, e.g. `env=prod,region=eu`.
pub fn parse_context(input: &str) -> Result<Context> {
    let mut ctx = Context::new();
    for part in input.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(Error::InvalidPath {
                kind: "context",
                input: input.to_owned(),
                reason: format!("{part:?} is not of the form var=value"),
            });
        };
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() || v.is_empty() {
            return Err(Error::InvalidPath {
                kind: "context",
                input: input.to_owned(),
                reason: format!("{part:?} has an empty variable or value"),
            });
        }
        if ctx.insert(k.to_owned(), v.to_owned()).is_some() {
            return Err(Error::InvalidPath {
                kind: "context",
                input: input.to_owned(),
                reason: format!("variable {k:?} is given twice"),
            });
        }
    }
    Ok(ctx)
}

#[cfg(test)]
mod tests;
