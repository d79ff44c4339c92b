//! The commands, on the embedded store.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use confstrata_core::{ChangeSet, CommitInfo, Op};
use serde_json::json;

mod access;
mod backup;
mod changes;
mod layers;
mod library;
mod ns;
mod read;
pub(crate) mod security;
mod sync;
mod template;

use crate::args::{Cli, Command, Output, TemplateCommand, WriteArgs};
use crate::backend::Backend;
use crate::output::{cell, structured};

pub(crate) fn run(cli: Cli) -> Result<()> {
    if let Command::Serve(args) = &cli.command {
        return crate::serve::run(cli.data_dir.as_deref(), args);
    }
    if let Command::Backup(crate::args::BackupCommand::Restore {
        from,
        key_file,
        at,
        backup,
        store,
        bump_revision,
    }) = cli.command
    {
        return backup::restore_command(
            cli.data_dir.as_deref(),
            cli.output,
            &from,
            key_file,
            at,
            backup,
            store,
            bump_revision,
        );
    }
    // The shipped templates need no store or server: without a server and
    // without a store, list and show read the library alone (no data
    // directory is made).
    if let Command::Template(c @ (TemplateCommand::List { .. } | TemplateCommand::Show { .. })) =
        &cli.command
        && cli.addr.is_none()
        && !cli
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
            .exists()
    {
        return template::offline(c, cli.output);
    }
    if let Command::Openapi = &cli.command {
        let doc = confstrata_http_api::openapi::document()
            .to_pretty_json()
            .context("cannot write the OpenAPI description")?;
        crate::output::emit(&doc);
        return Ok(());
    }
    let author = cli
        .author
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into());
    let backend = match &cli.addr {
        Some(addr) => Backend::remote(addr, cli.token.clone(), client_tls(&cli)?)?,
        None => Backend::local(
            cli.data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            &author,
        )?,
    };
    let ctx = Ctx {
        backend,
        output: cli.output,
        author,
    };
    match cli.command {
        Command::Serve(_) | Command::Openapi => Ok(()),
        Command::Ns(c) => ctx.ns(c),
        Command::Put(args) => layers::put(&ctx, args),
        Command::Set(args) => layers::set(&ctx, args),
        Command::Unset(args) => layers::unset(&ctx, args),
        Command::Delete(args) => layers::delete(&ctx, args),
        Command::Get(args) => layers::get_layer(&ctx, args),
        Command::Layers(args) => layers::layers(&ctx, args),
        Command::Resolve(args) => read::resolve(&ctx, args),
        Command::Explain(args) => read::explain(&ctx, args),
        Command::Diff(args) => ctx.diff(args),
        Command::History(args) => read::history(&ctx, args),
        Command::Rollback(args) => changes::rollback(&ctx, args),
        Command::Sync(args) => sync::sync(&ctx, args),
        Command::Apply(args) => changes::apply(&ctx, args),
        Command::Validate(args) => changes::validate(&ctx, args),
        Command::Import(args) => changes::import(&ctx, args),
        Command::Export(args) => changes::export(&ctx, args),
        Command::Compact(args) => changes::compact(&ctx, args),
        Command::Status => {
            let (v, headers, fields) = ctx.backend.status()?;
            structured(&v, ctx.output, &headers, || {
                vec![fields.iter().map(|f| cell(&v[*f])).collect()]
            })
        }
        Command::Library(c) => ctx.library(c),
        Command::Keys(c) => security::keys(&ctx.backend, ctx.output, c),
        Command::Audit(c) => security::audit(&ctx.backend, ctx.output, c),
        Command::Principal(c) => security::principal(&ctx.backend, ctx.output, c),
        Command::Role(c) => access::role(&ctx.backend, ctx.output, c),
        Command::Group(c) => access::group(&ctx.backend, ctx.output, c),
        Command::Auth(c) => access::auth(&ctx.backend, ctx.output, c),
        Command::Policy(c) => access::policy(&ctx.backend, ctx.output, c),
        Command::Token(c) => security::token(&ctx.backend, ctx.output, c),
        Command::Stats => stats(&ctx.backend, ctx.output),
        Command::Backup(c) => backup::backup(&ctx.backend, ctx.output, c),
        Command::Template(c) => template::template(&ctx, c),
    }
}

/// A dry run's diff, as a table.
fn print_diff(d: &confstrata_engine::DryRun) {
    let rows: Vec<Vec<String>> = d
        .layers
        .iter()
        .flat_map(|l| {
            l.changes.iter().map(move |c| {
                vec![
                    format!("{}:{}", l.namespace, l.layer),
                    c.key.to_string(),
                    format!("{:?}", c.kind).to_lowercase(),
                    c.old.as_ref().map(cell).unwrap_or_default(),
                    c.new.as_ref().map(cell).unwrap_or_default(),
                ]
            })
        })
        .collect();
    crate::output::emit(&crate::output::table(
        &["LAYER", "KEY", "CHANGE", "OLD", "NEW"],
        &rows,
    ));
}

/// Validation findings, as a table (or a line saying there are none).
pub(crate) fn print_findings(findings: &[confstrata_core::Finding]) {
    if findings.is_empty() {
        crate::output::emit("validation: no findings\n");
        return;
    }
    let rows: Vec<Vec<String>> = findings
        .iter()
        .map(|f| {
            vec![
                match f.severity {
                    confstrata_core::Severity::Error => "error".into(),
                    confstrata_core::Severity::Warning => "warning".into(),
                },
                f.stage.to_string(),
                f.rule.clone(),
                f.namespace.clone(),
                f.context
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
                f.key.clone().unwrap_or_default(),
                f.message.clone(),
            ]
        })
        .collect();
    crate::output::emit(&crate::output::table(
        &[
            "SEVERITY",
            "STAGE",
            "RULE",
            "NAMESPACE",
            "CONTEXT",
            "KEY",
            "MESSAGE",
        ],
        &rows,
    ));
}

/// Where the embedded store lives unless told otherwise.
pub(crate) const DEFAULT_DATA_DIR: &str = "./confstrata-data";

struct Ctx {
    backend: Backend,
    output: Output,
    author: String,
}

impl Ctx {
    fn commit_ops(&self, ops: Vec<Op>, write: &WriteArgs) -> Result<()> {
        let cs = ChangeSet {
            author: self.author.clone(),
            message: write.message.clone(),
            ops,
        };
        self.commit(&cs)
    }

    fn commit(&self, cs: &ChangeSet) -> Result<()> {
        let info = self.backend.commit(cs)?;
        self.print_commit(&info, cs.ops.len())
    }

    fn print_commit(&self, info: &CommitInfo, operations: usize) -> Result<()> {
        let v = json!({"revision": info.revision, "time": info.time.to_string(), "operations": operations});
        structured(&v, self.output, &["REVISION", "TIME", "OPERATIONS"], || {
            vec![vec![
                info.revision.to_string(),
                info.time.to_string(),
                operations.to_string(),
            ]]
        })
    }
}

/// The client's TLS settings from `--tls-ca`, `--tls-cert` and `--tls-key`.
fn client_tls(cli: &Cli) -> Result<Option<confstrata_client::ClientTls>> {
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    let Some(ca) = &cli.tls_ca else {
        if cli.tls_cert.is_some() {
            bail!("--tls-cert needs --tls-ca (the CA that signed the server's certificate)");
        }
        return Ok(None);
    };
    let mut tls = confstrata_client::ClientTls::new(read(ca)?);
    if let (Some(cert), Some(key)) = (&cli.tls_cert, &cli.tls_key) {
        tls = tls.identity(read(cert)?, read(key)?);
    }
    Ok(Some(tls))
}

/// `confstrata stats`: a table of stage timings, then the cache's counters.
fn stats(backend: &Backend, output: Output) -> Result<()> {
    let (local, v) = backend.stats()?;
    if local {
        eprintln!(
            "note: a local store: these are this command's own figures; set --addr (or CONFSTRATA_ADDR) for a server's"
        );
    }
    if output != Output::Table {
        return structured(&v, output, &[], Vec::new);
    }
    let ms = |x: &serde_json::Value| format!("{:.3}", x.as_f64().unwrap_or(0.0) * 1e3);
    let rows: Vec<Vec<String>> = v["timings"]["stages"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    vec![
                        cell(&s["stage"]),
                        cell(&s["count"]),
                        ms(&s["p50_seconds"]),
                        ms(&s["p90_seconds"]),
                        ms(&s["p99_seconds"]),
                        ms(&s["sum_seconds"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let mut text = crate::output::table(
        &["STAGE", "COUNT", "P50 MS", "P90 MS", "P99 MS", "TOTAL MS"],
        &rows,
    );
    let c = &v["cache"];
    let b = &v["cache_budget"];
    let t = &v["timings"];
    text.push_str(&format!(
        "\nrevision {}\ncache: {} hits, {} misses, {} views ({} bytes) of {} views / {} bytes, {} evicted, {} invalidated ({} rebuilt from the change)\nstore: {} transactions carrying {} jobs\n",
        v["revision"], c["hits"], c["misses"], c["entries"], c["bytes"], b["max_entries"], b["max_bytes"],
        c["evictions"], c["invalidations"], c["rebuilt"], t["batches"], t["batched_jobs"]
    ));
    if let Some(b) = v.get("newest_backup").filter(|b| !b.is_null()) {
        text.push_str(&format!(
            "backup: the newest is {} (revision {}), {} s old\n",
            cell(&b["id"]),
            b["revision"],
            b["age_seconds"]
        ));
    }
    crate::output::emit(&text);
    Ok(())
}
