//! Readers for Druid's columnar input formats (`parquet`, `orc`, `avro_ocf`).
//!
//! Each reader projects the declared columns that exist in the file, then conforms every
//! file batch to the declared signature: missing columns become NULL, other types are
//! converted the way Druid converts them (numbers and decimals truncate toward zero for
//! `long`, timestamps and dates become epoch milliseconds, booleans `1`/`0` or
//! `"true"`/`"false"`, binary is text or base64, nested values JSON text). String values
//! that do not convert to a declared number are parse exceptions: they are charged to the
//! [`ParseBudget`] and their rows dropped.

use std::fmt::Display;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Builder, Float64Builder, Int64Array,
    Int64Builder, RecordBatch, RecordBatchOptions, StringArray, StringBuilder, new_null_array,
};
use arrow::compute::{can_cast_types, cast, filter_record_batch};
use arrow::datatypes::{DataType, Field, Int64Type, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{DataFusionError, Result};
use grove_common::MsqFault;
use prost::Message;

use crate::format::{ParseBudget, parse_long, truncate};

/// Which columnar format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ColumnarKind {
    /// Apache Parquet (`parquet`).
    Parquet,
    /// Apache ORC (`orc`).
    Orc,
    /// Avro object container file (`avro_ocf`).
    Avro,
}

/// Reads a whole columnar file, emitting batches of exactly `schema` (field names and
/// types: Utf8 for Druid string, Int64 long, Float64 double, Float32 float; all nullable).
///
/// Only the declared columns that exist in the file are read; declared columns missing
/// from the file are all NULL. `binary_as_string` decodes binary values as (lossy) UTF-8
/// text; otherwise they become base64 text, as in Druid. Stops early when `emit` returns
/// `Ok(false)`. A file the underlying reader rejects fails with
/// `CannotParseExternalData`.
#[allow(clippy::too_many_arguments)] // the signature mirrors `read_split`
pub fn read_columnar(
    kind: ColumnarKind,
    file: File,
    binary_as_string: bool,
    source_name: &str,
    schema: &SchemaRef,
    batch_size: usize,
    budget: &ParseBudget,
    emit: &mut dyn FnMut(RecordBatch) -> Result<bool>,
) -> Result<()> {
    let (_, mut batches) = guard(source_name, || {
        open(kind, file, source_name, schema, batch_size)
    })?;
    let mut conformer = Conformer {
        schema,
        binary_as_string,
        source_name,
        budget,
        rows_read: 0,
    };
    loop {
        let next = guard(source_name, || Ok(batches.next()))?;
        let Some(batch) = next else {
            return Ok(());
        };
        let batch = batch.map_err(|e| read_error(source_name, e))?;
        let batch = conformer.conform(&batch)?;
        if batch.num_rows() > 0 && !emit(batch)? {
            return Ok(());
        }
    }
}

/// File batches, as the underlying reader produces them.
type Batches = Box<dyn Iterator<Item = std::result::Result<RecordBatch, ArrowError>>>;

/// Runs `f`, turning a panic into `CannotParseExternalData`: the decoders of these formats
/// can panic on corrupt files (parquet does on mangled footers and pages).
fn guard<T>(source_name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the decoder panicked".into());
        Err(read_error(source_name, what))
    })
}

fn read_error(source_name: &str, e: impl Display) -> DataFusionError {
    DataFusionError::External(Box::new(MsqFault::CannotParseExternalData {
        message: format!("Unable to read input [{source_name}]: {e}"),
    }))
}

/// Opens `file`, projecting the declared columns it has; returns the file's projected
/// schema and its batches.
fn open(
    kind: ColumnarKind,
    file: File,
    source_name: &str,
    schema: &SchemaRef,
    batch_size: usize,
) -> Result<(SchemaRef, Batches)> {
    let batch_size = batch_size.max(1);
    let declared = |name: &str| schema.fields().iter().any(|f| f.name() == name);
    match kind {
        ColumnarKind::Parquet => {
            use parquet::arrow::ProjectionMask;
            use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| read_error(source_name, e))?;
            // Arrow's top-level fields are the parquet schema's root fields, in order.
            let roots: Vec<usize> = builder
                .schema()
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| declared(f.name()))
                .map(|(i, _)| i)
                .collect();
            let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
            let reader = builder
                .with_projection(mask)
                .with_batch_size(batch_size)
                .build()
                .map_err(|e| read_error(source_name, e))?;
            let file_schema = arrow::array::RecordBatchReader::schema(&reader);
            Ok((file_schema, Box::new(reader)))
        }
        ColumnarKind::Orc => {
            use orc_rust::projection::ProjectionMask;
            use orc_rust::schema::TimestampPrecision;
            let mut file = file;
            check_orc_footer(&mut file, source_name)?;
            let builder = orc_rust::ArrowReaderBuilder::try_new(file)
                .map_err(|e| read_error(source_name, e))?;
            let names: Vec<String> = builder
                .file_metadata()
                .root_data_type()
                .children()
                .iter()
                .map(|c| c.name().to_string())
                .filter(|n| declared(n))
                .collect();
            let mask =
                ProjectionMask::named_roots(builder.file_metadata().root_data_type(), &names);
            // Microseconds reach further than nanoseconds; milliseconds are all Druid keeps.
            let reader = builder
                .with_projection(mask)
                .with_batch_size(batch_size)
                .with_timestamp_precision(TimestampPrecision::Microsecond)
                .build();
            let file_schema = arrow::array::RecordBatchReader::schema(&reader);
            Ok((file_schema, Box::new(reader)))
        }
        ColumnarKind::Avro => {
            use arrow_avro::reader::ReaderBuilder;
            let mut file = file;
            // Read the header once to learn the writer's fields, then again with the
            // projection (by field index) applied.
            let fields = ReaderBuilder::new()
                .build(BufReader::new(&file))
                .map_err(|e| read_error(source_name, e))?
                .schema();
            let projection: Vec<usize> = fields
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| declared(f.name()))
                .map(|(i, _)| i)
                .collect();
            file.seek(SeekFrom::Start(0))
                .map_err(|e| read_error(source_name, e))?;
            let reader = ReaderBuilder::new()
                .with_batch_size(batch_size)
                .with_projection(projection)
                .build(BufReader::new(file))
                .map_err(|e| read_error(source_name, e))?;
            let file_schema = reader.schema();
            Ok((file_schema, Box::new(reader)))
        }
    }
}

/// Largest ORC compression chunk: its 3-byte header keeps 23 bits for the length.
const ORC_MAX_CHUNK: usize = (1 << 23) - 1;

/// Largest decompressed ORC footer accepted; real footers are orders of magnitude smaller.
const ORC_MAX_FOOTER: usize = 256 << 20;

/// ORC's default compression block size, used when the postscript does not give one.
const ORC_DEFAULT_BLOCK_SIZE: u64 = 256 * 1024;

/// Checks an ORC file's footer type tree before orc-rust sees it.
///
/// orc-rust builds its schema from the footer's type list recursively, following each
/// type's child indices; a corrupt list whose child index points at the type itself or
/// an ancestor recurses forever and overflows the stack, which aborts the process. ORC
/// stores types in pre-order, so every child index must be greater than its parent's
/// and within the list; this reads the file tail (as orc-rust's `read_metadata` does),
/// decompresses and decodes the footer, and enforces that, so the recursion is bounded.
/// Leaves `file` positioned at its start.
fn check_orc_footer(file: &mut File, source_name: &str) -> Result<()> {
    let corrupt = |what: &str| read_error(source_name, format!("corrupt ORC footer: {what}"));
    let file_len = file
        .seek(SeekFrom::End(0))
        .map_err(|e| read_error(source_name, e))?;
    if file_len == 0 {
        // orc-rust reports empty files itself.
        return file
            .seek(SeekFrom::Start(0))
            .map(|_| ())
            .map_err(|e| read_error(source_name, e));
    }
    let tail_len = file_len.min(256);
    let tail = read_at(file, file_len - tail_len, tail_len, source_name)?;
    let postscript_len = usize::from(tail[tail.len() - 1]);
    let Some(postscript_start) = tail.len().checked_sub(1 + postscript_len) else {
        return Err(corrupt("file too small for its postscript length"));
    };
    let postscript = orc_rust::proto::PostScript::decode(&tail[postscript_start..tail.len() - 1])
        .map_err(|e| corrupt(&format!("undecodable postscript ({e})")))?;
    let footer_len = postscript
        .footer_length
        .ok_or_else(|| corrupt("postscript has no footer length"))?;
    // The footer sits just before the postscript and its length byte.
    let footer_end = file_len - 1 - postscript_len as u64;
    if footer_len > footer_end {
        return Err(corrupt("footer length exceeds the file"));
    }
    let raw = read_at(file, footer_end - footer_len, footer_len, source_name)?;
    let footer_bytes = orc_decompress(
        &raw,
        postscript.compression(),
        postscript.compression_block_size,
    )
    .map_err(|what| corrupt(&what))?;
    let footer = orc_rust::proto::Footer::decode(footer_bytes.as_slice())
        .map_err(|e| corrupt(&format!("undecodable footer ({e})")))?;
    check_orc_types(&footer.types).map_err(|what| corrupt(&what))?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| read_error(source_name, e))?;
    Ok(())
}

/// Reads `len` bytes of `file` at `offset`; the caller has checked they lie within it.
fn read_at(file: &mut File, offset: u64, len: u64, source_name: &str) -> Result<Vec<u8>> {
    let len = usize::try_from(len).map_err(|e| read_error(source_name, e))?;
    let mut buf = vec![0; len];
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut buf))
        .map_err(|e| read_error(source_name, e))?;
    Ok(buf)
}

/// Decompresses an ORC stream (the footer) framed in chunks, each behind a 3-byte
/// little-endian header whose low bit marks an uncompressed ("original") chunk and whose
/// other bits give the chunk's length. Each chunk decompresses to at most the block size
/// (itself at most [`ORC_MAX_CHUNK`]) and the whole to at most [`ORC_MAX_FOOTER`], so a
/// corrupt length cannot allocate without bound. Errors describe the corruption.
fn orc_decompress(
    raw: &[u8],
    kind: orc_rust::proto::CompressionKind,
    block_size: Option<u64>,
) -> std::result::Result<Vec<u8>, String> {
    use orc_rust::proto::CompressionKind;
    if kind == CompressionKind::None {
        return Ok(raw.to_vec());
    }
    let limit = usize::try_from(block_size.unwrap_or(ORC_DEFAULT_BLOCK_SIZE))
        .unwrap_or(ORC_MAX_CHUNK)
        .min(ORC_MAX_CHUNK);
    let mut out = Vec::new();
    let mut rest = raw;
    while !rest.is_empty() {
        let [a, b, c, tail @ ..] = rest else {
            return Err("truncated compression chunk header".into());
        };
        let header = u32::from_le_bytes([*a, *b, *c, 0]);
        let len = (header >> 1) as usize;
        if len > tail.len() {
            return Err("compression chunk longer than the footer".into());
        }
        let (chunk, next) = tail.split_at(len);
        rest = next;
        let chunk_limit = limit.min(ORC_MAX_FOOTER - out.len());
        let too_big = || format!("compression chunk inflates beyond {chunk_limit} bytes");
        if header & 1 == 1 {
            if chunk.len() > chunk_limit {
                return Err(too_big());
            }
            out.extend_from_slice(chunk);
            continue;
        }
        let bad = |e: &dyn Display| format!("undecompressable {kind:?} chunk ({e})");
        let block = match kind {
            CompressionKind::None => chunk.to_vec(),
            CompressionKind::Zlib => {
                let mut block = Vec::new();
                flate2::read::DeflateDecoder::new(chunk)
                    .take(chunk_limit as u64 + 1)
                    .read_to_end(&mut block)
                    .map_err(|e| bad(&e))?;
                block
            }
            CompressionKind::Zstd => {
                let mut block = Vec::new();
                zstd::Decoder::new(chunk)
                    .and_then(|d| d.take(chunk_limit as u64 + 1).read_to_end(&mut block))
                    .map_err(|e| bad(&e))?;
                block
            }
            CompressionKind::Snappy => {
                let n = snap::raw::decompress_len(chunk).map_err(|e| bad(&e))?;
                if n > chunk_limit {
                    return Err(too_big());
                }
                snap::raw::Decoder::new()
                    .decompress_vec(chunk)
                    .map_err(|e| bad(&e))?
            }
            CompressionKind::Lz4 => {
                lz4_flex::block::decompress(chunk, chunk_limit).map_err(|e| bad(&e))?
            }
            // LZO cannot expand a chunk (at most `ORC_MAX_CHUNK` bytes) by much more than
            // 255 times; the result is checked against the limit below.
            CompressionKind::Lzo => {
                lzokay_native::decompress_all(chunk, None).map_err(|e| bad(&e))?
            }
        };
        if block.len() > chunk_limit {
            return Err(too_big());
        }
        out.extend_from_slice(&block);
    }
    Ok(out)
}

/// Checks an ORC footer's type list: a struct at the root, every child index after its
/// parent's and within the list (ORC's pre-order), and a name for each struct field.
fn check_orc_types(types: &[orc_rust::proto::Type]) -> std::result::Result<(), String> {
    use orc_rust::proto::r#type::Kind;
    let Some(root) = types.first() else {
        return Err("no types".into());
    };
    if root.kind() != Kind::Struct {
        return Err(format!("root type is {:?}, not a struct", root.kind()));
    }
    for (i, t) in types.iter().enumerate() {
        for &child in &t.subtypes {
            let child = child as usize;
            if child <= i || child >= types.len() {
                return Err(format!(
                    "type {i} has child index {child} (must be in {}..{})",
                    i + 1,
                    types.len()
                ));
            }
        }
        if t.kind() == Kind::Struct && t.field_names.len() != t.subtypes.len() {
            return Err(format!(
                "struct type {i} has {} field names for {} fields",
                t.field_names.len(),
                t.subtypes.len()
            ));
        }
    }
    Ok(())
}

/// Converts file batches to the declared schema, charging bad values to the budget.
struct Conformer<'a> {
    schema: &'a SchemaRef,
    binary_as_string: bool,
    source_name: &'a str,
    budget: &'a ParseBudget,
    /// File rows before the current batch (for 1-based row numbers in messages).
    rows_read: u64,
}

impl Conformer<'_> {
    /// "conform_batch": one file batch -> a batch of exactly the declared schema.
    fn conform(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        let mut keep = vec![true; rows];
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for field in self.schema.fields() {
            let column = match batch.column_by_name(field.name()) {
                None => new_null_array(field.data_type(), rows),
                Some(array) => {
                    let target = field.data_type();
                    let mut bad = |row: usize, value: &str| -> Result<()> {
                        keep[row] = false;
                        self.budget.record(format!(
                            "Unable to parse row [{}] (Path: {}, Row: {}): could not convert \
                             value [{value}] to {} for column [{}]",
                            truncate(&row_text(batch, row, value)),
                            self.source_name,
                            self.rows_read + row as u64 + 1,
                            druid_type_name(target),
                            field.name()
                        ))
                    };
                    convert(array, target, self.binary_as_string, &mut bad)?
                }
            };
            columns.push(column);
        }
        self.rows_read += rows as u64;
        let out = RecordBatch::try_new_with_options(
            Arc::clone(self.schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?;
        if keep.iter().all(|k| *k) {
            return Ok(out);
        }
        Ok(filter_record_batch(&out, &BooleanArray::from(keep))?)
    }
}

fn druid_type_name(t: &DataType) -> &'static str {
    match t {
        DataType::Int64 => "long",
        DataType::Float64 => "double",
        DataType::Float32 => "float",
        _ => "string",
    }
}

/// The file row as a JSON object, for messages (the bad value when it cannot be rendered).
fn row_text(batch: &RecordBatch, row: usize, value: &str) -> String {
    let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
    if writer.write(&batch.slice(row, 1)).is_err() || writer.finish().is_err() {
        return value.to_string();
    }
    let bytes = writer.into_inner();
    String::from_utf8_lossy(&bytes).trim_end().to_string()
}

/// Converts one file column to `target`. `bad(row, value)` records a value that does not
/// convert (its slot becomes NULL; the caller drops the row).
fn convert(
    array: &ArrayRef,
    target: &DataType,
    binary_as_string: bool,
    bad: &mut dyn FnMut(usize, &str) -> Result<()>,
) -> Result<ArrayRef> {
    let from = array.data_type();
    if from == target {
        return Ok(Arc::clone(array));
    }
    if let DataType::Dictionary(_, values) = from {
        let unpacked = cast(array, values)?;
        return convert(&unpacked, target, binary_as_string, bad);
    }
    match target {
        DataType::Utf8 => to_utf8(array, binary_as_string),
        DataType::Int64 | DataType::Float64 | DataType::Float32 => {
            to_number(array, target, binary_as_string, bad)
        }
        _ if can_cast_types(from, target) => Ok(cast(array, target)?),
        _ => Err(DataFusionError::NotImplemented(format!(
            "cannot read a column of type [{from}] as [{target}]"
        ))),
    }
}

fn to_number(
    array: &ArrayRef,
    target: &DataType,
    binary_as_string: bool,
    bad: &mut dyn FnMut(usize, &str) -> Result<()>,
) -> Result<ArrayRef> {
    let millis = match array.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let strings = cast(array, &DataType::Utf8)?;
            return parse_strings(strings.as_string::<i32>(), target, bad);
        }
        DataType::Boolean
        | DataType::Null
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal32(_, _)
        | DataType::Decimal64(_, _)
        | DataType::Decimal128(_, _)
        | DataType::Decimal256(_, _) => return Ok(cast(array, target)?),
        DataType::Timestamp(unit, _) => scale_millis(&cast(array, &DataType::Int64)?, *unit),
        DataType::Date64 => scale_millis(&cast(array, &DataType::Int64)?, TimeUnit::Millisecond),
        DataType::Date32 => {
            let days = cast(&cast(array, &DataType::Int32)?, &DataType::Int64)?;
            let days = days.as_primitive::<Int64Type>();
            Arc::new(days.unary_opt::<_, Int64Type>(|d| d.checked_mul(86_400_000))) as ArrayRef
        }
        DataType::Time32(unit) => {
            let raw = cast(&cast(array, &DataType::Int32)?, &DataType::Int64)?;
            scale_millis(&raw, *unit)
        }
        DataType::Time64(unit) => scale_millis(&cast(array, &DataType::Int64)?, *unit),
        // Anything else goes through its text, which a number may not parse from.
        _ => {
            let strings = to_utf8(array, binary_as_string)?;
            return parse_strings(strings.as_string::<i32>(), target, bad);
        }
    };
    if target == &DataType::Int64 {
        Ok(millis)
    } else {
        Ok(cast(&millis, target)?)
    }
}

/// Raw temporal values in `unit` -> milliseconds (floored, like `Instant.toEpochMilli`).
fn scale_millis(raw: &ArrayRef, unit: TimeUnit) -> ArrayRef {
    let raw = raw.as_primitive::<Int64Type>();
    let out: Int64Array = match unit {
        TimeUnit::Second => raw.unary_opt(|v| v.checked_mul(1000)),
        TimeUnit::Millisecond => raw.clone(),
        TimeUnit::Microsecond => raw.unary(|v| v.div_euclid(1000)),
        TimeUnit::Nanosecond => raw.unary(|v| v.div_euclid(1_000_000)),
    };
    Arc::new(out)
}

/// Druid's rules for text in a numeric column: trimmed, empty is NULL, a long is an
/// integer or a decimal truncated toward zero; anything else is a parse exception.
fn parse_strings(
    strings: &StringArray,
    target: &DataType,
    bad: &mut dyn FnMut(usize, &str) -> Result<()>,
) -> Result<ArrayRef> {
    let rows = strings.len();
    macro_rules! parse_with {
        ($builder:expr, $parse:expr) => {{
            let mut b = $builder;
            for (row, v) in strings.iter().enumerate() {
                match v.map(str::trim) {
                    None | Some("") => b.append_null(),
                    Some(s) => match $parse(s) {
                        Some(n) => b.append_value(n),
                        None => {
                            bad(row, s)?;
                            b.append_null();
                        }
                    },
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    Ok(match target {
        DataType::Float64 => parse_with!(Float64Builder::with_capacity(rows), |s: &str| s
            .parse::<f64>()
            .ok()),
        DataType::Float32 => parse_with!(Float32Builder::with_capacity(rows), |s: &str| s
            .parse::<f32>()
            .ok()),
        _ => parse_with!(Int64Builder::with_capacity(rows), parse_long),
    })
}

/// Any column as text: binary as UTF-8 or base64, nested values as JSON, others as
/// Arrow's cast (or display) renders them.
fn to_utf8(array: &ArrayRef, binary_as_string: bool) -> Result<ArrayRef> {
    let from = array.data_type();
    match from {
        DataType::Utf8 => Ok(Arc::clone(array)),
        DataType::Dictionary(_, values) => to_utf8(&cast(array, values)?, binary_as_string),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => {
            let binary = cast(array, &DataType::LargeBinary)?;
            let binary = binary.as_binary::<i64>();
            let mut b = StringBuilder::with_capacity(binary.len(), binary.values().len());
            let mut text = String::new();
            for v in binary.iter() {
                match v {
                    None => b.append_null(),
                    Some(bytes) if binary_as_string => {
                        b.append_value(String::from_utf8_lossy(bytes));
                    }
                    Some(bytes) => {
                        text.clear();
                        base64(bytes, &mut text);
                        b.append_value(&text);
                    }
                }
            }
            Ok(Arc::new(b.finish()))
        }
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(_, _)
        | DataType::ListView(_)
        | DataType::LargeListView(_)
        | DataType::Struct(_)
        | DataType::Map(_, _) => json_text(array).or_else(|_| display_text(array)),
        _ if can_cast_types(from, &DataType::Utf8) => Ok(cast(array, &DataType::Utf8)?),
        _ => display_text(array),
    }
}

/// Each value as JSON text (NULL stays NULL).
fn json_text(array: &ArrayRef) -> Result<ArrayRef> {
    let field = Arc::new(Field::new("value", array.data_type().clone(), true));
    let options = arrow::json::writer::EncoderOptions::default().with_explicit_nulls(true);
    let mut encoder = arrow::json::writer::make_encoder(&field, array.as_ref(), &options)?;
    let mut b = StringBuilder::with_capacity(array.len(), array.len() * 16);
    let mut buf = Vec::new();
    for row in 0..array.len() {
        if array.is_null(row) {
            b.append_null();
            continue;
        }
        buf.clear();
        encoder.encode(row, &mut buf);
        b.append_value(String::from_utf8_lossy(&buf));
    }
    Ok(Arc::new(b.finish()))
}

/// Each value as Arrow displays it (NULL stays NULL).
fn display_text(array: &ArrayRef) -> Result<ArrayRef> {
    let options = FormatOptions::default();
    let formatter = ArrayFormatter::try_new(array.as_ref(), &options)?;
    let mut b = StringBuilder::with_capacity(array.len(), array.len() * 16);
    for row in 0..array.len() {
        if array.is_null(row) {
            b.append_null();
        } else {
            b.append_value(formatter.value(row).to_string());
        }
    }
    Ok(Arc::new(b.finish()))
}

/// Standard base64 with padding (Java's `Base64.getEncoder()`, which Druid uses).
fn base64(bytes: &[u8], out: &mut String) {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode_string(bytes, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
        Int32Array, ListArray, StringArray, TimestampMicrosecondArray, TimestampMillisecondArray,
    };
    use arrow::datatypes::{Int32Type, Schema};
    use std::path::{Path, PathBuf};

    /// 2024-01-02T03:04:05.678Z
    const TS_MS: i64 = 1_704_164_645_678;

    /// One file's worth of every interesting type; `bad` and `nums` hold numbers as text.
    fn source_batch(ts_type: DataType) -> RecordBatch {
        let ts: ArrayRef = match ts_type {
            DataType::Timestamp(TimeUnit::Microsecond, _) => Arc::new(
                TimestampMicrosecondArray::from(vec![
                    Some(TS_MS * 1000 + 999),
                    Some(-1),
                    None,
                    Some(0),
                    Some(1000),
                ])
                .with_timezone_opt(match &ts_type {
                    DataType::Timestamp(_, tz) => tz.clone(),
                    _ => None,
                }),
            ),
            _ => Arc::new(
                TimestampMillisecondArray::from(vec![
                    Some(TS_MS),
                    // Not -1: ORC cannot store (-1 s, 0 s) exactly (ORC-763).
                    Some(-1500),
                    None,
                    Some(0),
                    Some(1),
                ])
                .with_timezone_opt(match &ts_type {
                    DataType::Timestamp(_, tz) => tz.clone(),
                    _ => None,
                }),
            ),
        };
        let columns: Vec<(&str, ArrayRef)> = vec![
            (
                "i32",
                Arc::new(Int32Array::from(vec![
                    Some(1),
                    Some(-2),
                    None,
                    Some(4),
                    Some(5),
                ])),
            ),
            (
                "i64",
                Arc::new(Int64Array::from(vec![
                    Some(10),
                    Some(20),
                    Some(30),
                    None,
                    Some(i64::MAX),
                ])),
            ),
            (
                "f32",
                Arc::new(Float32Array::from(vec![
                    Some(1.5),
                    Some(-2.5),
                    None,
                    Some(0.0),
                    Some(3.25),
                ])),
            ),
            (
                "f64",
                Arc::new(Float64Array::from(vec![
                    Some(1.9),
                    Some(-1.9),
                    Some(2.0),
                    None,
                    Some(1e3),
                ])),
            ),
            (
                "s",
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    Some("b"),
                    None,
                    Some(""),
                    Some("é"),
                ])),
            ),
            (
                "bin",
                Arc::new(BinaryArray::from(vec![
                    Some(b"hi".as_slice()),
                    Some(b"\xff\x00".as_slice()),
                    None,
                    Some(b"".as_slice()),
                    Some(b"abcd".as_slice()),
                ])),
            ),
            ("ts", ts),
            (
                "b",
                Arc::new(BooleanArray::from(vec![
                    Some(true),
                    Some(false),
                    None,
                    Some(true),
                    Some(false),
                ])),
            ),
            (
                "d",
                Arc::new(Date32Array::from(vec![
                    Some(1),
                    Some(-1),
                    None,
                    Some(0),
                    Some(19_724),
                ])),
            ),
            (
                "nums",
                Arc::new(StringArray::from(vec![
                    Some("1"),
                    Some(" 12.7 "),
                    Some(""),
                    Some("bad"),
                    None,
                ])),
            ),
        ];
        let fields: Vec<Field> = columns
            .iter()
            .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
            .collect();
        RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap()
    }

    /// `source_batch` plus the columns only parquet and avro can write.
    fn rich_batch() -> RecordBatch {
        let base = source_batch(DataType::Timestamp(
            TimeUnit::Millisecond,
            Some("UTC".into()),
        ));
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
            Some(vec![]),
            None,
            Some(vec![None, Some(3)]),
            Some(vec![Some(4)]),
        ]);
        let dec = Decimal128Array::from(vec![Some(1299), Some(-1299), None, Some(0), Some(5)])
            .with_precision_and_scale(10, 2)
            .unwrap();
        let mut fields: Vec<Field> = base
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("l", list.data_type().clone(), true));
        fields.push(Field::new("dec", dec.data_type().clone(), true));
        let mut columns = base.columns().to_vec();
        columns.push(Arc::new(list));
        columns.push(Arc::new(dec));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    }

    fn write(kind: ColumnarKind, dir: &Path, batch: &RecordBatch) -> PathBuf {
        let path = dir.join(match kind {
            ColumnarKind::Parquet => "data.parquet",
            ColumnarKind::Orc => "data.orc",
            ColumnarKind::Avro => "data.avro",
        });
        let file = File::create(&path).unwrap();
        match kind {
            ColumnarKind::Parquet => {
                let mut w =
                    parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
                w.write(batch).unwrap();
                w.close().unwrap();
            }
            ColumnarKind::Orc => {
                let mut w = orc_rust::ArrowWriterBuilder::new(file, batch.schema())
                    .try_build()
                    .unwrap();
                w.write(batch).unwrap();
                w.close().unwrap();
            }
            ColumnarKind::Avro => {
                let mut w =
                    arrow_avro::writer::AvroWriter::new(file, batch.schema().as_ref().clone())
                        .unwrap();
                w.write(batch).unwrap();
                w.finish().unwrap();
            }
        }
        path
    }

    fn schema(fields: &[(&str, DataType)]) -> SchemaRef {
        Arc::new(Schema::new(
            fields
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        ))
    }

    fn read(
        kind: ColumnarKind,
        path: &Path,
        schema: &SchemaRef,
        binary_as_string: bool,
        batch_size: usize,
        budget: &ParseBudget,
    ) -> Result<RecordBatch> {
        let mut out = Vec::new();
        read_columnar(
            kind,
            File::open(path).unwrap(),
            binary_as_string,
            "file:/data",
            schema,
            batch_size,
            budget,
            &mut |b| {
                assert_eq!(b.schema(), *schema);
                out.push(b);
                Ok(true)
            },
        )?;
        Ok(arrow::compute::concat_batches(schema, &out).unwrap())
    }

    fn longs(b: &RecordBatch, name: &str) -> Vec<Option<i64>> {
        b.column_by_name(name)
            .unwrap()
            .as_primitive::<Int64Type>()
            .iter()
            .collect()
    }

    fn strings(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
        b.column_by_name(name)
            .unwrap()
            .as_string::<i32>()
            .iter()
            .map(|s| s.map(str::to_string))
            .collect()
    }

    fn doubles(b: &RecordBatch, name: &str) -> Vec<Option<f64>> {
        b.column_by_name(name)
            .unwrap()
            .as_primitive::<arrow::datatypes::Float64Type>()
            .iter()
            .collect()
    }

    fn s(v: &[Option<&str>]) -> Vec<Option<String>> {
        v.iter().map(|s| s.map(str::to_string)).collect()
    }

    /// Columns every format can write, read as longs, doubles, floats and strings.
    fn check_common_conversions(kind: ColumnarKind, path: &Path) {
        let budget = ParseBudget::new(Some(0));
        let longs_schema = schema(&[
            ("i32", DataType::Int64),
            ("i64", DataType::Int64),
            ("f32", DataType::Int64),
            ("f64", DataType::Int64),
            ("ts", DataType::Int64),
            ("b", DataType::Int64),
            ("d", DataType::Int64),
            ("missing", DataType::Int64),
        ]);
        let b = read(kind, path, &longs_schema, false, 2, &budget).unwrap();
        assert_eq!(b.num_rows(), 5);
        assert_eq!(
            longs(&b, "i32"),
            vec![Some(1), Some(-2), None, Some(4), Some(5)]
        );
        assert_eq!(
            longs(&b, "i64"),
            vec![Some(10), Some(20), Some(30), None, Some(i64::MAX)]
        );
        assert_eq!(
            longs(&b, "f32"),
            vec![Some(1), Some(-2), None, Some(0), Some(3)]
        );
        assert_eq!(
            longs(&b, "f64"),
            vec![Some(1), Some(-1), Some(2), None, Some(1000)]
        );
        assert_eq!(
            longs(&b, "ts"),
            vec![Some(TS_MS), Some(-1500), None, Some(0), Some(1)]
        );
        assert_eq!(
            longs(&b, "b"),
            vec![Some(1), Some(0), None, Some(1), Some(0)]
        );
        assert_eq!(
            longs(&b, "d"),
            vec![
                Some(86_400_000),
                Some(-86_400_000),
                None,
                Some(0),
                Some(19_724 * 86_400_000)
            ]
        );
        assert_eq!(longs(&b, "missing"), vec![None; 5]);

        let other_schema = schema(&[
            ("i32", DataType::Utf8),
            ("i64", DataType::Float32),
            ("f32", DataType::Float32),
            ("f64", DataType::Float64),
            ("s", DataType::Utf8),
            ("b", DataType::Utf8),
            ("ts", DataType::Float64),
            ("missing", DataType::Utf8),
            ("bin", DataType::Utf8),
        ]);
        let b = read(kind, path, &other_schema, false, 100, &budget).unwrap();
        assert_eq!(
            strings(&b, "i32"),
            s(&[Some("1"), Some("-2"), None, Some("4"), Some("5")])
        );
        let f: Vec<_> = b
            .column_by_name("f32")
            .unwrap()
            .as_primitive::<arrow::datatypes::Float32Type>()
            .iter()
            .collect();
        assert_eq!(f, vec![Some(1.5), Some(-2.5), None, Some(0.0), Some(3.25)]);
        let f: Vec<_> = b
            .column_by_name("i64")
            .unwrap()
            .as_primitive::<arrow::datatypes::Float32Type>()
            .iter()
            .collect();
        assert_eq!(f[..2], [Some(10.0), Some(20.0)]);
        assert_eq!(
            doubles(&b, "f64"),
            vec![Some(1.9), Some(-1.9), Some(2.0), None, Some(1e3)]
        );
        assert_eq!(
            strings(&b, "s"),
            s(&[Some("a"), Some("b"), None, Some(""), Some("é")])
        );
        assert_eq!(
            strings(&b, "b"),
            s(&[
                Some("true"),
                Some("false"),
                None,
                Some("true"),
                Some("false")
            ])
        );
        assert_eq!(doubles(&b, "ts")[0], Some(TS_MS as f64));
        assert_eq!(strings(&b, "missing"), vec![None; 5]);
        // Without binaryAsString, binary is base64 text, as in Druid.
        assert_eq!(
            strings(&b, "bin"),
            s(&[Some("aGk="), Some("/wA="), None, Some(""), Some("YWJjZA==")])
        );
        let bin_schema = schema(&[("bin", DataType::Utf8)]);
        let b = read(kind, path, &bin_schema, true, 100, &budget).unwrap();
        assert_eq!(
            strings(&b, "bin"),
            s(&[Some("hi"), Some("\u{fffd}\0"), None, Some(""), Some("abcd")])
        );
    }

    /// Text to numbers follows Druid's rules; a bad value is charged and its row dropped.
    fn check_parse_exceptions(kind: ColumnarKind, path: &Path) {
        let sch = schema(&[("nums", DataType::Int64), ("s", DataType::Utf8)]);
        let budget = ParseBudget::new(Some(5));
        let b = read(kind, path, &sch, false, 2, &budget).unwrap();
        assert_eq!(longs(&b, "nums"), vec![Some(1), Some(12), None, None]);
        assert_eq!(
            strings(&b, "s"),
            s(&[Some("a"), Some("b"), None, Some("é")])
        );
        assert_eq!(budget.count(), 1);
        let message = &budget.messages()[0];
        assert!(
            message.starts_with("Unable to parse row [")
                && message.contains("(Path: file:/data, Row: 4): could not convert value [bad] to long for column [nums]"),
            "{message}"
        );
        assert!(
            message.contains("\"bad\""),
            "the row is rendered: {message}"
        );
        let doubles_schema = schema(&[("nums", DataType::Float64)]);
        let budget = ParseBudget::new(None);
        let b = read(kind, path, &doubles_schema, false, 2, &budget).unwrap();
        assert_eq!(doubles(&b, "nums"), vec![Some(1.0), Some(12.7), None, None]);
        assert!(budget.messages()[0].contains("to double for column [nums]"));

        let strict = ParseBudget::new(Some(0));
        let err = read(kind, path, &sch, false, 2, &strict).unwrap_err();
        assert_eq!(
            MsqFault::find(&err).unwrap().error_code(),
            "CannotParseExternalData"
        );
        let tight = ParseBudget::new(Some(1));
        tight.record("earlier".into()).unwrap();
        let err = read(kind, path, &sch, false, 2, &tight).unwrap_err();
        assert_eq!(
            MsqFault::find(&err).unwrap().error_code(),
            "TooManyWarnings"
        );
    }

    fn check_projection_and_early_stop(kind: ColumnarKind, path: &Path) {
        let sch = schema(&[
            ("missing", DataType::Utf8),
            ("b", DataType::Int64),
            ("i32", DataType::Utf8),
        ]);
        let (file_schema, _) = open(kind, File::open(path).unwrap(), "x", &sch, 2).unwrap();
        let mut names: Vec<_> = file_schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["b", "i32"]);
        // Nothing declared is in the file: rows still count.
        let none = schema(&[("missing", DataType::Int64)]);
        let b = read(kind, path, &none, false, 2, &ParseBudget::new(Some(0))).unwrap();
        assert_eq!(b.num_rows(), 5);
        assert_eq!(b.column(0).null_count(), 5);
        let mut seen = Vec::new();
        read_columnar(
            kind,
            File::open(path).unwrap(),
            false,
            "x",
            &sch,
            2,
            &ParseBudget::new(Some(0)),
            &mut |b| {
                seen.push(b.num_rows());
                Ok(false)
            },
        )
        .unwrap();
        assert_eq!(seen, [2]);
    }

    fn check_corrupt(kind: ColumnarKind, path: &Path) {
        let sch = schema(&[("i32", DataType::Int64)]);
        let garbage = path.with_extension("garbage");
        std::fs::write(
            &garbage,
            b"this is not a columnar file at all, just some text\n",
        )
        .unwrap();
        let err = read(kind, &garbage, &sch, false, 2, &ParseBudget::new(None)).unwrap_err();
        let fault = MsqFault::find(&err).unwrap();
        assert_eq!(fault.error_code(), "CannotParseExternalData");
        assert!(
            fault
                .message()
                .starts_with("Unable to read input [file:/data]: "),
            "{}",
            fault.message()
        );
        let empty = path.with_extension("empty");
        std::fs::write(&empty, b"").unwrap();
        let err = read(kind, &empty, &sch, false, 2, &ParseBudget::new(None)).unwrap_err();
        assert_eq!(
            MsqFault::find(&err).unwrap().error_code(),
            "CannotParseExternalData"
        );
        // A real file cut short.
        let bytes = std::fs::read(path).unwrap();
        let cut = path.with_extension("cut");
        std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
        let err = read(kind, &cut, &sch, false, 2, &ParseBudget::new(None)).unwrap_err();
        assert_eq!(
            MsqFault::find(&err).unwrap().error_code(),
            "CannotParseExternalData"
        );
    }

    fn check_nested(kind: ColumnarKind, path: &Path) {
        let budget = ParseBudget::new(Some(0));
        let sch = schema(&[
            ("l", DataType::Utf8),
            ("dec", DataType::Int64),
            ("d", DataType::Utf8),
        ]);
        let b = read(kind, path, &sch, false, 100, &budget).unwrap();
        assert_eq!(
            strings(&b, "l"),
            s(&[
                Some("[1,2]"),
                Some("[]"),
                None,
                Some("[null,3]"),
                Some("[4]")
            ])
        );
        assert_eq!(
            longs(&b, "dec"),
            vec![Some(12), Some(-12), None, Some(0), Some(0)]
        );
        assert_eq!(strings(&b, "d")[0].as_deref(), Some("1970-01-02"));
        let sch = schema(&[("dec", DataType::Float64), ("l", DataType::Int64)]);
        let lenient = ParseBudget::new(None);
        let b = read(kind, path, &sch, false, 100, &lenient).unwrap();
        assert_eq!(doubles(&b, "dec"), vec![None]);
        assert_eq!(
            lenient.count(),
            4,
            "a list is no long: {:?}",
            lenient.messages()
        );
        assert!(lenient.messages()[0].contains("could not convert value [[1,2]] to long"));
        let sch = schema(&[("dec", DataType::Float64)]);
        let b = read(kind, path, &sch, false, 100, &budget).unwrap();
        assert_eq!(
            doubles(&b, "dec"),
            vec![Some(12.99), Some(-12.99), None, Some(0.0), Some(0.05)]
        );
    }

    #[test]
    fn parquet() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(ColumnarKind::Parquet, dir.path(), &rich_batch());
        check_common_conversions(ColumnarKind::Parquet, &path);
        check_parse_exceptions(ColumnarKind::Parquet, &path);
        check_projection_and_early_stop(ColumnarKind::Parquet, &path);
        check_nested(ColumnarKind::Parquet, &path);
        check_corrupt(ColumnarKind::Parquet, &path);
    }

    #[test]
    fn parquet_timestamp_units_floor_to_millis() {
        let dir = tempfile::tempdir().unwrap();
        let batch = source_batch(DataType::Timestamp(TimeUnit::Microsecond, None));
        let path = write(ColumnarKind::Parquet, dir.path(), &batch);
        let sch = schema(&[("ts", DataType::Int64)]);
        let b = read(
            ColumnarKind::Parquet,
            &path,
            &sch,
            false,
            2,
            &ParseBudget::new(Some(0)),
        )
        .unwrap();
        assert_eq!(
            longs(&b, "ts"),
            vec![Some(TS_MS), Some(-1), None, Some(0), Some(1)]
        );
    }

    #[test]
    fn orc() {
        let dir = tempfile::tempdir().unwrap();
        let batch = source_batch(DataType::Timestamp(TimeUnit::Millisecond, None));
        let path = write(ColumnarKind::Orc, dir.path(), &batch);
        check_common_conversions(ColumnarKind::Orc, &path);
        check_parse_exceptions(ColumnarKind::Orc, &path);
        check_projection_and_early_stop(ColumnarKind::Orc, &path);
        check_corrupt(ColumnarKind::Orc, &path);
    }

    #[test]
    fn avro() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(ColumnarKind::Avro, dir.path(), &rich_batch());
        check_common_conversions(ColumnarKind::Avro, &path);
        check_parse_exceptions(ColumnarKind::Avro, &path);
        check_projection_and_early_stop(ColumnarKind::Avro, &path);
        check_nested(ColumnarKind::Avro, &path);
        check_corrupt(ColumnarKind::Avro, &path);
    }

    #[test]
    fn base64_matches_the_standard_alphabet() {
        let mut out = String::new();
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
        ] {
            out.clear();
            base64(input.as_bytes(), &mut out);
            assert_eq!(out, expected);
        }
        out.clear();
        base64(&[0xfb, 0xff], &mut out);
        assert_eq!(out, "+/8=");
    }

    /// Parquet's and orc-rust's decoders panic on some corrupt files (a byte flipped in a
    /// footer or page); the panic is bad input, not a crash.
    #[test]
    fn decoder_panics_are_bad_input() {
        let err = guard("file:/data", || -> Result<()> {
            panic!("column start and length should not be negative")
        })
        .unwrap_err();
        let fault = MsqFault::find(&err).unwrap();
        assert_eq!(fault.error_code(), "CannotParseExternalData");
        assert_eq!(
            fault.message(),
            "Unable to read input [file:/data]: column start and length should not be negative"
        );
        assert_eq!(guard("x", || Ok(3)).unwrap(), 3);
    }

    /// Rewrites the (uncompressed) footer of the ORC file at `path` with `edit`, fixing
    /// the postscript's footer length and the postscript length byte.
    fn rewrite_orc_footer(path: &Path, edit: impl FnOnce(&mut orc_rust::proto::Footer)) {
        use orc_rust::proto::{CompressionKind, Footer, PostScript};
        let bytes = std::fs::read(path).unwrap();
        let ps_len = usize::from(*bytes.last().unwrap());
        let ps_start = bytes.len() - 1 - ps_len;
        let mut ps = PostScript::decode(&bytes[ps_start..bytes.len() - 1]).unwrap();
        assert_eq!(ps.compression(), CompressionKind::None);
        let footer_len = ps.footer_length() as usize;
        let footer_start = ps_start - footer_len;
        let mut footer = Footer::decode(&bytes[footer_start..ps_start]).unwrap();
        edit(&mut footer);
        let footer = footer.encode_to_vec();
        ps.footer_length = Some(footer.len() as u64);
        let ps = ps.encode_to_vec();
        let mut out = bytes[..footer_start].to_vec();
        out.extend_from_slice(&footer);
        out.extend_from_slice(&ps);
        out.push(u8::try_from(ps.len()).unwrap());
        std::fs::write(path, out).unwrap();
    }

    fn orc_error(path: &Path) -> String {
        let sch = schema(&[("i32", DataType::Int64)]);
        let err = read(
            ColumnarKind::Orc,
            path,
            &sch,
            false,
            2,
            &ParseBudget::new(None),
        )
        .unwrap_err();
        let fault = MsqFault::find(&err).unwrap();
        assert_eq!(fault.error_code(), "CannotParseExternalData");
        fault.message().to_string()
    }

    /// A footer type whose child index points back at the root (or itself) would send
    /// orc-rust's schema builder into unbounded recursion; it is bad input instead.
    #[test]
    fn orc_cyclic_footer_types_are_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let batch = source_batch(DataType::Timestamp(TimeUnit::Millisecond, None));
        let path = write(ColumnarKind::Orc, dir.path(), &batch);
        let sch = schema(&[("i32", DataType::Int64)]);
        let good = read(
            ColumnarKind::Orc,
            &path,
            &sch,
            false,
            2,
            &ParseBudget::new(None),
        );
        assert_eq!(good.unwrap().num_rows(), batch.num_rows());

        let cyclic = dir.path().join("cyclic.orc");
        std::fs::copy(&path, &cyclic).unwrap();
        rewrite_orc_footer(&cyclic, |f| f.types[0].subtypes[0] = 0);
        let message = orc_error(&cyclic);
        assert!(
            message.starts_with("Unable to read input [file:/data]: corrupt ORC footer: "),
            "{message}"
        );

        let own_child = dir.path().join("own_child.orc");
        std::fs::copy(&path, &own_child).unwrap();
        rewrite_orc_footer(&own_child, |f| {
            let last = f.types.len() - 1;
            f.types[last].subtypes.push(last as u32);
        });
        assert!(orc_error(&own_child).contains("corrupt ORC footer"));

        let out_of_range = dir.path().join("out_of_range.orc");
        std::fs::copy(&path, &out_of_range).unwrap();
        rewrite_orc_footer(&out_of_range, |f| {
            let n = f.types.len() as u32;
            f.types[0].subtypes[0] = n;
        });
        assert!(orc_error(&out_of_range).contains("corrupt ORC footer"));

        let unnamed = dir.path().join("unnamed.orc");
        std::fs::copy(&path, &unnamed).unwrap();
        rewrite_orc_footer(&unnamed, |f| {
            f.types[0].field_names.pop();
        });
        assert!(orc_error(&unnamed).contains("corrupt ORC footer"));
    }

    /// Files written with every codec orc-rust supports pass the footer check.
    #[test]
    fn orc_compressed_footers_pass_the_check() {
        use orc_rust::compression::CompressionType;
        let dir = tempfile::tempdir().unwrap();
        let batch = source_batch(DataType::Timestamp(TimeUnit::Millisecond, None));
        for codec in [
            CompressionType::Zlib,
            CompressionType::Snappy,
            CompressionType::Lz4,
            CompressionType::Zstd,
        ] {
            let path = dir.path().join(format!("{codec}.orc"));
            let mut w =
                orc_rust::ArrowWriterBuilder::new(File::create(&path).unwrap(), batch.schema())
                    .with_compression(codec)
                    .try_build()
                    .unwrap();
            w.write(&batch).unwrap();
            w.close().unwrap();
            let mut file = File::open(&path).unwrap();
            check_orc_footer(&mut file, "file:/data").unwrap();
            let sch = schema(&[("i32", DataType::Int64)]);
            let got = read(
                ColumnarKind::Orc,
                &path,
                &sch,
                false,
                2,
                &ParseBudget::new(None),
            );
            assert_eq!(got.unwrap().num_rows(), batch.num_rows(), "{codec}");
        }
    }

    /// orc-rust's writer cannot write LZO; the footer decompressor handles it, framed
    /// chunks of every kind, and refuses chunks that inflate beyond the block size.
    #[test]
    fn orc_decompress_frames_chunks() {
        use orc_rust::proto::CompressionKind;
        let data: Vec<u8> = (0..1000u32).flat_map(|i| (i % 7).to_le_bytes()).collect();
        let frame = |original: bool, body: &[u8]| {
            let header = (body.len() as u32) << 1 | u32::from(original);
            let mut out = header.to_le_bytes()[..3].to_vec();
            out.extend_from_slice(body);
            out
        };
        let lzo = lzokay_native::compress(&data).unwrap();
        let mut raw = frame(false, &lzo);
        raw.extend(frame(true, b"tail"));
        let out = orc_decompress(&raw, CompressionKind::Lzo, Some(64 * 1024)).unwrap();
        assert_eq!(&out[..data.len()], &data[..]);
        assert_eq!(&out[data.len()..], b"tail");
        // Inflating beyond the block size is refused before it is kept.
        let err = orc_decompress(&raw, CompressionKind::Lzo, Some(100)).unwrap_err();
        assert!(err.contains("inflates beyond 100 bytes"), "{err}");
        let lz4 = lz4_flex::block::compress(&data);
        let err = orc_decompress(&frame(false, &lz4), CompressionKind::Lz4, Some(100));
        assert!(err.is_err());
        // A chunk header claiming more bytes than there are.
        let mut short = frame(true, b"abc");
        short.truncate(4);
        assert!(orc_decompress(&short, CompressionKind::Zstd, None).is_err());
        assert!(orc_decompress(&[1, 0], CompressionKind::Zlib, None).is_err());
    }

    /// Flipping any single bit of a small ORC file never takes the process down: reading
    /// it either succeeds or fails with `CannotParseExternalData`.
    #[test]
    fn orc_byte_flips_never_abort() {
        let dir = tempfile::tempdir().unwrap();
        let sch = schema(&[("a", DataType::Int64), ("b", DataType::Utf8)]);
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("a", DataType::Int64, true),
                Field::new("b", DataType::Utf8, true),
            ])),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])),
                Arc::new(StringArray::from(vec![Some("x"), Some("y"), None])),
            ],
        )
        .unwrap();
        let path = write(ColumnarKind::Orc, dir.path(), &batch);
        let bytes = std::fs::read(&path).unwrap();
        let flipped = dir.path().join("flipped.orc");
        for (i, bit) in (0..bytes.len()).flat_map(|i| (0..8).map(move |bit| (i, bit))) {
            let mut b = bytes.clone();
            b[i] ^= 1 << bit;
            std::fs::write(&flipped, &b).unwrap();
            if let Err(err) = read(
                ColumnarKind::Orc,
                &flipped,
                &sch,
                false,
                2,
                &ParseBudget::new(None),
            ) {
                let fault = MsqFault::find(&err).unwrap();
                assert_eq!(
                    fault.error_code(),
                    "CannotParseExternalData",
                    "byte {i} bit {bit}"
                );
            }
        }
    }
}
