//! Change sets: many operations across namespaces, committed atomically as
//! one revision, with optional expected-revision preconditions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::doc::{self, Document, Limits};
use crate::error::{Error, Result};
use crate::namespace::NamespaceSpec;
use crate::path::{KeyPath, LayerPath, NamespaceName};

/// A batch of operations committed as one revision.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChangeSet {
    /// Who made the change.
    #[serde(default)]
    pub author: String,
    /// Why.
    #[serde(default)]
    pub message: String,
    /// The operations, applied in order.
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub ops: Vec<Op>,
}

/// One operation of a change set.
///
/// Every operation may carry `expect_revision`: the revision that last changed
/// its target, as read before the change set; `0` means "must not exist".
/// Preconditions are checked against the store as it was before the change
/// set, so they mean the same whatever their order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Op {
    /// Create or replace a namespace declaration.
    PutNamespace {
        /// The declaration.
        spec: NamespaceSpec,
        /// Precondition on the namespace's revision.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect_revision: Option<u64>,
    },
    /// Replace a whole layer.
    Put {
        /// The namespace.
        namespace: NamespaceName,
        /// The layer.
        layer: LayerPath,
        /// The new document.
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        document: Document,
        /// Precondition on the layer's revision.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect_revision: Option<u64>,
    },
    /// Set one key in a layer, creating the layer if needed.
    Set {
        /// The namespace.
        namespace: NamespaceName,
        /// The layer.
        layer: LayerPath,
        /// The key.
        key: KeyPath,
        /// The value.
        value: Value,
        /// Seal the value (every leaf of it): stored encrypted, shown only
        /// to callers allowed to read secrets. Keys the secret rule names
        /// (`password`, `*_token`, ...) are sealed without asking.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        secret: bool,
        /// Precondition on the layer's revision.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect_revision: Option<u64>,
    },
    /// Remove one key from a layer.
    Unset {
        /// The namespace.
        namespace: NamespaceName,
        /// The layer.
        layer: LayerPath,
        /// The key.
        key: KeyPath,
        /// Precondition on the layer's revision.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect_revision: Option<u64>,
    },
    /// Delete a whole namespace: its declaration and every layer (their
    /// history stays). Refused while another namespace imports it.
    DeleteNamespace {
        /// The namespace.
        namespace: NamespaceName,
        /// Precondition on the namespace's revision (its declaration's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect_revision: Option<u64>,
    },
    /// Delete a whole layer.
    Delete {
        /// The namespace.
        namespace: NamespaceName,
        /// The layer.
        layer: LayerPath,
        /// Precondition on the layer's revision.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect_revision: Option<u64>,
    },
}

impl Op {
    /// The ops that set keys of one layer (`SetKeys`, `confstrata set`):
    /// one `set` per entry `(key, value, secret)`, in order, with
    /// `expect_revision` on the first only (preconditions are checked
    /// against the state before the change set: once is enough).
    pub fn set_keys(
        namespace: &NamespaceName,
        layer: &LayerPath,
        entries: impl IntoIterator<Item = (KeyPath, Value, bool)>,
        expect_revision: Option<u64>,
    ) -> Vec<Op> {
        entries
            .into_iter()
            .enumerate()
            .map(|(i, (key, value, secret))| Op::Set {
                namespace: namespace.clone(),
                layer: layer.clone(),
                key,
                value,
                secret,
                expect_revision: if i == 0 { expect_revision } else { None },
            })
            .collect()
    }

    /// The ops that remove keys of one layer (`UnsetKeys`, `confstrata
    /// unset`), with `expect_revision` on the first only.
    pub fn unset_keys(
        namespace: &NamespaceName,
        layer: &LayerPath,
        keys: impl IntoIterator<Item = KeyPath>,
        expect_revision: Option<u64>,
    ) -> Vec<Op> {
        keys.into_iter()
            .enumerate()
            .map(|(i, key)| Op::Unset {
                namespace: namespace.clone(),
                layer: layer.clone(),
                key,
                expect_revision: if i == 0 { expect_revision } else { None },
            })
            .collect()
    }

    /// The namespace the op changes.
    pub fn namespace(&self) -> &NamespaceName {
        match self {
            Op::PutNamespace { spec, .. } => &spec.name,
            Op::Put { namespace, .. }
            | Op::Set { namespace, .. }
            | Op::Unset { namespace, .. }
            | Op::Delete { namespace, .. }
            | Op::DeleteNamespace { namespace, .. } => namespace,
        }
    }

    /// A short description for errors: `set webshop:env/prod db.pool.max`.
    pub fn describe(&self) -> String {
        match self {
            Op::PutNamespace { spec, .. } => format!("put-namespace {}", spec.name),
            Op::Put {
                namespace, layer, ..
            } => format!("put {namespace}:{layer}"),
            Op::Set {
                namespace,
                layer,
                key,
                ..
            } => format!("set {namespace}:{layer} {key}"),
            Op::Unset {
                namespace,
                layer,
                key,
                ..
            } => format!("unset {namespace}:{layer} {key}"),
            Op::Delete {
                namespace, layer, ..
            } => format!("delete {namespace}:{layer}"),
            Op::DeleteNamespace { namespace, .. } => format!("delete-namespace {namespace}"),
        }
    }
}

/// Read access to the committed state that a change set is planned against.
/// Stores implement it inside their write transaction.
pub trait StateReader {
    /// The store's current revision.
    fn current_revision(&mut self) -> Result<u64>;
    /// A namespace's declaration and the revision that last changed it.
    fn namespace(&mut self, name: &NamespaceName) -> Result<Option<(NamespaceSpec, u64)>>;
    /// A layer's document and the revision that last changed it.
    fn layer(&mut self, ns: &NamespaceName, layer: &LayerPath) -> Result<Option<(Document, u64)>>;
    /// The layers a namespace has (for deleting it with them). By
    /// default unsupported: a reader that plans namespace deletions must
    /// say.
    fn layer_paths(&mut self, ns: &NamespaceName) -> Result<Vec<LayerPath>> {
        Err(Error::storage(format!(
            "this store cannot list the layers of {ns} to delete it"
        )))
    }
    /// Every namespace that exists (for refusing to delete one that is
    /// imported). By default unsupported, as [`StateReader::layer_paths`].
    fn namespace_names(&mut self) -> Result<Vec<NamespaceName>> {
        Err(Error::storage(
            "this store cannot list its namespaces to delete one",
        ))
    }
    /// After [`StateReader::layer`] found the layer: a number of bytes its
    /// JSON form is known not to exceed, if the reader knows one (so a
    /// `set` need not serialize the whole layer to check the size limit).
    fn layer_size_bound(&mut self, _ns: &NamespaceName, _layer: &LayerPath) -> Option<usize> {
        None
    }
    /// [`StateReader::layer`] for a layer the caller is about to change
    /// in place (set or unset keys): a reader that keeps its own copy of
    /// the document may hand that over instead of a clone, and then not
    /// serve it again (a large layer's clone and the old copy's drop cost
    /// more than the change). By default, [`StateReader::layer`].
    fn take_layer(
        &mut self,
        ns: &NamespaceName,
        layer: &LayerPath,
    ) -> Result<Option<(Document, u64)>> {
        self.layer(ns, layer)
    }
    /// The revision that last changed a layer (0: it does not exist),
    /// without its document where the reader can.
    fn layer_revision(&mut self, ns: &NamespaceName, layer: &LayerPath) -> Result<u64> {
        Ok(self.layer(ns, layer)?.map_or(0, |(_, r)| r))
    }
}

/// The final state a change set leaves behind: what a store must write.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Namespace declarations to write.
    pub namespaces: Vec<NamespaceSpec>,
    /// Namespaces to delete (a declaration tombstone each; their layers'
    /// deletions are in `layers`).
    pub deleted: Vec<NamespaceName>,
    /// Layers to write, in order of first touch; `None` deletes the layer.
    pub layers: Vec<(NamespaceName, LayerPath, Option<Document>)>,
    /// For each of `layers`, the keys the change set set or unset in it,
    /// when that is all it did to the layer (`None`: it put or deleted
    /// the layer). Everything else of the layer is as it was: a store
    /// that stores the change can compare only these keys.
    pub touched: Vec<Option<Vec<KeyPath>>>,
    /// For each of `layers`, a number of bytes its new document's JSON
    /// form does not exceed (exact when it was measured), if known.
    pub sizes: Vec<Option<usize>>,
    /// For each of `layers` whose `touched` is known: the top-level
    /// entries the touched keys are under, as they were before the change
    /// set (an entry absent: it did not exist). With `touched`, all a
    /// store needs to compare the old and new versions of the layer when
    /// it no longer has the old one ([`StateReader::take_layer`]).
    pub before: Vec<Option<Document>>,
}

struct LayerState {
    original_revision: u64,
    document: Option<Document>,
    touched: Option<Vec<KeyPath>>,
    /// A bound on the JSON size of `document`.
    size: Option<usize>,
    /// The top-level entries under the touched keys as they were, and
    /// which top-level keys were recorded (present or not).
    before: Document,
    recorded: std::collections::BTreeSet<String>,
}

impl LayerState {
    /// Records the original top-level entry `key` is under, before its
    /// first change.
    fn record_before(&mut self, key: &KeyPath) {
        if self.touched.is_none() {
            return;
        }
        let Some(top) = key.segments().first() else {
            return;
        };
        if self.recorded.insert(top.clone())
            && let Some(v) = self.document.as_ref().and_then(|d| d.get(top))
        {
            self.before.insert(top.clone(), v.clone());
        }
    }
}

/// Checks a change set against the committed state and computes the writes.
/// Nothing is written: a store calls this inside its transaction.
pub fn plan(cs: &ChangeSet, reader: &mut dyn StateReader, limits: &Limits) -> Result<Plan> {
    if cs.ops.is_empty() {
        return Err(Error::invalid("change set", "it has no operations"));
    }
    let mut namespaces: BTreeMap<NamespaceName, (Option<NamespaceSpec>, u64)> = BTreeMap::new();
    let mut ns_order = Vec::new();
    // The op that last declared, or deleted, each namespace.
    let mut declared_by: BTreeMap<NamespaceName, usize> = BTreeMap::new();
    let mut deleted_by: BTreeMap<NamespaceName, usize> = BTreeMap::new();
    let mut layers: BTreeMap<(NamespaceName, LayerPath), LayerState> = BTreeMap::new();
    let mut layer_order = Vec::new();
    let mut total = 0usize;

    for (index, op) in cs.ops.iter().enumerate() {
        let wrap = |e: Error| Error::Operation {
            index,
            op: op.describe(),
            source: Box::new(e),
        };
        let step = (|| -> Result<()> {
            if let Op::PutNamespace {
                spec,
                expect_revision,
            } = op
            {
                spec.validate()?;
                if !namespaces.contains_key(&spec.name) {
                    let found = reader.namespace(&spec.name)?;
                    let rev = found.as_ref().map_or(0, |(_, r)| *r);
                    namespaces.insert(spec.name.clone(), (found.map(|(s, _)| s), rev));
                }
                let (state, rev) = namespaces
                    .get_mut(&spec.name)
                    .ok_or_else(|| Error::storage("namespace state lost"))?;
                check_expect(
                    reader,
                    format!("namespace {}", spec.name),
                    *expect_revision,
                    *rev,
                )?;
                *state = Some(spec.clone());
                declared_by.insert(spec.name.clone(), index);
                deleted_by.remove(&spec.name);
                if !ns_order.contains(&spec.name) {
                    ns_order.push(spec.name.clone());
                }
                return Ok(());
            }
            if let Op::DeleteNamespace {
                namespace,
                expect_revision,
            } = op
            {
                if !namespaces.contains_key(namespace) {
                    let found = reader.namespace(namespace)?;
                    let rev = found.as_ref().map_or(0, |(_, r)| *r);
                    namespaces.insert(namespace.clone(), (found.map(|(s, _)| s), rev));
                }
                let (state, rev) = namespaces
                    .get_mut(namespace)
                    .ok_or_else(|| Error::storage("namespace state lost"))?;
                check_expect(
                    reader,
                    format!("namespace {namespace}"),
                    *expect_revision,
                    *rev,
                )?;
                if state.take().is_none() {
                    return Err(Error::NamespaceNotFound {
                        namespace: namespace.to_string(),
                    });
                }
                declared_by.remove(namespace);
                deleted_by.insert(namespace.clone(), index);
                if !ns_order.contains(namespace) {
                    ns_order.push(namespace.clone());
                }
                // Every layer goes with it: those stored, and those this
                // change set wrote before.
                for layer in reader.layer_paths(namespace)? {
                    let key = (namespace.clone(), layer);
                    if !layers.contains_key(&key) {
                        let found = reader.layer(&key.0, &key.1)?;
                        layers.insert(
                            key.clone(),
                            LayerState {
                                original_revision: found.as_ref().map_or(0, |(_, r)| *r),
                                document: found.map(|(d, _)| d),
                                touched: None,
                                size: None,
                                before: Document::new(),
                                recorded: std::collections::BTreeSet::new(),
                            },
                        );
                        layer_order.push(key);
                    }
                }
                for ((ns, _), state) in layers.iter_mut() {
                    if ns == namespace {
                        state.document = None;
                        state.touched = None;
                        state.size = None;
                    }
                }
                return Ok(());
            }
            let (ns, layer, expect) = match op {
                Op::Put {
                    namespace,
                    layer,
                    expect_revision,
                    ..
                }
                | Op::Set {
                    namespace,
                    layer,
                    expect_revision,
                    ..
                }
                | Op::Unset {
                    namespace,
                    layer,
                    expect_revision,
                    ..
                }
                | Op::Delete {
                    namespace,
                    layer,
                    expect_revision,
                } => (namespace, layer, *expect_revision),
                Op::PutNamespace { .. } | Op::DeleteNamespace { .. } => return Ok(()),
            };
            if !namespaces.contains_key(ns) {
                let found = reader.namespace(ns)?;
                let rev = found.as_ref().map_or(0, |(_, r)| *r);
                namespaces.insert(ns.clone(), (found.map(|(s, _)| s), rev));
            }
            let spec = namespaces
                .get(ns)
                .and_then(|(s, _)| s.as_ref())
                .ok_or_else(|| Error::NamespaceNotFound {
                    namespace: ns.to_string(),
                })?;
            spec.level_of(layer)?;
            let key = (ns.clone(), layer.clone());
            if !layers.contains_key(&key) {
                let in_place = matches!(op, Op::Set { .. } | Op::Unset { .. });
                let found = if in_place {
                    // A conflict is found before the reader hands its
                    // copy over (a refused change set would lose it).
                    if let Some(e) = expect {
                        let actual = reader.layer_revision(ns, layer)?;
                        check_expect(reader, format!("layer {ns}:{layer}"), Some(e), actual)?;
                    }
                    reader.take_layer(ns, layer)?
                } else {
                    reader.layer(ns, layer)?
                };
                let original_revision = found.as_ref().map_or(0, |(_, r)| *r);
                let size = match &found {
                    Some(_) => reader.layer_size_bound(ns, layer),
                    None => Some(2),
                };
                layers.insert(
                    key.clone(),
                    LayerState {
                        original_revision,
                        document: found.map(|(d, _)| d),
                        touched: Some(Vec::new()),
                        size,
                        before: Document::new(),
                        recorded: std::collections::BTreeSet::new(),
                    },
                );
                layer_order.push(key.clone());
            }
            let state = layers
                .get_mut(&key)
                .ok_or_else(|| Error::storage("layer state lost"))?;
            check_expect(
                reader,
                format!("layer {ns}:{layer}"),
                expect,
                state.original_revision,
            )?;
            let what = format!("layer {ns}:{layer}");
            match op {
                Op::Put { document, .. } => {
                    let size = doc::check_document(&what, document, limits)?;
                    total += size;
                    state.document = Some(document.clone());
                    state.touched = None;
                    state.size = Some(size);
                }
                Op::Set { key, value, .. } => {
                    state.record_before(key);
                    // Taken, not copied: an error ends the whole plan.
                    let mut d = state.document.take().unwrap_or_default();
                    doc::set(&mut d, key, value.clone())?;
                    doc::check_set(&what, &d, key, limits)?;
                    let value_len = serde_json::to_vec(value).map_err(Error::storage)?.len();
                    total += value_len;
                    // The size: bounded from the layer's before, when that
                    // is known and the bound is within the limit (adding
                    // a key adds at most its quoted segments, a colon, a
                    // comma and the braces of tables it creates);
                    // otherwise measured.
                    let bound = state.size.map(|b| {
                        key.segments()
                            .iter()
                            .map(|s| 2 * s.len() + 6)
                            .fold(b.saturating_add(value_len), usize::saturating_add)
                    });
                    let size = match bound {
                        Some(b) if b <= limits.max_document_bytes => b,
                        _ => {
                            let exact = doc::json_len(&d)?;
                            doc::check_size(&what, exact, limits)?;
                            exact
                        }
                    };
                    state.size = Some(size);
                    state.document = Some(d);
                    if let Some(t) = &mut state.touched {
                        t.push(key.clone());
                    }
                }
                Op::Unset { key, .. } => {
                    state.record_before(key);
                    let d = state
                        .document
                        .as_mut()
                        .ok_or_else(|| Error::LayerNotFound {
                            namespace: ns.to_string(),
                            layer: layer.to_string(),
                        })?;
                    doc::unset(d, key).ok_or_else(|| Error::KeyNotFound {
                        location: what.clone(),
                        key: key.to_string(),
                    })?;
                    if let Some(t) = &mut state.touched {
                        t.push(key.clone());
                    }
                }
                Op::Delete { .. } => {
                    state.touched = None;
                    state.size = None;
                    if state.document.take().is_none() {
                        return Err(Error::LayerNotFound {
                            namespace: ns.to_string(),
                            layer: layer.to_string(),
                        });
                    }
                }
                Op::PutNamespace { .. } | Op::DeleteNamespace { .. } => {}
            }
            Ok(())
        })();
        step.map_err(wrap)?;
        if total > limits.max_change_set_bytes {
            return Err(Error::TooLarge {
                what: "change set".into(),
                size: total,
                limit: limits.max_change_set_bytes,
            });
        }
    }
    // Imports must exist (here or in the change set) and form no cycle: a
    // new cycle passes through a declaration this change set makes.
    for (name, index) in &declared_by {
        let Some((Some(spec), _)) = namespaces.get(name) else {
            continue;
        };
        if spec.imports.is_empty() {
            continue;
        }
        crate::imports::import_order(spec, &mut |n| match namespaces.get(n) {
            Some((s, _)) => Ok(s.clone()),
            None => Ok(reader.namespace(n)?.map(|(s, _)| s)),
        })
        .map_err(|e| Error::Operation {
            index: *index,
            op: cs.ops.get(*index).map(Op::describe).unwrap_or_default(),
            source: Box::new(e),
        })?;
    }
    // A declaration with imports can also make a namespace that imports
    // it unresolvable (its chain now too deep): every importer must still
    // resolve. And a namespace that another imports cannot go (the
    // importer would no longer resolve): remove the import first. Both
    // need every declaration.
    let first_with_imports = declared_by
        .iter()
        .filter(|(name, _)| {
            matches!(namespaces.get(*name), Some((Some(s), _)) if !s.imports.is_empty())
        })
        .map(|(_, index)| *index)
        .min();
    if first_with_imports.is_some() || !deleted_by.is_empty() {
        for name in reader.namespace_names()? {
            if !namespaces.contains_key(&name) {
                let found = reader.namespace(&name)?;
                let rev = found.as_ref().map_or(0, |(_, r)| *r);
                namespaces.insert(name.clone(), (found.map(|(s, _)| s), rev));
            }
        }
    }
    if let Some(index) = first_with_imports {
        for (name, (spec, _)) in &namespaces {
            let Some(spec) = spec.as_ref().filter(|s| !s.imports.is_empty()) else {
                continue;
            };
            if declared_by.contains_key(name) {
                continue;
            }
            crate::imports::import_order(spec, &mut |n| {
                Ok(namespaces.get(n).and_then(|(s, _)| s.clone()))
            })
            .map_err(|e| Error::Operation {
                index,
                op: cs.ops.get(index).map(Op::describe).unwrap_or_default(),
                source: Box::new(Error::invalid(
                    format!("namespace {name}, which imports what this declares"),
                    format!("it would no longer resolve: {e}"),
                )),
            })?;
        }
    }
    if !deleted_by.is_empty() {
        for (gone, index) in &deleted_by {
            let importer = namespaces.iter().find_map(|(name, (spec, _))| {
                spec.as_ref()
                    .filter(|s| s.imports.contains(gone))
                    .map(|_| name)
            });
            if let Some(importer) = importer {
                return Err(Error::Operation {
                    index: *index,
                    op: cs.ops.get(*index).map(Op::describe).unwrap_or_default(),
                    source: Box::new(Error::invalid(
                        format!("namespace {gone}"),
                        format!(
                            "namespace {importer} imports it; remove the import from {importer} first"
                        ),
                    )),
                });
            }
        }
    }
    let mut sizes = Vec::new();
    let mut before = Vec::new();
    let (layers, touched) = layer_order
        .into_iter()
        .filter_map(|k| {
            let state = layers.remove(&k)?;
            // A layer created and deleted within the change set never existed.
            if state.original_revision == 0 && state.document.is_none() {
                return None;
            }
            sizes.push(state.size.filter(|_| state.document.is_some()));
            before.push(state.touched.as_ref().map(|_| state.before));
            Some(((k.0, k.1, state.document), state.touched))
        })
        .unzip();
    let deleted = ns_order
        .iter()
        .filter(|n| deleted_by.contains_key(*n))
        .cloned()
        .collect();
    Ok(Plan {
        deleted,
        namespaces: ns_order
            .into_iter()
            .filter_map(|n| namespaces.remove(&n).and_then(|(s, _)| s))
            .collect(),
        layers,
        touched,
        sizes,
        before,
    })
}

fn check_expect(
    reader: &mut dyn StateReader,
    target: String,
    expected: Option<u64>,
    actual: u64,
) -> Result<()> {
    match expected {
        Some(expected) if expected != actual => Err(Error::Conflict {
            target,
            expected,
            actual,
            current_revision: reader.current_revision()?,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
