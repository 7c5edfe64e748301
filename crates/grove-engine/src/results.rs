//! Query results in Druid's SQL result formats: `object`, `array`, `objectLines`,
//! `arrayLines` and `csv`, with the optional header rows (names, native types, SQL
//! types), written batch by batch so a large result never has to be held whole.
//!
//! ```text
//! RecordBatch ─▶ ResultWriter::write_batch ─▶ bytes (streamed by the HTTP layer)
//!                   values: TIMESTAMP as ISO text in sqlTimeZone (POST /druid/v2/sql)
//!                           or epoch millis (statements API, task reports)
//! ```

use std::fmt::Write as _;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Field, Float64Type, Int64Type, Schema, TimeUnit,
    TimestampMillisecondType,
};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use base64::Engine as _;
use datafusion::common::{DataFusionError, Result};
use grove_common::time::{Zone, format_millis_with_offset};
use grove_common::types::{ComplexType, sql_type_name, storage_type_for};
use serde_json::Value;

/// One of Druid's result formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultFormat {
    /// A JSON array of objects keyed by column name.
    Object,
    /// A JSON array of arrays.
    Array,
    /// One JSON object per line, then a blank line.
    ObjectLines,
    /// One JSON array per line, then a blank line.
    ArrayLines,
    /// One CSV row per line, then a blank line.
    Csv,
}

impl ResultFormat {
    /// Parses a `resultFormat` value (case-insensitive, as Druid's enum).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "object" => Self::Object,
            "array" => Self::Array,
            "objectlines" => Self::ObjectLines,
            "arraylines" => Self::ArrayLines,
            "csv" => Self::Csv,
            _ => return None,
        })
    }

    /// The format's name as Druid spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Object => "object",
            Self::Array => "array",
            Self::ObjectLines => "objectLines",
            Self::ArrayLines => "arrayLines",
            Self::Csv => "csv",
        }
    }

    /// The response's `Content-Type`.
    pub fn content_type(&self) -> &'static str {
        match self {
            Self::Object | Self::Array => "application/json",
            Self::ObjectLines | Self::ArrayLines => "text/plain",
            Self::Csv => "text/csv",
        }
    }

    fn is_object(&self) -> bool {
        matches!(self, Self::Object | Self::ObjectLines)
    }
}

/// A result column with Druid's native type (`LONG`, `STRING`, ...) and SQL type
/// (`TIMESTAMP`, `VARCHAR`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultColumn {
    /// Column name.
    pub name: String,
    /// Druid native type.
    pub native_type: String,
    /// SQL type.
    pub sql_type: String,
}

impl ResultColumn {
    /// The Druid types of a result field.
    pub fn of_field(field: &Field) -> Self {
        let (native, sql) = if let Some(complex) = ComplexType::of_field(field) {
            (complex.native_name().to_string(), "OTHER".to_string())
        } else {
            // Result columns named `__time` need not be timestamps: type by data type.
            let native = storage_type_for("", field.data_type())
                .map(|t| t.native_name().to_string())
                .unwrap_or_else(|| "COMPLEX".to_string());
            (native, sql_type_name(field.data_type()).to_string())
        };
        Self {
            name: field.name().clone(),
            native_type: native,
            sql_type: sql,
        }
    }

    /// The columns of a result schema.
    pub fn of_schema(schema: &Schema) -> Vec<Self> {
        schema.fields().iter().map(|f| Self::of_field(f)).collect()
    }
}

/// How values are rendered.
#[derive(Debug, Clone)]
pub struct ValueOptions {
    /// TIMESTAMP and DATE values as ISO-8601 text in this zone; `None`: epoch millis.
    pub time_zone: Option<Zone>,
    /// Arrays as JSON-encoded strings (Druid's `sqlStringifyArrays`, default true).
    pub stringify_arrays: bool,
}

impl ValueOptions {
    /// ISO timestamps in `zone`, arrays as strings: `POST /druid/v2/sql`'s defaults.
    pub fn iso(zone: Zone) -> Self {
        Self {
            time_zone: Some(zone),
            stringify_arrays: true,
        }
    }

    /// Epoch-millisecond timestamps: the statements API and task reports.
    pub fn millis() -> Self {
        Self {
            time_zone: None,
            stringify_arrays: true,
        }
    }
}

/// Which header rows to write before the results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderOptions {
    /// Column names (`header`).
    pub header: bool,
    /// Native types (`typesHeader`; only with `header`).
    pub types: bool,
    /// SQL types (`sqlTypesHeader`; only with `header`).
    pub sql_types: bool,
}

/// Writes a result in one format: [`Self::begin`], then [`Self::write_batch`] per batch,
/// then [`Self::end`]; each returns the bytes to send.
#[derive(Debug)]
pub struct ResultWriter {
    format: ResultFormat,
    columns: Vec<ResultColumn>,
    headers: HeaderOptions,
    values: ValueOptions,
    rows: u64,
}

impl ResultWriter {
    /// A writer for a result with `columns`.
    pub fn new(
        format: ResultFormat,
        columns: Vec<ResultColumn>,
        headers: HeaderOptions,
        values: ValueOptions,
    ) -> Self {
        Self {
            format,
            columns,
            headers,
            values,
            rows: 0,
        }
    }

    /// Rows written so far (header rows not counted).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The opening bytes and header rows.
    pub fn begin(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if matches!(self.format, ResultFormat::Object | ResultFormat::Array) {
            out.push(b'[');
        }
        if !self.headers.header {
            return out;
        }
        let mut first = true;
        match self.format {
            ResultFormat::Object | ResultFormat::ObjectLines => {
                let mut obj = Vec::with_capacity(self.columns.len());
                for c in &self.columns {
                    let value = if !self.headers.types && !self.headers.sql_types {
                        "null".to_string()
                    } else {
                        let mut t = Vec::new();
                        if self.headers.types {
                            t.push(("type".to_string(), json_text(&c.native_type)));
                        }
                        if self.headers.sql_types {
                            t.push(("sqlType".to_string(), json_text(&c.sql_type)));
                        }
                        ordered_object(&t)
                    };
                    obj.push((c.name.clone(), value));
                }
                self.push_json_row(&mut out, &ordered_object(&obj), &mut first);
            }
            ResultFormat::Array | ResultFormat::ArrayLines => {
                for row in self.header_rows() {
                    let row = Value::Array(row.into_iter().map(Value::String).collect());
                    self.push_json_row(&mut out, &row.to_string(), &mut first);
                }
            }
            ResultFormat::Csv => {
                for row in self.header_rows() {
                    push_csv_line(&mut out, row.iter().map(String::as_str));
                }
            }
        }
        out
    }

    fn header_rows(&self) -> Vec<Vec<String>> {
        let mut rows = vec![self.columns.iter().map(|c| c.name.clone()).collect()];
        if self.headers.types {
            rows.push(self.columns.iter().map(|c| c.native_type.clone()).collect());
        }
        if self.headers.sql_types {
            rows.push(self.columns.iter().map(|c| c.sql_type.clone()).collect());
        }
        rows
    }

    /// Whether a JSON row was already written (so the next needs a comma).
    fn wrote_json_row(&self) -> bool {
        self.rows > 0
            || (self.headers.header
                && matches!(self.format, ResultFormat::Object | ResultFormat::Array))
    }

    fn push_json_row(&self, out: &mut Vec<u8>, row: &str, first_in_call: &mut bool) {
        match self.format {
            ResultFormat::Object | ResultFormat::Array => {
                if !*first_in_call {
                    out.push(b',');
                }
                out.extend_from_slice(row.as_bytes());
            }
            _ => {
                out.extend_from_slice(row.as_bytes());
                out.push(b'\n');
            }
        }
        *first_in_call = false;
    }

    /// The bytes of one batch's rows.
    pub fn write_batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(batch.num_rows() * 16 * batch.num_columns().max(1));
        if batch.num_rows() == 0 {
            return Ok(out);
        }
        let columns: Vec<Vec<Value>> = batch
            .columns()
            .iter()
            .map(|c| column_json(c.as_ref(), &self.values))
            .collect();
        if columns.len() != self.columns.len() {
            return Err(DataFusionError::Internal(format!(
                "result batch has {} columns, its schema {}",
                columns.len(),
                self.columns.len()
            )));
        }
        let mut needs_comma = self.wrote_json_row();
        for row in 0..batch.num_rows() {
            match self.format {
                ResultFormat::Csv => {
                    let cells: Vec<String> = columns.iter().map(|c| csv_text(&c[row])).collect();
                    push_csv_line(&mut out, cells.iter().map(String::as_str));
                }
                format => {
                    if needs_comma && matches!(format, ResultFormat::Object | ResultFormat::Array) {
                        out.push(b',');
                    }
                    needs_comma = true;
                    // Written by hand: keys in column order (serde_json maps sort them).
                    out.push(if format.is_object() { b'{' } else { b'[' });
                    for (i, (c, values)) in self.columns.iter().zip(&columns).enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        if format.is_object() {
                            write_json(&mut out, &Value::String(c.name.clone()))?;
                            out.push(b':');
                        }
                        write_json(&mut out, &values[row])?;
                    }
                    out.push(if format.is_object() { b'}' } else { b']' });
                    if matches!(format, ResultFormat::ObjectLines | ResultFormat::ArrayLines) {
                        out.push(b'\n');
                    }
                }
            }
        }
        self.rows += batch.num_rows() as u64;
        Ok(out)
    }

    /// The closing bytes: `]` and a line feed for JSON arrays (Druid ends every response
    /// with one; the web console reads a body without it as cut off), a blank line for
    /// the line formats and CSV.
    pub fn end(&mut self) -> Vec<u8> {
        match self.format {
            ResultFormat::Object | ResultFormat::Array => b"]\n".to_vec(),
            _ => b"\n".to_vec(),
        }
    }
}

fn write_json(out: &mut Vec<u8>, value: &Value) -> Result<()> {
    serde_json::to_writer(out, value).map_err(|e| DataFusionError::External(Box::new(e)))
}

fn json_text(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// A JSON object with its keys in the given order; values are JSON text.
fn ordered_object(entries: &[(String, String)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&json_text(k));
        out.push(':');
        out.push_str(v);
    }
    out.push('}');
    out
}

/// One CSV line, quoting only fields that need it (as opencsv does for Druid).
fn push_csv_line<'a>(out: &mut Vec<u8>, cells: impl Iterator<Item = &'a str>) {
    let mut first = true;
    for cell in cells {
        if !first {
            out.push(b',');
        }
        first = false;
        if cell.contains([',', '"', '\n', '\r']) {
            out.push(b'"');
            out.extend_from_slice(cell.replace('"', "\"\"").as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(cell.as_bytes());
        }
    }
    out.push(b'\n');
}

fn csv_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The JSON values of a column, rendered as Druid renders query results.
pub fn column_json(array: &dyn Array, options: &ValueOptions) -> Vec<Value> {
    let n = array.len();
    let each = |f: &dyn Fn(usize) -> Value| -> Vec<Value> {
        (0..n)
            .map(|i| if array.is_null(i) { Value::Null } else { f(i) })
            .collect()
    };
    let time = |ms: i64| -> Value {
        match &options.time_zone {
            None => Value::from(ms),
            Some(zone) => {
                let offset = zone.offset_millis(ms).unwrap_or(0);
                Value::String(format_millis_with_offset(ms, offset))
            }
        }
    };
    match array.data_type() {
        DataType::Timestamp(_, _) => {
            match arrow::compute::cast(array, &DataType::Timestamp(TimeUnit::Millisecond, None)) {
                Ok(cast) => {
                    let a = cast.as_primitive::<TimestampMillisecondType>();
                    each(&|i| time(a.value(i)))
                }
                Err(_) => vec![Value::Null; n],
            }
        }
        DataType::Date32 => {
            let a = array.as_primitive::<Date32Type>();
            each(&|i| time(i64::from(a.value(i)) * 86_400_000))
        }
        DataType::Date64 => {
            let a = array.as_primitive::<Date64Type>();
            each(&|i| time(a.value(i)))
        }
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => match arrow::compute::cast(array, &DataType::Int64) {
            Ok(cast) => {
                let a = cast.as_primitive::<Int64Type>();
                each(&|i| Value::from(a.value(i)))
            }
            Err(_) => vec![Value::Null; n],
        },
        DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal32(_, _)
        | DataType::Decimal64(_, _)
        | DataType::Decimal128(_, _)
        | DataType::Decimal256(_, _) => match arrow::compute::cast(array, &DataType::Float64) {
            Ok(cast) => {
                let a = cast.as_primitive::<Float64Type>();
                // NaN and infinities have no JSON number: Druid writes them as strings.
                each(&|i| {
                    let x = a.value(i);
                    serde_json::Number::from_f64(x)
                        .map(Value::Number)
                        .unwrap_or_else(|| Value::String(java_double_text(x)))
                })
            }
            Err(_) => vec![Value::Null; n],
        },
        DataType::Boolean => {
            let a = array.as_boolean();
            each(&|i| Value::Bool(a.value(i)))
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            match arrow::compute::cast(array, &DataType::Binary) {
                Ok(cast) => {
                    let a = cast.as_binary::<i32>();
                    each(&|i| {
                        Value::String(base64::engine::general_purpose::STANDARD.encode(a.value(i)))
                    })
                }
                Err(_) => vec![Value::Null; n],
            }
        }
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _) => {
            let list = match arrow::compute::cast(
                array,
                &DataType::List(match array.data_type() {
                    DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                        std::sync::Arc::clone(f)
                    }
                    _ => return vec![Value::Null; n],
                }),
            ) {
                Ok(l) => l,
                Err(_) => return vec![Value::Null; n],
            };
            let list = list.as_list::<i32>();
            let inner = ValueOptions {
                time_zone: options.time_zone,
                stringify_arrays: false,
            };
            each(&|i| {
                let elements = Value::Array(column_json(list.value(i).as_ref(), &inner));
                if options.stringify_arrays {
                    Value::String(elements.to_string())
                } else {
                    elements
                }
            })
        }
        DataType::Null => vec![Value::Null; n],
        _ => {
            let formats = FormatOptions::default();
            match ArrayFormatter::try_new(array, &formats) {
                Ok(f) => each(&|i| {
                    let mut s = String::new();
                    let _ = write!(s, "{}", f.value(i));
                    Value::String(s)
                }),
                Err(_) => vec![Value::Null; n],
            }
        }
    }
}

fn java_double_text(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x > 0.0 {
        "Infinity".into()
    } else {
        "-Infinity".into()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        BooleanArray, Float64Array, Int64Array, ListArray, StringArray, TimestampMillisecondArray,
    };
    use arrow::datatypes::Int64Type as I64;

    use super::*;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "__time",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            Field::new("page", DataType::Utf8, true),
            Field::new("added", DataType::Int64, true),
            Field::new("ratio", DataType::Float64, true),
            Field::new("ok", DataType::Boolean, true),
            Field::new(
                "tags",
                DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
                true,
            ),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampMillisecondArray::from(vec![
                    1442018818771,
                    1442018820000,
                ])),
                Arc::new(StringArray::from(vec![Some("a,\"b\""), None])),
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(Float64Array::from(vec![Some(0.5), Some(f64::NAN)])),
                Arc::new(BooleanArray::from(vec![Some(true), None])),
                Arc::new(ListArray::from_iter_primitive::<I64, _, _>(vec![
                    Some(vec![Some(1), None]),
                    None,
                ])),
            ],
        )
        .unwrap()
    }

    fn render(format: ResultFormat, headers: HeaderOptions, values: ValueOptions) -> String {
        let b = batch();
        let mut w = ResultWriter::new(
            format,
            ResultColumn::of_schema(&b.schema()),
            headers,
            values,
        );
        let mut out = w.begin();
        out.extend(w.write_batch(&b).unwrap());
        out.extend(w.write_batch(&b.slice(0, 1)).unwrap());
        out.extend(w.end());
        String::from_utf8(out).unwrap()
    }

    fn utc() -> ValueOptions {
        ValueOptions::iso(Zone::parse("UTC").unwrap())
    }

    #[test]
    fn object_and_array_formats() {
        let none = HeaderOptions::default();
        let row1 = r#"{"__time":"2015-09-12T00:46:58.771Z","page":"a,\"b\"","added":1,"ratio":0.5,"ok":true,"tags":"[1,null]"}"#;
        let row2 = r#"{"__time":"2015-09-12T00:47:00.000Z","page":null,"added":null,"ratio":"NaN","ok":null,"tags":null}"#;
        assert_eq!(
            render(ResultFormat::Object, none, utc()),
            format!("[{row1},{row2},{row1}]\n")
        );
        assert_eq!(
            render(ResultFormat::ObjectLines, none, utc()),
            format!("{row1}\n{row2}\n{row1}\n\n")
        );
        let arr1 = r#"[1442018818771,"a,\"b\"",1,0.5,true,"[1,null]"]"#;
        let out = render(ResultFormat::ArrayLines, none, ValueOptions::millis());
        assert!(out.starts_with(&format!("{arr1}\n")), "{out}");
        assert!(out.ends_with("\n\n"));
        let out = render(ResultFormat::Array, none, ValueOptions::millis());
        assert!(
            out.starts_with(&format!("[{arr1},")) && out.ends_with("]\n"),
            "{out}"
        );
    }

    #[test]
    fn time_zone_offsets() {
        let la = ValueOptions::iso(Zone::parse("America/Los_Angeles").unwrap());
        let out = render(ResultFormat::ArrayLines, HeaderOptions::default(), la);
        assert!(
            out.starts_with(r#"["2015-09-11T17:46:58.771-07:00""#),
            "{out}"
        );
    }

    #[test]
    fn headers_per_format() {
        let all = HeaderOptions {
            header: true,
            types: true,
            sql_types: true,
        };
        let out = render(ResultFormat::Object, all, utc());
        assert!(
            out.starts_with(
                r#"[{"__time":{"type":"LONG","sqlType":"TIMESTAMP"},"page":{"type":"STRING","sqlType":"VARCHAR"},"added":{"type":"LONG","sqlType":"BIGINT"},"ratio":{"type":"DOUBLE","sqlType":"DOUBLE"},"ok":{"type":"LONG","sqlType":"BOOLEAN"},"tags":{"type":"ARRAY<LONG>","sqlType":"ARRAY"}},{"#
            ),
            "{out}"
        );
        let names = HeaderOptions {
            header: true,
            ..Default::default()
        };
        let out = render(ResultFormat::Object, names, utc());
        assert!(
            out.starts_with(
                r#"[{"__time":null,"page":null,"added":null,"ratio":null,"ok":null,"tags":null},{"#
            ),
            "{out}"
        );
        let out = render(ResultFormat::Array, all, utc());
        assert!(
            out.starts_with(
                r#"[["__time","page","added","ratio","ok","tags"],["LONG","STRING","LONG","DOUBLE","LONG","ARRAY<LONG>"],["TIMESTAMP","VARCHAR","BIGINT","DOUBLE","BOOLEAN","ARRAY"],["#
            ),
            "{out}"
        );
        let out = render(ResultFormat::Csv, all, utc());
        assert_eq!(
            out,
            "__time,page,added,ratio,ok,tags\n\
             LONG,STRING,LONG,DOUBLE,LONG,ARRAY<LONG>\n\
             TIMESTAMP,VARCHAR,BIGINT,DOUBLE,BOOLEAN,ARRAY\n\
             2015-09-12T00:46:58.771Z,\"a,\"\"b\"\"\",1,0.5,true,\"[1,null]\"\n\
             2015-09-12T00:47:00.000Z,,,NaN,,\n\
             2015-09-12T00:46:58.771Z,\"a,\"\"b\"\"\",1,0.5,true,\"[1,null]\"\n\n"
        );
        // Empty result with a header: the header alone.
        let mut w = ResultWriter::new(
            ResultFormat::Array,
            ResultColumn::of_schema(&batch().schema()),
            names,
            utc(),
        );
        let mut out = w.begin();
        out.extend(w.end());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[[\"__time\",\"page\",\"added\",\"ratio\",\"ok\",\"tags\"]]\n"
        );
    }
}
