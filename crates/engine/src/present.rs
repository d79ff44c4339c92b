//! Presenting what a caller may see: opening a sealed value where the
//! caller has `read-secrets` on it, masking it otherwise, and the one audit
//! record of a request that opened anything. Resolves, explain and diffs
//! all go through here.

use confstrata_access::{Action, Resource};
use confstrata_core::serde_json::Value;
use confstrata_core::view::ResolvedView;
use confstrata_core::{DiffEntry, Document, LayerPath, NamespaceName, Result};

use crate::security::{self, Gate};
use crate::{Engine, security_read};

impl Engine {
    /// Opens or masks the sealed leaves of a resolved view.
    pub(crate) fn present_resolved(&self, g: &Gate<'_>, view: &mut ResolvedView) -> Result<()> {
        let ns = &view.namespace;
        let mut opened = Vec::new();
        let keyring = security_read(&self.security);
        for (key, prov) in &view.provenance {
            let Some(slot) = confstrata_core::doc::get_mut(&mut view.document, key) else {
                continue;
            };
            if !confstrata_crypto::is_sealed(slot) && !security::contains_sealed(slot) {
                continue;
            }
            // An imported layer's values are sealed under its namespace's key.
            let in_ns = prov.namespace_or(ns);
            let resource = Resource::key(in_ns.clone(), prov.layer.clone(), key.clone());
            if confstrata_crypto::is_sealed(slot) && g.allows(Action::ReadSecrets, &resource) {
                *slot = confstrata_crypto::open_value(&keyring, in_ns, &prov.layer, key, slot)
                    .map_err(security::crypto_error)?;
                opened.push(resource.to_string());
            } else {
                mask_value(slot);
            }
        }
        drop(keyring);
        g.audit_opened(ns, &opened, view.revision)
    }

    /// Leaves out of a resolved view the keys the caller may not read in
    /// their winning layer, and the layers it may read nothing of, and
    /// marks it partial (a grant on `ns#db` only). The document is rebuilt
    /// from the readable leaves, so no table that held only hidden keys
    /// is left behind empty.
    pub(crate) fn keep_readable(&self, g: &Gate<'_>, view: &mut ResolvedView) {
        let ns = view.namespace.clone();
        view.provenance.retain(|(key, prov)| {
            g.allows(
                Action::Read,
                &Resource::key(
                    prov.namespace_or(&ns).clone(),
                    prov.layer.clone(),
                    key.clone(),
                ),
            )
        });
        view.document = cut_to(&view.document, view.provenance.iter().map(|(k, _)| k));
        view.layers.retain(|p| {
            g.sec.allows_some(
                &g.policy,
                g.caller,
                Action::Read,
                &Resource::layer(p.namespace_or(&ns).clone(), p.layer.clone()),
            )
        });
        view.partial = true;
    }

    /// Opens or masks the sealed values of diff entries between two layer
    /// versions; for a caller who may read them, entries whose plaintexts
    /// are equal (a value sealed again) are dropped.
    pub(crate) fn present_diff(
        &self,
        g: &Gate<'_>,
        entries: Vec<DiffEntry>,
        a: (&NamespaceName, &LayerPath),
        b: (&NamespaceName, &LayerPath),
        revision: u64,
    ) -> Result<Vec<DiffEntry>> {
        let mut out = Vec::with_capacity(entries.len());
        let mut opened = Vec::new();
        let keyring = security_read(&self.security);
        for mut e in entries {
            let mut show =
                |v: &mut Option<Value>, (ns, layer): (&NamespaceName, &LayerPath)| -> Result<()> {
                    let Some(v) = v.as_mut() else { return Ok(()) };
                    if confstrata_crypto::is_sealed(v) {
                        let resource = Resource::key(ns.clone(), layer.clone(), e.key.clone());
                        if g.allows(Action::ReadSecrets, &resource) {
                            *v = confstrata_crypto::open_value(&keyring, ns, layer, &e.key, v)
                                .map_err(security::crypto_error)?;
                            opened.push(resource.to_string());
                            return Ok(());
                        }
                    }
                    if security::contains_sealed(v) {
                        mask_value(v);
                    }
                    Ok(())
                };
            show(&mut e.old, a)?;
            show(&mut e.new, b)?;
            let sealed_both = e.old.is_some() && e.old == e.new;
            if !sealed_both || e.old.as_ref().is_some_and(|v| v == confstrata_crypto::MASK) {
                out.push(e);
            }
        }
        drop(keyring);
        g.audit_opened(a.0, &opened, revision)?;
        Ok(out)
    }
}

/// Replaces a value that holds sealed tables with the mask.
pub(crate) fn mask_value(v: &mut Value) {
    if confstrata_crypto::is_sealed(v) {
        *v = Value::String(confstrata_crypto::MASK.to_owned());
        return;
    }
    let mut one = Document::new();
    one.insert(String::new(), std::mem::take(v));
    confstrata_crypto::mask(&mut one);
    *v = one.remove("").unwrap_or(Value::Null);
}

/// What of one layer the caller may read, its document cut to it:
/// `Some(false)` all of it (the document untouched), `Some(true)` only
/// some keys (the others removed), `None` nothing.
pub(crate) fn readable_layer(
    g: &Gate<'_>,
    ns: &NamespaceName,
    layer: &LayerPath,
    doc: Option<&mut Document>,
) -> Option<bool> {
    let whole = Resource::layer(ns.clone(), layer.clone());
    if g.allows(Action::Read, &whole) {
        return Some(false);
    }
    if !g.sec.allows_some(&g.policy, g.caller, Action::Read, &whole) {
        return None;
    }
    if let Some(doc) = doc {
        let kept: Vec<confstrata_core::KeyPath> = confstrata_core::doc::leaves(doc)
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| {
                g.allows(
                    Action::Read,
                    &Resource::key(ns.clone(), layer.clone(), k.clone()),
                )
            })
            .collect();
        *doc = cut_to(doc, kept.iter());
    }
    Some(true)
}

/// A document holding only `keys` of `doc` (leaves of it), under their
/// full paths.
pub(crate) fn cut_to<'a>(
    doc: &Document,
    keys: impl Iterator<Item = &'a confstrata_core::KeyPath>,
) -> Document {
    let mut out = Document::new();
    for key in keys {
        if let Some(v) = confstrata_core::doc::get(doc, key) {
            // Leaves of one document never collide; a failure would only
            // leave the key out.
            let _ = confstrata_core::doc::set(&mut out, key, v.clone());
        }
    }
    out
}
