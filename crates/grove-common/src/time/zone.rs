//! Time zones: [`Zone`].

use chrono::{DateTime, LocalResult, Offset, TimeZone};
use chrono_tz::Tz;

use super::MILLIS_PER_DAY;
use super::format::{Cursor, push_offset};

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
#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::test_support::ms;

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
}
