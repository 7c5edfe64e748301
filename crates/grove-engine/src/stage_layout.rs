//! Druid's stages, found in the physical plan that runs: a stage is the part of the plan
//! between two exchanges, the way Ballista cuts a plan into stages. The task report draws
//! its stage list, processors, worker and partition counts and counters from here.
//!
//! The exchanges that cut stages:
//!
//! - [`ChunkShuffleExec`]: the ingest's shuffle by time chunk and cluster key (Druid's
//!   `targetSize` shuffle with a sort); the stage below routes, the stage above writes.
//! - [`RepartitionExec`] with hash partitioning: over [`AssignBucketExec`], the hash form
//!   of the same shuffle; otherwise Druid's `hash` shuffle (a GROUP BY's partial
//!   aggregates to the final ones, a join's sides).
//! - [`CoalescePartitionsExec`] (Druid's `mix`) and [`SortPreservingMergeExec`] (a global
//!   sort into one partition) over more than one partition.
//!
//! Stages are numbered bottom-up, inputs first, as Druid numbers them.

use std::sync::{Arc, Mutex, Weak};

use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::joins::SortMergeJoinExec;
use datafusion::physical_plan::limit::GlobalLimitExec;
use datafusion::physical_plan::metrics::MetricValue;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{ExecutionPlan, Partitioning, displayable};
use grove_input::{ExternScanExec, ScanCounters};

use crate::bucket_exec::AssignBucketExec;
use crate::counters::StageCounters;
use crate::generator_exec::SegmentGeneratorExec;
use crate::shuffle_exec::ChunkShuffleExec;

/// What a stage's processor does (Druid's `processor.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processor {
    /// Reads, filters and projects rows.
    Scan,
    /// Partial aggregation before a hash shuffle.
    GroupByPreShuffle,
    /// Final aggregation after a hash shuffle.
    GroupByPostShuffle,
    /// Aggregation in one step (DataFusion's single mode: the input is one partition, or
    /// already partitioned by the group keys). Druid has no such stage; Grove names it.
    GroupBy,
    /// A sort-merge join of two shuffled inputs.
    SortMergeJoin,
    /// LIMIT/OFFSET over one partition.
    OffsetLimit,
    /// Sorts each partition by the cluster key and writes segments.
    SegmentGenerator,
}

impl Processor {
    /// Druid's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Scan => "scan",
            Self::GroupByPreShuffle => "groupByPreShuffle",
            Self::GroupByPostShuffle => "groupByPostShuffle",
            Self::GroupBy => "groupBy",
            Self::SortMergeJoin => "sortMergeJoin",
            Self::OffsetLimit => "offsetLimit",
            Self::SegmentGenerator => "segmentGenerator",
        }
    }
}

/// How a stage's output is shuffled to the next stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageShuffle {
    /// By time chunk and cluster key into segment-sized partitions, sorted (Druid's
    /// `targetSize` on the clusterBy columns).
    Cluster,
    /// By a hash of these columns into this many partitions.
    Hash {
        /// Hashed columns (expressions by their text).
        columns: Vec<String>,
        /// Output partitions.
        partitions: usize,
    },
    /// Into one partition, sorted by these columns (`true` = descending).
    Sort {
        /// Sort columns.
        columns: Vec<(String, bool)>,
    },
    /// Into one partition, unsorted (Druid's `mix`).
    Mix,
}

impl StageShuffle {
    /// Druid's name for the shuffle (`shuffleSpec.type`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Cluster => "targetSize",
            Self::Hash { .. } => "hash",
            Self::Sort { .. } => "maxCount",
            Self::Mix => "mix",
        }
    }
}

/// Where a stage's rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageInput {
    /// The statement's `n`-th table input (EXTERN, datasource or inline), by the order of
    /// the description's inputs.
    Table(usize),
    /// Stage `n`'s output.
    Stage(usize),
}

/// One stage of the plan.
#[derive(Debug, Clone)]
pub struct PlannedStage {
    /// What it does.
    pub processor: Processor,
    /// Its inputs, in order.
    pub inputs: Vec<StageInput>,
    /// How its output is shuffled (`None`: it is the last stage).
    pub shuffle: Option<StageShuffle>,
    /// Partitions its operators run in.
    pub tasks: usize,
    /// Output columns: name and Arrow type.
    pub signature: Vec<(String, arrow::datatypes::DataType)>,
    /// Its operators, top first, one line each.
    pub operators: Vec<String>,
    /// The EXTERN scans it runs.
    pub externs: Vec<Arc<ScanCounters>>,
    /// Grove's own counters for it (the shuffle's routing, the segment generator's).
    pub counters: Option<Arc<StageCounters>>,
    /// Its top operator, whose output rows are the stage's output. Weak: a report must
    /// not keep a plan (its buffers, its spill files) alive after it ran.
    top: Weak<dyn ExecutionPlan>,
    /// The output rows when the plan finished ([`StageLayout::freeze`]).
    frozen: Arc<Mutex<Option<PartitionRows>>>,
}

/// Rows per partition: `(partition, rows)`.
pub type PartitionRows = Vec<(usize, u64)>;

/// An exchange as [`StageLayout`] cuts it: the top of the stage below, how that stage's
/// output is shuffled, and Grove's counters for that stage.
type Exchange = (
    Arc<dyn ExecutionPlan>,
    StageShuffle,
    Option<Arc<StageCounters>>,
);

impl PlannedStage {
    /// Druid's `input` of the stage: each table input's JSON, from the statement's
    /// `tables` (inline when missing), and `{"type": "stage", "stage": n}` for each stage
    /// it reads.
    pub fn input_json(&self, tables: &[serde_json::Value]) -> Vec<serde_json::Value> {
        self.inputs
            .iter()
            .map(|i| match i {
                StageInput::Table(t) => tables.get(*t).cloned().unwrap_or_else(
                    || serde_json::json!({"type": "inline", "dataSource": {"type": "inline"}}),
                ),
                StageInput::Stage(n) => serde_json::json!({"type": "stage", "stage": n}),
            })
            .collect()
    }

    /// Output rows so far, per partition of its top operator (DataFusion's `output_rows`
    /// metric); empty when the operator reports none.
    pub fn output_rows(&self) -> PartitionRows {
        if let Some(rows) = self.frozen.lock().ok().and_then(|f| f.clone()) {
            return rows;
        }
        let Some(metrics) = self.top.upgrade().and_then(|top| top.metrics()) else {
            return Vec::new();
        };
        metrics
            .iter()
            .filter_map(|m| match m.value() {
                MetricValue::OutputRows(count) => {
                    Some((m.partition().unwrap_or(0), count.value() as u64))
                }
                _ => None,
            })
            .collect()
    }
}

/// The stages of a physical plan.
#[derive(Debug, Clone, Default)]
pub struct StageLayout {
    /// By stage number.
    pub stages: Vec<PlannedStage>,
}

impl StageLayout {
    /// Cuts `plan` into stages. `table_inputs` is how many table inputs the statement's
    /// description lists: the leaf stages take them in order, one per leaf operator, and
    /// stage 0 takes any left over.
    pub fn of(plan: &Arc<dyn ExecutionPlan>, table_inputs: usize) -> Self {
        let mut layout = Self::default();
        let mut next_input = 0;
        layout.cut(plan, None, None, &mut next_input, table_inputs);
        if next_input < table_inputs
            && let Some(first) = layout.stages.first_mut()
        {
            first
                .inputs
                .extend((next_input..table_inputs).map(StageInput::Table));
        }
        layout
    }

    /// Keeps each stage's output rows as they are now, for reports drawn after the plan
    /// is dropped. Called when the plan has run (or failed).
    pub fn freeze(&self) {
        for stage in &self.stages {
            let rows = stage.output_rows();
            if let Ok(mut frozen) = stage.frozen.lock() {
                *frozen = Some(rows);
            }
        }
    }

    /// The stage whose output the ingest's cluster shuffle sorts, if any.
    pub fn cluster_stage(&self) -> Option<usize> {
        self.stages
            .iter()
            .position(|s| s.shuffle == Some(StageShuffle::Cluster))
    }

    /// Adds the stage topped by `top` (and, first, the stages it reads) and returns its
    /// number.
    fn cut(
        &mut self,
        top: &Arc<dyn ExecutionPlan>,
        shuffle: Option<StageShuffle>,
        counters: Option<Arc<StageCounters>>,
        next_input: &mut usize,
        table_inputs: usize,
    ) -> usize {
        let mut inputs = Vec::new();
        let mut operators = Vec::new();
        let mut externs = Vec::new();
        let mut processor = None;
        let mut own_counters = counters;
        let mut stack = vec![Arc::clone(top)];
        while let Some(node) = stack.pop() {
            if let Some((child, child_shuffle, child_counters)) = exchange(&node) {
                let stage = self.cut(
                    &child,
                    Some(child_shuffle),
                    child_counters,
                    next_input,
                    table_inputs,
                );
                inputs.push(StageInput::Stage(stage));
                if let Some(shuffle) = node.downcast_ref::<ChunkShuffleExec>()
                    && own_counters.is_none()
                {
                    own_counters = Some(Arc::clone(shuffle.read_counters()));
                }
                continue;
            }
            operators.push(
                displayable(node.as_ref())
                    .one_line()
                    .to_string()
                    .trim_end()
                    .to_string(),
            );
            if processor.is_none() {
                processor = processor_of(&node, top);
            }
            if let Some(generator) = node.downcast_ref::<SegmentGeneratorExec>()
                && own_counters.is_none()
            {
                own_counters = Some(Arc::clone(generator.counters()));
            }
            if let Some(scan) = node.downcast_ref::<ExternScanExec>() {
                externs.push(Arc::clone(scan.counters()));
            }
            let children = node.children();
            if children.is_empty() && *next_input < table_inputs {
                inputs.push(StageInput::Table(*next_input));
                *next_input += 1;
            }
            // Depth first, first child first.
            stack.extend(children.into_iter().rev().cloned());
        }
        self.stages.push(PlannedStage {
            processor: processor.unwrap_or(Processor::Scan),
            inputs,
            shuffle,
            tasks: top.properties().partitioning.partition_count().max(1),
            signature: top
                .schema()
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect(),
            operators,
            externs,
            counters: own_counters,
            top: Arc::downgrade(top),
            frozen: Arc::default(),
        });
        self.stages.len() - 1
    }
}

/// If `node` is an exchange, what is below it.
fn exchange(node: &Arc<dyn ExecutionPlan>) -> Option<Exchange> {
    let child = node.children().first().map(|c| Arc::clone(c))?;
    let many = child.properties().partitioning.partition_count() > 1;
    if let Some(shuffle) = node.downcast_ref::<ChunkShuffleExec>() {
        return Some((
            child,
            StageShuffle::Cluster,
            Some(Arc::clone(shuffle.counters())),
        ));
    }
    if let Some(repartition) = node.downcast_ref::<RepartitionExec>()
        && let Partitioning::Hash(exprs, partitions) = repartition.partitioning()
    {
        if let Some(assign) = child.downcast_ref::<AssignBucketExec>() {
            let counters = Some(Arc::clone(assign.counters()));
            return Some((child, StageShuffle::Cluster, counters));
        }
        let columns = exprs.iter().map(|e| e.to_string()).collect();
        return Some((
            child,
            StageShuffle::Hash {
                columns,
                partitions: *partitions,
            },
            None,
        ));
    }
    if many && node.downcast_ref::<CoalescePartitionsExec>().is_some() {
        return Some((child, StageShuffle::Mix, None));
    }
    if many && let Some(merge) = node.downcast_ref::<SortPreservingMergeExec>() {
        let columns = merge
            .expr()
            .iter()
            .map(|e| (e.expr.to_string(), e.options.descending))
            .collect();
        return Some((child, StageShuffle::Sort { columns }, None));
    }
    None
}

/// The processor an operator makes of its stage, if it decides it.
fn processor_of(node: &Arc<dyn ExecutionPlan>, top: &Arc<dyn ExecutionPlan>) -> Option<Processor> {
    if node.downcast_ref::<SegmentGeneratorExec>().is_some() {
        return Some(Processor::SegmentGenerator);
    }
    if let Some(aggregate) = node.downcast_ref::<AggregateExec>() {
        return Some(match aggregate.mode() {
            AggregateMode::Partial => Processor::GroupByPreShuffle,
            AggregateMode::Final | AggregateMode::FinalPartitioned => Processor::GroupByPostShuffle,
            _ => Processor::GroupBy,
        });
    }
    if node.downcast_ref::<SortMergeJoinExec>().is_some() {
        return Some(Processor::SortMergeJoin);
    }
    if Arc::ptr_eq(node, top)
        && node.downcast_ref::<GlobalLimitExec>().is_some()
        && node.properties().partitioning.partition_count() == 1
    {
        return Some(Processor::OffsetLimit);
    }
    None
}
