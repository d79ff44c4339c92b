//! `resolve`, `explain`, `diff`, `history`: reading configuration.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, anyhow, bail};
use confstrata_core::{KeyPath, parse_context};

use crate::args::{DiffArgs, ExplainArgs, HistoryArgs, Output, ResolveArgs};
use crate::input::{at_of, contexts, key_path, layer_path, ns, opt_at};
use crate::output::{cell, document, structured};

use super::Ctx;

pub(super) fn resolve(ctx: &Ctx, args: ResolveArgs) -> Result<()> {
    let ResolveArgs {
        namespace,
        context,
        provenance,
        section,
        at,
    } = args;
    let section = section
        .as_deref()
        .map(|s| KeyPath::parse(s).with_context(|| format!("--section {s:?} is not a key path")))
        .transpose()?;
    let view = ctx.backend.resolve(
        &ns(&namespace)?,
        &contexts(&context)?,
        section.as_ref(),
        at_of(&at)?,
        provenance,
    )?;
    if view.partial {
        // On stderr: stdout stays the document a script reads.
        eprintln!(
            "note: partial: your grants cover only some keys of {namespace}; the others are left out"
        );
    }
    if !provenance {
        return document(&view.document, ctx.output);
    }
    let prov: BTreeMap<String, &confstrata_core::Provenance> = view
        .provenance
        .iter()
        .map(|(k, p)| (k.to_string(), p))
        .collect();
    if ctx.output == Output::Env {
        bail!("--provenance cannot be shown as -o env");
    }
    structured(
        &view,
        ctx.output,
        &["KEY", "VALUE", "LAYER", "REVISION"],
        || {
            confstrata_core::doc::leaves(&view.document)
                .into_iter()
                .map(|(k, v)| {
                    let p = prov.get(&k.to_string());
                    vec![
                        k.to_string(),
                        cell(v),
                        p.map_or_else(String::new, |p| match &p.namespace {
                            // A layer of an imported namespace is named with it.
                            Some(from) => format!("{from}:{}", p.layer),
                            None => p.layer.to_string(),
                        }),
                        p.map_or_else(String::new, |p| p.revision.to_string()),
                    ]
                })
                .collect()
        },
    )
}

pub(super) fn explain(ctx: &Ctx, args: ExplainArgs) -> Result<()> {
    let ExplainArgs {
        namespace,
        key,
        context,
        at,
    } = args;
    let key = key_path(&key)?;
    let x = ctx
        .backend
        .explain(&ns(&namespace)?, &contexts(&context)?, &key, at_of(&at)?)?;
    if x.explanation.entries.is_empty() {
        return Err(confstrata_core::Error::KeyNotFound {
            location: format!("{namespace} for this context"),
            key: key.to_string(),
        }
        .into());
    }
    let has_origin = x.explanation.entries.iter().any(|e| e.origin.is_some());
    structured(
        &x,
        ctx.output,
        if has_origin {
            &[
                "LAYER", "REVISION", "VALUE", "", "AUTHOR", "MESSAGE", "TEMPLATE",
            ]
        } else {
            &["LAYER", "REVISION", "VALUE", "", "AUTHOR", "MESSAGE"]
        },
        || {
            x.explanation
                .entries
                .iter()
                .map(|e| {
                    let change = x.changes.get(&e.revision);
                    let mut row = vec![
                        match &e.namespace {
                            Some(from) => format!("{from}:{}", e.layer),
                            None => e.layer.to_string(),
                        },
                        e.revision.to_string(),
                        if e.deleted {
                            "(deleted)".into()
                        } else {
                            e.value.as_ref().map(cell).unwrap_or_default()
                        },
                        if e.winner {
                            "<- wins".into()
                        } else {
                            String::new()
                        },
                        change.map(|c| c.author.clone()).unwrap_or_default(),
                        change.map(|c| c.message.clone()).unwrap_or_default(),
                    ];
                    if has_origin {
                        row.push(e.origin.as_ref().map(origin_cell).unwrap_or_default());
                    }
                    row
                })
                .collect()
        },
    )
}

/// What the template says about an explained value: `from http-service@2`,
/// `from postgres-client@1, generator pool-by-env`, `overrides
/// http-service@2's 5000`, or `not in http-service@2`.
fn origin_cell(o: &confstrata_core::EntryOrigin) -> String {
    let by = o
        .generator
        .as_ref()
        .map(|g| format!(", generator {g}"))
        .unwrap_or_default();
    match (&o.template_value, o.overridden) {
        (Some(_), false) => format!("from {}{by}", o.template),
        (Some(v), true) => format!("overrides {}'s {}{by}", o.template, cell(v)),
        (None, _) => format!("local, not in {}", o.template),
    }
}

pub(super) fn history(ctx: &Ctx, args: HistoryArgs) -> Result<()> {
    let HistoryArgs {
        namespace,
        layer,
        limit,
    } = args;
    let layer = layer.as_deref().map(layer_path).transpose()?;
    let h = ctx
        .backend
        .history(&ns(&namespace)?, layer.as_ref(), limit)?;
    structured(
        &h,
        ctx.output,
        &["REVISION", "TIME", "LAYER", "AUTHOR", "MESSAGE"],
        || {
            h.iter()
                .map(|v| {
                    vec![
                        v.info.revision.to_string(),
                        v.info.time.to_string(),
                        if v.document.is_none() {
                            format!("{} (deleted)", v.layer)
                        } else {
                            v.layer.to_string()
                        },
                        v.info.author.clone(),
                        v.info.message.clone(),
                    ]
                })
                .collect()
        },
    )
}

impl Ctx {
    pub(super) fn diff(&self, a: DiffArgs) -> Result<()> {
        let namespace = ns(&a.namespace)?;
        let changes = if a.contexts.len() == 2 {
            let from = opt_at(a.from.as_deref())?;
            let to = opt_at(a.to.as_deref())?;
            self.backend.diff_resolved(
                &namespace,
                (&parse_context(&a.contexts[0])?, from),
                (&parse_context(&a.contexts[1])?, to),
            )?
        } else if !a.contexts.is_empty() {
            bail!("give two contexts to compare: -c env=staging -c env=prod");
        } else if a.layers.len() == 2 {
            let (x, y) = (layer_path(&a.layers[0])?, layer_path(&a.layers[1])?);
            let from = opt_at(a.from.as_deref())?;
            let to = opt_at(a.to.as_deref())?;
            self.backend.diff_layers(&namespace, (&x, from), (&y, to))?
        } else if !a.layers.is_empty() {
            bail!("give two layers to compare: --layer env/staging --layer env/prod");
        } else if let Some(layer) = a.layer.as_deref() {
            let layer = layer_path(layer)?;
            let from = a.from.as_deref().ok_or_else(|| {
                anyhow!("give --from REV (and optionally --to REV) to diff a layer over time")
            })?;
            self.backend.diff_layers(
                &namespace,
                (&layer, from.parse()?),
                (&layer, opt_at(a.to.as_deref())?),
            )?
        } else {
            let from = a.from.as_deref().ok_or_else(|| {
                anyhow!("say what to compare: --from REV [--to REV], --layer A --layer B, or -c CTX -c CTX")
            })?;
            let d =
                self.backend
                    .diff_namespace(&namespace, from.parse()?, opt_at(a.to.as_deref())?)?;
            return structured(
                &d,
                self.output,
                &["LAYER", "KEY", "CHANGE", "OLD", "NEW"],
                || {
                    d.iter()
                        .flat_map(|l| {
                            l.changes.iter().map(move |c| {
                                vec![
                                    l.layer.to_string(),
                                    c.key.to_string(),
                                    format!("{:?}", c.kind).to_lowercase(),
                                    c.old.as_ref().map(cell).unwrap_or_default(),
                                    c.new.as_ref().map(cell).unwrap_or_default(),
                                ]
                            })
                        })
                        .collect()
                },
            );
        };
        structured(
            &changes,
            self.output,
            &["KEY", "CHANGE", "OLD", "NEW"],
            || {
                changes
                    .iter()
                    .map(|c| {
                        vec![
                            c.key.to_string(),
                            format!("{:?}", c.kind).to_lowercase(),
                            c.old.as_ref().map(cell).unwrap_or_default(),
                            c.new.as_ref().map(cell).unwrap_or_default(),
                        ]
                    })
                    .collect()
            },
        )
    }
}
