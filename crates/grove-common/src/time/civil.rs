//! Civil (proleptic Gregorian) calendar.

use super::{MILLIS_PER_DAY, MILLIS_PER_HOUR, MILLIS_PER_MINUTE, MILLIS_PER_SECOND};

/// Whether `year` is a leap year in the proleptic Gregorian calendar.
pub fn is_leap_year(year: i64) -> bool {
    year.rem_euclid(4) == 0 && (year.rem_euclid(100) != 0 || year.rem_euclid(400) == 0)
}

/// Number of days in `month` (1..=12) of `year`; 0 for an invalid month.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of the given date, or `None` if the date is invalid
/// (month outside 1..=12, day outside the month) or overflows.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> Option<i64> {
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let y = if month <= 2 {
        year.checked_sub(1)?
    } else {
        year
    };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(month) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era.checked_mul(146_097)?.checked_add(doe - 719_468)
}

/// The `(year, month, day)` of a day number (days since 1970-01-01). Total over
/// `i64`.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = i128::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i128::from(month <= 2);
    // |year| <= |days| / 365 + 1, so it always fits; month/day are small.
    (year as i64, month as u32, day as u32)
}

/// ISO day of week (1 = Monday .. 7 = Sunday) of a day number.
pub(super) fn day_of_week_of_days(days: i64) -> u32 {
    // 1970-01-01 was a Thursday.
    (days + 3).rem_euclid(7) as u32 + 1
}

/// A broken-down date-time in the proleptic Gregorian calendar, without a zone.
///
/// Built from "local" millis (UTC millis plus the zone offset) by
/// [`CivilDateTime::from_millis`]; all fields are in their natural ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CivilDateTime {
    /// Year; 0 is 1 BC, negative years go further back.
    pub year: i64,
    /// Month of year, 1..=12.
    pub month: u32,
    /// Day of month, 1..=31.
    pub day: u32,
    /// Hour of day, 0..=23.
    pub hour: u32,
    /// Minute of hour, 0..=59.
    pub minute: u32,
    /// Second of minute, 0..=59.
    pub second: u32,
    /// Millisecond of second, 0..=999.
    pub millis: u32,
}

impl CivilDateTime {
    /// Breaks down millis since the epoch (total over `i64`).
    pub fn from_millis(ms: i64) -> Self {
        let (year, month, day) = civil_from_days(ms.div_euclid(MILLIS_PER_DAY));
        let tod = ms.rem_euclid(MILLIS_PER_DAY) as u32;
        Self {
            year,
            month,
            day,
            hour: tod / 3_600_000,
            minute: tod / 60_000 % 60,
            second: tod / 1_000 % 60,
            millis: tod % 1_000,
        }
    }

    /// Millis since the epoch, or `None` if a field is out of range or the
    /// value overflows.
    pub fn to_millis(&self) -> Option<i64> {
        if self.hour > 23 || self.minute > 59 || self.second > 59 || self.millis > 999 {
            return None;
        }
        let tod = i64::from(self.hour) * MILLIS_PER_HOUR
            + i64::from(self.minute) * MILLIS_PER_MINUTE
            + i64::from(self.second) * MILLIS_PER_SECOND
            + i64::from(self.millis);
        days_from_civil(self.year, self.month, self.day)?
            .checked_mul(MILLIS_PER_DAY)?
            .checked_add(tod)
    }

    /// Days since 1970-01-01 of this date (the date is valid by construction).
    fn days(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day).unwrap_or(0)
    }

    /// ISO day of week, 1 = Monday .. 7 = Sunday.
    pub fn day_of_week(&self) -> u32 {
        day_of_week_of_days(self.days())
    }

    /// Day of year, 1..=366.
    pub fn day_of_year(&self) -> u32 {
        let jan1 = days_from_civil(self.year, 1, 1).unwrap_or(0);
        (self.days() - jan1) as u32 + 1
    }

    /// ISO week date: `(week-based year, week of week-year 1..=53)`.
    pub fn iso_week(&self) -> (i64, u32) {
        let days = self.days();
        let thursday = days - i64::from(self.day_of_week()) + 4;
        let (week_year, _, _) = civil_from_days(thursday);
        let jan1 = days_from_civil(week_year, 1, 1).unwrap_or(0);
        (week_year, ((thursday - jan1) / 7) as u32 + 1)
    }
}

/// Day number of an ISO week date, or `None` if it is invalid.
pub(super) fn days_from_iso_week(week_year: i64, week: i64, dow: i64) -> Option<i64> {
    if !(1..=53).contains(&week) || !(1..=7).contains(&dow) {
        return None;
    }
    let jan4 = days_from_civil(week_year, 1, 4)?;
    let week1 = jan4 - i64::from(day_of_week_of_days(jan4)) + 1;
    let days = week1 + (week - 1) * 7 + dow - 1;
    (CivilDateTime::from_millis(days.checked_mul(MILLIS_PER_DAY)?)
        .iso_week()
        .0
        == week_year)
        .then_some(days)
}

/// Adds `months` calendar months to local millis, clamping the day of month
/// like Joda (Jan 31 + 1 month = Feb 28/29).
pub(super) fn add_months(local: i64, months: i64) -> Option<i64> {
    if months == 0 {
        return Some(local);
    }
    let (y, m, d) = civil_from_days(local.div_euclid(MILLIS_PER_DAY));
    let tod = local.rem_euclid(MILLIS_PER_DAY);
    let index = y
        .checked_mul(12)?
        .checked_add(i64::from(m) - 1)?
        .checked_add(months)?;
    let (ny, nm) = (index.div_euclid(12), index.rem_euclid(12) as u32 + 1);
    let nd = d.min(days_in_month(ny, nm));
    days_from_civil(ny, nm, nd)?
        .checked_mul(MILLIS_PER_DAY)?
        .checked_add(tod)
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::test_support::ms;

    #[test]
    fn civil_helpers_agree() {
        for days in [-800_000, -719_469, -1, 0, 1, 59, 11_016, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), Some(days));
        }
        let c = CivilDateTime::from_millis(ms("2021-01-03T12:00Z"));
        assert_eq!(
            (c.day_of_week(), c.day_of_year(), c.iso_week()),
            (7, 3, (2020, 53))
        );
        assert_eq!(days_from_civil(2021, 2, 29), None);
    }
}
