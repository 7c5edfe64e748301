//! Datasources as DataFusion tables: the `druid` schema lists datasources from the
//! metadata store, and each [`DatasourceTable`] scans exactly its visible segments.
//!
//! ```text
//! used segments ─▶ visible (newest version per interval) ─▶ pruned by __time filters
//!               ─▶ Parquet scan (file groups spread over target partitions)
//! ```

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use grove_common::Interval;
use grove_common::time::{ETERNITY_END, ETERNITY_START};
use grove_common::types::{ComplexType, DruidType, TIME_COLUMN, TIMESTAMP_TYPE};

use crate::deep::DeepStorage;
use crate::metadata::MetadataStore;
use crate::segment::DataSegment;

/// The visible segments among used ones: a segment is overshadowed when another used
/// segment with a newer version covers its whole interval.
pub fn visible_segments(used: Vec<DataSegment>) -> Vec<DataSegment> {
    let overshadowed = |s: &DataSegment| {
        used.iter()
            .any(|o| o.interval.contains(&s.interval) && version_newer(&o.version, &s.version))
    };
    let keep: Vec<bool> = used.iter().map(|s| !overshadowed(s)).collect();
    used.into_iter()
        .zip(keep)
        .filter_map(|(s, k)| k.then_some(s))
        .collect()
}

fn version_newer(a: &str, b: &str) -> bool {
    let ms = |v: &str| grove_common::time::parse_iso_millis(v).unwrap_or(i64::MIN);
    ms(a) > ms(b)
}

/// The schema of a datasource: the union of its segments' columns, `__time` first.
/// Where segments disagree on a type, the wider one wins (LONG < FLOAT < DOUBLE < STRING).
/// Complex columns (`COMPLEX<HLLSketch>`) are binary fields marked with their type; a
/// column that is complex in one segment and primitive in another keeps the first type
/// seen.
pub fn union_schema(segments: &[DataSegment]) -> SchemaRef {
    enum ColumnType {
        Primitive(DruidType),
        Complex(ComplexType),
    }
    let mut columns: Vec<(String, ColumnType)> = Vec::new();
    let mut has_time = false;
    for seg in segments {
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
    if has_time || segments.is_empty() {
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
    segments: Vec<DataSegment>,
    schema: SchemaRef,
    deep: DeepStorage,
}

impl DatasourceTable {
    /// Loads the visible segments of `name`.
    pub async fn load(name: &str, metadata: &MetadataStore, deep: &DeepStorage) -> Result<Self> {
        let segments = visible_segments(metadata.used_segments(name).await?);
        let schema = union_schema(&segments);
        Ok(Self {
            name: name.to_string(),
            segments,
            schema,
            deep: deep.clone(),
        })
    }

    /// The visible segments.
    pub fn segments(&self) -> &[DataSegment] {
        &self.segments
    }

    /// The datasource name.
    pub fn name(&self) -> &str {
        &self.name
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

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let range = time_range(filters);
        let files: Vec<&DataSegment> = self
            .segments
            .iter()
            .filter(|s| s.interval.overlaps(&range))
            .collect();
        if files.is_empty() {
            let projected = datafusion::common::project_schema(&self.schema, projection)?;
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        let partitions = state.config().target_partitions().clamp(1, files.len());
        let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); partitions];
        for (i, seg) in files.iter().enumerate() {
            groups[i % partitions].push(PartitionedFile::new(seg.path.clone(), seg.size));
        }
        let mut source = ParquetSource::new(Arc::clone(&self.schema))
            .with_table_parquet_options(datafusion::common::config::TableParquetOptions {
                global: state.config_options().execution.parquet.clone(),
                ..Default::default()
            })
            .with_pushdown_filters(true)
            .with_enable_page_index(true);
        if let Some(predicate) = conjunction(filters.iter().cloned()) {
            let df_schema = DFSchema::try_from(Arc::clone(&self.schema))?;
            let physical = state.create_physical_expr(predicate, &df_schema)?;
            source = source.with_predicate(physical);
        }
        let config = FileScanConfigBuilder::new(self.deep.url().clone(), Arc::new(source))
            .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

/// The `__time` range implied by simple filters (`__time >= x AND __time < y`, ...).
fn time_range(filters: &[Expr]) -> Interval {
    let mut range = Interval::new(ETERNITY_START, ETERNITY_END);
    for f in filters {
        narrow(f, &mut range);
    }
    range
}

fn narrow(expr: &Expr, range: &mut Interval) {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else {
        return;
    };
    if *op == Operator::And {
        narrow(left, range);
        narrow(right, range);
        return;
    }
    let (op, value) = match (left.as_ref(), right.as_ref()) {
        (c, v) if is_time_column(c) => (*op, v),
        (v, c) if is_time_column(c) => match op.swap() {
            Some(swapped) => (swapped, v),
            None => return,
        },
        _ => return,
    };
    let Some(ms) = literal_millis(value) else {
        return;
    };
    match op {
        Operator::Gt => range.start = range.start.max(ms.saturating_add(1)),
        Operator::GtEq => range.start = range.start.max(ms),
        Operator::Lt => range.end = range.end.min(ms),
        Operator::LtEq => range.end = range.end.min(ms.saturating_add(1)),
        Operator::Eq => {
            range.start = range.start.max(ms);
            range.end = range.end.min(ms.saturating_add(1));
        }
        _ => {}
    }
}

fn literal_millis(expr: &Expr) -> Option<i64> {
    match expr {
        Expr::Literal(v, _) => scalar_millis(v),
        _ => None,
    }
}

fn is_time_column(expr: &Expr) -> bool {
    match expr {
        Expr::Column(c) => c.name == TIME_COLUMN,
        Expr::Cast(c) => is_time_column(&c.expr),
        Expr::TryCast(c) => is_time_column(&c.expr),
        _ => false,
    }
}

fn scalar_millis(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::TimestampMillisecond(Some(x), _) => Some(*x),
        ScalarValue::TimestampSecond(Some(x), _) => x.checked_mul(1000),
        ScalarValue::TimestampMicrosecond(Some(x), _) => Some(x.div_euclid(1000)),
        ScalarValue::TimestampNanosecond(Some(x), _) => Some(x.div_euclid(1_000_000)),
        _ => None,
    }
}

/// The `druid` schema: one table per datasource.
#[derive(Debug)]
pub struct DruidSchema {
    metadata: Arc<MetadataStore>,
    deep: DeepStorage,
}

impl DruidSchema {
    /// A schema over the metadata store.
    pub fn new(metadata: Arc<MetadataStore>, deep: DeepStorage) -> Self {
        Self { metadata, deep }
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
        if !self.metadata.has_datasource(name) {
            return Ok(None);
        }
        let table = DatasourceTable::load(name, &self.metadata, &self.deep).await?;
        Ok(Some(Arc::new(table)))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.metadata.has_datasource(name)
    }
}
