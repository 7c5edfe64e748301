//! The one place where Druid types meet Arrow types.
//!
//! Druid has three views of a column type: the EXTERN signature (`string`, `long`,
//! `double`, `float`), SQL type names (`VARCHAR`, `BIGINT`, ...), and native type names
//! as they appear in reports (`STRING`, `LONG`, ...). Grove stores and computes with
//! Arrow types; the mapping between all four lives here.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

/// Name of Druid's primary timestamp column.
pub const TIME_COLUMN: &str = "__time";

/// The Arrow type of `__time` and of every Druid TIMESTAMP: milliseconds, UTC by convention.
pub const TIMESTAMP_TYPE: DataType = DataType::Timestamp(TimeUnit::Millisecond, None);

/// A Druid column type, as stored in segments and reported in signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DruidType {
    /// `STRING` (SQL `VARCHAR`).
    String,
    /// `LONG` (SQL `BIGINT`; also how Druid stores TIMESTAMP and BOOLEAN).
    Long,
    /// `DOUBLE` (SQL `DOUBLE`).
    Double,
    /// `FLOAT` (SQL `FLOAT` / `REAL`).
    Float,
    /// `ARRAY<STRING>` (SQL `VARCHAR ARRAY`).
    #[serde(rename = "ARRAY<STRING>")]
    StringArray,
    /// `ARRAY<LONG>` (SQL `BIGINT ARRAY`).
    #[serde(rename = "ARRAY<LONG>")]
    LongArray,
    /// `ARRAY<DOUBLE>` (SQL `DOUBLE ARRAY`).
    #[serde(rename = "ARRAY<DOUBLE>")]
    DoubleArray,
}

impl DruidType {
    /// Parses a signature type (`string`, `long`, `ARRAY<STRING>`, ...) or a SQL type
    /// name (`VARCHAR`, `BIGINT`, `VARCHAR ARRAY`, ...), case-insensitively.
    pub fn parse(name: &str) -> Option<Self> {
        let upper = name
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace("< ", "<")
            .replace(" <", "<")
            .replace(" >", ">")
            .to_ascii_uppercase();
        let element = upper
            .strip_prefix("ARRAY<")
            .and_then(|rest| rest.strip_suffix('>'))
            .or_else(|| upper.strip_suffix(" ARRAY"));
        if let Some(element) = element {
            return match Self::parse(element)? {
                Self::String => Some(Self::StringArray),
                Self::Long => Some(Self::LongArray),
                Self::Double | Self::Float => Some(Self::DoubleArray),
                _ => None,
            };
        }
        let t = match upper.as_str() {
            "STRING" | "VARCHAR" | "CHAR" | "TEXT" => Self::String,
            "LONG" | "BIGINT" | "INTEGER" | "INT" | "SMALLINT" | "TINYINT" | "BOOLEAN" => {
                Self::Long
            }
            "DOUBLE" | "DECIMAL" | "DOUBLE PRECISION" | "NUMERIC" => Self::Double,
            "FLOAT" | "REAL" => Self::Float,
            _ => return None,
        };
        Some(t)
    }

    /// Druid's native type name: `STRING`, `LONG`, `DOUBLE`, `FLOAT`.
    pub fn native_name(&self) -> &'static str {
        match self {
            Self::String => "STRING",
            Self::Long => "LONG",
            Self::Double => "DOUBLE",
            Self::Float => "FLOAT",
            Self::StringArray => "ARRAY<STRING>",
            Self::LongArray => "ARRAY<LONG>",
            Self::DoubleArray => "ARRAY<DOUBLE>",
        }
    }

    /// Druid's SQL type name: `VARCHAR`, `BIGINT`, `DOUBLE`, `FLOAT`, `VARCHAR ARRAY`, ...
    pub fn sql_name(&self) -> &'static str {
        match self {
            Self::String => "VARCHAR",
            Self::Long => "BIGINT",
            Self::Double => "DOUBLE",
            Self::Float => "FLOAT",
            Self::StringArray => "VARCHAR ARRAY",
            Self::LongArray => "BIGINT ARRAY",
            Self::DoubleArray => "DOUBLE ARRAY",
        }
    }

    /// The Arrow type Grove uses for this Druid type (arrays are Arrow lists of
    /// nullable elements).
    pub fn arrow_type(&self) -> DataType {
        match self {
            Self::String => DataType::Utf8,
            Self::Long => DataType::Int64,
            Self::Double => DataType::Float64,
            Self::Float => DataType::Float32,
            Self::StringArray | Self::LongArray | Self::DoubleArray => {
                let element = self.element().unwrap_or(Self::String).arrow_type();
                DataType::List(Arc::new(Field::new_list_field(element, true)))
            }
        }
    }

    /// The element type of an array type; `None` for scalar types.
    pub fn element(&self) -> Option<DruidType> {
        match self {
            Self::StringArray => Some(Self::String),
            Self::LongArray => Some(Self::Long),
            Self::DoubleArray => Some(Self::Double),
            Self::String | Self::Long | Self::Double | Self::Float => None,
        }
    }

    /// The array type whose elements are of this type; `None` for array types.
    pub fn array_of(&self) -> Option<DruidType> {
        match self {
            Self::String => Some(Self::StringArray),
            Self::Long => Some(Self::LongArray),
            Self::Double | Self::Float => Some(Self::DoubleArray),
            Self::StringArray | Self::LongArray | Self::DoubleArray => None,
        }
    }
}

impl fmt::Display for DruidType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.native_name())
    }
}

/// How a computed Arrow column is stored in a segment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StorageType {
    /// The `__time` column (Arrow timestamp, milliseconds).
    Time,
    /// A regular Druid column.
    Column(DruidType),
    /// A complex column (Arrow `Binary`), such as an HLL sketch.
    Complex(ComplexType),
}

impl StorageType {
    /// The Arrow type written to segment files.
    pub fn arrow_type(&self) -> DataType {
        match self {
            Self::Time => TIMESTAMP_TYPE,
            Self::Column(t) => t.arrow_type(),
            Self::Complex(t) => t.arrow_type(),
        }
    }

    /// Druid's native type name (`LONG` for `__time`, as Druid reports it).
    pub fn native_name(&self) -> &'static str {
        match self {
            Self::Time => "LONG",
            Self::Column(t) => t.native_name(),
            Self::Complex(t) => t.native_name(),
        }
    }

    /// Druid's SQL type name (`TIMESTAMP` for `__time`).
    pub fn sql_name(&self) -> &'static str {
        match self {
            Self::Time => "TIMESTAMP",
            Self::Column(t) => t.sql_name(),
            Self::Complex(t) => t.native_name(),
        }
    }
}

/// A Druid complex column type Grove can store. Values are opaque bytes (Arrow
/// `Binary`); the field carries [`COMPLEX_TYPE_KEY`] metadata naming the type, so a
/// sketch column is told apart from arbitrary binary data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ComplexType {
    /// `COMPLEX<HLLSketch>`: a serialized Apache DataSketches HLL sketch.
    HllSketch,
}

/// Arrow field metadata key naming a column's [`ComplexType`] (`HLLSketch`).
pub const COMPLEX_TYPE_KEY: &str = "druid.complexType";

impl ComplexType {
    /// The type name inside `COMPLEX<...>`: `HLLSketch`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::HllSketch => "HLLSketch",
        }
    }

    /// Druid's native (and SQL) type name: `COMPLEX<HLLSketch>`.
    pub fn native_name(&self) -> &'static str {
        match self {
            Self::HllSketch => "COMPLEX<HLLSketch>",
        }
    }

    /// Parses `COMPLEX<HLLSketch>` or `HLLSketch`, case-insensitively.
    pub fn parse(name: &str) -> Option<Self> {
        let t = name.trim();
        let inner = t
            .get(..8)
            .filter(|p| p.eq_ignore_ascii_case("COMPLEX<"))
            .and_then(|_| t[8..].strip_suffix('>'))
            .unwrap_or(t);
        inner
            .trim()
            .eq_ignore_ascii_case("HLLSketch")
            .then_some(Self::HllSketch)
    }

    /// The Arrow type values are stored as.
    pub fn arrow_type(&self) -> DataType {
        DataType::Binary
    }

    /// A field of this type: Arrow `Binary` with [`COMPLEX_TYPE_KEY`] metadata.
    pub fn field(&self, name: impl Into<String>, nullable: bool) -> Field {
        Field::new(name, self.arrow_type(), nullable)
            .with_metadata([(COMPLEX_TYPE_KEY.to_string(), self.type_name().to_string())].into())
    }

    /// The complex type a field holds: a binary field marked with [`COMPLEX_TYPE_KEY`].
    pub fn of_field(field: &Field) -> Option<Self> {
        if !matches!(
            field.data_type(),
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView
        ) {
            return None;
        }
        field
            .metadata()
            .get(COMPLEX_TYPE_KEY)
            .and_then(|t| Self::parse(t))
    }
}

impl fmt::Display for ComplexType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.native_name())
    }
}

/// How an output field of an ingest query is stored: like [`storage_type_for`], and
/// complex columns (binary fields marked by [`ComplexType::field`]) too. Unmarked
/// binary fields are not storable.
pub fn storage_type_for_field(field: &Field) -> Option<StorageType> {
    if field.name() != TIME_COLUMN
        && let Some(complex) = ComplexType::of_field(field)
    {
        return Some(StorageType::Complex(complex));
    }
    storage_type_for(field.name(), field.data_type())
}

/// Decides how an output column of an ingest query is stored, Druid's way: integers,
/// booleans and timestamps other than `__time` become LONG, decimals DOUBLE, strings
/// STRING. Returns `None` for types Druid cannot store (`ColumnTypeNotSupported`).
pub fn storage_type_for(name: &str, data_type: &DataType) -> Option<StorageType> {
    use DataType::*;
    if name == TIME_COLUMN {
        return matches!(data_type, Timestamp(_, _)).then_some(StorageType::Time);
    }
    let t = match data_type {
        Utf8 | LargeUtf8 | Utf8View => DruidType::String,
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 | Boolean => {
            DruidType::Long
        }
        Timestamp(_, _) | Date32 | Date64 => DruidType::Long,
        Float16 | Float32 => DruidType::Float,
        Float64 | Decimal32(_, _) | Decimal64(_, _) | Decimal128(_, _) | Decimal256(_, _) => {
            DruidType::Double
        }
        // Druid's null type: a column of only NULLs is stored as a string column.
        Null => DruidType::String,
        Dictionary(_, value) => return storage_type_for(name, value),
        List(element) | LargeList(element) | FixedSizeList(element, _) => {
            match storage_type_for(element.name(), element.data_type())? {
                StorageType::Column(t) => t.array_of()?,
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(StorageType::Column(t))
}

/// Druid's SQL type name for an Arrow type seen in a query result.
pub fn sql_type_name(data_type: &DataType) -> &'static str {
    use DataType::*;
    match data_type {
        Utf8 | LargeUtf8 | Utf8View => "VARCHAR",
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => "BIGINT",
        Boolean => "BOOLEAN",
        Float16 | Float32 => "FLOAT",
        Float64 | Decimal32(_, _) | Decimal64(_, _) | Decimal128(_, _) | Decimal256(_, _) => {
            "DOUBLE"
        }
        Timestamp(_, _) => "TIMESTAMP",
        Date32 | Date64 => "DATE",
        List(_) | LargeList(_) | ListView(_) | FixedSizeList(_, _) => "ARRAY",
        Null => "NULL",
        _ => "OTHER",
    }
}

/// One column of an EXTERN signature: `{"name": "x", "type": "string"}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SignatureColumn {
    /// Column name, case-sensitive.
    pub name: String,
    /// Column type.
    #[serde(rename = "type", with = "druid_type_lowercase")]
    pub column_type: DruidType,
}

mod druid_type_lowercase {
    use super::DruidType;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(t: &DruidType, s: S) -> Result<S::Ok, S::Error> {
        if t.element().is_some() {
            // Druid writes array types upper-case in signatures: `ARRAY<STRING>`.
            return s.serialize_str(t.native_name());
        }
        s.serialize_str(&t.native_name().to_ascii_lowercase())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DruidType, D::Error> {
        let name = String::deserialize(d)?;
        DruidType::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unsupported column type [{name}]; expected one of string, long, double, \
                 float, ARRAY<STRING>, ARRAY<LONG>, ARRAY<DOUBLE>"
            ))
        })
    }
}

/// Builds the Arrow schema of an EXTERN signature (all columns nullable).
pub fn signature_schema(columns: &[SignatureColumn]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(&c.name, c.column_type.arrow_type(), true))
            .collect::<Vec<_>>(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_signature_and_sql_names() {
        assert_eq!(DruidType::parse("string"), Some(DruidType::String));
        assert_eq!(DruidType::parse("VARCHAR"), Some(DruidType::String));
        assert_eq!(DruidType::parse("bigint"), Some(DruidType::Long));
        assert_eq!(DruidType::parse("REAL"), Some(DruidType::Float));
        assert_eq!(DruidType::parse("COMPLEX<json>"), None);
    }

    #[test]
    fn array_types() {
        for name in [
            "ARRAY<STRING>",
            "array < string >",
            "VARCHAR ARRAY",
            "varchar  array",
        ] {
            assert_eq!(
                DruidType::parse(name),
                Some(DruidType::StringArray),
                "{name}"
            );
        }
        assert_eq!(DruidType::parse("ARRAY<LONG>"), Some(DruidType::LongArray));
        assert_eq!(DruidType::parse("BIGINT ARRAY"), Some(DruidType::LongArray));
        assert_eq!(
            DruidType::parse("ARRAY<DOUBLE>"),
            Some(DruidType::DoubleArray)
        );
        assert_eq!(DruidType::parse("ARRAY<ARRAY<LONG>>"), None);
        assert_eq!(DruidType::StringArray.sql_name(), "VARCHAR ARRAY");
        let list = DruidType::LongArray.arrow_type();
        assert_eq!(
            storage_type_for("tags", &list),
            Some(StorageType::Column(DruidType::LongArray))
        );
        let col: SignatureColumn =
            serde_json::from_str(r#"{"name":"tags","type":"ARRAY<STRING>"}"#).unwrap();
        assert_eq!(col.column_type, DruidType::StringArray);
        assert_eq!(
            serde_json::to_string(&col).unwrap(),
            r#"{"name":"tags","type":"ARRAY<STRING>"}"#
        );
    }

    #[test]
    fn signature_json_round_trip() {
        let json = r#"[{"name":"a","type":"string"},{"name":"b","type":"LONG"}]"#;
        let cols: Vec<SignatureColumn> = serde_json::from_str(json).unwrap();
        assert_eq!(cols[1].column_type, DruidType::Long);
        let back = serde_json::to_string(&cols).unwrap();
        assert_eq!(
            back,
            r#"[{"name":"a","type":"string"},{"name":"b","type":"long"}]"#
        );
        let bad: Result<Vec<SignatureColumn>, _> =
            serde_json::from_str(r#"[{"name":"a","type":"blob"}]"#);
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("unsupported column type")
        );
    }

    #[test]
    fn storage_types_follow_druid() {
        assert_eq!(
            storage_type_for("__time", &TIMESTAMP_TYPE),
            Some(StorageType::Time)
        );
        assert_eq!(storage_type_for("__time", &DataType::Int64), None);
        assert_eq!(
            storage_type_for("x", &DataType::Boolean),
            Some(StorageType::Column(DruidType::Long))
        );
        assert_eq!(
            storage_type_for("x", &DataType::Utf8View),
            Some(StorageType::Column(DruidType::String))
        );
        assert_eq!(
            storage_type_for("x", &DataType::Decimal128(10, 2)),
            Some(StorageType::Column(DruidType::Double))
        );
        assert_eq!(storage_type_for("x", &DataType::Binary), None);
    }

    #[test]
    fn complex_types() {
        assert_eq!(
            ComplexType::parse("COMPLEX<HLLSketch>"),
            Some(ComplexType::HllSketch)
        );
        assert_eq!(
            ComplexType::parse("complex<hllsketch>"),
            Some(ComplexType::HllSketch)
        );
        assert_eq!(
            ComplexType::parse("HLLSketch"),
            Some(ComplexType::HllSketch)
        );
        assert_eq!(ComplexType::parse("COMPLEX<json>"), None);
        assert_eq!(ComplexType::parse("COMPLEX<"), None);
        let field = ComplexType::HllSketch.field("s", true);
        assert_eq!(field.data_type(), &DataType::Binary);
        assert_eq!(ComplexType::of_field(&field), Some(ComplexType::HllSketch));
        assert_eq!(
            ComplexType::of_field(&Field::new("s", DataType::Binary, true)),
            None
        );
        assert_eq!(ComplexType::HllSketch.to_string(), "COMPLEX<HLLSketch>");
        let storage = storage_type_for_field(&field);
        assert_eq!(storage, Some(StorageType::Complex(ComplexType::HllSketch)));
        assert_eq!(
            storage.map(|s| (s.native_name(), s.arrow_type())),
            Some(("COMPLEX<HLLSketch>", DataType::Binary))
        );
        assert_eq!(
            storage_type_for_field(&Field::new("s", DataType::Binary, true)),
            None
        );
    }
}
