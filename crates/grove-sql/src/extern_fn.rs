//! `TABLE(EXTERN(inputSource, inputFormat, signature))` and Druid's input-source table
//! functions `TABLE(http(...))`, `TABLE(inline(...))`, `TABLE(localfiles(...))` and
//! `TABLE(s3(...))`: a relation planner that turns the call (the signature may come from an
//! EXTEND clause, rewritten into a `signature` argument by [`crate::tokens`]) into a scan
//! of an [`ExternTable`].

use std::sync::Arc;

use datafusion::common::{DataFusionError, Result, plan_err};
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::logical_expr::planner::{
    PlannedRelation, RelationPlanner, RelationPlannerContext, RelationPlanning,
};
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectName, TableFactor,
    Value,
};
use grove_common::context::MsqOptions;
use grove_input::{ExternSpec, ExternTable};
use serde_json::Value as JsonValue;

/// Plans `TABLE(EXTERN(...))` and `EXTERN(...)` in FROM clauses.
#[derive(Debug, Default)]
pub struct ExternRelationPlanner;

impl RelationPlanner for ExternRelationPlanner {
    fn plan_relation(
        &self,
        relation: TableFactor,
        context: &mut dyn RelationPlannerContext,
    ) -> Result<RelationPlanning> {
        let (name, args, alias) = match &relation {
            TableFactor::TableFunction {
                expr: SqlExpr::Function(f),
                alias,
            } => {
                let args = match &f.args {
                    FunctionArguments::List(list) => list.args.clone(),
                    FunctionArguments::None => vec![],
                    FunctionArguments::Subquery(_) => {
                        return plan_err!("EXTERN does not take a subquery");
                    }
                };
                (f.name.clone(), args, alias.clone())
            }
            TableFactor::Function {
                name, args, alias, ..
            } => (name.clone(), args.clone(), alias.clone()),
            _ => return Ok(RelationPlanning::Original(Box::new(relation))),
        };
        let Some(function) = table_function(&name) else {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        };
        let spec = match function {
            TableFunction::Extern => extern_spec(&args)?,
            TableFunction::Source(kind) => source_function_spec(kind, &args)?,
        };
        let max_parse_exceptions = context
            .context_provider()
            .options()
            .extensions
            .get::<MsqOptions>()
            .map(|o| o.max_parse_exceptions)
            .unwrap_or(0);
        let budget = u64::try_from(max_parse_exceptions).ok();
        let table = ExternTable::new(spec, budget);
        let plan = LogicalPlanBuilder::scan("EXTERN", provider_as_source(Arc::new(table)), None)?
            .build()?;
        Ok(RelationPlanning::Planned(Box::new(PlannedRelation::new(
            plan, alias,
        ))))
    }
}

/// The table functions this planner handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TableFunction {
    Extern,
    Source(SourceFunction),
}

/// Druid's input-source table functions: `http`, `inline`, `localfiles`, `s3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SourceFunction {
    Http,
    Inline,
    LocalFiles,
    S3,
}

fn table_function(name: &ObjectName) -> Option<TableFunction> {
    if name.0.len() != 1 {
        return None;
    }
    let ident = name.0[0].as_ident()?.value.to_ascii_lowercase();
    Some(match ident.as_str() {
        "extern" => TableFunction::Extern,
        "http" => TableFunction::Source(SourceFunction::Http),
        "inline" => TableFunction::Source(SourceFunction::Inline),
        "localfiles" => TableFunction::Source(SourceFunction::LocalFiles),
        "s3" => TableFunction::Source(SourceFunction::S3),
        _ => return None,
    })
}

impl SourceFunction {
    fn name(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Inline => "inline",
            Self::LocalFiles => "localfiles",
            Self::S3 => "s3",
        }
    }

    /// Maps a source argument to `(inputSource field, value)`; `None` if the name is not
    /// a source argument of this function.
    fn source_field(self, arg: &str, value: ArgValue) -> Result<Option<(String, JsonValue)>> {
        let f = |name: &str, v: JsonValue| Ok(Some((name.to_string(), v)));
        match (self, arg.to_ascii_lowercase().as_str()) {
            (Self::Http, "username" | "user") => {
                f("httpAuthenticationUsername", value.string(arg)?)
            }
            (Self::Http, "password") => f("httpAuthenticationPassword", value.string(arg)?),
            (Self::Http, "passwordenvvar") => f(
                "httpAuthenticationPassword",
                serde_json::json!({"type": "environment", "variable": value.string(arg)?}),
            ),
            (Self::Http, "uris") | (Self::S3, "uris") => f("uris", value.array(arg)?),
            (Self::Inline, "data") => {
                let text = match value {
                    ArgValue::Array(lines) => {
                        let mut t = lines.join("\n");
                        t.push('\n');
                        t
                    }
                    other => other.text(arg)?,
                };
                f("data", JsonValue::String(text))
            }
            (Self::LocalFiles, "basedir") => f("baseDir", value.string(arg)?),
            (Self::LocalFiles, "filter") => f("filter", value.string(arg)?),
            (Self::LocalFiles, "files") => f("files", value.array(arg)?),
            (Self::S3, "prefixes") => f("prefixes", value.array(arg)?),
            (Self::S3, "prefix") => f("prefixes", JsonValue::Array(vec![value.string(arg)?])),
            (Self::S3, "bucket") => f("bucket", value.string(arg)?),
            (Self::S3, "paths") => f("paths", value.array(arg)?),
            (Self::S3, "objectglob") => f("objectGlob", value.string(arg)?),
            (Self::S3, "accesskeyid") => f("accessKeyId", value.string(arg)?),
            (Self::S3, "secretaccesskey") => f("secretAccessKey", value.string(arg)?),
            (Self::S3, "assumerolearn") => f("assumeRoleArn", value.string(arg)?),
            (Self::S3, "endpointurl") => f("endpointUrl", value.string(arg)?),
            (Self::S3, "signingregion") => f("signingRegion", value.string(arg)?),
            _ => Ok(None),
        }
    }
}

/// A literal argument of a table function.
#[derive(Clone, Debug)]
enum ArgValue {
    Text(String),
    Number(String),
    Bool(bool),
    Array(Vec<String>),
}

impl ArgValue {
    fn parse(expr: &SqlExpr, name: &str) -> Result<Self> {
        match expr {
            SqlExpr::Value(v) => match &v.value {
                Value::Number(n, _) => Ok(Self::Number(n.clone())),
                Value::Boolean(b) => Ok(Self::Bool(*b)),
                _ => string_literal(expr, name).map(Self::Text),
            },
            SqlExpr::Array(array) => array
                .elem
                .iter()
                .map(|e| string_literal(e, name))
                .collect::<Result<Vec<_>>>()
                .map(Self::Array),
            _ => plan_err!(
                "Argument [{name}] must be a literal: a string, a number, TRUE/FALSE or \
                 ARRAY['...', ...]"
            ),
        }
    }

    fn text(self, name: &str) -> Result<String> {
        match self {
            Self::Text(s) | Self::Number(s) => Ok(s),
            Self::Bool(b) => Ok(b.to_string()),
            Self::Array(_) => plan_err!("Argument [{name}] must be a single value, not an ARRAY"),
        }
    }

    fn string(self, name: &str) -> Result<JsonValue> {
        self.text(name).map(JsonValue::String)
    }

    fn array(self, name: &str) -> Result<JsonValue> {
        match self {
            Self::Array(items) => Ok(JsonValue::Array(
                items.into_iter().map(JsonValue::String).collect(),
            )),
            // Druid also accepts a JSON array passed as a string (e.g. a `?` parameter).
            Self::Text(s) if s.trim_start().starts_with('[') => serde_json::from_str(&s)
                .map_err(|e| DataFusionError::Plan(format!("Argument [{name}]: {e}"))),
            Self::Text(s) => Ok(JsonValue::Array(vec![JsonValue::String(s)])),
            _ => plan_err!("Argument [{name}] must be an ARRAY of strings"),
        }
    }

    fn json(self) -> JsonValue {
        match self {
            Self::Text(s) => JsonValue::String(s),
            Self::Number(n) => serde_json::from_str(&n).unwrap_or(JsonValue::String(n)),
            Self::Bool(b) => JsonValue::Bool(b),
            Self::Array(items) => {
                JsonValue::Array(items.into_iter().map(JsonValue::String).collect())
            }
        }
    }
}

/// Format arguments the table functions accept, as `inputFormat` field names.
const FORMAT_ARGS: &[&str] = &[
    "listDelimiter",
    "skipHeaderRows",
    "findColumnsFromHeader",
    "columns",
    "delimiter",
    "binaryAsString",
];

/// Builds the EXTERN spec of `http(...)`, `inline(...)`, `localfiles(...)` or `s3(...)`:
/// named arguments for the source and the format (`format => 'csv'` and its options),
/// and the signature from EXTEND.
fn source_function_spec(function: SourceFunction, args: &[FunctionArg]) -> Result<ExternSpec> {
    let fname = function.name();
    let mut source = serde_json::Map::new();
    let mut format = serde_json::Map::new();
    let mut signature = None;
    for arg in args {
        let FunctionArg::Named {
            name,
            arg: FunctionArgExpr::Expr(expr),
            ..
        } = arg
        else {
            return plan_err!(
                "{fname}() takes named arguments only, e.g. {fname}(format => 'json', ...)"
            );
        };
        let arg_name = name.value.as_str();
        let value = ArgValue::parse(expr, arg_name)?;
        if arg_name.eq_ignore_ascii_case("signature") {
            signature = Some(value.text(arg_name)?);
        } else if arg_name.eq_ignore_ascii_case("format") {
            format.insert("type".into(), value.string(arg_name)?);
        } else if let Some(field) = FORMAT_ARGS
            .iter()
            .find(|f| f.eq_ignore_ascii_case(arg_name))
        {
            let v = if *field == "columns" {
                value.array(arg_name)?
            } else {
                value.json()
            };
            format.insert((*field).to_string(), v);
        } else if let Some((key, v)) = function.source_field(arg_name, value)? {
            if source.insert(key, v).is_some() {
                return plan_err!("{fname}() argument [{arg_name}] given twice");
            }
        } else {
            return plan_err!("Unknown argument [{arg_name}] of {fname}()");
        }
    }
    if !format.contains_key("type") {
        return plan_err!("{fname}() requires a format argument, e.g. format => 'json'");
    }
    let Some(signature) = signature else {
        return plan_err!(
            "{fname}() requires a schema: declare the columns with EXTEND (name TYPE, ...)"
        );
    };
    let source = source_json(function, source)?;
    ExternSpec::from_json(
        &source.to_string(),
        &JsonValue::Object(format).to_string(),
        &signature,
    )
}

/// Finishes the `inputSource` JSON: the type, and S3's `bucket`+`paths`, credentials and
/// endpoint folded into Druid's structure.
fn source_json(
    function: SourceFunction,
    mut fields: serde_json::Map<String, JsonValue>,
) -> Result<JsonValue> {
    let type_name = match function {
        SourceFunction::Http => "http",
        SourceFunction::Inline => "inline",
        SourceFunction::LocalFiles => "local",
        SourceFunction::S3 => "s3",
    };
    if function == SourceFunction::S3 {
        let bucket = fields.remove("bucket");
        let paths = fields.remove("paths");
        match (bucket, paths) {
            (Some(JsonValue::String(bucket)), Some(JsonValue::Array(paths))) => {
                let objects = paths
                    .into_iter()
                    .map(|p| serde_json::json!({"bucket": bucket, "path": p}))
                    .collect();
                fields.insert("objects".into(), JsonValue::Array(objects));
            }
            (None, None) => {}
            _ => return plan_err!("s3() needs [bucket] and [paths] together"),
        }
        let mut properties = serde_json::Map::new();
        for key in ["accessKeyId", "secretAccessKey", "assumeRoleArn"] {
            if let Some(v) = fields.remove(key) {
                properties.insert(key.into(), v);
            }
        }
        if !properties.is_empty() {
            fields.insert("properties".into(), JsonValue::Object(properties));
        }
        let mut endpoint = serde_json::Map::new();
        if let Some(url) = fields.remove("endpointUrl") {
            endpoint.insert("url".into(), url);
        }
        if let Some(region) = fields.remove("signingRegion") {
            endpoint.insert("signingRegion".into(), region);
        }
        if !endpoint.is_empty() {
            fields.insert("endpointConfig".into(), JsonValue::Object(endpoint));
        }
    }
    fields.insert("type".into(), JsonValue::String(type_name.into()));
    Ok(JsonValue::Object(fields))
}

/// Reads EXTERN's arguments: `(source, format, signature)` positionally or by name.
fn extern_spec(args: &[FunctionArg]) -> Result<ExternSpec> {
    const NAMES: [&str; 3] = ["inputSource", "inputFormat", "signature"];
    let mut values: [Option<String>; 3] = [None, None, None];
    let mut position = 0;
    for arg in args {
        let (slot, expr) = match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => {
                let slot = position;
                position += 1;
                (slot, e)
            }
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(e),
                ..
            } => {
                let Some(slot) = NAMES
                    .iter()
                    .position(|n| n.eq_ignore_ascii_case(&name.value))
                else {
                    return plan_err!(
                        "Unknown EXTERN argument [{}]; expected inputSource, inputFormat and signature",
                        name.value
                    );
                };
                (slot, e)
            }
            other => return plan_err!("Unsupported EXTERN argument [{other}]"),
        };
        if slot >= NAMES.len() {
            return plan_err!(
                "EXTERN takes at most 3 arguments: inputSource, inputFormat, signature"
            );
        }
        if values[slot].is_some() {
            return plan_err!("EXTERN argument [{}] given twice", NAMES[slot]);
        }
        values[slot] = Some(string_literal(expr, NAMES[slot])?);
    }
    let [Some(source), Some(format), signature] = values else {
        return plan_err!("EXTERN requires the inputSource and inputFormat arguments");
    };
    let Some(signature) = signature else {
        return plan_err!(
            "EXTERN requires a signature: pass it as the third argument, or declare the \
             columns with EXTEND (name TYPE, ...)"
        );
    };
    ExternSpec::from_json(&source, &format, &signature)
}

fn string_literal(expr: &SqlExpr, name: &str) -> Result<String> {
    match expr {
        SqlExpr::Value(v) => match &v.value {
            Value::SingleQuotedString(s)
            | Value::EscapedStringLiteral(s)
            | Value::DollarQuotedString(datafusion::sql::sqlparser::ast::DollarQuotedString {
                value: s,
                ..
            }) => Ok(s.clone()),
            _ => Err(DataFusionError::Plan(format!(
                "EXTERN argument [{name}] must be a string literal"
            ))),
        },
        _ => Err(DataFusionError::Plan(format!(
            "EXTERN argument [{name}] must be a string literal"
        ))),
    }
}
