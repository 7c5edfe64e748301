//! `TIME_FORMAT(ts[, pattern[, tz]])`: timestamp to string.

use std::sync::Arc;

use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use grove_common::time::format_millis_with_offset;

use super::args::{
    arg, at_plan, check_arity, coerce_string, coerce_timestamp, default_zone, literal_str,
    millis_array, planned_str, zone_of, zone_or,
};
use super::joda::JodaPattern;

const NAME: &str = "time_format";

/// Druid's `TIME_FORMAT(ts[, pattern[, tz]])`.
///
/// Without a pattern (or with a NULL one) prints Joda's ISO form,
/// `2000-01-02T03:04:05.000Z` in UTC or `2000-01-01T19:04:05.000-08:00` in
/// another zone. With a pattern prints a Joda `DateTimeFormat`. `tz` is an
/// IANA name or `±HH:MM`, default UTC. NULL in, NULL out.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimeFormatFunc {
    signature: Signature,
}

impl Default for TimeFormatFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl TimeFormatFunc {
    /// Creates the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

fn compile(pattern: Option<&str>) -> Result<Option<JodaPattern>> {
    match pattern.map(JodaPattern::compile).transpose() {
        Ok(p) => Ok(p),
        Err(msg) => exec_err!("TIME_FORMAT: invalid pattern: {msg}"),
    }
}

impl ScalarUDFImpl for TimeFormatFunc {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(NAME, arg_types, 1, 3)?;
        let mut out = vec![coerce_timestamp(NAME, &arg_types[0])?];
        for (t, what) in arg_types.iter().skip(1).zip(["pattern", "time zone"]) {
            out.push(coerce_string(NAME, what, t)?);
        }
        Ok(out)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        at_plan(compile(planned_str(args.scalar_arguments, 1)))?;
        at_plan(zone_of(NAME, planned_str(args.scalar_arguments, 2)))?;
        Ok(Arc::new(Field::new(NAME, DataType::Utf8, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let pattern = compile(literal_str(NAME, "pattern", args.args.get(1))?)?;
        let zone = zone_or(
            NAME,
            literal_str(NAME, "time zone", args.args.get(2))?,
            default_zone(&args.config_options),
        )?;
        let millis = millis_array(arg(NAME, &args.args, 0)?, args.number_rows)?;
        let out: StringArray = millis
            .iter()
            .map(|v| {
                let ms = v?;
                match &pattern {
                    Some(p) => p.format(ms, &zone),
                    None => Some(format_millis_with_offset(ms, zone.offset_millis(ms)?)),
                }
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{error, value};

    #[tokio::test]
    async fn formats_iso_by_default() {
        let ts = "TIMESTAMP '2000-01-02 03:04:05'";
        let cases = [
            (format!("TIME_FORMAT({ts})"), "2000-01-02T03:04:05.000Z"),
            (
                format!("TIME_FORMAT({ts}, NULL, 'America/Los_Angeles')"),
                "2000-01-01T19:04:05.000-08:00",
            ),
            (
                format!("TIME_FORMAT({ts}, NULL, '+05:30')"),
                "2000-01-02T08:34:05.000+05:30",
            ),
            (
                "TIME_FORMAT(TIMESTAMP '1969-12-31 23:59:59.999')".to_string(),
                "1969-12-31T23:59:59.999Z",
            ),
            ("TIME_FORMAT(NULL)".to_string(), "NULL"),
            (
                "TIME_FORMAT(MILLIS_TO_TIMESTAMP(0))".to_string(),
                "1970-01-01T00:00:00.000Z",
            ),
        ];
        for (expr, expected) in cases {
            assert_eq!(value(&format!("SELECT {expr}")).await, expected, "{expr}");
        }
    }

    #[tokio::test]
    async fn formats_patterns_in_zones() {
        let ts = "TIMESTAMP '2000-01-02 03:04:05.006'";
        let cases = [
            (format!("TIME_FORMAT({ts}, 'yyyy-MM-dd HH:mm:ss.SSS')"), "2000-01-02 03:04:05.006"),
            (format!("TIME_FORMAT({ts}, 'yyyy-MM-dd HH:mm z', 'America/Los_Angeles')"), "2000-01-01 19:04 PST"),
            (format!("TIME_FORMAT({ts}, 'EEEE, MMMM d, yyyy h:mm a')"), "Sunday, January 2, 2000 3:04 AM"),
            // SQL unescapes '' so Joda sees `'quoted' yyyy ''`: a quoted literal,
            // the year, and an escaped quote.
            (format!("TIME_FORMAT({ts}, '''quoted'' yyyy ''''')"), "quoted 2000 '"),
            // Timestamps with a zone label are instants: the label is ignored.
            (
                "TIME_FORMAT(arrow_cast(946782245006, 'Timestamp(Millisecond, Some(\"+01:00\"))'), 'HH:mm')"
                    .to_string(),
                "03:04",
            ),
        ];
        for (expr, expected) in cases {
            assert_eq!(value(&format!("SELECT {expr}")).await, expected, "{expr}");
        }
    }

    #[tokio::test]
    async fn rejects_bad_literals() {
        let e = error("SELECT TIME_FORMAT(TIMESTAMP '2000-01-01 00:00:00', 'yyyy qq')").await;
        assert!(e.contains("Illegal pattern component: qq"), "{e}");
        let e = error("SELECT TIME_FORMAT(TIMESTAMP '2000-01-01 00:00:00', NULL, 'Nowhere')").await;
        assert!(e.contains("unknown time zone"), "{e}");
        let e = error("SELECT TIME_FORMAT(1)").await;
        assert!(e.contains("TIMESTAMP"), "{e}");
    }
}
