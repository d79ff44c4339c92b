//! `role`, `group`, `auth can-i`, and the binding half of `principal`
//! (`grant --on`, `ungrant`, `show`): access control as data, on the
//! embedded store (as the local user) or on a server (with the token's
//! rights).

use anyhow::{Result, bail};
use confstrata_core::format::Format;
use confstrata_engine::{GrantInfo, Holder, PolicyDocument, RoleInfo};
use serde_json::json;

use crate::args::{AuthCommand, GroupCommand, Output, PolicyCommand, RoleArgs, RoleCommand};
use crate::backend::Backend;
use crate::commands::security::done;
use crate::output::{emit, structured};

/// The grants of `--allow` and `--deny` arguments (`ACTIONS=PATTERN`):
/// actions never hold `=`, so the first one splits.
fn grants(args: &RoleArgs) -> Result<Vec<GrantInfo>> {
    let parse = |effect: &str, flag: &str, text: &str| -> Result<GrantInfo> {
        let Some((actions, on)) = text.split_once('=') else {
            bail!("--{flag} {text:?}: write ACTIONS=PATTERN, e.g. read,write=payments/**");
        };
        Ok(GrantInfo {
            effect: effect.to_owned(),
            actions: actions
                .split(',')
                .map(|a| a.trim().to_owned())
                .filter(|a| !a.is_empty())
                .collect(),
            on: on.to_owned(),
        })
    };
    let mut out = Vec::new();
    for a in &args.allow {
        out.push(parse("allow", "allow", a)?);
    }
    for d in &args.deny {
        out.push(parse("deny", "deny", d)?);
    }
    Ok(out)
}

fn role_rows(roles: &[RoleInfo]) -> Vec<Vec<String>> {
    roles
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                if r.builtin { "built-in" } else { "custom" }.to_owned(),
                r.grants
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
                r.description.clone(),
            ]
        })
        .collect()
}

pub(crate) fn role(backend: &Backend, output: Output, c: RoleCommand) -> Result<()> {
    match c {
        RoleCommand::List => {
            let roles = backend.roles()?;
            structured(
                &roles,
                output,
                &["ROLE", "KIND", "GRANTS", "DESCRIPTION"],
                || role_rows(&roles),
            )
        }
        RoleCommand::Show { name } => {
            let roles = backend.roles()?;
            let Some(role) = roles.into_iter().find(|r| r.name == name) else {
                bail!("role {name:?} does not exist; `confstrata role list` shows the roles");
            };
            structured(
                &role,
                output,
                &["ROLE", "KIND", "GRANTS", "DESCRIPTION"],
                || role_rows(std::slice::from_ref(&role)),
            )
        }
        RoleCommand::Create(args) | RoleCommand::Update(args)
            if args.allow.is_empty() && args.deny.is_empty() =>
        {
            bail!(
                "role {}: give at least one --allow or --deny grant (ACTIONS=PATTERN)",
                args.name
            )
        }
        RoleCommand::Create(args) => {
            let role = RoleInfo {
                grants: grants(&args)?,
                name: args.name,
                description: args.description,
                builtin: false,
            };
            backend.put_role(&role, true)?;
            done(
                output,
                &json!({"created": role.name}),
                &format!("created role {}", role.name),
            )
        }
        RoleCommand::Update(args) => {
            let role = RoleInfo {
                grants: grants(&args)?,
                name: args.name,
                description: args.description,
                builtin: false,
            };
            backend.put_role(&role, false)?;
            done(
                output,
                &json!({"updated": role.name}),
                &format!("role {} now holds {} grants", role.name, role.grants.len()),
            )
        }
        RoleCommand::Delete { name } => {
            backend.delete_role(&name)?;
            done(
                output,
                &json!({"deleted": name}),
                &format!("deleted role {name}"),
            )
        }
    }
}

pub(crate) fn group(backend: &Backend, output: Output, c: GroupCommand) -> Result<()> {
    match c {
        GroupCommand::List => {
            let groups = backend.groups()?;
            structured(
                &groups,
                output,
                &["GROUP", "MEMBERS", "ROLES", "DESCRIPTION"],
                || {
                    groups
                        .iter()
                        .map(|g| {
                            vec![
                                g.name.clone(),
                                g.members.join(" "),
                                g.roles
                                    .iter()
                                    .map(ToString::to_string)
                                    .collect::<Vec<_>>()
                                    .join(", "),
                                g.description.clone(),
                            ]
                        })
                        .collect()
                },
            )
        }
        GroupCommand::Create { name, description } => {
            backend.put_group(&name, &description, true)?;
            done(
                output,
                &json!({"created": name}),
                &format!("created group {name}"),
            )
        }
        GroupCommand::Delete { name } => {
            backend.delete_group(&name)?;
            done(
                output,
                &json!({"deleted": name}),
                &format!("deleted group {name}; its members lost the roles it gave them"),
            )
        }
        GroupCommand::AddMember { group, ids } => {
            backend.update_group_members(&group, &ids, &[])?;
            done(
                output,
                &json!({"group": group, "added": ids}),
                &format!("added {} to {group}", ids.join(", ")),
            )
        }
        GroupCommand::RemoveMember { group, ids } => {
            backend.update_group_members(&group, &[], &ids)?;
            done(
                output,
                &json!({"group": group, "removed": ids}),
                &format!("removed {} from {group}", ids.join(", ")),
            )
        }
        GroupCommand::Grant { group, role, on } => {
            grant(backend, output, Holder::Group(group), &role, on.as_deref())
        }
        GroupCommand::Ungrant { group, role, on } => {
            ungrant(backend, output, Holder::Group(group), &role, on.as_deref())
        }
    }
}

fn holder_text(holder: &Holder) -> String {
    match holder {
        Holder::Principal(p) => p.clone(),
        Holder::Group(g) => format!("group {g}"),
    }
}

fn binding_text(role: &str, on: Option<&str>) -> String {
    match on {
        Some(on) => format!("{role} on {on}"),
        None => role.to_owned(),
    }
}

pub(crate) fn grant(
    backend: &Backend,
    output: Output,
    holder: Holder,
    role: &str,
    on: Option<&str>,
) -> Result<()> {
    let granted = backend.bind(&holder, role, on)?;
    let (who, what) = (holder_text(&holder), binding_text(role, on));
    done(
        output,
        &json!({"holder": holder, "role": role, "on": on, "granted": granted}),
        &if granted {
            format!("granted {what} to {who}")
        } else {
            format!("{who} already held {what}; nothing changed")
        },
    )
}

pub(crate) fn ungrant(
    backend: &Backend,
    output: Output,
    holder: Holder,
    role: &str,
    on: Option<&str>,
) -> Result<()> {
    backend.unbind(&holder, role, on)?;
    let (who, what) = (holder_text(&holder), binding_text(role, on));
    done(
        output,
        &json!({"holder": holder, "role": role, "on": on, "revoked": true}),
        &format!("took {what} from {who}"),
    )
}

pub(crate) fn show_principal(backend: &Backend, output: Output, id: &str) -> Result<()> {
    let d = backend.principal(id)?;
    match output {
        Output::Table => {
            let p = &d.principal;
            let mut text = format!(
                "principal {} ({}){}\n",
                p.id,
                format!("{:?}", p.kind).to_lowercase(),
                if p.revoked { ", revoked" } else { "" }
            );
            if !p.name.is_empty() {
                text.push_str(&format!("name:   {}\n", p.name));
            }
            let roles: Vec<String> = p.roles.iter().map(ToString::to_string).collect();
            text.push_str(&format!("roles:  {}\n", none_if_empty(&roles.join(", "))));
            text.push_str(&format!(
                "groups: {}\n",
                none_if_empty(&d.groups.join(", "))
            ));
            text.push_str(&format!("tokens: {}\n", p.tokens.len()));
            text.push_str("effective grants (a deny wins over every allow):\n");
            if d.effective.is_empty() {
                text.push_str("  none: every request is refused\n");
            }
            for g in &d.effective {
                text.push_str(&format!("  {g}\n"));
            }
            emit(&text);
            Ok(())
        }
        _ => structured(&d, output, &[], Vec::new),
    }
}

fn none_if_empty(s: &str) -> &str {
    if s.is_empty() { "(none)" } else { s }
}

pub(crate) fn auth(backend: &Backend, output: Output, c: AuthCommand) -> Result<()> {
    match c {
        AuthCommand::CanI {
            principal,
            action,
            resource,
        } => {
            let check = backend.can_i(&principal, &action, &resource)?;
            match output {
                Output::Table => emit(&format!(
                    "{}\n{}\n",
                    if check.allowed { "yes" } else { "no" },
                    check.reason
                )),
                _ => structured(&check, output, &[], Vec::new)?,
            }
            if check.allowed {
                Ok(())
            } else {
                Err(crate::errors::Answered(1).into())
            }
        }
    }
}

/// A policy file, parsed strictly (unknown fields refused, errors with
/// their line or path).
fn read_policy(file: &str, format: Option<&str>) -> Result<PolicyDocument> {
    let (bytes, name) = crate::input::read_input(file)?;
    let fmt = crate::input::pick_format(format, &name)?;
    if !matches!(fmt, Format::Toml | Format::Yaml | Format::Json) {
        bail!("{name}: a policy file is TOML, YAML or JSON");
    }
    crate::input::parse_structured(&bytes, fmt, &name, &confstrata_core::Limits::default())
}

pub(crate) fn policy(backend: &Backend, output: Output, c: PolicyCommand) -> Result<()> {
    let (file, format, dry_run) = match c {
        PolicyCommand::Export { file, format } => {
            let doc = backend.export_policy()?;
            let fmt = crate::input::pick_format(format.as_deref(), &file)?;
            let text = match fmt {
                Format::Toml => {
                    let mut t = String::from(
                        "# The Confstrata access policy: custom roles, groups and principals with their\n\
                         # roles (tokens are never here). Apply with: confstrata policy apply -f FILE\n\n",
                    );
                    t.push_str(&toml::to_string_pretty(&doc)?);
                    t
                }
                Format::Yaml => serde_yaml::to_string(&doc)?,
                Format::Json => format!("{}\n", serde_json::to_string_pretty(&doc)?),
                _ => bail!("{file}: a policy file is TOML, YAML or JSON"),
            };
            if file == "-" {
                emit(&text);
            } else {
                std::fs::write(&file, text)
                    .map_err(|e| anyhow::anyhow!("cannot write {file}: {e}"))?;
                eprintln!(
                    "wrote the policy ({} roles, {} groups, {} principals) to {file}",
                    doc.roles.len(),
                    doc.groups.len(),
                    doc.principals.len()
                );
            }
            return Ok(());
        }
        PolicyCommand::Diff { file, format } => (file, format, true),
        PolicyCommand::Apply {
            file,
            format,
            dry_run,
        } => (file, format, dry_run),
    };
    let doc = read_policy(&file, format.as_deref())?;
    let result = backend.apply_policy(&doc, dry_run)?;
    match output {
        Output::Table => {
            let mut text: String = result.changes.iter().map(|c| format!("{c}\n")).collect();
            text.push_str(&match (result.changes.len(), result.applied) {
                (0, _) => "the policy already matches the file; nothing to change\n".to_owned(),
                (n, true) => format!("applied {n} changes\n"),
                (n, false) => format!("{n} changes; nothing applied (dry run)\n"),
            });
            emit(&text);
            Ok(())
        }
        _ => structured(&result, output, &[], Vec::new),
    }
}
