//! A Parquet writer that encodes the columns of a row group on several threads.
//!
//! parquet's `AsyncArrowWriter` encodes every column of a file on the calling thread, so
//! one big segment (a single DAY chunk, say) is written on one core however many are
//! idle. This writer gives each column its own `ArrowColumnWriter` and, for every batch,
//! spreads the columns over up to `threads` scoped threads; the encoded column chunks
//! are appended in order when the row group closes, and the file's bytes go to deep
//! storage after each row group. With `threads == 1` it does the same work inline.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::{DataFusionError, Result};
use object_store::buffered::BufWriter;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowLeafColumn, ArrowRowGroupWriterFactory,
    compute_leaves,
};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use tokio::io::AsyncWriteExt;

/// Bytes the file writer has produced and not yet sent to deep storage.
#[derive(Clone, Default)]
struct Pending(Arc<Mutex<Vec<u8>>>);

impl Pending {
    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default()
    }
}

impl Write for Pending {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("segment buffer poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How many threads a writer may use: the cores shared by the writers running at once.
#[derive(Clone, Debug)]
pub(crate) struct ThreadShare {
    cores: usize,
    active: Arc<AtomicUsize>,
}

impl ThreadShare {
    /// A share of `cores` cores among the writers that hold a [`ThreadShareGuard`].
    pub(crate) fn new(cores: usize) -> Self {
        Self {
            cores: cores.max(1),
            active: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Counts one more writer while the guard lives.
    pub(crate) fn join(&self) -> ThreadShareGuard {
        self.active.fetch_add(1, Ordering::Relaxed);
        ThreadShareGuard(Arc::clone(&self.active))
    }

    /// Threads one writer may use now.
    pub(crate) fn threads(&self) -> usize {
        (self.cores / self.active.load(Ordering::Relaxed).max(1)).max(1)
    }
}

/// `f` of every item, on up to `threads` threads (the calling one among them), each
/// taking the next item from one queue until none is left: put the heaviest items first.
/// The results are in item order.
pub(crate) fn on_threads<T: Send, R: Send>(
    items: Vec<T>,
    threads: usize,
    f: impl Fn(T) -> R + Sync,
) -> Result<Vec<R>> {
    let threads = threads.min(items.len()).max(1);
    if threads == 1 {
        return Ok(items.into_iter().map(f).collect());
    }
    let n = items.len();
    let queue = Mutex::new(items.into_iter().enumerate());
    let drain = || {
        let mut done = Vec::new();
        loop {
            let next = match queue.lock() {
                Ok(mut q) => q.next(),
                Err(_) => None,
            };
            let Some((i, item)) = next else {
                return done;
            };
            done.push((i, f(item)));
        }
    };
    let mut parts = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..threads).map(|_| scope.spawn(drain)).collect();
        let mut parts = drain();
        for h in handles {
            parts.extend(h.join().map_err(|_| {
                DataFusionError::Execution("a worker thread of a segment writer panicked".into())
            })?);
        }
        Ok::<_, DataFusionError>(parts)
    })?;
    if parts.len() != n {
        return Err(DataFusionError::Execution(
            "a worker thread of a segment writer stopped early".into(),
        ));
    }
    parts.sort_unstable_by_key(|(i, _)| *i);
    Ok(parts.into_iter().map(|(_, r)| r).collect())
}

/// Membership in a [`ThreadShare`].
#[derive(Debug)]
pub(crate) struct ThreadShareGuard(Arc<AtomicUsize>);

impl Drop for ThreadShareGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Writes one Parquet file to deep storage, encoding columns in parallel.
pub(crate) struct ParallelParquetWriter {
    schema: SchemaRef,
    file: SerializedFileWriter<Pending>,
    factory: ArrowRowGroupWriterFactory,
    pending: Pending,
    out: BufWriter,
    /// The open row group's column writers (one per leaf column), if any.
    columns: Option<Vec<ArrowColumnWriter>>,
    row_groups: usize,
    rows_in_group: usize,
    max_row_group_rows: usize,
    /// A row group closes when its column writers hold this many bytes (encoded pages
    /// and values waiting to be), whatever its rows.
    max_row_group_bytes: usize,
    share: ThreadShare,
}

impl ParallelParquetWriter {
    pub(crate) fn try_new(
        out: BufWriter,
        schema: SchemaRef,
        props: WriterProperties,
        share: ThreadShare,
    ) -> Result<Self> {
        let max_row_group_rows = props.max_row_group_row_count().unwrap_or(1 << 20).max(1);
        let pending = Pending::default();
        let (file, factory) =
            ArrowWriter::try_new(pending.clone(), Arc::clone(&schema), Some(props))?
                .into_serialized_writer()?;
        Ok(Self {
            schema,
            file,
            factory,
            pending,
            out,
            columns: None,
            row_groups: 0,
            rows_in_group: 0,
            max_row_group_rows,
            max_row_group_bytes: usize::MAX,
            share,
        })
    }

    /// Closes a row group once its column writers hold `bytes` (at least one batch is
    /// in each row group): a bound on the memory a segment being written holds.
    pub(crate) fn with_max_row_group_bytes(mut self, bytes: usize) -> Self {
        self.max_row_group_bytes = bytes.max(1);
        self
    }

    /// Bytes the open row group's column writers hold.
    fn buffered_bytes(&self) -> usize {
        self.columns
            .as_ref()
            .map_or(0, |c| c.iter().map(ArrowColumnWriter::memory_size).sum())
    }

    /// Writes a batch; returns the rows in row groups completed by this call.
    pub(crate) async fn write(&mut self, batch: &RecordBatch) -> Result<usize> {
        let mut flushed = 0;
        let mut start = 0;
        while start < batch.num_rows() {
            let room = self.max_row_group_rows - self.rows_in_group;
            let n = room.min(batch.num_rows() - start);
            self.encode(&batch.slice(start, n))?;
            start += n;
            if self.rows_in_group >= self.max_row_group_rows
                || self.buffered_bytes() >= self.max_row_group_bytes
            {
                flushed += self.flush_row_group().await?;
            }
        }
        Ok(flushed)
    }

    /// Encodes a batch into the open row group, columns spread over threads.
    fn encode(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let mut writers = match self.columns.take() {
            Some(w) => w,
            None => self.factory.create_column_writers(self.row_groups)?,
        };
        let mut leaves: Vec<ArrowLeafColumn> = Vec::with_capacity(writers.len());
        for (field, array) in self.schema.fields().iter().zip(batch.columns()) {
            leaves.extend(compute_leaves(field, array)?);
        }
        // The heaviest columns first (by their arrays' memory; a nested column's leaves
        // count as light), so that no thread is left with a big column at the end.
        let weights: Vec<usize> = if leaves.len() == batch.num_columns() {
            batch
                .columns()
                .iter()
                .map(|a| a.get_array_memory_size())
                .collect()
        } else {
            vec![0; leaves.len()]
        };
        let mut work: Vec<(usize, &mut ArrowColumnWriter, &ArrowLeafColumn)> = weights
            .into_iter()
            .zip(writers.iter_mut())
            .zip(leaves.iter())
            .map(|((w, writer), leaf)| (w, writer, leaf))
            .collect();
        work.sort_by_key(|(w, _, _)| std::cmp::Reverse(*w));
        let threads = self.share.threads();
        for written in on_threads(work, threads, |(_, writer, leaf)| writer.write(leaf))? {
            written?;
        }
        self.columns = Some(writers);
        self.rows_in_group += batch.num_rows();
        Ok(())
    }

    /// Closes the open row group, appends it to the file and sends the bytes on;
    /// returns its rows.
    async fn flush_row_group(&mut self) -> Result<usize> {
        let Some(writers) = self.columns.take() else {
            return Ok(0);
        };
        let chunks: Vec<ArrowColumnChunk> = writers
            .into_iter()
            .map(ArrowColumnWriter::close)
            .collect::<parquet::errors::Result<_>>()?;
        let mut row_group = self.file.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        self.row_groups += 1;
        let rows = std::mem::take(&mut self.rows_in_group);
        self.send().await?;
        Ok(rows)
    }

    async fn send(&mut self) -> Result<()> {
        let bytes = self.pending.take();
        if !bytes.is_empty() {
            self.out
                .write_all(&bytes)
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
        }
        Ok(())
    }

    /// Flushes the last row group, writes the footer and completes the upload.
    pub(crate) async fn close(mut self) -> Result<()> {
        self.flush_row_group().await?;
        self.file.finish()?;
        self.send().await?;
        self.out
            .shutdown()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    /// The same rows read back, in order, whatever the threads and row-group size.
    #[tokio::test]
    async fn round_trips_across_row_groups_and_threads() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
            Field::new(
                "l",
                DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true))),
                true,
            ),
        ]));
        let batch = |from: i64, to: i64| {
            let l = arrow::array::ListArray::from_iter_primitive::<arrow::datatypes::Int64Type, _, _>(
                (from..to).map(|i| Some(vec![Some(i), None])),
            );
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(Int64Array::from_iter_values(from..to)),
                    Arc::new(StringArray::from_iter(
                        (from..to).map(|i| (i % 3 != 0).then(|| format!("v{i}"))),
                    )),
                    Arc::new(l),
                ],
            )
            .unwrap()
        };
        for threads in [1, 4] {
            let store = Arc::new(InMemory::new());
            let path = Path::from("f.parquet");
            let props = WriterProperties::builder()
                .set_max_row_group_row_count(Some(1000))
                .build();
            let share = ThreadShare::new(threads);
            let _member = share.join();
            let mut w = ParallelParquetWriter::try_new(
                BufWriter::new(Arc::clone(&store) as _, path.clone()),
                Arc::clone(&schema),
                props,
                share,
            )
            .unwrap();
            let flushed = w.write(&batch(0, 1500)).await.unwrap();
            assert_eq!(flushed, 1000);
            w.write(&batch(1500, 2600)).await.unwrap();
            w.close().await.unwrap();
            let bytes = store.get(&path).await.unwrap().bytes().await.unwrap();
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
            assert_eq!(reader.metadata().num_row_groups(), 3);
            let read: Vec<RecordBatch> = reader.build().unwrap().map(|b| b.unwrap()).collect();
            let all = arrow::compute::concat_batches(&schema, &read).unwrap();
            assert_eq!(all, batch(0, 2600), "threads {threads}");
        }
    }

    /// A byte bound closes row groups before the row bound; the rows read back the same.
    #[tokio::test]
    async fn a_byte_bound_closes_row_groups_early() {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, false)]));
        let batch = |from: usize| {
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(StringArray::from_iter_values(
                    (from..from + 100).map(|i| format!("{i:0>200}")),
                ))],
            )
            .unwrap()
        };
        let write = |bound: usize| {
            let schema = Arc::clone(&schema);
            async move {
                let store = Arc::new(InMemory::new());
                let path = Path::from("f.parquet");
                let mut w = ParallelParquetWriter::try_new(
                    BufWriter::new(Arc::clone(&store) as _, path.clone()),
                    schema,
                    WriterProperties::builder().build(),
                    ThreadShare::new(1),
                )
                .unwrap()
                .with_max_row_group_bytes(bound);
                for from in (0..1000).step_by(100) {
                    w.write(&batch(from)).await.unwrap();
                }
                w.close().await.unwrap();
                let bytes = store.get(&path).await.unwrap().bytes().await.unwrap();
                let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
                let groups = reader.metadata().num_row_groups();
                let read: Vec<RecordBatch> = reader.build().unwrap().map(|b| b.unwrap()).collect();
                (groups, read)
            }
        };
        let (one, all) = write(usize::MAX).await;
        assert_eq!(one, 1);
        // 100 rows of 200 distinct bytes are over 16 KiB: every batch closes a group.
        let (many, read) = write(16 << 10).await;
        assert_eq!(many, 10);
        let concat = |b: &[RecordBatch]| arrow::compute::concat_batches(&schema, b).unwrap();
        assert_eq!(concat(&read), concat(&all));
    }
}
