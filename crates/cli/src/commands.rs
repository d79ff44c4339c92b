//! The commands, on the embedded store.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use confstrata_core::format::{self, Format};
use confstrata_core::{
    At, ChangeSet, CommitInfo, Context, Document, KeyPath, LayerPath, Limits, NamespaceName,
    NamespaceSpec, Op, RetentionPolicy, parse_context,
};
use serde_json::{Value, json};

use crate::args::{AtArg, Cli, Command, DiffArgs, NsCommand, Output, WriteArgs};
use crate::backend::Backend;
use crate::output::{cell, document, structured};

pub(crate) fn run(cli: Cli) -> Result<()> {
    if let Command::Serve(args) = &cli.command {
        return crate::serve::run(cli.data_dir.as_deref(), args);
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
        Command::Serve(_) => Ok(()),
        Command::Ns(c) => ctx.ns(c),
        Command::Put {
            namespace,
            layer,
            file,
            format,
            write,
        } => {
            let (bytes, name) = read_input(&file)?;
            let fmt = pick_format(format.as_deref(), &name)?;
            let document = format::parse(&bytes, fmt, &name, &Limits::default())?;
            ctx.commit_ops(
                vec![Op::Put {
                    namespace: ns(&namespace)?,
                    layer: layer_path(&layer)?,
                    document,
                    expect_revision: write.expect_revision,
                }],
                &write,
            )
        }
        Command::Set {
            namespace,
            layer,
            pairs,
            string,
            secret,
            write,
        } => {
            let (namespace, layer) = (ns(&namespace)?, layer_path(&layer)?);
            let mut entries = Vec::new();
            let mut stdin_used = false;
            for pair in &pairs {
                let (k, v) = split_pair(pair)?;
                let from_stdin;
                let v = if secret && v == "-" {
                    if stdin_used {
                        bail!("only one VALUE can be read from stdin");
                    }
                    stdin_used = true;
                    let mut text = String::new();
                    std::io::stdin()
                        .read_to_string(&mut text)
                        .context("reading the secret value from stdin")?;
                    from_stdin = text.trim_end_matches(['\n', '\r']).to_owned();
                    from_stdin.as_str()
                } else {
                    v
                };
                let value = if string {
                    Value::String(v.to_owned())
                } else {
                    parse_value(v)
                };
                entries.push((key_path(k)?, value, secret));
            }
            let ops = Op::set_keys(&namespace, &layer, entries, write.expect_revision);
            ctx.commit_ops(ops, &write)
        }
        Command::Unset {
            namespace,
            layer,
            keys,
            write,
        } => {
            let (namespace, layer) = (ns(&namespace)?, layer_path(&layer)?);
            let keys = keys
                .iter()
                .map(|k| key_path(k))
                .collect::<Result<Vec<_>>>()?;
            let ops = Op::unset_keys(&namespace, &layer, keys, write.expect_revision);
            ctx.commit_ops(ops, &write)
        }
        Command::Delete {
            namespace,
            layer,
            write,
        } => ctx.commit_ops(
            vec![Op::Delete {
                namespace: ns(&namespace)?,
                layer: layer_path(&layer)?,
                expect_revision: write.expect_revision,
            }],
            &write,
        ),
        Command::Get {
            namespace,
            layer,
            at,
        } => {
            let r = ctx
                .backend
                .layer(&ns(&namespace)?, &layer_path(&layer)?, at_of(&at)?)?;
            document(&r.document, ctx.output)
        }
        Command::Layers { namespace, at } => {
            let layers = ctx.backend.layers(&ns(&namespace)?, at_of(&at)?)?;
            let list: Vec<Value> = layers
                .iter()
                .map(|l| json!({"layer": l.layer, "revision": l.revision, "keys": confstrata_core::doc::leaves(&l.document).len()}))
                .collect();
            structured(&list, ctx.output, &["LAYER", "REVISION", "KEYS"], || {
                list.iter()
                    .map(|l| vec![cell(&l["layer"]), cell(&l["revision"]), cell(&l["keys"])])
                    .collect()
            })
        }
        Command::Resolve {
            namespace,
            context,
            provenance,
            section,
            at,
        } => {
            let section = section
                .as_deref()
                .map(|s| {
                    KeyPath::parse(s).with_context(|| format!("--section {s:?} is not a key path"))
                })
                .transpose()?;
            let view = ctx.backend.resolve(
                &ns(&namespace)?,
                &contexts(&context)?,
                section.as_ref(),
                at_of(&at)?,
                provenance,
            )?;
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
                                p.map_or_else(String::new, |p| p.layer.to_string()),
                                p.map_or_else(String::new, |p| p.revision.to_string()),
                            ]
                        })
                        .collect()
                },
            )
        }
        Command::Explain {
            namespace,
            key,
            context,
            at,
        } => {
            let key = key_path(&key)?;
            let x =
                ctx.backend
                    .explain(&ns(&namespace)?, &contexts(&context)?, &key, at_of(&at)?)?;
            if x.explanation.entries.is_empty() {
                return Err(confstrata_core::Error::KeyNotFound {
                    location: format!("{namespace} for this context"),
                    key: key.to_string(),
                }
                .into());
            }
            structured(
                &x,
                ctx.output,
                &["LAYER", "REVISION", "VALUE", "", "AUTHOR", "MESSAGE"],
                || {
                    x.explanation
                        .entries
                        .iter()
                        .map(|e| {
                            let change = x.changes.get(&e.revision);
                            vec![
                                e.layer.to_string(),
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
                            ]
                        })
                        .collect()
                },
            )
        }
        Command::Diff(args) => ctx.diff(args),
        Command::History {
            namespace,
            layer,
            limit,
        } => {
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
        Command::Rollback {
            namespace,
            layer,
            to,
            dry_run,
            message,
        } => {
            let layer = layer.as_deref().map(layer_path).transpose()?;
            let to: At = to.parse()?;
            let done = ctx.backend.rollback(
                &ns(&namespace)?,
                layer.as_ref(),
                to,
                &ctx.author,
                &message,
                dry_run,
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
        Command::Apply {
            file,
            format: fmt,
            message,
            dry_run,
        } => {
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
                let errors = d
                    .findings
                    .iter()
                    .filter(|f| f.severity == confstrata_core::Severity::Error)
                    .count();
                if errors > 0 {
                    return Err(ValidationFailed(errors).into());
                }
                return Ok(());
            }
            ctx.commit(&cs)
        }
        Command::Validate {
            namespace,
            file,
            format: fmt,
        } => {
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
            let errors = findings
                .iter()
                .filter(|f| f.severity == confstrata_core::Severity::Error)
                .count();
            if errors > 0 {
                return Err(ValidationFailed(errors).into());
            }
            Ok(())
        }
        Command::Import { dir, message } => {
            let mut cs = import_dir(&dir)?;
            cs.author = ctx.author.clone();
            cs.message = if message.is_empty() {
                format!("import {}", dir.display())
            } else {
                message
            };
            ctx.commit(&cs)
        }
        Command::Export {
            namespace,
            dir,
            format: fmt,
            at,
        } => ctx.export(&ns(&namespace)?, &dir, fmt.parse()?, at_of(&at)?),
        Command::Compact {
            keep_versions,
            keep_days,
        } => {
            let r = ctx.backend.apply_retention(&RetentionPolicy {
                keep_versions,
                keep_days,
            })?;
            structured(
                &r,
                ctx.output,
                &["OLDEST REVISION", "REMOVED VERSIONS"],
                || {
                    vec![vec![
                        r.oldest_revision.to_string(),
                        r.removed_versions.to_string(),
                    ]]
                },
            )
        }
        Command::Status => {
            let (v, headers, fields) = ctx.backend.status()?;
            structured(&v, ctx.output, &headers, || {
                vec![fields.iter().map(|f| cell(&v[*f])).collect()]
            })
        }
        Command::Library(c) => ctx.library(c),
        Command::Keys(c) => crate::security::keys(&ctx.backend, ctx.output, c),
        Command::Audit(c) => crate::security::audit(&ctx.backend, ctx.output, c),
        Command::Principal(c) => crate::security::principal(&ctx.backend, ctx.output, c),
        Command::Token(c) => crate::security::token(&ctx.backend, ctx.output, c),
        Command::Stats => stats(&ctx.backend, ctx.output),
    }
}

/// A validation run found errors (exit code 6).
#[derive(Debug)]
pub(crate) struct ValidationFailed(pub(crate) usize);

impl std::fmt::Display for ValidationFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "validation failed with {} error{}",
            self.0,
            if self.0 == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for ValidationFailed {}

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

    fn ns(&self, c: NsCommand) -> Result<()> {
        match c {
            NsCommand::Create {
                name,
                levels,
                matrix,
                description,
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

    fn diff(&self, a: DiffArgs) -> Result<()> {
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

    fn library(&self, c: crate::args::LibraryCommand) -> Result<()> {
        use crate::args::LibraryCommand;
        let name = ns(confstrata_engine::LIBRARY_NAMESPACE)?;
        match c {
            LibraryCommand::Put {
                file,
                format: fmt,
                message,
            } => {
                #[derive(serde::Deserialize)]
                #[serde(deny_unknown_fields)]
                struct File {
                    #[serde(default)]
                    schemas: serde_json::Map<String, Value>,
                    #[serde(default)]
                    validators: Vec<confstrata_core::ValidatorSpec>,
                }
                let (bytes, src) = read_input(&file)?;
                let fmt = pick_format(fmt.as_deref(), &src)?;
                let doc = format::parse(&bytes, fmt, &src, &Limits::default())?;
                let f: File = serde_json::from_value(Value::Object(doc))
                    .with_context(|| format!("{src}: not a library file"))?;
                let spec = NamespaceSpec {
                    name: name.clone(),
                    description: "the validation library shared by every namespace".into(),
                    levels: vec![confstrata_core::LevelTemplate::parse("defaults")?],
                    matrix: BTreeMap::new(),
                    validation: confstrata_core::Validation {
                        schema: (!f.schemas.is_empty())
                            .then(|| json!({"$defs": Value::Object(f.schemas)})),
                        validators: f.validators,
                        ..Default::default()
                    },
                };
                let cs = ChangeSet {
                    author: self.author.clone(),
                    message: if message.is_empty() {
                        "update the validation library".into()
                    } else {
                        message
                    },
                    ops: vec![Op::PutNamespace {
                        spec,
                        expect_revision: None,
                    }],
                };
                self.commit(&cs)
            }
            LibraryCommand::Show => {
                let user = match self.backend.namespace(&name, At::Latest) {
                    Ok(r) => Some(r.spec.validation),
                    Err(e) if crate::backend::is(&e, confstrata_core::ErrorKind::NotFound) => None,
                    Err(e) => return Err(e),
                };
                let mut rows = Vec::new();
                for (n, v) in confstrata_engine::schema_library() {
                    rows.push(vec![
                        "schema".into(),
                        format!("confstrata:{n}"),
                        "built-in".into(),
                        v.get("description")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .into(),
                    ]);
                }
                if let Some(v) = &user {
                    if let Some(defs) = v
                        .schema
                        .as_ref()
                        .and_then(|s| s.get("$defs"))
                        .and_then(Value::as_object)
                    {
                        for (n, s) in defs {
                            rows.push(vec![
                                "schema".into(),
                                format!("confstrata:{n}"),
                                "user".into(),
                                s.get("description")
                                    .and_then(Value::as_str)
                                    .unwrap_or_default()
                                    .into(),
                            ]);
                        }
                    }
                    for val in &v.validators {
                        rows.push(vec![
                            "validator".into(),
                            format!(
                                "{}({})",
                                val.name,
                                std::iter::once("value")
                                    .chain(val.params.iter().map(String::as_str))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                            "user".into(),
                            val.description.clone(),
                        ]);
                    }
                }
                let value = json!({
                    "built_in": confstrata_engine::schema_library().keys().collect::<Vec<_>>(),
                    "user": user,
                });
                structured(
                    &value,
                    self.output,
                    &["KIND", "NAME", "FROM", "DESCRIPTION"],
                    || rows,
                )
            }
        }
    }

    fn export(&self, namespace: &NamespaceName, dir: &Path, fmt: Format, at: At) -> Result<()> {
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

pub(crate) fn ns(s: &str) -> Result<NamespaceName> {
    Ok(NamespaceName::parse(s)?)
}

fn layer_path(s: &str) -> Result<LayerPath> {
    Ok(LayerPath::parse(s)?)
}

fn key_path(s: &str) -> Result<KeyPath> {
    Ok(KeyPath::parse(s)?)
}

fn at_of(a: &AtArg) -> Result<At> {
    opt_at(a.at.as_deref())
}

fn opt_at(s: Option<&str>) -> Result<At> {
    Ok(s.map(str::parse).transpose()?.unwrap_or(At::Latest))
}

fn contexts(parts: &[String]) -> Result<Context> {
    let mut ctx = Context::new();
    for p in parts {
        for (k, v) in parse_context(p)? {
            if ctx.insert(k.clone(), v).is_some() {
                bail!("context variable {k:?} is given twice");
            }
        }
    }
    Ok(ctx)
}

/// Splits `KEY=VALUE` at the first `=` outside a quoted key segment.
fn split_pair(pair: &str) -> Result<(&str, &str)> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in pair.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '=' if !quoted => return Ok((&pair[..i], &pair[i + 1..])),
            _ => {}
        }
    }
    bail!("{pair:?} is not of the form KEY=VALUE")
}

/// Reads a value as TOML (`50`, `true`, `"text"`, `[1, 2]`, `{ a = 1 }`), or
/// else as a plain string.
fn parse_value(text: &str) -> Value {
    let parsed: Result<toml::Table, _> = format!("v = {text}").parse();
    match parsed.ok().and_then(|mut t| t.remove("v")) {
        Some(toml::Value::Datetime(d)) => Value::String(d.to_string()),
        Some(v) => serde_json::to_value(v).unwrap_or_else(|_| Value::String(text.to_owned())),
        None => Value::String(text.to_owned()),
    }
}

fn read_input(file: &str) -> Result<(Vec<u8>, String)> {
    if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("cannot read stdin")?;
        Ok((buf, "<stdin>".into()))
    } else {
        let bytes = std::fs::read(file).with_context(|| format!("cannot read {file}"))?;
        Ok((bytes, file.to_owned()))
    }
}

fn pick_format(explicit: Option<&str>, name: &str) -> Result<Format> {
    Ok(match explicit {
        Some(f) => f.parse()?,
        None => Format::from_path(name).unwrap_or(Format::Toml),
    })
}

/// Parses a structured file (change set, namespace spec) through the same
/// reader as layers, so limits and error locations are the same.
fn parse_structured<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    fmt: Format,
    name: &str,
    limits: &Limits,
) -> Result<T> {
    if fmt == Format::Env {
        bail!("{name}: .env files hold layers only; use TOML, YAML or JSON");
    }
    let doc = format::parse(bytes, fmt, name, limits)?;
    serde_json::from_value(Value::Object(doc)).map_err(|e| anyhow!("{name}: {e}"))
}

fn parse_change_set(bytes: &[u8], fmt: Format, name: &str) -> Result<ChangeSet> {
    // A change set holds many documents: allow it the change set size limit.
    let l = Limits::default();
    let limits = Limits {
        max_document_bytes: l.max_change_set_bytes,
        max_depth: l.max_depth + 4,
        ..l
    };
    parse_structured(bytes, fmt, name, &limits)
}

fn parse_spec(bytes: &[u8], fmt: Format, name: &str) -> Result<NamespaceSpec> {
    parse_structured(bytes, fmt, name, &Limits::default())
}

/// Reads `dir/namespace.{toml,yaml,yml,json}` and every layer file under `dir/layers`.
fn import_dir(dir: &Path) -> Result<ChangeSet> {
    let spec_file = [
        "namespace.toml",
        "namespace.yaml",
        "namespace.yml",
        "namespace.json",
    ]
    .iter()
    .map(|f| dir.join(f))
    .find(|p| p.is_file())
    .ok_or_else(|| anyhow!("{} has no namespace.toml (or .yaml/.json)", dir.display()))?;
    let name = spec_file.display().to_string();
    let bytes = std::fs::read(&spec_file).with_context(|| format!("cannot read {name}"))?;
    let spec = parse_spec(&bytes, pick_format(None, &name)?, &name)?;
    let namespace = spec.name.clone();
    let mut ops = vec![Op::PutNamespace {
        spec,
        expect_revision: None,
    }];
    let root = dir.join("layers");
    let mut files = Vec::new();
    if root.is_dir() {
        collect_files(&root, &mut files)?;
    }
    files.sort();
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for file in files {
        let name = file.display().to_string();
        let Some(fmt) = Format::from_path(&name) else {
            bail!("{name}: unknown layer file type (use .toml, .yaml, .yml, .json or .env)");
        };
        let rel = file
            .strip_prefix(&root)
            .map_err(|e| anyhow!("{name}: {e}"))?;
        let rel = rel.to_string_lossy().replace('\\', "/");
        let layer = match rel.rsplit_once('.') {
            Some((stem, _)) => stem.to_owned(),
            None => rel.clone(),
        };
        let layer = LayerPath::parse(&layer)
            .with_context(|| format!("{name}: the file's path is not a valid layer path"))?;
        if let Some(other) = seen.insert(layer.to_string(), file.clone()) {
            bail!("{name} and {} both define layer {layer}", other.display());
        }
        let bytes = std::fs::read(&file).with_context(|| format!("cannot read {name}"))?;
        let document: Document = format::parse(&bytes, fmt, &name, &Limits::default())?;
        ops.push(Op::Put {
            namespace: namespace.clone(),
            layer,
            document,
            expect_revision: None,
        });
    }
    Ok(ChangeSet {
        author: String::new(),
        message: String::new(),
        ops,
    })
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)
        .with_context(|| format!("cannot read directory {}", dir.display()))?
    {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(&path, out)?;
        } else if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| !n.starts_with('.') || n == ".env")
        {
            out.push(path);
        }
    }
    Ok(())
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
    crate::output::emit(&text);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_toml_or_strings() {
        assert_eq!(parse_value("50"), json!(50));
        assert_eq!(parse_value("true"), json!(true));
        assert_eq!(parse_value("\"a b\""), json!("a b"));
        assert_eq!(parse_value("[1, 2]"), json!([1, 2]));
        assert_eq!(parse_value("{ a = 1 }"), json!({"a": 1}));
        assert_eq!(parse_value("db.example.com"), json!("db.example.com"));
        assert_eq!(
            parse_value("1979-05-27T07:32:00Z"),
            json!("1979-05-27T07:32:00Z")
        );
    }

    #[test]
    fn pairs_split_outside_quotes() {
        assert_eq!(split_pair("a.b=1").unwrap(), ("a.b", "1"));
        assert_eq!(split_pair("\"x=y\".z=2=3").unwrap(), ("\"x=y\".z", "2=3"));
        assert!(split_pair("nope").is_err());
    }
}
