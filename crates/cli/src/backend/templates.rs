//! Templates on either backend: the engine's `template_*` calls on the
//! embedded store, `TemplateService` on a server; both answer with the
//! engine's types.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, anyhow};
use confstrata_core::{LayerPath, NamespaceName, serde_json};
use confstrata_engine::confstrata_templates::{Resolve, Template, Upgrade, UpgradeChange};
use confstrata_engine::{
    CatalogueEntry, GeneratePlan, GeneratedLayer, Outcome, Override, TemplateDiff, TemplatePlan,
    UpgradePlan,
};
use confstrata_proto::convert;
use confstrata_proto::v1;
use serde_json::Value;

use super::Backend;

fn field<T>(r: Result<T, convert::FieldError>) -> Result<T> {
    r.map_err(|e| anyhow!("the server's answer: {}: {}", e.field, e.error))
}

fn json_value(field_name: &str, text: &str) -> Result<Option<Value>> {
    if text.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text)
        .map(Some)
        .with_context(|| format!("the server's answer: {field_name} is not JSON"))
}

fn params_json(given: &BTreeMap<String, Value>) -> String {
    if given.is_empty() {
        String::new()
    } else {
        convert::to_json(given)
    }
}

fn entry(e: &v1::TemplateEntry) -> Result<CatalogueEntry> {
    let template: Template = serde_json::from_str(&e.template_json).with_context(|| {
        format!(
            "the server's template {}@{} does not read",
            e.name, e.version
        )
    })?;
    Ok(CatalogueEntry {
        source: if e.source == "user" {
            "user"
        } else {
            "library"
        },
        template,
    })
}

fn outcome(
    dry_run: Option<&v1::DryRunResponse>,
    commit: Option<&v1::CommitInfo>,
) -> Result<Option<Outcome>> {
    Ok(match (dry_run, commit) {
        (_, Some(c)) => Some(Outcome::Committed(field(convert::commit_info(
            "commit", c,
        ))?)),
        (Some(d), None) => Some(Outcome::DryRun(field(convert::dry_run(d))?)),
        (None, None) => None,
    })
}

fn change_set(cs: Option<&v1::ChangeSet>) -> Result<confstrata_core::ChangeSet> {
    match cs {
        Some(cs) => field(convert::change_set(
            "change_set",
            cs,
            &confstrata_core::Limits::default(),
        )),
        None => Ok(confstrata_core::ChangeSet::default()),
    }
}

fn upgrade_change(c: &v1::UpgradeChange) -> Result<UpgradeChange> {
    Ok(UpgradeChange {
        layer: if c.layer.is_empty() {
            None
        } else {
            Some(LayerPath::parse(&c.layer)?)
        },
        key: c.key.clone(),
        base: json_value("base_json", &c.base_json)?,
        current: json_value("current_json", &c.current_json)?,
        new: json_value("new_json", &c.new_json)?,
        conflict: c.conflict,
    })
}

impl Backend {
    /// The template catalogue.
    pub(crate) fn templates(&self) -> Result<Vec<CatalogueEntry>> {
        match self {
            Backend::Local { engine, caller, .. } => Ok(engine.templates(caller)?),
            Backend::Remote { client, runtime } => {
                let r = Self::call(client, runtime, |c| async move { c.list_templates().await })?;
                r.templates.iter().map(entry).collect()
            }
        }
    }

    /// One template, `NAME[@VERSION]`.
    pub(crate) fn template(&self, spec: &str) -> Result<Template> {
        match self {
            Backend::Local { engine, caller, .. } => Ok(engine.template(caller, spec)?),
            Backend::Remote { client, runtime } => {
                let e = Self::call(
                    client,
                    runtime,
                    |c| async move { c.get_template(spec).await },
                )?;
                Ok(entry(&e)?.template)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn template_apply(
        &self,
        spec: &str,
        ns: &NamespaceName,
        given: &BTreeMap<String, Value>,
        imports: &[NamespaceName],
        commit: bool,
        author: &str,
        message: Option<String>,
    ) -> Result<(TemplatePlan, Outcome)> {
        match self {
            Backend::Local { engine, caller, .. } => {
                Ok(engine
                    .template_apply(caller, spec, ns, given, imports, commit, author, message)?)
            }
            Backend::Remote { client, runtime } => {
                let req = v1::ApplyTemplateRequest {
                    template: spec.to_owned(),
                    namespace: ns.to_string(),
                    parameters_json: params_json(given),
                    commit,
                    message: message.unwrap_or_default(),
                    imports: imports.iter().map(ToString::to_string).collect(),
                };
                let r = Self::call(
                    client,
                    runtime,
                    |c| async move { c.apply_template(req).await },
                )?;
                let parameters = match json_value("parameters_json", &r.parameters_json)? {
                    Some(Value::Object(m)) => m,
                    _ => serde_json::Map::new(),
                };
                let done = outcome(r.dry_run.as_ref(), r.commit.as_ref())?.ok_or_else(|| {
                    anyhow!("the server's answer has neither a dry run nor a commit")
                })?;
                Ok((
                    TemplatePlan {
                        template: r.template,
                        parameters,
                        change_set: change_set(r.change_set.as_ref())?,
                    },
                    done,
                ))
            }
        }
    }

    /// Runs a namespace's generators: what they compute, and the change
    /// set's dry run or commit (none when there is nothing to write, or
    /// with `plan_only`: read only, neither).
    pub(crate) fn generate(
        &self,
        ns: &NamespaceName,
        commit: bool,
        plan_only: bool,
        author: &str,
        message: Option<String>,
    ) -> Result<(GeneratePlan, Option<Outcome>)> {
        match self {
            Backend::Local { engine, caller, .. } if plan_only => {
                Ok((engine.generate_plan(caller, ns, author, message)?, None))
            }
            Backend::Local { engine, caller, .. } => {
                Ok(engine.generate_apply(caller, ns, commit, author, message)?)
            }
            Backend::Remote { client, runtime } => {
                let req = v1::GenerateRequest {
                    namespace: ns.to_string(),
                    commit,
                    message: message.unwrap_or_default(),
                    plan_only,
                };
                let r = Self::call(client, runtime, |c| async move { c.generate(req).await })?;
                let mut generated = Vec::with_capacity(r.generated.len());
                for g in &r.generated {
                    let document = match json_value("generated.document_json", &g.document_json)? {
                        Some(Value::Object(m)) => m,
                        None => serde_json::Map::new(),
                        Some(_) => {
                            return Err(anyhow!(
                                "the server's answer: generated.document_json is not a JSON object"
                            ));
                        }
                    };
                    generated.push(GeneratedLayer {
                        layer: LayerPath::parse(&g.layer)?,
                        generator: g.generator.clone(),
                        document,
                    });
                }
                Ok((
                    GeneratePlan {
                        namespace: ns.clone(),
                        revision: r.revision,
                        generated,
                        change_set: change_set(r.change_set.as_ref())?,
                    },
                    outcome(r.dry_run.as_ref(), r.commit.as_ref())?,
                ))
            }
        }
    }

    pub(crate) fn template_diff(&self, ns: &NamespaceName) -> Result<TemplateDiff> {
        match self {
            Backend::Local { engine, caller, .. } => Ok(engine.template_diff(caller, ns)?),
            Backend::Remote { client, runtime } => {
                let r = Self::call(
                    client,
                    runtime,
                    |c| async move { c.diff_template(ns).await },
                )?;
                let mut overrides = Vec::with_capacity(r.overrides.len());
                for o in &r.overrides {
                    overrides.push(Override {
                        layer: LayerPath::parse(&o.layer)?,
                        key: o.key.clone(),
                        change: match o.change.as_str() {
                            "added" => "added",
                            "removed" => "removed",
                            _ => "changed",
                        },
                        template: json_value("template_json", &o.template_json)?,
                        current: json_value("current_json", &o.current_json)?,
                    });
                }
                Ok(TemplateDiff {
                    namespace: ns.clone(),
                    template: r.template,
                    overrides,
                    declaration_changed: r.declaration_changed,
                })
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn template_upgrade(
        &self,
        ns: &NamespaceName,
        to: Option<u32>,
        given: &BTreeMap<String, Value>,
        resolve: Option<Resolve>,
        commit: bool,
        author: &str,
        message: Option<String>,
    ) -> Result<(UpgradePlan, Option<Outcome>)> {
        match self {
            Backend::Local { engine, caller, .. } => Ok(engine
                .template_upgrade_apply(caller, ns, to, given, resolve, commit, author, message)?),
            Backend::Remote { client, runtime } => {
                let req = v1::UpgradeTemplateRequest {
                    namespace: ns.to_string(),
                    to_version: to,
                    parameters_json: params_json(given),
                    resolve: match resolve {
                        None => String::new(),
                        Some(Resolve::Ours) => "ours".into(),
                        Some(Resolve::Theirs) => "theirs".into(),
                    },
                    commit,
                    message: message.unwrap_or_default(),
                };
                let r = Self::call(
                    client,
                    runtime,
                    |c| async move { c.upgrade_template(req).await },
                )?;
                let upgrade = Upgrade {
                    changes: r
                        .changes
                        .iter()
                        .map(upgrade_change)
                        .collect::<Result<_>>()?,
                    conflicts: r
                        .conflicts
                        .iter()
                        .map(upgrade_change)
                        .collect::<Result<_>>()?,
                    declaration: r.declaration,
                    kept: usize::try_from(r.kept).unwrap_or(usize::MAX),
                    ops: Vec::new(),
                };
                let done = outcome(r.dry_run.as_ref(), r.commit.as_ref())?;
                Ok((
                    UpgradePlan {
                        namespace: ns.clone(),
                        from: r.from,
                        to: r.to,
                        upgrade,
                        change_set: change_set(r.change_set.as_ref())?,
                    },
                    done,
                ))
            }
        }
    }

    pub(crate) fn template_put(
        &self,
        template: &Template,
        commit: bool,
        author: &str,
        message: Option<String>,
    ) -> Result<(usize, Outcome)> {
        match self {
            Backend::Local { engine, caller, .. } => {
                let (cs, done) = engine.template_put(caller, template, commit, author, message)?;
                Ok((cs.ops.len(), done))
            }
            Backend::Remote { client, runtime } => {
                let req = v1::PutTemplateRequest {
                    template_json: convert::to_json(template),
                    commit,
                    message: message.unwrap_or_default(),
                };
                let r = Self::call(
                    client,
                    runtime,
                    |c| async move { c.put_template(req).await },
                )?;
                let ops = r.change_set.as_ref().map_or(0, |cs| cs.ops.len());
                let done = outcome(r.dry_run.as_ref(), r.commit.as_ref())?.ok_or_else(|| {
                    anyhow!("the server's answer has neither a dry run nor a commit")
                })?;
                Ok((ops, done))
            }
        }
    }
}
