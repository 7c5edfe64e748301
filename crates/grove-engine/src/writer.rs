//! Segment generation: cuts a stream of rows, sorted by [time chunk, CLUSTERED BY...,
//! __time], into segments and writes each as one Parquet file in deep storage.
//!
//! ```text
//! sorted batches ──▶ runs of one time chunk ──▶ pieces of ≤ rowsPerSegment rows
//!                                               (range mode: cut only where the
//!                                                CLUSTERED BY key changes)
//!                                           ──▶ Parquet file per segment
//! ```
//!
//! Faults raised here: InsertTimeNull, InsertTimeOutOfBounds, TooManyBuckets,
//! TooManyPartitions. On any error the caller deletes [`SegmentWriter::written_paths`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{SchemaRef, TimestampMillisecondType};
use arrow::row::{OwnedRow, RowConverter, Rows, SortField};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::memory_pool::MemoryLimit;
use grove_common::types::{StorageType, TIME_COLUMN};
use grove_common::{Granularity, Interval, MsqFault};
use grove_store::{DeepStorage, NewSegment, RangeBounds, SegmentColumn};
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::counters::{SegmentProgress, StageCounters};
use crate::parquet_writer::{ParallelParquetWriter, ThreadShare};

/// What the writer needs to know about the ingest.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct WriterConfig {
    pub(crate) data_source: String,
    pub(crate) task_id: String,
    pub(crate) granularity: Granularity,
    pub(crate) rows_per_segment: usize,
    /// REPLACE's OVERWRITE intervals; rows outside them are InsertTimeOutOfBounds.
    pub(crate) replace_intervals: Option<Vec<Interval>>,
    /// Range shard-spec dimensions (column names), empty for numbered shard specs.
    pub(crate) range_dimensions: Vec<String>,
    pub(crate) columns: Vec<(String, StorageType)>,
    /// Most segments (Druid's TooManyPartitions limit).
    pub(crate) max_partitions: usize,
    /// Most time chunks (Druid's TooManyBuckets limit).
    pub(crate) max_buckets: usize,
}

struct OpenSegment {
    interval: Interval,
    path: ObjectPath,
    writer: ParallelParquetWriter,
    rows: usize,
    /// Rows in row groups already flushed.
    persisted: usize,
    first_key: Option<Vec<Option<String>>>,
}

struct Finished {
    interval: Interval,
    path: ObjectPath,
    rows: usize,
    first_key: Option<Vec<Option<String>>>,
}

/// Bytes one segment's open row group may hold when `writers` segments are written at
/// once under the memory pool's `limit`: an eighth of each writer's share, between 8
/// and 128 MiB (128 MiB without a limit). A row group of 2^20 rows of a wide table holds
/// about 100 MB before it is written (S6), and that memory is outside the budget: rows
/// read back and sorted take the budget.
pub(crate) fn row_group_bytes(limit: MemoryLimit, writers: usize) -> usize {
    const MIB: usize = 1 << 20;
    match limit {
        MemoryLimit::Finite(limit) => (limit / 8 / writers.max(1)).clamp(8 * MIB, 128 * MIB),
        MemoryLimit::Infinite | MemoryLimit::Unknown => 128 * MIB,
    }
}

/// Writes segments from sorted batches.
pub(crate) struct SegmentWriter {
    config: WriterConfig,
    deep: DeepStorage,
    schema: SchemaRef,
    time_index: usize,
    range_indices: Vec<usize>,
    converter: Option<RowConverter>,
    last_key: Option<OwnedRow>,
    current: Option<OpenSegment>,
    finished: Vec<Finished>,
    buckets: BTreeSet<Interval>,
    paths: Vec<ObjectPath>,
    rows: u64,
    /// The segment generator's counters, and the worker to count under.
    counters: Option<(Arc<StageCounters>, usize)>,
    /// Threads to encode columns with.
    threads: ThreadShare,
    /// Bytes a segment's open row group may hold (see [`row_group_bytes`]).
    row_group_bytes: usize,
    /// The range bucket of its time chunk this writer writes (0: the chunk's first or
    /// only one).
    bucket: u32,
}

impl SegmentWriter {
    pub(crate) fn try_new(
        config: WriterConfig,
        deep: DeepStorage,
        schema: SchemaRef,
    ) -> Result<Self> {
        let time_index = schema.index_of(TIME_COLUMN)?;
        let range_indices = config
            .range_dimensions
            .iter()
            .map(|d| schema.index_of(d))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let converter = if range_indices.is_empty() {
            None
        } else {
            Some(RowConverter::new(
                range_indices
                    .iter()
                    .map(|&i| SortField::new(schema.field(i).data_type().clone()))
                    .collect(),
            )?)
        };
        Ok(Self {
            config,
            deep,
            schema,
            time_index,
            range_indices,
            converter,
            last_key: None,
            current: None,
            finished: Vec::new(),
            buckets: BTreeSet::new(),
            paths: Vec::new(),
            rows: 0,
            counters: None,
            threads: ThreadShare::new(1),
            row_group_bytes: usize::MAX,
            bucket: 0,
        })
    }

    /// Encodes columns on the threads `share` allows.
    pub(crate) fn with_threads(mut self, share: ThreadShare) -> Self {
        self.threads = share;
        self
    }

    /// Closes a segment's row group once it holds `bytes` (and at most 2^20 rows).
    pub(crate) fn with_row_group_bytes(mut self, bytes: usize) -> Self {
        self.row_group_bytes = bytes;
        self
    }

    /// Writes range bucket `bucket` of its time chunks: its files are named for the
    /// bucket, and its first segment's range starts at its first key (the bucket's
    /// boundary) instead of being open.
    pub(crate) fn with_bucket(mut self, bucket: u32) -> Self {
        self.bucket = bucket;
        self
    }

    /// Counts progress (`segmentGenerationProgress`) under worker `worker` of `stage`.
    pub(crate) fn with_counters(mut self, stage: Arc<StageCounters>, worker: usize) -> Self {
        self.counters = Some((stage, worker));
        self
    }

    fn progress(&self) -> Option<&SegmentProgress> {
        self.counters
            .as_ref()
            .map(|(stage, worker)| &stage.worker(*worker).segments)
    }

    /// Files created so far (for cleanup on failure).
    pub(crate) fn written_paths(&self) -> &[ObjectPath] {
        &self.paths
    }

    pub(crate) async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let times = time_column(batch, self.time_index)?;
        let keys = self.range_keys(batch)?;
        let mut start = 0;
        while start < n {
            let interval = self.config.granularity.bucket(times.value(start));
            let mut end = start + 1;
            while end < n && interval.contains_millis(times.value(end)) {
                end += 1;
            }
            self.check_bucket(interval)?;
            self.write_run(batch, start, end, interval, keys.as_ref())
                .await?;
            start = end;
        }
        Ok(())
    }

    fn range_keys(&self, batch: &RecordBatch) -> Result<Option<Rows>> {
        let Some(converter) = &self.converter else {
            return Ok(None);
        };
        // A column may come as keys into a dictionary of its values (stage 1 hands
        // strings over that way): the key is made of the values.
        let cols: Vec<_> = self
            .range_indices
            .iter()
            .map(|&i| {
                let column = batch.column(i);
                let plain = self.schema.field(i).data_type();
                if column.data_type() == plain {
                    Ok(Arc::clone(column))
                } else {
                    arrow::compute::cast(column, plain)
                }
            })
            .collect::<std::result::Result<_, _>>()?;
        Ok(Some(converter.convert_columns(&cols)?))
    }

    fn check_bucket(&mut self, interval: Interval) -> Result<()> {
        let new = self.buckets.insert(interval);
        check_chunk(&self.config, &interval, new.then_some(self.buckets.len()))
    }

    /// Writes rows `[start, end)` of one time chunk.
    async fn write_run(
        &mut self,
        batch: &RecordBatch,
        mut start: usize,
        end: usize,
        interval: Interval,
        keys: Option<&Rows>,
    ) -> Result<()> {
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.interval != interval)
        {
            self.finish_current().await?;
            self.last_key = None;
        }
        while start < end {
            if self.current.is_none() {
                self.open(interval, batch, start)?;
            }
            let written = self.current.as_ref().map(|c| c.rows).unwrap_or(0);
            let capacity = self.config.rows_per_segment.saturating_sub(written);
            let cut = if end - start <= capacity {
                end
            } else {
                match keys {
                    // A full segment takes no more rows: it is closed below. (An empty
                    // one always takes at least one, whatever rowsPerSegment says.)
                    None if written == 0 => start + capacity.max(1),
                    None => start + capacity,
                    Some(keys) => self.next_key_change(keys, start + capacity, end),
                }
            };
            if cut > start {
                let slice = batch.slice(start, cut - start);
                if let Some(c) = self.current.as_mut() {
                    let flushed = c.writer.write(&slice).await?;
                    c.rows += slice.num_rows();
                    c.persisted += flushed;
                    if let Some(p) = self.progress() {
                        p.rows_processed
                            .fetch_add(slice.num_rows() as u64, Ordering::Relaxed);
                        p.rows_persisted
                            .fetch_add(flushed as u64, Ordering::Relaxed);
                    }
                }
                self.rows += slice.num_rows() as u64;
                if let Some(keys) = keys {
                    self.last_key = Some(keys.row(cut - 1).owned());
                }
            }
            start = cut;
            if start < end {
                self.finish_current().await?;
            }
        }
        Ok(())
    }

    /// The first position at or after `from` (and before `end`) whose key differs from
    /// the row before it; `end` if there is none.
    fn next_key_change(&self, keys: &Rows, from: usize, end: usize) -> usize {
        if from == 0 {
            match &self.last_key {
                Some(last) if keys.row(0) != last.row() => return 0,
                None => return 0,
                _ => {}
            }
        }
        (from.max(1)..end)
            .find(|&i| keys.row(i) != keys.row(i - 1))
            .unwrap_or(end)
    }

    fn open(&mut self, interval: Interval, batch: &RecordBatch, first_row: usize) -> Result<()> {
        let n = self
            .finished
            .iter()
            .filter(|f| f.interval == interval)
            .count();
        if self.finished.len() + 1 > self.config.max_partitions {
            return Err(MsqFault::TooManyPartitions.into());
        }
        let name = match self.bucket {
            0 => n.to_string(),
            b => format!("{b}_{n}"),
        };
        let path = self.deep.segment_path(
            &self.config.data_source,
            &interval,
            &self.config.task_id,
            &name,
        );
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(1 << 20))
            .build();
        let object_writer = BufWriter::new(Arc::clone(self.deep.store()), path.clone());
        let writer = ParallelParquetWriter::try_new(
            object_writer,
            Arc::clone(&self.schema),
            props,
            self.threads.clone(),
        )?
        .with_max_row_group_bytes(self.row_group_bytes);
        let first_key = if self.range_indices.is_empty() {
            None
        } else {
            Some(
                self.range_indices
                    .iter()
                    .map(|&i| string_at(batch.column(i), first_row))
                    .collect(),
            )
        };
        self.paths.push(path.clone());
        self.current = Some(OpenSegment {
            interval,
            path,
            writer,
            rows: 0,
            persisted: 0,
            first_key,
        });
        Ok(())
    }

    async fn finish_current(&mut self) -> Result<()> {
        let Some(c) = self.current.take() else {
            return Ok(());
        };
        c.writer.close().await?;
        // Closing flushed the last row group, wrote the footer and completed the upload
        // to deep storage: the segment is persisted, merged and pushed.
        if let Some(p) = self.progress() {
            let rows = c.rows as u64;
            p.rows_persisted
                .fetch_add(rows - c.persisted as u64, Ordering::Relaxed);
            p.rows_merged.fetch_add(rows, Ordering::Relaxed);
            p.rows_pushed.fetch_add(rows, Ordering::Relaxed);
        }
        self.finished.push(Finished {
            interval: c.interval,
            path: c.path,
            rows: c.rows,
            first_key: c.first_key,
        });
        Ok(())
    }

    /// Closes the last file and describes every segment written.
    pub(crate) async fn finish(mut self) -> Result<Vec<NewSegment>> {
        self.finish_current().await?;
        let dimensions: Vec<String> = self
            .config
            .columns
            .iter()
            .filter(|(n, _)| n != TIME_COLUMN)
            .map(|(n, _)| n.clone())
            .collect();
        let mut columns: Vec<SegmentColumn> = vec![SegmentColumn {
            name: TIME_COLUMN.into(),
            native_type: "LONG".into(),
        }];
        columns.extend(
            self.config
                .columns
                .iter()
                .filter(|(n, _)| n != TIME_COLUMN)
                .map(|(n, t)| SegmentColumn {
                    name: n.clone(),
                    native_type: t.native_name().into(),
                }),
        );
        let mut out = Vec::with_capacity(self.finished.len());
        for (i, f) in self.finished.iter().enumerate() {
            let size = self.deep.store().head(&f.path).await?.size;
            let range = (!self.range_indices.is_empty()).then(|| {
                let same_chunk =
                    |j: usize| self.finished.get(j).filter(|o| o.interval == f.interval);
                RangeBounds {
                    dimensions: self.config.range_dimensions.clone(),
                    start: if i == 0 && self.bucket > 0 {
                        f.first_key.clone()
                    } else {
                        i.checked_sub(1)
                            .and_then(same_chunk)
                            .and(f.first_key.clone())
                    },
                    end: same_chunk(i + 1).and_then(|next| next.first_key.clone()),
                }
            });
            out.push(NewSegment {
                interval: f.interval,
                path: f.path.to_string(),
                load_spec: self.deep.load_spec(&f.path),
                dimensions: dimensions.clone(),
                columns: columns.clone(),
                size,
                num_rows: f.rows as u64,
                range,
            });
        }
        Ok(out)
    }

    /// Drops any open file without finishing it.
    pub(crate) async fn abort(mut self) -> Vec<ObjectPath> {
        if let Some(c) = self.current.take() {
            drop(c.writer);
        }
        std::mem::take(&mut self.paths)
    }
}

/// The `__time` column of a batch; InsertTimeNull when a row has none.
pub(crate) fn time_column(
    batch: &RecordBatch,
    index: usize,
) -> Result<&arrow::array::TimestampMillisecondArray> {
    let times = batch
        .column(index)
        .as_primitive_opt::<TimestampMillisecondType>()
        .ok_or_else(|| DataFusionError::Internal("__time must be Timestamp(ms)".into()))?;
    if times.null_count() > 0 {
        return Err(MsqFault::InsertTimeNull.into());
    }
    Ok(times)
}

/// Checks a time chunk against REPLACE's OVERWRITE intervals (InsertTimeOutOfBounds) and,
/// when it is the `buckets`-th new chunk, against Druid's TooManyBuckets limit.
pub(crate) fn check_chunk(
    config: &WriterConfig,
    interval: &Interval,
    buckets: Option<usize>,
) -> Result<()> {
    if let Some(bounds) = &config.replace_intervals
        && !bounds.iter().any(|b| b.contains(interval))
    {
        return Err(MsqFault::InsertTimeOutOfBounds {
            interval: interval.to_string(),
            interval_bounds: bounds.iter().map(|b| b.to_string()).collect(),
        }
        .into());
    }
    if buckets.is_some_and(|n| n > config.max_buckets) {
        return Err(MsqFault::TooManyBuckets.into());
    }
    Ok(())
}

/// A range-dimension value (`None` for NULL). Range dimensions are strings; every Arrow
/// string layout is read, so that a boundary is never mistaken for NULL (readers prune
/// segments by these boundaries).
fn string_at(array: &dyn Array, row: usize) -> Option<String> {
    if array.is_null(row) {
        return None;
    }
    if let Some(a) = array.as_string_opt::<i32>() {
        return Some(a.value(row).to_string());
    }
    if let Some(a) = array.as_string_opt::<i64>() {
        return Some(a.value(row).to_string());
    }
    if let Some(a) = array.as_string_view_opt() {
        return Some(a.value(row).to_string());
    }
    let cast =
        arrow::compute::cast(&array.slice(row, 1), &arrow::datatypes::DataType::Utf8).ok()?;
    cast.as_string_opt::<i32>()
        .filter(|a| !a.is_empty() && a.is_valid(0))
        .map(|a| a.value(0).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray, TimestampMillisecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use grove_common::types::DruidType;

    #[test]
    fn row_groups_take_an_eighth_of_each_writers_share_of_the_budget() {
        const MIB: usize = 1 << 20;
        let finite = MemoryLimit::Finite;
        assert_eq!(row_group_bytes(finite(512 * MIB), 2), 32 * MIB);
        assert_eq!(row_group_bytes(finite(1024 * MIB), 2), 64 * MIB);
        assert_eq!(row_group_bytes(finite(MIB), 2), 8 * MIB);
        assert_eq!(row_group_bytes(finite(64 << 30), 2), 128 * MIB);
        assert_eq!(row_group_bytes(MemoryLimit::Infinite, 0), 128 * MIB);
    }

    const HOUR: i64 = 3_600_000;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new(
                "__time",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                true,
            ),
            Field::new("page", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]))
    }

    fn batch(rows: &[(i64, Option<&str>)]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(TimestampMillisecondArray::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from((0..rows.len() as i64).collect::<Vec<_>>())),
            ],
        )
        .unwrap()
    }

    fn config(rows_per_segment: usize, range: bool) -> WriterConfig {
        WriterConfig {
            data_source: "t".into(),
            task_id: "task".into(),
            granularity: Granularity::from_name("DAY").unwrap(),
            rows_per_segment,
            replace_intervals: None,
            range_dimensions: if range { vec!["page".into()] } else { vec![] },
            columns: vec![
                ("__time".into(), StorageType::Time),
                ("page".into(), StorageType::Column(DruidType::String)),
                ("n".into(), StorageType::Column(DruidType::Long)),
            ],
            max_partitions: 25_000,
            max_buckets: 5_000,
        }
    }

    async fn write_all(config: WriterConfig, batches: &[RecordBatch]) -> Result<Vec<NewSegment>> {
        let dir = tempfile::tempdir().unwrap();
        let deep = DeepStorage::local(dir.path()).unwrap();
        let mut w = SegmentWriter::try_new(config, deep, schema())?;
        for b in batches {
            w.write(b).await?;
        }
        w.finish().await
    }

    fn key(s: &str) -> Option<Vec<Option<String>>> {
        Some(vec![Some(s.to_string())])
    }

    #[tokio::test]
    async fn range_boundaries_never_split_a_key() {
        // Sorted by page within one day; "b" appears 3 times, straddling the cut after 2
        // rows and a batch boundary: the segment grows until the key changes.
        let b1 = batch(&[(1, Some("a")), (2, Some("b")), (3, Some("b"))]);
        let b2 = batch(&[(4, Some("b")), (5, Some("c")), (6, Some("d"))]);
        let segs = write_all(config(2, true), &[b1, b2]).await.unwrap();
        let rows: Vec<u64> = segs.iter().map(|s| s.num_rows).collect();
        assert_eq!(rows, vec![4, 2], "a b b b | c d");
        let bounds: Vec<_> = segs
            .iter()
            .map(|s| {
                let r = s.range.clone().unwrap();
                (r.start, r.end)
            })
            .collect();
        assert_eq!(bounds, vec![(None, key("c")), (key("c"), None)]);
    }

    #[tokio::test]
    async fn range_boundaries_restart_in_each_time_chunk() {
        let day = 24 * HOUR;
        let b = batch(&[
            (1, Some("a")),
            (2, Some("b")),
            (day + 1, Some("a")),
            (day + 2, Some("c")),
        ]);
        let segs = write_all(config(1, true), &[b]).await.unwrap();
        assert_eq!(segs.len(), 4);
        assert_eq!(segs[0].range.as_ref().unwrap().start, None);
        assert_eq!(segs[1].range.as_ref().unwrap().end, None);
        assert_eq!(segs[2].range.as_ref().unwrap().start, None);
        assert_eq!(segs[3].range.as_ref().unwrap().start, key("c"));
        assert_eq!(segs[2].interval, Interval::new(day, 2 * day));
    }

    #[tokio::test]
    async fn numbered_cuts_exactly() {
        let b = batch(&[
            (1, Some("b")),
            (2, Some("b")),
            (3, Some("b")),
            (4, Some("b")),
        ]);
        let segs = write_all(config(3, false), &[b]).await.unwrap();
        let rows: Vec<u64> = segs.iter().map(|s| s.num_rows).collect();
        assert_eq!(rows, vec![3, 1]);
        assert!(segs.iter().all(|s| s.range.is_none()));

        // A segment filled exactly by one batch takes nothing from the next.
        let first = batch(&[(1, Some("a")), (2, Some("a")), (3, Some("a"))]);
        let second = batch(&[
            (4, Some("a")),
            (5, Some("a")),
            (6, Some("a")),
            (7, Some("a")),
        ]);
        let segs = write_all(config(3, false), &[first, second]).await.unwrap();
        let rows: Vec<u64> = segs.iter().map(|s| s.num_rows).collect();
        assert_eq!(rows, vec![3, 3, 1]);
    }

    #[tokio::test]
    async fn limits_and_time_faults() {
        let code =
            |r: Result<Vec<NewSegment>>| MsqFault::find(&r.unwrap_err()).unwrap().error_code();
        let mut c = config(1, false);
        c.max_partitions = 2;
        let b = batch(&[(1, Some("a")), (2, Some("b")), (3, Some("c"))]);
        assert_eq!(
            code(write_all(c, std::slice::from_ref(&b)).await),
            "TooManyPartitions"
        );
        let mut c = config(10, false);
        c.granularity = Granularity::from_name("HOUR").unwrap();
        c.max_buckets = 1;
        let two_hours = batch(&[(1, Some("a")), (HOUR + 1, Some("b"))]);
        assert_eq!(code(write_all(c, &[two_hours]).await), "TooManyBuckets");
        let mut c = config(10, false);
        c.replace_intervals = Some(vec![Interval::new(0, 24 * HOUR)]);
        let late = batch(&[(1, Some("a")), (25 * HOUR, Some("b"))]);
        assert_eq!(code(write_all(c, &[late]).await), "InsertTimeOutOfBounds");
        let nulls = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(TimestampMillisecondArray::from(vec![Some(1), None])),
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(Int64Array::from(vec![1, 2])),
            ],
        )
        .unwrap();
        assert_eq!(
            code(write_all(config(10, false), &[nulls]).await),
            "InsertTimeNull"
        );
    }
}
