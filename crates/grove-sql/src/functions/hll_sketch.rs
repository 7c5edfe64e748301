//! Scalar functions over HLL sketches (the output of `DS_HLL` or a stored
//! `COMPLEX<HLLSketch>` column): `HLL_SKETCH_ESTIMATE`, `HLL_SKETCH_UNION` and
//! `HLL_SKETCH_TO_STRING`. A NULL sketch gives NULL (`HLL_SKETCH_UNION` skips it).

use std::fmt::Write as _;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanArray, Float64Array, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datasketches::common::NumStdDev;
use datasketches::hll::HllSketch;
use grove_common::types::ComplexType;

use super::args::{arg, check_arity};
use super::hll::{HllParams, deserialize, hll_type_name, is_binary, merge_sketches};

/// Druid's `HLL_SKETCH_ESTIMATE(sketch [, round])`: the distinct count estimate of a
/// sketch as DOUBLE; rounded to a whole number when `round` is true (default false).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct HllSketchEstimateFunc {
    signature: Signature,
}

/// Druid's `HLL_SKETCH_UNION([lgK, tgtHllType,] sketch0, sketch1, ...)`: the union of
/// the sketches in each row (NULLs skipped), as a sketch. `lgK` (default 12) and
/// `tgtHllType` (default `'HLL_4'`) are literals.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct HllSketchUnionFunc {
    signature: Signature,
}

/// Druid's `HLL_SKETCH_TO_STRING(sketch)`: a human-readable summary of a sketch.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct HllSketchToStringFunc {
    signature: Signature,
}

macro_rules! new_func {
    ($($t:ident),*) => {$(
        impl Default for $t {
            fn default() -> Self {
                Self::new()
            }
        }

        impl $t {
            /// Creates the function.
            pub fn new() -> Self {
                Self {
                    signature: Signature::user_defined(Volatility::Immutable),
                }
            }
        }
    )*};
}

new_func!(
    HllSketchEstimateFunc,
    HllSketchUnionFunc,
    HllSketchToStringFunc
);

/// Coercion for a sketch argument: binary (or NULL) only.
fn coerce_sketch(name: &str, dt: &DataType) -> Result<DataType> {
    if is_binary(dt) || *dt == DataType::Null {
        Ok(dt.clone())
    } else {
        plan_err!(
            "{} expects an HLL sketch argument, got {dt}",
            name.to_uppercase()
        )
    }
}

/// The sketches of a binary argument, one per row (`None` for NULL).
fn sketches(name: &str, arg: &ColumnarValue, rows: usize) -> Result<Vec<Option<HllSketch>>> {
    let array = arg.to_array(rows)?;
    let parse = |v: Option<&[u8]>| v.map(|b| deserialize(name, b)).transpose();
    match array.data_type() {
        DataType::Binary => array.as_binary::<i32>().iter().map(parse).collect(),
        DataType::LargeBinary => array.as_binary::<i64>().iter().map(parse).collect(),
        DataType::BinaryView => array.as_binary_view().iter().map(parse).collect(),
        DataType::Null => Ok(vec![None; rows]),
        other => exec_err!(
            "{}: expected an HLL sketch, got {other}",
            name.to_uppercase()
        ),
    }
}

impl ScalarUDFImpl for HllSketchEstimateFunc {
    fn name(&self) -> &str {
        "hll_sketch_estimate"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(self.name(), arg_types, 1, 2)?;
        let mut out = vec![coerce_sketch(self.name(), &arg_types[0])?];
        if let Some(t) = arg_types.get(1) {
            match t {
                DataType::Boolean | DataType::Null => out.push(DataType::Boolean),
                other => {
                    return plan_err!(
                        "HLL_SKETCH_ESTIMATE: the round argument must be a boolean, got {other}"
                    );
                }
            }
        }
        Ok(out)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let sketches = sketches(self.name(), arg(self.name(), &args.args, 0)?, rows)?;
        let round = match args.args.get(1) {
            None => BooleanArray::from(vec![false; rows]),
            Some(v) => v.to_array(rows)?.as_boolean().clone(),
        };
        let out: Float64Array = sketches
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.as_ref().map(|s| {
                    let estimate = s.estimate();
                    if round.is_valid(i) && round.value(i) {
                        estimate.round()
                    } else {
                        estimate
                    }
                })
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// Splits `HLL_SKETCH_UNION`'s arguments: the number of leading parameter arguments
/// (`lgK`, then `tgtHllType`), judged by type.
fn union_param_count(arg_types: &[DataType]) -> usize {
    let is_string =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    match arg_types {
        [k, t, ..] if k.is_integer() && is_string(t) => 2,
        [k, ..] if k.is_integer() => 1,
        _ => 0,
    }
}

impl ScalarUDFImpl for HllSketchUnionFunc {
    fn name(&self) -> &str {
        "hll_sketch_union"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let params = union_param_count(arg_types);
        if arg_types.len() <= params {
            return plan_err!("HLL_SKETCH_UNION expects at least one sketch argument");
        }
        let mut out = Vec::with_capacity(arg_types.len());
        for (i, t) in arg_types.iter().enumerate() {
            out.push(match i {
                0 if params >= 1 => DataType::Int64,
                1 if params == 2 => t.clone(),
                _ => coerce_sketch(self.name(), t)?,
            });
        }
        Ok(out)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(ComplexType::HllSketch.arrow_type())
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(ComplexType::HllSketch.field(self.name(), false)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        let types: Vec<DataType> = args.args.iter().map(ColumnarValue::data_type).collect();
        let params = union_param_count(&types);
        let literal = |i: usize, what: &str| -> Result<Option<&ScalarValue>> {
            match args.args.get(i) {
                Some(ColumnarValue::Scalar(v)) if i < params => Ok(Some(v)),
                Some(ColumnarValue::Array(_)) if i < params => {
                    plan_err!("HLL_SKETCH_UNION: the {what} argument must be a literal")
                }
                _ => Ok(None),
            }
        };
        let hll = HllParams::from_scalars(name, literal(0, "lgK")?, literal(1, "tgtHllType")?)?;
        let rows = args.number_rows;
        let inputs: Vec<ArrayRef> = args.args[params..]
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<_>>()?;
        let columns: Vec<Vec<Option<&[u8]>>> = inputs
            .iter()
            .map(|a| match a.data_type() {
                DataType::Binary => Ok(a.as_binary::<i32>().iter().collect()),
                DataType::LargeBinary => Ok(a.as_binary::<i64>().iter().collect()),
                DataType::BinaryView => Ok(a.as_binary_view().iter().collect()),
                DataType::Null => Ok(vec![None; rows]),
                other => exec_err!("HLL_SKETCH_UNION: expected an HLL sketch, got {other}"),
            })
            .collect::<Result<_>>()?;
        let mut out = BinaryBuilder::with_capacity(rows, rows * 64);
        for row in 0..rows {
            let mut union = hll.new_union(name)?;
            merge_sketches(name, &mut union, columns.iter().map(|c| c[row]))?;
            out.append_value(union.to_sketch(hll.hll_type).serialize());
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// A summary in the spirit of DataSketches' `HllSketch.toString()`.
fn summary(s: &HllSketch) -> String {
    let mut out = String::from("### HLL SKETCH SUMMARY: \n");
    let rows = [
        ("Log Config K", s.lg_config_k().to_string()),
        ("Hll Target", hll_type_name(s.target_type()).to_string()),
        ("Empty", s.is_empty().to_string()),
        ("LB", format!("{:?}", s.lower_bound(NumStdDev::One))),
        ("Estimate", format!("{:?}", s.estimate())),
        ("UB", format!("{:?}", s.upper_bound(NumStdDev::One))),
    ];
    for (label, value) in rows {
        let _ = writeln!(out, "  {label:<15}: {value}");
    }
    out.push_str("### END SKETCH SUMMARY\n");
    out
}

impl ScalarUDFImpl for HllSketchToStringFunc {
    fn name(&self) -> &str {
        "hll_sketch_to_string"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(self.name(), arg_types, 1, 1)?;
        Ok(vec![coerce_sketch(self.name(), &arg_types[0])?])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let sketches = sketches(
            self.name(),
            arg(self.name(), &args.args, 0)?,
            args.number_rows,
        )?;
        let mut out = StringBuilder::new();
        for s in &sketches {
            out.append_option(s.as_ref().map(summary));
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{error, value};

    const T: &str = "(VALUES ('a', 1), ('b', 1), ('c', 2), ('a', 2)) AS t(s, g)";

    #[tokio::test]
    async fn estimate_union_and_summary() {
        let cases = [
            ("HLL_SKETCH_ESTIMATE(DS_HLL(s))", "3.000000014901161"),
            ("HLL_SKETCH_ESTIMATE(DS_HLL(s), true)", "3.0"),
            ("HLL_SKETCH_ESTIMATE(DS_HLL(s), false)", "3.000000014901161"),
            (
                "HLL_SKETCH_ESTIMATE(HLL_SKETCH_UNION(DS_HLL(s) FILTER (WHERE g = 1), \
                 DS_HLL(s) FILTER (WHERE g = 2)), true)",
                "3.0",
            ),
            (
                "HLL_SKETCH_ESTIMATE(HLL_SKETCH_UNION(10, 'HLL_8', DS_HLL(s), NULL), true)",
                "3.0",
            ),
        ];
        for (expr, expected) in cases {
            assert_eq!(
                value(&format!("SELECT {expr} FROM {T}")).await,
                expected,
                "{expr}"
            );
        }
        let s = value(&format!(
            "SELECT HLL_SKETCH_TO_STRING(DS_HLL(s, 10)) FROM {T}"
        ))
        .await;
        assert!(s.contains("Log Config K   : 10"), "{s}");
        assert!(s.contains("Hll Target     : HLL_4"), "{s}");
        assert!(s.contains("Estimate       : 3.0000000"), "{s}");
    }

    #[tokio::test]
    async fn rejects_non_sketches() {
        let e = error("SELECT HLL_SKETCH_ESTIMATE('abc')").await;
        assert!(e.contains("expects an HLL sketch argument"), "{e}");
        let e = error("SELECT HLL_SKETCH_ESTIMATE(CAST('abc' AS BYTEA))").await;
        assert!(e.contains("not a valid HLL sketch"), "{e}");
        let e = error("SELECT HLL_SKETCH_UNION(12)").await;
        assert!(e.contains("at least one sketch"), "{e}");
        let e = error(&format!("SELECT HLL_SKETCH_UNION(30, DS_HLL(s)) FROM {T}")).await;
        assert!(e.contains("lgK must be between 4 and 21, got [30]"), "{e}");
    }
}
