//! The master key file, and its rotation on disk.
//!
//! A rotation stages the new key as `<file>.next` (mode 0600, flushed),
//! the engine commits the data keys wrapped by it together with its id,
//! and the staged file is renamed over the key file. Opening picks the key
//! the store names by id: the key file's, or the staged one's when a
//! rotation committed but was killed before the rename (which opening then
//! finishes). A staged key the store does not name is left over from a
//! rotation that never committed, and is removed.

use std::path::{Path, PathBuf};

use confstrata_core::{Error, Result};
use confstrata_engine::{MasterKey, MasterKeyFile, crypto_error};

/// A master key file (`master.key` in the data directory by default).
#[derive(Debug, Clone)]
pub struct KeyFile {
    path: PathBuf,
}

impl KeyFile {
    /// The key file at `path`.
    pub fn new(path: PathBuf) -> KeyFile {
        KeyFile { path }
    }

    /// Where a rotation stages the new key.
    pub fn staged_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".next");
        PathBuf::from(name)
    }

    /// The key the store names (`stored`: its master key id, if it records
    /// one), finishing or discarding a rotation a kill interrupted; with no
    /// id recorded, the key file's key, created if missing. Says whether
    /// the key file was created.
    pub fn open(&self, stored: Option<&str>) -> Result<(MasterKey, bool)> {
        let staged = self.staged_path();
        let invalid =
            |e: confstrata_engine::CryptoError| Error::invalid("master key", e.to_string());
        let Some(stored) = stored else {
            self.discard_staged(&staged);
            return MasterKey::load_or_generate_file(&self.path).map_err(invalid);
        };
        let current = MasterKey::load_file(&self.path);
        if let Ok(key) = &current
            && key.id().map_err(crypto_error)? == stored
        {
            self.discard_staged(&staged);
            return current.map(|k| (k, false)).map_err(invalid);
        }
        // The store names another key: a rotation that committed and was
        // stopped before its rename leaves that key staged.
        if staged.exists() {
            let next = MasterKey::load_file(&staged).map_err(invalid)?;
            if next.id().map_err(crypto_error)? == stored {
                self.promote()?;
                tracing::warn!(
                    file = %self.path.display(),
                    key = stored,
                    "finished an interrupted master key rotation: the staged key replaced the key file"
                );
                return Ok((next, false));
            }
        }
        match current {
            Ok(key) => Err(Error::Integrity {
                message: format!(
                    "this store's data keys are wrapped by master key {stored}, but {} holds {}: \
                     start with the key file that holds {stored}",
                    self.path.display(),
                    key.id().map_err(crypto_error)?
                ),
            }),
            Err(e) => Err(Error::invalid(
                "master key",
                format!("{e}; this store's data keys are wrapped by master key {stored}"),
            )),
        }
    }

    fn discard_staged(&self, staged: &Path) {
        if staged.exists() {
            match std::fs::remove_file(staged) {
                Ok(()) => tracing::warn!(
                    file = %staged.display(),
                    "removed a staged master key left by a rotation that did not commit"
                ),
                Err(e) => tracing::warn!(
                    file = %staged.display(),
                    error = %e,
                    "a staged master key left by a rotation that did not commit could not be removed"
                ),
            }
        }
    }
}

impl MasterKeyFile for KeyFile {
    fn stage(&self) -> Result<MasterKey> {
        let staged = self.staged_path();
        if staged.exists() {
            std::fs::remove_file(&staged).map_err(|e| {
                Error::storage(format!(
                    "cannot remove the stale staged key {}: {e}",
                    staged.display()
                ))
            })?;
        }
        MasterKey::generate_file(&staged).map_err(|e| Error::storage(e.to_string()))
    }

    fn promote(&self) -> Result<()> {
        let staged = self.staged_path();
        std::fs::rename(&staged, &self.path).map_err(|e| {
            Error::storage(format!(
                "cannot rename {} to {}: {e}",
                staged.display(),
                self.path.display()
            ))
        })?;
        sync_dir(&self.path)
    }

    fn discard(&self) {
        let _ = std::fs::remove_file(self.staged_path());
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// Flushes the directory holding `path`, so a rename in it is durable.
fn sync_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::storage(format!("cannot flush {}: {e}", dir.display())))
}
