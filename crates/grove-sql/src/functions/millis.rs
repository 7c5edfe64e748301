//! `MILLIS_TO_TIMESTAMP` and `TIMESTAMP_TO_MILLIS`: epoch-millis conversions.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, TimestampMillisecondType};
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{TIMESTAMP_MS, arg, check_arity, coerce_timestamp, int64_array, millis_array};

/// Druid's `MILLIS_TO_TIMESTAMP(n)`: epoch milliseconds (any integer type;
/// other numbers are cast to BIGINT) to `Timestamp(ms)`. NULL in, NULL out.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MillisToTimestampFunc {
    signature: Signature,
}

/// Druid's `TIMESTAMP_TO_MILLIS(ts)`: a timestamp of any unit to epoch
/// milliseconds (BIGINT). NULL in, NULL out.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimestampToMillisFunc {
    signature: Signature,
}

impl Default for MillisToTimestampFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl MillisToTimestampFunc {
    /// Creates the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Default for TimestampToMillisFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl TimestampToMillisFunc {
    /// Creates the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for MillisToTimestampFunc {
    fn name(&self) -> &str {
        "millis_to_timestamp"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(self.name(), arg_types, 1, 1)?;
        match &arg_types[0] {
            t if t.is_numeric() || *t == DataType::Null => Ok(vec![DataType::Int64]),
            other => plan_err!("MILLIS_TO_TIMESTAMP expects a numeric argument, got {other}"),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(TIMESTAMP_MS)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let millis = int64_array(arg(self.name(), &args.args, 0)?, args.number_rows)?;
        let out = millis.unary::<_, TimestampMillisecondType>(|v| v);
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

impl ScalarUDFImpl for TimestampToMillisFunc {
    fn name(&self) -> &str {
        "timestamp_to_millis"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(self.name(), arg_types, 1, 1)?;
        Ok(vec![coerce_timestamp(self.name(), &arg_types[0])?])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let millis = millis_array(arg(self.name(), &args.args, 0)?, args.number_rows)?;
        Ok(ColumnarValue::Array(Arc::new(millis)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{error, value};

    #[tokio::test]
    async fn converts_both_ways() {
        let cases = [
            ("MILLIS_TO_TIMESTAMP(0)", "1970-01-01T00:00:00"),
            (
                "MILLIS_TO_TIMESTAMP(946684800123)",
                "2000-01-01T00:00:00.123",
            ),
            ("MILLIS_TO_TIMESTAMP(-1)", "1969-12-31T23:59:59.999"),
            (
                "MILLIS_TO_TIMESTAMP(CAST(5 AS INT))",
                "1970-01-01T00:00:00.005",
            ),
            ("MILLIS_TO_TIMESTAMP(NULL)", "NULL"),
            (
                "TIMESTAMP_TO_MILLIS(TIMESTAMP '2000-01-01 00:00:00.123')",
                "946684800123",
            ),
            (
                "TIMESTAMP_TO_MILLIS(TIMESTAMP '1969-12-31 23:59:59.999')",
                "-1",
            ),
            (
                "TIMESTAMP_TO_MILLIS(arrow_cast(1, 'Timestamp(Second, None)'))",
                "1000",
            ),
            ("TIMESTAMP_TO_MILLIS(NULL)", "NULL"),
            (
                "TIMESTAMP_TO_MILLIS(MILLIS_TO_TIMESTAMP(-123456789))",
                "-123456789",
            ),
        ];
        for (expr, expected) in cases {
            assert_eq!(value(&format!("SELECT {expr}")).await, expected, "{expr}");
        }
    }

    #[tokio::test]
    async fn rejects_wrong_types() {
        let e = error("SELECT MILLIS_TO_TIMESTAMP(TIMESTAMP '2000-01-01 00:00:00')").await;
        assert!(e.contains("numeric"), "{e}");
        let e = error("SELECT TIMESTAMP_TO_MILLIS(1)").await;
        assert!(e.contains("TIMESTAMP"), "{e}");
    }
}
