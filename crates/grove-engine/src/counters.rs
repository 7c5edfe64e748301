//! Druid's query counters (`payload.counters` of a report): per stage and per worker,
//! updated by the stages while they run and read by reports and progress bars at any
//! moment.
//!
//! A stage has `workers` workers; a stage-0 partition `p` belongs to worker
//! `p % workers`, and a stage-1 chunk job to the worker slot that runs it.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value, json};

/// A `channel` counter: rows, bytes and frames (batches or files) through one input or
/// output of a worker.
#[derive(Debug, Default)]
pub struct Channel {
    /// Rows.
    pub rows: AtomicU64,
    /// Bytes (raw input bytes, in-memory bytes of shuffled frames, or file bytes written).
    pub bytes: AtomicU64,
    /// Frames: record batches, or segment files for a segment generator's output.
    pub frames: AtomicU64,
    /// Input files fully read.
    pub files: AtomicU64,
    /// Input files assigned.
    pub total_files: AtomicU64,
}

impl Channel {
    /// Counts one frame of `rows` rows and `bytes` bytes.
    pub fn add_frame(&self, rows: u64, bytes: u64) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.frames.fetch_add(1, Ordering::Relaxed);
    }

    /// Druid's snapshot: each field an array indexed by partition (all in index 0 here),
    /// omitted when zero.
    pub fn snapshot(&self) -> Value {
        channel_json(&[
            ("rows", self.rows.load(Ordering::Relaxed)),
            ("bytes", self.bytes.load(Ordering::Relaxed)),
            ("frames", self.frames.load(Ordering::Relaxed)),
            ("files", self.files.load(Ordering::Relaxed)),
            ("totalFiles", self.total_files.load(Ordering::Relaxed)),
        ])
    }

    fn is_empty(&self) -> bool {
        self.rows.load(Ordering::Relaxed) == 0
            && self.frames.load(Ordering::Relaxed) == 0
            && self.total_files.load(Ordering::Relaxed) == 0
    }
}

/// A `channel` counter from explicit values; zero fields are omitted, as Druid does.
pub fn channel_json(fields: &[(&str, u64)]) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), json!("channel"));
    for (name, v) in fields {
        if *v > 0 {
            m.insert((*name).into(), json!([v]));
        }
    }
    Value::Object(m)
}

/// Sorting progress (`sortProgress`). Level 0 sorts the in-memory pieces of each time
/// chunk; level 1 merges the sorted runs a chunk spilled to disk (present only when
/// something spilled).
#[derive(Debug, Default)]
pub struct SortProgress {
    /// Pieces to sort at level 0 (one per chunk buffer and per spilled run).
    pub level0_total: AtomicU64,
    /// Pieces sorted at level 0.
    pub level0_done: AtomicU64,
    /// Merges of spilled runs to do (one per chunk that spilled).
    pub level1_total: AtomicU64,
    /// Merges done.
    pub level1_done: AtomicU64,
}

impl SortProgress {
    fn snapshot(&self) -> Option<Value> {
        let t0 = self.level0_total.load(Ordering::Relaxed);
        if t0 == 0 {
            return None;
        }
        let d0 = self.level0_done.load(Ordering::Relaxed).min(t0);
        let t1 = self.level1_total.load(Ordering::Relaxed);
        let d1 = self.level1_done.load(Ordering::Relaxed).min(t1);
        let (levels, totals, merged, ultimate) = if t1 > 0 {
            (2, json!({"0": t0, "1": t1}), json!({"0": d0, "1": d1}), t1)
        } else {
            (1, json!({"0": t0}), json!({"0": d0}), t0)
        };
        let digest = (d0 + d1) as f64 / (t0 + t1) as f64;
        Some(json!({
            "type": "sortProgress",
            "totalMergingLevels": levels,
            "levelToTotalBatches": totals,
            "levelToMergedBatches": merged,
            "totalMergersForUltimateLevel": ultimate,
            "progressDigest": digest,
        }))
    }
}

/// A segment generator's progress (`segmentGenerationProgress`).
#[derive(Debug, Default)]
pub struct SegmentProgress {
    /// Rows handed to the segment writer.
    pub rows_processed: AtomicU64,
    /// Rows in row groups flushed to segment files.
    pub rows_persisted: AtomicU64,
    /// Rows in finished segment files (Grove writes each segment in one pass, so a
    /// finished file is the merged segment).
    pub rows_merged: AtomicU64,
    /// Rows in segment files complete in deep storage.
    pub rows_pushed: AtomicU64,
}

impl SegmentProgress {
    fn snapshot(&self) -> Value {
        json!({
            "type": "segmentGenerationProgress",
            "rowsProcessed": self.rows_processed.load(Ordering::Relaxed),
            "rowsPersisted": self.rows_persisted.load(Ordering::Relaxed),
            "rowsMerged": self.rows_merged.load(Ordering::Relaxed),
            "rowsPushed": self.rows_pushed.load(Ordering::Relaxed),
        })
    }
}

/// The counters of one worker of one stage.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    /// `input0`: what the worker read (stage 0: the input files; stage 1: stage 0's
    /// output).
    pub input: Channel,
    /// `output`: what the worker produced (stage 0: rows routed to time chunks; stage 1:
    /// segment files).
    pub output: Channel,
    /// `sortProgress` (stage 1 of an ingest).
    pub sort: SortProgress,
    /// `segmentGenerationProgress` (stage 1 of an ingest).
    pub segments: SegmentProgress,
    /// `CannotParseExternalData` warnings.
    pub parse_warnings: AtomicU64,
}

/// Whether a worker's counters include a segment generator's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageKind {
    /// Reads and shuffles (stage 0), or runs a SELECT.
    Scan,
    /// Sorts and writes segments (stage 1 of an ingest).
    SegmentGenerator,
}

/// The counters of one stage: one entry per worker.
#[derive(Debug)]
pub struct StageCounters {
    kind: StageKind,
    workers: Vec<WorkerCounters>,
}

impl StageCounters {
    /// Counters for `workers` workers (at least one).
    pub fn new(kind: StageKind, workers: usize) -> Self {
        Self {
            kind,
            workers: (0..workers.max(1))
                .map(|_| WorkerCounters::default())
                .collect(),
        }
    }

    /// Worker `i`'s counters (`i` wraps around the worker count).
    pub fn worker(&self, i: usize) -> &WorkerCounters {
        &self.workers[i % self.workers.len()]
    }

    /// Number of workers.
    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// The workers' counters.
    pub fn workers(&self) -> &[WorkerCounters] {
        &self.workers
    }

    /// Sum of one field over the workers.
    pub fn total(&self, f: impl Fn(&WorkerCounters) -> &AtomicU64) -> u64 {
        self.workers
            .iter()
            .map(|w| f(w).load(Ordering::Relaxed))
            .sum()
    }

    /// `{ "<worker>": { "<counter>": {...} } }`; a worker with nothing to show is left
    /// out.
    pub fn snapshot(&self) -> Value {
        let mut out = Map::new();
        for (i, w) in self.workers.iter().enumerate() {
            let mut m = Map::new();
            if !w.input.is_empty() {
                m.insert("input0".into(), w.input.snapshot());
            }
            if !w.output.is_empty() {
                m.insert("output".into(), w.output.snapshot());
            }
            if let Some(sort) = w.sort.snapshot() {
                m.insert("sortProgress".into(), sort);
            }
            let warnings = w.parse_warnings.load(Ordering::Relaxed);
            if warnings > 0 {
                m.insert(
                    "warnings".into(),
                    json!({"type": "warnings", "CannotParseExternalData": warnings}),
                );
            }
            if self.kind == StageKind::SegmentGenerator {
                m.insert("segmentGenerationProgress".into(), w.segments.snapshot());
            }
            if !m.is_empty() {
                out.insert(i.to_string(), Value::Object(m));
            }
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_shapes_and_order() {
        let stage = StageCounters::new(StageKind::SegmentGenerator, 2);
        stage.worker(1).input.add_frame(10, 100);
        stage
            .worker(1)
            .sort
            .level0_total
            .store(2, Ordering::Relaxed);
        stage.worker(1).sort.level0_done.store(1, Ordering::Relaxed);
        stage.worker(3).output.add_frame(10, 4096); // wraps to worker 1
        let snap = stage.snapshot();
        let w1 = &snap["1"];
        assert_eq!(
            w1["input0"],
            json!({"type": "channel", "rows": [10], "bytes": [100], "frames": [1]})
        );
        assert_eq!(w1["output"]["bytes"], json!([4096]));
        assert_eq!(w1["sortProgress"]["progressDigest"], json!(0.5));
        assert_eq!(w1["sortProgress"]["totalMergingLevels"], json!(1));
        let mut keys: Vec<&String> = w1.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "input0",
                "output",
                "segmentGenerationProgress",
                "sortProgress"
            ]
        );
        // Worker 0 did nothing but still reports its (zero) segment progress.
        assert_eq!(
            snap["0"]["segmentGenerationProgress"]["rowsProcessed"],
            json!(0)
        );
        assert_eq!(stage.total(|w| &w.input.rows), 10);
    }

    #[test]
    fn spilled_sort_has_two_levels() {
        let s = SortProgress::default();
        s.level0_total.store(3, Ordering::Relaxed);
        s.level0_done.store(3, Ordering::Relaxed);
        s.level1_total.store(1, Ordering::Relaxed);
        let v = s.snapshot().unwrap();
        assert_eq!(v["totalMergingLevels"], json!(2));
        assert_eq!(v["levelToMergedBatches"], json!({"0": 3, "1": 0}));
        assert_eq!(v["progressDigest"], json!(0.75));
    }
}
