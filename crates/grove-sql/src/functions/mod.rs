//! Druid's SQL functions as DataFusion UDFs: the time functions (scalar) and the
//! DataSketches HLL functions (aggregate and scalar).
//!
//! | SQL | struct | returns |
//! |---|---|---|
//! | `TIME_PARSE(str[, pattern[, tz]])` | [`TimeParseFunc`] | `Timestamp(ms)` |
//! | `TIME_FORMAT(ts[, pattern[, tz]])` | [`TimeFormatFunc`] | `Utf8` |
//! | `TIME_FLOOR(ts, period[, origin[, tz]])` | [`TimeFloorFunc`] | `Timestamp(ms)` |
//! | `TIME_CEIL(ts, period[, origin[, tz]])` | [`TimeCeilFunc`] | `Timestamp(ms)` |
//! | `TIME_SHIFT(ts, period, step[, tz])` | [`TimeShiftFunc`] | `Timestamp(ms)` |
//! | `TIME_EXTRACT(ts, unit[, tz])` | [`TimeExtractFunc`] | `Int64` |
//! | `MILLIS_TO_TIMESTAMP(n)` | [`MillisToTimestampFunc`] | `Timestamp(ms)` |
//! | `TIMESTAMP_TO_MILLIS(ts)` | [`TimestampToMillisFunc`] | `Int64` |
//! | `APPROX_COUNT_DISTINCT_DS_HLL(expr[, lgK[, tgtHllType]])` (aggregate) | [`ApproxCountDistinctDsHllFunc`] | `Int64` |
//! | `DS_HLL(expr[, lgK[, tgtHllType]])` (aggregate) | [`DsHllFunc`] | `Binary` (`COMPLEX<HLLSketch>`) |
//! | `HLL_SKETCH_ESTIMATE(sketch[, round])` | [`HllSketchEstimateFunc`] | `Float64` |
//! | `HLL_SKETCH_UNION([lgK, tgtHllType,] sketch, ...)` | [`HllSketchUnionFunc`] | `Binary` (`COMPLEX<HLLSketch>`) |
//! | `HLL_SKETCH_TO_STRING(sketch)` | [`HllSketchToStringFunc`] | `Utf8` |
//!
//! Timestamps are instants: any Arrow timestamp unit is accepted and its zone
//! label ignored; results are `Timestamp(Millisecond, None)` (UTC by
//! convention). Pattern, period, unit, origin and time-zone arguments must be
//! literals, as in Druid; a NULL literal means "not given" (UTC for zones).
//! Invalid literals are planning errors. NULL inputs give NULL, and so do
//! strings `TIME_PARSE` cannot parse. Calendar arithmetic comes from
//! [`grove_common::time`].
//!
//! HLL sketches are Apache DataSketches sketches (the `datasketches` crate),
//! exchanged as their serialized bytes; see the `hll` module for how values are
//! hashed.

mod args;
mod ds_hll;
mod hll;
mod hll_sketch;
mod joda;
mod millis;
mod time_extract;
mod time_floor;
mod time_format;
mod time_parse;
mod time_shift;

use std::sync::Arc;

use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use datafusion::prelude::SessionContext;

pub use ds_hll::{ApproxCountDistinctDsHllFunc, DsHllFunc};
pub use hll_sketch::{HllSketchEstimateFunc, HllSketchToStringFunc, HllSketchUnionFunc};
pub use millis::{MillisToTimestampFunc, TimestampToMillisFunc};
pub use time_extract::TimeExtractFunc;
pub use time_floor::{TimeCeilFunc, TimeFloorFunc};
pub use time_format::TimeFormatFunc;
pub use time_parse::TimeParseFunc;
pub use time_shift::TimeShiftFunc;

/// Every Druid scalar function (time and HLL sketch functions), ready to register.
pub fn all() -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(ScalarUDF::new_from_impl(TimeParseFunc::new())),
        Arc::new(ScalarUDF::new_from_impl(TimeFormatFunc::new())),
        Arc::new(ScalarUDF::new_from_impl(TimeFloorFunc::new())),
        Arc::new(ScalarUDF::new_from_impl(TimeCeilFunc::new())),
        Arc::new(ScalarUDF::new_from_impl(TimeShiftFunc::new())),
        Arc::new(ScalarUDF::new_from_impl(TimeExtractFunc::new())),
        Arc::new(ScalarUDF::new_from_impl(MillisToTimestampFunc::new())),
        Arc::new(ScalarUDF::new_from_impl(TimestampToMillisFunc::new())),
        Arc::new(ScalarUDF::new_from_impl(HllSketchEstimateFunc::new())),
        Arc::new(ScalarUDF::new_from_impl(HllSketchUnionFunc::new())),
        Arc::new(ScalarUDF::new_from_impl(HllSketchToStringFunc::new())),
    ]
}

/// Every Druid aggregate function, ready to register.
pub fn aggregates() -> Vec<Arc<AggregateUDF>> {
    vec![
        Arc::new(AggregateUDF::new_from_impl(
            ApproxCountDistinctDsHllFunc::new(),
        )),
        Arc::new(AggregateUDF::new_from_impl(DsHllFunc::new())),
    ]
}

/// Registers every function from [`all`] and [`aggregates`] on `ctx`.
pub fn register_all(ctx: &SessionContext) {
    for udf in all() {
        ctx.register_udf(Arc::unwrap_or_clone(udf));
    }
    for udaf in aggregates() {
        ctx.register_udaf(Arc::unwrap_or_clone(udaf));
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Runs SQL against a context with Druid's functions registered.

    use datafusion::arrow::array::Array;
    use datafusion::arrow::util::display::array_value_to_string;
    use datafusion::common::Result;
    use datafusion::prelude::SessionContext;

    /// Runs `sql` and renders every value of the first column (`NULL` for nulls).
    pub(crate) async fn column(sql: &str) -> Result<Vec<String>> {
        let ctx = SessionContext::new();
        super::register_all(&ctx);
        let batches = ctx.sql(sql).await?.collect().await?;
        let mut out = Vec::new();
        for batch in batches {
            let col = batch.column(0);
            for i in 0..batch.num_rows() {
                out.push(if col.is_null(i) {
                    "NULL".to_string()
                } else {
                    array_value_to_string(col, i)?
                });
            }
        }
        Ok(out)
    }

    /// Runs a one-row query and returns its single rendered value.
    pub(crate) async fn value(sql: &str) -> String {
        match column(sql).await {
            Ok(v) if v.len() == 1 => v.into_iter().next().unwrap_or_default(),
            Ok(v) => format!("unexpected rows: {v:?}"),
            Err(e) => format!("error: {e}"),
        }
    }

    /// The error message of a query expected to fail.
    pub(crate) async fn error(sql: &str) -> String {
        match column(sql).await {
            Ok(v) => format!("unexpected success: {v:?}"),
            Err(e) => e.to_string(),
        }
    }
}
