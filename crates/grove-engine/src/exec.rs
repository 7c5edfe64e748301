//! The two stages of an ingest as plain DataFusion operators, each described by
//! serializable parameters (see [`crate::codec`]):
//!
//! - [`ChunkShuffleExec`] (stage 0): executes its input's partition `p` and routes every
//!   row to the buffer of its time chunk; it outputs one row per partition, the rows it
//!   routed. The buffers (and the runs spilled from them) are the stage's shuffle output,
//!   taken by the controller when every partition is done.
//! - [`SegmentGeneratorExec`] (stage 1): a leaf whose partitions are worker slots; each
//!   takes the next chunk the controller fed it (largest first), sorts it by
//!   [CLUSTERED BY..., `__time`] and writes its segments, and outputs one row per
//!   segment written: the segment's description as JSON, for the controller to publish.
//!
//! Cutting, segment allocation and the publish stay with the controller
//! ([`crate::stages::IngestStages`]).

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::array::{RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use grove_common::Interval;
use grove_common::types::TIME_COLUMN;
use grove_store::{DeepStorage, NewSegment};
use serde::{Deserialize, Serialize};

use crate::counters::{StageCounters, StageKind};
use crate::parquet_writer::ThreadShare;
use crate::stages::{ChunkBuffer, ChunkJobContext, ChunkOrder, Shuffle, route_all};
use crate::task::TaskProgress;
use crate::writer::WriterConfig;

fn properties(schema: SchemaRef, partitions: usize) -> Arc<PlanProperties> {
    Arc::new(PlanProperties::new(
        EquivalenceProperties::new(schema),
        Partitioning::UnknownPartitioning(partitions.max(1)),
        EmissionType::Final,
        Boundedness::Bounded,
    ))
}

fn poisoned() -> DataFusionError {
    DataFusionError::Internal("stage state poisoned".into())
}

/// Stage 0's parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShuffleSpec {
    /// The ingest's settings (granularity, OVERWRITE intervals, limits).
    pub(crate) writer: WriterConfig,
    /// The sort key of each chunk: [CLUSTERED BY..., `__time`] (stage 1 sorts by it).
    pub(crate) order: ChunkOrder,
    /// Druid's worker count: partition `p` counts as worker `p % workers`.
    pub(crate) workers: usize,
}

/// What stage 0 leaves for stage 1.
pub(crate) struct ShuffleOutput {
    /// Time chunks, largest first.
    pub(crate) chunks: Vec<(Interval, ChunkBuffer)>,
    /// Reads the spilled runs back.
    pub(crate) spill: datafusion::physical_plan::spill::SpillManager,
    /// Rows routed.
    pub(crate) rows: u64,
    /// Rows spilled to disk.
    pub(crate) spilled_rows: u64,
}

/// Stage 0: routes its input's rows to time-chunk buffers under the memory budget.
pub struct ChunkShuffleExec {
    input: Arc<dyn ExecutionPlan>,
    spec: ShuffleSpec,
    properties: Arc<PlanProperties>,
    shuffle: Mutex<Option<Arc<Shuffle>>>,
    counters: Arc<StageCounters>,
}

impl fmt::Debug for ChunkShuffleExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkShuffleExec")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl ChunkShuffleExec {
    /// Output schema: the rows each partition routed.
    fn output_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new(
            "rows",
            DataType::UInt64,
            false,
        )]))
    }

    /// Stage 0 over `input` (which must have a `__time` column).
    pub fn try_new(input: Arc<dyn ExecutionPlan>, spec: ShuffleSpec) -> Result<Self> {
        input.schema().index_of(TIME_COLUMN)?;
        let partitions = input.properties().partitioning.partition_count();
        Ok(Self {
            properties: properties(Self::output_schema(), partitions),
            counters: Arc::new(StageCounters::new(StageKind::Scan, spec.workers)),
            input,
            spec,
            shuffle: Mutex::new(None),
        })
    }

    /// The parameters.
    pub fn spec(&self) -> &ShuffleSpec {
        &self.spec
    }

    /// Live per-worker counters.
    pub fn counters(&self) -> &Arc<StageCounters> {
        &self.counters
    }

    /// The chunk buffers, created on first use with the task's memory pool and spill
    /// directory.
    fn shuffle(&self, ctx: &TaskContext) -> Result<Arc<Shuffle>> {
        let mut guard = self.shuffle.lock().map_err(|_| poisoned())?;
        if let Some(s) = guard.as_ref() {
            return Ok(Arc::clone(s));
        }
        let s = Arc::new(Shuffle::try_new(
            self.input.schema(),
            self.spec.writer.clone(),
            ctx,
        )?);
        *guard = Some(Arc::clone(&s));
        Ok(s)
    }

    /// Takes what every partition routed (call when all are done).
    pub(crate) fn take_output(&self) -> Result<ShuffleOutput> {
        let shuffle = self.shuffle.lock().map_err(|_| poisoned())?.take();
        let Some(shuffle) = shuffle else {
            return Err(DataFusionError::Internal(
                "stage 0 output taken before it ran".into(),
            ));
        };
        shuffle.take_output()
    }
}

impl DisplayAs for ChunkShuffleExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "ChunkShuffleExec: granularity={}, sort={:?}, workers={}",
            self.spec.writer.granularity, self.spec.order.columns, self.spec.workers
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

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let shuffle = self.shuffle(&context)?;
        let input = self.input.execute(partition, context)?;
        let counters = Arc::clone(&self.counters);
        let schema = Self::output_schema();
        let out = Arc::clone(&schema);
        let routed = futures::stream::once(async move {
            let rows = route_all(input, shuffle, counters, partition).await?;
            Ok(RecordBatch::try_new(
                out,
                vec![Arc::new(UInt64Array::from(vec![rows]))],
            )?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, routed)))
    }
}

/// Stage 1's parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeneratorSpec {
    pub(crate) writer: WriterConfig,
    pub(crate) order: ChunkOrder,
    /// Columns of the rows that are written (the rows may carry extra sort keys).
    pub(crate) output: Vec<usize>,
    /// Chunks written at once (the partitions).
    pub(crate) slots: usize,
    /// Druid's worker count: slot `s` counts as worker `s % workers`.
    pub(crate) workers: usize,
}

/// Chunks waiting for a slot, and what reads their spilled runs.
#[derive(Default)]
pub(crate) struct ChunkQueue {
    chunks: VecDeque<(Interval, ChunkBuffer)>,
    spill: Option<datafusion::physical_plan::spill::SpillManager>,
    progress: Option<Arc<TaskProgress>>,
}

impl ChunkQueue {
    /// A queue of `chunks` whose runs `spill` writes (for tests of the stage-1 spill).
    #[cfg(test)]
    pub(crate) fn with_chunks(
        chunks: Vec<(Interval, ChunkBuffer)>,
        spill: datafusion::physical_plan::spill::SpillManager,
    ) -> Self {
        Self {
            chunks: chunks.into(),
            spill: Some(spill),
            progress: None,
        }
    }

    /// Spills the rows held in memory by the waiting chunk that holds the most, to make
    /// room for a chunk being written; returns the rows spilled, or `None` when no
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
                .fetch_add(rows as u64, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(Some(rows))
    }
}

/// Stage 1: sorts time chunks and writes their segments.
pub struct SegmentGeneratorExec {
    /// Schema of the rows in the chunks.
    rows: SchemaRef,
    spec: GeneratorSpec,
    properties: Arc<PlanProperties>,
    queue: Arc<Mutex<ChunkQueue>>,
    counters: Arc<StageCounters>,
    threads: ThreadShare,
}

impl fmt::Debug for SegmentGeneratorExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentGeneratorExec")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl SegmentGeneratorExec {
    /// Output schema: one JSON segment description per row.
    fn output_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new(
            "segment",
            DataType::Utf8,
            false,
        )]))
    }

    /// Stage 1 for chunks of rows of `rows`.
    pub fn new(rows: SchemaRef, spec: GeneratorSpec) -> Self {
        Self {
            properties: properties(Self::output_schema(), spec.slots),
            counters: Arc::new(StageCounters::new(
                StageKind::SegmentGenerator,
                spec.workers,
            )),
            threads: ThreadShare::new(spec.slots.max(1)),
            rows,
            spec,
            queue: Arc::new(Mutex::new(ChunkQueue::default())),
        }
    }

    /// The parameters.
    pub fn spec(&self) -> &GeneratorSpec {
        &self.spec
    }

    /// Schema of the rows it writes from.
    pub fn rows_schema(&self) -> &SchemaRef {
        &self.rows
    }

    /// Live per-worker counters.
    pub fn counters(&self) -> &Arc<StageCounters> {
        &self.counters
    }

    /// The threads its slots share for encoding.
    pub(crate) fn threads(&self) -> &ThreadShare {
        &self.threads
    }

    /// Hands stage 0's output over (before executing); `progress` gets the segment
    /// totals as they are written.
    pub(crate) fn feed(
        &self,
        output: ShuffleOutput,
        progress: Option<Arc<TaskProgress>>,
    ) -> Result<()> {
        let mut q = self.queue.lock().map_err(|_| poisoned())?;
        q.chunks.extend(output.chunks);
        q.spill = Some(output.spill);
        q.progress = progress;
        Ok(())
    }

    /// Parses the segments out of this operator's output.
    pub(crate) fn segments(batch: &RecordBatch) -> Result<Vec<NewSegment>> {
        let Some(json) = batch.column(0).as_any().downcast_ref::<StringArray>() else {
            return Err(DataFusionError::Internal(
                "segment generator output is not text".into(),
            ));
        };
        json.iter()
            .flatten()
            .map(|s| serde_json::from_str(s).map_err(|e| DataFusionError::External(Box::new(e))))
            .collect()
    }
}

impl DisplayAs for SegmentGeneratorExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "SegmentGeneratorExec: dataSource={}, rowsPerSegment={}, slots={}",
            self.spec.writer.data_source, self.spec.writer.rows_per_segment, self.spec.slots
        )
    }
}

impl ExecutionPlan for SegmentGeneratorExec {
    fn name(&self) -> &str {
        "SegmentGeneratorExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
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
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let deep = context
            .session_config()
            .get_extension::<DeepStorage>()
            .ok_or_else(|| DataFusionError::Internal("the session has no deep storage".into()))?;
        let (spill, progress) = {
            let q = self.queue.lock().map_err(|_| poisoned())?;
            (q.spill.clone(), q.progress.clone())
        };
        let Some(spill) = spill else {
            return Err(DataFusionError::Internal(
                "segment generator executed before it was fed".into(),
            ));
        };
        let job = Arc::new(ChunkJobContext::try_new(
            self,
            deep.as_ref().clone(),
            context,
            spill,
            progress,
            Arc::clone(&self.queue),
        )?);
        let queue = Arc::clone(&self.queue);
        let schema = Self::output_schema();
        let out = Arc::clone(&schema);
        let stream = futures::stream::try_unfold((), move |()| {
            let job = Arc::clone(&job);
            let queue = Arc::clone(&queue);
            let out = Arc::clone(&out);
            async move {
                let next = queue.lock().map_err(|_| poisoned())?.chunks.pop_front();
                let Some((_, chunk)) = next else {
                    return Ok(None);
                };
                let segments = job.write_chunk(chunk, partition).await?;
                let json = segments
                    .iter()
                    .map(serde_json::to_string)
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                let batch = RecordBatch::try_new(out, vec![Arc::new(StringArray::from(json))])?;
                Ok(Some((batch, ())))
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}
