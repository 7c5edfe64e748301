//! What a running statement shares with whoever watches it: a cancellation token and
//! live progress (phase, counters), from which Druid's task report is drawn.

use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use grove_input::ScanCounters;
use grove_store::SegmentScan;

use crate::counters::StageCounters;
use crate::stage_layout::StageLayout;
use tokio_util::sync::CancellationToken;

/// The phase a statement is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum TaskPhase {
    /// Waiting for a slot or a lock.
    Waiting = 0,
    /// Reading input and sorting (stage 0).
    Reading = 1,
    /// Merging key statistics and cutting large time chunks into range buckets (Druid's
    /// `MERGING_STATISTICS`).
    MergingStatistics = 2,
    /// Writing segments or results (stage 1).
    Writing = 3,
    /// Publishing segments.
    Publishing = 4,
    /// Done (successfully or not).
    Done = 5,
}

impl TaskPhase {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Waiting,
            1 => Self::Reading,
            2 => Self::MergingStatistics,
            3 => Self::Writing,
            4 => Self::Publishing,
            _ => Self::Done,
        }
    }
}

/// Live progress of one statement. All fields are updated while it runs.
#[derive(Debug, Default)]
pub struct TaskProgress {
    phase: AtomicU8,
    /// When reading started (ms), 0 before.
    pub reading_started_ms: AtomicI64,
    /// When writing started (ms), 0 before.
    pub writing_started_ms: AtomicI64,
    /// When the statement finished (ms), 0 before.
    pub finished_ms: AtomicI64,
    /// Rows that reached the segment writer (or the result collector).
    pub rows_out: AtomicU64,
    /// Bytes of segment files written.
    pub bytes_out: AtomicU64,
    /// Segments (or result batches) completed.
    pub segments: AtomicU64,
    /// Rows in published segments.
    pub rows_pushed: AtomicU64,
    /// Workers the stages use (`maxNumTasks - 1`, bounded by the server); 0 before.
    pub workers: AtomicU64,
    /// Time chunks stage 0 produced (stage 1's partitions are cut from them).
    pub chunks: AtomicU64,
    /// Rows stage 0 had to spill to disk to stay in the memory budget.
    pub rows_spilled: AtomicU64,
    /// Counters of every EXTERN scan in the plan, once planned.
    scans: Mutex<Vec<Arc<ScanCounters>>>,
    /// Every datasource scan planned (segment files read, visible segments).
    tables: Mutex<Vec<Arc<SegmentScan>>>,
    /// The stages of the plan that runs, once planned.
    layout: Mutex<Option<Arc<StageLayout>>>,
}

impl TaskProgress {
    /// Current phase.
    pub fn phase(&self) -> TaskPhase {
        TaskPhase::from_u8(self.phase.load(Ordering::Relaxed))
    }

    /// Moves to `phase`, stamping its start time.
    pub fn set_phase(&self, phase: TaskPhase) {
        let now = chrono::Utc::now().timestamp_millis();
        match phase {
            TaskPhase::Reading => self.reading_started_ms.store(now, Ordering::Relaxed),
            TaskPhase::Writing => self.writing_started_ms.store(now, Ordering::Relaxed),
            TaskPhase::Done => self.finished_ms.store(now, Ordering::Relaxed),
            _ => {}
        }
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    /// Records the scans of the physical plan.
    pub fn set_scans(&self, scans: Vec<Arc<ScanCounters>>) {
        if let Ok(mut s) = self.scans.lock() {
            *s = scans;
        }
    }

    /// The scans' counters.
    pub fn scans(&self) -> Vec<Arc<ScanCounters>> {
        self.scans.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Records the datasource scans of the plan.
    pub fn set_tables(&self, tables: Vec<Arc<SegmentScan>>) {
        if let Ok(mut t) = self.tables.lock() {
            *t = tables;
        }
    }

    /// The datasource scans.
    pub fn tables(&self) -> Vec<Arc<SegmentScan>> {
        self.tables.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Records the stages of the plan that runs.
    pub fn set_layout(&self, layout: StageLayout) {
        if let Ok(mut l) = self.layout.lock() {
            *l = Some(Arc::new(layout));
        }
    }

    /// The stages of the plan that runs (`None` before it is planned).
    pub fn layout(&self) -> Option<Arc<StageLayout>> {
        self.layout.lock().ok().and_then(|l| l.clone())
    }

    /// An ingest's two counted steps: the cluster shuffle's routing (the rows the stage
    /// below the shuffle produced) and the segment generator's (what the last stage read,
    /// sorted and wrote). Empty before the plan exists or for a SELECT.
    pub fn ingest_counters(&self) -> Vec<Arc<StageCounters>> {
        let Some(layout) = self.layout() else {
            return Vec::new();
        };
        let routed = layout
            .cluster_stage()
            .and_then(|s| layout.stages[s].counters.clone());
        let written = layout.stages.last().and_then(|s| s.counters.clone());
        routed.into_iter().chain(written).collect()
    }
}

/// Handle given to a running statement: cancel it, watch its progress.
#[derive(Debug, Clone, Default)]
pub struct TaskControl {
    /// Cancelled by shutdown, or when the statement's `timeout` passes.
    pub cancel: CancellationToken,
    /// Live progress.
    pub progress: Arc<TaskProgress>,
    /// The cancel came from the `timeout` ([`TaskControl::time_out`]).
    timed_out: Arc<std::sync::atomic::AtomicBool>,
}

impl TaskControl {
    /// A fresh handle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels the statement because its `timeout` passed: it ends with `Canceled`,
    /// reason `QUERY_TIMEOUT`.
    pub fn time_out(&self) {
        self.timed_out
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.cancel.cancel();
    }

    /// Whether [`TaskControl::time_out`] canceled the statement.
    pub fn timed_out(&self) -> bool {
        self.timed_out.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The `Canceled` fault of a canceled statement: `QUERY_TIMEOUT` after its timeout,
    /// `TASK_SHUTDOWN` otherwise.
    pub fn canceled(&self) -> grove_common::MsqFault {
        grove_common::MsqFault::Canceled {
            reason: if self.timed_out() {
                grove_common::fault::CancelReason::QueryTimeout
            } else {
                grove_common::fault::CancelReason::TaskShutdown
            },
        }
    }

    /// When a statement submitted now times out: its context's `timeout` from now
    /// (`None` without one). The error is the context's message for a bad value.
    pub fn deadline(
        context: &grove_common::QueryContext,
    ) -> std::result::Result<Option<tokio::time::Instant>, String> {
        Ok(context.timeout()?.map(|t| tokio::time::Instant::now() + t))
    }

    /// Runs `work`, timing the statement out (see [`TaskControl::time_out`]) once
    /// `deadline` passes, if there is one; `work` still runs to its end (the cancel makes
    /// it stop and clean up), so nothing is left half done.
    pub async fn run_until<T>(
        &self,
        deadline: Option<tokio::time::Instant>,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        let Some(deadline) = deadline else {
            return work.await;
        };
        tokio::pin!(work);
        tokio::select! {
            out = &mut work => return out,
            _ = tokio::time::sleep_until(deadline) => self.time_out(),
        }
        work.await
    }

    /// The next batch of `stream`, or the `Canceled` fault if the task is canceled first.
    /// Moves the progress from reading to writing when the first batch arrives.
    pub async fn next_batch(
        &self,
        stream: &mut datafusion::physical_plan::SendableRecordBatchStream,
    ) -> datafusion::common::Result<Option<arrow::array::RecordBatch>> {
        use futures::StreamExt;
        let next = tokio::select! {
            _ = self.cancel.cancelled() => return Err(self.canceled().into()),
            next = stream.next() => next,
        };
        let batch = next.transpose()?;
        if batch.is_some() && self.progress.phase() == TaskPhase::Reading {
            self.progress.set_phase(TaskPhase::Writing);
        }
        Ok(batch)
    }
}
