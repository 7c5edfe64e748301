//! Runs an INSERT/REPLACE: plan, sort by the cluster key, write segments, publish
//! atomically. A statement that fails leaves no visible segment and no files.

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, SortExpr, col, lit};
use datafusion::physical_plan::execute_stream;
use futures::StreamExt;
use grove_common::fault::{MAX_BUCKETS, MAX_PARTITIONS};
use grove_common::types::TIME_COLUMN;
use grove_common::{Granularity, MsqFault, QueryContext};
use grove_sql::{IngestKind, IngestStatement, plan_ingest};
use grove_store::{DataSegment, DeepStorage, MetadataStore, PublishMode, PublishRequest};

use crate::writer::{SegmentWriter, WriterConfig};

/// What an ingest published.
#[derive(Debug, Clone)]
pub struct IngestSummary {
    /// The task id (`query-<uuid>`).
    pub task_id: String,
    /// Target datasource.
    pub data_source: String,
    /// Rows written.
    pub rows: u64,
    /// Segments published.
    pub segments: Vec<DataSegment>,
    /// Segment ids REPLACE marked unused.
    pub overshadowed: Vec<String>,
}

pub(crate) async fn run_ingest(
    state: &SessionState,
    stmt: &IngestStatement,
    context: &QueryContext,
    metadata: &MetadataStore,
    deep: &DeepStorage,
    _sql: &str,
) -> Result<IngestSummary> {
    let task_start = chrono::Utc::now().timestamp_millis();
    let task_id = match context.sql_query_id().map_err(DataFusionError::Plan)? {
        Some(id) => format!("query-{id}"),
        None => format!("query-{}", uuid::Uuid::new_v4()),
    };
    let plan = plan_ingest(state, stmt).await?;
    let rows_per_segment = context.rows_per_segment().map_err(DataFusionError::Plan)?;
    let fail_on_empty = context
        .fail_on_empty_insert()
        .map_err(DataFusionError::Plan)?;

    // Sort by [time chunk, CLUSTERED BY..., __time].
    let mut sort: Vec<SortExpr> = Vec::new();
    if !plan.cluster_by.is_empty() {
        if let Some(bucket) = bucket_expr(state, &plan.granularity)? {
            sort.push(bucket.sort(true, true));
        }
        sort.extend(plan.cluster_by.iter().map(|e| e.clone().sort(true, true)));
    }
    sort.push(col(TIME_COLUMN).sort(true, true));
    let sorted = LogicalPlanBuilder::from(plan.input.clone())
        .sort(sort)?
        .build()?;
    let physical = state.create_physical_plan(&sorted).await?;
    let schema = physical.schema();

    let config = WriterConfig {
        data_source: plan.target.clone(),
        task_id: task_id.clone(),
        granularity: plan.granularity,
        rows_per_segment,
        replace_intervals: plan.replace_intervals.clone(),
        range_dimensions: plan.range_dimensions.clone(),
        columns: plan.columns.clone(),
        max_partitions: MAX_PARTITIONS,
        max_buckets: MAX_BUCKETS,
    };
    let mut writer = SegmentWriter::try_new(config, deep.clone(), schema)?;
    let written = async {
        let mut stream = execute_stream(physical, state.task_ctx())?;
        while let Some(batch) = stream.next().await {
            writer.write(&batch?).await?;
        }
        Ok::<_, DataFusionError>(())
    }
    .await;
    if let Err(e) = written {
        let paths = writer.abort().await;
        deep.delete_all(&paths).await;
        return Err(e);
    }
    let rows = writer.rows();
    let paths = writer.written_paths().to_vec();
    let segments = match writer.finish().await {
        Ok(s) => s,
        Err(e) => {
            deep.delete_all(&paths).await;
            return Err(e);
        }
    };
    if rows == 0 && fail_on_empty {
        return Err(MsqFault::InsertCannotBeEmpty {
            data_source: plan.target.clone(),
        }
        .into());
    }
    let mode = match (&plan.kind, &plan.replace_intervals) {
        (IngestKind::Replace, Some(intervals)) => PublishMode::Replace {
            intervals: intervals.clone(),
        },
        _ => PublishMode::Append,
    };
    if rows == 0 && mode == PublishMode::Append {
        return Ok(IngestSummary {
            task_id,
            data_source: plan.target,
            rows: 0,
            segments: vec![],
            overshadowed: vec![],
        });
    }
    let published = metadata
        .publish(PublishRequest {
            data_source: plan.target.clone(),
            mode,
            task_start,
            segments,
        })
        .await;
    match published {
        Ok(result) => {
            tracing::info!(
                task_id = %task_id,
                data_source = %plan.target,
                rows,
                segments = result.published.len(),
                "published"
            );
            Ok(IngestSummary {
                task_id,
                data_source: plan.target,
                rows,
                segments: result.published,
                overshadowed: result.overshadowed,
            })
        }
        Err(e) => {
            deep.delete_all(&paths).await;
            Err(e)
        }
    }
}

/// The time-chunk expression rows are sorted by first: `TIME_FLOOR(__time, period)`.
fn bucket_expr(state: &SessionState, granularity: &Granularity) -> Result<Option<Expr>> {
    match granularity {
        Granularity::All => Ok(None),
        Granularity::None => Ok(Some(col(TIME_COLUMN))),
        Granularity::Period(p) => {
            let udf = state
                .scalar_functions()
                .get("time_floor")
                .ok_or_else(|| DataFusionError::Internal("time_floor is not registered".into()))?;
            Ok(Some(udf.call(vec![col(TIME_COLUMN), lit(p.to_string())])))
        }
    }
}
