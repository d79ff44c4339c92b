//! The template resources under `/v1` (docs/REST.md, "Templates"): the
//! REST form of gRPC's `TemplateService`. The engine renders, validates,
//! authorizes and commits (`Engine::template_*`); this module translates.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use confstrata_core::ChangeSet;
use confstrata_core::serde_json::{Map, Value};
use confstrata_core::view::DryRun;
use confstrata_engine::confstrata_templates::{Resolve, Template, UpgradeChange};
use confstrata_engine::{CatalogueEntry, Outcome};
use confstrata_host::Runner;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::openapi::{Committed, Refusals, WriteRefusals};
use crate::problem::Problem;
use crate::v1::{
    Creds, NsRequest, flag, json_response, optional_body, path_of, query_of, read, structured_body,
};

/// A template of the catalogue.
#[derive(Serialize, ToSchema)]
pub(crate) struct TemplateItem {
    /// Its name.
    name: String,
    /// Its version.
    version: u64,
    /// `library` (shipped in the server) or `user` (stored in `_templates`).
    source: String,
    /// One line: what it sets up.
    description: String,
    /// The whole template (the fields of its TOML file, docs/TEMPLATES.md).
    #[schema(value_type = Object)]
    template: Value,
}

/// The catalogue.
#[derive(Serialize, ToSchema)]
pub(crate) struct TemplateList {
    /// The library, then the user templates, every version.
    templates: Vec<TemplateItem>,
}

fn item(e: &CatalogueEntry) -> TemplateItem {
    TemplateItem {
        name: e.template.name.clone(),
        version: u64::from(e.template.version),
        source: e.source.to_owned(),
        description: e.template.description.clone(),
        template: confstrata_core::serde_json::to_value(&e.template).unwrap_or(Value::Null),
    }
}

/// What `POST /v1/templates/{template}/apply` takes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApplyBody {
    /// The new namespace.
    namespace: String,
    /// The parameters (the others take their defaults).
    #[serde(default)]
    #[schema(value_type = Object)]
    parameters: Map<String, Value>,
    /// Shared namespaces the new namespace imports as its lowest layers
    /// (lowest first), e.g. `shared/logging`.
    #[serde(default)]
    imports: Vec<String>,
    /// The change set's message (default: "from template NAME@VERSION").
    #[serde(default)]
    message: Option<String>,
}

/// What applying a template did, or would do.
#[derive(Serialize, ToSchema)]
pub(crate) struct TemplateApplied {
    /// The template used, `NAME@VERSION`.
    template: String,
    /// The parameters used, defaults filled in.
    #[schema(value_type = Object)]
    parameters: Map<String, Value>,
    /// The change set that creates the namespace.
    change_set: ChangeSet,
    /// With `dry_run`: its diff and the validation findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    dry_run: Option<DryRun>,
    /// The commit it made.
    #[serde(skip_serializing_if = "Option::is_none")]
    commit: Option<Committed>,
}

/// One key where a namespace differs from its template's output.
#[derive(Serialize, ToSchema)]
pub(crate) struct OverrideItem {
    /// The layer.
    layer: String,
    /// The key.
    key: String,
    /// `added`, `removed` or `changed` (the namespace relative to the template).
    change: String,
    /// The template's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    template: Option<Value>,
    /// The namespace's value (sealed values masked).
    #[serde(skip_serializing_if = "Option::is_none")]
    current: Option<Value>,
}

/// A namespace's local overrides of its template.
#[derive(Serialize, ToSchema)]
pub(crate) struct TemplateOverrides {
    /// The namespace.
    namespace: String,
    /// Its template, `NAME@VERSION`.
    template: String,
    /// Key by key.
    overrides: Vec<OverrideItem>,
    /// Whether its declaration differs from the template's.
    declaration_changed: bool,
}

/// How an upgrade settles conflicts.
#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ResolveSide {
    /// Keep the namespace's value.
    Ours,
    /// Take the new template's value.
    Theirs,
}

/// What `POST /v1/namespaces/{namespace}/template/upgrade` takes (the body
/// may be empty: the newest version, the recorded parameters).
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpgradeBody {
    /// The version to move to (default: the newest).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 4294967295_u64)]
    to_version: Option<u64>,
    /// Parameters to change (the recorded ones are kept where the new
    /// version still declares them).
    #[serde(default)]
    #[schema(value_type = Object)]
    parameters: Map<String, Value>,
    /// How to settle conflicts (without: a commit with conflicts is refused).
    #[serde(default)]
    resolve: Option<ResolveSide>,
    /// The change set's message (default: "upgrade to template NAME@VERSION").
    #[serde(default)]
    message: Option<String>,
}

/// One key an upgrade changes, or a conflict on it.
#[derive(Serialize, ToSchema)]
pub(crate) struct UpgradeItem {
    /// The layer; absent for the declaration as a whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    layer: Option<String>,
    /// The key (`*` for the declaration).
    key: String,
    /// The old template's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    base: Option<Value>,
    /// The namespace's value now.
    #[serde(skip_serializing_if = "Option::is_none")]
    current: Option<Value>,
    /// The new template's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    new: Option<Value>,
    /// Both sides changed it differently.
    conflict: bool,
}

fn upgrade_item(c: &UpgradeChange) -> UpgradeItem {
    UpgradeItem {
        layer: c.layer.as_ref().map(ToString::to_string),
        key: c.key.clone(),
        base: c.base.clone(),
        current: c.current.clone(),
        new: c.new.clone(),
        conflict: c.conflict,
    }
}

/// What an upgrade did, or would do.
#[derive(Serialize, ToSchema)]
pub(crate) struct TemplateUpgraded {
    /// The template the namespace was at, `NAME@VERSION`.
    from: String,
    /// The template it is (or would be) at.
    to: String,
    /// The keys the new template changes and the namespace did not.
    changes: Vec<UpgradeItem>,
    /// The keys both changed differently.
    conflicts: Vec<UpgradeItem>,
    /// Whether the declaration changes.
    declaration: bool,
    /// How many local overrides are kept.
    kept: u64,
    /// The change set (no ops: nothing to upgrade).
    change_set: ChangeSet,
    /// With `dry_run`: its diff and the validation findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    dry_run: Option<DryRun>,
    /// The commit it made.
    #[serde(skip_serializing_if = "Option::is_none")]
    commit: Option<Committed>,
}

/// The body of a generate: optional.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct GenerateBody {
    /// The change set's message (default: "generated values of NS").
    #[serde(default)]
    message: Option<String>,
}

/// What one generator computed for one layer.
#[derive(Serialize, ToSchema)]
pub(crate) struct GeneratedItem {
    /// The layer.
    layer: String,
    /// The generator's id.
    generator: String,
    /// What it computed there.
    #[schema(value_type = Object)]
    document: Map<String, Value>,
}

/// What a namespace's generators compute, and what writing it did or would do.
#[derive(Serialize, ToSchema)]
pub(crate) struct Generated {
    /// The revision the generators read.
    revision: u64,
    /// What each generator computed, layer by layer.
    generated: Vec<GeneratedItem>,
    /// The change set that writes what differs (no ops: the layers hold it
    /// already).
    change_set: ChangeSet,
    /// With `dry_run`: its diff and the validation findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    dry_run: Option<DryRun>,
    /// The commit it made.
    #[serde(skip_serializing_if = "Option::is_none")]
    commit: Option<Committed>,
}

/// What storing a user template did, or would do.
#[derive(Serialize, ToSchema)]
pub(crate) struct TemplateStored {
    /// The template, `NAME@VERSION`.
    template: String,
    /// The change set that stores it.
    change_set: ChangeSet,
    /// With `dry_run`: what its check finds.
    #[serde(skip_serializing_if = "Option::is_none")]
    dry_run: Option<DryRun>,
    /// The commit it made.
    #[serde(skip_serializing_if = "Option::is_none")]
    commit: Option<Committed>,
}

fn split(o: Outcome) -> (Option<DryRun>, Option<Committed>) {
    match o {
        Outcome::DryRun(d) => (Some(d), None),
        Outcome::Committed(info) => (None, Some(info.into())),
    }
}

/// Runs an engine call that may commit: on the write path when it does.
async fn run<T: Send + 'static>(
    runner: &Runner,
    a: confstrata_host::Credentials,
    field: &str,
    commit: bool,
    f: impl FnOnce(&confstrata_engine::Engine, &confstrata_engine::Caller) -> confstrata_core::Result<T>
    + Send
    + 'static,
) -> Result<T, Problem> {
    if commit {
        runner
            .write(a, f)
            .await
            .map_err(|e| Problem::from_core(&e, field))
    } else {
        read(runner, a, field, f).await
    }
}

/// `GET /v1/templates`: the catalogue, the library shipped in the server
/// then the user templates, every version.
#[utoipa::path(
    get, path = "/v1/templates", tag = "templates",
    responses((status = 200, description = "The catalogue", body = TemplateList), Refusals),
)]
pub(crate) async fn list_templates(
    State(runner): State<Runner>,
    Creds(a): Creds,
) -> Result<Response, Problem> {
    let all = read(&runner, a, "", |e, c| e.templates(c)).await?;
    json_response(
        StatusCode::OK,
        &TemplateList {
            templates: all.iter().map(item).collect(),
        },
    )
}

/// `GET /v1/templates/{template}`: one template, `NAME` (its newest
/// version) or `NAME@VERSION`.
#[utoipa::path(
    get, path = "/v1/templates/{template}", tag = "templates",
    params(("template" = String, Path, min_length = 1, description = "`NAME` or `NAME@VERSION`")),
    responses((status = 200, description = "The template", body = TemplateItem), Refusals),
)]
pub(crate) async fn get_template(
    State(runner): State<Runner>,
    spec: Result<Path<String>, PathRejection>,
    Creds(a): Creds,
) -> Result<Response, Problem> {
    let spec = path_of(spec, "template")?;
    let entry = read(&runner, a, "template", move |e, c| {
        e.template_entry(c, &spec)
    })
    .await?;
    json_response(StatusCode::OK, &item(&entry))
}

/// `POST /v1/templates[?dry_run=true]`: stores a user template (a new
/// version; a version is never replaced) after its check (its parameters,
/// directives and generators, and its render with the defaults validated
/// clean over its matrix); with `dry_run`, what the check finds.
#[utoipa::path(
    post, path = "/v1/templates", tag = "templates",
    params(("dry_run" = Option<bool>, Query, description = "Show what the check finds; store nothing")),
    request_body(content = Object, description = "The template (JSON, TOML or YAML by `Content-Type`): the fields of its TOML file (docs/TEMPLATES.md)"),
    responses(
        (status = 201, description = "Stored", body = TemplateStored),
        (status = 200, description = "With `dry_run`: what the check finds", body = TemplateStored),
        Refusals, WriteRefusals),
)]
pub(crate) async fn put_template(
    State(runner): State<Runner>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
    Creds(a): Creds,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let commit = !flag(&query_of(query)?, "dry_run")?;
    let template: Template = structured_body(&headers, body)?;
    let id = template.id();
    let (cs, done) = run(&runner, a, "body", commit, move |e, c| {
        e.template_put(c, &template, commit, "", None)
    })
    .await?;
    let (dry_run, commit_info) = split(done);
    json_response(
        if commit {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        &TemplateStored {
            template: id,
            change_set: cs,
            dry_run,
            commit: commit_info,
        },
    )
}

/// `POST /v1/templates/{template}/apply[?dry_run=true]`: renders a
/// template for a new namespace (parameters checked, defaults filled in,
/// generators run) and commits the change set that creates it, validated
/// over the whole matrix; with `dry_run`, its diff and findings.
#[utoipa::path(
    post, path = "/v1/templates/{template}/apply", tag = "templates",
    params(("template" = String, Path, min_length = 1, description = "`NAME` or `NAME@VERSION`"),
        ("dry_run" = Option<bool>, Query, description = "Show the diff and the findings; create nothing")),
    request_body(content = ApplyBody, description = "The namespace and the parameters (JSON, TOML or YAML by `Content-Type`)",
        example = json!({"namespace": "checkout", "parameters": {"port": 9090}})),
    responses((status = 201, description = "Created: the namespace and its layers", body = TemplateApplied),
        (status = 200, description = "With `dry_run`: what it would create and what validation finds", body = TemplateApplied),
        Refusals, WriteRefusals),
)]
pub(crate) async fn apply_template(
    State(runner): State<Runner>,
    spec: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
    Creds(a): Creds,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let spec = path_of(spec, "template")?;
    let commit = !flag(&query_of(query)?, "dry_run")?;
    let request: ApplyBody = structured_body(&headers, body)?;
    let ns = confstrata_core::NamespaceName::parse(&request.namespace)
        .map_err(|e| Problem::from_core(&e, "namespace"))?;
    let given: BTreeMap<String, Value> = request.parameters.into_iter().collect();
    let imports = request
        .imports
        .iter()
        .map(|n| confstrata_core::NamespaceName::parse(n))
        .collect::<confstrata_core::Result<Vec<_>>>()
        .map_err(|e| Problem::from_core(&e, "imports"))?;
    let message = request.message;
    let (plan, done) = run(&runner, a, "body", commit, move |e, c| {
        e.template_apply(c, &spec, &ns, &given, &imports, commit, "", message)
    })
    .await?;
    let (dry_run, commit_info) = split(done);
    json_response(
        if commit {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        &TemplateApplied {
            template: plan.template,
            parameters: plan.parameters,
            change_set: plan.change_set,
            dry_run,
            commit: commit_info,
        },
    )
}

/// `GET /v1/namespaces/{namespace}/template`: what a namespace made from
/// a template changed relative to it, key by key.
#[utoipa::path(
    get, path = "/v1/namespaces/{namespace}/template", tag = "templates",
    params(("namespace" = String, Path, min_length = 1, description = "The namespace (`/` as `%2F`)")),
    responses((status = 200, description = "Its local overrides", body = TemplateOverrides), Refusals),
)]
pub(crate) async fn template_diff(
    State(runner): State<Runner>,
    NsRequest { a, ns, .. }: NsRequest,
) -> Result<Response, Problem> {
    let d = read(&runner, a, "namespace", move |e, c| e.template_diff(c, &ns)).await?;
    json_response(
        StatusCode::OK,
        &TemplateOverrides {
            namespace: d.namespace.to_string(),
            template: d.template,
            overrides: d
                .overrides
                .into_iter()
                .map(|o| OverrideItem {
                    layer: o.layer.to_string(),
                    key: o.key,
                    change: o.change.to_owned(),
                    template: o.template,
                    current: o.current,
                })
                .collect(),
            declaration_changed: d.declaration_changed,
        },
    )
}

/// `POST /v1/namespaces/{namespace}/template/upgrade[?dry_run=true]`:
/// moves a namespace made from a template to another version of it, a
/// three-way merge that keeps local overrides and reports conflicts by
/// key; refused while conflicts are unsettled (`resolve`). With `dry_run`,
/// the plan, its diff and findings.
#[utoipa::path(
    post, path = "/v1/namespaces/{namespace}/template/upgrade", tag = "templates",
    params(("namespace" = String, Path, min_length = 1, description = "The namespace (`/` as `%2F`)"),
        ("dry_run" = Option<bool>, Query, description = "Show the plan, its diff and findings; change nothing")),
    request_body(content = UpgradeBody, description = "The version, parameters and how to settle conflicts (JSON, TOML or YAML; empty: the newest version)"),
    responses((status = 200, description = "Upgraded (or, with `dry_run`, the plan); no ops when there is nothing to upgrade", body = TemplateUpgraded),
        Refusals, WriteRefusals),
)]
pub(crate) async fn upgrade_template(
    State(runner): State<Runner>,
    NsRequest { a, ns, query }: NsRequest,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let commit = !flag(&query, "dry_run")?;
    let request: UpgradeBody = optional_body(&headers, body)?;
    let to = request
        .to_version
        .map(|v| {
            u32::try_from(v).map_err(|_| {
                Problem::from_core(
                    &confstrata_core::Error::invalid(
                        "to_version",
                        format!("{v} is not a template version (1..=4294967295)"),
                    ),
                    "body",
                )
            })
        })
        .transpose()?;
    let given: BTreeMap<String, Value> = request.parameters.into_iter().collect();
    let resolve = request.resolve.map(|r| match r {
        ResolveSide::Ours => Resolve::Ours,
        ResolveSide::Theirs => Resolve::Theirs,
    });
    let message = request.message;
    let (plan, done) = run(&runner, a, "body", commit, move |e, c| {
        e.template_upgrade_apply(c, &ns, to, &given, resolve, commit, "", message)
    })
    .await?;
    let (dry_run, commit_info) = done.map(split).unwrap_or((None, None));
    json_response(
        StatusCode::OK,
        &TemplateUpgraded {
            from: plan.from,
            to: plan.to,
            changes: plan.upgrade.changes.iter().map(upgrade_item).collect(),
            conflicts: plan.upgrade.conflicts.iter().map(upgrade_item).collect(),
            declaration: plan.upgrade.declaration,
            kept: plan.upgrade.kept as u64,
            change_set: plan.change_set,
            dry_run,
            commit: commit_info,
        },
    )
}

/// `POST /v1/namespaces/{namespace}/generate[?dry_run=true]`: runs the
/// generators the namespace declares over its matrix (reading other
/// namespaces through the caller's grants) and commits what differs from
/// the stored layers, validated; with `dry_run`, its diff and findings. No
/// ops when the layers hold what the generators compute.
#[utoipa::path(
    post, path = "/v1/namespaces/{namespace}/generate", tag = "templates",
    params(("namespace" = String, Path, min_length = 1, description = "The namespace (`/` as `%2F`)"),
        ("dry_run" = Option<bool>, Query, description = "Show what the generators compute, the diff and the findings; change nothing"),
        ("plan_only" = Option<bool>, Query, description = "Only compute and compare: what the generators compute and the change set, neither dry-run nor committed (needs read, not write)")),
    request_body(content = GenerateBody, description = "The commit message (JSON, TOML or YAML; may be empty)"),
    responses((status = 200, description = "Written (or, with `dry_run`, the plan); no ops when the layers hold what the generators compute", body = Generated),
        Refusals, WriteRefusals),
)]
pub(crate) async fn generate(
    State(runner): State<Runner>,
    NsRequest { a, ns, query }: NsRequest,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let plan_only = flag(&query, "plan_only")?;
    let commit = !plan_only && !flag(&query, "dry_run")?;
    let request: GenerateBody = optional_body(&headers, body)?;
    let message = request.message;
    let (plan, done) = run(&runner, a, "namespace", commit, move |e, c| {
        if plan_only {
            return Ok((e.generate_plan(c, &ns, "", message)?, None));
        }
        e.generate_apply(c, &ns, commit, "", message)
    })
    .await?;
    let (dry_run, commit_info) = done.map(split).unwrap_or((None, None));
    json_response(
        StatusCode::OK,
        &Generated {
            revision: plan.revision,
            generated: plan
                .generated
                .into_iter()
                .map(|g| GeneratedItem {
                    layer: g.layer.to_string(),
                    generator: g.generator,
                    document: g.document,
                })
                .collect(),
            change_set: plan.change_set,
            dry_run,
            commit: commit_info,
        },
    )
}
