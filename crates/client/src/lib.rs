//! The Rust client of Confstrata, a hierarchical configuration server.
//!
//! - [`Client`]: every RPC of `confstrata.v1.ConfigService` and
//!   `confstrata.v1.AdminService` (data keys, principals and tokens, the
//!   audit log: [`Client::rotate_key`], [`Client::issue_token`],
//!   [`Client::audit_verify`], …), async over one HTTP/2 connection,
//!   taking and returning `confstrata-core` model values (re-exported as
//!   [`model`]). Errors keep the gRPC code and details
//!   ([`Error::is_conflict`], [`Error::field`], [`Error::current_revision`]).
//! - [`ConfstrataProvider`]: a figment `Provider`, so a service merges its
//!   central configuration over local files, with an offline fallback file
//!   used when the server is down.
//! - [`Client::watch_resolved`] and [`Reloader`]: the configuration after
//!   every change, resuming without gaps after a disconnect.
//!
//! ```no_run
//! use confstrata_client::{Client, WriteOptions, model::{At, parse_context}};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::connect("127.0.0.1:7400").await?;
//! let ns = "webshop".parse()?;
//! let ctx = parse_context("env=prod,region=eu")?;
//!
//! // Change one key, guarded by the layer's revision.
//! let layer = client.layer(&ns, &"env/prod".parse()?, At::Latest).await?;
//! let set = [("db.pool.max".parse()?, serde_json::json!(150))];
//! match client
//!     .set_keys(&ns, &layer.layer, &set, &WriteOptions::message("more connections").expect_revision(layer.revision))
//!     .await
//! {
//!     Err(e) if e.is_conflict() => eprintln!("changed meanwhile; store at {:?}", e.current_revision()),
//!     other => { other?; }
//! }
//!
//! // Read the resolved configuration, with the layer behind every value.
//! let resolved = client.resolve(&ns, &ctx, At::Latest, true).await?;
//! println!("db.host = {}", resolved.document["db"]["host"]);
//! for (key, from) in &resolved.provenance {
//!     println!("{key} from {} (revision {})", from.layer, from.revision);
//! }
//! # Ok(()) }
//! ```
//!
//! As a figment provider (synchronous; works inside or outside a runtime):
//!
//! ```no_run
//! use confstrata_client::{ConfstrataProvider, model::parse_context};
//! use figment::{Figment, providers::{Format, Toml}};
//!
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! #[derive(serde::Deserialize)]
//! struct Config { db: Db }
//! #[derive(serde::Deserialize)]
//! struct Db { host: String }
//!
//! let config: Config = Figment::new()
//!     .merge(Toml::file("local.toml"))
//!     .merge(
//!         ConfstrataProvider::new("127.0.0.1:7400", "webshop", parse_context("env=prod")?)
//!             .fallback_file("/var/cache/webshop/confstrata.json"),
//!     )
//!     .extract()?;
//! println!("{}", config.db.host);
//! # Ok(()) }
//! ```

mod admin;
mod client;
mod error;
mod fallback;
mod provider;
mod types;
mod watch;
mod wire;

pub use client::{Client, ClientOptions, ClientTls};
pub use confstrata_core::ErrorKind;
pub use confstrata_core::view::{
    AccessCheck, AuditVerification, BindingInfo, DryRun, EffectiveGrant, ExplainView, GrantInfo,
    GroupInfo, Holder, KeyInfo, LayerDiff, LayerStatus, MasterKeyRotation, PolicyApply,
    PolicyDocument, PolicyGroup, PolicyPrincipal, PolicyRole, PrincipalDetail, PrincipalInfo,
    PrincipalKind, ResolvedView, RoleInfo, Rollback, ServerStatus, TokenInfo,
};
pub use error::{CODE_KINDS, Error, Result};
pub use provider::ConfstrataProvider;
pub use types::{IssuedToken, KeyValue, WatchEvent, WriteOptions};
pub use watch::{Reloader, ReloaderBuilder, ResolvedStream, WatchOptions, WatchStream};

/// The model crate, so users need not depend on it separately.
pub use confstrata_core as model;
/// The generated gRPC code (messages, the raw `ConfigServiceClient` and
/// `AdminServiceClient`).
pub use confstrata_proto::v1 as proto;
/// gRPC status codes, as returned by [`Error::code`].
pub use tonic::Code;

#[cfg(test)]
mod tests;
