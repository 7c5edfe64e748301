//! [`IngestNode`]: an INSERT or REPLACE as a DataFusion logical extension node over its
//! SELECT. [`crate::planner::IngestPlanner`] turns it into the physical operators
//! (shuffle by time chunk and cluster key, segment generation); EXPLAIN shows it.
//!
//! ```text
//!  Extension: GroveIngest: REPLACE INTO wiki OVERWRITE ALL, PARTITIONED BY DAY, CLUSTERED BY [page], ...
//!    Projection: <the SELECT's columns cast to their storage types>, <CLUSTERED BY expressions>
//!      ... the SELECT's plan ...
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{DFSchema, DFSchemaRef, DataFusionError, Result};
use datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, LogicalPlanBuilder, UserDefinedLogicalNodeCore,
};
use grove_common::types::{StorageType, TIME_COLUMN};
use grove_common::{Granularity, Interval, QueryContext};
use grove_sql::{IngestKind, IngestPlan};

use crate::writer::WriterConfig;

/// An INSERT or REPLACE: where its rows go and how they are cut into segments.
#[derive(Debug, Clone)]
pub struct IngestNode {
    /// INSERT or REPLACE.
    pub kind: IngestKind,
    /// The datasource written.
    pub target: String,
    /// PARTITIONED BY.
    pub granularity: Granularity,
    /// The time chunks REPLACE overwrites; `None` for INSERT.
    pub replace_intervals: Option<Vec<Interval>>,
    /// CLUSTERED BY, as columns of the input (expressions are computed into columns).
    pub cluster_columns: Vec<String>,
    /// CLUSTERED BY as written (for display).
    pub clustered_by: Vec<String>,
    /// Range shard-spec dimensions; empty for numbered shard specs.
    pub range_dimensions: Vec<String>,
    /// The columns written and how each is stored.
    pub columns: Vec<(String, StorageType)>,
    /// Target rows per segment.
    pub rows_per_segment: usize,
    /// The task, named in segment paths.
    pub task_id: String,
    /// The statement's query context.
    pub context: QueryContext,
    input: LogicalPlan,
    schema: DFSchemaRef,
}

impl IngestNode {
    /// The node for a planned INSERT/REPLACE run as task `task_id`: its input is the
    /// SELECT plus a column for every CLUSTERED BY expression that is not a plain output
    /// column (each time chunk is sorted by [CLUSTERED BY..., `__time`]).
    pub fn try_new(plan: &IngestPlan, task_id: &str, context: &QueryContext) -> Result<Self> {
        let input_schema = Arc::clone(plan.input.schema());
        let mut exprs: Vec<Expr> = input_schema
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect();
        let mut cluster_columns = Vec::with_capacity(plan.cluster_by.len());
        for (i, e) in plan.cluster_by.iter().enumerate() {
            match e {
                Expr::Column(c) => cluster_columns.push(c.name.clone()),
                other => {
                    let name = format!("__grove_cluster_{i}");
                    exprs.push(other.clone().alias(&name));
                    cluster_columns.push(name);
                }
            }
        }
        if input_schema
            .index_of_column_by_name(None, TIME_COLUMN)
            .is_none()
        {
            return Err(DataFusionError::Plan(format!(
                "INSERT/REPLACE needs a [{TIME_COLUMN}] column"
            )));
        }
        let input = LogicalPlanBuilder::from(plan.input.clone())
            .project(exprs)?
            .build()?;
        Ok(Self {
            kind: plan.kind,
            target: plan.target.clone(),
            granularity: plan.granularity,
            replace_intervals: plan.replace_intervals.clone(),
            cluster_columns,
            clustered_by: plan.cluster_by.iter().map(|e| e.to_string()).collect(),
            range_dimensions: plan.range_dimensions.clone(),
            columns: plan.columns.clone(),
            rows_per_segment: context.rows_per_segment().map_err(DataFusionError::Plan)?,
            task_id: task_id.to_string(),
            context: context.clone(),
            input,
            schema: Self::output_schema()?,
        })
    }

    /// The node as a logical plan.
    pub fn into_plan(self) -> LogicalPlan {
        LogicalPlan::Extension(Extension {
            node: Arc::new(self),
        })
    }

    /// One row per segment written: its description as JSON.
    fn output_schema() -> Result<DFSchemaRef> {
        Ok(Arc::new(DFSchema::try_from(Schema::new(vec![
            Field::new("segment", DataType::Utf8, false),
        ]))?))
    }

    /// What the segment writer needs to know.
    pub(crate) fn writer_config(&self) -> WriterConfig {
        WriterConfig {
            data_source: self.target.clone(),
            task_id: self.task_id.clone(),
            granularity: self.granularity,
            rows_per_segment: self.rows_per_segment,
            replace_intervals: self.replace_intervals.clone(),
            range_dimensions: self.range_dimensions.clone(),
            columns: self.columns.clone(),
            max_partitions: grove_common::fault::MAX_PARTITIONS,
            max_buckets: grove_common::fault::MAX_BUCKETS,
        }
    }

    /// Everything but the input, as text: what makes two nodes equal.
    fn key(&self) -> String {
        format!(
            "{self} task={} context={} columns={:?}",
            self.task_id,
            serde_json::Value::Object(self.context.as_json().clone()),
            self.columns
        )
    }
}

/// PARTITIONED BY as SQL says it: `DAY`, `ALL`, or the period (`'PT5M'`).
pub(crate) fn granularity_sql(granularity: &Granularity) -> String {
    match (granularity.standard_name(), granularity.period()) {
        (Some(name), _) => name.to_string(),
        (None, Some(period)) => format!("'{period}'"),
        (None, None) => granularity.to_string(),
    }
}

impl fmt::Display for IngestNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroveIngest: {} INTO {}", self.kind, self.target)?;
        match &self.replace_intervals {
            Some(i) if i.len() == 1 && i[0] == Interval::eternity() => write!(f, " OVERWRITE ALL")?,
            Some(i) => write!(
                f,
                " OVERWRITE [{}]",
                i.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )?,
            None => {}
        }
        write!(f, ", PARTITIONED BY {}", granularity_sql(&self.granularity))?;
        if !self.clustered_by.is_empty() {
            write!(f, ", CLUSTERED BY [{}]", self.clustered_by.join(", "))?;
        }
        if self.range_dimensions.is_empty() {
            write!(f, ", shardSpec=numbered")?;
        } else {
            write!(f, ", shardSpec=range[{}]", self.range_dimensions.join(", "))?;
        }
        write!(f, ", rowsPerSegment={}", self.rows_per_segment)
    }
}

impl PartialEq for IngestNode {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key() && self.input == other.input
    }
}

impl Eq for IngestNode {}

impl Hash for IngestNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
        self.input.hash(state);
    }
}

impl PartialOrd for IngestNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.key().cmp(&other.key()) {
            Ordering::Equal => self.input.partial_cmp(&other.input),
            unequal => Some(unequal),
        }
    }
}

impl UserDefinedLogicalNodeCore for IngestNode {
    fn name(&self) -> &str {
        "GroveIngest"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        // CLUSTERED BY is computed into columns of the input, named in the node.
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{self}")
    }

    fn with_exprs_and_inputs(&self, exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        if !exprs.is_empty() {
            return Err(DataFusionError::Internal(
                "GroveIngest has no expressions".into(),
            ));
        }
        let [input] = <[_; 1]>::try_from(inputs)
            .map_err(|_| DataFusionError::Internal("GroveIngest takes one input".into()))?;
        Ok(Self {
            input,
            ..self.clone()
        })
    }
}
