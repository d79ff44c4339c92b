//! The answer types of `confstrata_core::view`, both ways: what a server
//! sends (`From<&view::X> for v1::...`) and what a client reads back
//! (`fn x(&v1::...) -> FieldResult<view::X>`, naming the field that was wrong).

use std::collections::BTreeMap;

use confstrata_core::view::{
    AuditVerification, BackupStatus, BindingInfo, DryRun, ExplainView, KeyInfo, LayerDiff,
    LayerStatus, MasterKeyRotation, PrincipalInfo, PrincipalKind, ResolvedView, ServerStatus,
    TokenInfo, WatchEvent,
};
use confstrata_core::{
    ChangeItem, Context, Error, ExplainEntry, Explanation, KeyPath, NamespaceName, Provenance,
};

use super::{
    FieldError, FieldResult, diff_entry, document, finding, key_path, layer_path, list,
    namespace_name, optional_layer_path, provenance, revision_info, to_json, unlimited, value,
};
use crate::v1;

impl From<&LayerDiff> for v1::LayerDiff {
    fn from(d: &LayerDiff) -> Self {
        v1::LayerDiff {
            namespace: d.namespace.to_string(),
            layer: d.layer.to_string(),
            status: match d.status {
                LayerStatus::Created => v1::layer_diff::Status::Created,
                LayerStatus::Deleted => v1::layer_diff::Status::Deleted,
                LayerStatus::Changed => v1::layer_diff::Status::Changed,
            } as i32,
            changes: d.changes.iter().map(Into::into).collect(),
        }
    }
}

/// A layer diff from the wire.
pub fn layer_diff(field: &str, d: &v1::LayerDiff) -> FieldResult<LayerDiff> {
    let status = match v1::layer_diff::Status::try_from(d.status) {
        Ok(v1::layer_diff::Status::Created) => LayerStatus::Created,
        Ok(v1::layer_diff::Status::Deleted) => LayerStatus::Deleted,
        Ok(v1::layer_diff::Status::Changed) => LayerStatus::Changed,
        _ => {
            return Err(FieldError {
                field: format!("{field}.status"),
                error: Box::new(Error::invalid(
                    "layer diff status",
                    format!("unknown status {}", d.status),
                )),
            });
        }
    };
    Ok(LayerDiff {
        namespace: namespace_name(&format!("{field}.namespace"), &d.namespace)?,
        layer: layer_path(&format!("{field}.layer"), &d.layer)?,
        status,
        changes: list(&format!("{field}.changes"), &d.changes, diff_entry)?,
    })
}

/// A Resolve answer: the document as JSON text (a cached view's, as it is
/// kept), its layers, and each leaf's provenance when asked for.
pub fn resolve_response(
    revision: u64,
    document_json: String,
    layers: &[Provenance],
    provenance: Option<&[(KeyPath, Provenance)]>,
    partial: bool,
) -> v1::ResolveResponse {
    v1::ResolveResponse {
        revision,
        partial,
        document_json,
        layers: layers.iter().map(Into::into).collect(),
        provenance: provenance
            .unwrap_or_default()
            .iter()
            .map(|(k, p)| (k.to_string(), p.into()))
            .collect(),
    }
}

/// A Resolve answer from the wire, for `namespace` and `context` (what was
/// asked). The provenance map is put in key order, as the engine returns it.
pub fn resolved(
    namespace: &NamespaceName,
    context: &Context,
    r: &v1::ResolveResponse,
) -> FieldResult<ResolvedView> {
    let mut provenance = r
        .provenance
        .iter()
        .map(|(k, p)| {
            let field = format!("provenance[{k:?}]");
            Ok((key_path(&field, k)?, self::provenance_of(&field, p)?))
        })
        .collect::<FieldResult<Vec<(KeyPath, Provenance)>>>()?;
    provenance.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(ResolvedView {
        namespace: namespace.clone(),
        context: context.clone(),
        revision: r.revision,
        layers: list("layers", &r.layers, provenance_of)?,
        document: document("document_json", &r.document_json, &unlimited())?,
        provenance,
        partial: r.partial,
    })
}

fn provenance_of(field: &str, p: &v1::Provenance) -> FieldResult<Provenance> {
    provenance(field, p)
}

impl From<&ExplainView> for v1::ExplainResponse {
    fn from(x: &ExplainView) -> Self {
        v1::ExplainResponse {
            key: x.explanation.key.to_string(),
            value_json: x
                .explanation
                .value
                .as_ref()
                .map(to_json)
                .unwrap_or_default(),
            entries: x
                .explanation
                .entries
                .iter()
                .map(|en| v1::ExplainEntry {
                    namespace: en
                        .namespace
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    layer: en.layer.to_string(),
                    revision: en.revision,
                    value_json: en.value.as_ref().map(to_json).unwrap_or_default(),
                    deleted: en.deleted,
                    winner: en.winner,
                    change: x.changes.get(&en.revision).map(Into::into),
                    origin: en.origin.as_ref().map(|o| v1::ExplainOrigin {
                        template: o.template.clone().unwrap_or_default(),
                        generator: o.generator.clone().unwrap_or_default(),
                        template_value_json: o
                            .template_value
                            .as_ref()
                            .map(to_json)
                            .unwrap_or_default(),
                        overridden: o.overridden,
                    }),
                })
                .collect(),
        }
    }
}

/// An optional JSON value: empty text means none.
fn optional_value(
    field: &str,
    json: &str,
) -> FieldResult<Option<confstrata_core::serde_json::Value>> {
    if json.is_empty() {
        Ok(None)
    } else {
        value(field, json, &unlimited()).map(Some)
    }
}

/// An Explain answer from the wire. The layer the resolved value came from
/// is the winning entry; the change behind each entry's revision is
/// collected by revision, as the engine does.
pub fn explained(r: &v1::ExplainResponse) -> FieldResult<ExplainView> {
    let mut changes = BTreeMap::new();
    let mut entries = Vec::with_capacity(r.entries.len());
    for (i, e) in r.entries.iter().enumerate() {
        let field = format!("entries[{i}]");
        let layer = layer_path(&format!("{field}.layer"), &e.layer)?;
        if let Some(change) = &e.change {
            changes.insert(
                e.revision,
                revision_info(&format!("{field}.change"), change)?,
            );
        }
        entries.push(ExplainEntry {
            namespace: super::optional_namespace(&format!("{field}.namespace"), &e.namespace)?,
            layer,
            revision: e.revision,
            value: if e.deleted {
                None
            } else {
                optional_value(&format!("{field}.value_json"), &e.value_json)?
            },
            deleted: e.deleted,
            winner: e.winner,
            origin: e
                .origin
                .as_ref()
                .map(|o| {
                    Ok::<_, _>(confstrata_core::EntryOrigin {
                        template: (!o.template.is_empty()).then(|| o.template.clone()),
                        generator: (!o.generator.is_empty()).then(|| o.generator.clone()),
                        template_value: optional_value(
                            &format!("{field}.origin.template_value_json"),
                            &o.template_value_json,
                        )?,
                        overridden: o.overridden,
                    })
                })
                .transpose()?,
        });
    }
    let value = optional_value("value_json", &r.value_json)?;
    let from = value.as_ref().and_then(|_| {
        entries.iter().find(|e| e.winner).map(|e| Provenance {
            namespace: e.namespace.clone(),
            layer: e.layer.clone(),
            revision: e.revision,
        })
    });
    Ok(ExplainView {
        explanation: Explanation {
            key: key_path("key", &r.key)?,
            value,
            from,
            entries,
        },
        changes,
    })
}

impl From<&DryRun> for v1::DryRunResponse {
    fn from(d: &DryRun) -> Self {
        v1::DryRunResponse {
            revision: d.revision,
            layers: d.layers.iter().map(Into::into).collect(),
            namespaces: d.namespaces.iter().map(ToString::to_string).collect(),
            findings: d.findings.iter().map(Into::into).collect(),
        }
    }
}

/// A DryRun answer from the wire.
pub fn dry_run(r: &v1::DryRunResponse) -> FieldResult<DryRun> {
    Ok(DryRun {
        revision: r.revision,
        layers: list("layers", &r.layers, layer_diff)?,
        namespaces: list("namespaces", &r.namespaces, |f, n| namespace_name(f, n))?,
        findings: list("findings", &r.findings, finding)?,
    })
}

/// A change item from the wire (a watch event's).
pub fn change_item(field: &str, c: &v1::ChangeItem) -> FieldResult<ChangeItem> {
    Ok(ChangeItem {
        namespace: namespace_name(&format!("{field}.namespace"), &c.namespace)?,
        layer: optional_layer_path(&format!("{field}.layer"), &c.layer)?,
        deleted: c.deleted,
    })
}

impl From<PrincipalKind> for v1::PrincipalKind {
    fn from(kind: PrincipalKind) -> Self {
        match kind {
            PrincipalKind::User => v1::PrincipalKind::User,
            PrincipalKind::Service => v1::PrincipalKind::Service,
        }
    }
}

/// A principal kind from the wire; unspecified is a user.
pub fn principal_kind(field: &str, kind: i32) -> FieldResult<PrincipalKind> {
    match v1::PrincipalKind::try_from(kind) {
        Ok(v1::PrincipalKind::Unspecified | v1::PrincipalKind::User) => Ok(PrincipalKind::User),
        Ok(v1::PrincipalKind::Service) => Ok(PrincipalKind::Service),
        Err(_) => Err(FieldError {
            field: field.to_owned(),
            error: Box::new(Error::invalid(
                "principal kind",
                format!(
                    "{kind} is not a PrincipalKind; use PRINCIPAL_KIND_USER or PRINCIPAL_KIND_SERVICE"
                ),
            )),
        }),
    }
}

impl From<&PrincipalInfo> for v1::Principal {
    fn from(p: &PrincipalInfo) -> Self {
        v1::Principal {
            id: p.id.clone(),
            name: p.name.clone(),
            kind: v1::PrincipalKind::from(p.kind) as i32,
            roles: p
                .roles
                .iter()
                .filter(|b| b.on.is_none())
                .map(|b| b.role.clone())
                .collect(),
            bindings: p.roles.iter().map(Into::into).collect(),
            tokens: p
                .tokens
                .iter()
                .map(|t| v1::TokenSummary {
                    hash_prefix: t.hash.clone(),
                    label: t.label.clone(),
                    revoked: t.revoked,
                })
                .collect(),
            revoked: p.revoked,
        }
    }
}

/// A principal from the wire.
pub fn principal(field: &str, p: &v1::Principal) -> FieldResult<PrincipalInfo> {
    Ok(PrincipalInfo {
        id: p.id.clone(),
        name: p.name.clone(),
        kind: principal_kind(&format!("{field}.kind"), p.kind)?,
        // A server before scoped bindings sent names only.
        roles: if p.bindings.is_empty() {
            p.roles
                .iter()
                .map(|r| BindingInfo {
                    role: r.clone(),
                    on: None,
                })
                .collect()
        } else {
            p.bindings.iter().map(Into::into).collect()
        },
        tokens: p
            .tokens
            .iter()
            .map(|t| TokenInfo {
                hash: t.hash_prefix.clone(),
                label: t.label.clone(),
                revoked: t.revoked,
            })
            .collect(),
        revoked: p.revoked,
    })
}

impl From<&MasterKeyRotation> for v1::RotateMasterKeyResponse {
    fn from(r: &MasterKeyRotation) -> Self {
        v1::RotateMasterKeyResponse {
            from_key_id: r.from.clone(),
            to_key_id: r.to.clone(),
            data_keys: u32::try_from(r.data_keys).unwrap_or(u32::MAX),
            audit_keys_kept: u32::try_from(r.audit_keys_kept).unwrap_or(u32::MAX),
            audit_key_id: r.audit_key.clone(),
        }
    }
}

impl From<v1::RotateMasterKeyResponse> for MasterKeyRotation {
    fn from(r: v1::RotateMasterKeyResponse) -> Self {
        MasterKeyRotation {
            from: r.from_key_id,
            to: r.to_key_id,
            data_keys: r.data_keys as usize,
            audit_keys_kept: r.audit_keys_kept as usize,
            audit_key: r.audit_key_id,
        }
    }
}

impl From<&KeyInfo> for v1::DataKey {
    fn from(k: &KeyInfo) -> Self {
        v1::DataKey {
            id: k.id.clone(),
            current: k.current,
        }
    }
}

impl From<&v1::DataKey> for KeyInfo {
    fn from(k: &v1::DataKey) -> Self {
        KeyInfo {
            id: k.id.clone(),
            current: k.current,
        }
    }
}

impl From<AuditVerification> for v1::VerifyAuditResponse {
    fn from(v: AuditVerification) -> Self {
        v1::VerifyAuditResponse {
            records: v.records,
            last_seq: v.last_seq,
        }
    }
}

impl From<&v1::VerifyAuditResponse> for AuditVerification {
    fn from(v: &v1::VerifyAuditResponse) -> Self {
        AuditVerification {
            records: v.records,
            last_seq: v.last_seq,
        }
    }
}

impl From<&ServerStatus> for v1::GetStatusResponse {
    fn from(s: &ServerStatus) -> Self {
        v1::GetStatusResponse {
            revision: s.revision,
            oldest_revision: s.oldest_revision,
            namespaces: s.namespaces,
            version: s.version.clone(),
            store_bytes: s.store_bytes,
            store_free_bytes: s.store_free_bytes,
            backup_target: s.backup_target.clone(),
            newest_backup: s.newest_backup.as_ref().map(Into::into),
        }
    }
}

impl From<&BackupStatus> for v1::BackupStatus {
    fn from(b: &BackupStatus) -> Self {
        v1::BackupStatus {
            id: b.id.clone(),
            revision: b.revision,
            created_ms: b.created.0,
            age_seconds: b.age_seconds,
        }
    }
}

impl From<&v1::GetStatusResponse> for ServerStatus {
    fn from(s: &v1::GetStatusResponse) -> Self {
        ServerStatus {
            revision: s.revision,
            oldest_revision: s.oldest_revision,
            namespaces: s.namespaces,
            version: s.version.clone(),
            store_bytes: s.store_bytes,
            store_free_bytes: s.store_free_bytes,
            backup_target: s.backup_target.clone(),
            newest_backup: s.newest_backup.as_ref().map(|b| BackupStatus {
                id: b.id.clone(),
                revision: b.revision,
                created: confstrata_core::Timestamp(b.created_ms),
                age_seconds: b.age_seconds,
            }),
        }
    }
}

impl From<&WatchEvent> for v1::WatchResponse {
    fn from(e: &WatchEvent) -> Self {
        match e {
            WatchEvent::Change {
                info,
                items,
                resolved_json,
            } => v1::WatchResponse {
                info: Some(info.into()),
                items: items.iter().map(Into::into).collect(),
                resolved_json: resolved_json.clone().unwrap_or_default(),
                ..Default::default()
            },
            WatchEvent::CaughtUp { revision } => v1::WatchResponse {
                caught_up_revision: *revision,
                ..Default::default()
            },
        }
    }
}
