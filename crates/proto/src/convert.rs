//! Conversions between the wire types and `confstrata-core`'s model
//! (feature `core`). The one place where wire messages become validated model
//! values and back, shared by the server and the client.
//!
//! Every conversion from the wire names the request field that was wrong
//! (`change_set.ops[2].set.key`), so a server can answer INVALID_ARGUMENT
//! with the offending field.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use confstrata_core::format::{self, Format};
use confstrata_core::serde_json::{self, Value};
use confstrata_core::{
    At, ChangeItem, ChangeSet, CommitInfo, Context, DiffEntry, DiffKind, Document, Error, KeyPath,
    LayerPath, LayerRecord, LayerVersion, Limits, NamespaceName, NamespaceRecord, NamespaceSpec,
    Op, Provenance, RevisionInfo, Timestamp,
};

use crate::v1;

/// A wire field that could not be turned into a model value.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// The field's path in the message, e.g. `change_set.ops[2].set.key`.
    pub field: String,
    /// Why (boxed: the model's error is large and this travels in `Result`s).
    pub error: Box<Error>,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.error)
    }
}

impl std::error::Error for FieldError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.error)
    }
}

/// A conversion result.
pub type FieldResult<T> = Result<T, FieldError>;

fn at_field<T>(field: &str, r: confstrata_core::Result<T>) -> FieldResult<T> {
    r.map_err(|error| FieldError {
        field: field.to_owned(),
        error: Box::new(error),
    })
}

fn missing(field: &str) -> FieldError {
    FieldError {
        field: field.to_owned(),
        error: Box::new(Error::invalid(field, "it is required")),
    }
}

fn required_json(field: &str, hint: &str) -> FieldError {
    FieldError {
        field: field.to_owned(),
        error: Box::new(Error::invalid(
            field,
            format!("it is required and was empty or absent; {hint}"),
        )),
    }
}

/// A namespace name from a field.
pub fn namespace_name(field: &str, text: &str) -> FieldResult<NamespaceName> {
    at_field(field, NamespaceName::parse(text))
}

/// A layer path from a field.
pub fn layer_path(field: &str, text: &str) -> FieldResult<LayerPath> {
    at_field(field, LayerPath::parse(text))
}

/// An optional layer path: empty means none.
pub fn optional_layer_path(field: &str, text: &str) -> FieldResult<Option<LayerPath>> {
    if text.is_empty() {
        Ok(None)
    } else {
        layer_path(field, text).map(Some)
    }
}

/// An optional namespace name: empty means none.
pub fn optional_namespace_name(field: &str, text: &str) -> FieldResult<Option<NamespaceName>> {
    if text.is_empty() {
        Ok(None)
    } else {
        namespace_name(field, text).map(Some)
    }
}

/// A key path from a field.
pub fn key_path(field: &str, text: &str) -> FieldResult<KeyPath> {
    at_field(field, KeyPath::parse(text))
}

/// A document from a JSON text field, checked against `limits` (size, depth).
///
/// The field is required: proto3 cannot tell an absent string from an
/// empty one, and taking either as `{}` would let a client that forgot
/// the field wipe a layer. An empty document is sent as `{}`.
pub fn document(field: &str, json: &str, limits: &Limits) -> FieldResult<Document> {
    if json.trim().is_empty() {
        return Err(required_json(field, "an empty document is `{}`"));
    }
    at_field(
        field,
        format::parse(json.as_bytes(), Format::Json, field, limits),
    )
}

/// Any JSON value from a text field, checked for depth and size like a document.
/// Required, like [`document`]: `null` is sent as `null`.
pub fn value(field: &str, json: &str, limits: &Limits) -> FieldResult<Value> {
    if json.trim().is_empty() {
        return Err(required_json(
            field,
            "send JSON text such as `\"text\"`, `1` or `null`",
        ));
    }
    let wrapped = format!("{{\"value\": {json}}}");
    let mut doc = document(field, &wrapped, limits).map_err(|mut e| {
        // Report positions in the caller's text, not in the wrapper.
        if let Error::Parse { line, column, .. } = &mut *e.error
            && *line == Some(1)
        {
            *column = column.map(|c| c.saturating_sub(10));
        }
        e
    })?;
    doc.remove("value").ok_or_else(|| missing(field))
}

/// Renders a value as compact JSON.
pub fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    // Serializing model values (maps with string keys, finite numbers) cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

/// A context from a wire map.
pub fn context(map: &HashMap<String, String>) -> Context {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// A context as a wire map.
pub fn context_to_wire(ctx: &Context) -> HashMap<String, String> {
    ctx.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// A timestamp on the wire.
pub fn timestamp(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.0.div_euclid(1000),
        nanos: i32::try_from(t.0.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

/// A timestamp from the wire.
pub fn timestamp_from_wire(field: &str, t: &prost_types::Timestamp) -> FieldResult<Timestamp> {
    if !(0..1_000_000_000).contains(&t.nanos) {
        return Err(FieldError {
            field: field.to_owned(),
            error: Box::new(Error::invalid(
                field,
                format!("nanos {} is outside 0..1e9", t.nanos),
            )),
        });
    }
    let ms = t
        .seconds
        .checked_mul(1000)
        .and_then(|s| s.checked_add(i64::from(t.nanos / 1_000_000)))
        .ok_or_else(|| FieldError {
            field: field.to_owned(),
            error: Box::new(Error::invalid(field, "the time is out of range")),
        })?;
    Ok(Timestamp(ms))
}

/// Which state to read; unset means the latest.
pub fn read_at(field: &str, at: Option<&v1::ReadAt>) -> FieldResult<At> {
    match at.and_then(|a| a.at.as_ref()) {
        None => Ok(At::Latest),
        Some(v1::read_at::At::Revision(r)) => Ok(At::Revision(*r)),
        Some(v1::read_at::At::Time(t)) => {
            timestamp_from_wire(&format!("{field}.time"), t).map(At::Time)
        }
    }
}

/// An [`At`] on the wire.
pub fn read_at_to_wire(at: At) -> Option<v1::ReadAt> {
    match at {
        At::Latest => None,
        At::Revision(r) => Some(v1::ReadAt {
            at: Some(v1::read_at::At::Revision(r)),
        }),
        At::Time(t) => Some(v1::ReadAt {
            at: Some(v1::read_at::At::Time(timestamp(t))),
        }),
    }
}

impl From<&NamespaceSpec> for v1::NamespaceSpec {
    fn from(s: &NamespaceSpec) -> Self {
        v1::NamespaceSpec {
            name: s.name.to_string(),
            description: s.description.clone(),
            levels: s.levels.iter().map(ToString::to_string).collect(),
            matrix: s
                .matrix
                .iter()
                .map(|(k, v)| (k.clone(), v1::MatrixValues { values: v.clone() }))
                .collect(),
            validation_json: if s.validation.is_empty() {
                String::new()
            } else {
                serde_json::to_string(&s.validation).unwrap_or_default()
            },
            template: s.template.as_ref().map(|t| v1::TemplateOrigin {
                name: t.name.clone(),
                version: t.version,
                parameters_json: Value::Object(t.parameters.clone()).to_string(),
            }),
            imports: s.imports.iter().map(ToString::to_string).collect(),
            generators: s
                .generators
                .iter()
                .map(|g| v1::Generator {
                    id: g.id.clone(),
                    level: g.level.clone(),
                    description: g.description.clone(),
                    reads: g.reads.clone(),
                    script: g.script.clone(),
                })
                .collect(),
        }
    }
}

/// A validated namespace declaration from the wire.
pub fn namespace_spec(field: &str, s: &v1::NamespaceSpec) -> FieldResult<NamespaceSpec> {
    let name = namespace_name(&format!("{field}.name"), &s.name)?;
    let mut levels = Vec::with_capacity(s.levels.len());
    for (i, l) in s.levels.iter().enumerate() {
        levels.push(at_field(
            &format!("{field}.levels[{i}]"),
            confstrata_core::LevelTemplate::parse(l),
        )?);
    }
    let matrix: BTreeMap<String, Vec<String>> = s
        .matrix
        .iter()
        .map(|(k, v)| (k.clone(), v.values.clone()))
        .collect();
    let validation = if s.validation_json.trim().is_empty() {
        confstrata_core::Validation::default()
    } else {
        at_field(
            &format!("{field}.validation_json"),
            serde_json::from_str(&s.validation_json).map_err(|e| {
                confstrata_core::Error::invalid(
                    "validation",
                    format!("{e} (line {}, column {})", e.line(), e.column()),
                )
            }),
        )?
    };
    let template = match &s.template {
        None => None,
        Some(t) => {
            let parameters = match serde_json::from_str(&t.parameters_json) {
                Ok(Value::Object(m)) => m,
                Ok(_) => {
                    return Err(FieldError {
                        field: format!("{field}.template.parameters_json"),
                        error: Box::new(Error::invalid("parameters", "not a JSON object")),
                    });
                }
                Err(e) => {
                    return Err(FieldError {
                        field: format!("{field}.template.parameters_json"),
                        error: Box::new(Error::invalid("parameters", e.to_string())),
                    });
                }
            };
            Some(confstrata_core::TemplateOrigin {
                name: t.name.clone(),
                version: t.version,
                parameters,
            })
        }
    };
    let imports = s
        .imports
        .iter()
        .enumerate()
        .map(|(i, n)| namespace_name(&format!("{field}.imports[{i}]"), n))
        .collect::<FieldResult<Vec<_>>>()?;
    let spec = NamespaceSpec {
        name,
        description: s.description.clone(),
        levels,
        matrix,
        validation,
        template,
        imports,
        generators: s
            .generators
            .iter()
            .map(|g| confstrata_core::GeneratorSpec {
                id: g.id.clone(),
                level: g.level.clone(),
                description: g.description.clone(),
                reads: g.reads.clone(),
                script: g.script.clone(),
            })
            .collect(),
    };
    at_field(field, spec.validate())?;
    Ok(spec)
}

impl From<&NamespaceRecord> for v1::Namespace {
    fn from(r: &NamespaceRecord) -> Self {
        v1::Namespace {
            spec: Some((&r.spec).into()),
            revision: r.revision,
        }
    }
}

/// A namespace record from the wire (what a server sent).
pub fn namespace_record(field: &str, n: &v1::Namespace) -> FieldResult<NamespaceRecord> {
    let spec = n
        .spec
        .as_ref()
        .ok_or_else(|| missing(&format!("{field}.spec")))?;
    Ok(NamespaceRecord {
        spec: namespace_spec(&format!("{field}.spec"), spec)?,
        revision: n.revision,
    })
}

impl From<&LayerRecord> for v1::Layer {
    fn from(r: &LayerRecord) -> Self {
        v1::Layer {
            namespace: r.namespace.to_string(),
            layer: r.layer.to_string(),
            document_json: to_json(&r.document),
            revision: r.revision,
            sealed_keys: r.sealed_keys.iter().map(ToString::to_string).collect(),
        }
    }
}

/// A layer record from the wire.
pub fn layer_record(field: &str, l: &v1::Layer) -> FieldResult<LayerRecord> {
    Ok(LayerRecord {
        namespace: namespace_name(&format!("{field}.namespace"), &l.namespace)?,
        layer: layer_path(&format!("{field}.layer"), &l.layer)?,
        document: document(
            &format!("{field}.document_json"),
            &l.document_json,
            &unlimited(),
        )?,
        revision: l.revision,
        sealed_keys: l
            .sealed_keys
            .iter()
            .enumerate()
            .map(|(i, k)| key_path(&format!("{field}.sealed_keys[{i}]"), k))
            .collect::<FieldResult<_>>()?,
    })
}

/// A list, each element converted with its index in the field name.
pub fn list<W, T>(
    field: &str,
    items: &[W],
    f: impl Fn(&str, &W) -> FieldResult<T>,
) -> FieldResult<Vec<T>> {
    items
        .iter()
        .enumerate()
        .map(|(i, w)| f(&format!("{field}[{i}]"), w))
        .collect()
}

/// Limits for reading what a server sent: the server already enforced its
/// own when the data was written, so only the parser's recursion is guarded.
pub fn unlimited() -> Limits {
    Limits {
        max_document_bytes: usize::MAX / 8,
        max_change_set_bytes: usize::MAX / 8,
        max_depth: 256,
    }
}

impl From<&RevisionInfo> for v1::RevisionInfo {
    fn from(r: &RevisionInfo) -> Self {
        v1::RevisionInfo {
            revision: r.revision,
            time: Some(timestamp(r.time)),
            author: r.author.clone(),
            message: r.message.clone(),
        }
    }
}

impl From<&confstrata_core::DeclarationVersion> for v1::NamespaceVersion {
    fn from(v: &confstrata_core::DeclarationVersion) -> Self {
        v1::NamespaceVersion {
            info: Some((&v.info).into()),
            spec: v.spec.as_ref().map(Into::into),
        }
    }
}

/// A declaration version from the wire (what a server sent).
pub fn declaration_version(
    field: &str,
    v: &v1::NamespaceVersion,
) -> FieldResult<confstrata_core::DeclarationVersion> {
    let info = v
        .info
        .as_ref()
        .ok_or_else(|| missing(&format!("{field}.info")))?;
    Ok(confstrata_core::DeclarationVersion {
        info: revision_info(&format!("{field}.info"), info)?,
        spec: v
            .spec
            .as_ref()
            .map(|s| namespace_spec(&format!("{field}.spec"), s))
            .transpose()?,
    })
}

/// Revision info from the wire.
pub fn revision_info(field: &str, r: &v1::RevisionInfo) -> FieldResult<RevisionInfo> {
    Ok(RevisionInfo {
        revision: r.revision,
        time: match &r.time {
            Some(t) => timestamp_from_wire(&format!("{field}.time"), t)?,
            None => Timestamp(0),
        },
        author: r.author.clone(),
        message: r.message.clone(),
    })
}

impl From<CommitInfo> for v1::CommitInfo {
    fn from(c: CommitInfo) -> Self {
        v1::CommitInfo {
            revision: c.revision,
            time: Some(timestamp(c.time)),
        }
    }
}

/// Commit info from the wire.
pub fn commit_info(field: &str, c: &v1::CommitInfo) -> FieldResult<CommitInfo> {
    Ok(CommitInfo {
        revision: c.revision,
        time: match &c.time {
            Some(t) => timestamp_from_wire(&format!("{field}.time"), t)?,
            None => Timestamp(0),
        },
    })
}

impl From<&Provenance> for v1::Provenance {
    fn from(p: &Provenance) -> Self {
        v1::Provenance {
            layer: p.layer.to_string(),
            revision: p.revision,
            namespace: p
                .namespace
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        }
    }
}

/// Provenance from the wire.
pub fn provenance(field: &str, p: &v1::Provenance) -> FieldResult<Provenance> {
    Ok(Provenance {
        namespace: optional_namespace(&format!("{field}.namespace"), &p.namespace)?,
        layer: layer_path(&format!("{field}.layer"), &p.layer)?,
        revision: p.revision,
    })
}

/// A namespace name that may be absent (empty text).
pub fn optional_namespace(field: &str, name: &str) -> FieldResult<Option<NamespaceName>> {
    if name.is_empty() {
        Ok(None)
    } else {
        namespace_name(field, name).map(Some)
    }
}

impl From<&confstrata_core::Finding> for v1::Finding {
    fn from(f: &confstrata_core::Finding) -> Self {
        v1::Finding {
            namespace: f.namespace.clone(),
            stage: f.stage.as_str().to_owned(),
            rule: f.rule.clone(),
            severity: match f.severity {
                confstrata_core::Severity::Error => "error",
                confstrata_core::Severity::Warning => "warning",
            }
            .to_owned(),
            context: f
                .context
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            key: f.key.clone().unwrap_or_default(),
            message: f.message.clone(),
        }
    }
}

/// A validation finding from the wire (what a server sent).
pub fn finding(field: &str, f: &v1::Finding) -> FieldResult<confstrata_core::Finding> {
    let severity = match f.severity.as_str() {
        "error" => confstrata_core::Severity::Error,
        "warning" => confstrata_core::Severity::Warning,
        other => {
            return Err(FieldError {
                field: format!("{field}.severity"),
                error: Box::new(confstrata_core::Error::invalid(
                    "severity",
                    format!("{other:?} is neither \"error\" nor \"warning\""),
                )),
            });
        }
    };
    let stage = f.stage.parse().map_err(|reason: String| FieldError {
        field: format!("{field}.stage"),
        error: Box::new(confstrata_core::Error::invalid("stage", reason)),
    })?;
    Ok(confstrata_core::Finding {
        namespace: f.namespace.clone(),
        stage,
        rule: f.rule.clone(),
        severity,
        context: f
            .context
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        key: (!f.key.is_empty()).then(|| f.key.clone()),
        message: f.message.clone(),
    })
}

impl From<&DiffEntry> for v1::DiffEntry {
    fn from(d: &DiffEntry) -> Self {
        v1::DiffEntry {
            key: d.key.to_string(),
            kind: match d.kind {
                DiffKind::Added => v1::diff_entry::Kind::Added,
                DiffKind::Removed => v1::diff_entry::Kind::Removed,
                DiffKind::Changed => v1::diff_entry::Kind::Changed,
            } as i32,
            old_json: d.old.as_ref().map(to_json).unwrap_or_default(),
            new_json: d.new.as_ref().map(to_json).unwrap_or_default(),
        }
    }
}

/// A diff entry from the wire.
pub fn diff_entry(field: &str, d: &v1::DiffEntry) -> FieldResult<DiffEntry> {
    let kind = match v1::diff_entry::Kind::try_from(d.kind) {
        Ok(v1::diff_entry::Kind::Added) => DiffKind::Added,
        Ok(v1::diff_entry::Kind::Removed) => DiffKind::Removed,
        Ok(v1::diff_entry::Kind::Changed) => DiffKind::Changed,
        _ => {
            return Err(FieldError {
                field: format!("{field}.kind"),
                error: Box::new(Error::invalid(
                    "diff kind",
                    format!("unknown kind {}", d.kind),
                )),
            });
        }
    };
    let opt = |name: &str, text: &str| -> FieldResult<Option<Value>> {
        if text.is_empty() {
            Ok(None)
        } else {
            value(&format!("{field}.{name}"), text, &unlimited()).map(Some)
        }
    };
    Ok(DiffEntry {
        key: key_path(&format!("{field}.key"), &d.key)?,
        kind,
        old: opt("old_json", &d.old_json)?,
        new: opt("new_json", &d.new_json)?,
    })
}

impl From<&LayerVersion> for v1::LayerVersion {
    fn from(v: &LayerVersion) -> Self {
        v1::LayerVersion {
            info: Some((&v.info).into()),
            namespace: v.namespace.to_string(),
            layer: v.layer.to_string(),
            document_json: v.document.as_ref().map(to_json).unwrap_or_default(),
            deleted: v.document.is_none(),
            partial: v.partial,
        }
    }
}

/// A layer version from the wire.
pub fn layer_version(field: &str, v: &v1::LayerVersion) -> FieldResult<LayerVersion> {
    let info = v
        .info
        .as_ref()
        .ok_or_else(|| missing(&format!("{field}.info")))?;
    Ok(LayerVersion {
        info: revision_info(&format!("{field}.info"), info)?,
        namespace: namespace_name(&format!("{field}.namespace"), &v.namespace)?,
        layer: layer_path(&format!("{field}.layer"), &v.layer)?,
        document: if v.deleted {
            None
        } else {
            Some(document(
                &format!("{field}.document_json"),
                &v.document_json,
                &unlimited(),
            )?)
        },
        partial: v.partial,
    })
}

impl From<&ChangeItem> for v1::ChangeItem {
    fn from(c: &ChangeItem) -> Self {
        v1::ChangeItem {
            namespace: c.namespace.to_string(),
            layer: c
                .layer
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            deleted: c.deleted,
        }
    }
}

impl From<&ChangeSet> for v1::ChangeSet {
    fn from(cs: &ChangeSet) -> Self {
        let ops = cs
            .ops
            .iter()
            .map(|op| {
                let (op, expect_revision) = match op {
                    Op::PutNamespace {
                        spec,
                        expect_revision,
                    } => (
                        v1::operation::Op::PutNamespace(v1::PutNamespaceOp {
                            spec: Some(spec.into()),
                        }),
                        *expect_revision,
                    ),
                    Op::Put {
                        namespace,
                        layer,
                        document,
                        expect_revision,
                    } => (
                        v1::operation::Op::Put(v1::PutLayerOp {
                            namespace: namespace.to_string(),
                            layer: layer.to_string(),
                            document_json: to_json(document),
                        }),
                        *expect_revision,
                    ),
                    Op::Set {
                        namespace,
                        layer,
                        key,
                        value,
                        secret,
                        expect_revision,
                    } => (
                        v1::operation::Op::Set(v1::SetKeyOp {
                            namespace: namespace.to_string(),
                            layer: layer.to_string(),
                            key: key.to_string(),
                            value_json: to_json(value),
                            secret: *secret,
                        }),
                        *expect_revision,
                    ),
                    Op::Unset {
                        namespace,
                        layer,
                        key,
                        expect_revision,
                    } => (
                        v1::operation::Op::Unset(v1::UnsetKeyOp {
                            namespace: namespace.to_string(),
                            layer: layer.to_string(),
                            key: key.to_string(),
                        }),
                        *expect_revision,
                    ),
                    Op::Delete {
                        namespace,
                        layer,
                        expect_revision,
                    } => (
                        v1::operation::Op::Delete(v1::DeleteLayerOp {
                            namespace: namespace.to_string(),
                            layer: layer.to_string(),
                        }),
                        *expect_revision,
                    ),
                    Op::DeleteNamespace {
                        namespace,
                        expect_revision,
                    } => (
                        v1::operation::Op::DeleteNamespace(v1::DeleteNamespaceOp {
                            namespace: namespace.to_string(),
                        }),
                        *expect_revision,
                    ),
                };
                v1::Operation {
                    op: Some(op),
                    expect_revision,
                }
            })
            .collect();
        v1::ChangeSet {
            author: cs.author.clone(),
            message: cs.message.clone(),
            ops,
        }
    }
}

/// A change set from the wire, every field validated; `field` is the path
/// of the change set in its request (e.g. `change_set`).
pub fn change_set(field: &str, cs: &v1::ChangeSet, limits: &Limits) -> FieldResult<ChangeSet> {
    let mut ops = Vec::with_capacity(cs.ops.len());
    for (i, op) in cs.ops.iter().enumerate() {
        let at = format!("{field}.ops[{i}]");
        let expect_revision = op.expect_revision;
        let f = |name: &str, kind: &str| format!("{at}.{kind}.{name}");
        let converted = match op.op.as_ref().ok_or_else(|| missing(&format!("{at}.op")))? {
            v1::operation::Op::PutNamespace(p) => Op::PutNamespace {
                spec: namespace_spec(
                    &f("spec", "put_namespace"),
                    p.spec
                        .as_ref()
                        .ok_or_else(|| missing(&f("spec", "put_namespace")))?,
                )?,
                expect_revision,
            },
            v1::operation::Op::Put(p) => Op::Put {
                namespace: namespace_name(&f("namespace", "put"), &p.namespace)?,
                layer: layer_path(&f("layer", "put"), &p.layer)?,
                document: document(&f("document_json", "put"), &p.document_json, limits)?,
                expect_revision,
            },
            v1::operation::Op::Set(p) => Op::Set {
                namespace: namespace_name(&f("namespace", "set"), &p.namespace)?,
                layer: layer_path(&f("layer", "set"), &p.layer)?,
                key: key_path(&f("key", "set"), &p.key)?,
                value: value(&f("value_json", "set"), &p.value_json, limits)?,
                secret: p.secret,
                expect_revision,
            },
            v1::operation::Op::Unset(p) => Op::Unset {
                namespace: namespace_name(&f("namespace", "unset"), &p.namespace)?,
                layer: layer_path(&f("layer", "unset"), &p.layer)?,
                key: key_path(&f("key", "unset"), &p.key)?,
                expect_revision,
            },
            v1::operation::Op::Delete(p) => Op::Delete {
                namespace: namespace_name(&f("namespace", "delete"), &p.namespace)?,
                layer: layer_path(&f("layer", "delete"), &p.layer)?,
                expect_revision,
            },
            v1::operation::Op::DeleteNamespace(p) => Op::DeleteNamespace {
                namespace: namespace_name(&f("namespace", "delete_namespace"), &p.namespace)?,
                expect_revision,
            },
        };
        ops.push(converted);
    }
    Ok(ChangeSet {
        author: cs.author.clone(),
        message: cs.message.clone(),
        ops,
    })
}

mod view;
pub use view::*;
mod access;
pub use access::*;

#[cfg(test)]
mod tests;
