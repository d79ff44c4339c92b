//! `confstrata sync`: copy configuration from one place to another — a
//! layer to a layer (promote `env/staging` → `env/prod`), a namespace to a
//! namespace, on one store or between two servers — as a key-level diff,
//! shown first (a dry run, with the target's validation findings), then
//! committed on the target as one change set whose preconditions refuse it
//! if the target changed after it was read. The plan is the engine's
//! ([`confstrata_engine::sync`]); this reads both sides and commits.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use confstrata_core::{At, ChangeSet, ErrorKind, LayerPath, NamespaceName};
use confstrata_engine::sync::{self, KeyPattern, LayerPattern, SyncFilter, SyncPlan};
use serde_json::json;

use super::{Ctx, print_findings};
use crate::args::{Output, SyncArgs};
use crate::backend::Backend;
use crate::errors::{PlanChanged, ValidationFailed, is};
use crate::input::{layer_path, ns};
use crate::output::{cell, structured};

/// One side of a sync: a namespace, or one of its layers.
#[derive(Debug, Clone, PartialEq)]
struct Place {
    namespace: NamespaceName,
    layer: Option<LayerPath>,
}

impl Place {
    fn parse(text: &str, which: &str) -> Result<Place> {
        let (n, l) = match text.split_once(':') {
            Some((n, l)) => (n, Some(l)),
            None => (text, None),
        };
        let namespace = ns(n).with_context(|| format!("{which} {text:?}: the namespace"))?;
        let layer = l
            .map(|l| layer_path(l).with_context(|| format!("{which} {text:?}: the layer")))
            .transpose()?;
        Ok(Place { namespace, layer })
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.layer {
            Some(l) => write!(f, "{}:{l}", self.namespace),
            None => write!(f, "{}", self.namespace),
        }
    }
}

pub(super) fn sync(ctx: &Ctx, args: SyncArgs) -> Result<()> {
    let from = Place::parse(&args.from, "FROM")?;
    let to = Place::parse(&args.to, "TO")?;
    if from.layer.is_some() != to.layer.is_some() {
        bail!(
            "FROM ({from}) and TO ({to}) must both be layers (NAMESPACE:LAYER) or both namespaces"
        );
    }
    let filter = SyncFilter {
        include: patterns(&args.include, "--include", KeyPattern::parse)?,
        exclude: patterns(&args.exclude, "--exclude", KeyPattern::parse)?,
        layers: patterns(&args.layers, "--layer", LayerPattern::parse)?,
        delete: args.delete,
    };
    if from.layer.is_some() && !filter.layers.is_empty() {
        bail!("--layer chooses layers of a namespace sync; FROM and TO already name one layer");
    }
    let other = source_backend(&args, &ctx.author)?;
    if other.is_none() && from == to {
        bail!(
            "FROM and TO are the same ({from}); to copy between servers, name the source with --from-addr"
        );
    }
    let source = other.as_ref().unwrap_or(&ctx.backend);
    let target = &ctx.backend;

    let plan = match (&from.layer, &to.layer) {
        (Some(fl), Some(tl)) => {
            let src = source
                .layer(&from.namespace, fl, At::Latest)
                .with_context(|| format!("cannot read the source {from}"))?;
            let tgt = match target.layer(&to.namespace, tl, At::Latest) {
                Ok(r) => Some(r),
                Err(e) if is(&e, ErrorKind::NotFound) => {
                    // A missing layer is created; a missing namespace is not.
                    target
                        .namespace(&to.namespace, At::Latest)
                        .with_context(|| format!("cannot read the target {to}"))?;
                    None
                }
                Err(e) => return Err(e.context(format!("cannot read the target {to}"))),
            };
            sync::plan_layer(&src, tgt.as_ref(), &to.namespace, tl, &filter)?
        }
        _ => {
            let src_ns = source
                .namespace(&from.namespace, At::Latest)
                .with_context(|| format!("cannot read the source {from}"))?;
            let src_layers = source
                .layers(&from.namespace, At::Latest)
                .with_context(|| format!("cannot read the source {from}"))?;
            let (tgt_ns, tgt_layers) = match target.namespace(&to.namespace, At::Latest) {
                Ok(r) => {
                    let layers = target
                        .layers(&to.namespace, At::Latest)
                        .with_context(|| format!("cannot read the target {to}"))?;
                    (Some(r), layers)
                }
                Err(e) if is(&e, ErrorKind::NotFound) => (None, Vec::new()),
                Err(e) => return Err(e.context(format!("cannot read the target {to}"))),
            };
            sync::plan_namespace(
                &src_ns,
                &src_layers,
                tgt_ns.as_ref(),
                &tgt_layers,
                &to.namespace,
                &filter,
            )?
        }
    };

    if let Some(reviewed) = &args.plan
        && *reviewed != plan.fingerprint
    {
        return Err(PlanChanged(format!(
            "the plan is now {} and not {reviewed}: {from} or {to} changed since the dry run; nothing was changed: run the dry run again and review it",
            plan.fingerprint
        ))
        .into());
    }
    if plan.is_empty() {
        for note in &plan.notes {
            eprintln!("note: {note}");
        }
        eprintln!("nothing to sync: {to} already holds what {from} has");
        if ctx.output != Output::Table {
            show(ctx.output, &from, &to, &plan, &[], None)?;
        }
        return Ok(());
    }
    let cs = ChangeSet {
        author: ctx.author.clone(),
        message: args
            .message
            .unwrap_or_else(|| format!("sync {to} from {from}")),
        ops: plan.ops.clone(),
    };
    if !args.commit {
        let d = target.dry_run(&cs)?;
        show(ctx.output, &from, &to, &plan, &d.findings, None)?;
        if ctx.output == Output::Table {
            eprintln!(
                "dry run: nothing was changed. Plan {fp}: apply exactly this with --commit --plan {fp} (refused if {from} or {to} changes first)",
                fp = plan.fingerprint
            );
        }
        return Ok(ValidationFailed::check(&d.findings)?);
    }
    let info = target.commit(&cs).map_err(|e| {
        if is(&e, ErrorKind::Conflict) {
            e.context(format!(
                "{to} changed after it was read; nothing was changed: run the sync again to see the new difference"
            ))
        } else {
            e
        }
    })?;
    show(ctx.output, &from, &to, &plan, &[], Some(&info))
}

/// Prints the plan (and the findings, or the commit).
fn show(
    output: Output,
    from: &Place,
    to: &Place,
    plan: &SyncPlan,
    findings: &[confstrata_core::Finding],
    commit: Option<&confstrata_core::CommitInfo>,
) -> Result<()> {
    if output != Output::Table {
        let v = json!({
            "from": from.to_string(),
            "to": to.to_string(),
            "changes": plan.changes,
            "notes": plan.notes,
            "plan": plan.fingerprint,
            "findings": findings,
            "committed": commit.map(|i| json!({"revision": i.revision, "time": i.time.to_string()})),
        });
        return structured(&v, output, &[], Vec::new);
    }
    for note in &plan.notes {
        eprintln!("note: {note}");
    }
    structured(
        &plan.changes,
        output,
        &["LAYER", "KEY", "CHANGE", "TARGET NOW", "FROM SOURCE"],
        || {
            plan.changes
                .iter()
                .map(|c| {
                    let kind = serde_json::to_value(c.kind).unwrap_or_default();
                    vec![
                        format!("{}:{}", c.namespace, c.layer),
                        c.key.to_string(),
                        kind.as_str().unwrap_or_default().to_owned(),
                        c.old.as_ref().map(cell).unwrap_or_default(),
                        c.new.as_ref().map(cell).unwrap_or_default(),
                    ]
                })
                .collect()
        },
    )?;
    match commit {
        Some(info) => eprintln!(
            "committed revision {} ({} changes from {from} into {to})",
            info.revision,
            plan.changes.len()
        ),
        None => print_findings(findings),
    }
    Ok(())
}

/// Parses repeated pattern flags, naming the flag on error.
fn patterns<T, E>(
    texts: &[String],
    flag: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Vec<T>>
where
    E: std::error::Error + Send + Sync + 'static,
{
    texts
        .iter()
        .map(|t| parse(t).with_context(|| format!("{flag} {t:?}")))
        .collect()
}

/// The store the source is read from when it is not the target's: a
/// server (`--from-addr`) or an embedded store (`--from-data-dir`).
fn source_backend(args: &SyncArgs, author: &str) -> Result<Option<Backend>> {
    if let Some(addr) = &args.from_addr {
        let tls = match &args.from_tls_ca {
            Some(ca) => Some(confstrata_client::ClientTls::new(
                std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?,
            )),
            None => None,
        };
        let backend = Backend::remote(addr, args.from_token.clone(), tls)
            .with_context(|| format!("cannot reach the source server {addr}"))?;
        return Ok(Some(backend));
    }
    if let Some(dir) = &args.from_data_dir {
        return Ok(Some(open_local(dir.clone(), author)?));
    }
    Ok(None)
}

fn open_local(dir: PathBuf, author: &str) -> Result<Backend> {
    if !dir.exists() {
        bail!("--from-data-dir {}: no such directory", dir.display());
    }
    Backend::local(dir, author)
}
