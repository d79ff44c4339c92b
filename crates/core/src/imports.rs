//! Namespace imports: the namespaces a namespace resolves from (its
//! imports, theirs, and itself), and their layers for a context.
//!
//! A namespace that imports `shared/logging` and `shared/tls` resolves, for
//! a context, from `shared/logging`'s layers for that context (restricted
//! to its variables), then `shared/tls`'s, then its own: an import's
//! values are the lowest, and the namespace's own `defaults` override
//! them. An import's own imports come before it; a namespace reached twice
//! (a diamond) counts once, at its first place. A cycle, a missing import
//! and a chain deeper than [`MAX_IMPORT_DEPTH`] are refused.
//!
//! ```
//! use confstrata_core::imports::{chain_layers, import_order};
//! use confstrata_core::{Context, NamespaceSpec};
//! use serde_json::json;
//! let spec = |v| -> NamespaceSpec { serde_json::from_value(v).unwrap() };
//! let logging = spec(json!({"name": "shared/logging", "levels": ["defaults", "env/{env}"]}));
//! let web = spec(json!({"name": "web", "levels": ["defaults", "env/{env}/region/{region}"],
//!     "imports": ["shared/logging"]}));
//! let order = import_order(&web, &mut |n| Ok((n == &logging.name).then(|| logging.clone()))).unwrap();
//! let ctx = Context::from([("env".into(), "prod".into()), ("region".into(), "eu".into())]);
//! let layers: Vec<String> = chain_layers(&order, &ctx).unwrap().iter().map(|l| l.to_string()).collect();
//! assert_eq!(layers, ["shared/logging:defaults", "shared/logging:env/prod", "web:defaults", "web:env/prod/region/eu"]);
//! ```

use std::collections::BTreeSet;
use std::fmt;

use crate::{Context, Error, LayerPath, NamespaceName, NamespaceSpec, Result};

/// The deepest chain of imports (a namespace importing one that imports
/// another, ...) a declaration may make.
pub const MAX_IMPORT_DEPTH: usize = 16;

/// One layer a namespace resolves from for a context.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainLayer {
    /// The namespace the layer is in.
    pub namespace: NamespaceName,
    /// The layer.
    pub layer: LayerPath,
    /// Whether the namespace is an import (not the one resolved).
    pub imported: bool,
}

impl fmt::Display for ChainLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.namespace, self.layer)
    }
}

/// The declarations `root` resolves from, lowest first, `root` last.
/// `spec_of` finds a declaration (`None`: no such namespace). Refuses a
/// cycle (naming it), an import that does not exist, and a chain deeper
/// than [`MAX_IMPORT_DEPTH`].
pub fn import_order(
    root: &NamespaceSpec,
    spec_of: &mut dyn FnMut(&NamespaceName) -> Result<Option<NamespaceSpec>>,
) -> Result<Vec<NamespaceSpec>> {
    let mut out = Vec::new();
    if root.imports.is_empty() {
        out.push(root.clone());
        return Ok(out);
    }
    let mut walk = Walk {
        root: &root.name,
        path: Vec::new(),
        seen: BTreeSet::new(),
        out,
    };
    walk.visit(root.clone(), spec_of)?;
    Ok(walk.out)
}

struct Walk<'r> {
    root: &'r NamespaceName,
    path: Vec<NamespaceName>,
    seen: BTreeSet<NamespaceName>,
    out: Vec<NamespaceSpec>,
}

impl Walk<'_> {
    fn visit(
        &mut self,
        spec: NamespaceSpec,
        spec_of: &mut dyn FnMut(&NamespaceName) -> Result<Option<NamespaceSpec>>,
    ) -> Result<()> {
        let root = self.root;
        let what = || format!("imports of namespace {root}");
        self.path.push(spec.name.clone());
        if self.path.len() > MAX_IMPORT_DEPTH + 1 {
            let chain: Vec<&str> = self.path.iter().map(NamespaceName::as_str).collect();
            return Err(Error::invalid(
                what(),
                format!(
                    "they go deeper than {MAX_IMPORT_DEPTH} namespaces: {}",
                    chain.join(" -> ")
                ),
            ));
        }
        for import in &spec.imports {
            if let Some(at) = self.path.iter().position(|n| n == import) {
                let cycle: Vec<&str> = self.path[at..]
                    .iter()
                    .chain(std::iter::once(import))
                    .map(NamespaceName::as_str)
                    .collect();
                return Err(Error::invalid(
                    what(),
                    format!("they form a cycle: {}", cycle.join(" -> ")),
                ));
            }
            if self.seen.contains(import) {
                continue;
            }
            let Some(imported) = spec_of(import)? else {
                return Err(Error::invalid(
                    what(),
                    format!(
                        "namespace {} imports {import}, which does not exist",
                        spec.name
                    ),
                ));
            };
            self.visit(imported, spec_of)?;
        }
        self.path.pop();
        self.seen.insert(spec.name.clone());
        self.out.push(spec);
        Ok(())
    }
}

/// The layers `order` (an [`import_order`], its root last) resolves from
/// for `ctx`, lowest first: each import's layers for the part of `ctx` it
/// uses ([`NamespaceSpec::layers_within`]), then the root's for `ctx`
/// (which must be a valid context of the root).
pub fn chain_layers(order: &[NamespaceSpec], ctx: &Context) -> Result<Vec<ChainLayer>> {
    let Some((root, imports)) = order.split_last() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for spec in imports {
        out.extend(spec.layers_within(ctx).into_iter().map(|layer| ChainLayer {
            namespace: spec.name.clone(),
            layer,
            imported: true,
        }));
    }
    out.extend(root.layers_for(ctx)?.into_iter().map(|layer| ChainLayer {
        namespace: root.name.clone(),
        layer,
        imported: false,
    }));
    Ok(out)
}

#[cfg(test)]
mod tests;
