//! Druid's query context: the `context` object of an API request, or `SET key = value`
//! statements before a query. Values are JSON; typed getters accept what Druid accepts
//! (numbers as numbers or numeric strings, booleans as booleans or `"true"`/`"false"`).

#[allow(unused_imports)] // the options macro needs ConfigField in scope
use datafusion::common::config::{ConfigExtension, ConfigField};
use serde_json::{Map, Value};

datafusion::common::extensions_options! {
    /// Per-statement engine options that operators read at run time, set from the Druid
    /// query context (`SET msq.max_parse_exceptions = 10` works too).
    pub struct MsqOptions {
        /// Parse errors tolerated before the query fails; -1 = unlimited.
        pub max_parse_exceptions: i32, default = 0
        /// Target rows per segment.
        pub rows_per_segment: usize, default = 3_000_000
        /// Default time zone of Druid's time functions (Druid's `sqlTimeZone`).
        pub sql_time_zone: String, default = "UTC".to_string()
        /// Druid's `finalizeAggregations`: when false, INSERT/REPLACE stores aggregators'
        /// intermediate form (for example an HLL sketch) instead of their final value.
        pub finalize_aggregations: bool, default = true
        /// Druid's `arrayIngestMode`: `array` stores SQL arrays as array columns; `mvd`
        /// (multi-value strings) and `none` refuse array columns in Grove.
        pub array_ingest_mode: String, default = "array".to_string()
    }
}

impl ConfigExtension for MsqOptions {
    const PREFIX: &'static str = "msq";
}

/// Context keys and their defaults, as Druid names them.
pub mod keys {
    /// Target rows per generated segment.
    pub const ROWS_PER_SEGMENT: &str = "rowsPerSegment";
    /// Fail an ingest that produces no rows.
    pub const FAIL_ON_EMPTY_INSERT: &str = "failOnEmptyInsert";
    /// Parse errors tolerated before the task fails; -1 = unlimited.
    pub const MAX_PARSE_EXCEPTIONS: &str = "maxParseExceptions";
    /// Tasks a query may use, the controller included.
    pub const MAX_NUM_TASKS: &str = "maxNumTasks";
    /// Older name of `maxNumTasks`.
    pub const NUM_TASKS: &str = "numTasks";
    /// SQL query id.
    pub const SQL_QUERY_ID: &str = "sqlQueryId";
    /// Time zone for SQL literals and time functions.
    pub const SQL_TIME_ZONE: &str = "sqlTimeZone";
    /// Milliseconds a query may run, from its submission (0: no limit).
    pub const TIMEOUT: &str = "timeout";
    /// Finalize aggregations in ingested rows.
    pub const FINALIZE_AGGREGATIONS: &str = "finalizeAggregations";
    /// How SQL arrays are stored: `array`, `mvd` or `none`.
    pub const ARRAY_INGEST_MODE: &str = "arrayIngestMode";
    /// Grove's own: how an ingest's rows are shuffled, `chunk` (in process, the
    /// default) or `hash` (key statistics, then a hash repartition and a sort: the form
    /// a Ballista cluster runs).
    pub const GROVE_SHUFFLE: &str = "groveShuffle";
}

/// How an ingest shuffles its rows (context key `groveShuffle`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShuffleForm {
    /// One in-process operator routes rows to time chunks under the memory budget and
    /// serves each chunk (or range bucket of one) sorted.
    Chunk,
    /// A key-statistics job, then buckets assigned by row, a hash repartition on a
    /// surrogate of the bucket, and a sort per partition.
    Hash,
}

/// Default `rowsPerSegment`.
pub const DEFAULT_ROWS_PER_SEGMENT: i64 = 3_000_000;
/// Default `maxNumTasks`.
pub const DEFAULT_MAX_NUM_TASKS: i64 = 2;

/// Context keys the planner sets itself; users may not pass them.
pub const RESERVED_KEYS: &[&str] = &[
    "sqlInsertSegmentGranularity",
    "sqlReplaceTimeChunks",
    "sqlInsertQueryGranularity",
    "__timeColumn",
    "isReindex",
];

/// A Druid query context.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryContext {
    values: Map<String, Value>,
}

impl QueryContext {
    /// An empty context (every parameter at its default).
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a context from a JSON object, rejecting planner-reserved keys.
    pub fn from_json(values: Map<String, Value>) -> Result<Self, String> {
        if let Some(key) = values.keys().find(|k| RESERVED_KEYS.contains(&k.as_str())) {
            return Err(format!(
                "Query context parameter [{key}] is not allowed; it is set by the planner"
            ));
        }
        let ctx = Self { values };
        ctx.validate()?;
        Ok(ctx)
    }

    /// Sets one key, as `SET key = value` does.
    pub fn set(&mut self, key: impl Into<String>, value: Value) -> Result<(), String> {
        let key = key.into();
        if RESERVED_KEYS.contains(&key.as_str()) {
            return Err(format!(
                "Query context parameter [{key}] is not allowed; it is set by the planner"
            ));
        }
        let previous = self.values.insert(key.clone(), value);
        if let Err(e) = self.validate() {
            match previous {
                Some(p) => self.values.insert(key, p),
                None => self.values.remove(&key),
            };
            return Err(e);
        }
        Ok(())
    }

    /// This context with `other`'s keys laid over it.
    pub fn merged_with(&self, other: &QueryContext) -> QueryContext {
        let mut values = self.values.clone();
        values.extend(other.values.clone());
        QueryContext { values }
    }

    /// The raw JSON object.
    pub fn as_json(&self) -> &Map<String, Value> {
        &self.values
    }

    /// A raw value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    /// Checks that every known key has the right type and range.
    pub fn validate(&self) -> Result<(), String> {
        self.rows_per_segment()?;
        self.fail_on_empty_insert()?;
        self.max_parse_exceptions()?;
        self.max_num_tasks()?;
        self.finalize_aggregations()?;
        self.array_ingest_mode()?;
        self.shuffle_form()?;
        self.sql_time_zone()?;
        self.sql_query_id()?;
        self.timeout()?;
        Ok(())
    }

    /// Druid's generic `timeout` (milliseconds from submission): past it the query is
    /// canceled (`Canceled`, reason `QUERY_TIMEOUT`). `None` when absent or 0 (Druid's
    /// "no timeout"); negative is an error.
    pub fn timeout(&self) -> Result<Option<std::time::Duration>, String> {
        match self.get_i64(keys::TIMEOUT)? {
            None | Some(0) => Ok(None),
            Some(ms) if ms < 0 => Err(format!(
                "{} must be a non-negative number of milliseconds, got [{ms}]",
                keys::TIMEOUT
            )),
            Some(ms) => Ok(Some(std::time::Duration::from_millis(ms as u64))),
        }
    }

    /// `rowsPerSegment` (default 3,000,000; must be positive).
    pub fn rows_per_segment(&self) -> Result<usize, String> {
        let v = self
            .get_i64(keys::ROWS_PER_SEGMENT)?
            .unwrap_or(DEFAULT_ROWS_PER_SEGMENT);
        usize::try_from(v).ok().filter(|v| *v > 0).ok_or_else(|| {
            format!(
                "{} must be a positive number, got [{v}]",
                keys::ROWS_PER_SEGMENT
            )
        })
    }

    /// `failOnEmptyInsert` (default false).
    pub fn fail_on_empty_insert(&self) -> Result<bool, String> {
        Ok(self.get_bool(keys::FAIL_ON_EMPTY_INSERT)?.unwrap_or(false))
    }

    /// `finalizeAggregations` (default true).
    pub fn finalize_aggregations(&self) -> Result<bool, String> {
        Ok(self.get_bool(keys::FINALIZE_AGGREGATIONS)?.unwrap_or(true))
    }

    /// `arrayIngestMode` (default `array`, as in Druid 31 and later).
    pub fn array_ingest_mode(&self) -> Result<String, String> {
        let mode = self
            .get_str(keys::ARRAY_INGEST_MODE)?
            .unwrap_or_else(|| "array".into());
        match mode.as_str() {
            "array" | "mvd" | "none" => Ok(mode),
            other => Err(format!(
                "{} must be one of array, mvd, none; got [{other}]",
                keys::ARRAY_INGEST_MODE
            )),
        }
    }

    /// `groveShuffle` (default `chunk`).
    pub fn shuffle_form(&self) -> Result<ShuffleForm, String> {
        match self.get_str(keys::GROVE_SHUFFLE)?.as_deref() {
            None | Some("chunk") => Ok(ShuffleForm::Chunk),
            Some("hash") => Ok(ShuffleForm::Hash),
            Some(other) => Err(format!(
                "{} must be one of chunk, hash; got [{other}]",
                keys::GROVE_SHUFFLE
            )),
        }
    }

    /// `maxParseExceptions` (default 0; -1 means unlimited, returned as `None`).
    pub fn max_parse_exceptions(&self) -> Result<Option<u64>, String> {
        match self.get_i64(keys::MAX_PARSE_EXCEPTIONS)?.unwrap_or(0) {
            -1 => Ok(None),
            v if v >= 0 => Ok(Some(v as u64)),
            v => Err(format!(
                "{} must be -1 (unlimited) or a non-negative number, got [{v}]",
                keys::MAX_PARSE_EXCEPTIONS
            )),
        }
    }

    /// `maxNumTasks` (alias `numTasks`; default 2, minimum 2).
    pub fn max_num_tasks(&self) -> Result<usize, String> {
        let v = match self.get_i64(keys::MAX_NUM_TASKS)? {
            Some(v) => v,
            None => self
                .get_i64(keys::NUM_TASKS)?
                .unwrap_or(DEFAULT_MAX_NUM_TASKS),
        };
        if v < 2 {
            return Err(format!(
                "{} must be at least 2 (the controller and one worker), got [{v}]",
                keys::MAX_NUM_TASKS
            ));
        }
        Ok(v as usize)
    }

    /// The engine options this context implies.
    pub fn msq_options(&self) -> Result<MsqOptions, String> {
        Ok(MsqOptions {
            max_parse_exceptions: self
                .max_parse_exceptions()?
                .map(|v| i32::try_from(v).unwrap_or(i32::MAX))
                .unwrap_or(-1),
            rows_per_segment: self.rows_per_segment()?,
            sql_time_zone: self
                .get_str(keys::SQL_TIME_ZONE)?
                .unwrap_or_else(|| "UTC".to_string()),
            finalize_aggregations: self.finalize_aggregations()?,
            array_ingest_mode: self.array_ingest_mode()?,
        })
    }

    /// `sqlTimeZone` (default UTC): an IANA zone or a fixed offset such as `+05:30`.
    pub fn sql_time_zone(&self) -> Result<crate::time::Zone, String> {
        match self.get_str(keys::SQL_TIME_ZONE)? {
            None => Ok(crate::time::Zone::UTC),
            Some(name) => crate::time::Zone::parse(&name)
                .ok_or_else(|| format!("Invalid {} [{name}]", keys::SQL_TIME_ZONE)),
        }
    }

    /// `sqlQueryId`, if given (an empty one is not), checked with Druid's rules for ids
    /// ([`crate::ids::validate_id`]): it names the task, its files and its results.
    pub fn sql_query_id(&self) -> Result<Option<String>, String> {
        match self.get_str(keys::SQL_QUERY_ID)? {
            Some(id) if id.is_empty() => Ok(None),
            Some(id) => {
                crate::ids::validate_id(keys::SQL_QUERY_ID, &id)?;
                Ok(Some(id))
            }
            None => Ok(None),
        }
    }

    /// A string value.
    pub fn get_str(&self, key: &str) -> Result<Option<String>, String> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!(
                "Expected key [{key}] to be a String, but got [{other}]"
            )),
        }
    }

    /// An integer value (a JSON number or a numeric string).
    pub fn get_i64(&self, key: &str) -> Result<Option<i64>, String> {
        let err = |v: &Value| format!("Expected key [{key}] to be a number, but got [{v}]");
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v @ Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .map(Some)
                .ok_or_else(|| err(v)),
            Some(v @ Value::String(s)) => s.trim().parse::<i64>().map(Some).map_err(|_| err(v)),
            Some(v) => Err(err(v)),
        }
    }

    /// A boolean value (a JSON boolean or `"true"`/`"false"`).
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, String> {
        let err = |v: &Value| format!("Expected key [{key}] to be a boolean, but got [{v}]");
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v @ Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                _ => Err(err(v)),
            },
            Some(v) => Err(err(v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(v: Value) -> Result<QueryContext, String> {
        match v {
            Value::Object(m) => QueryContext::from_json(m),
            _ => unreachable!(),
        }
    }

    #[test]
    fn defaults() {
        let c = QueryContext::new();
        assert_eq!(c.rows_per_segment().unwrap(), 3_000_000);
        assert!(!c.fail_on_empty_insert().unwrap());
        assert_eq!(c.max_parse_exceptions().unwrap(), Some(0));
        assert_eq!(c.max_num_tasks().unwrap(), 2);
        assert!(c.msq_options().unwrap().finalize_aggregations);
    }

    #[test]
    fn finalize_aggregations_reaches_engine_options() {
        let c = ctx(json!({"finalizeAggregations": false})).unwrap();
        assert!(!c.finalize_aggregations().unwrap());
        assert!(!c.msq_options().unwrap().finalize_aggregations);
    }

    #[test]
    fn accepts_strings_and_rejects_wrong_types() {
        let c = ctx(json!({"rowsPerSegment": "10", "failOnEmptyInsert": "true"})).unwrap();
        assert_eq!(c.rows_per_segment().unwrap(), 10);
        assert!(c.fail_on_empty_insert().unwrap());
        assert!(ctx(json!({"rowsPerSegment": "ten"})).is_err());
        assert!(ctx(json!({"rowsPerSegment": 0})).is_err());
        assert!(ctx(json!({"failOnEmptyInsert": 3})).is_err());
        assert!(ctx(json!({"maxNumTasks": 1})).is_err());
        assert!(ctx(json!({"sqlInsertSegmentGranularity": "DAY"})).is_err());
        assert_eq!(
            ctx(json!({"maxParseExceptions": -1}))
                .unwrap()
                .max_parse_exceptions()
                .unwrap(),
            None
        );
    }

    #[test]
    fn set_rolls_back_invalid_values() {
        let mut c = QueryContext::new();
        c.set("rowsPerSegment", json!(5)).unwrap();
        assert!(c.set("rowsPerSegment", json!("x")).is_err());
        assert_eq!(c.rows_per_segment().unwrap(), 5);
    }
}
