//! Runs an INSERT/REPLACE: plan, sort by the cluster key, write segments, publish
//! atomically. A statement that fails leaves no visible segment and no files.

use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, SortExpr, col, lit};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use grove_common::fault::CancelReason;
use grove_common::fault::{MAX_BUCKETS, MAX_PARTITIONS};
use grove_common::types::TIME_COLUMN;
use grove_common::{Granularity, MsqFault, QueryContext};
use grove_input::{ExternScanExec, ScanCounters};
use grove_sql::{IngestKind, IngestPlan};
use grove_store::{DataSegment, DeepStorage, MetadataStore, PublishMode, PublishRequest};

use crate::task::{TaskControl, TaskPhase};
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

/// The task id of a statement: `query-<sqlQueryId>`, or `query-<uuid>`.
pub(crate) fn task_id_for(context: &QueryContext) -> Result<String> {
    Ok(
        match context.sql_query_id().map_err(DataFusionError::Plan)? {
            Some(id) => format!("query-{id}"),
            None => format!("query-{}", uuid::Uuid::new_v4()),
        },
    )
}

/// Runs a planned INSERT/REPLACE to completion (or cancellation) and publishes it.
pub(crate) async fn execute_ingest(
    state: &SessionState,
    plan: &IngestPlan,
    context: &QueryContext,
    metadata: &MetadataStore,
    deep: &DeepStorage,
    task_id: &str,
    control: &TaskControl,
) -> Result<IngestSummary> {
    let task_start = chrono::Utc::now().timestamp_millis();
    let rows_per_segment = context.rows_per_segment().map_err(DataFusionError::Plan)?;
    let fail_on_empty = context
        .fail_on_empty_insert()
        .map_err(DataFusionError::Plan)?;
    let progress = &control.progress;

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
    progress.set_scans(collect_scans(&physical));
    let schema = physical.schema();

    let config = WriterConfig {
        data_source: plan.target.clone(),
        task_id: task_id.to_string(),
        granularity: plan.granularity,
        rows_per_segment,
        replace_intervals: plan.replace_intervals.clone(),
        range_dimensions: plan.range_dimensions.clone(),
        columns: plan.columns.clone(),
        max_partitions: MAX_PARTITIONS,
        max_buckets: MAX_BUCKETS,
    };
    let mut writer = SegmentWriter::try_new(config, deep.clone(), schema)?;
    progress.set_phase(TaskPhase::Reading);
    let written = async {
        let mut stream = execute_stream(physical, state.task_ctx())?;
        while let Some(batch) = control.next_batch(&mut stream).await? {
            writer.write(&batch).await?;
            progress.rows_out.store(writer.rows(), Ordering::Relaxed);
            progress
                .segments
                .store(writer.segments_finished() as u64, Ordering::Relaxed);
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
    progress
        .segments
        .store(segments.len() as u64, Ordering::Relaxed);
    progress
        .bytes_out
        .store(segments.iter().map(|s| s.size).sum(), Ordering::Relaxed);
    let cleanup_and = |e: DataFusionError| async {
        deep.delete_all(&paths).await;
        e
    };
    if rows == 0 && fail_on_empty {
        return Err(cleanup_and(
            MsqFault::InsertCannotBeEmpty {
                data_source: plan.target.clone(),
            }
            .into(),
        )
        .await);
    }
    if control.cancel.is_cancelled() {
        return Err(cleanup_and(
            MsqFault::Canceled {
                reason: CancelReason::TaskShutdown,
            }
            .into(),
        )
        .await);
    }
    let mode = match (&plan.kind, &plan.replace_intervals) {
        (IngestKind::Replace, Some(intervals)) => PublishMode::Replace {
            intervals: intervals.clone(),
        },
        _ => PublishMode::Append,
    };
    if rows == 0 && mode == PublishMode::Append {
        return Ok(IngestSummary {
            task_id: task_id.to_string(),
            data_source: plan.target.clone(),
            rows: 0,
            segments: vec![],
            overshadowed: vec![],
        });
    }
    progress.set_phase(TaskPhase::Publishing);
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
            progress.rows_pushed.store(rows, Ordering::Relaxed);
            tracing::info!(
                task_id = %task_id,
                data_source = %plan.target,
                rows,
                segments = result.published.len(),
                "published"
            );
            Ok(IngestSummary {
                task_id: task_id.to_string(),
                data_source: plan.target.clone(),
                rows,
                segments: result.published,
                overshadowed: result.overshadowed,
            })
        }
        Err(e) => Err(cleanup_and(e).await),
    }
}

/// Counters of every EXTERN scan in a physical plan.
pub(crate) fn collect_scans(plan: &Arc<dyn ExecutionPlan>) -> Vec<Arc<ScanCounters>> {
    let mut out = Vec::new();
    let mut stack = vec![Arc::clone(plan)];
    while let Some(p) = stack.pop() {
        if let Some(scan) = p.downcast_ref::<ExternScanExec>() {
            out.push(Arc::clone(scan.counters()));
        }
        stack.extend(p.children().into_iter().cloned());
    }
    out
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
            // Time chunks are UTC whatever the session's sqlTimeZone.
            Ok(Some(udf.call(vec![
                col(TIME_COLUMN),
                lit(p.to_string()),
                lit(ScalarValue::Utf8(None)),
                lit("UTC"),
            ])))
        }
    }
}
