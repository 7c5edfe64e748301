//! Druid SQL statements: `INSERT`/`REPLACE` with Druid's clauses, `SET key = value`, and
//! everything else (handed to DataFusion's parser).
//!
//! ```text
//! INSERT INTO ds  <query>  PARTITIONED BY <granularity>  [CLUSTERED BY <items>]
//! REPLACE INTO ds OVERWRITE {ALL | WHERE <__time condition>}  <query>  PARTITIONED BY ...
//! ```
//!
//! DataFusion 55 has no statement hook, so the text is tokenized first; Druid's trailing
//! clauses are cut off at the token level, the head and the query go through sqlparser,
//! and the query is later planned by DataFusion.

use std::fmt;

use datafusion::common::{DataFusionError, Result, plan_datafusion_err, plan_err};
use datafusion::sql::parser::{DFParserBuilder, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{
    CeilFloorKind, DateTimeField, Expr as SqlExpr, Function, FunctionArg, FunctionArgExpr,
    FunctionArguments, Ident, ObjectName, OrderByExpr, Query, Value,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};
use grove_common::Granularity;

use crate::tokens::{
    find_trailing_clauses, is_keyword, is_word, next_significant, render, rewrite_extend, tokenize,
};

/// INSERT or REPLACE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IngestKind {
    /// `INSERT INTO`: appends segments.
    Insert,
    /// `REPLACE INTO ... OVERWRITE`: replaces time chunks.
    Replace,
}

impl fmt::Display for IngestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Insert => "INSERT",
            Self::Replace => "REPLACE",
        })
    }
}

/// What a REPLACE overwrites.
#[derive(Clone, Debug, PartialEq)]
pub enum Overwrite {
    /// `OVERWRITE ALL`.
    All,
    /// `OVERWRITE WHERE <condition on __time>`.
    Where(Box<SqlExpr>),
}

/// One CLUSTERED BY item: an output column name, a 1-based ordinal, or an expression.
#[derive(Clone, Debug, PartialEq)]
pub enum ClusterItem {
    /// An output column, by name.
    Column(String),
    /// A 1-based position in the SELECT list.
    Ordinal(usize),
    /// Any other expression over the output columns.
    Expr(Box<SqlExpr>),
}

/// A parsed `INSERT`/`REPLACE` statement.
#[derive(Clone, Debug, PartialEq)]
pub struct IngestStatement {
    /// INSERT or REPLACE.
    pub kind: IngestKind,
    /// Target datasource.
    pub target: String,
    /// REPLACE's OVERWRITE clause (`None` for INSERT).
    pub overwrite: Option<Overwrite>,
    /// The SELECT (with its WITH clause).
    pub query: Box<Query>,
    /// PARTITIONED BY.
    pub granularity: Granularity,
    /// CLUSTERED BY items, in order.
    pub clustered_by: Vec<ClusterItem>,
}

/// A Druid SQL statement.
#[derive(Debug, Clone)]
pub enum DruidStatement {
    /// INSERT or REPLACE into a datasource.
    Ingest(Box<IngestStatement>),
    /// `SET key = value`: a Druid query-context parameter for the statements that follow.
    SetContext {
        /// Context key.
        key: String,
        /// Its value.
        value: serde_json::Value,
    },
    /// Anything DataFusion parses (SELECT, EXPLAIN of a SELECT, SET datafusion.*, SHOW, ...).
    DataFusion(Box<DFStatement>),
    /// Druid's `EXPLAIN PLAN FOR <statement>`, or `EXPLAIN [ANALYZE] [VERBOSE]` of an
    /// INSERT or REPLACE.
    Explain(Box<ExplainStatement>),
}

/// An EXPLAIN that Grove answers itself (DataFusion's parser knows neither Druid's
/// `EXPLAIN PLAN FOR` nor INSERT/REPLACE with Druid's clauses).
#[derive(Debug, Clone)]
pub struct ExplainStatement {
    /// Druid's `EXPLAIN PLAN [...] FOR`: answered with Druid's columns `PLAN`,
    /// `RESOURCES` and `ATTRIBUTES`. Otherwise DataFusion's form (`plan_type`, `plan`).
    pub druid: bool,
    /// `EXPLAIN ANALYZE`: run the statement and show the operators' metrics.
    pub analyze: bool,
    /// `EXPLAIN VERBOSE`.
    pub verbose: bool,
    /// The statement explained: an INSERT/REPLACE, or (Druid's form) a query.
    pub statement: DruidStatement,
}

fn parser_error(e: ParserError) -> DataFusionError {
    DataFusionError::Plan(format!("Invalid SQL: {e}"))
}

/// Parses one Druid SQL statement (use [`crate::split_statements`] for scripts).
pub fn parse_statement(sql: &str) -> Result<DruidStatement> {
    let tokens = rewrite_extend(tokenize(sql)?)?;
    let Some(first) = next_significant(&tokens, 0) else {
        return plan_err!("Empty statement");
    };
    let head = &tokens[first].token;
    if is_keyword(head, Keyword::INSERT) || is_keyword(head, Keyword::REPLACE) {
        return parse_ingest(tokens).map(|s| DruidStatement::Ingest(Box::new(s)));
    }
    if is_keyword(head, Keyword::SET)
        && let Some(set) = parse_context_set(&tokens[first + 1..])?
    {
        return Ok(set);
    }
    if is_keyword(head, Keyword::EXPLAIN)
        && let Some(explain) = parse_explain(&tokens, first + 1)?
    {
        return Ok(DruidStatement::Explain(Box::new(explain)));
    }
    parse_datafusion(&tokens)
}

/// Druid's `EXPLAIN PLAN [options] FOR <statement>` (Calcite's options, such as
/// `WITH IMPLEMENTATION`, are accepted and change nothing), or `EXPLAIN [ANALYZE]
/// [VERBOSE]` of an INSERT or REPLACE. `None` for any other EXPLAIN: DataFusion's.
fn parse_explain(tokens: &[TokenWithSpan], from: usize) -> Result<Option<ExplainStatement>> {
    let Some(next) = next_significant(tokens, from) else {
        return plan_err!("EXPLAIN needs a statement to explain");
    };
    if is_word(&tokens[next].token, "PLAN") {
        let Some(body) =
            (next + 1..tokens.len()).find(|&i| is_keyword(&tokens[i].token, Keyword::FOR))
        else {
            return plan_err!("Invalid SQL: expected FOR after EXPLAIN PLAN");
        };
        let statement = parse_statement(&render(&tokens[body + 1..]))?;
        return match statement {
            DruidStatement::Ingest(_) => Ok(Some(ExplainStatement {
                druid: true,
                analyze: false,
                verbose: false,
                statement,
            })),
            DruidStatement::DataFusion(ref s)
                if matches!(s.as_ref(), DFStatement::Statement(q)
                    if matches!(q.as_ref(), datafusion::sql::sqlparser::ast::Statement::Query(_))) =>
            {
                Ok(Some(ExplainStatement {
                    druid: true,
                    analyze: false,
                    verbose: false,
                    statement,
                }))
            }
            _ => plan_err!("EXPLAIN PLAN FOR takes a SELECT, INSERT or REPLACE statement"),
        };
    }
    let (mut analyze, mut verbose) = (false, false);
    let mut at = next;
    loop {
        match &tokens[at].token {
            t if is_keyword(t, Keyword::ANALYZE) && !analyze => analyze = true,
            t if is_keyword(t, Keyword::VERBOSE) && !verbose => verbose = true,
            _ => break,
        }
        match next_significant(tokens, at + 1) {
            Some(i) => at = i,
            None => return Ok(None),
        }
    }
    let head = &tokens[at].token;
    if !is_keyword(head, Keyword::INSERT) && !is_keyword(head, Keyword::REPLACE) {
        return Ok(None);
    }
    let statement = DruidStatement::Ingest(Box::new(parse_ingest(tokens[at..].to_vec())?));
    Ok(Some(ExplainStatement {
        druid: false,
        analyze,
        verbose,
        statement,
    }))
}

/// A statement DataFusion's parser takes, with Druid's syntax rewritten.
fn parse_datafusion(tokens: &[TokenWithSpan]) -> Result<DruidStatement> {
    let text = render(tokens);
    let dialect = GenericDialect {};
    let mut parser = DFParserBuilder::new(text.as_str())
        .with_dialect(&dialect)
        .build()
        .map_err(|e| DataFusionError::Plan(format!("Invalid SQL: {e}")))?;
    let mut stmt = parser
        .parse_statement()
        .map_err(|e| DataFusionError::Plan(format!("Invalid SQL: {e}")))?;
    if let DFStatement::Statement(s) = &mut stmt {
        crate::rewrite::rewrite_druid_syntax(s.as_mut())?;
        crate::rewrite::name_unaliased_columns(s.as_mut());
    }
    Ok(DruidStatement::DataFusion(Box::new(stmt)))
}

/// `SET key = value` where `key` has no dot is a Druid context parameter; dotted keys
/// (`datafusion.*`, `msq.*`) are DataFusion settings and return `None`.
fn parse_context_set(tokens: &[TokenWithSpan]) -> Result<Option<DruidStatement>> {
    let sig: Vec<&Token> = tokens
        .iter()
        .map(|t| &t.token)
        .filter(|t| !crate::tokens::is_trivia(t))
        .collect();
    let (key, rest) = match sig.as_slice() {
        [Token::Word(w), Token::Eq, rest @ ..] => (w.value.clone(), rest),
        [Token::SingleQuotedString(s), Token::Eq, rest @ ..] => (s.clone(), rest),
        _ => return Ok(None),
    };
    if key.contains('.') {
        return Ok(None);
    }
    let value = match rest {
        [Token::Number(n, _)] => serde_json::from_str(n)
            .map_err(|_| DataFusionError::Plan(format!("Invalid number [{n}] in SET")))?,
        [Token::Minus, Token::Number(n, _)] => serde_json::from_str(&format!("-{n}"))
            .map_err(|_| DataFusionError::Plan(format!("Invalid number [-{n}] in SET")))?,
        [Token::SingleQuotedString(s)] => serde_json::Value::String(s.clone()),
        [Token::Word(w)] if w.keyword == Keyword::TRUE => serde_json::Value::Bool(true),
        [Token::Word(w)] if w.keyword == Keyword::FALSE => serde_json::Value::Bool(false),
        [Token::Word(w)] if w.keyword == Keyword::NULL => serde_json::Value::Null,
        _ => {
            return plan_err!(
                "Invalid SET statement for [{key}]: the value must be a literal (number, \
                 'string', TRUE, FALSE or NULL)"
            );
        }
    };
    Ok(Some(DruidStatement::SetContext { key, value }))
}

fn parse_ingest(tokens: Vec<TokenWithSpan>) -> Result<IngestStatement> {
    let clauses = find_trailing_clauses(&tokens);
    if let (Some(p), Some(c)) = (clauses.partitioned, clauses.clustered)
        && c < p
    {
        return plan_err!(
            "CLUSTERED BY found before PARTITIONED BY, CLUSTERED BY must come after the \
             PARTITIONED BY clause"
        );
    }
    let cut = clauses
        .partitioned
        .or(clauses.clustered)
        .unwrap_or(tokens.len());
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens[..cut].to_vec());
    let kind = if parser.parse_keyword(Keyword::INSERT) {
        IngestKind::Insert
    } else if parser.parse_keyword(Keyword::REPLACE) {
        IngestKind::Replace
    } else {
        return plan_err!("Expected INSERT or REPLACE");
    };
    parser.expect_keyword(Keyword::INTO).map_err(parser_error)?;
    let name = parser.parse_object_name(false).map_err(parser_error)?;
    let target = target_name(&name, kind)?;
    if parser.peek_token().token == Token::LParen {
        let list = parser
            .parse_parenthesized_column_list(
                datafusion::sql::sqlparser::parser::IsOptional::Mandatory,
                false,
            )
            .map_err(parser_error)?;
        let cols = list
            .iter()
            .map(|c| format!("`{}`", c.value))
            .collect::<Vec<_>>()
            .join(", ");
        return plan_err!(
            "Operation [{kind}] cannot be run with a target column list, given [{target} ({cols})]"
        );
    }
    let overwrite = parse_overwrite(&mut parser, kind)?;
    let mut query = parser.parse_query().map_err(parser_error)?;
    crate::rewrite::rewrite_query(&mut query)?;
    if parser.peek_token().token != Token::EOF {
        return plan_err!(
            "Invalid SQL: unexpected {} after the query of {kind}",
            parser.peek_token().token
        );
    }
    check_query_shape(&query, kind)?;

    let Some(partitioned) = clauses.partitioned else {
        return plan_err!(
            "Operation [{kind}] requires a PARTITIONED BY to be explicitly defined, but none was found."
        );
    };
    let tail_end = clauses.clustered.unwrap_or(tokens.len());
    let granularity = parse_partitioned_by(&tokens[partitioned..tail_end])?;
    if query.limit_clause.is_some() && granularity != Granularity::All {
        return plan_err!(
            "INSERT and REPLACE queries cannot have a LIMIT unless PARTITIONED BY is \"ALL\"."
        );
    }
    let clustered_by = match clauses.clustered {
        Some(c) => parse_clustered_by(&tokens[c..])?,
        None => Vec::new(),
    };
    Ok(IngestStatement {
        kind,
        target,
        overwrite,
        query,
        granularity,
        clustered_by,
    })
}

fn target_name(name: &ObjectName, kind: IngestKind) -> Result<String> {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident().map(|i| i.value.clone()))
        .collect();
    let table = match parts.as_slice() {
        [table] => table.clone(),
        [schema, table] if schema == "druid" => table.clone(),
        _ => {
            return plan_err!(
                "Table [{name}] does not support operation [{kind}] because it is not a Druid datasource"
            );
        }
    };
    if table.contains('/') {
        return plan_err!("Invalid value for field [table]: Value [{table}] cannot contain '/'.");
    }
    if table.is_empty() {
        return plan_err!("Invalid value for field [table]: Value cannot be empty.");
    }
    // Druid's SQL layer checks the two above; its task then refuses the rest of what
    // `IdUtils.validateId` refuses. Grove refuses it all before anything runs.
    grove_common::ids::validate_id("dataSource", &table)
        .map_err(|e| plan_datafusion_err!("{e}"))?;
    Ok(table)
}

fn parse_overwrite(parser: &mut Parser<'_>, kind: IngestKind) -> Result<Option<Overwrite>> {
    let has_overwrite = parser.parse_keyword(Keyword::OVERWRITE);
    match (kind, has_overwrite) {
        (IngestKind::Insert, true) => plan_err!(
            "An OVERWRITE clause is not allowed with INSERT statements. Use REPLACE statements \
             if overwriting existing segments is required or remove the OVERWRITE clause."
        ),
        (IngestKind::Insert, false) => Ok(None),
        (IngestKind::Replace, true) if parser.parse_keyword(Keyword::ALL) => {
            Ok(Some(Overwrite::All))
        }
        (IngestKind::Replace, true) if parser.parse_keyword(Keyword::WHERE) => {
            let cond = parser.parse_expr().map_err(parser_error)?;
            Ok(Some(Overwrite::Where(Box::new(cond))))
        }
        (IngestKind::Replace, _) => plan_err!(
            "Missing time chunk information in OVERWRITE clause for REPLACE. Use OVERWRITE WHERE \
             <__time based condition> or OVERWRITE ALL to overwrite the entire table."
        ),
    }
}

fn check_query_shape(query: &Query, kind: IngestKind) -> Result<()> {
    if query.order_by.is_some() {
        return plan_err!(
            "Cannot use an ORDER BY clause on a Query of type [{kind}], use CLUSTERED BY instead"
        );
    }
    use datafusion::sql::sqlparser::ast::LimitClause;
    let has_offset = match &query.limit_clause {
        Some(LimitClause::LimitOffset { offset, .. }) => offset.is_some(),
        Some(LimitClause::OffsetCommaLimit { .. }) => true,
        None => false,
    };
    if has_offset {
        return plan_err!("INSERT and REPLACE queries cannot have an OFFSET.");
    }
    Ok(())
}

const GRANULARITY_NAMES: &str = "SECOND, MINUTE, FIVE_MINUTE, TEN_MINUTE, FIFTEEN_MINUTE, \
     THIRTY_MINUTE, HOUR, SIX_HOUR, EIGHT_HOUR, DAY, WEEK, MONTH, QUARTER, YEAR, ALL, NONE,";

fn invalid_granularity(text: &str) -> DataFusionError {
    DataFusionError::Plan(format!(
        "Invalid granularity[{text}] specified after PARTITIONED BY clause. Expected \
         {GRANULARITY_NAMES} ALL TIME, FLOOR() or TIME_FLOOR()"
    ))
}

/// Parses `PARTITIONED BY <granularity>` (the tokens start at `PARTITIONED`). Only
/// Druid's standard granularities are accepted (`'PT7M'` or `'P2D'` are not), as in Druid.
fn parse_partitioned_by(tokens: &[TokenWithSpan]) -> Result<Granularity> {
    let rest: Vec<TokenWithSpan> = tokens
        .iter()
        .filter(|t| !crate::tokens::is_trivia(&t.token))
        .skip(2)
        .cloned()
        .collect();
    let text = render(&rest);
    let g = parse_granularity(tokens)?;
    match g {
        Granularity::Period(_) if g.standard_name().is_none() => {
            Err(invalid_granularity(text.trim()))
        }
        _ => Ok(g),
    }
}

fn parse_granularity(tokens: &[TokenWithSpan]) -> Result<Granularity> {
    let sig: Vec<&TokenWithSpan> = tokens
        .iter()
        .filter(|t| !crate::tokens::is_trivia(&t.token))
        .collect();
    // sig[0] = PARTITIONED, sig[1] = BY
    let rest: Vec<TokenWithSpan> = sig.iter().skip(2).map(|t| (*t).clone()).collect();
    let text = render(&rest);
    let text = text.trim();
    if rest.is_empty() {
        return plan_err!("PARTITIONED BY requires a granularity");
    }
    match rest.as_slice() {
        [t] if is_keyword(&t.token, Keyword::ALL) => return Ok(Granularity::All),
        [a, b] if is_keyword(&a.token, Keyword::ALL) && is_word(&b.token, "TIME") => {
            return Ok(Granularity::All);
        }
        [
            TokenWithSpan {
                token: Token::Word(w),
                ..
            },
        ] if w.quote_style.is_none() => {
            return Granularity::from_name(&w.value).ok_or_else(|| invalid_granularity(text));
        }
        [
            TokenWithSpan {
                token: Token::SingleQuotedString(s),
                ..
            },
        ] => {
            return Granularity::from_name(s)
                .or_else(|| Granularity::from_period_str(s))
                .ok_or_else(|| invalid_granularity(&format!("'{s}'")));
        }
        _ => {}
    }
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(rest.clone());
    let expr = parser.parse_expr().map_err(|_| invalid_granularity(text))?;
    if parser.peek_token().token != Token::EOF {
        return Err(invalid_granularity(text));
    }
    granularity_of_expr(&expr).ok_or_else(|| invalid_granularity(text))
}

fn is_time_column(expr: &SqlExpr) -> bool {
    matches!(expr, SqlExpr::Identifier(Ident { value, .. }) if value == "__time")
}

/// `FLOOR(__time TO DAY)` or `TIME_FLOOR(__time, 'PT1H')`.
fn granularity_of_expr(expr: &SqlExpr) -> Option<Granularity> {
    match expr {
        SqlExpr::Floor {
            expr,
            field: CeilFloorKind::DateTimeField(field),
        } if is_time_column(expr) => datetime_field_period(field)
            .and_then(Granularity::from_period_str)
            .filter(|_| !matches!(field, DateTimeField::NoDateTime)),
        SqlExpr::Function(f) if function_name(f).eq_ignore_ascii_case("time_floor") => {
            let args = plain_args(f)?;
            match args.as_slice() {
                [ts, SqlExpr::Value(v)] if is_time_column(ts) => match &v.value {
                    Value::SingleQuotedString(p) => Granularity::from_period_str(p),
                    _ => None,
                },
                _ => None,
            }
        }
        SqlExpr::Nested(inner) => granularity_of_expr(inner),
        _ => None,
    }
}

/// ISO period of a `FLOOR(... TO <unit>)` unit.
pub(crate) fn datetime_field_period(field: &DateTimeField) -> Option<&'static str> {
    Some(match field {
        DateTimeField::Second | DateTimeField::Seconds => "PT1S",
        DateTimeField::Minute | DateTimeField::Minutes => "PT1M",
        DateTimeField::Hour | DateTimeField::Hours => "PT1H",
        DateTimeField::Day | DateTimeField::Days => "P1D",
        DateTimeField::Week(None) | DateTimeField::Weeks => "P1W",
        DateTimeField::Month | DateTimeField::Months => "P1M",
        DateTimeField::Quarter => "P3M",
        DateTimeField::Year | DateTimeField::Years => "P1Y",
        _ => return None,
    })
}

pub(crate) fn function_name(f: &Function) -> String {
    f.name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.clone())
        .unwrap_or_default()
}

/// The positional arguments of a call, or `None` if any is named or a wildcard.
pub(crate) fn plain_args(f: &Function) -> Option<Vec<SqlExpr>> {
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    list.args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// Parses `CLUSTERED BY item, ...` (the tokens start at `CLUSTERED`).
fn parse_clustered_by(tokens: &[TokenWithSpan]) -> Result<Vec<ClusterItem>> {
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens.to_vec());
    parser.next_token(); // CLUSTERED
    parser.expect_keyword(Keyword::BY).map_err(parser_error)?;
    let items: Vec<OrderByExpr> = parser
        .parse_comma_separated(Parser::parse_order_by_expr)
        .map_err(parser_error)?;
    if parser.peek_token().token != Token::EOF {
        let rest = parser.peek_token().token;
        if is_word(&rest, "PARTITIONED") {
            return plan_err!(
                "CLUSTERED BY found before PARTITIONED BY, CLUSTERED BY must come after the \
                 PARTITIONED BY clause"
            );
        }
        return plan_err!("Invalid SQL: unexpected {rest} in CLUSTERED BY");
    }
    items
        .into_iter()
        .map(|item| {
            if item.options.asc == Some(false) {
                return plan_err!(
                    "Invalid CLUSTERED BY clause [{item}]: cannot sort in descending order."
                );
            }
            Ok(match item.expr {
                SqlExpr::Identifier(id) => ClusterItem::Column(id.value),
                SqlExpr::Value(v) => match &v.value {
                    Value::Number(n, _) => match n.parse::<usize>() {
                        Ok(i) if i >= 1 => ClusterItem::Ordinal(i),
                        _ => {
                            return plan_err!(
                                "Invalid CLUSTERED BY ordinal [{n}]: ordinals start at 1"
                            );
                        }
                    },
                    _ => ClusterItem::Expr(Box::new(SqlExpr::Value(v))),
                },
                other => ClusterItem::Expr(Box::new(other)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingest(sql: &str) -> IngestStatement {
        match parse_statement(sql).unwrap() {
            DruidStatement::Ingest(i) => *i,
            other => panic!("not an ingest: {other:?}"),
        }
    }

    fn err(sql: &str) -> String {
        match parse_statement(sql) {
            Ok(s) => panic!("expected an error, got {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_insert_with_clauses() {
        let s = ingest(
            "INSERT INTO w SELECT TIME_PARSE(\"timestamp\") AS __time, page FROM t \
             PARTITIONED BY DAY CLUSTERED BY page, 2, LOWER(page)",
        );
        assert_eq!(s.kind, IngestKind::Insert);
        assert_eq!(s.target, "w");
        assert_eq!(s.granularity, Granularity::from_name("DAY").unwrap());
        assert_eq!(s.clustered_by.len(), 3);
        assert_eq!(s.clustered_by[0], ClusterItem::Column("page".into()));
        assert_eq!(s.clustered_by[1], ClusterItem::Ordinal(2));
        assert!(matches!(s.clustered_by[2], ClusterItem::Expr(_)));
    }

    #[test]
    fn every_partitioned_by_form() {
        let day = Granularity::from_name("DAY").unwrap();
        let hour = Granularity::from_name("HOUR").unwrap();
        for (clause, expected) in [
            ("DAY", day),
            ("'DAY'", day),
            ("'P1D'", day),
            ("FLOOR(__time TO DAY)", day),
            ("TIME_FLOOR(__time, 'PT1H')", hour),
            ("HOUR", hour),
            ("'PT1H'", hour),
            ("ALL", Granularity::All),
            ("ALL TIME", Granularity::All),
            ("'ALL TIME'", Granularity::All),
            (
                "'FIFTEEN_MINUTE'",
                Granularity::from_period_str("PT15M").unwrap(),
            ),
            ("MONTH", Granularity::from_period_str("P1M").unwrap()),
            (
                "FLOOR(__time TO QUARTER)",
                Granularity::from_period_str("P3M").unwrap(),
            ),
            ("YEAR", Granularity::from_period_str("P1Y").unwrap()),
        ] {
            let s = ingest(&format!(
                "INSERT INTO w SELECT * FROM t PARTITIONED BY {clause}"
            ));
            assert_eq!(s.granularity, expected, "{clause}");
        }
    }

    #[test]
    fn rejects_bad_granularities() {
        for clause in [
            "'PT7M'",
            "'P2D'",
            "TIME_FLOOR(__time, 'PT2H')",
            "'P1M2D'",
            "'invalid_granularity'",
            "TIME_FLOOR(x, 'PT1H')",
            "FLOOR(__time)",
            "TIME_FLOOR(__time, 'PT1H', 'x')",
            "BANANA",
        ] {
            let e = err(&format!(
                "INSERT INTO w SELECT * FROM t PARTITIONED BY {clause}"
            ));
            assert!(e.contains("Invalid granularity["), "{clause}: {e}");
            assert!(e.contains("ALL TIME, FLOOR() or TIME_FLOOR()"), "{e}");
        }
    }

    #[test]
    fn keywords_in_strings_comments_and_names_do_not_confuse() {
        let s = ingest(
            "INSERT INTO \"PARTITIONED BY\" SELECT 'PARTITIONED BY HOUR' AS \"CLUSTERED BY\" \
             -- PARTITIONED BY HOUR\n FROM t /* OVERWRITE ALL; CLUSTERED BY x */ \
             PARTITIONED BY DAY",
        );
        assert_eq!(s.target, "PARTITIONED BY");
        assert_eq!(s.granularity, Granularity::from_name("DAY").unwrap());
        assert!(s.clustered_by.is_empty());
    }

    #[test]
    fn replace_forms() {
        let s = ingest("REPLACE INTO w OVERWRITE ALL SELECT * FROM t PARTITIONED BY ALL");
        assert_eq!(s.overwrite, Some(Overwrite::All));
        let s = ingest(
            "REPLACE INTO w OVERWRITE WHERE __time >= TIMESTAMP '2000-01-01' AND \
             __time < TIMESTAMP '2000-01-02' SELECT * FROM t PARTITIONED BY DAY",
        );
        assert!(matches!(s.overwrite, Some(Overwrite::Where(_))));
        let s = ingest(
            "REPLACE INTO w OVERWRITE ALL WITH x AS (SELECT 1 AS a) SELECT * FROM x \
             PARTITIONED BY ALL",
        );
        assert!(s.query.with.is_some());
    }

    #[test]
    fn druid_validation_messages() {
        assert!(
            err("INSERT INTO w SELECT * FROM t").contains(
                "Operation [INSERT] requires a PARTITIONED BY to be explicitly defined, but none was found."
            )
        );
        assert!(
            err("REPLACE INTO w SELECT * FROM t PARTITIONED BY DAY")
                .contains("Missing time chunk information in OVERWRITE clause for REPLACE")
        );
        assert!(
            err("REPLACE INTO w OVERWRITE SELECT * FROM t PARTITIONED BY DAY")
                .contains("Missing time chunk information in OVERWRITE clause for REPLACE")
        );
        assert!(
            err("INSERT INTO w OVERWRITE ALL SELECT * FROM t PARTITIONED BY DAY")
                .contains("An OVERWRITE clause is not allowed with INSERT statements.")
        );
        assert!(
            err("INSERT INTO w SELECT * FROM t CLUSTERED BY a PARTITIONED BY DAY")
                .contains("CLUSTERED BY found before PARTITIONED BY")
        );
        assert!(
            err("INSERT INTO w SELECT * FROM t PARTITIONED BY DAY CLUSTERED BY a DESC")
                .contains("cannot sort in descending order")
        );
        assert!(err("INSERT INTO w SELECT * FROM t ORDER BY a PARTITIONED BY DAY")
            .contains("Cannot use an ORDER BY clause on a Query of type [INSERT], use CLUSTERED BY instead"));
        assert!(
            err("REPLACE INTO w OVERWRITE ALL SELECT * FROM t ORDER BY a PARTITIONED BY DAY")
                .contains("Query of type [REPLACE]")
        );
        assert!(
            err("INSERT INTO w SELECT * FROM t LIMIT 10 PARTITIONED BY DAY")
                .contains("cannot have a LIMIT unless PARTITIONED BY is \"ALL\"")
        );
        assert!(
            err("INSERT INTO w SELECT * FROM t LIMIT 10 OFFSET 2 PARTITIONED BY ALL")
                .contains("cannot have an OFFSET")
        );
        assert!(
            err("INSERT INTO w (a, b) SELECT * FROM t PARTITIONED BY DAY")
                .contains("cannot be run with a target column list, given [w (`a`, `b`)]")
        );
        assert!(
            err("INSERT INTO \"in/valid\" SELECT * FROM t PARTITIONED BY DAY")
                .contains("cannot contain '/'")
        );
        assert!(
            err("INSERT INTO INFORMATION_SCHEMA.COLUMNS SELECT * FROM t PARTITIONED BY DAY")
                .contains("because it is not a Druid datasource")
        );
        let ok = ingest("INSERT INTO w SELECT * FROM t LIMIT 10 PARTITIONED BY ALL");
        assert_eq!(ok.granularity, Granularity::All);
        assert_eq!(
            ingest("INSERT INTO druid.w SELECT 1 PARTITIONED BY ALL").target,
            "w"
        );
    }

    #[test]
    fn set_statements() {
        match parse_statement("SET rowsPerSegment = 10").unwrap() {
            DruidStatement::SetContext { key, value } => {
                assert_eq!(key, "rowsPerSegment");
                assert_eq!(value, serde_json::json!(10));
            }
            other => panic!("{other:?}"),
        }
        match parse_statement("SET sqlTimeZone = 'America/New_York'").unwrap() {
            DruidStatement::SetContext { value, .. } => assert_eq!(value, "America/New_York"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_statement("SET datafusion.execution.batch_size = 100").unwrap(),
            DruidStatement::DataFusion(_)
        ));
    }

    #[test]
    fn select_goes_to_datafusion() {
        assert!(matches!(
            parse_statement("SELECT 1 -- INSERT INTO x").unwrap(),
            DruidStatement::DataFusion(_)
        ));
    }
}
