//! Planning of INSERT/REPLACE: the SELECT goes through DataFusion's planner, then Druid's
//! rules about the output are checked and the result is shaped for segment generation.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, DFSchema, DataFusionError, Result, ScalarValue, plan_err};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, cast, col, lit};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, Ident, ObjectName, Query, SelectItem, SetExpr, Statement,
};
use grove_common::fault::{MAX_CLUSTERED_BY_COLUMNS, MAX_COLUMNS};
use grove_common::types::{
    ComplexType, DruidType, StorageType, TIME_COLUMN, storage_type_for, storage_type_for_field,
};
use grove_common::{Granularity, Interval, MsqFault};

use crate::overwrite::overwrite_intervals_in;
use crate::statement::{ClusterItem, IngestKind, IngestStatement, Overwrite};

/// Column names Grove reserves for its own use during ingestion.
pub const RESERVED_COLUMNS: &[&str] = &["__bucket", "__boost"];

/// An INSERT/REPLACE ready for the engine.
#[derive(Debug, Clone)]
pub struct IngestPlan {
    /// INSERT or REPLACE.
    pub kind: IngestKind,
    /// Target datasource.
    pub target: String,
    /// PARTITIONED BY.
    pub granularity: Granularity,
    /// The time chunks REPLACE overwrites (eternity for OVERWRITE ALL); `None` for INSERT.
    pub replace_intervals: Option<Vec<Interval>>,
    /// Rows to write: `__time` first is not required, but present and typed
    /// Timestamp(ms); every other column already cast to its storage type.
    pub input: LogicalPlan,
    /// CLUSTERED BY, as expressions over `input`'s columns.
    pub cluster_by: Vec<Expr>,
    /// For REPLACE: the leading CLUSTERED BY columns that are plain STRING output columns;
    /// non-empty means segments get `range` shard specs over these dimensions.
    pub range_dimensions: Vec<String>,
    /// Output columns and how each is stored, in SELECT order.
    pub columns: Vec<(String, StorageType)>,
}

/// Plans a Druid INSERT/REPLACE. Validation errors are `Plan` errors with Druid's
/// messages; Druid faults raised at planning time are [`MsqFault`]s.
pub async fn plan_ingest(state: &SessionState, stmt: &IngestStatement) -> Result<IngestPlan> {
    check_supported(stmt)?;
    check_duplicate_aliases(stmt)?;
    let zone = session_zone(state);
    let mut query = stmt.query.clone();
    crate::rewrite::apply_time_zone(query.as_mut(), &zone)?;
    if !finalize_aggregations(state) {
        unfinalize_aggregations(query.as_mut());
    }
    let body = state
        .statement_to_plan(DFStatement::Statement(Box::new(Statement::Query(query))))
        .await?;
    let schema = Arc::clone(body.schema());
    let mut seen = HashSet::new();
    for field in schema.fields() {
        if !seen.insert(field.name().as_str()) {
            return plan_err!("Duplicate field in SELECT: [{}]", field.name());
        }
    }
    if schema.fields().len() > MAX_COLUMNS {
        return Err(MsqFault::TooManyColumns {
            num_columns: schema.fields().len(),
        }
        .into());
    }
    if let Some(name) = schema
        .fields()
        .iter()
        .map(|f| f.name())
        .find(|n| RESERVED_COLUMNS.contains(&n.as_str()))
    {
        return Err(MsqFault::ColumnNameRestricted {
            column_name: name.clone(),
        }
        .into());
    }
    let time_field = schema.fields().iter().find(|f| f.name() == TIME_COLUMN);
    match time_field {
        Some(f) if storage_type_for(TIME_COLUMN, f.data_type()).is_none() => {
            return plan_err!(
                "Field [{TIME_COLUMN}] was the wrong type [{}], expected TIMESTAMP",
                grove_common::types::sql_type_name(f.data_type())
            );
        }
        None if stmt.granularity != Granularity::All => {
            return plan_err!(
                "The granularity [{}] specified in the PARTITIONED BY clause of the {} query is \
                 different from ALL. Therefore, the query must specify a time column (named __time).",
                stmt.granularity.druid_description(),
                stmt.kind
            );
        }
        _ => {}
    }

    // Cast every column to the type it is stored as.
    let mut columns = Vec::with_capacity(schema.fields().len() + 1);
    let mut exprs = Vec::with_capacity(schema.fields().len() + 1);
    for (qualifier, field) in schema.iter() {
        let Some(storage) = storage_type_for_field(field) else {
            return Err(MsqFault::ColumnTypeNotSupported {
                column_name: field.name().clone(),
                column_type: match ComplexType::of_field(field) {
                    Some(complex) => complex.native_name().to_string(),
                    None => field.data_type().to_string(),
                },
            }
            .into());
        };
        if let StorageType::Column(t) = &storage
            && t.element().is_some()
        {
            check_array_ingest_mode(state, field.name(), *t)?;
        }
        let column = Expr::Column(Column::from((qualifier, field.as_ref())));
        let target_type = storage.arrow_type();
        let expr = if field.data_type() == &target_type {
            column
        } else if matches!(
            field.data_type(),
            DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64
        ) && storage != StorageType::Time
        {
            // Druid stores other TIMESTAMP and DATE columns as epoch milliseconds.
            cast(
                cast(column, grove_common::types::TIMESTAMP_TYPE),
                target_type,
            )
        } else {
            cast(column, target_type)
        };
        exprs.push(expr.alias(field.name()));
        columns.push((field.name().clone(), storage));
    }
    if time_field.is_none() {
        // PARTITIONED BY ALL without __time: Druid writes 0 (1970-01-01T00:00:00Z).
        exprs.push(lit(ScalarValue::TimestampMillisecond(Some(0), None)).alias(TIME_COLUMN));
        columns.push((TIME_COLUMN.to_string(), StorageType::Time));
    }
    let input = LogicalPlanBuilder::from(body).project(exprs)?.build()?;

    let (cluster_by, range_dimensions) = resolve_cluster_by(state, stmt, &input, &columns)?;
    let replace_intervals = match &stmt.overwrite {
        None => None,
        Some(Overwrite::All) => Some(vec![Interval::eternity()]),
        Some(Overwrite::Where(cond)) => {
            Some(overwrite_intervals_in(cond, &stmt.granularity, &zone)?)
        }
    };
    Ok(IngestPlan {
        kind: stmt.kind,
        target: stmt.target.clone(),
        granularity: stmt.granularity,
        replace_intervals,
        input,
        cluster_by,
        range_dimensions,
        columns,
    })
}

/// The session's `sqlTimeZone` (UTC unless set).
pub fn session_zone(state: &SessionState) -> grove_common::time::Zone {
    state
        .config()
        .options()
        .extensions
        .get::<grove_common::context::MsqOptions>()
        .and_then(|o| grove_common::time::Zone::parse(&o.sql_time_zone))
        .unwrap_or(grove_common::time::Zone::UTC)
}

/// Druid's `arrayIngestMode` decides whether an array column may be stored: Grove stores
/// arrays as array columns (`array`, the default); it has no multi-value string columns
/// (`mvd`), and `none` refuses arrays as Druid does.
fn check_array_ingest_mode(state: &SessionState, column: &str, t: DruidType) -> Result<()> {
    let mode = state
        .config()
        .options()
        .extensions
        .get::<grove_common::context::MsqOptions>()
        .map_or("array", |o| o.array_ingest_mode.as_str());
    match mode {
        "mvd" => Err(MsqFault::QueryNotSupported {
            message: format!(
                "Column [{column}] is of type [{}]. Grove stores arrays as array columns only: \
                 arrayIngestMode [mvd] (multi-value string dimensions) is not supported; \
                 remove it or set it to [array]",
                t.native_name()
            ),
        }
        .into()),
        "none" => plan_err!(
            "Cannot write into field [{column}] using type [{}] and arrayIngestMode [none]. \
             Set arrayIngestMode to [array] to ingest arrays",
            t.sql_name()
        ),
        _ => Ok(()),
    }
}

/// Druid's `finalizeAggregations` for this statement (true unless set to false).
fn finalize_aggregations(state: &SessionState) -> bool {
    state
        .config()
        .options()
        .extensions
        .get::<grove_common::context::MsqOptions>()
        .is_none_or(|o| o.finalize_aggregations)
}

/// Aggregators whose stored (non-finalized) form differs from their result, and the
/// function that computes that form: Druid stores the sketch of
/// `APPROX_COUNT_DISTINCT_DS_HLL`, which is what `DS_HLL` returns.
const UNFINALIZED_FORMS: &[(&str, &str)] = &[("approx_count_distinct_ds_hll", "DS_HLL")];

/// `finalizeAggregations: false`: each top-level SELECT item that is a call of an
/// aggregator in [`UNFINALIZED_FORMS`] (optionally aliased or parenthesized) computes
/// the aggregator's intermediate form instead, so the column can be re-aggregated
/// later. Aggregators inside expressions keep their final values, as Druid's do.
fn unfinalize_aggregations(query: &mut Query) {
    match query.body.as_mut() {
        SetExpr::Select(select) => {
            for item in &mut select.projection {
                if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item
                {
                    unfinalize_call(e);
                }
            }
        }
        SetExpr::Query(inner) => unfinalize_aggregations(inner),
        _ => {}
    }
}

fn unfinalize_call(expr: &mut SqlExpr) {
    match expr {
        SqlExpr::Nested(inner) => unfinalize_call(inner),
        SqlExpr::Function(f) if f.over.is_none() => {
            let [part] = f.name.0.as_slice() else {
                return;
            };
            let Some(ident) = part.as_ident() else {
                return;
            };
            if let Some((_, form)) = UNFINALIZED_FORMS
                .iter()
                .find(|(name, _)| ident.value.eq_ignore_ascii_case(name))
            {
                f.name = ObjectName::from(vec![Ident::new(*form)]);
            }
        }
        _ => {}
    }
}

/// Query shapes Druid's MSQ engine refuses with `QueryNotSupported`.
fn check_supported(stmt: &IngestStatement) -> Result<()> {
    use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, visit_expressions};
    use std::ops::ControlFlow;
    let found = visit_expressions(&stmt.query, |e| match e {
        SqlExpr::GroupingSets(_) => ControlFlow::Break("GROUPING SETS"),
        SqlExpr::Rollup(_) => ControlFlow::Break("ROLLUP"),
        SqlExpr::Cube(_) => ControlFlow::Break("CUBE"),
        _ => ControlFlow::Continue(()),
    });
    if let ControlFlow::Break(what) = found {
        return Err(MsqFault::QueryNotSupported {
            message: format!("{what} is not supported in INSERT or REPLACE queries"),
        }
        .into());
    }
    Ok(())
}

/// Catches `SELECT a AS x, b AS x` before DataFusion reports it in its own words.
fn check_duplicate_aliases(stmt: &IngestStatement) -> Result<()> {
    let SetExpr::Select(select) = stmt.query.body.as_ref() else {
        return Ok(());
    };
    let mut seen = HashSet::new();
    for item in &select.projection {
        let name = match item {
            SelectItem::ExprWithAlias { alias, .. } => alias.value.clone(),
            SelectItem::UnnamedExpr(datafusion::sql::sqlparser::ast::Expr::Identifier(id)) => {
                id.value.clone()
            }
            _ => continue,
        };
        if !seen.insert(name.clone()) {
            return plan_err!("Duplicate field in SELECT: [{name}]");
        }
    }
    Ok(())
}

fn resolve_cluster_by(
    state: &SessionState,
    stmt: &IngestStatement,
    input: &LogicalPlan,
    columns: &[(String, StorageType)],
) -> Result<(Vec<Expr>, Vec<String>)> {
    if stmt.clustered_by.len() > MAX_CLUSTERED_BY_COLUMNS {
        return Err(MsqFault::TooManyClusteredByColumns {
            num_columns: stmt.clustered_by.len(),
            stage: 0,
        }
        .into());
    }
    let output_names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    let mut exprs = Vec::with_capacity(stmt.clustered_by.len());
    // Each item's output column, when the item is a plain column.
    let mut plain: Vec<Option<&(String, StorageType)>> = Vec::new();
    for item in &stmt.clustered_by {
        match item {
            ClusterItem::Column(name) => {
                let Some(c) = columns.iter().find(|(n, _)| n == name) else {
                    return plan_err!(
                        "CLUSTERED BY column [{name}] is not an output column of the query; \
                         output columns are [{}]",
                        output_names.join(", ")
                    );
                };
                exprs.push(col(Column::new_unqualified(name)));
                plain.push(Some(c));
            }
            ClusterItem::Ordinal(i) => {
                let Some(c) = columns.get(i - 1).filter(|_| *i <= output_names.len()) else {
                    return plan_err!(
                        "Ordinal out of range: CLUSTERED BY {i} but the query has {} output columns",
                        output_names.len()
                    );
                };
                exprs.push(col(Column::new_unqualified(&c.0)));
                plain.push(Some(c));
            }
            ClusterItem::Expr(e) => {
                let df_schema: &DFSchema = input.schema();
                let expr = state
                    .create_logical_expr(&e.to_string(), df_schema)
                    .map_err(|err| {
                        DataFusionError::Plan(format!(
                            "Invalid CLUSTERED BY expression [{e}]: {err}"
                        ))
                    })?;
                exprs.push(expr);
                plain.push(None);
            }
        }
    }
    let range_dimensions = if stmt.kind == IngestKind::Replace {
        plain
            .iter()
            .map_while(|c| match c {
                Some((name, StorageType::Column(DruidType::String))) => Some(name.clone()),
                _ => None,
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok((exprs, range_dimensions))
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::{SessionConfig, SessionContext};
    use grove_common::context::MsqOptions;

    use super::*;
    use crate::statement::{DruidStatement, parse_statement};

    const REPLACE: &str = "REPLACE INTO t OVERWRITE ALL \
        SELECT TIMESTAMP '2000-01-01 00:00:00' AS __time, g, \
          APPROX_COUNT_DISTINCT_DS_HLL(x) AS u, \
          (APPROX_COUNT_DISTINCT_DS_HLL(x, 14)) AS u14, \
          APPROX_COUNT_DISTINCT_DS_HLL(x) + 1 AS u_plus_one \
        FROM (VALUES ('a', 1), ('b', 1), ('a', 2)) AS v(x, g) GROUP BY g \
        PARTITIONED BY ALL";

    async fn plan(sql: &str, finalize: bool) -> Result<IngestPlan> {
        let mut opts = MsqOptions::default();
        opts.finalize_aggregations = finalize;
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_option_extension(opts));
        crate::functions::register_all(&ctx);
        let DruidStatement::Ingest(stmt) = parse_statement(sql)? else {
            return plan_err!("not an ingest");
        };
        plan_ingest(&ctx.state(), &stmt).await
    }

    #[test]
    fn unfinalizes_only_top_level_calls() {
        let DruidStatement::Ingest(stmt) = parse_statement(REPLACE).expect("parses") else {
            panic!("not an ingest")
        };
        let mut query = stmt.query.clone();
        unfinalize_aggregations(&mut query);
        let sql = query.to_string();
        assert!(sql.contains("DS_HLL(x) AS u,"), "{sql}");
        assert!(sql.contains("(DS_HLL(x, 14)) AS u14"), "{sql}");
        assert!(
            sql.contains("APPROX_COUNT_DISTINCT_DS_HLL(x) + 1 AS u_plus_one"),
            "{sql}"
        );
    }

    fn column_types(plan: &IngestPlan) -> Vec<(&str, &str)> {
        plan.columns
            .iter()
            .map(|(n, t)| (n.as_str(), t.native_name()))
            .collect()
    }

    #[tokio::test]
    async fn finalized_by_default() {
        let plan = plan(REPLACE, true).await.expect("plans");
        let types = column_types(&plan);
        assert_eq!(
            types,
            [
                ("__time", "LONG"),
                ("g", "LONG"),
                ("u", "LONG"),
                ("u14", "LONG"),
                ("u_plus_one", "LONG")
            ]
        );
    }

    #[tokio::test]
    async fn not_finalized_stores_sketches() {
        let plan = plan(REPLACE, false).await.expect("plans");
        let types = column_types(&plan);
        assert_eq!(
            types,
            [
                ("__time", "LONG"),
                ("g", "LONG"),
                ("u", "COMPLEX<HLLSketch>"),
                ("u14", "COMPLEX<HLLSketch>"),
                ("u_plus_one", "LONG")
            ]
        );
        let u = plan
            .input
            .schema()
            .field_with_unqualified_name("u")
            .expect("u");
        assert_eq!(ComplexType::of_field(u), Some(ComplexType::HllSketch));
    }

    #[tokio::test]
    async fn plain_binary_is_not_storable() {
        let e = plan(
            "INSERT INTO t SELECT TIMESTAMP '2000-01-01 00:00:00' AS __time, \
             CAST('abc' AS BYTEA) AS b PARTITIONED BY ALL",
            true,
        )
        .await
        .expect_err("binary");
        assert!(
            e.to_string()
                .contains("Cannot handle column [b] with type [Binary]"),
            "{e}"
        );
    }
}
