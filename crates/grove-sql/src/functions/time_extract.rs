//! `TIME_EXTRACT(ts, unit[, tz])`: one calendar field of a timestamp.

use std::sync::Arc;

use datafusion::arrow::array::Int64Array;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use grove_common::time::{CivilDateTime, Zone};

use super::args::{
    arg, at_plan, check_arity, coerce_string, coerce_timestamp, default_zone, literal_str,
    millis_array, planned_str, zone_of, zone_or,
};

const NAME: &str = "time_extract";

/// Units of Druid's `TimestampExtractExprMacro`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    Epoch,
    Microsecond,
    Millisecond,
    Second,
    Minute,
    Hour,
    Day,
    Dow,
    IsoDow,
    Doy,
    Week,
    Month,
    Quarter,
    Year,
    IsoYear,
    Decade,
    Century,
    Millennium,
}

fn unit_of(value: Option<&str>) -> Result<Unit> {
    let Some(s) = value else {
        return exec_err!("TIME_EXTRACT: the unit argument must be a non-NULL literal");
    };
    Ok(match s.trim().to_ascii_uppercase().as_str() {
        "EPOCH" => Unit::Epoch,
        "MICROSECOND" => Unit::Microsecond,
        "MILLISECOND" => Unit::Millisecond,
        "SECOND" => Unit::Second,
        "MINUTE" => Unit::Minute,
        "HOUR" => Unit::Hour,
        "DAY" => Unit::Day,
        "DOW" => Unit::Dow,
        "ISODOW" => Unit::IsoDow,
        "DOY" => Unit::Doy,
        "WEEK" => Unit::Week,
        "MONTH" => Unit::Month,
        "QUARTER" => Unit::Quarter,
        "YEAR" => Unit::Year,
        "ISOYEAR" => Unit::IsoYear,
        "DECADE" => Unit::Decade,
        "CENTURY" => Unit::Century,
        "MILLENNIUM" => Unit::Millennium,
        _ => return exec_err!("TIME_EXTRACT: unknown unit [{s}]"),
    })
}

/// Extracts `unit` from the instant `ms` seen in `zone`, as Druid computes it
/// (including its integer-division quirks for EPOCH, MICROSECOND and DECADE).
fn extract(ms: i64, unit: Unit, zone: &Zone) -> Option<i64> {
    // Java integer division truncates toward zero.
    let epoch_seconds = ms / 1_000;
    let c = CivilDateTime::from_millis(zone.to_local(ms)?);
    let ceil_div = |y: i64, d: i64| -((-y).div_euclid(d));
    Some(match unit {
        Unit::Epoch => epoch_seconds,
        Unit::Microsecond => epoch_seconds / 1_000,
        Unit::Millisecond => i64::from(c.millis),
        Unit::Second => i64::from(c.second),
        Unit::Minute => i64::from(c.minute),
        Unit::Hour => i64::from(c.hour),
        Unit::Day => i64::from(c.day),
        Unit::Dow | Unit::IsoDow => i64::from(c.day_of_week()),
        Unit::Doy => i64::from(c.day_of_year()),
        Unit::Week => i64::from(c.iso_week().1),
        Unit::Month => i64::from(c.month),
        Unit::Quarter => i64::from((c.month - 1) / 3 + 1),
        Unit::Year => c.year,
        Unit::IsoYear => c.iso_week().0,
        Unit::Decade => c.year / 10,
        Unit::Century => ceil_div(c.year, 100),
        Unit::Millennium => ceil_div(c.year, 1_000),
    })
}

/// Druid's `TIME_EXTRACT(ts, unit[, tz])` -> BIGINT.
///
/// Units: EPOCH (seconds), MILLISECOND, SECOND, MINUTE, HOUR, DAY (of month),
/// DOW / ISODOW (1 = Monday .. 7 = Sunday), DOY, WEEK (ISO week of the
/// week-year), MONTH, QUARTER, YEAR, ISOYEAR, DECADE, CENTURY, MILLENNIUM, and
/// Druid's MICROSECOND (which it computes as EPOCH / 1000). The unit is
/// required (as in Druid) and, like `tz` (default UTC), must be a literal.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimeExtractFunc {
    signature: Signature,
}

impl Default for TimeExtractFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl TimeExtractFunc {
    /// Creates the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for TimeExtractFunc {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(NAME, arg_types, 2, 3)?;
        let mut out = vec![coerce_timestamp(NAME, &arg_types[0])?];
        for (t, what) in arg_types.iter().skip(1).zip(["unit", "time zone"]) {
            out.push(coerce_string(NAME, what, t)?);
        }
        Ok(out)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        if let Some(unit) = planned_str(args.scalar_arguments, 1) {
            at_plan(unit_of(Some(unit)))?;
        }
        at_plan(zone_of(NAME, planned_str(args.scalar_arguments, 2)))?;
        Ok(Arc::new(Field::new(NAME, DataType::Int64, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let unit = unit_of(literal_str(NAME, "unit", args.args.get(1))?)?;
        let zone = zone_or(
            NAME,
            literal_str(NAME, "time zone", args.args.get(2))?,
            default_zone(&args.config_options),
        )?;
        let millis = millis_array(arg(NAME, &args.args, 0)?, args.number_rows)?;
        let out: Int64Array = millis.iter().map(|v| extract(v?, unit, &zone)).collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{error, value};

    #[tokio::test]
    async fn extracts_units() {
        // 2021-01-03 is a Sunday in ISO week 53 of 2020.
        let ts = "TIMESTAMP '2021-01-03 04:05:06.789'";
        let cases = [
            ("EPOCH", "1609646706"),
            ("MILLISECOND", "789"),
            ("SECOND", "6"),
            ("MINUTE", "5"),
            ("HOUR", "4"),
            ("DAY", "3"),
            ("DOW", "7"),
            ("ISODOW", "7"),
            ("DOY", "3"),
            ("WEEK", "53"),
            ("MONTH", "1"),
            ("QUARTER", "1"),
            ("YEAR", "2021"),
            ("ISOYEAR", "2020"),
            ("DECADE", "202"),
            ("CENTURY", "21"),
            ("MILLENNIUM", "3"),
            ("month", "1"),
        ];
        for (unit, expected) in cases {
            let sql = format!("SELECT TIME_EXTRACT({ts}, '{unit}')");
            assert_eq!(value(&sql).await, expected, "{unit}");
        }
    }

    #[tokio::test]
    async fn extracts_in_zones_and_before_1970() {
        let cases = [
            (
                "TIME_EXTRACT(TIMESTAMP '2021-01-03 04:05:06', 'HOUR', 'America/Los_Angeles')",
                "20",
            ),
            (
                "TIME_EXTRACT(TIMESTAMP '2021-01-03 04:05:06', 'DAY', 'America/Los_Angeles')",
                "2",
            ),
            (
                "TIME_EXTRACT(TIMESTAMP '2021-01-03 04:05:06', 'MINUTE', '+05:30')",
                "35",
            ),
            (
                "TIME_EXTRACT(TIMESTAMP '1969-12-31 23:59:59.999', 'YEAR')",
                "1969",
            ),
            (
                "TIME_EXTRACT(TIMESTAMP '1969-12-31 23:59:59.999', 'MILLISECOND')",
                "999",
            ),
            (
                "TIME_EXTRACT(TIMESTAMP '1969-12-31 23:59:58.500', 'EPOCH')",
                "-1",
            ),
            ("TIME_EXTRACT(NULL, 'YEAR')", "NULL"),
        ];
        for (expr, expected) in cases {
            assert_eq!(value(&format!("SELECT {expr}")).await, expected, "{expr}");
        }
    }

    #[tokio::test]
    async fn requires_a_known_literal_unit() {
        let e = error("SELECT TIME_EXTRACT(TIMESTAMP '2000-01-01 00:00:00')").await;
        assert!(e.contains("expects 2 to 3 arguments"), "{e}");
        let e = error("SELECT TIME_EXTRACT(TIMESTAMP '2000-01-01 00:00:00', 'FORTNIGHT')").await;
        assert!(e.contains("unknown unit [FORTNIGHT]"), "{e}");
        let e = error("SELECT TIME_EXTRACT(TIMESTAMP '2000-01-01 00:00:00', NULL)").await;
        assert!(e.contains("non-NULL literal"), "{e}");
    }
}
