//! What differs, over REST: a namespace (or one layer) between two
//! revisions, two layers, two resolved contexts, and a declaration between
//! two revisions; the same engine calls as gRPC's `Diff` (the answer has
//! `changes`, the differing keys, or `layers`, the differing layers).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use confstrata_core::view::LayerDiff;
use confstrata_core::{At, Context, DiffEntry, Error};
use confstrata_host::Runner;
use serde::Serialize;
use utoipa::ToSchema;

use crate::openapi::Refusals;
use crate::problem::Problem;
use crate::v1::{NsRequest, json_response, layer_path, number, param, read};

/// What differs.
#[derive(Serialize, ToSchema)]
pub(crate) struct DiffAnswer {
    /// For two layers, two contexts, one layer or a declaration: the keys
    /// that differ.
    changes: Vec<DiffEntry>,
    /// For a whole namespace between two revisions: each layer that differs.
    layers: Vec<LayerDiff>,
}

fn keys(changes: Vec<DiffEntry>) -> DiffAnswer {
    DiffAnswer {
        changes,
        layers: Vec::new(),
    }
}

/// The revision a query names under `name` (`At::Latest` when absent, or
/// an error when `required`).
fn at(query: &[(String, String)], name: &str, required: bool) -> Result<At, Problem> {
    match param(query, name) {
        None if required => Err(Problem::from_core(
            &Error::invalid(name, "it is required"),
            name,
        )),
        None => Ok(At::Latest),
        Some(v) => number(v).map(At::Revision).ok_or_else(|| {
            Problem::from_core(
                &Error::invalid(
                    name,
                    format!(
                        "{:?} is not a revision number",
                        confstrata_core::clip(v, 40)
                    ),
                ),
                name,
            )
        }),
    }
}

/// `GET /v1/namespaces/{namespace}/diff?from=N[&to=M][&layer=LAYER]`: the
/// namespace's layers (or one layer's keys) between two revisions.
#[utoipa::path(
    get, path = "/v1/namespaces/{namespace}/diff", tag = "configuration",
    params(
        ("namespace" = String, Path, min_length = 1, description = "The namespace (`/` as `%2F`)"),
        ("from" = u64, Query, description = "The old revision"),
        ("to" = Option<u64>, Query, description = "The new revision (default: the newest)"),
        ("layer" = Option<String>, Query, min_length = 1, description = "Only this layer: its keys that differ"),
    ),
    responses((status = 200, description = "The layers (or, with `layer`, the keys) that differ", body = DiffAnswer), Refusals),
)]
pub(crate) async fn revisions(
    State(runner): State<Runner>,
    NsRequest { a, ns, query }: NsRequest,
) -> Result<Response, Problem> {
    let from = at(&query, "from", true)?;
    let to = at(&query, "to", false)?;
    let answer = match param(&query, "layer").map(layer_path).transpose()? {
        Some(l) => keys(
            read(&runner, a, "layer", move |e, c| {
                e.diff_layers(c, (&ns, &l, from), (&ns, &l, to))
            })
            .await?,
        ),
        None => DiffAnswer {
            changes: Vec::new(),
            layers: read(&runner, a, "from", move |e, c| {
                e.diff_namespace(c, &ns, from, to)
            })
            .await?,
        },
    };
    json_response(StatusCode::OK, &answer)
}

/// `GET /v1/namespaces/{namespace}/diff/layers?old=LAYER&new=LAYER[&old_revision=N][&new_revision=M]`:
/// two layers' keys that differ (a missing layer counts as empty).
#[utoipa::path(
    get, path = "/v1/namespaces/{namespace}/diff/layers", tag = "configuration",
    params(
        ("namespace" = String, Path, min_length = 1, description = "The namespace (`/` as `%2F`)"),
        ("old" = String, Query, min_length = 1, description = "The old layer"),
        ("new" = String, Query, min_length = 1, description = "The new layer"),
        ("old_revision" = Option<u64>, Query, description = "The old side's revision (default: the newest)"),
        ("new_revision" = Option<u64>, Query, description = "The new side's revision (default: the newest)"),
    ),
    responses((status = 200, description = "The keys that differ", body = DiffAnswer), Refusals),
)]
pub(crate) async fn layers(
    State(runner): State<Runner>,
    NsRequest { a, ns, query }: NsRequest,
) -> Result<Response, Problem> {
    let side = |name: &str| {
        param(&query, name)
            .ok_or_else(|| Problem::from_core(&Error::invalid(name, "it is required"), name))
            .and_then(layer_path)
    };
    let (old, new) = (side("old")?, side("new")?);
    let (old_at, new_at) = (
        at(&query, "old_revision", false)?,
        at(&query, "new_revision", false)?,
    );
    let changes = read(&runner, a, "old", move |e, c| {
        e.diff_layers(c, (&ns, &old, old_at), (&ns, &new, new_at))
    })
    .await?;
    json_response(StatusCode::OK, &keys(changes))
}

/// `GET /v1/namespaces/{namespace}/diff/contexts?old.VAR=VALUE…&new.VAR=VALUE…[&old_revision=N][&new_revision=M]`:
/// two resolved contexts' keys that differ.
#[utoipa::path(
    get, path = "/v1/namespaces/{namespace}/diff/contexts", tag = "configuration",
    params(
        ("namespace" = String, Path, min_length = 1, description = "The namespace (`/` as `%2F`)"),
        ("contexts" = Option<BTreeMap<String, String>>, Query, style = Form, explode, description = "The two contexts: `old.VAR=VALUE` and `new.VAR=VALUE` for each variable (`old.env=staging&new.env=prod`)"),
        ("old_revision" = Option<u64>, Query, description = "The old side's revision (default: the newest)"),
        ("new_revision" = Option<u64>, Query, description = "The new side's revision (default: the newest)"),
    ),
    responses((status = 200, description = "The keys that differ", body = DiffAnswer), Refusals),
)]
pub(crate) async fn contexts(
    State(runner): State<Runner>,
    NsRequest { a, ns, query }: NsRequest,
) -> Result<Response, Problem> {
    let (mut old, mut new) = (Context::new(), Context::new());
    for (k, v) in &query {
        let (side, var) = if let Some(var) = k.strip_prefix("old.") {
            (&mut old, var)
        } else if let Some(var) = k.strip_prefix("new.") {
            (&mut new, var)
        } else if k == "old_revision" || k == "new_revision" {
            continue;
        } else {
            return Err(Problem::from_core(
                &Error::invalid(
                    "query",
                    format!(
                        "{:?} is not old.VAR, new.VAR, old_revision or new_revision",
                        confstrata_core::clip(k, 60)
                    ),
                ),
                "query",
            ));
        };
        if side.insert(var.to_owned(), v.clone()).is_some() {
            return Err(Problem::from_core(
                &Error::invalid("context", format!("{k:?} is given twice")),
                "context",
            ));
        }
    }
    let (old_at, new_at) = (
        at(&query, "old_revision", false)?,
        at(&query, "new_revision", false)?,
    );
    let changes = read(&runner, a, "context", move |e, c| {
        e.diff_resolved(c, &ns, (&old, old_at), (&new, new_at))
    })
    .await?;
    json_response(StatusCode::OK, &keys(changes))
}

/// `GET /v1/namespaces/{namespace}/declarations/diff?from=N[&to=M]`: the
/// declaration's keys that differ between two revisions (`levels`,
/// `matrix`, `validation.rules`, …).
#[utoipa::path(
    get, path = "/v1/namespaces/{namespace}/declarations/diff", tag = "namespaces",
    params(
        ("namespace" = String, Path, min_length = 1, description = "The namespace (`/` as `%2F`)"),
        ("from" = u64, Query, description = "The old revision"),
        ("to" = Option<u64>, Query, description = "The new revision (default: the newest)"),
    ),
    responses((status = 200, description = "The declaration's keys that differ", body = DiffAnswer), Refusals),
)]
pub(crate) async fn declaration(
    State(runner): State<Runner>,
    NsRequest { a, ns, query }: NsRequest,
) -> Result<Response, Problem> {
    let from = at(&query, "from", true)?;
    let to = at(&query, "to", false)?;
    let changes = read(&runner, a, "from", move |e, c| {
        e.diff_declaration(c, &ns, from, to)
    })
    .await?;
    json_response(StatusCode::OK, &keys(changes))
}
