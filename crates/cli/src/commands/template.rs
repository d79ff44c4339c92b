//! `confstrata template`: the catalogue (the best-practice library shipped
//! in the binary and the user templates of the store), list, show, apply
//! into a new namespace, diff, upgrade and put. Rendering, generators and
//! validation run in the engine (`Engine::template_*`), on the embedded
//! store or on the server (`TemplateService`); this module prints.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use confstrata_engine::confstrata_templates::{self as templates, Template};
use confstrata_engine::{CatalogueEntry, Outcome};
use serde_json::{Value, json};

use super::{Ctx, print_diff, print_findings};
use crate::args::{CatalogueKind, Output, ResolveSide, TemplateCommand};
use crate::errors::ValidationFailed;
use crate::input::{ns, parse_value, pick_format, split_pair};
use crate::output::{cell, emit, structured};

/// `list` and `show` without a store or server: the library in the binary.
pub(super) fn offline(c: &TemplateCommand, output: Output) -> Result<()> {
    match c {
        TemplateCommand::Show { name } => show(&templates::find(name)?, output),
        TemplateCommand::List { kind } => {
            let all: Vec<CatalogueEntry> = templates::library()?
                .into_iter()
                .map(|template| CatalogueEntry {
                    source: "library",
                    template,
                })
                .collect();
            list(&all, &Value::Null, *kind, output)
        }
        _ => Ok(()),
    }
}

pub(super) fn template(ctx: &Ctx, c: TemplateCommand) -> Result<()> {
    match c {
        TemplateCommand::List { kind } => {
            let all = if kind == CatalogueKind::Schema {
                Vec::new()
            } else {
                ctx.backend.templates()?
            };
            let user = if kind == CatalogueKind::Template {
                Value::Null
            } else {
                user_schemas(ctx)?
            };
            list(&all, &user, kind, ctx.output)
        }
        TemplateCommand::Show { name } => show(&ctx.backend.template(&name)?, ctx.output),
        TemplateCommand::Apply {
            template,
            namespace,
            params,
            file,
            imports,
            commit,
            message,
        } => {
            let imports = imports.iter().map(|n| ns(n)).collect::<Result<Vec<_>>>()?;
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
            let (plan, done) = ctx
                .backend
                .template_apply(
                    &template,
                    &ns(&namespace)?,
                    &given,
                    &imports,
                    commit,
                    &ctx.author,
                    message,
                )
                .map_err(|e| exists(e, &namespace))?;
            match done {
                Outcome::Committed(info) => {
                    if ctx.output == Output::Table {
                        eprintln!(
                            "created namespace {namespace} from template {} ({} layers)",
                            plan.template,
                            plan.change_set.ops.len().saturating_sub(1)
                        );
                    }
                    ctx.print_commit(&info, plan.change_set.ops.len())
                }
                Outcome::DryRun(d) => {
                    if ctx.output == Output::Table {
                        print_diff(&d);
                        print_findings(&d.findings);
                        eprintln!(
                            "dry run: nothing was created; run again with --commit to create {namespace}"
                        );
                    } else {
                        structured(
                            &json!({"template": plan.template, "namespace": namespace,
                                "parameters": plan.parameters, "dry_run": d}),
                            ctx.output,
                            &[],
                            Vec::new,
                        )?;
                    }
                    Ok(ValidationFailed::check(&d.findings)?)
                }
            }
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
        TemplateCommand::Put {
            file,
            commit,
            message,
        } => put(ctx, &file, commit, message),
    }
}

/// `template put -f FILE|DIR`: a user template (a TOML file, or a
/// directory holding `template.toml`), checked by the store before it is
/// accepted.
fn put(ctx: &Ctx, file: &std::path::Path, commit: bool, message: Option<String>) -> Result<()> {
    let path = if file.is_dir() {
        file.join("template.toml")
    } else {
        file.to_path_buf()
    };
    let name = path.display().to_string();
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {name}"))?;
    let t = Template::from_toml(&text, &name)?;
    let (ops, done) = ctx
        .backend
        .template_put(&t, commit, &ctx.author, message)
        .map_err(|e| {
            if crate::errors::is(&e, confstrata_core::ErrorKind::Conflict) {
                e.context(format!(
                    "template {} is stored already: a stored version is never replaced; give the new one the next version",
                    t.id()
                ))
            } else {
                e
            }
        })?;
    match done {
        Outcome::Committed(info) => {
            if ctx.output == Output::Table {
                eprintln!("stored template {}", t.id());
            }
            ctx.print_commit(&info, ops)
        }
        Outcome::DryRun(d) => {
            if ctx.output == Output::Table {
                print_findings(&d.findings);
                if d.findings.is_empty() {
                    eprintln!(
                        "dry run: template {} checks clean; run again with --commit to store it",
                        t.id()
                    );
                } else {
                    eprintln!(
                        "dry run: template {} does not check; nothing can be stored until the findings above are fixed",
                        t.id()
                    );
                }
            } else {
                structured(
                    &json!({"template": t.id(), "dry_run": d}),
                    ctx.output,
                    &[],
                    Vec::new,
                )?;
            }
            Ok(ValidationFailed::check(&d.findings)?)
        }
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
    let given = param_flags(params)?;
    let resolve = resolve.map(|r| match r {
        ResolveSide::Ours => templates::Resolve::Ours,
        ResolveSide::Theirs => templates::Resolve::Theirs,
    });
    // The plan first (a dry run), so unsettled conflicts are shown and
    // nothing is committed; then the commit, which the server plans again
    // with the revisions it read as preconditions.
    let (plan, dry) = ctx.backend.template_upgrade(
        &name,
        to,
        &given,
        resolve,
        false,
        &ctx.author,
        message.clone(),
    )?;
    if plan.change_set.ops.is_empty() {
        eprintln!(
            "nothing to upgrade: {namespace} is at template {} with these parameters",
            plan.to
        );
        return Ok(());
    }
    let up = &plan.upgrade;
    let show = |findings: Option<&[confstrata_core::Finding]>| -> Result<()> {
        if ctx.output != Output::Table {
            return structured(
                &json!({"namespace": namespace, "from": plan.from, "to": plan.to,
                    "changes": up.changes, "conflicts": up.conflicts,
                    "kept_overrides": up.kept, "declaration": up.declaration,
                    "findings": findings}),
                ctx.output,
                &[],
                Vec::new,
            );
        }
        let rows: Vec<Vec<String>> = up
            .changes
            .iter()
            .chain(&up.conflicts)
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
            plan.from,
            plan.to,
            up.changes.len(),
            up.conflicts.len(),
            up.kept,
            if up.declaration {
                "; the declaration changes"
            } else {
                ""
            }
        );
        Ok(())
    };
    if !up.conflicts.is_empty() && resolve.is_none() && commit {
        show(None)?;
        return Err(crate::errors::PlanChanged(format!(
            "{} conflict(s) between {namespace}'s values and template {}; nothing was changed: settle them with --resolve ours or --resolve theirs (or change the keys first)",
            up.conflicts.len(),
            plan.to
        ))
        .into());
    }
    if commit {
        let (_, done) =
            ctx.backend
                .template_upgrade(&name, to, &given, resolve, true, &ctx.author, message)?;
        show(None)?;
        return match done {
            Some(Outcome::Committed(info)) => ctx.print_commit(&info, plan.change_set.ops.len()),
            _ => Ok(()),
        };
    }
    let findings = match &dry {
        Some(Outcome::DryRun(d)) => d.findings.clone(),
        _ => Vec::new(),
    };
    show(Some(&findings))?;
    if ctx.output == Output::Table {
        eprintln!("dry run: nothing was changed; run again with --commit to apply it");
    }
    Ok(ValidationFailed::check(&findings)?)
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
    let d = ctx.backend.template_diff(&ns(namespace)?)?;
    if ctx.output != Output::Table {
        return structured(&d, ctx.output, &[], Vec::new);
    }
    let v = |x: &Option<Value>| x.as_ref().map(cell).unwrap_or_default();
    let rows: Vec<Vec<String>> = d
        .overrides
        .iter()
        .map(|o| {
            vec![
                o.layer.to_string(),
                o.key.clone(),
                o.change.to_owned(),
                v(&o.template),
                v(&o.current),
            ]
        })
        .collect();
    emit(&crate::output::table(
        &["LAYER", "KEY", "CHANGE", "TEMPLATE", "CURRENT"],
        &rows,
    ));
    eprintln!(
        "{} local override(s) of template {}{}",
        rows.len(),
        d.template,
        if d.declaration_changed {
            "; the declaration (levels, matrix or validation) differs from the template's too"
        } else {
            ""
        }
    );
    Ok(())
}

/// The user library's schema entries (`$defs` of `_library`'s schema),
/// or null when there is no user library.
fn user_schemas(ctx: &Ctx) -> Result<Value> {
    let name = ns(confstrata_engine::LIBRARY_NAMESPACE)?;
    match ctx.backend.namespace(&name, confstrata_core::At::Latest) {
        Ok(r) => Ok(r
            .spec
            .validation
            .schema
            .as_ref()
            .and_then(|s| s.get("$defs"))
            .cloned()
            .unwrap_or(Value::Null)),
        Err(e) if crate::errors::is(&e, confstrata_core::ErrorKind::NotFound) => Ok(Value::Null),
        Err(e) => Err(e),
    }
}

/// The catalogue: templates, and with `kind` schema or all the schema
/// entries (built-in ones from the binary, `user` ones from the store).
fn list(all: &[CatalogueEntry], user: &Value, kind: CatalogueKind, output: Output) -> Result<()> {
    let mut rows: Vec<Value> = Vec::new();
    if kind != CatalogueKind::Schema {
        rows.extend(all.iter().map(|e| {
            let t = &e.template;
            json!({"kind": "template", "name": t.name, "version": t.version, "source": e.source,
                "parameters": t.parameters_list().len(), "description": t.description})
        }));
    }
    if kind != CatalogueKind::Template {
        let describe = |v: &Value| {
            v.get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        rows.extend(confstrata_engine::schema_library().iter().map(|(n, v)| {
            json!({"kind": "schema", "name": format!("confstrata:{n}"), "source": "library",
                "description": describe(v)})
        }));
        if let Some(defs) = user.as_object() {
            rows.extend(defs.iter().map(|(n, v)| {
                json!({"kind": "schema", "name": format!("confstrata:{n}"), "source": "user",
                    "description": describe(v)})
            }));
        }
    }
    let fields: &[&str] = if kind == CatalogueKind::Template {
        &["name", "version", "source", "parameters", "description"]
    } else {
        &[
            "kind",
            "name",
            "version",
            "source",
            "parameters",
            "description",
        ]
    };
    let headers: Vec<String> = fields.iter().map(|f| f.to_uppercase()).collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    structured(&rows, output, &headers, || {
        rows.iter()
            .map(|r| {
                fields
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
    })
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
