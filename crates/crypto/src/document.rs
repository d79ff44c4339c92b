//! Whole layer documents: seal, open, mask, list key ids, rewrap.
//!
//! Every function that can fail works on a copy and replaces the document
//! only on success, so an error leaves the document as it was (never half
//! opened or half sealed).

use std::collections::BTreeSet;

use confstrata_core::doc::is_delete_marker;
use confstrata_core::{Document, Error as CoreError, KeyPath, LayerPath, NamespaceName};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::keyring::{KeyId, Keyring};
use crate::rule::SecretRule;
use crate::sealed::{MASK, Sealed, is_sealed, open_value, place, seal};

/// Seals every leaf at the given key paths of a layer document. A path to a
/// table seals every leaf beneath it (each bound to its own key path).
/// Leaves already sealed, delete markers and empty tables are left as they
/// are. Returns how many leaves were sealed.
///
/// A path that is not in the document is an error (nothing is sealed).
pub fn seal_paths(
    doc: &mut Document,
    keyring: &Keyring,
    namespace: &NamespaceName,
    layer: &LayerPath,
    paths: &[KeyPath],
) -> Result<usize> {
    let mut out = doc.clone();
    let mut count = 0;
    for path in paths {
        let Some(value) = get_mut(&mut out, path) else {
            return Err(CoreError::KeyNotFound {
                location: format!("layer {namespace}:{layer}"),
                key: path.to_string(),
            }
            .into());
        };
        let mut segments = path.segments().to_vec();
        count += seal_leaves(value, &mut segments, &mut |key, v| {
            *v = seal(keyring, namespace, layer, key, v)?.to_value();
            Ok(true)
        })?;
    }
    *doc = out;
    Ok(count)
}

/// Seals every plain leaf of a layer document whose key path `rule`
/// matches (the default rule matches `password`, `token`, `*_secret`, ...).
/// Returns how many leaves were sealed.
pub fn seal_matching(
    doc: &mut Document,
    keyring: &Keyring,
    namespace: &NamespaceName,
    layer: &LayerPath,
    rule: &SecretRule,
) -> Result<usize> {
    let mut out = doc.clone();
    let mut count = 0;
    let mut segments = Vec::new();
    for (k, v) in out.iter_mut() {
        segments.push(k.clone());
        count += seal_leaves(v, &mut segments, &mut |key, v| {
            if !rule.matches(key) {
                return Ok(false);
            }
            *v = seal(keyring, namespace, layer, key, v)?.to_value();
            Ok(true)
        })?;
        segments.pop();
    }
    *doc = out;
    Ok(count)
}

/// Opens every sealed value of a layer document in place, for a caller
/// allowed to read secrets. Returns how many were opened.
///
/// Any value that does not open (altered, moved, unknown key, malformed)
/// fails the whole call and leaves the document unchanged.
pub fn open_document(
    doc: &mut Document,
    keyring: &Keyring,
    namespace: &NamespaceName,
    layer: &LayerPath,
) -> Result<usize> {
    let mut out = doc.clone();
    let mut count = 0;
    visit_sealed(&mut out, &mut |segments, in_array, v| {
        let key = key_path(segments)?;
        if in_array {
            return Err(in_array_error(namespace, layer, &key));
        }
        *v = open_value(keyring, namespace, layer, &key, v)?;
        count += 1;
        Ok(())
    })?;
    *doc = out;
    Ok(count)
}

/// Replaces every sealed value with the string [`MASK`] (`"<sealed>"`), for
/// a caller without the right to read secrets. Returns how many were masked.
/// Malformed sealed tables are masked too; nothing is decrypted.
pub fn mask(doc: &mut Document) -> usize {
    let mut count = 0;
    // The visitor never fails, so neither does the walk.
    let _ = visit_sealed(doc, &mut |_, _, v| {
        *v = Value::String(MASK.to_owned());
        count += 1;
        Ok(())
    });
    count
}

/// The key ids that the sealed values of a document use (for `retire` and
/// `rewrap`). A malformed sealed value is an error: a key must not be
/// retired on an incomplete answer.
pub fn key_ids(doc: &Document) -> Result<BTreeSet<KeyId>> {
    let mut ids = BTreeSet::new();
    for_each_sealed(doc, &mut |segments, v| {
        let place = format!("key {}", key_path(segments)?);
        ids.insert(Sealed::parse(v, &place)?.key_id().clone());
        Ok(())
    })?;
    Ok(ids)
}

/// The key paths of every sealed value in a document, in key order
/// (sealed values inside arrays are reported at the array's key).
pub fn sealed_paths(doc: &Document) -> Result<Vec<KeyPath>> {
    let mut paths = Vec::new();
    for_each_sealed(doc, &mut |segments, _| {
        paths.push(key_path(segments)?);
        Ok(())
    })?;
    paths.dedup();
    Ok(paths)
}

/// Re-seals every sealed value of a layer document that is not under the
/// namespace's current key, under the current key. Returns whether anything
/// changed (a store then writes the document as a new revision).
pub fn rewrap(
    doc: &mut Document,
    keyring: &Keyring,
    namespace: &NamespaceName,
    layer: &LayerPath,
) -> Result<bool> {
    let mut out = doc.clone();
    let mut changed = false;
    visit_sealed(&mut out, &mut |segments, in_array, v| {
        let key = key_path(segments)?;
        let place = place(namespace, layer, &key);
        let sealed = Sealed::parse(v, &place)?;
        let current = keyring.current(namespace).ok_or_else(|| Error::NoDataKey {
            namespace: namespace.to_string(),
        })?;
        if sealed.key_id() == current {
            return Ok(());
        }
        if in_array {
            return Err(in_array_error(namespace, layer, &key));
        }
        let plain = crate::sealed::open(keyring, namespace, layer, &key, &sealed)?;
        *v = seal(keyring, namespace, layer, &key, &plain)?.to_value();
        changed = true;
        Ok(())
    })?;
    *doc = out;
    Ok(changed)
}

type Visitor<'a> = dyn FnMut(&[String], bool, &mut Value) -> Result<()> + 'a;

/// Calls `f` on every sealed table of the document, with its key path and
/// whether it sits inside an array. Arrays are searched too, so nothing
/// sealed is missed by `mask` or `key_ids`.
fn visit_sealed(doc: &mut Document, f: &mut Visitor<'_>) -> Result<()> {
    fn walk(
        value: &mut Value,
        path: &mut Vec<String>,
        in_array: bool,
        f: &mut Visitor<'_>,
    ) -> Result<()> {
        if is_sealed(value) {
            return f(path, in_array, value);
        }
        match value {
            Value::Object(m) => {
                for (k, v) in m.iter_mut() {
                    path.push(k.clone());
                    walk(v, path, in_array, f)?;
                    path.pop();
                }
            }
            Value::Array(a) => {
                for v in a {
                    walk(v, path, true, f)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
    let mut path = Vec::new();
    for (k, v) in doc.iter_mut() {
        path.push(k.clone());
        walk(v, &mut path, false, f)?;
        path.pop();
    }
    Ok(())
}

/// [`visit_sealed`] for reading: calls `f` on every sealed table, arrays
/// included, with its key path.
fn for_each_sealed(
    doc: &Document,
    f: &mut dyn FnMut(&[String], &Value) -> Result<()>,
) -> Result<()> {
    fn walk(
        value: &Value,
        path: &mut Vec<String>,
        f: &mut dyn FnMut(&[String], &Value) -> Result<()>,
    ) -> Result<()> {
        if is_sealed(value) {
            return f(path, value);
        }
        match value {
            Value::Object(m) => {
                for (k, v) in m {
                    path.push(k.clone());
                    walk(v, path, f)?;
                    path.pop();
                }
            }
            Value::Array(a) => {
                for v in a {
                    walk(v, path, f)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
    let mut path = Vec::new();
    for (k, v) in doc {
        path.push(k.clone());
        walk(v, &mut path, f)?;
        path.pop();
    }
    Ok(())
}

/// Calls `f` on every plain leaf at or below `value` (tables are descended,
/// arrays and scalars are leaves; sealed values, delete markers and empty
/// tables are skipped). Returns how many times `f` answered `true` (sealed).
fn seal_leaves(
    value: &mut Value,
    path: &mut Vec<String>,
    f: &mut dyn FnMut(&KeyPath, &mut Value) -> Result<bool>,
) -> Result<usize> {
    if is_sealed(value) || is_delete_marker(value) {
        return Ok(0);
    }
    match value {
        Value::Object(m) if m.is_empty() => Ok(0),
        Value::Object(m) => {
            let mut n = 0;
            for (k, v) in m.iter_mut() {
                path.push(k.clone());
                n += seal_leaves(v, path, f)?;
                path.pop();
            }
            Ok(n)
        }
        leaf => Ok(usize::from(f(&key_path(path)?, leaf)?)),
    }
}

/// The value at `key`, not looking inside sealed values or delete markers.
fn get_mut<'a>(doc: &'a mut Document, key: &KeyPath) -> Option<&'a mut Value> {
    let (last, parents) = key.segments().split_last()?;
    let mut table = doc;
    for seg in parents {
        let value = table.get_mut(seg)?;
        if is_sealed(value) || is_delete_marker(value) {
            return None;
        }
        table = value.as_object_mut()?;
    }
    table.get_mut(last)
}

fn key_path(segments: &[String]) -> Result<KeyPath> {
    Ok(KeyPath::from_segments(segments.iter().cloned())?)
}

fn in_array_error(namespace: &NamespaceName, layer: &LayerPath, key: &KeyPath) -> Error {
    Error::MalformedSealed {
        place: place(namespace, layer, key),
        reason: "a sealed value inside an array; only a whole value at a key can be sealed".into(),
    }
}
