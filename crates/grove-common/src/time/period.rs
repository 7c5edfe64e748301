//! Periods: [`Period`], and period arithmetic (Druid's `PeriodGranularity`
//! bucketing and `TIME_SHIFT`).

use std::fmt;

use chrono_tz::Tz;

use super::civil::{add_months, civil_from_days, day_of_week_of_days, days_from_civil};
use super::format::Cursor;
use super::{MILLIS_PER_DAY, MILLIS_PER_HOUR, MILLIS_PER_MINUTE, MILLIS_PER_SECOND, Zone};

/// An ISO-8601 period (Joda `Period` with the standard field set). Fields are
/// kept as written: `PT60M` is not normalised to `PT1H`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct Period {
    /// Years.
    pub years: i32,
    /// Months.
    pub months: i32,
    /// Weeks.
    pub weeks: i32,
    /// Days.
    pub days: i32,
    /// Hours.
    pub hours: i32,
    /// Minutes.
    pub minutes: i32,
    /// Seconds.
    pub seconds: i32,
    /// Milliseconds.
    pub millis: i32,
}

/// The unit of a single-field period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    Year,
    Month,
    Week,
    Day,
    Hour,
    Minute,
    Second,
    Milli,
}

impl Period {
    /// Parses an ISO-8601 period such as `P1D`, `PT1H`, `P1DT12H`, `P1W`,
    /// `PT1.5S` (case-insensitive). Designators must appear in order and at
    /// most once; only seconds may have a fraction (kept to millis).
    pub fn parse(s: &str) -> Option<Period> {
        let upper = s.trim().to_ascii_uppercase();
        let rest = upper.strip_prefix('P')?;
        let mut c = Cursor::new(rest);
        let mut p = Period::default();
        let mut in_time = false;
        let mut last = 0_u8; // ordinal of the last designator seen
        let mut any = false;
        while !c.done() {
            if c.eat(b'T') {
                if in_time || c.done() {
                    return None;
                }
                in_time = true;
                continue;
            }
            let negative = c.eat(b'-');
            let (value, _) = c.digits(1, 10)?;
            let value = if negative { -value } else { value };
            let mut frac_millis = None;
            if c.eat(b'.') || c.eat(b',') {
                frac_millis = Some(c.fraction_millis()?);
            }
            let designator = c.peek()?;
            c.pos += 1;
            let (ordinal, field): (u8, &mut i32) = match (in_time, designator) {
                (false, b'Y') => (1, &mut p.years),
                (false, b'M') => (2, &mut p.months),
                (false, b'W') => (3, &mut p.weeks),
                (false, b'D') => (4, &mut p.days),
                (true, b'H') => (5, &mut p.hours),
                (true, b'M') => (6, &mut p.minutes),
                (true, b'S') => (7, &mut p.seconds),
                _ => return None,
            };
            if ordinal <= last || (frac_millis.is_some() && ordinal != 7) {
                return None;
            }
            last = ordinal;
            *field = i32::try_from(value).ok()?;
            if let Some(ms) = frac_millis {
                p.millis = i32::try_from(if negative { -ms } else { ms }).ok()?;
            }
            any = true;
        }
        any.then_some(p)
    }

    /// Whether every field is zero.
    pub fn is_zero(&self) -> bool {
        *self == Period::default()
    }

    /// Whether the period is usable as a granularity: no negative field and at
    /// least one positive one.
    pub fn is_positive(&self) -> bool {
        let f = self.fields();
        f.iter().all(|v| *v >= 0) && f.iter().any(|v| *v > 0)
    }

    fn fields(&self) -> [i32; 8] {
        [
            self.years,
            self.months,
            self.weeks,
            self.days,
            self.hours,
            self.minutes,
            self.seconds,
            self.millis,
        ]
    }

    /// Duration in millis assuming 7-day weeks, 24-hour days (Joda's
    /// `toStandardDuration`); `None` if years or months are set or it overflows.
    pub fn to_standard_millis(&self) -> Option<i64> {
        if self.years != 0 || self.months != 0 {
            return None;
        }
        let parts = [
            (self.weeks, 7 * MILLIS_PER_DAY),
            (self.days, MILLIS_PER_DAY),
            (self.hours, MILLIS_PER_HOUR),
            (self.minutes, MILLIS_PER_MINUTE),
            (self.seconds, MILLIS_PER_SECOND),
            (self.millis, 1),
        ];
        parts.iter().try_fold(0_i64, |acc, (v, unit)| {
            acc.checked_add(i64::from(*v).checked_mul(*unit)?)
        })
    }

    /// Rough length in millis (365.2425-day years, 30.436875-day months), used
    /// only to estimate bucket counts before exact calendar stepping.
    fn approx_millis(&self) -> i128 {
        let month = 2_629_746_000_i128;
        i128::from(self.years) * 12 * month
            + i128::from(self.months) * month
            + i128::from(self.weeks) * i128::from(7 * MILLIS_PER_DAY)
            + i128::from(self.days) * i128::from(MILLIS_PER_DAY)
            + i128::from(self.hours) * i128::from(MILLIS_PER_HOUR)
            + i128::from(self.minutes) * i128::from(MILLIS_PER_MINUTE)
            + i128::from(self.seconds) * i128::from(MILLIS_PER_SECOND)
            + i128::from(self.millis)
    }

    /// `Some((unit, count))` when exactly one field is non-zero.
    fn single_field(&self) -> Option<(Unit, i64)> {
        const UNITS: [Unit; 8] = [
            Unit::Year,
            Unit::Month,
            Unit::Week,
            Unit::Day,
            Unit::Hour,
            Unit::Minute,
            Unit::Second,
            Unit::Milli,
        ];
        let mut found = None;
        for (unit, v) in UNITS.iter().zip(self.fields()) {
            if v != 0 {
                if found.is_some() {
                    return None;
                }
                found = Some((*unit, i64::from(v)));
            }
        }
        found
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("PT0S");
        }
        f.write_str("P")?;
        for (v, d) in [
            (self.years, 'Y'),
            (self.months, 'M'),
            (self.weeks, 'W'),
            (self.days, 'D'),
        ] {
            if v != 0 {
                write!(f, "{v}{d}")?;
            }
        }
        if self.hours != 0 || self.minutes != 0 || self.seconds != 0 || self.millis != 0 {
            f.write_str("T")?;
            if self.hours != 0 {
                write!(f, "{}H", self.hours)?;
            }
            if self.minutes != 0 {
                write!(f, "{}M", self.minutes)?;
            }
            let total = i64::from(self.seconds) * 1_000 + i64::from(self.millis);
            if total != 0 {
                if total % 1_000 == 0 {
                    write!(f, "{}S", total / 1_000)?;
                } else {
                    let sign = if total < 0 { "-" } else { "" };
                    let abs = total.unsigned_abs();
                    write!(f, "{sign}{}.{:03}S", abs / 1_000, abs % 1_000)?;
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Period arithmetic (Druid's PeriodGranularity)
// ---------------------------------------------------------------------------

/// Rounds `ms` down to the start of its `period` bucket, with Druid's
/// `PeriodGranularity` semantics in zone `tz`:
///
/// * a single-field period of 1 without `origin` floors on the local calendar
///   (`P1W` to Monday, `P1M` to the 1st, `PT1H` to the local hour);
/// * other single-field periods count whole units from `origin` (default: the
///   epoch in local time, 1970-01-01T00:00 in `tz`): years/months/weeks/days
///   on the local calendar (so DST days are 23 or 25 hours), hours and smaller
///   as fixed durations; `P3M` gives Jan/Apr/Jul/Oct, `PT6H` 00/06/12/18 local;
/// * multi-field periods (`P1DT12H`) step from `origin` by the whole period.
///
/// Instants before the origin floor toward negative infinity. `None` if the
/// period is zero or has a negative field, or the result is out of range
/// (beyond about ±262,000 years for non-UTC zones).
pub fn floor_to_period(ms: i64, period: &Period, origin: Option<i64>, tz: Tz) -> Option<i64> {
    floor_to_period_in(ms, period, origin, &Zone::Named(tz))
}

/// Rounds `ms` up to a bucket boundary: `ms` itself if it is on one, else the
/// next bucket start (Druid's `TIME_CEIL`). See [`floor_to_period`].
pub fn ceil_to_period(ms: i64, period: &Period, origin: Option<i64>, tz: Tz) -> Option<i64> {
    ceil_to_period_in(ms, period, origin, &Zone::Named(tz))
}

/// Adds `step` times `period` to `ms` (Joda's `chronology.add(period, ms,
/// step)`): years, months, weeks and days on the local calendar in `tz`, with
/// month-end clamping (Jan 31 + P1M = Feb 28/29); hours and smaller as fixed
/// durations. `None` on overflow or outside chrono's range.
pub fn shift_by_period(ms: i64, period: &Period, step: i64, tz: Tz) -> Option<i64> {
    shift_by_period_in(ms, period, step, &Zone::Named(tz))
}

/// [`floor_to_period`] in any [`Zone`], including fixed offsets.
pub fn floor_to_period_in(
    ms: i64,
    period: &Period,
    origin: Option<i64>,
    zone: &Zone,
) -> Option<i64> {
    if !period.is_positive() {
        return None;
    }
    match (period.single_field(), origin) {
        (Some((unit, 1)), None) => floor_calendar(ms, unit, zone),
        (Some((unit, n)), _) => {
            let origin = match origin {
                Some(o) => o,
                None => zone.local_to_utc(0)?,
            };
            floor_from_origin(ms, unit, n, origin, zone)
        }
        (None, _) => {
            let origin = match origin {
                Some(o) => o,
                None => zone.local_to_utc(0)?,
            };
            floor_compound(ms, period, origin, zone)
        }
    }
}

/// [`ceil_to_period`] in any [`Zone`].
pub fn ceil_to_period_in(
    ms: i64,
    period: &Period,
    origin: Option<i64>,
    zone: &Zone,
) -> Option<i64> {
    let floor = floor_to_period_in(ms, period, origin, zone)?;
    if floor == ms {
        Some(ms)
    } else {
        shift_by_period_in(floor, period, 1, zone)
    }
}

/// [`shift_by_period`] in any [`Zone`].
pub fn shift_by_period_in(ms: i64, period: &Period, step: i64, zone: &Zone) -> Option<i64> {
    let scaled = |v: i32| i64::from(v).checked_mul(step);
    let mut t = ms;
    if period.years != 0 || period.months != 0 || period.weeks != 0 || period.days != 0 {
        let mut local = zone.to_local(t)?;
        if period.years != 0 {
            local = add_months(local, scaled(period.years)?.checked_mul(12)?)?;
        }
        if period.months != 0 {
            local = add_months(local, scaled(period.months)?)?;
        }
        let days = scaled(period.weeks)?
            .checked_mul(7)?
            .checked_add(scaled(period.days)?)?;
        local = local.checked_add(days.checked_mul(MILLIS_PER_DAY)?)?;
        t = zone.local_to_utc(local)?;
    }
    let time = [
        (period.hours, MILLIS_PER_HOUR),
        (period.minutes, MILLIS_PER_MINUTE),
        (period.seconds, MILLIS_PER_SECOND),
        (period.millis, 1),
    ]
    .iter()
    .try_fold(0_i64, |acc, (v, unit)| {
        acc.checked_add(scaled(*v)?.checked_mul(*unit)?)
    })?;
    t.checked_add(time)
}

fn unit_millis(unit: Unit) -> i64 {
    match unit {
        Unit::Hour => MILLIS_PER_HOUR,
        Unit::Minute => MILLIS_PER_MINUTE,
        Unit::Second => MILLIS_PER_SECOND,
        _ => 1,
    }
}

/// Floors to the start of the local calendar unit containing `ms`.
fn floor_calendar(ms: i64, unit: Unit, zone: &Zone) -> Option<i64> {
    let local = zone.to_local(ms)?;
    match unit {
        Unit::Milli => Some(ms),
        Unit::Second | Unit::Minute | Unit::Hour => {
            // Time fields floor in local time with the offset at `ms`.
            ms.checked_sub(local.rem_euclid(unit_millis(unit)))
        }
        Unit::Day | Unit::Week | Unit::Month | Unit::Year => {
            let days = local.div_euclid(MILLIS_PER_DAY);
            let start = match unit {
                Unit::Day => days,
                Unit::Week => days - i64::from(day_of_week_of_days(days)) + 1,
                Unit::Month => {
                    let (y, m, _) = civil_from_days(days);
                    days_from_civil(y, m, 1)?
                }
                _ => days_from_civil(civil_from_days(days).0, 1, 1)?,
            };
            zone.local_to_utc(start.checked_mul(MILLIS_PER_DAY)?)
        }
    }
}

/// Floors to a multiple of `n` units counted from `origin`.
fn floor_from_origin(ms: i64, unit: Unit, n: i64, origin: i64, zone: &Zone) -> Option<i64> {
    match unit {
        Unit::Hour | Unit::Minute | Unit::Second | Unit::Milli => {
            fixed_floor(ms, n.checked_mul(unit_millis(unit))?, origin)
        }
        Unit::Day | Unit::Week => {
            let step_days = if unit == Unit::Week {
                n.checked_mul(7)?
            } else {
                n
            };
            let (lo, lt) = (zone.to_local(origin)?, zone.to_local(ms)?);
            let step = i128::from(step_days) * i128::from(MILLIS_PER_DAY);
            let k = (i128::from(lt) - i128::from(lo)).div_euclid(step);
            let bucket = |k: i128| -> Option<i64> {
                zone.local_to_utc(i64::try_from(i128::from(lo) + k * step).ok()?)
            };
            let candidate = bucket(k)?;
            if candidate > ms {
                bucket(k - 1)
            } else {
                Some(candidate)
            }
        }
        Unit::Month | Unit::Year => {
            let step = if unit == Unit::Year {
                n.checked_mul(12)?
            } else {
                n
            };
            let (lo, lt) = (zone.to_local(origin)?, zone.to_local(ms)?);
            let (oy, om, _) = civil_from_days(lo.div_euclid(MILLIS_PER_DAY));
            let (ty, tm, _) = civil_from_days(lt.div_euclid(MILLIS_PER_DAY));
            let mut k = ty
                .checked_sub(oy)?
                .checked_mul(12)?
                .checked_add(i64::from(tm) - i64::from(om))?;
            if add_months(lo, k)? > lt {
                k -= 1;
            }
            let k = k.div_euclid(step) * step;
            let candidate = zone.local_to_utc(add_months(lo, k)?)?;
            if candidate > ms {
                zone.local_to_utc(add_months(lo, k.checked_sub(step)?)?)
            } else {
                Some(candidate)
            }
        }
    }
}

/// Floors to `origin + k * step` for the largest such value `<= ms`.
fn fixed_floor(ms: i64, step: i64, origin: i64) -> Option<i64> {
    if step <= 0 {
        return None;
    }
    let step = i128::from(step);
    let k = (i128::from(ms) - i128::from(origin)).div_euclid(step);
    i64::try_from(i128::from(origin) + k * step).ok()
}

/// Floors by whole multi-field periods counted from `origin`.
fn floor_compound(ms: i64, period: &Period, origin: i64, zone: &Zone) -> Option<i64> {
    let calendar_days = period.weeks != 0 || period.days != 0;
    if period.years == 0 && period.months == 0 && (zone.is_fixed() || !calendar_days) {
        return fixed_floor(ms, period.to_standard_millis()?, origin);
    }
    // Calendar periods: estimate the step count, then correct it exactly.
    let approx = period.approx_millis();
    let mut k = i64::try_from((i128::from(ms) - i128::from(origin)).div_euclid(approx)).ok()?;
    let mut candidate = shift_by_period_in(origin, period, k, zone)?;
    for _ in 0..64 {
        if candidate > ms {
            k = k.checked_sub(1)?;
            candidate = shift_by_period_in(origin, period, k, zone)?;
            continue;
        }
        let next = shift_by_period_in(origin, period, k.checked_add(1)?, zone)?;
        if next > ms {
            return Some(candidate);
        }
        k += 1;
        candidate = next;
    }
    None
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::format_millis;
    use crate::time::interval::Interval;
    use crate::time::test_support::{gran, ms};

    fn p(s: &str) -> Period {
        Period::parse(s).unwrap_or_else(|| panic!("bad test period {s}"))
    }

    fn floor_utc(t: &str, period: &str) -> String {
        format_millis(floor_to_period(ms(t), &p(period), None, Tz::UTC).unwrap())
    }

    #[test]
    fn month_quarter_and_year_boundaries() {
        assert_eq!(
            floor_utc("2000-02-15T12:00Z", "P1M"),
            "2000-02-01T00:00:00.000Z"
        );
        assert_eq!(
            floor_utc("2000-02-15T12:00Z", "P3M"),
            "2000-01-01T00:00:00.000Z"
        );
        assert_eq!(
            floor_utc("2000-05-15T12:00Z", "P3M"),
            "2000-04-01T00:00:00.000Z"
        );
        assert_eq!(
            floor_utc("2000-12-31T23:59:59.999Z", "P3M"),
            "2000-10-01T00:00:00.000Z"
        );
        assert_eq!(
            floor_utc("2000-12-31T23:59:59.999Z", "P1Y"),
            "2000-01-01T00:00:00.000Z"
        );
        assert_eq!(floor_utc("2001-01-01", "P1Y"), "2001-01-01T00:00:00.000Z");
        let month = p("P1M");
        let ceil = |t: &str| format_millis(ceil_to_period(ms(t), &month, None, Tz::UTC).unwrap());
        assert_eq!(ceil("2000-02-15"), "2000-03-01T00:00:00.000Z");
        assert_eq!(ceil("2000-03-01"), "2000-03-01T00:00:00.000Z");
        assert_eq!(ceil("2000-12-31T00:00:00.001Z"), "2001-01-01T00:00:00.000Z");
        assert_eq!(
            gran("MONTH").bucket(ms("2000-02-10")).to_string(),
            "2000-02-01T00:00:00.000Z/2000-03-01T00:00:00.000Z"
        );
    }

    #[test]
    fn floors_before_1970_toward_negative_infinity() {
        let t = "1969-12-31T23:59:59.999Z";
        assert_eq!(floor_utc(t, "P1D"), "1969-12-31T00:00:00.000Z");
        assert_eq!(floor_utc(t, "P3M"), "1969-10-01T00:00:00.000Z");
        assert_eq!(floor_utc(t, "P1Y"), "1969-01-01T00:00:00.000Z");
        assert_eq!(floor_utc(t, "PT6H"), "1969-12-31T18:00:00.000Z");
        assert_eq!(floor_utc(t, "PT1H"), "1969-12-31T23:00:00.000Z");
        assert_eq!(floor_utc(t, "P2D"), "1969-12-30T00:00:00.000Z");
        assert_eq!(floor_utc(t, "P1W"), "1969-12-29T00:00:00.000Z");
        assert_eq!(
            floor_utc("1900-03-01T01:00Z", "P1M"),
            "1900-03-01T00:00:00.000Z"
        );
        assert_eq!(
            floor_utc("1969-02-28T23:00Z", "P6M"),
            "1969-01-01T00:00:00.000Z"
        );
        assert_eq!(gran("DAY").bucket_start(-1), ms("1969-12-31"));
    }

    #[test]
    fn leap_days_and_month_end_clamping() {
        assert_eq!(
            floor_utc("2020-02-29T10:00Z", "P1D"),
            "2020-02-29T00:00:00.000Z"
        );
        assert_eq!(
            gran("DAY").bucket(ms("2020-02-29T10:00Z")),
            Interval::new(ms("2020-02-29"), ms("2020-03-01"))
        );
        let shift = |t: &str, period: &str, step: i64| {
            format_millis(shift_by_period(ms(t), &p(period), step, Tz::UTC).unwrap())
        };
        assert_eq!(shift("2020-02-29", "P1Y", 1), "2021-02-28T00:00:00.000Z");
        assert_eq!(shift("2020-02-29", "P4Y", 1), "2024-02-29T00:00:00.000Z");
        assert_eq!(shift("2020-01-31", "P1M", 1), "2020-02-29T00:00:00.000Z");
        assert_eq!(shift("2021-01-31", "P1M", 1), "2021-02-28T00:00:00.000Z");
        assert_eq!(shift("2020-03-31", "P1M", -1), "2020-02-29T00:00:00.000Z");
        assert_eq!(
            shift("2020-01-01", "PT1H30M", -2),
            "2019-12-31T21:00:00.000Z"
        );
        assert_eq!(shift("2020-01-01", "P1W", 3), "2020-01-22T00:00:00.000Z");
    }

    #[test]
    fn weeks_start_on_monday() {
        // 2024-01-01 was a Monday.
        for t in [
            "2024-01-01",
            "2024-01-03T12:00Z",
            "2024-01-07T23:59:59.999Z",
        ] {
            assert_eq!(floor_utc(t, "P1W"), "2024-01-01T00:00:00.000Z", "{t}");
        }
        assert_eq!(floor_utc("2024-01-08", "P1W"), "2024-01-08T00:00:00.000Z");
        assert_eq!(
            gran("WEEK").next_bucket_start(ms("2024-01-01")),
            ms("2024-01-08")
        );
        // Multi-week buckets count from the origin (1970-01-01, a Thursday).
        assert_eq!(floor_utc("1970-01-20", "P2W"), "1970-01-15T00:00:00.000Z");
    }

    #[test]
    fn origins_and_compound_periods() {
        let floor = |t: &str, period: &str, origin: &str| {
            format_millis(floor_to_period(ms(t), &p(period), Some(ms(origin)), Tz::UTC).unwrap())
        };
        assert_eq!(
            floor("2000-01-01T05:10Z", "PT1H", "2000-01-01T00:30Z"),
            "2000-01-01T04:30:00.000Z"
        );
        assert_eq!(
            floor("2000-03-10", "P1M", "2000-01-15"),
            "2000-02-15T00:00:00.000Z"
        );
        assert_eq!(
            floor("1999-12-20", "P1M", "2000-01-15"),
            "1999-12-15T00:00:00.000Z"
        );
        assert_eq!(
            floor("1999-12-10", "P1M", "2000-01-15"),
            "1999-11-15T00:00:00.000Z"
        );
        assert_eq!(
            floor("2000-01-01T05:10Z", "P1D", "2000-01-01T06:00Z"),
            "1999-12-31T06:00:00.000Z"
        );
        assert_eq!(
            floor_utc("1970-01-02T16:00Z", "P1DT12H"),
            "1970-01-02T12:00:00.000Z"
        );
        assert_eq!(
            floor_utc("1969-12-31T23:59:59.999Z", "P1DT12H"),
            "1969-12-30T12:00:00.000Z"
        );
        assert_eq!(floor_utc("1970-03-01", "P1M1D"), "1970-02-02T00:00:00.000Z");
        assert_eq!(floor_utc("2001-06-01", "P1Y6M"), "2000-01-01T00:00:00.000Z");
        assert_eq!(floor_utc("2001-07-01", "P1Y6M"), "2001-07-01T00:00:00.000Z");
        let ceil = ceil_to_period(ms("1970-01-02T16:00Z"), &p("P1DT12H"), None, Tz::UTC);
        assert_eq!(ceil, Some(ms("1970-01-04")));
        assert_eq!(floor_to_period(0, &p("PT0S"), None, Tz::UTC), None);
        assert_eq!(floor_to_period(0, &p("P-1D"), None, Tz::UTC), None);
    }

    #[test]
    fn dst_days_in_los_angeles() {
        let la = Tz::America__Los_Angeles;
        let day = p("P1D");
        // 2024-03-10 has 23 hours, 2024-11-03 has 25.
        assert_eq!(
            floor_to_period(ms("2024-03-10T12:00Z"), &day, None, la),
            Some(ms("2024-03-10T08:00Z"))
        );
        assert_eq!(
            ceil_to_period(ms("2024-03-10T12:00Z"), &day, None, la),
            Some(ms("2024-03-11T07:00Z"))
        );
        assert_eq!(
            shift_by_period(ms("2024-03-10T08:00Z"), &day, 1, la),
            Some(ms("2024-03-11T07:00Z"))
        );
        assert_eq!(
            floor_to_period(ms("2024-11-03T20:00Z"), &day, None, la),
            Some(ms("2024-11-03T07:00Z"))
        );
        assert_eq!(
            ceil_to_period(ms("2024-11-03T20:00Z"), &day, None, la),
            Some(ms("2024-11-04T08:00Z"))
        );
        assert_eq!(
            floor_to_period(ms("2024-03-20T12:00Z"), &p("P1M"), None, la),
            Some(ms("2024-03-01T08:00Z"))
        );
        // Two-day buckets stay on local midnights across the change.
        assert_eq!(
            floor_to_period(ms("2024-03-11T12:00Z"), &p("P2D"), None, la),
            Some(ms("2024-03-10T08:00Z"))
        );
        assert_eq!(
            ceil_to_period(ms("2024-03-11T12:00Z"), &p("P2D"), None, la),
            Some(ms("2024-03-12T07:00Z"))
        );
        // PT6H counts absolute hours from local 1970-01-01T00:00 (08:00Z).
        let six = p("PT6H");
        assert_eq!(
            floor_to_period(ms("2024-01-15T13:00Z"), &six, None, la),
            Some(ms("2024-01-15T08:00Z"))
        );
        // Hours floor on the local clock in half-hour zones.
        let kolkata = Tz::Asia__Kolkata;
        assert_eq!(
            floor_to_period(ms("2024-01-15T10:45Z"), &p("PT1H"), None, kolkata),
            Some(ms("2024-01-15T10:30Z"))
        );
        let fixed = Zone::parse("+05:30").unwrap();
        assert_eq!(fixed.id(), "+05:30");
        assert_eq!(
            floor_to_period_in(ms("2024-01-15T20:00Z"), &day, None, &fixed),
            Some(ms("2024-01-15T18:30Z"))
        );
    }

    #[test]
    fn period_parse_and_display_round_trip() {
        for s in [
            "P1D",
            "PT1H",
            "PT15M",
            "P3M",
            "P1Y",
            "P1W",
            "P1DT12H",
            "P1Y2M",
            "PT1S",
            "PT1.500S",
            "P1Y2M3W4DT5H6M7.008S",
        ] {
            assert_eq!(p(s).to_string(), s);
        }
        assert_eq!(
            p("pt15m"),
            Period {
                minutes: 15,
                ..Default::default()
            }
        );
        assert_eq!(
            p("PT0.5S"),
            Period {
                millis: 500,
                ..Default::default()
            }
        );
        assert_eq!(Period::default().to_string(), "PT0S");
        for bad in [
            "", "P", "PT", "1D", "P1H", "PT1D", "P1D1Y", "P1.5D", "P1DT", "PXD", "P1D2D",
        ] {
            assert_eq!(Period::parse(bad), None, "{bad}");
        }
        assert_eq!(p("P1DT12H").to_standard_millis(), Some(129_600_000));
        assert_eq!(p("P1M").to_standard_millis(), None);
    }
}
