//! Upgrading a namespace to a new version of its template: a three-way
//! merge, key by key, of the old template output (the base), the new
//! template output and the layers now.
//!
//! For each key of each layer: where the namespace still holds the old
//! output, it takes the new one; where the template did not change the
//! key, the namespace's value (a local override, or a key it removed) is
//! kept; where both changed it the same way there is nothing to do; where
//! both changed it differently, it is a conflict, reported by key path and
//! never resolved silently. The declaration (levels, matrix, validation)
//! is merged the same way as a whole. The result is one change set with
//! the revision of every layer it read as a precondition.

use std::collections::{BTreeMap, BTreeSet};

use confstrata_core::doc::{self, Document};
use confstrata_core::serde_json::Value;
use confstrata_core::{KeyPath, LayerPath, LayerRecord, NamespaceRecord, Op};
use serde::Serialize;

use crate::Rendered;

/// Where a conflict is settled, when the caller chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolve {
    /// Keep the namespace's value.
    Ours,
    /// Take the new template's value.
    Theirs,
}

/// One key an upgrade changes, or a conflict on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpgradeChange {
    /// The layer (none: the declaration as a whole).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<LayerPath>,
    /// The key (`*` for the declaration).
    pub key: String,
    /// The old template's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<Value>,
    /// The namespace's value now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<Value>,
    /// The new template's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
    /// Both sides changed it differently.
    pub conflict: bool,
}

/// What an upgrade does.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Upgrade {
    /// The keys the new template changes and the namespace did not.
    pub changes: Vec<UpgradeChange>,
    /// The keys both changed differently.
    pub conflicts: Vec<UpgradeChange>,
    /// Whether the declaration changes (or conflicts: then in `conflicts`).
    pub declaration: bool,
    /// The local overrides kept.
    pub kept: usize,
    /// The operations, for one change set.
    #[serde(skip)]
    pub ops: Vec<Op>,
}

/// Plans the upgrade of a namespace whose declaration and layers are
/// `current` from `old` (its template's output as it was applied) to
/// `new`. Conflicts are left out of the ops unless `resolve` settles them.
pub fn plan_upgrade(
    old: &Rendered,
    new: &Rendered,
    current: &NamespaceRecord,
    current_layers: &[LayerRecord],
    resolve: Option<Resolve>,
) -> Upgrade {
    let mut up = Upgrade::default();
    let ns = &current.spec.name;
    let base_layers: BTreeMap<&LayerPath, &Document> =
        old.layers.iter().map(|(l, d)| (l, d)).collect();
    let new_layers: BTreeMap<&LayerPath, &Document> =
        new.layers.iter().map(|(l, d)| (l, d)).collect();
    let ours: BTreeMap<&LayerPath, &LayerRecord> =
        current_layers.iter().map(|r| (&r.layer, r)).collect();

    // The declaration, as a whole, without the recorded origin, the imports
    // and the generators (a template declares neither on the namespace: the
    // namespace's own, always kept).
    let strip = |spec: &confstrata_core::NamespaceSpec| {
        let mut s = spec.clone();
        s.template = None;
        s.imports = Vec::new();
        s.generators = Vec::new();
        s.name = ns.clone();
        s
    };
    let (b, o, t) = (strip(&old.spec), strip(&current.spec), strip(&new.spec));
    let mut spec = current.spec.clone();
    let mut spec_changed = false;
    if t != b && o != b && o != t {
        let show =
            |s: &confstrata_core::NamespaceSpec| confstrata_core::serde_json::to_value(s).ok();
        up.conflicts.push(UpgradeChange {
            layer: None,
            key: "*".into(),
            base: show(&b),
            current: show(&o),
            new: show(&t),
            conflict: true,
        });
        if resolve == Some(Resolve::Theirs) {
            spec = new.spec.clone();
            spec.name = ns.clone();
            spec_changed = true;
        }
    } else if t != b && o == b {
        spec = new.spec.clone();
        spec.name = ns.clone();
        spec_changed = true;
    }
    // The origin moves to the new version in every case.
    spec.template = new.spec.template.clone();
    spec.imports = current.spec.imports.clone();
    spec.generators = current.spec.generators.clone();
    up.declaration = spec_changed;
    up.ops.push(Op::PutNamespace {
        spec,
        expect_revision: Some(current.revision),
    });

    let empty = Document::new();
    let layers: BTreeSet<&LayerPath> = base_layers
        .keys()
        .chain(new_layers.keys())
        .copied()
        .collect();
    for layer in layers {
        let base = base_layers.get(layer).copied().unwrap_or(&empty);
        let theirs = new_layers.get(layer).copied().unwrap_or(&empty);
        let record = ours.get(layer).copied();
        let mine = record.map_or(&empty, |r| &r.document);
        let keys: BTreeSet<KeyPath> = doc::leaves(base)
            .into_iter()
            .chain(doc::leaves(theirs))
            .chain(doc::leaves(mine))
            .map(|(k, _)| k)
            .collect();
        let mut unsets = Vec::new();
        let mut sets = Vec::new();
        for key in keys {
            let (b, t, o) = (
                doc::get(base, &key),
                doc::get(theirs, &key),
                doc::get(mine, &key),
            );
            if t == b {
                if o != b {
                    up.kept += 1;
                }
                continue;
            }
            if o == t {
                continue;
            }
            let change = UpgradeChange {
                layer: Some(layer.clone()),
                key: key.to_string(),
                base: b.cloned(),
                current: o.cloned(),
                new: t.cloned(),
                conflict: o != b,
            };
            let take = if o == b {
                up.changes.push(change);
                true
            } else {
                up.conflicts.push(change);
                resolve == Some(Resolve::Theirs)
            };
            if take {
                match t {
                    Some(v) => sets.push((key, v.clone())),
                    None => unsets.push(key),
                }
            }
        }
        let first = up.ops.len();
        up.ops.extend(unsets.into_iter().map(|key| Op::Unset {
            namespace: ns.clone(),
            layer: layer.clone(),
            key,
            expect_revision: None,
        }));
        up.ops.extend(sets.into_iter().map(|(key, value)| Op::Set {
            namespace: ns.clone(),
            layer: layer.clone(),
            key,
            value,
            secret: false,
            expect_revision: None,
        }));
        let expect = Some(record.map_or(0, |r| r.revision));
        if let Some(
            Op::Set {
                expect_revision, ..
            }
            | Op::Unset {
                expect_revision, ..
            },
        ) = up.ops.get_mut(first)
        {
            *expect_revision = expect;
        }
    }
    up
}
