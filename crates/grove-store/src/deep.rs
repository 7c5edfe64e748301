//! Deep storage: where segment files live, through object_store. A local directory by
//! default.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use grove_common::Interval;
use grove_common::time::format_millis;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};

/// Deep storage for segment files.
#[derive(Debug, Clone)]
pub struct DeepStorage {
    store: Arc<dyn ObjectStore>,
    url: ObjectStoreUrl,
    root: ObjectPath,
    local_root: PathBuf,
    /// `store` seen from `root`: what query results are kept in.
    results: Arc<dyn ObjectStore>,
}

impl DeepStorage {
    /// Local deep storage under `dir` (created if missing).
    pub fn local(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            DataFusionError::Execution(format!(
                "Cannot create deep storage directory [{}]: {e}",
                dir.display()
            ))
        })?;
        let abs = dir.canonicalize().map_err(|e| {
            DataFusionError::Execution(format!("Cannot resolve [{}]: {e}", dir.display()))
        })?;
        let root = ObjectPath::from_filesystem_path(&abs)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let store: Arc<dyn ObjectStore> =
            Arc::new(LocalFileSystem::new().with_automatic_cleanup(true));
        let results = Arc::new(PrefixStore::new(Arc::clone(&store), root.clone()));
        Ok(Self {
            store,
            url: ObjectStoreUrl::local_filesystem(),
            root,
            local_root: abs,
            results,
        })
    }

    /// The object store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The store under deep storage's root, for files that are not segments (stored
    /// query results): its paths are relative to the root, so nothing written through
    /// it lands outside deep storage.
    pub fn results_store(&self) -> &Arc<dyn ObjectStore> {
        &self.results
    }

    /// The local directory deep storage lives in.
    pub fn local_root(&self) -> &Path {
        &self.local_root
    }

    /// The URL DataFusion knows the store by.
    pub fn url(&self) -> &ObjectStoreUrl {
        &self.url
    }

    /// Where a new segment file of a task goes:
    /// `<ds>/<start>_<end>/<taskId>/<name>.parquet`.
    pub fn segment_path(
        &self,
        data_source: &str,
        interval: &Interval,
        task_id: &str,
        name: &str,
    ) -> ObjectPath {
        let chunk = format!(
            "{}_{}",
            format_millis(interval.start),
            format_millis(interval.end)
        );
        self.root
            .clone()
            .join(data_source)
            .join(chunk.as_str())
            .join(task_id)
            .join(format!("{name}.parquet").as_str())
    }

    /// Druid's loadSpec for a file.
    pub fn load_spec(&self, path: &ObjectPath) -> serde_json::Value {
        let fs_path = self.local_root.join(
            path.as_ref()
                .strip_prefix(self.root.as_ref())
                .unwrap_or(path.as_ref())
                .trim_start_matches('/'),
        );
        serde_json::json!({"type": "local", "path": fs_path.to_string_lossy()})
    }

    /// Deletes every file a task wrote for a datasource (after a crash, when the task's
    /// own cleanup never ran). Best effort.
    pub async fn delete_task_files(&self, data_source: &str, task_id: &str) {
        use futures::TryStreamExt;
        let prefix = self.root.clone().join(data_source);
        let marker = format!("/{task_id}/");
        let listed: Result<Vec<_>, _> = self.store.list(Some(&prefix)).try_collect().await;
        match listed {
            Ok(objects) => {
                let paths: Vec<ObjectPath> = objects
                    .into_iter()
                    .map(|o| o.location)
                    .filter(|p| format!("/{p}").contains(&marker))
                    .collect();
                self.delete_all(&paths).await;
            }
            Err(e) => tracing::warn!(task_id, error = %e, "could not list files of a task"),
        }
    }

    /// Deletes files (best effort; missing files are fine).
    pub async fn delete_all(&self, paths: &[ObjectPath]) {
        for p in paths {
            if let Err(e) = self.store.delete(p).await
                && !matches!(e, object_store::Error::NotFound { .. })
            {
                tracing::warn!(path = %p, error = %e, "could not delete segment file");
            }
        }
    }
}
