//! The EXTERN table and its scan operator.
//!
//! ```text
//!  ExternTable::scan ── lists splits, spreads them over N partitions by size
//!        │
//!  ExternScanExec (N partitions)
//!     partition i: [split, split, ...] ──(blocking reader thread)──▶ RecordBatch stream
//! ```
//!
//! Every parameter of [`ExternScanExec`] is plain data (input source, format, signature,
//! split assignment), so the operator can be serialized for remote execution later.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex, Weak, mpsc};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result, project_schema};
use datafusion::datasource::TableType;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType, SchedulingType};
use datafusion::physical_plan::stream::{RecordBatchReceiverStream, RecordBatchStreamAdapter};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;
use grove_common::types::{SignatureColumn, signature_schema};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::format::{
    InputFormat, JsonBlockDecoder, LineBlock, ParseBudget, ReadEnv, read_line_blocks, read_split,
};
use crate::policy::InputPolicy;
use crate::source::InputSource;
use crate::split::InputSplit;

/// What an EXTERN call reads: source, format and signature.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExternSpec {
    /// Where the data is.
    #[serde(rename = "inputSource")]
    pub source: InputSource,
    /// How it is encoded.
    #[serde(rename = "inputFormat")]
    pub format: InputFormat,
    /// The declared columns.
    pub signature: Vec<SignatureColumn>,
}

impl ExternSpec {
    /// Builds a spec from EXTERN's three JSON arguments.
    pub fn from_json(source: &str, format: &str, signature: &str) -> Result<Self> {
        let source = InputSource::from_json(source)?;
        let format = InputFormat::from_json(format)?;
        let signature: Vec<SignatureColumn> = serde_json::from_str(signature).map_err(|e| {
            datafusion::common::DataFusionError::Plan(format!(
                "Invalid EXTERN signature [{signature}]: {e}"
            ))
        })?;
        if signature.is_empty() {
            return datafusion::common::plan_err!(
                "EXTERN signature must declare at least one column"
            );
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = signature.iter().find(|c| !seen.insert(c.name.as_str())) {
            return datafusion::common::plan_err!(
                "Duplicate column [{}] in EXTERN signature",
                dup.name
            );
        }
        Ok(Self {
            source,
            format,
            signature,
        })
    }
}

/// A table over external data, as produced by `TABLE(EXTERN(...))`.
#[derive(Debug)]
pub struct ExternTable {
    spec: Arc<ExternSpec>,
    schema: SchemaRef,
    max_parse_exceptions: Option<u64>,
}

impl ExternTable {
    /// A table reading `spec`, failing once more than `max_parse_exceptions` rows are bad
    /// (`None` = unlimited).
    pub fn new(spec: ExternSpec, max_parse_exceptions: Option<u64>) -> Self {
        let schema = signature_schema(&spec.signature);
        Self {
            spec: Arc::new(spec),
            schema,
            max_parse_exceptions,
        }
    }

    /// The spec.
    pub fn spec(&self) -> &ExternSpec {
        &self.spec
    }
}

#[async_trait]
impl TableProvider for ExternTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let policy = state
            .config()
            .get_extension::<InputPolicy>()
            .unwrap_or_default();
        // Listing talks to remote stores: do it on the input I/O runtime.
        let source = self.spec.source.clone();
        let splits = crate::remote::io_handle()?
            .spawn(async move { source.splits(&policy).await })
            .await
            .map_err(|e| {
                datafusion::common::DataFusionError::Execution(format!(
                    "Listing the input failed: {e}"
                ))
            })??;
        let target = state.config().target_partitions().max(1);
        let splits = if self.spec.format.splittable() {
            cut_splits(splits, target)
        } else {
            splits
        };
        let assignment = assign_splits(splits, target);
        let projected = project_schema(&self.schema, projection)?;
        // Newline-delimited JSON is decoded by `target` workers whatever the number of
        // splits: readers cut lines into blocks, any worker decodes any block.
        let partitions = if self.spec.format.splittable() {
            target
        } else {
            assignment.len()
        };
        Ok(Arc::new(ExternScanExec::new(
            Arc::clone(&self.spec),
            assignment,
            projected,
            self.max_parse_exceptions,
            partitions,
        )))
    }
}

/// Cuts large uncompressed files into byte ranges so that every one of `partitions`
/// workers gets a share, even of a single big file (Druid never splits a file).
pub fn cut_splits(splits: Vec<InputSplit>, partitions: usize) -> Vec<InputSplit> {
    let total: u64 = splits.iter().map(InputSplit::weight).sum();
    let target = total.div_ceil(partitions.max(1) as u64);
    splits.into_iter().flat_map(|s| s.cut(target)).collect()
}

/// Spreads splits over at most `partitions` groups, largest first onto the lightest group
/// (splits of unknown size count one byte, so they are dealt round-robin).
pub fn assign_splits(mut splits: Vec<InputSplit>, partitions: usize) -> Vec<Vec<InputSplit>> {
    let n = partitions.min(splits.len()).max(1);
    splits.sort_by_key(|s| std::cmp::Reverse(s.weight()));
    let mut groups: Vec<(u64, Vec<InputSplit>)> = (0..n).map(|_| (0, Vec::new())).collect();
    for split in splits {
        if let Some(lightest) = groups.iter_mut().min_by_key(|(size, g)| (*size, g.len())) {
            lightest.0 += split.weight().max(1);
            lightest.1.push(split);
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

/// Live counters of one partition of an EXTERN scan (Druid's `input0` channel counters of
/// one worker: rows, bytes, files, totalFiles; and its parse warnings).
#[derive(Debug, Default)]
pub struct PartitionCounters {
    /// Rows produced.
    pub rows: AtomicU64,
    /// Raw bytes read from the input (before decompression).
    pub bytes: AtomicU64,
    /// Splits (files) fully read.
    pub files: AtomicU64,
    /// Splits assigned.
    pub total_files: AtomicU64,
    /// Bytes of the splits assigned, where sizes are known (for progress estimates).
    pub total_bytes: AtomicU64,
    /// Parse exceptions charged by this partition.
    pub warnings: Arc<AtomicU64>,
}

/// Live counters of one EXTERN scan: one entry per partition. With newline-delimited
/// JSON, split group `g` is read (bytes, files) by partition `g`'s reader thread and
/// decoded (rows, warnings) by whichever partition takes a block.
#[derive(Debug)]
pub struct ScanCounters {
    /// Per partition.
    pub partitions: Vec<PartitionCounters>,
    /// Parse exceptions (bad rows) charged against `maxParseExceptions`.
    pub parse: Arc<ParseBudget>,
}

impl ScanCounters {
    /// Partition `p`'s counters (`p` wraps around the partition count).
    pub fn partition(&self, p: usize) -> &PartitionCounters {
        &self.partitions[p % self.partitions.len()]
    }

    /// Sum of one field over the partitions.
    pub fn total(&self, f: impl Fn(&PartitionCounters) -> &AtomicU64) -> u64 {
        self.worker_total(1, 0, f)
    }

    /// Sum of one field over the partitions of worker `worker` of `workers` (partition
    /// `p` belongs to worker `p % workers`).
    pub fn worker_total(
        &self,
        workers: usize,
        worker: usize,
        f: impl Fn(&PartitionCounters) -> &AtomicU64,
    ) -> u64 {
        self.partitions
            .iter()
            .enumerate()
            .filter(|(p, _)| p % workers.max(1) == worker)
            .map(|(_, c)| f(c).load(Ordering::Relaxed))
            .sum()
    }

    /// Partition `p`'s view of the parse budget (counting into its warnings).
    fn budget(&self, p: usize) -> ParseBudget {
        self.parse
            .counting_into(Arc::clone(&self.partition(p).warnings))
    }
}

/// Reads EXTERN splits. Newline-delimited JSON: one reader thread per split group cuts
/// lines into blocks and every output partition decodes blocks from a shared queue, so a
/// single gzip file is decompressed on one core and parsed on all of them. Other formats:
/// one output partition per split group.
#[derive(Debug)]
pub struct ExternScanExec {
    spec: Arc<ExternSpec>,
    splits: Vec<Vec<InputSplit>>,
    schema: SchemaRef,
    counters: Arc<ScanCounters>,
    properties: Arc<PlanProperties>,
    blocks: Mutex<BlockRound>,
}

/// The line-block queue of one execution of a JSON scan.
#[derive(Debug, Default)]
struct BlockRound {
    /// The queue while any partition of this round still reads it.
    queue: Option<Weak<BlockQueue>>,
    /// Partitions executed in this round; executing one again starts a new round.
    started: HashSet<usize>,
}

/// The line blocks of one read round, shared by the partitions that decode them.
#[derive(Debug)]
struct BlockQueue {
    rx: Mutex<mpsc::Receiver<Result<LineBlock>>>,
    /// The round's readers' stop token, cancelled when the last decoder lets go of the
    /// queue: a reader waiting on a stalled server stops then instead of holding its
    /// thread and connection until the read timeout.
    stop: CancellationToken,
}

impl Drop for BlockQueue {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// How often a decoder waiting for a line block checks whether its query still wants rows.
const DECODER_POLL: Duration = Duration::from_millis(100);

impl ExternScanExec {
    /// A scan of `splits` (one group per partition) producing `schema` (a projection of
    /// the signature).
    pub fn new(
        spec: Arc<ExternSpec>,
        splits: Vec<Vec<InputSplit>>,
        schema: SchemaRef,
        max_parse_exceptions: Option<u64>,
        partitions: usize,
    ) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(partitions.max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        )
        .with_scheduling_type(SchedulingType::Cooperative);
        let counters = ScanCounters {
            partitions: (0..partitions.max(1).max(splits.len()))
                .map(|p| {
                    let group = splits.get(p).map_or(&[][..], Vec::as_slice);
                    PartitionCounters {
                        total_files: AtomicU64::new(group.len() as u64),
                        total_bytes: AtomicU64::new(group.iter().map(InputSplit::weight).sum()),
                        ..PartitionCounters::default()
                    }
                })
                .collect(),
            parse: Arc::new(ParseBudget::new(max_parse_exceptions)),
        };
        Self {
            spec,
            splits,
            schema,
            counters: Arc::new(counters),
            properties: Arc::new(properties),
            blocks: Mutex::new(BlockRound::default()),
        }
    }

    /// The block queue partition `partition` reads: this round's, or a new round's (with
    /// its reader threads started) when there is none or `partition` already ran in it.
    /// `None` when this round's readers and decoders are all done.
    fn block_queue(&self, partition: usize, batch_size: usize) -> Result<Option<Arc<BlockQueue>>> {
        let mut round = self
            .blocks
            .lock()
            .map_err(|_| DataFusionError::Internal("scan state poisoned".into()))?;
        if round.queue.is_some() && round.started.insert(partition) {
            return Ok(round.queue.as_ref().and_then(Weak::upgrade));
        }
        let partitions = self.properties.partitioning.partition_count();
        let (tx, rx) = mpsc::sync_channel(2 * partitions + 2);
        let stop = CancellationToken::new();
        let queue = Arc::new(BlockQueue {
            rx: Mutex::new(rx),
            stop: stop.clone(),
        });
        let handle = crate::remote::io_handle()?;
        for (g, group) in self.splits.iter().enumerate() {
            let group = group.clone();
            let tx = tx.clone();
            let counters = Arc::clone(&self.counters);
            let env = ReadEnv::with_stop(handle.clone(), stop.clone());
            std::thread::Builder::new()
                .name("grove-read".into())
                .spawn(move || {
                    // A panic in a decoder library must fail the query, not end the
                    // input early as if it were complete.
                    let run = std::panic::AssertUnwindSafe(|| {
                        read_blocks(group, &env, batch_size, counters.partition(g), &tx)
                    });
                    if let Err(panic) = std::panic::catch_unwind(run) {
                        let what = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        let _ = tx.send(Err(DataFusionError::Execution(format!(
                            "Reading the input failed: {what}"
                        ))));
                    }
                })
                .map_err(|e| {
                    DataFusionError::Execution(format!("Cannot start a reader thread: {e}"))
                })?;
        }
        *round = BlockRound {
            queue: Some(Arc::downgrade(&queue)),
            started: HashSet::from([partition]),
        };
        Ok(Some(queue))
    }

    fn execute_blocks(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let batch_size = context.session_config().batch_size();
        let mut builder = RecordBatchReceiverStream::builder(Arc::clone(&self.schema), 2);
        let Some(queue) = self.block_queue(partition, batch_size)? else {
            return Ok(builder.build());
        };
        let tx = builder.tx();
        let flatten = match &self.spec.format {
            InputFormat::Json { flatten_spec } => flatten_spec.clone(),
            _ => None,
        };
        let schema = Arc::clone(&self.schema);
        let counters = Arc::clone(&self.counters);
        let budget = self.counters.budget(partition);
        builder.spawn_blocking(move || {
            let counters = counters.partition(partition);
            let mut decoder = JsonBlockDecoder::try_new(flatten.as_ref(), &schema, batch_size)?;
            loop {
                let next = match queue.rx.lock() {
                    Ok(rx) => rx.recv_timeout(DECODER_POLL),
                    Err(_) => return Err(DataFusionError::Internal("scan queue poisoned".into())),
                };
                let block = match next {
                    Ok(block) => block,
                    // The query ended while the readers wait on their input: let go of
                    // the queue, so that the last decoder to do so stops the readers.
                    Err(RecvTimeoutError::Timeout) if tx.is_closed() => return Ok(()),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return Ok(()), // every reader is done
                };
                if let Some(batch) = decoder.decode(&block?, &budget)?
                    && batch.num_rows() > 0
                {
                    counters
                        .rows
                        .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                    if tx.blocking_send(Ok(batch)).is_err() {
                        return Ok(());
                    }
                }
            }
        });
        Ok(builder.build())
    }

    /// Live counters of this scan.
    pub fn counters(&self) -> &Arc<ScanCounters> {
        &self.counters
    }

    /// The parse-exception budget shared by all partitions.
    pub fn budget(&self) -> &Arc<ParseBudget> {
        &self.counters.parse
    }

    /// The input spec.
    pub fn spec(&self) -> &ExternSpec {
        &self.spec
    }

    /// The split groups (one per reader).
    pub(crate) fn split_groups(&self) -> &[Vec<InputSplit>] {
        &self.splits
    }

    /// Output partitions.
    pub fn partition_count(&self) -> usize {
        self.properties.partitioning.partition_count()
    }
}

impl DisplayAs for ExternScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let files: usize = self.splits.iter().map(Vec::len).sum();
        write!(
            f,
            "ExternScanExec: inputSource={}, inputFormat={}, splits={files}, partitions={}",
            self.spec.source.type_name(),
            self.spec.format.type_name(),
            self.splits.len()
        )
    }
}

impl ExecutionPlan for ExternScanExec {
    fn name(&self) -> &str {
        "ExternScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if self.spec.format.splittable() {
            return self.execute_blocks(partition, context);
        }
        let splits = self.splits.get(partition).cloned().unwrap_or_default();
        let batch_size = context.session_config().batch_size();
        let mut builder = RecordBatchReceiverStream::builder(Arc::clone(&self.schema), 2);
        let tx = builder.tx();
        let spec = Arc::clone(&self.spec);
        let schema = Arc::clone(&self.schema);
        let budget = self.counters.budget(partition);
        let counters = Arc::clone(&self.counters);
        let env = ReadEnv::new(crate::remote::io_handle()?);
        // Dropping the stream (the query ended) stops a read waiting on the network.
        let stop = env.stop.clone().drop_guard();
        builder.spawn_blocking(move || {
            let counters = counters.partition(partition);
            let bytes = Arc::clone(&env.bytes_read);
            for split in &splits {
                let mut emit = |batch: RecordBatch| {
                    counters
                        .rows
                        .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                    counters
                        .bytes
                        .fetch_add(bytes.swap(0, Ordering::Relaxed), Ordering::Relaxed);
                    Ok(tx.blocking_send(Ok(batch)).is_ok())
                };
                read_split(
                    split,
                    &spec.format,
                    &schema,
                    batch_size,
                    &budget,
                    &env,
                    &mut emit,
                )?;
                counters
                    .bytes
                    .fetch_add(bytes.swap(0, Ordering::Relaxed), Ordering::Relaxed);
                counters.files.fetch_add(1, Ordering::Relaxed);
                if tx.is_closed() {
                    break;
                }
            }
            Ok(())
        });
        let stream = builder.build();
        let schema = stream.schema();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            stream.inspect(move |_| {
                let _ = &stop;
            }),
        )))
    }
}

/// A reader thread: cuts each split of `group` into line blocks for the decoders. A
/// failure is passed on as the queue's next item; a closed queue (the query ended) stops it.
fn read_blocks(
    group: Vec<InputSplit>,
    env: &ReadEnv,
    batch_size: usize,
    counters: &PartitionCounters,
    tx: &mpsc::SyncSender<Result<LineBlock>>,
) {
    // Remote readers build their requests on the I/O runtime.
    let _runtime = env.handle.enter();
    let bytes = &env.bytes_read;
    for split in group {
        let split = Arc::new(split);
        let read = read_line_blocks(&split, env, batch_size, &mut |block| {
            counters
                .bytes
                .fetch_add(bytes.swap(0, Ordering::Relaxed), Ordering::Relaxed);
            Ok(tx.send(Ok(block)).is_ok())
        });
        counters
            .bytes
            .fetch_add(bytes.swap(0, Ordering::Relaxed), Ordering::Relaxed);
        if let Err(e) = read {
            let _ = tx.send(Err(e));
            return;
        }
        counters.files.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that sends `body` under a much larger `Content-Length`, then waits; the
    /// receiver fires when the client has hung up.
    async fn stalling_server(body: String) -> (String, tokio::sync::oneshot::Receiver<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("http://{}/rows", listener.local_addr().unwrap());
        let (hung_up, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let head = "HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n";
            socket.write_all(head.as_bytes()).await.unwrap();
            socket.write_all(body.as_bytes()).await.unwrap();
            // Nothing more is sent: a read returns only when the client closes.
            while socket.read(&mut request).await.is_ok_and(|n| n > 0) {}
            let _ = hung_up.send(());
        });
        (uri, rx)
    }

    /// A query that stops reading (a LIMIT, a cancel) lets go of a stalled remote input at
    /// once, on both scan paths (line blocks for JSON, a reader per partition for CSV),
    /// instead of holding a thread and the connection until the read timeout.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropped_scan_lets_go_of_a_stalled_input() {
        for (format, line) in [
            (r#"{"type":"json"}"#, r#"{"a":"x","b":1}"#),
            (
                r#"{"type":"csv","findColumnsFromHeader":false,"columns":["a","b"]}"#,
                "x,1",
            ),
        ] {
            // Enough for a full line block (JSON) or a batch (CSV) before the stall.
            let body = format!("{line}\n").repeat(300_000);
            let (uri, hung_up) = stalling_server(body).await;
            let spec = ExternSpec::from_json(
                &format!(r#"{{"type":"http","uris":["{uri}"]}}"#),
                format,
                r#"[{"name":"a","type":"string"},{"name":"b","type":"long"}]"#,
            )
            .unwrap();
            let ctx = SessionContext::new();
            ctx.register_table("t", Arc::new(ExternTable::new(spec, Some(0))))
                .unwrap();
            let mut stream = ctx
                .sql("SELECT a, b FROM t")
                .await
                .unwrap()
                .execute_stream()
                .await
                .unwrap();
            let first = stream.next().await.unwrap().unwrap();
            assert!(first.num_rows() > 0, "{format}");
            drop(stream);
            tokio::time::timeout(std::time::Duration::from_secs(30), hung_up)
                .await
                .unwrap_or_else(|_| panic!("{format}: the reader still holds the connection"))
                .unwrap();
        }
    }

    #[tokio::test]
    async fn scans_inline_json_with_projection() {
        let spec = ExternSpec::from_json(
            r#"{"type":"inline","data":"{\"a\":\"x\",\"b\":1}\n{\"a\":\"y\",\"b\":2}"}"#,
            r#"{"type":"json"}"#,
            r#"[{"name":"a","type":"string"},{"name":"b","type":"long"}]"#,
        )
        .unwrap();
        let ctx = SessionContext::new();
        ctx.register_table("t", Arc::new(ExternTable::new(spec, Some(0))))
            .unwrap();
        let batches = ctx
            .sql("SELECT SUM(b) AS s FROM t")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let s = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap();
        assert_eq!(s.value(0), 3);
    }

    #[test]
    fn assigns_by_size() {
        let split = |n: u64| {
            InputSplit::whole(
                crate::split::Location::File(format!("/f{n}").into()),
                Some(n),
            )
        };
        let groups = assign_splits(vec![split(1), split(10), split(5), split(6)], 2);
        let sizes: Vec<u64> = groups
            .iter()
            .map(|g| g.iter().map(InputSplit::weight).sum())
            .collect();
        assert_eq!(sizes, vec![11, 11]);
        assert_eq!(assign_splits(vec![], 4).len(), 1);
    }

    #[test]
    fn signature_errors() {
        let e = ExternSpec::from_json(r#"{"type":"inline","data":""}"#, r#"{"type":"json"}"#, "[]")
            .unwrap_err();
        assert!(e.to_string().contains("at least one column"));
        let e = ExternSpec::from_json(
            r#"{"type":"inline","data":""}"#,
            r#"{"type":"json"}"#,
            r#"[{"name":"a","type":"string"},{"name":"a","type":"long"}]"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("Duplicate column [a]"));
    }
}
