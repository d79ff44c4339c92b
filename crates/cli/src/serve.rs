//! `confstrata serve`: settings from defaults < TOML file < `CONFSTRATA_*`
//! environment < flags (figment), structured logs, the gRPC server, and a
//! graceful shutdown on SIGTERM or SIGINT.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use confstrata_grpc_api::ServeOptions;
use confstrata_host::OpenOptions;
use figment::Figment;
use figment::providers::{Env, Format as _, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::args::ServeArgs;
use crate::commands::DEFAULT_DATA_DIR;

/// The server's settings, as read from every source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
    /// Directory of the embedded store.
    data_dir: PathBuf,
    /// Address to listen on.
    listen: String,
    /// `text` or `json`.
    log_format: String,
    /// A tracing filter such as `info`.
    log: String,
    /// Largest gRPC message, in bytes.
    max_message_bytes: usize,
    /// Largest layer document, in bytes.
    max_document_bytes: usize,
    /// Largest change set, in bytes.
    max_change_set_bytes: usize,
    /// Deepest nesting of a document.
    max_depth: usize,
    /// The master key file (default: `master.key` in the data directory);
    /// `CONFSTRATA_MASTER_KEY` wins over it.
    master_key_file: Option<PathBuf>,
    /// Audit every read too (a read that cannot be audited then fails).
    audit_reads: bool,
    /// Serve TLS with this certificate chain (PEM)...
    tls_cert_file: Option<PathBuf>,
    /// ...and this private key (PEM).
    tls_key_file: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM): mutual TLS.
    tls_client_ca_file: Option<PathBuf>,
    /// How a client certificate names its principal: `cn` or `uri:PREFIX`.
    tls_client_identity: Option<String>,
    /// The resolved-view cache holds at most this many views...
    cache_max_views: usize,
    /// ...and about this many bytes (least recently used views go first).
    cache_max_bytes: usize,
    /// Longest a commit's (or a declaration's, or `validate`'s) whole
    /// validation may take, in milliseconds; past it the change is refused.
    validation_budget_ms: u64,
    /// Seconds between scheduled retention runs; 0 turns them off.
    retention_interval_s: u64,
    /// Retention keeps at least this many versions of every layer...
    retention_keep_versions: usize,
    /// ...and every version of this many last days.
    retention_keep_days: u64,
    /// Longest a REST request may take, in milliseconds (not the long
    /// poll or the event stream); `503` past it.
    http_request_timeout_ms: u64,
    /// Most REST requests in flight at once (again not the long poll or
    /// the event stream); `503` with `Retry-After` beyond.
    http_max_in_flight: usize,
    /// Origins a browser page may call the REST API from
    /// (`https://console.example.com`); empty: CORS off.
    http_cors_origins: Vec<String>,
    /// Where backups go (a directory or `file:///path`); empty: no backups.
    backup_to: String,
    /// Seal backups with this key file instead of the master key.
    backup_key_file: Option<PathBuf>,
    /// Seconds between scheduled backups; 0 turns them off (backups can
    /// still be taken on request).
    backup_interval_s: u64,
    /// Every Nth scheduled backup is full, the others incremental (0: all full).
    backup_full_every: u32,
    /// Backup retention: keep the newest N...
    backup_keep_last: usize,
    /// ...and the newest of each of the last D days.
    backup_keep_daily_days: u64,
}

impl Default for Settings {
    fn default() -> Self {
        let o = ServeOptions::default();
        Settings {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            listen: "127.0.0.1:7400".into(),
            log_format: "text".into(),
            log: "info".into(),
            max_message_bytes: o.max_message_bytes,
            max_document_bytes: o.limits.max_document_bytes,
            max_change_set_bytes: o.limits.max_change_set_bytes,
            max_depth: o.limits.max_depth,
            master_key_file: None,
            audit_reads: false,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            tls_client_identity: None,
            cache_max_views: confstrata_engine::Budget::default().max_entries,
            cache_max_bytes: confstrata_engine::Budget::default().max_bytes,
            validation_budget_ms: u64::try_from(
                confstrata_engine::DEFAULT_VALIDATION_BUDGET.as_millis(),
            )
            .unwrap_or(u64::MAX),
            retention_interval_s: 3600,
            retention_keep_versions: confstrata_core::RetentionPolicy::default().keep_versions,
            retention_keep_days: confstrata_core::RetentionPolicy::default().keep_days,
            http_request_timeout_ms: u64::try_from(
                confstrata_http_api::HttpOptions::default()
                    .request_timeout
                    .as_millis(),
            )
            .unwrap_or(u64::MAX),
            http_max_in_flight: confstrata_http_api::HttpOptions::default().max_in_flight,
            http_cors_origins: Vec::new(),
            backup_to: String::new(),
            backup_key_file: None,
            backup_interval_s: 3600,
            backup_full_every: 24,
            backup_keep_last: confstrata_engine::confstrata_backup::Retention::default().keep_last,
            backup_keep_daily_days: confstrata_engine::confstrata_backup::Retention::default()
                .keep_daily_days,
        }
    }
}

/// Flags (and the environment variables clap reads for them) as the top layer.
#[derive(Serialize)]
struct Overrides<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_format: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log: Option<&'a str>,
}

/// Reads the settings: defaults < TOML file < `CONFSTRATA_*` < flags.
pub(crate) fn settings(data_dir: Option<&Path>, args: &ServeArgs) -> Result<Settings> {
    let mut figment = Figment::from(Serialized::defaults(Settings::default()));
    if let Some(file) = &args.config {
        anyhow::ensure!(
            file.is_file(),
            "the settings file {} does not exist",
            file.display()
        );
        figment = figment.merge(Toml::file(file));
    }
    figment = figment
        .merge(Env::prefixed("CONFSTRATA_").only(&[
            "max_message_bytes",
            "max_document_bytes",
            "max_change_set_bytes",
            "max_depth",
            "master_key_file",
            "audit_reads",
            "tls_cert_file",
            "tls_key_file",
            "tls_client_ca_file",
            "tls_client_identity",
            "cache_max_views",
            "cache_max_bytes",
            "validation_budget_ms",
            "retention_interval_s",
            "retention_keep_versions",
            "retention_keep_days",
            "backup_to",
            "backup_key_file",
            "backup_interval_s",
            "backup_full_every",
            "backup_keep_last",
            "backup_keep_daily_days",
        ]))
        .merge(Serialized::defaults(Overrides {
            data_dir,
            listen: args.listen.as_deref(),
            log_format: args.log_format.as_deref(),
            log: args.log.as_deref(),
        }));
    let settings: Settings = figment
        .extract()
        .map_err(|e| anyhow::anyhow!("invalid server settings: {e}"))?;
    anyhow::ensure!(
        settings.log_format == "text" || settings.log_format == "json",
        "invalid server settings: log_format must be \"text\" or \"json\", not {:?}",
        settings.log_format
    );
    anyhow::ensure!(
        settings.retention_keep_versions >= 1,
        "invalid server settings: retention_keep_versions must be at least 1 (the current version)"
    );
    Ok(settings)
}

/// Reads the TLS files the settings name; both or neither of the
/// certificate and key, and a client CA only with them.
fn tls_options(s: &Settings) -> Result<Option<confstrata_grpc_api::TlsOptions>> {
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    match (&s.tls_cert_file, &s.tls_key_file) {
        (None, None) => {
            anyhow::ensure!(
                s.tls_client_ca_file.is_none() && s.tls_client_identity.is_none(),
                "invalid server settings: tls_client_ca_file and tls_client_identity need tls_cert_file and tls_key_file"
            );
            Ok(None)
        }
        (Some(cert), Some(key)) => {
            let client_identity = s
                .tls_client_identity
                .as_deref()
                .map(str::parse::<confstrata_host::ClientIdentity>)
                .transpose()
                .map_err(|e| {
                    anyhow::anyhow!("invalid server settings: tls_client_identity: {e}")
                })?;
            anyhow::ensure!(
                client_identity.is_none() || s.tls_client_ca_file.is_some(),
                "invalid server settings: tls_client_identity needs tls_client_ca_file (mutual TLS)"
            );
            Ok(Some(confstrata_grpc_api::TlsOptions {
                cert_pem: read(cert)?,
                key_pem: read(key)?,
                client_ca_pem: s.tls_client_ca_file.as_deref().map(read).transpose()?,
                client_identity,
            }))
        }
        _ => anyhow::bail!(
            "invalid server settings: give both tls_cert_file and tls_key_file, or neither"
        ),
    }
}

fn init_logging(settings: &Settings) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log)
        .with_context(|| format!("invalid log filter {:?}", settings.log))?;
    // Colours only on a terminal: logs piped to a file or a collector stay plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = if settings.log_format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    result.map_err(|e| anyhow::anyhow!("cannot start logging: {e}"))
}

pub(crate) fn run(data_dir: Option<&Path>, args: &ServeArgs) -> Result<()> {
    let settings = settings(data_dir, args)?;
    init_logging(&settings)?;
    let tls = tls_options(&settings)?;
    let http = confstrata_http_api::HttpOptions {
        request_timeout: std::time::Duration::from_millis(settings.http_request_timeout_ms),
        max_in_flight: settings.http_max_in_flight,
        cors_origins: settings.http_cors_origins.clone(),
    };
    http.check()
        .map_err(|e| anyhow::anyhow!("invalid http_cors_origins: {e}"))?;
    let options = ServeOptions {
        tls,
        max_message_bytes: settings.max_message_bytes,
        limits: confstrata_core::Limits {
            max_document_bytes: settings.max_document_bytes,
            max_change_set_bytes: settings.max_change_set_bytes,
            max_depth: settings.max_depth,
        },
        ..ServeOptions::default()
    };
    let (engine, key) = confstrata_host::open_with(
        &settings.data_dir,
        &OpenOptions {
            master_key_file: settings.master_key_file.clone(),
            audit_reads: settings.audit_reads,
            cache: confstrata_engine::Budget {
                max_entries: settings.cache_max_views,
                max_bytes: settings.cache_max_bytes,
            },
            validation_budget: Some(std::time::Duration::from_millis(
                settings.validation_budget_ms,
            )),
        },
    )
    .with_context(|| format!("cannot open the store in {}", settings.data_dir.display()))?;
    if !settings.backup_to.is_empty() {
        let target = confstrata_engine::confstrata_backup::open_target(&settings.backup_to)
            .context("invalid backup_to")?;
        let keys = settings
            .backup_key_file
            .as_deref()
            .map(confstrata_engine::backup::BackupKeys::from_key_file)
            .transpose()
            .context("invalid backup_key_file")?;
        tracing::info!(target_url = %target.url(), separate_key = keys.is_some(), "backups on");
        engine.set_backups(confstrata_engine::backup::BackupConfig {
            target,
            keys,
            retention: confstrata_engine::confstrata_backup::Retention {
                keep_last: settings.backup_keep_last,
                keep_daily_days: settings.backup_keep_daily_days,
            },
        });
    }
    if key.created {
        tracing::warn!(
            path = %key.origin,
            "created a new master key (mode 0600); sealed values cannot be read without it: back it up apart from the data"
        );
    } else {
        tracing::info!(source = %key.origin, "master key loaded");
    }
    if let Some(token) = engine
        .bootstrap_admin()
        .context("cannot create the first admin token")?
    {
        // Straight to the terminal, never through the logger (whose output
        // may be shipped elsewhere).
        eprintln!(
            "\nFirst start: created the principal `admin` with this token (shown once; stored only as a hash):\n\n    {}\n\nUse it with `export CONFSTRATA_TOKEN=...` or `--token`.\n",
            token.expose_secret()
        );
    }
    // Validation runs on the blocking pool: its threads get the stack every
    // check fits in (reserved, only touched pages committed), so no check
    // starts a thread of its own.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("confstrata-serve")
        .thread_stack_size(confstrata_engine::CHECK_STACK_BYTES)
        .on_thread_start(confstrata_engine::assume_check_stack)
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let shutdown = shutdown_signal();
        let listener = tokio::net::TcpListener::bind(&settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let addr = listener
            .local_addr()
            .context("cannot read the listening address")?;
        tracing::info!(
            %addr,
            data_dir = %settings.data_dir.display(),
            revision = engine.store().revision().unwrap_or(0),
            "listening"
        );
        // Both front doors on one listener: gRPC by its content type,
        // everything else to the HTTP router.
        let host = confstrata_host::Host::new(engine)?;
        let backups_on = !settings.backup_to.is_empty() && settings.backup_interval_s > 0;
        let policy = confstrata_core::RetentionPolicy {
            keep_versions: settings.retention_keep_versions,
            keep_days: settings.retention_keep_days,
        };
        // With scheduled backups, retention runs before each full backup
        // (Host::schedule_backups says why), not on its own timer.
        if settings.retention_interval_s > 0 && !backups_on {
            host.schedule_retention(
                policy,
                std::time::Duration::from_secs(settings.retention_interval_s),
            );
            tracing::info!(
                every_s = settings.retention_interval_s,
                keep_versions = policy.keep_versions,
                keep_days = policy.keep_days,
                "scheduled retention on"
            );
        }
        if backups_on {
            let retention = (settings.retention_interval_s > 0).then_some(policy);
            host.schedule_backups(
                std::time::Duration::from_secs(settings.backup_interval_s),
                settings.backup_full_every,
                retention,
            );
            tracing::info!(
                every_s = settings.backup_interval_s,
                full_every = settings.backup_full_every,
                retention_before_full = retention.is_some(),
                "scheduled backups on"
            );
        }
        let grpc = confstrata_grpc_api::router(&host, &options).await?;
        let http = confstrata_http_api::router_with(&host, &http);
        let doors =
            confstrata_host::Doors::new(http).with_http2(confstrata_grpc_api::CONTENT_TYPE, grpc);
        let serve = confstrata_host::ServeOptions {
            shutdown_grace: options.shutdown_grace,
            tls: options.tls,
        };
        host.serve(listener, doors, &serve, shutdown).await?;
        anyhow::Ok(())
    })?;
    // The engine (and with it the store) was dropped when serve returned.
    tracing::info!("store closed; bye");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is
/// called (before the server says it is listening), so a signal sent as
/// soon as `listening` appears is never the default "terminate now".
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    let int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    async move {
        let wait = |s: std::io::Result<tokio::signal::unix::Signal>, name: &'static str| async move {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for {name}");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            () = wait(int, "SIGINT") => tracing::info!("SIGINT received"),
            () = wait(term, "SIGTERM") => tracing::info!("SIGTERM received"),
        }
    }
}

#[cfg(test)]
mod tests;
