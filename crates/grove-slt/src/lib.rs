//! Test-only: runs `sql-tests/**/*.slt` through Grove's embedded engine
//! ([`grove_engine::GroveContext`]), rendering results exactly as DataFusion's own
//! sqllogictest runner does.

use std::path::Path;

use async_trait::async_trait;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion_sqllogictest::{
    DFColumnType, DFOutput, DFSqlLogicTestError, convert_batches, convert_schema_to_types,
};
use grove_common::QueryContext;
use grove_engine::{GroveContext, StatementOutcome};
use sqllogictest::DBOutput;

/// A sqllogictest database backed by one Grove context and its own data directory.
#[derive(Debug)]
pub struct GroveSltEngine {
    grove: GroveContext,
}

impl GroveSltEngine {
    /// Opens an engine whose data lives in `data_dir`.
    pub async fn open(data_dir: &Path) -> Result<Self, DFSqlLogicTestError> {
        Ok(Self {
            grove: GroveContext::open(data_dir).await?,
        })
    }
}

#[async_trait]
impl sqllogictest::AsyncDB for GroveSltEngine {
    type Error = DFSqlLogicTestError;
    type ColumnType = DFColumnType;

    async fn run(&mut self, sql: &str) -> Result<DFOutput, Self::Error> {
        let outcome = self
            .grove
            .execute_statement(sql, &QueryContext::new())
            .await?;
        match outcome {
            StatementOutcome::Set => Ok(DBOutput::StatementComplete(0)),
            StatementOutcome::Ingest(summary) => Ok(DBOutput::StatementComplete(summary.rows)),
            StatementOutcome::Query(df) => {
                let task_ctx = std::sync::Arc::new(df.task_ctx());
                let plan = df.create_physical_plan().await?;
                let schema = plan.schema();
                let batches: Vec<RecordBatch> =
                    datafusion::physical_plan::collect(plan, task_ctx).await?;
                let types = convert_schema_to_types(schema.fields());
                let rows = convert_batches(&schema, batches, false)?;
                if rows.is_empty() && types.is_empty() {
                    Ok(DBOutput::StatementComplete(0))
                } else {
                    Ok(DBOutput::Rows { types, rows })
                }
            }
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "Grove"
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }
}
