//! Rewrites of Druid-only expression syntax into calls DataFusion can plan.
//!
//! - `FLOOR(ts TO unit)` becomes `TIME_FLOOR(ts, '<period>')`
//! - `CEIL(ts TO unit)` becomes `TIME_CEIL(ts, '<period>')`

use std::ops::ControlFlow;

use datafusion::common::{DataFusionError, Result};
use datafusion::sql::sqlparser::ast::{
    CeilFloorKind, DateTimeField, Expr as SqlExpr, Query, Statement, VisitMut,
    visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::statement::datetime_field_period;

/// Rewrites Druid syntax everywhere in a statement.
pub(crate) fn rewrite_druid_syntax(stmt: &mut Statement) -> Result<()> {
    rewrite(stmt)
}

/// Names a SELECT's unaliased computed columns as Druid (Calcite) does: `EXPR$<i>`, `i`
/// being the column's position in the select list, so `SELECT page, COUNT(*) FROM w`
/// answers columns `page` and `EXPR$1`. Plain column references keep their names; after
/// a `*` positions are unknown until planning and nothing more is renamed.
pub(crate) fn name_unaliased_columns(stmt: &mut Statement) {
    use datafusion::sql::sqlparser::ast::{Ident, SelectItem, SetExpr};
    let Statement::Query(query) = stmt else {
        return;
    };
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    for (i, item) in select.projection.iter_mut().enumerate() {
        match item {
            SelectItem::UnnamedExpr(SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_)) => {}
            SelectItem::UnnamedExpr(expr) => {
                *item = SelectItem::ExprWithAlias {
                    expr: expr.clone(),
                    alias: Ident::with_quote('"', format!("EXPR${i}")),
                };
            }
            SelectItem::ExprWithAlias { .. } | SelectItem::ExprWithAliases { .. } => {}
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => return,
        }
    }
}

/// Rewrites Druid syntax everywhere in a query.
pub(crate) fn rewrite_query(query: &mut Query) -> Result<()> {
    rewrite(query)
}

fn rewrite<V: VisitMut>(node: &mut V) -> Result<()> {
    let flow = visit_expressions_mut(node, |expr| {
        let replacement = match expr {
            SqlExpr::Floor {
                expr: inner,
                field: CeilFloorKind::DateTimeField(field),
            } if !matches!(field, DateTimeField::NoDateTime) => {
                Some(time_call("TIME_FLOOR", inner, field))
            }
            SqlExpr::Ceil {
                expr: inner,
                field: CeilFloorKind::DateTimeField(field),
            } if !matches!(field, DateTimeField::NoDateTime) => {
                Some(time_call("TIME_CEIL", inner, field))
            }
            _ => None,
        };
        match replacement {
            Some(Ok(new_expr)) => {
                *expr = new_expr;
                ControlFlow::Continue(())
            }
            Some(Err(e)) => ControlFlow::Break(e),
            None => ControlFlow::Continue(()),
        }
    });
    match flow {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// Reads `TIMESTAMP '...'` literals in `zone` (Druid's `sqlTimeZone`): each becomes
/// `TIME_PARSE('...', NULL, '<zone>')`. A no-op for UTC.
pub fn apply_time_zone<V: VisitMut>(node: &mut V, zone: &grove_common::time::Zone) -> Result<()> {
    use datafusion::sql::sqlparser::ast::{DataType as SqlType, Value};
    if zone.is_utc() {
        return Ok(());
    }
    let zone_id = zone.id();
    let flow = visit_expressions_mut(node, |expr| {
        let SqlExpr::TypedString(ts) = expr else {
            return ControlFlow::Continue(());
        };
        if !matches!(ts.data_type, SqlType::Timestamp(_, _)) {
            return ControlFlow::Continue(());
        }
        let Value::SingleQuotedString(text) = &ts.value.value else {
            return ControlFlow::Continue(());
        };
        let sql = format!(
            "TIME_PARSE('{}', NULL, '{}')",
            text.replace('\'', "''"),
            zone_id.replace('\'', "''")
        );
        match Parser::new(&GenericDialect {})
            .try_with_sql(&sql)
            .and_then(|mut p| p.parse_expr())
        {
            Ok(e) => {
                *expr = e;
                ControlFlow::Continue(())
            }
            Err(e) => ControlFlow::Break(DataFusionError::Plan(format!("Invalid SQL: {e}"))),
        }
    });
    match flow {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

fn time_call(func: &str, inner: &SqlExpr, field: &DateTimeField) -> Result<SqlExpr> {
    let Some(period) = datetime_field_period(field) else {
        return Err(DataFusionError::Plan(format!(
            "{} with unit [{field}] is not supported; use SECOND, MINUTE, HOUR, DAY, WEEK, \
             MONTH, QUARTER or YEAR",
            &func[5..]
        )));
    };
    let text = format!("{func}({inner}, '{period}')");
    Parser::new(&GenericDialect {})
        .try_with_sql(&text)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| DataFusionError::Plan(format!("Invalid SQL: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unaliased_columns_are_named_like_calcite() {
        let parse = |sql: &str| {
            let mut stmt = Parser::new(&GenericDialect {})
                .try_with_sql(sql)
                .unwrap()
                .parse_statement()
                .unwrap();
            name_unaliased_columns(&mut stmt);
            stmt.to_string()
        };
        assert_eq!(
            parse("SELECT page, COUNT(*), w.added, SUM(x) AS s, 1 + 1 FROM w GROUP BY 1"),
            "SELECT page, COUNT(*) AS \"EXPR$1\", w.added, SUM(x) AS s, 1 + 1 AS \"EXPR$4\" FROM w GROUP BY 1"
        );
        assert_eq!(
            parse("SELECT COUNT(*), * FROM w"),
            "SELECT COUNT(*) AS \"EXPR$0\", * FROM w"
        );
        assert_eq!(parse("SELECT *, 1 FROM w"), "SELECT *, 1 FROM w");
    }

    #[test]
    fn floor_and_ceil_to_unit() {
        let mut stmt = Parser::new(&GenericDialect {})
            .try_with_sql("SELECT FLOOR(__time TO DAY), CEIL(t TO QUARTER), FLOOR(x) FROM s")
            .unwrap()
            .parse_statement()
            .unwrap();
        rewrite_druid_syntax(&mut stmt).unwrap();
        assert_eq!(
            stmt.to_string(),
            "SELECT TIME_FLOOR(__time, 'P1D'), TIME_CEIL(t, 'P3M'), FLOOR(x) FROM s"
        );
    }
}
