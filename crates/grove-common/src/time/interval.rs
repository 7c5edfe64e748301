//! Intervals: [`Interval`].

use std::fmt;

use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::format::{format_millis, parse_iso_millis};
use super::period::{Period, shift_by_period};
use super::{ETERNITY_END, ETERNITY_START};

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
#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::test_support::ms;

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
