//! `TIME_PARSE(str[, pattern[, tz]])`: string to timestamp.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use grove_common::time::parse_iso_millis_in;

use super::args::{
    TIMESTAMP_MS, arg, at_plan, check_arity, coerce_string, default_zone, literal_str, planned_str,
    strings, timestamp_result, zone_of, zone_or,
};
use super::joda::JodaPattern;

const NAME: &str = "time_parse";

/// Druid's `TIME_PARSE(str[, pattern[, tz]])`.
///
/// Without a pattern (or with a NULL one) the string is read with Druid's
/// ISO-like parser: a date, optionally `T` or a space and a time, optionally
/// `Z` or an offset. With a pattern it is read as a Joda `DateTimeFormat`.
/// `tz` (IANA name or `±HH:MM`, default UTC) applies to strings without an
/// offset. Unparseable strings and NULL give NULL, never an error.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimeParseFunc {
    signature: Signature,
}

impl Default for TimeParseFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl TimeParseFunc {
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
        Err(msg) => exec_err!("TIME_PARSE: invalid pattern: {msg}"),
    }
}

impl ScalarUDFImpl for TimeParseFunc {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(NAME, arg_types, 1, 3)?;
        let what = ["string", "pattern", "time zone"];
        arg_types
            .iter()
            .zip(what)
            .map(|(t, w)| coerce_string(NAME, w, t))
            .collect()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(TIMESTAMP_MS)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        at_plan(compile(planned_str(args.scalar_arguments, 1)))?;
        at_plan(zone_of(NAME, planned_str(args.scalar_arguments, 2)))?;
        Ok(Arc::new(Field::new(NAME, TIMESTAMP_MS, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let pattern = compile(literal_str(NAME, "pattern", args.args.get(1))?)?;
        let zone = zone_or(
            NAME,
            literal_str(NAME, "time zone", args.args.get(2))?,
            default_zone(&args.config_options),
        )?;
        let input = arg(NAME, &args.args, 0)?.to_array(args.number_rows)?;
        let values = strings(&input)?;
        let parsed = values.into_iter().map(|v| {
            let s = v?;
            match &pattern {
                Some(p) => p.parse(s, &zone),
                None => parse_iso_millis_in(s, &zone),
            }
        });
        Ok(timestamp_result(parsed))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{error, value};

    #[tokio::test]
    async fn parses_iso_strings() {
        let cases = [
            ("TIME_PARSE('2000-01-02T03:04:05Z')", "2000-01-02T03:04:05"),
            (
                "TIME_PARSE('2000-01-02T03:04:05.678Z')",
                "2000-01-02T03:04:05.678",
            ),
            ("TIME_PARSE('2000-01-02 03:04:05')", "2000-01-02T03:04:05"),
            ("TIME_PARSE('2000-01-02')", "2000-01-02T00:00:00"),
            (
                "TIME_PARSE('2000-01-02T03:04:05+05:30')",
                "2000-01-01T21:34:05",
            ),
            (
                "TIME_PARSE('1969-12-31T23:59:59.999Z')",
                "1969-12-31T23:59:59.999",
            ),
            (
                "TIME_PARSE('2000-01-02T03:04:05', NULL, 'America/Los_Angeles')",
                "2000-01-02T11:04:05",
            ),
            (
                "TIME_PARSE('2000-01-02T03:04:05Z', NULL, 'America/Los_Angeles')",
                "2000-01-02T03:04:05",
            ),
            (
                "TIME_PARSE('2000-01-02T03:04:05', NULL, '+05:00')",
                "2000-01-01T22:04:05",
            ),
        ];
        for (expr, expected) in cases {
            assert_eq!(value(&format!("SELECT {expr}")).await, expected, "{expr}");
        }
    }

    #[tokio::test]
    async fn parses_with_patterns() {
        let cases = [
            (
                "TIME_PARSE('02/01/2000 15:04', 'dd/MM/yyyy HH:mm')",
                "2000-01-02T15:04:00",
            ),
            (
                "TIME_PARSE('Jan 2, 2000', 'MMM d, yyyy', 'America/Los_Angeles')",
                "2000-01-02T08:00:00",
            ),
            ("TIME_PARSE('20000102', 'yyyyMMdd')", "2000-01-02T00:00:00"),
            (
                "TIME_PARSE('1960-06-15', 'yyyy-MM-dd')",
                "1960-06-15T00:00:00",
            ),
        ];
        for (expr, expected) in cases {
            assert_eq!(value(&format!("SELECT {expr}")).await, expected, "{expr}");
        }
    }

    #[tokio::test]
    async fn bad_strings_and_nulls_give_null() {
        for expr in [
            "TIME_PARSE('not a time')",
            "TIME_PARSE('2000-02-30')",
            "TIME_PARSE(NULL)",
            "TIME_PARSE(CAST(NULL AS VARCHAR))",
            "TIME_PARSE('2000-01-02', 'dd/MM/yyyy')",
        ] {
            assert_eq!(value(&format!("SELECT {expr}")).await, "NULL", "{expr}");
        }
    }

    #[tokio::test]
    async fn parses_columns() {
        let rows = super::super::test_util::column(
            "SELECT TIME_PARSE(s) FROM (VALUES ('2000-01-01'), ('junk'), (NULL), ('1969-07-20T20:17:40Z')) AS t(s)",
        )
        .await
        .unwrap();
        assert_eq!(
            rows,
            ["2000-01-01T00:00:00", "NULL", "NULL", "1969-07-20T20:17:40"]
        );
    }

    #[tokio::test]
    async fn rejects_bad_literals_and_non_literal_patterns() {
        let e = error("SELECT TIME_PARSE('2000', 'yyyy qq')").await;
        assert!(e.contains("Illegal pattern component"), "{e}");
        let e = error("SELECT TIME_PARSE('2000', NULL, 'Mars/Base')").await;
        assert!(e.contains("unknown time zone"), "{e}");
        let e = error("SELECT TIME_PARSE(s, p) FROM (VALUES ('2000', 'yyyy')) AS t(s, p)").await;
        assert!(e.contains("must be a literal"), "{e}");
        let e = error("SELECT TIME_PARSE(1)").await;
        assert!(e.contains("must be a string"), "{e}");
    }
}
