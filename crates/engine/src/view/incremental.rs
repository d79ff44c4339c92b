//! Incremental re-resolve: the view of a context after a change is built
//! from its previous view plus the change, when the change allows it,
//! instead of being merged again from every layer.
//!
//! A cached view is JSON text (see [`CachedView`]), so "building from the
//! previous view" means splicing: the view keeps where each top-level
//! section starts in the text and which leaf its first leaf is ([`Span`]);
//! a one-key change parses that one section, changes the key, writes the
//! section back into a copy of the text and moves the winning layer of that
//! one leaf. The cost is the section's size plus a copy of the text, not the
//! merge of every layer read from the store (PERFORMANCE.md has the ratio).
//!
//! Which changes qualify is decided by what the previous view proves about
//! the layers, without reading them. With `k` a leaf of the view (a scalar,
//! an array or an atomic table such as a sealed value) won by layer `w`,
//! and the change made in layer `p` (an index into the context's layers,
//! most general first):
//! - `set k = v`, `v` not a table that merges (nor the delete marker): if
//!   `p >= w`, no layer above `p` touches `k` (else it would have won), so
//!   `v` wins; if `p < w`, `w` still wins and the view does not change.
//! - `unset k` with `p < w`: `w` still wins; nothing visible changes.
//!
//! Everything else (a new key, a table value, unsetting the winner, a
//! layer that did not exist, a whole-layer put or delete, a declaration)
//! falls back to the full merge. The engine learns what changed from its
//! own commits: each commit records, per namespace, the patches it made
//! ([`ChangeLog`]); a reader that finds a stale view takes it from the
//! cache and applies the patches recorded between its revision and the
//! current one, provided the log still covers them all.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use confstrata_core::doc::{is_atomic_table, is_delete_marker};
use confstrata_core::serde_json::{self, Map, Value};
use confstrata_core::{ChangeSet, Document, KeyPath, LayerPath, NamespaceName, Op};

use super::{CachedView, Winners};
use crate::security::contains_sealed;

/// Where a top-level section of a view's JSON starts, and the index (in
/// `doc::leaves` order) of its first leaf. The section's value runs from
/// after its key to the comma before the next span (or the closing brace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    key_at: u32,
    first_leaf: u32,
}

/// One change to a layer that a view may absorb.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Patch {
    Set {
        layer: LayerPath,
        key: KeyPath,
        value: Value,
    },
    Unset {
        layer: LayerPath,
        key: KeyPath,
    },
}

/// Recent commits of one namespace, by revision: the patches each made,
/// or `None` for a commit that cannot be patched in.
#[derive(Debug, Default)]
pub(crate) struct ChangeLog {
    /// Views older than this cannot be rebuilt (the log no longer covers
    /// every commit after them).
    floor: u64,
    entries: BTreeMap<u64, Option<Arc<[Patch]>>>,
}

/// Commits kept per namespace.
const KEPT: usize = 64;
/// The most JSON a commit's patches may hold to be kept (bigger ones are
/// logged as unpatchable, so the log stays small).
const MAX_PATCH_BYTES: usize = 64 << 10;

/// The logs of every namespace changed since the engine started.
pub(crate) type ChangeLogs = HashMap<NamespaceName, ChangeLog>;

/// Records that the commit at `revision` changed `ns` with `patches`
/// ([`patches_of`] its change set).
pub(crate) fn record(
    logs: &mut ChangeLogs,
    ns: &NamespaceName,
    patches: Option<Arc<[Patch]>>,
    revision: u64,
) {
    let log = logs.entry(ns.clone()).or_default();
    log.entries.insert(revision, patches);
    while log.entries.len() > KEPT {
        if let Some((rev, _)) = log.entries.pop_first() {
            log.floor = log.floor.max(rev);
        }
    }
}

/// The patches recorded for `ns` after `from` up to `to`, in order; `None`
/// if one of those commits cannot be patched in or the log does not reach
/// back to `from`.
pub(crate) fn patches_between(
    logs: &ChangeLogs,
    ns: &NamespaceName,
    from: u64,
    to: u64,
) -> Option<Vec<(u64, Arc<[Patch]>)>> {
    if from > to {
        return None;
    }
    let log = logs.get(ns)?;
    if from < log.floor {
        return None;
    }
    log.entries
        .range(from + 1..=to)
        .map(|(rev, p)| Some((*rev, Arc::clone(p.as_ref()?))))
        .collect()
}

/// The patches a change set makes to `ns`, or `None` if one of its
/// operations there cannot be patched in.
pub(crate) fn patches_of(changes: &ChangeSet, ns: &NamespaceName) -> Option<Arc<[Patch]>> {
    let mut patches = Vec::new();
    let mut bytes = 0;
    for op in &changes.ops {
        match op {
            Op::Set {
                namespace,
                layer,
                key,
                value,
                ..
            } if namespace == ns => {
                bytes += serde_json::to_string(value).map_or(usize::MAX, |s| s.len());
                if bytes > MAX_PATCH_BYTES {
                    return None;
                }
                patches.push(Patch::Set {
                    layer: layer.clone(),
                    key: key.clone(),
                    value: value.clone(),
                });
            }
            Op::Unset {
                namespace,
                layer,
                key,
                ..
            } if namespace == ns => patches.push(Patch::Unset {
                layer: layer.clone(),
                key: key.clone(),
            }),
            Op::PutNamespace { spec, .. } if spec.name == *ns => return None,
            Op::DeleteNamespace { namespace, .. } if namespace == ns => return None,
            Op::Put { namespace, .. } | Op::Delete { namespace, .. } if namespace == ns => {
                return None;
            }
            _ => {}
        }
    }
    Some(patches.into())
}

/// The number of leaves of a value, as `doc::leaves` counts them.
fn count_leaves(v: &Value) -> usize {
    match v {
        Value::Object(m) if !is_atomic_table(v) && !m.is_empty() => {
            m.values().map(count_leaves).sum()
        }
        _ => 1,
    }
}

/// A document as compact JSON (exactly what `serde_json::to_string`
/// writes) and the spans of its top-level sections; no spans if the text is
/// too long to index with `u32`.
pub(crate) fn indexed_json(doc: &Document) -> (Arc<str>, Box<[Span]>) {
    let mut out: Vec<u8> = Vec::with_capacity(64);
    let mut spans = Vec::with_capacity(doc.len());
    let mut first_leaf = 0usize;
    out.push(b'{');
    for (i, (k, v)) in doc.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        spans.push((out.len(), first_leaf));
        // Writing a string or a JSON value to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, k);
        out.push(b':');
        let _ = serde_json::to_writer(&mut out, v);
        first_leaf += count_leaves(v);
    }
    out.push(b'}');
    let text = String::from_utf8(out).unwrap_or_else(|_| "{}".to_owned());
    let spans = spans
        .into_iter()
        .map(|(at, leaf)| {
            Some(Span {
                key_at: u32::try_from(at).ok()?,
                first_leaf: u32::try_from(leaf).ok()?,
            })
        })
        .collect::<Option<Box<[Span]>>>()
        .filter(|_| u32::try_from(text.len()).is_ok())
        .unwrap_or_default();
    (text.into(), spans)
}

/// A view being rebuilt.
struct Draft {
    raw: String,
    spans: Vec<Span>,
    winners: Vec<u16>,
    layers: Vec<confstrata_core::Provenance>,
    sealed: Vec<(KeyPath, NamespaceName, LayerPath)>,
    any_sealed: bool,
    namespace: NamespaceName,
}

impl Draft {
    /// The key of span `i` and where its value starts.
    fn key(&self, i: usize) -> Option<(std::borrow::Cow<'_, str>, usize)> {
        let at = usize::try_from(self.spans.get(i)?.key_at).ok()?;
        let bytes = self.raw.as_bytes();
        if bytes.get(at) != Some(&b'"') {
            return None;
        }
        let mut end = at + 1;
        let mut escaped = false;
        loop {
            match *bytes.get(end)? {
                b'\\' => {
                    escaped = true;
                    end += 2;
                }
                b'"' => break,
                _ => end += 1,
            }
        }
        let key = if escaped {
            std::borrow::Cow::Owned(serde_json::from_str::<String>(self.raw.get(at..=end)?).ok()?)
        } else {
            std::borrow::Cow::Borrowed(self.raw.get(at + 1..end)?)
        };
        // Skip the closing quote and the colon.
        Some((key, end + 2))
    }

    /// The span of the top-level key `name` and its value's byte range.
    fn section(&self, name: &str) -> Option<(usize, std::ops::Range<usize>)> {
        let (mut lo, mut hi) = (0, self.spans.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (key, start) = self.key(mid)?;
            match (*key).cmp(name) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    let end = match self.spans.get(mid + 1) {
                        Some(next) => usize::try_from(next.key_at).ok()? - 1,
                        None => self.raw.len() - 1,
                    };
                    return Some((mid, start..end));
                }
            }
        }
        None
    }

    /// Applies one patch, or `None` if it cannot be applied (then the
    /// draft is abandoned).
    fn apply(&mut self, patch: &Patch) -> Option<()> {
        let (layer, key) = match patch {
            Patch::Set { layer, key, .. } | Patch::Unset { layer, key } => (layer, key),
        };
        let p = self.layers.iter().position(|l| l.layer == *layer)?;
        let (first, rest) = key.segments().split_first()?;
        let (span, range) = self.section(first)?;
        let mut section: Value = serde_json::from_str(self.raw.get(range.clone())?).ok()?;
        let (slot, index) = locate(&mut section, rest)?;
        if matches!(slot, Value::Object(_)) && !is_atomic_table(slot) {
            return None;
        }
        let leaf = usize::try_from(self.spans.get(span)?.first_leaf).ok()? + index;
        let winner = usize::from(*self.winners.get(leaf)?);
        if winner > p {
            // A more specific layer sets the key: the change is hidden.
            return Some(());
        }
        let Patch::Set { value, .. } = patch else {
            // Unsetting the winner uncovers a value the view does not hold.
            return None;
        };
        if is_delete_marker(value) || (matches!(value, Value::Object(_)) && !is_atomic_table(value))
        {
            return None;
        }
        *slot = value.clone();
        *self.winners.get_mut(leaf)? = u16::try_from(p).ok()?;
        let text = serde_json::to_string(&section).ok()?;
        let grown = isize::try_from(text.len()).ok()? - isize::try_from(range.len()).ok()?;
        self.raw.replace_range(range, &text);
        for s in self.spans.get_mut(span + 1..)? {
            s.key_at = u32::try_from(isize::try_from(s.key_at).ok()? + grown).ok()?;
        }
        u32::try_from(self.raw.len()).ok()?;
        self.sealed.retain(|(k, _, _)| k != key);
        if confstrata_crypto::is_sealed(value) {
            self.sealed
                .push((key.clone(), self.namespace.clone(), layer.clone()));
        }
        self.any_sealed |= contains_sealed(value);
        Some(())
    }
}

/// The value at `path` inside `section`, and its leaf index within it;
/// every step must be a table that merges.
fn locate<'v>(section: &'v mut Value, path: &[String]) -> Option<(&'v mut Value, usize)> {
    let mut index = 0;
    let mut at = section;
    for seg in path {
        if is_atomic_table(at) {
            return None;
        }
        let Value::Object(table) = at else {
            return None;
        };
        index += before(table, seg);
        at = table.get_mut(seg)?;
    }
    Some((at, index))
}

/// The leaves of the entries of `table` that sort before `key`.
fn before(table: &Map<String, Value>, key: &str) -> usize {
    table
        .iter()
        .take_while(|(k, _)| k.as_str() < key)
        .map(|(_, v)| count_leaves(v))
        .sum()
}

impl CachedView {
    /// This view after `patches` (each with the revision that made it), or
    /// `None` if one of them cannot be patched in.
    pub(crate) fn rebuilt(&self, patches: &[(u64, Arc<[Patch]>)]) -> Option<CachedView> {
        let Winners::Compact(winners) = &self.winners else {
            return None;
        };
        // Patches name the namespace's own layers only.
        if !self.imports.is_empty() {
            return None;
        }
        if self.spans.is_empty() && !self.raw.is_empty() && &*self.raw != "{}" {
            return None;
        }
        let mut draft = Draft {
            raw: String::from(&*self.raw),
            spans: self.spans.to_vec(),
            winners: winners.clone(),
            layers: self.layers.clone(),
            sealed: self.sealed.clone(),
            any_sealed: self.any_sealed,
            namespace: self.namespace.clone(),
        };
        for (revision, patches) in patches {
            for patch in patches.iter() {
                draft.apply(patch)?;
            }
            // Every layer a commit changed was written at its revision.
            for patch in patches.iter() {
                let (Patch::Set { layer, .. } | Patch::Unset { layer, .. }) = patch;
                if let Some(l) = draft.layers.iter_mut().find(|l| l.layer == *layer) {
                    l.revision = *revision;
                }
            }
        }
        Some(CachedView {
            wanted: self.wanted.clone(),
            imports: self.imports.clone(),
            namespace: self.namespace.clone(),
            context: self.context.clone(),
            layers: draft.layers,
            raw: draft.raw.into(),
            spans: draft.spans.into(),
            winners: Winners::Compact(draft.winners),
            sealed: draft.sealed,
            any_sealed: draft.any_sealed,
            masked: std::sync::OnceLock::new(),
        })
    }
}

#[cfg(test)]
mod tests;
