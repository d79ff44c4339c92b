//! Key-level diff between two documents: only what differs.

use serde::Serialize;
use serde_json::Value;

use crate::doc::{Document, is_atomic_table};
use crate::path::KeyPath;

/// How a key changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DiffKind {
    /// Present only in the new document.
    Added,
    /// Present only in the old document.
    Removed,
    /// Present in both with different values.
    Changed,
}

/// One differing key.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiffEntry {
    /// The key (a leaf, an array, or a table present on one side only).
    pub key: KeyPath,
    /// How it changed.
    pub kind: DiffKind,
    /// The old value (absent when added).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    /// The new value (absent when removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
}

/// Compares two documents key by key. Tables are compared recursively;
/// arrays, scalars and delete markers are compared as whole values.
///
/// ```
/// use confstrata_core::{diff, DiffKind};
/// use serde_json::json;
/// let old = json!({"a": 1, "b": {"c": 2}}).as_object().unwrap().clone();
/// let new = json!({"a": 1, "b": {"c": 3}, "d": true}).as_object().unwrap().clone();
/// let d = diff(&old, &new);
/// assert_eq!(d.len(), 2);
/// assert_eq!((d[0].key.to_string(), d[0].kind), ("b.c".into(), DiffKind::Changed));
/// assert_eq!((d[1].key.to_string(), d[1].kind), ("d".into(), DiffKind::Added));
/// ```
pub fn diff(old: &Document, new: &Document) -> Vec<DiffEntry> {
    let mut out = Vec::new();
    walk(&mut Vec::new(), old, new, &mut out);
    out
}

fn walk(prefix: &mut Vec<String>, old: &Document, new: &Document, out: &mut Vec<DiffEntry>) {
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort_unstable();
    keys.dedup();
    for k in keys {
        prefix.push(k.clone());
        match (old.get(k), new.get(k)) {
            (Some(Value::Object(a)), Some(Value::Object(b)))
                if !is_atomic_table(&old[k]) && !is_atomic_table(&new[k]) =>
            {
                walk(prefix, a, b, out);
            }
            (Some(a), Some(b)) if a == b => {}
            (a, b) => out.push(DiffEntry {
                key: KeyPath::from_raw(prefix.clone()),
                kind: match (a, b) {
                    (None, _) => DiffKind::Added,
                    (_, None) => DiffKind::Removed,
                    _ => DiffKind::Changed,
                },
                old: a.cloned(),
                new: b.cloned(),
            }),
        }
        prefix.pop();
    }
}
