//! Runs an INSERT/REPLACE: plan, sort by the cluster key, write segments, publish
//! atomically. A statement that fails leaves no visible segment and no files.

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use datafusion::physical_plan::ExecutionPlan;
use grove_common::fault::CancelReason;
use grove_common::fault::{MAX_BUCKETS, MAX_PARTITIONS};
use grove_common::types::TIME_COLUMN;
use grove_common::{MsqFault, QueryContext};
use grove_input::{ExternScanExec, ScanCounters};
use grove_sql::{IngestKind, IngestPlan};
use grove_store::{
    DataSegment, DeepStorage, MetadataStore, PublishMode, PublishRequest, SegmentScans,
};
use object_store::path::Path as ObjectPath;

use crate::context::StageWorkers;
use crate::stages::{ChunkOrder, IngestStages};
use crate::task::{TaskControl, TaskPhase};
use crate::writer::WriterConfig;

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

    // The SELECT, plus a column for every CLUSTERED BY expression that is not a plain
    // output column: stage 1 sorts each time chunk by [CLUSTERED BY..., __time].
    let input_schema = Arc::clone(plan.input.schema());
    let n_out = input_schema.fields().len();
    let mut exprs: Vec<Expr> = input_schema
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    let mut sort_columns = Vec::with_capacity(plan.cluster_by.len() + 1);
    for (i, e) in plan.cluster_by.iter().enumerate() {
        match e {
            Expr::Column(c) => sort_columns.push(input_schema.index_of_column(c)?),
            other => {
                sort_columns.push(exprs.len());
                exprs.push(other.clone().alias(format!("__grove_cluster_{i}")));
            }
        }
    }
    sort_columns.push(
        input_schema
            .index_of_column_by_name(None, TIME_COLUMN)
            .ok_or_else(|| {
                DataFusionError::Plan(format!("INSERT/REPLACE needs a [{TIME_COLUMN}] column"))
            })?,
    );
    let keyed = LogicalPlanBuilder::from(plan.input.clone())
        .project(exprs)?
        .build()?;
    let (state, tables) = with_segment_scans(state);
    let state = &state;
    let physical = state.create_physical_plan(&keyed).await?;
    progress.set_scans(collect_scans(&physical));
    progress.set_tables(tables.scans());

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
    if let Some(w) = state.config().get_extension::<StageWorkers>() {
        progress.workers.store(w.workers as u64, Ordering::Relaxed);
    }
    progress.set_phase(TaskPhase::Reading);
    let stage_workers = state.config().get_extension::<StageWorkers>();
    let outcome = IngestStages {
        plan: physical,
        task_ctx: state.task_ctx(),
        workers: stage_workers.as_ref().map_or(1, |w| w.partitions),
        worker_count: stage_workers.as_ref().map_or(1, |w| w.workers),
        order: ChunkOrder {
            columns: sort_columns,
        },
        output: (0..n_out).collect(),
        writer: config,
        deep,
        control,
    }
    .run()
    .await?;
    tracing::info!(
        task_id = %task_id,
        rows = outcome.rows,
        chunks = outcome.chunks,
        spilled_rows = outcome.spilled_rows,
        "segments written"
    );
    let rows = outcome.rows;
    let segments = outcome.segments;
    let paths: Vec<ObjectPath> = segments
        .iter()
        .map(|s| ObjectPath::from(s.path.as_str()))
        .collect();
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

/// A copy of `state` whose datasource scans record what they read into the returned
/// [`SegmentScans`] (Druid's table-input counters).
pub(crate) fn with_segment_scans(state: &SessionState) -> (SessionState, Arc<SegmentScans>) {
    let scans = Arc::new(SegmentScans::default());
    let mut state = state.clone();
    state.config_mut().set_extension(Arc::clone(&scans));
    (state, scans)
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
