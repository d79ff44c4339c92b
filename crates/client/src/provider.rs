//! [`ConfstrataProvider`]: a figment `Provider` that reads a resolved
//! configuration from a Confstrata server, with an offline fallback file.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use confstrata_core::{At, Context, Document, NamespaceName};
use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider, Source};

use crate::client::{Client, ClientOptions, normalize_addr};
use crate::error::{Error, OneLine, Result};
use crate::fallback::{self, show_context};

/// A figment [`Provider`] of one namespace resolved for one context.
///
/// ```no_run
/// use confstrata_client::{ConfstrataProvider, model::parse_context};
/// use figment::{Figment, providers::{Format, Toml}};
///
/// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let config: serde_json::Value = Figment::new()
///     .merge(Toml::file("local.toml"))
///     .merge(
///         ConfstrataProvider::new("127.0.0.1:7400", "webshop", parse_context("env=prod,region=eu")?)
///             .fallback_file("/var/cache/webshop/confstrata.json"),
///     )
///     .extract()?;
/// # Ok(()) }
/// ```
///
/// Loading is synchronous and works inside or outside a tokio runtime: the
/// fetch runs on a dedicated thread with its own current-thread runtime,
/// bounded by [`timeout`](Self::timeout).
///
/// - On success the document, its revision, namespace and context are
///   written to the fallback file (if one is set) atomically.
/// - If the server cannot answer, the fallback file is read instead and a
///   `tracing` warning names the server's error; without a usable file,
///   loading fails with an error naming the address and the cause.
///
/// [`metadata`](Provider::metadata) names the server and namespace (or the
/// fallback file, when that is where the values came from), so figment's
/// provenance says where a value came from. To know that, `metadata()`
/// performs the load and keeps the result for the `data()` call figment
/// makes right after it.
#[derive(Debug)]
pub struct ConfstrataProvider {
    addr: String,
    /// The bearer token (default: `CONFSTRATA_TOKEN`).
    token: Option<Redacted>,
    namespace: String,
    context: Context,
    fallback: Option<PathBuf>,
    timeout: Duration,
    profile: Profile,
    /// The load made for `metadata()`, kept for the `data()` call after it
    /// (an error as its message: that is all `data()` reports).
    loaded: Mutex<Option<std::result::Result<Loaded, String>>>,
}

/// A loaded configuration and where it came from.
#[derive(Debug, Clone)]
struct Loaded {
    document: Document,
    revision: u64,
    /// `None`: from the server; `Some`: from this fallback file.
    fallback: Option<PathBuf>,
}

impl ConfstrataProvider {
    /// A provider of `namespace` resolved for `context` by the server at
    /// `addr` (`host:port` or `http://host:port`).
    pub fn new(addr: impl Into<String>, namespace: impl Into<String>, context: Context) -> Self {
        ConfstrataProvider {
            addr: addr.into(),
            token: ClientOptions::default()
                .token_from_env()
                .token
                .map(Redacted),
            namespace: namespace.into(),
            context,
            fallback: None,
            timeout: Duration::from_secs(5),
            profile: Profile::Default,
            loaded: Mutex::new(None),
        }
    }

    /// Sets the bearer token (default: `CONFSTRATA_TOKEN`, if set).
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Redacted(token.into()));
        self
    }

    /// Keeps the last configuration read in `path`, and reads it from there
    /// when the server cannot answer.
    #[must_use]
    pub fn fallback_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.fallback = Some(path.into());
        self
    }

    /// Time allowed to connect and resolve (default 5 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The figment profile the values go to (default: `Profile::Default`).
    #[must_use]
    pub fn profile(mut self, profile: impl Into<Profile>) -> Self {
        self.profile = profile.into();
        self
    }

    fn display_addr(&self) -> String {
        normalize_addr(&self.addr).unwrap_or_else(|_| self.addr.clone())
    }

    /// Reads the configuration: from the server, else from the fallback file.
    fn load(&self) -> Result<Loaded> {
        let namespace = NamespaceName::parse(&self.namespace)?;
        match self.fetch(&namespace) {
            Ok(resolved) => {
                if let Some(path) = &self.fallback
                    && let Err(e) = fallback::write(path, &self.display_addr(), &resolved)
                {
                    tracing::warn!(
                        "cannot update the Confstrata fallback file: {}",
                        OneLine(&e)
                    );
                }
                Ok(Loaded {
                    document: resolved.document,
                    revision: resolved.revision,
                    fallback: None,
                })
            }
            // A rejected request (unknown namespace, bad context) is not an
            // outage: serving stale data would hide the mistake.
            Err(e) if !e.is_unavailable() => Err(e),
            Err(e) => {
                let offline = |fallback: Option<String>, source: Error| Error::Offline {
                    addr: self.display_addr(),
                    namespace: self.namespace.clone(),
                    source: Box::new(source),
                    fallback,
                };
                let Some(path) = &self.fallback else {
                    return Err(offline(None, e));
                };
                match fallback::read(path, &namespace, &self.context) {
                    Ok(file) => {
                        tracing::warn!(
                            namespace = %namespace,
                            fallback = %path.display(),
                            revision = file.revision,
                            written_at = %file.written_at,
                            "Confstrata is unreachable; using the fallback file: {}",
                            OneLine(&e)
                        );
                        Ok(Loaded {
                            document: file.document,
                            revision: file.revision,
                            fallback: Some(path.clone()),
                        })
                    }
                    Err(fe) => Err(offline(Some(fe.to_string()), e)),
                }
            }
        }
    }

    /// Resolves on a dedicated thread with its own runtime, so this works
    /// from sync code and from inside any runtime alike.
    fn fetch(&self, namespace: &NamespaceName) -> Result<crate::ResolvedView> {
        let addr = self.addr.clone();
        let shown = self.display_addr();
        let namespace = namespace.clone();
        let context = self.context.clone();
        let timeout = self.timeout;
        let token = self.token.as_ref().map(|t| t.0.clone());
        let worker = std::thread::Builder::new()
            .name("confstrata-provider".into())
            .spawn(move || -> Result<crate::ResolvedView> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| Error::Runtime(format!("cannot start a runtime: {e}")))?;
                rt.block_on(async {
                    let mut options = ClientOptions::default().connect_timeout(timeout);
                    options.token = token;
                    let work = async {
                        let client = Client::connect_with(&addr, options).await?;
                        client
                            .resolve(&namespace, &context, At::Latest, false)
                            .await
                    };
                    tokio::time::timeout(timeout, work)
                        .await
                        .map_err(|_| Error::Timeout {
                            addr: shown,
                            after: timeout,
                        })?
                })
            })
            .map_err(|e| Error::Runtime(format!("cannot start a thread: {e}")))?;
        worker
            .join()
            .map_err(|_| Error::Runtime("the fetch thread panicked".into()))?
    }

    /// The cached result of the load made for `metadata()`, or a new load;
    /// `keep` caches it for the next call.
    fn loaded(&self, keep: bool) -> std::result::Result<Loaded, String> {
        let mut slot = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        let result = match slot.take() {
            Some(r) => r,
            None => self.load().map_err(|e| self.describe(&e)),
        };
        if keep {
            *slot = Some(result.clone());
        }
        result
    }

    /// An error as one line that names the server and the namespace.
    fn describe(&self, e: &Error) -> String {
        match e {
            // Already says where and why, including the fallback file.
            Error::Offline { .. } => e.to_string(),
            other => format!(
                "cannot load namespace {:?} from Confstrata at {}: {other}",
                self.namespace,
                self.display_addr()
            ),
        }
    }

    fn source(&self) -> String {
        format!(
            "confstrata {}/{} context {}",
            self.display_addr(),
            self.namespace,
            show_context(&self.context)
        )
    }
}

impl Provider for ConfstrataProvider {
    fn metadata(&self) -> Metadata {
        let name = format!(
            "Confstrata namespace `{}` at {}",
            self.namespace,
            self.display_addr()
        );
        match self.loaded(true) {
            Ok(Loaded {
                fallback: Some(path),
                revision,
                ..
            }) => Metadata::from(
                format!("{name} (server unreachable: fallback file, revision {revision})"),
                Source::File(path),
            ),
            Ok(Loaded { revision, .. }) => Metadata::from(
                format!("{name} (revision {revision})"),
                Source::Custom(self.source()),
            ),
            Err(_) => Metadata::from(name, Source::Custom(self.source())),
        }
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let loaded = self.loaded(false).map_err(figment::Error::from)?;
        let value = Value::serialize(&loaded.document)?;
        let dict = value.into_dict().ok_or_else(|| {
            figment::Error::from("the resolved configuration is not a table".to_owned())
        })?;
        Ok(Map::from([(self.profile.clone(), dict)]))
    }
}

/// A token that `Debug` does not print.
#[derive(Clone)]
struct Redacted(String);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}
