//! `confstrata backup`: create, list, verify, prune on the embedded store
//! (online through the engine), and restore into a new data directory.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use confstrata_engine::backup::{BackupKeys, BackupVerification, restore};
use confstrata_engine::confstrata_backup::{
    CreateOptions, Kind, Listed, Manifest, Point, Progress, RestoreOptions, Retention, Target,
    VerifyReport, open_target,
};
use confstrata_engine::{Caller, Engine, MasterKey};
use serde_json::json;

use super::security::done;
use crate::args::{BackupCommand, BackupPlace, Output};
use crate::backend::Backend;
use crate::output::{bytes, structured};

/// A progress line on a terminal (an indicatif spinner on stderr, which
/// hides itself when stderr is not a terminal).
struct Bar(indicatif::ProgressBar);

impl Bar {
    fn new(what: &str) -> Bar {
        let bar = indicatif::ProgressBar::new_spinner();
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{spinner} {prefix} {msg} [{elapsed}]")
        {
            bar.set_style(style);
        }
        bar.set_prefix(what.to_owned());
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Bar(bar)
    }

    fn report(&self) -> impl FnMut(Progress) + '_ {
        move |p: Progress| {
            self.0.set_message(format!(
                "{} records, {} read or written in {} parts",
                p.records,
                bytes(p.stored_bytes),
                p.parts
            ));
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

fn keys_of(place: &BackupPlace) -> Result<Option<BackupKeys>> {
    place
        .key_file
        .as_deref()
        .map(|f| BackupKeys::from_key_file(f).map_err(anyhow::Error::from))
        .transpose()
}

fn target_of(url: &str) -> Result<Box<dyn Target>> {
    Ok(open_target(url)?)
}

/// The embedded store's engine, its caller, and the target `--to` names.
type Local<'a> = (&'a Engine, &'a Caller, Box<dyn Target>);

/// The embedded store's engine and the target `--to` names; `None` on a
/// server.
fn local<'a>(backend: &'a Backend, place: &BackupPlace) -> Result<Option<Local<'a>>> {
    match backend {
        Backend::Local { engine, caller, .. } => {
            let Some(to) = &place.to else {
                bail!("give the backup directory with --to DIR (or CONFSTRATA_BACKUP_TO)");
            };
            Ok(Some((engine, caller, target_of(to)?)))
        }
        Backend::Remote { .. } => {
            if place.key_file.is_some() {
                bail!(
                    "with --addr the server seals backups with its own key (backup_key_file); drop --key-file"
                );
            }
            Ok(None)
        }
    }
}

fn kind(k: Kind) -> &'static str {
    match k {
        Kind::Full => "full",
        Kind::Incremental => "incremental",
    }
}

/// A backup as a server lists it.
fn from_wire(b: &confstrata_proto::v1::BackupInfo) -> Result<Listed> {
    let manifest = if b.manifest_json.is_empty() {
        None
    } else {
        Some(
            serde_json::from_str::<Manifest>(&b.manifest_json).with_context(|| {
                format!("the server sent an unreadable manifest for backup {}", b.id)
            })?,
        )
    };
    Ok(Listed {
        id: b.id.clone(),
        manifest,
        problem: Some(b.problem.clone()).filter(|p| !p.is_empty()),
    })
}

pub(crate) fn backup(backend: &Backend, output: Output, c: BackupCommand) -> Result<()> {
    match c {
        BackupCommand::Create { place, incremental } => {
            let (m, place_url) = match local(backend, &place)? {
                Some((engine, caller, target)) => {
                    let keys = keys_of(&place)?;
                    let options = CreateOptions {
                        incremental,
                        ..CreateOptions::default()
                    };
                    let bar = Bar::new("backing up");
                    let m = engine.backup_create(
                        caller,
                        &*target,
                        keys.as_ref(),
                        &options,
                        &mut bar.report(),
                    )?;
                    (m, target.url())
                }
                None => {
                    let r = backend
                        .remote_call(|c| async move { c.create_backup(incremental).await })?;
                    let info = r.backup.context("the server answered no backup")?;
                    let m = from_wire(&info)?
                        .manifest
                        .context("the server answered no manifest")?;
                    (m, "the server's backup target".to_owned())
                }
            };
            let mut text = format!(
                "backup {} ({}) of revision {}: {} in {} parts, {} ms, on {}",
                m.id,
                kind(m.kind),
                m.revision,
                bytes(m.stored_bytes()),
                m.parts.len(),
                m.duration_ms,
                place_url
            );
            if let Some(note) = &m.note {
                text.push_str(&format!("\nnote: {note}"));
            }
            done(output, &serde_json::to_value(&m)?, &text)
        }
        BackupCommand::List { place } => {
            let listed = match local(backend, &place)? {
                Some((engine, caller, target)) => engine.backup_list(caller, &*target)?,
                None => backend
                    .remote_call(|c| async move { c.list_backups().await })?
                    .backups
                    .iter()
                    .map(from_wire)
                    .collect::<Result<Vec<_>>>()?,
            };
            print_list(&listed, output)
        }
        BackupCommand::Verify { id, place } => {
            let v = match local(backend, &place)? {
                Some((engine, caller, target)) => {
                    let keys = keys_of(&place)?;
                    let id = match id {
                        Some(id) => id,
                        None => confstrata_engine::confstrata_backup::latest_good(
                            &*target,
                            &engine.store().store_id()?,
                        )?
                        .map(|m| m.id)
                        .with_context(|| {
                            format!(
                                "no complete backup of this store on {} (a restored store has a new identity: name the backup)",
                                target.url()
                            )
                        })?,
                    };
                    let bar = Bar::new("verifying");
                    engine.backup_verify(caller, &*target, keys.as_ref(), &id, &mut bar.report())?
                }
                None => {
                    let r = backend
                        .remote_call(|c| async move { c.verify_backup(id.as_deref()).await })?;
                    BackupVerification {
                        backup: VerifyReport {
                            chain: r.chain,
                            revision: r.revision,
                            parts: usize::try_from(r.parts).unwrap_or(usize::MAX),
                            records: r.records,
                            stored_bytes: r.stored_bytes,
                        },
                        audit_records: r.audit_records,
                        contexts_resolved: r.contexts_resolved,
                        namespaces: r.namespaces,
                    }
                }
            };
            let id = v.backup.chain.last().cloned().unwrap_or_default();
            done(
                output,
                &serde_json::to_value(&v)?,
                &format!(
                    "backup {id} is good: chain {}, revision {}, {} parts, {} records, audit chain of {} records verified, {} contexts of {} namespaces resolved",
                    v.backup.chain.join(" → "),
                    v.backup.revision,
                    v.backup.parts,
                    v.backup.records,
                    v.audit_records,
                    v.contexts_resolved,
                    v.namespaces
                ),
            )
        }
        BackupCommand::Prune {
            place,
            keep_last,
            keep_daily_days,
        } => {
            let Some((engine, caller, target)) = local(backend, &place)? else {
                bail!(
                    "with --addr the server prunes by its own backup_keep_last and backup_keep_daily_days after every backup"
                );
            };
            let report = engine.backup_prune(
                caller,
                &*target,
                &Retention {
                    keep_last,
                    keep_daily_days,
                },
            )?;
            done(
                output,
                &serde_json::to_value(&report)?,
                &format!(
                    "removed {} backups, kept {}",
                    report.removed.len(),
                    report.kept
                ),
            )
        }
        BackupCommand::Restore { .. } => bail!("restore runs without opening a store"),
    }
}

fn print_list(listed: &[Listed], output: Output) -> Result<()> {
    let value: Vec<serde_json::Value> = listed
        .iter()
        .map(|l| match &l.manifest {
            Some(m) => json!({"id": l.id, "manifest": m}),
            None => json!({"id": l.id, "problem": l.problem}),
        })
        .collect();
    structured(
        &value,
        output,
        &[
            "ID", "KIND", "REVISION", "CREATED", "SIZE", "PARENT", "STATUS",
        ],
        || {
            listed
                .iter()
                .map(|l| match &l.manifest {
                    Some(m) => vec![
                        m.id.clone(),
                        kind(m.kind).into(),
                        m.revision.to_string(),
                        m.created.to_string(),
                        bytes(m.stored_bytes()),
                        m.parent.as_ref().map_or(String::new(), |p| p.id.clone()),
                        "complete".into(),
                    ],
                    None => vec![
                        l.id.clone(),
                        String::new(),
                        String::new(),
                        String::new(),
                        String::new(),
                        String::new(),
                        l.problem.clone().unwrap_or_default(),
                    ],
                })
                .collect()
        },
    )
}

/// `backup restore`: into a new data directory, with no store opened
/// before.
#[expect(clippy::too_many_arguments, reason = "the command's flags, one by one")]
pub(crate) fn restore_command(
    data_dir: Option<&Path>,
    output: Output,
    from: &str,
    key_file: Option<PathBuf>,
    at: Option<String>,
    backup: Option<String>,
    store: Option<String>,
    bump_revision: u64,
) -> Result<()> {
    let Some(data_dir) = data_dir else {
        bail!(
            "give the new data directory to restore into with --data-dir (it must not exist or be empty)"
        );
    };
    let keys = match key_file {
        Some(f) => BackupKeys::from_key_file(&f)?,
        None => match MasterKey::from_env().map_err(confstrata_engine::crypto_error)? {
            Some(k) => BackupKeys::with_key(k),
            None => bail!(
                "give the key the backups were sealed with: --key-file FILE (the master key file, or the backup key file) or CONFSTRATA_MASTER_KEY"
            ),
        },
    };
    let point = match (at, backup) {
        (Some(at), _) => match at.parse::<confstrata_core::At>()? {
            confstrata_core::At::Latest => Point::Latest,
            confstrata_core::At::Revision(r) => Point::Revision(r),
            confstrata_core::At::Time(t) => Point::Time(t),
        },
        (None, Some(id)) => Point::Backup(id),
        (None, None) => Point::Latest,
    };
    let target = target_of(from)?;
    let options = RestoreOptions {
        point,
        store_id: store,
        bump: bump_revision,
    };
    let bar = Bar::new("restoring");
    let report = confstrata_host::restore_into(data_dir, |into| {
        restore(&*target, &keys, into, &options, &mut bar.report())
    })
    .with_context(|| format!("cannot restore into {}", data_dir.display()))?;
    drop(bar);
    let mut text = format!(
        "restored revision {} ({}) from {} into {}: {} records; the store resumes at revision {}; new store id {}",
        report.revision,
        report.revision_time,
        report.chain.join(" → "),
        data_dir.display(),
        report.records,
        report.resumed_at,
        report.store_id
    );
    if let Some(note) = &report.note {
        text.push_str(&format!("\nnote: {note}"));
    }
    done(output, &serde_json::to_value(&report)?, &text)
}
