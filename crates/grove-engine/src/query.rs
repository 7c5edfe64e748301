//! SELECT statements run as tasks: results are collected (up to a cap, as Druid caps
//! what a task report holds), with cancellation and live row counts.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::Result;
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::execute_stream;

use crate::ingest::{collect_scans, with_segment_scans};
use crate::stage_layout::StageLayout;
use crate::task::{TaskControl, TaskPhase};

/// Rows of a SELECT task.
#[derive(Debug, Clone)]
pub struct QueryResults {
    /// Result schema.
    pub schema: SchemaRef,
    /// The rows kept (at most the cap).
    pub batches: Vec<RecordBatch>,
    /// True if the query produced more rows than were kept.
    pub truncated: bool,
}

impl QueryResults {
    /// Rows kept.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

/// Whether a plan returns rows (rather than changing the catalog or settings).
pub(crate) fn plan_is_query(plan: &LogicalPlan) -> bool {
    !matches!(
        plan,
        LogicalPlan::Dml(_)
            | LogicalPlan::Ddl(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::DescribeTable(_)
    )
}

/// Plans and starts a query, registering its scans with `control`'s progress.
pub(crate) async fn stream_query(
    state: &SessionState,
    plan: &LogicalPlan,
    control: &TaskControl,
) -> Result<datafusion::physical_plan::SendableRecordBatchStream> {
    let (state, tables) = with_segment_scans(state);
    let physical = state.create_physical_plan(plan).await?;
    control.progress.set_scans(collect_scans(&physical));
    control.progress.set_tables(tables.scans());
    control.progress.set_layout(StageLayout::of(
        &physical,
        crate::report::stage_inputs(plan).len(),
    ));
    control.progress.set_phase(TaskPhase::Reading);
    execute_stream(physical, state.task_ctx())
}

pub(crate) async fn collect_query(
    state: &SessionState,
    plan: &LogicalPlan,
    control: &TaskControl,
    max_rows: usize,
) -> Result<QueryResults> {
    let (state, tables) = with_segment_scans(state);
    let physical = state.create_physical_plan(plan).await?;
    control.progress.set_scans(collect_scans(&physical));
    control.progress.set_tables(tables.scans());
    control.progress.set_layout(StageLayout::of(
        &physical,
        crate::report::stage_inputs(plan).len(),
    ));
    let schema = physical.schema();
    control.progress.set_phase(TaskPhase::Reading);
    let mut stream = execute_stream(Arc::clone(&physical), state.task_ctx())?;
    let mut batches = Vec::new();
    let mut kept = 0usize;
    let mut truncated = false;
    while let Some(batch) = control.next_batch(&mut stream).await? {
        let room = max_rows - kept;
        if batch.num_rows() > room {
            truncated = true;
            if room > 0 {
                batches.push(batch.slice(0, room));
                kept += room;
            }
            break;
        }
        kept += batch.num_rows();
        batches.push(batch);
        control
            .progress
            .rows_out
            .store(kept as u64, Ordering::Relaxed);
    }
    control
        .progress
        .rows_out
        .store(kept as u64, Ordering::Relaxed);
    drop(stream);
    if let Some(layout) = control.progress.layout() {
        layout.freeze();
    }
    Ok(QueryResults {
        schema,
        batches,
        truncated,
    })
}
