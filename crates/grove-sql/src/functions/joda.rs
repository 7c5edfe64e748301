//! Joda-Time `DateTimeFormat` patterns (as used by Druid's `TIME_PARSE` and
//! `TIME_FORMAT`), compiled once and then used to print or parse instants.
//!
//! Supported letters: `G` era, `C` century of era, `Y` year of era, `y` year,
//! `x` week-year, `w` week of week-year, `M` month (`MMM`/`MMMM` as text),
//! `d` day of month, `D` day of year, `e` day of week, `E` day of week text,
//! `a` AM/PM, `h`/`K`/`H`/`k` hours, `m`, `s`, `S` fraction of second,
//! `z` zone abbreviation, `Z` offset (`Z` -0800, `ZZ` -08:00, `ZZZ` zone id),
//! `'quoted'` literals (`''` is a quote); other non-letters are literals.
//! English names only. Parsing follows Joda: text matches case-insensitively,
//! numbers take up to their maximum digits (a year followed directly by another
//! number takes exactly its width), `yy` pivots to the century window of
//! (now - 80, now + 20), and the whole input must be consumed.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use chrono_tz::{OffsetName, Tz};
use grove_common::time::{CivilDateTime, Zone, days_from_civil, is_leap_year, push_offset};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MILLIS_PER_DAY: i64 = 86_400_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Era,
    CenturyOfEra,
    YearOfEra,
    Year,
    WeekYear,
    WeekOfWeekYear,
    Month,
    Day,
    DayOfYear,
    DayOfWeek,
    DayOfWeekText,
    HalfDay,
    ClockHourOfHalfDay,
    HourOfHalfDay,
    Hour,
    ClockHour,
    Minute,
    Second,
    Fraction,
    ZoneName,
    ZoneOffset,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Literal(String),
    Field {
        field: Field,
        count: usize,
        /// Most digits a numeric field consumes when parsing.
        max_digits: usize,
        /// Whether a next numeric token forbids a lenient (longer) parse.
        next_numeric: bool,
    },
}

/// A compiled Joda pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JodaPattern {
    tokens: Vec<Token>,
}

fn field_of(letter: char) -> Option<Field> {
    Some(match letter {
        'G' => Field::Era,
        'C' => Field::CenturyOfEra,
        'Y' => Field::YearOfEra,
        'y' => Field::Year,
        'x' => Field::WeekYear,
        'w' => Field::WeekOfWeekYear,
        'M' => Field::Month,
        'd' => Field::Day,
        'D' => Field::DayOfYear,
        'e' => Field::DayOfWeek,
        'E' => Field::DayOfWeekText,
        'a' => Field::HalfDay,
        'h' => Field::ClockHourOfHalfDay,
        'K' => Field::HourOfHalfDay,
        'H' => Field::Hour,
        'k' => Field::ClockHour,
        'm' => Field::Minute,
        's' => Field::Second,
        'S' => Field::Fraction,
        'z' => Field::ZoneName,
        'Z' => Field::ZoneOffset,
        _ => return None,
    })
}

/// Joda's `isNumericToken`.
fn is_numeric(field: Field, count: usize) -> bool {
    match field {
        Field::Month => count <= 2,
        Field::Era
        | Field::DayOfWeekText
        | Field::HalfDay
        | Field::ZoneName
        | Field::ZoneOffset => false,
        _ => true,
    }
}

enum Raw {
    Literal(String),
    Field(char, usize),
}

impl JodaPattern {
    /// Compiles a pattern; the error names an illegal pattern component.
    pub(crate) fn compile(pattern: &str) -> Result<Self, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut raw: Vec<Raw> = Vec::new();
        let push_literal = |raw: &mut Vec<Raw>, s: &str| match raw.last_mut() {
            Some(Raw::Literal(prev)) => prev.push_str(s),
            _ => raw.push(Raw::Literal(s.to_string())),
        };
        let mut i = 0;
        while let Some(&c) = chars.get(i) {
            if c.is_ascii_alphabetic() {
                let start = i;
                while chars.get(i) == Some(&c) {
                    i += 1;
                }
                raw.push(Raw::Field(c, i - start));
            } else if c == '\'' {
                i += 1;
                let mut lit = String::new();
                if chars.get(i) == Some(&'\'') {
                    lit.push('\'');
                    i += 1;
                } else {
                    loop {
                        match chars.get(i) {
                            None => break,
                            Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                                lit.push('\'');
                                i += 2;
                            }
                            Some('\'') => {
                                i += 1;
                                break;
                            }
                            Some(ch) => {
                                lit.push(*ch);
                                i += 1;
                            }
                        }
                    }
                }
                push_literal(&mut raw, &lit);
            } else {
                push_literal(&mut raw, c.encode_utf8(&mut [0; 4]));
                i += 1;
            }
        }
        let mut tokens = Vec::with_capacity(raw.len());
        for (idx, r) in raw.iter().enumerate() {
            match r {
                Raw::Literal(s) => tokens.push(Token::Literal(s.clone())),
                Raw::Field(letter, count) => {
                    let Some(field) = field_of(*letter) else {
                        return Err(format!(
                            "Illegal pattern component: {}",
                            letter.to_string().repeat(*count)
                        ));
                    };
                    let next_numeric = match raw.get(idx + 1) {
                        Some(Raw::Field(l, n)) => field_of(*l).is_some_and(|f| is_numeric(f, *n)),
                        _ => false,
                    };
                    let natural = match field {
                        Field::Year | Field::YearOfEra | Field::WeekYear if next_numeric => *count,
                        Field::Year | Field::YearOfEra | Field::WeekYear => 9,
                        Field::CenturyOfEra | Field::Fraction => *count,
                        Field::DayOfYear => 3,
                        Field::DayOfWeek => 1,
                        _ => 2,
                    };
                    tokens.push(Token::Field {
                        field,
                        count: *count,
                        max_digits: natural.max(*count),
                        next_numeric,
                    });
                }
            }
        }
        Ok(Self { tokens })
    }

    /// Formats the instant `ms` in `zone`; `None` if the zone offset cannot
    /// be computed (out of chrono's range).
    pub(crate) fn format(&self, ms: i64, zone: &Zone) -> Option<String> {
        let offset = zone.offset_millis(ms)?;
        let c = CivilDateTime::from_millis(ms.checked_add(offset)?);
        let year_of_era = if c.year > 0 { c.year } else { 1 - c.year };
        let mut out = String::new();
        for token in &self.tokens {
            let (field, count) = match token {
                Token::Literal(s) => {
                    out.push_str(s);
                    continue;
                }
                Token::Field { field, count, .. } => (*field, *count),
            };
            match field {
                Field::Era => out.push_str(if c.year > 0 { "AD" } else { "BC" }),
                Field::CenturyOfEra => pad(&mut out, year_of_era / 100, count),
                Field::Year => year(&mut out, c.year, count),
                Field::YearOfEra => year(&mut out, year_of_era, count),
                Field::WeekYear => year(&mut out, c.iso_week().0, count),
                Field::WeekOfWeekYear => pad(&mut out, i64::from(c.iso_week().1), count),
                Field::Month => {
                    let name = MONTHS[(c.month as usize - 1) % 12];
                    match count {
                        1 | 2 => pad(&mut out, i64::from(c.month), count),
                        3 => out.push_str(&name[..3]),
                        _ => out.push_str(name),
                    }
                }
                Field::Day => pad(&mut out, i64::from(c.day), count),
                Field::DayOfYear => pad(&mut out, i64::from(c.day_of_year()), count),
                Field::DayOfWeek => pad(&mut out, i64::from(c.day_of_week()), count),
                Field::DayOfWeekText => {
                    let name = DAYS[(c.day_of_week() as usize - 1) % 7];
                    out.push_str(if count >= 4 { name } else { &name[..3] });
                }
                Field::HalfDay => out.push_str(if c.hour < 12 { "AM" } else { "PM" }),
                Field::ClockHourOfHalfDay => {
                    let h = c.hour % 12;
                    pad(&mut out, i64::from(if h == 0 { 12 } else { h }), count);
                }
                Field::HourOfHalfDay => pad(&mut out, i64::from(c.hour % 12), count),
                Field::Hour => pad(&mut out, i64::from(c.hour), count),
                Field::ClockHour => {
                    pad(
                        &mut out,
                        i64::from(if c.hour == 0 { 24 } else { c.hour }),
                        count,
                    );
                }
                Field::Minute => pad(&mut out, i64::from(c.minute), count),
                Field::Second => pad(&mut out, i64::from(c.second), count),
                Field::Fraction => {
                    let digits = format!("{:03}", c.millis);
                    for i in 0..count {
                        out.push(digits.as_bytes().get(i).map_or('0', |b| char::from(*b)));
                    }
                }
                Field::ZoneName => out.push_str(&zone_name(ms, zone, count)),
                Field::ZoneOffset => match count {
                    1 => push_offset(&mut out, offset, false, false),
                    2 => push_offset(&mut out, offset, false, true),
                    _ => out.push_str(&zone.id()),
                },
            }
        }
        Some(out)
    }

    /// Parses `text` (all of it) to an instant; strings without a parsed
    /// offset or zone are local times in `zone`. `None` if it does not match.
    pub(crate) fn parse(&self, text: &str, zone: &Zone) -> Option<i64> {
        let mut p = Parsed::default();
        let mut pos: usize = 0;
        let bytes = text.as_bytes();
        for token in &self.tokens {
            match token {
                Token::Literal(lit) => {
                    let end = pos.checked_add(lit.len())?;
                    if !bytes.get(pos..end)?.eq_ignore_ascii_case(lit.as_bytes()) {
                        return None;
                    }
                    pos = end;
                }
                Token::Field {
                    field,
                    count,
                    max_digits,
                    next_numeric,
                } => pos = p.parse_field(text, pos, *field, *count, *max_digits, *next_numeric)?,
            }
        }
        if pos != bytes.len() {
            return None;
        }
        p.resolve(zone)
    }
}

fn pad(out: &mut String, value: i64, width: usize) {
    if value < 0 {
        out.push('-');
    }
    out.push_str(&format!("{:0width$}", value.unsigned_abs()));
}

fn year(out: &mut String, value: i64, count: usize) {
    if count == 2 {
        pad(out, value.abs() % 100, 2);
    } else {
        pad(out, value, count);
    }
}

fn zone_name(ms: i64, zone: &Zone, count: usize) -> String {
    match zone {
        Zone::Named(tz) if count < 4 && !zone.is_utc() => DateTime::from_timestamp_millis(ms)
            .and_then(|dt| {
                tz.offset_from_utc_datetime(&dt.naive_utc())
                    .abbreviation()
                    .map(str::to_string)
            })
            .unwrap_or_else(|| zone.id()),
        _ => zone.id(),
    }
}

/// Fields collected while parsing, resolved to an instant at the end.
#[derive(Default)]
struct Parsed {
    bc: Option<bool>,
    century: Option<i64>,
    year: Option<i64>,
    year_of_era: Option<i64>,
    week_year: Option<i64>,
    week: Option<i64>,
    month: Option<i64>,
    day: Option<i64>,
    day_of_year: Option<i64>,
    day_of_week: Option<i64>,
    pm: Option<bool>,
    hour: Option<i64>,
    hour_of_half_day: Option<i64>,
    minute: Option<i64>,
    second: Option<i64>,
    millis: Option<i64>,
    offset: Option<i64>,
    zone: Option<Zone>,
}

/// Parses up to `max` digits at `pos`, optionally signed: `(value, digits, end)`.
fn number(text: &[u8], pos: usize, max: usize, signed: bool) -> Option<(i64, usize, usize)> {
    let mut i = pos;
    let negative = signed && text.get(i) == Some(&b'-');
    if signed && matches!(text.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    let start = i;
    let mut value: i64 = 0;
    while i - start < max {
        match text.get(i) {
            Some(b @ b'0'..=b'9') => {
                value = value.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
                i += 1;
            }
            _ => break,
        }
    }
    let digits = i - start;
    (digits > 0).then_some((if negative { -value } else { value }, digits, i))
}

/// Longest case-insensitive match of `candidates` at `pos`: `(index, end)`.
fn text_match(text: &[u8], pos: usize, candidates: &[&str]) -> Option<(usize, usize)> {
    candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            text.get(pos..pos + c.len())
                .is_some_and(|t| t.eq_ignore_ascii_case(c.as_bytes()))
        })
        .max_by_key(|(_, c)| c.len())
        .map(|(i, c)| (i, pos + c.len()))
}

fn in_range(value: i64, lo: i64, hi: i64) -> Option<i64> {
    (lo..=hi).contains(&value).then_some(value)
}

/// Joda's two-digit year pivot: the century window (now - 80, now + 20).
fn pivot_two_digit_year(yy: i64) -> i64 {
    let low = i64::from(Utc::now().year()) - 80;
    let t = low.rem_euclid(100);
    yy + low + if yy < t { 100 } else { 0 } - t
}

impl Parsed {
    fn parse_field(
        &mut self,
        text: &str,
        pos: usize,
        field: Field,
        count: usize,
        max: usize,
        next_numeric: bool,
    ) -> Option<usize> {
        let b = text.as_bytes();
        match field {
            Field::Era => {
                let (i, end) = text_match(b, pos, &["BC", "AD", "BCE", "CE"])?;
                self.bc = Some(i % 2 == 0);
                Some(end)
            }
            Field::Year | Field::YearOfEra | Field::WeekYear => {
                let signed = field != Field::YearOfEra;
                let (v, end) = if count == 2 {
                    let max = if next_numeric { 2 } else { 9 };
                    let has_sign = matches!(b.get(pos), Some(b'-' | b'+'));
                    let (v, digits, end) = number(b, pos, max, !next_numeric)?;
                    if digits == 2 && !has_sign {
                        (pivot_two_digit_year(v), end)
                    } else if next_numeric {
                        return None;
                    } else {
                        (v, end)
                    }
                } else {
                    let (v, _, end) = number(b, pos, max, signed)?;
                    (v, end)
                };
                match field {
                    Field::Year => self.year = Some(v),
                    Field::YearOfEra => self.year_of_era = Some(in_range(v, 1, i64::MAX)?),
                    _ => self.week_year = Some(v),
                }
                Some(end)
            }
            Field::Month if count >= 3 => {
                let mut names: Vec<&str> = MONTHS.to_vec();
                names.extend(MONTHS.iter().map(|m| &m[..3]));
                let (i, end) = text_match(b, pos, &names)?;
                self.month = Some((i % 12) as i64 + 1);
                Some(end)
            }
            Field::DayOfWeekText => {
                let mut names: Vec<&str> = DAYS.to_vec();
                names.extend(DAYS.iter().map(|d| &d[..3]));
                let (i, end) = text_match(b, pos, &names)?;
                self.day_of_week = Some((i % 7) as i64 + 1);
                Some(end)
            }
            Field::HalfDay => {
                let (i, end) = text_match(b, pos, &["AM", "PM"])?;
                self.pm = Some(i == 1);
                Some(end)
            }
            Field::ZoneOffset if count <= 2 => {
                if matches!(b.get(pos), Some(b'Z' | b'z')) {
                    self.offset = Some(0);
                    return Some(pos + 1);
                }
                let sign = match b.get(pos) {
                    Some(b'+') => 1,
                    Some(b'-') => -1,
                    _ => return None,
                };
                let (h, digits, mut end) = number(b, pos + 1, 2, false)?;
                if digits != 2 || h > 23 {
                    return None;
                }
                if b.get(end) == Some(&b':') {
                    end += 1;
                }
                let (m, digits, end) = number(b, end, 2, false)?;
                if digits != 2 || m > 59 {
                    return None;
                }
                self.offset = Some(sign * (h * 3_600_000 + m * 60_000));
                Some(end)
            }
            Field::ZoneOffset => {
                let len = b
                    .get(pos..)
                    .unwrap_or_default()
                    .iter()
                    .take_while(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, b'/' | b'_' | b'+' | b'-')
                    })
                    .count();
                (1..=len).rev().find_map(|n| {
                    let zone = Zone::parse(text.get(pos..pos + n)?)?;
                    self.zone = Some(zone);
                    Some(pos + n)
                })
            }
            Field::ZoneName => {
                const NAMES: [(&str, Tz); 11] = [
                    ("UT", Tz::UTC),
                    ("UTC", Tz::UTC),
                    ("GMT", Tz::UTC),
                    ("EST", Tz::America__New_York),
                    ("EDT", Tz::America__New_York),
                    ("CST", Tz::America__Chicago),
                    ("CDT", Tz::America__Chicago),
                    ("MST", Tz::America__Denver),
                    ("MDT", Tz::America__Denver),
                    ("PST", Tz::America__Los_Angeles),
                    ("PDT", Tz::America__Los_Angeles),
                ];
                let names: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
                let (i, end) = text_match(b, pos, &names)?;
                self.zone = Some(Zone::Named(NAMES[i].1));
                Some(end)
            }
            Field::Fraction => {
                let (v, digits, end) = number(b, pos, max, false)?;
                let millis = match digits {
                    1 => v * 100,
                    2 => v * 10,
                    n => v / 10_i64.checked_pow(u32::try_from(n - 3).ok()?)?,
                };
                self.millis = Some(millis);
                Some(end)
            }
            _ => {
                let (v, _, end) = number(b, pos, max, false)?;
                match field {
                    Field::CenturyOfEra => self.century = Some(v),
                    Field::WeekOfWeekYear => self.week = Some(in_range(v, 1, 53)?),
                    Field::Month => self.month = Some(in_range(v, 1, 12)?),
                    Field::Day => self.day = Some(in_range(v, 1, 31)?),
                    Field::DayOfYear => self.day_of_year = Some(in_range(v, 1, 366)?),
                    Field::DayOfWeek => self.day_of_week = Some(in_range(v, 1, 7)?),
                    Field::ClockHourOfHalfDay => {
                        self.hour_of_half_day = Some(in_range(v, 1, 12)? % 12);
                    }
                    Field::HourOfHalfDay => self.hour_of_half_day = Some(in_range(v, 0, 11)?),
                    Field::Hour => self.hour = Some(in_range(v, 0, 23)?),
                    Field::ClockHour => self.hour = Some(in_range(v, 1, 24)? % 24),
                    Field::Minute => self.minute = Some(in_range(v, 0, 59)?),
                    Field::Second => self.second = Some(in_range(v, 0, 59)?),
                    _ => return None,
                }
                Some(end)
            }
        }
    }

    /// Joda's field resolution on top of 1970-01-01T00:00 local time.
    fn resolve(&self, zone: &Zone) -> Option<i64> {
        let year = match (self.year, self.year_of_era, self.century) {
            (Some(y), _, _) => y,
            (None, Some(yoe), _) if self.bc == Some(true) => 1 - yoe,
            (None, Some(yoe), _) => yoe,
            (None, None, Some(c)) => c.checked_mul(100)?.checked_add(70)?,
            (None, None, None) => 1970,
        };
        let mut days = if self.week.is_some() || self.week_year.is_some() {
            let week_year = self.week_year.unwrap_or(year);
            let jan4 = days_from_civil(week_year, 1, 4)?;
            let dow_jan4 =
                CivilDateTime::from_millis(jan4.checked_mul(MILLIS_PER_DAY)?).day_of_week();
            let week1 = jan4 - i64::from(dow_jan4) + 1;
            // Joda starts from 1970-01-01, a Thursday.
            let dow = self.day_of_week.unwrap_or(4);
            week1 + (self.week.unwrap_or(1) - 1) * 7 + dow - 1
        } else if let Some(doy) = self.day_of_year {
            let len = if is_leap_year(year) { 366 } else { 365 };
            days_from_civil(year, 1, 1)? + in_range(doy, 1, len)? - 1
        } else {
            let month = u32::try_from(self.month.unwrap_or(1)).ok()?;
            let day = u32::try_from(self.day.unwrap_or(1)).ok()?;
            days_from_civil(year, month, day)?
        };
        if let (Some(dow), None) = (self.day_of_week, self.week) {
            let current =
                CivilDateTime::from_millis(days.checked_mul(MILLIS_PER_DAY)?).day_of_week();
            days += dow - i64::from(current);
        }
        let hour = match (self.hour, self.hour_of_half_day, self.pm) {
            (Some(h), _, _) => h,
            (None, Some(h), pm) => h + if pm == Some(true) { 12 } else { 0 },
            (None, None, Some(true)) => 12,
            (None, None, _) => 0,
        };
        let tod = hour * 3_600_000
            + self.minute.unwrap_or(0) * 60_000
            + self.second.unwrap_or(0) * 1_000
            + self.millis.unwrap_or(0);
        let local = days.checked_mul(MILLIS_PER_DAY)?.checked_add(tod)?;
        match (self.offset, &self.zone) {
            (Some(offset), _) => local.checked_sub(offset),
            (None, Some(parsed)) => parsed.local_to_utc(local),
            (None, None) => zone.local_to_utc(local),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grove_common::time::{format_millis, parse_iso_millis};

    fn parse(pattern: &str, text: &str, zone: &str) -> Option<String> {
        let zone = Zone::parse(zone).unwrap();
        JodaPattern::compile(pattern)
            .unwrap()
            .parse(text, &zone)
            .map(format_millis)
    }

    fn format(pattern: &str, ts: &str, zone: &str) -> String {
        let zone = Zone::parse(zone).unwrap();
        let ms = parse_iso_millis(ts).unwrap();
        JodaPattern::compile(pattern)
            .unwrap()
            .format(ms, &zone)
            .unwrap()
    }

    #[test]
    fn formats_common_patterns() {
        let ts = "2000-01-02T03:04:05.006Z";
        assert_eq!(
            format("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'", ts, "UTC"),
            "2000-01-02T03:04:05.006Z"
        );
        assert_eq!(
            format("yyyy-MM-dd HH:mm:ss ZZ", ts, "America/Los_Angeles"),
            "2000-01-01 19:04:05 -08:00"
        );
        assert_eq!(
            format("Z|ZZ|ZZZ|z", ts, "America/Los_Angeles"),
            "-0800|-08:00|America/Los_Angeles|PST"
        );
        assert_eq!(format("Z|ZZ|ZZZ|z", ts, "UTC"), "+0000|+00:00|UTC|UTC");
        assert_eq!(
            format("EEE, d MMM yy h:mm a", ts, "UTC"),
            "Sun, 2 Jan 00 3:04 AM"
        );
        assert_eq!(format("EEEE MMMM dd", ts, "+05:30"), "Sunday January 02");
        assert_eq!(
            format("D w e xxxx G C S SS", ts, "UTC"),
            "2 52 7 1999 AD 20 0 00"
        );
        assert_eq!(
            format("''yyyy'' 'o''clock' k K", "2000-06-01T00:30Z", "UTC"),
            "'2000' o'clock 24 0"
        );
        assert_eq!(
            format("yyyy-MM-dd", "1969-12-31T23:59:59.999Z", "UTC"),
            "1969-12-31"
        );
        assert_eq!(format("yyyy G", "-0001-01-01", "UTC"), "-0001 BC");
    }

    #[test]
    fn parses_common_patterns() {
        let utc = |s: &str| Some(s.to_string());
        assert_eq!(
            parse("yyyy-MM-dd HH:mm:ss", "2000-01-02 03:04:05", "UTC"),
            utc("2000-01-02T03:04:05.000Z")
        );
        assert_eq!(
            parse("yyyyMMddHHmmss", "20000102030405", "UTC"),
            utc("2000-01-02T03:04:05.000Z")
        );
        // Like Joda, `dd` also accepts a single digit.
        assert_eq!(
            parse("dd/MM/yyyy", "2/1/2000", "UTC"),
            utc("2000-01-02T00:00:00.000Z")
        );
        assert_eq!(
            parse("d/M/yyyy", "2/1/2000", "UTC"),
            utc("2000-01-02T00:00:00.000Z")
        );
        assert_eq!(
            parse("MMM d, yyyy h:mm a", "jan 2, 2000 3:04 pm", "UTC"),
            utc("2000-01-02T15:04:00.000Z")
        );
        assert_eq!(
            parse("MMMM d yyyy", "February 29 2000", "UTC"),
            utc("2000-02-29T00:00:00.000Z")
        );
        assert_eq!(parse("MMMM d yyyy", "February 30 2000", "UTC"), None);
        assert_eq!(
            parse(
                "yyyy-MM-dd HH:mm",
                "2000-01-02 03:04",
                "America/Los_Angeles"
            ),
            utc("2000-01-02T11:04:00.000Z")
        );
        assert_eq!(
            parse(
                "yyyy-MM-dd HH:mm Z",
                "2000-01-02 03:04 +0100",
                "America/Los_Angeles"
            ),
            utc("2000-01-02T02:04:00.000Z")
        );
        assert_eq!(
            parse("yyyy-MM-dd HH:mm ZZ", "2000-01-02 03:04 -05:00", "UTC"),
            utc("2000-01-02T08:04:00.000Z")
        );
        assert_eq!(
            parse("yyyy-MM-dd HH:mm z", "2000-07-02 03:04 PDT", "UTC"),
            utc("2000-07-02T10:04:00.000Z")
        );
        assert_eq!(
            parse(
                "yyyy-MM-dd HH:mm ZZZ",
                "2000-01-02 03:04 Asia/Kolkata",
                "UTC"
            ),
            utc("2000-01-01T21:34:00.000Z")
        );
        assert_eq!(
            parse("HH:mm:ss.SSS", "03:04:05.6", "UTC"),
            utc("1970-01-01T03:04:05.600Z")
        );
        assert_eq!(
            parse("dd-MM-yy", "02-01-99", "UTC"),
            utc("1999-01-02T00:00:00.000Z")
        );
        assert_eq!(
            parse("dd-MM-yy", "02-01-05", "UTC"),
            utc("2005-01-02T00:00:00.000Z")
        );
        assert_eq!(
            parse("yyyy-MM-dd'T'HH:mm:ss'Z'", "2000-01-02t03:04:05z", "UTC"),
            utc("2000-01-02T03:04:05.000Z")
        );
        assert_eq!(
            parse("yyyy-MM-dd", "1969-12-31", "UTC"),
            utc("1969-12-31T00:00:00.000Z")
        );
        assert_eq!(parse("yyyy-MM-dd", "2000-01-02 extra", "UTC"), None);
        assert_eq!(parse("yyyy-MM-dd", "2000-13-02", "UTC"), None);
        assert_eq!(parse("HH:mm", "24:00", "UTC"), None);
    }

    #[test]
    fn rejects_illegal_patterns() {
        assert!(JodaPattern::compile("yyyy-MM-dd qq").is_err());
        assert!(JodaPattern::compile("'unterminated").is_ok());
    }
}
