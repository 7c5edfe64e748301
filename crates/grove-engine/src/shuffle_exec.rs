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

use arrow::array::{Array, ArrayRef, DictionaryArray, RecordBatch, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt32Type};
use datafusion::common::runtime::{JoinSet, SpawnedTask};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation, UnboundedMemoryPool,
};
use datafusion::physical_expr::{EquivalenceProperties, LexOrdering, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, Time,
};
use datafusion::physical_plan::sorts::streaming_merge::StreamingMergeBuilder;
use datafusion::physical_plan::spill::SpillManager;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::{StreamExt, TryStreamExt};
use grove_common::types::TIME_COLUMN;
use grove_common::{Interval, MsqFault};
use serde::{Deserialize, Serialize};
use tokio::task::JoinError;

use crate::counters::{StageCounters, StageKind, WorkerCounters};
use crate::parquet_writer::{ThreadShare, ThreadShareGuard};
use crate::range::{SplitKeys, split_chunk};
use crate::stages::{
    ChunkBuffer, ChunkOrder, Routed, Shuffle, SortedSlices, spill_batches, spill_manager,
};
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

/// `plain` with its string columns as keys into dictionaries.
fn keyed_schema(plain: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = plain
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Dictionary(
                Box::new(DataType::UInt32),
                Box::new(DataType::Utf8),
            )),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, plain.metadata().clone()))
}

/// `batch` in the `keyed` schema: a plain string column becomes keys that number its rows
/// (no hashing, the values stay where they are).
fn to_keyed(batch: RecordBatch, keyed: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema().fields() == keyed.fields() {
        return Ok(batch.with_schema(Arc::clone(keyed))?);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(keyed.fields())
        .map(|(column, field)| -> Result<ArrayRef> {
            if column.data_type() == field.data_type() {
                return Ok(Arc::clone(column));
            }
            match (column.data_type(), field.data_type()) {
                (DataType::Utf8, DataType::Dictionary(..)) => {
                    let n = u32::try_from(column.len()).map_err(|_| {
                        DataFusionError::Internal("batch too large for keys".into())
                    })?;
                    let keys = UInt32Array::from_iter_values(0..n);
                    Ok(Arc::new(DictionaryArray::<UInt32Type>::try_new(
                        keys,
                        Arc::clone(column),
                    )?))
                }
                _ => Ok(arrow::compute::cast(column, field.data_type())?),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(Arc::clone(keyed), columns)?)
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
        let [input] = <[_; 1]>::try_from(children)
            .map_err(|_| DataFusionError::Internal("ChunkShuffleExec takes one input".into()))?;
        Ok(Arc::new(Self::try_new(input, self.spec.clone())?))
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
        let sorter = ChunkSorter::try_new(self, &context, partition, worker)?;
        let stream = futures::stream::try_unfold(
            Served {
                run,
                sorter,
                current: None,
                routed: false,
                output_rows: MetricBuilder::new(&self.metrics).output_rows(partition),
                elapsed: MetricBuilder::new(&self.metrics).elapsed_compute(partition),
            },
            |mut served| async move {
                let next = served.next().await?;
                Ok(next.map(|batch| (batch, served)))
            },
        );
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// Stage 0's outcome, awaited by every output stream.
type Routing = Shared<BoxFuture<'static, std::result::Result<(), Arc<DataFusionError>>>>;

/// One execution of a [`ChunkShuffleExec`]: the routing task, then the chunks waiting for
/// an output partition.
struct ShuffleRun {
    /// Finishes when every input row is routed (or routing failed).
    routing: Routing,
    /// The chunks still to serve, largest first, and what reads their spilled runs.
    queue: Arc<Mutex<ChunkQueue>>,
    /// Stage 0's spill manager: reads the routed runs back.
    spill: SpillManager,
    /// The output partitions asked for.
    taken: Mutex<Vec<bool>>,
}

impl ShuffleRun {
    /// Marks output partition `partition` taken; false if it was already.
    fn take(&self, partition: usize) -> Result<bool> {
        let mut taken = self
            .taken
            .lock()
            .map_err(|_| DataFusionError::Internal("shuffle state poisoned".into()))?;
        match taken.get_mut(partition) {
            Some(t) if !*t => {
                *t = true;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Starts routing every input partition on its own task.
    fn start(exec: &ChunkShuffleExec, context: &Arc<TaskContext>) -> Result<Self> {
        let plain = exec.input.schema();
        let bounds = if exec.spec.writer.range_dimensions.is_empty() {
            exec.spec.order.columns.clone()
        } else {
            exec.spec
                .writer
                .range_dimensions
                .iter()
                .map(|d| plain.index_of(d))
                .collect::<std::result::Result<Vec<_>, _>>()?
        };
        let keys = SplitKeys::new(&plain, exec.spec.order.columns.clone(), bounds)?;
        let shuffle = Arc::new(Shuffle::try_new(
            Arc::clone(&plain),
            exec.spec.writer.clone(),
            keys.clone(),
            context,
        )?);
        let rows_per_segment = exec.spec.writer.rows_per_segment;
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
            // Chunks larger than a segment are split at key boundaries, so that their
            // sort and write spread over the output partitions.
            let mut chunks = Vec::with_capacity(output.chunks.len());
            for (interval, chunk) in output.chunks {
                if chunk.rows > rows_per_segment {
                    for part in split_chunk(chunk, &keys, rows_per_segment, &split_spill).await? {
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

/// Chunks waiting for an output partition, and what reads their spilled runs.
#[derive(Default)]
pub(crate) struct ChunkQueue {
    pub(crate) chunks: std::collections::VecDeque<(Interval, ChunkBuffer)>,
    pub(crate) spill: Option<SpillManager>,
    pub(crate) progress: Option<Arc<TaskProgress>>,
}

impl ChunkQueue {
    /// A queue of `chunks` whose runs `spill` writes (for tests of the spill).
    #[cfg(test)]
    pub(crate) fn with_chunks(chunks: Vec<(Interval, ChunkBuffer)>, spill: SpillManager) -> Self {
        Self {
            chunks: chunks.into(),
            spill: Some(spill),
            progress: None,
        }
    }

    /// Spills the rows held in memory by the waiting chunk that holds the most, to make
    /// room for a chunk being sorted; returns the rows spilled, or `None` when no
    /// waiting chunk holds any memory.
    pub(crate) fn spill_largest_waiting(&mut self) -> Result<Option<usize>> {
        let Some(spill) = &self.spill else {
            return Ok(None);
        };
        let Some((_, chunk)) = self
            .chunks
            .iter_mut()
            .filter(|(_, c)| c.memory_bytes() > 0)
            .max_by_key(|(_, c)| c.memory_bytes())
        else {
            return Ok(None);
        };
        let (rows, _) = chunk.spill_memory(spill)?;
        if let Some(progress) = &self.progress {
            progress
                .rows_spilled
                .fetch_add(rows as u64, Ordering::Relaxed);
        }
        Ok(Some(rows))
    }
}

/// One output partition's stream state.
struct Served {
    run: Arc<ShuffleRun>,
    sorter: ChunkSorter,
    current: Option<SortedChunk>,
    /// Routing has finished.
    routed: bool,
    output_rows: Count,
    elapsed: Time,
}

impl Served {
    /// The next sorted batch of this partition.
    async fn next(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if let Some(chunk) = self.current.as_mut() {
                let timer = self.elapsed.timer();
                let next = chunk.next().await?;
                timer.done();
                if let Some(batch) = next {
                    self.output_rows.add(batch.num_rows());
                    let mut columns = to_keyed(batch, &self.sorter.keyed)?.columns().to_vec();
                    let n = columns.first().map_or(0, |c| c.len());
                    columns.push(Arc::new(UInt32Array::from(vec![chunk.bucket(); n])));
                    return Ok(Some(RecordBatch::try_new(
                        Arc::clone(&self.sorter.served),
                        columns,
                    )?));
                }
                self.current = None;
            }
            if !self.routed {
                self.run
                    .routing
                    .clone()
                    .await
                    .map_err(DataFusionError::Shared)?;
                self.routed = true;
            }
            let next = self
                .run
                .queue
                .lock()
                .map_err(|_| DataFusionError::Internal("chunk queue poisoned".into()))?
                .chunks
                .pop_front();
            let Some((_, chunk)) = next else {
                return Ok(None);
            };
            let timer = self.elapsed.timer();
            self.current = Some(self.sorter.start(chunk, &self.run).await?);
            timer.done();
        }
    }
}

/// A chunk being served: its sorted rows, and the memory they hold.
enum SortedChunk {
    /// Sorted in memory.
    InMemory {
        bucket: u32,
        slices: Box<SortedSlices>,
        _memory: (Option<MemoryReservation>, MemoryReservation),
        _share: ThreadShareGuard,
    },
    /// Merged from sorted runs.
    Merged {
        bucket: u32,
        stream: SendableRecordBatchStream,
        counters: Arc<StageCounters>,
        worker: usize,
        _memory: Option<MemoryReservation>,
        _share: ThreadShareGuard,
    },
}

impl SortedChunk {
    /// The range bucket being served.
    fn bucket(&self) -> u32 {
        match self {
            Self::InMemory { bucket, .. } | Self::Merged { bucket, .. } => *bucket,
        }
    }

    async fn next(&mut self) -> Result<Option<RecordBatch>> {
        match self {
            Self::InMemory { slices, .. } => slices.next().transpose(),
            Self::Merged {
                stream,
                counters,
                worker,
                ..
            } => {
                let next = stream.try_next().await?;
                if next.is_none() {
                    counters
                        .worker(*worker)
                        .sort
                        .level1_done
                        .fetch_add(1, Ordering::Relaxed);
                }
                Ok(next)
            }
        }
    }
}

/// Sorts the chunks one output partition serves.
struct ChunkSorter {
    /// Schema of the routed rows (plain).
    schema: SchemaRef,
    /// The rows' schema with strings as keys.
    keyed: SchemaRef,
    /// Schema of the rows served (`keyed` and the bucket).
    served: SchemaRef,
    order: ChunkOrder,
    lex: LexOrdering,
    task_ctx: Arc<TaskContext>,
    /// Writes and reads sorted runs (plain rows).
    sorted_spill: SpillManager,
    counters: Arc<StageCounters>,
    worker: usize,
    threads: ThreadShare,
    /// Bytes of a chunk this partition sorts in memory (its share of the memory budget);
    /// larger spilled chunks are sorted run by run and merged.
    in_memory_limit: usize,
    spilled_bytes: Count,
    spill_count: Count,
}

impl ChunkSorter {
    fn try_new(
        exec: &ChunkShuffleExec,
        task_ctx: &Arc<TaskContext>,
        partition: usize,
        worker: usize,
    ) -> Result<Self> {
        let schema = exec.input.schema();
        let in_memory_limit = match task_ctx.runtime_env().memory_pool.memory_limit() {
            MemoryLimit::Finite(bytes) => bytes / exec.spec.slots.max(1),
            MemoryLimit::Infinite | MemoryLimit::Unknown => usize::MAX,
        };
        Ok(Self {
            in_memory_limit,
            sorted_spill: spill_manager(&task_ctx.runtime_env(), &schema),
            lex: exec.spec.order.lex(&schema)?,
            keyed: keyed_schema(&schema),
            served: exec.schema(),
            schema,
            order: exec.spec.order.clone(),
            task_ctx: Arc::clone(task_ctx),
            counters: Arc::clone(&exec.read_counters),
            worker,
            threads: exec.threads.clone(),
            spilled_bytes: MetricBuilder::new(&exec.metrics).spilled_bytes(partition),
            spill_count: MetricBuilder::new(&exec.metrics).spill_count(partition),
        })
    }

    fn worker(&self) -> &WorkerCounters {
        self.counters.worker(self.worker)
    }

    /// Starts serving `chunk`: counts it as this worker's input, then sorts it in memory
    /// if it fits this partition's share of the budget, or sorts its runs and merges them.
    async fn start(&self, chunk: ChunkBuffer, run: &ShuffleRun) -> Result<SortedChunk> {
        let share = self.threads.join();
        let input = &self.worker().input;
        input.rows.fetch_add(chunk.rows as u64, Ordering::Relaxed);
        input
            .bytes
            .fetch_add(chunk.shuffled as u64, Ordering::Relaxed);
        input
            .frames
            .fetch_add(chunk.frames as u64, Ordering::Relaxed);
        let batch_size = self.task_ctx.session_config().batch_size().max(1);
        let sort = &self.worker().sort;
        let ChunkBuffer {
            mut batches,
            runs,
            bytes,
            spilled_bytes,
            reservation,
            bucket,
            ..
        } = chunk;
        // A chunk within this partition's share of the budget is sorted in memory, its
        // spilled batches read back first if the budget has room for them (waiting
        // chunks spill their rows to make room).
        let mut read_back = MemoryConsumer::new("grove ingest shuffle read-back")
            .register(&self.task_ctx.runtime_env().memory_pool);
        if runs.is_empty()
            || (bytes + spilled_bytes <= self.in_memory_limit
                && make_room(&run.queue, &mut read_back, spilled_bytes)?)
        {
            for (file, largest) in &runs {
                batches.extend(
                    read_run(&run.spill, file, *largest)
                        .await?
                        .into_iter()
                        .map(Routed::whole),
                );
            }
            sort.level0_total.fetch_add(1, Ordering::Relaxed);
            let slices = self.sort_off_thread(batches, 8 * batch_size, true).await?;
            sort.level0_done.fetch_add(1, Ordering::Relaxed);
            return Ok(SortedChunk::InMemory {
                bucket,
                slices: Box::new(slices),
                _memory: (reservation, read_back),
                _share: share,
            });
        }
        // Too big for memory: sort what is in memory and each spilled run on its own
        // (each fits: it was spilled within the budget), spill the sorted runs, and merge.
        let pieces = runs.len() + usize::from(!batches.is_empty());
        sort.level0_total
            .fetch_add(pieces as u64, Ordering::Relaxed);
        sort.level1_total.fetch_add(1, Ordering::Relaxed);
        let mut streams: Vec<SendableRecordBatchStream> = Vec::new();
        if !batches.is_empty() {
            let sorted: Vec<Result<RecordBatch>> = self
                .sort_off_thread(batches, batch_size, false)
                .await?
                .collect();
            streams.push(Box::pin(RecordBatchStreamAdapter::new(
                Arc::clone(&self.schema),
                futures::stream::iter(sorted),
            )));
            sort.level0_done.fetch_add(1, Ordering::Relaxed);
        }
        for (file, largest) in &runs {
            let run: Vec<Routed> = read_run(&run.spill, file, *largest)
                .await?
                .into_iter()
                .map(Routed::whole)
                .collect();
            let sorted = self
                .sort_off_thread(run, batch_size, false)
                .await?
                .collect::<Result<Vec<_>>>()?;
            if let Some((file, largest)) =
                spill_batches(&self.sorted_spill, &sorted, "grove ingest sort")?
            {
                self.spill_count.add(1);
                self.spilled_bytes
                    .add(sorted.iter().map(RecordBatch::get_array_memory_size).sum());
                streams.push(
                    self.sorted_spill
                        .read_spill_as_stream(file, Some(largest))?,
                );
            }
            sort.level0_done.fetch_add(1, Ordering::Relaxed);
        }
        let metrics = ExecutionPlanMetricsSet::new();
        // The merge holds about one batch per run. It is not charged to the budget: the
        // budget bounds what routing keeps, and a merge must be able to finish whatever
        // the number of runs that left.
        let unbounded: Arc<dyn MemoryPool> = Arc::new(UnboundedMemoryPool::default());
        let merge_reservation = MemoryConsumer::new("grove ingest merge").register(&unbounded);
        let stream = StreamingMergeBuilder::new()
            .with_streams(streams)
            .with_schema(Arc::clone(&self.schema))
            .with_expressions(&self.lex)
            .with_metrics(BaselineMetrics::new(&metrics, 0))
            .with_batch_size(batch_size)
            .with_reservation(merge_reservation)
            .build()?;
        Ok(SortedChunk::Merged {
            bucket,
            stream,
            counters: Arc::clone(&self.counters),
            worker: self.worker,
            _memory: reservation,
            _share: share,
        })
    }

    /// Sorts `batches` on a blocking thread: a sort of millions of rows has no await
    /// point, and a cancel must not wait for it (the abandoned sort finishes unseen).
    async fn sort_off_thread(
        &self,
        batches: Vec<Routed>,
        rows: usize,
        as_keys: bool,
    ) -> Result<SortedSlices> {
        let order = self.order.clone();
        let plain = Arc::clone(&self.schema);
        let sorted = tokio::task::spawn_blocking(move || {
            order.sorted_slices(&batches, rows, &plain, as_keys)
        })
        .await
        .map_err(|e| DataFusionError::Execution(format!("sorting a time chunk failed: {e}")))??;
        Ok(sorted.with_threads(self.threads.clone()))
    }
}

/// Grows `reservation` by `bytes`, spilling the rows waiting chunks hold in memory until
/// the budget has room; false when it has none even then.
fn make_room(
    queue: &Mutex<ChunkQueue>,
    reservation: &mut MemoryReservation,
    bytes: usize,
) -> Result<bool> {
    loop {
        if reservation.try_grow(bytes).is_ok() {
            return Ok(true);
        }
        let spilled = queue
            .lock()
            .map_err(|_| DataFusionError::Internal("chunk queue poisoned".into()))?
            .spill_largest_waiting()?;
        if spilled.is_none() {
            return Ok(false);
        }
    }
}

/// Every batch of a spilled run.
async fn read_run(
    spill: &SpillManager,
    file: &Arc<dyn datafusion::execution::SpillFile>,
    largest: usize,
) -> Result<Vec<RecordBatch>> {
    let mut stream = spill.read_spill_as_stream(Arc::clone(file), Some(largest))?;
    let mut out = Vec::new();
    while let Some(batch) = stream.next().await {
        out.push(batch?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::ChunkBuffer;

    /// Waiting chunks give their share of the budget back by spilling, the largest first.
    #[test]
    fn waiting_chunks_spill_the_largest_first_and_free_their_memory() {
        use arrow::array::Int64Array;
        use datafusion::execution::memory_pool::GreedyMemoryPool;
        use datafusion::execution::runtime_env::RuntimeEnvBuilder;
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1 << 30));
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::clone(&pool))
            .build_arc()
            .expect("runtime");
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let spill = spill_manager(&runtime, &schema);
        let chunk = |rows: i64| {
            let batch = RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(Int64Array::from_iter_values(0..rows))],
            )
            .expect("batch");
            ChunkBuffer::holding(batch, &pool)
        };
        let (small, big) = (chunk(10), chunk(10_000));
        let small_bytes = small.memory_bytes();
        let mut queue = ChunkQueue::with_chunks(
            vec![(Interval::new(0, 1), small), (Interval::new(1, 2), big)],
            spill,
        );
        assert_eq!(queue.spill_largest_waiting().expect("spill"), Some(10_000));
        assert_eq!(pool.reserved(), small_bytes);
        assert_eq!(queue.spill_largest_waiting().expect("spill"), Some(10));
        assert_eq!(pool.reserved(), 0);
        assert_eq!(queue.spill_largest_waiting().expect("spill"), None);
    }

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

    #[test]
    fn plain_strings_become_keys_that_number_the_rows() {
        use arrow::array::{AsArray, Int64Array, StringArray};
        let plain = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("n", DataType::Int64, false),
        ]));
        let keyed = keyed_schema(&plain);
        let batch = RecordBatch::try_new(
            Arc::clone(&plain),
            vec![
                Arc::new(StringArray::from(vec![Some("b"), None, Some("b")])),
                Arc::new(Int64Array::from(vec![1, 2, 3])),
            ],
        )
        .expect("batch");
        let out = to_keyed(batch.clone(), &keyed).expect("keyed");
        assert_eq!(out.schema(), keyed);
        let dict = out.column(0).as_dictionary::<UInt32Type>();
        assert_eq!(dict.keys().values().to_vec(), [0, 1, 2]);
        assert_eq!(
            crate::compact::expand(&out, &plain).expect("plain"),
            batch,
            "the same values"
        );
    }
}
