//! Opening a data directory: the directory itself (mode 0700), the
//! embedded SQLite store in it, and the master key (from
//! `CONFSTRATA_MASTER_KEY` or a key file). The engine is given the store
//! and never opens one; choosing the store is the host's job (a PostgreSQL
//! store will be chosen here too).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use confstrata_core::Store as _;
use confstrata_core::{Error, Result};
use confstrata_engine::{
    Budget, Engine, MASTER_KEY_ENV, MASTER_KEY_ID_SETTING, MasterKey, SecurityOptions, crypto_error,
};

use crate::keyfile::KeyFile;

/// The file name of the SQLite database inside a data directory.
pub const DB_FILE: &str = "confstrata.db";

/// The name of the master key file inside a data directory (by default:
/// keep it elsewhere in production, see docs/SECURITY.md).
pub const MASTER_KEY_FILE: &str = "master.key";

/// Where the master key comes from, and what opening did about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySource {
    /// `CONFSTRATA_MASTER_KEY` or the key file's path.
    pub origin: String,
    /// Whether this start created the key file.
    pub created: bool,
}

/// Options for [`open_with`].
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// The master key file (default: `master.key` in the data directory).
    /// `CONFSTRATA_MASTER_KEY`, when set, wins over any file.
    pub master_key_file: Option<PathBuf>,
    /// Audit every read, not only changes, secret reads and refusals.
    pub audit_reads: bool,
    /// What the resolved-view cache may hold.
    pub cache: Budget,
    /// Longest a whole validation may take (a commit's, a declaration's,
    /// a dry run's, `validate`'s); `None`: the engine's default.
    pub validation_budget: Option<std::time::Duration>,
}

/// Opens (creating if needed) the embedded SQLite store in `data_dir`,
/// with default [`OpenOptions`].
pub fn open(data_dir: &Path) -> Result<Engine> {
    Ok(open_with(data_dir, &OpenOptions::default())?.0)
}

/// Opens (creating if needed) the embedded SQLite store in `data_dir`: the
/// directory is created with mode 0700, the master key comes from
/// `CONFSTRATA_MASTER_KEY` or a key file (created, mode 0600, if missing).
/// Says where the key came from.
pub fn open_with(data_dir: &Path, options: &OpenOptions) -> Result<(Engine, KeySource)> {
    create_private_dir(data_dir)?;
    let store = confstrata_store_sqlite::SqliteStore::open(&data_dir.join(DB_FILE))?;
    let stored_id = store.setting(MASTER_KEY_ID_SETTING)?;
    let from_env = MasterKey::from_env().map_err(crypto_error)?;
    let (key, source, file) = match from_env {
        Some(key) => (
            key,
            KeySource {
                origin: MASTER_KEY_ENV.to_owned(),
                created: false,
            },
            None,
        ),
        None => {
            let path = options
                .master_key_file
                .clone()
                .unwrap_or_else(|| data_dir.join(MASTER_KEY_FILE));
            let file = KeyFile::new(path.clone());
            let (key, created) = file.open(stored_id.as_deref())?;
            (
                key,
                KeySource {
                    origin: path.display().to_string(),
                    created,
                },
                Some(file),
            )
        }
    };
    let mut security = SecurityOptions::new(key);
    security.audit_reads = options.audit_reads;
    let engine = Engine::with_cache(Arc::new(store), security, options.cache)?;
    if let Some(file) = file {
        engine.set_master_key_file(Box::new(file));
    }
    if let Some(budget) = options.validation_budget {
        engine.set_validation_budget(budget);
    }
    Ok((engine, source))
}

/// Creates a new data directory with an empty store in it and runs `f`
/// on that store (a restore): a directory that exists must be empty. If
/// `f` fails, everything this made is removed again, so a failed restore
/// leaves nothing half-written behind.
pub fn restore_into<T>(
    data_dir: &Path,
    f: impl FnOnce(&dyn confstrata_core::Store) -> Result<T>,
) -> Result<T> {
    let existed = match std::fs::read_dir(data_dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::invalid(
                    "data directory",
                    format!(
                        "{} is not empty; restore into a new directory (nothing was changed)",
                        data_dir.display()
                    ),
                ));
            }
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            return Err(Error::invalid(
                "data directory",
                format!("cannot read {}: {e}", data_dir.display()),
            ));
        }
    };
    create_private_dir(data_dir)?;
    let result = confstrata_store_sqlite::SqliteStore::open(&data_dir.join(DB_FILE))
        .map_err(Error::from)
        .and_then(|store| f(&store));
    if result.is_err() {
        let cleanup = if existed {
            std::fs::read_dir(data_dir).and_then(|entries| {
                entries
                    .filter_map(std::result::Result::ok)
                    .try_for_each(|e| std::fs::remove_file(e.path()))
            })
        } else {
            std::fs::remove_dir_all(data_dir)
        };
        if let Err(e) = cleanup {
            tracing::warn!(dir = %data_dir.display(), error = %e, "a failed restore left files behind");
        }
    }
    result
}

/// Creates the data directory, readable by its owner only; warns when an
/// existing one is open to others.
fn create_private_dir(dir: &Path) -> Result<()> {
    let cannot = |e: std::io::Error| {
        Error::storage(format!(
            "cannot create data directory {}: {e}",
            dir.display()
        ))
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(cannot)?;
        } else if let Ok(meta) = std::fs::metadata(dir)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                dir = %dir.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "the data directory is open to other users; `chmod 700` it"
            );
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir).map_err(cannot)?;
    Ok(())
}
