//! Tasks in the metadata store: payload, status and final report survive restarts.

use datafusion::common::{DataFusionError, Result};
use sqlx::Row;

use crate::metadata::MetadataStore;

/// A task's record.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRecord {
    /// Task id.
    pub id: String,
    /// Target datasource (or `__query_select`).
    pub data_source: String,
    /// Creation time (ms).
    pub created_ms: i64,
    /// `RUNNING`, `SUCCESS` or `FAILED`.
    pub status: String,
    /// Duration in ms (-1 while running).
    pub duration_ms: i64,
    /// `"<ErrorCode>: <message>"` for failures.
    pub error_msg: Option<String>,
    /// Druid task payload JSON.
    pub payload: serde_json::Value,
    /// Final report JSON (None while running).
    pub report: Option<serde_json::Value>,
}

/// Filters for listing tasks.
#[derive(Clone, Debug, Default)]
pub struct TaskFilter {
    /// Only this datasource.
    pub data_source: Option<String>,
    /// Only complete (true) or running (false) tasks.
    pub complete: Option<bool>,
    /// Created at or after (ms).
    pub created_from: Option<i64>,
    /// Created before (ms).
    pub created_to: Option<i64>,
    /// Most complete tasks returned (newest first).
    pub max: Option<usize>,
}

fn db_error(e: sqlx::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

fn json_error(e: serde_json::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

pub(crate) const TASKS_SCHEMA: &[&str] = &[
    r#"CREATE TABLE IF NOT EXISTS druid_tasks (
        id VARCHAR(255) NOT NULL PRIMARY KEY,
        datasource VARCHAR(255) NOT NULL,
        created_ms BIGINT NOT NULL,
        status VARCHAR(32) NOT NULL,
        duration_ms BIGINT NOT NULL,
        error_msg TEXT,
        payload TEXT NOT NULL,
        report TEXT
    )"#,
    "CREATE INDEX IF NOT EXISTS idx_druid_tasks_status ON druid_tasks (status)",
];

fn task_from_row(row: &sqlx::any::AnyRow) -> Result<TaskRecord> {
    let payload: String = row.try_get(6).map_err(db_error)?;
    let report: Option<String> = row.try_get(7).map_err(db_error)?;
    Ok(TaskRecord {
        id: row.try_get(0).map_err(db_error)?,
        data_source: row.try_get(1).map_err(db_error)?,
        created_ms: row.try_get(2).map_err(db_error)?,
        status: row.try_get(3).map_err(db_error)?,
        duration_ms: row.try_get(4).map_err(db_error)?,
        error_msg: row.try_get(5).map_err(db_error)?,
        payload: serde_json::from_str(&payload).map_err(json_error)?,
        report: report
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .map_err(json_error)?,
    })
}

const COLUMNS: &str = "id, datasource, created_ms, status, duration_ms, error_msg, payload, report";

impl MetadataStore {
    /// Records a new (running) task. Fails if the id exists.
    pub async fn insert_task(&self, task: &TaskRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO druid_tasks (id, datasource, created_ms, status, duration_ms, error_msg, \
             payload, report) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&task.id)
        .bind(&task.data_source)
        .bind(task.created_ms)
        .bind(&task.status)
        .bind(task.duration_ms)
        .bind(task.error_msg.clone())
        .bind(task.payload.to_string())
        .bind(task.report.as_ref().map(|r| r.to_string()))
        .execute(self.pool())
        .await
        .map_err(db_error)?;
        Ok(())
    }

    /// Records how a task ended.
    pub async fn finish_task(
        &self,
        id: &str,
        status: &str,
        duration_ms: i64,
        error_msg: Option<&str>,
        report: &serde_json::Value,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE druid_tasks SET status = $1, duration_ms = $2, error_msg = $3, report = $4 \
             WHERE id = $5",
        )
        .bind(status)
        .bind(duration_ms)
        .bind(error_msg.map(str::to_string))
        .bind(report.to_string())
        .bind(id)
        .execute(self.pool())
        .await
        .map_err(db_error)?;
        Ok(())
    }

    /// One task.
    pub async fn task(&self, id: &str) -> Result<Option<TaskRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM druid_tasks WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(db_error)?;
        row.as_ref().map(task_from_row).transpose()
    }

    /// Tasks matching a filter, newest first.
    pub async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM druid_tasks ORDER BY created_ms DESC, id");
        let rows = sqlx::query(&sql)
            .fetch_all(self.pool())
            .await
            .map_err(db_error)?;
        let mut out = Vec::new();
        let mut complete_seen = 0usize;
        for row in &rows {
            let t = task_from_row(row)?;
            if filter
                .data_source
                .as_ref()
                .is_some_and(|d| d != &t.data_source)
            {
                continue;
            }
            let is_complete = t.status != "RUNNING";
            if filter.complete.is_some_and(|c| c != is_complete) {
                continue;
            }
            if filter.created_from.is_some_and(|f| t.created_ms < f)
                || filter.created_to.is_some_and(|to| t.created_ms >= to)
            {
                continue;
            }
            if is_complete {
                if filter.max.is_some_and(|m| complete_seen >= m) {
                    continue;
                }
                complete_seen += 1;
            }
            out.push(t);
        }
        Ok(out)
    }

    /// Tasks still marked RUNNING (after a restart: those the previous process left).
    pub async fn running_tasks(&self) -> Result<Vec<TaskRecord>> {
        self.tasks(&TaskFilter {
            complete: Some(false),
            ..Default::default()
        })
        .await
    }

    /// Whether any published segment was written by this task.
    pub async fn task_published(&self, task_id: &str) -> Result<bool> {
        let pattern = format!("%/{task_id}/%");
        let row = sqlx::query("SELECT COUNT(*) FROM druid_segments WHERE path LIKE $1")
            .bind(pattern)
            .fetch_one(self.pool())
            .await
            .map_err(db_error)?;
        let n: i64 = row.try_get(0).map_err(db_error)?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tasks_round_trip_and_filter() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::sqlite(&dir.path().join("m.db"))
            .await
            .unwrap();
        for (i, ds) in ["a", "b", "a"].iter().enumerate() {
            store
                .insert_task(&TaskRecord {
                    id: format!("t{i}"),
                    data_source: ds.to_string(),
                    created_ms: i as i64,
                    status: "RUNNING".into(),
                    duration_ms: -1,
                    error_msg: None,
                    payload: serde_json::json!({"id": i}),
                    report: None,
                })
                .await
                .unwrap();
        }
        store
            .finish_task(
                "t0",
                "FAILED",
                5,
                Some("Canceled: x"),
                &serde_json::json!({}),
            )
            .await
            .unwrap();
        let t0 = store.task("t0").await.unwrap().unwrap();
        assert_eq!(t0.status, "FAILED");
        assert_eq!(t0.error_msg.as_deref(), Some("Canceled: x"));
        assert!(store.task("nope").await.unwrap().is_none());
        let a = store
            .tasks(&TaskFilter {
                data_source: Some("a".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            a.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
            vec!["t2", "t0"]
        );
        assert_eq!(store.running_tasks().await.unwrap().len(), 2);
        assert!(
            store.insert_task(&t0).await.is_err(),
            "duplicate ids are refused"
        );
    }
}
