//! Segment and query granularities: [`Granularity`].

use std::fmt;

use super::interval::Interval;
use super::period::{Period, floor_to_period_in, shift_by_period_in};
use super::{ETERNITY_END, ETERNITY_START, Zone};

/// A Druid segment or query granularity. Segment granularities are UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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
    use crate::time::test_support::{gran, ms};

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
}
