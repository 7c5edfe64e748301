//! Grove's physical planning: DataFusion's planner plus [`IngestPlanner`], which turns an
//! [`IngestNode`] into the ingest's operators. [`GroveQueryPlanner`] is registered once
//! on the session (see [`crate::GroveContext::with_stores`]), so embedding, `grove sql`,
//! the HTTP API and EXPLAIN all plan the same way.
//!
//! ```text
//!  GroveIngest (logical)            SegmentGeneratorExec      one row per segment written
//!    <SELECT + cluster keys>   ==>    ChunkShuffleExec        rows by time chunk, sorted
//!                                       <SELECT's plan>
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{LogicalPlan, UserDefinedLogicalNode};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use grove_common::types::TIME_COLUMN;

use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::Partitioning;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use grove_common::ShuffleForm;

use crate::bucket_exec::{AssignBucketExec, BucketSpec, PARTITION_COLUMN, surrogates};
use crate::context::StageWorkers;
use crate::generator_exec::{GeneratorSpec, SegmentGeneratorExec};
use crate::node::IngestNode;
use crate::shuffle_exec::{BUCKET_COLUMN, ChunkShuffleExec, ShuffleSpec};
use crate::sort::ChunkOrder;
use crate::stats_exec::CHUNK_COLUMN;
use crate::writer::WriterConfig;

/// DataFusion's physical planner with Grove's extension planners.
#[derive(Debug, Default, Clone, Copy)]
pub struct GroveQueryPlanner;

#[async_trait]
impl QueryPlanner for GroveQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(IngestPlanner)])
            .create_physical_plan(logical_plan, session)
            .await
    }
}

/// Plans [`IngestNode`]s: the SELECT's physical plan, then [`ChunkShuffleExec`] and
/// [`SegmentGeneratorExec`], with as many workers as the statement's `maxNumTasks`
/// allows.
#[derive(Debug, Default, Clone, Copy)]
pub struct IngestPlanner;

#[async_trait]
impl ExtensionPlanner for IngestPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<IngestNode>() else {
            return Ok(None);
        };
        let [input] = physical_inputs else {
            return Err(DataFusionError::Internal(
                "GroveIngest takes one input".into(),
            ));
        };
        let stage = session
            .config()
            .get_extension::<StageWorkers>()
            .map_or(StageWorkers::single(), |w| *w);
        Ok(Some(ingest_plan(node, Arc::clone(input), stage)?))
    }
}

/// The operators of an ingest over `input` (the SELECT plus its cluster keys).
fn ingest_plan(
    node: &IngestNode,
    input: Arc<dyn ExecutionPlan>,
    stage: StageWorkers,
) -> Result<Arc<dyn ExecutionPlan>> {
    let schema = input.schema();
    let mut sort = node
        .cluster_columns
        .iter()
        .map(|c| schema.index_of(c))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    sort.push(schema.index_of(TIME_COLUMN)?);
    let output = node
        .columns
        .iter()
        .map(|(c, _)| schema.index_of(c))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let writer = node.writer_config();
    let order = ChunkOrder { columns: sort };
    let form = node.context.shuffle_form().map_err(DataFusionError::Plan)?;
    if form == ShuffleForm::Hash {
        return hash_form(input, writer, order, output, stage);
    }
    let shuffle = ChunkShuffleExec::try_new(
        input,
        ShuffleSpec {
            writer: writer.clone(),
            order,
            workers: stage.workers,
            slots: stage.partitions,
        },
    )?;
    Ok(Arc::new(SegmentGeneratorExec::try_new(
        Arc::new(shuffle),
        GeneratorSpec {
            writer,
            output,
            workers: stage.workers,
            sorted_by: Vec::new(),
        },
    )?))
}

/// The hash form of the shuffle (see [`crate::bucket_exec`]): buckets assigned by row
/// (from key statistics the controller gathers first), a hash repartition on the
/// bucket's partition surrogate, and a sort of each partition by [chunk, bucket,
/// CLUSTERED BY..., `__time`].
fn hash_form(
    input: Arc<dyn ExecutionPlan>,
    writer: WriterConfig,
    order: ChunkOrder,
    output: Vec<usize>,
    stage: StageWorkers,
) -> Result<Arc<dyn ExecutionPlan>> {
    let k = stage.partitions.max(1);
    let assign: Arc<dyn ExecutionPlan> = Arc::new(AssignBucketExec::try_new(
        input,
        BucketSpec {
            writer: writer.clone(),
            order: order.clone(),
            workers: stage.workers,
            surrogates: surrogates(k)?,
            plan: None,
        },
    )?);
    let schema = assign.schema();
    let surrogate = schema.index_of(PARTITION_COLUMN)?;
    let repartition = Arc::new(RepartitionExec::try_new(
        assign,
        Partitioning::Hash(vec![Arc::new(Column::new(PARTITION_COLUMN, surrogate))], k),
    )?);
    let mut sorted_by = vec![
        schema.index_of(CHUNK_COLUMN)?,
        schema.index_of(BUCKET_COLUMN)?,
    ];
    sorted_by.extend(order.columns.iter().copied());
    let lex = ChunkOrder {
        columns: sorted_by.clone(),
    }
    .lex(&schema)?;
    let sort = Arc::new(SortExec::new(lex, repartition).with_preserve_partitioning(true));
    Ok(Arc::new(SegmentGeneratorExec::try_new(
        sort,
        GeneratorSpec {
            writer,
            output,
            workers: stage.workers,
            sorted_by,
        },
    )?))
}

/// The one input of a Grove operator (being rebuilt by `with_new_children`, or decoded).
pub(crate) fn single_input(
    inputs: &[Arc<dyn ExecutionPlan>],
    name: &str,
) -> Result<Arc<dyn ExecutionPlan>> {
    match inputs {
        [input] => Ok(Arc::clone(input)),
        _ => Err(DataFusionError::Internal(format!("{name} takes one input"))),
    }
}
