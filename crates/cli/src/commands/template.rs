//! `confstrata template`: the best-practice library shipped in the binary
//! (`confstrata_templates`): list, show, and apply into a new namespace as
//! one change set (a dry run with the validation findings over the whole
//! matrix first). Rendering happens here, on the client, so a server of any
//! version takes the result as an ordinary change set.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use confstrata_core::{At, ChangeSet, DiffKind, Document};
use confstrata_engine::confstrata_templates::{self as templates, Template};
use serde_json::{Value, json};

use super::{Ctx, print_diff, print_findings};
use crate::args::{Output, ResolveSide, TemplateCommand};
use crate::errors::ValidationFailed;
use crate::input::{ns, parse_value, pick_format, split_pair};
use crate::output::{cell, emit, structured};

/// `list` and `show`: the library is in the binary.
pub(super) fn offline(c: TemplateCommand, output: Output) -> Result<()> {
    match c {
        TemplateCommand::Show { name } => show(&templates::find(&name)?, output),
        _ => list(output),
    }
}

pub(super) fn template(ctx: &Ctx, c: TemplateCommand) -> Result<()> {
    match c {
        TemplateCommand::List | TemplateCommand::Show { .. } => offline(c, ctx.output),
        TemplateCommand::Apply {
            template,
            namespace,
            params,
            file,
            commit,
            message,
        } => {
            let t = templates::find(&template)?;
            let mut given = BTreeMap::new();
            if let Some(file) = file {
                let name = file.display().to_string();
                let bytes = std::fs::read(&file).with_context(|| format!("cannot read {name}"))?;
                let doc = confstrata_core::format::parse(
                    &bytes,
                    pick_format(None, &name)?,
                    &name,
                    &confstrata_core::Limits::default(),
                )?;
                given.extend(doc);
            }
            given.extend(param_flags(&params)?);
            let params = t.resolve_parameters(&given)?;
            let rendered = t.render_with(&ns(&namespace)?, &params, &Reader(&ctx.backend))?;
            let cs = ChangeSet {
                author: ctx.author.clone(),
                message: message.unwrap_or_else(|| format!("from template {}", t.id())),
                ops: rendered.create_ops(),
            };
            if commit {
                let info = ctx.backend.commit(&cs).map_err(|e| exists(e, &namespace))?;
                if ctx.output == Output::Table {
                    eprintln!(
                        "created namespace {namespace} from template {} ({} layers)",
                        t.id(),
                        rendered.layers.len()
                    );
                }
                return ctx.print_commit(&info, cs.ops.len());
            }
            let d = ctx
                .backend
                .dry_run(&cs)
                .map_err(|e| exists(e, &namespace))?;
            if ctx.output == Output::Table {
                print_diff(&d);
                print_findings(&d.findings);
                eprintln!(
                    "dry run: nothing was created; run again with --commit to create {namespace}"
                );
            } else {
                structured(
                    &json!({"template": t.id(), "namespace": namespace,
                        "parameters": rendered.parameters, "dry_run": d}),
                    ctx.output,
                    &[],
                    Vec::new,
                )?;
            }
            Ok(ValidationFailed::check(&d.findings)?)
        }
        TemplateCommand::Diff { namespace } => diff(ctx, &namespace),
        TemplateCommand::Upgrade {
            namespace,
            to,
            params,
            resolve,
            commit,
            message,
        } => upgrade(ctx, &namespace, to, &params, resolve, commit, message),
    }
}

/// What generators read with `config("name")`: the namespace's resolved
/// configuration, through the backend and the caller's grants, for the
/// variables of the context that namespace uses.
struct Reader<'a>(&'a crate::backend::Backend);

impl templates::Lookup for Reader<'_> {
    fn resolved(
        &self,
        namespace: &confstrata_core::NamespaceName,
        context: &confstrata_core::Context,
    ) -> std::result::Result<Option<Document>, String> {
        let spec = match self.0.namespace(namespace, At::Latest) {
            Ok(record) => record.spec,
            Err(e)
                if matches!(
                    e.downcast_ref::<confstrata_core::Error>(),
                    Some(confstrata_core::Error::NamespaceNotFound { .. })
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(format!("{e:#}")),
        };
        let vars = spec.variables();
        let ctx: confstrata_core::Context = context
            .iter()
            .filter(|(k, _)| vars.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.0
            .resolve(namespace, &ctx, None, At::Latest, false)
            .map(|view| Some(view.document))
            .map_err(|e| format!("{e:#}"))
    }
}

/// Reads `NAME=VALUE` parameter flags.
fn param_flags(params: &[String]) -> Result<BTreeMap<String, Value>> {
    let mut given = BTreeMap::new();
    for p in params {
        let (k, v) = split_pair(p).with_context(|| format!("--param {p:?}"))?;
        given.insert(k.to_owned(), parse_value(v));
    }
    Ok(given)
}

/// `template upgrade NS`: see [`templates::plan_upgrade`].
fn upgrade(
    ctx: &Ctx,
    namespace: &str,
    to: Option<u32>,
    params: &[String],
    resolve: Option<ResolveSide>,
    commit: bool,
    message: Option<String>,
) -> Result<()> {
    let name = ns(namespace)?;
    let record = ctx.backend.namespace(&name, At::Latest)?;
    let Some(origin) = record.spec.template.clone() else {
        anyhow::bail!(
            "namespace {namespace} was not made from a template (its declaration records none)"
        );
    };
    let old = templates::find(&format!("{}@{}", origin.name, origin.version))?;
    let new = match to {
        Some(v) => templates::find(&format!("{}@{v}", origin.name))?,
        None => templates::find(&origin.name)?,
    };
    let mut given: BTreeMap<String, Value> = origin
        .parameters
        .iter()
        .filter(|(k, _)| new.parameters_list().iter().any(|p| &p.name == *k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    given.extend(param_flags(params)?);
    let new_params = new.resolve_parameters(&given)?;
    if new.version == origin.version && new_params == origin.parameters {
        eprintln!(
            "nothing to upgrade: {namespace} is at template {} with these parameters",
            new.id()
        );
        return Ok(());
    }
    let base = old.render_with(&name, &origin.parameters, &Reader(&ctx.backend))?;
    let theirs = new.render_with(&name, &new_params, &Reader(&ctx.backend))?;
    let layers = ctx.backend.export_layers(&name, At::Latest)?;
    let plan = templates::plan_upgrade(
        &base,
        &theirs,
        &record,
        &layers,
        resolve.map(|r| match r {
            ResolveSide::Ours => templates::Resolve::Ours,
            ResolveSide::Theirs => templates::Resolve::Theirs,
        }),
    );
    let cs = ChangeSet {
        author: ctx.author.clone(),
        message: message.unwrap_or_else(|| format!("upgrade to template {}", new.id())),
        ops: plan.ops.clone(),
    };
    let show = |findings: Option<&[confstrata_core::Finding]>| -> Result<()> {
        if ctx.output != Output::Table {
            return structured(
                &json!({"namespace": namespace, "from": old.id(), "to": new.id(),
                    "changes": plan.changes, "conflicts": plan.conflicts,
                    "kept_overrides": plan.kept, "declaration": plan.declaration,
                    "findings": findings}),
                ctx.output,
                &[],
                Vec::new,
            );
        }
        let rows: Vec<Vec<String>> = plan
            .changes
            .iter()
            .chain(&plan.conflicts)
            .map(|c| {
                let v = |x: &Option<Value>| x.as_ref().map(cell).unwrap_or_default();
                vec![
                    c.layer
                        .as_ref()
                        .map_or_else(|| "(declaration)".to_owned(), ToString::to_string),
                    c.key.clone(),
                    if c.conflict { "CONFLICT" } else { "take new" }.to_owned(),
                    v(&c.base),
                    v(&c.current),
                    v(&c.new),
                ]
            })
            .collect();
        emit(&crate::output::table(
            &[
                "LAYER",
                "KEY",
                "MERGE",
                "OLD TEMPLATE",
                "CURRENT",
                "NEW TEMPLATE",
            ],
            &rows,
        ));
        if let Some(findings) = findings {
            print_findings(findings);
        }
        eprintln!(
            "{} → {}: {} change(s), {} conflict(s), {} local override(s) kept{}",
            old.id(),
            new.id(),
            plan.changes.len(),
            plan.conflicts.len(),
            plan.kept,
            if plan.declaration {
                "; the declaration changes"
            } else {
                ""
            }
        );
        Ok(())
    };
    if !plan.conflicts.is_empty() && resolve.is_none() && commit {
        show(None)?;
        return Err(crate::errors::PlanChanged(format!(
            "{} conflict(s) between {namespace}'s values and template {}; nothing was changed: settle them with --resolve ours or --resolve theirs (or change the keys first)",
            plan.conflicts.len(),
            new.id()
        ))
        .into());
    }
    if commit {
        let info = ctx.backend.commit(&cs)?;
        show(None)?;
        return ctx.print_commit(&info, cs.ops.len());
    }
    let d = ctx.backend.dry_run(&cs)?;
    show(Some(&d.findings))?;
    if ctx.output == Output::Table {
        eprintln!("dry run: nothing was changed; run again with --commit to apply it");
    }
    Ok(ValidationFailed::check(&d.findings)?)
}

/// A conflict on applying a template: the namespace is there already.
fn exists(e: anyhow::Error, namespace: &str) -> anyhow::Error {
    if crate::errors::is(&e, confstrata_core::ErrorKind::Conflict) {
        e.context(format!(
            "namespace {namespace} exists already: a template creates a new namespace"
        ))
    } else {
        e
    }
}

/// `template diff NS`: the local overrides of a namespace made from a
/// template. Sealed values are compared and shown masked.
fn diff(ctx: &Ctx, namespace: &str) -> Result<()> {
    let name = ns(namespace)?;
    let record = ctx.backend.namespace(&name, At::Latest)?;
    let Some(origin) = &record.spec.template else {
        anyhow::bail!(
            "namespace {namespace} was not made from a template (its declaration records none)"
        );
    };
    let t = templates::find(&format!("{}@{}", origin.name, origin.version))?;
    let rendered = t.render_with(&name, &origin.parameters, &Reader(&ctx.backend))?;
    let current = ctx.backend.export_layers(&name, At::Latest)?;
    let mut layers: BTreeMap<String, (Document, Document)> = BTreeMap::new();
    for (layer, doc) in &rendered.layers {
        layers.entry(layer.to_string()).or_default().0 = doc.clone();
    }
    for r in current {
        layers.entry(r.layer.to_string()).or_default().1 = r.document;
    }
    let mut rows = Vec::new();
    for (layer, (theirs, ours)) in &layers {
        for d in confstrata_core::diff(theirs, ours) {
            rows.push(json!({
                "layer": layer,
                "key": d.key,
                "change": match d.kind {
                    DiffKind::Added => "added",
                    DiffKind::Removed => "removed",
                    DiffKind::Changed => "changed",
                },
                "template": d.old,
                "current": d.new,
            }));
        }
    }
    let mut declared = rendered.spec.clone();
    declared.template = record.spec.template.clone();
    let declaration_changed = declared != record.spec;
    let v = json!({"namespace": namespace, "template": t.id(), "overrides": rows,
        "declaration_changed": declaration_changed});
    if ctx.output != Output::Table {
        return structured(&v, ctx.output, &[], Vec::new);
    }
    structured(
        &rows,
        ctx.output,
        &["LAYER", "KEY", "CHANGE", "TEMPLATE", "CURRENT"],
        || {
            rows.iter()
                .map(|r| {
                    ["layer", "key", "change", "template", "current"]
                        .iter()
                        .map(|f| {
                            if r[*f].is_null() {
                                String::new()
                            } else {
                                cell(&r[*f])
                            }
                        })
                        .collect()
                })
                .collect()
        },
    )?;
    eprintln!(
        "{} local override(s) of template {}{}",
        rows.len(),
        t.id(),
        if declaration_changed {
            "; the declaration (levels, matrix or validation) differs from the template's too"
        } else {
            ""
        }
    );
    Ok(())
}

fn list(output: Output) -> Result<()> {
    let all = templates::library()?;
    let rows: Vec<Value> = all
        .iter()
        .map(|t| {
            json!({"name": t.name, "version": t.version,
                "parameters": t.parameters_list().len(), "description": t.description})
        })
        .collect();
    structured(
        &rows,
        output,
        &["NAME", "VERSION", "PARAMETERS", "DESCRIPTION"],
        || {
            rows.iter()
                .map(|r| {
                    ["name", "version", "parameters", "description"]
                        .iter()
                        .map(|f| cell(&r[*f]))
                        .collect()
                })
                .collect()
        },
    )
}

fn show(t: &Template, output: Output) -> Result<()> {
    if output != Output::Table {
        let mut v = serde_json::to_value(t)?;
        v["parameters_list"] = serde_json::to_value(t.parameters_list())?;
        return structured(&v, output, &[], Vec::new);
    }
    let mut text = format!("{} — {}\n\n", t.id(), t.description);
    if !t.why.is_empty() {
        text.push_str(&format!("Why: {}\n\n", t.why.trim()));
    }
    for r in &t.references {
        text.push_str(&format!("  see {r}\n"));
    }
    emit(&text);
    let rows: Vec<Vec<String>> = t
        .parameters_list()
        .into_iter()
        .map(|p| {
            vec![
                p.name,
                p.kind,
                p.default.as_ref().map(cell).unwrap_or_default(),
                if p.required { "yes" } else { "" }.to_owned(),
                p.description,
            ]
        })
        .collect();
    emit("\nParameters:\n");
    emit(&crate::output::table(
        &["NAME", "TYPE", "DEFAULT", "REQUIRED", "DESCRIPTION"],
        &rows,
    ));
    let levels: Vec<String> = t.namespace.levels.iter().map(ToString::to_string).collect();
    let mut text = format!("\nLevels: {}\n", levels.join(" < "));
    for (var, values) in &t.namespace.matrix {
        text.push_str(&format!("Matrix: {var} = {}\n", values.join(", ")));
    }
    text.push_str("Layers:\n");
    for (layer, doc) in &t.layers {
        let keys: Vec<String> = confstrata_core::doc::leaves(doc)
            .into_iter()
            .map(|(k, _)| k.to_string())
            .collect();
        text.push_str(&format!("  {layer}: {}\n", keys.join(", ")));
    }
    if !t.generators.is_empty() {
        text.push_str("Generators (computed per layer of their level):\n");
        for g in &t.generators {
            let reads = if g.reads.is_empty() {
                String::new()
            } else {
                format!(" (reads {})", g.reads.join(", "))
            };
            text.push_str(&format!(
                "  {} on {}{reads}: {}\n",
                g.id, g.level, g.description
            ));
        }
    }
    if !t.namespace.validation.rules.is_empty() {
        text.push_str("Rules:\n");
        for r in &t.namespace.validation.rules {
            text.push_str(&format!("  {}: {}\n", r.id, r.check));
        }
    }
    if !t.mistakes.is_empty() {
        text.push_str("Catches (a value set in a namespace made from it, and what refuses it):\n");
        for m in &t.mistakes {
            text.push_str(&format!(
                "  {} {} = {}: {}\n",
                m.layer, m.key, m.value, m.rule
            ));
        }
    }
    emit(&text);
    Ok(())
}
