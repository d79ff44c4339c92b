//! End-to-end tests: the real server on 127.0.0.1:0 over a real SQLite store
//! in a temp dir, driven through the generated client over TCP.

mod admin;
mod api;
mod auth;
mod errors;
mod python;
mod tls;
mod transport;
mod validation;
mod watch;

use std::collections::HashMap;
use std::net::SocketAddr;

use confstrata_engine::Engine;
use confstrata_grpc_api::{ServeOptions, serve};
use confstrata_proto::v1::admin_service_client::AdminServiceClient;
use confstrata_proto::v1::config_service_client::ConfigServiceClient;
use confstrata_proto::v1::{self, read_at};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Adds `authorization: Bearer <token>` to every request.
#[derive(Clone)]
pub(crate) struct Bearer(pub(crate) Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A client that sends a token (or none).
pub(crate) type Client = ConfigServiceClient<InterceptedService<Channel, Bearer>>;

/// A client of `addr` that sends `authorization` with the given value.
pub(crate) async fn client_with(addr: SocketAddr, authorization: Option<&str>) -> Client {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    ConfigServiceClient::with_interceptor(
        channel,
        Bearer(authorization.map(|a| a.parse().unwrap())),
    )
}

/// An `AdminService` client that sends a token (or none).
pub(crate) type AdminClient = AdminServiceClient<InterceptedService<Channel, Bearer>>;

/// An `AdminService` client of `addr` that sends `authorization` with the given value.
pub(crate) async fn admin_client_with(
    addr: SocketAddr,
    authorization: Option<&str>,
) -> AdminClient {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    AdminServiceClient::with_interceptor(channel, Bearer(authorization.map(|a| a.parse().unwrap())))
}

/// A running server and a client connected to it.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) client: Client,
    pub(crate) engine: Engine,
    /// The admin token the first start created.
    pub(crate) admin_token: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), confstrata_grpc_api::Error>>>,
    pub(crate) dir: tempfile::TempDir,
}

impl Server {
    pub(crate) async fn start() -> Server {
        Self::start_in(tempfile::tempdir().unwrap(), "127.0.0.1:0").await
    }

    pub(crate) async fn start_in(dir: tempfile::TempDir, listen: &str) -> Server {
        let engine = confstrata_host::open(dir.path()).unwrap();
        let admin_token = match engine.bootstrap_admin().unwrap() {
            Some(t) => t.expose_secret().to_owned(),
            // A restart on the same dir: the tests keep the first token in a file.
            None => std::fs::read_to_string(dir.path().join("test-admin-token")).unwrap(),
        };
        std::fs::write(dir.path().join("test-admin-token"), &admin_token).unwrap();
        let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            engine.clone(),
            listener,
            ServeOptions::default(),
            async {
                let _ = stopped.await;
            },
        ));
        let client = client_with(addr, Some(&format!("Bearer {admin_token}"))).await;
        Server {
            addr,
            client,
            engine,
            admin_token,
            stop: Some(stop),
            task: Some(task),
            dir,
        }
    }

    /// Stops the server gracefully and waits for it; returns the data dir.
    pub(crate) async fn stop(mut self) -> tempfile::TempDir {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
        self.dir
    }

    /// The store's revision and every layer of every namespace, as JSON.
    pub(crate) async fn snapshot(&mut self) -> Value {
        let list = self
            .client
            .list_namespaces(v1::ListNamespacesRequest::default())
            .await
            .unwrap()
            .into_inner();
        let mut layers = serde_json::Map::new();
        for n in &list.namespaces {
            let name = n.spec.as_ref().unwrap().name.clone();
            let l = self
                .client
                .list_layers(v1::ListLayersRequest {
                    namespace: name.clone(),
                    at: None,
                    mask_secrets: false,
                })
                .await
                .unwrap()
                .into_inner();
            let docs: Vec<Value> = l
                .layers
                .iter()
                .map(|l| json!({"layer": l.layer, "revision": l.revision, "doc": serde_json::from_str::<Value>(&l.document_json).unwrap()}))
                .collect();
            layers.insert(name, Value::Array(docs));
        }
        json!({"revision": list.revision, "layers": layers})
    }

    /// Creates the `web` namespace with defaults and env/prod layers (revision 1).
    pub(crate) async fn seed(&mut self) {
        let cs = change_set(json!([
            {"put_namespace": {"spec": {"name": "web", "levels": ["defaults", "env/{env}", "env/{env}/region/{region}"],
                "matrix": {"env": {"values": ["dev", "prod"]}, "region": {"values": ["eu", "us"]}}}}},
            {"put": {"namespace": "web", "layer": "defaults", "document_json": r#"{"db": {"host": "localhost", "pool": 5}, "debug": true}"#}},
            {"put": {"namespace": "web", "layer": "env/prod", "document_json": r#"{"db": {"host": "db.prod"}, "debug": false}"#}},
        ]));
        let r = self
            .client
            .commit(req::commit(cs))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.commit.unwrap().revision, 1);
    }
}

/// Builds a wire change set from a compact JSON description of its operations.
pub(crate) fn change_set(ops: Value) -> v1::ChangeSet {
    let ops = ops
        .as_array()
        .unwrap()
        .iter()
        .map(|spec| {
            let expect_revision = spec.get("expect_revision").and_then(Value::as_u64);
            let (kind, body) = spec
                .as_object()
                .unwrap()
                .iter()
                .find(|(k, _)| *k != "expect_revision")
                .unwrap();
            let s = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
            let op = match kind.as_str() {
                "put_namespace" => {
                    let spec = &body["spec"];
                    v1::operation::Op::PutNamespace(v1::PutNamespaceOp {
                        spec: Some(v1::NamespaceSpec {
                            name: spec["name"].as_str().unwrap().into(),
                            description: String::new(),
                            template: None,
                            generators: Vec::new(),
                            imports: spec
                                .get("imports")
                                .and_then(|v| v.as_array())
                                .map(|a| {
                                    a.iter()
                                        .map(|n| n.as_str().unwrap_or_default().to_owned())
                                        .collect()
                                })
                                .unwrap_or_default(),
                            validation_json: spec
                                .get("validation")
                                .map(ToString::to_string)
                                .unwrap_or_default(),
                            levels: spec["levels"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(|l| l.as_str().unwrap().into())
                                .collect(),
                            matrix: spec["matrix"]
                                .as_object()
                                .map(|m| {
                                    m.iter()
                                        .map(|(k, v)| {
                                            let values = v["values"]
                                                .as_array()
                                                .unwrap()
                                                .iter()
                                                .map(|x| x.as_str().unwrap().into())
                                                .collect();
                                            (k.clone(), v1::MatrixValues { values })
                                        })
                                        .collect()
                                })
                                .unwrap_or_default(),
                        }),
                    })
                }
                "put" => v1::operation::Op::Put(v1::PutLayerOp {
                    namespace: s("namespace"),
                    layer: s("layer"),
                    document_json: s("document_json"),
                }),
                "set" => v1::operation::Op::Set(v1::SetKeyOp {
                    namespace: s("namespace"),
                    layer: s("layer"),
                    key: s("key"),
                    value_json: s("value_json"),
                    secret: body["secret"].as_bool().unwrap_or(false),
                }),
                "unset" => v1::operation::Op::Unset(v1::UnsetKeyOp {
                    namespace: s("namespace"),
                    layer: s("layer"),
                    key: s("key"),
                }),
                "delete" => v1::operation::Op::Delete(v1::DeleteLayerOp {
                    namespace: s("namespace"),
                    layer: s("layer"),
                }),
                other => panic!("unknown op {other}"),
            };
            v1::Operation {
                op: Some(op),
                expect_revision,
            }
        })
        .collect::<Vec<_>>();
    v1::ChangeSet {
        author: "tester".into(),
        message: "test".into(),
        ops,
    }
}

pub(crate) fn ctx(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub(crate) fn at_rev(r: u64) -> Option<v1::ReadAt> {
    Some(v1::ReadAt {
        at: Some(read_at::At::Revision(r)),
    })
}

pub(crate) fn parse(json: &str) -> Value {
    serde_json::from_str(json).unwrap()
}

/// Small builders for the requests the tests send most, so a test says
/// what it asks and nothing else.
pub(crate) mod req {
    use std::collections::HashMap;

    use confstrata_proto::v1;

    /// Commit `change_set`.
    pub(crate) fn commit(change_set: v1::ChangeSet) -> v1::CommitRequest {
        v1::CommitRequest {
            change_set: Some(change_set),
        }
    }

    /// Set one key (its value as JSON text) in a layer.
    pub(crate) fn set(
        namespace: &str,
        layer: &str,
        key: impl Into<String>,
        value_json: impl Into<String>,
    ) -> v1::SetKeysRequest {
        v1::SetKeysRequest {
            namespace: namespace.into(),
            layer: layer.into(),
            entries: vec![v1::KeyValue {
                key: key.into(),
                value_json: value_json.into(),
                secret: false,
            }],
            ..Default::default()
        }
    }

    /// Resolve a namespace for a context.
    pub(crate) fn resolve(namespace: &str, context: HashMap<String, String>) -> v1::ResolveRequest {
        v1::ResolveRequest {
            namespace: namespace.into(),
            context,
            ..Default::default()
        }
    }
}
