//! Druid input formats (`inputFormat` JSON of EXTERN) and the readers that turn one split
//! into Arrow record batches of the declared signature.
//!
//! Rows that cannot be parsed, or whose fields cannot be converted to the declared type,
//! are parse exceptions: they are charged to a [`ParseBudget`] and dropped, and the read
//! fails once the budget (`maxParseExceptions`) is spent.

use std::io::{BufRead, Read};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, ListArray, PrimitiveBuilder, RecordBatch, StringArray,
    StringBuilder,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, Float32Type, Float64Type, Int64Type, SchemaRef,
};
use datafusion::common::{DataFusionError, Result};
use grove_common::MsqFault;
use grove_common::types::DruidType;
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::columnar::{ColumnarKind, read_columnar};
use crate::flatjson::FlatJsonDecoder;
use crate::flatten::{FlattenSpec, Flattener};
use crate::split::InputSplit;

/// A Druid input format.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum InputFormat {
    /// Newline-delimited JSON objects.
    Json {
        /// Druid's flattenSpec: root, path (JsonPath), jq and tree fields.
        #[serde(
            rename = "flattenSpec",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        flatten_spec: Option<FlattenSpec>,
    },
    /// Comma-separated values.
    Csv(DelimitedFormat),
    /// Tab-separated (or any `delimiter`) values.
    Tsv(DelimitedFormat),
    /// Apache Parquet.
    Parquet(ColumnarFormat),
    /// Apache ORC.
    Orc(ColumnarFormat),
    /// Avro object container files.
    #[serde(rename = "avro_ocf")]
    AvroOcf(ColumnarFormat),
}

/// Options shared by the columnar formats (`parquet`, `orc`, `avro_ocf`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ColumnarFormat {
    /// Read binary columns as UTF-8 strings (otherwise base64 text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_as_string: Option<bool>,
    /// Druid's flattenSpec; only field discovery (the default) is supported here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flatten_spec: Option<FlattenSpec>,
    /// Avro reader schema (accepted; the writer schema in the file is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<serde_json::Value>,
}

/// Options shared by `csv` and `tsv`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DelimitedFormat {
    /// Column names, in file order (required unless `findColumnsFromHeader`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// Take column names from the first row (after `skipHeaderRows`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub find_columns_from_header: Option<bool>,
    /// Rows skipped at the start of each file.
    #[serde(default)]
    pub skip_header_rows: usize,
    /// Delimiter of the values of an array cell (default Ctrl-A, `\u0001`); applies to
    /// columns declared as arrays (`ARRAY<STRING>`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_delimiter: Option<String>,
    /// Field delimiter (tsv only; default tab).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
}

impl InputFormat {
    /// Parses the `inputFormat` JSON.
    pub fn from_json(text: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            DataFusionError::Plan(format!("Invalid inputFormat JSON [{text}]: {e}"))
        })?;
        let type_name = value.get("type").and_then(|t| t.as_str()).unwrap_or("");
        if ["avro_stream", "regex", "protobuf", "kafka", "javascript"].contains(&type_name) {
            return Err(DataFusionError::NotImplemented(format!(
                "inputFormat type [{type_name}] is not supported by Grove; supported: json, \
                 csv, tsv, parquet, orc, avro_ocf"
            )));
        }
        let format: InputFormat = serde_json::from_value(value)
            .map_err(|e| DataFusionError::Plan(format!("Invalid inputFormat [{text}]: {e}")))?;
        format.validate()?;
        Ok(format)
    }

    fn validate(&self) -> Result<()> {
        match self {
            Self::Json { flatten_spec } => {
                if let Some(spec) = flatten_spec {
                    spec.compile()?;
                }
                Ok(())
            }
            Self::Parquet(c) | Self::Orc(c) | Self::AvroOcf(c) => {
                if c.flatten_spec
                    .as_ref()
                    .is_some_and(|f| !f.fields.is_empty())
                {
                    return Err(DataFusionError::NotImplemented(format!(
                        "flattenSpec fields are not supported by Grove for [{}]; declare \
                         top-level columns in the signature",
                        self.type_name()
                    )));
                }
                Ok(())
            }
            Self::Csv(d) | Self::Tsv(d) => {
                if d.columns.is_empty() && d.find_columns_from_header != Some(true) {
                    return Err(DataFusionError::Plan(
                        "Invalid inputFormat: if [columns] is not set, [findColumnsFromHeader] \
                         must be true and the first row of the data must be the header"
                            .into(),
                    ));
                }
                let delimiter = self.delimiter();
                if delimiter.len() != 1 {
                    return Err(DataFusionError::NotImplemented(format!(
                        "Grove supports single-byte delimiters only, got [{delimiter}]"
                    )));
                }
                Ok(())
            }
        }
    }

    /// Druid's type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Json { .. } => "json",
            Self::Csv(_) => "csv",
            Self::Tsv(_) => "tsv",
            Self::Parquet(_) => "parquet",
            Self::Orc(_) => "orc",
            Self::AvroOcf(_) => "avro_ocf",
        }
    }

    /// Whether a file in this format can be cut into byte ranges at line boundaries
    /// (newline-delimited JSON; CSV/TSV may quote newlines and have headers).
    pub fn splittable(&self) -> bool {
        matches!(self, Self::Json { .. })
    }

    fn delimiter(&self) -> String {
        match self {
            Self::Tsv(d) => d.delimiter.clone().unwrap_or_else(|| "\t".into()),
            _ => ",".into(),
        }
    }
}

/// Counts parse exceptions against `maxParseExceptions`, shared by every reader of a query.
/// A reader may hold a view of the budget that also counts its own exceptions
/// ([`ParseBudget::counting_into`]).
#[derive(Debug)]
pub struct ParseBudget {
    shared: Arc<SharedBudget>,
    local: Option<Arc<AtomicU64>>,
}

#[derive(Debug)]
struct SharedBudget {
    max: Option<u64>,
    count: AtomicU64,
    first: Mutex<Vec<String>>,
}

/// How many parse-exception messages a budget keeps for reports.
const KEPT_MESSAGES: usize = 10;

impl ParseBudget {
    /// A budget of `max` exceptions (`None` = unlimited).
    pub fn new(max: Option<u64>) -> Self {
        Self {
            shared: Arc::new(SharedBudget {
                max,
                count: AtomicU64::new(0),
                first: Mutex::new(Vec::new()),
            }),
            local: None,
        }
    }

    /// The same budget, also counting the exceptions recorded through it into `local`
    /// (a worker's warnings counter).
    pub fn counting_into(&self, local: Arc<AtomicU64>) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            local: Some(local),
        }
    }

    /// Records one exception; fails when the budget is exceeded.
    pub fn record(&self, message: String) -> Result<()> {
        let shared = &self.shared;
        let n = shared.count.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(local) = &self.local {
            local.fetch_add(1, Ordering::Relaxed);
        }
        tracing::warn!(parse_exception = %message, "CannotParseExternalData");
        if let Ok(mut first) = shared.first.lock()
            && first.len() < KEPT_MESSAGES
        {
            first.push(message.clone());
        }
        match shared.max {
            Some(0) => Err(MsqFault::CannotParseExternalData { message }.into()),
            Some(max) if n > max => Err(MsqFault::TooManyWarnings {
                root_error_code: "CannotParseExternalData".into(),
                max_warnings: i64::try_from(max).unwrap_or(i64::MAX),
            }
            .into()),
            _ => Ok(()),
        }
    }

    /// The most exceptions tolerated (`None` = unlimited).
    pub fn max(&self) -> Option<u64> {
        self.shared.max
    }

    /// Exceptions recorded so far (through any view).
    pub fn count(&self) -> u64 {
        self.shared.count.load(Ordering::Relaxed)
    }

    /// The first few messages.
    pub fn messages(&self) -> Vec<String> {
        self.shared
            .first
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }
}

/// What a reader needs from its surroundings.
#[derive(Clone, Debug)]
pub struct ReadEnv {
    /// The runtime that drives remote byte streams.
    pub handle: Handle,
    /// Raw bytes read so far (for the input counters).
    pub bytes_read: Arc<AtomicU64>,
    /// Cancelled when nobody wants this reader's bytes any more (the query ended): a
    /// remote read waiting on the network then fails at once instead of waiting for data
    /// or for the read timeout.
    pub stop: CancellationToken,
}

impl ReadEnv {
    /// An environment on `handle` with fresh counters and its own stop token.
    pub fn new(handle: Handle) -> Self {
        Self::with_stop(handle, CancellationToken::new())
    }

    /// An environment on `handle` with fresh counters, stopped by `stop`.
    pub fn with_stop(handle: Handle, stop: CancellationToken) -> Self {
        Self {
            handle,
            bytes_read: Arc::default(),
            stop,
        }
    }
}

/// Reads one split, calling `emit` with each batch (of `schema`, which may be a projection
/// of the signature). Stops early when `emit` returns false.
pub fn read_split(
    split: &InputSplit,
    format: &InputFormat,
    schema: &SchemaRef,
    batch_size: usize,
    budget: &ParseBudget,
    env: &ReadEnv,
    emit: &mut dyn FnMut(RecordBatch) -> Result<bool>,
) -> Result<()> {
    let columnar = match format {
        InputFormat::Parquet(c) => Some((ColumnarKind::Parquet, c)),
        InputFormat::Orc(c) => Some((ColumnarKind::Orc, c)),
        InputFormat::AvroOcf(c) => Some((ColumnarKind::Avro, c)),
        _ => None,
    };
    if let Some((kind, options)) = columnar {
        let file = split.open_file(env)?;
        return read_columnar(
            kind,
            file,
            options.binary_as_string == Some(true),
            &split.to_string(),
            schema,
            batch_size,
            budget,
            emit,
        );
    }
    if let InputFormat::Json { flatten_spec } = format {
        return read_json(
            split,
            flatten_spec.as_ref(),
            schema,
            batch_size,
            budget,
            env,
            emit,
        );
    }
    let reader = split.open(env)?;
    match format {
        InputFormat::Json { .. } => Ok(()),
        InputFormat::Csv(d) | InputFormat::Tsv(d) => {
            let delimiter = format
                .delimiter()
                .as_bytes()
                .first()
                .copied()
                .unwrap_or(b',');
            read_delimited(
                split, reader, d, delimiter, schema, batch_size, budget, emit,
            )
        }
        InputFormat::Parquet(_) | InputFormat::Orc(_) | InputFormat::AvroOcf(_) => Ok(()),
    }
}

fn io_error(split: &InputSplit, e: std::io::Error) -> DataFusionError {
    DataFusionError::External(Box::new(MsqFault::CannotParseExternalData {
        message: format!("Unable to read input [{split}]: {e}"),
    }))
}

/// Cuts a message fragment to 200 bytes (on a character boundary).
pub(crate) fn truncate(s: &str) -> String {
    const MAX: usize = 200;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

fn row_error(split: &InputSplit, line: u64, row: &str, reason: &str) -> String {
    format!(
        "Unable to parse row [{}] (Path: {split}, Line: {line}): {reason}",
        truncate(row)
    )
}

fn new_json_decoder(schema: &SchemaRef, batch_size: usize) -> Result<arrow::json::reader::Decoder> {
    arrow::json::ReaderBuilder::new(Arc::clone(schema))
        .with_batch_size(batch_size)
        .with_coerce_primitive(true)
        .with_strict_mode(false)
        .build_decoder()
        .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))
}

/// Raw bytes a line block aims for (a block also ends after `batch_size` lines).
const BLOCK_BYTES: usize = 4 << 20;

/// A run of whole lines of one newline-delimited split: cut by the thread that reads (and
/// decompresses) the split, decoded by any worker.
#[derive(Debug)]
pub(crate) struct LineBlock {
    /// The split the lines come from (for messages).
    pub(crate) split: Arc<InputSplit>,
    /// Line number (1-based) of the first line.
    pub(crate) first_line: u64,
    /// The lines, each ending with `\n` except perhaps the split's last.
    pub(crate) bytes: Vec<u8>,
    /// Where the buffer goes back when the block is dropped (decoded).
    pool: Option<BlockPool>,
}

impl Drop for LineBlock {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            pool.put(std::mem::take(&mut self.bytes));
        }
    }
}

/// Block buffers handed back once decoded, for the reader to fill again. A fresh buffer
/// costs a page fault per page (the kernel zeroes each one); a reused one does not, and
/// the allocator returns freed blocks of this size to the kernel at once.
#[derive(Clone, Debug, Default)]
struct BlockPool(Arc<Mutex<Vec<Vec<u8>>>>);

impl BlockPool {
    /// Idle buffers kept (the blocks in flight are bounded by the scan's channel).
    const KEEP: usize = 8;

    /// An empty buffer of at least `capacity` bytes.
    fn get(&self, capacity: usize) -> Vec<u8> {
        let reused = self.0.lock().ok().and_then(|mut idle| idle.pop());
        match reused {
            Some(mut buf) => {
                buf.clear();
                buf.reserve(capacity);
                buf
            }
            None => Vec::with_capacity(capacity),
        }
    }

    fn put(&self, buf: Vec<u8>) {
        if let Ok(mut idle) = self.0.lock()
            && idle.len() < Self::KEEP
        {
            idle.push(buf);
        }
    }
}

/// Reads a newline-delimited split into blocks of at most `max_lines` lines (and about
/// [`BLOCK_BYTES`]), handing each to `send`; stops early when `send` returns false.
pub(crate) fn read_line_blocks(
    split: &Arc<InputSplit>,
    env: &ReadEnv,
    max_lines: usize,
    send: &mut dyn FnMut(LineBlock) -> Result<bool>,
) -> Result<()> {
    let mut reader = split.open(env)?;
    let max_lines = max_lines.max(1);
    // Reads top a block up in steps of READ_BYTES, so a block never outgrows this.
    const READ_BYTES: usize = 256 << 10;
    let capacity = BLOCK_BYTES + READ_BYTES;
    let pool = BlockPool::default();
    let mut pending: Vec<u8> = pool.get(capacity);
    let mut next_line = 1u64;
    let mut eof = false;
    loop {
        while !eof && pending.len() < BLOCK_BYTES {
            let start = pending.len();
            pending.resize(start + READ_BYTES, 0);
            let n = reader
                .read(&mut pending[start..])
                .map_err(|e| io_error(split, e))?;
            pending.truncate(start + n);
            eof = n == 0;
        }
        if pending.is_empty() {
            return Ok(());
        }
        // Cut after the max_lines-th newline, else after the last one, else (at the end
        // of the split) take everything; a line longer than a block keeps reading.
        let mut lines = 0usize;
        let mut cut = None;
        for pos in memchr::memchr_iter(b'\n', &pending) {
            lines += 1;
            cut = Some(pos + 1);
            if lines == max_lines {
                break;
            }
        }
        let cut = match cut {
            Some(c) => c,
            None if eof => pending.len(),
            None => {
                pending.reserve(BLOCK_BYTES);
                let start = pending.len();
                pending.resize(start + BLOCK_BYTES, 0);
                let n = reader
                    .read(&mut pending[start..])
                    .map_err(|e| io_error(split, e))?;
                pending.truncate(start + n);
                eof = n == 0;
                continue;
            }
        };
        let mut next = pool.get(capacity.max(pending.len() - cut));
        next.extend_from_slice(&pending[cut..]);
        pending.truncate(cut);
        let mut block = std::mem::replace(&mut pending, next);
        if block.last() != Some(&b'\n') {
            block.push(b'\n');
            lines += 1;
        }
        let first_line = next_line;
        next_line += lines as u64;
        let block = LineBlock {
            split: Arc::clone(split),
            first_line,
            bytes: block,
            pool: Some(pool.clone()),
        };
        if !send(block)? {
            return Ok(());
        }
    }
}

/// Decodes JSON line blocks into batches of `schema`, applying a flattenSpec when given.
pub(crate) struct JsonBlockDecoder {
    /// Flat rows into primitive columns; `None` when the schema has other types.
    flat: Option<FlatJsonDecoder>,
    decoder: arrow::json::reader::Decoder,
    flattener: Option<Flattener>,
    schema: SchemaRef,
    batch_size: usize,
}

impl JsonBlockDecoder {
    /// A decoder for blocks of at most `batch_size` lines.
    pub(crate) fn try_new(
        flatten_spec: Option<&FlattenSpec>,
        schema: &SchemaRef,
        batch_size: usize,
    ) -> Result<Self> {
        let flattener = flatten_spec
            .map(FlattenSpec::compile)
            .transpose()?
            .filter(|f| !f.is_identity());
        Ok(Self {
            flat: FlatJsonDecoder::try_new(schema),
            decoder: new_json_decoder(schema, batch_size)?,
            flattener,
            schema: Arc::clone(schema),
            batch_size,
        })
    }

    /// Decodes one block; bad lines are charged to `budget`.
    pub(crate) fn decode(
        &mut self,
        block: &LineBlock,
        budget: &ParseBudget,
    ) -> Result<Option<RecordBatch>> {
        let split = &block.split;
        if self.flattener.is_none() {
            if let Some(flat) = self.flat.as_mut()
                && let Some(batch) = flat.decode(&block.bytes)
            {
                return Ok(Some(batch));
            }
            let fast = self.decoder.decode(&block.bytes).and_then(|consumed| {
                if consumed == block.bytes.len() {
                    self.decoder.flush()
                } else {
                    Err(arrow::error::ArrowError::JsonError(
                        "incomplete block".into(),
                    ))
                }
            });
            match fast {
                Ok(batch) => return Ok(batch),
                Err(_) => self.decoder = new_json_decoder(&self.schema, self.batch_size)?,
            }
        }
        let mut buf: Vec<u8> = Vec::with_capacity(block.bytes.len());
        let mut lines: Vec<(u64, usize, usize)> = Vec::new();
        let mut line_no = block.first_line;
        let mut from = 0;
        for end in memchr::memchr_iter(b'\n', &block.bytes).map(|p| p + 1) {
            let line = &block.bytes[from..end];
            from = end;
            line_no += 1;
            if line.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            let start = buf.len();
            match &self.flattener {
                None => {
                    buf.extend_from_slice(line);
                    lines.push((line_no - 1, start, buf.len()));
                }
                Some(f) => match f.flatten_line(line, &mut buf) {
                    Ok(()) => {
                        buf.push(b'\n');
                        lines.push((line_no - 1, start, buf.len()));
                    }
                    Err(reason) => {
                        buf.truncate(start);
                        let text = String::from_utf8_lossy(line);
                        budget.record(row_error(split, line_no - 1, text.trim_end(), &reason))?;
                    }
                },
            }
        }
        if lines.is_empty() {
            return Ok(None);
        }
        decode_json_lines(
            split,
            &mut self.decoder,
            &buf,
            &lines,
            &self.schema,
            self.batch_size,
            budget,
        )
    }
}

fn read_json(
    split: &InputSplit,
    flatten_spec: Option<&FlattenSpec>,
    schema: &SchemaRef,
    batch_size: usize,
    budget: &ParseBudget,
    env: &ReadEnv,
    emit: &mut dyn FnMut(RecordBatch) -> Result<bool>,
) -> Result<()> {
    let mut decoder = JsonBlockDecoder::try_new(flatten_spec, schema, batch_size)?;
    let split = Arc::new(split.clone());
    read_line_blocks(
        &split,
        env,
        batch_size,
        &mut |block| match decoder.decode(&block, budget)? {
            Some(batch) if batch.num_rows() > 0 => emit(batch),
            _ => Ok(true),
        },
    )
}

/// Decodes a block of lines; on failure, falls back to one line at a time so that each bad
/// line is reported (with its number) and the good ones are kept.
fn decode_json_lines(
    split: &InputSplit,
    decoder: &mut arrow::json::reader::Decoder,
    buf: &[u8],
    lines: &[(u64, usize, usize)],
    schema: &SchemaRef,
    batch_size: usize,
    budget: &ParseBudget,
) -> Result<Option<RecordBatch>> {
    let fast = decoder.decode(buf).and_then(|consumed| {
        if consumed == buf.len() {
            decoder.flush()
        } else {
            Err(arrow::error::ArrowError::JsonError(
                "incomplete block".into(),
            ))
        }
    });
    match fast {
        Ok(batch) => return Ok(batch),
        Err(_) => *decoder = new_json_decoder(schema, batch_size)?,
    }
    // Slow path: read every field as a string, one line at a time, then convert the
    // strings to the declared types the way CSV values are ("12.7" -> 12, "" -> NULL),
    // charging each bad line or value to the budget.
    let strings: SchemaRef = Arc::new(arrow::datatypes::Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| {
                // Arrays stay arrays, of strings (JSON numbers coerced to text).
                let t = match f.data_type() {
                    DataType::List(_) => DruidType::StringArray.arrow_type(),
                    _ => DataType::Utf8,
                };
                Field::new(f.name(), t, true)
            })
            .collect::<Vec<_>>(),
    ));
    let mut string_decoder = new_json_decoder(&strings, lines.len().max(1))?;
    let mut good_lines = Vec::with_capacity(lines.len());
    for &(line_no, start, end) in lines {
        let bytes = &buf[start..end];
        let mut probe = new_json_decoder(&strings, 1)?;
        let checked = probe.decode(bytes).and_then(|_| probe.flush());
        match checked {
            Ok(Some(_)) => {
                string_decoder
                    .decode(bytes)
                    .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))?;
                good_lines.push(line_no);
            }
            Ok(None) => {}
            Err(e) => {
                let text = String::from_utf8_lossy(bytes);
                budget.record(row_error(split, line_no, text.trim_end(), &e.to_string()))?;
            }
        }
    }
    let Some(batch) = string_decoder
        .flush()
        .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))?
    else {
        return Ok(None);
    };
    let columns = batch.columns().to_vec();
    coerce_batch(split, schema, columns, &good_lines, budget, None).map(Some)
}

#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename these
fn read_delimited(
    split: &InputSplit,
    reader: Box<dyn BufRead + Send>,
    options: &DelimitedFormat,
    delimiter: u8,
    schema: &SchemaRef,
    batch_size: usize,
    budget: &ParseBudget,
    emit: &mut dyn FnMut(RecordBatch) -> Result<bool>,
) -> Result<()> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(reader);
    let mut records = csv.records();
    let mut skip = options.skip_header_rows;
    let mut columns = options.columns.clone();
    if options.find_columns_from_header == Some(true) {
        skip += 1;
    }
    let mut record_no = 0usize;
    // Which file column feeds each schema field.
    let mut positions: Option<Vec<Option<usize>>> = None;
    let mut builders: Vec<StringBuilder> = Vec::new();
    let mut lines: Vec<u64> = Vec::new();
    let mut rows = 0usize;
    loop {
        let next = records.next();
        let record = match next {
            None => None,
            Some(Ok(r)) => Some(r),
            Some(Err(e)) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                budget.record(row_error(split, line, "", &e.to_string()))?;
                continue;
            }
        };
        if let Some(record) = &record {
            record_no += 1;
            if record_no <= skip {
                if options.find_columns_from_header == Some(true) && record_no == skip {
                    columns = record.iter().map(|s| s.to_string()).collect();
                }
                continue;
            }
            let pos = positions.get_or_insert_with(|| {
                builders = schema
                    .fields()
                    .iter()
                    .map(|_| StringBuilder::new())
                    .collect();
                schema
                    .fields()
                    .iter()
                    .map(|f| columns.iter().position(|c| c == f.name()))
                    .collect()
            });
            let line = record.position().map(|p| p.line()).unwrap_or(0);
            // Fields beyond the declared columns are ignored, as Druid's reader does.
            for (b, p) in builders.iter_mut().zip(pos.iter()) {
                match p.and_then(|i| record.get(i)) {
                    Some(v) => b.append_value(v),
                    None => b.append_null(),
                }
            }
            lines.push(line);
            rows += 1;
        }
        if rows >= batch_size || (record.is_none() && rows > 0) {
            let strings: Vec<ArrayRef> = builders
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef)
                .collect();
            let batch = coerce_batch(
                split,
                schema,
                strings,
                &lines,
                budget,
                options.list_delimiter.as_deref(),
            )?;
            lines.clear();
            rows = 0;
            if batch.num_rows() > 0 && !emit(batch)? {
                return Ok(());
            }
        }
        if record.is_none() {
            return Ok(());
        }
    }
}

/// The declared (signature) type behind an Arrow field type of a reader's schema.
fn declared_type(data_type: &DataType) -> DruidType {
    match data_type {
        DataType::Int64 => DruidType::Long,
        DataType::Float64 => DruidType::Double,
        DataType::Float32 => DruidType::Float,
        DataType::List(element) => declared_type(element.data_type())
            .array_of()
            .unwrap_or(DruidType::StringArray),
        _ => DruidType::String,
    }
}

/// Druid's default multi-value delimiter for CSV and TSV (Ctrl-A).
const DEFAULT_LIST_DELIMITER: &str = "\u{1}";

/// Converts string columns (or, from JSON, lists of strings) to the schema's types. Empty
/// strings are NULL for non-string columns; values that do not parse are parse exceptions
/// and their rows are dropped. For array columns a string cell is split on
/// `list_delimiter` (CSV and TSV; `None` for JSON, whose arrays arrive as lists).
fn coerce_batch(
    split: &InputSplit,
    schema: &SchemaRef,
    strings: Vec<ArrayRef>,
    lines: &[u64],
    budget: &ParseBudget,
    list_delimiter: Option<&str>,
) -> Result<RecordBatch> {
    let rows = lines.len();
    let mut keep = vec![true; rows];
    let mut columns = Vec::with_capacity(strings.len());
    for (field, array) in schema.fields().iter().zip(strings) {
        let target = declared_type(field.data_type());
        let mut bad = |row: usize, value: &str| -> Result<()> {
            keep[row] = false;
            budget.record(row_error(
                split,
                lines[row],
                value,
                &format!(
                    "could not convert value [{value}] to {} for column [{}]",
                    target.native_name().to_ascii_lowercase(),
                    field.name()
                ),
            ))
        };
        let out: ArrayRef = match target.element() {
            None => {
                let strs = array
                    .as_string_opt::<i32>()
                    .ok_or_else(|| DataFusionError::Internal("expected a string column".into()))?;
                convert_strings(strs, target, &mut |i, v| bad(i, v))?
            }
            Some(element) => {
                let (offsets, values, nulls) =
                    list_of_strings(&array, list_delimiter.unwrap_or(DEFAULT_LIST_DELIMITER))?;
                // Element i belongs to the row whose offsets range holds it.
                let row_of = |i: usize| offsets.partition_point(|&o| o as usize <= i) - 1;
                let values = convert_strings(&values, element, &mut |i, v| bad(row_of(i), v))?;
                let item = Arc::new(Field::new_list_field(values.data_type().clone(), true));
                Arc::new(ListArray::try_new(item, offsets, values, nulls)?)
            }
        };
        columns.push(out);
    }
    let batch = RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)),
    )?;
    if keep.iter().all(|k| *k) {
        return Ok(batch);
    }
    Ok(filter_record_batch(&batch, &BooleanArray::from(keep))?)
}

/// The elements of a list-of-strings column: a `ListArray` of strings as it is, or a
/// string column split on `delimiter` (an empty or NULL cell is a NULL row).
fn list_of_strings(
    array: &ArrayRef,
    delimiter: &str,
) -> Result<(OffsetBuffer<i32>, StringArray, Option<NullBuffer>)> {
    if let Some(list) = array.as_list_opt::<i32>() {
        let values = list
            .values()
            .as_string_opt::<i32>()
            .ok_or_else(|| DataFusionError::Internal("expected a list of strings".into()))?;
        return Ok((
            list.offsets().clone(),
            values.clone(),
            list.nulls().cloned(),
        ));
    }
    let strs = array
        .as_string_opt::<i32>()
        .ok_or_else(|| DataFusionError::Internal("expected a string column".into()))?;
    let mut values = StringBuilder::new();
    let mut lengths = Vec::with_capacity(strs.len());
    let mut valid = Vec::with_capacity(strs.len());
    for cell in strs.iter() {
        match cell {
            None | Some("") => {
                lengths.push(0);
                valid.push(false);
            }
            Some(cell) => {
                let mut n = 0;
                for part in cell.split(delimiter) {
                    values.append_value(part);
                    n += 1;
                }
                lengths.push(n);
                valid.push(true);
            }
        }
    }
    Ok((
        OffsetBuffer::from_lengths(lengths),
        values.finish(),
        Some(NullBuffer::from(valid)),
    ))
}

/// Converts strings to a scalar Druid type; `bad(i, value)` is called for each value that
/// does not parse (it becomes NULL).
fn convert_strings(
    strs: &StringArray,
    target: DruidType,
    bad: &mut dyn FnMut(usize, &str) -> Result<()>,
) -> Result<ArrayRef> {
    fn numbers<T: ArrowPrimitiveType>(
        strs: &StringArray,
        parse: impl Fn(&str) -> Option<T::Native>,
        bad: &mut dyn FnMut(usize, &str) -> Result<()>,
    ) -> Result<ArrayRef> {
        let mut builder = PrimitiveBuilder::<T>::with_capacity(strs.len());
        for (i, v) in strs.iter().enumerate() {
            match v.map(str::trim) {
                None | Some("") => builder.append_null(),
                Some(s) => match parse(s) {
                    Some(n) => builder.append_value(n),
                    None => {
                        bad(i, s)?;
                        builder.append_null();
                    }
                },
            }
        }
        Ok(Arc::new(builder.finish()))
    }
    match target {
        DruidType::Long => numbers::<Int64Type>(strs, parse_long, bad),
        DruidType::Double => numbers::<Float64Type>(strs, |s| s.parse().ok(), bad),
        DruidType::Float => numbers::<Float32Type>(strs, |s| s.parse().ok(), bad),
        _ => Ok(Arc::new(strs.clone())),
    }
}

/// Druid's long parsing: an integer, or a decimal number truncated toward zero.
pub(crate) fn parse_long(s: &str) -> Option<i64> {
    s.parse::<i64>().ok().or_else(|| {
        s.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && f.abs() < 9.2e18)
            .map(|f| f.trunc() as i64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::split::Location;
    use arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn decoded_blocks_hand_their_buffers_back() {
        let pool = BlockPool::default();
        let mut buf = pool.get(1 << 16);
        buf.extend_from_slice(b"{}\n");
        let ptr = buf.as_ptr();
        let split = Arc::new(InputSplit::whole(Location::Inline("{}".into()), None));
        drop(LineBlock {
            split,
            first_line: 1,
            bytes: buf,
            pool: Some(pool.clone()),
        });
        let again = pool.get(1 << 10);
        assert_eq!(again.as_ptr(), ptr, "the same buffer");
        assert!(again.is_empty() && again.capacity() >= 1 << 16);
        let other = pool.get(1);
        assert_ne!(other.as_ptr(), ptr, "handed out once");
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]))
    }

    fn read(data: &str, format: &str, budget: &ParseBudget) -> Result<Vec<RecordBatch>> {
        let split = InputSplit::whole(Location::Inline(Arc::from(data)), None);
        let format = InputFormat::from_json(format)?;
        let mut out = Vec::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let env = ReadEnv::new(rt.handle().clone());
        read_split(&split, &format, &schema(), 2, budget, &env, &mut |b| {
            out.push(b);
            Ok(true)
        })?;
        Ok(out)
    }

    fn rows(batches: &[RecordBatch]) -> usize {
        batches.iter().map(|b| b.num_rows()).sum()
    }

    #[test]
    fn json_reads_and_coerces() {
        let budget = ParseBudget::new(Some(0));
        let b = read(
            "{\"s\":\"a\",\"n\":1}\n\n{\"s\":5,\"n\":\"7\"}\n{\"x\":1}\n",
            r#"{"type":"json"}"#,
            &budget,
        )
        .unwrap();
        assert_eq!(rows(&b), 3);
    }

    #[test]
    fn json_bad_line_is_a_parse_exception_with_line_number() {
        let strict = ParseBudget::new(Some(0));
        let err = read(
            "{\"s\":\"a\"}\n{\"s\": oops\n",
            r#"{"type":"json"}"#,
            &strict,
        )
        .unwrap_err();
        let fault = MsqFault::find(&err).unwrap();
        assert_eq!(fault.error_code(), "CannotParseExternalData");
        assert!(fault.message().contains("Line: 2"), "{}", fault.message());
        let lenient = ParseBudget::new(Some(5));
        let b = read(
            "{\"s\":\"a\"}\n{\"s\": oops\n{\"n\":\"x\"}\n{\"s\":\"b\",\"n\":\"12.7\"}\n{\"n\":\"\"}\n",
            r#"{"type":"json"}"#,
            &lenient,
        )
        .unwrap();
        assert_eq!(rows(&b), 3);
        assert_eq!(lenient.count(), 2);
        let all = arrow::compute::concat_batches(&schema(), &b).unwrap();
        let n = all
            .column(1)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap();
        assert_eq!(
            (n.value(1), n.is_null(2)),
            (12, true),
            "\"12.7\" -> 12, \"\" -> NULL"
        );
        let tight = ParseBudget::new(Some(1));
        let err = read("x\ny\n", r#"{"type":"json"}"#, &tight).unwrap_err();
        assert_eq!(
            MsqFault::find(&err).unwrap().error_code(),
            "TooManyWarnings"
        );
    }

    #[test]
    fn csv_with_header_and_types() {
        let budget = ParseBudget::new(Some(1));
        let b = read(
            "junk\nn,s\n1,a\n\"2\",\"b,c\"\n,d\nbad,e\n",
            r#"{"type":"csv","findColumnsFromHeader":true,"skipHeaderRows":1}"#,
            &budget,
        )
        .unwrap();
        assert_eq!(rows(&b), 3);
        assert_eq!(budget.count(), 1);
        assert!(budget.messages()[0].contains("could not convert value [bad] to long"));
        let e = InputFormat::from_json(r#"{"type":"csv"}"#).unwrap_err();
        assert!(e.to_string().contains("findColumnsFromHeader"));
    }

    #[test]
    fn tsv_with_columns() {
        let budget = ParseBudget::new(Some(0));
        let b = read(
            "x\t3\ny\t4.9\n",
            r#"{"type":"tsv","columns":["s","n"]}"#,
            &budget,
        )
        .unwrap();
        assert_eq!(rows(&b), 2);
        let n = b[0]
            .column(1)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap();
        assert_eq!(n.value(1), 4);
    }
}
