//! Layer versions as deltas.
//!
//! A layer version is stored either whole (its document) or as a delta: the
//! edits that turn the version before it into it. A delta is a JSON array
//! of edits, each `[path]` (remove the key at `path`) or `[path, value]`
//! (set it to `value`), `path` an array of key segments. [`delta`] makes the
//! smallest such list by walking both documents: it descends into a table
//! present on both sides, so a one-key change in a large layer is one edit.
//! Applying it is exact: the result equals the newer document, empty tables
//! included.
//!
//! A row holding a delta names its chain's whole version (`base`): reading
//! a version reads that row and every row after it up to the version, and
//! applies the deltas in order. The writer bounds a chain by count
//! ([`MAX_DEPTH`]) and bytes (the deltas together may not outweigh the
//! whole version they start from), so a read costs at most about two parses
//! of the document and a few small ones.

use confstrata_core::serde_json::{self, Map, Value};
use confstrata_core::{Document, Error, KeyPath, Result};

/// The most deltas a chain holds before the next version is stored whole.
pub(crate) const MAX_DEPTH: i64 = 32;

/// Below this size (bytes of JSON) a layer is always stored whole: a delta
/// would save next to nothing.
pub(crate) const MIN_DELTA_BASE: i64 = 512;

/// The edits that turn `old` into `new`, as JSON text; `None` when they are
/// the same document.
pub(crate) fn delta(old: &Document, new: &Document) -> Result<Option<String>> {
    let mut edits = Vec::new();
    walk(&mut Vec::new(), old, new, &mut edits);
    if edits.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(&edits)
        .map(Some)
        .map_err(|e| Error::storage(format!("encoding a layer delta: {e}")))
}

fn walk(
    path: &mut Vec<String>,
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    out: &mut Vec<Value>,
) {
    for k in old.keys() {
        if !new.contains_key(k) {
            out.push(Value::Array(vec![at(path, k)]));
        }
    }
    for (k, nv) in new {
        match (old.get(k), nv) {
            (Some(ov), _) if ov == nv => {}
            (Some(Value::Object(om)), Value::Object(nm)) => {
                path.push(k.clone());
                walk(path, om, nm, out);
                path.pop();
            }
            _ => out.push(Value::Array(vec![at(path, k), nv.clone()])),
        }
    }
}

/// [`delta`] when only `touched` keys (and what is under them) can differ
/// between the documents: only they are compared, so the cost is that of
/// the change, not of the layer. `None` compares everything.
pub(crate) fn delta_within(
    old: &Document,
    new: &Document,
    touched: Option<&[KeyPath]>,
) -> Result<Option<String>> {
    let Some(touched) = touched else {
        return delta(old, new);
    };
    let mut trie = Trie::default();
    for key in touched {
        trie.insert(key.segments());
    }
    let mut edits = Vec::new();
    trie.walk(&mut Vec::new(), old, new, &mut edits);
    if edits.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(&edits)
        .map(Some)
        .map_err(|e| Error::storage(format!("encoding a layer delta: {e}")))
}

/// The touched keys as a tree: a node with no children is a key whose
/// whole value is compared.
#[derive(Default)]
struct Trie {
    children: std::collections::BTreeMap<String, Trie>,
    whole: bool,
}

impl Trie {
    fn insert(&mut self, segments: &[String]) {
        let mut node = self;
        for s in segments {
            if node.whole {
                return;
            }
            node = node.children.entry(s.clone()).or_default();
        }
        node.whole = true;
        node.children.clear();
    }

    fn walk(
        &self,
        path: &mut Vec<String>,
        old: &Map<String, Value>,
        new: &Map<String, Value>,
        out: &mut Vec<Value>,
    ) {
        for (k, node) in &self.children {
            match (old.get(k), new.get(k)) {
                (None, None) => {}
                (Some(_), None) => out.push(Value::Array(vec![at(path, k)])),
                (Some(ov), Some(nv)) if ov == nv => {}
                (Some(Value::Object(om)), Some(Value::Object(nm))) => {
                    path.push(k.clone());
                    if node.whole {
                        walk(path, om, nm, out);
                    } else {
                        node.walk(path, om, nm, out);
                    }
                    path.pop();
                }
                (_, Some(nv)) => out.push(Value::Array(vec![at(path, k), nv.clone()])),
            }
        }
    }
}

/// The path of key `k` under `path`, as an edit names it.
fn at(path: &[String], k: &str) -> Value {
    let mut p: Vec<Value> = path.iter().map(|s| Value::String(s.clone())).collect();
    p.push(Value::String(k.to_owned()));
    Value::Array(p)
}

/// Applies a stored delta to `doc`. `what` names the version, for errors:
/// a delta that does not parse or does not fit the document it follows
/// means the database was altered or is corrupt.
pub(crate) fn apply(doc: &mut Document, text: &str, what: &dyn Fn() -> String) -> Result<()> {
    let corrupt = |why: &str| {
        Error::storage(format!(
            "the database holds a delta for {} that {why}; it may be corrupt: check it with \
             `sqlite3 FILE 'PRAGMA integrity_check'` or restore a backup",
            what()
        ))
    };
    let edits: Vec<Vec<Value>> =
        serde_json::from_str(text).map_err(|_| corrupt("does not parse"))?;
    for edit in edits {
        let mut edit = edit.into_iter();
        let Some(Value::Array(path)) = edit.next() else {
            return Err(corrupt("has an edit without a path"));
        };
        let value = edit.next();
        let mut segments = Vec::with_capacity(path.len());
        for s in path {
            let Value::String(s) = s else {
                return Err(corrupt("has a path segment that is not a string"));
            };
            segments.push(s);
        }
        let Some((last, parents)) = segments.split_last() else {
            return Err(corrupt("has an empty path"));
        };
        let mut table = &mut *doc;
        for p in parents {
            match table.get_mut(p) {
                Some(Value::Object(t)) => table = t,
                _ => {
                    return Err(corrupt(
                        "edits a key under a table the version before lacks",
                    ));
                }
            }
        }
        match value {
            Some(v) => {
                table.insert(last.clone(), v);
            }
            None => {
                if table.remove(last).is_none() {
                    return Err(corrupt("removes a key the version before lacks"));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use confstrata_core::serde_json::json;

    use super::*;

    fn doc(v: Value) -> Document {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_delta_turns_the_old_document_into_the_new_one_exactly() {
        let old =
            doc(json!({"a": {"b": 1, "c": {"d": [1, 2]}, "e": {}}, "x": 1, "gone": {"y": 2}}));
        let cases = [
            json!({"a": {"b": 2, "c": {"d": [1, 2]}, "e": {}}, "x": 1, "gone": {"y": 2}}),
            json!({"a": {"b": 1, "c": {}, "e": {}}, "x": 1}),
            json!({"a": {"b": 1, "c": {"d": [1, 2]}, "e": {"f": null}}, "x": {"now": "a table"}, "gone": 3}),
            json!({}),
            json!({"a": 1}),
        ];
        for new in cases {
            let new = doc(new);
            let text = delta(&old, &new).unwrap().unwrap();
            let mut got = old.clone();
            apply(&mut got, &text, &|| "test".into()).unwrap();
            assert_eq!(got, new, "{text}");
        }
        assert_eq!(delta(&old, &old.clone()).unwrap(), None);
        // A one-key change is one small edit.
        let mut new = old.clone();
        new["a"]["c"]["d"] = json!("v");
        assert_eq!(
            delta(&old, &new).unwrap().unwrap(),
            r#"[[["a","c","d"],"v"]]"#
        );
    }

    #[test]
    fn a_delta_that_does_not_fit_is_an_error_naming_the_version() {
        let base = doc(json!({"a": {"b": 1}}));
        for bad in [
            "nope",
            "[[]]",
            "[[[]]]",
            "[[[1], 2]]",
            r#"[[["zz", "b"], 2]]"#,
            r#"[[["a", "q"]]]"#,
            r#"[[["a", "b", "c"], 1]]"#,
            r#"[["a", 1]]"#,
        ] {
            let mut d = base.clone();
            let e = apply(&mut d, bad, &|| "layer x:y at revision 3".into()).unwrap_err();
            assert!(
                e.to_string().contains("layer x:y at revision 3"),
                "{bad}: {e}"
            );
        }
    }
}
