//! Druid's SQL statements API (asynchronous queries over the task engine):
//!
//! ```text
//! POST   /druid/v2/sql/statements                 submit (context executionMode ASYNC)
//! GET    /druid/v2/sql/statements/{id}[?detail]   SqlStatementResult (stages, counters, warnings)
//! GET    /druid/v2/sql/statements/{id}/results    rows, all pages or ?page=N, in ?resultFormat
//! DELETE /druid/v2/sql/statements/{id}            cancel
//! ```
//!
//! A statement is a task (`query-<uuid>`). A SELECT keeps every row in deep storage as
//! pages ([`grove_engine::result_pages`]) that outlive the task and are deleted after
//! the configured retention; the task report keeps the first 3,000 rows, as Druid's does.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use grove_common::time::format_millis;
use grove_engine::result_pages::{ResultManifest, read_manifest, read_page};
use grove_engine::results::{
    HeaderOptions, ResultColumn, ResultFormat, ResultWriter, ValueOptions,
};
use grove_store::TaskRecord;
use serde_json::{Map, Value, json};

use crate::api::AppState;
use crate::sql_api::{ApiError, SqlRequest, streaming_response};
use crate::tasks::{RunnerState, SubmitOptions};

/// `POST /druid/v2/sql/statements`.
pub(crate) async fn post_statement(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request = match SqlRequest::parse(body) {
        Ok(r) => r,
        Err((_, e)) => return e.into_response(),
    };
    match request.context.get("executionMode") {
        Some(Value::String(m)) if m.eq_ignore_ascii_case("ASYNC") => {}
        None | Some(Value::Null) => {
            return ApiError::invalid(
                "Execution mode is not provided to the SQL statement API. Please set \
                 [executionMode] to [ASYNC] in the query context",
            )
            .into_response();
        }
        Some(other) => {
            let mode = other
                .as_str()
                .map_or_else(|| other.to_string(), str::to_string);
            return ApiError::invalid(format!(
                "The SQL statement API currently does not support the provided execution mode \
                 [{mode}]. Please set [executionMode] to [ASYNC] in the query context"
            ))
            .into_response();
        }
    }
    let options = SubmitOptions {
        parameters: request.parameters.clone(),
        durable_results: Some(request.format.name().to_string()),
    };
    let id = match state
        .tasks
        .submit_with(&request.query, request.context.clone(), options)
        .await
    {
        Ok(id) => id,
        Err(e) => return ApiError::from(e).into_response(),
    };
    match statement_result(&state, &id, false).await {
        Ok(Some(v)) => (StatusCode::OK, axum::Json(v)).into_response(),
        Ok(None) => {
            ApiError::internal(format!("Task [{id}] vanished after submission")).into_response()
        }
        Err(e) => e.into_response(),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "Query [{id}] was not found. The query details are no longer present or might not be \
         of the type [query_controller]. Verify that the id is correct."
    ))
}

/// `GET /druid/v2/sql/statements/{id}`.
pub(crate) async fn get_statement(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let detail = params
        .get("detail")
        .is_some_and(|v| v.is_empty() || v.eq_ignore_ascii_case("true"));
    match statement_result(&state, &id, detail).await {
        Ok(Some(v)) => (StatusCode::OK, axum::Json(v)).into_response(),
        Ok(None) => not_found(&id).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The statement's state: `ACCEPTED` until the task runs, then `RUNNING`, `SUCCESS` or
/// `FAILED` (cancellation included).
fn statement_state(state: &AppState, record: &TaskRecord) -> &'static str {
    match record.status.as_str() {
        "SUCCESS" => "SUCCESS",
        "FAILED" => "FAILED",
        _ => match state.tasks.live_task(&record.id).map(|l| l.runner_state()) {
            Some(RunnerState::Waiting) | Some(RunnerState::Pending) => "ACCEPTED",
            _ => "RUNNING",
        },
    }
}

/// The result columns named in a task payload: `[{name, type (SQL), nativeType}]`.
fn schema_of(payload: &Value) -> Vec<Value> {
    let names = payload["spec"]["query"]["columns"].as_array();
    let sql = payload["sqlTypeNames"].as_array();
    let native = payload["nativeTypeNames"].as_array();
    let (Some(names), Some(sql)) = (names, sql) else {
        return Vec::new();
    };
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            json!({
                "name": name,
                "type": sql.get(i).cloned().unwrap_or(Value::Null),
                "nativeType": native.and_then(|n| n.get(i)).cloned().unwrap_or(Value::Null),
            })
        })
        .collect()
}

fn is_select(record: &TaskRecord) -> bool {
    record.data_source == grove_engine::QUERY_SELECT_DATASOURCE
}

/// Druid's `SqlStatementResult` for a task, or `None` if there is no such task.
async fn statement_result(
    state: &AppState,
    id: &str,
    detail: bool,
) -> Result<Option<Value>, ApiError> {
    let Some(record) = state.tasks.record(id).await.map_err(ApiError::internal)? else {
        return Ok(None);
    };
    let statement_state = statement_state(state, &record);
    let mut out = Map::new();
    out.insert("queryId".into(), json!(record.id));
    out.insert("state".into(), json!(statement_state));
    out.insert("createdAt".into(), json!(format_millis(record.created_ms)));
    out.insert("schema".into(), Value::Array(schema_of(&record.payload)));
    let duration = if record.status == "RUNNING" {
        -1
    } else {
        record.duration_ms
    };
    out.insert("durationMs".into(), json!(duration));
    let report = if detail || statement_state == "FAILED" || statement_state == "SUCCESS" {
        state.tasks.report_of(&record)
    } else {
        None
    };
    let payload = report
        .as_ref()
        .map(|r| &r["multiStageQuery"]["payload"])
        .filter(|p| p.is_object());
    if statement_state == "SUCCESS" {
        out.insert("result".into(), result_info(state, &record, payload).await?);
    }
    if statement_state == "FAILED" {
        out.insert("errorDetails".into(), error_details(&record, payload));
    }
    if detail && let Some(p) = payload {
        out.insert("stages".into(), p["stages"].clone());
        out.insert("counters".into(), p["counters"].clone());
        out.insert(
            "warnings".into(),
            p["status"]
                .get("warnings")
                .cloned()
                .unwrap_or_else(|| json!([])),
        );
    }
    Ok(Some(Value::Object(out)))
}

/// `ResultSetInformation`: row and byte totals, pages and sample rows of a SELECT; the
/// target datasource of an ingestion.
async fn result_info(
    state: &AppState,
    record: &TaskRecord,
    payload: Option<&Value>,
) -> Result<Value, ApiError> {
    let mut info = Map::new();
    if !is_select(record) {
        // Rows written, from the segment generator's counters: the console shows
        // "N rows inserted into <dataSource>".
        if let Some(rows) = payload.map(rows_pushed) {
            info.insert("numTotalRows".into(), json!(rows));
        }
        info.insert("dataSource".into(), json!(record.data_source));
        return Ok(Value::Object(info));
    }
    let manifest = read_manifest(
        state.tasks.grove().deep_storage().results_store(),
        &record.id,
    )
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    if let Some(m) = &manifest {
        info.insert("numTotalRows".into(), json!(m.num_total_rows()));
        info.insert("totalSizeInBytes".into(), json!(m.total_size_in_bytes()));
        info.insert("resultFormat".into(), json!(m.result_format));
    }
    info.insert("dataSource".into(), json!(record.data_source));
    if let Some(rows) = payload.and_then(|p| p["results"]["results"].as_array()) {
        info.insert("sampleRecords".into(), Value::Array(rows.clone()));
    }
    if let Some(m) = &manifest {
        info.insert("pages".into(), json!(m.pages));
    }
    Ok(Value::Object(info))
}

/// Rows pushed to segments, summed over the workers of every stage's counters.
fn rows_pushed(payload: &Value) -> u64 {
    payload["counters"]
        .as_object()
        .into_iter()
        .flat_map(|stages| stages.values())
        .filter_map(Value::as_object)
        .flat_map(|workers| workers.values())
        .filter_map(|w| w["segmentGenerationProgress"]["rowsPushed"].as_u64())
        .sum()
}

/// A failed statement's error as Druid's DruidException map, the MSQ fault's code kept.
fn error_details(record: &TaskRecord, payload: Option<&Value>) -> Value {
    let fault = payload.map(|p| &p["status"]["errorReport"]["error"]);
    let (code, message, context) = match fault.filter(|f| f.is_object()) {
        Some(f) => {
            let context: Map<String, Value> = f
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| *k != "errorCode" && *k != "errorMessage")
                .map(|(k, v)| {
                    let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    (k.clone(), Value::String(text))
                })
                .collect();
            (
                f["errorCode"]
                    .as_str()
                    .unwrap_or("UnknownError")
                    .to_string(),
                f["errorMessage"].as_str().unwrap_or_default().to_string(),
                context,
            )
        }
        None => {
            let msg = record.error_msg.clone().unwrap_or_default();
            let (code, message) = msg
                .split_once(": ")
                .map_or(("UnknownError".to_string(), msg.clone()), |(c, m)| {
                    (c.to_string(), m.to_string())
                });
            (code, message, Map::new())
        }
    };
    let category = match code.as_str() {
        "Canceled" => "CANCELED",
        "UnknownError" | "WorkerFailed" => "RUNTIME_FAILURE",
        "QueryNotSupported" => "UNSUPPORTED",
        _ => "INVALID_INPUT",
    };
    json!({
        "error": "druidException",
        "errorCode": code,
        "persona": "USER",
        "category": category,
        "errorMessage": message,
        "context": context,
    })
}

/// `GET /druid/v2/sql/statements/{id}/results[?page=N][&resultFormat=F]`.
pub(crate) async fn get_results(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    match results(&state, &id, &params).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn results(
    state: &AppState,
    id: &str,
    params: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let Some(record) = state.tasks.record(id).await.map_err(ApiError::internal)? else {
        return Err(not_found(id));
    };
    match statement_state(state, &record) {
        "SUCCESS" => {}
        "FAILED" => {
            return Err(ApiError::not_found(format!(
                "Query [{id}] failed. Check the status api for more details."
            )));
        }
        other => {
            return Err(ApiError::invalid(format!(
                "Query [{id}] is currently in [{other}] state. Please wait for it to complete."
            )));
        }
    }
    // Ingestion has no rows to return.
    if !is_select(&record) {
        return Ok(StatusCode::OK.into_response());
    }
    let store = state.tasks.grove().deep_storage().results_store();
    let manifest: ResultManifest = read_manifest(store, id)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "The results of query [{id}] are no longer available: they were deleted after \
                 the retention period"
            ))
        })?;
    let format_name = params
        .get("resultFormat")
        .map(String::as_str)
        .unwrap_or(manifest.result_format.as_str());
    let format = ResultFormat::parse(format_name).ok_or_else(|| {
        ApiError::invalid(format!(
            "Unknown resultFormat [{format_name}]; use object, array, objectLines, arrayLines or csv"
        ))
    })?;
    let pages: Vec<usize> = match params.get("page") {
        None => manifest.pages.iter().map(|p| p.id).collect(),
        Some(p) => match p.parse::<usize>() {
            Ok(n) if n < manifest.pages.len() => vec![n],
            _ => {
                return Err(ApiError::invalid(format!(
                    "Invalid page id [{p}] passed. Expected a value in [0, {}]",
                    manifest.pages.len().saturating_sub(1)
                )));
            }
        },
    };
    let columns: Vec<ResultColumn> = schema_of(&record.payload)
        .iter()
        .map(|c| ResultColumn {
            name: c["name"].as_str().unwrap_or_default().to_string(),
            native_type: c["nativeType"].as_str().unwrap_or_default().to_string(),
            sql_type: c["type"].as_str().unwrap_or_default().to_string(),
        })
        .collect();
    let mut writer = ResultWriter::new(
        format,
        columns,
        HeaderOptions::default(),
        ValueOptions::millis(),
    );
    let store = std::sync::Arc::clone(store);
    let id = id.to_string();
    let (tx, response) = streaming_response(format);
    tokio::spawn(async move {
        if tx.send(Ok(Bytes::from(writer.begin()))).await.is_err() {
            return;
        }
        for page in pages {
            let batches = match read_page(&store, &id, page).await {
                Ok(b) => b,
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            };
            for batch in batches {
                let bytes = match writer.write_batch(&batch) {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                        return;
                    }
                };
                if tx.send(Ok(Bytes::from(bytes))).await.is_err() {
                    return;
                }
            }
        }
        let _ = tx.send(Ok(Bytes::from(writer.end()))).await;
    });
    Ok(response)
}

/// `DELETE /druid/v2/sql/statements/{id}`: 202 when a running statement is canceled,
/// 200 when it had already ended, 404 when unknown.
pub(crate) async fn delete_statement(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let record = match state.tasks.record(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => return not_found(&id).into_response(),
        Err(e) => return ApiError::internal(e).into_response(),
    };
    if record.status != "RUNNING" {
        return StatusCode::OK.into_response();
    }
    match state.tasks.shutdown(&id).await {
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}
