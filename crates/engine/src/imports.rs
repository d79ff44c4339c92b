//! Imports on the read path: the namespaces and layers a namespace
//! resolves from (`confstrata_core::imports`), read from the store.

use confstrata_core::imports::{ChainLayer, chain_layers, import_order};
use confstrata_core::{Context, NamespaceName, NamespaceSpec, Result};

use crate::Engine;

impl Engine {
    /// The declarations `spec` resolves from at `revision`: its imports
    /// (theirs first), then itself.
    pub(crate) fn import_order_at(
        &self,
        spec: &NamespaceSpec,
        revision: u64,
    ) -> Result<Vec<NamespaceSpec>> {
        import_order(spec, &mut |n| {
            Ok(self.store.namespace(n, revision)?.map(|r| r.spec))
        })
    }

    /// What `ns` resolves from at `revision`, for a watcher that must know
    /// which changes concern it: the namespaces (its imports, theirs first,
    /// then itself) and, given a context, their layers for it. `None` when
    /// `ns` does not exist at `revision`. No authorization: what a watcher
    /// may see of a change is decided by [`Engine::visible_items`].
    pub fn resolved_from(
        &self,
        ns: &NamespaceName,
        ctx: Option<&Context>,
        revision: u64,
    ) -> Result<Option<(Vec<NamespaceName>, Vec<ChainLayer>)>> {
        let Some(record) = self.store.namespace(ns, revision)? else {
            return Ok(None);
        };
        let order = self.import_order_at(&record.spec, revision)?;
        let layers = match ctx {
            Some(ctx) => chain_layers(&order, ctx)?,
            None => Vec::new(),
        };
        Ok(Some((order.into_iter().map(|s| s.name).collect(), layers)))
    }
}
