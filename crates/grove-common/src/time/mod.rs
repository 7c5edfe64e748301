//! Druid time arithmetic on epoch milliseconds.
//!
//! Everything here works on `i64` milliseconds since 1970-01-01T00:00:00Z, like
//! Druid (Joda-Time's `ISOChronology`: proleptic Gregorian, year 0 exists). The
//! calendar arithmetic is done with our own civil-date functions, so UTC values
//! work over the whole `i64` range, including Druid's eternity bounds; only zone
//! offset look-ups go through `chrono_tz`, which limits non-UTC zones to roughly
//! ±262,000 years.
//!
//! * [`Interval`]: `[start, end)` in millis, displayed and serialised in Druid's
//!   `start/end` ISO form.
//! * [`Period`]: an ISO-8601 period (`P1D`, `PT15M`, `P1DT12H`).
//! * [`floor_to_period`], [`ceil_to_period`], [`shift_by_period`]: Druid's
//!   `PeriodGranularity` bucketing and `TIME_SHIFT` arithmetic.
//! * [`Granularity`]: a segment/query granularity (`DAY`, `ALL`, `NONE`, ...).

mod civil;
mod format;
mod granularity;
mod interval;
mod period;
mod zone;

pub use civil::{CivilDateTime, civil_from_days, days_from_civil, days_in_month, is_leap_year};
pub use format::{
    format_millis, format_millis_with_offset, parse_iso_millis, parse_iso_millis_in, push_offset,
};
pub use granularity::Granularity;
pub use interval::Interval;
pub use period::{
    Period, ceil_to_period, ceil_to_period_in, floor_to_period, floor_to_period_in,
    shift_by_period, shift_by_period_in,
};
pub use zone::Zone;

/// Druid's earliest instant (`JodaUtils.MIN_INSTANT`), the start of eternity.
pub const ETERNITY_START: i64 = i64::MIN / 2;
/// Druid's latest instant (`JodaUtils.MAX_INSTANT`), the end of eternity.
pub const ETERNITY_END: i64 = i64::MAX / 2;

const MILLIS_PER_SECOND: i64 = 1_000;
const MILLIS_PER_MINUTE: i64 = 60_000;
const MILLIS_PER_HOUR: i64 = 3_600_000;
const MILLIS_PER_DAY: i64 = 86_400_000;

/// Test helpers shared by the `time` submodules' tests.
#[cfg(test)]
mod test_support {
    use super::{Granularity, parse_iso_millis};

    pub(super) fn ms(s: &str) -> i64 {
        parse_iso_millis(s).unwrap_or_else(|| panic!("bad test timestamp {s}"))
    }

    pub(super) fn gran(name: &str) -> Granularity {
        Granularity::from_name(name).unwrap()
    }
}
