//! [`SegmentGeneratorExec`]: writes segments. Each input partition is a stream of rows
//! sorted by [time chunk, CLUSTERED BY..., `__time`] (what [`crate::ChunkShuffleExec`]
//! serves); the operator cuts it into segments of about `rowsPerSegment` rows (never
//! splitting a range key), writes each as one Parquet file in deep storage, and outputs
//! one row per segment written: the segment's description as JSON, for the controller
//! to publish.
//!
//! ```text
//!  sorted rows ──▶ runs of one time chunk ──▶ SegmentWriter ──▶ Parquet files ──▶ {"segment": json}
//! ```
//!
//! The descriptions of a time chunk's segments leave once the chunk is finished (the
//! first row of another chunk, or the end of the input). On failure, the files of the
//! chunk being written are deleted; the controller deletes those already described.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::{AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt32Type};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{
    Distribution, EquivalenceProperties, OrderingRequirements, PhysicalExpr,
};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, Time,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use futures::StreamExt;
use grove_common::Interval;
use grove_common::types::TIME_COLUMN;
use grove_store::{DeepStorage, NewSegment};
use serde::{Deserialize, Serialize};

use crate::bucket_exec::PARTITION_COLUMN;
use crate::counters::{StageCounters, StageKind};
use crate::parquet_writer::{ThreadShare, ThreadShareGuard};
use crate::shuffle_exec::{BUCKET_COLUMN, ChunkShuffleExec, task_progress};
use crate::sort::ChunkOrder;
use crate::task::{TaskPhase, TaskProgress};
use crate::writer::{SegmentWriter, WriterConfig, row_group_bytes, time_column};

/// The segment generator's parameters (all that travels through [`crate::GroveCodec`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeneratorSpec {
    pub(crate) writer: WriterConfig,
    /// Columns of the input that are written (the input may carry extra sort keys).
    pub(crate) output: Vec<usize>,
    /// Druid's worker count: partition `s` counts as worker `s % workers`.
    pub(crate) workers: usize,
    /// In the hash form of the shuffle: the input's sort key ([chunk, bucket,
    /// CLUSTERED BY..., `__time`], column indices), which the operator requires of its
    /// input, with the input hash-partitioned by the partition surrogate. Empty over
    /// [`ChunkShuffleExec`], which serves rows sorted itself.
    #[serde(default)]
    pub(crate) sorted_by: Vec<usize>,
}

/// Writes the segments of sorted rows (see the module docs).
pub struct SegmentGeneratorExec {
    input: Arc<dyn ExecutionPlan>,
    spec: GeneratorSpec,
    properties: Arc<PlanProperties>,
    /// Druid's stage-1 counters: segment progress and output channels.
    counters: Arc<StageCounters>,
    /// The cores the partitions encode columns on.
    threads: ThreadShare,
    metrics: ExecutionPlanMetricsSet,
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
    pub fn output_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new(
            "segment",
            DataType::Utf8,
            false,
        )]))
    }

    /// The generator over `input`. Over a [`ChunkShuffleExec`] it counts into the
    /// shuffle's stage-1 counters, so that Druid's stage 1 is one set of counters (the
    /// shuffle counts what it served, the generator what it wrote); otherwise into fresh
    /// ones.
    pub fn try_new(input: Arc<dyn ExecutionPlan>, spec: GeneratorSpec) -> Result<Self> {
        let schema = input.schema();
        schema.index_of(TIME_COLUMN)?;
        if let Some(&bad) = spec.output.iter().find(|&&i| i >= schema.fields().len()) {
            return Err(DataFusionError::Internal(format!(
                "segment generator column {bad} is not in its input"
            )));
        }
        let partitions = input.properties().partitioning.partition_count().max(1);
        Ok(Self {
            properties: Arc::new(PlanProperties::new(
                EquivalenceProperties::new(Self::output_schema()),
                Partitioning::UnknownPartitioning(partitions),
                EmissionType::Incremental,
                Boundedness::Bounded,
            )),
            counters: input
                .downcast_ref::<ChunkShuffleExec>()
                .map(|s| Arc::clone(s.read_counters()))
                .unwrap_or_else(|| {
                    Arc::new(StageCounters::new(
                        StageKind::SegmentGenerator,
                        spec.workers,
                    ))
                }),
            threads: ThreadShare::new(partitions),
            metrics: ExecutionPlanMetricsSet::new(),
            input,
            spec,
        })
    }

    /// The parameters.
    pub fn spec(&self) -> &GeneratorSpec {
        &self.spec
    }

    /// Live per-worker counters.
    pub fn counters(&self) -> &Arc<StageCounters> {
        &self.counters
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
        let w = &self.spec.writer;
        write!(
            f,
            "SegmentGeneratorExec: dataSource={}, rowsPerSegment={}, shardSpec={}",
            w.data_source,
            w.rows_per_segment,
            if w.range_dimensions.is_empty() {
                "numbered".to_string()
            } else {
                format!("range[{}]", w.range_dimensions.join(", "))
            }
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
        vec![&self.input]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        // Each partition writes whole time chunks; repartitioning would split them.
        vec![false]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false]
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        let order = ChunkOrder {
            columns: self.spec.sorted_by.clone(),
        };
        match order.lex(&self.input.schema()) {
            Ok(lex) if !self.spec.sorted_by.is_empty() => {
                vec![Some(OrderingRequirements::from(lex))]
            }
            _ => vec![None],
        }
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        let schema = self.input.schema();
        match schema.index_of(PARTITION_COLUMN) {
            Ok(i) if !self.spec.sorted_by.is_empty() => {
                vec![Distribution::KeyPartitioned(vec![Arc::new(Column::new(
                    PARTITION_COLUMN,
                    i,
                ))])]
            }
            _ => vec![Distribution::UnspecifiedDistribution],
        }
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
        let input = crate::planner::single_input(&children, "SegmentGeneratorExec")?;
        let shared = input.downcast_ref::<ChunkShuffleExec>().is_some();
        let mut rebuilt = Self::try_new(input, self.spec.clone())?;
        if !shared {
            // The statement's counters, like metrics: a rebuilt node keeps counting.
            rebuilt.counters = Arc::clone(&self.counters);
        }
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
        let deep = context
            .session_config()
            .get_extension::<DeepStorage>()
            .ok_or_else(|| DataFusionError::Internal("the session has no deep storage".into()))?;
        let input = self.input.execute(partition, Arc::clone(&context))?;
        let rows = input.schema();
        let output = plain_schema(&rows.project(&self.spec.output)?);
        let state = Generating {
            input,
            time_index: rows.index_of(TIME_COLUMN)?,
            bucket_index: rows.index_of(BUCKET_COLUMN).ok(),
            output,
            spec: self.spec.clone(),
            deep: deep.as_ref().clone(),
            counters: Arc::clone(&self.counters),
            worker: partition % self.spec.workers.max(1),
            threads: self.threads.clone(),
            row_group_bytes: row_group_bytes(
                context.runtime_env().memory_pool.memory_limit(),
                self.properties.partitioning.partition_count(),
            ),
            progress: task_progress(&context),
            current: None,
            pending: VecDeque::new(),
            count_input: self.input.downcast_ref::<ChunkShuffleExec>().is_none(),
            done: false,
            output_rows: MetricBuilder::new(&self.metrics).output_rows(partition),
            elapsed: MetricBuilder::new(&self.metrics).elapsed_compute(partition),
            files: MetricBuilder::new(&self.metrics).counter("segments", partition),
        };
        let schema = Self::output_schema();
        let stream = futures::stream::try_unfold(state, |mut state| async move {
            let next = state.next().await;
            if next.is_err() {
                state.abort().await;
            }
            Ok(next?.map(|batch| (batch, state)))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// The schema segments are written with: a column that arrives as keys into a dictionary
/// (how the shuffle hands strings over) is stored as its values.
fn plain_schema(rows: &Schema) -> SchemaRef {
    let fields: Vec<Field> = rows
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Dictionary(_, value) => f.as_ref().clone().with_data_type((**value).clone()),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, rows.metadata().clone()))
}

/// One partition's writing.
struct Generating {
    input: SendableRecordBatchStream,
    time_index: usize,
    /// The input's range-bucket column, if it has one (a batch is of one bucket).
    bucket_index: Option<usize>,
    /// Schema of the rows written.
    output: SchemaRef,
    spec: GeneratorSpec,
    deep: DeepStorage,
    counters: Arc<StageCounters>,
    worker: usize,
    threads: ThreadShare,
    /// Bytes a segment's open row group may hold.
    row_group_bytes: usize,
    progress: Option<Arc<TaskProgress>>,
    /// The writer of the time chunk (and range bucket) being written, counted among the
    /// writers that share the cores.
    current: Option<((Interval, u32), SegmentWriter, ThreadShareGuard)>,
    /// Rows of the last input batch not yet written, one (chunk, bucket) each.
    pending: VecDeque<RecordBatch>,
    /// Whether this operator counts stage 1's input (the shuffle counts it otherwise).
    count_input: bool,
    done: bool,
    output_rows: Count,
    elapsed: Time,
    files: Count,
}

impl Generating {
    /// The descriptions of the next finished time chunk's segments.
    async fn next(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            let batch = match self.pending.pop_front() {
                Some(batch) => batch,
                None if self.done => break,
                None => {
                    let Some(batch) = self.input.next().await.transpose()? else {
                        self.done = true;
                        break;
                    };
                    if batch.num_rows() == 0 {
                        continue;
                    }
                    if self.count_input {
                        // The hash form: the first sorted rows start Druid's writing.
                        if let Some(progress) = &self.progress
                            && progress.phase() < TaskPhase::Writing
                        {
                            progress.set_phase(TaskPhase::Writing);
                        }
                        self.counters.worker(self.worker).input.add_frame(
                            batch.num_rows() as u64,
                            batch.get_array_memory_size() as u64,
                        );
                    }
                    self.pending = self.groups(batch)?;
                    continue;
                }
            };
            let elapsed = self.elapsed.clone();
            let timer = elapsed.timer();
            let first = time_column(&batch, self.time_index)?.value(0);
            let bucket = match self.bucket_index {
                Some(i) => batch
                    .column(i)
                    .as_primitive_opt::<UInt32Type>()
                    .map_or(0, |b| b.value(0)),
                None => 0,
            };
            let chunk = (self.spec.writer.granularity.bucket(first), bucket);
            let finished = match &self.current {
                Some((open, ..)) if *open != chunk => self.finish().await?,
                _ => None,
            };
            if self.current.is_none() {
                let share = self.threads.join();
                let writer = SegmentWriter::try_new(
                    self.spec.writer.clone(),
                    self.deep.clone(),
                    Arc::clone(&self.output),
                )?
                .with_counters(Arc::clone(&self.counters), self.worker)
                .with_threads(self.threads.clone())
                .with_row_group_bytes(self.row_group_bytes)
                .with_bucket(bucket);
                self.current = Some((chunk, writer, share));
            }
            let out = batch.project(&self.spec.output)?;
            if let Some((_, writer, _)) = self.current.as_mut() {
                writer.write(&out).await?;
            }
            if let Some(progress) = &self.progress {
                progress
                    .rows_out
                    .fetch_add(out.num_rows() as u64, Ordering::Relaxed);
            }
            timer.done();
            if finished.is_some() {
                return Ok(finished);
            }
        }
        self.finish().await
    }

    /// `batch` cut where its time chunk or range bucket changes (a sorted batch of the
    /// hash form may hold several; one from [`ChunkShuffleExec`] holds one).
    fn groups(&self, batch: RecordBatch) -> Result<VecDeque<RecordBatch>> {
        let n = batch.num_rows();
        let times = time_column(&batch, self.time_index)?;
        let buckets = self
            .bucket_index
            .and_then(|i| batch.column(i).as_primitive_opt::<UInt32Type>());
        let granularity = &self.spec.writer.granularity;
        let key = |r: usize| {
            (
                granularity.bucket_start(times.value(r)),
                buckets.map_or(0, |b| b.value(r)),
            )
        };
        if n == 0 || key(0) == key(n - 1) {
            return Ok(VecDeque::from([batch]));
        }
        let mut out = VecDeque::new();
        let mut start = 0;
        for r in 1..n {
            if key(r) != key(r - 1) {
                out.push_back(batch.slice(start, r - start));
                start = r;
            }
        }
        out.push_back(batch.slice(start, n - start));
        Ok(out)
    }

    /// Closes the open writer; the descriptions of what it wrote, if anything.
    async fn finish(&mut self) -> Result<Option<RecordBatch>> {
        let Some((_, writer, _share)) = self.current.take() else {
            return Ok(None);
        };
        let paths = writer.written_paths().to_vec();
        let segments = match writer.finish().await {
            Ok(segments) => segments,
            Err(e) => {
                self.deep.delete_all(&paths).await;
                return Err(e);
            }
        };
        let counters = self.counters.worker(self.worker);
        for s in &segments {
            counters.output.add_frame(s.num_rows, s.size);
        }
        if let Some(progress) = &self.progress {
            progress
                .segments
                .fetch_add(segments.len() as u64, Ordering::Relaxed);
            progress
                .bytes_out
                .fetch_add(segments.iter().map(|s| s.size).sum(), Ordering::Relaxed);
        }
        if segments.is_empty() {
            return Ok(None);
        }
        self.files.add(segments.len());
        self.output_rows.add(segments.len());
        let json = segments
            .iter()
            .map(serde_json::to_string)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(Some(RecordBatch::try_new(
            SegmentGeneratorExec::output_schema(),
            vec![Arc::new(StringArray::from(json))],
        )?))
    }

    /// Deletes the files of the chunk being written (after a failure).
    async fn abort(&mut self) {
        if let Some((_, writer, _share)) = self.current.take() {
            let paths = writer.abort().await;
            self.deep.delete_all(&paths).await;
        }
    }
}
