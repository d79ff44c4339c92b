//! The fallback file: the last configuration read from the server, kept on
//! disk so a service can start while the server is down.
//!
//! It is JSON (one object: format version, server address, namespace,
//! context, revision, time written, document), written atomically: a
//! temporary file in the same directory, fsync, rename, fsync of the
//! directory. A reader therefore sees the old file or the new one, never
//! half of one, even after a crash.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use confstrata_core::{Context, Document, NamespaceName, Timestamp};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::types::ResolvedView;

/// The version of the file layout.
const FORMAT: u32 = 1;

/// What the file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct FallbackFile {
    /// Layout version, for future changes.
    pub(crate) format: u32,
    /// The server the configuration came from.
    pub(crate) address: String,
    /// The namespace.
    pub(crate) namespace: String,
    /// The context.
    pub(crate) context: Context,
    /// The revision read.
    pub(crate) revision: u64,
    /// When the file was written (RFC 3339).
    pub(crate) written_at: String,
    /// The resolved document.
    pub(crate) document: Document,
}

fn fail(path: &Path, reason: impl Into<String>) -> Error {
    Error::Fallback {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Writes `resolved` to `path` atomically.
pub(crate) fn write(path: &Path, address: &str, resolved: &ResolvedView) -> Result<()> {
    let file = FallbackFile {
        format: FORMAT,
        address: address.to_owned(),
        namespace: resolved.namespace.to_string(),
        context: resolved.context.clone(),
        revision: resolved.revision,
        written_at: Timestamp::now().to_string(),
        document: resolved.document.clone(),
    };
    let mut bytes = serde_json::to_vec_pretty(&file)
        .map_err(|e| fail(path, format!("cannot serialize: {e}")))?;
    bytes.push(b'\n');
    write_atomically(path, &bytes)
}

/// A temporary name next to `path`, unique within this process.
fn temp_path(path: &Path) -> Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| fail(path, "the path names no file"))?
        .to_string_lossy();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Ok(path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id())))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| fail(path, format!("cannot create {}: {e}", dir.display())))?;
    let tmp = temp_path(path)?;
    let result = (|| -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            // The configuration may hold credentials: owner-only.
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable (best effort: not every
        // platform can open a directory).
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(path, format!("cannot write: {e}"))
    })
}

/// Reads the file and checks it holds `namespace` for `context`.
pub(crate) fn read(
    path: &Path,
    namespace: &NamespaceName,
    context: &Context,
) -> Result<FallbackFile> {
    let bytes = std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            fail(
                path,
                "it does not exist yet (it is written after the first successful load)",
            )
        } else {
            fail(path, format!("cannot read: {e}"))
        }
    })?;
    let file: FallbackFile = serde_json::from_slice(&bytes)
        .map_err(|e| fail(path, format!("not a Confstrata fallback file: {e}")))?;
    if file.format != FORMAT {
        return Err(fail(
            path,
            format!(
                "unknown format {} (this client reads {FORMAT})",
                file.format
            ),
        ));
    }
    if file.namespace != namespace.as_str() || &file.context != context {
        return Err(fail(
            path,
            format!(
                "it holds namespace {:?} for context {}, not {:?} for context {}",
                file.namespace,
                show_context(&file.context),
                namespace.as_str(),
                show_context(context)
            ),
        ));
    }
    Ok(file)
}

/// `env=prod,region=eu`, or `(empty)`.
pub(crate) fn show_context(ctx: &Context) -> String {
    if ctx.is_empty() {
        return "(empty)".into();
    }
    ctx.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
