//! [`ChunkShuffleExec`]: the ingest's shuffle. Its input is the SELECT (with the
//! CLUSTERED BY keys as columns); its output partitions are the segment generator's
//! slots, each a stream of rows sorted by [CLUSTERED BY..., `__time`], one time chunk
//! after another.
//!
//! ```text
//!  input partitions 0..N ──▶ route every row to its time chunk ──▶ chunk buffers
//!  (Druid's stage 0: one task each;   (InsertTimeNull, OutOfBounds,   (memory pool; rows
//!   counted under worker p % W)        TooManyBuckets checked here)    spill to disk)
//!                                                                            │
//!  output partition s (a slot of Druid's stage 1) ◀── sort one chunk ◀── next chunk,
//!   sorted rows of whole chunks, chunk by chunk       (in memory, or       largest first
//!                                                     merged from runs)
//! ```
//!
//! Everything one execution needs lives in a [`ShuffleRun`], created by the first
//! `execute` call and shared by the output partitions of that execution, as DataFusion's
//! `RepartitionExec` shares its channels. The node holds the current run until every
//! output partition has been asked for once; asking for a partition again starts a new
//! run, so the node can be executed again (its partitions at once or one after the
//! other), and a node rebuilt by `with_new_children` or a codec starts with none. The
//! run's tasks stop, and its spill files go, when the node and the run's streams are
//! dropped.
//!
//! A time chunk is never split between output partitions, so a segment never spans two
//! chunks and the segment generator cuts each chunk on its own.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::runtime::{JoinSet, SpawnedTask};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use futures::FutureExt;
use futures::StreamExt;
use grove_common::MsqFault;
use grove_common::types::TIME_COLUMN;
use serde::{Deserialize, Serialize};
use tokio::task::JoinError;

use crate::counters::{StageCounters, StageKind};
use crate::parquet_writer::ThreadShare;
use crate::range::{SplitKeys, split_chunk};
use crate::route::Shuffle;
use crate::serve::{ChunkQueue, ChunkSorter, Served, ShuffleRun, keyed_schema};
use crate::sort::ChunkOrder;
use crate::task::{TaskPhase, TaskProgress};
use crate::writer::WriterConfig;

/// The shuffle's parameters (all that travels through [`crate::GroveCodec`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShuffleSpec {
    /// The ingest's settings (granularity, OVERWRITE intervals, limits).
    pub(crate) writer: WriterConfig,
    /// The sort key of each chunk: [CLUSTERED BY..., `__time`].
    pub(crate) order: ChunkOrder,
    /// Druid's worker count: input partition `p` and output partition `s` count as
    /// workers `p % workers` and `s % workers`.
    pub(crate) workers: usize,
    /// Output partitions: chunks sorted and served at once.
    pub(crate) slots: usize,
}

/// The ingest's shuffle: routes rows to time chunks under the memory budget, then serves
/// each chunk sorted to one of its output partitions (see the module docs).
pub struct ChunkShuffleExec {
    input: Arc<dyn ExecutionPlan>,
    spec: ShuffleSpec,
    properties: Arc<PlanProperties>,
    /// Druid's stage 0 (routing): per-worker output channels.
    counters: Arc<StageCounters>,
    /// Druid's stage 1 as the shuffle sees it: input channels and sort progress (the
    /// segment generator adds segment progress and output channels to the same).
    read_counters: Arc<StageCounters>,
    /// The cores the output partitions gather sorted rows on.
    threads: ThreadShare,
    metrics: ExecutionPlanMetricsSet,
    /// The current execution, until each of its output partitions has been taken.
    run: Mutex<Option<Arc<ShuffleRun>>>,
}

impl fmt::Debug for ChunkShuffleExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkShuffleExec")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// The column that numbers a row's range bucket within its time chunk (the last column
/// of the shuffle's output).
pub(crate) const BUCKET_COLUMN: &str = "__bucket";

/// The schema rows leave the shuffle with: every string column as keys into a
/// dictionary of its chunk's values (`Dictionary(UInt32, Utf8)`), so that the sorted rows
/// are gathered without copying strings; other columns as they are; then
/// [`BUCKET_COLUMN`].
pub(crate) fn served_schema(plain: &SchemaRef) -> SchemaRef {
    let keyed = keyed_schema(plain);
    let mut fields: Vec<Field> = keyed.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(BUCKET_COLUMN, DataType::UInt32, false));
    Arc::new(Schema::new_with_metadata(fields, plain.metadata().clone()))
}

impl ChunkShuffleExec {
    /// The shuffle of `input` (which must have a `__time` column).
    pub fn try_new(input: Arc<dyn ExecutionPlan>, spec: ShuffleSpec) -> Result<Self> {
        input.schema().index_of(TIME_COLUMN)?;
        let schema = served_schema(&input.schema());
        let slots = spec.slots.max(1);
        Ok(Self {
            properties: Arc::new(PlanProperties::new(
                EquivalenceProperties::new(schema),
                Partitioning::UnknownPartitioning(slots),
                EmissionType::Final,
                Boundedness::Bounded,
            )),
            counters: Arc::new(StageCounters::new(StageKind::Scan, spec.workers)),
            read_counters: Arc::new(StageCounters::new(
                StageKind::SegmentGenerator,
                spec.workers,
            )),
            threads: ThreadShare::new(slots),
            metrics: ExecutionPlanMetricsSet::new(),
            input,
            spec,
            run: Mutex::new(None),
        })
    }

    /// The parameters.
    pub fn spec(&self) -> &ShuffleSpec {
        &self.spec
    }

    /// Live per-worker counters of the routing (Druid's stage 0).
    pub fn counters(&self) -> &Arc<StageCounters> {
        &self.counters
    }

    /// Live per-worker counters of what the output partitions served (Druid's stage 1:
    /// input channels, sort progress).
    pub fn read_counters(&self) -> &Arc<StageCounters> {
        &self.read_counters
    }

    /// The run that serves output partition `partition`: the current one, or a new one
    /// (its routing started) when there is none or the current one served it already.
    fn run(&self, context: &Arc<TaskContext>, partition: usize) -> Result<Arc<ShuffleRun>> {
        let mut guard = self
            .run
            .lock()
            .map_err(|_| DataFusionError::Internal("shuffle state poisoned".into()))?;
        if let Some(run) = guard.as_ref()
            && run.take(partition)?
        {
            return Ok(Arc::clone(run));
        }
        let run = Arc::new(ShuffleRun::start(self, context)?);
        run.take(partition)?;
        *guard = Some(Arc::clone(&run));
        Ok(run)
    }
}

impl DisplayAs for ChunkShuffleExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let schema = self.input.schema();
        let sort: Vec<&str> = self
            .spec
            .order
            .columns
            .iter()
            .map(|&i| schema.field(i).name().as_str())
            .collect();
        write!(
            f,
            "ChunkShuffleExec: time_chunks={}, sort=[{}], workers={}, slots={}",
            crate::node::granularity_sql(&self.spec.writer.granularity),
            sort.join(", "),
            self.spec.workers,
            self.spec.slots
        )
    }
}

impl ExecutionPlan for ChunkShuffleExec {
    fn name(&self) -> &str {
        "ChunkShuffleExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        // The input's partitions are read as they come; a repartition in front of the
        // shuffle would only copy rows.
        vec![false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        // No physical expressions: the parameters are plain data.
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = crate::planner::single_input(&children, "ChunkShuffleExec")?;
        // The counters are the statement's, like metrics: a node rebuilt by an optimizer
        // keeps counting into them (the segment generator above shares the stage-1 ones).
        let mut rebuilt = Self::try_new(input, self.spec.clone())?;
        rebuilt.counters = Arc::clone(&self.counters);
        rebuilt.read_counters = Arc::clone(&self.read_counters);
        Ok(Arc::new(rebuilt))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let slots = self.properties.partitioning.partition_count();
        if partition >= slots {
            return Err(DataFusionError::Internal(format!(
                "ChunkShuffleExec has {slots} partitions, asked for {partition}"
            )));
        }
        let run = self.run(&context, partition)?;
        let schema = self.schema();
        let worker = partition % self.spec.workers.max(1);
        let sorter = ChunkSorter::try_new(
            self.input.schema(),
            self.schema(),
            &self.spec.order,
            self.spec.slots,
            Arc::clone(&self.read_counters),
            self.threads.clone(),
            &self.metrics,
            &context,
            partition,
            worker,
        )?;
        let stream = futures::stream::try_unfold(
            Served::new(run, sorter, &self.metrics, partition),
            |mut served| async move {
                let next = served.next().await?;
                Ok(next.map(|batch| (batch, served)))
            },
        );
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

impl ShuffleRun {
    /// Starts routing every input partition on its own task.
    fn start(exec: &ChunkShuffleExec, context: &Arc<TaskContext>) -> Result<Self> {
        let plain = exec.input.schema();
        let keys = SplitKeys::of(&plain, &exec.spec.writer, &exec.spec.order)?;
        let shuffle = Arc::new(Shuffle::try_new(
            Arc::clone(&plain),
            exec.spec.writer.clone(),
            keys.clone(),
            context,
        )?);
        let rows_per_segment = exec.spec.writer.rows_per_segment;
        let plain_rows = Arc::clone(&plain);
        let progress = task_progress(context);
        let queue = Arc::new(Mutex::new(ChunkQueue {
            chunks: Default::default(),
            spill: Some(shuffle.spill_manager()),
            progress: progress.clone(),
        }));
        let spill = shuffle.spill_manager();
        let split_spill = shuffle.spill_manager();
        let partitions = exec.input.properties().partitioning.partition_count();
        let workers = exec.spec.workers.max(1);
        let task_id = exec.spec.writer.task_id.clone();
        let mut readers: JoinSet<Result<()>> = JoinSet::new();
        let mut reader_ids = std::collections::HashMap::new();
        let routed_rows = MetricBuilder::new(&exec.metrics).counter("routed_rows", 0);
        let spilled_rows = MetricBuilder::new(&exec.metrics).spilled_rows(0);
        let elapsed = MetricBuilder::new(&exec.metrics).elapsed_compute(0);
        for p in 0..partitions {
            let stream = exec.input.execute(p, Arc::clone(context))?;
            let shuffle = Arc::clone(&shuffle);
            let counters = Arc::clone(&exec.counters);
            let handle = readers
                .spawn(async move { route_all(stream, shuffle, counters, p).await.map(|_| ()) });
            reader_ids.insert(handle.id(), p % workers);
        }
        let fill = Arc::clone(&queue);
        let driver = SpawnedTask::spawn(async move {
            let timer = elapsed.timer();
            while let Some(done) = readers.join_next().await {
                done.map_err(|e| {
                    let worker = reader_ids.get(&e.id()).copied().unwrap_or(0);
                    worker_failed(&task_id, 0, worker, e)
                })??;
            }
            let output = shuffle.take_output()?;
            let time_chunks = output.chunks.len();
            if let Some(progress) = &progress {
                progress.set_phase(TaskPhase::MergingStatistics);
            }
            // Chunks larger than a segment are split at key boundaries, so that their
            // sort and write spread over the output partitions.
            let mut chunks = Vec::with_capacity(output.chunks.len());
            for (interval, chunk) in output.chunks {
                if chunk.rows > rows_per_segment {
                    for part in
                        split_chunk(chunk, &keys, rows_per_segment, &plain_rows, &split_spill)
                            .await?
                    {
                        chunks.push((interval, part));
                    }
                } else {
                    chunks.push((interval, chunk));
                }
            }
            chunks.sort_by_key(|(_, c)| std::cmp::Reverse(c.rows));
            timer.done();
            routed_rows.add(output.rows as usize);
            spilled_rows.add(output.spilled_rows as usize);
            if let Some(progress) = &progress {
                progress.chunks.store(time_chunks as u64, Ordering::Relaxed);
                progress
                    .rows_spilled
                    .store(output.spilled_rows, Ordering::Relaxed);
                progress.set_phase(TaskPhase::Writing);
            }
            fill.lock()
                .map_err(|_| DataFusionError::Internal("chunk queue poisoned".into()))?
                .chunks
                .extend(chunks);
            Ok::<_, DataFusionError>(())
        });
        let routing = async move {
            match driver.join().await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(Arc::new(e)),
                Err(e) => Err(Arc::new(DataFusionError::Execution(format!(
                    "the shuffle's routing task failed: {e}"
                )))),
            }
        }
        .boxed()
        .shared();
        Ok(Self {
            routing,
            queue,
            spill,
            taken: Mutex::new(vec![false; exec.properties.partitioning.partition_count()]),
        })
    }
}

/// The statement's live progress, when the session carries one.
pub(crate) fn task_progress(context: &TaskContext) -> Option<Arc<TaskProgress>> {
    context.session_config().get_extension::<TaskProgress>()
}

/// Routes every batch of `stream` (input partition `partition`); returns the rows.
pub(crate) async fn route_all(
    mut stream: SendableRecordBatchStream,
    shuffle: Arc<Shuffle>,
    counters: Arc<StageCounters>,
    partition: usize,
) -> Result<u64> {
    let output = &counters.worker(partition).output;
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        shuffle.route(batch, output)?;
    }
    Ok(rows)
}

/// Druid's WorkerFailed for a worker task that panicked or was lost: the task fails
/// naming the worker (`<task id>-worker<n>_<stage>`) and the cause.
pub(crate) fn worker_failed(
    task_id: &str,
    stage: usize,
    worker: usize,
    e: JoinError,
) -> DataFusionError {
    let cause = if e.is_panic() {
        let panic = e.into_panic();
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        format!("stage {stage} worker panicked: {what}")
    } else {
        format!("stage {stage} worker was lost: {e}")
    };
    MsqFault::WorkerFailed {
        worker_task_id: format!("{task_id}-worker{worker}_{stage}"),
        error_msg: cause,
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_worker_fails_the_task_with_worker_failed() {
        let joined = tokio::spawn(async { panic!("decoder exploded") }).await;
        let Err(e) = joined;
        let err = worker_failed("query-abc", 1, 0, e);
        let fault = MsqFault::find(&err).expect("a fault");
        assert_eq!(fault.error_code(), "WorkerFailed");
        let json = fault.to_json();
        assert_eq!(json["workerTaskId"], "query-abc-worker0_1");
        assert_eq!(
            json["errorMsg"],
            "stage 1 worker panicked: decoder exploded"
        );
        assert_eq!(
            fault.message(),
            "Worker task failed: [query-abc-worker0_1] (stage 1 worker panicked: decoder exploded)"
        );
    }
}
