//! `grove sql`'s live progress: one bar per stage of a running INSERT or REPLACE, drawn
//! on standard error from the same counters the task reports carry. Nothing is drawn
//! when standard error is not a terminal.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use grove_engine::{TaskPhase, TaskProgress};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

/// How often the bars are redrawn.
const TICK: Duration = Duration::from_millis(100);

/// Draws the stages of one statement until `stop` is canceled; returns at once (drawing
/// nothing) when standard error is not a terminal.
pub async fn draw(progress: Arc<TaskProgress>, stop: CancellationToken) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    draw_to(progress, stop, ProgressDrawTarget::stderr()).await;
}

/// Draws to `target` (a hidden target in tests).
pub async fn draw_to(
    progress: Arc<TaskProgress>,
    stop: CancellationToken,
    target: ProgressDrawTarget,
) {
    let multi = MultiProgress::with_draw_target(target);
    let style = ProgressStyle::with_template(
        "{prefix:<14} [{bar:30}] {percent:>3}% {msg} {elapsed_precise} (ETA {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let read = multi.add(ProgressBar::new(0).with_style(style.clone()));
    read.set_prefix("stage 0 read");
    let write = multi.add(ProgressBar::new(0).with_style(style));
    write.set_prefix("stage 1 write");
    let mut ticker = tokio::time::interval(TICK);
    loop {
        let done = tokio::select! {
            _ = stop.cancelled() => true,
            _ = ticker.tick() => false,
        };
        let view = StageView::of(&progress);
        read.set_length(view.read_total.max(view.read_done));
        read.set_position(view.read_done);
        read.set_message(view.read_message());
        write.set_length(view.write_total);
        write.set_position(view.write_done);
        write.set_message(view.write_message());
        if done {
            break;
        }
    }
    read.finish();
    write.finish();
}

/// What the bars show, read from a statement's counters.
#[derive(Debug, Default, PartialEq)]
struct StageView {
    phase: Option<TaskPhase>,
    /// Input bytes read and to read (when the sizes are known).
    read_done: u64,
    read_total: u64,
    rows_read: u64,
    /// Rows stage 1 wrote, of the rows stage 0 routed.
    write_done: u64,
    write_total: u64,
    segments: u64,
}

impl StageView {
    fn of(progress: &TaskProgress) -> Self {
        let scans = progress.scans();
        let sum = |f: fn(&grove_input::PartitionCounters) -> &AtomicU64| -> u64 {
            scans.iter().map(|s| s.total(f)).sum()
        };
        let stages = progress.ingest_counters();
        let (write_done, write_total, segments) = match stages.get(1) {
            Some(s) => (
                s.total(|w| &w.segments.rows_processed),
                stages[0].total(|w| &w.output.rows),
                s.total(|w| &w.output.frames),
            ),
            None => (0, 0, 0),
        };
        Self {
            phase: Some(progress.phase()),
            read_done: sum(|c| &c.bytes),
            read_total: sum(|c| &c.total_bytes),
            rows_read: sum(|c| &c.rows),
            write_done,
            // Stage 0 is still routing until writing starts: the total is not known yet.
            write_total: if progress.phase() >= TaskPhase::Writing {
                write_total
            } else {
                0
            },
            segments,
        }
    }

    fn read_message(&self) -> String {
        let phase = match self.phase {
            Some(TaskPhase::Waiting) | None => "waiting",
            Some(TaskPhase::Reading) => "reading",
            Some(TaskPhase::MergingStatistics) => "merging key statistics",
            Some(_) => "done",
        };
        format!(
            "{} rows, {} of {} {phase}",
            self.rows_read,
            human_bytes(self.read_done),
            human_bytes(self.read_total)
        )
    }

    fn write_message(&self) -> String {
        let phase = match self.phase {
            Some(TaskPhase::Writing) => "sorting and writing",
            Some(TaskPhase::Publishing) => "publishing",
            Some(TaskPhase::Done) => "done",
            _ => "waiting for stage 0",
        };
        format!(
            "{} of {} rows, {} segments, {phase}",
            self.write_done, self.write_total, self.segments
        )
    }
}

/// Bytes in B, KiB, MiB or GiB.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
        assert_eq!(human_bytes(5 << 30), "5.0 GiB");
    }

    #[test]
    fn messages_follow_the_phase() {
        let view = StageView {
            phase: Some(TaskPhase::Writing),
            read_done: 2048,
            read_total: 2048,
            rows_read: 10,
            write_done: 4,
            write_total: 10,
            segments: 1,
        };
        assert_eq!(view.read_message(), "10 rows, 2.0 KiB of 2.0 KiB done");
        assert_eq!(
            view.write_message(),
            "4 of 10 rows, 1 segments, sorting and writing"
        );
    }
}
