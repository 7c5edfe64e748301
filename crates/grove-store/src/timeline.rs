//! Druid's `VersionedIntervalTimeline` over a datasource's used segments.
//!
//! At every instant the newest version wins among the (interval, version) groups that
//! cover it, counting only groups whose core partition set is complete. An older segment
//! stays visible wherever nothing newer covers it: a newer version over part of its
//! interval hides that part only (partial overshadowing).
//!
//! Core partitions: a group's core size is the largest `partitions` (numbered) or
//! `numCorePartitions` (range) among its segments; the group is complete when partitions
//! `0..core` are all used. Appended segments (`partitions: 0`) are not core, so a group
//! of appended segments only is always complete, as in Druid. Grove publishes a
//! statement's segments in one transaction, so an incomplete group only arises when
//! segments were marked unused by hand; it then neither shows nor hides anything.
//!
//! Versions compare as instants (they are ISO timestamps), then as strings. Two groups
//! with the same version and overlapping intervals (which Grove never publishes) are both
//! visible where they overlap.

use std::collections::{BTreeMap, BTreeSet};

use grove_common::Interval;
use grove_common::time::parse_iso_millis;

use crate::segment::{DataSegment, ShardSpec};

/// A used segment with the parts of its interval where it is visible.
#[derive(Clone, Debug, PartialEq)]
pub struct VisibleSegment {
    /// The segment.
    pub segment: DataSegment,
    /// Where it is visible: sorted, disjoint, non-adjacent parts of its interval, never
    /// empty.
    pub visible: Vec<Interval>,
}

impl VisibleSegment {
    /// Whether a newer version hides part of the segment.
    pub fn is_partial(&self) -> bool {
        self.visible.as_slice() != [self.segment.interval]
    }
}

/// The version order: instants first (versions are ISO timestamps), then the text.
pub(crate) fn version_key(v: &str) -> (i64, &str) {
    (parse_iso_millis(v).unwrap_or(i64::MIN), v)
}

/// The used segments that are visible somewhere, with their visible parts, in the order
/// given. Unused segments and segments of incomplete core partition sets are left out.
pub fn timeline(used: Vec<DataSegment>) -> Vec<VisibleSegment> {
    let visible = visible_parts(&used);
    used.into_iter()
        .zip(visible)
        .filter_map(|(segment, visible)| match visible {
            Some(visible) if !visible.is_empty() => Some(VisibleSegment { segment, visible }),
            _ => None,
        })
        .collect()
}

/// The visible parts of each segment: `None` for a segment that does not take part
/// (unused, empty interval, incomplete core partition set), an empty list for one that
/// newer versions overshadow entirely.
pub(crate) fn visible_parts(segments: &[DataSegment]) -> Vec<Option<Vec<Interval>>> {
    let mut groups: BTreeMap<(Interval, &str), Vec<usize>> = BTreeMap::new();
    for (i, s) in segments.iter().enumerate() {
        if s.used && s.interval.start < s.interval.end {
            groups
                .entry((s.interval, s.version.as_str()))
                .or_default()
                .push(i);
        }
    }
    let groups: Vec<(Interval, &str, Vec<usize>)> = groups
        .into_iter()
        .filter(|(_, members)| core_complete(segments, members))
        .map(|((interval, version), members)| (interval, version, members))
        .collect();

    let mut bounds: Vec<i64> = groups
        .iter()
        .flat_map(|(i, _, _)| [i.start, i.end])
        .collect();
    bounds.sort_unstable();
    bounds.dedup();
    let mut starts: Vec<usize> = (0..groups.len()).collect();
    starts.sort_by_key(|&g| groups[g].0.start);
    let mut ends = starts.clone();
    ends.sort_by_key(|&g| groups[g].0.end);

    let mut group_visible: Vec<Vec<Interval>> = vec![Vec::new(); groups.len()];
    let mut active: BTreeSet<((i64, &str), usize)> = BTreeSet::new();
    let (mut next_start, mut next_end) = (0, 0);
    for w in bounds.windows(2) {
        let (from, to) = (w[0], w[1]);
        while let Some(&g) = ends.get(next_end)
            && groups[g].0.end <= from
        {
            active.remove(&(version_key(groups[g].1), g));
            next_end += 1;
        }
        while let Some(&g) = starts.get(next_start)
            && groups[g].0.start <= from
        {
            active.insert((version_key(groups[g].1), g));
            next_start += 1;
        }
        let Some((top, _)) = active.last() else {
            continue;
        };
        let top = *top;
        for (_, g) in active.iter().rev().take_while(|(k, _)| *k == top) {
            push_merged(&mut group_visible[*g], Interval::new(from, to));
        }
    }

    let mut out = vec![None; segments.len()];
    for ((_, _, members), visible) in groups.iter().zip(group_visible) {
        for &m in members {
            out[m] = Some(visible.clone());
        }
    }
    out
}

fn push_merged(parts: &mut Vec<Interval>, next: Interval) {
    match parts.last_mut() {
        Some(last) if last.end == next.start => last.end = next.end,
        _ => parts.push(next),
    }
}

/// Whether partitions `0..core` of a group are all present.
fn core_complete(segments: &[DataSegment], members: &[usize]) -> bool {
    let core = members
        .iter()
        .map(|&m| match &segments[m].shard_spec {
            ShardSpec::Numbered { partitions, .. } => *partitions,
            ShardSpec::Range {
                num_core_partitions,
                ..
            } => *num_core_partitions,
        })
        .max()
        .unwrap_or(0);
    let present: BTreeSet<u32> = members
        .iter()
        .map(|&m| segments[m].shard_spec.partition_num())
        .filter(|&p| p < core)
        .collect();
    present.len() == core as usize
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    pub(crate) fn seg(start: i64, end: i64, version: i64, part: u32, core: u32) -> DataSegment {
        DataSegment {
            data_source: "t".into(),
            interval: Interval::new(start, end),
            version: crate::segment::version_string(version),
            shard_spec: ShardSpec::Numbered {
                partition_num: part,
                partitions: core,
            },
            load_spec: serde_json::Value::Null,
            path: format!("{start}-{end}-{version}-{part}"),
            dimensions: vec![],
            columns: vec![],
            size: 1,
            num_rows: 1,
            used: true,
        }
    }

    fn parts(used: Vec<DataSegment>) -> Vec<(String, Vec<(i64, i64)>)> {
        timeline(used)
            .into_iter()
            .map(|v| {
                (
                    v.segment.path.clone(),
                    v.visible.iter().map(|i| (i.start, i.end)).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn newer_version_hides_only_what_it_covers() {
        let got = parts(vec![
            seg(0, DAY, 1, 0, 1),
            seg(10 * HOUR, 11 * HOUR, 2, 0, 1),
            seg(DAY, 2 * DAY, 1, 0, 0),
        ]);
        assert_eq!(
            got,
            vec![
                (
                    format!("0-{DAY}-1-0"),
                    vec![(0, 10 * HOUR), (11 * HOUR, DAY)]
                ),
                (
                    format!("{}-{}-2-0", 10 * HOUR, 11 * HOUR),
                    vec![(10 * HOUR, 11 * HOUR)]
                ),
                (format!("{DAY}-{}-1-0", 2 * DAY), vec![(DAY, 2 * DAY)]),
            ]
        );
    }

    #[test]
    fn older_segment_fully_covered_by_pieces_is_hidden() {
        let got = parts(vec![
            seg(0, DAY, 1, 0, 0),
            seg(0, 12 * HOUR, 2, 0, 0),
            seg(12 * HOUR, DAY, 3, 0, 0),
        ]);
        assert_eq!(got.len(), 2);
        assert!(
            got.iter()
                .all(|(p, _)| !p.starts_with(&format!("0-{DAY}-")))
        );
    }

    #[test]
    fn coarser_newer_version_hides_finer_older_ones() {
        let got = parts(vec![
            seg(0, HOUR, 1, 0, 0),
            seg(HOUR, 2 * HOUR, 1, 0, 0),
            seg(0, DAY, 2, 0, 0),
        ]);
        assert_eq!(got, vec![(format!("0-{DAY}-2-0"), vec![(0, DAY)])]);
    }

    #[test]
    fn incomplete_core_set_neither_shows_nor_hides() {
        // Version 2 has core partitions 0 and 1, but only 1 is used.
        let got = parts(vec![
            seg(0, DAY, 1, 0, 1),
            seg(0, DAY, 2, 1, 2),
            // Appended (non-core) partitions of a complete version count.
            seg(DAY, 2 * DAY, 1, 0, 1),
            seg(DAY, 2 * DAY, 1, 1, 0),
        ]);
        let names: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            names,
            vec![
                format!("0-{DAY}-1-0").as_str(),
                format!("{DAY}-{}-1-0", 2 * DAY).as_str(),
                format!("{DAY}-{}-1-1", 2 * DAY).as_str(),
            ]
        );
    }

    #[test]
    fn unused_segments_never_show() {
        let mut s = seg(0, DAY, 1, 0, 0);
        s.used = false;
        assert!(parts(vec![s]).is_empty());
    }

    #[test]
    fn all_partitions_of_the_winning_version_show() {
        let got = parts(vec![
            seg(0, DAY, 2, 0, 2),
            seg(0, DAY, 2, 1, 2),
            seg(0, DAY, 2, 2, 0),
            seg(0, DAY, 1, 0, 0),
        ]);
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|(_, v)| v == &vec![(0, DAY)]));
    }
}
