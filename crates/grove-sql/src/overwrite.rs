//! `REPLACE ... OVERWRITE WHERE <condition>`: turns a condition on `__time` into the set
//! of time intervals to replace, and checks them against the PARTITIONED BY granularity,
//! with Druid's messages.

use datafusion::common::{DataFusionError, Result, plan_err};
use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr as SqlExpr, UnaryOperator, Value};
use grove_common::time::{ETERNITY_END, ETERNITY_START, Zone, parse_iso_millis_in};
use grove_common::{Granularity, Interval};

/// A sorted set of disjoint, non-adjacent intervals.
type IntervalSet = Vec<Interval>;

/// Converts an OVERWRITE WHERE condition into intervals aligned with `granularity`,
/// reading `TIMESTAMP` literals as UTC.
pub fn overwrite_intervals(cond: &SqlExpr, granularity: &Granularity) -> Result<Vec<Interval>> {
    overwrite_intervals_in(cond, granularity, &Zone::UTC)
}

/// Like [`overwrite_intervals`], reading `TIMESTAMP` literals in `zone` (Druid's
/// `sqlTimeZone`).
pub fn overwrite_intervals_in(
    cond: &SqlExpr,
    granularity: &Granularity,
    zone: &Zone,
) -> Result<Vec<Interval>> {
    let set = to_set(cond, cond, zone)?;
    if set.is_empty() {
        return plan_err!(
            "The OVERWRITE WHERE clause [{cond}] produced no time intervals, are the bounds overly restrictive?"
        );
    }
    for interval in &set {
        if !is_aligned(granularity, interval) {
            return plan_err!(
                "OVERWRITE WHERE clause identified interval [{interval}] which is not aligned \
                 with PARTITIONED BY granularity [{}]",
                granularity.druid_description()
            );
        }
    }
    Ok(set)
}

/// Like [`Granularity::is_aligned`], but an open end (eternity's start or end) counts as
/// aligned, so `__time >= TIMESTAMP '2000-01-01'` can overwrite everything after a day.
fn is_aligned(granularity: &Granularity, interval: &Interval) -> bool {
    if *granularity == Granularity::All || interval.is_eternity() {
        return granularity.is_aligned(interval);
    }
    let start_ok = interval.start == ETERNITY_START
        || granularity.bucket_start(interval.start) == interval.start;
    let end_ok =
        interval.end == ETERNITY_END || granularity.bucket_start(interval.end) == interval.end;
    start_ok && end_ok
}

fn unsupported_shape(whole: &SqlExpr) -> DataFusionError {
    DataFusionError::Plan(format!(
        "Invalid OVERWRITE WHERE clause [{whole}]: expected clause including AND, OR, NOT, >, <, \
         >=, <= OR BETWEEN operators"
    ))
}

fn to_set(expr: &SqlExpr, whole: &SqlExpr, zone: &Zone) -> Result<IntervalSet> {
    match expr {
        SqlExpr::Nested(inner) => to_set(inner, whole, zone),
        SqlExpr::BinaryOp { left, op, right } => match op {
            BinaryOperator::And => Ok(intersect(
                &to_set(left, whole, zone)?,
                &to_set(right, whole, zone)?,
            )),
            BinaryOperator::Or => Ok(union(
                to_set(left, whole, zone)?,
                to_set(right, whole, zone)?,
            )),
            BinaryOperator::Gt
            | BinaryOperator::GtEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Eq => comparison(left, op, right, whole, zone),
            other => plan_err!(
                "Invalid OVERWRITE WHERE clause [{whole}]: Unsupported operation [{other}] in \
                 OVERWRITE WHERE clause."
            ),
        },
        SqlExpr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => Ok(complement(&to_set(expr, whole, zone)?)),
        SqlExpr::Between {
            expr,
            negated,
            low,
            high,
        } => {
            check_time_column(expr)?;
            let lo = literal_millis(low, whole, zone)?;
            let hi = literal_millis(high, whole, zone)?;
            let set = range(lo, hi.saturating_add(1));
            Ok(if *negated { complement(&set) } else { set })
        }
        SqlExpr::Like { .. } | SqlExpr::ILike { .. } => plan_err!(
            "Invalid OVERWRITE WHERE clause [{whole}]: Unsupported operation [LIKE] in OVERWRITE \
             WHERE clause."
        ),
        SqlExpr::InList { .. } => plan_err!(
            "Invalid OVERWRITE WHERE clause [{whole}]: Unsupported operation [IN] in OVERWRITE \
             WHERE clause."
        ),
        _ => Err(unsupported_shape(whole)),
    }
}

fn check_time_column(expr: &SqlExpr) -> Result<()> {
    match expr {
        SqlExpr::Identifier(id) if id.value == "__time" => Ok(()),
        SqlExpr::CompoundIdentifier(parts) if parts.last().is_some_and(|p| p.value == "__time") => {
            Ok(())
        }
        SqlExpr::Nested(inner) => check_time_column(inner),
        other => plan_err!(
            "OVERWRITE WHERE clause only supports filtering on the __time column, got [{other}]"
        ),
    }
}

fn is_time_column(expr: &SqlExpr) -> bool {
    check_time_column(expr).is_ok()
}

fn comparison(
    left: &SqlExpr,
    op: &BinaryOperator,
    right: &SqlExpr,
    whole: &SqlExpr,
    zone: &Zone,
) -> Result<IntervalSet> {
    // Normalise to `__time <op> literal`.
    let (op, lit) = if is_time_column(left) {
        (op.clone(), right)
    } else if is_time_column(right) {
        let flipped = match op {
            BinaryOperator::Gt => BinaryOperator::Lt,
            BinaryOperator::GtEq => BinaryOperator::LtEq,
            BinaryOperator::Lt => BinaryOperator::Gt,
            BinaryOperator::LtEq => BinaryOperator::GtEq,
            other => other.clone(),
        };
        (flipped, left)
    } else {
        check_time_column(left)?;
        unreachable_shape(whole)?
    };
    let t = literal_millis(lit, whole, zone)?;
    Ok(match op {
        BinaryOperator::Gt => range(t.saturating_add(1), ETERNITY_END),
        BinaryOperator::GtEq => range(t, ETERNITY_END),
        BinaryOperator::Lt => range(ETERNITY_START, t),
        BinaryOperator::LtEq => range(ETERNITY_START, t.saturating_add(1)),
        _ => range(t, t.saturating_add(1)),
    })
}

fn unreachable_shape<T>(whole: &SqlExpr) -> Result<T> {
    Err(unsupported_shape(whole))
}

/// A `TIMESTAMP '...'` literal (or a plain string literal) as epoch milliseconds.
fn literal_millis(expr: &SqlExpr, whole: &SqlExpr, zone: &Zone) -> Result<i64> {
    let text = match expr {
        SqlExpr::TypedString(ts) => match &ts.value.value {
            Value::SingleQuotedString(s) => s.clone(),
            _ => return Err(unsupported_shape(whole)),
        },
        SqlExpr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => s.clone(),
            _ => return Err(unsupported_shape(whole)),
        },
        SqlExpr::Nested(inner) => return literal_millis(inner, whole, zone),
        _ => return Err(unsupported_shape(whole)),
    };
    parse_iso_millis_in(&text, zone).ok_or_else(|| {
        DataFusionError::Plan(format!(
            "Invalid OVERWRITE WHERE clause [{whole}]: cannot parse timestamp [{text}]"
        ))
    })
}

fn range(start: i64, end: i64) -> IntervalSet {
    if start < end {
        vec![Interval::new(start, end)]
    } else {
        vec![]
    }
}

fn union(mut a: IntervalSet, b: IntervalSet) -> IntervalSet {
    a.extend(b);
    a.sort();
    let mut out: IntervalSet = Vec::with_capacity(a.len());
    for i in a {
        match out.last_mut() {
            Some(last) if i.start <= last.end => last.end = last.end.max(i.end),
            _ => out.push(i),
        }
    }
    out
}

fn intersect(a: &IntervalSet, b: &IntervalSet) -> IntervalSet {
    let mut out = Vec::new();
    for x in a {
        for y in b {
            let start = x.start.max(y.start);
            let end = x.end.min(y.end);
            if start < end {
                out.push(Interval::new(start, end));
            }
        }
    }
    union(out, vec![])
}

fn complement(a: &IntervalSet) -> IntervalSet {
    let mut out = Vec::new();
    let mut cursor = ETERNITY_START;
    for i in a {
        if i.start > cursor {
            out.push(Interval::new(cursor, i.start));
        }
        cursor = cursor.max(i.end);
    }
    if cursor < ETERNITY_END {
        out.push(Interval::new(cursor, ETERNITY_END));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn intervals(cond: &str, gran: &str) -> Result<Vec<String>> {
        let expr = Parser::new(&GenericDialect {})
            .try_with_sql(cond)
            .unwrap()
            .parse_expr()
            .unwrap();
        let g = Granularity::from_name(gran).unwrap();
        overwrite_intervals(&expr, &g).map(|v| v.iter().map(|i| i.to_string()).collect())
    }

    #[test]
    fn and_range() {
        assert_eq!(
            intervals(
                "__time >= TIMESTAMP '2000-01-01' AND __time < TIMESTAMP '2000-01-03'",
                "DAY"
            )
            .unwrap(),
            vec!["2000-01-01T00:00:00.000Z/2000-01-03T00:00:00.000Z"]
        );
    }

    #[test]
    fn or_between_and_not() {
        let got = intervals(
            "(__time >= TIMESTAMP '2000-01-01' AND __time < TIMESTAMP '2000-01-02') OR \
             (__time >= TIMESTAMP '2000-02-01' AND __time < TIMESTAMP '2000-02-02')",
            "DAY",
        )
        .unwrap();
        assert_eq!(got.len(), 2);
        let got = intervals(
            "__time BETWEEN TIMESTAMP '2000-01-01' AND TIMESTAMP '2000-01-01 23:59:59.999'",
            "DAY",
        );
        assert_eq!(
            got.unwrap(),
            vec!["2000-01-01T00:00:00.000Z/2000-01-02T00:00:00.000Z"]
        );
        let got = intervals("NOT __time < TIMESTAMP '2000-01-01'", "DAY").unwrap();
        assert!(got[0].starts_with("2000-01-01T00:00:00.000Z/"));
    }

    #[test]
    fn druid_errors() {
        let e = intervals(
            "__time >= TIMESTAMP '2000-01-05' AND __time <= TIMESTAMP '2000-01-06'",
            "MONTH",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(
                "OVERWRITE WHERE clause identified interval \
                 [2000-01-05T00:00:00.000Z/2000-01-06T00:00:00.001Z] which is not aligned with \
                 PARTITIONED BY granularity [{type=period, period=P1M, timeZone=UTC, origin=null}]"
            ),
            "{e}"
        );
        let e = intervals("__time >= TIMESTAMP '2000-01-01'", "ALL")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[AllGranularity]"), "{e}");
        let e = intervals(
            "__time >= TIMESTAMP '2000-01-02' AND __time < TIMESTAMP '2000-01-01'",
            "DAY",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("produced no time intervals"), "{e}");
        let e = intervals("dim1 > TIMESTAMP '2000-01-01'", "DAY")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("only supports filtering on the __time column, got [dim1]"),
            "{e}"
        );
        let e = intervals("__time LIKE '20__-02-01'", "DAY")
            .unwrap_err()
            .to_string();
        assert!(e.contains("Unsupported operation [LIKE]"), "{e}");
        let e = intervals("TRUE", "DAY").unwrap_err().to_string();
        assert!(
            e.contains("Invalid OVERWRITE WHERE clause [true]: expected clause"),
            "{e}"
        );
    }
}
