//! Druid's synchronous SQL API, `POST /druid/v2/sql`, and its cancel endpoint
//! `DELETE /druid/v2/sql/{sqlQueryId}`.
//!
//! ```text
//! body ─▶ SqlRequest::parse ─▶ GroveContext::prepare_with_parameters (400 on bad SQL)
//!      ─▶ stream_query ─▶ first batch (errors before it: Druid's error JSON)
//!      ─▶ 200, X-Druid-SQL-Query-Id ─▶ ResultWriter bytes per batch, streamed
//! ```
//!
//! Results stream: each batch is written as it arrives and memory holds a few batches,
//! whatever the result's size. A client that disconnects stops the query.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use datafusion::arrow::error::ArrowError;
use datafusion::common::DataFusionError;
use grove_common::{MsqFault, QueryContext};
use grove_engine::results::{
    HeaderOptions, ResultColumn, ResultFormat, ResultWriter, ValueOptions,
};
use grove_engine::{PreparedKind, TaskControl};
use grove_sql::{DruidStatement, SqlParameter};
use serde_json::{Map, Value, json};

use crate::api::AppState;

/// Running synchronous queries by `sqlQueryId`, for `DELETE /druid/v2/sql/{id}`.
#[derive(Debug, Default)]
pub(crate) struct RunningQueries {
    queries: Mutex<HashMap<String, TaskControl>>,
}

impl RunningQueries {
    fn insert(&self, id: &str, control: TaskControl) -> bool {
        match self.queries.lock() {
            Ok(mut m) => {
                if m.contains_key(id) {
                    return false;
                }
                m.insert(id.to_string(), control);
                true
            }
            Err(_) => false,
        }
    }

    fn remove(&self, id: &str) {
        if let Ok(mut m) = self.queries.lock() {
            m.remove(id);
        }
    }

    fn cancel(&self, id: &str) -> bool {
        match self.queries.lock() {
            Ok(m) => match m.get(id) {
                Some(c) => {
                    c.cancel.cancel();
                    true
                }
                None => false,
            },
            Err(_) => false,
        }
    }
}

/// Removes a query from [`RunningQueries`] when its response is done or dropped.
struct Registration {
    queries: Arc<RunningQueries>,
    id: String,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.queries.remove(&self.id);
    }
}

/// An error answered with Druid's DruidException JSON.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: String,
    pub(crate) category: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalidInput".into(),
            category: "INVALID_INPUT",
            message: message.into(),
        }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "notFound".into(),
            category: "NOT_FOUND",
            message: message.into(),
        }
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "general".into(),
            category: "RUNTIME_FAILURE",
            message: message.into(),
        }
    }

    /// Druid's status and body for an error from planning or running a query.
    pub(crate) fn from_datafusion(err: &DataFusionError) -> Self {
        if let Some(fault) = MsqFault::find(err) {
            let (status, category) = match fault {
                MsqFault::Canceled { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "CANCELED"),
                MsqFault::QueryNotSupported { .. } => (StatusCode::NOT_IMPLEMENTED, "UNSUPPORTED"),
                MsqFault::UnknownError { .. } => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "RUNTIME_FAILURE")
                }
                _ => (StatusCode::BAD_REQUEST, "INVALID_INPUT"),
            };
            return Self {
                status,
                code: fault.error_code().to_string(),
                category,
                message: fault.message(),
            };
        }
        match err {
            DataFusionError::Plan(m) | DataFusionError::SQL(_, Some(m)) => Self::invalid(m.clone()),
            DataFusionError::SchemaError(..) | DataFusionError::SQL(..) => {
                Self::invalid(err.strip_backtrace())
            }
            DataFusionError::NotImplemented(m) => Self {
                status: StatusCode::NOT_IMPLEMENTED,
                code: "general".into(),
                category: "UNSUPPORTED",
                message: m.clone(),
            },
            DataFusionError::ResourcesExhausted(m) => Self {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "general".into(),
                category: "CAPACITY_EXCEEDED",
                message: m.clone(),
            },
            DataFusionError::ArrowError(e, _) if user_arrow_error(e) => {
                Self::invalid(err.strip_backtrace())
            }
            DataFusionError::Context(_, inner) => Self::from_datafusion(inner),
            DataFusionError::Shared(inner) => Self::from_datafusion(inner),
            DataFusionError::Diagnostic(_, inner) => Self::from_datafusion(inner),
            _ => Self::internal(err.strip_backtrace()),
        }
    }

    /// A query past its `timeout`: 504, in the shape Druid gives its
    /// `QueryTimeoutException` (the legacy-compatible DruidException).
    pub(crate) fn timeout(query_id: &str) -> Self {
        Self {
            status: StatusCode::GATEWAY_TIMEOUT,
            code: "legacyQueryException".into(),
            category: "TIMEOUT",
            message: format!("Query [{query_id}] timed out."),
        }
    }

    pub(crate) fn body(&self) -> Value {
        if self.category == "TIMEOUT" {
            return json!({
                "error": "Query timeout",
                "errorCode": self.code,
                "persona": "OPERATOR",
                "category": self.category,
                "errorMessage": self.message,
                "context": {
                    "host": null,
                    "errorClass": "org.apache.druid.query.QueryTimeoutException",
                    "legacyErrorCode": "Query timeout",
                },
            });
        }
        json!({
            "error": "druidException",
            "errorCode": self.code,
            "persona": if self.category == "CAPACITY_EXCEEDED" {
                "ADMIN"
            } else if self.status.is_server_error() && self.category != "UNSUPPORTED" {
                "DEVELOPER"
            } else {
                "USER"
            },
            "category": self.category,
            "errorMessage": self.message,
            "context": {"sourceType": "sql"},
        })
    }
}

impl From<crate::tasks::SubmitError> for ApiError {
    fn from(e: crate::tasks::SubmitError) -> Self {
        use crate::tasks::SubmitError;
        let (status, category, message) = match e {
            SubmitError::Invalid(m) => return Self::invalid(m),
            SubmitError::Internal(m) => return Self::internal(m),
            SubmitError::Unsupported(m) => (StatusCode::NOT_IMPLEMENTED, "UNSUPPORTED", m),
            SubmitError::QueueFull(m) => (StatusCode::TOO_MANY_REQUESTS, "CAPACITY_EXCEEDED", m),
        };
        Self {
            status,
            code: "general".into(),
            category,
            message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

/// Arrow errors a query's data or expressions cause (bad casts, division by zero).
fn user_arrow_error(e: &ArrowError) -> bool {
    matches!(
        e,
        ArrowError::CastError(_)
            | ArrowError::ParseError(_)
            | ArrowError::DivideByZero
            | ArrowError::ArithmeticOverflow(_)
            | ArrowError::InvalidArgumentError(_)
    )
}

/// The fields of a `POST /druid/v2/sql` (or `/statements`) body.
#[derive(Debug, Clone)]
pub(crate) struct SqlRequest {
    pub(crate) query: String,
    pub(crate) format: ResultFormat,
    pub(crate) headers: HeaderOptions,
    pub(crate) context: QueryContext,
    pub(crate) parameters: Vec<SqlParameter>,
    /// `sqlQueryId` from the context, or a fresh UUID.
    pub(crate) query_id: String,
}

impl SqlRequest {
    /// Reads a request body. Errors carry the query id when the context had one.
    pub(crate) fn parse(
        body: Result<Bytes, BytesRejection>,
    ) -> Result<Self, (Option<String>, ApiError)> {
        let body = body.map_err(|rejection| {
            let status = rejection.status();
            let mut e = ApiError::invalid(rejection.body_text());
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                e.status = status;
                e.code = "general".into();
                e.category = "CAPACITY_EXCEEDED";
            }
            (None, e)
        })?;
        let request: Value = serde_json::from_slice(&body).map_err(|e| {
            (
                None,
                ApiError::invalid(format!("Malformed JSON in the request body: {e}")),
            )
        })?;
        let Some(obj) = request.as_object() else {
            return Err((
                None,
                ApiError::invalid("The request body must be a JSON object with a [query] field"),
            ));
        };
        let context = match obj.get("context") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err((None, ApiError::invalid("[context] must be a JSON object"))),
        };
        let given_id = context
            .get("sqlQueryId")
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string);
        let query_id = given_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let fail = |m: String| (Some(query_id.clone()), ApiError::invalid(m));
        let query = match obj.get("query") {
            Some(Value::String(q)) if !q.trim().is_empty() => q.clone(),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(fail("Missing or empty [query] in the request body".into()));
            }
            Some(_) => return Err(fail("[query] must be a string".into())),
        };
        let format = match obj.get("resultFormat") {
            None | Some(Value::Null) => ResultFormat::Object,
            Some(Value::String(s)) => ResultFormat::parse(s).ok_or_else(|| {
                fail(format!(
                    "Unknown resultFormat [{s}]; use object, array, objectLines, arrayLines or csv"
                ))
            })?,
            Some(_) => return Err(fail("[resultFormat] must be a string".into())),
        };
        let flag = |name: &str| -> Result<bool, (Option<String>, ApiError)> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(_) => Err(fail(format!("[{name}] must be true or false"))),
            }
        };
        let header = flag("header")?;
        let headers = HeaderOptions {
            header,
            types: header && flag("typesHeader")?,
            sql_types: header && flag("sqlTypesHeader")?,
        };
        let parameters = SqlParameter::list_from_json(obj.get("parameters")).map_err(fail)?;
        let context = QueryContext::from_json(context).map_err(fail)?;
        Ok(Self {
            query,
            format,
            headers,
            context,
            parameters,
            query_id,
        })
    }

    /// How values are rendered: ISO timestamps in `sqlTimeZone`, arrays as strings
    /// unless `sqlStringifyArrays` is false.
    pub(crate) fn value_options(&self, iso_time: bool) -> Result<ValueOptions, ApiError> {
        let zone = self.context.sql_time_zone().map_err(ApiError::invalid)?;
        let stringify = self
            .context
            .get_bool("sqlStringifyArrays")
            .map_err(ApiError::invalid)?
            .unwrap_or(true);
        Ok(ValueOptions {
            time_zone: iso_time.then_some(zone),
            stringify_arrays: stringify,
        })
    }
}

/// Druid's message for an INSERT or REPLACE sent to an endpoint that only queries.
pub(crate) fn refuse_ingest(sql: &str) -> Option<ApiError> {
    let statements = grove_sql::split_statements(sql).ok()?;
    let last = statements.last()?;
    match grove_sql::parse_statement(last) {
        Ok(DruidStatement::Ingest(stmt)) => Some(ApiError::invalid(match stmt.kind {
            grove_sql::IngestKind::Insert => {
                "INSERT operations are not supported by requested SQL engine [native], \
                 consider using MSQ."
            }
            grove_sql::IngestKind::Replace => {
                "REPLACE operations are not supported by the requested SQL engine [native].  \
                 Consider using MSQ."
            }
        })),
        _ => None,
    }
}

fn with_query_id(mut response: Response, id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(id) {
        response.headers_mut().insert("X-Druid-SQL-Query-Id", v);
    }
    response
}

/// `POST /druid/v2/sql`.
pub(crate) async fn post_sql(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request = match SqlRequest::parse(body) {
        Ok(r) => r,
        Err((id, e)) => {
            let response = e.into_response();
            return match id {
                Some(id) => with_query_id(response, &id),
                None => response,
            };
        }
    };
    let id = request.query_id.clone();
    match run_sql(&state, request).await {
        Ok(response) => with_query_id(response, &id),
        Err(e) => with_query_id(e.into_response(), &id),
    }
}

/// Runs a query and streams its result (also EXPLAIN for the task endpoint).
pub(crate) async fn run_sql(state: &AppState, request: SqlRequest) -> Result<Response, ApiError> {
    if let Some(e) = refuse_ingest(&request.query) {
        return Err(e);
    }
    let deadline = TaskControl::deadline(&request.context).map_err(ApiError::invalid)?;
    let values = request.value_options(true)?;
    let grove = state.tasks.grove();
    let prepared = grove
        .prepare_with_parameters(&request.query, &request.context, &request.parameters)
        .await
        .map_err(|e| ApiError::from_datafusion(&e))?;
    // refuse_ingest has answered INSERT and REPLACE; nothing else prepares as an ingest.
    if !matches!(prepared.kind, PreparedKind::Query(_)) {
        return Err(ApiError::internal("not a query"));
    }
    let control = TaskControl::new();
    if !state.sql_queries.insert(&request.query_id, control.clone()) {
        return Err(ApiError::invalid(format!(
            "A query with sqlQueryId [{}] is already running",
            request.query_id
        )));
    }
    let registration = Registration {
        queries: Arc::clone(&state.sql_queries),
        id: request.query_id.clone(),
    };
    // The first batch decides the status: an error before any row is Druid's error JSON
    // (a 504 past the `timeout`).
    let started = control
        .run_until(deadline, async {
            let mut stream = grove.stream_query(&prepared, &control).await?;
            let first = control.next_batch(&mut stream).await?;
            Ok::<_, DataFusionError>((stream, first))
        })
        .await;
    let (mut stream, first) = match started {
        Ok(started) => started,
        Err(_) if control.timed_out() => return Err(ApiError::timeout(&request.query_id)),
        Err(e) => return Err(ApiError::from_datafusion(&e)),
    };
    let columns = ResultColumn::of_schema(&stream.schema());
    let mut writer = ResultWriter::new(request.format, columns, request.headers, values);
    let mut head = writer.begin();
    if let Some(batch) = &first {
        head.extend(
            writer
                .write_batch(batch)
                .map_err(|e| ApiError::from_datafusion(&e))?,
        );
    }
    let (tx, mut response) = streaming_response(request.format);
    tokio::spawn(async move {
        let _registration = registration;
        if tx.send(Ok(Bytes::from(head))).await.is_err() {
            return;
        }
        if first.is_some() {
            loop {
                // Past the `timeout` the response is cut short, as on any error.
                match control
                    .run_until(deadline, control.next_batch(&mut stream))
                    .await
                {
                    Ok(Some(batch)) => match writer.write_batch(&batch) {
                        Ok(bytes) => {
                            if tx.send(Ok(Bytes::from(bytes))).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                            return;
                        }
                    },
                    Ok(None) => break,
                    Err(e) => {
                        // Druid cuts the response short: a client sees it unfinished
                        // (no closing bracket or trailing blank line).
                        tracing::warn!(error = %e, "SQL query failed after its first rows");
                        let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                        return;
                    }
                }
            }
        }
        let _ = tx.send(Ok(Bytes::from(writer.end()))).await;
    });
    if request.headers.header {
        response.headers_mut().insert(
            "X-Druid-SQL-Header-Included",
            HeaderValue::from_static("yes"),
        );
    }
    Ok(response)
}

/// Chunks of a streamed response body; an `Err` cuts the response short.
pub(crate) type BodySender = tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>;

/// A 200 response in `format` whose body is what is sent on the returned channel, as it
/// is sent. Dropping the body (the client went away) makes sends fail.
pub(crate) fn streaming_response(format: ResultFormat) -> (BodySender, Response) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    (tx, response)
}

/// `DELETE /druid/v2/sql/{sqlQueryId}`: 202 when a running query was canceled, 404
/// when no such query is running.
pub(crate) async fn cancel_sql(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    if state.sql_queries.cancel(&id) {
        StatusCode::ACCEPTED.into_response()
    } else {
        ApiError::not_found(format!(
            "Query [{id}] was not found: it is not running on this server"
        ))
        .into_response()
    }
}
