//! The model of Confstrata, a hierarchical configuration store.
//!
//! A **namespace** declares a hierarchy of level templates (`defaults`,
//! `env/{env}`, `env/{env}/region/{region}`) and a context matrix. A **layer**
//! is a document at one level path. [`resolve`] deep-merges the layers a
//! context selects, general first, and keeps the provenance of every leaf.
//! [`diff`] compares documents key by key. A [`ChangeSet`] is committed
//! atomically to a [`Store`] as one revision.
//!
//! This crate knows nothing of SQL, gRPC or HTTP.
//!
//! ```
//! use confstrata_core::{At, ChangeSet, MemoryStore, Store, Op, NamespaceSpec, parse_context};
//! use serde_json::json;
//!
//! let store = MemoryStore::new();
//! let spec: NamespaceSpec = serde_json::from_value(json!({
//!     "name": "web", "levels": ["defaults", "env/{env}"], "matrix": {"env": ["dev", "prod"]}
//! })).unwrap();
//! let cs: ChangeSet = serde_json::from_value(json!({"message": "init", "ops": [
//!     {"op": "put-namespace", "spec": spec},
//!     {"op": "put", "namespace": "web", "layer": "defaults", "document": {"port": 80, "debug": true}},
//!     {"op": "set", "namespace": "web", "layer": "env/prod", "key": "debug", "value": false},
//! ]})).unwrap();
//! let rev = store.commit(&cs).unwrap().revision;
//! assert_eq!(rev, 1);
//!
//! let ns = store.namespace(&"web".parse().unwrap(), rev).unwrap().unwrap();
//! let layers = store.layers(&ns.spec.name, store.revision_at(At::Latest).unwrap()).unwrap();
//! let ctx = parse_context("env=prod").unwrap();
//! let wanted = ns.spec.layers_for(&ctx).unwrap();
//! let inputs: Vec<_> = wanted.iter()
//!     .filter_map(|w| layers.iter().find(|l| &l.layer == w))
//!     .map(|l| confstrata_core::LayerInput { namespace: None, layer: &l.layer, revision: l.revision, document: &l.document })
//!     .collect();
//! assert_eq!(confstrata_core::resolve(&inputs).to_value(), json!({"port": 80, "debug": false}));
//! ```

pub mod bundle;
mod changeset;
mod diff;
pub mod doc;
pub mod dump;
mod error;
pub mod format;
pub mod imports;
pub mod journal;
mod memory;
mod namespace;
mod path;
mod resolve;
mod store;
pub mod timing;
pub mod validation;
pub mod view;

pub use changeset::{ChangeSet, Op, Plan, StateReader, plan};
pub use diff::{DiffEntry, DiffKind, diff};
pub use doc::{Document, Limits};
pub use dump::{DumpFrom, DumpHead, DumpRecord, LoadEnd};
pub use error::{Error, ErrorKind, Result, clip};
pub use journal::{CheckFn, JournalFn, JournalHead, JournalRecord, JournalSlot, SettingWrite};
pub use memory::{MemoryStore, check_next};
pub use namespace::{
    Context, GeneratorSpec, LevelTemplate, NamespaceSpec, TemplateOrigin, check_generators,
    parse_context,
};
pub use path::{
    KeyPath, LayerPath, MAX_KEY_PATH_BYTES, MAX_KEY_SEGMENTS, MAX_LAYER_PATH_BYTES,
    MAX_LAYER_SEGMENTS, MAX_SEGMENT_BYTES, NamespaceName,
};
pub use resolve::{
    EntryOrigin, ExplainEntry, Explanation, LayerInput, Provenance, Resolved, resolve,
};
pub use store::{
    At, Change, ChangeItem, CommitDone, CommitInfo, DeclarationVersion, LayerRecord, LayerVersion,
    NamespaceRecord, RetentionPolicy, RetentionReport, RevisionInfo, StorageSize, Store, Timestamp,
    check_readable, retention_floor,
};
pub use validation::{ChainMode, Finding, RuleSpec, Severity, Stage, Validation, ValidatorSpec};

/// Re-exported so users of the `Document` type need not depend on `serde_json` themselves.
pub use serde_json;
