//! Token-level work on Druid SQL text, done before any parsing: splitting a script into
//! statements, finding Druid's trailing clauses, and rewriting `EXTEND (...)` column lists.
//!
//! Everything here works on sqlparser tokens, so keywords inside string literals, quoted
//! identifiers and comments are never mistaken for syntax.

use datafusion::common::{DataFusionError, Result, plan_err};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace};
use grove_common::types::{DruidType, SignatureColumn};

/// Tokenizes Druid SQL with the dialect Grove parses it in.
pub(crate) fn tokenize(sql: &str) -> Result<Vec<TokenWithSpan>> {
    Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| DataFusionError::Plan(format!("Invalid SQL: {e}")))
}

/// Renders tokens back into SQL text, re-escaping quotes inside string literals and
/// quoted identifiers (`'it''s'`, `"a""b"`).
pub(crate) fn render(tokens: &[TokenWithSpan]) -> String {
    let mut out = String::new();
    for t in tokens {
        match &t.token {
            Token::SingleQuotedString(s) => {
                out.push('\'');
                out.push_str(&s.replace('\'', "''"));
                out.push('\'');
            }
            Token::Word(w) if w.quote_style == Some('"') => {
                out.push('"');
                out.push_str(&w.value.replace('"', "\"\""));
                out.push('"');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    out
}

/// True for whitespace and comments.
pub(crate) fn is_trivia(token: &Token) -> bool {
    matches!(token, Token::Whitespace(_))
}

/// True if `token` is the unquoted keyword `kw`.
pub(crate) fn is_keyword(token: &Token, kw: Keyword) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.keyword == kw)
}

/// True if `token` is the unquoted word `word` (case-insensitive), keyword or not.
pub(crate) fn is_word(token: &Token, word: &str) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

/// Index of the next non-trivia token at or after `from`.
pub(crate) fn next_significant(tokens: &[TokenWithSpan], from: usize) -> Option<usize> {
    (from..tokens.len()).find(|&i| !is_trivia(&tokens[i].token))
}

/// True when the last statement of `sql` is an EXPLAIN (Druid answers EXPLAIN inline,
/// even on the task endpoint).
pub fn is_explain(sql: &str) -> bool {
    let Ok(statements) = split_statements(sql) else {
        return false;
    };
    let Some(tokens) = statements.last().and_then(|s| tokenize(s).ok()) else {
        return false;
    };
    next_significant(&tokens, 0).is_some_and(|i| is_keyword(&tokens[i].token, Keyword::EXPLAIN))
}

/// Splits a script into statements on top-level semicolons. Empty statements (only
/// whitespace and comments) are dropped.
pub fn split_statements(sql: &str) -> Result<Vec<String>> {
    let tokens = tokenize(sql)?;
    let mut out = Vec::new();
    let mut current: Vec<TokenWithSpan> = Vec::new();
    let mut depth = 0i32;
    for t in tokens {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::SemiColon if depth <= 0 => {
                push_statement(&mut out, std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(t);
    }
    push_statement(&mut out, current);
    Ok(out)
}

fn push_statement(out: &mut Vec<String>, tokens: Vec<TokenWithSpan>) {
    if tokens.iter().any(|t| !is_trivia(&t.token)) {
        out.push(render(&tokens).trim().to_string());
    }
}

/// Positions of Druid's trailing clauses in an INSERT/REPLACE statement, found at the top
/// level (outside parentheses).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct TrailingClauses {
    /// Index of the `PARTITIONED` token.
    pub(crate) partitioned: Option<usize>,
    /// Index of the `CLUSTERED` token.
    pub(crate) clustered: Option<usize>,
}

/// Finds the first top-level `PARTITIONED BY` and `CLUSTERED BY`.
pub(crate) fn find_trailing_clauses(tokens: &[TokenWithSpan]) -> TrailingClauses {
    let mut found = TrailingClauses::default();
    let mut depth = 0i32;
    for (i, t) in tokens.iter().enumerate() {
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            tok if depth == 0 => {
                let by_follows = next_significant(tokens, i + 1)
                    .is_some_and(|j| is_keyword(&tokens[j].token, Keyword::BY));
                if by_follows && found.partitioned.is_none() && is_word(tok, "PARTITIONED") {
                    found.partitioned = Some(i);
                }
                if by_follows && found.clustered.is_none() && is_word(tok, "CLUSTERED") {
                    found.clustered = Some(i);
                }
            }
            _ => {}
        }
    }
    found
}

/// Index of the token closing the parenthesis opened at `open`.
fn matching_paren(tokens: &[TokenWithSpan], open: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Rewrites Druid's column list after a table function,
/// `TABLE(fn(...)) [EXTEND] (col TYPE, ...)`, into a `signature => '<json>'` argument of
/// `fn`, which sqlparser can parse and the EXTERN planner understands.
pub(crate) fn rewrite_extend(tokens: Vec<TokenWithSpan>) -> Result<Vec<TokenWithSpan>> {
    let mut tokens = tokens;
    let mut i = 0;
    while i < tokens.len() {
        if !is_keyword(&tokens[i].token, Keyword::TABLE) {
            i += 1;
            continue;
        }
        let Some(open) = next_significant(&tokens, i + 1) else {
            break;
        };
        if tokens[open].token != Token::LParen {
            i += 1;
            continue;
        }
        let Some(close) = matching_paren(&tokens, open) else {
            return plan_err!("Unbalanced parentheses after TABLE");
        };
        let mut list_open = next_significant(&tokens, close + 1);
        let mut extend_kw = None;
        if let Some(j) = list_open
            && is_word(&tokens[j].token, "EXTEND")
        {
            extend_kw = Some(j);
            list_open = next_significant(&tokens, j + 1);
        }
        let Some(list_open) = list_open.filter(|&j| tokens[j].token == Token::LParen) else {
            if extend_kw.is_some() {
                return plan_err!(
                    "EXTEND must be followed by a column list: EXTEND (name TYPE, ...)"
                );
            }
            i = close + 1;
            continue;
        };
        let Some(list_close) = matching_paren(&tokens, list_open) else {
            return plan_err!("Unbalanced parentheses in EXTEND column list");
        };
        let columns = parse_column_list(&tokens[list_open + 1..list_close])?;
        let json = serde_json::to_string(&columns)
            .map_err(|e| DataFusionError::Plan(format!("EXTEND column list: {e}")))?;
        // The function call inside TABLE( ... ) ends at the last `)` before `close`.
        let Some(fn_close) = (open + 1..close)
            .rev()
            .find(|&j| !is_trivia(&tokens[j].token))
            .filter(|&j| tokens[j].token == Token::RParen)
        else {
            return plan_err!(
                "EXTEND must follow a table function call: TABLE(fn(...)) EXTEND (...)"
            );
        };
        let has_args = (open + 1..fn_close)
            .rev()
            .find(|&j| !is_trivia(&tokens[j].token))
            .is_some_and(|j| tokens[j].token != Token::LParen);
        let mut insert = Vec::new();
        if has_args {
            insert.push(Token::Comma);
            insert.push(Token::Whitespace(Whitespace::Space));
        }
        insert.push(Token::make_word("signature", None));
        insert.push(Token::Whitespace(Whitespace::Space));
        insert.push(Token::RArrow);
        insert.push(Token::Whitespace(Whitespace::Space));
        insert.push(Token::SingleQuotedString(json));
        // Drop `[EXTEND] (...)`, then splice the argument in (the later range first).
        let drop_from = extend_kw.unwrap_or(list_open);
        tokens.drain(drop_from..=list_close);
        let inserted = insert.len();
        tokens.splice(
            fn_close..fn_close,
            insert.into_iter().map(TokenWithSpan::wrap),
        );
        i = close + inserted + 1;
    }
    Ok(tokens)
}

/// Parses `name TYPE, name TYPE, ...` from an EXTEND list.
fn parse_column_list(tokens: &[TokenWithSpan]) -> Result<Vec<SignatureColumn>> {
    let mut columns = Vec::new();
    for item in tokens.split(|t| t.token == Token::Comma) {
        let words: Vec<&Token> = item
            .iter()
            .map(|t| &t.token)
            .filter(|t| !is_trivia(t))
            .collect();
        let Some((Token::Word(name), type_words)) = words.split_first() else {
            return plan_err!("Invalid EXTEND column list: expected `name TYPE`");
        };
        let type_name = type_words
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        let Some(column_type) = DruidType::parse(&type_name) else {
            return plan_err!(
                "Unsupported type [{type_name}] for column [{}] in EXTEND; expected VARCHAR, \
                 BIGINT, DOUBLE, FLOAT, or an array of one (VARCHAR ARRAY, ...)",
                name.value
            );
        };
        columns.push(SignatureColumn {
            name: name.value.clone(),
            column_type,
        });
    }
    Ok(columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_top_level_semicolons_only() {
        let sql = "SET a = 1; SELECT ';' AS \"x;y\" -- c;\n FROM t; /* ; */ ;";
        let parts = split_statements(sql).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], "SET a = 1");
        assert!(parts[1].starts_with("SELECT ';' AS \"x;y\""));
    }

    #[test]
    fn trailing_clauses_ignore_strings_comments_and_quotes() {
        let sql = "INSERT INTO t SELECT 'PARTITIONED BY DAY' AS \"CLUSTERED BY\" \
                   -- PARTITIONED BY HOUR\n FROM x /* CLUSTERED BY a */ \
                   WHERE a IN (SELECT 1 PARTITIONED BY) PARTITIONED BY DAY CLUSTERED BY b";
        let tokens = tokenize(sql).unwrap();
        let found = find_trailing_clauses(&tokens);
        let p = found.partitioned.unwrap();
        let c = found.clustered.unwrap();
        assert_eq!(
            render(&tokens[p..c]).trim(),
            "PARTITIONED BY DAY",
            "clauses found at {p}..{c}"
        );
        assert_eq!(render(&tokens[c..]).trim(), "CLUSTERED BY b");
    }

    #[test]
    fn extend_becomes_signature_argument() {
        let sql = "SELECT * FROM TABLE(EXTERN('{}', '{}')) EXTEND (a VARCHAR, \"b\" BIGINT)";
        let out = render(&rewrite_extend(tokenize(sql).unwrap()).unwrap());
        assert_eq!(
            out.trim_end(),
            "SELECT * FROM TABLE(EXTERN('{}', '{}', signature => \
             '[{\"name\":\"a\",\"type\":\"string\"},{\"name\":\"b\",\"type\":\"long\"}]'))"
        );
        let bare =
            "SELECT * FROM TABLE(inline(data => ARRAY['a'], format => 'csv')) (x DOUBLE) AS t";
        let out = render(&rewrite_extend(tokenize(bare).unwrap()).unwrap());
        assert!(
            out.contains(
                "format => 'csv', signature => '[{\"name\":\"x\",\"type\":\"double\"}]'))"
            )
        );
        assert!(out.ends_with(" AS t"));
    }

    #[test]
    fn extend_rejects_unknown_types() {
        let sql = "SELECT * FROM TABLE(EXTERN('{}', '{}')) EXTEND (a BLOB)";
        let err = rewrite_extend(tokenize(sql).unwrap()).unwrap_err();
        assert!(err.to_string().contains("Unsupported type [BLOB]"));
    }

    #[test]
    fn quotes_are_re_escaped() {
        let sql = "SELECT 'it''s', \"a\"\"b\" FROM t";
        assert_eq!(render(&tokenize(sql).unwrap()), sql);
    }

    #[test]
    fn table_without_extend_is_untouched() {
        let sql = "SELECT * FROM TABLE(EXTERN('a', 'b', 'c')) AS x JOIN y ON (x.a = y.a)";
        let out = render(&rewrite_extend(tokenize(sql).unwrap()).unwrap());
        assert_eq!(out, sql);
    }
}
