//! Where commands run: on the embedded store (an [`Engine`] on `--data-dir`)
//! or on a server (`--addr`, through `confstrata-client`). Both answer with
//! the engine's types, so every command prints the same tables and the same
//! `-o json` either way.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use confstrata_client::{Client, ClientOptions};
use confstrata_core::view::{DryRun, ExplainView, LayerDiff, ResolvedView, Rollback};
use confstrata_core::{
    At, ChangeSet, CommitInfo, Context, DiffEntry, ErrorKind, KeyPath, LayerPath, LayerRecord,
    LayerVersion, NamespaceName, NamespaceRecord, NamespaceSpec, RetentionPolicy, RetentionReport,
};
use confstrata_engine::{Caller, Engine};
use serde_json::{Value, json};

mod rbac;
mod templates;

/// The store a command works on.
pub(crate) enum Backend {
    /// The embedded store in a data directory.
    Local {
        /// The engine over it (boxed: the variants stay close in size).
        engine: Box<Engine>,
        /// The local operating-system user, who acts with admin rights.
        caller: Caller,
        /// Where it lives.
        data_dir: PathBuf,
    },
    /// A server.
    Remote {
        /// The client (boxed: it is large).
        client: Box<Client>,
        /// Drives the client's calls; commands are synchronous. Boxed: it
        /// is large, and a backend is made once per command.
        runtime: Box<tokio::runtime::Runtime>,
    },
}

impl Backend {
    /// Opens the embedded store in `data_dir`.
    pub(crate) fn local(data_dir: PathBuf, author: &str) -> Result<Backend> {
        let engine = confstrata_host::open(&data_dir)
            .with_context(|| format!("cannot open the store in {}", data_dir.display()))?;
        Ok(Backend::Local {
            engine: Box::new(engine),
            caller: Caller::local_user().with_author(author),
            data_dir,
        })
    }

    /// Connects to the server at `addr`, sending `token` with every call.
    pub(crate) fn remote(
        addr: &str,
        token: Option<String>,
        tls: Option<confstrata_client::ClientTls>,
    ) -> Result<Backend> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let mut options = ClientOptions::default();
        options.token = token;
        options.tls = tls;
        let client = runtime.block_on(Client::connect_with(addr, options))?;
        Ok(Backend::Remote {
            client: Box::new(client),
            runtime: Box::new(runtime),
        })
    }

    /// Runs one call on the server; an error on the embedded store.
    pub(crate) fn remote_call<T, F>(&self, f: impl FnOnce(Client) -> F) -> Result<T>
    where
        F: Future<Output = confstrata_client::Result<T>>,
    {
        match self {
            Backend::Remote { client, runtime } => Self::call(client, runtime, f),
            Backend::Local { .. } => anyhow::bail!("this needs a server (--addr)"),
        }
    }

    /// Runs one client call to completion.
    fn call<T, F>(
        client: &Client,
        runtime: &tokio::runtime::Runtime,
        f: impl FnOnce(Client) -> F,
    ) -> Result<T>
    where
        F: Future<Output = confstrata_client::Result<T>>,
    {
        Ok(runtime.block_on(f(client.clone()))?)
    }

    /// Commits a change set.
    pub(crate) fn commit(&self, cs: &ChangeSet) -> Result<CommitInfo> {
        match self {
            Backend::Local { engine, caller, .. } => Ok(engine.commit(caller, cs)?),
            Backend::Remote { client, runtime } => {
                Self::call(client, runtime, |c| async move { c.commit(cs).await })
            }
        }
    }

    /// Checks a change set without committing it.
    pub(crate) fn dry_run(&self, cs: &ChangeSet) -> Result<DryRun> {
        match self {
            Backend::Local { engine, caller, .. } => Ok(engine.dry_run(caller, cs)?),
            Backend::Remote { client, runtime } => {
                Self::call(client, runtime, |c| async move { c.dry_run(cs).await })
            }
        }
    }

    /// Every namespace.
    pub(crate) fn namespaces(&self, at: At) -> Result<Vec<NamespaceRecord>> {
        match self {
            Backend::Local { engine, caller, .. } => Ok(engine.namespaces(caller, at)?),
            Backend::Remote { client, runtime } => {
                Self::call(client, runtime, |c| async move { c.namespaces(at).await })
            }
        }
    }

    /// One namespace.
    pub(crate) fn namespace(&self, name: &NamespaceName, at: At) -> Result<NamespaceRecord> {
        match self {
            Backend::Local { engine, caller, .. } => Ok(engine.namespace(caller, name, at)?),
            Backend::Remote { client, runtime } => {
                Self::call(
                    client,
                    runtime,
                    |c| async move { c.namespace(name, at).await },
                )
            }
        }
    }

    /// One layer.
    pub(crate) fn layer(
        &self,
        ns: &NamespaceName,
        layer: &LayerPath,
        at: At,
    ) -> Result<LayerRecord> {
        match self {
            Backend::Local { engine, caller, .. } => Ok(engine.layer(caller, ns, layer, at)?),
            Backend::Remote { client, runtime } => {
                Self::call(
                    client,
                    runtime,
                    |c| async move { c.layer(ns, layer, at).await },
                )
            }
        }
    }

    /// Every layer of a namespace.
    pub(crate) fn layers(&self, ns: &NamespaceName, at: At) -> Result<Vec<LayerRecord>> {
        match self {
            Backend::Local { engine, caller, .. } => Ok(engine.layers(caller, ns, at)?),
            Backend::Remote { client, runtime } => {
                Self::call(client, runtime, |c| async move { c.layers(ns, at).await })
            }
        }
    }

    /// Resolves a context; a server is asked for provenance only when
    /// `with_provenance` (the embedded engine always computes it).
    pub(crate) fn resolve(
        &self,
        ns: &NamespaceName,
        ctx: &Context,
        section: Option<&KeyPath>,
        at: At,
        with_provenance: bool,
    ) -> Result<ResolvedView> {
        match self {
            Backend::Local { engine, caller, .. } => {
                Ok(engine.resolve_section(caller, ns, ctx, section, at)?)
            }
            Backend::Remote { client, runtime } => Self::call(client, runtime, |c| async move {
                c.resolve_section(ns, ctx, section, at, with_provenance)
                    .await
            }),
        }
    }

    /// Explains one key.
    pub(crate) fn explain(
        &self,
        ns: &NamespaceName,
        ctx: &Context,
        key: &KeyPath,
        at: At,
    ) -> Result<ExplainView> {
        match self {
            Backend::Local { engine, caller, .. } => Ok(engine.explain(caller, ns, ctx, key, at)?),
            Backend::Remote { client, runtime } => Self::call(client, runtime, |c| async move {
                c.explain(ns, ctx, key, at).await
            }),
        }
    }

    /// Diffs two resolved contexts.
    pub(crate) fn diff_resolved(
        &self,
        ns: &NamespaceName,
        a: (&Context, At),
        b: (&Context, At),
    ) -> Result<Vec<DiffEntry>> {
        match self {
            Backend::Local { engine, caller, .. } => Ok(engine.diff_resolved(caller, ns, a, b)?),
            Backend::Remote { client, runtime } => Self::call(client, runtime, |c| async move {
                c.diff_contexts(ns, a, b).await
            }),
        }
    }

    /// Diffs two layers of a namespace (the same layer twice: over time).
    pub(crate) fn diff_layers(
        &self,
        ns: &NamespaceName,
        a: (&LayerPath, At),
        b: (&LayerPath, At),
    ) -> Result<Vec<DiffEntry>> {
        match self {
            Backend::Local { engine, caller, .. } => {
                Ok(engine.diff_layers(caller, (ns, a.0, a.1), (ns, b.0, b.1))?)
            }
            Backend::Remote { client, runtime } => {
                Self::call(
                    client,
                    runtime,
                    |c| async move { c.diff_layers(ns, a, b).await },
                )
            }
        }
    }

    /// Diffs every layer of a namespace between two states.
    pub(crate) fn diff_namespace(
        &self,
        ns: &NamespaceName,
        from: At,
        to: At,
    ) -> Result<Vec<LayerDiff>> {
        match self {
            Backend::Local { engine, caller, .. } => {
                Ok(engine.diff_namespace(caller, ns, from, to)?)
            }
            Backend::Remote { client, runtime } => Self::call(client, runtime, |c| async move {
                c.diff_revisions(ns, None, from, to).await
            }),
        }
    }

    /// Versions of a namespace or one layer, newest first.
    pub(crate) fn history(
        &self,
        ns: &NamespaceName,
        layer: Option<&LayerPath>,
        limit: usize,
    ) -> Result<Vec<LayerVersion>> {
        match self {
            Backend::Local { engine, caller, .. } => Ok(engine.history(caller, ns, layer, limit)?),
            Backend::Remote { client, runtime } => Self::call(client, runtime, |c| async move {
                c.history(ns, layer, limit).await
            }),
        }
    }

    /// Rolls a namespace (or one layer) back to `to`: the change set, and
    /// the commit unless `dry_run`. `(None, None)` when nothing differs.
    #[expect(clippy::too_many_arguments, reason = "the rollback command's flags")]
    pub(crate) fn rollback(
        &self,
        ns: &NamespaceName,
        layer: Option<&LayerPath>,
        to: At,
        author: &str,
        message: &str,
        dry_run: bool,
        from_backup: bool,
    ) -> Result<Rollback> {
        match self {
            Backend::Local { .. } if from_backup => anyhow::bail!(
                "--from-backup reads a server's backups: use it with --addr (the embedded store has no backup target)"
            ),
            Backend::Local { engine, caller, .. } => {
                Ok(engine.rollback(caller, ns, layer, to, message, dry_run)?)
            }
            Backend::Remote { client, runtime } => {
                let options = confstrata_client::WriteOptions::message(message).author(author);
                Self::call(client, runtime, |c| async move {
                    c.rollback_to(ns, layer, to, &options, dry_run, from_backup)
                        .await
                })
            }
        }
    }

    /// Declares a namespace (`replace`: replaces its declaration).
    pub(crate) fn create_namespace(
        &self,
        spec: &NamespaceSpec,
        replace: bool,
        author: &str,
    ) -> Result<(NamespaceRecord, CommitInfo)> {
        match self {
            Backend::Local { engine, caller, .. } => {
                Ok(engine.create_namespace(caller, spec.clone(), replace, "")?)
            }
            Backend::Remote { client, runtime } => Self::call(client, runtime, |c| async move {
                c.create_namespace(spec, replace, author).await
            }),
        }
    }

    /// Drops old history (the embedded store only).
    pub(crate) fn apply_retention(&self, policy: &RetentionPolicy) -> Result<RetentionReport> {
        match self {
            Backend::Local { engine, caller, .. } => Ok(engine.apply_retention(caller, policy)?),
            Backend::Remote { client, runtime } => {
                Self::call(client, runtime, |c| async move { c.compact(policy).await })
            }
        }
    }

    /// The store's state, for `status`: its rows and table headers.
    pub(crate) fn status(&self) -> Result<(Value, Vec<&'static str>, Vec<&'static str>)> {
        match self {
            Backend::Local {
                engine, data_dir, ..
            } => {
                let s = engine.store();
                let revision = s.revision()?;
                let size = s.storage_size()?;
                let v = json!({
                    "data_dir": data_dir,
                    "revision": revision,
                    "oldest_revision": s.oldest_revision()?,
                    "namespaces": s.namespaces(revision)?.len(),
                    "store_bytes": size.map(|s| s.bytes),
                    "store_free_bytes": size.map(|s| s.free_bytes),
                    "size": size.map(|s| crate::output::bytes(s.bytes)),
                });
                Ok((
                    v,
                    vec!["DATA DIR", "REVISION", "OLDEST", "NAMESPACES", "SIZE"],
                    vec![
                        "data_dir",
                        "revision",
                        "oldest_revision",
                        "namespaces",
                        "size",
                    ],
                ))
            }
            Backend::Remote { client, runtime } => {
                let st = runtime.block_on(client.status())?;
                let v = json!({
                    "server": client.addr(),
                    "revision": st.revision,
                    "oldest_revision": st.oldest_revision,
                    "namespaces": st.namespaces,
                    "store_bytes": st.store_bytes,
                    "store_free_bytes": st.store_free_bytes,
                    "size": st.store_bytes.map(crate::output::bytes),
                    "backup_target": st.backup_target,
                    "newest_backup": st.newest_backup,
                    "last_backup": match (&st.newest_backup, st.backup_target.is_empty()) {
                        (Some(b), _) => format!("{} ago (revision {})", age(b.age_seconds), b.revision),
                        (None, false) => "none yet".to_owned(),
                        (None, true) => "off".to_owned(),
                    },
                });
                Ok((
                    v,
                    vec![
                        "SERVER",
                        "REVISION",
                        "OLDEST",
                        "NAMESPACES",
                        "SIZE",
                        "LAST BACKUP",
                    ],
                    vec![
                        "server",
                        "revision",
                        "oldest_revision",
                        "namespaces",
                        "size",
                        "last_backup",
                    ],
                ))
            }
        }
    }

    /// Versions of a namespace's declaration.
    pub(crate) fn declaration_history(
        &self,
        ns: &NamespaceName,
        limit: usize,
    ) -> Result<Vec<confstrata_core::DeclarationVersion>> {
        match self {
            Backend::Local { engine, caller, .. } => {
                Ok(engine.declaration_history(caller, ns, limit)?)
            }
            Backend::Remote { client, runtime } => Self::call(client, runtime, |c| async move {
                c.declaration_history(ns, limit).await
            }),
        }
    }

    /// Diffs a namespace's declaration between two revisions.
    pub(crate) fn diff_declaration(
        &self,
        ns: &NamespaceName,
        from: At,
        to: At,
    ) -> Result<Vec<DiffEntry>> {
        match self {
            Backend::Local { engine, caller, .. } => {
                Ok(engine.diff_declaration(caller, ns, from, to)?)
            }
            Backend::Remote { client, runtime } => {
                // Two reads of the declaration; one that did not exist is empty.
                let read = |at| -> Result<Option<NamespaceRecord>> {
                    match Self::call(
                        client,
                        runtime,
                        |c| async move { c.namespace(ns, at).await },
                    ) {
                        Ok(r) => Ok(Some(r)),
                        Err(e) if crate::errors::is(&e, ErrorKind::NotFound) => Ok(None),
                        Err(e) => Err(e),
                    }
                };
                let (a, b) = (read(from)?, read(to)?);
                if a.is_none() && b.is_none() {
                    anyhow::bail!(confstrata_core::Error::NamespaceNotFound {
                        namespace: ns.to_string()
                    });
                }
                Ok(confstrata_core::diff(
                    &confstrata_engine::spec_document(a)?,
                    &confstrata_engine::spec_document(b)?,
                ))
            }
        }
    }

    /// Runs the validation chains on the current state.
    pub(crate) fn validate(
        &self,
        ns: Option<&NamespaceName>,
    ) -> Result<Vec<confstrata_core::Finding>> {
        match self {
            Backend::Local { engine, caller, .. } => Ok(engine.validate(caller, ns)?),
            Backend::Remote { client, runtime } => {
                Self::call(client, runtime, |c| async move { c.validate(ns).await })
            }
        }
    }

    /// Every layer with every sealed value masked, for exports.
    pub(crate) fn export_layers(&self, ns: &NamespaceName, at: At) -> Result<Vec<LayerRecord>> {
        match self {
            Backend::Local { engine, caller, .. } => Ok(engine.export_layers(caller, ns, at)?),
            Backend::Remote { client, runtime } => {
                Self::call(
                    client,
                    runtime,
                    |c| async move { c.export_layers(ns, at).await },
                )
            }
        }
    }

    pub(crate) fn keys(&self) -> Result<Vec<confstrata_engine::KeyInfo>> {
        match self {
            Backend::Local { engine, caller, .. } => Ok(engine.keys(caller)?),
            Backend::Remote { client, runtime } => {
                let keys = Self::call(client, runtime, |c| async move { c.keys().await })?;
                Ok(keys
                    .into_iter()
                    .map(|k| confstrata_engine::KeyInfo {
                        id: k.id,
                        current: k.current,
                    })
                    .collect())
            }
        }
    }

    pub(crate) fn rotate_key(&self, ns: &NamespaceName) -> Result<String> {
        match self {
            Backend::Local { engine, caller, .. } => Ok(engine.rotate_key(caller, ns)?),
            Backend::Remote { client, runtime } => {
                Self::call(client, runtime, |c| async move { c.rotate_key(ns).await })
            }
        }
    }

    pub(crate) fn rotate_master_key(&self) -> Result<confstrata_engine::MasterKeyRotation> {
        match self {
            Backend::Local { engine, caller, .. } => Ok(engine.rotate_master_key(caller)?),
            Backend::Remote { client, runtime } => {
                Self::call(
                    client,
                    runtime,
                    |c| async move { c.rotate_master_key().await },
                )
            }
        }
    }

    pub(crate) fn rewrap(&self, ns: &NamespaceName) -> Result<Option<CommitInfo>> {
        match self {
            Backend::Local { engine, caller, .. } => Ok(engine.rewrap(caller, ns)?),
            Backend::Remote { client, runtime } => {
                Self::call(client, runtime, |c| async move { c.rewrap(ns).await })
            }
        }
    }

    pub(crate) fn retire_key(&self, key: &str) -> Result<()> {
        match self {
            Backend::Local { engine, caller, .. } => Ok(engine.retire_key(caller, key)?),
            Backend::Remote { client, runtime } => {
                Self::call(client, runtime, |c| async move { c.retire_key(key).await })
            }
        }
    }

    pub(crate) fn audit_records(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<confstrata_engine::AuditRecord>> {
        match self {
            Backend::Local { engine, caller, .. } => {
                Ok(engine.audit_records(caller, after, limit)?)
            }
            Backend::Remote { client, runtime } => {
                let limit = u32::try_from(limit).unwrap_or(u32::MAX);
                let raw = Self::call(client, runtime, |c| async move {
                    c.audit_records(after, limit).await
                })?;
                raw.into_iter()
                    .map(|v| {
                        serde_json::from_value(v)
                            .context("the server sent an audit record this CLI cannot read")
                    })
                    .collect()
            }
        }
    }

    /// Verifies the audit chain: (records, last seq).
    /// Stage timings and cache counters, in the shape of the engine's
    /// `EngineStats`; `true` for a local store (this process's figures).
    pub(crate) fn stats(&self) -> Result<(bool, serde_json::Value)> {
        match self {
            Backend::Local { engine, caller, .. } => {
                Ok((true, serde_json::to_value(engine.stats(caller)?)?))
            }
            Backend::Remote { client, runtime } => {
                let s = Self::call(client, runtime, |c| async move { c.stats().await })?;
                let c = s.cache.unwrap_or_default();
                let stages: Vec<serde_json::Value> = s
                    .stages
                    .iter()
                    .map(|t| {
                        serde_json::json!({
                            "stage": t.stage, "count": t.count, "sum_seconds": t.sum_seconds,
                            "p50_seconds": t.p50_seconds, "p90_seconds": t.p90_seconds,
                            "p99_seconds": t.p99_seconds,
                        })
                    })
                    .collect();
                Ok((
                    false,
                    serde_json::json!({
                        "revision": s.revision,
                        "cache": {
                            "hits": c.hits, "misses": c.misses, "evictions": c.evictions,
                            "invalidations": c.invalidations, "rebuilt": c.rebuilt,
                            "entries": c.entries, "bytes": c.bytes,
                        },
                        "cache_budget": {"max_entries": c.max_entries, "max_bytes": c.max_bytes},
                        "timings": {
                            "stages": stages,
                            "batches": s.store_batches,
                            "batched_jobs": s.store_batched_jobs,
                        },
                        "newest_backup": s.newest_backup.as_ref().map(|b| serde_json::json!({
                            "id": b.id, "revision": b.revision, "created": b.created_ms,
                            "age_seconds": b.age_seconds,
                        })),
                    }),
                ))
            }
        }
    }

    pub(crate) fn audit_verify(&self) -> Result<(u64, u64)> {
        match self {
            Backend::Local { engine, caller, .. } => {
                let v = engine.audit_verify(caller)?;
                Ok((v.records, v.last_seq))
            }
            Backend::Remote { client, runtime } => {
                let v = Self::call(client, runtime, |c| async move { c.audit_verify().await })?;
                Ok((v.records, v.last_seq))
            }
        }
    }

    pub(crate) fn add_principal(
        &self,
        id: &str,
        name: &str,
        kind: confstrata_engine::PrincipalKind,
        roles: &[String],
    ) -> Result<()> {
        match self {
            Backend::Local { engine, caller, .. } => {
                Ok(engine.add_principal(caller, id, name, kind, roles)?)
            }
            Backend::Remote { client, runtime } => {
                let kind = match kind {
                    confstrata_engine::PrincipalKind::Service => {
                        confstrata_client::PrincipalKind::Service
                    }
                    _ => confstrata_client::PrincipalKind::User,
                };
                Self::call(client, runtime, |c| async move {
                    c.add_principal(id, name, kind, roles).await
                })
            }
        }
    }

    pub(crate) fn principals(&self) -> Result<Vec<confstrata_engine::PrincipalInfo>> {
        match self {
            Backend::Local { engine, caller, .. } => Ok(engine.principals(caller)?),
            Backend::Remote { client, runtime } => {
                let list = Self::call(client, runtime, |c| async move { c.principals().await })?;
                Ok(list
                    .into_iter()
                    .map(|p| confstrata_engine::PrincipalInfo {
                        id: p.id,
                        name: p.name,
                        kind: match p.kind {
                            confstrata_client::PrincipalKind::Service => {
                                confstrata_engine::PrincipalKind::Service
                            }
                            _ => confstrata_engine::PrincipalKind::User,
                        },
                        roles: p.roles,
                        tokens: p
                            .tokens
                            .into_iter()
                            .map(|t| confstrata_engine::TokenInfo {
                                hash: t.hash,
                                label: t.label,
                                revoked: t.revoked,
                            })
                            .collect(),
                        revoked: p.revoked,
                    })
                    .collect())
            }
        }
    }

    pub(crate) fn revoke_principal(&self, id: &str) -> Result<()> {
        match self {
            Backend::Local { engine, caller, .. } => Ok(engine.revoke_principal(caller, id)?),
            Backend::Remote { client, runtime } => {
                Self::call(
                    client,
                    runtime,
                    |c| async move { c.revoke_principal(id).await },
                )
            }
        }
    }

    /// Issues a token; the text is returned once.
    pub(crate) fn issue_token(&self, id: &str, label: &str) -> Result<String> {
        match self {
            Backend::Local { engine, caller, .. } => Ok(engine
                .issue_token(caller, id, label)?
                .expose_secret()
                .to_owned()),
            Backend::Remote { client, runtime } => {
                let t = Self::call(client, runtime, |c| async move {
                    c.issue_token(id, label).await
                })?;
                Ok(t.token)
            }
        }
    }

    pub(crate) fn revoke_token(&self, hash: &str) -> Result<()> {
        match self {
            Backend::Local { engine, caller, .. } => Ok(engine.revoke_token(caller, hash)?),
            Backend::Remote { client, runtime } => {
                Self::call(
                    client,
                    runtime,
                    |c| async move { c.revoke_token(hash).await },
                )
            }
        }
    }
}

/// An age for people: `42s`, `5m`, `3h`, `2d`.
fn age(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}
