//! `ConfigService`: each RPC validates its request into model values
//! (naming the offending field), runs the engine on a blocking thread, and
//! converts the answer back.

use std::pin::Pin;

use confstrata_core::{At, ChangeSet, Limits, Op};
use confstrata_proto::convert::{self, to_json};
use confstrata_proto::v1::{self, config_service_server::ConfigService};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use confstrata_host::{Credentials as Auth, Host};

use crate::call::{Calls, auth, missing};
use crate::status;
use crate::watch;

/// The most versions one History call returns.
const MAX_HISTORY: u32 = 10_000;

pub(crate) struct Service {
    pub(crate) calls: Calls,
    pub(crate) host: Host,
    pub(crate) limits: Limits,
}

type Res<T> = Result<Response<T>, Status>;

impl Service {
    fn watches(&self) -> watch::Watches {
        watch::Watches {
            calls: self.calls.clone(),
            host: self.host.clone(),
        }
    }

    async fn commit_ops(
        &self,
        auth: Auth,
        field: &'static str,
        message: String,
        ops: Vec<Op>,
    ) -> Result<v1::CommitInfo, Status> {
        // The author is the authenticated principal, whatever the request says.
        let cs = ChangeSet {
            author: String::new(),
            message,
            ops,
        };
        let info = self.calls.commit(auth, field, cs).await?;
        Ok(info.into())
    }
}

#[tonic::async_trait]
impl ConfigService for Service {
    async fn create_namespace(
        &self,
        req: Request<v1::CreateNamespaceRequest>,
    ) -> Res<v1::CreateNamespaceResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let wire = r
            .spec
            .as_ref()
            .ok_or_else(|| status::field(missing("spec")))?;
        let spec = convert::namespace_spec("spec", wire).map_err(status::field)?;
        let replace = r.replace;
        let (record, info) = self
            .calls
            .write(a, "spec", move |e, c| {
                e.create_namespace(c, spec, replace, "")
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
        let a = auth(&req);
        let at = convert::read_at("at", req.get_ref().at.as_ref()).map_err(status::field)?;
        let (rev, list) = self
            .calls
            .run(a, "at", move |e, c| {
                let rev = e.store().revision_at(at)?;
                Ok((rev, e.namespaces(c, At::Revision(rev))?))
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
        let a = auth(&req);
        let r = req.into_inner();
        let name = convert::namespace_name("name", &r.name).map_err(status::field)?;
        let at = convert::read_at("at", r.at.as_ref()).map_err(status::field)?;
        let n = self
            .calls
            .run(a, "name", move |e, c| e.namespace(c, &name, at))
            .await?;
        Ok(Response::new(v1::GetNamespaceResponse {
            namespace: Some((&n).into()),
        }))
    }

    async fn get_layer(&self, req: Request<v1::GetLayerRequest>) -> Res<v1::GetLayerResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let ns = convert::namespace_name("namespace", &r.namespace).map_err(status::field)?;
        let layer = convert::layer_path("layer", &r.layer).map_err(status::field)?;
        let at = convert::read_at("at", r.at.as_ref()).map_err(status::field)?;
        let l = self
            .calls
            .run(a, "layer", move |e, c| e.layer(c, &ns, &layer, at))
            .await?;
        Ok(Response::new(v1::GetLayerResponse {
            layer: Some((&l).into()),
        }))
    }

    async fn list_layers(
        &self,
        req: Request<v1::ListLayersRequest>,
    ) -> Res<v1::ListLayersResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let ns = convert::namespace_name("namespace", &r.namespace).map_err(status::field)?;
        let at = convert::read_at("at", r.at.as_ref()).map_err(status::field)?;
        let mask = r.mask_secrets;
        let (rev, layers) = self
            .calls
            .run(a, "namespace", move |e, c| {
                let rev = e.store().revision_at(at)?;
                let layers = if mask {
                    e.export_layers(c, &ns, At::Revision(rev))?
                } else {
                    e.layers(c, &ns, At::Revision(rev))?
                };
                Ok((rev, layers))
            })
            .await?;
        Ok(Response::new(v1::ListLayersResponse {
            layers: layers.iter().map(Into::into).collect(),
            revision: rev,
        }))
    }

    async fn put_layer(&self, req: Request<v1::PutLayerRequest>) -> Res<v1::PutLayerResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let op = Op::Put {
            namespace: convert::namespace_name("namespace", &r.namespace).map_err(status::field)?,
            layer: convert::layer_path("layer", &r.layer).map_err(status::field)?,
            document: convert::document("document_json", &r.document_json, &self.limits)
                .map_err(status::field)?,
            expect_revision: r.expect_revision,
        };
        let commit = self.commit_ops(a, "layer", r.message, vec![op]).await?;
        Ok(Response::new(v1::PutLayerResponse {
            commit: Some(commit),
        }))
    }

    async fn set_keys(&self, req: Request<v1::SetKeysRequest>) -> Res<v1::SetKeysResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let namespace =
            convert::namespace_name("namespace", &r.namespace).map_err(status::field)?;
        let layer = convert::layer_path("layer", &r.layer).map_err(status::field)?;
        if r.entries.is_empty() {
            return Err(status::field(missing("entries")));
        }
        let mut entries = Vec::with_capacity(r.entries.len());
        for (i, kv) in r.entries.iter().enumerate() {
            entries.push((
                convert::key_path(&format!("entries[{i}].key"), &kv.key).map_err(status::field)?,
                convert::value(
                    &format!("entries[{i}].value_json"),
                    &kv.value_json,
                    &self.limits,
                )
                .map_err(status::field)?,
                kv.secret,
            ));
        }
        let ops = Op::set_keys(&namespace, &layer, entries, r.expect_revision);
        let commit = self.commit_ops(a, "entries", r.message, ops).await?;
        Ok(Response::new(v1::SetKeysResponse {
            commit: Some(commit),
        }))
    }

    async fn unset_keys(&self, req: Request<v1::UnsetKeysRequest>) -> Res<v1::UnsetKeysResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let namespace =
            convert::namespace_name("namespace", &r.namespace).map_err(status::field)?;
        let layer = convert::layer_path("layer", &r.layer).map_err(status::field)?;
        if r.keys.is_empty() {
            return Err(status::field(missing("keys")));
        }
        let keys = r
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| convert::key_path(&format!("keys[{i}]"), k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(status::field)?;
        let ops = Op::unset_keys(&namespace, &layer, keys, r.expect_revision);
        let commit = self.commit_ops(a, "keys", r.message, ops).await?;
        Ok(Response::new(v1::UnsetKeysResponse {
            commit: Some(commit),
        }))
    }

    async fn delete_layer(
        &self,
        req: Request<v1::DeleteLayerRequest>,
    ) -> Res<v1::DeleteLayerResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let op = Op::Delete {
            namespace: convert::namespace_name("namespace", &r.namespace).map_err(status::field)?,
            layer: convert::layer_path("layer", &r.layer).map_err(status::field)?,
            expect_revision: r.expect_revision,
        };
        let commit = self.commit_ops(a, "layer", r.message, vec![op]).await?;
        Ok(Response::new(v1::DeleteLayerResponse {
            commit: Some(commit),
        }))
    }

    async fn resolve(&self, req: Request<v1::ResolveRequest>) -> Res<v1::ResolveResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let ns = convert::namespace_name("namespace", &r.namespace).map_err(status::field)?;
        let ctx = convert::context(&r.context);
        let at = convert::read_at("at", r.at.as_ref()).map_err(status::field)?;
        let section = if r.section.is_empty() {
            None
        } else {
            Some(convert::key_path("section", &r.section).map_err(status::field)?)
        };
        // A cached view is answered here, on the async thread: no blocking
        // pool hop, no copy of the view.
        if at == At::Latest
            && let Some(shared) = self
                .calls
                .fast(&a, |e, c| e.resolve_cached(c, &ns, &ctx, section.as_ref()))
        {
            let provenance = if r.with_provenance {
                Some(
                    shared
                        .provenance()
                        .map_err(|e| status::from_core(&e, "context"))?,
                )
            } else {
                None
            };
            return Ok(Response::new(convert::resolve_response(
                shared.revision,
                shared.json.to_string(),
                shared.layers(),
                provenance.as_deref(),
                false,
            )));
        }
        let view = self
            .calls
            .run(a, "context", move |e, c| {
                e.resolve_section(c, &ns, &ctx, section.as_ref(), at)
            })
            .await?;
        Ok(Response::new(convert::resolve_response(
            view.revision,
            to_json(&view.document),
            &view.layers,
            r.with_provenance.then_some(view.provenance.as_slice()),
            view.partial,
        )))
    }

    async fn explain(&self, req: Request<v1::ExplainRequest>) -> Res<v1::ExplainResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let ns = convert::namespace_name("namespace", &r.namespace).map_err(status::field)?;
        let key = convert::key_path("key", &r.key).map_err(status::field)?;
        let ctx = convert::context(&r.context);
        let at = convert::read_at("at", r.at.as_ref()).map_err(status::field)?;
        let x = self
            .calls
            .run(a, "context", move |e, c| e.explain(c, &ns, &ctx, &key, at))
            .await?;
        Ok(Response::new((&x).into()))
    }

    async fn diff(&self, req: Request<v1::DiffRequest>) -> Res<v1::DiffResponse> {
        use v1::diff_request::Comparison;
        let auth_ = auth(&req);
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
                    .calls
                    .run(auth_, "layers", move |e, c| {
                        e.diff_layers(c, (&ns, &a, at_a), (&ns, &b, at_b))
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
                    .calls
                    .run(auth_, "contexts", move |e, c| {
                        e.diff_resolved(c, &ns, (&a, at_a), (&b, at_b))
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
                            .calls
                            .run(auth_, "revisions", move |e, c| {
                                e.diff_layers(c, (&ns, &l, from), (&ns, &l, to))
                            })
                            .await?;
                        Ok(Response::new(v1::DiffResponse {
                            changes: d.iter().map(Into::into).collect(),
                            layers: vec![],
                        }))
                    }
                    None => {
                        let d = self
                            .calls
                            .run(auth_, "revisions", move |e, c| {
                                e.diff_namespace(c, &ns, from, to)
                            })
                            .await?;
                        Ok(Response::new(v1::DiffResponse {
                            changes: vec![],
                            layers: d.iter().map(Into::into).collect(),
                        }))
                    }
                }
            }
        }
    }

    async fn history(&self, req: Request<v1::HistoryRequest>) -> Res<v1::HistoryResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let ns = convert::namespace_name("namespace", &r.namespace).map_err(status::field)?;
        let layer = convert::optional_layer_path("layer", &r.layer).map_err(status::field)?;
        let limit = match r.limit {
            0 => 100,
            n => n.min(MAX_HISTORY),
        } as usize;
        let h = self
            .calls
            .run(a, "namespace", move |e, c| {
                e.history(c, &ns, layer.as_ref(), limit)
            })
            .await?;
        Ok(Response::new(v1::HistoryResponse {
            versions: h.iter().map(Into::into).collect(),
        }))
    }

    async fn namespace_history(
        &self,
        req: Request<v1::NamespaceHistoryRequest>,
    ) -> Res<v1::NamespaceHistoryResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let ns = convert::namespace_name("namespace", &r.namespace).map_err(status::field)?;
        let limit = match r.limit {
            0 => 100,
            n => n.min(MAX_HISTORY),
        } as usize;
        let h = self
            .calls
            .run(a, "namespace", move |e, c| {
                e.declaration_history(c, &ns, limit)
            })
            .await?;
        Ok(Response::new(v1::NamespaceHistoryResponse {
            versions: h.iter().map(Into::into).collect(),
        }))
    }

    async fn commit(&self, req: Request<v1::CommitRequest>) -> Res<v1::CommitResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let wire = r
            .change_set
            .ok_or_else(|| status::field(missing("change_set")))?;
        let cs = convert::change_set("change_set", &wire, &self.limits).map_err(status::field)?;
        let info = self.calls.commit(a, "change_set", cs).await?;
        Ok(Response::new(v1::CommitResponse {
            commit: Some(info.into()),
        }))
    }

    async fn dry_run(&self, req: Request<v1::DryRunRequest>) -> Res<v1::DryRunResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let wire = r
            .change_set
            .ok_or_else(|| status::field(missing("change_set")))?;
        let cs = convert::change_set("change_set", &wire, &self.limits).map_err(status::field)?;
        let d = self
            .calls
            .run(a, "change_set", move |e, c| e.dry_run(c, &cs))
            .await?;
        Ok(Response::new((&d).into()))
    }

    async fn import_namespace(
        &self,
        req: Request<v1::ImportNamespaceRequest>,
    ) -> Res<v1::ImportNamespaceResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let files = r.files.into_iter().collect();
        let mut cs = confstrata_core::bundle::change_set(&files, &self.limits)
            .map_err(|e| status::from_core(&e, "files"))?;
        if !r.message.is_empty() {
            cs.message = r.message;
        }
        if r.dry_run {
            let d = self
                .calls
                .run(a, "files", move |e, c| e.dry_run(c, &cs))
                .await?;
            return Ok(Response::new(v1::ImportNamespaceResponse {
                commit: None,
                dry_run: Some((&d).into()),
            }));
        }
        let info = self.calls.commit(a, "files", cs).await?;
        Ok(Response::new(v1::ImportNamespaceResponse {
            commit: Some(info.into()),
            dry_run: None,
        }))
    }

    async fn validate(&self, req: Request<v1::ValidateRequest>) -> Res<v1::ValidateResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let ns =
            convert::optional_namespace_name("namespace", &r.namespace).map_err(status::field)?;
        let (revision, findings) = self
            .calls
            .run(a, "namespace", move |e, c| {
                let revision = e.revision()?;
                Ok((revision, e.validate(c, ns.as_ref())?))
            })
            .await?;
        Ok(Response::new(v1::ValidateResponse {
            revision,
            findings: findings.iter().map(Into::into).collect(),
        }))
    }

    async fn rollback(&self, req: Request<v1::RollbackRequest>) -> Res<v1::RollbackResponse> {
        let a = auth(&req);
        let r = req.into_inner();
        let ns = convert::namespace_name("namespace", &r.namespace).map_err(status::field)?;
        let layer = convert::optional_layer_path("layer", &r.layer).map_err(status::field)?;
        if r.to.as_ref().and_then(|t| t.at.as_ref()).is_none() {
            return Err(status::field(missing("to")));
        }
        let to = convert::read_at("to", r.to.as_ref()).map_err(status::field)?;
        let (dry_run, message, from_backup) = (r.dry_run, r.message, r.from_backup);
        let done = self
            .calls
            .write(a, "to", move |e, c| {
                if from_backup {
                    e.rollback_from_backup(c, &ns, layer.as_ref(), to, &message, dry_run)
                } else {
                    e.rollback(c, &ns, layer.as_ref(), to, &message, dry_run)
                }
            })
            .await?;
        Ok(Response::new(v1::RollbackResponse {
            commit: done.commit.map(Into::into),
            change_set: done.change_set.as_ref().map(Into::into),
        }))
    }

    async fn get_status(&self, req: Request<v1::GetStatusRequest>) -> Res<v1::GetStatusResponse> {
        let status = self.calls.run(auth(&req), "", |e, c| e.status(c)).await?;
        Ok(Response::new((&status).into()))
    }

    type WatchStream =
        Pin<Box<dyn Stream<Item = Result<v1::WatchResponse, Status>> + Send + 'static>>;

    async fn watch(&self, req: Request<v1::WatchRequest>) -> Res<Self::WatchStream> {
        self.watches().stream(req).await
    }
}
