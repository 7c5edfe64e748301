//! Runs an INSERT/REPLACE: plan, sort by the cluster key, write segments, publish
//! atomically. A statement that fails leaves no visible segment and no files.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use datafusion::common::runtime::JoinSet;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SessionState, TaskContext};
use datafusion::physical_plan::ExecutionPlan;
use futures::StreamExt;
use grove_common::fault::MAX_PARTITIONS;
use grove_common::{MsqFault, QueryContext};
use grove_input::{ExternScanExec, ScanCounters};
use grove_sql::{IngestKind, IngestPlan};
use grove_store::{
    DataSegment, DeepStorage, MetadataStore, NewSegment, PublishMode, PublishRequest, SegmentScans,
};
use object_store::path::Path as ObjectPath;

use arrow::array::RecordBatch;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};

use crate::bucket_exec::{AssignBucketExec, BucketPlan};
use crate::context::StageWorkers;
use crate::generator_exec::SegmentGeneratorExec;
use crate::node::IngestNode;
use crate::range::SplitKeys;
use crate::shuffle_exec::worker_failed;
use crate::stage_layout::StageLayout;
use crate::stats_exec::{ChunkStatistics, KeyStatsExec, StatsSpec};
use crate::task::{TaskControl, TaskPhase};

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

/// Runs a planned INSERT/REPLACE to completion (or cancellation) and publishes it; returns
/// what it published and the physical plan that ran (with its metrics). The
/// statement becomes an [`IngestNode`] over its SELECT, DataFusion plans it (with
/// Grove's [`crate::IngestPlanner`]) into the ingest's operators, every partition of that
/// plan runs, and the segments the plan describes are published in one transaction.
pub(crate) async fn execute_ingest(
    state: &SessionState,
    plan: &IngestPlan,
    context: &QueryContext,
    metadata: &MetadataStore,
    deep: &DeepStorage,
    task_id: &str,
    control: &TaskControl,
) -> Result<(IngestSummary, Arc<dyn ExecutionPlan>)> {
    let task_start = chrono::Utc::now().timestamp_millis();
    let fail_on_empty = context
        .fail_on_empty_insert()
        .map_err(DataFusionError::Plan)?;
    let progress = &control.progress;
    let logical = IngestNode::try_new(plan, task_id, context)?.into_plan();
    let (mut state, tables) = with_segment_scans(state);
    // The operators report live progress here.
    state.config_mut().set_extension(Arc::clone(progress));
    let state = &state;
    let physical = state.create_physical_plan(&logical).await?;
    progress.set_scans(collect_scans(&physical));
    progress.set_tables(tables.scans());
    let table_inputs = crate::report::stage_inputs(&plan.input).len();
    progress.set_layout(StageLayout::of(&physical, table_inputs));
    if let Some(w) = state.config().get_extension::<StageWorkers>() {
        progress.workers.store(w.workers as u64, Ordering::Relaxed);
    }
    progress.set_phase(TaskPhase::Reading);
    let physical = with_key_statistics(physical, state.task_ctx(), control).await?;
    // The buckets are in place: the plan that runs has new operators (and metrics).
    progress.set_layout(StageLayout::of(&physical, table_inputs));
    let segments = run_plan(
        &physical,
        state.task_ctx(),
        control,
        &plan.target,
        task_id,
        deep,
    )
    .await;
    if let Some(layout) = progress.layout() {
        layout.freeze();
    }
    let segments = segments?;
    let rows: u64 = segments.iter().map(|s| s.num_rows).sum();
    tracing::info!(
        task_id = %task_id,
        rows,
        segments = segments.len(),
        spilled_rows = progress.rows_spilled.load(Ordering::Relaxed),
        "segments written"
    );
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
        return Err(cleanup_and(control.canceled().into()).await);
    }
    let mode = match (&plan.kind, &plan.replace_intervals) {
        (IngestKind::Replace, Some(intervals)) => PublishMode::Replace {
            intervals: intervals.clone(),
        },
        _ => PublishMode::Append,
    };
    if rows == 0 && mode == PublishMode::Append {
        let summary = IngestSummary {
            task_id: task_id.to_string(),
            data_source: plan.target.clone(),
            rows: 0,
            segments: vec![],
            overshadowed: vec![],
        };
        return Ok((summary, physical));
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
            let summary = IngestSummary {
                task_id: task_id.to_string(),
                data_source: plan.target.clone(),
                rows,
                segments: result.published,
                overshadowed: result.overshadowed,
            };
            Ok((summary, physical))
        }
        Err(e) => Err(cleanup_and(e).await),
    }
}

/// Puts segments in time order and, within a time chunk, in key order (range shard
/// specs) or in the order they were cut (numbered), the order partition numbers follow.
/// A chunk split into range buckets was written by several partitions, each knowing only
/// its own bucket: the chunk's first segment starts open, each segment ends where the
/// next one starts, and the last ends open.
fn chain_ranges(segments: &mut [NewSegment]) {
    segments.sort_by(|a, b| {
        let start = |s: &NewSegment| s.range.as_ref().and_then(|r| r.start.clone());
        (a.interval, start(a), &a.path).cmp(&(b.interval, start(b), &b.path))
    });
    let mut i = 0;
    while i < segments.len() {
        let interval = segments[i].interval;
        let end = (i..segments.len())
            .find(|&j| segments[j].interval != interval)
            .unwrap_or(segments.len());
        let starts: Vec<_> = segments[i..end]
            .iter()
            .map(|s| s.range.as_ref().and_then(|r| r.start.clone()))
            .collect();
        for (k, s) in segments[i..end].iter_mut().enumerate() {
            if let Some(range) = s.range.as_mut() {
                range.start = if k == 0 { None } else { starts[k].clone() };
                range.end = starts.get(k + 1).cloned().flatten();
            }
        }
        i = end;
    }
}

/// The hash form of the shuffle needs its buckets before it runs: runs the key
/// statistics of the bucket operator's input (job A of ../docs/engine.md), merges them,
/// cuts each time chunk's boundaries, and returns the plan with the buckets in place. A
/// plan without a bucket operator waiting for them is returned as it is.
///
/// The statistics read the input once more, through a copy of its plan whose scans count
/// nothing (Druid's input counters are those of the pass that writes).
pub(crate) async fn with_key_statistics(
    plan: Arc<dyn ExecutionPlan>,
    task_ctx: Arc<TaskContext>,
    control: &TaskControl,
) -> Result<Arc<dyn ExecutionPlan>> {
    let waiting = operators(&plan, |a: &AssignBucketExec| {
        a.spec().plan.is_none().then(|| {
            (
                Arc::clone(a.input()),
                a.spec().writer.clone(),
                a.spec().order.clone(),
            )
        })
    });
    let Some((input, writer, order)) = waiting.into_iter().flatten().next() else {
        return Ok(plan);
    };
    let policy = task_ctx
        .session_config()
        .get_extension::<grove_input::InputPolicy>()
        .unwrap_or_default();
    let input = input
        .transform_up(|node| {
            Ok(Transformed::yes(
                match node.downcast_ref::<ExternScanExec>() {
                    Some(scan) => {
                        Arc::new(ExternScanExec::from_descriptor(scan.descriptor(), &policy)?)
                    }
                    None => node.reset_state()?,
                },
            ))
        })
        .data()?;
    let keys = SplitKeys::of(&input.schema(), &writer, &order)?;
    let stats: Arc<dyn ExecutionPlan> = Arc::new(KeyStatsExec::try_new(
        input,
        StatsSpec {
            writer: writer.clone(),
            order,
        },
    )?);
    let mut parts: JoinSet<Result<Vec<RecordBatch>>> = JoinSet::new();
    for p in 0..stats.properties().partitioning.partition_count() {
        let stream = stats.execute(p, Arc::clone(&task_ctx))?;
        parts.spawn(async move { stream.collect::<Vec<_>>().await.into_iter().collect() });
    }
    let mut batches = Vec::new();
    loop {
        let next = tokio::select! {
            _ = control.cancel.cancelled() => return Err(control.canceled().into()),
            next = parts.join_next() => next,
        };
        match next {
            None => break,
            Some(Ok(done)) => batches.extend(done?),
            Some(Err(e)) => {
                return Err(worker_failed(&writer.task_id, 0, 0, e));
            }
        }
    }
    control.progress.set_phase(TaskPhase::MergingStatistics);
    let merged = ChunkStatistics::merge(&batches, &keys, &writer)?;
    let buckets = BucketPlan::cut(&merged, &keys, writer.rows_per_segment)?;
    plan.transform_up(|node| match node.downcast_ref::<AssignBucketExec>() {
        Some(assign) if assign.spec().plan.is_none() => Ok(Transformed::yes(Arc::new(
            assign.with_plan(buckets.clone())?,
        )
            as Arc<dyn ExecutionPlan>)),
        _ => Ok(Transformed::no(node)),
    })
    .data()
}

/// Runs every partition of an ingest's physical plan on its own task and collects the
/// segments it describes, in time order (within a chunk, in the order they were cut).
/// On failure or cancellation every file written is deleted before returning.
async fn run_plan(
    plan: &Arc<dyn ExecutionPlan>,
    task_ctx: Arc<TaskContext>,
    control: &TaskControl,
    data_source: &str,
    task_id: &str,
    deep: &DeepStorage,
) -> Result<Vec<NewSegment>> {
    let partitions = plan.properties().partitioning.partition_count();
    let workers = control.progress.workers.load(Ordering::Relaxed).max(1) as usize;
    let mut writers: JoinSet<Result<Vec<NewSegment>>> = JoinSet::new();
    let mut writer_ids = HashMap::new();
    let mut streams = Vec::with_capacity(partitions);
    for p in 0..partitions {
        streams.push(plan.execute(p, Arc::clone(&task_ctx))?);
    }
    for (p, mut stream) in streams.into_iter().enumerate() {
        let handle = writers.spawn(async move {
            let mut segments = Vec::new();
            while let Some(batch) = stream.next().await {
                segments.extend(SegmentGeneratorExec::segments(&batch?)?);
            }
            Ok(segments)
        });
        writer_ids.insert(handle.id(), p % workers);
    }
    let mut written: Vec<NewSegment> = Vec::new();
    let outcome = loop {
        let next = tokio::select! {
            _ = control.cancel.cancelled() => break Err(control.canceled().into()),
            next = writers.join_next() => next,
        };
        match next {
            None => break Ok(()),
            Some(Ok(Ok(segments))) => written.extend(segments),
            Some(Ok(Err(e))) => break Err(e),
            Some(Err(e)) => {
                let worker = writer_ids.get(&e.id()).copied().unwrap_or(0);
                break Err(worker_failed(task_id, 1, worker, e));
            }
        }
    };
    if let Err(e) = outcome {
        // Let every partition stop before deleting what they wrote.
        writers.abort_all();
        while let Some(done) = writers.join_next().await {
            if let Ok(Ok(segments)) = done {
                written.extend(segments);
            }
        }
        let paths: Vec<_> = written
            .iter()
            .map(|s| ObjectPath::from(s.path.as_str()))
            .collect();
        deep.delete_all(&paths).await;
        deep.delete_task_files(data_source, task_id).await;
        return Err(e);
    }
    chain_ranges(&mut written);
    if written.len() > MAX_PARTITIONS {
        let paths: Vec<_> = written
            .iter()
            .map(|s| ObjectPath::from(s.path.as_str()))
            .collect();
        deep.delete_all(&paths).await;
        return Err(MsqFault::TooManyPartitions.into());
    }
    Ok(written)
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
    operators(plan, |scan: &ExternScanExec| Arc::clone(scan.counters()))
}

/// `f` of every operator of type `T` in a physical plan.
pub(crate) fn operators<T: ExecutionPlan + 'static, R>(
    plan: &Arc<dyn ExecutionPlan>,
    f: impl Fn(&T) -> R,
) -> Vec<R> {
    let mut out = Vec::new();
    let mut stack = vec![Arc::clone(plan)];
    while let Some(p) = stack.pop() {
        if let Some(op) = p.downcast_ref::<T>() {
            out.push(f(op));
        }
        stack.extend(p.children().into_iter().cloned());
    }
    out
}
