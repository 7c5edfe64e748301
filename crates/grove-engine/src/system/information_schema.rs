//! Druid's upper-case `INFORMATION_SCHEMA`: `SCHEMATA`, `TABLES`, `COLUMNS` and
//! `ROUTINES` of the `druid` catalog, read from the session's catalog list and function
//! registry at scan time.
//!
//! Schemas and tables are listed in name order (Calcite's sorted sub-schema and table
//! names). `COLUMNS` describes each column as Druid's Calcite types do: `__time` is
//! `TIMESTAMP NOT NULL` (precision 3), strings `VARCHAR` in `UTF-16LE`, longs `BIGINT`,
//! complex columns `COMPLEX<name>`; every value but `JDBC_TYPE` is text, and
//! `ORDINAL_POSITION` is 0-based, as in Druid's code.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session, TableProvider};
use datafusion::common::{DataFusionError, Result, plan_err};
use datafusion::datasource::TableType;
use datafusion::logical_expr::{Signature, TypeSignature};
use grove_common::types::{ComplexType, sql_type_name};

use super::{
    Cell, Columns, INFORMATION_SCHEMA, Kind, LOOKUP_SCHEMA, SYS_SCHEMA, SystemRows, SystemTable,
    VIEW_SCHEMA,
};
use crate::DRUID_SCHEMA;

use Kind::{Bigint, Varchar};

const SCHEMATA: Columns = &[
    ("CATALOG_NAME", Varchar),
    ("SCHEMA_NAME", Varchar),
    ("SCHEMA_OWNER", Varchar),
    ("DEFAULT_CHARACTER_SET_CATALOG", Varchar),
    ("DEFAULT_CHARACTER_SET_SCHEMA", Varchar),
    ("DEFAULT_CHARACTER_SET_NAME", Varchar),
    ("SQL_PATH", Varchar),
];

const TABLES: Columns = &[
    ("TABLE_CATALOG", Varchar),
    ("TABLE_SCHEMA", Varchar),
    ("TABLE_NAME", Varchar),
    ("TABLE_TYPE", Varchar),
    ("IS_JOINABLE", Varchar),
    ("IS_BROADCAST", Varchar),
];

const COLUMNS: Columns = &[
    ("TABLE_CATALOG", Varchar),
    ("TABLE_SCHEMA", Varchar),
    ("TABLE_NAME", Varchar),
    ("COLUMN_NAME", Varchar),
    ("ORDINAL_POSITION", Varchar),
    ("COLUMN_DEFAULT", Varchar),
    ("IS_NULLABLE", Varchar),
    ("DATA_TYPE", Varchar),
    ("CHARACTER_MAXIMUM_LENGTH", Varchar),
    ("CHARACTER_OCTET_LENGTH", Varchar),
    ("NUMERIC_PRECISION", Varchar),
    ("NUMERIC_PRECISION_RADIX", Varchar),
    ("NUMERIC_SCALE", Varchar),
    ("DATETIME_PRECISION", Varchar),
    ("CHARACTER_SET_NAME", Varchar),
    ("COLLATION_NAME", Varchar),
    ("JDBC_TYPE", Bigint),
];

const ROUTINES: Columns = &[
    ("ROUTINE_CATALOG", Varchar),
    ("ROUTINE_SCHEMA", Varchar),
    ("ROUTINE_NAME", Varchar),
    ("ROUTINE_TYPE", Varchar),
    ("IS_AGGREGATOR", Varchar),
    ("SIGNATURES", Varchar),
];

/// Druid's character set and collation for every `VARCHAR` (Calcite's defaults as
/// Druid's `saffron.properties` sets them).
const CHARSET: &str = "UTF-16LE";
const COLLATION: &str = "UTF-16LE$en_US$primary";

/// Calcite's `RelDataType.SCALE_NOT_SPECIFIED`: the scale Druid reports for `DOUBLE`
/// and `FLOAT` (Calcite only defaults the scale of exact numeric types to 0).
const SCALE_NOT_SPECIFIED: i64 = i32::MIN as i64;

/// The tables of `INFORMATION_SCHEMA`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InfoTable {
    Columns,
    Routines,
    Schemata,
    Tables,
}

/// By name, sorted.
const INFO_TABLES: &[(&str, InfoTable)] = &[
    ("COLUMNS", InfoTable::Columns),
    ("ROUTINES", InfoTable::Routines),
    ("SCHEMATA", InfoTable::Schemata),
    ("TABLES", InfoTable::Tables),
];

/// Druid's `INFORMATION_SCHEMA` over one catalog of the session.
#[derive(Debug)]
pub(crate) struct InformationSchema {
    catalog: String,
}

impl InformationSchema {
    /// The information schema of the catalog named `catalog`.
    pub(crate) fn new(catalog: &str) -> Self {
        Self {
            catalog: catalog.to_string(),
        }
    }
}

#[async_trait]
impl SchemaProvider for InformationSchema {
    fn table_names(&self) -> Vec<String> {
        INFO_TABLES.iter().map(|(n, _)| n.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        Ok(INFO_TABLES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, table)| {
                Arc::new(SystemTable::new(InfoRows {
                    table: *table,
                    catalog: self.catalog.clone(),
                })) as Arc<dyn TableProvider>
            }))
    }

    fn table_exist(&self, name: &str) -> bool {
        INFO_TABLES.iter().any(|(n, _)| *n == name)
    }
}

#[derive(Debug)]
struct InfoRows {
    table: InfoTable,
    catalog: String,
}

#[async_trait]
impl SystemRows for InfoRows {
    fn columns(&self) -> Columns {
        match self.table {
            InfoTable::Columns => COLUMNS,
            InfoTable::Routines => ROUTINES,
            InfoTable::Schemata => SCHEMATA,
            InfoTable::Tables => TABLES,
        }
    }

    async fn rows(&self, session: &dyn Session) -> Result<Vec<Vec<Cell>>> {
        let catalog = || match session.catalog_list().catalog(&self.catalog) {
            Some(catalog) => Ok(catalog),
            None => plan_err!("catalog '{}' not found", self.catalog),
        };
        match self.table {
            InfoTable::Schemata => Ok(schemas(catalog()?.as_ref())
                .into_iter()
                .map(|(name, _)| {
                    let mut row = vec![Cell::from(self.catalog.as_str()), Cell::from(name)];
                    row.resize(SCHEMATA.len(), Cell::Null);
                    row
                })
                .collect()),
            InfoTable::Tables => self.table_rows(catalog()?.as_ref()).await,
            InfoTable::Columns => self.column_rows(catalog()?.as_ref()).await,
            InfoTable::Routines => Ok(routine_rows(&self.catalog, session)),
        }
    }
}

/// The catalog's schemas, sorted by name.
fn schemas(catalog: &dyn CatalogProvider) -> Vec<(String, Arc<dyn SchemaProvider>)> {
    let mut names = catalog.schema_names();
    names.sort();
    names
        .into_iter()
        .filter_map(|n| catalog.schema(&n).map(|s| (n, s)))
        .collect()
}

/// A schema's table names, sorted.
fn table_names(schema: &dyn SchemaProvider) -> Vec<String> {
    let mut names = schema.table_names();
    names.sort();
    names
}

impl InfoRows {
    async fn table_rows(&self, catalog: &dyn CatalogProvider) -> Result<Vec<Vec<Cell>>> {
        let mut rows = Vec::new();
        for (schema_name, schema) in schemas(catalog) {
            let lookup = schema_name == LOOKUP_SCHEMA;
            let yes_no = |b: bool| Cell::from(if b { "YES" } else { "NO" });
            for table in table_names(schema.as_ref()) {
                let table_type = match schema_name.as_str() {
                    SYS_SCHEMA | INFORMATION_SCHEMA => "SYSTEM_TABLE",
                    DRUID_SCHEMA | LOOKUP_SCHEMA => "TABLE",
                    VIEW_SCHEMA => "VIEW",
                    // Schemas an embedding program registered itself.
                    _ => match schema.table_type(&table).await? {
                        Some(TableType::View) => "VIEW",
                        Some(_) => "TABLE",
                        None => continue,
                    },
                };
                rows.push(vec![
                    Cell::from(self.catalog.as_str()),
                    Cell::from(schema_name.as_str()),
                    Cell::from(table),
                    Cell::from(table_type),
                    yes_no(lookup),
                    yes_no(lookup),
                ]);
            }
        }
        Ok(rows)
    }

    async fn column_rows(&self, catalog: &dyn CatalogProvider) -> Result<Vec<Vec<Cell>>> {
        let mut rows = Vec::new();
        for (schema_name, schema) in schemas(catalog) {
            for table_name in table_names(schema.as_ref()) {
                // A datasource dropped since the listing is skipped.
                let Some(table) = schema.table(&table_name).await? else {
                    continue;
                };
                for (i, field) in table.schema().fields().iter().enumerate() {
                    let mut row = vec![
                        Cell::from(self.catalog.as_str()),
                        Cell::from(schema_name.as_str()),
                        Cell::from(table_name.as_str()),
                        Cell::from(field.name().as_str()),
                        Cell::from(i.to_string()),
                    ];
                    row.extend(column_description(field));
                    rows.push(row);
                }
            }
        }
        Ok(rows)
    }
}

/// `COLUMN_DEFAULT` through `JDBC_TYPE` for one column.
fn column_description(field: &Field) -> Vec<Cell> {
    let t = SqlColumnType::of(field);
    let text = |v: Option<i64>| Cell::from(v.map(|n| n.to_string()));
    let character = t.name == "VARCHAR";
    vec![
        Cell::from(""),
        Cell::from(if field.is_nullable() { "YES" } else { "NO" }),
        Cell::from(t.name),
        Cell::Null,
        Cell::Null,
        text(t.numeric.map(|(precision, _)| precision)),
        Cell::from(t.numeric.map(|_| "10")),
        text(t.numeric.map(|(_, scale)| scale)),
        text(t.datetime_precision),
        Cell::from(character.then_some(CHARSET)),
        Cell::from(character.then_some(COLLATION)),
        Cell::from(t.jdbc),
    ]
}

/// How Druid's Calcite types describe an Arrow column.
struct SqlColumnType {
    /// `DATA_TYPE`: the SQL type name, or `COMPLEX<name>`.
    name: String,
    /// `java.sql.Types` code.
    jdbc: i64,
    /// Precision and scale of numeric types.
    numeric: Option<(i64, i64)>,
    /// Fractional-second digits of TIMESTAMP (and 0 for DATE).
    datetime_precision: Option<i64>,
}

impl SqlColumnType {
    fn of(field: &Field) -> Self {
        if let Some(complex) = ComplexType::of_field(field) {
            return Self {
                name: complex.native_name().to_string(),
                jdbc: 1111,
                numeric: None,
                datetime_precision: None,
            };
        }
        let name = sql_type_name(field.data_type());
        let (jdbc, numeric, datetime_precision) = match name {
            "VARCHAR" => (12, None, None),
            "BIGINT" => (-5, Some((19, 0)), None),
            "DOUBLE" => (8, Some((15, SCALE_NOT_SPECIFIED)), None),
            "FLOAT" => (6, Some((15, SCALE_NOT_SPECIFIED)), None),
            "BOOLEAN" => (16, None, None),
            "TIMESTAMP" => (93, None, Some(timestamp_precision(field.data_type()))),
            "DATE" => (91, None, Some(0)),
            "ARRAY" => (2003, None, None),
            "NULL" => (0, None, None),
            _ => (1111, None, None),
        };
        Self {
            name: name.to_string(),
            jdbc,
            numeric,
            datetime_precision,
        }
    }
}

/// Fractional-second digits of an Arrow timestamp (3 for Druid's milliseconds).
fn timestamp_precision(t: &DataType) -> i64 {
    match t {
        DataType::Timestamp(TimeUnit::Second, _) => 0,
        DataType::Timestamp(TimeUnit::Microsecond, _) => 6,
        DataType::Timestamp(TimeUnit::Nanosecond, _) => 9,
        _ => 3,
    }
}

/// `ROUTINES`: the session's scalar and aggregate functions (aliases included), by
/// upper-case name.
fn routine_rows(catalog: &str, session: &dyn Session) -> Vec<Vec<Cell>> {
    // (name, is aggregate) -> signatures
    let mut routines: BTreeMap<(String, bool), Option<String>> = BTreeMap::new();
    for (name, udf) in session.scalar_functions() {
        let doc = udf.documentation().map(|d| d.syntax_example.clone());
        routines.insert(
            (name.to_uppercase(), false),
            doc.or_else(|| signature_text(name, udf.signature())),
        );
    }
    for (name, udaf) in session.aggregate_functions() {
        let doc = udaf.documentation().map(|d| d.syntax_example.clone());
        routines.insert(
            (name.to_uppercase(), true),
            doc.or_else(|| signature_text(name, udaf.signature())),
        );
    }
    routines
        .into_iter()
        .map(|((name, aggregate), signatures)| {
            vec![
                Cell::from(catalog),
                Cell::from(INFORMATION_SCHEMA),
                Cell::from(name),
                Cell::from("FUNCTION"),
                Cell::from(if aggregate { "YES" } else { "NO" }),
                Cell::from(signatures),
            ]
        })
        .collect()
}

/// `NAME(types)`, one line per accepted signature; `None` when the function checks its
/// arguments itself (a user-defined signature says nothing readable).
fn signature_text(name: &str, signature: &Signature) -> Option<String> {
    let upper = name.to_uppercase();
    let lines: Vec<String> = flatten(&signature.type_signature)
        .into_iter()
        .filter(|s| !matches!(s, TypeSignature::UserDefined))
        .flat_map(|s| match s {
            TypeSignature::Nullary => vec![String::new()],
            other => other.to_string_repr(),
        })
        .map(|args| format!("{upper}({args})"))
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

fn flatten(signature: &TypeSignature) -> Vec<&TypeSignature> {
    match signature {
        TypeSignature::OneOf(all) => all.iter().flat_map(flatten).collect(),
        other => vec![other],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::Volatility;
    use grove_common::types::{TIME_COLUMN, TIMESTAMP_TYPE};

    fn texts(cells: &[Cell]) -> Vec<String> {
        cells
            .iter()
            .map(|c| match c {
                Cell::Null => "NULL".to_string(),
                Cell::Str(s) => s.clone(),
                Cell::Long(n) => n.to_string(),
            })
            .collect()
    }

    #[test]
    fn column_types_follow_druid() {
        let d = |f: Field| texts(&column_description(&f)).join(" ");
        assert_eq!(
            d(Field::new(TIME_COLUMN, TIMESTAMP_TYPE, false)),
            " NO TIMESTAMP NULL NULL NULL NULL NULL 3 NULL NULL 93"
        );
        assert_eq!(
            d(Field::new("s", DataType::Utf8, true)),
            " YES VARCHAR NULL NULL NULL NULL NULL NULL UTF-16LE UTF-16LE$en_US$primary 12"
        );
        assert_eq!(
            d(Field::new("n", DataType::Int64, true)),
            " YES BIGINT NULL NULL 19 10 0 NULL NULL NULL -5"
        );
        assert_eq!(
            d(Field::new("x", DataType::Float64, true)),
            " YES DOUBLE NULL NULL 15 10 -2147483648 NULL NULL NULL 8"
        );
        assert_eq!(
            d(Field::new("f", DataType::Float32, true)),
            " YES FLOAT NULL NULL 15 10 -2147483648 NULL NULL NULL 6"
        );
        assert_eq!(
            d(ComplexType::HllSketch.field("h", true)),
            " YES COMPLEX<HLLSketch> NULL NULL NULL NULL NULL NULL NULL NULL 1111"
        );
        let list = DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)));
        assert_eq!(
            d(Field::new("a", list, true)),
            " YES ARRAY NULL NULL NULL NULL NULL NULL NULL NULL 2003"
        );
    }

    #[test]
    fn signatures_are_readable_or_null() {
        let exact = Signature::exact(vec![DataType::Int64, DataType::Utf8], Volatility::Immutable);
        assert_eq!(
            signature_text("f", &exact).as_deref(),
            Some("F(Int64, Utf8)")
        );
        let one_of = Signature::one_of(
            vec![
                TypeSignature::Nullary,
                TypeSignature::Exact(vec![DataType::Int64]),
                TypeSignature::UserDefined,
            ],
            Volatility::Immutable,
        );
        assert_eq!(
            signature_text("g", &one_of).as_deref(),
            Some("G()\nG(Int64)")
        );
        assert_eq!(
            signature_text("h", &Signature::user_defined(Volatility::Immutable)),
            None
        );
    }
}
