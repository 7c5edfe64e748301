//! SELECT results kept in deep storage (Druid's `selectDestination: durableStorage`), so
//! the statements API can serve them page by page after the task ends.
//!
//! ```text
//! <deep storage>/.query-results/<queryId>/page-0.arrow   Arrow IPC file, ≤ PAGE_ROWS rows
//!                                         page-1.arrow
//!                                         manifest.json  pages, row counts, sizes, format
//! ```
//!
//! `.query-results` cannot clash with a datasource: Druid names never start with a dot.
//! The manifest is written last, so a result without one is incomplete and never served.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use datafusion::common::{DataFusionError, Result};
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use serde::{Deserialize, Serialize};

use crate::query::QueryResults;
use crate::task::TaskControl;

/// The deep-storage directory of query results.
pub const RESULTS_DIR: &str = ".query-results";

/// Most rows in one page.
pub const PAGE_ROWS: usize = 100_000;

/// Most bytes (in memory, before writing) of one page.
const PAGE_BYTES: usize = 32 << 20;

/// One page of a stored result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageInfo {
    /// Page number, from 0.
    pub id: usize,
    /// Rows in the page.
    pub num_rows: u64,
    /// Bytes of the page file.
    pub size_in_bytes: u64,
}

/// What a stored result holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultManifest {
    /// The query (task) id.
    pub query_id: String,
    /// When the result was complete (ms).
    pub created_ms: i64,
    /// The `resultFormat` the statement was submitted with.
    pub result_format: String,
    /// Pages in order.
    pub pages: Vec<PageInfo>,
}

impl ResultManifest {
    /// Rows over all pages.
    pub fn num_total_rows(&self) -> u64 {
        self.pages.iter().map(|p| p.num_rows).sum()
    }

    /// Bytes over all pages.
    pub fn total_size_in_bytes(&self) -> u64 {
        self.pages.iter().map(|p| p.size_in_bytes).sum()
    }
}

fn result_dir(query_id: &str) -> Result<ObjectPath> {
    if query_id.is_empty() || query_id.contains(['/', '\\']) || query_id.starts_with('.') {
        return Err(DataFusionError::Plan(format!(
            "Invalid query id [{query_id}]"
        )));
    }
    Ok(ObjectPath::from(RESULTS_DIR).join(query_id))
}

fn page_path(query_id: &str, page: usize) -> Result<ObjectPath> {
    Ok(result_dir(query_id)?.join(format!("page-{page}.arrow").as_str()))
}

fn manifest_path(query_id: &str) -> Result<ObjectPath> {
    Ok(result_dir(query_id)?.join("manifest.json"))
}

fn storage_error(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Writes a result's pages as its batches arrive.
struct PageWriter {
    store: Arc<dyn ObjectStore>,
    query_id: String,
    schema: SchemaRef,
    buffer: Vec<RecordBatch>,
    buffered_rows: usize,
    buffered_bytes: usize,
    pages: Vec<PageInfo>,
}

impl PageWriter {
    async fn push(&mut self, batch: RecordBatch) -> Result<()> {
        let mut batch = batch;
        while batch.num_rows() > 0 {
            let room = PAGE_ROWS - self.buffered_rows;
            let take = room.min(batch.num_rows());
            let head = batch.slice(0, take);
            batch = batch.slice(take, batch.num_rows() - take);
            self.buffered_rows += head.num_rows();
            self.buffered_bytes += head.get_array_memory_size();
            self.buffer.push(head);
            if self.buffered_rows >= PAGE_ROWS || self.buffered_bytes >= PAGE_BYTES {
                self.flush().await?;
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.buffered_rows == 0 && !self.pages.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::new();
        {
            let mut writer = FileWriter::try_new(&mut bytes, &self.schema)?;
            for b in &self.buffer {
                writer.write(b)?;
            }
            writer.finish()?;
        }
        let id = self.pages.len();
        let size = bytes.len() as u64;
        self.store
            .put(&page_path(&self.query_id, id)?, PutPayload::from(bytes))
            .await
            .map_err(storage_error)?;
        self.pages.push(PageInfo {
            id,
            num_rows: self.buffered_rows as u64,
            size_in_bytes: size,
        });
        self.buffer.clear();
        self.buffered_rows = 0;
        self.buffered_bytes = 0;
        Ok(())
    }
}

/// Runs a query to the end, storing every row in pages under `query_id` and keeping the
/// first `sample_rows` rows for the task report. On error nothing is left behind.
pub(crate) async fn store_query(
    store: &Arc<dyn ObjectStore>,
    mut stream: datafusion::physical_plan::SendableRecordBatchStream,
    control: &TaskControl,
    query_id: &str,
    result_format: &str,
    sample_rows: usize,
) -> Result<QueryResults> {
    let schema = stream.schema();
    let mut writer = PageWriter {
        store: Arc::clone(store),
        query_id: query_id.to_string(),
        schema: Arc::clone(&schema),
        buffer: Vec::new(),
        buffered_rows: 0,
        buffered_bytes: 0,
        pages: Vec::new(),
    };
    let mut sample = Vec::new();
    let mut kept = 0usize;
    let mut total = 0u64;
    let outcome: Result<()> = async {
        while let Some(batch) = control.next_batch(&mut stream).await? {
            total += batch.num_rows() as u64;
            if kept < sample_rows {
                let take = (sample_rows - kept).min(batch.num_rows());
                sample.push(batch.slice(0, take));
                kept += take;
            }
            control
                .progress
                .rows_out
                .store(total, std::sync::atomic::Ordering::Relaxed);
            writer.push(batch).await?;
        }
        // A result with no rows still has one (empty) page, as in Druid.
        writer.flush().await?;
        let manifest = ResultManifest {
            query_id: query_id.to_string(),
            created_ms: chrono::Utc::now().timestamp_millis(),
            result_format: result_format.to_string(),
            pages: writer.pages.clone(),
        };
        let json = serde_json::to_vec(&manifest).map_err(storage_error)?;
        store
            .put(&manifest_path(query_id)?, PutPayload::from(json))
            .await
            .map_err(storage_error)?;
        Ok(())
    }
    .await;
    if let Err(e) = outcome {
        delete_results(store, query_id).await;
        return Err(e);
    }
    Ok(QueryResults {
        schema,
        batches: sample,
        truncated: total > kept as u64,
    })
}

/// The manifest of a stored result, or `None` if there is no complete one.
pub async fn read_manifest(
    store: &Arc<dyn ObjectStore>,
    query_id: &str,
) -> Result<Option<ResultManifest>> {
    let path = manifest_path(query_id)?;
    let bytes = match store.get(&path).await {
        Ok(r) => r.bytes().await.map_err(storage_error)?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(storage_error(e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| DataFusionError::Execution(format!("corrupt result manifest [{path}]: {e}")))
}

/// The batches of one page.
pub async fn read_page(
    store: &Arc<dyn ObjectStore>,
    query_id: &str,
    page: usize,
) -> Result<Vec<RecordBatch>> {
    let bytes = store
        .get(&page_path(query_id, page)?)
        .await
        .map_err(storage_error)?
        .bytes()
        .await
        .map_err(storage_error)?;
    let reader = FileReader::try_new(std::io::Cursor::new(bytes), None)?;
    reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(DataFusionError::from)
}

/// Deletes a stored result (what exists of it).
pub async fn delete_results(store: &Arc<dyn ObjectStore>, query_id: &str) {
    let Ok(dir) = result_dir(query_id) else {
        return;
    };
    let listed: Vec<_> = match store.list(Some(&dir)).try_collect().await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(query_id, error = %e, "cannot list stored results to delete them");
            return;
        }
    };
    for meta in listed {
        if let Err(e) = store.delete(&meta.location).await {
            tracing::warn!(path = %meta.location, error = %e, "cannot delete a stored result file");
        }
    }
}

/// Deletes every stored result older than `retention_ms` (by its manifest), and
/// incomplete ones (no manifest) whose files are older than that. Returns how many
/// results were deleted.
pub async fn delete_expired(store: &Arc<dyn ObjectStore>, retention_ms: i64) -> Result<usize> {
    let now = chrono::Utc::now().timestamp_millis();
    let listed: Vec<_> = store
        .list(Some(&ObjectPath::from(RESULTS_DIR)))
        .try_collect()
        .await
        .map_err(storage_error)?;
    let mut newest: std::collections::BTreeMap<String, i64> = Default::default();
    for meta in &listed {
        let Some(id) = meta.location.parts().nth(1) else {
            continue;
        };
        let modified = meta.last_modified.timestamp_millis();
        let entry = newest.entry(id.as_ref().to_string()).or_insert(modified);
        *entry = (*entry).max(modified);
    }
    let mut deleted = 0;
    for (id, modified) in newest {
        let created = match read_manifest(store, &id).await {
            Ok(Some(m)) => m.created_ms,
            _ => modified,
        };
        if now - created > retention_ms {
            delete_results(store, &id).await;
            deleted += 1;
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use object_store::memory::InMemory;

    use super::*;

    fn stream(rows: i64) -> datafusion::physical_plan::SendableRecordBatchStream {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batches: Vec<Result<RecordBatch>> = (0..rows)
            .step_by(30_000)
            .map(|start| {
                let end = (start + 30_000).min(rows);
                Ok(RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![Arc::new(Int64Array::from_iter_values(start..end))],
                )?)
            })
            .collect();
        Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(batches),
        ))
    }

    #[tokio::test]
    async fn pages_round_trip_and_expire() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let control = TaskControl::new();
        let r = store_query(&store, stream(250_000), &control, "query-a", "array", 10)
            .await
            .unwrap();
        assert_eq!(r.num_rows(), 10);
        assert!(r.truncated);
        let m = read_manifest(&store, "query-a").await.unwrap().unwrap();
        assert_eq!(
            m.pages.iter().map(|p| p.num_rows).collect::<Vec<_>>(),
            vec![100_000, 100_000, 50_000]
        );
        assert_eq!(m.num_total_rows(), 250_000);
        assert_eq!(m.result_format, "array");
        let page = read_page(&store, "query-a", 1).await.unwrap();
        let first = page[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(first.value(0), 100_000);
        assert_eq!(page.iter().map(|b| b.num_rows()).sum::<usize>(), 100_000);

        // An empty result has one empty page.
        store_query(&store, stream(0), &control, "query-b", "object", 10)
            .await
            .unwrap();
        let m = read_manifest(&store, "query-b").await.unwrap().unwrap();
        assert_eq!(m.pages.len(), 1);
        assert_eq!(m.num_total_rows(), 0);

        // Nothing expires within the retention; everything after it.
        assert_eq!(delete_expired(&store, 60_000).await.unwrap(), 0);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(delete_expired(&store, 5).await.unwrap(), 2);
        assert!(read_manifest(&store, "query-a").await.unwrap().is_none());
        assert!(read_page(&store, "query-a", 0).await.is_err());
        assert!(read_manifest(&store, "../x").await.is_err());
    }
}
