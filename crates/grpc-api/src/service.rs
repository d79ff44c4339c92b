//! `ConfigService`: each RPC validates its request into model values
//! (naming the offending field), runs the engine on a blocking thread, and
//! converts the answer back.

use std::pin::Pin;
use std::sync::Arc;

use confstrata_core::{At, ChangeSet, Limits, Op};
use confstrata_engine::{Engine, LayerDiff, LayerStatus};
use confstrata_proto::convert::{self, to_json};
use confstrata_proto::v1::{self, config_service_server::ConfigService};
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::status;
use crate::watch::{self, Hub, WatchSpec};

/// The most versions one History call returns.
const MAX_HISTORY: u32 = 10_000;

pub(crate) struct Service {
    pub(crate) engine: Engine,
    pub(crate) hub: Hub,
    pub(crate) limits: Limits,
    /// Bounds concurrent engine reads to what the CPUs can run: more
    /// threads than cores only add contention (and SQLite connections).
    pub(crate) reads: Arc<Semaphore>,
    /// Bounds concurrent commits, generously: waiting committers are what
    /// group commit batches together.
    pub(crate) writes: Arc<Semaphore>,
}

/// Which semaphore an engine call takes.
#[derive(Clone, Copy)]
enum Kind {
    Read,
    Write,
}

type Res<T> = Result<Response<T>, Status>;

impl Service {
    /// Runs an engine read on the blocking pool (SQLite does file I/O).
    async fn run<T: Send + 'static>(
        &self,
        field: &'static str,
        f: impl FnOnce(&Engine) -> confstrata_core::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        self.run_as(Kind::Read, field, f).await
    }

    /// Runs an engine call that commits.
    async fn write<T: Send + 'static>(
        &self,
        field: &'static str,
        f: impl FnOnce(&Engine) -> confstrata_core::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        self.run_as(Kind::Write, field, f).await
    }

    async fn run_as<T: Send + 'static>(
        &self,
        kind: Kind,
        field: &'static str,
        f: impl FnOnce(&Engine) -> confstrata_core::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        let semaphore = match kind {
            Kind::Read => &self.reads,
            Kind::Write => &self.writes,
        };
        let _permit = semaphore
            .acquire()
            .await
            .map_err(|_| Status::unavailable("the server is shutting down"))?;
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || f(&engine))
            .await
            .map_err(|e| Status::internal(format!("task failed: {e}")))?
            .map_err(|e| status::from_core(&e, field))
    }

    async fn commit_ops(
        &self,
        field: &'static str,
        author: String,
        message: String,
        ops: Vec<Op>,
    ) -> Result<v1::CommitInfo, Status> {
        let cs = ChangeSet {
            author: author_or_default(author),
            message,
            ops,
        };
        let info = self.write(field, move |e| e.commit(&cs)).await?;
        Ok(info.into())
    }
}

fn author_or_default(author: String) -> String {
    if author.is_empty() {
        "anonymous".to_owned()
    } else {
        author
    }
}

fn layer_diff(d: &LayerDiff) -> v1::LayerDiff {
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

#[tonic::async_trait]
impl ConfigService for Service {
    async fn create_namespace(
        &self,
        req: Request<v1::CreateNamespaceRequest>,
    ) -> Res<v1::CreateNamespaceResponse> {
        let r = req.into_inner();
        let wire = r
            .spec
            .as_ref()
            .ok_or_else(|| status::field(missing("spec")))?;
        let spec = convert::namespace_spec("spec", wire).map_err(status::field)?;
        let name = spec.name.clone();
        let cs = ChangeSet {
            author: author_or_default(r.author),
            message: format!("create namespace {name}"),
            ops: vec![Op::PutNamespace {
                spec,
                expect_revision: if r.replace { None } else { Some(0) },
            }],
        };
        let (info, record) = self
            .write("spec", move |e| {
                let info = e.commit(&cs).map_err(|err| match err.root() {
                    confstrata_core::Error::Conflict { .. } => {
                        confstrata_core::Error::AlreadyExists {
                            what: format!("namespace {name:?} (set replace to replace it)"),
                        }
                    }
                    _ => err,
                })?;
                Ok((info, e.namespace(&name, At::Revision(info.revision))?))
            })
            .await?;
        Ok(Response::new(v1::CreateNamespaceResponse {
            namespace: Some((&record).into()),
            commit: Some(info.into()),
        }))
    }

    async fn list_namespaces(
        &self,
        req: Request<v1::ListNamespacesRequest>,
    ) -> Res<v1::ListNamespacesResponse> {
        let at = convert::read_at("at", req.get_ref().at.as_ref()).map_err(status::field)?;
        let (rev, list) = self
            .run("at", move |e| {
                let rev = e.store().revision_at(at)?;
                Ok((rev, e.namespaces(At::Revision(rev))?))
            })
            .await?;
        Ok(Response::new(v1::ListNamespacesResponse {
            namespaces: list.iter().map(Into::into).collect(),
            revision: rev,
        }))
    }

    async fn get_namespace(
        &self,
        req: Request<v1::GetNamespaceRequest>,
    ) -> Res<v1::GetNamespaceResponse> {
        let r = req.into_inner();
        let name = convert::namespace_name("name", &r.name).map_err(status::field)?;
        let at = convert::read_at("at", r.at.as_ref()).map_err(status::field)?;
        let n = self.run("name", move |e| e.namespace(&name, at)).await?;
        Ok(Response::new(v1::GetNamespaceResponse {
            namespace: Some((&n).into()),
        }))
    }

    async fn get_layer(&self, req: Request<v1::GetLayerRequest>) -> Res<v1::GetLayerResponse> {
        let r = req.into_inner();
        let ns = convert::namespace_name("namespace", &r.namespace).map_err(status::field)?;
        let layer = convert::layer_path("layer", &r.layer).map_err(status::field)?;
        let at = convert::read_at("at", r.at.as_ref()).map_err(status::field)?;
        let l = self.run("layer", move |e| e.layer(&ns, &layer, at)).await?;
        Ok(Response::new(v1::GetLayerResponse {
            layer: Some((&l).into()),
        }))
    }

    async fn list_layers(
        &self,
        req: Request<v1::ListLayersRequest>,
    ) -> Res<v1::ListLayersResponse> {
        let r = req.into_inner();
        let ns = convert::namespace_name("namespace", &r.namespace).map_err(status::field)?;
        let at = convert::read_at("at", r.at.as_ref()).map_err(status::field)?;
        let (rev, layers) = self
            .run("namespace", move |e| {
                let rev = e.store().revision_at(at)?;
                Ok((rev, e.layers(&ns, At::Revision(rev))?))
            })
            .await?;
        Ok(Response::new(v1::ListLayersResponse {
            layers: layers.iter().map(Into::into).collect(),
            revision: rev,
        }))
    }

    async fn put_layer(&self, req: Request<v1::PutLayerRequest>) -> Res<v1::PutLayerResponse> {
        let r = req.into_inner();
        let op = Op::Put {
            namespace: convert::namespace_name("namespace", &r.namespace).map_err(status::field)?,
            layer: convert::layer_path("layer", &r.layer).map_err(status::field)?,
            document: convert::document("document_json", &r.document_json, &self.limits)
                .map_err(status::field)?,
            expect_revision: r.expect_revision,
        };
        let commit = self
            .commit_ops("layer", r.author, r.message, vec![op])
            .await?;
        Ok(Response::new(v1::PutLayerResponse {
            commit: Some(commit),
        }))
    }

    async fn set_keys(&self, req: Request<v1::SetKeysRequest>) -> Res<v1::SetKeysResponse> {
        let r = req.into_inner();
        let namespace =
            convert::namespace_name("namespace", &r.namespace).map_err(status::field)?;
        let layer = convert::layer_path("layer", &r.layer).map_err(status::field)?;
        if r.entries.is_empty() {
            return Err(status::field(missing("entries")));
        }
        let mut ops = Vec::with_capacity(r.entries.len());
        for (i, kv) in r.entries.iter().enumerate() {
            ops.push(Op::Set {
                namespace: namespace.clone(),
                layer: layer.clone(),
                key: convert::key_path(&format!("entries[{i}].key"), &kv.key)
                    .map_err(status::field)?,
                value: convert::value(
                    &format!("entries[{i}].value_json"),
                    &kv.value_json,
                    &self.limits,
                )
                .map_err(status::field)?,
                // Preconditions are checked against the state before the change set: once is enough.
                expect_revision: if i == 0 { r.expect_revision } else { None },
            });
        }
        let commit = self.commit_ops("entries", r.author, r.message, ops).await?;
        Ok(Response::new(v1::SetKeysResponse {
            commit: Some(commit),
        }))
    }

    async fn unset_keys(&self, req: Request<v1::UnsetKeysRequest>) -> Res<v1::UnsetKeysResponse> {
        let r = req.into_inner();
        let namespace =
            convert::namespace_name("namespace", &r.namespace).map_err(status::field)?;
        let layer = convert::layer_path("layer", &r.layer).map_err(status::field)?;
        if r.keys.is_empty() {
            return Err(status::field(missing("keys")));
        }
        let mut ops = Vec::with_capacity(r.keys.len());
        for (i, k) in r.keys.iter().enumerate() {
            ops.push(Op::Unset {
                namespace: namespace.clone(),
                layer: layer.clone(),
                key: convert::key_path(&format!("keys[{i}]"), k).map_err(status::field)?,
                expect_revision: if i == 0 { r.expect_revision } else { None },
            });
        }
        let commit = self.commit_ops("keys", r.author, r.message, ops).await?;
        Ok(Response::new(v1::UnsetKeysResponse {
            commit: Some(commit),
        }))
    }

    async fn delete_layer(
        &self,
        req: Request<v1::DeleteLayerRequest>,
    ) -> Res<v1::DeleteLayerResponse> {
        let r = req.into_inner();
        let op = Op::Delete {
            namespace: convert::namespace_name("namespace", &r.namespace).map_err(status::field)?,
            layer: convert::layer_path("layer", &r.layer).map_err(status::field)?,
            expect_revision: r.expect_revision,
        };
        let commit = self
            .commit_ops("layer", r.author, r.message, vec![op])
            .await?;
        Ok(Response::new(v1::DeleteLayerResponse {
            commit: Some(commit),
        }))
    }

    async fn resolve(&self, req: Request<v1::ResolveRequest>) -> Res<v1::ResolveResponse> {
        let r = req.into_inner();
        let ns = convert::namespace_name("namespace", &r.namespace).map_err(status::field)?;
        let ctx = convert::context(&r.context);
        let at = convert::read_at("at", r.at.as_ref()).map_err(status::field)?;
        let view = self
            .run("context", move |e| e.resolve(&ns, &ctx, at))
            .await?;
        Ok(Response::new(v1::ResolveResponse {
            revision: view.revision,
            document_json: to_json(&view.document),
            layers: view.layers.iter().map(Into::into).collect(),
            provenance: if r.with_provenance {
                view.provenance
                    .iter()
                    .map(|(k, p)| (k.to_string(), p.into()))
                    .collect()
            } else {
                Default::default()
            },
        }))
    }

    async fn explain(&self, req: Request<v1::ExplainRequest>) -> Res<v1::ExplainResponse> {
        let r = req.into_inner();
        let ns = convert::namespace_name("namespace", &r.namespace).map_err(status::field)?;
        let key = convert::key_path("key", &r.key).map_err(status::field)?;
        let ctx = convert::context(&r.context);
        let at = convert::read_at("at", r.at.as_ref()).map_err(status::field)?;
        let x = self
            .run("context", move |e| e.explain(&ns, &ctx, &key, at))
            .await?;
        Ok(Response::new(v1::ExplainResponse {
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
                    layer: en.layer.to_string(),
                    revision: en.revision,
                    value_json: en.value.as_ref().map(to_json).unwrap_or_default(),
                    deleted: en.deleted,
                    winner: en.winner,
                    change: x.changes.get(&en.revision).map(Into::into),
                })
                .collect(),
        }))
    }

    async fn diff(&self, req: Request<v1::DiffRequest>) -> Res<v1::DiffResponse> {
        use v1::diff_request::Comparison;
        let r = req.into_inner();
        let ns = convert::namespace_name("namespace", &r.namespace).map_err(status::field)?;
        match r
            .comparison
            .ok_or_else(|| status::field(missing("comparison")))?
        {
            Comparison::Layers(c) => {
                let a =
                    convert::layer_path("layers.old_layer", &c.old_layer).map_err(status::field)?;
                let b =
                    convert::layer_path("layers.new_layer", &c.new_layer).map_err(status::field)?;
                let at_a =
                    convert::read_at("layers.old_at", c.old_at.as_ref()).map_err(status::field)?;
                let at_b =
                    convert::read_at("layers.new_at", c.new_at.as_ref()).map_err(status::field)?;
                let d = self
                    .run("layers", move |e| {
                        e.diff_layers((&ns, &a, at_a), (&ns, &b, at_b))
                    })
                    .await?;
                Ok(Response::new(v1::DiffResponse {
                    changes: d.iter().map(Into::into).collect(),
                    layers: vec![],
                }))
            }
            Comparison::Contexts(c) => {
                let (a, b) = (
                    convert::context(&c.old_context),
                    convert::context(&c.new_context),
                );
                let at_a = convert::read_at("contexts.old_at", c.old_at.as_ref())
                    .map_err(status::field)?;
                let at_b = convert::read_at("contexts.new_at", c.new_at.as_ref())
                    .map_err(status::field)?;
                let d = self
                    .run("contexts", move |e| {
                        e.diff_resolved(&ns, (&a, at_a), (&b, at_b))
                    })
                    .await?;
                Ok(Response::new(v1::DiffResponse {
                    changes: d.iter().map(Into::into).collect(),
                    layers: vec![],
                }))
            }
            Comparison::Revisions(c) => {
                let layer = convert::optional_layer_path("revisions.layer", &c.layer)
                    .map_err(status::field)?;
                if c.from.as_ref().and_then(|f| f.at.as_ref()).is_none() {
                    return Err(status::field(missing("revisions.from")));
                }
                let from =
                    convert::read_at("revisions.from", c.from.as_ref()).map_err(status::field)?;
                let to = convert::read_at("revisions.to", c.to.as_ref()).map_err(status::field)?;
                match layer {
                    Some(l) => {
                        let d = self
                            .run("revisions", move |e| {
                                e.diff_layers((&ns, &l, from), (&ns, &l, to))
                            })
                            .await?;
                        Ok(Response::new(v1::DiffResponse {
                            changes: d.iter().map(Into::into).collect(),
                            layers: vec![],
                        }))
                    }
                    None => {
                        let d = self
                            .run("revisions", move |e| e.diff_namespace(&ns, from, to))
                            .await?;
                        Ok(Response::new(v1::DiffResponse {
                            changes: vec![],
                            layers: d.iter().map(layer_diff).collect(),
                        }))
                    }
                }
            }
        }
    }

    async fn history(&self, req: Request<v1::HistoryRequest>) -> Res<v1::HistoryResponse> {
        let r = req.into_inner();
        let ns = convert::namespace_name("namespace", &r.namespace).map_err(status::field)?;
        let layer = convert::optional_layer_path("layer", &r.layer).map_err(status::field)?;
        let limit = match r.limit {
            0 => 100,
            n => n.min(MAX_HISTORY),
        } as usize;
        let h = self
            .run("namespace", move |e| e.history(&ns, layer.as_ref(), limit))
            .await?;
        Ok(Response::new(v1::HistoryResponse {
            versions: h.iter().map(Into::into).collect(),
        }))
    }

    async fn commit(&self, req: Request<v1::CommitRequest>) -> Res<v1::CommitResponse> {
        let r = req.into_inner();
        let wire = r
            .change_set
            .ok_or_else(|| status::field(missing("change_set")))?;
        let mut cs =
            convert::change_set("change_set", &wire, &self.limits).map_err(status::field)?;
        cs.author = author_or_default(cs.author);
        let info = self.write("change_set", move |e| e.commit(&cs)).await?;
        Ok(Response::new(v1::CommitResponse {
            commit: Some(info.into()),
        }))
    }

    async fn dry_run(&self, req: Request<v1::DryRunRequest>) -> Res<v1::DryRunResponse> {
        let r = req.into_inner();
        let wire = r
            .change_set
            .ok_or_else(|| status::field(missing("change_set")))?;
        let cs = convert::change_set("change_set", &wire, &self.limits).map_err(status::field)?;
        let d = self.run("change_set", move |e| e.dry_run(&cs)).await?;
        Ok(Response::new(v1::DryRunResponse {
            revision: d.revision,
            layers: d.layers.iter().map(layer_diff).collect(),
            namespaces: d.namespaces.iter().map(ToString::to_string).collect(),
        }))
    }

    async fn rollback(&self, req: Request<v1::RollbackRequest>) -> Res<v1::RollbackResponse> {
        let r = req.into_inner();
        let ns = convert::namespace_name("namespace", &r.namespace).map_err(status::field)?;
        let layer = convert::optional_layer_path("layer", &r.layer).map_err(status::field)?;
        if r.to.as_ref().and_then(|t| t.at.as_ref()).is_none() {
            return Err(status::field(missing("to")));
        }
        let to = convert::read_at("to", r.to.as_ref()).map_err(status::field)?;
        let author = author_or_default(r.author);
        let (dry_run, message) = (r.dry_run, r.message);
        let (cs, info) = self
            .write("to", move |e| {
                let cs = e.rollback_plan(&ns, layer.as_ref(), to, &author, &message)?;
                let info = match (&cs, dry_run) {
                    (Some(cs), false) => Some(e.commit(cs)?),
                    _ => None,
                };
                Ok((cs, info))
            })
            .await?;
        Ok(Response::new(v1::RollbackResponse {
            commit: info.map(Into::into),
            change_set: cs.as_ref().map(Into::into),
        }))
    }

    async fn get_status(&self, _: Request<v1::GetStatusRequest>) -> Res<v1::GetStatusResponse> {
        let (revision, oldest_revision, namespaces) = self
            .run("", |e| {
                let s = e.store();
                let revision = s.revision()?;
                Ok((
                    revision,
                    s.oldest_revision()?,
                    s.namespaces(revision)?.len(),
                ))
            })
            .await?;
        Ok(Response::new(v1::GetStatusResponse {
            revision,
            oldest_revision,
            namespaces: namespaces as u64,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }))
    }

    type WatchStream =
        Pin<Box<dyn Stream<Item = Result<v1::WatchResponse, Status>> + Send + 'static>>;

    async fn watch(&self, req: Request<v1::WatchRequest>) -> Res<Self::WatchStream> {
        let r = req.into_inner();
        let spec = WatchSpec {
            namespace: convert::namespace_name("namespace", &r.namespace).map_err(status::field)?,
            context: if !r.resolve && r.context.is_empty() {
                None
            } else {
                Some(convert::context(&r.context))
            },
            start_revision: r.start_revision,
        };
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(watch::run(self.engine.clone(), self.hub.clone(), spec, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

fn missing(field: &str) -> convert::FieldError {
    convert::FieldError {
        field: field.to_owned(),
        error: Box::new(confstrata_core::Error::invalid(field, "it is required")),
    }
}
