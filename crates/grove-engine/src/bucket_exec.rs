//! [`AssignBucketExec`]: the hash form of the ingest's shuffle (`groveShuffle: "hash"`),
//! made of operators any DataFusion engine can cut into stages, Ballista included:
//!
//! ```text
//!  job A  KeyStatsExec <SELECT>        ──▶ controller: boundaries per time chunk (BucketPlan)
//!  job B  SegmentGeneratorExec
//!           SortExec [__grove_chunk, __bucket, CLUSTERED BY..., __time]   (per partition, spills)
//!             RepartitionExec Hash([__grove_partition], K)                 (a stage boundary)
//!               AssignBucketExec <SELECT>  adds __grove_chunk, __bucket, __grove_partition
//! ```
//!
//! - A bucket is a range of the cluster key within one time chunk, cut from job A's
//!   statistics exactly as the in-process shuffle cuts a large chunk ([`crate::range`]):
//!   the same input gives the same buckets, so the same rows in the same segments.
//! - Bucket `g` (numbered over all chunks, in time and key order) goes to partition
//!   `g % K`. Only a hash repartition cuts a Ballista stage, so each partition `p` gets a
//!   surrogate key `s_p` with `hash(s_p) % K == p` under DataFusion's own partitioner
//!   ([`surrogates`]); rows carry their partition's surrogate in `__grove_partition`.
//!   The segment generator splits its input by (chunk, bucket) itself, so a partitioner
//!   that hashed differently would cost balance, never correctness.
//! - Without statistics (a plan run on its own), every time chunk is one bucket, and the
//!   chunk's start picks its partition.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::row::{OwnedRow, RowConverter};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    self, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::repartition::BatchPartitioner;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use futures::StreamExt;
use grove_common::Interval;
use grove_common::types::TIME_COLUMN;
use serde::{Deserialize, Serialize};

use crate::counters::{StageCounters, StageKind};
use crate::range::{SplitKeys, boundaries};
use crate::shuffle_exec::BUCKET_COLUMN;
use crate::sort::ChunkOrder;
use crate::stats_exec::{CHUNK_COLUMN, ChunkStatistics};
use crate::writer::{WriterConfig, check_chunk, time_column};

/// The column that carries a row's partition surrogate (hashed by the repartition).
pub(crate) const PARTITION_COLUMN: &str = "__grove_partition";

/// The buckets of every time chunk, cut from the key statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BucketPlan {
    /// Time chunks in time order: start, rows, how many boundaries.
    pub(crate) chunks: Vec<(i64, u64, usize)>,
    /// The boundary rows of every chunk, one chunk after the other (an Arrow IPC stream
    /// of the boundary columns).
    pub(crate) boundaries: Vec<u8>,
}

impl BucketPlan {
    /// Cuts every chunk of `stats` into buckets of about `rows_per_segment` rows, as the
    /// in-process shuffle cuts a chunk it holds ([`crate::range::split_chunk`]).
    pub(crate) fn cut(
        stats: &ChunkStatistics,
        keys: &SplitKeys,
        rows_per_segment: usize,
    ) -> Result<Self> {
        let converter = keys.converter()?;
        let mut chunks = Vec::with_capacity(stats.chunks.len());
        let mut rows: Vec<OwnedRow> = Vec::new();
        for (&start, (n, sample)) in &stats.chunks {
            let buckets = (*n as usize).div_ceil(rows_per_segment.max(1));
            let bounds = boundaries(&converter, sample, buckets)?;
            chunks.push((start, *n, bounds.len()));
            rows.extend(bounds);
        }
        // Nullable: a boundary may be NULL (NULLs sort first).
        let nullable = Schema::new(
            keys.bounds_schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<_>>(),
        );
        let columns = converter.convert_rows(rows.iter().map(|r| r.row()))?;
        let batch = RecordBatch::try_new(Arc::new(nullable), columns)?;
        let mut boundaries = Vec::new();
        {
            let mut writer = StreamWriter::try_new(&mut boundaries, &batch.schema())?;
            writer.write(&batch)?;
            writer.finish()?;
        }
        Ok(Self { chunks, boundaries })
    }

    /// Buckets in all.
    pub(crate) fn buckets(&self) -> usize {
        self.chunks.iter().map(|(_, _, b)| b + 1).sum()
    }
}

/// The bucket operator's parameters (all that travels through [`crate::GroveCodec`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BucketSpec {
    /// The ingest's settings (granularity, OVERWRITE intervals, limits).
    pub(crate) writer: WriterConfig,
    /// The sort key of each chunk: [CLUSTERED BY..., `__time`].
    pub(crate) order: ChunkOrder,
    /// Druid's worker count: input partition `p` counts as worker `p % workers`.
    pub(crate) workers: usize,
    /// The surrogate of each output partition of the repartition that follows.
    pub(crate) surrogates: Vec<i64>,
    /// The buckets, once the statistics have run.
    pub(crate) plan: Option<BucketPlan>,
}

/// Where the rows of one time chunk go.
struct ChunkBuckets {
    /// The chunk's first bucket, numbered over all chunks.
    first: usize,
    bounds: Vec<OwnedRow>,
}

/// Adds each row's time chunk, bucket and partition surrogate (see the module docs).
pub struct AssignBucketExec {
    input: Arc<dyn ExecutionPlan>,
    spec: BucketSpec,
    keys: SplitKeys,
    converter: Arc<RowConverter>,
    chunks: Arc<HashMap<i64, ChunkBuckets>>,
    properties: Arc<PlanProperties>,
    /// Druid's stage 0: per-worker output channels (rows given to the shuffle).
    counters: Arc<StageCounters>,
    metrics: ExecutionPlanMetricsSet,
}

impl fmt::Debug for AssignBucketExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssignBucketExec")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// For each of `k` partitions, the smallest Int64 that DataFusion's hash repartition
/// sends there.
pub(crate) fn surrogates(k: usize) -> Result<Vec<i64>> {
    let k = k.max(1);
    let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Int64, false)]));
    let mut found: Vec<Option<i64>> = vec![None; k];
    let mut next = 0i64;
    while found.iter().any(Option::is_none) {
        if next > 1_000_000 {
            return Err(DataFusionError::Internal(format!(
                "no surrogate key found for each of {k} partitions"
            )));
        }
        let candidates = Int64Array::from_iter_values(next..next + 1024);
        next += 1024;
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(candidates)])?;
        let mut partitioner = BatchPartitioner::try_new(
            Partitioning::Hash(vec![Arc::new(Column::new("s", 0))], k),
            metrics::Time::new(),
            0,
            1,
        )?;
        partitioner.partition(batch, |p, part| {
            if found[p].is_none() {
                let values = part
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .ok_or_else(|| DataFusionError::Internal("surrogates".into()))?;
                found[p] = values.iter().flatten().min();
            }
            Ok(())
        })?;
    }
    Ok(found.into_iter().flatten().collect())
}

/// The output schema: the input's columns, then the chunk, bucket and surrogate.
fn bucketed_schema(input: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(CHUNK_COLUMN, DataType::Int64, false));
    fields.push(Field::new(BUCKET_COLUMN, DataType::UInt32, false));
    fields.push(Field::new(PARTITION_COLUMN, DataType::Int64, false));
    Arc::new(Schema::new_with_metadata(fields, input.metadata().clone()))
}

/// The boundaries of `plan`, per chunk.
fn read_plan(plan: &BucketPlan, converter: &RowConverter) -> Result<HashMap<i64, ChunkBuckets>> {
    let mut rows: Vec<OwnedRow> = Vec::new();
    for batch in StreamReader::try_new(plan.boundaries.as_slice(), None)? {
        let batch = batch?;
        let converted = converter.convert_columns(batch.columns())?;
        rows.extend(converted.iter().map(|r| r.owned()));
    }
    let mut out = HashMap::with_capacity(plan.chunks.len());
    let (mut first, mut at) = (0usize, 0usize);
    for &(start, _, n) in &plan.chunks {
        let bounds = rows.get(at..at + n).ok_or_else(|| {
            DataFusionError::Internal("the bucket plan has too few boundaries".into())
        })?;
        out.insert(
            start,
            ChunkBuckets {
                first,
                bounds: bounds.to_vec(),
            },
        );
        first += n + 1;
        at += n;
    }
    Ok(out)
}

impl AssignBucketExec {
    /// The operator over `input` (which must have a `__time` column).
    pub fn try_new(input: Arc<dyn ExecutionPlan>, spec: BucketSpec) -> Result<Self> {
        let plain = input.schema();
        plain.index_of(TIME_COLUMN)?;
        if spec.surrogates.is_empty() {
            return Err(DataFusionError::Internal(
                "AssignBucketExec needs a surrogate for each partition".into(),
            ));
        }
        let keys = SplitKeys::of(&plain, &spec.writer, &spec.order)?;
        let converter = keys.converter()?;
        let chunks = match &spec.plan {
            Some(plan) => read_plan(plan, &converter)?,
            None => HashMap::new(),
        };
        let partitions = input.properties().partitioning.partition_count().max(1);
        Ok(Self {
            properties: Arc::new(PlanProperties::new(
                EquivalenceProperties::new(bucketed_schema(&plain)),
                Partitioning::UnknownPartitioning(partitions),
                EmissionType::Incremental,
                Boundedness::Bounded,
            )),
            counters: Arc::new(StageCounters::new(StageKind::Scan, spec.workers)),
            metrics: ExecutionPlanMetricsSet::new(),
            converter: Arc::new(converter),
            chunks: Arc::new(chunks),
            keys,
            input,
            spec,
        })
    }

    /// The parameters.
    pub fn spec(&self) -> &BucketSpec {
        &self.spec
    }

    /// This operator with the buckets cut from the key statistics (same counters).
    pub(crate) fn with_plan(&self, plan: BucketPlan) -> Result<Self> {
        let mut spec = self.spec.clone();
        spec.plan = Some(plan);
        let mut out = Self::try_new(Arc::clone(&self.input), spec)?;
        out.counters = Arc::clone(&self.counters);
        Ok(out)
    }

    /// The input (the SELECT).
    pub(crate) fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }

    /// Live per-worker counters (Druid's stage 0).
    pub fn counters(&self) -> &Arc<StageCounters> {
        &self.counters
    }
}

impl DisplayAs for AssignBucketExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "AssignBucketExec: time_chunks={}, partitions={}, ",
            crate::node::granularity_sql(&self.spec.writer.granularity),
            self.spec.surrogates.len()
        )?;
        match &self.spec.plan {
            Some(plan) => write!(
                f,
                "buckets={} over {} time chunks",
                plan.buckets(),
                plan.chunks.len()
            ),
            None => write!(f, "buckets=from key statistics"),
        }
    }
}

impl ExecutionPlan for AssignBucketExec {
    fn name(&self) -> &str {
        "AssignBucketExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = crate::planner::single_input(&children, "AssignBucketExec")?;
        let mut rebuilt = Self::try_new(input, self.spec.clone())?;
        rebuilt.counters = Arc::clone(&self.counters);
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
        let input = self.input.execute(partition, context)?;
        let schema = self.schema();
        let assign = Assign {
            writer: self.spec.writer.clone(),
            surrogates: self.spec.surrogates.clone(),
            keys: self.keys.clone(),
            converter: Arc::clone(&self.converter),
            chunks: Arc::clone(&self.chunks),
            time_index: input.schema().index_of(TIME_COLUMN)?,
            seen: std::collections::BTreeSet::new(),
            schema: Arc::clone(&schema),
        };
        let counters = Arc::clone(&self.counters);
        let worker = partition % self.spec.workers.max(1);
        let output_rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let elapsed = MetricBuilder::new(&self.metrics).elapsed_compute(partition);
        let stream = input.scan(assign, move |assign, batch| {
            let out = batch.and_then(|batch| {
                let timer = elapsed.timer();
                let out = assign.batch(&batch)?;
                timer.done();
                output_rows.add(out.num_rows());
                counters.worker(worker).output.add_frame(
                    batch.num_rows() as u64,
                    batch.get_array_memory_size() as u64,
                );
                Ok(out)
            });
            futures::future::ready(Some(out))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// One partition's assignment.
struct Assign {
    writer: WriterConfig,
    surrogates: Vec<i64>,
    keys: SplitKeys,
    converter: Arc<RowConverter>,
    chunks: Arc<HashMap<i64, ChunkBuckets>>,
    time_index: usize,
    /// Time chunks seen (TooManyBuckets, InsertTimeOutOfBounds are checked once each).
    seen: std::collections::BTreeSet<i64>,
    schema: SchemaRef,
}

impl Assign {
    fn batch(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let n = batch.num_rows();
        let times = time_column(batch, self.time_index)?;
        let k = self.surrogates.len();
        let mut chunk_of = Vec::with_capacity(n);
        let mut last: Option<Interval> = None;
        for &t in times.values().iter() {
            let interval = match last {
                Some(iv) if iv.contains_millis(t) => iv,
                _ => {
                    let iv = self.writer.granularity.bucket(t);
                    if self.seen.insert(iv.start) {
                        check_chunk(&self.writer, &iv, Some(self.seen.len()))?;
                    }
                    last = Some(iv);
                    iv
                }
            };
            chunk_of.push(interval.start);
        }
        let needs_keys = chunk_of
            .iter()
            .any(|c| self.chunks.get(c).is_some_and(|b| !b.bounds.is_empty()));
        let key_rows = if needs_keys {
            let keys = batch.project(&self.keys.bounds)?;
            Some(self.converter.convert_columns(keys.columns())?)
        } else {
            None
        };
        let mut buckets = Vec::with_capacity(n);
        let mut partitions = Vec::with_capacity(n);
        for (r, &start) in chunk_of.iter().enumerate() {
            let (bucket, global) = match self.chunks.get(&start) {
                Some(c) => {
                    let b = match &key_rows {
                        Some(rows) if !c.bounds.is_empty() => {
                            let row = rows.row(r);
                            c.bounds.partition_point(|b| b.row() <= row)
                        }
                        _ => 0,
                    };
                    (b as u32, c.first + b)
                }
                // A chunk the statistics did not see: one bucket, placed by its start.
                None => (0, spread(start) as usize),
            };
            buckets.push(bucket);
            partitions.push(self.surrogates[global % k]);
        }
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns.push(Arc::new(Int64Array::from(chunk_of)));
        columns.push(Arc::new(UInt32Array::from(buckets)));
        columns.push(Arc::new(Int64Array::from(partitions)));
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

/// A well-mixed number from a chunk start (chunk starts share many low zero bits).
fn spread(start: i64) -> u64 {
    let mut x = start as u64;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The property the hash form stands on: DataFusion's hash repartition (the version
    /// in Cargo.lock) sends every row carrying partition p's surrogate to partition p.
    #[test]
    fn each_surrogate_hashes_to_its_partition() {
        for k in [1, 2, 3, 4, 7, 8, 16] {
            let s = surrogates(k).unwrap();
            assert_eq!(s.len(), k);
            let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Int64, false)]));
            let batch =
                RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(s.clone()))]).unwrap();
            let mut partitioner = BatchPartitioner::try_new(
                Partitioning::Hash(vec![Arc::new(Column::new("s", 0))], k),
                metrics::Time::new(),
                0,
                1,
            )
            .unwrap();
            partitioner
                .partition(batch, |p, part| {
                    let values = part
                        .column(0)
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .unwrap();
                    assert!(values.iter().all(|v| v == Some(s[p])), "k={k} p={p}");
                    Ok(())
                })
                .unwrap();
        }
    }
}
