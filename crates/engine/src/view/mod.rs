//! The cached view: how a resolved view is kept in the view cache (its
//! JSON text, each leaf's winning layer as an index, where each top-level
//! section starts), what a cache hit answers with ([`SharedView`]), and
//! the incremental rebuild of a stale view from the changes since
//! (`incremental`).

pub(crate) mod incremental;

use std::sync::Arc;

use confstrata_cache::ViewKey;
use confstrata_core::imports::ChainLayer;
use confstrata_core::serde_json::Value;
use confstrata_core::view::ResolvedView;
use confstrata_core::{
    Context, Document, Error, KeyPath, LayerPath, NamespaceName, Provenance, Result,
};

use crate::present::mask_value;
use crate::security::{self};

/// A resolved view as cached, compact: the raw document (sealed values as
/// stored) as its JSON text, the winning layer of each leaf as a small
/// index, and every layer of its context for authorization. About the size
/// of the JSON itself (a parsed tree with per-leaf provenance is 20 times
/// that: PERFORMANCE.md); a request that needs the tree parses it.
pub(crate) struct CachedView {
    /// Every layer of the context (its imports' first), for authorization.
    pub(crate) wanted: Vec<ChainLayer>,
    /// The imported namespaces it resolves from: it is stale when one of
    /// them changes, and is merged again rather than rebuilt.
    pub(crate) imports: Box<[NamespaceName]>,
    pub(crate) namespace: NamespaceName,
    pub(crate) context: Context,
    /// The layers that exist for the context, most general first.
    pub(crate) layers: Vec<Provenance>,
    /// The raw document, as JSON.
    pub(crate) raw: Arc<str>,
    /// Where each top-level section of `raw` starts (for rebuilding the
    /// view after a change: `incremental`).
    pub(crate) spans: Box<[incremental::Span]>,
    /// The provenance of each leaf (in `doc::leaves` order).
    pub(crate) winners: Winners,
    /// The leaves holding a sealed value, with the namespace and layer
    /// that set each: a caller who may open one of them is answered by the
    /// slow path (opening is audited).
    pub(crate) sealed: Vec<(KeyPath, NamespaceName, LayerPath)>,
    /// Whether some leaf holds a sealed value or a value that contains one.
    pub(crate) any_sealed: bool,
    /// What a caller who opens nothing gets (every sealed value masked), as
    /// JSON: the raw JSON itself when nothing is sealed, else made on first
    /// use and shared by every such caller.
    pub(crate) masked: std::sync::OnceLock<Arc<str>>,
}

/// Each leaf's winning layer: an index into the view's layers when the
/// leaves and the provenance line up one to one (always, for a resolve),
/// else the provenance itself.
pub(crate) enum Winners {
    Compact(Vec<u16>),
    Full(Vec<(KeyPath, Provenance)>),
}

impl CachedView {
    pub(crate) fn new(wanted: Vec<ChainLayer>, view: ResolvedView) -> CachedView {
        let is_sealed = |v: &Value| confstrata_crypto::is_sealed(v);
        let sealed = view
            .provenance
            .iter()
            .filter(|(key, _)| {
                confstrata_core::doc::get(&view.document, key).is_some_and(is_sealed)
            })
            .map(|(key, prov)| {
                (
                    key.clone(),
                    prov.namespace_or(&view.namespace).clone(),
                    prov.layer.clone(),
                )
            })
            .collect();
        let mut imports: Vec<NamespaceName> = wanted
            .iter()
            .filter(|l| l.imported)
            .map(|l| l.namespace.clone())
            .collect();
        imports.dedup();
        let leaves = confstrata_core::doc::leaves(&view.document);
        let any_sealed = leaves
            .iter()
            .any(|(_, v)| confstrata_crypto::is_sealed(v) || security::contains_sealed(v));
        let compact: Option<Vec<u16>> = (leaves.len() == view.provenance.len())
            .then(|| {
                leaves
                    .iter()
                    .zip(&view.provenance)
                    .map(|((k, _), (pk, p))| {
                        if k != pk {
                            return None;
                        }
                        let i = view.layers.iter().position(|l| l == p)?;
                        u16::try_from(i).ok()
                    })
                    .collect()
            })
            .flatten();
        drop(leaves);
        let (raw, spans) = incremental::indexed_json(&view.document);
        CachedView {
            wanted,
            imports: imports.into(),
            namespace: view.namespace,
            context: view.context,
            winners: match compact {
                Some(c) => Winners::Compact(c),
                None => Winners::Full(view.provenance),
            },
            layers: view.layers,
            raw,
            spans,
            sealed,
            any_sealed,
            masked: std::sync::OnceLock::new(),
        }
    }

    /// The raw document, parsed.
    pub(crate) fn document(&self) -> Result<Document> {
        confstrata_core::serde_json::from_str(&self.raw).map_err(|e| Error::Integrity {
            message: format!(
                "a cached view of {} cannot be read back: {e}",
                self.namespace
            ),
        })
    }

    /// Each leaf's provenance, for `document` (the raw one).
    pub(crate) fn provenance(&self, document: &Document) -> Vec<(KeyPath, Provenance)> {
        match &self.winners {
            Winners::Full(p) => p.clone(),
            Winners::Compact(c) => confstrata_core::doc::leaves(document)
                .into_iter()
                .zip(c)
                .filter_map(|((k, _), i)| Some((k, self.layers.get(usize::from(*i))?.clone())))
                .collect(),
        }
    }

    /// The raw view, parsed, labelled with `revision`, cut to `section`.
    pub(crate) fn view(&self, revision: u64, section: Option<&KeyPath>) -> Result<ResolvedView> {
        let document = self.document()?;
        let provenance = self.provenance(&document);
        let view = ResolvedView {
            namespace: self.namespace.clone(),
            context: self.context.clone(),
            revision,
            layers: self.layers.clone(),
            document,
            provenance,
            partial: false,
        };
        Ok(match section {
            Some(s) => cut_to_section(&view, s),
            None => view,
        })
    }

    /// The JSON of the view with every sealed value masked.
    pub(crate) fn masked(&self) -> Result<Arc<str>> {
        if !self.any_sealed {
            return Ok(Arc::clone(&self.raw));
        }
        if let Some(m) = self.masked.get() {
            return Ok(Arc::clone(m));
        }
        let mut document = self.document()?;
        mask_all(&mut document);
        let json = document_json(&document);
        Ok(Arc::clone(self.masked.get_or_init(|| json)))
    }

    /// Approximate bytes held, for the cache's budget.
    pub(crate) fn weight(&self) -> usize {
        let winners = match &self.winners {
            Winners::Compact(c) => 2 * c.len(),
            Winners::Full(p) => p.len() * 160,
        };
        // A masked copy, if one will be made, is about the same size.
        let masked = if self.any_sealed { self.raw.len() } else { 0 };
        self.raw.len()
            + masked
            + winners
            + size_of_val(&*self.spans)
            + 64 * (self.wanted.len() + self.layers.len())
            + 256
    }
}

/// Masks every sealed value in a document (the leaves that are sealed or
/// contain a sealed value).
pub(crate) fn mask_all(document: &mut Document) {
    let keys: Vec<KeyPath> = confstrata_core::doc::leaves(document)
        .into_iter()
        .filter(|(_, v)| confstrata_crypto::is_sealed(v) || security::contains_sealed(v))
        .map(|(k, _)| k)
        .collect();
    for key in keys {
        if let Some(slot) = confstrata_core::doc::get_mut(document, &key) {
            mask_value(slot);
        }
    }
}

/// The JSON of `section` of a document given as compact JSON (a cached
/// view's), as `doc::section` would cut it: only the top-level structure
/// and the one top-level value the section is in are parsed. `None` if
/// the text is not a JSON object.
pub(crate) fn section_json(json: &str, section: &KeyPath) -> Option<Arc<str>> {
    use confstrata_core::serde_json::value::RawValue;
    let top: std::collections::BTreeMap<String, &RawValue> =
        confstrata_core::serde_json::from_str(json).ok()?;
    let (first, rest) = section.segments().split_first()?;
    let Some(raw) = top.get(first) else {
        return Some("{}".into());
    };
    if rest.is_empty() {
        let key = confstrata_core::serde_json::to_string(first).ok()?;
        return Some(format!("{{{key}:{}}}", raw.get()).into());
    }
    let mut one = Document::new();
    one.insert(
        first.clone(),
        confstrata_core::serde_json::from_str(raw.get()).ok()?,
    );
    Some(document_json(&confstrata_core::doc::section(
        &one, section, false,
    )))
}

/// A document as compact JSON (a document is a map of JSON values, so
/// this cannot fail; `{}` stands in if it ever did).
pub(crate) fn document_json(doc: &Document) -> Arc<str> {
    confstrata_core::serde_json::to_string(doc)
        .unwrap_or_else(|_| "{}".to_owned())
        .into()
}

/// A resolved view answered from the view cache: see
/// [`Engine::resolve_cached`]. It holds the document as JSON (what a front
/// end sends); the parsed document and the provenance are made on demand.
#[derive(Clone)]
pub struct SharedView {
    /// The revision it is current at (the latest when it was looked up).
    pub revision: u64,
    /// The document (or the asked-for section of it) as the caller may see
    /// it, as compact JSON.
    pub json: Arc<str>,
    pub(crate) cached: Arc<CachedView>,
    pub(crate) section: Option<KeyPath>,
}

impl std::fmt::Debug for SharedView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedView")
            .field("revision", &self.revision)
            .field("json", &self.json)
            .finish_non_exhaustive()
    }
}

impl SharedView {
    /// The layers that exist for the context, most general first.
    pub fn layers(&self) -> &[Provenance] {
        &self.cached.layers
    }

    /// Each leaf's provenance (in the section, if one was asked for), in
    /// key order.
    pub fn provenance(&self) -> Result<Vec<(KeyPath, Provenance)>> {
        let document = self.cached.document()?;
        let mut p = self.cached.provenance(&document);
        if let Some(s) = &self.section {
            p.retain(|(k, _)| in_section(k, s));
        }
        Ok(p)
    }

    /// The document, parsed from [`SharedView::json`].
    pub fn document(&self) -> Result<Document> {
        confstrata_core::serde_json::from_str(&self.json).map_err(|e| Error::Integrity {
            message: format!("a shared view cannot be read back: {e}"),
        })
    }

    /// Whether two answers share one JSON text (nothing was copied).
    pub fn shares_json_with(&self, other: &SharedView) -> bool {
        Arc::ptr_eq(&self.json, &other.json)
    }
}

/// A context as a cache key: `k=v,...` in key order (values are path
/// segments, so `,` and `=` cannot occur in them).
pub(crate) fn context_key(ns: &NamespaceName, ctx: &Context) -> ViewKey {
    let mut out = String::new();
    for (k, v) in ctx {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    ViewKey::new(ns, &out)
}

/// The provenance entries at `section` or below it.
pub(crate) fn in_section(key: &KeyPath, section: &KeyPath) -> bool {
    key.segments().starts_with(section.segments())
}

/// Cuts a view down to a section of its document.
pub(crate) fn cut_to_section(view: &ResolvedView, section: &KeyPath) -> ResolvedView {
    ResolvedView {
        namespace: view.namespace.clone(),
        context: view.context.clone(),
        revision: view.revision,
        layers: view.layers.clone(),
        document: confstrata_core::doc::section(&view.document, section, false),
        provenance: view
            .provenance
            .iter()
            .filter(|(k, _)| in_section(k, section))
            .cloned()
            .collect(),
        partial: view.partial,
    }
}
