//! `TemplateService`: the template catalogue, apply, diff, upgrade and
//! put. The engine renders, validates, authorizes and commits
//! (`Engine::template_*`); this module only translates.

use std::collections::BTreeMap;

use confstrata_core::Limits;
use confstrata_core::serde_json::Value;
use confstrata_engine::confstrata_templates::{Resolve, Template, UpgradeChange};
use confstrata_engine::{CatalogueEntry, Outcome};
use confstrata_proto::convert::{self, to_json};
use confstrata_proto::v1::{self, template_service_server::TemplateService};
use tonic::{Request, Response, Status};

use crate::call::{Calls, auth};
use crate::status;

pub(crate) struct Service {
    pub(crate) calls: Calls,
    pub(crate) limits: Limits,
}

type Res<T> = Result<Response<T>, Status>;

fn entry(e: &CatalogueEntry) -> v1::TemplateEntry {
    v1::TemplateEntry {
        name: e.template.name.clone(),
        version: e.template.version,
        description: e.template.description.clone(),
        source: e.source.to_owned(),
        template_json: to_json(&e.template),
    }
}

/// Parameters from a JSON object text field; empty means none.
fn parameters(
    field: &'static str,
    json: &str,
    limits: &Limits,
) -> Result<BTreeMap<String, Value>, Status> {
    if json.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    let doc = convert::document(field, json, limits).map_err(status::field)?;
    Ok(doc.into_iter().collect())
}

fn message(m: String) -> Option<String> {
    (!m.is_empty()).then_some(m)
}

/// The dry run or the commit, as the two optional fields of a response.
fn outcome(o: Option<&Outcome>) -> (Option<v1::DryRunResponse>, Option<v1::CommitInfo>) {
    match o {
        Some(Outcome::DryRun(d)) => (Some(d.into()), None),
        Some(Outcome::Committed(info)) => (None, Some((*info).into())),
        None => (None, None),
    }
}

fn change(c: &UpgradeChange) -> v1::UpgradeChange {
    let json = |v: &Option<Value>| v.as_ref().map(to_json).unwrap_or_default();
    v1::UpgradeChange {
        layer: c
            .layer
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        key: c.key.clone(),
        base_json: json(&c.base),
        current_json: json(&c.current),
        new_json: json(&c.new),
        conflict: c.conflict,
    }
}

#[tonic::async_trait]
impl TemplateService for Service {
    async fn list_templates(
        &self,
        req: Request<v1::ListTemplatesRequest>,
    ) -> Res<v1::ListTemplatesResponse> {
        let all = self
            .calls
            .run(auth(&req), "", |e, c| e.templates(c))
            .await?;
        Ok(Response::new(v1::ListTemplatesResponse {
            templates: all.iter().map(entry).collect(),
        }))
    }

    async fn get_template(
        &self,
        req: Request<v1::GetTemplateRequest>,
    ) -> Res<v1::GetTemplateResponse> {
        let a = auth(&req);
        let spec = req.into_inner().template;
        let found = self
            .calls
            .run(a, "template", move |e, c| e.template_entry(c, &spec))
            .await?;
        Ok(Response::new(v1::GetTemplateResponse {
            template: Some(entry(&found)),
        }))
    }

    async fn apply_template(
        &self,
        req: Request<v1::ApplyTemplateRequest>,
    ) -> Res<v1::ApplyTemplateResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let ns = convert::namespace_name("namespace", &r.namespace).map_err(status::field)?;
        let given = parameters("parameters_json", &r.parameters_json, &self.limits)?;
        let imports = r
            .imports
            .iter()
            .enumerate()
            .map(|(i, n)| convert::namespace_name(&format!("imports[{i}]"), n))
            .collect::<Result<Vec<_>, _>>()
            .map_err(status::field)?;
        let (commit, msg, spec) = (r.commit, message(r.message), r.template);
        let call = move |e: &confstrata_engine::Engine, c: &confstrata_engine::Caller| {
            e.template_apply(c, &spec, &ns, &given, &imports, commit, "", msg)
        };
        let (plan, done) = if commit {
            self.calls.write(a, "template", call).await?
        } else {
            self.calls.run(a, "template", call).await?
        };
        let (dry_run, commit) = outcome(Some(&done));
        Ok(Response::new(v1::ApplyTemplateResponse {
            template: plan.template,
            parameters_json: to_json(&plan.parameters),
            change_set: Some((&plan.change_set).into()),
            dry_run,
            commit,
        }))
    }

    async fn diff_template(
        &self,
        req: Request<v1::DiffTemplateRequest>,
    ) -> Res<v1::DiffTemplateResponse> {
        let a = auth(&req);
        let ns = convert::namespace_name("namespace", &req.into_inner().namespace)
            .map_err(status::field)?;
        let d = self
            .calls
            .run(a, "namespace", move |e, c| e.template_diff(c, &ns))
            .await?;
        let json = |v: &Option<Value>| v.as_ref().map(to_json).unwrap_or_default();
        Ok(Response::new(v1::DiffTemplateResponse {
            namespace: d.namespace.to_string(),
            template: d.template.clone(),
            overrides: d
                .overrides
                .iter()
                .map(|o| v1::TemplateOverride {
                    layer: o.layer.to_string(),
                    key: o.key.clone(),
                    change: o.change.to_owned(),
                    template_json: json(&o.template),
                    current_json: json(&o.current),
                })
                .collect(),
            declaration_changed: d.declaration_changed,
        }))
    }

    async fn upgrade_template(
        &self,
        req: Request<v1::UpgradeTemplateRequest>,
    ) -> Res<v1::UpgradeTemplateResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let ns = convert::namespace_name("namespace", &r.namespace).map_err(status::field)?;
        let given = parameters("parameters_json", &r.parameters_json, &self.limits)?;
        let resolve = match r.resolve.as_str() {
            "" => None,
            "ours" => Some(Resolve::Ours),
            "theirs" => Some(Resolve::Theirs),
            other => {
                return Err(Status::invalid_argument(format!(
                    "resolve: {other:?} is not one of \"\", \"ours\", \"theirs\""
                )));
            }
        };
        let (commit, msg, to) = (r.commit, message(r.message), r.to_version);
        let call = move |e: &confstrata_engine::Engine, c: &confstrata_engine::Caller| {
            e.template_upgrade_apply(c, &ns, to, &given, resolve, commit, "", msg)
        };
        let (plan, done) = if commit {
            self.calls.write(a, "namespace", call).await?
        } else {
            self.calls.run(a, "namespace", call).await?
        };
        let (dry_run, commit) = outcome(done.as_ref());
        Ok(Response::new(v1::UpgradeTemplateResponse {
            from: plan.from.clone(),
            to: plan.to.clone(),
            changes: plan.upgrade.changes.iter().map(change).collect(),
            conflicts: plan.upgrade.conflicts.iter().map(change).collect(),
            declaration: plan.upgrade.declaration,
            kept: plan.upgrade.kept as u64,
            change_set: Some((&plan.change_set).into()),
            dry_run,
            commit,
        }))
    }

    async fn put_template(
        &self,
        req: Request<v1::PutTemplateRequest>,
    ) -> Res<v1::PutTemplateResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let doc = convert::document("template_json", &r.template_json, &self.limits)
            .map_err(status::field)?;
        let template: Template = confstrata_core::serde_json::from_value(Value::Object(doc))
            .map_err(|e| Status::invalid_argument(format!("template_json: not a template: {e}")))?;
        let id = template.id();
        let (commit, msg) = (r.commit, message(r.message));
        let call = move |e: &confstrata_engine::Engine, c: &confstrata_engine::Caller| {
            e.template_put(c, &template, commit, "", msg)
        };
        let (cs, done) = if commit {
            self.calls.write(a, "template_json", call).await?
        } else {
            self.calls.run(a, "template_json", call).await?
        };
        let (dry_run, commit) = outcome(Some(&done));
        Ok(Response::new(v1::PutTemplateResponse {
            template: id,
            dry_run,
            commit,
            change_set: Some((&cs).into()),
        }))
    }

    async fn generate(&self, req: Request<v1::GenerateRequest>) -> Res<v1::GenerateResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let ns = convert::namespace_name("namespace", &r.namespace).map_err(status::field)?;
        let (commit, msg) = (r.commit, message(r.message));
        if r.plan_only && commit {
            return Err(Status::invalid_argument(
                "plan_only: it answers without committing; do not set commit with it",
            ));
        }
        let plan_only = r.plan_only;
        let call = move |e: &confstrata_engine::Engine, c: &confstrata_engine::Caller| {
            if plan_only {
                return Ok((e.generate_plan(c, &ns, "", msg)?, None));
            }
            e.generate_apply(c, &ns, commit, "", msg)
        };
        let (plan, done) = if commit {
            self.calls.write(a, "namespace", call).await?
        } else {
            self.calls.run(a, "namespace", call).await?
        };
        let (dry_run, commit) = outcome(done.as_ref());
        Ok(Response::new(v1::GenerateResponse {
            revision: plan.revision,
            generated: plan
                .generated
                .iter()
                .map(|g| v1::GeneratedLayer {
                    layer: g.layer.to_string(),
                    generator: g.generator.clone(),
                    document_json: to_json(&g.document),
                })
                .collect(),
            change_set: Some((&plan.change_set).into()),
            dry_run,
            commit,
        }))
    }
}
