//! Sync between environments: the plan that makes a target layer (or a
//! namespace's layers) hold a source's values, key by key, as one change
//! set with preconditions (`confstrata sync`).
//!
//! Planning is pure: it takes the two sides as read — with sealed values
//! opened for a caller holding `read-secrets`, and the sealed keys named
//! ([`LayerRecord::sealed_keys`]) — and answers the changes to show and the
//! operations to commit. The caller reads both sides (the same store, or
//! two servers) and commits the ops on the target, where the validation
//! chain runs as for any change set and the preconditions refuse it if the
//! target changed after it was read.
//!
//! The rules:
//! - Only keys the filter selects are compared (include patterns, default
//!   every key; exclude patterns win). Keys only in the target are kept,
//!   unless `delete` is set.
//! - A value sealed on either side is written sealed (`set` with `secret`):
//!   a copy never turns a secret into plaintext. A value that is equal on
//!   both sides but sealed only in the source is sealed in the target.
//! - A key the sync may not change (left out by the patterns, or only in
//!   the target without `delete`) that the copy would change anyway, because
//!   the two sides disagree on what is a table, refuses the whole plan and
//!   names the key. Nothing is merged blindly.
//! - A sealed value the reader could not open (no `read-secrets`, or a
//!   sealed value inside an array) cannot be copied or compared: refused,
//!   naming the key.
//! - Applying the plan and planning again gives no operations.

use std::collections::{BTreeMap, BTreeSet};

pub use confstrata_access::{KeyPattern, LayerPattern};
use confstrata_core::doc::{self, Document, is_atomic_table, is_delete_marker};
use confstrata_core::serde_json::Value;
use confstrata_core::{
    Error, KeyPath, LayerPath, LayerRecord, NamespaceName, NamespaceRecord, Op, Result,
};
use serde::Serialize;

/// Which keys (and, for a namespace, which layers) a sync compares.
#[derive(Debug, Clone, Default)]
pub struct SyncFilter {
    /// Keys to compare (none: every key).
    pub include: Vec<KeyPattern>,
    /// Keys to leave alone, even when an include pattern names them.
    pub exclude: Vec<KeyPattern>,
    /// Layers to compare in a namespace sync (none: every layer).
    pub layers: Vec<LayerPattern>,
    /// Remove selected keys (and layers) that the source does not have.
    pub delete: bool,
}

impl SyncFilter {
    /// Whether the filter selects a key.
    pub fn selects(&self, key: &KeyPath) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| p.covers(key)))
            && !self.exclude.iter().any(|p| p.covers(key))
    }

    /// Whether the filter selects a layer of a namespace sync.
    pub fn selects_layer(&self, layer: &LayerPath) -> bool {
        self.layers.is_empty() || self.layers.iter().any(|p| p.matches(layer))
    }
}

/// How a sync changes one key of the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncKind {
    /// Only in the source: added to the target.
    Added,
    /// Different in the target: replaced with the source's value.
    Changed,
    /// Only in the target (with `delete`): removed.
    Removed,
    /// Equal, but sealed only in the source: sealed in the target.
    Sealed,
}

/// One key the sync changes. Sealed values are always shown masked, even to
/// a caller who may read them: a plan is made to be pasted into a review.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncChange {
    /// The target namespace.
    pub namespace: NamespaceName,
    /// The target layer.
    pub layer: LayerPath,
    /// The key.
    pub key: KeyPath,
    /// What happens to it.
    pub kind: SyncKind,
    /// The target's value now (absent when added).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    /// The value it gets (absent when removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
    /// Written sealed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
}

/// What a sync would do: the changes to show and the operations that make
/// them, each target layer's ops carrying its revision as read.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncPlan {
    /// Every changed key, by target layer then key.
    pub changes: Vec<SyncChange>,
    /// The operations, for one change set on the target.
    #[serde(skip)]
    pub ops: Vec<Op>,
    /// What the sync leaves alone that the reader should know about (a
    /// declaration that differs, keys kept only in the target).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Names this exact plan: the changes as shown and the revision of
    /// every layer it read, on both sides. A plan made later from changed
    /// sources or targets has another, so `sync --commit --plan FP`
    /// applies what a reviewer saw in the dry run or nothing.
    pub fingerprint: String,
    /// What the fingerprint covers besides the changes.
    #[serde(skip)]
    basis: Vec<String>,
}

impl SyncPlan {
    /// Whether the target already matches: nothing to commit.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    fn read(
        &mut self,
        side: &str,
        record: Option<&LayerRecord>,
        ns: &NamespaceName,
        layer: &LayerPath,
    ) {
        let revision = record.map_or(0, |r| r.revision);
        self.basis.push(format!("{side} {ns}:{layer}@{revision}"));
    }

    fn finish(mut self) -> Result<SyncPlan> {
        use sha2::Digest as _;
        let mut hash = sha2::Sha256::new();
        let changes =
            confstrata_core::serde_json::to_vec(&self.changes).map_err(|e| Error::Internal {
                message: format!("cannot encode a sync plan: {e}"),
            })?;
        hash.update(&changes);
        for b in &self.basis {
            hash.update(b"\n");
            hash.update(b.as_bytes());
        }
        self.fingerprint = hash
            .finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(self)
    }
}

/// Plans a layer → layer sync (promote `env/staging` → `env/prod`, or one
/// layer between two servers) into `target_ns:target_layer`, whose current
/// record is `target` (`None`: it does not exist yet).
pub fn plan_layer(
    source: &LayerRecord,
    target: Option<&LayerRecord>,
    target_ns: &NamespaceName,
    target_layer: &LayerPath,
    filter: &SyncFilter,
) -> Result<SyncPlan> {
    let mut plan = SyncPlan::default();
    plan_pair(
        Some(source),
        target,
        target_ns,
        target_layer,
        filter,
        &mut plan,
    )?;
    plan.finish()
}

/// Plans a namespace sync (staging cluster → production cluster): every
/// selected layer of the source into the same layer of `target_ns`. When
/// the target namespace does not exist it is created with the source's
/// declaration; when both exist and the declarations differ, the plan says
/// so and leaves the target's alone (layers are what a sync copies).
pub fn plan_namespace(
    source: &NamespaceRecord,
    source_layers: &[LayerRecord],
    target: Option<&NamespaceRecord>,
    target_layers: &[LayerRecord],
    target_ns: &NamespaceName,
    filter: &SyncFilter,
) -> Result<SyncPlan> {
    let mut plan = SyncPlan::default();
    plan.basis.push(format!(
        "namespaces {}@{} {target_ns}@{}",
        source.spec.name,
        source.revision,
        target.map_or(0, |t| t.revision)
    ));
    match target {
        None => {
            let mut spec = source.spec.clone();
            spec.name = target_ns.clone();
            plan.ops.push(Op::PutNamespace {
                spec,
                expect_revision: Some(0),
            });
            plan.notes.push(format!(
                "namespace {target_ns} does not exist: it is created with the declaration of {}",
                source.spec.name
            ));
        }
        Some(t) => {
            let mut theirs = source.spec.clone();
            theirs.name = t.spec.name.clone();
            if theirs != t.spec {
                plan.notes.push(format!(
                    "the declarations of {} and {target_ns} differ (levels, matrix or validation); sync copies layers and leaves {target_ns}'s declaration as it is",
                    source.spec.name
                ));
            }
        }
    }
    let sources: BTreeMap<&LayerPath, &LayerRecord> = source_layers
        .iter()
        .filter(|r| filter.selects_layer(&r.layer))
        .map(|r| (&r.layer, r))
        .collect();
    let targets: BTreeMap<&LayerPath, &LayerRecord> = target_layers
        .iter()
        .filter(|r| filter.selects_layer(&r.layer))
        .map(|r| (&r.layer, r))
        .collect();
    let mut layers: BTreeSet<&LayerPath> = sources.keys().copied().collect();
    if filter.delete {
        layers.extend(targets.keys().copied());
    } else {
        let kept: Vec<String> = targets
            .keys()
            .filter(|l| !sources.contains_key(*l))
            .map(ToString::to_string)
            .collect();
        if !kept.is_empty() {
            plan.notes.push(format!(
                "layers only in {target_ns} are kept (--delete removes them): {}",
                kept.join(", ")
            ));
        }
    }
    for layer in layers {
        plan_pair(
            sources.get(layer).copied(),
            targets.get(layer).copied(),
            target_ns,
            layer,
            filter,
            &mut plan,
        )?;
    }
    plan.finish()
}

/// Plans one source layer (or none: removed with `delete`) into one
/// target layer, appending to `plan`.
fn plan_pair(
    source: Option<&LayerRecord>,
    target: Option<&LayerRecord>,
    target_ns: &NamespaceName,
    target_layer: &LayerPath,
    filter: &SyncFilter,
    plan: &mut SyncPlan,
) -> Result<()> {
    if let Some(s) = source {
        plan.read("source", Some(s), &s.namespace, &s.layer);
    }
    plan.read("target", target, target_ns, target_layer);
    let empty = Document::new();
    let src = source.map_or(&empty, |r| &r.document);
    let tgt = target.map_or(&empty, |r| &r.document);
    let src_sealed: BTreeSet<&KeyPath> = source
        .map(|r| r.sealed_keys.iter())
        .into_iter()
        .flatten()
        .collect();
    let tgt_sealed: BTreeSet<&KeyPath> = target
        .map(|r| r.sealed_keys.iter())
        .into_iter()
        .flatten()
        .collect();
    let place = |key: &KeyPath| format!("sync into {target_ns}:{target_layer} key {key}");
    let src_leaves: BTreeMap<KeyPath, &Value> = doc::leaves(src)
        .into_iter()
        .filter(|(k, _)| filter.selects(k))
        .collect();
    let tgt_leaves: Vec<(KeyPath, &Value)> = doc::leaves(tgt);

    // What the source shows masked was not opened for this reader.
    for (key, value) in &src_leaves {
        if contains_mask(value) {
            let source_name =
                source.map_or_else(String::new, |r| format!("{}:{}", r.namespace, r.layer));
            return Err(Error::PermissionDenied {
                action: "read-secrets".into(),
                resource: format!("{source_name}#{key}"),
                message: format!(
                    "cannot copy {source_name} key {key}: it is sealed and was not opened for this reader (it needs read-secrets on the source, and a sealed value inside an array is never opened); leave it out with --exclude {key}"
                ),
            });
        }
    }

    // The target as it should be.
    let mut desired = tgt.clone();
    if filter.delete {
        for (key, _) in &tgt_leaves {
            if filter.selects(key) && !src_leaves.contains_key(key) {
                doc::unset(&mut desired, key);
            }
        }
    }
    for (key, value) in &src_leaves {
        doc::set(&mut desired, key, (*value).clone()).map_err(|_| {
            Error::invalid(
                place(key),
                "the target holds a value at an enclosing key where the source has a table; select that key and sync with --delete, or change one side first",
            )
        })?;
    }
    // Nothing the sync may not touch changed on the way.
    for (key, value) in &tgt_leaves {
        let may_change = filter.selects(key) && (src_leaves.contains_key(key) || filter.delete);
        if !may_change && doc::get(&desired, key) != Some(*value) {
            let why = if filter.selects(key) {
                "it is only in the target and would be replaced by a value the source has at an enclosing key; sync with --delete to allow it"
            } else {
                "the patterns leave it out, but the source has a value at an enclosing key that would replace it; include or exclude the enclosing key instead"
            };
            return Err(Error::invalid(place(key), why));
        }
    }
    // Sealed target values this reader could not open cannot be compared.
    for (key, value) in &tgt_leaves {
        let touched = doc::get(&desired, key) != Some(*value) || src_leaves.contains_key(key);
        if touched && contains_mask(value) {
            return Err(Error::PermissionDenied {
                action: "read-secrets".into(),
                resource: format!("{target_ns}:{target_layer}#{key}"),
                message: format!(
                    "cannot compare {target_ns}:{target_layer} key {key}: it is sealed and was not opened for this reader (it needs read-secrets on the target); leave it out with --exclude {key}"
                ),
            });
        }
    }

    let expect = Some(target.map_or(0, |r| r.revision));
    let first_op = plan.ops.len();
    let mask = || Value::String(confstrata_crypto::MASK.to_owned());
    let shown = |sealed: bool, v: &Value| if sealed { mask() } else { v.clone() };
    let mut unsets = Vec::new();
    let mut sets = Vec::new();
    for (key, value) in &tgt_leaves {
        let gone = match doc::get(&desired, key) {
            None => true,
            Some(v) => {
                v.is_object() && !is_atomic_table(v) && v.as_object().is_some_and(|m| !m.is_empty())
            }
        };
        if gone {
            plan.changes.push(SyncChange {
                namespace: target_ns.clone(),
                layer: target_layer.clone(),
                key: key.clone(),
                kind: SyncKind::Removed,
                old: Some(shown(tgt_sealed.contains(key), value)),
                new: None,
                secret: false,
            });
            unsets.push(key.clone());
        }
    }
    for (key, value) in doc::leaves(&desired) {
        let old = doc::get(tgt, &key);
        let was_sealed = tgt_sealed.contains(&key);
        let seal = src_sealed.contains(&key) || (was_sealed && !is_delete_marker(value));
        let kind = match old {
            Some(o) if o == value && (was_sealed || !seal) => continue,
            Some(o) if o == value => SyncKind::Sealed,
            Some(o) if is_table(o) => SyncKind::Added,
            Some(_) => SyncKind::Changed,
            None => SyncKind::Added,
        };
        plan.changes.push(SyncChange {
            namespace: target_ns.clone(),
            layer: target_layer.clone(),
            key: key.clone(),
            kind,
            old: old.filter(|o| !is_table(o)).map(|o| shown(was_sealed, o)),
            new: Some(shown(seal, value)),
            secret: seal,
        });
        sets.push((key, value.clone(), seal));
    }
    if target.is_some() && source.is_none() && desired.is_empty() {
        plan.ops.push(Op::Delete {
            namespace: target_ns.clone(),
            layer: target_layer.clone(),
            expect_revision: expect,
        });
        return Ok(());
    }
    plan.ops.extend(unsets.into_iter().map(|key| Op::Unset {
        namespace: target_ns.clone(),
        layer: target_layer.clone(),
        key,
        expect_revision: None,
    }));
    plan.ops
        .extend(sets.into_iter().map(|(key, value, secret)| Op::Set {
            namespace: target_ns.clone(),
            layer: target_layer.clone(),
            key,
            value,
            secret,
            expect_revision: None,
        }));
    // One precondition per target layer: it is checked against the store
    // as it was before the change set.
    if let Some(
        Op::Set {
            expect_revision, ..
        }
        | Op::Unset {
            expect_revision, ..
        },
    ) = plan.ops.get_mut(first_op)
    {
        *expect_revision = expect;
    }
    Ok(())
}

/// Whether a value is a table of keys (not a value such as a sealed one).
fn is_table(value: &Value) -> bool {
    value.is_object() && !is_atomic_table(value)
}

/// Whether a value is, or holds, the mask of a sealed value.
fn contains_mask(value: &Value) -> bool {
    match value {
        Value::String(s) => s == confstrata_crypto::MASK,
        Value::Array(a) => a.iter().any(contains_mask),
        Value::Object(m) => m.values().any(contains_mask),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
