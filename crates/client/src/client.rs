//! [`Client`]: every RPC of `confstrata.v1.ConfigService` on model types
//! (those of `AdminService` are in `admin.rs`).

use std::time::Duration;

use confstrata_core::{
    At, ChangeSet, CommitInfo, Context, DiffEntry, Document, KeyPath, LayerPath, LayerRecord,
    LayerVersion, NamespaceName, NamespaceRecord, NamespaceSpec,
};
use confstrata_proto::convert;
use confstrata_proto::v1;
use confstrata_proto::v1::admin_service_client::AdminServiceClient;
use confstrata_proto::v1::backup_service_client::BackupServiceClient;
use confstrata_proto::v1::config_service_client::ConfigServiceClient;
use confstrata_proto::v1::template_service_client::TemplateServiceClient;
use tonic::transport::{Channel, Endpoint};

use crate::error::{Error, Result};
use crate::types::{
    DryRun, ExplainView, KeyValue, LayerDiff, ResolvedView, Rollback, ServerStatus, WriteOptions,
};
use crate::watch::{ResolvedStream, WatchOptions, WatchStream};
use crate::wire;

/// How a [`Client`] connects.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientOptions {
    /// Time allowed to open the TCP/HTTP2 connection.
    pub connect_timeout: Duration,
    /// Time allowed for each unary call (`None`: no limit). Watches are not limited.
    pub request_timeout: Option<Duration>,
    /// The largest message accepted from the server, in bytes.
    pub max_message_bytes: usize,
    /// The bearer token sent with every call (`cst_...`); `None` sends
    /// none, which a server refuses with `UNAUTHENTICATED`.
    pub token: Option<String>,
    /// Connect over TLS (an `https://` address, or any address when set).
    pub tls: Option<ClientTls>,
}

/// TLS for a client: the CA that signed the server's certificate, and a
/// client certificate for a server that asks for one (mutual TLS).
#[derive(Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ClientTls {
    /// The CA certificate(s) to trust, PEM.
    pub ca_pem: Vec<u8>,
    /// This client's certificate chain and private key, PEM.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// The name to check the server's certificate against (default: the
    /// address's host).
    pub domain: Option<String>,
}

impl ClientTls {
    /// Trust `ca_pem`.
    pub fn new(ca_pem: Vec<u8>) -> ClientTls {
        ClientTls {
            ca_pem,
            ..ClientTls::default()
        }
    }

    /// Present this certificate chain and key to the server.
    #[must_use]
    pub fn identity(mut self, cert_pem: Vec<u8>, key_pem: Vec<u8>) -> ClientTls {
        self.identity = Some((cert_pem, key_pem));
        self
    }
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("ClientTls")
            .field("client_certificate", &self.identity.is_some())
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: None,
            // Documents and change sets may be up to 16 MiB; leave room for
            // a resolved answer with provenance.
            max_message_bytes: 64 * 1024 * 1024,
            token: None,
            tls: None,
        }
    }
}

impl ClientOptions {
    /// Sets [`ClientOptions::connect_timeout`].
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`ClientOptions::token`].
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Sets [`ClientOptions::tls`].
    #[must_use]
    pub fn tls(mut self, tls: ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sets [`ClientOptions::token`] from `CONFSTRATA_TOKEN`, if set and not empty.
    #[must_use]
    pub fn token_from_env(mut self) -> Self {
        if let Ok(t) = std::env::var("CONFSTRATA_TOKEN")
            && !t.trim().is_empty()
        {
            self.token = Some(t.trim().to_owned());
        }
        self
    }

    /// Sets [`ClientOptions::request_timeout`].
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// Sets [`ClientOptions::max_message_bytes`].
    #[must_use]
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }
}

/// An async client of a Confstrata server over one HTTP/2 connection
/// (a tonic [`Channel`], which reconnects by itself). Cheap to clone: clones
/// share the connection.
#[derive(Clone)]
pub struct Client {
    addr: String,
    raw: ConfigServiceClient<Channel>,
    /// `AdminService` over the same connection.
    admin: AdminServiceClient<Channel>,
    /// `BackupService` over the same connection.
    backup: BackupServiceClient<Channel>,
    /// `TemplateService` over the same connection.
    templates: TemplateServiceClient<Channel>,
    request_timeout: Option<Duration>,
    /// `Bearer <token>`, ready to send.
    authorization: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Client")
            .field("addr", &self.addr)
            .field("request_timeout", &self.request_timeout)
            .field("authenticated", &self.authorization.is_some())
            .finish()
    }
}

/// Turns `host:port` or `http://host:port` into an endpoint URI.
pub(crate) fn normalize_addr(addr: &str) -> Result<String> {
    let trimmed = addr.trim();
    let invalid = |reason: &str| Error::InvalidAddress {
        addr: addr.to_owned(),
        reason: reason.to_owned(),
    };
    if trimmed.is_empty() {
        return Err(invalid("it is empty; give host:port, e.g. 127.0.0.1:7400"));
    }
    let uri = if let Some(rest) = trimmed.strip_prefix("http://") {
        if rest.is_empty() {
            return Err(invalid("it has no host; give http://host:port"));
        }
        trimmed.trim_end_matches('/').to_owned()
    } else if let Some(rest) = trimmed.strip_prefix("https://") {
        if rest.is_empty() {
            return Err(invalid("it has no host; give https://host:port"));
        }
        trimmed.trim_end_matches('/').to_owned()
    } else if trimmed.contains("://") {
        return Err(invalid("only http:// addresses are supported"));
    } else {
        format!("http://{}", trimmed.trim_end_matches('/'))
    };
    let parsed: tonic::codegen::http::Uri = uri
        .parse()
        .map_err(|e| invalid(&format!("{e}; give host:port, e.g. 127.0.0.1:7400")))?;
    if parsed.host().is_none_or(str::is_empty) {
        return Err(invalid("it has no host; give host:port"));
    }
    if parsed.path() != "/" && !parsed.path().is_empty() {
        return Err(invalid("it must not have a path; give host:port"));
    }
    Ok(uri)
}

impl Client {
    /// Connects to a server at `127.0.0.1:7400` or `http://127.0.0.1:7400`,
    /// failing now if it cannot be reached.
    pub async fn connect(addr: &str) -> Result<Client> {
        Client::connect_with(addr, ClientOptions::default()).await
    }

    /// [`Client::connect`] with options.
    pub async fn connect_with(addr: &str, options: ClientOptions) -> Result<Client> {
        let (uri, endpoint) = endpoint(addr, &options)?;
        let channel = endpoint
            .connect()
            .await
            .map_err(|source| Error::Transport {
                addr: uri.clone(),
                source,
            })?;
        Client::from_channel(uri, channel, &options)
    }

    /// A client that connects on its first call (and reconnects as needed),
    /// so it can be made while the server is down.
    pub fn connect_lazy(addr: &str, options: ClientOptions) -> Result<Client> {
        let (uri, endpoint) = endpoint(addr, &options)?;
        let channel = endpoint.connect_lazy();
        Client::from_channel(uri, channel, &options)
    }

    /// A client over an existing channel; `addr` is only used in messages.
    /// Fails if the token cannot be sent as a header (it is not ASCII).
    pub fn from_channel(
        addr: impl Into<String>,
        channel: Channel,
        options: &ClientOptions,
    ) -> Result<Self> {
        let authorization = options
            .token
            .as_ref()
            .map(|t| {
                format!("Bearer {t}")
                    .parse()
                    .map_err(|_| Error::InvalidToken {
                        reason: "it holds characters a header cannot carry; a token is `cst_` and 43 base64url characters".to_owned(),
                    })
            })
            .transpose()?;
        Ok(Client {
            addr: addr.into(),
            admin: AdminServiceClient::new(channel.clone())
                .max_decoding_message_size(options.max_message_bytes)
                .max_encoding_message_size(options.max_message_bytes),
            backup: BackupServiceClient::new(channel.clone())
                .max_decoding_message_size(options.max_message_bytes)
                .max_encoding_message_size(options.max_message_bytes),
            templates: TemplateServiceClient::new(channel.clone())
                .max_decoding_message_size(options.max_message_bytes)
                .max_encoding_message_size(options.max_message_bytes),
            raw: ConfigServiceClient::new(channel)
                .max_decoding_message_size(options.max_message_bytes)
                .max_encoding_message_size(options.max_message_bytes),
            request_timeout: options.request_timeout,
            authorization,
        })
    }

    /// A unary request, with the configured deadline (sent to the server as
    /// `grpc-timeout`, so it stops working on an abandoned call too).
    pub(crate) fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = self.authorized(message);
        if let Some(t) = self.request_timeout {
            request.set_timeout(t);
        }
        request
    }

    /// A request with the token, without a deadline (for watches).
    fn authorized<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(a) = &self.authorization {
            request.metadata_mut().insert("authorization", a.clone());
        }
        request
    }

    /// The server address, as `http://host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The generated stub, for anything this client does not wrap (send
    /// the token yourself: the server refuses every call but health and
    /// reflection without one, before it reads the message).
    pub fn raw(&self) -> ConfigServiceClient<Channel> {
        self.raw.clone()
    }

    /// The generated `AdminService` stub over the same connection (send
    /// the token yourself; the methods in [`Client`] do).
    pub fn raw_admin(&self) -> AdminServiceClient<Channel> {
        self.admin.clone()
    }

    /// Takes a backup now on the server's backup target (`backup` right):
    /// incremental since the newest one, or full.
    pub async fn create_backup(&self, incremental: bool) -> Result<v1::CreateBackupResponse> {
        Ok(self
            .backup
            .clone()
            .create_backup(self.request(v1::CreateBackupRequest { incremental }))
            .await?
            .into_inner())
    }

    /// The backups on the server's backup target, oldest first.
    pub async fn list_backups(&self) -> Result<v1::ListBackupsResponse> {
        Ok(self
            .backup
            .clone()
            .list_backups(self.request(v1::ListBackupsRequest {}))
            .await?
            .into_inner())
    }

    /// Verifies a backup end to end on the server (`None`: the newest).
    pub async fn verify_backup(&self, id: Option<&str>) -> Result<v1::VerifyBackupResponse> {
        Ok(self
            .backup
            .clone()
            .verify_backup(self.request(v1::VerifyBackupRequest {
                id: id.unwrap_or_default().to_owned(),
            }))
            .await?
            .into_inner())
    }

    /// The template catalogue: the library shipped in the server, then the
    /// user templates (`TemplateService.ListTemplates`).
    pub async fn list_templates(&self) -> Result<v1::ListTemplatesResponse> {
        Ok(self
            .templates
            .clone()
            .list_templates(self.request(v1::ListTemplatesRequest {}))
            .await?
            .into_inner())
    }

    /// One template by `NAME` or `NAME@VERSION`.
    pub async fn get_template(&self, template: &str) -> Result<v1::TemplateEntry> {
        let r = self
            .templates
            .clone()
            .get_template(self.request(v1::GetTemplateRequest {
                template: template.to_owned(),
            }))
            .await?
            .into_inner();
        r.template.ok_or_else(|| {
            crate::error::Error::from(tonic::Status::internal("no template in the answer"))
        })
    }

    /// Applies a template to a new namespace: rendered, validated and
    /// dry-run, or committed (`TemplateService.ApplyTemplate`).
    pub async fn apply_template(
        &self,
        req: v1::ApplyTemplateRequest,
    ) -> Result<v1::ApplyTemplateResponse> {
        Ok(self
            .templates
            .clone()
            .apply_template(self.request(req))
            .await?
            .into_inner())
    }

    /// Runs a namespace's generators into the change set that writes what
    /// they compute, dry-run or committed (`TemplateService.Generate`).
    pub async fn generate(&self, req: v1::GenerateRequest) -> Result<v1::GenerateResponse> {
        Ok(self
            .templates
            .clone()
            .generate(self.request(req))
            .await?
            .into_inner())
    }

    /// A namespace's local overrides of its template.
    pub async fn diff_template(&self, ns: &NamespaceName) -> Result<v1::DiffTemplateResponse> {
        Ok(self
            .templates
            .clone()
            .diff_template(self.request(v1::DiffTemplateRequest {
                namespace: ns.to_string(),
            }))
            .await?
            .into_inner())
    }

    /// Plans (and dry-runs or commits) the upgrade of a namespace to
    /// another version of its template.
    pub async fn upgrade_template(
        &self,
        req: v1::UpgradeTemplateRequest,
    ) -> Result<v1::UpgradeTemplateResponse> {
        Ok(self
            .templates
            .clone()
            .upgrade_template(self.request(req))
            .await?
            .into_inner())
    }

    /// Stores a user template after checking it (dry run unless `commit`).
    pub async fn put_template(
        &self,
        req: v1::PutTemplateRequest,
    ) -> Result<v1::PutTemplateResponse> {
        Ok(self
            .templates
            .clone()
            .put_template(self.request(req))
            .await?
            .into_inner())
    }

    /// Declares a namespace; `replace` replaces an existing declaration
    /// (otherwise the call fails with `ALREADY_EXISTS`).
    pub async fn create_namespace(
        &self,
        spec: &NamespaceSpec,
        replace: bool,
        author: &str,
    ) -> Result<(NamespaceRecord, CommitInfo)> {
        let r = self
            .raw()
            .create_namespace(self.request(v1::CreateNamespaceRequest {
                spec: Some(spec.into()),
                replace,
                author: author.to_owned(),
            }))
            .await?
            .into_inner();
        let ns = wire::required("namespace", r.namespace.as_ref())?;
        let commit = wire::required("commit", r.commit.as_ref())?;
        Ok((
            convert::namespace_record("namespace", ns)?,
            convert::commit_info("commit", commit)?,
        ))
    }

    /// Every namespace, by name.
    pub async fn namespaces(&self, at: At) -> Result<Vec<NamespaceRecord>> {
        Ok(self.list_namespaces(at).await?.1)
    }

    /// The store's current revision.
    ///
    /// The API reports it with every listing; this reads the namespace list.
    pub async fn revision(&self) -> Result<u64> {
        Ok(self.status().await?.revision)
    }

    /// The store's revision range and size, and the server's version.
    pub async fn status(&self) -> Result<ServerStatus> {
        let r = self
            .raw()
            .get_status(self.request(v1::GetStatusRequest {}))
            .await?
            .into_inner();
        Ok(ServerStatus::from(&r))
    }

    async fn list_namespaces(&self, at: At) -> Result<(u64, Vec<NamespaceRecord>)> {
        let r = self
            .raw()
            .list_namespaces(self.request(v1::ListNamespacesRequest {
                at: convert::read_at_to_wire(at),
            }))
            .await?
            .into_inner();
        Ok((
            r.revision,
            wire::list("namespaces", &r.namespaces, convert::namespace_record)?,
        ))
    }

    /// One namespace declaration.
    pub async fn namespace(&self, name: &NamespaceName, at: At) -> Result<NamespaceRecord> {
        let r = self
            .raw()
            .get_namespace(self.request(v1::GetNamespaceRequest {
                name: name.to_string(),
                at: convert::read_at_to_wire(at),
            }))
            .await?
            .into_inner();
        let ns = wire::required("namespace", r.namespace.as_ref())?;
        Ok(convert::namespace_record("namespace", ns)?)
    }

    /// One layer.
    pub async fn layer(
        &self,
        ns: &NamespaceName,
        layer: &LayerPath,
        at: At,
    ) -> Result<LayerRecord> {
        let r = self
            .raw()
            .get_layer(self.request(v1::GetLayerRequest {
                namespace: ns.to_string(),
                layer: layer.to_string(),
                at: convert::read_at_to_wire(at),
            }))
            .await?
            .into_inner();
        let layer = wire::required("layer", r.layer.as_ref())?;
        Ok(convert::layer_record("layer", layer)?)
    }

    /// Every layer of a namespace, by path.
    pub async fn layers(&self, ns: &NamespaceName, at: At) -> Result<Vec<LayerRecord>> {
        self.list_layers(ns, at, false).await
    }

    /// Every layer of a namespace with every sealed value masked, even for
    /// a caller allowed to read secrets: for exports.
    pub async fn export_layers(&self, ns: &NamespaceName, at: At) -> Result<Vec<LayerRecord>> {
        self.list_layers(ns, at, true).await
    }

    async fn list_layers(
        &self,
        ns: &NamespaceName,
        at: At,
        mask_secrets: bool,
    ) -> Result<Vec<LayerRecord>> {
        let r = self
            .raw()
            .list_layers(self.request(v1::ListLayersRequest {
                namespace: ns.to_string(),
                at: convert::read_at_to_wire(at),
                mask_secrets,
            }))
            .await?
            .into_inner();
        Ok(wire::list("layers", &r.layers, convert::layer_record)?)
    }

    /// Replaces a whole layer.
    pub async fn put_layer(
        &self,
        ns: &NamespaceName,
        layer: &LayerPath,
        document: &Document,
        options: &WriteOptions,
    ) -> Result<CommitInfo> {
        let r = self
            .raw()
            .put_layer(self.request(v1::PutLayerRequest {
                namespace: ns.to_string(),
                layer: layer.to_string(),
                document_json: convert::to_json(document),
                expect_revision: options.expect_revision,
                message: options.message.clone(),
                author: options.author.clone(),
            }))
            .await?
            .into_inner();
        commit_of(r.commit.as_ref())
    }

    /// Sets keys in a layer (creating it if needed), as one revision.
    pub async fn set_keys(
        &self,
        ns: &NamespaceName,
        layer: &LayerPath,
        entries: &[KeyValue],
        options: &WriteOptions,
    ) -> Result<CommitInfo> {
        let r = self
            .raw()
            .set_keys(
                self.request(v1::SetKeysRequest {
                    namespace: ns.to_string(),
                    layer: layer.to_string(),
                    entries: entries
                        .iter()
                        .map(|(k, v)| v1::KeyValue {
                            key: k.to_string(),
                            value_json: convert::to_json(v),
                            secret: options.secret,
                        })
                        .collect(),
                    expect_revision: options.expect_revision,
                    message: options.message.clone(),
                    author: options.author.clone(),
                }),
            )
            .await?
            .into_inner();
        commit_of(r.commit.as_ref())
    }

    /// Removes keys from a layer (each must exist), as one revision.
    pub async fn unset_keys(
        &self,
        ns: &NamespaceName,
        layer: &LayerPath,
        keys: &[KeyPath],
        options: &WriteOptions,
    ) -> Result<CommitInfo> {
        let r = self
            .raw()
            .unset_keys(self.request(v1::UnsetKeysRequest {
                namespace: ns.to_string(),
                layer: layer.to_string(),
                keys: keys.iter().map(ToString::to_string).collect(),
                expect_revision: options.expect_revision,
                message: options.message.clone(),
                author: options.author.clone(),
            }))
            .await?
            .into_inner();
        commit_of(r.commit.as_ref())
    }

    /// Deletes a layer.
    pub async fn delete_layer(
        &self,
        ns: &NamespaceName,
        layer: &LayerPath,
        options: &WriteOptions,
    ) -> Result<CommitInfo> {
        let r = self
            .raw()
            .delete_layer(self.request(v1::DeleteLayerRequest {
                namespace: ns.to_string(),
                layer: layer.to_string(),
                expect_revision: options.expect_revision,
                message: options.message.clone(),
                author: options.author.clone(),
            }))
            .await?
            .into_inner();
        commit_of(r.commit.as_ref())
    }

    /// Resolves a namespace for a context; with `with_provenance`, also
    /// every leaf's layer and revision.
    pub async fn resolve(
        &self,
        ns: &NamespaceName,
        context: &Context,
        at: At,
        with_provenance: bool,
    ) -> Result<ResolvedView> {
        self.resolve_section(ns, context, None, at, with_provenance)
            .await
    }

    /// [`Client::resolve`] of one section (`db` for `db.*`): the document
    /// holds only what is at `section` or below, under its full path.
    pub async fn resolve_section(
        &self,
        ns: &NamespaceName,
        context: &Context,
        section: Option<&KeyPath>,
        at: At,
        with_provenance: bool,
    ) -> Result<ResolvedView> {
        let r = self
            .raw()
            .resolve(self.request(v1::ResolveRequest {
                namespace: ns.to_string(),
                context: wire::context_map(context),
                at: convert::read_at_to_wire(at),
                with_provenance,
                section: section.map(ToString::to_string).unwrap_or_default(),
            }))
            .await?
            .into_inner();
        Ok(wire::resolved(ns, context, &r)?)
    }

    /// Explains one key: every layer that sets it, most specific first, with
    /// the change behind each.
    pub async fn explain(
        &self,
        ns: &NamespaceName,
        context: &Context,
        key: &KeyPath,
        at: At,
    ) -> Result<ExplainView> {
        let r = self
            .raw()
            .explain(self.request(v1::ExplainRequest {
                namespace: ns.to_string(),
                context: wire::context_map(context),
                key: key.to_string(),
                at: convert::read_at_to_wire(at),
            }))
            .await?
            .into_inner();
        Ok(wire::explained(&r)?)
    }

    /// Compares two layers of a namespace, each at its own state (the same
    /// layer twice compares it over time). A missing layer counts as empty.
    pub async fn diff_layers(
        &self,
        ns: &NamespaceName,
        old: (&LayerPath, At),
        new: (&LayerPath, At),
    ) -> Result<Vec<DiffEntry>> {
        let r = self
            .diff(
                ns,
                v1::diff_request::Comparison::Layers(v1::LayersComparison {
                    old_layer: old.0.to_string(),
                    new_layer: new.0.to_string(),
                    old_at: convert::read_at_to_wire(old.1),
                    new_at: convert::read_at_to_wire(new.1),
                }),
            )
            .await?;
        Ok(wire::list("changes", &r.changes, convert::diff_entry)?)
    }

    /// Compares two resolved contexts, each at its own state.
    pub async fn diff_contexts(
        &self,
        ns: &NamespaceName,
        old: (&Context, At),
        new: (&Context, At),
    ) -> Result<Vec<DiffEntry>> {
        let r = self
            .diff(
                ns,
                v1::diff_request::Comparison::Contexts(v1::ContextsComparison {
                    old_context: wire::context_map(old.0),
                    new_context: wire::context_map(new.0),
                    old_at: convert::read_at_to_wire(old.1),
                    new_at: convert::read_at_to_wire(new.1),
                }),
            )
            .await?;
        Ok(wire::list("changes", &r.changes, convert::diff_entry)?)
    }

    /// Compares every layer of a namespace (or one layer) between two states.
    pub async fn diff_revisions(
        &self,
        ns: &NamespaceName,
        layer: Option<&LayerPath>,
        from: At,
        to: At,
    ) -> Result<Vec<LayerDiff>> {
        let r = self
            .diff(
                ns,
                v1::diff_request::Comparison::Revisions(v1::RevisionsComparison {
                    layer: layer.map(ToString::to_string).unwrap_or_default(),
                    from: convert::read_at_to_wire(from),
                    to: convert::read_at_to_wire(to),
                }),
            )
            .await?;
        Ok(wire::list("layers", &r.layers, wire::layer_diff)?)
    }

    async fn diff(
        &self,
        ns: &NamespaceName,
        comparison: v1::diff_request::Comparison,
    ) -> Result<v1::DiffResponse> {
        Ok(self
            .raw()
            .diff(self.request(v1::DiffRequest {
                namespace: ns.to_string(),
                comparison: Some(comparison),
            }))
            .await?
            .into_inner())
    }

    /// Versions of one layer, or of every layer of a namespace, newest first.
    pub async fn history(
        &self,
        ns: &NamespaceName,
        layer: Option<&LayerPath>,
        limit: usize,
    ) -> Result<Vec<LayerVersion>> {
        let r = self
            .raw()
            .history(self.request(v1::HistoryRequest {
                namespace: ns.to_string(),
                layer: layer.map(ToString::to_string).unwrap_or_default(),
                limit: u32::try_from(limit).unwrap_or(u32::MAX),
            }))
            .await?
            .into_inner();
        Ok(wire::list("versions", &r.versions, convert::layer_version)?)
    }

    /// Commits a change set atomically as one revision.
    pub async fn commit(&self, change_set: &ChangeSet) -> Result<CommitInfo> {
        let r = self
            .raw()
            .commit(self.request(v1::CommitRequest {
                change_set: Some(change_set.into()),
            }))
            .await?
            .into_inner();
        commit_of(r.commit.as_ref())
    }

    /// Checks a change set exactly as a commit would and returns the diff it
    /// would make, without committing.
    pub async fn dry_run(&self, change_set: &ChangeSet) -> Result<DryRun> {
        let r = self
            .raw()
            .dry_run(self.request(v1::DryRunRequest {
                change_set: Some(change_set.into()),
            }))
            .await?
            .into_inner();
        Ok(wire::dry_run(&r)?)
    }

    /// Versions of a namespace's declaration, newest first.
    pub async fn declaration_history(
        &self,
        ns: &NamespaceName,
        limit: usize,
    ) -> Result<Vec<confstrata_core::DeclarationVersion>> {
        let r = self
            .raw()
            .namespace_history(self.request(v1::NamespaceHistoryRequest {
                namespace: ns.to_string(),
                limit: u32::try_from(limit).unwrap_or(u32::MAX),
            }))
            .await?
            .into_inner();
        Ok(wire::list(
            "versions",
            &r.versions,
            convert::declaration_version,
        )?)
    }

    /// Runs the validation chains on the current state: every context of
    /// `ns` (or of every namespace), without committing.
    pub async fn validate(
        &self,
        ns: Option<&NamespaceName>,
    ) -> Result<Vec<confstrata_core::Finding>> {
        let r = self
            .raw()
            .validate(self.request(v1::ValidateRequest {
                namespace: ns.map(ToString::to_string).unwrap_or_default(),
            }))
            .await?
            .into_inner();
        Ok(wire::list("findings", &r.findings, convert::finding)?)
    }

    /// Restores a namespace (or one layer) to its state at `to`, as a new
    /// change set; with `dry_run`, only returns that change set.
    pub async fn rollback(
        &self,
        ns: &NamespaceName,
        layer: Option<&LayerPath>,
        to: At,
        options: &WriteOptions,
        dry_run: bool,
    ) -> Result<Rollback> {
        self.rollback_to(ns, layer, to, options, dry_run, false)
            .await
    }

    /// [`Client::rollback`] to a state read from the server's backups
    /// (`from_backup`), for a revision or time retention has removed.
    pub async fn rollback_to(
        &self,
        ns: &NamespaceName,
        layer: Option<&LayerPath>,
        to: At,
        options: &WriteOptions,
        dry_run: bool,
        from_backup: bool,
    ) -> Result<Rollback> {
        let r = self
            .raw()
            .rollback(self.request(v1::RollbackRequest {
                namespace: ns.to_string(),
                layer: layer.map(ToString::to_string).unwrap_or_default(),
                to: convert::read_at_to_wire(to),
                message: options.message.clone(),
                author: options.author.clone(),
                dry_run,
                from_backup,
            }))
            .await?
            .into_inner();
        let change_set = match &r.change_set {
            Some(cs) if !cs.ops.is_empty() => Some(convert::change_set(
                "change_set",
                cs,
                &wire::response_limits(),
            )?),
            _ => None,
        };
        Ok(Rollback {
            commit: r
                .commit
                .as_ref()
                .map(|c| convert::commit_info("commit", c))
                .transpose()?,
            change_set,
        })
    }

    /// Streams change events of a namespace (or, with a context, of one
    /// resolved configuration) from `start_revision` on (0: only changes
    /// after the current revision). The stream ends with an error if the
    /// connection breaks; [`Client::watch_resolved`] reconnects by itself.
    pub async fn watch(
        &self,
        ns: &NamespaceName,
        context: Option<&Context>,
        start_revision: u64,
    ) -> Result<WatchStream> {
        let stream = self
            .raw()
            .watch(self.authorized(v1::WatchRequest {
                namespace: ns.to_string(),
                context: context.map(wire::context_map).unwrap_or_default(),
                start_revision,
                // A context, even an empty one, means a resolved watch.
                resolve: context.is_some(),
            }))
            .await?
            .into_inner();
        Ok(WatchStream::new(stream))
    }

    /// The resolved configuration of `context`, now and after every change:
    /// see [`ResolvedStream`].
    pub fn watch_resolved(&self, ns: &NamespaceName, context: &Context) -> ResolvedStream {
        self.watch_resolved_with(ns, context, WatchOptions::default())
    }

    /// [`Client::watch_resolved`] with options (backoff).
    pub fn watch_resolved_with(
        &self,
        ns: &NamespaceName,
        context: &Context,
        options: WatchOptions,
    ) -> ResolvedStream {
        ResolvedStream::new(self.clone(), ns.clone(), context.clone(), options)
    }
}

fn endpoint(addr: &str, options: &ClientOptions) -> Result<(String, Endpoint)> {
    let mut uri = normalize_addr(addr)?;
    if options.tls.is_some()
        && let Some(rest) = uri.strip_prefix("http://")
    {
        uri = format!("https://{rest}");
    }
    if uri.starts_with("https://") && options.tls.is_none() {
        return Err(Error::InvalidAddress {
            addr: addr.to_owned(),
            reason: "an https:// server needs the CA that signed its certificate (ClientOptions::tls; CLI: --tls-ca)".to_owned(),
        });
    }
    let mut endpoint = Endpoint::from_shared(uri.clone())
        .map_err(|e| Error::InvalidAddress {
            addr: addr.to_owned(),
            reason: e.to_string(),
        })?
        .connect_timeout(options.connect_timeout)
        .tcp_nodelay(true)
        // Many watches on one connection receive many small events: h2
        // closes a connection that holds more unread small DATA frames than
        // half its connection window pays for, so the window is large (as
        // the server's is).
        .initial_connection_window_size(16 << 20)
        // Notice a dead server on an idle watch.
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    if let Some(tls) = &options.tls {
        let mut config = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&tls.ca_pem));
        if let Some((cert, key)) = &tls.identity {
            config = config.identity(tonic::transport::Identity::from_pem(cert, key));
        }
        if let Some(d) = &tls.domain {
            config = config.domain_name(d.clone());
        }
        endpoint = endpoint
            .tls_config(config)
            .map_err(|source| Error::Transport {
                addr: uri.clone(),
                source,
            })?;
    }
    Ok((uri, endpoint))
}

pub(crate) fn commit_of(c: Option<&v1::CommitInfo>) -> Result<CommitInfo> {
    let c = wire::required("commit", c)?;
    Ok(convert::commit_info("commit", c)?)
}
