//! Backups on S3-compatible object storage, through the `object_store`
//! crate: `s3://bucket/prefix`. Every object is written by one PUT (whole
//! or not at all), the manifest last, as on a directory.

use std::sync::Arc;

use confstrata_core::{Error, Result};
use futures_util::StreamExt as _;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};

use crate::Target;

/// Where credentials and the endpoint come from: the usual AWS
/// environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_REGION`, `AWS_ENDPOINT_URL` for an S3-compatible server, and
/// `AWS_ALLOW_HTTP=true` for one on plain HTTP).
pub struct ObjectTarget {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    url: String,
    /// Drives the store's futures; `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for ObjectTarget {
    /// A server drops its target inside its own runtime, where dropping
    /// another one would block: shut it down without waiting.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for ObjectTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectTarget")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn storage(url: &str, action: &str, e: &object_store::Error) -> Error {
    Error::storage(format!("cannot {action} on {url}: {e}"))
}

impl ObjectTarget {
    /// The bucket and prefix `url` (`s3://bucket/some/prefix`) names, with
    /// settings from the environment.
    pub fn s3(url: &str) -> Result<ObjectTarget> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            Error::invalid("backup target", format!("{url:?} is not an s3:// URL"))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::invalid(
                "backup target",
                format!("{url:?} names no bucket (s3://bucket/prefix)"),
            ));
        }
        let store = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| Error::invalid("backup target", format!("{url}: {e}")))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::storage(format!("cannot start the object store's runtime: {e}")))?;
        Ok(ObjectTarget {
            store: Arc::new(store),
            prefix: Path::from(prefix.trim_matches('/')),
            url: url.trim_end_matches('/').to_owned(),
            runtime: Some(runtime),
        })
    }

    /// Runs a future of the store to completion.
    fn block_on<T>(&self, f: impl std::future::Future<Output = T>) -> Result<T> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| Error::storage("the object store's runtime is gone"))?;
        Ok(runtime.block_on(f))
    }

    fn path(&self, path: &str) -> Result<Path> {
        crate::target::check_name(path)?;
        Ok(self
            .prefix
            .parts()
            .chain(Path::from(path).parts())
            .collect())
    }
}

impl Target for ObjectTarget {
    fn url(&self) -> String {
        self.url.clone()
    }

    fn put(&self, path: &str, bytes: &[u8]) -> Result<()> {
        let location = self.path(path)?;
        let payload = PutPayload::from(bytes.to_vec());
        self.block_on(self.store.put(&location, payload))?
            .map(drop)
            .map_err(|e| storage(&self.url, &format!("write {location}"), &e))
    }

    fn get(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let location = self.path(path)?;
        self.block_on(async {
            match self.store.get(&location).await {
                Ok(found) => found
                    .bytes()
                    .await
                    .map(|b| Some(b.to_vec()))
                    .map_err(|e| storage(&self.url, &format!("read {location}"), &e)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(storage(&self.url, &format!("read {location}"), &e)),
            }
        })?
    }

    fn list(&self) -> Result<Vec<String>> {
        let prefix = Some(&self.prefix).filter(|p| !p.as_ref().is_empty());
        let found = self
            .block_on(self.store.list_with_delimiter(prefix))?
            .map_err(|e| storage(&self.url, "list the backups", &e))?;
        let mut out: Vec<String> = found
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .collect();
        out.sort();
        Ok(out)
    }

    fn remove(&self, id: &str) -> Result<()> {
        let folder = self.path(id)?;
        self.block_on(async {
            let mut objects = self.store.list(Some(&folder));
            while let Some(meta) = objects.next().await {
                let meta = meta.map_err(|e| storage(&self.url, &format!("list {folder}"), &e))?;
                self.store
                    .delete(&meta.location)
                    .await
                    .map_err(|e| storage(&self.url, &format!("delete {}", meta.location), &e))?;
            }
            Ok(())
        })?
    }
}
