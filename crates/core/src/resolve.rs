//! Resolve: deep-merge layers, general to specific, keeping the provenance of
//! every leaf; and `explain`, which lists every layer that set a key.
//!
//! The merge borrows the layers' documents instead of copying them: a table
//! that no later layer touches stays a reference into its layer, and is only
//! expanded one level at a time when a more specific layer merges into it.
//! Copying happens once, when the caller asks for an owned document.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::doc::{Document, is_atomic_table, is_delete_marker};
use crate::path::{KeyPath, LayerPath, NamespaceName};

/// One layer handed to [`resolve`].
#[derive(Debug, Clone, Copy)]
pub struct LayerInput<'a> {
    /// The namespace the layer is in, when it is an import's (`None`: the
    /// namespace being resolved).
    pub namespace: Option<&'a NamespaceName>,
    /// The layer's path.
    pub layer: &'a LayerPath,
    /// The revision that last changed the layer.
    pub revision: u64,
    /// The layer's document.
    pub document: &'a Document,
}

/// Where a resolved leaf came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Provenance {
    /// The imported namespace the layer is in (absent: the namespace
    /// resolved).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<NamespaceName>,
    /// The layer that set the value.
    pub layer: LayerPath,
    /// The revision (change set) that last changed that layer.
    pub revision: u64,
}

impl Provenance {
    /// The namespace the layer is in: the import's, else `own` (the
    /// namespace resolved).
    pub fn namespace_or<'n>(&'n self, own: &'n NamespaceName) -> &'n NamespaceName {
        self.namespace.as_ref().unwrap_or(own)
    }
}

impl ExplainEntry {
    /// The namespace the layer is in: the import's, else `own` (the
    /// namespace explained).
    pub fn namespace_or<'n>(&'n self, own: &'n NamespaceName) -> &'n NamespaceName {
        self.namespace.as_ref().unwrap_or(own)
    }
}

#[derive(Debug)]
enum Node<'a> {
    /// A table expanded because several layers contribute to it.
    Table(BTreeMap<&'a str, Node<'a>>),
    /// A whole table taken from one layer, not yet expanded.
    Subtree(&'a Value, u32),
    /// A scalar or array from one layer.
    Leaf(&'a Value, u32),
}

/// The result of merging layers: a resolved document whose leaves each know
/// their layer. Borrows the layers it was made from.
#[derive(Debug)]
pub struct Resolved<'a> {
    root: BTreeMap<&'a str, Node<'a>>,
    sources: Vec<LayerInput<'a>>,
}

/// Merges `layers`, most general first.
///
/// Tables merge key by key; scalars and arrays replace; the delete marker
/// `{ "$delete" = true }` removes the key.
///
/// ```
/// use confstrata_core::{resolve, KeyPath, LayerInput, LayerPath};
/// use serde_json::json;
/// let (d, p) = (LayerPath::parse("defaults").unwrap(), LayerPath::parse("env/prod").unwrap());
/// let base = json!({"db": {"host": "localhost", "pool": 5}}).as_object().unwrap().clone();
/// let prod = json!({"db": {"host": "db.prod"}}).as_object().unwrap().clone();
/// let r = resolve(&[
///     LayerInput { namespace: None, layer: &d, revision: 1, document: &base },
///     LayerInput { namespace: None, layer: &p, revision: 2, document: &prod },
/// ]);
/// assert_eq!(r.to_value(), json!({"db": {"host": "db.prod", "pool": 5}}));
/// let (value, from) = r.get(&KeyPath::parse("db.pool").unwrap()).unwrap();
/// assert_eq!((value, from.layer.as_str()), (&json!(5), "defaults"));
/// ```
pub fn resolve<'a>(layers: &[LayerInput<'a>]) -> Resolved<'a> {
    let mut root = BTreeMap::new();
    for (i, layer) in layers.iter().enumerate() {
        let src = u32::try_from(i).unwrap_or(u32::MAX);
        merge_table(&mut root, layer.document, src);
    }
    Resolved {
        root,
        sources: layers.to_vec(),
    }
}

fn merge_table<'a>(into: &mut BTreeMap<&'a str, Node<'a>>, from: &'a Map<String, Value>, src: u32) {
    for (k, v) in from {
        if is_delete_marker(v) {
            into.remove(k.as_str());
            continue;
        }
        match v {
            Value::Object(m) if !is_atomic_table(v) => match into.get_mut(k.as_str()) {
                Some(node @ (Node::Table(_) | Node::Subtree(..))) => {
                    if let Some(table) = expand(node) {
                        merge_table(table, m, src);
                    }
                }
                _ => {
                    into.insert(k, Node::Subtree(v, src));
                }
            },
            _ => {
                into.insert(k, Node::Leaf(v, src));
            }
        }
    }
}

/// Turns a `Subtree` node into a `Table` one level deep and returns its map.
fn expand<'n, 'a>(node: &'n mut Node<'a>) -> Option<&'n mut BTreeMap<&'a str, Node<'a>>> {
    if let Node::Subtree(Value::Object(m), src) = *node {
        let mut table = BTreeMap::new();
        for (k, v) in m.iter().filter(|(_, v)| !is_delete_marker(v)) {
            let child = match v {
                Value::Object(_) if !is_atomic_table(v) => Node::Subtree(v, src),
                other => Node::Leaf(other, src),
            };
            table.insert(k.as_str(), child);
        }
        *node = Node::Table(table);
    }
    match node {
        Node::Table(t) => Some(t),
        _ => None,
    }
}

fn subtree_to_value(m: &Map<String, Value>) -> Value {
    Value::Object(
        m.iter()
            .filter(|(_, v)| !is_delete_marker(v))
            .map(|(k, v)| {
                let v = match v {
                    Value::Object(sub) => subtree_to_value(sub),
                    other => other.clone(),
                };
                (k.clone(), v)
            })
            .collect(),
    )
}

fn node_to_value(node: &Node<'_>) -> Value {
    match node {
        Node::Table(t) => Value::Object(
            t.iter()
                .map(|(k, n)| ((*k).to_owned(), node_to_value(n)))
                .collect(),
        ),
        Node::Subtree(Value::Object(m), _) => subtree_to_value(m),
        Node::Subtree(v, _) => (*v).clone(),
        Node::Leaf(v, _) => (*v).clone(),
    }
}

impl<'a> Resolved<'a> {
    /// The resolved document, copied out.
    pub fn to_document(&self) -> Document {
        self.root
            .iter()
            .map(|(k, n)| ((*k).to_owned(), node_to_value(n)))
            .collect()
    }

    /// The resolved document as a JSON value.
    pub fn to_value(&self) -> Value {
        Value::Object(self.to_document())
    }

    fn source(&self, src: u32) -> Provenance {
        let l = &self.sources[src as usize];
        Provenance {
            namespace: l.namespace.cloned(),
            layer: l.layer.clone(),
            revision: l.revision,
        }
    }

    /// Looks up one key: its value and the layer that set it. A table is
    /// returned as a value only if it came whole from one layer.
    pub fn get(&self, key: &KeyPath) -> Option<(&'a Value, Provenance)> {
        let segs = key.segments();
        let mut table = &self.root;
        for (i, seg) in segs.iter().enumerate() {
            let node = table.get(seg.as_str())?;
            let last = i + 1 == segs.len();
            match node {
                Node::Table(t) if !last => table = t,
                Node::Table(_) => return None,
                Node::Leaf(v, src) => return last.then(|| (*v, self.source(*src))),
                Node::Subtree(v, src) => {
                    let rest = &segs[i + 1..];
                    let found = if rest.is_empty() {
                        Some(*v)
                    } else {
                        subtree_get(v.as_object()?, rest)
                    };
                    return found.map(|v| (v, self.source(*src)));
                }
            }
        }
        None
    }

    /// Every leaf of the resolved document with its provenance, in key order.
    pub fn provenance(&self) -> Vec<(KeyPath, Provenance)> {
        fn walk(
            r: &Resolved<'_>,
            prefix: &mut Vec<String>,
            table: &BTreeMap<&str, Node<'_>>,
            out: &mut Vec<(KeyPath, Provenance)>,
        ) {
            for (k, n) in table {
                prefix.push((*k).to_owned());
                match n {
                    Node::Table(t) => walk(r, prefix, t, out),
                    Node::Leaf(_, src) => {
                        out.push((KeyPath::from_raw(prefix.clone()), r.source(*src)))
                    }
                    Node::Subtree(v, src) => {
                        if let Value::Object(m) = v {
                            subtree_walk(r, prefix, m, *src, out);
                        }
                    }
                }
                prefix.pop();
            }
        }
        fn subtree_walk(
            r: &Resolved<'_>,
            prefix: &mut Vec<String>,
            m: &Map<String, Value>,
            src: u32,
            out: &mut Vec<(KeyPath, Provenance)>,
        ) {
            if m.is_empty() {
                out.push((KeyPath::from_raw(prefix.clone()), r.source(src)));
            }
            for (k, v) in m {
                if is_delete_marker(v) {
                    continue;
                }
                prefix.push(k.clone());
                match v {
                    Value::Object(sub) if !is_atomic_table(v) => {
                        subtree_walk(r, prefix, sub, src, out)
                    }
                    _ => out.push((KeyPath::from_raw(prefix.clone()), r.source(src))),
                }
                prefix.pop();
            }
        }
        let mut out = Vec::new();
        walk(self, &mut Vec::new(), &self.root, &mut out);
        out
    }

    /// The layers that went into this resolve, most general first.
    pub fn layers(&self) -> impl Iterator<Item = Provenance> + '_ {
        self.sources.iter().map(|l| Provenance {
            namespace: l.namespace.cloned(),
            layer: l.layer.clone(),
            revision: l.revision,
        })
    }

    /// Lists every layer that sets `key` (or deletes it), most specific first;
    /// the first entry that is not a deletion is the winner when the key resolves.
    pub fn explain(&self, key: &KeyPath) -> Explanation {
        let resolved = self.get(key);
        let mut entries = Vec::new();
        for l in self.sources.iter().rev() {
            if let Some(v) = crate::doc::get(l.document, key) {
                let deleted = is_delete_marker(v);
                entries.push(ExplainEntry {
                    namespace: l.namespace.cloned(),
                    layer: l.layer.clone(),
                    revision: l.revision,
                    value: (!deleted).then(|| v.clone()),
                    deleted,
                    winner: false,
                    origin: None,
                });
            }
        }
        if let Some((_, from)) = &resolved
            && let Some(e) = entries
                .iter_mut()
                .find(|e| e.layer == from.layer && e.namespace == from.namespace && !e.deleted)
        {
            e.winner = true;
        }
        Explanation {
            key: key.clone(),
            value: resolved.as_ref().map(|(v, _)| (*v).clone()),
            from: resolved.map(|(_, p)| p),
            entries,
        }
    }
}

fn subtree_get<'a>(m: &'a Map<String, Value>, segs: &[String]) -> Option<&'a Value> {
    let (last, parents) = segs.split_last()?;
    let mut table = m;
    for s in parents {
        table = table.get(s.as_str())?.as_object()?;
    }
    table.get(last.as_str()).filter(|v| !is_delete_marker(v))
}

/// Why a key has its value: the answer of [`Resolved::explain`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Explanation {
    /// The key asked about.
    pub key: KeyPath,
    /// Its resolved value, if it resolves to anything.
    pub value: Option<Value>,
    /// The layer the resolved value came from.
    pub from: Option<Provenance>,
    /// Every layer that sets or deletes the key, most specific first.
    pub entries: Vec<ExplainEntry>,
}

/// One layer's say on a key.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExplainEntry {
    /// The imported namespace the layer is in (absent: the namespace
    /// explained).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<NamespaceName>,
    /// The layer.
    pub layer: LayerPath,
    /// The revision that last changed it.
    pub revision: u64,
    /// The value it sets (none if it deletes the key).
    pub value: Option<Value>,
    /// Whether the layer holds a delete marker for the key.
    pub deleted: bool,
    /// Whether this layer's value is the resolved one.
    pub winner: bool,
    /// When the namespace was made from a template: what the template
    /// renders at this key in this layer (filled by the engine's explain).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<EntryOrigin>,
}

/// What a template, or a generator the namespace declares, says about one
/// layer's value (see [`ExplainEntry::origin`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EntryOrigin {
    /// The template the namespace was made from, `name@version`; none when
    /// a generator the namespace itself declares computes the key here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// The generator that computes the key in this layer, when one does
    /// (otherwise the template's layers table sets it, or nothing does):
    /// the template's when `template` is set, else the namespace's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generator: Option<String>,
    /// What the template (or the generator) computes at this key in this
    /// layer; none when it does not set it there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_value: Option<Value>,
    /// Whether the layer's value differs from what the template (or the
    /// generator) computes (a local override, or a key it does not set
    /// there).
    pub overridden: bool,
}

#[cfg(test)]
mod tests;
