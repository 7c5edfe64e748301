//! The metadata store: Druid's segments table (SQLite by default, PostgreSQL-compatible
//! schema), and the atomic publish of an ingest's segments.
//!
//! All segments of one statement are published in ONE transaction, in which REPLACE also
//! marks what it overshadows unused; segment ids (version, partition number) are allocated
//! inside that transaction, so concurrent appends to a chunk never collide.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use datafusion::common::{DataFusionError, Result};
use grove_common::time::parse_iso_millis;
use grove_common::{Interval, MsqFault};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};
use tokio::sync::Mutex;

use crate::segment::{DataSegment, SegmentColumn, ShardSpec, version_string};
use crate::timeline::visible_parts;

const SCHEMA: &[&str] = &[
    r#"CREATE TABLE IF NOT EXISTS druid_segments (
        id VARCHAR(512) NOT NULL PRIMARY KEY,
        datasource VARCHAR(255) NOT NULL,
        created_date VARCHAR(255) NOT NULL,
        start VARCHAR(255) NOT NULL,
        "end" VARCHAR(255) NOT NULL,
        start_ms BIGINT NOT NULL,
        end_ms BIGINT NOT NULL,
        partitioned BIGINT NOT NULL,
        version VARCHAR(255) NOT NULL,
        used BIGINT NOT NULL,
        payload TEXT NOT NULL,
        columns_json TEXT NOT NULL,
        path TEXT NOT NULL,
        num_rows BIGINT NOT NULL,
        used_status_last_updated VARCHAR(255) NOT NULL
    )"#,
    "CREATE INDEX IF NOT EXISTS idx_druid_segments_ds_used ON druid_segments (datasource, used)",
];

fn db_error(e: sqlx::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// How a publish relates to what is already there.
#[derive(Clone, Debug, PartialEq)]
pub enum PublishMode {
    /// INSERT: add partitions to each time chunk.
    Append,
    /// REPLACE: overshadow everything in these intervals.
    Replace {
        /// The OVERWRITE intervals.
        intervals: Vec<Interval>,
    },
}

/// A segment file written by an ingest, waiting for its id.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NewSegment {
    /// Time chunk.
    pub interval: Interval,
    /// Path inside deep storage.
    pub path: String,
    /// Load spec JSON.
    pub load_spec: serde_json::Value,
    /// Dimensions (every column but `__time`).
    pub dimensions: Vec<String>,
    /// Columns with types.
    pub columns: Vec<SegmentColumn>,
    /// Size in bytes.
    pub size: u64,
    /// Rows.
    pub num_rows: u64,
    /// For range partitioning: (dimensions, start, end) of this partition.
    pub range: Option<RangeBounds>,
}

/// The bounds of one range partition.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RangeBounds {
    /// The dimensions.
    pub dimensions: Vec<String>,
    /// Inclusive start (`None` = unbounded).
    pub start: Option<Vec<Option<String>>>,
    /// Exclusive end (`None` = unbounded).
    pub end: Option<Vec<Option<String>>>,
}

/// Everything one statement publishes.
#[derive(Clone, Debug)]
pub struct PublishRequest {
    /// Target datasource.
    pub data_source: String,
    /// Append or replace.
    pub mode: PublishMode,
    /// The task's start time (ms): the version of new time chunks.
    pub task_start: i64,
    /// The segments, in partition order within each time chunk.
    pub segments: Vec<NewSegment>,
}

/// What a publish did.
#[derive(Clone, Debug, Default)]
pub struct PublishResult {
    /// Published segments.
    pub published: Vec<DataSegment>,
    /// Ids of the segments marked unused.
    pub overshadowed: Vec<String>,
}

/// The metadata store.
#[derive(Debug)]
pub struct MetadataStore {
    pool: AnyPool,
    write_lock: Mutex<()>,
    datasources: Arc<RwLock<BTreeSet<String>>>,
}

impl MetadataStore {
    /// Connects (`sqlite://path?mode=rwc` or `postgres://...`) and creates the schema.
    pub async fn connect(url: &str) -> Result<Self> {
        install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .connect(url)
            .await
            .map_err(db_error)?;
        if url.starts_with("sqlite:") {
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await
                .map_err(db_error)?;
        }
        for stmt in SCHEMA.iter().chain(crate::tasks::TASKS_SCHEMA) {
            sqlx::query(stmt).execute(&pool).await.map_err(db_error)?;
        }
        let store = Self {
            pool,
            write_lock: Mutex::new(()),
            datasources: Arc::new(RwLock::new(BTreeSet::new())),
        };
        store.refresh_datasources().await?;
        Ok(store)
    }

    /// A SQLite store in one file.
    pub async fn sqlite(path: &std::path::Path) -> Result<Self> {
        Self::connect(&format!("sqlite://{}?mode=rwc", path.display())).await
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    async fn refresh_datasources(&self) -> Result<()> {
        let rows = sqlx::query("SELECT DISTINCT datasource FROM druid_segments WHERE used = 1")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        let names: BTreeSet<String> = rows
            .iter()
            .filter_map(|r| r.try_get::<String, _>(0).ok())
            .collect();
        if let Ok(mut ds) = self.datasources.write() {
            *ds = names;
        }
        Ok(())
    }

    /// Datasources with at least one used segment (cached; refreshed on publish).
    pub fn datasource_names(&self) -> Vec<String> {
        self.datasources
            .read()
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether a datasource has used segments: the cache, and for a name it does not
    /// know, the store itself (another process may have created it; the cache is then
    /// refreshed).
    pub async fn has_datasource_now(&self, name: &str) -> Result<bool> {
        if self.has_datasource(name) {
            return Ok(true);
        }
        let found =
            sqlx::query("SELECT 1 FROM druid_segments WHERE datasource = $1 AND used = 1 LIMIT 1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?
                .is_some();
        if found {
            self.refresh_datasources().await?;
        }
        Ok(found)
    }

    /// Whether a datasource has used segments (cached).
    pub fn has_datasource(&self, name: &str) -> bool {
        self.datasources
            .read()
            .map(|d| d.contains(name))
            .unwrap_or(false)
    }

    /// A fingerprint of a datasource's segment records: (rows, used rows). Segments are
    /// only ever inserted or marked unused, so any change to what is used changes it;
    /// readers cache what they derived from the used segments under it.
    pub async fn segments_fingerprint(&self, data_source: &str) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT COUNT(*), COALESCE(SUM(used), 0) FROM druid_segments WHERE datasource = $1",
        )
        .bind(data_source)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        Ok((
            row.try_get::<i64, _>(0).map_err(db_error)?,
            row.try_get::<i64, _>(1).map_err(db_error)?,
        ))
    }

    /// Every datasource with a segment in the store, used or not (not cached).
    pub async fn all_datasource_names(&self) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT DISTINCT datasource FROM druid_segments ORDER BY datasource")
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
        Ok(rows
            .iter()
            .filter_map(|r| r.try_get::<String, _>(0).ok())
            .collect())
    }

    /// Used segments of a datasource (visible or overshadowed).
    pub async fn used_segments(&self, data_source: &str) -> Result<Vec<DataSegment>> {
        self.segments_where(data_source, "AND used = 1").await
    }

    /// Every segment of a datasource, used or not.
    pub async fn all_segments(&self, data_source: &str) -> Result<Vec<DataSegment>> {
        self.segments_where(data_source, "").await
    }

    /// Used segments of every datasource (visible or overshadowed), by datasource, then
    /// interval start, version and id.
    pub async fn used_segments_all(&self) -> Result<Vec<DataSegment>> {
        let rows = sqlx::query(
            "SELECT payload, columns_json, path, used FROM druid_segments WHERE used = 1 \
             ORDER BY datasource, start_ms, version, id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(segment_from_row).collect()
    }

    async fn segments_where(&self, data_source: &str, extra: &str) -> Result<Vec<DataSegment>> {
        let sql = format!(
            "SELECT payload, columns_json, path, used FROM druid_segments WHERE datasource = $1 {extra} \
             ORDER BY start_ms, version, id"
        );
        let rows = sqlx::query(&sql)
            .bind(data_source)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.iter().map(segment_from_row).collect()
    }

    /// Publishes one statement's segments atomically.
    pub async fn publish(&self, req: PublishRequest) -> Result<PublishResult> {
        let _guard = self.write_lock.lock().await;
        let existing = self.used_segments(&req.data_source).await?;
        let allocated = allocate(&req, &existing)?;
        let now = version_string(chrono::Utc::now().timestamp_millis());
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        for id in &allocated.overshadowed {
            sqlx::query(
                "UPDATE druid_segments SET used = 0, used_status_last_updated = $1 WHERE id = $2",
            )
            .bind(&now)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        for seg in &allocated.published {
            let columns = serde_json::to_string(&seg.columns)
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            sqlx::query(
                "INSERT INTO druid_segments (id, datasource, created_date, start, \"end\", \
                 start_ms, end_ms, partitioned, version, used, payload, columns_json, path, \
                 num_rows, used_status_last_updated) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, 1, $9, $10, $11, $12, $13)",
            )
            .bind(seg.id())
            .bind(&seg.data_source)
            .bind(&now)
            .bind(version_string(seg.interval.start))
            .bind(version_string(seg.interval.end))
            .bind(seg.interval.start)
            .bind(seg.interval.end)
            .bind(&seg.version)
            .bind(seg.payload().to_string())
            .bind(columns)
            .bind(&seg.path)
            .bind(i64::try_from(seg.num_rows).unwrap_or(i64::MAX))
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        self.refresh_datasources().await?;
        Ok(allocated)
    }
}

fn segment_from_row(row: &sqlx::any::AnyRow) -> Result<DataSegment> {
    let payload: String = row.try_get(0).map_err(db_error)?;
    let columns: String = row.try_get(1).map_err(db_error)?;
    let path: String = row.try_get(2).map_err(db_error)?;
    let used: i64 = row.try_get(3).map_err(db_error)?;
    let bad = |what: &str| DataFusionError::Internal(format!("corrupt segment payload: {what}"));
    let p: serde_json::Value =
        serde_json::from_str(&payload).map_err(|e| DataFusionError::External(Box::new(e)))?;
    let interval: Interval = serde_json::from_value(p["interval"].clone())
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    let shard_spec: ShardSpec = serde_json::from_value(p["shardSpec"].clone())
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    let columns: Vec<SegmentColumn> =
        serde_json::from_str(&columns).map_err(|e| DataFusionError::External(Box::new(e)))?;
    Ok(DataSegment {
        data_source: p["dataSource"]
            .as_str()
            .ok_or_else(|| bad("dataSource"))?
            .into(),
        interval,
        version: p["version"].as_str().ok_or_else(|| bad("version"))?.into(),
        shard_spec,
        load_spec: p["loadSpec"].clone(),
        path,
        dimensions: p["dimensions"]
            .as_str()
            .unwrap_or("")
            .split(',')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        columns,
        size: p["size"].as_u64().unwrap_or(0),
        num_rows: p["numRows"].as_u64().unwrap_or(0),
        used: used != 0,
    })
}

/// Milliseconds of a version string (versions are ISO timestamps).
fn version_millis(v: &str) -> i64 {
    parse_iso_millis(v).unwrap_or(i64::MIN)
}

/// Assigns versions and partition numbers, and finds what REPLACE overshadows.
fn allocate(req: &PublishRequest, existing: &[DataSegment]) -> Result<PublishResult> {
    let mut by_chunk: BTreeMap<Interval, Vec<&NewSegment>> = BTreeMap::new();
    for s in &req.segments {
        by_chunk.entry(s.interval).or_default().push(s);
    }
    let mut out = PublishResult::default();
    // Allocation follows the visible timeline, as Druid's does.
    let visible = visible_parts(existing);
    let visible_in = |e: usize, span: &Interval| {
        visible[e]
            .as_ref()
            .is_some_and(|parts| parts.iter().any(|p| p.overlaps(span)))
    };
    match &req.mode {
        PublishMode::Append => {
            for (chunk, segments) in by_chunk {
                let overlapping: Vec<&DataSegment> = (0..existing.len())
                    .filter(|&e| visible_in(e, &chunk))
                    .map(|e| &existing[e])
                    .collect();
                if let Some(other) = overlapping.iter().find(|e| e.interval != chunk) {
                    return Err(MsqFault::InsertCannotAllocateSegment {
                        data_source: req.data_source.clone(),
                        interval: chunk.to_string(),
                        allocated_interval: Some(other.interval.to_string()),
                    }
                    .into());
                }
                let version = overlapping
                    .iter()
                    .map(|e| e.version.clone())
                    .max_by_key(|v| version_millis(v))
                    .unwrap_or_else(|| version_string(req.task_start));
                let first = existing
                    .iter()
                    .filter(|e| e.interval == chunk && e.version == version)
                    .map(|e| e.shard_spec.partition_num() + 1)
                    .max()
                    .unwrap_or(0);
                for (partition_num, s) in (first..).zip(segments) {
                    out.published.push(new_data_segment(
                        req,
                        s,
                        version.clone(),
                        ShardSpec::Numbered {
                            partition_num,
                            partitions: 0,
                        },
                    ));
                }
            }
        }
        PublishMode::Replace { intervals } => {
            // Druid's "intervals to drop": the replaced range minus the chunks that get
            // new segments. A segment only partly inside the range may stay (the new
            // version overshadows the replaced part of it) unless part of it would have
            // to be dropped without anything newer to hide it.
            let to_drop = subtract(intervals, by_chunk.keys().copied().collect());
            let mut newest = req.task_start;
            for (i, e) in existing.iter().enumerate() {
                if !intervals.iter().any(|r| r.overlaps(&e.interval)) {
                    continue;
                }
                newest = newest.max(version_millis(&e.version).saturating_add(1));
                if intervals.iter().any(|r| r.contains(&e.interval)) {
                    out.overshadowed.push(e.id());
                } else if to_drop.iter().any(|d| visible_in(i, d)) {
                    return Err(MsqFault::InsertCannotReplaceExistingSegment {
                        segment_id: e.id(),
                    }
                    .into());
                }
            }
            let version = version_string(newest);
            for (_, segments) in by_chunk {
                let n = u32::try_from(segments.len()).unwrap_or(u32::MAX);
                for (i, s) in segments.into_iter().enumerate() {
                    let partition_num = u32::try_from(i).unwrap_or(u32::MAX);
                    let shard = match &s.range {
                        Some(r) => ShardSpec::Range {
                            dimensions: r.dimensions.clone(),
                            start: r.start.clone(),
                            end: r.end.clone(),
                            partition_num,
                            num_core_partitions: n,
                        },
                        None => ShardSpec::Numbered {
                            partition_num,
                            partitions: n,
                        },
                    };
                    out.published
                        .push(new_data_segment(req, s, version.clone(), shard));
                }
            }
        }
    }
    // Like Druid's coordinator, retire segments that newer versions now hide entirely
    // (a segment replaced piece by piece by finer REPLACEs).
    let kept: Vec<DataSegment> = existing
        .iter()
        .filter(|e| !out.overshadowed.contains(&e.id()))
        .chain(&out.published)
        .cloned()
        .collect();
    let after = visible_parts(&kept);
    let n_existing = kept.len() - out.published.len();
    for (s, parts) in kept.iter().zip(after).take(n_existing) {
        if parts.is_some_and(|p| p.is_empty()) {
            out.overshadowed.push(s.id());
        }
    }
    Ok(out)
}

/// `from` minus `minus`, both as sets of instants.
fn subtract(from: &[Interval], mut minus: Vec<Interval>) -> Vec<Interval> {
    minus.sort();
    let mut out = Vec::new();
    for r in from {
        let mut start = r.start;
        for m in minus.iter().filter(|m| m.overlaps(r)) {
            if m.start > start {
                out.push(Interval::new(start, m.start));
            }
            start = start.max(m.end);
        }
        if start < r.end {
            out.push(Interval::new(start, r.end));
        }
    }
    out
}

fn new_data_segment(
    req: &PublishRequest,
    s: &NewSegment,
    version: String,
    shard_spec: ShardSpec,
) -> DataSegment {
    DataSegment {
        data_source: req.data_source.clone(),
        interval: s.interval,
        version,
        shard_spec,
        load_spec: s.load_spec.clone(),
        path: s.path.clone(),
        dimensions: s.dimensions.clone(),
        columns: s.columns.clone(),
        size: s.size,
        num_rows: s.num_rows,
        used: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn seg(start: i64, end: i64, rows: u64) -> NewSegment {
        NewSegment {
            interval: Interval::new(start, end),
            path: format!("p/{start}/{rows}"),
            load_spec: serde_json::json!({"type": "local"}),
            dimensions: vec!["a".into()],
            columns: vec![],
            size: 1,
            num_rows: rows,
            range: None,
        }
    }

    async fn store() -> (tempfile::TempDir, MetadataStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::sqlite(&dir.path().join("meta.db"))
            .await
            .unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn append_numbers_partitions_after_existing() {
        let (_dir, store) = store().await;
        let req = |rows| PublishRequest {
            data_source: "w".into(),
            mode: PublishMode::Append,
            task_start: 1000,
            segments: vec![seg(0, DAY, rows), seg(0, DAY, rows + 1)],
        };
        let first = store.publish(req(1)).await.unwrap();
        assert_eq!(first.published[1].shard_spec.partition_num(), 1);
        let second = store.publish(req(10)).await.unwrap();
        let nums: Vec<u32> = second
            .published
            .iter()
            .map(|s| s.shard_spec.partition_num())
            .collect();
        assert_eq!(nums, vec![2, 3]);
        assert_eq!(second.published[0].version, first.published[0].version);
        assert_eq!(store.used_segments("w").await.unwrap().len(), 4);
        assert_eq!(store.datasource_names(), vec!["w".to_string()]);
    }

    #[tokio::test]
    async fn append_with_other_granularity_cannot_allocate() {
        let (_dir, store) = store().await;
        let publish = |s: NewSegment| PublishRequest {
            data_source: "w".into(),
            mode: PublishMode::Append,
            task_start: 1000,
            segments: vec![s],
        };
        store.publish(publish(seg(0, 30 * DAY, 1))).await.unwrap();
        let err = store.publish(publish(seg(0, DAY, 1))).await.unwrap_err();
        assert_eq!(
            MsqFault::find(&err).unwrap().error_code(),
            "InsertCannotAllocateSegment"
        );
    }

    #[tokio::test]
    async fn replace_overshadows_in_one_transaction() {
        let (_dir, store) = store().await;
        store
            .publish(PublishRequest {
                data_source: "w".into(),
                mode: PublishMode::Append,
                task_start: 5000,
                segments: vec![seg(0, DAY, 1), seg(DAY, 2 * DAY, 1)],
            })
            .await
            .unwrap();
        let replaced = store
            .publish(PublishRequest {
                data_source: "w".into(),
                mode: PublishMode::Replace {
                    intervals: vec![Interval::new(0, DAY)],
                },
                // Older clock than the existing version: the new version still wins.
                task_start: 10,
                segments: vec![seg(0, DAY, 7)],
            })
            .await
            .unwrap();
        assert_eq!(replaced.overshadowed.len(), 1);
        assert!(
            version_millis(&replaced.published[0].version) > 5000,
            "{}",
            replaced.published[0].version
        );
        let used = store.used_segments("w").await.unwrap();
        assert_eq!(used.len(), 2);
        let all = store.all_segments("w").await.unwrap();
        assert_eq!(all.iter().filter(|s| !s.used).count(), 1);
        // A partial overlap is refused and changes nothing.
        let err = store
            .publish(PublishRequest {
                data_source: "w".into(),
                mode: PublishMode::Replace {
                    intervals: vec![Interval::new(0, DAY / 2)],
                },
                task_start: 10,
                segments: vec![],
            })
            .await
            .unwrap_err();
        assert_eq!(
            MsqFault::find(&err).unwrap().error_code(),
            "InsertCannotReplaceExistingSegment"
        );
        assert_eq!(store.used_segments("w").await.unwrap().len(), 2);
        // Across datasources only used segments are listed, grouped by datasource.
        store
            .publish(PublishRequest {
                data_source: "a".into(),
                mode: PublishMode::Append,
                task_start: 5000,
                segments: vec![seg(DAY, 2 * DAY, 3)],
            })
            .await
            .unwrap();
        let all: Vec<(String, i64)> = store
            .used_segments_all()
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.data_source, s.interval.start))
            .collect();
        assert_eq!(
            all,
            vec![("a".into(), DAY), ("w".into(), 0), ("w".into(), DAY)]
        );
    }

    #[tokio::test]
    async fn replace_of_part_of_a_segment_overshadows_that_part() {
        const HOUR: i64 = DAY / 24;
        let (_dir, store) = store().await;
        let replace = |intervals: Vec<Interval>, segments: Vec<NewSegment>| PublishRequest {
            data_source: "w".into(),
            mode: PublishMode::Replace { intervals },
            task_start: 10,
            segments,
        };
        store
            .publish(replace(vec![Interval::new(0, DAY)], vec![seg(0, DAY, 5)]))
            .await
            .unwrap();
        // Hour 10 gets rows: the DAY segment stays used, partly overshadowed.
        let hour10 = Interval::new(10 * HOUR, 11 * HOUR);
        let r = store
            .publish(replace(vec![hour10], vec![seg(10 * HOUR, 11 * HOUR, 1)]))
            .await
            .unwrap();
        assert!(r.overshadowed.is_empty());
        assert_eq!(store.used_segments("w").await.unwrap().len(), 2);
        // Hours 11-12 with rows in hour 11 only: hour 12 of the DAY segment would have to
        // be dropped: refused.
        let err = store
            .publish(replace(
                vec![Interval::new(11 * HOUR, 13 * HOUR)],
                vec![seg(11 * HOUR, 12 * HOUR, 1)],
            ))
            .await
            .unwrap_err();
        assert_eq!(
            MsqFault::find(&err).unwrap().error_code(),
            "InsertCannotReplaceExistingSegment"
        );
        // An append into the replaced hour takes the newest version there; one into an
        // hour the DAY segment still shows cannot be allocated.
        let append = |s: NewSegment| PublishRequest {
            data_source: "w".into(),
            mode: PublishMode::Append,
            task_start: 10,
            segments: vec![s],
        };
        let a = store
            .publish(append(seg(10 * HOUR, 11 * HOUR, 2)))
            .await
            .unwrap();
        assert_eq!(a.published[0].version, r.published[0].version);
        assert_eq!(a.published[0].shard_spec.partition_num(), 1);
        let err = store
            .publish(append(seg(3 * HOUR, 4 * HOUR, 2)))
            .await
            .unwrap_err();
        assert_eq!(
            MsqFault::find(&err).unwrap().error_code(),
            "InsertCannotAllocateSegment"
        );
        // Replacing the rest of the day hour by hour retires the DAY segment once
        // nothing of it shows.
        let rest: Vec<NewSegment> = (0..24)
            .filter(|h| *h != 10)
            .map(|h| seg(h * HOUR, (h + 1) * HOUR, 1))
            .collect();
        let intervals = vec![Interval::new(0, 10 * HOUR), Interval::new(11 * HOUR, DAY)];
        let done = store.publish(replace(intervals, rest)).await.unwrap();
        assert_eq!(done.overshadowed.len(), 1, "{:?}", done.overshadowed);
        let used = store.used_segments("w").await.unwrap();
        assert!(used.iter().all(|s| s.interval.duration_millis() == HOUR));
        assert_eq!(used.len(), 25);
    }
}
