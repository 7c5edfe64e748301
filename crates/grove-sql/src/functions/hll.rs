//! What the DataSketches HLL functions share: the `lgK` and `tgtHllType` parameters,
//! argument coercion, feeding Arrow arrays into an [`HllUnion`], and sketch
//! (de)serialization. The sketches are Apache DataSketches' own (`datasketches`
//! crate), so their bytes are the compact images Druid and the Java/C++ libraries read.
//!
//! Values are hashed the way Druid's `HLLSketchBuild` aggregator hashes them (with
//! its default `stringEncoding`, `utf16le`): strings as UTF-16LE code units, integers
//! (and booleans, timestamps as epoch millis) as 64-bit longs, floating-point values as
//! canonical doubles. NULLs and empty strings are skipped, as in Druid.

use std::hash::{Hash, Hasher};

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Float64Type, Int64Type, TimeUnit, TimestampMillisecondType,
};
use datafusion::common::{Result, ScalarValue, internal_err, plan_err};
use datasketches::hash::value::canonical_float;
use datasketches::hll::{HllSketch, HllType, HllUnion};

/// Druid's default `lgK`.
pub(crate) const DEFAULT_LG_K: u8 = 12;
/// Druid's default `tgtHllType`.
pub(crate) const DEFAULT_HLL_TYPE: HllType = HllType::Hll4;
/// The smallest and largest `lgK` DataSketches accepts.
pub(crate) const LG_K_RANGE: std::ops::RangeInclusive<i64> = 4..=21;

/// `lgK` and `tgtHllType` of a sketch-building function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HllParams {
    /// log2 of the number of buckets, 4..=21.
    pub(crate) lg_k: u8,
    /// The type of the sketches produced.
    pub(crate) hll_type: HllType,
}

impl Default for HllParams {
    fn default() -> Self {
        Self {
            lg_k: DEFAULT_LG_K,
            hll_type: DEFAULT_HLL_TYPE,
        }
    }
}

impl HllParams {
    /// Reads the parameters from their literal values (`None` or NULL: the default).
    pub(crate) fn from_scalars(
        name: &str,
        lg_k: Option<&ScalarValue>,
        hll_type: Option<&ScalarValue>,
    ) -> Result<Self> {
        let lg_k = match lg_k {
            None => DEFAULT_LG_K,
            Some(v) if v.is_null() => DEFAULT_LG_K,
            Some(v) => parse_lg_k(name, scalar_i64(name, "lgK", v)?)?,
        };
        let hll_type = match hll_type {
            None => DEFAULT_HLL_TYPE,
            Some(v) if v.is_null() => DEFAULT_HLL_TYPE,
            Some(ScalarValue::Utf8(Some(s)))
            | Some(ScalarValue::LargeUtf8(Some(s)))
            | Some(ScalarValue::Utf8View(Some(s))) => parse_hll_type(name, s)?,
            Some(v) => {
                return plan_err!(
                    "{}: the tgtHllType argument must be a string, got {}",
                    name.to_uppercase(),
                    v.data_type()
                );
            }
        };
        Ok(Self { lg_k, hll_type })
    }

    /// A union sized for these parameters.
    pub(crate) fn new_union(&self, name: &str) -> Result<HllUnion> {
        HllUnion::new(self.lg_k).map_err(|e| sketch_error(name, e))
    }
}

fn scalar_i64(name: &str, what: &str, v: &ScalarValue) -> Result<i64> {
    match v.cast_to(&DataType::Int64) {
        Ok(ScalarValue::Int64(Some(n))) => Ok(n),
        _ => plan_err!(
            "{}: the {what} argument must be an integer, got {v}",
            name.to_uppercase()
        ),
    }
}

/// Checks an `lgK` value: an integer in 4..=21.
pub(crate) fn parse_lg_k(name: &str, lg_k: i64) -> Result<u8> {
    match u8::try_from(lg_k) {
        Ok(k) if LG_K_RANGE.contains(&lg_k) => Ok(k),
        _ => plan_err!(
            "{}: lgK must be between {} and {}, got [{lg_k}]",
            name.to_uppercase(),
            LG_K_RANGE.start(),
            LG_K_RANGE.end()
        ),
    }
}

/// Parses a `tgtHllType`: `HLL_4`, `HLL_6` or `HLL_8` (case-insensitive).
pub(crate) fn parse_hll_type(name: &str, value: &str) -> Result<HllType> {
    match value.trim().to_ascii_uppercase().as_str() {
        "HLL_4" => Ok(HllType::Hll4),
        "HLL_6" => Ok(HllType::Hll6),
        "HLL_8" => Ok(HllType::Hll8),
        _ => plan_err!(
            "{}: unknown tgtHllType [{value}]; expected HLL_4, HLL_6 or HLL_8",
            name.to_uppercase()
        ),
    }
}

/// Druid's name of an HLL type.
pub(crate) fn hll_type_name(t: HllType) -> &'static str {
    match t {
        HllType::Hll4 => "HLL_4",
        HllType::Hll6 => "HLL_6",
        HllType::Hll8 => "HLL_8",
    }
}

/// Wraps a DataSketches error with the function's name.
pub(crate) fn sketch_error(
    name: &str,
    e: datasketches::error::Error,
) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::Execution(format!("{}: {e}", name.to_uppercase()))
}

/// True for the Arrow types sketches travel as.
pub(crate) fn is_binary(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    )
}

/// Coercion for the input of `APPROX_COUNT_DISTINCT_DS_HLL` / `DS_HLL`: strings and
/// sketches (binary) stay as they are, integers and booleans become BIGINT, other
/// numbers DOUBLE, timestamps and dates `Timestamp(ms)`.
pub(crate) fn coerce_input(name: &str, dt: &DataType) -> Result<DataType> {
    use DataType::*;
    Ok(match dt {
        Utf8 | LargeUtf8 | Utf8View | Binary | LargeBinary | BinaryView | Null => dt.clone(),
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 | Boolean => Int64,
        Float16
        | Float32
        | Float64
        | Decimal32(_, _)
        | Decimal64(_, _)
        | Decimal128(_, _)
        | Decimal256(_, _) => Float64,
        Timestamp(_, _) | Date32 | Date64 => Timestamp(TimeUnit::Millisecond, None),
        Dictionary(_, value) => return coerce_input(name, value),
        other => {
            return plan_err!(
                "{} cannot count values of type {other}; expected a string, a number, \
                 a timestamp or an HLL sketch",
                name.to_uppercase()
            );
        }
    })
}

/// A string hashed as Druid hashes it by default: its UTF-16 code units,
/// little-endian (Java's `HllSketch.update(char[])`).
struct Utf16Le<'a>(&'a str);

impl Hash for Utf16Le<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut buf = [0u8; 128];
        let mut len = 0;
        for unit in self.0.encode_utf16() {
            if len == buf.len() {
                state.write(&buf);
                len = 0;
            }
            buf[len..len + 2].copy_from_slice(&unit.to_le_bytes());
            len += 2;
        }
        state.write(&buf[..len]);
    }
}

/// Adds one string to a union (empty strings are skipped, as in Druid).
pub(crate) fn update_str(union: &mut HllUnion, s: &str) {
    if !s.is_empty() {
        union.update_value(Utf16Le(s));
    }
}

/// Parses a serialized sketch.
pub(crate) fn deserialize(name: &str, bytes: &[u8]) -> Result<HllSketch> {
    HllSketch::deserialize(bytes).map_err(|e| {
        datafusion::error::DataFusionError::Execution(format!(
            "{}: input is not a valid HLL sketch: {e}",
            name.to_uppercase()
        ))
    })
}

/// One input value of an HLL aggregator.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HllInput<'a> {
    /// A string, hashed as UTF-16LE (empty strings are skipped).
    Str(&'a str),
    /// An integer, boolean or timestamp (epoch millis).
    Long(i64),
    /// A floating-point value, hashed as a canonical double.
    Double(f64),
    /// A serialized sketch, merged.
    Sketch(&'a [u8]),
}

/// Adds one input value to a union.
pub(crate) fn add_input(name: &str, union: &mut HllUnion, value: HllInput<'_>) -> Result<()> {
    match value {
        HllInput::Str(s) => update_str(union, s),
        HllInput::Long(v) => union.update_value(v),
        HllInput::Double(v) => union.update_value(canonical_float::from_f64(v)),
        HllInput::Sketch(bytes) => union.update(&deserialize(name, bytes)?),
    }
    Ok(())
}

/// Calls `f(row, value)` for every non-NULL value of `array` (already coerced by
/// [`coerce_input`]).
pub(crate) fn for_each_input(
    name: &str,
    array: &ArrayRef,
    mut f: impl FnMut(usize, HllInput<'_>) -> Result<()>,
) -> Result<()> {
    fn each<T>(
        values: impl Iterator<Item = Option<T>>,
        mut f: impl FnMut(usize, T) -> Result<()>,
    ) -> Result<()> {
        for (row, v) in values.enumerate() {
            if let Some(v) = v {
                f(row, v)?;
            }
        }
        Ok(())
    }
    match array.data_type() {
        DataType::Utf8 => each(array.as_string::<i32>().iter(), |r, s| {
            f(r, HllInput::Str(s))
        }),
        DataType::LargeUtf8 => each(array.as_string::<i64>().iter(), |r, s| {
            f(r, HllInput::Str(s))
        }),
        DataType::Utf8View => each(array.as_string_view().iter(), |r, s| f(r, HllInput::Str(s))),
        DataType::Int64 => each(array.as_primitive::<Int64Type>().iter(), |r, v| {
            f(r, HllInput::Long(v))
        }),
        DataType::Timestamp(TimeUnit::Millisecond, _) => each(
            array.as_primitive::<TimestampMillisecondType>().iter(),
            |r, v| f(r, HllInput::Long(v)),
        ),
        DataType::Float64 => each(array.as_primitive::<Float64Type>().iter(), |r, v| {
            f(r, HllInput::Double(v))
        }),
        DataType::Binary => each(array.as_binary::<i32>().iter(), |r, b| {
            f(r, HllInput::Sketch(b))
        }),
        DataType::LargeBinary => each(array.as_binary::<i64>().iter(), |r, b| {
            f(r, HllInput::Sketch(b))
        }),
        DataType::BinaryView => each(array.as_binary_view().iter(), |r, b| {
            f(r, HllInput::Sketch(b))
        }),
        DataType::Null => Ok(()),
        other => internal_err!("{name}: unexpected input type {other}"),
    }
}

/// Feeds every non-NULL value of `array` (already coerced by [`coerce_input`]) into
/// `union`; binary values are sketches and are merged.
pub(crate) fn update_union(name: &str, union: &mut HllUnion, array: &ArrayRef) -> Result<()> {
    for_each_input(name, array, |_, v| add_input(name, union, v))
}

/// Merges serialized sketches (NULLs skipped) into `union`.
pub(crate) fn merge_sketches<'a>(
    name: &str,
    union: &mut HllUnion,
    values: impl Iterator<Item = Option<&'a [u8]>>,
) -> Result<()> {
    for bytes in values.flatten() {
        union.update(&deserialize(name, bytes)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{BinaryArray, Float64Array, Int64Array, StringArray};

    use super::*;

    fn estimate_of(array: ArrayRef) -> f64 {
        let mut union = HllUnion::new(12).expect("lgK 12 is valid");
        update_union("t", &mut union, &array).expect("update");
        // Small sketches keep exact coupons; their estimate is a hair above the count.
        union.estimate().round()
    }

    #[test]
    fn parameters() {
        assert_eq!(
            HllParams::from_scalars("f", None, None).ok(),
            Some(HllParams::default())
        );
        let p = HllParams::from_scalars(
            "f",
            Some(&ScalarValue::Int64(Some(21))),
            Some(&ScalarValue::from("hll_8")),
        )
        .expect("valid");
        assert_eq!((p.lg_k, p.hll_type), (21, HllType::Hll8));
        let e = HllParams::from_scalars("f", Some(&ScalarValue::Int64(Some(3))), None)
            .expect_err("lgK 3");
        assert!(
            e.to_string()
                .contains("lgK must be between 4 and 21, got [3]"),
            "{e}"
        );
        let e = HllParams::from_scalars("f", Some(&ScalarValue::Int64(Some(300))), None)
            .expect_err("lgK 300");
        assert!(e.to_string().contains("got [300]"), "{e}");
        let e = HllParams::from_scalars("f", None, Some(&ScalarValue::from("HLL_5")))
            .expect_err("HLL_5");
        assert!(e.to_string().contains("unknown tgtHllType [HLL_5]"), "{e}");
        let e = HllParams::from_scalars("f", None, Some(&ScalarValue::Int64(Some(4))))
            .expect_err("number type");
        assert!(e.to_string().contains("must be a string"), "{e}");
    }

    #[test]
    fn skips_nulls_and_empty_strings() {
        let strings = StringArray::from(vec![Some("a"), None, Some(""), Some("b"), Some("a")]);
        assert_eq!(estimate_of(Arc::new(strings)), 2.0);
        let longs = Int64Array::from(vec![Some(1), None, Some(1), Some(-1)]);
        assert_eq!(estimate_of(Arc::new(longs)), 2.0);
        // -0.0 and 0.0 are one value, as in Java's DataSketches.
        let doubles = Float64Array::from(vec![Some(0.0), Some(-0.0), Some(1.5), None]);
        assert_eq!(estimate_of(Arc::new(doubles)), 2.0);
    }

    #[test]
    fn strings_hash_as_utf16le() {
        // A string longer than the hashing buffer hashes like its UTF-16LE bytes.
        let s: String = "ä€x".repeat(50);
        let bytes: Vec<u8> = s.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let mut a = HllSketch::new(12, HllType::Hll8).expect("valid");
        a.update(Utf16Le(&s));
        let mut b = HllSketch::new(12, HllType::Hll8).expect("valid");
        b.update(datasketches::hash::value::raw_bytes::from_slice(&bytes));
        assert_eq!(a.serialize(), b.serialize());
    }

    #[test]
    fn bad_sketch_bytes_are_an_error() {
        let array = BinaryArray::from(vec![Some(&b"not a sketch"[..])]);
        let mut union = HllUnion::new(12).expect("valid");
        let e = update_union("ds_hll", &mut union, &(Arc::new(array) as ArrayRef))
            .expect_err("garbage");
        assert!(
            e.to_string()
                .contains("DS_HLL: input is not a valid HLL sketch"),
            "{e}"
        );
    }
}
