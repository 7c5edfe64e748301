//! `TABLE(EXTERN(inputSource, inputFormat, signature))`: a relation planner that turns
//! Druid's EXTERN call (positional or named arguments; the signature may come from an
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
        if !is_extern(&name) {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        }
        let spec = extern_spec(&args)?;
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

fn is_extern(name: &ObjectName) -> bool {
    name.0.len() == 1
        && name.0[0]
            .as_ident()
            .is_some_and(|i| i.value.eq_ignore_ascii_case("extern"))
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
