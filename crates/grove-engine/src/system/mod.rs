//! Druid's metadata schemas, registered in the `druid` catalog beside the datasources:
//!
//! | schema | tables |
//! |---|---|
//! | `sys` | `segments`, `server_segments`, `servers`, `tasks`, `supervisors` |
//! | `INFORMATION_SCHEMA` | `COLUMNS`, `ROUTINES`, `SCHEMATA`, `TABLES` |
//! | `lookup`, `view` | none: Grove has no lookups and no view manager |
//!
//! Column names, order and types follow the newest Druid (`SystemSchema`,
//! `InformationSchema`): every column is nullable, Druid's `BIGINT` columns are `Int64`
//! (flags are 0/1, never booleans) and its `VARCHAR` columns `Utf8`; JSON-valued columns
//! hold compact JSON text.
//!
//! Every table computes its rows when it is scanned (from the metadata store, the
//! catalog and the session), so what an INSERT or REPLACE just published shows at once.
//!
//! ```text
//! SELECT ... FROM sys.segments ─▶ SystemTable::scan ─▶ SystemRows::rows(session)
//!                                   ─▶ one RecordBatch ─▶ MemorySourceConfig
//! ```
//!
//! Grove is a single process playing every Druid role. The rows that name a server
//! (`sys.servers`, `sys.server_segments`, the location of running tasks) use the
//! address set with [`crate::GroveContext::set_server_address`]; embedded use, where no
//! server listens, reports the default `localhost:8888`.

mod information_schema;
mod sys;

use std::sync::{Arc, RwLock};

use arrow::array::{ArrayRef, Int64Builder, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session, TableProvider};
use datafusion::common::{DataFusionError, Result, internal_err};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::{DataSourceExec, MemorySourceConfig};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use grove_store::MetadataStore;

pub(crate) use information_schema::InformationSchema;
pub(crate) use sys::SysSchema;

/// Name of Druid's system schema.
pub(crate) const SYS_SCHEMA: &str = "sys";
/// Name of Druid's (upper-case) information schema; DataFusion's own lower-case
/// `information_schema` is a different schema.
pub(crate) const INFORMATION_SCHEMA: &str = "INFORMATION_SCHEMA";
/// Druid's schema of lookups (one table per lookup); always empty in Grove.
pub(crate) const LOOKUP_SCHEMA: &str = "lookup";
/// Druid's schema of views; always empty in Grove.
pub(crate) const VIEW_SCHEMA: &str = "view";

/// The host and port the embedded process reports when no server address was set.
pub(crate) const DEFAULT_HOST: &str = "localhost";
/// See [`DEFAULT_HOST`]: Druid's default router/broker port.
pub(crate) const DEFAULT_PORT: u16 = 8888;

/// Where this process serves Druid's API, and since when.
#[derive(Debug, Clone)]
pub(crate) struct ServerInfo {
    /// Host name or IP address.
    pub(crate) host: String,
    /// Plaintext port.
    pub(crate) port: u16,
    /// When the process started (ms).
    pub(crate) started_ms: i64,
}

impl ServerInfo {
    /// `localhost:8888`, started now.
    pub(crate) fn new() -> Self {
        Self {
            host: DEFAULT_HOST.to_string(),
            port: DEFAULT_PORT,
            started_ms: chrono::Utc::now().timestamp_millis(),
        }
    }

    /// `host:port` as Druid's `DruidNode.getHostAndPort` writes it (IPv6 hosts in
    /// brackets).
    pub(crate) fn address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The server address, shared by every clone of a [`crate::GroveContext`].
pub(crate) type SharedServerInfo = Arc<RwLock<ServerInfo>>;

/// A snapshot of the shared server address.
pub(crate) fn server_info(shared: &SharedServerInfo) -> ServerInfo {
    match shared.read() {
        Ok(info) => info.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// Registers `sys`, `INFORMATION_SCHEMA`, `lookup` and `view` in `catalog` (whose name,
/// `catalog_name`, is what `INFORMATION_SCHEMA` reports and looks up at scan time).
pub(crate) fn register_schemas(
    catalog: &dyn CatalogProvider,
    catalog_name: &str,
    metadata: Arc<MetadataStore>,
    server: SharedServerInfo,
) -> Result<()> {
    catalog.register_schema(SYS_SCHEMA, Arc::new(SysSchema::new(metadata, server)))?;
    catalog.register_schema(
        INFORMATION_SCHEMA,
        Arc::new(InformationSchema::new(catalog_name)),
    )?;
    catalog.register_schema(LOOKUP_SCHEMA, Arc::new(EmptySchema))?;
    catalog.register_schema(VIEW_SCHEMA, Arc::new(EmptySchema))?;
    Ok(())
}

/// The SQL type of a system-table column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `VARCHAR` (Arrow `Utf8`).
    Varchar,
    /// `BIGINT` (Arrow `Int64`).
    Bigint,
}

/// A system table's columns: name and type, in order.
pub(crate) type Columns = &'static [(&'static str, Kind)];

/// The Arrow schema of a system table: every column nullable.
pub(crate) fn schema_of(columns: Columns) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, kind)| {
                let t = match kind {
                    Kind::Varchar => DataType::Utf8,
                    Kind::Bigint => DataType::Int64,
                };
                Field::new(*name, t, true)
            })
            .collect::<Vec<_>>(),
    ))
}

/// One value of a system-table row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cell {
    /// SQL NULL.
    Null,
    /// A `VARCHAR` value.
    Str(String),
    /// A `BIGINT` value.
    Long(i64),
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Self::Str(s.to_string())
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Self {
        Self::Str(s)
    }
}

impl From<i64> for Cell {
    fn from(n: i64) -> Self {
        Self::Long(n)
    }
}

impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

/// A `u64` count or size as a `BIGINT` (saturating).
pub(crate) fn long(n: u64) -> Cell {
    Cell::Long(i64::try_from(n).unwrap_or(i64::MAX))
}

/// `1` or `0`: how Druid stores flags.
pub(crate) fn flag(b: bool) -> Cell {
    Cell::Long(i64::from(b))
}

/// Rows of cells as a batch of `schema`.
pub(crate) fn rows_to_batch(schema: &SchemaRef, rows: &[Vec<Cell>]) -> Result<RecordBatch> {
    let width = schema.fields().len();
    if let Some(bad) = rows.iter().find(|r| r.len() != width) {
        return internal_err!(
            "system table row has {} values, the table {} columns",
            bad.len(),
            width
        );
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(width);
    for (i, field) in schema.fields().iter().enumerate() {
        let cells = rows.iter().map(|r| &r[i]);
        let column: ArrayRef = match field.data_type() {
            DataType::Utf8 => {
                let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
                for cell in cells {
                    match cell {
                        Cell::Str(s) => b.append_value(s),
                        Cell::Null => b.append_null(),
                        Cell::Long(_) => {
                            return internal_err!("number in VARCHAR column {}", field.name());
                        }
                    }
                }
                Arc::new(b.finish())
            }
            DataType::Int64 => {
                let mut b = Int64Builder::with_capacity(rows.len());
                for cell in cells {
                    match cell {
                        Cell::Long(n) => b.append_value(*n),
                        Cell::Null => b.append_null(),
                        Cell::Str(_) => {
                            return internal_err!("string in BIGINT column {}", field.name());
                        }
                    }
                }
                Arc::new(b.finish())
            }
            other => return internal_err!("system table column of type {other}"),
        };
        columns.push(column);
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// The rows of one system table, computed when it is scanned.
#[async_trait]
pub(crate) trait SystemRows: std::fmt::Debug + Send + Sync {
    /// The table's columns.
    fn columns(&self) -> Columns;

    /// The table's rows now, each with one cell per column.
    async fn rows(&self, session: &dyn Session) -> Result<Vec<Vec<Cell>>>;
}

/// A read-only table whose rows are computed at scan time.
#[derive(Debug)]
pub(crate) struct SystemTable {
    schema: SchemaRef,
    rows: Box<dyn SystemRows>,
}

impl SystemTable {
    pub(crate) fn new(rows: impl SystemRows + 'static) -> Self {
        Self {
            schema: schema_of(rows.columns()),
            rows: Box::new(rows),
        }
    }
}

#[async_trait]
impl TableProvider for SystemTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let rows = self.rows.rows(state).await?;
        let batch = rows_to_batch(&self.schema, &rows)?;
        let source = MemorySourceConfig::try_new(
            &[vec![batch]],
            Arc::clone(&self.schema),
            projection.cloned(),
        )?
        .with_limit(limit);
        Ok(DataSourceExec::from_data_source(source))
    }
}

/// A schema that has no tables and takes none (Druid's `lookup` and `view` schemas:
/// Grove has neither lookups nor a view manager).
#[derive(Debug)]
pub(crate) struct EmptySchema;

#[async_trait]
impl SchemaProvider for EmptySchema {
    fn table_names(&self) -> Vec<String> {
        Vec::new()
    }

    async fn table(&self, _name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        Ok(None)
    }

    fn table_exist(&self, _name: &str) -> bool {
        false
    }
}

/// Total memory of the machine in bytes (`MemTotal` of `/proc/meminfo`), when known.
pub(crate) fn total_memory_bytes() -> Option<i64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: i64 = info
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_typed_nullable_columns() {
        let schema = schema_of(&[("s", Kind::Varchar), ("n", Kind::Bigint)]);
        let rows = vec![
            vec![Cell::from("a"), Cell::from(1i64)],
            vec![Cell::Null, Cell::from(None::<i64>)],
        ];
        let batch = rows_to_batch(&schema, &rows).expect("batch");
        assert_eq!(batch.num_rows(), 2);
        assert!(batch.schema().fields().iter().all(|f| f.is_nullable()));
        assert_eq!(batch.column(0).null_count(), 1);
        assert_eq!(batch.column(1).data_type(), &DataType::Int64);
        assert!(rows_to_batch(&schema, &[vec![Cell::from(1i64), Cell::Null]]).is_err());
        assert!(rows_to_batch(&schema, &[vec![Cell::Null]]).is_err());
        assert_eq!(rows_to_batch(&schema, &[]).expect("empty").num_rows(), 0);
    }

    #[test]
    fn addresses() {
        let mut info = ServerInfo::new();
        assert_eq!(info.address(), "localhost:8888");
        info.host = "::1".into();
        info.port = 9;
        assert_eq!(info.address(), "[::1]:9");
    }
}
