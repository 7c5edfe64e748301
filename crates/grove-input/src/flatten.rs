//! Druid's `flattenSpec` for the `json` input format.
//!
//! A [`FlattenSpec`] (the JSON of `inputFormat.flattenSpec`) is compiled once into a
//! [`Flattener`], which rewrites every input line (one JSON object) into one *flat* JSON
//! object whose keys are the columns Druid would see:
//!
//! * with `useFieldDiscovery` (the default), every top-level field whose value is a
//!   primitive or an array of primitives (Druid skips nulls, objects and arrays holding
//!   objects or arrays);
//! * then every declared field, extracted by its kind: `root` (a top-level field),
//!   `path` (a JsonPath expression), `jq` (a jq path expression) or `tree` (a list of
//!   keys walked from the root). A declared name wins over a discovered one.
//!
//! Extracted values keep their JSON type when they are primitives or arrays of
//! primitives; anything nested (an object, or an array holding objects or arrays) is
//! emitted as its JSON text, so it can land in a string column. A path that matches
//! nothing yields `null`.
//!
//! # Supported expressions
//!
//! Only the path subsets below are evaluated (by the small evaluators in this file);
//! anything else is rejected when the spec is compiled, with
//! [`DataFusionError::NotImplemented`] for valid but unsupported syntax and
//! [`DataFusionError::Plan`] for malformed expressions.
//!
//! * JsonPath (`path`): `$`, `.key`, `['key']` / `["key"]` (with `\` escapes), `[n]`
//!   (negative counts from the end), `[*]` and `.*` (every element of an array or value
//!   of an object). A leading `$` may be omitted (as in Jayway JsonPath). Not supported:
//!   recursive descent `..`, filters `[?(...)]`, script expressions `[(...)]`, functions
//!   such as `.length()`, slices `[a:b]` and unions `[0,1]` / `['a','b']`. As in Jayway
//!   JsonPath, a path with a wildcard yields the list of its matches (elements missing
//!   the rest of the path are skipped); an empty list yields `null`.
//! * jq (`jq`): `.`, `.key`, `."key"`, `.["key"]`, `.[n]` (negative counts from the
//!   end), `.[]` and a trailing `?` on any step (accepted; extraction never fails
//!   anyway). As in Druid, only the *first* output of the expression is kept, so
//!   `.tags[]` yields the first tag. Not supported: pipes, functions, operators,
//!   literals, object/array construction, slices, `..` and string interpolation.

use std::collections::HashSet;

use datafusion::common::{DataFusionError, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Druid's `flattenSpec` (a `JSONPathSpec`): how nested JSON input is turned into columns.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlattenSpec {
    /// Also expose every top-level primitive (or primitive-array) field; Druid's default
    /// is `true`.
    #[serde(default = "default_true")]
    pub use_field_discovery: bool,
    /// Declared fields, extracted in addition to the discovered ones.
    #[serde(default)]
    pub fields: Vec<FlattenField>,
}

impl Default for FlattenSpec {
    /// Druid's default: field discovery on, no declared fields.
    fn default() -> Self {
        Self {
            use_field_discovery: true,
            fields: Vec::new(),
        }
    }
}

fn default_true() -> bool {
    true
}

/// One declared field of a [`FlattenSpec`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlattenField {
    /// How the value is located.
    #[serde(rename = "type")]
    pub kind: FieldKind,
    /// Output column name.
    pub name: String,
    /// The expression: the top-level key for `root` (defaults to `name`), a JsonPath
    /// for `path`, a jq path for `jq`; unused for `tree`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
    /// Keys walked from the root, for `tree`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<String>>,
}

/// The kind of a [`FlattenField`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldKind {
    /// A top-level field (`expr`, or `name` when `expr` is absent).
    Root,
    /// A JsonPath expression (`expr`), e.g. `$.user.name`.
    Path,
    /// A jq path expression (`expr`), e.g. `.user.name`.
    Jq,
    /// A list of object keys (`nodes`) walked from the root.
    Tree,
}

impl FlattenSpec {
    /// Validates the spec and compiles its expressions.
    ///
    /// Errors: [`DataFusionError::Plan`] for an invalid spec (empty or duplicate name,
    /// missing `expr` / `nodes`, malformed expression); [`DataFusionError::NotImplemented`]
    /// for JsonPath or jq syntax outside the supported subset (see the module docs).
    pub fn compile(&self) -> Result<Flattener> {
        let mut names = HashSet::with_capacity(self.fields.len());
        let mut fields = Vec::with_capacity(self.fields.len());
        for field in &self.fields {
            let kind = kind_name(field.kind);
            if field.name.is_empty() {
                return Err(DataFusionError::Plan(format!(
                    "flattenSpec: a field of type [{kind}] has an empty 'name'"
                )));
            }
            if !names.insert(field.name.clone()) {
                return Err(DataFusionError::Plan(format!(
                    "flattenSpec: cannot have duplicate field definition [{}]",
                    field.name
                )));
            }
            let extractor = match field.kind {
                FieldKind::Root => {
                    Extractor::Root(field.expr.clone().unwrap_or_else(|| field.name.clone()))
                }
                FieldKind::Path => {
                    let expr = required_expr(field)?;
                    let steps = parse_json_path(expr)
                        .map_err(|e| e.into_error(&field.name, "JsonPath", expr))?;
                    let definite = !steps.contains(&PathStep::Wildcard);
                    Extractor::Path { steps, definite }
                }
                FieldKind::Jq => {
                    let expr = required_expr(field)?;
                    let steps =
                        parse_jq(expr).map_err(|e| e.into_error(&field.name, "jq", expr))?;
                    Extractor::Jq(steps)
                }
                FieldKind::Tree => match &field.nodes {
                    Some(nodes) if !nodes.is_empty() => Extractor::Tree(nodes.clone()),
                    _ => {
                        return Err(DataFusionError::Plan(format!(
                            "flattenSpec: missing 'nodes' for field [{}] of type [tree]",
                            field.name
                        )));
                    }
                },
            };
            fields.push(CompiledField {
                name: field.name.clone(),
                extractor,
            });
        }
        let identity = self.use_field_discovery
            && fields
                .iter()
                .all(|f| matches!(&f.extractor, Extractor::Root(key) if *key == f.name));
        Ok(Flattener {
            use_field_discovery: self.use_field_discovery,
            fields,
            declared: names,
            identity,
        })
    }
}

fn kind_name(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Root => "root",
        FieldKind::Path => "path",
        FieldKind::Jq => "jq",
        FieldKind::Tree => "tree",
    }
}

fn required_expr(field: &FlattenField) -> Result<&str> {
    match field.expr.as_deref() {
        Some(expr) if !expr.trim().is_empty() => Ok(expr),
        _ => Err(DataFusionError::Plan(format!(
            "flattenSpec: missing 'expr' for field [{}] of type [{}]",
            field.name,
            kind_name(field.kind)
        ))),
    }
}

/// A compiled [`FlattenSpec`]: rewrites JSON object lines into flat JSON objects.
#[derive(Clone, Debug)]
pub struct Flattener {
    use_field_discovery: bool,
    fields: Vec<CompiledField>,
    /// Names of the declared fields (they shadow discovered fields).
    declared: HashSet<String>,
    identity: bool,
}

#[derive(Clone, Debug)]
struct CompiledField {
    name: String,
    extractor: Extractor,
}

impl Flattener {
    /// True when flattening changes nothing that matters: field discovery is on and the
    /// only declared fields (if any) are `root` fields reading the key of their own name.
    /// Such lines can be fed to the JSON decoder as they are.
    pub fn is_identity(&self) -> bool {
        self.identity
    }

    /// Flattens one line (a JSON object) and appends the resulting flat JSON object to
    /// `out`, without a trailing newline.
    ///
    /// Returns the reason as `Err` when the line is not JSON or not a JSON object; `out`
    /// is then left as it was. The caller charges such lines as parse exceptions.
    pub fn flatten_line(&self, line: &[u8], out: &mut Vec<u8>) -> std::result::Result<(), String> {
        let root: Value = serde_json::from_slice(line)
            .map_err(|e| format!("Unable to parse row as JSON: {e}"))?;
        let Some(row) = root.as_object() else {
            return Err(format!(
                "Expected a JSON object, found {}",
                json_type_name(&root)
            ));
        };
        let start = out.len();
        let written = self.write_row(&root, row, out);
        if written.is_err() {
            out.truncate(start);
        }
        written
    }

    fn write_row(
        &self,
        root: &Value,
        row: &Map<String, Value>,
        out: &mut Vec<u8>,
    ) -> std::result::Result<(), String> {
        out.push(b'{');
        let mut first = true;
        if self.use_field_discovery {
            for (key, value) in row {
                if is_discoverable(value) && !self.declared.contains(key) {
                    write_entry(out, &mut first, key, value)?;
                }
            }
        }
        for field in &self.fields {
            let value = field.extractor.extract(root, row);
            write_entry(out, &mut first, &field.name, &value)?;
        }
        out.push(b'}');
        Ok(())
    }
}

fn write_entry(
    out: &mut Vec<u8>,
    first: &mut bool,
    key: &str,
    value: &Value,
) -> std::result::Result<(), String> {
    if !*first {
        out.push(b',');
    }
    *first = false;
    serde_json::to_writer(&mut *out, key).map_err(|e| e.to_string())?;
    out.push(b':');
    serde_json::to_writer(&mut *out, value).map_err(|e| e.to_string())
}

fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Not an object or an array.
fn is_primitive(value: &Value) -> bool {
    !matches!(value, Value::Object(_) | Value::Array(_))
}

/// Druid's discovery rule: non-null primitives and arrays of primitives.
fn is_discoverable(value: &Value) -> bool {
    match value {
        Value::Null | Value::Object(_) => false,
        Value::Array(items) => items.iter().all(is_primitive),
        _ => true,
    }
}

/// The value emitted for one extracted JSON value: primitives and arrays of primitives
/// as they are, anything nested as its JSON text.
fn finalize(value: &Value) -> Value {
    match value {
        Value::Array(items) if items.iter().all(is_primitive) => value.clone(),
        Value::Array(_) | Value::Object(_) => Value::String(value.to_string()),
        _ => value.clone(),
    }
}

/// The value emitted for the matches of an indefinite path (a list); `null` when empty.
fn finalize_many(items: &[&Value]) -> Value {
    if items.is_empty() {
        Value::Null
    } else if items.iter().all(|v| is_primitive(v)) {
        Value::Array(items.iter().map(|v| (*v).clone()).collect())
    } else {
        let mut text = String::from("[");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&item.to_string());
        }
        text.push(']');
        Value::String(text)
    }
}

/// `items[i]`, a negative `i` counting from the end.
fn index(items: &[Value], i: i64) -> Option<&Value> {
    let at = if i < 0 {
        items
            .len()
            .checked_sub(usize::try_from(i.unsigned_abs()).ok()?)?
    } else {
        usize::try_from(i).ok()?
    };
    items.get(at)
}

static NULL: Value = Value::Null;

#[derive(Clone, Debug)]
enum Extractor {
    /// A top-level key.
    Root(String),
    /// Object keys walked from the root.
    Tree(Vec<String>),
    /// A JsonPath; `definite` when it has no wildcard (it then yields one value).
    Path {
        steps: Vec<PathStep>,
        definite: bool,
    },
    /// A jq path.
    Jq(Vec<JqStep>),
}

impl Extractor {
    fn extract(&self, root: &Value, row: &Map<String, Value>) -> Value {
        match self {
            Extractor::Root(key) => row.get(key).map_or(Value::Null, finalize),
            Extractor::Tree(nodes) => {
                let mut current = root;
                for node in nodes {
                    match current.as_object().and_then(|m| m.get(node)) {
                        Some(next) => current = next,
                        None => return Value::Null,
                    }
                }
                finalize(current)
            }
            Extractor::Path {
                steps,
                definite: true,
            } => eval_definite_path(steps, root).map_or(Value::Null, finalize),
            Extractor::Path {
                steps,
                definite: false,
            } => finalize_many(&eval_indefinite_path(steps, root)),
            Extractor::Jq(steps) => match jq_first(steps, root) {
                JqOut::Value(value) => finalize(value),
                JqOut::Empty | JqOut::Error => Value::Null,
            },
        }
    }
}

/// Why an expression was rejected.
#[derive(Debug)]
enum ExprError {
    /// Valid syntax outside the supported subset.
    Unsupported(String),
    /// Not a valid expression.
    Malformed(String),
}

impl ExprError {
    fn into_error(self, field: &str, language: &str, expr: &str) -> DataFusionError {
        match self {
            ExprError::Unsupported(what) => DataFusionError::NotImplemented(format!(
                "flattenSpec field [{field}]: {language} expression [{expr}] uses {what}, \
                 which is not supported"
            )),
            ExprError::Malformed(what) => DataFusionError::Plan(format!(
                "flattenSpec field [{field}]: invalid {language} expression [{expr}]: {what}"
            )),
        }
    }
}

/// A character cursor over an expression.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, expected: char) -> bool {
        if self.peek() == Some(expected) {
            self.pos += expected.len_utf8();
            true
        } else {
            false
        }
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if !keep(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
        &self.text[start..self.pos]
    }

    fn skip_whitespace(&mut self) {
        self.take_while(char::is_whitespace);
    }
}

// ---------------------------------------------------------------------------------------
// JsonPath
// ---------------------------------------------------------------------------------------

/// One step of a JsonPath.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PathStep {
    /// `.key` / `['key']`: an object member.
    Key(String),
    /// `[n]`: an array element (negative from the end).
    Index(i64),
    /// `[*]` / `.*`: every array element or object value.
    Wildcard,
}

/// Parses the supported JsonPath subset (see the module docs).
fn parse_json_path(expr: &str) -> std::result::Result<Vec<PathStep>, ExprError> {
    let text = expr.trim();
    let prefixed;
    let body = if let Some(rest) = text.strip_prefix('$') {
        rest
    } else if text.starts_with('@') {
        return Err(ExprError::Malformed(
            "'@' is only valid inside filters; paths start with '$'".into(),
        ));
    } else if text.starts_with('[') {
        text
    } else {
        // Jayway JsonPath reads `a.b` as `$.a.b`.
        prefixed = format!(".{text}");
        &prefixed
    };
    let mut cursor = Cursor::new(body);
    let mut steps = Vec::new();
    while let Some(c) = cursor.peek() {
        match c {
            '.' => {
                cursor.bump();
                match cursor.peek() {
                    None => return Err(ExprError::Malformed("path must not end with '.'".into())),
                    Some('.') => {
                        return Err(ExprError::Unsupported("recursive descent ('..')".into()));
                    }
                    // `$.['a']` is tolerated: the bracket is read next.
                    Some('[') => {}
                    Some('*') => {
                        cursor.bump();
                        steps.push(PathStep::Wildcard);
                    }
                    Some(_) => {
                        let name = cursor.take_while(|c| c != '.' && c != '[');
                        if name.contains('(') {
                            return Err(ExprError::Unsupported(format!(
                                "the function call '{name}'"
                            )));
                        }
                        if name.chars().any(char::is_whitespace) {
                            return Err(ExprError::Malformed(format!(
                                "key '{name}' contains whitespace; write it as ['{name}']"
                            )));
                        }
                        steps.push(PathStep::Key(name.to_string()));
                    }
                }
            }
            '[' => {
                cursor.bump();
                steps.push(parse_path_bracket(&mut cursor)?);
            }
            other => {
                return Err(ExprError::Malformed(format!(
                    "unexpected character '{other}' at offset {}",
                    cursor.pos
                )));
            }
        }
    }
    Ok(steps)
}

/// Parses the inside of `[...]` (the cursor is just past `[`) and the closing `]`.
fn parse_path_bracket(cursor: &mut Cursor<'_>) -> std::result::Result<PathStep, ExprError> {
    cursor.skip_whitespace();
    let step = match cursor.peek() {
        None => return Err(ExprError::Malformed("unterminated '['".into())),
        Some('?') => return Err(ExprError::Unsupported("a filter ('[?(...)]')".into())),
        Some('(') => {
            return Err(ExprError::Unsupported(
                "a script expression ('[(...)]')".into(),
            ));
        }
        Some('*') => {
            cursor.bump();
            PathStep::Wildcard
        }
        Some(quote @ ('\'' | '"')) => {
            cursor.bump();
            let key = read_path_quoted(cursor, quote)?;
            cursor.skip_whitespace();
            if cursor.peek() == Some(',') {
                return Err(ExprError::Unsupported(
                    "a union of keys ('[\\'a\\',\\'b\\']')".into(),
                ));
            }
            PathStep::Key(key)
        }
        Some(_) => {
            let inner = cursor.take_while(|c| c != ']').trim();
            if inner.contains(':') {
                return Err(ExprError::Unsupported(format!(
                    "an array slice ('[{inner}]')"
                )));
            }
            if inner.contains(',') {
                return Err(ExprError::Unsupported(format!(
                    "a union of indexes ('[{inner}]')"
                )));
            }
            let at = inner.parse::<i64>().map_err(|_| {
                ExprError::Malformed(format!(
                    "invalid array index '{inner}' (quote keys: ['{inner}'])"
                ))
            })?;
            PathStep::Index(at)
        }
    };
    cursor.skip_whitespace();
    if cursor.eat(']') {
        Ok(step)
    } else {
        Err(ExprError::Malformed(
            "unterminated '[' (expected ']')".into(),
        ))
    }
}

/// Reads a quoted key (the cursor is just past the opening quote) up to and including
/// the closing quote; `\x` stands for `x`.
fn read_path_quoted(
    cursor: &mut Cursor<'_>,
    quote: char,
) -> std::result::Result<String, ExprError> {
    let mut key = String::new();
    loop {
        match cursor.bump() {
            None => return Err(ExprError::Malformed("unterminated quoted key".into())),
            Some('\\') => match cursor.bump() {
                Some(c) => key.push(c),
                None => return Err(ExprError::Malformed("unterminated quoted key".into())),
            },
            Some(c) if c == quote => return Ok(key),
            Some(c) => key.push(c),
        }
    }
}

/// A path without wildcards: one value, or `None` when any step misses.
fn eval_definite_path<'a>(steps: &[PathStep], root: &'a Value) -> Option<&'a Value> {
    steps.iter().try_fold(root, |value, step| match step {
        PathStep::Key(key) => value.as_object()?.get(key),
        PathStep::Index(at) => index(value.as_array()?, *at),
        PathStep::Wildcard => None,
    })
}

/// A path with wildcards: every match, in document order; values missing a later step
/// are skipped (Jayway JsonPath's behavior).
fn eval_indefinite_path<'a>(steps: &[PathStep], root: &'a Value) -> Vec<&'a Value> {
    let mut current = vec![root];
    for step in steps {
        let mut next = Vec::with_capacity(current.len());
        for value in current {
            match step {
                PathStep::Key(key) => next.extend(value.as_object().and_then(|m| m.get(key))),
                PathStep::Index(at) => next.extend(value.as_array().and_then(|a| index(a, *at))),
                PathStep::Wildcard => match value {
                    Value::Array(items) => next.extend(items),
                    Value::Object(members) => next.extend(members.values()),
                    _ => {}
                },
            }
        }
        current = next;
    }
    current
}

// ---------------------------------------------------------------------------------------
// jq
// ---------------------------------------------------------------------------------------

/// One step of a jq path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum JqStep {
    /// `.key` / `."key"` / `.["key"]`.
    Key(String),
    /// `.[n]` (negative from the end).
    Index(i64),
    /// `.[]`: every array element or object value.
    Iterate,
}

/// Parses the supported jq subset (see the module docs).
fn parse_jq(expr: &str) -> std::result::Result<Vec<JqStep>, ExprError> {
    const BEYOND: &str = "syntax beyond simple paths (supported: .a.b, .\"a b\", .[\"a b\"], \
                          .[0], .[])";
    let text = expr.trim();
    if text == "." {
        return Ok(Vec::new());
    }
    if !text.starts_with('.') {
        return Err(ExprError::Unsupported(BEYOND.into()));
    }
    let mut cursor = Cursor::new(text);
    let mut steps = Vec::new();
    while let Some(c) = cursor.peek() {
        match c {
            '.' => {
                cursor.bump();
                match cursor.peek() {
                    None => return Err(ExprError::Malformed("path must not end with '.'".into())),
                    Some('.') => {
                        return Err(ExprError::Unsupported("recursive descent ('..')".into()));
                    }
                    Some('"') => steps.push(JqStep::Key(read_jq_string(&mut cursor)?)),
                    // `.[...]`: the bracket is read next.
                    Some('[') => {}
                    Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                        let name = cursor.take_while(|c| c.is_ascii_alphanumeric() || c == '_');
                        steps.push(JqStep::Key(name.to_string()));
                    }
                    Some(_) => return Err(ExprError::Unsupported(BEYOND.into())),
                }
            }
            '[' => {
                cursor.bump();
                steps.push(parse_jq_bracket(&mut cursor)?);
            }
            // `?` suppresses errors; extraction never fails, so it changes nothing here.
            '?' => {
                cursor.bump();
            }
            _ => return Err(ExprError::Unsupported(BEYOND.into())),
        }
    }
    Ok(steps)
}

/// Parses the inside of `[...]` (the cursor is just past `[`) and the closing `]`.
fn parse_jq_bracket(cursor: &mut Cursor<'_>) -> std::result::Result<JqStep, ExprError> {
    cursor.skip_whitespace();
    let step = match cursor.peek() {
        None => return Err(ExprError::Malformed("unterminated '['".into())),
        Some(']') => JqStep::Iterate,
        Some('"') => {
            let key = read_jq_string(cursor)?;
            cursor.skip_whitespace();
            if cursor.peek() != Some(']') {
                return Err(ExprError::Unsupported(
                    "an index expression other than a string or an integer".into(),
                ));
            }
            JqStep::Key(key)
        }
        Some(_) => {
            let inner = cursor.take_while(|c| c != ']').trim();
            if inner.contains(':') {
                return Err(ExprError::Unsupported(format!(
                    "an array slice ('[{inner}]')"
                )));
            }
            let at = inner.parse::<i64>().map_err(|_| {
                ExprError::Unsupported(format!(
                    "the index expression '[{inner}]' (only integers and strings are supported)"
                ))
            })?;
            JqStep::Index(at)
        }
    };
    cursor.skip_whitespace();
    if cursor.eat(']') {
        Ok(step)
    } else {
        Err(ExprError::Malformed(
            "unterminated '[' (expected ']')".into(),
        ))
    }
}

/// Reads a jq string literal (the cursor is on the opening `"`); escapes are JSON's.
fn read_jq_string(cursor: &mut Cursor<'_>) -> std::result::Result<String, ExprError> {
    let start = cursor.pos;
    cursor.bump();
    loop {
        match cursor.bump() {
            None => return Err(ExprError::Malformed("unterminated string".into())),
            Some('\\') => match cursor.bump() {
                Some('(') => {
                    return Err(ExprError::Unsupported(
                        "string interpolation ('\\(...)')".into(),
                    ));
                }
                Some(_) => {}
                None => return Err(ExprError::Malformed("unterminated string".into())),
            },
            Some('"') => break,
            Some(_) => {}
        }
    }
    let literal = &cursor.text[start..cursor.pos];
    serde_json::from_str::<String>(literal)
        .map_err(|e| ExprError::Malformed(format!("invalid string {literal}: {e}")))
}

/// The first output of a jq path.
enum JqOut<'a> {
    Value(&'a Value),
    /// The path produced no output (e.g. `.[]` over an empty array).
    Empty,
    /// jq would raise an error (e.g. `.a` on a number).
    Error,
}

/// Evaluates `steps` on `value` and returns the first output, like Druid (which keeps
/// only the first result of a jq expression). Missing keys and out-of-range indexes
/// yield `null`, as in jq.
fn jq_first<'a>(steps: &[JqStep], value: &'a Value) -> JqOut<'a> {
    let Some((step, rest)) = steps.split_first() else {
        return JqOut::Value(value);
    };
    match (step, value) {
        (JqStep::Key(_) | JqStep::Index(_), Value::Null) => jq_first(rest, &NULL),
        (JqStep::Key(key), Value::Object(members)) => {
            jq_first(rest, members.get(key).unwrap_or(&NULL))
        }
        (JqStep::Index(at), Value::Array(items)) => {
            jq_first(rest, index(items, *at).unwrap_or(&NULL))
        }
        (JqStep::Iterate, Value::Array(items)) => jq_first_of(rest, items.iter()),
        (JqStep::Iterate, Value::Object(members)) => jq_first_of(rest, members.values()),
        _ => JqOut::Error,
    }
}

/// The first output of `steps` over a stream of inputs.
fn jq_first_of<'a>(steps: &[JqStep], inputs: impl Iterator<Item = &'a Value>) -> JqOut<'a> {
    for input in inputs {
        match jq_first(steps, input) {
            JqOut::Empty => continue,
            out => return out,
        }
    }
    JqOut::Empty
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> FlattenSpec {
        serde_json::from_str(json).unwrap()
    }

    fn flattener(json: &str) -> Flattener {
        spec(json).compile().unwrap()
    }

    /// Flattens `line` with the spec `json` and returns the output object.
    fn run(json: &str, line: &str) -> Map<String, Value> {
        let mut out = Vec::new();
        flattener(json)
            .flatten_line(line.as_bytes(), &mut out)
            .unwrap();
        match serde_json::from_slice(&out).unwrap() {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    /// One declared field of the given kind/expr, discovery off; returns its value.
    fn extract(kind: &str, expr: &str, line: &str) -> Value {
        let json = serde_json::json!({
            "useFieldDiscovery": false,
            "fields": [{"type": kind, "name": "out", "expr": expr}]
        })
        .to_string();
        let row = run(&json, line);
        assert_eq!(row.len(), 1, "{row:?}");
        row["out"].clone()
    }

    fn compile_err(kind: &str, expr: &str) -> DataFusionError {
        let field = serde_json::json!({"type": kind, "name": "x", "expr": expr});
        let json = serde_json::json!({"fields": [field]}).to_string();
        spec(&json).compile().unwrap_err()
    }

    const ROW: &str = r#"{"ts":"2024-01-01","n":3,"ok":true,"nil":null,
        "tags":["a","b"],"user":{"name":"ann","id":7,"addr":{"city":"x"}},
        "items":[{"id":1,"v":[1,2]},{"id":2},{"other":3}],"a b":{"c":"spaced"},
        "nested":[[1],[2]],"it's":{"q":1}}"#;

    fn row_line() -> String {
        ROW.replace('\n', " ")
    }

    #[test]
    fn flatten_spec_serde_defaults_and_round_trip() {
        let s = spec("{}");
        assert!(s.use_field_discovery);
        assert!(s.fields.is_empty());
        assert_eq!(s, FlattenSpec::default());

        let s = spec(
            r#"{"useFieldDiscovery":false,"fields":[
                {"type":"root","name":"r"},
                {"type":"path","name":"p","expr":"$.a"},
                {"type":"jq","name":"j","expr":".a"},
                {"type":"tree","name":"t","nodes":["a","b"]}]}"#,
        );
        assert!(!s.use_field_discovery);
        let kinds: Vec<_> = s.fields.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            [
                FieldKind::Root,
                FieldKind::Path,
                FieldKind::Jq,
                FieldKind::Tree
            ]
        );
        assert_eq!(s.fields[3].nodes, Some(vec!["a".into(), "b".into()]));
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains(r#""useFieldDiscovery":false"#), "{text}");
        assert!(text.contains(r#""type":"path""#), "{text}");
        assert_eq!(spec(&text), s);

        assert!(
            serde_json::from_str::<FlattenSpec>(r#"{"fields":[{"type":"x","name":"a"}]}"#).is_err()
        );
    }

    #[test]
    fn flatten_root_fields() {
        let line = row_line();
        assert_eq!(extract("root", "n", &line), serde_json::json!(3));
        assert_eq!(
            extract("root", "tags", &line),
            serde_json::json!(["a", "b"])
        );
        // Objects become JSON text.
        assert_eq!(
            extract("root", "a b", &line),
            serde_json::json!(r#"{"c":"spaced"}"#)
        );
        assert_eq!(extract("root", "missing", &line), Value::Null);

        // Without expr, the name is the key.
        let row = run(
            r#"{"useFieldDiscovery":false,"fields":[{"type":"root","name":"ok"}]}"#,
            &line,
        );
        assert_eq!(row["ok"], Value::Bool(true));
    }

    #[test]
    fn flatten_path_fields() {
        let line = row_line();
        let path = |expr: &str| extract("path", expr, &line);
        assert_eq!(path("$.user.name"), serde_json::json!("ann"));
        assert_eq!(path("$.user.addr.city"), serde_json::json!("x"));
        assert_eq!(path("$['a b'].c"), serde_json::json!("spaced"));
        assert_eq!(path(r#"$["a b"]['c']"#), serde_json::json!("spaced"));
        assert_eq!(path(r"$['it\'s'].q"), serde_json::json!(1));
        assert_eq!(path("$.items[0].id"), serde_json::json!(1));
        assert_eq!(path("$.items[ 1 ].id"), serde_json::json!(2));
        assert_eq!(path("$.items[-1].other"), serde_json::json!(3));
        assert_eq!(path("$.tags[1]"), serde_json::json!("b"));
        assert_eq!(path("$.tags"), serde_json::json!(["a", "b"]));
        assert_eq!(path("$.items[0].v"), serde_json::json!([1, 2]));
        // `$` may be omitted, and `$.['k']` is tolerated.
        assert_eq!(path("user.id"), serde_json::json!(7));
        assert_eq!(path("$.['user'].id"), serde_json::json!(7));
        // Nested values are JSON text.
        assert_eq!(path("$.user.addr"), serde_json::json!(r#"{"city":"x"}"#));
        assert_eq!(path("$.nested"), serde_json::json!("[[1],[2]]"));
    }

    #[test]
    fn flatten_path_missing_values_are_null() {
        let line = row_line();
        let path = |expr: &str| extract("path", expr, &line);
        assert_eq!(path("$.nope"), Value::Null);
        assert_eq!(path("$.user.nope.deeper"), Value::Null);
        assert_eq!(path("$.items[9].id"), Value::Null);
        assert_eq!(path("$.items[-9].id"), Value::Null);
        assert_eq!(path("$.items.id"), Value::Null);
        assert_eq!(path("$.user[0]"), Value::Null);
        assert_eq!(path("$.n.x"), Value::Null);
        assert_eq!(path("$.nil"), Value::Null);
        assert_eq!(path("$.nope[*]"), Value::Null);
    }

    #[test]
    fn flatten_path_wildcards() {
        let line = row_line();
        let path = |expr: &str| extract("path", expr, &line);
        assert_eq!(path("$.tags[*]"), serde_json::json!(["a", "b"]));
        // Items missing the rest of the path are skipped.
        assert_eq!(path("$.items[*].id"), serde_json::json!([1, 2]));
        assert_eq!(path("$.user.addr.*"), serde_json::json!(["x"]));
        // Not all primitives: JSON text of the list (member order is the map's).
        let Value::String(text) = path("$.user.*") else {
            panic!("expected JSON text")
        };
        let values: Vec<Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(values.len(), 3);
        assert!(values.contains(&serde_json::json!({"city": "x"})));
        assert!(values.contains(&serde_json::json!("ann")));
        assert_eq!(path("$.items[*].v[*]"), serde_json::json!([1, 2]));
        assert_eq!(path("$.items[*].v"), serde_json::json!("[[1,2]]"));
        assert_eq!(path("$.nested[*][0]"), serde_json::json!([1, 2]));
        assert_eq!(path("$.items[*].nope"), Value::Null);
    }

    #[test]
    fn flatten_jq_fields() {
        let line = row_line();
        let jq = |expr: &str| extract("jq", expr, &line);
        assert_eq!(jq(".user.name"), serde_json::json!("ann"));
        assert_eq!(jq(".items[0].id"), serde_json::json!(1));
        assert_eq!(jq(".items.[1].id"), serde_json::json!(2));
        assert_eq!(jq(".items[-1].other"), serde_json::json!(3));
        assert_eq!(jq(r#".["a b"].c"#), serde_json::json!("spaced"));
        assert_eq!(jq(r#"."a b"["c"]"#), serde_json::json!("spaced"));
        assert_eq!(jq(r#".["it's"].q"#), serde_json::json!(1));
        assert_eq!(jq(".user.addr"), serde_json::json!(r#"{"city":"x"}"#));
        assert_eq!(jq(".tags"), serde_json::json!(["a", "b"]));
        assert_eq!(jq(".user.id?"), serde_json::json!(7));
        // Druid keeps the first output only.
        assert_eq!(jq(".tags[]"), serde_json::json!("a"));
        assert_eq!(jq(".items[].id"), serde_json::json!(1));
        // Identity: the whole row, as JSON text.
        let whole = jq(".");
        let Value::String(text) = whole else {
            panic!("{whole:?}")
        };
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            serde_json::from_str::<Value>(&line).unwrap()
        );
        // Missing, out of range, errors and empty outputs are null.
        assert_eq!(jq(".nope.deeper"), Value::Null);
        assert_eq!(jq(".items[9].id"), Value::Null);
        assert_eq!(jq(".n.x"), Value::Null);
        assert_eq!(jq(".user[0]"), Value::Null);
        assert_eq!(jq(".nope[]"), Value::Null);
        assert_eq!(extract("jq", ".a[]", r#"{"a":[]}"#), Value::Null);
        // Empty outputs move on to the next input.
        assert_eq!(
            extract("jq", ".a[][]", r#"{"a":[[],[5]]}"#),
            serde_json::json!(5)
        );
    }

    #[test]
    fn flatten_tree_fields() {
        let line = row_line();
        let tree = |nodes: &[&str]| {
            let json = serde_json::json!({
                "useFieldDiscovery": false,
                "fields": [{"type": "tree", "name": "out", "nodes": nodes}]
            })
            .to_string();
            run(&json, &line)["out"].clone()
        };
        assert_eq!(tree(&["user", "addr", "city"]), serde_json::json!("x"));
        assert_eq!(tree(&["a b", "c"]), serde_json::json!("spaced"));
        assert_eq!(
            tree(&["user", "addr"]),
            serde_json::json!(r#"{"city":"x"}"#)
        );
        assert_eq!(tree(&["tags"]), serde_json::json!(["a", "b"]));
        assert_eq!(tree(&["user", "nope"]), Value::Null);
        assert_eq!(tree(&["tags", "0"]), Value::Null);
    }

    #[test]
    fn flatten_field_discovery() {
        let line = row_line();
        // Default spec: primitives and primitive arrays only.
        let row = run("{}", &line);
        let keys: HashSet<&str> = row.keys().map(String::as_str).collect();
        assert_eq!(keys, HashSet::from(["ts", "n", "ok", "tags"]));
        assert_eq!(row["tags"], serde_json::json!(["a", "b"]));

        // Discovery plus declared fields; declared names win.
        let row = run(
            r#"{"fields":[{"type":"path","name":"n","expr":"$.user.id"},
                          {"type":"jq","name":"city","expr":".user.addr.city"}]}"#,
            &line,
        );
        let keys: HashSet<&str> = row.keys().map(String::as_str).collect();
        assert_eq!(keys, HashSet::from(["ts", "n", "ok", "tags", "city"]));
        assert_eq!(row["n"], serde_json::json!(7));
        assert_eq!(row["city"], serde_json::json!("x"));

        // A declared field that misses shadows the discovered one with null.
        let row = run(
            r#"{"fields":[{"type":"path","name":"ts","expr":"$.nope"}]}"#,
            &line,
        );
        assert_eq!(row["ts"], Value::Null);

        // Discovery off: declared fields only.
        let row = run(
            r#"{"useFieldDiscovery":false,"fields":[{"type":"root","name":"ts"}]}"#,
            &line,
        );
        assert_eq!(row.len(), 1);
        assert_eq!(row["ts"], serde_json::json!("2024-01-01"));
        assert!(run(r#"{"useFieldDiscovery":false}"#, &line).is_empty());
    }

    #[test]
    fn flatten_appends_one_object_without_newline() {
        let f = flattener(r#"{"fields":[{"type":"path","name":"c","expr":"$.o.c"}]}"#);
        let mut out = b"prefix\n".to_vec();
        f.flatten_line(br#"{"a":"x\"y","o":{"c":1.5}}"#, &mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        let body = text.strip_prefix("prefix\n").unwrap();
        assert!(!body.contains('\n'), "{body}");
        assert_eq!(
            serde_json::from_str::<Value>(body).unwrap(),
            serde_json::json!({"a": "x\"y", "c": 1.5})
        );
        // Trailing whitespace / CR is fine.
        let mut out = Vec::new();
        f.flatten_line(b"{\"a\":1}\r", &mut out).unwrap();
        assert_eq!(out, br#"{"a":1,"c":null}"#);
    }

    #[test]
    fn flatten_rejects_non_object_lines() {
        let f = flattener("{}");
        for line in [
            "not json", "", "[1,2]", "42", "\"s\"", "null", "{\"a\":1", "{} {}",
        ] {
            let mut out = b"keep".to_vec();
            let err = f.flatten_line(line.as_bytes(), &mut out).unwrap_err();
            assert!(!err.is_empty());
            assert_eq!(out, b"keep", "{line}");
        }
        let err = f.flatten_line(b"[1]", &mut Vec::new()).unwrap_err();
        assert!(err.contains("an array"), "{err}");
    }

    #[test]
    fn flatten_is_identity() {
        assert!(flattener("{}").is_identity());
        assert!(flattener(r#"{"fields":[{"type":"root","name":"a"}]}"#).is_identity());
        assert!(flattener(r#"{"fields":[{"type":"root","name":"a","expr":"a"}]}"#).is_identity());
        assert!(!flattener(r#"{"useFieldDiscovery":false}"#).is_identity());
        assert!(!flattener(r#"{"fields":[{"type":"root","name":"a","expr":"b"}]}"#).is_identity());
        assert!(
            !flattener(r#"{"fields":[{"type":"path","name":"a","expr":"$.a"}]}"#).is_identity()
        );
        assert!(
            !flattener(r#"{"useFieldDiscovery":false,"fields":[{"type":"root","name":"a"}]}"#)
                .is_identity()
        );
    }

    #[test]
    fn flatten_spec_validation() {
        let plan = |json: &str| match spec(json).compile() {
            Err(DataFusionError::Plan(msg)) => msg,
            other => panic!("expected a plan error for {json}: {other:?}"),
        };
        assert!(plan(r#"{"fields":[{"type":"root","name":""}]}"#).contains("empty 'name'"));
        assert!(plan(r#"{"fields":[{"type":"path","name":"a"}]}"#).contains("missing 'expr'"));
        assert!(
            plan(r#"{"fields":[{"type":"jq","name":"a","expr":" "}]}"#).contains("missing 'expr'")
        );
        assert!(plan(r#"{"fields":[{"type":"tree","name":"a"}]}"#).contains("missing 'nodes'"));
        assert!(
            plan(r#"{"fields":[{"type":"tree","name":"a","nodes":[]}]}"#)
                .contains("missing 'nodes'")
        );
        assert!(
            plan(
                r#"{"fields":[{"type":"root","name":"a"},{"type":"path","name":"a","expr":"$.b"}]}"#
            )
            .contains("duplicate field definition [a]")
        );
    }

    #[test]
    fn flatten_unsupported_expressions_are_not_implemented() {
        for (kind, expr) in [
            ("path", "$..x"),
            ("path", "$.a[?(@.b > 1)]"),
            ("path", "$.a[(@.length-1)]"),
            ("path", "$.a.length()"),
            ("path", "$.a[0:2]"),
            ("path", "$.a[0,1]"),
            ("path", "$['a','b']"),
            ("jq", ".a | .b"),
            ("jq", "map(.x)"),
            ("jq", ".."),
            ("jq", ".a..b"),
            ("jq", ".a[1:2]"),
            ("jq", ".a[.b]"),
            ("jq", ".a-b"),
            ("jq", r#".["\(.x)"]"#),
            ("jq", "[.a]"),
        ] {
            match compile_err(kind, expr) {
                DataFusionError::NotImplemented(msg) => {
                    assert!(msg.contains(expr), "{msg}");
                    assert!(msg.contains("not supported"), "{msg}");
                }
                other => panic!("{kind} {expr}: {other:?}"),
            }
        }
    }

    #[test]
    fn flatten_malformed_expressions_are_plan_errors() {
        for (kind, expr) in [
            ("path", "$.a["),
            ("path", "$.a[0"),
            ("path", "$.a."),
            ("path", "$.a['b"),
            ("path", "$.a[x]"),
            ("path", "$.a b"),
            ("path", "$a"),
            ("path", "@.a"),
            ("jq", ".a."),
            ("jq", r#".["a"#),
            ("jq", ".[0"),
            ("jq", r#"."a"#),
            ("jq", r#"."\q""#),
        ] {
            match compile_err(kind, expr) {
                DataFusionError::Plan(msg) => assert!(msg.contains(expr), "{msg}"),
                other => panic!("{kind} {expr}: {other:?}"),
            }
        }
    }
}
