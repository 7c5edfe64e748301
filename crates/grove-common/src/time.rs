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

use std::fmt::{self, Write as _};

use chrono::{DateTime, LocalResult, Offset, TimeZone};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Druid's earliest instant (`JodaUtils.MIN_INSTANT`), the start of eternity.
pub const ETERNITY_START: i64 = i64::MIN / 2;
/// Druid's latest instant (`JodaUtils.MAX_INSTANT`), the end of eternity.
pub const ETERNITY_END: i64 = i64::MAX / 2;

const MILLIS_PER_SECOND: i64 = 1_000;
const MILLIS_PER_MINUTE: i64 = 60_000;
const MILLIS_PER_HOUR: i64 = 3_600_000;
const MILLIS_PER_DAY: i64 = 86_400_000;

// ---------------------------------------------------------------------------
// Civil (proleptic Gregorian) calendar
// ---------------------------------------------------------------------------

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
fn day_of_week_of_days(days: i64) -> u32 {
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
fn days_from_iso_week(week_year: i64, week: i64, dow: i64) -> Option<i64> {
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
fn add_months(local: i64, months: i64) -> Option<i64> {
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

// ---------------------------------------------------------------------------
// Formatting and parsing instants
// ---------------------------------------------------------------------------

/// Formats millis in Druid/Joda ISO form, `2015-09-12T00:00:00.000Z`. Years
/// outside 0..=9999 print like Joda: `-146136543-09-08T08:23:32.096Z`.
pub fn format_millis(ms: i64) -> String {
    format_millis_with_offset(ms, 0)
}

/// Formats millis as Joda's `ISODateTimeFormat.dateTime()` does in a zone whose
/// offset at `ms` is `offset_ms`: local fields, then `Z` for a zero offset or
/// `+05:30` / `-08:00` (seconds appended when present).
pub fn format_millis_with_offset(ms: i64, offset_ms: i64) -> String {
    let local = ms.saturating_add(offset_ms);
    let c = CivilDateTime::from_millis(local);
    let mut out = String::with_capacity(32);
    if c.year < 0 {
        out.push('-');
    }
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}",
        c.year.unsigned_abs(),
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        c.millis
    );
    push_offset(&mut out, offset_ms, true, true);
    out
}

/// Appends a zone offset: `Z` for zero when `zulu`, else `+HH:MM` (or `+HHMM`
/// without `colon`), with `:SS` / `.SSS` appended when non-zero.
pub fn push_offset(out: &mut String, offset_ms: i64, zulu: bool, colon: bool) {
    if offset_ms == 0 && zulu {
        out.push('Z');
        return;
    }
    out.push(if offset_ms < 0 { '-' } else { '+' });
    let abs = offset_ms.unsigned_abs();
    let sep = if colon { ":" } else { "" };
    let _ = write!(out, "{:02}{sep}{:02}", abs / 3_600_000, abs / 60_000 % 60);
    if !abs.is_multiple_of(60_000) {
        let _ = write!(out, "{sep}{:02}", abs / 1_000 % 60);
        if !abs.is_multiple_of(1_000) {
            let _ = write!(out, ".{:03}", abs % 1_000);
        }
    }
}

/// A tiny byte cursor for the ISO parsers.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Self {
            bytes: s.as_bytes(),
            pos: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn done(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// Consumes `c` (ASCII case-insensitively) if it is next.
    fn eat(&mut self, c: u8) -> bool {
        if self.peek().is_some_and(|b| b.eq_ignore_ascii_case(&c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Consumes between `min` and `max` digits greedily: `(value, count)`.
    fn digits(&mut self, min: usize, max: usize) -> Option<(i64, usize)> {
        let start = self.pos;
        let mut value: i64 = 0;
        while self.pos - start < max {
            match self.peek() {
                Some(b @ b'0'..=b'9') => {
                    value = value.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
                    self.pos += 1;
                }
                _ => break,
            }
        }
        let count = self.pos - start;
        (count >= min).then_some((value, count))
    }

    /// Consumes a decimal fraction (1..=9 digits) and returns it in millis.
    fn fraction_millis(&mut self) -> Option<i64> {
        let (value, count) = self.digits(1, 9)?;
        let scale = 10_i64.pow(9 - count as u32);
        Some(value * scale / 1_000_000)
    }

    /// Consumes an offset after its sign: `HH`, `HH:MM`, `HHMM`, `HH:MM:SS`.
    fn offset_body(&mut self) -> Option<i64> {
        let (h, _) = self.digits(2, 2)?;
        let mut ms = h * MILLIS_PER_HOUR;
        let colon = self.eat(b':');
        if let Some((m, _)) = self.digits(2, 2) {
            ms += m * MILLIS_PER_MINUTE;
            if (!colon || self.eat(b':'))
                && let Some((s, _)) = self.digits(2, 2)
            {
                ms += s * MILLIS_PER_SECOND;
            }
        } else if colon {
            return None;
        }
        (ms < MILLIS_PER_DAY).then_some(ms)
    }
}

/// Parses Druid's ISO-like timestamp grammar into `(local millis, offset)`:
/// `[+-]yyyy[-MM[-dd] | -DDD | -Www[-d]]`, optionally `T` or a space, then an
/// optional `HH[:mm[:ss[.fff]]]`, then an optional `Z` or `±HH[:mm]`.
fn parse_iso_parts(s: &str) -> Option<(i64, Option<i64>)> {
    let mut c = Cursor::new(s);
    let negative = c.eat(b'-');
    if !negative {
        c.eat(b'+');
    }
    let (y, _) = c.digits(4, 10)?;
    let year = if negative { -y } else { y };
    let days = if c.eat(b'-') {
        if c.eat(b'W') {
            let (week, _) = c.digits(2, 2)?;
            let dow = if c.eat(b'-') { c.digits(1, 1)?.0 } else { 1 };
            days_from_iso_week(year, week, dow)?
        } else {
            let (v, n) = c.digits(2, 3)?;
            if n == 3 {
                let len = if is_leap_year(year) { 366 } else { 365 };
                if !(1..=len).contains(&v) {
                    return None;
                }
                days_from_civil(year, 1, 1)? + v - 1
            } else {
                let day = if c.eat(b'-') { c.digits(2, 2)?.0 } else { 1 };
                days_from_civil(year, u32::try_from(v).ok()?, u32::try_from(day).ok()?)?
            }
        }
    } else {
        days_from_civil(year, 1, 1)?
    };
    let mut tod = 0;
    let mut offset = None;
    if c.eat(b'T') || c.eat(b' ') {
        if let Some((h, _)) = c.digits(2, 2) {
            tod = h * MILLIS_PER_HOUR;
            if h > 23 {
                return None;
            }
            if c.eat(b':') {
                let (m, _) = c.digits(2, 2)?;
                tod += m * MILLIS_PER_MINUTE;
                if m > 59 {
                    return None;
                }
                if c.eat(b':') {
                    let (sec, _) = c.digits(2, 2)?;
                    tod += sec * MILLIS_PER_SECOND;
                    if sec > 59 {
                        return None;
                    }
                    if c.eat(b'.') || c.eat(b',') {
                        tod += c.fraction_millis()?;
                    }
                }
            }
        }
        if c.eat(b'Z') {
            offset = Some(0);
        } else if c.eat(b'+') {
            offset = Some(c.offset_body()?);
        } else if c.eat(b'-') {
            offset = Some(-c.offset_body()?);
        }
    }
    if !c.done() {
        return None;
    }
    let local = days.checked_mul(MILLIS_PER_DAY)?.checked_add(tod)?;
    Some((local, offset))
}

/// Parses an ISO-8601 timestamp (`2015-09-12`, `2015-09-12T01:02:03Z`,
/// `2015-09-12T01:02:03.456+05:30`, `2015-09-12 01:02:03`, also Joda's extended
/// years such as the eternity bounds) into UTC millis. Strings without an offset
/// are UTC. `None` if it does not parse.
pub fn parse_iso_millis(s: &str) -> Option<i64> {
    parse_iso_millis_in(s, &Zone::UTC)
}

/// Like [`parse_iso_millis`], but strings without an offset are local times in
/// `zone` (gaps resolve forward, overlaps to the earlier instant, like Joda).
pub fn parse_iso_millis_in(s: &str, zone: &Zone) -> Option<i64> {
    let (local, offset) = parse_iso_parts(s)?;
    match offset {
        Some(offset) => local.checked_sub(offset),
        None => zone.local_to_utc(local),
    }
}

// ---------------------------------------------------------------------------
// Zones
// ---------------------------------------------------------------------------

/// A time zone as Druid accepts it: an IANA zone or a fixed offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Zone {
    /// A named IANA zone, such as `America/Los_Angeles` or `UTC`.
    Named(Tz),
    /// A fixed offset east of UTC, in seconds (never zero: that is `UTC`).
    Fixed(i32),
}

impl Default for Zone {
    fn default() -> Self {
        Self::UTC
    }
}

impl From<Tz> for Zone {
    fn from(tz: Tz) -> Self {
        Self::Named(tz)
    }
}

impl Zone {
    /// Coordinated Universal Time.
    pub const UTC: Zone = Zone::Named(Tz::UTC);

    /// Parses a zone like Joda's `DateTimeZone.forID`: an IANA id (`UTC`,
    /// `America/Los_Angeles`), or an offset `±HH`, `±HH:mm`, `±HHmm`
    /// (a zero offset is `UTC`). `None` for unknown ids.
    pub fn parse(s: &str) -> Option<Zone> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix(['+', '-']) {
            let mut c = Cursor::new(rest);
            let ms = c.offset_body()?;
            if !c.done() {
                return None;
            }
            let secs = i32::try_from(ms / 1_000).ok()?;
            return Some(match (secs, s.starts_with('-')) {
                (0, _) => Zone::UTC,
                (secs, true) => Zone::Fixed(-secs),
                (secs, false) => Zone::Fixed(secs),
            });
        }
        if s.eq_ignore_ascii_case("utc") || s.eq_ignore_ascii_case("z") {
            return Some(Zone::UTC);
        }
        s.parse::<Tz>().ok().map(Zone::Named)
    }

    /// Joda's id for the zone: `UTC`, `America/Los_Angeles`, `+05:30`.
    pub fn id(&self) -> String {
        match self {
            Zone::Named(tz) if is_utc_tz(*tz) => "UTC".to_string(),
            Zone::Named(tz) => tz.name().to_string(),
            Zone::Fixed(secs) => {
                let mut out = String::new();
                push_offset(&mut out, i64::from(*secs) * 1_000, false, true);
                out
            }
        }
    }

    /// Whether the zone is UTC (offset always zero).
    pub fn is_utc(&self) -> bool {
        matches!(self, Zone::Named(tz) if is_utc_tz(*tz))
    }

    /// Whether the offset never changes (UTC or a fixed offset).
    pub fn is_fixed(&self) -> bool {
        self.is_utc() || matches!(self, Zone::Fixed(_))
    }

    /// Offset from UTC in millis at the instant `utc_ms`; `None` outside
    /// chrono's range (never for UTC or fixed offsets).
    pub fn offset_millis(&self, utc_ms: i64) -> Option<i64> {
        match self {
            Zone::Fixed(secs) => Some(i64::from(*secs) * 1_000),
            Zone::Named(tz) if is_utc_tz(*tz) => Some(0),
            Zone::Named(tz) => {
                let naive = DateTime::from_timestamp_millis(utc_ms)?.naive_utc();
                let offset = tz.offset_from_utc_datetime(&naive);
                Some(i64::from(offset.fix().local_minus_utc()) * 1_000)
            }
        }
    }

    /// Local wall-clock millis at the instant `utc_ms`.
    pub fn to_local(&self, utc_ms: i64) -> Option<i64> {
        utc_ms.checked_add(self.offset_millis(utc_ms)?)
    }

    /// The instant of local wall-clock millis, resolved like Joda: a time in
    /// a DST gap moves forward by the gap, an ambiguous time takes the
    /// earlier instant.
    pub fn local_to_utc(&self, local_ms: i64) -> Option<i64> {
        match self {
            Zone::Fixed(secs) => local_ms.checked_sub(i64::from(*secs) * 1_000),
            Zone::Named(tz) if is_utc_tz(*tz) => Some(local_ms),
            Zone::Named(tz) => {
                let naive = DateTime::from_timestamp_millis(local_ms)?.naive_utc();
                let secs = |o: &<Tz as TimeZone>::Offset| i64::from(o.fix().local_minus_utc());
                match tz.offset_from_local_datetime(&naive) {
                    LocalResult::Single(o) => local_ms.checked_sub(secs(&o) * 1_000),
                    LocalResult::Ambiguous(a, b) => {
                        local_ms.checked_sub(secs(&a).max(secs(&b)) * 1_000)
                    }
                    LocalResult::None => {
                        // Use the offset in force just before the gap.
                        let before = self.offset_millis(local_ms.checked_sub(MILLIS_PER_DAY)?)?;
                        local_ms.checked_sub(before)
                    }
                }
            }
        }
    }
}

fn is_utc_tz(tz: Tz) -> bool {
    matches!(
        tz,
        Tz::UTC | Tz::Etc__UTC | Tz::Etc__UCT | Tz::UCT | Tz::Zulu | Tz::Etc__Zulu | Tz::Universal
    )
}

// ---------------------------------------------------------------------------
// Intervals
// ---------------------------------------------------------------------------

/// A half-open time interval `[start, end)` in epoch millis, like Joda's
/// `Interval` in UTC. Displays and (de)serialises as Druid's
/// `2000-01-01T00:00:00.000Z/2000-01-02T00:00:00.000Z`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Interval {
    /// Inclusive start, epoch millis.
    pub start: i64,
    /// Exclusive end, epoch millis.
    pub end: i64,
}

impl Interval {
    /// An interval from `start` (inclusive) to `end` (exclusive). Does not
    /// check `start <= end`; see [`Interval::parse`] for a checked constructor.
    pub fn new(start: i64, end: i64) -> Self {
        Self { start, end }
    }

    /// Druid's eternity: `[ETERNITY_START, ETERNITY_END)`.
    pub fn eternity() -> Self {
        Self::new(ETERNITY_START, ETERNITY_END)
    }

    /// Whether this is exactly [`Interval::eternity`].
    pub fn is_eternity(&self) -> bool {
        *self == Self::eternity()
    }

    /// Whether `other` lies entirely within this interval.
    pub fn contains(&self, other: &Interval) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    /// Whether the two intervals share at least one millisecond.
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// Whether the instant `ms` lies in `[start, end)`.
    pub fn contains_millis(&self, ms: i64) -> bool {
        self.start <= ms && ms < self.end
    }

    /// Length in millis (saturating).
    pub fn duration_millis(&self) -> i64 {
        self.end.saturating_sub(self.start)
    }

    /// Parses Druid's ISO interval forms `start/end`, `start/period` and
    /// `period/end` (UTC). `None` if malformed or `end < start`.
    pub fn parse(s: &str) -> Option<Interval> {
        let (a, b) = s.trim().split_once('/')?;
        let (start, end) = match (parse_iso_millis(a), parse_iso_millis(b)) {
            (Some(start), Some(end)) => (start, end),
            (Some(start), None) => (
                start,
                shift_by_period(start, &Period::parse(b)?, 1, Tz::UTC)?,
            ),
            (None, Some(end)) => (shift_by_period(end, &Period::parse(a)?, -1, Tz::UTC)?, end),
            (None, None) => return None,
        };
        (start <= end).then_some(Interval::new(start, end))
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            format_millis(self.start),
            format_millis(self.end)
        )
    }
}

impl Serialize for Interval {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Interval::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid interval [{s}]")))
    }
}

// ---------------------------------------------------------------------------
// Periods
// ---------------------------------------------------------------------------

/// An ISO-8601 period (Joda `Period` with the standard field set). Fields are
/// kept as written: `PT60M` is not normalised to `PT1H`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
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

// ---------------------------------------------------------------------------
// Granularity
// ---------------------------------------------------------------------------

/// A Druid segment or query granularity. Segment granularities are UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Granularity {
    /// One bucket covering eternity (`ALL`, `ALL TIME`).
    All,
    /// Every millisecond is its own bucket (`NONE`).
    None,
    /// Buckets of a period in UTC with the default origin.
    Period(Period),
}

/// Druid's `GranularityType` names with their periods.
const STANDARD_GRANULARITIES: [(&str, Period); 14] = [
    ("SECOND", period_of(0, 0, 0, 0, 0, 0, 1)),
    ("MINUTE", period_of(0, 0, 0, 0, 0, 1, 0)),
    ("FIVE_MINUTE", period_of(0, 0, 0, 0, 0, 5, 0)),
    ("TEN_MINUTE", period_of(0, 0, 0, 0, 0, 10, 0)),
    ("FIFTEEN_MINUTE", period_of(0, 0, 0, 0, 0, 15, 0)),
    ("THIRTY_MINUTE", period_of(0, 0, 0, 0, 0, 30, 0)),
    ("HOUR", period_of(0, 0, 0, 0, 1, 0, 0)),
    ("SIX_HOUR", period_of(0, 0, 0, 0, 6, 0, 0)),
    ("EIGHT_HOUR", period_of(0, 0, 0, 0, 8, 0, 0)),
    ("DAY", period_of(0, 0, 0, 1, 0, 0, 0)),
    ("WEEK", period_of(0, 0, 1, 0, 0, 0, 0)),
    ("MONTH", period_of(0, 1, 0, 0, 0, 0, 0)),
    ("QUARTER", period_of(0, 3, 0, 0, 0, 0, 0)),
    ("YEAR", period_of(1, 0, 0, 0, 0, 0, 0)),
];

const fn period_of(
    years: i32,
    months: i32,
    weeks: i32,
    days: i32,
    hours: i32,
    minutes: i32,
    seconds: i32,
) -> Period {
    Period {
        years,
        months,
        weeks,
        days,
        hours,
        minutes,
        seconds,
        millis: 0,
    }
}

impl Granularity {
    /// Parses a Druid `GranularityType` name, case-insensitively: `SECOND`,
    /// `MINUTE`, `FIVE_MINUTE`, ..., `DAY`, `WEEK`, `MONTH`, `QUARTER`, `YEAR`,
    /// `ALL` (also `ALL TIME` / `ALL_TIME`) and `NONE`.
    pub fn from_name(name: &str) -> Option<Self> {
        let upper = name.trim().to_ascii_uppercase();
        match upper.as_str() {
            "ALL" | "ALL TIME" | "ALL_TIME" => Some(Self::All),
            "NONE" => Some(Self::None),
            _ => STANDARD_GRANULARITIES
                .iter()
                .find(|(n, _)| *n == upper)
                .map(|(_, p)| Self::Period(*p)),
        }
    }

    /// Parses an ISO-8601 period (`PT1H`, `P1D`, ...) as a granularity; `None`
    /// if it does not parse or is not positive.
    pub fn from_period_str(s: &str) -> Option<Self> {
        Period::parse(s)
            .filter(Period::is_positive)
            .map(Self::Period)
    }

    /// The period, for period granularities.
    pub fn period(&self) -> Option<Period> {
        match self {
            Self::Period(p) => Some(*p),
            _ => Option::None,
        }
    }

    /// The `GranularityType` name (`DAY`, `ALL`, ...) when this is a standard
    /// granularity.
    pub fn standard_name(&self) -> Option<&'static str> {
        match self {
            Self::All => Some("ALL"),
            Self::None => Some("NONE"),
            Self::Period(p) => STANDARD_GRANULARITIES
                .iter()
                .find(|(_, sp)| sp == p)
                .map(|(n, _)| *n),
        }
    }

    /// Start of the bucket containing `ms`: [`ETERNITY_START`] for `All`, `ms`
    /// for `None`. Saturates to `i64::MIN` if the floor overflows.
    pub fn bucket_start(&self, ms: i64) -> i64 {
        match self {
            Self::All => ETERNITY_START,
            Self::None => ms,
            Self::Period(p) if !p.is_positive() => ms,
            Self::Period(p) => {
                floor_to_period_in(ms, p, Option::None, &Zone::UTC).unwrap_or(i64::MIN)
            }
        }
    }

    /// Start of the bucket after the one starting at `start`: [`ETERNITY_END`]
    /// for `All`, `start + 1` for `None`. Saturates to `i64::MAX`.
    pub fn next_bucket_start(&self, start: i64) -> i64 {
        match self {
            Self::All => ETERNITY_END,
            Self::None => start.saturating_add(1),
            Self::Period(p) if !p.is_positive() => start.saturating_add(1),
            Self::Period(p) => shift_by_period_in(start, p, 1, &Zone::UTC).unwrap_or(i64::MAX),
        }
    }

    /// The bucket containing `ms`: eternity for `All`, `[ms, ms + 1)` for `None`.
    pub fn bucket(&self, ms: i64) -> Interval {
        match self {
            Self::All => Interval::eternity(),
            _ => {
                let start = self.bucket_start(ms);
                Interval::new(start, self.next_bucket_start(start))
            }
        }
    }

    /// Whether both ends of `interval` are bucket boundaries (the check Druid
    /// applies to `OVERWRITE WHERE` intervals). For `All` only eternity is
    /// aligned; for `None` everything is.
    pub fn is_aligned(&self, interval: &Interval) -> bool {
        match self {
            Self::All => interval.is_eternity(),
            Self::None => true,
            Self::Period(_) => {
                self.bucket_start(interval.start) == interval.start
                    && self.bucket_start(interval.end) == interval.end
            }
        }
    }

    /// Druid's `toString()` of the granularity, as used in error messages:
    /// `{type=period, period=P1M, timeZone=UTC, origin=null}`, `AllGranularity`,
    /// `NoneGranularity`.
    pub fn druid_description(&self) -> String {
        match self {
            Self::All => "AllGranularity".to_string(),
            Self::None => "NoneGranularity".to_string(),
            Self::Period(p) => format!("{{type=period, period={p}, timeZone=UTC, origin=null}}"),
        }
    }

    /// Druid's JSON object form: `{"type":"period","period":"P1D",
    /// "timeZone":"UTC","origin":null}`, `{"type":"all"}`, `{"type":"none"}`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::All => serde_json::json!({ "type": "all" }),
            Self::None => serde_json::json!({ "type": "none" }),
            Self::Period(p) => serde_json::json!({
                "type": "period",
                "period": p.to_string(),
                "timeZone": "UTC",
                "origin": serde_json::Value::Null,
            }),
        }
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.druid_description())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        parse_iso_millis(s).unwrap_or_else(|| panic!("bad test timestamp {s}"))
    }

    fn p(s: &str) -> Period {
        Period::parse(s).unwrap_or_else(|| panic!("bad test period {s}"))
    }

    fn floor_utc(t: &str, period: &str) -> String {
        format_millis(floor_to_period(ms(t), &p(period), None, Tz::UTC).unwrap())
    }

    fn gran(name: &str) -> Granularity {
        Granularity::from_name(name).unwrap()
    }

    #[test]
    fn formats_ordinary_and_eternity_instants() {
        assert_eq!(format_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_millis(1_442_016_000_000), "2015-09-12T00:00:00.000Z");
        assert_eq!(
            format_millis(ETERNITY_START),
            "-146136543-09-08T08:23:32.096Z"
        );
        assert_eq!(format_millis(ETERNITY_END), "146140482-04-24T15:36:27.903Z");
        assert_eq!(ms("-146136543-09-08T08:23:32.096Z"), ETERNITY_START);
        assert_eq!(ms("146140482-04-24T15:36:27.903Z"), ETERNITY_END);
        assert_eq!(
            format_millis(ms("-0001-03-01")),
            "-0001-03-01T00:00:00.000Z"
        );
        assert_eq!(
            format_millis_with_offset(ms("2000-01-02T03:04:05Z"), -8 * 3_600_000),
            "2000-01-01T19:04:05.000-08:00"
        );
    }

    #[test]
    fn parses_iso_forms() {
        let base = 1_442_016_000_000;
        assert_eq!(ms("2015-09-12"), base);
        assert_eq!(ms("2015-09-12T01:02:03Z"), base + 3_723_000);
        assert_eq!(ms("2015-09-12T01:02:03.456Z"), base + 3_723_456);
        assert_eq!(ms("2015-09-12 01:02:03"), base + 3_723_000);
        assert_eq!(ms("2015-09-12t01:02:03z"), base + 3_723_000);
        assert_eq!(ms("2015-09-12T01:02:03.456789Z"), base + 3_723_456);
        assert_eq!(ms("2015-09-12T05:30+05:30"), base);
        assert_eq!(ms("2015-09-11T19:00:00-0500"), base);
        assert_eq!(ms("2015-09"), ms("2015-09-01"));
        assert_eq!(ms("2015"), ms("2015-01-01"));
        assert_eq!(ms("2015-255"), base);
        assert_eq!(ms("2015-W37-6"), base);
        for bad in [
            "",
            "2015-13-01",
            "2015-02-29",
            "2015-09-12T24:00",
            "2015-09-12T01:02:03Zjunk",
            "12/09/2015",
            "2015-09-12  ",
            "abc",
            "2015-09-12T01:60",
        ] {
            assert_eq!(parse_iso_millis(bad), None, "{bad}");
        }
        let la = Zone::Named(Tz::America__Los_Angeles);
        assert_eq!(parse_iso_millis_in("2015-09-11T17:00", &la), Some(base));
        assert_eq!(parse_iso_millis_in("2015-09-12T00:00Z", &la), Some(base));
    }

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
    fn zones_parse_like_joda() {
        assert_eq!(Zone::parse("UTC"), Some(Zone::UTC));
        assert_eq!(Zone::parse("+00:00"), Some(Zone::UTC));
        assert_eq!(
            Zone::parse("America/Los_Angeles"),
            Some(Zone::Named(Tz::America__Los_Angeles))
        );
        assert_eq!(Zone::parse("-08:00"), Some(Zone::Fixed(-8 * 3600)));
        assert_eq!(Zone::parse("+0530"), Some(Zone::Fixed(19_800)));
        assert_eq!(Zone::parse("Mars/Olympus"), None);
        assert_eq!(
            Zone::parse("Etc/UTC").map(|z| z.id()),
            Some("UTC".to_string())
        );
        let la = Zone::Named(Tz::America__Los_Angeles);
        // In the spring gap local 02:30 moves forward to 03:30 PDT.
        assert_eq!(
            la.local_to_utc(ms("2024-03-10T02:30Z")),
            Some(ms("2024-03-10T10:30Z"))
        );
        // In the autumn overlap local 01:30 takes the earlier (PDT) instant.
        assert_eq!(
            la.local_to_utc(ms("2024-11-03T01:30Z")),
            Some(ms("2024-11-03T08:30Z"))
        );
    }

    #[test]
    fn alignment() {
        let month = gran("MONTH");
        assert!(!month.is_aligned(&Interval::new(
            ms("2000-01-05"),
            ms("2000-01-06T00:00:00.001Z")
        )));
        assert!(!month.is_aligned(&Interval::new(ms("2000-01-05"), ms("2000-02-01"))));
        assert!(month.is_aligned(&Interval::new(ms("2000-01-01"), ms("2000-03-01"))));
        assert!(gran("DAY").is_aligned(&Interval::new(ms("2000-01-05"), ms("2000-01-06"))));
        assert!(gran("ALL").is_aligned(&Interval::eternity()));
        assert!(!gran("ALL").is_aligned(&Interval::new(0, 1)));
        assert!(gran("NONE").is_aligned(&Interval::new(3, 7)));
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

    #[test]
    fn granularity_names_and_descriptions() {
        let names = [
            ("SECOND", "PT1S"),
            ("minute", "PT1M"),
            ("FIVE_MINUTE", "PT5M"),
            ("TEN_MINUTE", "PT10M"),
            ("FIFTEEN_MINUTE", "PT15M"),
            ("THIRTY_MINUTE", "PT30M"),
            ("Hour", "PT1H"),
            ("SIX_HOUR", "PT6H"),
            ("EIGHT_HOUR", "PT8H"),
            ("DAY", "P1D"),
            ("WEEK", "P1W"),
            ("MONTH", "P1M"),
            ("QUARTER", "P3M"),
            ("YEAR", "P1Y"),
        ];
        for (name, period) in names {
            let g = gran(name);
            assert_eq!(Granularity::from_period_str(period), Some(g));
            assert_eq!(g.period().map(|p| p.to_string()).as_deref(), Some(period));
            assert_eq!(g.standard_name(), Some(name.to_ascii_uppercase().as_str()));
        }
        assert_eq!(gran("all"), Granularity::All);
        assert_eq!(gran("ALL TIME"), Granularity::All);
        assert_eq!(gran("all_time"), Granularity::All);
        assert_eq!(gran("NONE"), Granularity::None);
        assert_eq!(Granularity::from_name("invalid_granularity"), None);
        assert_eq!(Granularity::from_period_str("PT0S"), None);
        assert_eq!(
            gran("MONTH").druid_description(),
            "{type=period, period=P1M, timeZone=UTC, origin=null}"
        );
        assert_eq!(gran("ALL").druid_description(), "AllGranularity");
        assert_eq!(gran("NONE").druid_description(), "NoneGranularity");
        assert_eq!(
            gran("DAY").to_json().to_string(),
            r#"{"origin":null,"period":"P1D","timeZone":"UTC","type":"period"}"#
        );
        assert_eq!(gran("ALL").to_json(), serde_json::json!({"type": "all"}));
        assert_eq!(gran("NONE").to_json(), serde_json::json!({"type": "none"}));
        assert_eq!(gran("ALL").bucket(ms("2000-01-01")), Interval::eternity());
        assert_eq!(gran("NONE").bucket(5), Interval::new(5, 6));
        assert_eq!(gran("ALL").bucket_start(0), ETERNITY_START);
    }

    #[test]
    fn intervals_display_parse_and_serde() {
        let i = Interval::new(ms("2000-01-01"), ms("2000-01-02"));
        assert_eq!(
            i.to_string(),
            "2000-01-01T00:00:00.000Z/2000-01-02T00:00:00.000Z"
        );
        assert_eq!(
            Interval::eternity().to_string(),
            "-146136543-09-08T08:23:32.096Z/146140482-04-24T15:36:27.903Z"
        );
        let json = serde_json::to_string(&i).unwrap();
        assert_eq!(
            json,
            r#""2000-01-01T00:00:00.000Z/2000-01-02T00:00:00.000Z""#
        );
        assert_eq!(serde_json::from_str::<Interval>(&json).unwrap(), i);
        let eternity: Interval =
            serde_json::from_value(serde_json::json!(Interval::eternity().to_string())).unwrap();
        assert!(eternity.is_eternity());
        assert_eq!(Interval::parse("2000-01-01/P1D"), Some(i));
        assert_eq!(Interval::parse("P1D/2000-01-02"), Some(i));
        assert_eq!(Interval::parse("2000-01-02/2000-01-01"), None);
        assert!(serde_json::from_str::<Interval>(r#""nonsense""#).is_err());
        let month = Interval::new(ms("2000-01-01"), ms("2000-02-01"));
        assert!(month.contains(&i) && !i.contains(&month));
        assert!(
            month.overlaps(&i) && !i.overlaps(&Interval::new(ms("2000-01-02"), ms("2000-01-03")))
        );
        assert!(i.contains_millis(ms("2000-01-01")) && !i.contains_millis(ms("2000-01-02")));
    }
}
