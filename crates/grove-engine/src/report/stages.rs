//! The report's `stages` and `counters`, drawn from the stages of the plan that runs
//! ([`StageLayout`]): one entry per stage, with its processor, inputs, shuffle, workers
//! and partitions, and per worker the counters its operators keep. Before the statement
//! is planned there are no stages.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use grove_common::Interval;
use grove_common::time::format_millis;
use grove_common::types::{TIME_COLUMN, storage_type_for};
use grove_input::PartitionCounters;
use serde_json::{Map, Value, json};

use super::{TaskDescription, TaskEnd};
use crate::counters::channel_json;
use crate::stage_layout::{PartitionRows, PlannedStage, Processor, StageInput, StageShuffle};
use crate::task::{TaskPhase, TaskProgress};

/// Where the statement is, as far as one stage is concerned.
struct Clock {
    phase: TaskPhase,
    failed: bool,
    succeeded: bool,
    read_start: i64,
    write_start: i64,
    finished: i64,
    now: i64,
}

impl TaskDescription {
    pub(super) fn stages(&self, progress: &TaskProgress, end: &TaskEnd, now: i64) -> Value {
        let Some(layout) = progress.layout() else {
            return Value::Array(Vec::new());
        };
        let clock = Clock {
            phase: progress.phase(),
            failed: matches!(end, TaskEnd::Failed(_)),
            succeeded: matches!(end, TaskEnd::Success(_)),
            read_start: progress.reading_started_ms.load(Ordering::Relaxed),
            write_start: progress.writing_started_ms.load(Ordering::Relaxed),
            finished: progress.finished_ms.load(Ordering::Relaxed),
            now,
        };
        let workers = progress.workers.load(Ordering::Relaxed).max(1) as usize;
        let last = layout.stages.len().saturating_sub(1);
        Value::Array(
            layout
                .stages
                .iter()
                .enumerate()
                .map(|(number, stage)| {
                    self.stage_json(number, stage, number == last, &clock, progress, workers)
                })
                .collect(),
        )
    }

    fn stage_json(
        &self,
        number: usize,
        stage: &PlannedStage,
        last: bool,
        clock: &Clock,
        progress: &TaskProgress,
        workers: usize,
    ) -> Value {
        let worker_count = stage_workers(stage, workers);
        let mut s = json!({
            "stageNumber": number,
            "definition": self.definition(number, stage, last, workers),
        });
        // An ingest's last stage writes once the shuffle below it is done; every other
        // stage (and every stage of a SELECT, whose operators stream) runs from the first
        // read to the end.
        let writes = last && self.ingest.is_some();
        let (reached, done, started, ended) = if writes {
            (
                clock.phase >= TaskPhase::Writing,
                clock.succeeded,
                clock.write_start,
                clock.finished,
            )
        } else if self.ingest.is_some() {
            (
                clock.phase >= TaskPhase::Reading || clock.failed,
                clock.phase >= TaskPhase::Writing || clock.succeeded,
                clock.read_start,
                if clock.write_start > 0 {
                    clock.write_start
                } else {
                    clock.finished
                },
            )
        } else {
            (
                clock.phase >= TaskPhase::Reading || clock.failed,
                clock.succeeded,
                clock.read_start,
                clock.finished,
            )
        };
        if reached {
            let name = if done && !clock.failed {
                "FINISHED"
            } else if clock.failed {
                "FAILED"
            } else if clock.phase == TaskPhase::MergingStatistics
                && stage.shuffle == Some(StageShuffle::Cluster)
            {
                "MERGING_STATISTICS"
            } else {
                "READING_INPUT"
            };
            s["phase"] = json!(name);
            s["workerCount"] = json!(worker_count);
        }
        let partitions = match &stage.shuffle {
            // The segments the shuffle cut; while it reads, the time chunks seen so far.
            Some(StageShuffle::Cluster) => match progress.segments.load(Ordering::Relaxed) {
                0 => progress.chunks.load(Ordering::Relaxed).max(1),
                n => n,
            },
            Some(StageShuffle::Hash { partitions, .. }) => *partitions as u64,
            Some(StageShuffle::Sort { .. } | StageShuffle::Mix) => 1,
            None if self.ingest.is_some() => progress.segments.load(Ordering::Relaxed),
            None => 1,
        };
        if partitions > 0 {
            s["partitionCount"] = json!(partitions);
        }
        if matches!(
            stage.shuffle,
            Some(StageShuffle::Cluster | StageShuffle::Sort { .. })
        ) {
            s["sort"] = json!(true);
        }
        if started > 0 {
            s["startTime"] = json!(format_millis(started));
            let until = if ended > 0 { ended } else { clock.now };
            let d = until - started;
            if d > 0 {
                s["duration"] = json!(d);
            }
        }
        s
    }

    fn definition(&self, number: usize, stage: &PlannedStage, last: bool, workers: usize) -> Value {
        let input = stage.input_json(&self.inputs);
        let mut processor = match (stage.processor, &self.ingest) {
            (Processor::SegmentGenerator, Some(ingest)) => {
                self.generator_processor(ingest.rows_per_segment, workers)
            }
            (p, _) => json!({"type": p.name()}),
        };
        processor["operators"] = json!(stage.operators);
        let signature: Vec<Value> = if stage.processor == Processor::SegmentGenerator {
            Vec::new()
        } else {
            stage
                .signature
                .iter()
                .map(|(name, data_type)| {
                    let native = storage_type_for(name, data_type)
                        .map(|t| t.native_name())
                        .unwrap_or("COMPLEX");
                    json!({"name": name, "type": native})
                })
                .collect()
        };
        let mut d = json!({
            "id": format!("{}_{number}", self.query_uuid()),
            "input": input,
            "processor": processor,
            "signature": signature,
            "maxWorkerCount": workers,
        });
        let shuffle = match (&stage.shuffle, last) {
            (Some(shuffle), _) => Some(self.shuffle_json(shuffle)),
            // A SELECT's results come together in the controller.
            (None, true) if self.ingest.is_none() => Some(json!({"type": "mix"})),
            (None, _) => None,
        };
        if let Some(shuffle) = shuffle {
            d["shuffleSpec"] = shuffle;
        }
        d
    }

    fn shuffle_json(&self, shuffle: &StageShuffle) -> Value {
        let column = |name: &str, descending: bool| json!({"columnName": name, "order": if descending { "DESCENDING" } else { "ASCENDING" }});
        match shuffle {
            StageShuffle::Cluster => {
                let (cluster_by, target) = self
                    .ingest
                    .as_ref()
                    .map(|i| (i.cluster_by.as_slice(), i.rows_per_segment))
                    .unwrap_or((&[], 0));
                let mut columns = vec![column("__bucket", false)];
                columns.extend(cluster_by.iter().map(|c| column(c, false)));
                json!({
                    "type": "targetSize",
                    "clusterBy": {"columns": columns, "bucketByCount": 1},
                    "targetSize": target,
                })
            }
            StageShuffle::Hash {
                columns,
                partitions,
            } => json!({
                "type": "hash",
                "clusterBy": {"columns": columns.iter().map(|c| column(c, false)).collect::<Vec<_>>()},
                "partitions": partitions,
            }),
            StageShuffle::Sort { columns } => json!({
                "type": "maxCount",
                "clusterBy": {"columns": columns.iter().map(|(c, d)| column(c, *d)).collect::<Vec<_>>()},
                "partitions": 1,
                "aggregate": false,
            }),
            StageShuffle::Mix => json!({"type": "mix"}),
        }
    }

    /// Druid's `segmentGenerator` processor for this statement.
    fn generator_processor(&self, rows_per_segment: usize, workers: usize) -> Value {
        json!({
            "type": "segmentGenerator",
            "dataSchema": {
                "dataSource": self.data_source,
                "timestampSpec": {"column": TIME_COLUMN, "format": "millis", "missingValue": null},
                "dimensionsSpec": {
                    "dimensions": self.columns.iter().filter(|c| c.0 != TIME_COLUMN).map(|c| {
                        let t = c.1.to_ascii_lowercase();
                        if t == "string" {
                            json!({"type": "string", "name": c.0, "multiValueHandling": "SORTED_ARRAY", "createBitmapIndex": true})
                        } else {
                            json!({"type": t, "name": c.0})
                        }
                    }).collect::<Vec<_>>(),
                    "dimensionExclusions": [TIME_COLUMN],
                    "includeAllDimensions": false,
                },
                "metricsSpec": [],
                "granularitySpec": {
                    "type": "arbitrary",
                    "queryGranularity": {"type": "none"},
                    "rollup": false,
                    "intervals": [Interval::eternity().to_string()],
                },
                "transformSpec": {"filter": null, "transforms": []},
            },
            "columnMappings": self.columns.iter().map(|c| json!({"queryColumn": c.0, "outputColumn": c.0})).collect::<Vec<_>>(),
            "tuningConfig": {"maxNumWorkers": workers, "maxRowsInMemory": 100000, "rowsPerSegment": rows_per_segment},
        })
    }

    pub(super) fn counters(&self, progress: &TaskProgress) -> Value {
        let mut counters = Map::new();
        let Some(layout) = progress.layout() else {
            return Value::Object(counters);
        };
        let workers = progress.workers.load(Ordering::Relaxed).max(1) as usize;
        let tables = self.table_input_totals(progress);
        let last = layout.stages.len().saturating_sub(1);
        for (number, stage) in layout.stages.iter().enumerate() {
            let stage_workers = stage_workers(stage, workers);
            // What the stage produced, read once for all its workers: its own counters, a
            // SELECT's result rows (its last stage), or its top operator's output rows.
            let output = match &stage.counters {
                Some(counters) => StageOutput::Own(counters.snapshot()),
                None if number == last && self.ingest.is_none() => {
                    StageOutput::Results(progress.rows_out.load(Ordering::Relaxed))
                }
                None => StageOutput::Rows(stage.output_rows()),
            };
            let mut entries = Map::new();
            for w in 0..stage_workers {
                let worker = self.worker_counters(stage, &tables, stage_workers, w, &output);
                if !worker.is_empty() || w == 0 {
                    entries.insert(w.to_string(), Value::Object(worker));
                }
            }
            counters.insert(number.to_string(), Value::Object(entries));
        }
        Value::Object(counters)
    }

    /// Worker `w`'s counters on one stage: its table inputs (EXTERN partitions `p` with
    /// `p % workers == w`; datasource inputs on worker 0, since `totalFiles` is the
    /// datasource's visible segments, not a per-worker share), then what the stage's own
    /// counters hold (or its output rows from DataFusion's metrics), then its parse
    /// warnings.
    fn worker_counters(
        &self,
        stage: &PlannedStage,
        tables: &BTreeMap<usize, [u64; 4]>,
        workers: usize,
        w: usize,
        output: &StageOutput,
    ) -> Map<String, Value> {
        let sum = |f: fn(&PartitionCounters) -> &AtomicU64| -> u64 {
            stage
                .externs
                .iter()
                .map(|s| s.worker_total(workers, w, f))
                .sum()
        };
        // The stage's EXTERN scans count under its first external input.
        let extern_input = stage.inputs.iter().position(|i| match i {
            StageInput::Table(t) => self.inputs.get(*t).is_some_and(|v| v["type"] == "external"),
            StageInput::Stage(_) => false,
        });
        let mut inputs: BTreeMap<usize, [u64; 4]> = BTreeMap::new();
        let external = [
            sum(|c| &c.rows),
            sum(|c| &c.bytes),
            sum(|c| &c.files),
            sum(|c| &c.total_files),
        ];
        if external.iter().any(|v| *v > 0) {
            inputs.insert(extern_input.unwrap_or(0), external);
        }
        if w == 0 {
            for (local, input) in stage.inputs.iter().enumerate() {
                if let StageInput::Table(t) = input
                    && let Some(totals) = tables.get(t)
                {
                    let entry = inputs.entry(local).or_default();
                    for (a, b) in entry.iter_mut().zip(totals) {
                        *a += b;
                    }
                }
            }
        }
        let mut worker = Map::new();
        for (index, [rows, bytes, files, total_files]) in inputs {
            worker.insert(
                format!("input{index}"),
                channel_json(&[
                    ("rows", rows),
                    ("bytes", bytes),
                    ("files", files),
                    ("totalFiles", total_files),
                ]),
            );
        }
        match output {
            StageOutput::Own(own) => {
                if let Some(Value::Object(own)) = own.get(w.to_string()) {
                    worker.extend(own.clone());
                }
            }
            StageOutput::Results(rows) => {
                if w == 0 {
                    worker.insert("output".into(), channel_json(&[("rows", *rows)]));
                }
            }
            StageOutput::Rows(partitions) => {
                let rows: u64 = partitions
                    .iter()
                    .filter(|(p, _)| p % workers == w)
                    .map(|(_, rows)| rows)
                    .sum();
                if rows > 0 {
                    worker.insert("output".into(), channel_json(&[("rows", rows)]));
                }
            }
        }
        let warnings = sum(|c| &c.warnings);
        if warnings > 0 {
            worker.insert(
                "warnings".into(),
                json!({"type": "warnings", "CannotParseExternalData": warnings}),
            );
        }
        worker
    }

    /// `[rows, bytes, files, totalFiles]` of the datasource scans by table input: the
    /// k-th scan of a datasource counts under the k-th table input naming it.
    fn table_input_totals(&self, progress: &TaskProgress) -> BTreeMap<usize, [u64; 4]> {
        let mut out: BTreeMap<usize, [u64; 4]> = BTreeMap::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for scan in progress.tables() {
            let name = scan.data_source();
            let k = seen.entry(name.to_string()).or_insert(0);
            let named: Vec<usize> = self
                .inputs
                .iter()
                .enumerate()
                .filter(|(_, i)| i["type"] == "table" && i["dataSource"] == name)
                .map(|(n, _)| n)
                .collect();
            let index = named.get(*k).or(named.last()).copied().unwrap_or(0);
            *k += 1;
            let entry = out.entry(index).or_default();
            entry[0] += scan.rows();
            entry[1] += scan.bytes();
            entry[2] += scan.files();
            entry[3] += scan.total_files();
        }
        out
    }
}

/// What a stage produced, as its workers' counters show it.
enum StageOutput {
    /// Its own counters' snapshot, by worker.
    Own(Value),
    /// A SELECT's result rows (on worker 0).
    Results(u64),
    /// Its top operator's output rows, by partition.
    Rows(PartitionRows),
}

/// Workers on a stage: those its own counters keep, or as many of the statement's as it
/// has partitions to run.
fn stage_workers(stage: &PlannedStage, workers: usize) -> usize {
    match &stage.counters {
        Some(counters) => counters.worker_count(),
        None => workers.min(stage.tasks).max(1),
    }
}
