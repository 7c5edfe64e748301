//! Segment pruning from a scan's filters, before any file is opened.
//!
//! - `__time`: comparisons with timestamp literals, `BETWEEN`, `IN`, combined with
//!   `AND`, `OR` and `NOT`, give a set of time ranges; a segment none of whose visible
//!   parts meets it is skipped.
//! - Range shard specs: comparisons, `IN`, `BETWEEN`, `IS [NOT] NULL` and prefix `LIKE`
//!   on the range dimensions give a set of values per dimension; a segment whose
//!   `[start, end)` (lexicographic over the dimensions, NULL first, as Druid sorts)
//!   cannot hold a matching tuple is skipped.
//!
//! Anything else constrains nothing. Both analyses over-approximate the rows a filter
//! keeps, so a segment is skipped only when no row of it can match.

use std::collections::BTreeMap;

use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Like, Operator};
use grove_common::Interval;
use grove_common::types::TIME_COLUMN;

use crate::segment::ShardSpec;

// ---------------------------------------------------------------------------------------
// __time
// ---------------------------------------------------------------------------------------

/// A set of instants: sorted, disjoint, non-adjacent half-open ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TimeSet(Vec<Interval>);

impl TimeSet {
    pub(crate) fn all() -> Self {
        Self(vec![Interval::new(i64::MIN, i64::MAX)])
    }

    fn empty() -> Self {
        Self(Vec::new())
    }

    fn range(start: i64, end: i64) -> Self {
        if start < end {
            Self(vec![Interval::new(start, end)])
        } else {
            Self::empty()
        }
    }

    fn normalized(mut parts: Vec<Interval>) -> Self {
        parts.retain(|i| i.start < i.end);
        parts.sort();
        let mut out: Vec<Interval> = Vec::with_capacity(parts.len());
        for p in parts {
            match out.last_mut() {
                Some(last) if p.start <= last.end => last.end = last.end.max(p.end),
                _ => out.push(p),
            }
        }
        Self(out)
    }

    fn union(&self, other: &Self) -> Self {
        Self::normalized(self.0.iter().chain(&other.0).copied().collect())
    }

    fn intersect(&self, other: &Self) -> Self {
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        while let (Some(a), Some(b)) = (self.0.get(i), other.0.get(j)) {
            let start = a.start.max(b.start);
            let end = a.end.min(b.end);
            if start < end {
                out.push(Interval::new(start, end));
            }
            if a.end < b.end {
                i += 1;
            } else {
                j += 1;
            }
        }
        Self(out)
    }

    fn complement(&self) -> Self {
        let mut out = Vec::new();
        let mut from = i64::MIN;
        for p in &self.0 {
            if from < p.start {
                out.push(Interval::new(from, p.start));
            }
            from = p.end;
        }
        if from < i64::MAX {
            out.push(Interval::new(from, i64::MAX));
        }
        Self(out)
    }

    /// Whether any instant of `parts` is in the set.
    pub(crate) fn meets(&self, parts: &[Interval]) -> bool {
        parts.iter().any(|p| self.0.iter().any(|s| s.overlaps(p)))
    }
}

/// The instants the conjunction of `filters` can keep.
pub(crate) fn time_set(filters: &[Expr]) -> TimeSet {
    filters
        .iter()
        .fold(TimeSet::all(), |acc, f| acc.intersect(&time_of(f).0))
}

/// An over-approximation of the instants `expr` keeps, and whether it is exact (the
/// expression is TRUE exactly there and FALSE, never NULL, elsewhere), which `NOT` needs.
fn time_of(expr: &Expr) -> (TimeSet, bool) {
    let unknown = (TimeSet::all(), false);
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => {
                let (a, ea) = time_of(left);
                let (b, eb) = time_of(right);
                (a.intersect(&b), ea && eb)
            }
            Operator::Or => {
                let (a, ea) = time_of(left);
                let (b, eb) = time_of(right);
                (a.union(&b), ea && eb)
            }
            _ => time_comparison(left, *op, right).map_or(unknown, |s| (s, true)),
        },
        Expr::Not(inner) => match time_of(inner) {
            (s, true) => (s.complement(), true),
            _ => unknown,
        },
        Expr::Between(Between {
            expr,
            negated,
            low,
            high,
        }) => {
            let lo = time_comparison(expr, Operator::GtEq, low);
            let hi = time_comparison(expr, Operator::LtEq, high);
            match (lo, hi) {
                (Some(lo), Some(hi)) => {
                    let s = lo.intersect(&hi);
                    (if *negated { s.complement() } else { s }, true)
                }
                _ => unknown,
            }
        }
        Expr::InList(list) if is_time_column(&list.expr) => {
            let mut points = Vec::with_capacity(list.list.len());
            for item in &list.list {
                match time_comparison(&list.expr, Operator::Eq, item) {
                    Some(s) => points.extend(s.0),
                    None => return unknown,
                }
            }
            let set = TimeSet::normalized(points);
            (if list.negated { set.complement() } else { set }, true)
        }
        Expr::Literal(ScalarValue::Boolean(Some(b)), _) => {
            (if *b { TimeSet::all() } else { TimeSet::empty() }, true)
        }
        _ => unknown,
    }
}

/// `__time <op> literal` (either side) as a set of instants; `None` if it is not one.
fn time_comparison(left: &Expr, op: Operator, right: &Expr) -> Option<TimeSet> {
    let (op, value) = if is_time_column(left) {
        (op, right)
    } else if is_time_column(right) {
        (op.swap()?, left)
    } else {
        return None;
    };
    let Expr::Literal(v, _) = value else {
        return None;
    };
    let (ms, whole) = literal_millis(v)?;
    // `ms` is the literal floored to milliseconds; `whole` says nothing was cut off.
    let after = ms.saturating_add(1);
    Some(match op {
        Operator::Eq if whole => TimeSet::range(ms, after),
        Operator::Eq => TimeSet::empty(),
        Operator::NotEq if whole => TimeSet::range(ms, after).complement(),
        Operator::NotEq => TimeSet::all(),
        Operator::Gt => TimeSet::range(after, i64::MAX),
        Operator::GtEq => TimeSet::range(if whole { ms } else { after }, i64::MAX),
        Operator::Lt => TimeSet::range(i64::MIN, if whole { ms } else { after }),
        Operator::LtEq => TimeSet::range(i64::MIN, after),
        _ => return None,
    })
}

/// `__time`, possibly cast to a timestamp type at least as fine (the cast keeps values).
fn is_time_column(expr: &Expr) -> bool {
    match expr {
        Expr::Column(c) => c.name == TIME_COLUMN,
        Expr::Cast(c) => lossless_time_cast(c.field.data_type()) && is_time_column(&c.expr),
        Expr::TryCast(c) => lossless_time_cast(c.field.data_type()) && is_time_column(&c.expr),
        _ => false,
    }
}

fn lossless_time_cast(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Timestamp(
            TimeUnit::Millisecond | TimeUnit::Microsecond | TimeUnit::Nanosecond,
            _
        )
    )
}

/// A timestamp literal floored to milliseconds, and whether that lost nothing.
fn literal_millis(v: &ScalarValue) -> Option<(i64, bool)> {
    let split = |x: i64, per_ms: i64| (x.div_euclid(per_ms), x.rem_euclid(per_ms) == 0);
    match v {
        ScalarValue::TimestampMillisecond(Some(x), _) => Some((*x, true)),
        ScalarValue::TimestampSecond(Some(x), _) => Some((x.checked_mul(1000)?, true)),
        ScalarValue::TimestampMicrosecond(Some(x), _) => Some(split(*x, 1000)),
        ScalarValue::TimestampNanosecond(Some(x), _) => Some(split(*x, 1_000_000)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Range dimensions
// ---------------------------------------------------------------------------------------

/// A dimension value in Druid's order: NULL first, then strings by their UTF-8 bytes
/// (the order Grove sorts range partitions by).
type Key = Option<String>;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Lower {
    Unbounded,
    Incl(Key),
    Excl(Key),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Upper {
    Unbounded,
    Incl(Key),
    Excl(Key),
}

/// Values between two bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Span {
    lo: Lower,
    hi: Upper,
}

impl Span {
    fn all() -> Self {
        Self {
            lo: Lower::Unbounded,
            hi: Upper::Unbounded,
        }
    }

    fn point(k: Key) -> Self {
        Self {
            lo: Lower::Incl(k.clone()),
            hi: Upper::Incl(k),
        }
    }

    /// Whether the span may hold a value (conservative: two distinct bounds may have no
    /// string between them, which counts as non-empty).
    fn may_be_nonempty(&self) -> bool {
        match (&self.lo, &self.hi) {
            (Lower::Unbounded, _) | (_, Upper::Unbounded) => true,
            (Lower::Incl(a), Upper::Incl(b)) => a <= b,
            (Lower::Incl(a) | Lower::Excl(a), Upper::Incl(b) | Upper::Excl(b)) => a < b,
        }
    }

    fn intersect(&self, other: &Self) -> Self {
        Self {
            lo: max_lower(&self.lo, &other.lo),
            hi: min_upper(&self.hi, &other.hi),
        }
    }

    fn contains(&self, k: &Key) -> bool {
        let above = match &self.lo {
            Lower::Unbounded => true,
            Lower::Incl(a) => k >= a,
            Lower::Excl(a) => k > a,
        };
        let below = match &self.hi {
            Upper::Unbounded => true,
            Upper::Incl(b) => k <= b,
            Upper::Excl(b) => k < b,
        };
        above && below
    }
}

fn max_lower(a: &Lower, b: &Lower) -> Lower {
    let key = |l: &Lower| match l {
        Lower::Unbounded => None,
        Lower::Incl(k) => Some((k.clone(), 0)),
        Lower::Excl(k) => Some((k.clone(), 1)),
    };
    if key(a) >= key(b) {
        a.clone()
    } else {
        b.clone()
    }
}

fn min_upper(a: &Upper, b: &Upper) -> Upper {
    // Unbounded is the largest; at equal keys an exclusive bound is the smaller.
    let key = |u: &Upper| match u {
        Upper::Unbounded => None,
        Upper::Incl(k) => Some((k.clone(), 1)),
        Upper::Excl(k) => Some((k.clone(), 0)),
    };
    match (key(a), key(b)) {
        (None, _) => b.clone(),
        (_, None) => a.clone(),
        (Some(x), Some(y)) => {
            if x <= y {
                a.clone()
            } else {
                b.clone()
            }
        }
    }
}

/// The values a filter may keep for one dimension: a union of spans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Domain(Vec<Span>);

impl Domain {
    fn all() -> Self {
        Self(vec![Span::all()])
    }

    fn of(span: Span) -> Self {
        Self(vec![span])
    }

    fn intersect(&self, other: &Self) -> Self {
        Self(
            self.0
                .iter()
                .flat_map(|a| other.0.iter().map(move |b| a.intersect(b)))
                .filter(Span::may_be_nonempty)
                .collect(),
        )
    }

    fn union(mut self, other: Self) -> Self {
        self.0.extend(other.0);
        self
    }

    fn contains(&self, k: &Key) -> bool {
        self.0.iter().any(|s| s.contains(k))
    }

    /// Whether some value lies strictly between `lo` and `hi` (`None` = unbounded).
    fn meets_open(&self, lo: Option<&Key>, hi: Option<&Key>) -> bool {
        let window = Span {
            lo: lo.map_or(Lower::Unbounded, |k| Lower::Excl(k.clone())),
            hi: hi.map_or(Upper::Unbounded, |k| Upper::Excl(k.clone())),
        };
        self.0
            .iter()
            .any(|s| s.intersect(&window).may_be_nonempty())
    }

    fn may_be_nonempty(&self) -> bool {
        self.0.iter().any(Span::may_be_nonempty)
    }
}

/// Per-dimension value sets implied by filters; a dimension not listed is unconstrained.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Domains(BTreeMap<String, Domain>);

impl Domains {
    fn and(mut self, other: Self) -> Self {
        for (d, dom) in other.0 {
            let merged = match self.0.get(&d) {
                Some(mine) => mine.intersect(&dom),
                None => dom,
            };
            self.0.insert(d, merged);
        }
        self
    }

    fn or(self, mut other: Self) -> Self {
        // A dimension stays constrained only if both sides constrain it.
        Self(
            self.0
                .into_iter()
                .filter_map(|(d, dom)| other.0.remove(&d).map(|o| (d, dom.union(o))))
                .collect(),
        )
    }

    fn get(&self, d: &str) -> Domain {
        self.0.get(d).cloned().unwrap_or_else(Domain::all)
    }

    /// Whether nothing constrains any dimension.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The per-dimension value sets of the conjunction of `filters`.
pub(crate) fn domains(filters: &[Expr]) -> Domains {
    filters
        .iter()
        .fold(Domains::default(), |acc, f| acc.and(domains_of(f)))
}

fn domains_of(expr: &Expr) -> Domains {
    let one = |d: &str, dom: Domain| Domains(BTreeMap::from([(d.to_string(), dom)]));
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => domains_of(left).and(domains_of(right)),
            Operator::Or => domains_of(left).or(domains_of(right)),
            _ => match dim_comparison(left, *op, right) {
                Some((d, dom)) => one(&d, dom),
                None => Domains::default(),
            },
        },
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => match (
            dim_comparison(expr, Operator::GtEq, low),
            dim_comparison(expr, Operator::LtEq, high),
        ) {
            (Some((d, lo)), Some((_, hi))) => one(&d, lo.intersect(&hi)),
            _ => Domains::default(),
        },
        Expr::InList(list) if !list.negated => {
            let Some(d) = dimension(&list.expr) else {
                return Domains::default();
            };
            let mut dom = Domain(Vec::new());
            for item in &list.list {
                match string_literal(item) {
                    // `x IN (.., NULL)` never matches through the NULL.
                    Some(None) => {}
                    Some(Some(s)) => dom = dom.union(Domain::of(Span::point(Some(s)))),
                    None => return Domains::default(),
                }
            }
            one(d, dom)
        }
        Expr::IsNull(e) => match dimension(e) {
            Some(d) => one(d, Domain::of(Span::point(None))),
            None => Domains::default(),
        },
        Expr::IsNotNull(e) => match dimension(e) {
            Some(d) => one(
                d,
                Domain::of(Span {
                    lo: Lower::Excl(None),
                    hi: Upper::Unbounded,
                }),
            ),
            None => Domains::default(),
        },
        Expr::Like(Like {
            negated: false,
            expr,
            pattern,
            escape_char: None,
            case_insensitive: false,
        }) => {
            let (Some(d), Some(Some(p))) = (dimension(expr), string_literal(pattern)) else {
                return Domains::default();
            };
            match like_prefix_span(&p) {
                Some(span) => one(d, Domain::of(span)),
                None => Domains::default(),
            }
        }
        _ => Domains::default(),
    }
}

/// `dim <op> 'literal'` (either side) as a dimension and its values.
fn dim_comparison(left: &Expr, op: Operator, right: &Expr) -> Option<(String, Domain)> {
    let (d, op, value) = match (dimension(left), dimension(right)) {
        (Some(d), None) => (d, op, right),
        (None, Some(d)) => (d, op.swap()?, left),
        _ => return None,
    };
    // A comparison with NULL is never true; leave it to the filter.
    let v = string_literal(value)??;
    let some = Some(v);
    let span = match op {
        Operator::Eq => Span::point(some),
        Operator::Gt => Span {
            lo: Lower::Excl(some),
            hi: Upper::Unbounded,
        },
        Operator::GtEq => Span {
            lo: Lower::Incl(some),
            hi: Upper::Unbounded,
        },
        // Comparisons are never true for NULL: start after it.
        Operator::Lt => Span {
            lo: Lower::Excl(None),
            hi: Upper::Excl(some),
        },
        Operator::LtEq => Span {
            lo: Lower::Excl(None),
            hi: Upper::Incl(some),
        },
        _ => return None,
    };
    Some((d.to_string(), Domain::of(span)))
}

/// The column a (string) dimension expression reads: a column, possibly cast to another
/// string type.
fn dimension(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Column(c) if c.name != TIME_COLUMN => Some(&c.name),
        Expr::Cast(c) if is_string_type(c.field.data_type()) => dimension(&c.expr),
        Expr::TryCast(c) if is_string_type(c.field.data_type()) => dimension(&c.expr),
        _ => None,
    }
}

fn is_string_type(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// A string literal: `Some(None)` for a typed NULL string.
fn string_literal(expr: &Expr) -> Option<Option<String>> {
    match expr {
        Expr::Literal(
            ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v),
            _,
        ) => Some(v.clone()),
        Expr::Literal(ScalarValue::Null, _) => Some(None),
        _ => None,
    }
}

/// `LIKE 'prefix%'` (no other wildcard, no escape) as the span of strings with that
/// prefix.
fn like_prefix_span(pattern: &str) -> Option<Span> {
    let prefix = pattern.strip_suffix('%')?;
    if prefix.is_empty() || prefix.contains(['%', '_', '\\']) {
        return None;
    }
    let hi = match prefix_successor(prefix) {
        Some(next) => Upper::Excl(Some(next)),
        None => Upper::Unbounded,
    };
    Some(Span {
        lo: Lower::Incl(Some(prefix.to_string())),
        hi,
    })
}

/// The smallest string greater than every string starting with `prefix`.
fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32);
        if let Some(c) = next {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Whether a segment with this shard spec may hold rows the domains allow.
pub(crate) fn shard_may_match(spec: &ShardSpec, domains: &Domains) -> bool {
    let ShardSpec::Range {
        dimensions,
        start,
        end,
        ..
    } = spec
    else {
        return true;
    };
    if domains.is_empty() {
        return true;
    }
    let doms: Vec<Domain> = dimensions.iter().map(|d| domains.get(d)).collect();
    if doms.iter().any(|d| !d.may_be_nonempty()) {
        return false;
    }
    tuple_range_may_match(&doms, start.as_deref(), end.as_deref(), 0)
}

/// Whether a tuple whose value at each dimension `i..` lies in `doms[i]` can satisfy
/// `lo <= tuple < hi` lexicographically, given that the dimensions before `i` equal the
/// bounds still listed (`None` = that bound no longer constrains).
fn tuple_range_may_match(
    doms: &[Domain],
    lo: Option<&[Key]>,
    hi: Option<&[Key]>,
    i: usize,
) -> bool {
    // A prefix equal to all of `lo` is >= lo: the lower bound is met. A prefix equal to
    // all of `hi` is >= hi: the (exclusive) upper bound is broken.
    let lo = lo.filter(|l| !l.is_empty());
    if hi.is_some_and(|h| h.is_empty()) {
        return false;
    }
    if lo.is_none() && hi.is_none() {
        return true;
    }
    let all = Domain::all();
    let dom = doms.get(i).unwrap_or(&all);
    let s = lo.and_then(|l| l.first());
    let e = hi.and_then(|h| h.first());
    if let (Some(s), Some(e)) = (s, e)
        && s > e
    {
        return false;
    }
    // The value equals the lower bound's: the lower bound stays tight.
    if let Some(s) = s
        && dom.contains(s)
    {
        let next_hi = match e {
            Some(e) if e == s => hi.map(|h| &h[1..]),
            _ => None,
        };
        if tuple_range_may_match(doms, lo.map(|l| &l[1..]), next_hi, i + 1) {
            return true;
        }
    }
    // The value equals the upper bound's (and not the lower's, handled above).
    if let Some(e) = e
        && s != Some(e)
        && dom.contains(e)
        && tuple_range_may_match(doms, None, hi.map(|h| &h[1..]), i + 1)
    {
        return true;
    }
    // A value strictly between the bounds leaves the rest free.
    dom.meets_open(s, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    fn ts(ms: i64) -> Expr {
        lit(ScalarValue::TimestampMillisecond(Some(ms), None))
    }

    fn ranges(s: &TimeSet) -> Vec<(i64, i64)> {
        s.0.iter().map(|i| (i.start, i.end)).collect()
    }

    #[test]
    fn time_ranges_from_and_or_not_between_in() {
        let t = || col(TIME_COLUMN);
        let and = t().gt_eq(ts(10)).and(t().lt(ts(20)));
        assert_eq!(
            ranges(&time_set(std::slice::from_ref(&and))),
            vec![(10, 20)]
        );
        let or = and.clone().or(t().between(ts(30), ts(40)));
        assert_eq!(ranges(&time_set(&[or])), vec![(10, 20), (30, 41)]);
        let not = Expr::Not(Box::new(and));
        assert_eq!(
            ranges(&time_set(&[not])),
            vec![(i64::MIN, 10), (20, i64::MAX)]
        );
        let inl = t().in_list(vec![ts(5), ts(7)], false);
        assert_eq!(ranges(&time_set(&[inl])), vec![(5, 6), (7, 8)]);
        // Literal on the left; conjunction of several filters.
        let f = [ts(15).lt_eq(t()), t().lt_eq(ts(16))];
        assert_eq!(ranges(&time_set(&f)), vec![(15, 17)]);
        // An unknown conjunct is not negated.
        let unknown = Expr::Not(Box::new(t().gt(ts(0)).and(col("x").eq(lit("a")))));
        assert_eq!(time_set(&[unknown]), TimeSet::all());
    }

    #[test]
    fn sub_millisecond_literals_round_the_safe_way() {
        let t = || col(TIME_COLUMN);
        let nanos = |n: i64| lit(ScalarValue::TimestampNanosecond(Some(n), None));
        // __time < 1000.5 ms keeps 1000.
        assert_eq!(
            ranges(&time_set(&[t().lt(nanos(1_000_500_000))])),
            vec![(i64::MIN, 1001)]
        );
        // __time >= 1000.5 ms starts at 1001.
        assert_eq!(
            ranges(&time_set(&[t().gt_eq(nanos(1_000_500_000))])),
            vec![(1001, i64::MAX)]
        );
        assert!(ranges(&time_set(&[t().eq(nanos(1_000_500_000))])).is_empty());
        // A cast to seconds would truncate: not a plain __time comparison.
        let secs = Expr::Cast(datafusion::logical_expr::Cast::new(
            Box::new(t()),
            DataType::Timestamp(TimeUnit::Second, None),
        ));
        assert_eq!(time_set(&[secs.eq(ts(1000))]), TimeSet::all());
    }

    fn range_spec(start: Option<Vec<Key>>, end: Option<Vec<Key>>) -> ShardSpec {
        ShardSpec::Range {
            dimensions: vec!["a".into(), "b".into()],
            start,
            end,
            partition_num: 0,
            num_core_partitions: 1,
        }
    }

    fn k(s: &str) -> Key {
        Some(s.to_string())
    }

    #[test]
    fn range_specs_prune_on_the_leading_dimensions() {
        // Rows with (a, b) in [("c", "m"), ("f", "b")).
        let spec = range_spec(Some(vec![k("c"), k("m")]), Some(vec![k("f"), k("b")]));
        let may = |f: Expr| shard_may_match(&spec, &domains(&[f]));
        assert!(may(col("a").eq(lit("d"))));
        assert!(may(col("a").eq(lit("c"))));
        assert!(may(col("a").eq(lit("f"))));
        assert!(!may(col("a").eq(lit("b"))));
        assert!(!may(col("a").eq(lit("g"))));
        // a = 'c' needs b >= 'm'; a = 'f' needs b < 'b'.
        assert!(!may(col("a").eq(lit("c")).and(col("b").eq(lit("a")))));
        assert!(may(col("a").eq(lit("c")).and(col("b").eq(lit("z")))));
        assert!(!may(col("a").eq(lit("f")).and(col("b").eq(lit("b")))));
        assert!(may(col("a").eq(lit("f")).and(col("b").eq(lit("a")))));
        assert!(!may(col("a").in_list(vec![lit("a"), lit("z")], false)));
        assert!(may(col("a").in_list(vec![lit("a"), lit("e")], false)));
        assert!(!may(col("a").lt(lit("c"))));
        assert!(may(col("a").lt_eq(lit("c"))));
        assert!(!may(col("a").gt(lit("f"))));
        assert!(may(col("a").between(lit("a"), lit("c"))));
        assert!(!may(col("a").is_null()));
        assert!(may(col("a").like(lit("d%"))));
        assert!(!may(col("a").like(lit("x%"))));
        assert!(!may(col("a").eq(lit("a")).or(col("a").eq(lit("z")))));
        assert!(may(col("a").eq(lit("a")).or(col("b").eq(lit("z")))));
        // Unconstrained leading dimension, constrained second one: no pruning.
        assert!(may(col("b").eq(lit("zzz"))));
    }

    #[test]
    fn nulls_sort_first() {
        // First partition: everything below ("b"), NULL included.
        let first = range_spec(None, Some(vec![k("b"), None]));
        assert!(shard_may_match(&first, &domains(&[col("a").is_null()])));
        // A later partition starting at a non-null value cannot hold NULL.
        let later = range_spec(Some(vec![k("b"), None]), None);
        assert!(!shard_may_match(&later, &domains(&[col("a").is_null()])));
        assert!(shard_may_match(&later, &domains(&[col("a").is_not_null()])));
        // A partition starting at (NULL, "x") holds a = NULL rows with b >= "x".
        let null_start = range_spec(Some(vec![None, k("x")]), Some(vec![k("a"), None]));
        assert!(shard_may_match(
            &null_start,
            &domains(&[col("a").is_null()])
        ));
        assert!(!shard_may_match(
            &null_start,
            &domains(&[col("a").is_null().and(col("b").eq(lit("c")))])
        ));
        // Comparisons never match NULL.
        let nulls_only = range_spec(None, Some(vec![None, k("c")]));
        assert!(!shard_may_match(
            &nulls_only,
            &domains(&[col("a").lt(lit("zz"))])
        ));
    }

    #[test]
    fn prefix_successor_steps_the_last_char() {
        assert_eq!(prefix_successor("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_successor("\u{10FFFF}"), None);
        // Skips the surrogate gap.
        assert_eq!(prefix_successor("\u{D7FF}").as_deref(), Some("\u{E000}"));
    }
}
