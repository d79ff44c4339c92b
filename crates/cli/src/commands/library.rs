//! `library put | show`: the user schema and validator library.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use confstrata_core::format::{self};
use confstrata_core::{At, ChangeSet, Limits, NamespaceSpec, Op};
use serde_json::{Value, json};

use crate::input::{ns, pick_format, read_input};
use crate::output::structured;

use super::Ctx;

impl Ctx {
    pub(super) fn library(&self, c: crate::args::LibraryCommand) -> Result<()> {
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
                    template: None,
                    imports: Vec::new(),
                    generators: Vec::new(),
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
                    Err(e) if crate::errors::is(&e, confstrata_core::ErrorKind::NotFound) => None,
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
}
