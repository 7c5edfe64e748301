//! What a datasource scan read, for Druid's table-input channel counters (`rows`,
//! `bytes`, `files`, `totalFiles`).
//!
//! [`DatasourceTable::scan`](crate::DatasourceTable) records one [`SegmentScan`] per
//! scan into the [`SegmentScans`] found in the session config (if any), so a task sees
//! its scans even when DataFusion answers the query without running them (`COUNT(*)`
//! from statistics). Rows and bytes come live from the Parquet scans' metrics.

use std::sync::{Arc, Mutex};

use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;

/// One planned scan of a datasource.
#[derive(Debug)]
pub struct SegmentScan {
    data_source: String,
    total_files: u64,
    planned_files: u64,
    metrics: Vec<ExecutionPlanMetricsSet>,
}

impl SegmentScan {
    pub(crate) fn new(
        data_source: String,
        total_files: usize,
        planned_files: usize,
        metrics: Vec<ExecutionPlanMetricsSet>,
    ) -> Self {
        Self {
            data_source,
            total_files: total_files as u64,
            planned_files: planned_files as u64,
            metrics,
        }
    }

    /// The datasource.
    pub fn data_source(&self) -> &str {
        &self.data_source
    }

    /// Segments of the datasource visible when the query was planned (`totalFiles`).
    pub fn total_files(&self) -> u64 {
        self.total_files
    }

    /// Segment files left to read after pruning by `__time` and range shard specs.
    pub fn planned_files(&self) -> u64 {
        self.planned_files
    }

    /// Segment files opened so far (`files`): at most [`Self::planned_files`]; fewer
    /// when a LIMIT stopped early or statistics answered the query.
    pub fn files(&self) -> u64 {
        self.sum("files_opened").min(self.planned_files)
    }

    /// Rows read from the segment files.
    pub fn rows(&self) -> u64 {
        self.sum("output_rows")
    }

    /// Bytes read from the segment files.
    pub fn bytes(&self) -> u64 {
        self.sum("bytes_scanned")
    }

    fn sum(&self, name: &str) -> u64 {
        self.metrics
            .iter()
            .flat_map(|m| m.clone_inner().iter().cloned().collect::<Vec<_>>())
            .filter(|m| m.value().name() == name)
            .map(|m| m.value().as_usize() as u64)
            .sum()
    }
}

/// The datasource scans planned in one session: put it in the session config
/// (`SessionConfig::set_extension`) before planning to learn what a query reads.
#[derive(Debug, Default)]
pub struct SegmentScans {
    scans: Mutex<Vec<Arc<SegmentScan>>>,
}

impl SegmentScans {
    pub(crate) fn push(&self, scan: Arc<SegmentScan>) {
        if let Ok(mut s) = self.scans.lock() {
            s.push(scan);
        }
    }

    /// The scans planned so far, in planning order.
    pub fn scans(&self) -> Vec<Arc<SegmentScan>> {
        self.scans.lock().map(|s| s.clone()).unwrap_or_default()
    }
}
