//! Druid's SQL parameters: the `parameters` array of an API request binds the `?`
//! placeholders of its query, in order.
//!
//! ```text
//! {"query": "SELECT * FROM w WHERE page = ? AND added > ?",
//!  "parameters": [{"type": "VARCHAR", "value": "Rust"}, {"type": "BIGINT", "value": 10}]}
//! ```
//!
//! Binding happens on tokens before parsing, so a `?` inside a string literal, a quoted
//! identifier or a comment is never a placeholder, and every statement shape (SELECT,
//! INSERT, REPLACE, OVERWRITE WHERE) takes parameters alike. Each value becomes a typed
//! SQL literal (`CAST(10 AS BIGINT)`, `TIMESTAMP '2015-09-12 00:00:00'`, ...).

use datafusion::common::{DataFusionError, Result};
use datafusion::sql::sqlparser::tokenizer::Token;
use serde_json::Value;

use crate::tokens::{render, tokenize};

/// One `{"type": "<SQL type>", "value": ...}` entry of a request's `parameters`.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlParameter {
    /// The SQL type name as sent (`VARCHAR`, `BIGINT`, `TIMESTAMP`, ...).
    pub sql_type: String,
    /// The value (`null` for SQL NULL of that type).
    pub value: Value,
}

impl SqlParameter {
    /// Reads a request's `parameters` member (absent or `null` means none).
    pub fn list_from_json(value: Option<&Value>) -> std::result::Result<Vec<Self>, String> {
        let items = match value {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(_) => return Err("[parameters] must be a JSON array".into()),
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let Some(obj) = item.as_object() else {
                    return Err(format!(
                        "Parameter at position [{i}] must be an object with [type] and [value]"
                    ));
                };
                let Some(sql_type) = obj.get("type").and_then(Value::as_str) else {
                    return Err(format!("Parameter at position [{i}] has no [type]"));
                };
                Ok(Self {
                    sql_type: sql_type.to_string(),
                    value: obj.get("value").cloned().unwrap_or(Value::Null),
                })
            })
            .collect()
    }

    /// The SQL expression text for this parameter.
    fn to_sql(&self, position: usize) -> Result<String> {
        let ty = self.sql_type.trim().to_ascii_uppercase();
        let bad = |what: &str| {
            DataFusionError::Plan(format!(
                "Parameter at position [{position}] of type [{}] has an invalid value [{}]: {what}",
                self.sql_type, self.value
            ))
        };
        let cast_type = match ty.as_str() {
            "VARCHAR" | "CHAR" => "VARCHAR",
            "BIGINT" | "INTEGER" | "INT" | "SMALLINT" | "TINYINT" => "BIGINT",
            "DOUBLE" | "FLOAT" | "REAL" | "DECIMAL" => "DOUBLE",
            "BOOLEAN" => "BOOLEAN",
            "TIMESTAMP" => "TIMESTAMP",
            "DATE" => "DATE",
            "ARRAY" => "ARRAY",
            _ => {
                return Err(DataFusionError::Plan(format!(
                    "Parameter at position [{position}] has an unsupported type [{}]; use \
                     VARCHAR, BIGINT, INTEGER, DOUBLE, FLOAT, BOOLEAN, TIMESTAMP, DATE or ARRAY",
                    self.sql_type
                )));
            }
        };
        if self.value.is_null() {
            return Ok(if cast_type == "ARRAY" {
                "CAST(NULL AS VARCHAR[])".into()
            } else {
                format!("CAST(NULL AS {cast_type})")
            });
        }
        Ok(match cast_type {
            "VARCHAR" => quote(&scalar_text(&self.value)),
            "BIGINT" => {
                let n = match &self.value {
                    Value::Number(n) if n.is_i64() => n.to_string(),
                    Value::Number(n) if n.is_u64() => return Err(bad("out of range")),
                    Value::String(s) if s.trim().parse::<i64>().is_ok() => s.trim().to_string(),
                    _ => return Err(bad("not an integer")),
                };
                format!("CAST({n} AS BIGINT)")
            }
            "DOUBLE" => {
                let x = match &self.value {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse::<f64>().ok(),
                    _ => None,
                };
                match x {
                    Some(x) if x.is_finite() => format!("CAST({x:?} AS DOUBLE)"),
                    _ => return Err(bad("not a number")),
                }
            }
            "BOOLEAN" => match &self.value {
                Value::Bool(b) => b.to_string().to_ascii_uppercase(),
                Value::String(s) if s.eq_ignore_ascii_case("true") => "TRUE".into(),
                Value::String(s) if s.eq_ignore_ascii_case("false") => "FALSE".into(),
                Value::Number(n) => (n.as_f64() != Some(0.0)).to_string().to_ascii_uppercase(),
                _ => return Err(bad("not a boolean")),
            },
            // Millis, or a `yyyy-MM-dd HH:mm:ss` string as in a TIMESTAMP literal.
            "TIMESTAMP" => match &self.value {
                Value::Number(n) if n.is_i64() => format!("MILLIS_TO_TIMESTAMP({n})"),
                Value::String(s) => format!("TIMESTAMP {}", quote(s)),
                _ => return Err(bad("not a timestamp")),
            },
            "DATE" => match &self.value {
                Value::String(s) => format!("DATE {}", quote(s)),
                _ => return Err(bad("not a date")),
            },
            _ => {
                let Value::Array(items) = &self.value else {
                    return Err(bad("not a JSON array"));
                };
                let mut parts = Vec::with_capacity(items.len());
                for item in items {
                    parts.push(match item {
                        Value::Null => "NULL".to_string(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string().to_ascii_uppercase(),
                        Value::String(s) => quote(s),
                        _ => return Err(bad("arrays hold strings, numbers or nulls")),
                    });
                }
                format!("make_array({})", parts.join(", "))
            }
        })
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Replaces the `?` placeholders of `sql` by `params`, in order. A placeholder without
/// a value is an error; values beyond the last placeholder are ignored, as in Druid.
pub fn bind_parameters(sql: &str, params: &[SqlParameter]) -> Result<String> {
    let mut tokens = tokenize(sql)?;
    let mut position = 0usize;
    let mut found = false;
    for t in tokens.iter_mut() {
        if !matches!(&t.token, Token::Placeholder(p) if p == "?") {
            continue;
        }
        found = true;
        let Some(param) = params.get(position) else {
            return Err(DataFusionError::Plan(format!(
                "No value bound for parameter (position [{}])",
                position + 1
            )));
        };
        // The literal travels as one opaque token: render() writes it verbatim.
        t.token = Token::Placeholder(format!("({})", param.to_sql(position + 1)?));
        position += 1;
    }
    if !found {
        return Ok(sql.to_string());
    }
    Ok(render(&tokens))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn params(v: Value) -> Vec<SqlParameter> {
        SqlParameter::list_from_json(Some(&v)).unwrap()
    }

    #[test]
    fn binds_in_order_outside_literals() {
        let p = params(json!([
            {"type": "VARCHAR", "value": "it's"},
            {"type": "BIGINT", "value": 10},
            {"type": "TIMESTAMP", "value": "2015-09-12 00:00:00"},
        ]));
        let sql =
            "SELECT '?' AS q, \"?\" FROM w -- ?\nWHERE page = ? AND added > ? AND __time >= ?";
        assert_eq!(
            bind_parameters(sql, &p).unwrap(),
            "SELECT '?' AS q, \"?\" FROM w -- ?\nWHERE page = ('it''s') AND added > \
             (CAST(10 AS BIGINT)) AND __time >= (TIMESTAMP '2015-09-12 00:00:00')"
        );
    }

    #[test]
    fn typed_values_and_nulls() {
        let p = params(json!([
            {"type": "DOUBLE", "value": 1.5},
            {"type": "BOOLEAN", "value": true},
            {"type": "INTEGER", "value": null},
            {"type": "ARRAY", "value": ["a", null, 2]},
            {"type": "TIMESTAMP", "value": 1442016000000_i64},
        ]));
        assert_eq!(
            bind_parameters("SELECT ?, ?, ?, ?, ?", &p).unwrap(),
            "SELECT (CAST(1.5 AS DOUBLE)), (TRUE), (CAST(NULL AS BIGINT)), \
             (make_array('a', NULL, 2)), (MILLIS_TO_TIMESTAMP(1442016000000))"
        );
    }

    #[test]
    fn errors_are_clear() {
        let err = bind_parameters(
            "SELECT ?, ?",
            &params(json!([{"type": "VARCHAR", "value": "a"}])),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("No value bound for parameter (position [2])"),
            "{err}"
        );
        let err = bind_parameters(
            "SELECT ?",
            &params(json!([{"type": "BIGINT", "value": "x"}])),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("not an integer"), "{err}");
        let err = bind_parameters("SELECT ?", &params(json!([{"type": "BLOB", "value": 1}])))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unsupported type [BLOB]"), "{err}");
        assert!(SqlParameter::list_from_json(Some(&json!({"a": 1}))).is_err());
        assert!(SqlParameter::list_from_json(Some(&json!([{"value": 1}]))).is_err());
        // No placeholder: the text is untouched, extra values are ignored.
        assert_eq!(
            bind_parameters("SELECT 1", &params(json!([{"type": "BIGINT", "value": 1}]))).unwrap(),
            "SELECT 1"
        );
    }
}
