//! The range split of a large time chunk: key statistics collected while rows are routed,
//! boundaries cut from them, and the chunk's rows divided at those boundaries into
//! buckets that are sorted and written on their own, by any worker.
//!
//! ```text
//!  routing: every row whose sort key hashes to 0 mod 64 ──▶ the chunk's key sample
//!  chunk of N > rowsPerSegment rows: k = ceil(N / rowsPerSegment) buckets
//!     boundaries = the sample's k-quantiles (distinct, on the range dimensions)
//!     bucket of a row = boundaries at or below its key  ──▶  k chunks of the same interval
//! ```
//!
//! - The sample depends only on which rows the chunk holds (a hash of the sort key, not
//!   arrival order or spilling), so the same input cuts the same boundaries whatever the
//!   memory budget or the number of workers.
//! - Boundaries are values of the range dimensions (the leading CLUSTERED BY string
//!   columns) under a range shard spec, so one key is never split between buckets, and a
//!   segment's range starts at its bucket's boundary; without range dimensions they are
//!   values of the whole sort key.
//! - Buckets of one chunk are written as separate segments of that chunk: a segment never
//!   spans two time chunks.

use std::sync::Arc;

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::common::{DataFusionError, Result};
use datafusion::physical_plan::spill::SpillManager;
use futures::StreamExt;

use crate::compact::{ChunkDictionary, SharedDictionaries, expand};
use crate::parquet_writer::on_threads;
use crate::route::{ChunkBuffer, Routed, spill_batches};
use crate::sort::{ChunkOrder, SORT_OPTIONS};
use crate::writer::WriterConfig;

/// One row in this many (by hash of its sort key) goes into its chunk's key sample.
pub(crate) const SAMPLE_EVERY: u64 = 64;

/// Which columns key the statistics and the split.
#[derive(Debug, Clone)]
pub(crate) struct SplitKeys {
    /// The sort key ([CLUSTERED BY..., `__time`]): which rows are sampled.
    pub(crate) hash: Vec<usize>,
    /// What boundaries are made of: the range dimensions, or the whole sort key.
    pub(crate) bounds: Vec<usize>,
    /// The plain schema of the boundary columns.
    pub(crate) bounds_schema: SchemaRef,
}

impl SplitKeys {
    pub(crate) fn new(plain: &SchemaRef, hash: Vec<usize>, bounds: Vec<usize>) -> Result<Self> {
        let bounds_schema = Arc::new(plain.project(&bounds)?);
        Ok(Self {
            hash,
            bounds,
            bounds_schema,
        })
    }

    /// The keys of an ingest over rows of `plain`: sampled by the sort key `order`,
    /// bounded by the range dimensions (or, without any, by the sort key).
    pub(crate) fn of(plain: &SchemaRef, writer: &WriterConfig, order: &ChunkOrder) -> Result<Self> {
        let bounds = if writer.range_dimensions.is_empty() {
            order.columns.clone()
        } else {
            writer
                .range_dimensions
                .iter()
                .map(|d| plain.index_of(d))
                .collect::<std::result::Result<Vec<_>, _>>()?
        };
        Self::new(plain, order.columns.clone(), bounds)
    }

    /// Which rows of `batch` (plain, as the SELECT made it) the sample takes.
    pub(crate) fn sampled(&self, batch: &RecordBatch) -> Result<Vec<bool>> {
        let mut hashes = vec![0u64; batch.num_rows()];
        let columns: Vec<_> = self.hash.iter().map(|&i| batch.column(i)).collect();
        create_hashes(columns, &RandomState::with_seed(0), &mut hashes)?;
        Ok(hashes.iter().map(|h| h % SAMPLE_EVERY == 0).collect())
    }

    /// The boundary columns of `rows` of `batch`.
    pub(crate) fn sample_of(&self, batch: &RecordBatch, rows: &[u32]) -> Result<RecordBatch> {
        let keys = batch.project(&self.bounds)?;
        Ok(take_record_batch(&keys, &UInt32Array::from(rows.to_vec()))?)
    }

    pub(crate) fn converter(&self) -> Result<RowConverter> {
        Ok(RowConverter::new(
            self.bounds_schema
                .fields()
                .iter()
                .map(|f| SortField::new_with_options(f.data_type().clone(), SORT_OPTIONS))
                .collect(),
        )?)
    }
}

/// The boundaries that cut `sample` into `buckets` parts of about equal rows: distinct
/// keys in ascending order (bucket `b` holds the keys from boundary `b - 1`, inclusive, to
/// boundary `b`, exclusive).
pub(crate) fn boundaries(
    converter: &RowConverter,
    sample: &[RecordBatch],
    buckets: usize,
) -> Result<Vec<OwnedRow>> {
    let batches: Vec<RecordBatch> = sample
        .iter()
        .filter(|b| b.num_rows() > 0)
        .cloned()
        .collect();
    if batches.is_empty() || buckets < 2 {
        return Ok(Vec::new());
    }
    // The sample's own schema: merged statistics carry the columns as nullable.
    let all = arrow::compute::concat_batches(&batches[0].schema(), &batches)?;
    let rows = converter.convert_columns(all.columns())?;
    let mut sorted: Vec<_> = rows.iter().collect();
    sorted.sort_unstable();
    let n = sorted.len();
    let mut out: Vec<OwnedRow> = Vec::with_capacity(buckets - 1);
    for b in 1..buckets {
        let candidate = sorted[b * n / buckets];
        // Never the smallest key (an empty first bucket), never twice the same.
        if candidate == sorted[0] || out.last().is_some_and(|last| last.row() == candidate) {
            continue;
        }
        out.push(candidate.owned());
    }
    Ok(out)
}

/// Finds the bucket of rows.
struct Cutter {
    keys: SplitKeys,
    converter: RowConverter,
    bounds: Vec<OwnedRow>,
}

impl Cutter {
    /// The bucket of every row of `batch` (routed: compact or plain).
    fn buckets(&self, batch: &RecordBatch) -> Result<Vec<u32>> {
        let keys = expand(&batch.project(&self.keys.bounds)?, &self.keys.bounds_schema)?;
        let rows = self.converter.convert_columns(keys.columns())?;
        Ok((0..rows.num_rows())
            .map(|r| {
                let row = rows.row(r);
                self.bounds.partition_point(|b| b.row() <= row) as u32
            })
            .collect())
    }
}

/// Splits `chunk` into buckets of about `rows_per_segment` rows at boundaries cut from
/// its key sample, in key order (bucket numbers 0, 1, ...); a chunk that fits one
/// segment, or whose sample has too few distinct keys, stays whole. Spilled runs are read
/// back one at a time, split, and spilled again per bucket.
pub(crate) async fn split_chunk(
    mut chunk: ChunkBuffer,
    keys: &SplitKeys,
    rows_per_segment: usize,
    plain: &SchemaRef,
    spill: &SpillManager,
) -> Result<Vec<ChunkBuffer>> {
    let buckets = chunk.rows.div_ceil(rows_per_segment.max(1));
    let sample = std::mem::take(&mut chunk.sample);
    let converter = keys.converter()?;
    let bounds = boundaries(&converter, &sample, buckets)?;
    if bounds.is_empty() {
        return Ok(vec![chunk]);
    }
    let n = bounds.len() + 1;
    let mut parts: Vec<ChunkBuffer> = (0..n)
        .map(|b| ChunkBuffer {
            bucket: b as u32,
            ..Default::default()
        })
        .collect();
    let cutter = Arc::new(Cutter {
        keys: keys.clone(),
        converter,
        bounds,
    });
    // Rows held in memory: each bucket keeps the batch and the numbers of its rows. The
    // buckets of the batches are found on every core, off the async threads.
    // A chunk held wholly in memory gets its string dictionaries made once, for all its
    // buckets (a bucket sorted in memory gathers keys into them).
    let pieces = Arc::new(std::mem::take(&mut chunk.batches));
    let share = chunk.runs.is_empty();
    let (of_rows, shared) = {
        let (cutter, pieces, plain) = (Arc::clone(&cutter), Arc::clone(&pieces), Arc::clone(plain));
        tokio::task::spawn_blocking(move || -> Result<_> {
            let of_rows = on_threads(
                (0..pieces.len()).collect(),
                crate::context::available_cores(),
                |i| cutter.buckets(&pieces[i].batch),
            )?;
            let shared = if share {
                let batches: Vec<RecordBatch> = pieces.iter().map(|p| p.batch.clone()).collect();
                let (schema, columns) = ChunkDictionary::for_columns(&batches, &plain)?;
                Some(Arc::new(SharedDictionaries { schema, columns }))
            } else {
                None
            };
            Ok((of_rows, shared))
        })
        .await
        .map_err(|e| DataFusionError::Execution(format!("splitting a time chunk failed: {e}")))??
    };
    for part in &mut parts {
        part.dictionaries = shared.clone();
    }
    for (source, (piece, of_row)) in pieces.iter().zip(of_rows).enumerate() {
        let of_row = of_row?;
        let mut picks: Vec<Vec<u32>> = vec![Vec::new(); n];
        match &piece.rows {
            None => (0..piece.batch.num_rows() as u32)
                .for_each(|r| picks[of_row[r as usize] as usize].push(r)),
            Some(rows) => rows
                .values()
                .iter()
                .for_each(|&r| picks[of_row[r as usize] as usize].push(r)),
        }
        for (b, rows) in picks.into_iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            parts[b].rows += rows.len();
            parts[b].frames += 1;
            parts[b].batches.push(Routed::part(
                piece.batch.clone(),
                UInt32Array::from(rows),
                source,
            ));
        }
    }
    // Spilled rows: read back run by run, cut, spilled again per bucket.
    for (file, largest) in std::mem::take(&mut chunk.runs) {
        let mut stream = spill.read_spill_as_stream(file, Some(largest))?;
        let mut per_bucket: Vec<Vec<RecordBatch>> = vec![Vec::new(); n];
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let of_row = cutter.buckets(&batch)?;
            let mut picks: Vec<Vec<u32>> = vec![Vec::new(); n];
            for (r, &b) in of_row.iter().enumerate() {
                picks[b as usize].push(r as u32);
            }
            for (b, rows) in picks.into_iter().enumerate() {
                if !rows.is_empty() {
                    parts[b].rows += rows.len();
                    per_bucket[b].push(take_record_batch(&batch, &UInt32Array::from(rows))?);
                }
            }
        }
        for (b, batches) in per_bucket.into_iter().enumerate() {
            if let Some(run) = spill_batches(spill, &batches, "grove ingest range split")? {
                parts[b].frames += batches.len();
                parts[b].runs.push(run);
            }
        }
    }
    // Memory and byte counts are shared out by rows (cumulatively, so that the parts add
    // up to the whole).
    let total = chunk.rows.max(1) as u128;
    let upto = |of: usize, rows: usize| (of as u128 * rows as u128 / total) as usize;
    let mut reservation = chunk.reservation.take();
    let mut before = 0;
    for part in &mut parts {
        let after = before + part.rows;
        let share = |of: usize| upto(of, after) - upto(of, before);
        part.bytes = share(chunk.bytes);
        part.spilled_bytes = share(chunk.spilled_bytes);
        part.shuffled = share(chunk.shuffled);
        before = after;
        if let Some(r) = reservation.as_mut() {
            part.reservation = Some(r.split(part.bytes.min(r.size())));
        }
    }
    Ok(parts.into_iter().filter(|p| p.rows > 0).collect())
}
