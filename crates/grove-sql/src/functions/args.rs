//! Argument handling shared by the time functions: type coercion rules,
//! literal-only arguments (pattern, period, zone, unit, origin) and conversion
//! of any Arrow timestamp to epoch millis.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, TimestampMillisecondBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use datafusion::common::{Result, ScalarValue, exec_err, internal_err, plan_err};
use datafusion::logical_expr::ColumnarValue;
use grove_common::time::{Period, Zone, parse_iso_millis};

/// The return type of every timestamp-producing time function.
pub(crate) const TIMESTAMP_MS: DataType = DataType::Timestamp(TimeUnit::Millisecond, None);

/// Checks the argument count at planning time.
pub(crate) fn check_arity(name: &str, types: &[DataType], min: usize, max: usize) -> Result<()> {
    if types.len() < min || types.len() > max {
        let expected = if min == max {
            min.to_string()
        } else {
            format!("{min} to {max}")
        };
        return plan_err!(
            "{} expects {expected} arguments, got {}",
            name.to_uppercase(),
            types.len()
        );
    }
    Ok(())
}

/// Coercion for a timestamp argument: timestamps (any unit or zone) and NULL
/// stay as they are; dates and strings are cast to `Timestamp(ms)`.
pub(crate) fn coerce_timestamp(name: &str, dt: &DataType) -> Result<DataType> {
    match dt {
        DataType::Timestamp(_, _) | DataType::Null => Ok(dt.clone()),
        DataType::Date32
        | DataType::Date64
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View => Ok(TIMESTAMP_MS),
        other => plan_err!(
            "{} expects a TIMESTAMP argument, got {other}",
            name.to_uppercase()
        ),
    }
}

/// Coercion for a string argument (literal or not): strings and NULL are kept.
pub(crate) fn coerce_string(name: &str, what: &str, dt: &DataType) -> Result<DataType> {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
            Ok(dt.clone())
        }
        other => plan_err!(
            "{}: the {what} argument must be a string, got {other}",
            name.to_uppercase()
        ),
    }
}

/// Coercion for an integer argument: any integer type (or NULL) becomes Int64.
pub(crate) fn coerce_integer(name: &str, what: &str, dt: &DataType) -> Result<DataType> {
    if dt.is_integer() || *dt == DataType::Null {
        Ok(DataType::Int64)
    } else {
        plan_err!(
            "{}: the {what} argument must be an integer, got {dt}",
            name.to_uppercase()
        )
    }
}

/// The string value of a scalar, `Ok(None)` for NULL of any type.
pub(crate) fn scalar_str<'a>(
    name: &str,
    what: &str,
    value: &'a ScalarValue,
) -> Result<Option<&'a str>> {
    match value {
        ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
            Ok(v.as_deref())
        }
        v if v.is_null() => Ok(None),
        v => exec_err!(
            "{}: the {what} argument must be a string, got {}",
            name.to_uppercase(),
            v.data_type()
        ),
    }
}

/// A literal string argument; an error if the argument is not a literal.
/// `Ok(None)` when the argument is absent or a NULL literal.
pub(crate) fn literal_str<'a>(
    name: &str,
    what: &str,
    arg: Option<&'a ColumnarValue>,
) -> Result<Option<&'a str>> {
    match arg {
        None => Ok(None),
        Some(ColumnarValue::Scalar(value)) => scalar_str(name, what, value),
        Some(ColumnarValue::Array(_)) => exec_err!(
            "{}: the {what} argument must be a literal",
            name.to_uppercase()
        ),
    }
}

/// The session's default zone: Druid's `sqlTimeZone` (UTC unless set).
pub(crate) fn default_zone(config: &datafusion::common::config::ConfigOptions) -> Zone {
    config
        .extensions
        .get::<grove_common::context::MsqOptions>()
        .and_then(|o| Zone::parse(&o.sql_time_zone))
        .unwrap_or(Zone::UTC)
}

/// Parses a zone argument value (`None` -> UTC).
pub(crate) fn zone_of(name: &str, value: Option<&str>) -> Result<Zone> {
    zone_or(name, value, Zone::UTC)
}

/// Parses a zone argument value (`None` -> `default`).
pub(crate) fn zone_or(name: &str, value: Option<&str>, default: Zone) -> Result<Zone> {
    match value {
        None => Ok(default),
        Some(s) => match Zone::parse(s) {
            Some(zone) => Ok(zone),
            None => exec_err!("{}: unknown time zone [{s}]", name.to_uppercase()),
        },
    }
}

/// Parses a period argument value: it must be present and positive.
pub(crate) fn period_of(name: &str, value: Option<&str>) -> Result<Period> {
    match value {
        None => exec_err!(
            "{}: the period argument must not be NULL",
            name.to_uppercase()
        ),
        Some(s) => match Period::parse(s).filter(Period::is_positive) {
            Some(period) => Ok(period),
            None => exec_err!("{}: invalid period [{s}]", name.to_uppercase()),
        },
    }
}

/// Millis of a timestamp-like scalar (timestamps of any unit, ISO strings);
/// `Ok(None)` for NULL.
pub(crate) fn scalar_millis(name: &str, what: &str, value: &ScalarValue) -> Result<Option<i64>> {
    let ms = match value {
        ScalarValue::TimestampSecond(v, _) => v.and_then(|v| v.checked_mul(1_000)),
        ScalarValue::TimestampMillisecond(v, _) => *v,
        ScalarValue::TimestampMicrosecond(v, _) => v.map(|v| v.div_euclid(1_000)),
        ScalarValue::TimestampNanosecond(v, _) => v.map(|v| v.div_euclid(1_000_000)),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => match parse_iso_millis(s) {
            Some(ms) => Some(ms),
            None => return exec_err!("{}: invalid {what} [{s}]", name.to_uppercase()),
        },
        v if v.is_null() => None,
        v => {
            return exec_err!(
                "{}: the {what} argument must be a timestamp, got {}",
                name.to_uppercase(),
                v.data_type()
            );
        }
    };
    Ok(ms)
}

/// A literal timestamp argument (such as an origin); `Ok(None)` when absent
/// or NULL.
pub(crate) fn literal_millis(
    name: &str,
    what: &str,
    arg: Option<&ColumnarValue>,
) -> Result<Option<i64>> {
    match arg {
        None => Ok(None),
        Some(ColumnarValue::Scalar(value)) => scalar_millis(name, what, value),
        Some(ColumnarValue::Array(_)) => exec_err!(
            "{}: the {what} argument must be a literal",
            name.to_uppercase()
        ),
    }
}

/// The `i`-th argument, or an internal error if the planner passed too few.
pub(crate) fn arg<'a>(
    name: &str,
    args: &'a [ColumnarValue],
    i: usize,
) -> Result<&'a ColumnarValue> {
    match args.get(i) {
        Some(a) => Ok(a),
        None => internal_err!("{name}: missing argument {i}"),
    }
}

/// Epoch millis of a timestamp argument, as an `Int64Array` of `rows` values.
/// Any timestamp unit is accepted and its zone ignored (values are instants).
pub(crate) fn millis_array(arg: &ColumnarValue, rows: usize) -> Result<Int64Array> {
    millis_of(&arg.to_array(rows)?)
}

fn millis_of(array: &ArrayRef) -> Result<Int64Array> {
    Ok(match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            array
                .as_primitive::<TimestampSecondType>()
                .unary_opt::<_, Int64Type>(|v| v.checked_mul(1_000))
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => array
            .as_primitive::<TimestampMillisecondType>()
            .unary::<_, Int64Type>(|v| v),
        DataType::Timestamp(TimeUnit::Microsecond, _) => array
            .as_primitive::<TimestampMicrosecondType>()
            .unary::<_, Int64Type>(|v| v.div_euclid(1_000)),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => array
            .as_primitive::<TimestampNanosecondType>()
            .unary::<_, Int64Type>(|v| v.div_euclid(1_000_000)),
        DataType::Null => Int64Array::new_null(array.len()),
        DataType::Int64 => array.as_primitive::<Int64Type>().clone(),
        _ => {
            let cast = cast(array, &TIMESTAMP_MS)?;
            cast.as_primitive::<TimestampMillisecondType>()
                .unary::<_, Int64Type>(|v| v)
        }
    })
}

/// An integer argument (column or literal) as an `Int64Array` of `rows` values.
pub(crate) fn int64_array(arg: &ColumnarValue, rows: usize) -> Result<Int64Array> {
    let array = arg.to_array(rows)?;
    let array = if *array.data_type() == DataType::Int64 {
        array
    } else {
        cast(&array, &DataType::Int64)?
    };
    Ok(array.as_primitive::<Int64Type>().clone())
}

/// The values of a string array (any string type, or all-NULL).
pub(crate) fn strings(array: &ArrayRef) -> Result<Vec<Option<&str>>> {
    Ok(match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().iter().collect(),
        DataType::LargeUtf8 => array.as_string::<i64>().iter().collect(),
        DataType::Utf8View => array.as_string_view().iter().collect(),
        DataType::Null => vec![None; array.len()],
        other => return internal_err!("expected a string array, got {other}"),
    })
}

/// Wraps millis as a `Timestamp(ms)` result column.
/// Sized from the iterator (an ingest holds these columns until they are written, so spare
/// capacity would be held too).
pub(crate) fn timestamp_result(values: impl IntoIterator<Item = Option<i64>>) -> ColumnarValue {
    let values = values.into_iter();
    let mut array = TimestampMillisecondBuilder::with_capacity(values.size_hint().0);
    array.extend(values);
    ColumnarValue::Array(Arc::new(array.finish()))
}

/// The literal string in `scalar_arguments[i]` at planning time, if that
/// argument is a non-NULL string literal.
pub(crate) fn planned_str<'a>(scalars: &[Option<&'a ScalarValue>], i: usize) -> Option<&'a str> {
    match scalars.get(i).copied().flatten()? {
        ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => v.as_deref(),
        _ => None,
    }
}

/// Re-labels an execution-time validation error as a planning error, so bad
/// literals are reported when the query is planned.
pub(crate) fn at_plan<T>(result: Result<T>) -> Result<T> {
    result.map_err(|e| match e {
        datafusion::error::DataFusionError::Execution(msg) => {
            datafusion::error::DataFusionError::Plan(msg)
        }
        other => other,
    })
}
