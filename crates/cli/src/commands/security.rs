//! `keys`, `audit`, `principal` and `token`: security administration, on
//! the embedded store (as the local user, with admin rights) or on a server
//! (with the token's rights).

use std::io::Write as _;

use anyhow::{Context as _, Result};
use confstrata_engine::{AuditRecord, Holder, KeyInfo, PrincipalInfo, PrincipalKind};
use serde_json::json;

use crate::args::{AuditCommand, KeysCommand, Output, PrincipalCommand, TokenCommand};
use crate::backend::Backend;
use crate::output::{emit, structured};

pub(crate) fn keys(backend: &Backend, output: Output, c: KeysCommand) -> Result<()> {
    match c {
        KeysCommand::List => {
            let keys: Vec<KeyInfo> = backend.keys()?;
            structured(&keys, output, &["KEY", "CURRENT"], || {
                keys.iter()
                    .map(|k| vec![k.id.clone(), if k.current { "yes" } else { "" }.into()])
                    .collect()
            })
        }
        KeysCommand::Rotate { namespace } => {
            let id = backend.rotate_key(&crate::input::ns(&namespace)?)?;
            done(
                output,
                &json!({"key": id}),
                &format!(
                    "new current key {id}; old values stay readable until `keys rewrap {namespace}`"
                ),
            )
        }
        KeysCommand::Rewrap { namespace } => {
            match backend.rewrap(&crate::input::ns(&namespace)?)? {
                Some(info) => done(
                    output,
                    &json!({"revision": info.revision}),
                    &format!(
                        "rewrapped the sealed values of {namespace} at revision {}",
                        info.revision
                    ),
                ),
                None => done(
                    output,
                    &json!({"revision": null}),
                    "every sealed value already uses the current key",
                ),
            }
        }
        KeysCommand::RotateMaster => {
            let r = backend.rotate_master_key()?;
            done(
                output,
                &serde_json::to_value(&r)?,
                &format!(
                    "master key {} replaced by {}: {} data keys wrapped again; audit records now keyed by {} ({} earlier audit keys kept for `audit verify`)",
                    r.from, r.to, r.data_keys, r.audit_key, r.audit_keys_kept
                ),
            )
        }
        KeysCommand::Retire { key } => {
            backend.retire_key(&key)?;
            done(output, &json!({"retired": key}), &format!("retired {key}"))
        }
    }
}

pub(crate) fn audit(backend: &Backend, output: Output, c: AuditCommand) -> Result<()> {
    match c {
        AuditCommand::List { after, limit } => {
            let records: Vec<AuditRecord> = backend.audit_records(after, limit)?;
            structured(
                &records,
                output,
                &[
                    "SEQ",
                    "TIME",
                    "PRINCIPAL",
                    "ACTION",
                    "RESOURCE",
                    "OUTCOME",
                    "REVISION",
                ],
                || {
                    records
                        .iter()
                        .map(|r| {
                            vec![
                                r.seq.to_string(),
                                r.time.to_string(),
                                r.principal.as_ref().map_or("-".into(), ToString::to_string),
                                r.action.to_string(),
                                r.resource.to_string(),
                                r.outcome.as_str().into(),
                                r.revision.map_or(String::new(), |v| v.to_string()),
                            ]
                        })
                        .collect()
                },
            )
        }
        AuditCommand::Verify => {
            let (records, last_seq) = backend.audit_verify()?;
            done(
                output,
                &json!({"records": records, "last_seq": last_seq, "ok": true}),
                &format!("audit log intact: {records} records, last seq {last_seq}"),
            )
        }
        AuditCommand::Export { file } => {
            let mut out: Box<dyn std::io::Write> = if file == "-" {
                Box::new(std::io::stdout().lock())
            } else {
                Box::new(std::io::BufWriter::new(
                    std::fs::File::create(&file)
                        .with_context(|| format!("cannot create {file}"))?,
                ))
            };
            let mut after = 0;
            let mut count = 0u64;
            loop {
                let page = backend.audit_records(after, 1000)?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                for r in &page {
                    serde_json::to_writer(&mut out, r)?;
                    out.write_all(b"\n")?;
                    count += 1;
                }
            }
            out.flush()?;
            if file != "-" {
                eprintln!("wrote {count} audit records to {file}");
            }
            Ok(())
        }
    }
}

pub(crate) fn principal(backend: &Backend, output: Output, c: PrincipalCommand) -> Result<()> {
    match c {
        PrincipalCommand::Add {
            id,
            name,
            service,
            roles,
        } => {
            let kind = if service {
                PrincipalKind::Service
            } else {
                PrincipalKind::User
            };
            backend.add_principal(&id, &name, kind, &roles)?;
            done(
                output,
                &json!({"added": id, "roles": roles}),
                &format!("added {id}; give it a token with `confstrata token issue {id}`"),
            )
        }
        PrincipalCommand::List => {
            let list: Vec<PrincipalInfo> = backend.principals()?;
            structured(
                &list,
                output,
                &["ID", "KIND", "ROLES", "TOKENS", "REVOKED"],
                || {
                    list.iter()
                        .map(|p| {
                            vec![
                                p.id.clone(),
                                format!("{:?}", p.kind).to_lowercase(),
                                p.roles
                                    .iter()
                                    .map(ToString::to_string)
                                    .collect::<Vec<_>>()
                                    .join(", "),
                                p.tokens
                                    .iter()
                                    .map(|t| {
                                        format!(
                                            "{}{}",
                                            t.hash,
                                            if t.revoked { " (revoked)" } else { "" }
                                        )
                                    })
                                    .collect::<Vec<_>>()
                                    .join(" "),
                                if p.revoked { "yes" } else { "" }.into(),
                            ]
                        })
                        .collect()
                },
            )
        }
        PrincipalCommand::Show { id } => {
            crate::commands::access::show_principal(backend, output, &id)
        }
        PrincipalCommand::Grant { id, role, on } => crate::commands::access::grant(
            backend,
            output,
            Holder::Principal(id),
            &role,
            on.as_deref(),
        ),
        PrincipalCommand::Ungrant { id, role, on } => crate::commands::access::ungrant(
            backend,
            output,
            Holder::Principal(id),
            &role,
            on.as_deref(),
        ),
        PrincipalCommand::Revoke { id } => {
            backend.revoke_principal(&id)?;
            done(
                output,
                &json!({"revoked": id}),
                &format!("revoked {id} and all its tokens"),
            )
        }
    }
}

pub(crate) fn token(backend: &Backend, output: Output, c: TokenCommand) -> Result<()> {
    match c {
        TokenCommand::Issue { id, label } => {
            let token = backend.issue_token(&id, &label)?;
            match output {
                Output::Table => {
                    emit(&format!("{token}\n"));
                    eprintln!("this token is shown once; it is stored only as a hash");
                    Ok(())
                }
                _ => structured(
                    &json!({"principal": id, "token": token}),
                    output,
                    &[],
                    Vec::new,
                ),
            }
        }
        TokenCommand::Revoke { hash } => {
            backend.revoke_token(&hash)?;
            done(
                output,
                &json!({"revoked": hash}),
                &format!("revoked token {hash}; its open watches ended"),
            )
        }
    }
}

/// Prints a confirmation (table) or a structured answer.
pub(crate) fn done(output: Output, value: &serde_json::Value, text: &str) -> Result<()> {
    match output {
        Output::Table => {
            emit(&format!("{text}\n"));
            Ok(())
        }
        _ => structured(value, output, &[], Vec::new),
    }
}
