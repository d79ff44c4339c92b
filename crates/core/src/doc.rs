//! Layer documents: trees of tables, arrays and scalars, with a delete marker.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::path::KeyPath;

/// A layer's content: a table at the root. Keys are kept sorted.
pub type Document = Map<String, Value>;

/// The key of the delete marker table: `{ "$delete" = true }` in a more
/// specific layer removes the key from the resolved configuration.
pub const DELETE_MARKER_KEY: &str = "$delete";

/// The key of a sealed value's table: `{ "$sealed": {...} }` (made and
/// opened by `confstrata-crypto`; here only reserved).
pub const SEALED_MARKER_KEY: &str = "$sealed";

/// Whether `value` is the delete marker `{ "$delete": true }`.
pub fn is_delete_marker(value: &Value) -> bool {
    match value {
        Value::Object(m) => m.len() == 1 && m.get(DELETE_MARKER_KEY) == Some(&Value::Bool(true)),
        _ => false,
    }
}

/// Whether `value` is an atomic table: a table with a single key that starts
/// with `$`, such as the delete marker or a sealed secret
/// (`{ "$sealed": {...} }`). Resolve, diff and key walks treat it as one
/// value, never merging into it or reporting its inner fields.
pub fn is_atomic_table(value: &Value) -> bool {
    match value {
        Value::Object(m) => m.len() == 1 && m.keys().next().is_some_and(|k| k.starts_with('$')),
        _ => false,
    }
}

/// The delete marker value.
pub fn delete_marker() -> Value {
    let mut m = Map::new();
    m.insert(DELETE_MARKER_KEY.to_owned(), Value::Bool(true));
    Value::Object(m)
}

/// Limits on what a document or change set may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Largest layer document, in bytes of its JSON form.
    pub max_document_bytes: usize,
    /// Largest change set, in bytes of the JSON form of all its documents and values.
    pub max_change_set_bytes: usize,
    /// Deepest nesting of tables and arrays in a document.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_document_bytes: 1 << 20,
            max_change_set_bytes: 16 << 20,
            max_depth: 32,
        }
    }
}

/// Checks a document's depth and keys, and returns its size in bytes (JSON form).
///
/// `what` names the document in errors, e.g. `layer webshop:env/prod`.
pub fn check_document(what: &str, doc: &Document, limits: &Limits) -> Result<usize> {
    check_structure(what, doc, limits)?;
    let size = json_len(doc)?;
    check_size(what, size, limits)?;
    Ok(size)
}

/// Refuses a document of `size` bytes (JSON form) over the limit.
pub fn check_size(what: &str, size: usize, limits: &Limits) -> Result<()> {
    if size > limits.max_document_bytes {
        return Err(Error::TooLarge {
            what: what.to_owned(),
            size,
            limit: limits.max_document_bytes,
        });
    }
    Ok(())
}

/// [`check_document`] without the size: depth, keys, reserved markers.
pub fn check_structure(what: &str, doc: &Document, limits: &Limits) -> Result<()> {
    let mut path = Vec::new();
    check_reserved(what, &path, doc)?;
    for (k, v) in doc {
        check_key(what, &path, k)?;
        path.push(k.clone());
        walk(what, v, 1, &mut path, limits)?;
        path.pop();
    }
    Ok(())
}

/// [`check_structure`] for a document that passed it and then had `key`
/// set ([`set`]): only what the set changed is checked, the tables on the
/// key's path (each may have gained the key, or be new) and the value
/// under it. The rest of the document was checked when it was written,
/// so a one-key change to a large layer costs what the change costs.
pub fn check_set(what: &str, doc: &Document, key: &KeyPath, limits: &Limits) -> Result<()> {
    let segments = key.segments();
    let mut path: Vec<String> = Vec::with_capacity(segments.len());
    let mut table = doc;
    for (i, seg) in segments.iter().enumerate() {
        check_reserved(what, &path, table)?;
        check_key(what, &path, seg)?;
        path.push(seg.clone());
        let Some(v) = table.get(seg) else {
            return Ok(());
        };
        match v {
            Value::Object(m) if i + 1 < segments.len() => table = m,
            _ => return walk(what, v, i + 1, &mut path, limits),
        }
    }
    Ok(())
}

fn walk(
    what: &str,
    value: &Value,
    depth: usize,
    path: &mut Vec<String>,
    limits: &Limits,
) -> Result<()> {
    if depth > limits.max_depth {
        return Err(Error::TooDeep {
            what: what.to_owned(),
            path: show(path),
            limit: limits.max_depth,
        });
    }
    match value {
        Value::Object(m) => {
            check_reserved(what, path, m)?;
            for (k, v) in m {
                check_key(what, path, k)?;
                path.push(k.clone());
                walk(what, v, depth + 1, path, limits)?;
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                path.push(i.to_string());
                walk(what, v, depth + 1, path, limits)?;
                path.pop();
            }
        }
        Value::Number(n) if n.as_f64().is_some_and(|f| !f.is_finite()) => {
            return Err(Error::invalid(
                what,
                format!("{} is not a finite number", show(path)),
            ));
        }
        _ => {}
    }
    Ok(())
}
fn show(path: &[String]) -> String {
    if path.is_empty() {
        "the root".to_owned()
    } else {
        KeyPath::from_segments(path.iter().cloned())
            .map(|k| k.to_string())
            .unwrap_or_else(|_| path.join("."))
    }
}
fn check_key(what: &str, path: &[String], key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid(
            what,
            format!("an empty key under {}", show(path)),
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(Error::invalid(
            what,
            format!(
                "key {:?} under {} contains a control character",
                crate::clip(key, 80),
                show(path)
            ),
        ));
    }
    if key == "." || key == ".." {
        // Such a key reads as a relative path to every tool that maps
        // keys to files or paths; layer segments refuse them too.
        return Err(Error::invalid(
            what,
            format!("the key {key:?} under {} is not allowed", show(path)),
        ));
    }
    Ok(())
}
/// `$delete` and `$sealed` are markers, meaningful only as the single
/// key of a table under a key: anywhere else they would be stored as
/// literal keys and served as configuration, so they are refused, at
/// every depth and at the top alike.
fn check_reserved(what: &str, path: &[String], table: &Document) -> Result<()> {
    for marker in [DELETE_MARKER_KEY, SEALED_MARKER_KEY] {
        let Some(v) = table.get(marker) else { continue };
        let reason = if path.is_empty() {
            format!(
                "{marker:?} at the top of a document: a layer cannot be {}",
                if marker == DELETE_MARKER_KEY {
                    "a delete marker (delete the layer instead)"
                } else {
                    "a sealed value (seal a key with `set --secret`)"
                }
            )
        } else if table.len() > 1 {
            format!(
                "{marker:?} under {} is reserved: it must be the only key of its table",
                show(path)
            )
        } else if marker == DELETE_MARKER_KEY && *v != Value::Bool(true) {
            format!(
                "{marker:?} under {} is reserved: the delete marker is `{{ \"$delete\" = true }}`",
                show(path)
            )
        } else if marker == SEALED_MARKER_KEY && !v.is_object() {
            format!(
                "{marker:?} under {} is reserved for sealed values",
                show(path)
            )
        } else {
            continue;
        };
        return Err(Error::invalid(what, reason));
    }
    Ok(())
}

/// The length of a document's compact JSON form, counted as it is
/// written (nothing is kept).
pub fn json_len(doc: &Document) -> Result<usize> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, doc).map_err(Error::storage)?;
    Ok(count.0)
}

/// Looks up a key in a document.
pub fn get<'a>(doc: &'a Document, key: &KeyPath) -> Option<&'a Value> {
    let (last, parents) = key.segments().split_last()?;
    let mut table = doc;
    for seg in parents {
        table = table.get(seg)?.as_object()?;
    }
    table.get(last)
}

/// The part of a document at `key` and below, still under its full path:
/// `{"db": {"pool": {...}}}` for `db.pool`. Empty if nothing is there.
///
/// With `keep_blocking`, a value that is not a table on the way to `key`
/// (`db = "off"` for `db.pool`) is kept in its place: merging such
/// sections of several layers gives the same answer as merging the whole
/// layers and taking the section after.
pub fn section(doc: &Document, key: &KeyPath, keep_blocking: bool) -> Document {
    fn build(segs: &[String], table: &Document, keep_blocking: bool) -> Option<Value> {
        let (first, rest) = segs.split_first()?;
        let v = table.get(first)?;
        let inner = if rest.is_empty() {
            v.clone()
        } else {
            match v {
                Value::Object(m) if !is_atomic_table(v) => build(rest, m, keep_blocking)?,
                _ if keep_blocking => v.clone(),
                _ => return None,
            }
        };
        let mut out = Map::new();
        out.insert(first.clone(), inner);
        Some(Value::Object(out))
    }
    match build(key.segments(), doc, keep_blocking) {
        Some(Value::Object(m)) => m,
        _ => Document::new(),
    }
}

/// Looks up a key in a document, for changing its value in place.
pub fn get_mut<'a>(doc: &'a mut Document, key: &KeyPath) -> Option<&'a mut Value> {
    let (last, parents) = key.segments().split_last()?;
    let mut table = doc;
    for seg in parents {
        table = table.get_mut(seg)?.as_object_mut()?;
    }
    table.get_mut(last)
}

/// Sets a key in a document, creating intermediate tables.
///
/// Fails (changing nothing) if an intermediate key holds a non-table value.
pub fn set(doc: &mut Document, key: &KeyPath, value: Value) -> Result<Option<Value>> {
    let Some((last, parents)) = key.segments().split_last() else {
        return Err(Error::invalid("key", "empty key path"));
    };
    // Check first, so a failure leaves `doc` untouched.
    {
        let mut table = &*doc;
        for (i, seg) in parents.iter().enumerate() {
            match table.get(seg) {
                None => break,
                Some(v @ Value::Object(m)) if !is_atomic_table(v) => table = m,
                Some(_) => {
                    let at = KeyPath::from_segments(parents[..=i].iter().cloned())?;
                    return Err(Error::invalid(
                        format!("key {key}"),
                        format!("{at} holds a value that is not a table; unset it first"),
                    ));
                }
            }
        }
    }
    let mut table = doc;
    for seg in parents {
        let slot = table
            .entry(seg.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if is_delete_marker(slot) {
            *slot = Value::Object(Map::new());
        }
        table = match slot {
            Value::Object(m) => m,
            // Checked above: every existing parent is a table.
            _ => {
                return Err(Error::invalid(
                    format!("key {key}"),
                    "parent is not a table",
                ));
            }
        };
    }
    Ok(table.insert(last.clone(), value))
}

/// Removes a key from a document, returning the old value. Tables left empty
/// by the removal are removed too.
pub fn unset(doc: &mut Document, key: &KeyPath) -> Option<Value> {
    fn go(table: &mut Document, segs: &[String]) -> Option<Value> {
        let (first, rest) = segs.split_first()?;
        if rest.is_empty() {
            return table.remove(first);
        }
        let child = table.get_mut(first)?.as_object_mut()?;
        let old = go(child, rest)?;
        if child.is_empty() {
            table.remove(first);
        }
        Some(old)
    }
    go(doc, key.segments())
}

/// Every leaf of a document as `(key path, value)`, in key order. Arrays and
/// delete markers are leaves.
pub fn leaves(doc: &Document) -> Vec<(KeyPath, &Value)> {
    fn walk<'a>(
        prefix: &mut Vec<String>,
        table: &'a Document,
        out: &mut Vec<(KeyPath, &'a Value)>,
    ) {
        for (k, v) in table {
            prefix.push(k.clone());
            match v {
                Value::Object(m) if !is_atomic_table(v) && !m.is_empty() => walk(prefix, m, out),
                _ => out.push((KeyPath::from_raw(prefix.clone()), v)),
            }
            prefix.pop();
        }
    }
    let mut out = Vec::new();
    walk(&mut Vec::new(), doc, &mut out);
    out
}

#[cfg(test)]
mod tests;
