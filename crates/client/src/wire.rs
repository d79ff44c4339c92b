//! Conversions from the server's answers to model values that
//! `confstrata_proto::convert` does not cover (it holds what the server and
//! the client share; these are the client's alone).

use std::collections::{BTreeMap, HashMap};

use confstrata_core::serde_json::Value;
use confstrata_core::{
    ChangeItem, Context, Document, Error as ModelError, ExplainEntry, Explanation, KeyPath, Limits,
    NamespaceName, Provenance,
};
use confstrata_proto::convert::{self, FieldError, FieldResult};
use confstrata_proto::v1;

use crate::types::{DryRun, Explained, LayerDiff, LayerStatus, Resolved, WatchEvent};

/// Limits for reading what a server sent: the server enforced its own when
/// the data was written, so only guard the parser's recursion.
pub(crate) fn response_limits() -> Limits {
    Limits {
        max_document_bytes: usize::MAX / 8,
        max_change_set_bytes: usize::MAX / 8,
        max_depth: 256,
    }
}

/// The error for a required field the server left unset.
pub(crate) fn missing(field: &str) -> FieldError {
    FieldError {
        field: field.to_owned(),
        error: Box::new(ModelError::invalid(field, "the server left it unset")),
    }
}

/// A required message field.
pub(crate) fn required<'a, T>(field: &str, v: Option<&'a T>) -> FieldResult<&'a T> {
    v.ok_or_else(|| missing(field))
}

/// A document from a JSON text field.
pub(crate) fn document(field: &str, json: &str) -> FieldResult<Document> {
    convert::document(field, json, &response_limits())
}

/// An optional JSON value: empty text means none.
pub(crate) fn optional_value(field: &str, json: &str) -> FieldResult<Option<Value>> {
    if json.is_empty() {
        Ok(None)
    } else {
        convert::value(field, json, &response_limits()).map(Some)
    }
}

/// A list, each element converted with its index in the field name.
pub(crate) fn list<W, T>(
    field: &str,
    items: &[W],
    f: impl Fn(&str, &W) -> FieldResult<T>,
) -> FieldResult<Vec<T>> {
    items
        .iter()
        .enumerate()
        .map(|(i, w)| f(&format!("{field}[{i}]"), w))
        .collect()
}

/// A change item.
pub(crate) fn change_item(field: &str, c: &v1::ChangeItem) -> FieldResult<ChangeItem> {
    Ok(ChangeItem {
        namespace: convert::namespace_name(&format!("{field}.namespace"), &c.namespace)?,
        layer: convert::optional_layer_path(&format!("{field}.layer"), &c.layer)?,
        deleted: c.deleted,
    })
}

/// A resolve answer. The provenance map is put in key order, as the engine
/// returns it.
pub(crate) fn resolved(
    namespace: &NamespaceName,
    context: &Context,
    r: &v1::ResolveResponse,
) -> FieldResult<Resolved> {
    let mut provenance = r
        .provenance
        .iter()
        .map(|(k, p)| {
            let field = format!("provenance[{k:?}]");
            Ok((
                convert::key_path(&field, k)?,
                convert::provenance(&field, p)?,
            ))
        })
        .collect::<FieldResult<Vec<(KeyPath, Provenance)>>>()?;
    provenance.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Resolved {
        namespace: namespace.clone(),
        context: context.clone(),
        revision: r.revision,
        layers: list("layers", &r.layers, convert::provenance)?,
        document: document("document_json", &r.document_json)?,
        provenance,
    })
}

/// An explain answer. The layer the resolved value came from is the
/// winning entry; the change behind each entry's revision is collected by
/// revision, as the engine does.
pub(crate) fn explained(r: &v1::ExplainResponse) -> FieldResult<Explained> {
    let mut changes = BTreeMap::new();
    let mut entries = Vec::with_capacity(r.entries.len());
    for (i, e) in r.entries.iter().enumerate() {
        let field = format!("entries[{i}]");
        let layer = convert::layer_path(&format!("{field}.layer"), &e.layer)?;
        if let Some(change) = &e.change {
            changes.insert(
                e.revision,
                convert::revision_info(&format!("{field}.change"), change)?,
            );
        }
        entries.push(ExplainEntry {
            layer,
            revision: e.revision,
            value: if e.deleted {
                None
            } else {
                optional_value(&format!("{field}.value_json"), &e.value_json)?
            },
            deleted: e.deleted,
            winner: e.winner,
        });
    }
    let value = optional_value("value_json", &r.value_json)?;
    let from = value.as_ref().and_then(|_| {
        entries.iter().find(|e| e.winner).map(|e| Provenance {
            layer: e.layer.clone(),
            revision: e.revision,
        })
    });
    Ok(Explained {
        explanation: Explanation {
            key: convert::key_path("key", &r.key)?,
            value,
            from,
            entries,
        },
        changes,
    })
}

/// A layer diff.
pub(crate) fn layer_diff(field: &str, d: &v1::LayerDiff) -> FieldResult<LayerDiff> {
    let status = match v1::layer_diff::Status::try_from(d.status) {
        Ok(v1::layer_diff::Status::Created) => LayerStatus::Created,
        Ok(v1::layer_diff::Status::Deleted) => LayerStatus::Deleted,
        Ok(v1::layer_diff::Status::Changed) => LayerStatus::Changed,
        _ => {
            return Err(FieldError {
                field: format!("{field}.status"),
                error: Box::new(ModelError::invalid(
                    "layer diff status",
                    format!("unknown status {}", d.status),
                )),
            });
        }
    };
    Ok(LayerDiff {
        namespace: convert::namespace_name(&format!("{field}.namespace"), &d.namespace)?,
        layer: convert::layer_path(&format!("{field}.layer"), &d.layer)?,
        status,
        changes: list(&format!("{field}.changes"), &d.changes, convert::diff_entry)?,
    })
}

/// A dry run answer.
pub(crate) fn dry_run(r: &v1::DryRunResponse) -> FieldResult<DryRun> {
    Ok(DryRun {
        revision: r.revision,
        layers: list("layers", &r.layers, layer_diff)?,
        namespaces: list("namespaces", &r.namespaces, |f, n| {
            convert::namespace_name(f, n)
        })?,
        findings: list("findings", &r.findings, convert::finding)?,
    })
}

/// One watch event.
pub(crate) fn watch_event(r: &v1::WatchResponse) -> FieldResult<WatchEvent> {
    let Some(info) = &r.info else {
        return Ok(WatchEvent::CaughtUp {
            revision: r.caught_up_revision,
        });
    };
    Ok(WatchEvent::Change {
        info: convert::revision_info("info", info)?,
        items: list("items", &r.items, change_item)?,
        resolved: if r.resolved_json.is_empty() {
            None
        } else {
            Some(document("resolved_json", &r.resolved_json)?)
        },
    })
}

/// A context as a wire map.
pub(crate) fn context_map(ctx: &Context) -> HashMap<String, String> {
    convert::context_to_wire(ctx)
}
