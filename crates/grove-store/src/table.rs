//! Datasources as DataFusion tables: the `druid` schema lists datasources from the
//! metadata store, and each [`DatasourceTable`] scans exactly its visible segments.
//!
//! ```text
//! used segments ─▶ timeline (newest complete version wins, per instant)
//!               ─▶ pruned by __time and range shard specs (no file opened)
//!               ─▶ Parquet scan: whole segments in one DataSourceExec; a partially
//!                  overshadowed segment in its own, filtered to its visible parts
//! ```
//!
//! Row counts of the segments are the scan's statistics (exact unless a filter or a
//! partially overshadowed segment makes them an upper bound).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{DFSchema, Result, ScalarValue, Statistics};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfigBuilder, FileSource, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::logical_expr::utils::{conjunction, disjunction};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, col, lit};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::filter::FilterExecBuilder;
use datafusion::physical_plan::union::UnionExec;
use grove_common::types::{ComplexType, DruidType, TIME_COLUMN, TIMESTAMP_TYPE};

use crate::deep::DeepStorage;
use crate::metadata::MetadataStore;
use crate::pruning::{domains, shard_may_match, time_set};
use crate::scan::{SegmentScan, SegmentScans};
use crate::segment::DataSegment;
use crate::timeline::{VisibleSegment, timeline};

/// The used segments that are visible for at least part of their interval (see
/// [`timeline`](crate::timeline()) for the rules and the visible parts).
pub fn visible_segments(used: Vec<DataSegment>) -> Vec<DataSegment> {
    timeline(used).into_iter().map(|v| v.segment).collect()
}

/// The schema of a datasource: the union of its segments' columns, `__time` first.
/// Where segments disagree on a type, the wider one wins (LONG < FLOAT < DOUBLE < STRING).
/// Complex columns (`COMPLEX<HLLSketch>`) are binary fields marked with their type; a
/// column that is complex in one segment and primitive in another keeps the first type
/// seen.
pub fn union_schema(segments: &[DataSegment]) -> SchemaRef {
    union_schema_of(segments.iter())
}

fn union_schema_of<'a>(segments: impl Iterator<Item = &'a DataSegment>) -> SchemaRef {
    enum ColumnType {
        Primitive(DruidType),
        Complex(ComplexType),
    }
    let mut columns: Vec<(String, ColumnType)> = Vec::new();
    let mut has_time = false;
    let mut any = false;
    for seg in segments {
        any = true;
        for c in &seg.columns {
            if c.name == TIME_COLUMN {
                has_time = true;
                continue;
            }
            let t = match (
                DruidType::parse(&c.native_type),
                ComplexType::parse(&c.native_type),
            ) {
                (Some(t), _) => ColumnType::Primitive(t),
                (None, Some(t)) => ColumnType::Complex(t),
                (None, None) => continue,
            };
            match columns.iter_mut().find(|(n, _)| n == &c.name) {
                Some((_, ColumnType::Primitive(existing))) => {
                    if let ColumnType::Primitive(t) = t {
                        *existing = wider(*existing, t);
                    }
                }
                Some((_, ColumnType::Complex(_))) => {}
                None => columns.push((c.name.clone(), t)),
            }
        }
    }
    let mut fields = Vec::with_capacity(columns.len() + 1);
    if has_time || !any {
        fields.push(Field::new(TIME_COLUMN, TIMESTAMP_TYPE, false));
    }
    fields.extend(columns.into_iter().map(|(n, t)| match t {
        ColumnType::Primitive(t) => Field::new(n, t.arrow_type(), true),
        ColumnType::Complex(t) => t.field(n, true),
    }));
    Arc::new(Schema::new(fields))
}

fn wider(a: DruidType, b: DruidType) -> DruidType {
    let rank = |t: DruidType| match t {
        DruidType::Long => 0,
        DruidType::Float => 1,
        DruidType::Double => 2,
        DruidType::String => 3,
        // An array column is wider than any scalar: a scalar reads as a one-element array.
        DruidType::LongArray => 4,
        DruidType::DoubleArray => 5,
        DruidType::StringArray => 6,
    };
    if rank(a) >= rank(b) { a } else { b }
}

/// A datasource: a snapshot of its visible segments taken when the query was planned.
#[derive(Debug)]
pub struct DatasourceTable {
    name: String,
    segments: Vec<VisibleSegment>,
    schema: SchemaRef,
    deep: DeepStorage,
    /// Footer statistics already read, by segment path.
    footer_stats: std::sync::Mutex<HashMap<String, Statistics>>,
}

impl DatasourceTable {
    /// Loads the visible segments of `name`.
    pub async fn load(name: &str, metadata: &MetadataStore, deep: &DeepStorage) -> Result<Self> {
        Ok(Self::new(name, metadata.used_segments(name).await?, deep))
    }

    /// A table over these used segments (the visible ones are picked here).
    pub fn new(name: &str, used: Vec<DataSegment>, deep: &DeepStorage) -> Self {
        let segments = timeline(used);
        Self {
            name: name.to_string(),
            schema: union_schema_of(segments.iter().map(|v| &v.segment)),
            segments,
            deep: deep.clone(),
            footer_stats: Default::default(),
        }
    }

    /// The visible segments, with their visible parts.
    pub fn segments(&self) -> &[VisibleSegment] {
        &self.segments
    }

    /// The datasource name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The visible segments a scan with these filters must read: those with a visible
    /// part the `__time` filters allow and, for range shard specs, a `[start, end)` that
    /// can hold values the filters on the range dimensions allow.
    pub fn prune(&self, filters: &[Expr]) -> Vec<&VisibleSegment> {
        let time = time_set(filters);
        let dims = domains(filters);
        self.segments
            .iter()
            .filter(|s| time.meets(&s.visible) && shard_may_match(&s.segment.shard_spec, &dims))
            .collect()
    }

    fn parquet_source(
        &self,
        state: &dyn Session,
        predicate: Option<Arc<dyn PhysicalExpr>>,
    ) -> ParquetSource {
        // Footers and page indexes stay in the session's file-metadata cache: segments
        // never change, so a query after the first reads only the pages it needs.
        let metadata_cache = state.runtime_env().cache_manager.get_file_metadata_cache();
        let readers =
            datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory::new(
                Arc::clone(self.deep.store()),
                metadata_cache,
            );
        let source = ParquetSource::new(Arc::clone(&self.schema))
            .with_parquet_file_reader_factory(Arc::new(readers))
            .with_table_parquet_options(datafusion::common::config::TableParquetOptions {
                global: state.config_options().execution.parquet.clone(),
                ..Default::default()
            })
            .with_pushdown_filters(true)
            .with_enable_page_index(true);
        match predicate {
            Some(p) => source.with_predicate(p),
            None => source,
        }
    }

    /// Statistics with only a row count.
    fn rows_statistics(&self, rows: Precision<usize>) -> Statistics {
        Statistics::new_unknown(&self.schema).with_num_rows(rows)
    }

    fn file_statistics(&self, seg: &DataSegment) -> Statistics {
        self.rows_statistics(row_count(std::iter::once(seg)))
    }

    fn partitioned_file(&self, seg: &DataSegment) -> PartitionedFile {
        PartitionedFile::new(seg.path.clone(), seg.size)
            .with_statistics(Arc::new(self.file_statistics(seg)))
    }

    /// Exact statistics of a whole segment from its Parquet footer (row count, and per
    /// column min, max, null count and size), read through the session's metadata cache
    /// so a footer is read once. A footer that cannot be read leaves the row count from
    /// the metadata store (the scan itself will report the error).
    async fn footer_statistics(&self, state: &dyn Session, seg: &DataSegment) -> Statistics {
        use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
        if let Ok(memo) = self.footer_stats.lock()
            && let Some(stats) = memo.get(&seg.path)
        {
            return stats.clone();
        }
        // The same object identity the scan's reader uses, so both share cache entries.
        let file = self.partitioned_file(seg);
        let cache = state.runtime_env().cache_manager.get_file_metadata_cache();
        let store = self.deep.store();
        let footer = DFParquetMetadata::new(store.as_ref(), &file.object_meta)
            .with_file_metadata_cache(Some(cache))
            .fetch_statistics(&self.schema)
            .await;
        match footer {
            Ok(stats) => {
                if let Ok(mut memo) = self.footer_stats.lock() {
                    memo.insert(seg.path.clone(), stats.clone());
                }
                stats
            }
            Err(e) => {
                tracing::debug!(segment = %seg.id(), error = %e, "no footer statistics");
                self.file_statistics(seg)
            }
        }
    }

    /// Whole segments: one scan, files spread over `partitions` groups (largest first
    /// onto the lightest group), with each file's footer statistics (exact row counts,
    /// column min/max and null counts) merged per group and for the scan.
    async fn scan_whole(
        &self,
        state: &dyn Session,
        files: &[&VisibleSegment],
        projection: Option<&Vec<usize>>,
        predicate: Option<Arc<dyn PhysicalExpr>>,
        limit: Option<usize>,
    ) -> Result<(Arc<dyn ExecutionPlan>, ParquetSource)> {
        let mut stats = Vec::with_capacity(files.len());
        for v in files {
            stats.push(self.footer_statistics(state, &v.segment).await);
        }
        let stats_of: std::collections::HashMap<String, Statistics> = files
            .iter()
            .map(|v| v.segment.path.clone())
            .zip(stats)
            .collect();
        let partitions = state.config().target_partitions().clamp(1, files.len());
        let mut sorted: Vec<&DataSegment> = files.iter().map(|v| &v.segment).collect();
        sorted.sort_by_key(|s| std::cmp::Reverse(s.size));
        let mut groups: Vec<(u64, Vec<&DataSegment>)> = vec![(0, Vec::new()); partitions];
        for seg in sorted {
            if let Some(g) = groups.iter_mut().min_by_key(|(bytes, g)| (*bytes, g.len())) {
                g.0 += seg.size;
                g.1.push(seg);
            }
        }
        let stats_for = |seg: &DataSegment| {
            stats_of
                .get(&seg.path)
                .cloned()
                .unwrap_or_else(|| self.file_statistics(seg))
        };
        let merge = |all: Vec<Statistics>| -> Result<Statistics> {
            Statistics::try_merge_iter(all.iter(), &self.schema)
        };
        let mut groups_out = Vec::with_capacity(groups.len());
        for (_, segs) in groups {
            let per_file: Vec<Statistics> = segs.iter().map(|s| stats_for(s)).collect();
            let group_stats = merge(per_file.clone())?;
            let files: Vec<PartitionedFile> = segs
                .into_iter()
                .zip(per_file)
                .map(|(s, st)| self.partitioned_file(s).with_statistics(Arc::new(st)))
                .collect();
            groups_out.push(FileGroup::new(files).with_statistics(Arc::new(group_stats)));
        }
        let table_stats = merge(files.iter().map(|v| stats_for(&v.segment)).collect())?;
        let source = self.parquet_source(state, predicate);
        let config = FileScanConfigBuilder::new(self.deep.url().clone(), Arc::new(source.clone()))
            .with_file_groups(groups_out)
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .with_statistics(table_stats)
            .build();
        Ok((DataSourceExec::from_data_source(config), source))
    }

    /// A partially overshadowed segment: its own scan (reading `__time` too), then only
    /// the rows in its visible parts, then the requested columns.
    fn scan_partial(
        &self,
        state: &dyn Session,
        seg: &VisibleSegment,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
    ) -> Result<(Arc<dyn ExecutionPlan>, ParquetSource)> {
        let time_index = self.schema.index_of(TIME_COLUMN)?;
        let (scan_projection, keep) = match projection {
            Some(p) if !p.contains(&time_index) => {
                let mut with_time = p.clone();
                with_time.push(time_index);
                (Some(with_time), Some((0..p.len()).collect::<Vec<_>>()))
            }
            other => (other.cloned(), None),
        };
        let visible = disjunction(seg.visible.iter().map(|part| {
            col(TIME_COLUMN)
                .gt_eq(lit(ScalarValue::TimestampMillisecond(
                    Some(part.start),
                    None,
                )))
                .and(
                    col(TIME_COLUMN)
                        .lt(lit(ScalarValue::TimestampMillisecond(Some(part.end), None))),
                )
        }))
        .unwrap_or_else(|| lit(false));
        // The filter on the visible parts is pushed into the Parquet scan by DataFusion's
        // filter pushdown (row-group, page and row filtering); the scan's own predicate
        // holds the query's filters only.
        let predicate = match conjunction(filters.iter().cloned()) {
            Some(p) => {
                let table_schema = DFSchema::try_from(Arc::clone(&self.schema))?;
                Some(state.create_physical_expr(p, &table_schema)?)
            }
            None => None,
        };
        let source = self.parquet_source(state, predicate);
        let config = FileScanConfigBuilder::new(self.deep.url().clone(), Arc::new(source.clone()))
            .with_file_groups(vec![
                FileGroup::new(vec![self.partitioned_file(&seg.segment)])
                    .with_statistics(Arc::new(self.file_statistics(&seg.segment))),
            ])
            .with_projection_indices(scan_projection)?
            .with_statistics(self.file_statistics(&seg.segment))
            .build();
        let scan = DataSourceExec::from_data_source(config);
        let scan_schema = DFSchema::try_from(scan.schema())?;
        let predicate = state.create_physical_expr(visible, &scan_schema)?;
        let filter = FilterExecBuilder::new(predicate, scan)
            .apply_projection(keep)?
            .build()?;
        Ok((Arc::new(filter), source))
    }
}

#[async_trait]
impl TableProvider for DatasourceTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    fn statistics(&self) -> Option<Statistics> {
        let rows = row_count(self.segments.iter().map(|v| &v.segment));
        // A partially overshadowed segment shows only some of its rows.
        let partial = self.segments.iter().any(VisibleSegment::is_partial);
        Some(self.rows_statistics(if partial { rows.to_inexact() } else { rows }))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let files = self.prune(filters);
        let (whole, partial): (Vec<&VisibleSegment>, Vec<&VisibleSegment>) =
            files.iter().partition(|v| !v.is_partial());
        let mut plans: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        let mut metrics = Vec::new();
        if !whole.is_empty() {
            let predicate = match conjunction(filters.iter().cloned()) {
                Some(p) => {
                    let df_schema = DFSchema::try_from(Arc::clone(&self.schema))?;
                    Some(state.create_physical_expr(p, &df_schema)?)
                }
                None => None,
            };
            let (plan, source) = self
                .scan_whole(state, &whole, projection, predicate, limit)
                .await?;
            metrics.push(source.metrics().clone());
            plans.push(plan);
        }
        for seg in partial {
            // No LIMIT here: rows outside the visible parts must not use it up.
            let (plan, source) = self.scan_partial(state, seg, projection, filters)?;
            metrics.push(source.metrics().clone());
            plans.push(plan);
        }
        if let Some(registry) = state.config().get_extension::<SegmentScans>() {
            registry.push(Arc::new(SegmentScan::new(
                self.name.clone(),
                self.segments.len(),
                files.len(),
                metrics,
            )));
        }
        match plans.len() {
            0 => {
                let projected = datafusion::common::project_schema(&self.schema, projection)?;
                Ok(Arc::new(EmptyExec::new(projected)))
            }
            1 => Ok(plans.remove(0)),
            _ => UnionExec::try_new(plans),
        }
    }
}

/// The rows of some segments, from their metadata. A segment recorded with no rows
/// (Grove never publishes an empty one) makes the count unknown rather than wrong.
fn row_count<'a>(segments: impl Iterator<Item = &'a DataSegment>) -> Precision<usize> {
    let mut total: usize = 0;
    for s in segments {
        match usize::try_from(s.num_rows) {
            Ok(n) if n > 0 => total = total.saturating_add(n),
            _ => return Precision::Absent,
        }
    }
    Precision::Exact(total)
}

/// The `druid` schema: one table per datasource.
#[derive(Debug)]
pub struct DruidSchema {
    metadata: Arc<MetadataStore>,
    deep: DeepStorage,
    /// Tables by datasource, with the segment fingerprint they were built under: a
    /// query reuses the table (and the footer statistics it has read) until a publish
    /// changes the datasource's segments, even one by another process.
    tables: std::sync::Mutex<HashMap<String, CachedTable>>,
}

/// A table and the segment fingerprint it was built under.
type CachedTable = ((i64, i64), Arc<DatasourceTable>);

impl DruidSchema {
    /// A schema over the metadata store.
    pub fn new(metadata: Arc<MetadataStore>, deep: DeepStorage) -> Self {
        Self {
            metadata,
            deep,
            tables: Default::default(),
        }
    }
}

#[async_trait]
impl SchemaProvider for DruidSchema {
    fn table_names(&self) -> Vec<String> {
        self.metadata.datasource_names()
    }

    async fn table(
        &self,
        name: &str,
    ) -> Result<Option<Arc<dyn TableProvider>>, datafusion::error::DataFusionError> {
        if !self.metadata.has_datasource_now(name).await? {
            return Ok(None);
        }
        let fingerprint = self.metadata.segments_fingerprint(name).await?;
        if let Ok(tables) = self.tables.lock()
            && let Some((seen, table)) = tables.get(name)
            && *seen == fingerprint
        {
            return Ok(Some(Arc::clone(table) as Arc<dyn TableProvider>));
        }
        let table = Arc::new(DatasourceTable::load(name, &self.metadata, &self.deep).await?);
        if let Ok(mut tables) = self.tables.lock() {
            tables.insert(name.to_string(), (fingerprint, Arc::clone(&table)));
        }
        Ok(Some(table))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.metadata.has_datasource(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::{ShardSpec, version_string};
    use datafusion::datasource::physical_plan::FileScanConfig;
    use datafusion::prelude::SessionContext;
    use grove_common::Interval;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    fn seg(interval: Interval, version: i64, shard_spec: ShardSpec, rows: u64) -> DataSegment {
        DataSegment {
            data_source: "t".into(),
            interval,
            version: version_string(version),
            path: format!(
                "t/{}_{}_{version}_{}.parquet",
                interval.start,
                interval.end,
                shard_spec.partition_num()
            ),
            shard_spec,
            load_spec: serde_json::Value::Null,
            dimensions: vec!["page".into()],
            columns: vec![
                crate::segment::SegmentColumn {
                    name: TIME_COLUMN.into(),
                    native_type: "LONG".into(),
                },
                crate::segment::SegmentColumn {
                    name: "page".into(),
                    native_type: "STRING".into(),
                },
            ],
            size: 100,
            num_rows: rows,
            used: true,
        }
    }

    fn range(p: u32, start: Option<&str>, end: Option<&str>) -> ShardSpec {
        let bound = |b: Option<&str>| b.map(|s| vec![Some(s.to_string())]);
        ShardSpec::Range {
            dimensions: vec!["page".into()],
            start: bound(start),
            end: bound(end),
            partition_num: p,
            num_core_partitions: 3,
        }
    }

    /// Three days of three range partitions each ([-, "h"), ["h", "p"), ["p", -)), and a
    /// newer HOUR segment over 10:00 of the second day.
    fn table(dir: &std::path::Path) -> DatasourceTable {
        let mut used = Vec::new();
        for d in 0..3 {
            let day = Interval::new(d * DAY, (d + 1) * DAY);
            used.push(seg(day, 1, range(0, None, Some("h")), 10));
            used.push(seg(day, 1, range(1, Some("h"), Some("p")), 10));
            used.push(seg(day, 1, range(2, Some("p"), None), 10));
        }
        let hour = Interval::new(DAY + 10 * HOUR, DAY + 11 * HOUR);
        used.push(seg(
            hour,
            2,
            ShardSpec::Numbered {
                partition_num: 0,
                partitions: 1,
            },
            4,
        ));
        let deep = DeepStorage::local(dir).unwrap();
        DatasourceTable::new("t", used, &deep)
    }

    /// Plans `sql` and returns the files its segment scans read and the scans recorded.
    async fn plan(sql: &str) -> (Vec<String>, Vec<Arc<SegmentScan>>, Arc<dyn ExecutionPlan>) {
        let dir = tempfile::tempdir().unwrap();
        let scans = Arc::new(SegmentScans::default());
        let config = datafusion::prelude::SessionConfig::new()
            .with_target_partitions(4)
            .with_extension(Arc::clone(&scans));
        let ctx = SessionContext::new_with_config(config);
        ctx.register_table("t", Arc::new(table(dir.path())))
            .unwrap();
        let physical = ctx
            .sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let mut files = Vec::new();
        let mut stack = vec![Arc::clone(&physical)];
        while let Some(p) = stack.pop() {
            if let Some(ds) = p.downcast_ref::<DataSourceExec>()
                && let Some(config) = ds.data_source().downcast_ref::<FileScanConfig>()
            {
                for g in &config.file_groups {
                    files.extend(g.iter().map(|f| f.object_meta.location.to_string()));
                }
            }
            stack.extend(p.children().into_iter().cloned());
        }
        files.sort();
        (files, scans.scans(), physical)
    }

    #[tokio::test]
    async fn time_filters_prune_segments() {
        let (files, scans, _) = plan(
            "SELECT * FROM t WHERE __time >= TIMESTAMP '1970-01-02 00:00:00' AND __time < TIMESTAMP '1970-01-02 10:00:00'",
        )
        .await;
        // Day 2's three range partitions; not the HOUR segment (10:00-11:00).
        assert_eq!(files.len(), 3, "{files:?}");
        assert!(
            files
                .iter()
                .all(|f| f.contains(&format!("/{DAY}_{}_", 2 * DAY)))
        );
        assert_eq!(scans.len(), 1);
        assert_eq!(scans[0].total_files(), 10);
        assert_eq!(scans[0].planned_files(), 3);
        // Nothing ran yet: nothing opened.
        assert_eq!(scans[0].files(), 0);

        let (files, _, _) = plan(
            "SELECT * FROM t WHERE __time IN (TIMESTAMP '1970-01-01 05:00:00', TIMESTAMP '1970-01-02 10:30:00') \
             OR __time BETWEEN TIMESTAMP '1970-01-03 23:00:00' AND TIMESTAMP '1970-01-03 23:59:59'",
        )
        .await;
        // Day 1 (3), the HOUR segment, day 3 (3).
        assert_eq!(files.len(), 7, "{files:?}");
        let (files, _, _) =
            plan("SELECT * FROM t WHERE __time > TIMESTAMP '2000-01-01 00:00:00'").await;
        assert!(files.is_empty());
    }

    #[tokio::test]
    async fn range_filters_prune_segments() {
        let (files, scans, physical) = plan("SELECT * FROM t WHERE page = 'm'").await;
        // Partition 1 of each day, plus the HOUR segment (numbered: not prunable).
        assert_eq!(files.len(), 4, "{files:?}");
        assert_eq!(scans[0].planned_files(), 4);
        // Inside the files, row groups and pages are pruned by their statistics and the
        // filter is applied while decoding.
        let text = datafusion::physical_plan::displayable(physical.as_ref())
            .indent(true)
            .to_string();
        assert!(text.contains("pruning_predicate="), "{text}");
        assert!(text.contains("page_min@"), "{text}");
        let (files, _, _) = plan("SELECT * FROM t WHERE page IN ('a', 'z')").await;
        assert_eq!(files.len(), 7, "{files:?}");
        let (files, _, _) = plan("SELECT * FROM t WHERE page IS NULL").await;
        assert_eq!(files.len(), 4, "{files:?}");
        let (files, _, _) = plan(
            "SELECT * FROM t WHERE page >= 'h' AND page < 'p' AND __time < TIMESTAMP '1970-01-02'",
        )
        .await;
        assert_eq!(files.len(), 1, "{files:?}");
        // Not a range-dimension filter: nothing pruned.
        let (files, _, _) = plan("SELECT * FROM t WHERE page <> 'm'").await;
        assert_eq!(files.len(), 10, "{files:?}");
    }

    #[tokio::test]
    async fn partially_overshadowed_segment_is_filtered_to_its_visible_parts() {
        let (files, _, physical) = plan("SELECT page FROM t").await;
        assert_eq!(files.len(), 10);
        let text = datafusion::physical_plan::displayable(physical.as_ref())
            .indent(true)
            .to_string();
        assert!(text.contains("UnionExec"), "{text}");
        // The filter to the visible parts (10:00-11:00 of day 2 hidden) is pushed into
        // the partial segments' scans.
        let hidden = format!(
            "__time@0 >= {DAY} AND __time@0 < {} OR __time@0 >= {} AND __time@0 < {}",
            DAY + 10 * HOUR,
            DAY + 11 * HOUR,
            2 * DAY
        );
        assert_eq!(text.matches(&hidden).count(), 3, "{text}");
        // Exact row count only without the partial segment.
        let dir = tempfile::tempdir().unwrap();
        let t = table(dir.path());
        assert_eq!(t.statistics().unwrap().num_rows, Precision::Inexact(94));
        assert_eq!(t.segments().iter().filter(|s| s.is_partial()).count(), 3);
    }

    /// Row counts of the plan's segment scans.
    fn scan_rows(physical: Arc<dyn ExecutionPlan>) -> Vec<Precision<usize>> {
        let mut stack = vec![physical];
        let mut out = Vec::new();
        while let Some(p) = stack.pop() {
            if p.downcast_ref::<DataSourceExec>().is_some() {
                let stats = datafusion::physical_plan::statistics::StatisticsContext::new()
                    .compute(
                        p.as_ref(),
                        &datafusion::physical_plan::statistics::StatisticsArgs::new(),
                    )
                    .unwrap();
                out.push(stats.num_rows);
            }
            stack.extend(p.children().into_iter().cloned());
        }
        out.sort_by_key(|p| format!("{p:?}"));
        out
    }

    #[tokio::test]
    async fn whole_segments_have_exact_row_counts() {
        // The pushed-down filter makes the count an upper bound.
        let (_, _, physical) =
            plan("SELECT * FROM t WHERE page = 'a' AND __time < TIMESTAMP '1970-01-02'").await;
        assert_eq!(scan_rows(physical), vec![Precision::Inexact(10)]);
        // Unfiltered: exact for the 7 whole segments (6 x 10 rows + 4); each partial
        // segment's scan is filtered to its visible parts.
        let (_, _, physical) = plan("SELECT * FROM t").await;
        assert_eq!(
            scan_rows(physical),
            vec![
                Precision::Exact(64),
                Precision::Inexact(10),
                Precision::Inexact(10),
                Precision::Inexact(10)
            ]
        );
        let (_, _, physical) =
            plan("SELECT COUNT(*) FROM t WHERE __time < TIMESTAMP '1970-01-02'").await;
        let text = datafusion::physical_plan::displayable(physical.as_ref())
            .indent(true)
            .to_string();
        assert!(text.contains("DataSourceExec"), "{text}");
    }
}
