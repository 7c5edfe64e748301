//! `TIME_FLOOR` and `TIME_CEIL`: round a timestamp to period buckets.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use grove_common::time::{ceil_to_period_in, floor_to_period_in};

use super::args::{
    TIMESTAMP_MS, arg, at_plan, check_arity, coerce_string, coerce_timestamp, default_zone,
    literal_millis, literal_str, millis_array, period_of, planned_str, scalar_millis,
    timestamp_result, zone_of, zone_or,
};

#[derive(Clone, Copy)]
enum Rounding {
    Floor,
    Ceil,
}

impl Rounding {
    fn name(self) -> &'static str {
        match self {
            Rounding::Floor => "time_floor",
            Rounding::Ceil => "time_ceil",
        }
    }

    fn coerce_types(self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.name();
        check_arity(name, arg_types, 2, 4)?;
        let mut out = vec![coerce_timestamp(name, &arg_types[0])?];
        out.push(coerce_string(name, "period", &arg_types[1])?);
        if let Some(origin) = arg_types.get(2) {
            out.push(match origin {
                DataType::Timestamp(_, _)
                | DataType::Null
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View => origin.clone(),
                DataType::Date32 | DataType::Date64 => TIMESTAMP_MS,
                other => {
                    return plan_err!(
                        "{}: the origin argument must be a timestamp, got {other}",
                        name.to_uppercase()
                    );
                }
            });
        }
        if let Some(tz) = arg_types.get(3) {
            out.push(coerce_string(name, "time zone", tz)?);
        }
        Ok(out)
    }

    fn return_field(self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let name = self.name();
        let scalars = args.scalar_arguments;
        if let Some(period) = planned_str(scalars, 1) {
            at_plan(period_of(name, Some(period)))?;
        }
        if let Some(Some(origin)) = scalars.get(2) {
            at_plan(scalar_millis(name, "origin", origin))?;
        }
        at_plan(zone_of(name, planned_str(scalars, 3)))?;
        Ok(Arc::new(Field::new(name, TIMESTAMP_MS, true)))
    }

    fn invoke(self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        let period = period_of(name, literal_str(name, "period", args.args.get(1))?)?;
        let origin = literal_millis(name, "origin", args.args.get(2))?;
        let zone = zone_or(
            name,
            literal_str(name, "time zone", args.args.get(3))?,
            default_zone(&args.config_options),
        )?;
        let millis = millis_array(arg(name, &args.args, 0)?, args.number_rows)?;
        let round = match self {
            Rounding::Floor => floor_to_period_in,
            Rounding::Ceil => ceil_to_period_in,
        };
        Ok(timestamp_result(
            millis.iter().map(|v| round(v?, &period, origin, &zone)),
        ))
    }
}

/// Druid's `TIME_FLOOR(ts, period[, origin[, tz]])`: the start of the ISO-8601
/// `period` bucket containing `ts`, counted from `origin` (default: the epoch
/// in `tz`) on the calendar of `tz` (default UTC). Weeks start on Monday;
/// instants before 1970 round toward the past. Period, origin and zone must be
/// literals.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimeFloorFunc {
    signature: Signature,
}

/// Druid's `TIME_CEIL(ts, period[, origin[, tz]])`: like [`TimeFloorFunc`] but
/// rounds up (a timestamp on a boundary is unchanged).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimeCeilFunc {
    signature: Signature,
}

macro_rules! rounding_udf {
    ($ty:ident, $rounding:expr) => {
        impl Default for $ty {
            fn default() -> Self {
                Self::new()
            }
        }

        impl $ty {
            /// Creates the function.
            pub fn new() -> Self {
                Self {
                    signature: Signature::user_defined(Volatility::Immutable),
                }
            }
        }

        impl ScalarUDFImpl for $ty {
            fn name(&self) -> &str {
                $rounding.name()
            }

            fn signature(&self) -> &Signature {
                &self.signature
            }

            fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
                $rounding.coerce_types(arg_types)
            }

            fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
                Ok(TIMESTAMP_MS)
            }

            fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
                $rounding.return_field(args)
            }

            fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
                $rounding.invoke(args)
            }
        }
    };
}

rounding_udf!(TimeFloorFunc, Rounding::Floor);
rounding_udf!(TimeCeilFunc, Rounding::Ceil);

#[cfg(test)]
mod tests {
    use super::super::test_util::{column, error, value};

    async fn check(cases: &[(&str, &str)]) {
        for (expr, expected) in cases {
            assert_eq!(value(&format!("SELECT {expr}")).await, *expected, "{expr}");
        }
    }

    #[tokio::test]
    async fn floors_to_calendar_periods() {
        let ts = "TIMESTAMP '2000-05-17 13:45:12.345'";
        check(&[
            (&format!("TIME_FLOOR({ts}, 'PT1H')"), "2000-05-17T13:00:00"),
            (&format!("TIME_FLOOR({ts}, 'PT15M')"), "2000-05-17T13:45:00"),
            (&format!("TIME_FLOOR({ts}, 'PT6H')"), "2000-05-17T12:00:00"),
            (&format!("TIME_FLOOR({ts}, 'P1D')"), "2000-05-17T00:00:00"),
            (&format!("TIME_FLOOR({ts}, 'P1W')"), "2000-05-15T00:00:00"),
            (&format!("TIME_FLOOR({ts}, 'P1M')"), "2000-05-01T00:00:00"),
            (&format!("TIME_FLOOR({ts}, 'P3M')"), "2000-04-01T00:00:00"),
            (&format!("TIME_FLOOR({ts}, 'P1Y')"), "2000-01-01T00:00:00"),
            (&format!("TIME_FLOOR({ts}, 'p1d')"), "2000-05-17T00:00:00"),
            (
                "TIME_FLOOR(TIMESTAMP '1969-12-31 23:59:59.999', 'P1D')",
                "1969-12-31T00:00:00",
            ),
            (
                "TIME_FLOOR(TIMESTAMP '1969-12-31 23:59:59.999', 'P3M')",
                "1969-10-01T00:00:00",
            ),
            ("TIME_FLOOR(NULL, 'P1D')", "NULL"),
        ])
        .await;
    }

    #[tokio::test]
    async fn floors_with_origin_and_zone() {
        let ts = "TIMESTAMP '2000-05-17 13:45:00'";
        check(&[
            (
                &format!("TIME_FLOOR({ts}, 'PT1H', TIMESTAMP '2000-01-01 00:30:00')"),
                "2000-05-17T13:30:00",
            ),
            (
                &format!("TIME_FLOOR({ts}, 'PT1H', '2000-01-01T00:30:00Z')"),
                "2000-05-17T13:30:00",
            ),
            (
                &format!("TIME_FLOOR({ts}, 'P1D', NULL, 'America/Los_Angeles')"),
                "2000-05-17T07:00:00",
            ),
            (
                &format!("TIME_FLOOR({ts}, 'P1D', NULL, '+05:30')"),
                "2000-05-16T18:30:00",
            ),
            // 2024-03-10 is a 23-hour day in Los Angeles.
            (
                "TIME_CEIL(TIMESTAMP '2024-03-10 12:00:00', 'P1D', NULL, 'America/Los_Angeles')",
                "2024-03-11T07:00:00",
            ),
            // 36-hour buckets from the epoch: 2000-05-17 is day 11094 = 36h * 7396.
            (
                &format!("TIME_FLOOR({ts}, 'P1DT12H')"),
                "2000-05-17T00:00:00",
            ),
            (
                "TIME_FLOOR(TIMESTAMP '2000-05-18 11:59:59', 'P1DT12H')",
                "2000-05-17T00:00:00",
            ),
            (
                "TIME_FLOOR(TIMESTAMP '2000-05-18 12:00:00', 'P1DT12H')",
                "2000-05-18T12:00:00",
            ),
        ])
        .await;
    }

    #[tokio::test]
    async fn ceils() {
        check(&[
            (
                "TIME_CEIL(TIMESTAMP '2000-05-17 13:45:00', 'PT1H')",
                "2000-05-17T14:00:00",
            ),
            (
                "TIME_CEIL(TIMESTAMP '2000-05-17 13:00:00', 'PT1H')",
                "2000-05-17T13:00:00",
            ),
            (
                "TIME_CEIL(TIMESTAMP '2000-12-17 00:00:00', 'P1M')",
                "2001-01-01T00:00:00",
            ),
            (
                "TIME_CEIL(TIMESTAMP '1969-12-31 23:59:59', 'P1D')",
                "1970-01-01T00:00:00",
            ),
            ("TIME_CEIL(NULL, 'P1D')", "NULL"),
        ])
        .await;
    }

    #[tokio::test]
    async fn floors_columns_of_any_unit() {
        let rows = column(
            "SELECT TIME_FLOOR(arrow_cast(t, 'Timestamp(Second, None)'), 'P1M') FROM \
             (VALUES (TIMESTAMP '2000-02-29 10:00:00'), (NULL), (TIMESTAMP '1960-01-31 23:00:00')) AS v(t)",
        )
        .await
        .unwrap();
        assert_eq!(rows, ["2000-02-01T00:00:00", "NULL", "1960-01-01T00:00:00"]);
    }

    #[tokio::test]
    async fn rejects_bad_arguments() {
        let e = error("SELECT TIME_FLOOR(TIMESTAMP '2000-01-01 00:00:00', 'P1X')").await;
        assert!(e.contains("invalid period [P1X]"), "{e}");
        let e = error("SELECT TIME_FLOOR(TIMESTAMP '2000-01-01 00:00:00', 'PT0S')").await;
        assert!(e.contains("invalid period"), "{e}");
        let e = error("SELECT TIME_FLOOR(TIMESTAMP '2000-01-01 00:00:00', 'P1D', NULL, 'Nowhere')")
            .await;
        assert!(e.contains("unknown time zone"), "{e}");
        let e = error("SELECT TIME_FLOOR(t, p) FROM (VALUES (TIMESTAMP '2000-01-01 00:00:00', 'P1D')) AS v(t, p)").await;
        assert!(e.contains("must be a literal"), "{e}");
        let e = error("SELECT TIME_CEIL(TIMESTAMP '2000-01-01 00:00:00')").await;
        assert!(e.contains("expects 2 to 4 arguments"), "{e}");
    }
}
