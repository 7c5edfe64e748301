//! Formatting and parsing instants.

use std::fmt::Write as _;

use super::civil::{CivilDateTime, days_from_civil, days_from_iso_week, is_leap_year};
use super::{MILLIS_PER_DAY, MILLIS_PER_HOUR, MILLIS_PER_MINUTE, MILLIS_PER_SECOND, Zone};

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
pub(super) struct Cursor<'a> {
    bytes: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(s: &'a str) -> Self {
        Self {
            bytes: s.as_bytes(),
            pos: 0,
        }
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    pub(super) fn done(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// Consumes `c` (ASCII case-insensitively) if it is next.
    pub(super) fn eat(&mut self, c: u8) -> bool {
        if self.peek().is_some_and(|b| b.eq_ignore_ascii_case(&c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Consumes between `min` and `max` digits greedily: `(value, count)`.
    pub(super) fn digits(&mut self, min: usize, max: usize) -> Option<(i64, usize)> {
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
    pub(super) fn fraction_millis(&mut self) -> Option<i64> {
        let (value, count) = self.digits(1, 9)?;
        let scale = 10_i64.pow(9 - count as u32);
        Some(value * scale / 1_000_000)
    }

    /// Consumes an offset after its sign: `HH`, `HH:MM`, `HHMM`, `HH:MM:SS`.
    pub(super) fn offset_body(&mut self) -> Option<i64> {
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
#[cfg(test)]
mod tests {
    use chrono_tz::Tz;

    use super::*;
    use crate::time::test_support::ms;
    use crate::time::{ETERNITY_END, ETERNITY_START};

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
}
