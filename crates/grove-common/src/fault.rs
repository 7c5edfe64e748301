//! Druid's MSQ faults as typed errors.
//!
//! A fault travels through DataFusion as `DataFusionError::External(Box<MsqFault>)` and is
//! recovered at the task boundary with [`MsqFault::find`]; anything else becomes
//! `UnknownError`. Its JSON form is exactly Druid's: `{"errorCode", "errorMessage", ...fields}`.

use std::error::Error as StdError;
use std::fmt;

use datafusion::error::DataFusionError;
use serde_json::{Value, json};

/// Most output partitions (segments) one stage may produce.
pub const MAX_PARTITIONS: usize = 25_000;
/// Most columns in a stage signature.
pub const MAX_COLUMNS: usize = 2_000;
/// Most CLUSTERED BY / sort-key columns in a stage.
pub const MAX_CLUSTERED_BY_COLUMNS: usize = 1_500;
/// Most time chunks one ingest may write.
pub const MAX_BUCKETS: usize = 5_000;

/// Why a query was canceled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelReason {
    /// Shut down through the task API.
    TaskShutdown,
    /// The `timeout` context parameter elapsed.
    QueryTimeout,
    /// Anything else.
    Unknown,
}

impl CancelReason {
    fn as_str(&self) -> &'static str {
        match self {
            Self::TaskShutdown => "TASK_SHUTDOWN",
            Self::QueryTimeout => "QUERY_TIMEOUT",
            Self::Unknown => "UNKNOWN_REASON",
        }
    }
}

/// A Druid MSQ fault with Druid's error code and fields.
#[derive(Clone, Debug, PartialEq)]
pub enum MsqFault {
    /// The query was canceled.
    Canceled {
        /// Why.
        reason: CancelReason,
    },
    /// An input row could not be parsed.
    CannotParseExternalData {
        /// What was wrong, and where.
        message: String,
    },
    /// An output column uses a name Grove reserves.
    ColumnNameRestricted {
        /// The column.
        column_name: String,
    },
    /// An output column has a type segments cannot store.
    ColumnTypeNotSupported {
        /// The column.
        column_name: String,
        /// Its type, as the query produced it.
        column_type: String,
    },
    /// A segment id could not be allocated for a time chunk.
    InsertCannotAllocateSegment {
        /// Target datasource.
        data_source: String,
        /// The requested time chunk.
        interval: String,
        /// The conflicting interval already present, if any.
        allocated_interval: Option<String>,
    },
    /// The query produced no rows and `failOnEmptyInsert` is true.
    InsertCannotBeEmpty {
        /// Target datasource.
        data_source: String,
    },
    /// REPLACE would only partly overshadow an existing segment.
    InsertCannotReplaceExistingSegment {
        /// The segment.
        segment_id: String,
    },
    /// The task could not get (or lost) its time-chunk lock.
    InsertLockPreempted {
        /// Why.
        message: String,
    },
    /// A row had a null `__time`.
    InsertTimeNull,
    /// A REPLACE row fell outside the OVERWRITE WHERE intervals.
    InsertTimeOutOfBounds {
        /// The offending time chunk.
        interval: String,
        /// The OVERWRITE intervals.
        interval_bounds: Vec<String>,
    },
    /// The query cannot be run by Grove.
    QueryNotSupported {
        /// What is not supported.
        message: String,
    },
    /// More time chunks than [`MAX_BUCKETS`].
    TooManyBuckets,
    /// More CLUSTERED BY columns than [`MAX_CLUSTERED_BY_COLUMNS`].
    TooManyClusteredByColumns {
        /// Requested.
        num_columns: usize,
        /// Stage number.
        stage: usize,
    },
    /// More output columns than [`MAX_COLUMNS`].
    TooManyColumns {
        /// Requested.
        num_columns: usize,
    },
    /// More segments than [`MAX_PARTITIONS`].
    TooManyPartitions,
    /// A warning type exceeded its limit.
    TooManyWarnings {
        /// The warning's error code.
        root_error_code: String,
        /// The limit.
        max_warnings: i64,
    },
    /// A worker task failed unexpectedly (it panicked or was lost).
    WorkerFailed {
        /// The worker's task id.
        worker_task_id: String,
        /// Why.
        error_msg: String,
    },
    /// Anything else.
    UnknownError {
        /// What happened.
        message: String,
    },
}

impl MsqFault {
    /// Druid's error code.
    pub fn error_code(&self) -> &'static str {
        match self {
            Self::Canceled { .. } => "Canceled",
            Self::CannotParseExternalData { .. } => "CannotParseExternalData",
            Self::ColumnNameRestricted { .. } => "ColumnNameRestricted",
            Self::ColumnTypeNotSupported { .. } => "ColumnTypeNotSupported",
            Self::InsertCannotAllocateSegment { .. } => "InsertCannotAllocateSegment",
            Self::InsertCannotBeEmpty { .. } => "InsertCannotBeEmpty",
            Self::InsertCannotReplaceExistingSegment { .. } => "InsertCannotReplaceExistingSegment",
            Self::InsertLockPreempted { .. } => "InsertLockPreempted",
            Self::InsertTimeNull => "InsertTimeNull",
            Self::InsertTimeOutOfBounds { .. } => "InsertTimeOutOfBounds",
            Self::QueryNotSupported { .. } => "QueryNotSupported",
            Self::WorkerFailed { .. } => "WorkerFailed",
            Self::TooManyBuckets => "TooManyBuckets",
            Self::TooManyClusteredByColumns { .. } => "TooManyClusteredByColumns",
            Self::TooManyColumns { .. } => "TooManyColumns",
            Self::TooManyPartitions => "TooManyPartitions",
            Self::TooManyWarnings { .. } => "TooManyWarnings",
            Self::UnknownError { .. } => "UnknownError",
        }
    }

    /// Druid's human-readable message.
    pub fn message(&self) -> String {
        match self {
            Self::Canceled { reason } => format!("Query canceled due to [{}].", reason.as_str()),
            Self::CannotParseExternalData { message } => message.clone(),
            Self::ColumnNameRestricted { column_name } => format!(
                "[{column_name}] column name is reserved for MSQ's internal purpose. \
                 Please retry the query after renaming the column."
            ),
            Self::ColumnTypeNotSupported {
                column_name,
                column_type,
            } => format!("Cannot handle column [{column_name}] with type [{column_type}]"),
            Self::InsertCannotAllocateSegment {
                data_source,
                interval,
                allocated_interval,
            } => match allocated_interval {
                Some(allocated) => format!(
                    "Cannot allocate segment for dataSource [{data_source}], interval \
                     [{interval}]. An existing segment with interval [{allocated}] overlaps it \
                     with a different granularity; use REPLACE with the existing granularity, \
                     or the same PARTITIONED BY as the existing data."
                ),
                None => format!(
                    "Cannot allocate segment for dataSource [{data_source}], interval [{interval}]."
                ),
            },
            Self::InsertCannotBeEmpty { data_source } => format!(
                "No rows to insert for dataSource[{data_source}]. Set failOnEmptyInsert : false \
                 in the query context to allow empty inserts."
            ),
            Self::InsertCannotReplaceExistingSegment { segment_id } => format!(
                "Cannot replace existing segment [{segment_id}] because it is not within the \
                 bounds specified by replaceExistingTimeChunks"
            ),
            Self::InsertLockPreempted { message } => message.clone(),
            Self::InsertTimeNull => "Encountered a null timestamp in the __time field during \
                                     INSERT or REPLACE."
                .to_string(),
            Self::InsertTimeOutOfBounds {
                interval,
                interval_bounds,
            } => format!(
                "Inserted data contains time chunk[{interval}] outside of bounds specified by \
                 the OVERWRITE WHERE clause[{}].",
                interval_bounds.join(", ")
            ),
            Self::QueryNotSupported { message } => message.clone(),
            Self::WorkerFailed {
                worker_task_id,
                error_msg,
            } => format!("Worker task failed: [{worker_task_id}] ({error_msg})"),
            Self::TooManyBuckets => format!(
                "Too many partition buckets (max = {MAX_BUCKETS}); try breaking your query up \
                 into smaller queries or using a wider PARTITIONED BY"
            ),
            Self::TooManyClusteredByColumns { num_columns, stage } => format!(
                "Too many cluster by columns present in stage [{stage}] (requested = \
                 {num_columns}, max = {MAX_CLUSTERED_BY_COLUMNS})"
            ),
            Self::TooManyColumns { num_columns } => {
                format!("Too many output columns (requested = {num_columns}, max = {MAX_COLUMNS})")
            }
            Self::TooManyPartitions => format!(
                "Too many partitions (max = {MAX_PARTITIONS}); try breaking your query up into \
                 smaller queries, using a larger target size, or using a coarser PARTITIONED BY"
            ),
            Self::TooManyWarnings {
                root_error_code,
                max_warnings,
            } => format!(
                "Too many warnings of type {root_error_code} generated (max = {max_warnings})"
            ),
            Self::UnknownError { message } => message.clone(),
        }
    }

    /// Druid's fault JSON: `{"errorCode", "errorMessage", ...fields}`.
    pub fn to_json(&self) -> Value {
        let mut v = json!({ "errorCode": self.error_code(), "errorMessage": self.message() });
        let extra = match self {
            Self::Canceled { reason } => json!({ "reason": reason.as_str() }),
            Self::ColumnNameRestricted { column_name } => json!({ "columnName": column_name }),
            Self::ColumnTypeNotSupported {
                column_name,
                column_type,
            } => json!({ "columnName": column_name, "columnType": column_type }),
            Self::InsertCannotAllocateSegment {
                data_source,
                interval,
                allocated_interval,
            } => json!({
                "dataSource": data_source,
                "interval": interval,
                "allocatedInterval": allocated_interval,
            }),
            Self::InsertCannotBeEmpty { data_source } => json!({ "dataSource": data_source }),
            Self::InsertCannotReplaceExistingSegment { segment_id } => {
                json!({ "segmentId": segment_id })
            }
            Self::InsertTimeOutOfBounds {
                interval,
                interval_bounds,
            } => json!({ "interval": interval, "intervalBounds": interval_bounds }),
            Self::TooManyBuckets => json!({ "maxBuckets": MAX_BUCKETS }),
            Self::TooManyClusteredByColumns { num_columns, stage } => json!({
                "numColumns": num_columns,
                "maxColumns": MAX_CLUSTERED_BY_COLUMNS,
                "stage": stage,
            }),
            Self::TooManyColumns { num_columns } => {
                json!({ "numColumns": num_columns, "maxColumns": MAX_COLUMNS })
            }
            Self::TooManyPartitions => json!({ "maxPartitions": MAX_PARTITIONS }),
            Self::TooManyWarnings {
                root_error_code,
                max_warnings,
            } => json!({ "rootErrorCode": root_error_code, "maxWarnings": max_warnings }),
            Self::UnknownError { message } => json!({ "message": message }),
            Self::WorkerFailed {
                worker_task_id,
                error_msg,
            } => json!({ "workerTaskId": worker_task_id, "errorMsg": error_msg }),
            Self::CannotParseExternalData { .. }
            | Self::InsertLockPreempted { .. }
            | Self::InsertTimeNull
            | Self::QueryNotSupported { .. } => json!({}),
        };
        if let (Some(obj), Value::Object(extra)) = (v.as_object_mut(), extra) {
            obj.extend(extra);
        }
        v
    }

    /// Finds the first fault in an error's cause chain.
    pub fn find(err: &DataFusionError) -> Option<&MsqFault> {
        find_in_source(err)
    }

    /// The fault an error stands for: the first one in its cause chain, or `UnknownError`
    /// with the error's text.
    pub fn from_error(err: &DataFusionError) -> MsqFault {
        match Self::find(err) {
            Some(fault) => fault.clone(),
            None => MsqFault::UnknownError {
                message: err.to_string(),
            },
        }
    }
}

fn find_in_source<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a MsqFault> {
    if let Some(fault) = err.downcast_ref::<MsqFault>() {
        return Some(fault);
    }
    if let Some(df) = err.downcast_ref::<DataFusionError>() {
        match df {
            DataFusionError::External(inner) => return find_in_source(inner.as_ref()),
            DataFusionError::Context(_, inner) => return find_in_source(inner.as_ref()),
            DataFusionError::Shared(inner) => return find_in_source(inner.as_ref()),
            DataFusionError::ArrowError(inner, _) => return find_in_source(inner.as_ref()),
            DataFusionError::Collection(errs) => {
                return errs.iter().find_map(|e| find_in_source(e));
            }
            _ => {}
        }
    }
    if let Some(datafusion::arrow::error::ArrowError::ExternalError(inner)) =
        err.downcast_ref::<datafusion::arrow::error::ArrowError>()
    {
        return find_in_source(inner.as_ref());
    }
    err.source().and_then(find_in_source)
}

impl fmt::Display for MsqFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_code(), self.message())
    }
}

impl StdError for MsqFault {}

impl From<MsqFault> for DataFusionError {
    fn from(fault: MsqFault) -> Self {
        DataFusionError::External(Box::new(fault))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_druid_fields() {
        let f = MsqFault::TooManyColumns { num_columns: 2001 };
        assert_eq!(
            f.to_json(),
            json!({
                "errorCode": "TooManyColumns",
                "errorMessage": "Too many output columns (requested = 2001, max = 2000)",
                "numColumns": 2001,
                "maxColumns": 2000
            })
        );
        assert_eq!(
            MsqFault::InsertCannotBeEmpty {
                data_source: "w".into()
            }
            .to_json()["dataSource"],
            "w"
        );
    }

    #[test]
    fn found_through_wrapping() {
        let err: DataFusionError = MsqFault::InsertTimeNull.into();
        let wrapped = DataFusionError::Context("writing".into(), Box::new(err));
        let arrow = DataFusionError::ArrowError(
            Box::new(datafusion::arrow::error::ArrowError::ExternalError(
                Box::new(wrapped),
            )),
            None,
        );
        assert_eq!(MsqFault::find(&arrow), Some(&MsqFault::InsertTimeNull));
        let plain = DataFusionError::Execution("boom".into());
        assert_eq!(MsqFault::from_error(&plain).error_code(), "UnknownError");
    }
}
