//! Small helpers for reading the server's answers; every conversion of an
//! answer type is in `confstrata_proto::convert`, both ways.

use std::collections::HashMap;

use confstrata_core::{Context, Document, Error as ModelError, Limits};
use confstrata_proto::convert::{self, FieldError, FieldResult};
use confstrata_proto::v1;

pub(crate) use confstrata_proto::convert::{dry_run, explained, layer_diff, list, resolved};

use crate::types::WatchEvent;

/// Limits for reading what a server sent.
pub(crate) fn response_limits() -> Limits {
    convert::unlimited()
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

/// One watch event.
pub(crate) fn watch_event(r: &v1::WatchResponse) -> FieldResult<WatchEvent> {
    let Some(info) = &r.info else {
        return Ok(WatchEvent::CaughtUp {
            revision: r.caught_up_revision,
        });
    };
    Ok(WatchEvent::Change {
        info: convert::revision_info("info", info)?,
        items: list("items", &r.items, convert::change_item)?,
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
