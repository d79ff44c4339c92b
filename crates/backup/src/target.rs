//! Where backups go: a [`Target`] stores whole files by path, each written
//! all at once or not at all.

use std::io::Write;
use std::path::{Path, PathBuf};

use confstrata_core::{Error, Result};

/// A place that keeps backups: files under one root, in one folder per
/// backup. Every method names the place in its errors.
pub trait Target: Send + Sync {
    /// Where it is, for messages and listings (`file:///backups`, `s3://bucket/prefix`).
    fn url(&self) -> String;
    /// Writes the file `path` (`<backup id>/<name>`) whole: after an error
    /// nothing of it is visible.
    fn put(&self, path: &str, bytes: &[u8]) -> Result<()>;
    /// Reads a file, `None` if it does not exist.
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>>;
    /// The backup folders, by name.
    fn list(&self) -> Result<Vec<String>>;
    /// Removes a backup folder and everything in it.
    fn remove(&self, id: &str) -> Result<()>;
}

/// A directory on a local (or mounted) file system.
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    /// Backups under `root`, which must exist when a backup is written.
    pub fn new(root: impl Into<PathBuf>) -> LocalDir {
        LocalDir { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, path: &str) -> Result<PathBuf> {
        check_name(path)?;
        Ok(self.root.join(path))
    }
}

/// Refuses a file name that is not `<backup id>/<name>` of plain segments:
/// names come from this crate, but a manifest read from a target is input,
/// and nothing may reach outside the target.
pub(crate) fn check_name(path: &str) -> Result<()> {
    let ok = !path.is_empty()
        && path.split('/').all(|s| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "backup file name",
            format!("{path:?} is not a name inside the backup target"),
        ))
    }
}

fn io(action: &str, path: &Path, e: &std::io::Error) -> Error {
    let hint = match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            "; give the server's user write access to it, or choose another directory"
        }
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            "; free space or choose another directory (nothing of this backup is kept)"
        }
        _ => "",
    };
    Error::storage(format!("cannot {action} {}: {e}{hint}", path.display()))
}

impl Target for LocalDir {
    fn url(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn put(&self, path: &str, bytes: &[u8]) -> Result<()> {
        let file = self.path(path)?;
        // The root is never made here: an unmounted backup disk would
        // otherwise fill the disk under its mount point unnoticed.
        if !self.root.is_dir() {
            return Err(Error::storage(format!(
                "the backup directory {} does not exist (or is not a directory): create or mount it first",
                self.root.display()
            )));
        }
        let dir = file.parent().unwrap_or(&self.root).to_owned();
        std::fs::create_dir_all(&dir).map_err(|e| io("create directory", &dir, &e))?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let written = (|| {
            let mut f = std::fs::File::create(&tmp).map_err(|e| io("create", &tmp, &e))?;
            f.write_all(bytes).map_err(|e| io("write", &tmp, &e))?;
            f.sync_all().map_err(|e| io("sync", &tmp, &e))?;
            std::fs::rename(&tmp, &file).map_err(|e| io("rename into", &file, &e))?;
            // The rename is durable once the directory is synced.
            std::fs::File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io("sync directory", &dir, &e))
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    fn get(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let file = self.path(path)?;
        match std::fs::read(&file) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &file, &e)),
        }
    }

    fn list(&self) -> Result<Vec<String>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", &self.root, &e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io("list", &self.root, &e))?;
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_dir && !name.starts_with('.') {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    fn remove(&self, id: &str) -> Result<()> {
        let dir = self.path(id)?;
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove", &dir, &e)),
        }
    }
}

/// The target a URL names: a directory (`/backups`, `./backups` or
/// `file:///backups`), or S3-compatible object storage
/// (`s3://bucket/prefix`, see [`crate::ObjectTarget`]).
pub fn open_target(url: &str) -> Result<Box<dyn Target>> {
    let url = url.trim();
    if url.is_empty() {
        return Err(Error::invalid(
            "backup target",
            "it is empty; give a directory",
        ));
    }
    if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(Error::invalid(
                "backup target",
                format!("{url:?}: a file URL takes an absolute path (file:///backups)"),
            ));
        }
        return Ok(Box::new(LocalDir::new(path)));
    }
    if url.starts_with("s3://") {
        return Ok(Box::new(crate::object::ObjectTarget::s3(url)?));
    }
    if let Some((scheme, _)) = url.split_once("://") {
        return Err(Error::invalid(
            "backup target",
            format!(
                "{url:?}: unsupported scheme {scheme:?}; use a directory, file:///path or s3://bucket/prefix"
            ),
        ));
    }
    Ok(Box::new(LocalDir::new(url)))
}
