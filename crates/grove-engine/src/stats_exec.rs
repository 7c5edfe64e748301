//! [`KeyStatsExec`]: the key statistics of an ingest's rows, for the hash form of the
//! shuffle (`groveShuffle: "hash"`, the form a Ballista cluster runs). Its input is the
//! SELECT (with the CLUSTERED BY keys as columns); each of its partitions reads its input
//! partition to the end and outputs the statistics of what it read: the rows of every
//! time chunk, and the key sample of the chunk (the same sample the in-process shuffle
//! takes while it routes, see [`crate::range`]).
//!
//! ```text
//!  SELECT partition p ──▶ per time chunk: rows, sampled keys ──▶ one batch:
//!                                                                 __grove_chunk  __grove_rows  <boundary columns>
//!                                                                 chunk start    rows          null      (a count)
//!                                                                 chunk start    null          key       (a sample)
//! ```
//!
//! The controller merges the partitions' batches ([`ChunkStatistics`]) and cuts the
//! boundaries of every chunk from them ([`crate::bucket_exec::BucketPlan`]). The rows
//! are checked as the shuffle checks them (InsertTimeNull, InsertTimeOutOfBounds,
//! TooManyBuckets), so that a bad input fails before anything is written.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, RecordBatch, UInt32Array, UInt64Array, new_null_array,
};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, UInt64Type};
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
use futures::StreamExt;
use grove_common::MsqFault;
use grove_common::types::TIME_COLUMN;
use serde::{Deserialize, Serialize};

use crate::range::SplitKeys;
use crate::sort::ChunkOrder;
use crate::writer::{WriterConfig, check_chunk, time_column};

/// The column of the statistics (and of [`crate::AssignBucketExec`]'s output) that
/// names a row's time chunk by its start (epoch milliseconds).
pub(crate) const CHUNK_COLUMN: &str = "__grove_chunk";
/// The statistics' row count column (null on a sample row).
const ROWS_COLUMN: &str = "__grove_rows";

/// The statistics' parameters (all that travels through [`crate::GroveCodec`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatsSpec {
    /// The ingest's settings (granularity, OVERWRITE intervals, limits).
    pub(crate) writer: WriterConfig,
    /// The sort key of each chunk: [CLUSTERED BY..., `__time`].
    pub(crate) order: ChunkOrder,
}

/// Collects the key statistics of its input (see the module docs).
pub struct KeyStatsExec {
    input: Arc<dyn ExecutionPlan>,
    spec: StatsSpec,
    keys: SplitKeys,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl fmt::Debug for KeyStatsExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStatsExec")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// The output schema for boundary columns `bounds`.
fn stats_schema(bounds: &Schema) -> SchemaRef {
    let mut fields = vec![
        Field::new(CHUNK_COLUMN, DataType::Int64, false),
        Field::new(ROWS_COLUMN, DataType::UInt64, true),
    ];
    fields.extend(
        bounds
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true)),
    );
    Arc::new(Schema::new(fields))
}

impl KeyStatsExec {
    /// The statistics of `input` (which must have a `__time` column).
    pub fn try_new(input: Arc<dyn ExecutionPlan>, spec: StatsSpec) -> Result<Self> {
        let plain = input.schema();
        plain.index_of(TIME_COLUMN)?;
        let keys = SplitKeys::of(&plain, &spec.writer, &spec.order)?;
        let partitions = input.properties().partitioning.partition_count().max(1);
        Ok(Self {
            properties: Arc::new(PlanProperties::new(
                EquivalenceProperties::new(stats_schema(&keys.bounds_schema)),
                Partitioning::UnknownPartitioning(partitions),
                EmissionType::Final,
                Boundedness::Bounded,
            )),
            metrics: ExecutionPlanMetricsSet::new(),
            keys,
            input,
            spec,
        })
    }

    /// The parameters.
    pub fn spec(&self) -> &StatsSpec {
        &self.spec
    }
}

impl DisplayAs for KeyStatsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let bounds: Vec<&str> = self
            .keys
            .bounds_schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        write!(
            f,
            "KeyStatsExec: time_chunks={}, sample=1/{}, boundaries=[{}]",
            crate::node::granularity_sql(&self.spec.writer.granularity),
            crate::range::SAMPLE_EVERY,
            bounds.join(", ")
        )
    }
}

impl ExecutionPlan for KeyStatsExec {
    fn name(&self) -> &str {
        "KeyStatsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false]
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
        let input = crate::planner::single_input(&children, "KeyStatsExec")?;
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
        let mut input = self.input.execute(partition, context)?;
        let time_index = input.schema().index_of(TIME_COLUMN)?;
        let keys = self.keys.clone();
        let writer = self.spec.writer.clone();
        let schema = self.schema();
        let out_schema = Arc::clone(&schema);
        let output_rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let elapsed = MetricBuilder::new(&self.metrics).elapsed_compute(partition);
        let stream = futures::stream::once(async move {
            let mut stats = PartitionStats::default();
            while let Some(batch) = input.next().await {
                let batch = batch?;
                let timer = elapsed.timer();
                stats.add(&batch, time_index, &keys, &writer)?;
                timer.done();
            }
            let out = stats.into_batch(&out_schema, &keys)?;
            output_rows.add(out.num_rows());
            Ok(out)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// What one partition has seen.
#[derive(Default)]
struct PartitionStats {
    /// Rows per time chunk (by start).
    rows: BTreeMap<i64, u64>,
    /// Sampled keys per time chunk.
    samples: Vec<(i64, RecordBatch)>,
}

impl PartitionStats {
    fn add(
        &mut self,
        batch: &RecordBatch,
        time_index: usize,
        keys: &SplitKeys,
        writer: &WriterConfig,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let times = time_column(batch, time_index)?;
        let sampled = keys.sampled(batch)?;
        let mut picked: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        let mut last: Option<(i64, grove_common::Interval)> = None;
        for (r, &t) in times.values().iter().enumerate() {
            let start = match last {
                Some((start, interval)) if interval.contains_millis(t) => start,
                _ => {
                    let interval = writer.granularity.bucket(t);
                    let start = interval.start;
                    if !self.rows.contains_key(&start) {
                        check_chunk(writer, &interval, Some(self.rows.len() + 1))?;
                        self.rows.insert(start, 0);
                    }
                    last = Some((start, interval));
                    start
                }
            };
            if let Some(n) = self.rows.get_mut(&start) {
                *n += 1;
            }
            if sampled[r] {
                picked.entry(start).or_default().push(r as u32);
            }
        }
        for (start, rows) in picked {
            self.samples.push((start, keys.sample_of(batch, &rows)?));
        }
        Ok(())
    }

    /// The statistics as one batch of `schema`: a count row per chunk, then the samples.
    fn into_batch(self, schema: &SchemaRef, keys: &SplitKeys) -> Result<RecordBatch> {
        let counts = {
            let n = self.rows.len();
            let mut columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from_iter_values(self.rows.keys().copied())),
                Arc::new(UInt64Array::from_iter_values(self.rows.values().copied())),
            ];
            columns.extend(
                keys.bounds_schema
                    .fields()
                    .iter()
                    .map(|f| new_null_array(f.data_type(), n)),
            );
            RecordBatch::try_new(Arc::clone(schema), columns)?
        };
        let mut batches = vec![counts];
        for (start, sample) in self.samples {
            let n = sample.num_rows();
            let mut columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from(vec![start; n])),
                new_null_array(&DataType::UInt64, n),
            ];
            columns.extend(sample.columns().iter().cloned());
            batches.push(RecordBatch::try_new(Arc::clone(schema), columns)?);
        }
        Ok(concat_batches(schema, &batches)?)
    }
}

/// The merged statistics of every partition: per time chunk (by start, in time order)
/// its rows and its key sample.
#[derive(Debug, Default)]
pub(crate) struct ChunkStatistics {
    pub(crate) chunks: BTreeMap<i64, (u64, Vec<RecordBatch>)>,
}

impl ChunkStatistics {
    /// Merges [`KeyStatsExec`]'s output batches; checks Druid's TooManyBuckets limit
    /// over all of them.
    pub(crate) fn merge(
        batches: &[RecordBatch],
        keys: &SplitKeys,
        writer: &WriterConfig,
    ) -> Result<Self> {
        let mut out = Self::default();
        let bounds: Vec<usize> = (2..2 + keys.bounds_schema.fields().len()).collect();
        for batch in batches {
            if batch.num_rows() == 0 {
                continue;
            }
            let bad = || DataFusionError::Internal("malformed key statistics".into());
            let chunks = batch
                .column(0)
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(bad)?;
            let rows = batch
                .column(1)
                .as_primitive_opt::<UInt64Type>()
                .ok_or_else(bad)?;
            let mut sample_rows: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
            for r in 0..batch.num_rows() {
                let start = chunks.value(r);
                if rows.is_null(r) {
                    sample_rows.entry(start).or_default().push(r as u32);
                } else {
                    out.chunks.entry(start).or_default().0 += rows.value(r);
                }
            }
            let keys_only = batch.project(&bounds)?;
            for (start, picked) in sample_rows {
                let sample =
                    arrow::compute::take_record_batch(&keys_only, &UInt32Array::from(picked))?;
                out.chunks.entry(start).or_default().1.push(sample);
            }
        }
        if out.chunks.len() > writer.max_buckets {
            return Err(MsqFault::TooManyBuckets.into());
        }
        Ok(out)
    }
}
