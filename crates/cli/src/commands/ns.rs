//! `ns create | delete | generate | list | show | history | diff`:
//! namespaces and their declarations.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow, bail};
use confstrata_core::{At, NamespaceSpec};
use serde_json::json;

use confstrata_engine::Outcome;

use crate::args::{NsCommand, Output};
use crate::errors::ValidationFailed;
use crate::input::{at_of, ns, parse_spec, pick_format, read_input};
use crate::output::{cell, structured};

use super::{Ctx, print_diff, print_findings};

impl Ctx {
    pub(super) fn ns(&self, c: NsCommand) -> Result<()> {
        match c {
            NsCommand::Create {
                name,
                levels,
                matrix,
                description,
                imports,
                file,
                replace,
            } => {
                let spec = if let Some(file) = file {
                    let (bytes, src) = read_input(&file)?;
                    let fmt = pick_format(None, &src)?;
                    let mut spec = parse_spec(&bytes, fmt, &src)?;
                    if let Some(name) = name {
                        spec.name = ns(&name)?;
                    }
                    spec
                } else {
                    let name = name.ok_or_else(|| {
                        anyhow!("give the namespace name, or a spec file with -f")
                    })?;
                    if levels.is_empty() {
                        bail!(
                            "give at least one --level (for example --level defaults --level 'env/{{env}}')"
                        );
                    }
                    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
                    for entry in &matrix {
                        let (var, values) = entry.split_once('=').ok_or_else(|| {
                            anyhow!("--matrix {entry:?} is not of the form var=value1,value2")
                        })?;
                        m.insert(
                            var.trim().to_owned(),
                            values
                                .split(',')
                                .map(|v| v.trim().to_owned())
                                .filter(|v| !v.is_empty())
                                .collect(),
                        );
                    }
                    let spec: NamespaceSpec = serde_json::from_value(json!({
                        "name": name, "description": description, "levels": levels, "matrix": m,
                        "imports": imports,
                    }))
                    .map_err(|e| anyhow!("{e}"))?;
                    spec
                };
                spec.validate()?;
                let (record, _) = self
                    .backend
                    .create_namespace(&spec, replace, &self.author)?;
                let v = json!({"namespace": record.spec.name, "revision": record.revision});
                structured(&v, self.output, &["NAMESPACE", "REVISION"], || {
                    vec![vec![
                        record.spec.name.to_string(),
                        record.revision.to_string(),
                    ]]
                })
            }
            NsCommand::Delete {
                name,
                expect_revision,
                message,
            } => self.commit_ops(
                vec![confstrata_core::Op::DeleteNamespace {
                    namespace: ns(&name)?,
                    expect_revision,
                }],
                &crate::args::WriteArgs {
                    expect_revision,
                    message,
                },
            ),
            NsCommand::Generate {
                name,
                commit,
                check,
                message,
            } => self.generate(&name, commit, check, message),
            NsCommand::List { at } => {
                let list = self.backend.namespaces(at_of(&at)?)?;
                structured(
                    &list,
                    self.output,
                    &["NAMESPACE", "LEVELS", "REVISION", "DESCRIPTION"],
                    || {
                        list.iter()
                            .map(|n| {
                                vec![
                                    n.spec.name.to_string(),
                                    n.spec
                                        .levels
                                        .iter()
                                        .map(ToString::to_string)
                                        .collect::<Vec<_>>()
                                        .join(" < "),
                                    n.revision.to_string(),
                                    n.spec.description.clone(),
                                ]
                            })
                            .collect()
                    },
                )
            }
            NsCommand::Show { name, at } => {
                let n = self.backend.namespace(&ns(&name)?, at_of(&at)?)?;
                structured(&n, self.output, &["FIELD", "VALUE"], || {
                    let mut rows = vec![
                        vec!["name".into(), n.spec.name.to_string()],
                        vec!["revision".into(), n.revision.to_string()],
                    ];
                    if !n.spec.description.is_empty() {
                        rows.push(vec!["description".into(), n.spec.description.clone()]);
                    }
                    for (i, l) in n.spec.levels.iter().enumerate() {
                        rows.push(vec![format!("level {}", i + 1), l.to_string()]);
                    }
                    for (var, values) in &n.spec.matrix {
                        rows.push(vec![format!("matrix {var}"), values.join(", ")]);
                    }
                    if !n.spec.imports.is_empty() {
                        let names: Vec<String> =
                            n.spec.imports.iter().map(ToString::to_string).collect();
                        rows.push(vec!["imports".into(), names.join(", ")]);
                    }
                    for g in &n.spec.generators {
                        let reads = if g.reads.is_empty() {
                            String::new()
                        } else {
                            format!(", reads {}", g.reads.join(", "))
                        };
                        rows.push(vec![
                            format!("generator {}", g.id),
                            format!("{}{reads}", g.level),
                        ]);
                    }
                    let v = &n.spec.validation;
                    if !v.is_empty() {
                        rows.push(vec![
                            "validation".into(),
                            format!(
                                "{}{} validators, {} rules",
                                if v.schema.is_some() { "schema, " } else { "" },
                                v.validators.len(),
                                v.rules.len()
                            ),
                        ]);
                    }
                    rows
                })
            }
            NsCommand::History { name, limit } => {
                let h = self.backend.declaration_history(&ns(&name)?, limit)?;
                structured(
                    &h,
                    self.output,
                    &["REVISION", "TIME", "AUTHOR", "MESSAGE", "RULES"],
                    || {
                        h.iter()
                            .map(|v| {
                                vec![
                                    v.info.revision.to_string(),
                                    v.info.time.to_string(),
                                    v.info.author.clone(),
                                    v.info.message.clone(),
                                    v.spec.as_ref().map_or("(deleted)".into(), |s| {
                                        s.validation.rules.len().to_string()
                                    }),
                                ]
                            })
                            .collect()
                    },
                )
            }
            NsCommand::Diff { name, from, to } => {
                let name = ns(&name)?;
                let from: At = from.parse()?;
                let to: At = to
                    .as_deref()
                    .map(str::parse)
                    .transpose()?
                    .unwrap_or(At::Latest);
                let d = self.backend.diff_declaration(&name, from, to)?;
                structured(&d, self.output, &["KEY", "CHANGE", "OLD", "NEW"], || {
                    d.iter()
                        .map(|c| {
                            vec![
                                c.key.to_string(),
                                format!("{:?}", c.kind).to_lowercase(),
                                c.old.as_ref().map(cell).unwrap_or_default(),
                                c.new.as_ref().map(cell).unwrap_or_default(),
                            ]
                        })
                        .collect()
                })
            }
        }
    }
}

impl Ctx {
    /// `ns generate NAME [--commit | --check]`: what the namespace's
    /// generators compute, and the dry run, commit or check of writing it.
    fn generate(
        &self,
        name: &str,
        commit: bool,
        check: bool,
        message: Option<String>,
    ) -> Result<()> {
        let name = ns(name)?;
        let (plan, done) = self
            .backend
            .generate(&name, commit, check, &self.author, message)?;
        let table = self.output == Output::Table;
        if check {
            return self.generate_check(&name, &plan);
        }
        match done {
            None => {
                if table {
                    eprintln!(
                        "nothing to write: the layers of {name} hold what its generators compute (revision {})",
                        plan.revision
                    );
                } else {
                    structured(
                        &json!({"namespace": name, "revision": plan.revision,
                        "generated": plan.generated, "change_set": plan.change_set}),
                        self.output,
                        &[],
                        Vec::new,
                    )?;
                }
                Ok(())
            }
            Some(Outcome::Committed(info)) => {
                if table {
                    eprintln!(
                        "wrote what the generators of {name} compute ({} ops)",
                        plan.change_set.ops.len()
                    );
                }
                self.print_commit(&info, plan.change_set.ops.len())
            }
            Some(Outcome::DryRun(d)) => {
                if table {
                    print_diff(&d);
                    print_findings(&d.findings);
                    eprintln!("dry run: nothing was written; run again with --commit to write it");
                } else {
                    structured(
                        &json!({"namespace": name, "revision": plan.revision,
                        "generated": plan.generated, "change_set": plan.change_set, "dry_run": d}),
                        self.output,
                        &[],
                        Vec::new,
                    )?;
                }
                Ok(ValidationFailed::check(&d.findings)?)
            }
        }
    }

    /// `ns generate NAME --check`: the keys whose stored values differ
    /// from what the generators compute (read only: nothing is dry-run
    /// or written); exit 1 when there are any.
    fn generate_check(
        &self,
        name: &confstrata_core::NamespaceName,
        plan: &confstrata_engine::GeneratePlan,
    ) -> Result<()> {
        let ops = &plan.change_set.ops;
        if ops.is_empty() && self.output == Output::Table {
            eprintln!(
                "the layers of {name} hold what its generators compute (revision {})",
                plan.revision
            );
            return Ok(());
        }
        structured(
            &json!({"namespace": name, "revision": plan.revision,
                "generated": plan.generated, "change_set": plan.change_set}),
            self.output,
            &["LAYER", "KEY", "GENERATED"],
            || {
                ops.iter()
                    .flat_map(|op| match op {
                        confstrata_core::Op::Set {
                            layer, key, value, ..
                        } => vec![vec![layer.to_string(), key.to_string(), cell(value)]],
                        confstrata_core::Op::Put {
                            layer, document, ..
                        } => confstrata_core::doc::leaves(document)
                            .into_iter()
                            .map(|(k, v)| vec![format!("{layer} (new)"), k.to_string(), cell(v)])
                            .collect(),
                        _ => Vec::new(),
                    })
                    .collect()
            },
        )?;
        if ops.is_empty() {
            eprintln!(
                "the layers of {name} hold what its generators compute (revision {})",
                plan.revision
            );
            return Ok(());
        }
        eprintln!(
            "the layers of {name} do not hold what its generators compute: run confstrata ns generate {name} --commit"
        );
        Err(crate::errors::Answered(1).into())
    }
}
