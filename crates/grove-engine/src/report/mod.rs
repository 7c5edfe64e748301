//! Druid's task JSON for a statement run as a task: the `query_controller` payload and
//! the `multiStageQuery` report (status, stages, counters, results), drawn from the plan
//! and the live [`TaskProgress`].
//!
//! The stages are those of the physical plan that runs ([`crate::stage_layout`]): an
//! ingest reads, evaluates the SELECT and routes rows by time chunk and cluster key
//! (Druid's `targetSize` shuffle), then sorts and writes segments (`segmentGenerator`);
//! a GROUP BY over several partitions adds its partial aggregation stage before a `hash`
//! shuffle (`groupByPreShuffle`, then `groupByPostShuffle`). `stages` renders them.

use std::sync::atomic::Ordering;

use arrow::array::RecordBatch;
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::LogicalPlan;
use grove_common::time::format_millis;
use grove_common::types::sql_type_name;
use grove_common::{Interval, MsqFault};
use grove_input::ExternTable;
use grove_sql::IngestKind;
use grove_store::DatasourceTable;
use serde_json::{Map, Value, json};

use crate::context::{PreparedKind, PreparedStatement};
use crate::query::QueryResults;
use crate::task::{TaskPhase, TaskProgress};

mod stages;

/// The datasource Druid reports for SELECT tasks.
pub const QUERY_SELECT_DATASOURCE: &str = "__query_select";

/// Everything the task JSON needs about a statement, fixed at submission.
#[derive(Debug, Clone)]
pub struct TaskDescription {
    /// Task id.
    pub task_id: String,
    /// Target datasource, or `__query_select`.
    pub data_source: String,
    /// SQL as submitted.
    pub sql: String,
    /// The context as submitted (plus sqlQueryId).
    pub context: Map<String, Value>,
    /// Output columns: (name, native type, SQL type).
    pub columns: Vec<(String, String, String)>,
    /// Druid stage-input JSON for each table read.
    pub inputs: Vec<Value>,
    /// Ingest details, `None` for SELECT.
    pub ingest: Option<IngestDescription>,
    /// The statement's logical plan as planned (for an ingest, the `GroveIngest` node over
    /// the SELECT), one line each: the payload's `spec.query`.
    pub plan: Vec<String>,
}

/// The ingest part of a [`TaskDescription`].
#[derive(Debug, Clone)]
pub struct IngestDescription {
    /// PARTITIONED BY, as Druid's JSON.
    pub segment_granularity: Value,
    /// REPLACE intervals (`None` = INSERT).
    pub replace_time_chunks: Option<Vec<Interval>>,
    /// CLUSTERED BY column names (expressions by their text).
    pub cluster_by: Vec<String>,
    /// Target rows per segment.
    pub rows_per_segment: usize,
    /// Range shard-spec dimensions.
    pub range_dimensions: Vec<String>,
}

impl PreparedStatement {
    /// Describes the statement for task JSON.
    pub fn describe(&self) -> TaskDescription {
        let mut context = self.context.as_json().clone();
        let query_id = self.task_id.trim_start_matches("query-").to_string();
        context
            .entry("sqlQueryId")
            .or_insert_with(|| Value::String(query_id));
        let plan_lines: Vec<String> = match &self.kind {
            PreparedKind::Ingest(plan) => {
                match crate::IngestNode::try_new(plan, &self.task_id, &self.context) {
                    Ok(node) => node.into_plan().display_indent().to_string(),
                    Err(e) => format!("(the ingest node could not be built: {e})"),
                }
            }
            PreparedKind::Query(plan) => plan.display_indent().to_string(),
        }
        .lines()
        .map(str::to_string)
        .collect();
        match &self.kind {
            PreparedKind::Ingest(plan) => TaskDescription {
                task_id: self.task_id.clone(),
                data_source: plan.target.clone(),
                sql: self.sql.clone(),
                context,
                columns: plan
                    .columns
                    .iter()
                    .map(|(n, t)| (n.clone(), t.native_name().into(), t.sql_name().into()))
                    .collect(),
                inputs: stage_inputs(&plan.input),
                ingest: Some(IngestDescription {
                    segment_granularity: plan.granularity.to_json(),
                    replace_time_chunks: match plan.kind {
                        IngestKind::Replace => plan.replace_intervals.clone(),
                        IngestKind::Insert => None,
                    },
                    cluster_by: plan.cluster_by.iter().map(|e| e.to_string()).collect(),
                    rows_per_segment: self.context.rows_per_segment().unwrap_or(3_000_000),
                    range_dimensions: plan.range_dimensions.clone(),
                }),
                plan: plan_lines,
            },
            PreparedKind::Query(plan) => TaskDescription {
                task_id: self.task_id.clone(),
                data_source: QUERY_SELECT_DATASOURCE.into(),
                sql: self.sql.clone(),
                context,
                columns: plan
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| {
                        let native = grove_common::types::storage_type_for(f.name(), f.data_type())
                            .map(|t| t.native_name())
                            .unwrap_or("COMPLEX");
                        (
                            f.name().clone(),
                            native.to_string(),
                            sql_type_name(f.data_type()).to_string(),
                        )
                    })
                    .collect(),
                inputs: stage_inputs(plan),
                ingest: None,
                plan: plan_lines,
            },
        }
    }
}

/// Druid stage inputs for the tables a plan reads.
pub(crate) fn stage_inputs(plan: &LogicalPlan) -> Vec<Value> {
    let mut out = Vec::new();
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = source_as_provider(&scan.source)
        {
            if let Some(ext) = provider.downcast_ref::<ExternTable>() {
                let spec = ext.spec();
                let signature: Vec<Value> = spec
                    .signature
                    .iter()
                    .map(|c| json!({"name": c.name, "type": c.column_type.native_name()}))
                    .collect();
                out.push(json!({
                    "type": "external",
                    "inputSource": spec.source,
                    "inputFormat": spec.format,
                    "signature": signature,
                }));
            } else if let Some(table) = provider.downcast_ref::<DatasourceTable>() {
                out.push(json!({
                    "type": "table",
                    "dataSource": table.name(),
                    "intervals": [Interval::eternity().to_string()],
                    "filter": null,
                }));
            } else {
                out.push(json!({"type": "inline", "dataSource": {"type": "inline"}}));
            }
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    if out.is_empty() {
        out.push(json!({"type": "inline", "dataSource": {"type": "inline"}}));
    }
    out
}

use datafusion::common::tree_node::TreeNode;

/// How a task ended.
#[derive(Debug, Clone)]
pub enum TaskEnd {
    /// Still running.
    Running,
    /// Succeeded (SELECT results, if any).
    Success(Option<QueryResults>),
    /// Failed with this fault.
    Failed(MsqFault),
}

impl TaskDescription {
    /// Druid's `query_controller` task payload.
    pub fn payload(&self) -> Value {
        let sql_type_names: Vec<&str> = self.columns.iter().map(|c| c.2.as_str()).collect();
        let native_type_names: Vec<&str> = self.columns.iter().map(|c| c.1.as_str()).collect();
        let column_mappings: Vec<Value> = self
            .columns
            .iter()
            .map(|c| json!({"queryColumn": c.0, "outputColumn": c.0}))
            .collect();
        let destination = match &self.ingest {
            Some(i) => {
                let mut d = json!({
                    "type": "dataSource",
                    "dataSource": self.data_source,
                    "segmentGranularity": i.segment_granularity,
                    "segmentSortOrder": [],
                });
                if let Some(chunks) = &i.replace_time_chunks {
                    d["replaceTimeChunks"] =
                        json!(chunks.iter().map(|c| c.to_string()).collect::<Vec<_>>());
                }
                d
            }
            None => json!({"type": "taskReport"}),
        };
        let rows_per_segment = self
            .ingest
            .as_ref()
            .map(|i| i.rows_per_segment)
            .unwrap_or(3_000_000);
        json!({
            "type": "query_controller",
            "id": self.task_id,
            "groupId": self.task_id,
            "resource": {"availabilityGroup": self.task_id, "requiredCapacity": 1},
            "spec": {
                // Grove runs no native Druid query: the query is its own plan.
                "query": {
                    "queryType": "grove",
                    "logicalPlan": self.plan,
                    "columns": self.columns.iter().map(|c| c.0.clone()).collect::<Vec<_>>(),
                    "context": self.context,
                },
                "columnMappings": column_mappings,
                "destination": destination,
                "assignmentStrategy": "max",
                "tuningConfig": {
                    "maxNumWorkers": 1,
                    "maxRowsInMemory": 100000,
                    "rowsPerSegment": rows_per_segment,
                },
            },
            "sqlQuery": self.sql,
            "sqlQueryContext": self.context,
            "sqlResultsContext": {"timeZone": "UTC", "serializeComplexValues": true, "stringifyArrays": true},
            "sqlTypeNames": sql_type_names,
            "nativeTypeNames": native_type_names,
            "context": {"forceTimeChunkLock": true, "useLineageBasedSegmentAllocation": true},
            "dataSource": self.data_source,
        })
    }

    /// Druid's `multiStageQuery` report.
    pub fn report(&self, created_ms: i64, progress: &TaskProgress, end: &TaskEnd) -> Value {
        let now = chrono::Utc::now().timestamp_millis();
        let started = progress.reading_started_ms.load(Ordering::Relaxed);
        let finished = progress.finished_ms.load(Ordering::Relaxed);
        let start = if started > 0 { started } else { created_ms };
        let duration = if finished > 0 {
            finished - start
        } else {
            now - start
        };
        let status_name = match end {
            TaskEnd::Running => "RUNNING",
            TaskEnd::Success(_) => "SUCCESS",
            TaskEnd::Failed(_) => "FAILED",
        };
        // Every worker the stages use (`maxNumTasks - 1`, bounded by the server); they run
        // inside this process, so they start with the controller's first stage.
        let workers = progress.workers.load(Ordering::Relaxed).max(1);
        let running = matches!(end, TaskEnd::Running);
        let waiting = running && progress.phase() == TaskPhase::Waiting;
        let worker_entries: Map<String, Value> = (0..workers)
            .map(|w| {
                (
                    w.to_string(),
                    json!([{
                        "workerId": format!("{}-worker{w}_0", self.task_id),
                        "state": status_name,
                        "durationMs": if running { -1 } else { duration.max(0) },
                        "pendingMs": 0,
                    }]),
                )
            })
            .collect();
        let mut status = json!({
            "status": status_name,
            "startTime": format_millis(start),
            "durationMs": duration.max(0),
            "workers": if waiting { Map::new() } else { worker_entries },
            "pendingTasks": if waiting { workers } else { 0 },
            "runningTasks": match (running, waiting) {
                (false, _) => 0,
                (true, true) => 1,
                (true, false) => 1 + workers,
            },
        });
        let warnings: Vec<Value> = progress
            .scans()
            .iter()
            .flat_map(|s| s.parse.messages())
            .take(10)
            .map(|message| {
                json!({
                    "taskId": format!("{}-worker0_0", self.task_id),
                    "host": "localhost",
                    "stageNumber": 0,
                    "error": {"errorCode": "CannotParseExternalData", "errorMessage": message},
                })
            })
            .collect();
        if !warnings.is_empty() {
            status["warnings"] = Value::Array(warnings);
        }
        if let TaskEnd::Failed(fault) = end {
            status["errorReport"] = json!({
                "taskId": self.task_id,
                "host": "localhost",
                "error": fault.to_json(),
            });
        }
        if let Some(i) = &self.ingest {
            let (shard, details) = if i.replace_time_chunks.is_none() {
                ("NumberedShardSpec", "Using NumberedShardSpec to generate segments since the query is inserting rows.".to_string())
            } else if i.cluster_by.is_empty() {
                (
                    "NumberedShardSpec",
                    "CLUSTERED BY clause is empty.".to_string(),
                )
            } else if i.range_dimensions.len() == i.cluster_by.len() {
                (
                    "DimensionRangeShardSpec",
                    "Using 'range' shard specs with all CLUSTERED BY fields.".to_string(),
                )
            } else if i.range_dimensions.is_empty() {
                ("NumberedShardSpec", "Only string columns are included in 'range' shard specs; the first CLUSTERED BY column is not a string column.".to_string())
            } else {
                (
                    "DimensionRangeShardSpec",
                    format!(
                        "Using[{}] CLUSTERED BY columns for 'range' shard specs, since the next column is not a string column. Only string columns are included in 'range' shard specs.",
                        i.range_dimensions.len()
                    ),
                )
            };
            if progress.phase() >= TaskPhase::Writing {
                status["segmentReport"] = json!({"shardSpec": shard, "details": details});
            }
        }
        let results = match end {
            TaskEnd::Success(Some(r)) => Some(self.results_json(r)),
            _ => None,
        };
        let mut payload = json!({
            "status": status,
            "stages": self.stages(progress, end, now),
            "counters": self.counters(progress),
        });
        if let Some(r) = results {
            payload["results"] = r;
        }
        json!({
            "multiStageQuery": {
                "type": "multiStageQuery",
                "taskId": self.task_id,
                "payload": payload,
            }
        })
    }

    fn query_uuid(&self) -> &str {
        self.task_id.trim_start_matches("query-")
    }

    fn signature(&self) -> Vec<Value> {
        self.columns
            .iter()
            .map(|c| json!({"name": c.0, "type": c.1}))
            .collect()
    }

    fn results_json(&self, results: &QueryResults) -> Value {
        let mut rows: Vec<Value> = Vec::new();
        for batch in &results.batches {
            rows.extend(batch_rows(batch));
        }
        json!({
            "signature": self.signature(),
            "sqlTypeNames": self.columns.iter().map(|c| c.2.clone()).collect::<Vec<_>>(),
            "results": rows,
            "resultsTruncated": results.truncated,
        })
    }
}

/// How a report renders values: timestamps as epoch millis, arrays as JSON arrays.
const REPORT_VALUES: crate::results::ValueOptions = crate::results::ValueOptions {
    time_zone: None,
    stringify_arrays: false,
};

/// Rows as JSON arrays, Druid's way: timestamps as epoch milliseconds.
pub fn batch_rows(batch: &RecordBatch) -> Vec<Value> {
    let mut rows = vec![Vec::with_capacity(batch.num_columns()); batch.num_rows()];
    for col in batch.columns() {
        let values = crate::results::column_json(col.as_ref(), &REPORT_VALUES);
        for (row, v) in rows.iter_mut().zip(values) {
            row.push(v);
        }
    }
    rows.into_iter().map(Value::Array).collect()
}
