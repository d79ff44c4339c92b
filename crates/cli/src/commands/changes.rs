//! `apply`, `validate`, `rollback`, `import`, `export`, `compact`: change sets and their checks.

use std::path::Path;

use anyhow::{Context as _, Result};
use confstrata_core::format::{self, Format};
use confstrata_core::{At, NamespaceName, RetentionPolicy};

use crate::args::{
    ApplyArgs, CompactArgs, ExportArgs, ImportArgs, Output, RollbackArgs, ValidateArgs,
};
use crate::input::{at_of, import_dir, layer_path, ns, parse_change_set, pick_format, read_input};
use crate::output::structured;

use super::{Ctx, print_diff, print_findings};
use crate::errors::ValidationFailed;

pub(super) fn rollback(ctx: &Ctx, args: RollbackArgs) -> Result<()> {
    let RollbackArgs {
        namespace,
        layer,
        to,
        dry_run,
        from_backup,
        message,
    } = args;
    let layer = layer.as_deref().map(layer_path).transpose()?;
    let to: At = to.parse()?;
    let done = ctx.backend.rollback(
        &ns(&namespace)?,
        layer.as_ref(),
        to,
        &ctx.author,
        &message,
        dry_run,
        from_backup,
    )?;
    match (done.change_set, done.commit) {
        (None, _) => {
            eprintln!("nothing to roll back: {namespace} already matches {to:?}");
            Ok(())
        }
        (Some(cs), Some(info)) => ctx.print_commit(&info, cs.ops.len()),
        (Some(cs), None) => structured(&cs, ctx.output, &["OPERATION"], || {
            cs.ops.iter().map(|o| vec![o.describe()]).collect()
        }),
    }
}

pub(super) fn apply(ctx: &Ctx, args: ApplyArgs) -> Result<()> {
    let ApplyArgs {
        file,
        format: fmt,
        message,
        dry_run,
    } = args;
    let (bytes, name) = read_input(&file)?;
    let fmt = pick_format(fmt.as_deref(), &name)?;
    let mut cs = parse_change_set(&bytes, fmt, &name)?;
    if let Some(m) = message {
        cs.message = m;
    }
    if cs.author.is_empty() {
        cs.author = ctx.author.clone();
    }
    if dry_run {
        // Prints what `validate -f` prints and exits as it does (6
        // when the commit would be refused): a dry run answers
        // "would this go through?", so a script can branch on it.
        let d = ctx.backend.dry_run(&cs)?;
        if ctx.output == Output::Table {
            print_diff(&d);
            if !d.findings.is_empty() {
                print_findings(&d.findings);
            }
        } else {
            structured(&d, ctx.output, &[], Vec::new)?;
        }
        return Ok(ValidationFailed::check(&d.findings)?);
    }
    ctx.commit(&cs)
}

pub(super) fn validate(ctx: &Ctx, args: ValidateArgs) -> Result<()> {
    let ValidateArgs {
        namespace,
        file,
        format: fmt,
    } = args;
    let findings = match file {
        Some(file) => {
            let (bytes, name) = read_input(&file)?;
            let fmt = pick_format(fmt.as_deref(), &name)?;
            let mut cs = parse_change_set(&bytes, fmt, &name)?;
            if cs.author.is_empty() {
                cs.author = ctx.author.clone();
            }
            let d = ctx.backend.dry_run(&cs)?;
            if ctx.output == Output::Table {
                print_diff(&d);
            } else {
                structured(&d, ctx.output, &[], Vec::new)?;
            }
            d.findings
        }
        None => {
            let ns = namespace.as_deref().map(ns).transpose()?;
            let f = ctx.backend.validate(ns.as_ref())?;
            if ctx.output != Output::Table {
                structured(&f, ctx.output, &[], Vec::new)?;
            }
            f
        }
    };
    if ctx.output == Output::Table {
        print_findings(&findings);
    }
    Ok(ValidationFailed::check(&findings)?)
}

pub(super) fn import(ctx: &Ctx, args: ImportArgs) -> Result<()> {
    let ImportArgs { dir, message } = args;
    let mut cs = import_dir(&dir)?;
    cs.author = ctx.author.clone();
    cs.message = if message.is_empty() {
        format!("import {}", dir.display())
    } else {
        message
    };
    ctx.commit(&cs)
}

pub(super) fn export(ctx: &Ctx, args: ExportArgs) -> Result<()> {
    let ExportArgs {
        namespace,
        dir,
        format: fmt,
        at,
    } = args;
    ctx.export(&ns(&namespace)?, &dir, fmt.parse()?, at_of(&at)?)
}

pub(super) fn compact(ctx: &Ctx, args: CompactArgs) -> Result<()> {
    let CompactArgs {
        keep_versions,
        keep_days,
    } = args;
    let r = ctx.backend.apply_retention(&RetentionPolicy {
        keep_versions: usize::try_from(keep_versions).unwrap_or(usize::MAX),
        keep_days,
    })?;
    structured(
        &r,
        ctx.output,
        &["OLDEST REVISION", "REMOVED VERSIONS", "FREED"],
        || {
            vec![vec![
                r.oldest_revision.to_string(),
                r.removed_versions.to_string(),
                crate::output::bytes(r.freed_bytes),
            ]]
        },
    )
}

impl Ctx {
    pub(super) fn export(
        &self,
        namespace: &NamespaceName,
        dir: &Path,
        fmt: Format,
        at: At,
    ) -> Result<()> {
        let n = self.backend.namespace(namespace, at)?;
        // Sealed values are masked: an export is a file that leaves the server.
        let layers = self.backend.export_layers(namespace, at)?;
        std::fs::create_dir_all(dir.join("layers"))
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let spec = toml::to_string_pretty(&n.spec)?;
        std::fs::write(dir.join("namespace.toml"), spec)
            .with_context(|| format!("cannot write {}", dir.join("namespace.toml").display()))?;
        let ext = match fmt {
            Format::Toml => "toml",
            Format::Yaml => "yaml",
            Format::Json => "json",
            Format::Env => "env",
        };
        for l in &layers {
            let path = dir.join("layers").join(format!("{}.{ext}", l.layer));
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            let text =
                format::render(&l.document, fmt).with_context(|| format!("layer {}", l.layer))?;
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        eprintln!(
            "exported {} layers of {namespace} to {}",
            layers.len(),
            dir.display()
        );
        Ok(())
    }
}
