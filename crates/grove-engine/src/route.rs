//! Routing: how the shuffle puts rows into time chunks and holds them (compact, under the
//! memory budget, spilling to disk) until a chunk is sorted ([`crate::sort`]) and
//! written. [`crate::ChunkShuffleExec`] runs it.
//!
//! A segment never spans two time chunks because every chunk is sorted and cut on its
//! own; the exact row count per chunk is the key statistic the cut is made from. Spill
//! files are DataFusion temp files: they are deleted when their chunk is written, or when
//! the ingest ends in any way (the handles are dropped).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::SchemaRef;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, SpillMetrics};
use datafusion::physical_plan::spill::SpillManager;
use grove_common::Interval;
use grove_common::types::TIME_COLUMN;

use crate::compact::{Compactor, MAX_ROWS, SharedDictionaries};
use crate::counters::Channel;
use crate::range::SplitKeys;
use crate::writer::{WriterConfig, check_chunk, time_column};

/// Rows routed to a time chunk: a whole batch, or some rows of one. When most rows of a
/// batch that spans chunks fall in one chunk (input in time order, with a few late
/// rows), that chunk keeps the batch and the numbers of its rows instead of a copy of
/// them; stage 1 gathers from it like from any other batch.
#[derive(Clone, Debug)]
pub(crate) struct Routed {
    pub(crate) batch: RecordBatch,
    pub(crate) rows: Option<UInt32Array>,
    /// Its batch's place among its time chunk's batches, when those have shared
    /// dictionaries.
    pub(crate) source: Option<usize>,
}

impl Routed {
    pub(crate) fn whole(batch: RecordBatch) -> Self {
        Self {
            batch,
            rows: None,
            source: None,
        }
    }

    /// The rows `rows` of `batch`, the `source`-th batch of its time chunk (see
    /// [`ChunkBuffer::dictionaries`]).
    pub(crate) fn part(batch: RecordBatch, rows: UInt32Array, source: usize) -> Self {
        Self {
            batch,
            rows: Some(rows),
            source: Some(source),
        }
    }

    pub(crate) fn num_rows(&self) -> usize {
        self.rows
            .as_ref()
            .map_or(self.batch.num_rows(), |r| r.len())
    }

    /// Memory held: the whole batch, and the row numbers.
    pub(crate) fn memory_size(&self) -> usize {
        self.batch.get_array_memory_size()
            + self
                .rows
                .as_ref()
                .map_or(0, arrow::array::Array::get_array_memory_size)
    }

    /// The rows as a batch of their own (copied when they are a part of one).
    pub(crate) fn materialize(&self) -> Result<RecordBatch> {
        self.select(self.batch.clone())
    }

    /// The `columns` of the rows, in order.
    pub(crate) fn project(&self, columns: &[usize]) -> Result<RecordBatch> {
        self.select(self.batch.project(columns)?)
    }

    /// The rows of `batch` (all of `self.batch`'s rows, or some of its columns).
    pub(crate) fn select(&self, batch: RecordBatch) -> Result<RecordBatch> {
        Ok(match &self.rows {
            None => batch,
            Some(rows) => take_record_batch(&batch, rows)?,
        })
    }
}

/// Rows of one time chunk gathered by stage 0.
#[derive(Default)]
pub(crate) struct ChunkBuffer {
    pub(crate) batches: Vec<Routed>,
    /// Bytes of `batches` (charged to the memory reservation).
    pub(crate) bytes: usize,
    /// Rows in memory and spilled.
    pub(crate) rows: usize,
    /// Bytes counted in stage 0's output channel (stage 1's input): a share of a batch
    /// counts its share of the batch's bytes.
    pub(crate) shuffled: usize,
    /// Sorted runs spilled to disk: (file, largest batch in memory).
    pub(crate) runs: Vec<(Arc<dyn datafusion::execution::SpillFile>, usize)>,
    /// In-memory bytes of the rows spilled (what reading them back will need).
    pub(crate) spilled_bytes: usize,
    /// Batches routed into this chunk (stage 1's input frames).
    pub(crate) frames: usize,
    /// Stage 0's key sample of the chunk's rows (boundary columns, plain), from which a
    /// large chunk is split ([`crate::range`]).
    pub(crate) sample: Vec<RecordBatch>,
    /// Which range bucket of its time chunk this is (0 for a chunk that is not split).
    pub(crate) bucket: u32,
    /// For a range bucket: the dictionaries of its time chunk's batches, shared with the
    /// other buckets (its pieces name their batch's place among them).
    pub(crate) dictionaries: Option<Arc<SharedDictionaries>>,
    /// The share of the memory budget that `batches` hold (from stage 1 on; in stage 0
    /// the shuffle's reservation holds every chunk's).
    pub(crate) reservation: Option<MemoryReservation>,
}

impl ChunkBuffer {
    /// Writes the batches held in memory to disk as one more run (stage 1 sorts them)
    /// and gives their memory back; returns the rows and bytes moved.
    pub(crate) fn spill_memory(&mut self, spill: &SpillManager) -> Result<(usize, usize)> {
        let batches = std::mem::take(&mut self.batches)
            .iter()
            .map(Routed::materialize)
            .collect::<Result<Vec<_>>>()?;
        let bytes = std::mem::take(&mut self.bytes);
        self.spilled_bytes += bytes;
        let rows = batches.iter().map(RecordBatch::num_rows).sum();
        if let Some(run) = spill_batches(spill, &batches, "grove ingest shuffle")? {
            self.runs.push(run);
        }
        if let Some(reservation) = &mut self.reservation {
            reservation.free();
        }
        Ok((rows, bytes))
    }

    /// Bytes held in memory.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.bytes
    }

    /// A chunk holding `batch` in memory, charged to `pool` (for tests).
    #[cfg(test)]
    pub(crate) fn holding(
        batch: RecordBatch,
        pool: &Arc<dyn datafusion::execution::memory_pool::MemoryPool>,
    ) -> Self {
        let bytes = batch.get_array_memory_size();
        let reservation = MemoryConsumer::new("chunk").register(pool);
        reservation.grow(bytes);
        Self {
            rows: batch.num_rows(),
            batches: vec![Routed::whole(batch)],
            bytes,
            frames: 1,
            reservation: Some(reservation),
            ..Default::default()
        }
    }
}

/// What stage 0 leaves for stage 1.
pub(crate) struct ShuffleOutput {
    /// Time chunks, largest first.
    pub(crate) chunks: Vec<(Interval, ChunkBuffer)>,
    /// Rows routed.
    pub(crate) rows: u64,
    /// Rows spilled to disk.
    pub(crate) spilled_rows: u64,
}

/// Stage 0's state: chunk buffers under one memory reservation.
pub(crate) struct Shuffle {
    /// The ingest's settings (granularity, OVERWRITE intervals, limits).
    config: WriterConfig,
    /// What the key sample is taken of.
    keys: SplitKeys,
    time_index: usize,
    /// Rows are held compact (string columns as dictionaries).
    compactor: Compactor,
    /// Spills compact batches.
    spill: SpillManager,
    state: Mutex<ShuffleState>,
    rows_in: AtomicU64,
    spilled_rows: AtomicU64,
}

struct ShuffleState {
    chunks: BTreeMap<Interval, ChunkBuffer>,
    reservation: MemoryReservation,
}

impl Shuffle {
    /// Empty buffers for rows of `schema`, charged to the task's memory pool, spilling
    /// under its spill directory.
    pub(crate) fn try_new(
        schema: SchemaRef,
        config: WriterConfig,
        keys: SplitKeys,
        ctx: &TaskContext,
    ) -> Result<Self> {
        let time_index = schema.index_of(TIME_COLUMN)?;
        let runtime = ctx.runtime_env();
        let compactor = Compactor::new(&schema);
        let spill = spill_manager(&runtime, compactor.schema());
        let reservation = MemoryConsumer::new("grove ingest stage 0")
            .with_can_spill(true)
            .register(&runtime.memory_pool);
        Ok(Self {
            config,
            keys,
            time_index,
            compactor,
            spill,
            state: Mutex::new(ShuffleState {
                chunks: BTreeMap::new(),
                reservation,
            }),
            rows_in: AtomicU64::new(0),
            spilled_rows: AtomicU64::new(0),
        })
    }

    /// Writes (and reads back) the compact batches it spills.
    pub(crate) fn spill_manager(&self) -> SpillManager {
        self.spill.clone()
    }

    /// The chunks (largest first) and what stage 1 needs to read them.
    pub(crate) fn take_output(&self) -> Result<ShuffleOutput> {
        let chunks = {
            let mut state = self
                .state
                .lock()
                .map_err(|_| DataFusionError::Internal("shuffle state poisoned".into()))?;
            let mut chunks = std::mem::take(&mut state.chunks);
            // Each chunk's rows keep their share of the budget until they are written.
            for chunk in chunks.values_mut() {
                let share = chunk.bytes.min(state.reservation.size());
                chunk.reservation = Some(state.reservation.split(share));
            }
            chunks
        };
        let mut chunks: Vec<(Interval, ChunkBuffer)> = chunks.into_iter().collect();
        chunks.sort_by_key(|(_, c)| std::cmp::Reverse(c.rows));
        Ok(ShuffleOutput {
            chunks,
            rows: self.rows_in.load(Ordering::Relaxed),
            spilled_rows: self.spilled_rows.load(Ordering::Relaxed),
        })
    }

    /// Routes the rows of one batch to their chunks, counting them in `counters` (the
    /// worker's output channel).
    pub(crate) fn route(&self, batch: RecordBatch, counters: &Channel) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        if n > MAX_ROWS {
            for part in slices(&batch, MAX_ROWS) {
                self.route(part, counters)?;
            }
            return Ok(());
        }
        let times = time_column(&batch, self.time_index)?;
        // Rows per chunk; input is mostly in time order, so the last chunk is tried first.
        let mut parts: Vec<(Interval, Vec<u32>)> = Vec::new();
        let mut last = 0usize;
        for (i, &t) in times.values().iter().enumerate() {
            if parts.get(last).is_none_or(|(iv, _)| !iv.contains_millis(t)) {
                last = match parts.iter().position(|(iv, _)| iv.contains_millis(t)) {
                    Some(p) => p,
                    None => {
                        parts.push((self.config.granularity.bucket(t), Vec::new()));
                        parts.len() - 1
                    }
                };
            }
            parts[last].1.push(i as u32);
        }
        // Key statistics: the sampled rows' boundary columns, per chunk.
        let sampled = self.keys.sampled(&batch)?;
        let mut samples: Vec<(Interval, RecordBatch)> = Vec::new();
        for (interval, rows) in &parts {
            let picked: Vec<u32> = rows
                .iter()
                .copied()
                .filter(|&r| sampled[r as usize])
                .collect();
            if !picked.is_empty() {
                samples.push((*interval, self.keys.sample_of(&batch, &picked)?));
            }
        }
        let pieces: Vec<(Interval, Routed)> = if parts.len() == 1 {
            vec![(parts[0].0, Routed::whole(self.compactor.compact(&batch)?))]
        } else {
            // A share of three quarters or more keeps the batch; the others get copies of
            // their rows (a batch kept for fewer rows would hold memory for nothing).
            let largest = (0..parts.len())
                .max_by_key(|&p| parts[p].1.len())
                .filter(|&p| parts[p].1.len() * 4 >= n * 3);
            parts
                .into_iter()
                .enumerate()
                .map(|(p, (iv, rows))| {
                    let rows = UInt32Array::from(rows);
                    Ok(if Some(p) == largest {
                        (
                            iv,
                            Routed {
                                batch: self.compactor.compact(&batch)?,
                                rows: Some(rows),
                                source: None,
                            },
                        )
                    } else {
                        let copy = take_record_batch(&batch, &rows)?;
                        (iv, Routed::whole(self.compactor.compact(&copy)?))
                    })
                })
                .collect::<Result<_>>()?
        };
        self.rows_in.fetch_add(n as u64, Ordering::Relaxed);
        let mut state = self
            .state
            .lock()
            .map_err(|_| DataFusionError::Internal("shuffle state poisoned".into()))?;
        for (interval, piece) in pieces {
            if !state.chunks.contains_key(&interval) {
                check_chunk(&self.config, &interval, Some(state.chunks.len() + 1))?;
            }
            let bytes = piece.memory_size();
            while state.reservation.try_grow(bytes).is_err() {
                if !self.spill_largest(&mut state)? {
                    // Nothing left to spill: hold this batch over the limit rather than
                    // fail; the next batch spills it.
                    state.reservation.grow(bytes);
                    break;
                }
            }
            let chunk = state.chunks.entry(interval).or_default();
            chunk.rows += piece.num_rows();
            chunk.bytes += bytes;
            chunk.frames += 1;
            let share = bytes * piece.num_rows() / piece.batch.num_rows().max(1);
            chunk.shuffled += share;
            counters.add_frame(piece.num_rows() as u64, share as u64);
            chunk.batches.push(piece);
        }
        for (interval, sample) in samples {
            state
                .chunks
                .entry(interval)
                .or_default()
                .sample
                .push(sample);
        }
        Ok(())
    }

    /// Writes the batches of the chunk holding the most memory to disk as they are
    /// (stage 1 sorts them). False when no chunk holds any memory.
    fn spill_largest(&self, state: &mut ShuffleState) -> Result<bool> {
        let Some((_, chunk)) = state
            .chunks
            .iter_mut()
            .filter(|(_, c)| c.bytes > 0)
            .max_by_key(|(_, c)| c.bytes)
        else {
            return Ok(false);
        };
        let (rows, bytes) = chunk.spill_memory(&self.spill)?;
        self.spilled_rows.fetch_add(rows as u64, Ordering::Relaxed);
        state
            .reservation
            .shrink(bytes.min(state.reservation.size()));
        Ok(true)
    }
}

/// Writes batches of `schema` to uncompressed spill files (compressing cost more CPU than
/// the disk time it saved).
pub(crate) fn spill_manager(
    runtime: &Arc<datafusion::execution::runtime_env::RuntimeEnv>,
    schema: &SchemaRef,
) -> SpillManager {
    let metrics = ExecutionPlanMetricsSet::new();
    SpillManager::new(
        Arc::clone(runtime),
        SpillMetrics::new(&metrics, 0),
        Arc::clone(schema),
    )
    .with_compression_type(datafusion::common::config::SpillCompression::Uncompressed)
}

/// A spilled run of `batches`, with the size of its largest batch (for reading it back);
/// `None` when there was nothing to write.
pub(crate) fn spill_batches(
    spill: &SpillManager,
    batches: &[RecordBatch],
    what: &str,
) -> Result<Option<(Arc<dyn datafusion::execution::SpillFile>, usize)>> {
    let largest = batches
        .iter()
        .map(RecordBatch::get_array_memory_size)
        .max()
        .unwrap_or(0);
    Ok(spill
        .spill_record_batch_and_finish(batches, what)?
        .map(|file| (file, largest)))
}

/// Zero-copy slices of at most `rows` rows.
pub(crate) fn slices(batch: &RecordBatch, rows: usize) -> Vec<RecordBatch> {
    (0..batch.num_rows())
        .step_by(rows.max(1))
        .map(|start| batch.slice(start, rows.min(batch.num_rows() - start)))
        .collect()
}
