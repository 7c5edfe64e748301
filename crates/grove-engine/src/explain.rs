//! EXPLAIN of Grove's statements.
//!
//! - DataFusion's form, `EXPLAIN [VERBOSE] INSERT|REPLACE ...`: DataFusion's own EXPLAIN
//!   over the [`IngestNode`] plan, so the rows (`plan_type`, `plan`) show the logical
//!   plan with the `GroveIngest` node and the physical plan with the shuffle and segment
//!   operators. `EXPLAIN ANALYZE` runs (and publishes) the statement, then shows the
//!   physical plan with every operator's metrics.
//! - Druid's form, `EXPLAIN PLAN FOR <SELECT|INSERT|REPLACE>`: one row of Druid's columns
//!   `PLAN`, `RESOURCES` and `ATTRIBUTES` ([`druid_rows`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::source_as_provider;
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{ExecutionPlan, displayable};
use grove_common::types::{sql_type_name, storage_type_for};
use grove_common::{Granularity, Interval, QueryContext};
use grove_input::ExternTable;
use grove_sql::IngestKind;
use serde_json::{Value, json};

use crate::node::IngestNode;
use crate::stage_layout::{StageLayout, StageShuffle};

/// What an EXPLAIN PLAN FOR explains.
pub(crate) enum Explained<'a> {
    /// An INSERT or REPLACE, as its ingest node.
    Ingest(&'a IngestNode),
    /// A query.
    Query,
}

/// Druid's answer to `EXPLAIN PLAN FOR`: one row of `PLAN`, `RESOURCES` and
/// `ATTRIBUTES` for the statement planned as `logical`.
///
/// - `PLAN`: with the context flag `useNativeQueryExplain`, Druid's shape, a JSON array of
///   one `{"query", "signature", "columnMappings"}` whose `query` is Grove's plan as JSON
///   (the logical plan's lines, the physical operators as a tree, and the stages they
///   run as, as the task report shows them). Grove runs no native Druid queries, so none
///   is shown. Without the flag, the logical and physical plans as text.
/// - `RESOURCES`: `[{"name", "type"}]` of every datasource read or written (`DATASOURCE`),
///   `EXTERNAL` for external input, `SYSTEM_TABLE` for `sys` and `INFORMATION_SCHEMA`.
/// - `ATTRIBUTES`: `statementType`, and for ingests `targetDataSource`, `partitionedBy`,
///   `clusteredBy` (when given) and `replaceTimeChunks` (REPLACE), as Druid writes them.
pub(crate) async fn druid_rows(
    state: &SessionState,
    logical: &LogicalPlan,
    explained: Explained<'_>,
    context: &QueryContext,
) -> Result<RecordBatch> {
    let physical = state.create_physical_plan(logical).await?;
    let logical = &state.optimize(logical)?;
    let native = context
        .get_bool("useNativeQueryExplain")
        .map_err(DataFusionError::Plan)?
        .unwrap_or(false);
    let logical_text = logical.display_indent().to_string();
    let physical_text = displayable(physical.as_ref()).indent(true).to_string();
    let plan = if native {
        let (signature, mappings) = signature(logical, &explained);
        json!([{
            "query": {
                "queryType": "grove",
                "statementType": statement_type(&explained),
                "logicalPlan": logical_text.lines().collect::<Vec<_>>(),
                "physicalPlan": operator_json(&physical),
                "stages": stages_json(&physical, &crate::report::stage_inputs(logical)),
            },
            "signature": signature,
            "columnMappings": mappings,
        }])
        .to_string()
    } else {
        format!(
            "Logical plan:\n{logical_text}\nPhysical plan:\n{}",
            physical_text.trim_end()
        )
    };
    let resources = Value::Array(
        resources(logical, &explained)
            .into_iter()
            .map(|(name, kind)| json!({"name": name, "type": kind}))
            .collect(),
    )
    .to_string();
    let attributes = attributes(&explained);
    let schema = Arc::new(Schema::new(vec![
        Field::new("PLAN", DataType::Utf8, false),
        Field::new("RESOURCES", DataType::Utf8, false),
        Field::new("ATTRIBUTES", DataType::Utf8, false),
    ]));
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec![plan])),
            Arc::new(StringArray::from(vec![resources])),
            Arc::new(StringArray::from(vec![attributes])),
        ],
    )?)
}

/// DataFusion's EXPLAIN ANALYZE rows for a plan that has run: `plan_type` "Plan with
/// Metrics" and the plan with every operator's metrics.
pub(crate) fn analyzed_rows(physical: &Arc<dyn ExecutionPlan>) -> Result<RecordBatch> {
    let text = datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(
        physical.as_ref(),
    )
    .indent(true)
    .to_string();
    let schema = Arc::new(Schema::new(vec![
        Field::new("plan_type", DataType::Utf8, false),
        Field::new("plan", DataType::Utf8, false),
    ]));
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["Plan with Metrics"])),
            Arc::new(StringArray::from(vec![text])),
        ],
    )?)
}

fn statement_type(explained: &Explained<'_>) -> &'static str {
    match explained {
        Explained::Ingest(node) => match node.kind {
            IngestKind::Insert => "INSERT",
            IngestKind::Replace => "REPLACE",
        },
        Explained::Query => "SELECT",
    }
}

/// The stages the physical plan runs as ([`StageLayout`], as the task report shows
/// them): number, processor, inputs, shuffle and operators.
fn stages_json(physical: &Arc<dyn ExecutionPlan>, inputs: &[Value]) -> Value {
    let layout = StageLayout::of(physical, inputs.len());
    Value::Array(
        layout
            .stages
            .iter()
            .enumerate()
            .map(|(number, stage)| {
                json!({
                    "stageNumber": number,
                    "processor": stage.processor.name(),
                    "input": stage.input_json(inputs),
                    "shuffle": stage.shuffle.as_ref().map(StageShuffle::kind),
                    "operators": stage.operators,
                })
            })
            .collect(),
    )
}

/// A physical operator and its inputs as JSON.
fn operator_json(plan: &Arc<dyn ExecutionPlan>) -> Value {
    let line = displayable(plan.as_ref()).one_line().to_string();
    json!({
        "operator": plan.name(),
        "description": line.trim_end(),
        "partitions": plan.properties().partitioning.partition_count(),
        "inputs": plan.children().into_iter().map(operator_json).collect::<Vec<_>>(),
    })
}

/// Druid's `signature` (output columns with their native types) and `columnMappings`.
fn signature(logical: &LogicalPlan, explained: &Explained<'_>) -> (Vec<Value>, Vec<Value>) {
    let columns: Vec<(String, String)> = match explained {
        Explained::Ingest(node) => node
            .columns
            .iter()
            .map(|(n, t)| (n.clone(), t.native_name().to_string()))
            .collect(),
        Explained::Query => logical
            .schema()
            .fields()
            .iter()
            .map(|f| {
                let native = storage_type_for(f.name(), f.data_type())
                    .map_or_else(|| sql_type_name(f.data_type()), |t| t.native_name());
                (f.name().clone(), native.to_string())
            })
            .collect(),
    };
    let signature = columns
        .iter()
        .map(|(n, t)| json!({"name": n, "type": t}))
        .collect();
    let mappings = columns
        .iter()
        .map(|(n, _)| json!({"queryColumn": n, "outputColumn": n}))
        .collect();
    (signature, mappings)
}

/// Every resource the statement touches, as (name, type), sorted.
fn resources(logical: &LogicalPlan, explained: &Explained<'_>) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    if let Explained::Ingest(node) = explained {
        out.insert((node.target.clone(), "DATASOURCE".to_string()));
    }
    let _ = logical.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let provider = source_as_provider(&scan.source).ok();
            let external = provider
                .as_ref()
                .is_some_and(|p| p.downcast_ref::<ExternTable>().is_some());
            let system = scan.table_name.schema().is_some_and(|s| {
                s.eq_ignore_ascii_case("sys") || s.eq_ignore_ascii_case("information_schema")
            });
            let resource = if external {
                ("EXTERNAL".to_string(), "EXTERNAL")
            } else if system {
                (scan.table_name.table().to_string(), "SYSTEM_TABLE")
            } else {
                (scan.table_name.table().to_string(), "DATASOURCE")
            };
            out.insert((resource.0, resource.1.to_string()));
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out
}

/// Druid's `ExplainAttributes` as JSON text, its keys in Druid's order.
fn attributes(explained: &Explained<'_>) -> String {
    let mut out: Vec<(&str, Value)> = vec![("statementType", json!(statement_type(explained)))];
    if let Explained::Ingest(node) = explained {
        out.push((
            "targetDataSource",
            json!({"type": "table", "tableName": node.target}),
        ));
        out.push(("partitionedBy", partitioned_by_json(&node.granularity)));
        if !node.clustered_by.is_empty() {
            out.push(("clusteredBy", json!(node.clustered_by)));
        }
        if let Some(chunks) = replace_time_chunks(node) {
            out.push(("replaceTimeChunks", json!(chunks)));
        }
    }
    let fields: Vec<String> = out
        .iter()
        .map(|(k, v)| format!("{}:{}", json!(k), ordered(v)))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// JSON text of `value` with `type` first in objects (as Druid writes
/// `{"type":"table","tableName":...}`).
fn ordered(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by_key(|k| (k.as_str() != "type", k.as_str()));
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", json!(k), ordered(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        other => other.to_string(),
    }
}

/// REPLACE's time chunks as Druid's attributes write them: `all`, or the intervals
/// joined by commas; `None` for INSERT.
fn replace_time_chunks(node: &IngestNode) -> Option<String> {
    let intervals = node.replace_intervals.as_ref()?;
    if node.kind != IngestKind::Replace {
        return None;
    }
    Some(if intervals.as_slice() == [Interval::eternity()] {
        "all".to_string()
    } else {
        intervals
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// PARTITIONED BY as Druid's attributes write it: a standard granularity by name
/// (`"DAY"`), others as their JSON object (`{"type":"all"}`).
fn partitioned_by_json(granularity: &Granularity) -> Value {
    match (granularity, granularity.standard_name()) {
        (Granularity::Period(_), Some(name)) => json!(name),
        _ => granularity.to_json(),
    }
}
