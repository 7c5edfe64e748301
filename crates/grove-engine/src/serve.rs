//! Serving sorted chunks: each output partition of [`crate::ChunkShuffleExec`] waits for
//! routing to finish, then takes chunks (or range buckets of one) from the run's queue,
//! largest first, sorts each (in memory within its share of the budget, or sorted run by
//! run and merged) and hands out its rows in sorted order.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, DictionaryArray, RecordBatch, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt32Type};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation, UnboundedMemoryPool,
};
use datafusion::physical_expr::LexOrdering;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, Time,
};
use datafusion::physical_plan::sorts::streaming_merge::StreamingMergeBuilder;
use datafusion::physical_plan::spill::SpillManager;
use futures::future::{BoxFuture, Shared};
use futures::{StreamExt, TryStreamExt};
use grove_common::Interval;

use crate::compact::SharedDictionaries;
use crate::counters::{StageCounters, WorkerCounters};
use crate::parquet_writer::{ThreadShare, ThreadShareGuard};
use crate::route::{ChunkBuffer, Routed, spill_manager};
use crate::sort::{ChunkOrder, SortedSlices};
use crate::task::TaskProgress;

/// Stage 0's outcome, awaited by every output stream.
pub(crate) type Routing = Shared<BoxFuture<'static, std::result::Result<(), Arc<DataFusionError>>>>;

/// One execution of a [`crate::ChunkShuffleExec`]: the routing task, then the chunks waiting for
/// an output partition.
pub(crate) struct ShuffleRun {
    /// Finishes when every input row is routed (or routing failed).
    pub(crate) routing: Routing,
    /// The chunks still to serve, largest first, and what reads their spilled runs.
    pub(crate) queue: Arc<Mutex<ChunkQueue>>,
    /// Stage 0's spill manager: reads the routed runs back.
    pub(crate) spill: SpillManager,
    /// The output partitions asked for.
    pub(crate) taken: Mutex<Vec<bool>>,
}

impl ShuffleRun {
    /// Marks output partition `partition` taken; false if it was already.
    pub(crate) fn take(&self, partition: usize) -> Result<bool> {
        let mut taken = self
            .taken
            .lock()
            .map_err(|_| DataFusionError::Internal("shuffle state poisoned".into()))?;
        match taken.get_mut(partition) {
            Some(t) if !*t => {
                *t = true;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// `plain` with its string columns as keys into dictionaries.
pub(crate) fn keyed_schema(plain: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = plain
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Dictionary(
                Box::new(DataType::UInt32),
                Box::new(DataType::Utf8),
            )),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, plain.metadata().clone()))
}

/// `batch` in the `keyed` schema: a plain string column becomes keys that number its rows
/// (no hashing, the values stay where they are).
fn to_keyed(batch: RecordBatch, keyed: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema().fields() == keyed.fields() {
        return Ok(batch.with_schema(Arc::clone(keyed))?);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(keyed.fields())
        .map(|(column, field)| -> Result<ArrayRef> {
            if column.data_type() == field.data_type() {
                return Ok(Arc::clone(column));
            }
            match (column.data_type(), field.data_type()) {
                (DataType::Utf8, DataType::Dictionary(..)) => {
                    let n = u32::try_from(column.len()).map_err(|_| {
                        DataFusionError::Internal("batch too large for keys".into())
                    })?;
                    let keys = UInt32Array::from_iter_values(0..n);
                    Ok(Arc::new(DictionaryArray::<UInt32Type>::try_new(
                        keys,
                        Arc::clone(column),
                    )?))
                }
                _ => Ok(arrow::compute::cast(column, field.data_type())?),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(Arc::clone(keyed), columns)?)
}

/// Chunks waiting for an output partition, and what reads their spilled runs.
#[derive(Default)]
pub(crate) struct ChunkQueue {
    pub(crate) chunks: std::collections::VecDeque<(Interval, ChunkBuffer)>,
    pub(crate) spill: Option<SpillManager>,
    pub(crate) progress: Option<Arc<TaskProgress>>,
}

impl ChunkQueue {
    /// A queue of `chunks` whose runs `spill` writes (for tests of the spill).
    #[cfg(test)]
    pub(crate) fn with_chunks(chunks: Vec<(Interval, ChunkBuffer)>, spill: SpillManager) -> Self {
        Self {
            chunks: chunks.into(),
            spill: Some(spill),
            progress: None,
        }
    }

    /// Spills the rows held in memory by the waiting chunk that holds the most, to make
    /// room for a chunk being sorted; returns the rows spilled, or `None` when no
    /// waiting chunk holds any memory.
    pub(crate) fn spill_largest_waiting(&mut self) -> Result<Option<usize>> {
        let Some(spill) = &self.spill else {
            return Ok(None);
        };
        let Some((_, chunk)) = self
            .chunks
            .iter_mut()
            .filter(|(_, c)| c.memory_bytes() > 0)
            .max_by_key(|(_, c)| c.memory_bytes())
        else {
            return Ok(None);
        };
        let (rows, _) = chunk.spill_memory(spill)?;
        if let Some(progress) = &self.progress {
            progress
                .rows_spilled
                .fetch_add(rows as u64, Ordering::Relaxed);
        }
        Ok(Some(rows))
    }
}

/// One output partition's stream state.
pub(crate) struct Served {
    run: Arc<ShuffleRun>,
    sorter: ChunkSorter,
    current: Option<SortedChunk>,
    /// Routing has finished.
    routed: bool,
    output_rows: Count,
    elapsed: Time,
}

impl Served {
    /// Output partition `partition` of `run`, sorting with `sorter`.
    pub(crate) fn new(
        run: Arc<ShuffleRun>,
        sorter: ChunkSorter,
        metrics: &ExecutionPlanMetricsSet,
        partition: usize,
    ) -> Self {
        Self {
            run,
            sorter,
            current: None,
            routed: false,
            output_rows: MetricBuilder::new(metrics).output_rows(partition),
            elapsed: MetricBuilder::new(metrics).elapsed_compute(partition),
        }
    }

    /// The next sorted batch of this partition.
    pub(crate) async fn next(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if let Some(chunk) = self.current.as_mut() {
                let timer = self.elapsed.timer();
                let next = chunk.next().await?;
                timer.done();
                if let Some(batch) = next {
                    self.output_rows.add(batch.num_rows());
                    let mut columns = to_keyed(batch, &self.sorter.keyed)?.columns().to_vec();
                    let n = columns.first().map_or(0, |c| c.len());
                    columns.push(Arc::new(UInt32Array::from(vec![chunk.bucket(); n])));
                    return Ok(Some(RecordBatch::try_new(
                        Arc::clone(&self.sorter.served),
                        columns,
                    )?));
                }
                self.current = None;
            }
            if !self.routed {
                self.run
                    .routing
                    .clone()
                    .await
                    .map_err(DataFusionError::Shared)?;
                self.routed = true;
            }
            let next = self
                .run
                .queue
                .lock()
                .map_err(|_| DataFusionError::Internal("chunk queue poisoned".into()))?
                .chunks
                .pop_front();
            let Some((_, chunk)) = next else {
                return Ok(None);
            };
            let timer = self.elapsed.timer();
            self.current = Some(self.sorter.start(chunk, &self.run).await?);
            timer.done();
        }
    }
}

/// A chunk being served: its sorted rows, and the memory they hold.
enum SortedChunk {
    /// Sorted in memory.
    InMemory {
        bucket: u32,
        slices: Box<SortedSlices>,
        _memory: (Option<MemoryReservation>, MemoryReservation),
        _share: ThreadShareGuard,
    },
    /// Merged from sorted runs.
    Merged {
        bucket: u32,
        stream: SendableRecordBatchStream,
        counters: Arc<StageCounters>,
        worker: usize,
        _share: ThreadShareGuard,
    },
}

impl SortedChunk {
    /// The range bucket being served.
    fn bucket(&self) -> u32 {
        match self {
            Self::InMemory { bucket, .. } | Self::Merged { bucket, .. } => *bucket,
        }
    }

    async fn next(&mut self) -> Result<Option<RecordBatch>> {
        match self {
            Self::InMemory { slices, .. } => slices.next().transpose(),
            Self::Merged {
                stream,
                counters,
                worker,
                ..
            } => {
                let next = stream.try_next().await?;
                if next.is_none() {
                    counters
                        .worker(*worker)
                        .sort
                        .level1_done
                        .fetch_add(1, Ordering::Relaxed);
                }
                Ok(next)
            }
        }
    }
}

/// Sorts the chunks one output partition serves.
pub(crate) struct ChunkSorter {
    /// Schema of the routed rows (plain).
    schema: SchemaRef,
    /// The rows' schema with strings as keys.
    keyed: SchemaRef,
    /// Schema of the rows served (`keyed` and the bucket).
    served: SchemaRef,
    order: ChunkOrder,
    lex: LexOrdering,
    task_ctx: Arc<TaskContext>,
    /// Writes and reads sorted runs (plain rows).
    sorted_spill: SpillManager,
    counters: Arc<StageCounters>,
    worker: usize,
    threads: ThreadShare,
    /// Bytes of a chunk this partition sorts in memory (its share of the memory budget);
    /// larger spilled chunks are sorted run by run and merged.
    in_memory_limit: usize,
    spilled_bytes: Count,
    spill_count: Count,
}

impl ChunkSorter {
    /// The sorter of output partition `partition` (worker `worker`) of a shuffle whose
    /// input rows are `plain` and whose output is `served`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn try_new(
        plain: SchemaRef,
        served: SchemaRef,
        order: &ChunkOrder,
        slots: usize,
        counters: Arc<StageCounters>,
        threads: ThreadShare,
        metrics: &ExecutionPlanMetricsSet,
        task_ctx: &Arc<TaskContext>,
        partition: usize,
        worker: usize,
    ) -> Result<Self> {
        let in_memory_limit = match task_ctx.runtime_env().memory_pool.memory_limit() {
            MemoryLimit::Finite(bytes) => bytes / slots.max(1),
            MemoryLimit::Infinite | MemoryLimit::Unknown => usize::MAX,
        };
        Ok(Self {
            in_memory_limit,
            // The merge reads every sorted run at once: one batch read ahead each.
            sorted_spill: spill_manager(&task_ctx.runtime_env(), &plain)
                .with_batch_read_buffer_capacity(1),
            lex: order.lex(&plain)?,
            keyed: keyed_schema(&plain),
            served,
            schema: plain,
            order: order.clone(),
            task_ctx: Arc::clone(task_ctx),
            counters,
            worker,
            threads,
            spilled_bytes: MetricBuilder::new(metrics).spilled_bytes(partition),
            spill_count: MetricBuilder::new(metrics).spill_count(partition),
        })
    }

    fn worker(&self) -> &WorkerCounters {
        self.counters.worker(self.worker)
    }

    /// Starts serving `chunk`: counts it as this worker's input, then sorts it in memory
    /// if it fits this partition's share of the budget, or sorts its runs and merges them.
    async fn start(&self, chunk: ChunkBuffer, run: &ShuffleRun) -> Result<SortedChunk> {
        let share = self.threads.join();
        let input = &self.worker().input;
        input.rows.fetch_add(chunk.rows as u64, Ordering::Relaxed);
        input
            .bytes
            .fetch_add(chunk.shuffled as u64, Ordering::Relaxed);
        input
            .frames
            .fetch_add(chunk.frames as u64, Ordering::Relaxed);
        let batch_size = self.task_ctx.session_config().batch_size().max(1);
        let sort = &self.worker().sort;
        let ChunkBuffer {
            mut batches,
            rows,
            runs,
            bytes,
            spilled_bytes,
            reservation,
            bucket,
            dictionaries,
            ..
        } = chunk;
        // A chunk within this partition's share of the budget is sorted in memory, its
        // spilled batches read back first if the budget has room for them (waiting
        // chunks spill their rows to make room).
        let mut read_back = MemoryConsumer::new("grove ingest shuffle read-back")
            .register(&self.task_ctx.runtime_env().memory_pool);
        // Rows read back take what they took when spilled (see `read_run`).
        let read_back_bytes = spilled_bytes;
        // The sort's own memory: ranks and packed keys while it sorts, the order, the
        // rows' locations and the string columns' row numbers while the sorted chunk is
        // served.
        let (sorting, serving) = match batches.first() {
            Some(first) => self.order.sort_bytes_per_row(&first.batch.schema()),
            None => self.order.sort_bytes_per_row(&self.schema),
        };
        let per_row = sorting + serving;
        let (sorting, serving) = (rows * sorting, rows * serving);
        let in_memory = runs.is_empty()
            || (bytes + read_back_bytes <= self.in_memory_limit
                && make_room(&run.queue, &mut read_back, read_back_bytes)?);
        if in_memory {
            // The sort's memory is charged when the budget has room for it as it is.
            // Making room (spilling chunks that fit), or sorting chunks whose sort does
            // not fit run by run, bounded memory better (S6 at 512MB: 800 MiB) but cost
            // 10-20% of the time at either budget (bench/README.md, session 14).
            let charged = read_back.try_grow(sorting + serving).is_ok();
            for (file, largest) in &runs {
                batches.extend(
                    read_run(&run.spill, file, *largest)
                        .await?
                        .into_iter()
                        .map(Routed::whole),
                );
            }
            sort.level0_total.fetch_add(1, Ordering::Relaxed);
            let slices = self
                .sort_off_thread(batches, 8 * batch_size, true, dictionaries)
                .await?;
            if charged {
                read_back.shrink(sorting);
            }
            sort.level0_done.fetch_add(1, Ordering::Relaxed);
            return Ok(SortedChunk::InMemory {
                bucket,
                slices: Box::new(slices),
                _memory: (reservation, read_back),
                _share: share,
            });
        }
        // Too big for memory: sort what is in memory and each spilled run on its own
        // (each fits: it was spilled within the budget), spill the sorted runs, and merge.
        let pieces = runs.len() + usize::from(!batches.is_empty());
        sort.level0_total
            .fetch_add(pieces as u64, Ordering::Relaxed);
        sort.level1_total.fetch_add(1, Ordering::Relaxed);
        // Each piece (the rows held in memory, then each spilled run) is sorted and its
        // sorted rows written to disk as they are gathered, a batch at a time: sorting
        // holds the piece and one sorted batch, never a sorted copy of the piece (rows
        // come out plain, several times their compact size).
        //
        // The budget holds each piece and its sort's memory while it is sorted: the rows
        // in memory are charged already, their sort once waiting chunks spilled to make
        // room for it; once they are on disk their charge goes, and each run read back
        // is charged its share of the spilled bytes and its sort's memory the same way.
        // When there is no room even then, the piece is sorted anyway. (Without this,
        // a merging chunk read its runs and sorted them outside the budget: S6 at 512MB
        // held 0.75 GB live for a 0.5 GB pool.)
        let mut streams: Vec<SendableRecordBatchStream> = Vec::new();
        if !batches.is_empty() {
            let in_memory_rows: usize = batches.iter().map(Routed::num_rows).sum();
            make_room(&run.queue, &mut read_back, in_memory_rows * per_row)?;
            streams.extend(self.sort_to_disk(batches, batch_size).await?);
            sort.level0_done.fetch_add(1, Ordering::Relaxed);
        }
        drop(reservation);
        let run_bytes = spilled_bytes / runs.len().max(1);
        let run_rows = (rows as u128 * run_bytes as u128)
            .checked_div((bytes + spilled_bytes) as u128)
            .unwrap_or(0) as usize;
        for (file, largest) in &runs {
            read_back.free();
            make_room(&run.queue, &mut read_back, run_bytes + run_rows * per_row)?;
            let pieces: Vec<Routed> = read_run(&run.spill, file, *largest)
                .await?
                .into_iter()
                .map(Routed::whole)
                .collect();
            streams.extend(self.sort_to_disk(pieces, batch_size).await?);
            sort.level0_done.fetch_add(1, Ordering::Relaxed);
        }
        read_back.free();
        let metrics = ExecutionPlanMetricsSet::new();
        // The merge holds about one batch per run. It is not charged to the budget: the
        // budget bounds what routing keeps, and a merge must be able to finish whatever
        // the number of runs that left.
        let unbounded: Arc<dyn MemoryPool> = Arc::new(UnboundedMemoryPool::default());
        let merge_reservation = MemoryConsumer::new("grove ingest merge").register(&unbounded);
        let stream = StreamingMergeBuilder::new()
            .with_streams(streams)
            .with_schema(Arc::clone(&self.schema))
            .with_expressions(&self.lex)
            .with_metrics(BaselineMetrics::new(&metrics, 0))
            .with_batch_size(batch_size)
            .with_reservation(merge_reservation)
            .build()?;
        Ok(SortedChunk::Merged {
            bucket,
            stream,
            counters: Arc::clone(&self.counters),
            worker: self.worker,
            _share: share,
        })
    }

    /// Sorts `batches` and writes the sorted rows to a spill file as they are gathered
    /// (on a blocking thread); returns the stream that reads them back (none for no
    /// rows).
    async fn sort_to_disk(
        &self,
        batches: Vec<Routed>,
        batch_size: usize,
    ) -> Result<Option<SendableRecordBatchStream>> {
        let order = self.order.clone();
        let plain = Arc::clone(&self.schema);
        let threads = self.threads.clone();
        let spill = self.sorted_spill.clone();
        let written = tokio::task::spawn_blocking(move || -> Result<_> {
            let sorted = order
                .sorted_slices(&batches, batch_size, &plain, false, None)?
                .with_threads(threads);
            drop(batches);
            let mut file = spill.create_in_progress_file("grove ingest sort")?;
            let (mut largest, mut bytes) = (0usize, 0usize);
            for batch in sorted {
                let batch = batch?;
                let size = batch.get_array_memory_size();
                largest = largest.max(size);
                bytes += size;
                file.append_batch(&batch)?;
            }
            Ok(file.finish()?.map(|file| (file, largest, bytes)))
        })
        .await
        .map_err(|e| DataFusionError::Execution(format!("sorting a time chunk failed: {e}")))??;
        let Some((file, largest, bytes)) = written else {
            return Ok(None);
        };
        self.spill_count.add(1);
        self.spilled_bytes.add(bytes);
        Ok(Some(
            self.sorted_spill
                .read_spill_as_stream(file, Some(largest))?,
        ))
    }

    /// Sorts `batches` on a blocking thread: a sort of millions of rows has no await
    /// point, and a cancel must not wait for it (the abandoned sort finishes unseen).
    async fn sort_off_thread(
        &self,
        batches: Vec<Routed>,
        rows: usize,
        as_keys: bool,
        shared: Option<Arc<SharedDictionaries>>,
    ) -> Result<SortedSlices> {
        let order = self.order.clone();
        let plain = Arc::clone(&self.schema);
        let sorted = tokio::task::spawn_blocking(move || {
            order.sorted_slices(&batches, rows, &plain, as_keys, shared.as_deref())
        })
        .await
        .map_err(|e| DataFusionError::Execution(format!("sorting a time chunk failed: {e}")))??;
        Ok(sorted.with_threads(self.threads.clone()))
    }
}

/// Grows `reservation` by `bytes`, spilling the rows waiting chunks hold in memory until
/// the budget has room; false when it has none even then.
fn make_room(
    queue: &Mutex<ChunkQueue>,
    reservation: &mut MemoryReservation,
    bytes: usize,
) -> Result<bool> {
    loop {
        if reservation.try_grow(bytes).is_ok() {
            return Ok(true);
        }
        let spilled = queue
            .lock()
            .map_err(|_| DataFusionError::Internal("chunk queue poisoned".into()))?
            .spill_largest_waiting()?;
        if spilled.is_none() {
            return Ok(false);
        }
    }
}

/// Every batch of a spilled run. A local spill file is read with Arrow's IPC file
/// reader, which gives each batch a buffer of its exact size (DataFusion's spill reader
/// grows one by doubling, and the batch keeps all of it: up to twice the memory).
async fn read_run(
    spill: &SpillManager,
    file: &Arc<dyn datafusion::execution::SpillFile>,
    largest: usize,
) -> Result<Vec<RecordBatch>> {
    if let Some(path) = file.path().map(std::path::Path::to_path_buf) {
        // The file lives as long as its handle: keep one while reading.
        let keep = Arc::clone(file);
        return tokio::task::spawn_blocking(move || -> Result<Vec<RecordBatch>> {
            let _keep = keep;
            let reader = arrow::ipc::reader::StreamReader::try_new(
                std::io::BufReader::new(std::fs::File::open(&path)?),
                None,
            )?;
            Ok(reader.collect::<std::result::Result<Vec<_>, _>>()?)
        })
        .await
        .map_err(|e| DataFusionError::Execution(format!("reading a spilled run failed: {e}")))?;
    }
    let mut stream = spill.read_spill_as_stream(Arc::clone(file), Some(largest))?;
    let mut out = Vec::new();
    while let Some(batch) = stream.next().await {
        out.push(batch?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waiting chunks give their share of the budget back by spilling, the largest first.
    #[test]
    fn waiting_chunks_spill_the_largest_first_and_free_their_memory() {
        use arrow::array::Int64Array;
        use datafusion::execution::memory_pool::GreedyMemoryPool;
        use datafusion::execution::runtime_env::RuntimeEnvBuilder;
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1 << 30));
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::clone(&pool))
            .build_arc()
            .expect("runtime");
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let spill = spill_manager(&runtime, &schema);
        let chunk = |rows: i64| {
            let batch = RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(Int64Array::from_iter_values(0..rows))],
            )
            .expect("batch");
            ChunkBuffer::holding(batch, &pool)
        };
        let (small, big) = (chunk(10), chunk(10_000));
        let small_bytes = small.memory_bytes();
        let mut queue = ChunkQueue::with_chunks(
            vec![(Interval::new(0, 1), small), (Interval::new(1, 2), big)],
            spill,
        );
        assert_eq!(queue.spill_largest_waiting().expect("spill"), Some(10_000));
        assert_eq!(pool.reserved(), small_bytes);
        assert_eq!(queue.spill_largest_waiting().expect("spill"), Some(10));
        assert_eq!(pool.reserved(), 0);
        assert_eq!(queue.spill_largest_waiting().expect("spill"), None);
    }

    #[test]
    fn plain_strings_become_keys_that_number_the_rows() {
        use arrow::array::{AsArray, Int64Array, StringArray};
        let plain = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("n", DataType::Int64, false),
        ]));
        let keyed = keyed_schema(&plain);
        let batch = RecordBatch::try_new(
            Arc::clone(&plain),
            vec![
                Arc::new(StringArray::from(vec![Some("b"), None, Some("b")])),
                Arc::new(Int64Array::from(vec![1, 2, 3])),
            ],
        )
        .expect("batch");
        let out = to_keyed(batch.clone(), &keyed).expect("keyed");
        assert_eq!(out.schema(), keyed);
        let dict = out.column(0).as_dictionary::<UInt32Type>();
        assert_eq!(dict.keys().values().to_vec(), [0, 1, 2]);
        assert_eq!(
            crate::compact::expand(&out, &plain).expect("plain"),
            batch,
            "the same values"
        );
    }
}
