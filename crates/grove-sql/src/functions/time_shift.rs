//! `TIME_SHIFT(ts, period, step[, tz])`: calendar-aware timestamp arithmetic.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use grove_common::time::shift_by_period_in;

use super::args::{
    TIMESTAMP_MS, arg, at_plan, check_arity, coerce_integer, coerce_string, coerce_timestamp,
    default_zone, int64_array, literal_str, millis_array, period_of, planned_str, timestamp_result,
    zone_of, zone_or,
};

const NAME: &str = "time_shift";

/// Druid's `TIME_SHIFT(ts, period, step[, tz])`: `ts` plus `step` times the
/// ISO-8601 `period` (negative steps go back). Years, months, weeks and days
/// move on the calendar of `tz` (default UTC) with month-end clamping
/// (Jan 31 + `P1M` = Feb 28/29); smaller units are fixed durations. `step`
/// may be a column; period and zone must be literals. NULL in, NULL out.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimeShiftFunc {
    signature: Signature,
}

impl Default for TimeShiftFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl TimeShiftFunc {
    /// Creates the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for TimeShiftFunc {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(NAME, arg_types, 3, 4)?;
        let mut out = vec![
            coerce_timestamp(NAME, &arg_types[0])?,
            coerce_string(NAME, "period", &arg_types[1])?,
            coerce_integer(NAME, "step", &arg_types[2])?,
        ];
        if let Some(tz) = arg_types.get(3) {
            out.push(coerce_string(NAME, "time zone", tz)?);
        }
        Ok(out)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(TIMESTAMP_MS)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        if let Some(period) = planned_str(args.scalar_arguments, 1) {
            at_plan(period_of(NAME, Some(period)))?;
        }
        at_plan(zone_of(NAME, planned_str(args.scalar_arguments, 3)))?;
        Ok(Arc::new(Field::new(NAME, TIMESTAMP_MS, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let period = period_of(NAME, literal_str(NAME, "period", args.args.get(1))?)?;
        let zone = zone_or(
            NAME,
            literal_str(NAME, "time zone", args.args.get(3))?,
            default_zone(&args.config_options),
        )?;
        let millis = millis_array(arg(NAME, &args.args, 0)?, args.number_rows)?;
        let steps = int64_array(arg(NAME, &args.args, 2)?, args.number_rows)?;
        Ok(timestamp_result(millis.iter().zip(steps.iter()).map(
            |(ms, step)| shift_by_period_in(ms?, &period, step?, &zone),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{column, error, value};

    #[tokio::test]
    async fn shifts_by_calendar_periods() {
        let cases = [
            (
                "TIME_SHIFT(TIMESTAMP '2000-01-31 10:00:00', 'P1M', 1)",
                "2000-02-29T10:00:00",
            ),
            (
                "TIME_SHIFT(TIMESTAMP '2001-01-31 10:00:00', 'P1M', 1)",
                "2001-02-28T10:00:00",
            ),
            (
                "TIME_SHIFT(TIMESTAMP '2020-02-29 00:00:00', 'P1Y', 1)",
                "2021-02-28T00:00:00",
            ),
            (
                "TIME_SHIFT(TIMESTAMP '2000-01-01 00:00:00', 'PT1H', -3)",
                "1999-12-31T21:00:00",
            ),
            (
                "TIME_SHIFT(TIMESTAMP '1970-01-01 00:00:00', 'P1D', -1)",
                "1969-12-31T00:00:00",
            ),
            (
                "TIME_SHIFT(TIMESTAMP '2000-01-01 00:00:00', 'P1W', 2)",
                "2000-01-15T00:00:00",
            ),
            // Across the 2024-03-10 DST change a local day is 23 hours.
            (
                "TIME_SHIFT(TIMESTAMP '2024-03-09 20:00:00', 'P1D', 1, 'America/Los_Angeles')",
                "2024-03-10T19:00:00",
            ),
            ("TIME_SHIFT(NULL, 'P1D', 1)", "NULL"),
            (
                "TIME_SHIFT(TIMESTAMP '2000-01-01 00:00:00', 'P1D', NULL)",
                "NULL",
            ),
        ];
        for (expr, expected) in cases {
            assert_eq!(value(&format!("SELECT {expr}")).await, expected, "{expr}");
        }
    }

    #[tokio::test]
    async fn steps_may_be_columns() {
        let rows = column(
            "SELECT TIME_SHIFT(TIMESTAMP '2000-01-31 00:00:00', 'P1M', s) FROM (VALUES (0), (1), (-2), (NULL)) AS v(s)",
        )
        .await
        .unwrap();
        assert_eq!(
            rows,
            [
                "2000-01-31T00:00:00",
                "2000-02-29T00:00:00",
                "1999-11-30T00:00:00",
                "NULL"
            ]
        );
    }

    #[tokio::test]
    async fn rejects_bad_arguments() {
        let e = error("SELECT TIME_SHIFT(TIMESTAMP '2000-01-01 00:00:00', 'bogus', 1)").await;
        assert!(e.contains("invalid period [bogus]"), "{e}");
        let e = error("SELECT TIME_SHIFT(TIMESTAMP '2000-01-01 00:00:00', 'P1D', 1.5)").await;
        assert!(e.contains("must be an integer"), "{e}");
    }
}
