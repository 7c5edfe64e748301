//! Druid's HTTP API: SQL task submission, the Overlord task endpoints and service status,
//! with Druid's paths, JSON shapes, status codes and error bodies.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use grove_common::QueryContext;
use grove_store::TaskFilter;
use serde_json::{Map, Value, json};

use crate::coordinator;
use crate::sql_api::{RunningQueries, cancel_sql, post_sql};
use crate::statements::{delete_statement, get_results, get_statement, post_statement};
use crate::tasks::{SubmitOptions, TaskManager};

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The task manager.
    pub tasks: Arc<TaskManager>,
    /// Synchronous SQL queries running now, by `sqlQueryId`.
    pub(crate) sql_queries: Arc<RunningQueries>,
}

impl AppState {
    /// State over a task manager.
    pub fn new(tasks: Arc<TaskManager>) -> Self {
        Self {
            tasks,
            sql_queries: Arc::default(),
        }
    }
}

/// The router with every endpoint. With `web_console`, a Druid web console build (the
/// `web-console` folder of a Druid distribution) is served at the site root, as Druid's
/// router does; without it, `/` says how to get one.
pub fn router(
    state: AppState,
    max_body_bytes: usize,
    web_console: Option<&std::path::Path>,
) -> Router {
    let router = Router::new()
        .route("/druid/v2/sql", post(post_sql))
        .route("/druid/v2/sql/", post(post_sql))
        .route("/druid/v2/sql/engines", get(sql_engines))
        .route("/druid/v2/sql/{id}", axum::routing::delete(cancel_sql))
        .route("/druid/v2/sql/statements", post(post_statement))
        .route("/druid/v2/sql/statements/", post(post_statement))
        .route(
            "/druid/v2/sql/statements/{id}",
            get(get_statement).delete(delete_statement),
        )
        .route("/druid/v2/sql/statements/{id}/results", get(get_results))
        .route("/druid/v2/sql/task", post(submit_task))
        .route("/druid/v2/sql/task/", post(submit_task))
        .route("/druid/v2/sql/task/enabled", get(task_enabled))
        .route("/druid/indexer/v1/task/{id}", get(task_payload))
        .route("/druid/indexer/v1/task/{id}/status", get(task_status))
        .route("/druid/indexer/v1/task/{id}/reports", get(task_reports))
        .route("/druid/indexer/v1/task/{id}/report", get(task_reports))
        .route("/druid/indexer/v1/task/{id}/shutdown", post(task_shutdown))
        .route("/druid/indexer/v1/tasks", get(list_tasks))
        .route("/druid/indexer/v1/runningTasks", get(running_tasks))
        .route("/druid/indexer/v1/completeTasks", get(complete_tasks))
        .route("/druid/indexer/v1/waitingTasks", get(waiting_tasks))
        .route("/druid/indexer/v1/pendingTasks", get(pending_tasks))
        .route(
            "/druid/coordinator/v1/metadata/datasources",
            get(coordinator::metadata_datasources),
        )
        .route(
            "/druid/coordinator/v1/metadata/datasources/{ds}",
            get(coordinator::metadata_datasource),
        )
        .route(
            "/druid/coordinator/v1/metadata/datasources/{ds}/segments",
            get(coordinator::metadata_segments_of).post(coordinator::metadata_segments_in),
        )
        .route(
            "/druid/coordinator/v1/metadata/datasources/{ds}/segments/{id}",
            get(coordinator::metadata_segment),
        )
        .route(
            "/druid/coordinator/v1/metadata/segments",
            get(coordinator::metadata_all_segments),
        )
        .route(
            "/druid/coordinator/v1/datasources",
            get(coordinator::served_datasources),
        )
        .route(
            "/druid/coordinator/v1/datasources/{ds}/intervals",
            get(coordinator::served_intervals),
        )
        .route(
            "/druid/coordinator/v1/datasources/{ds}/intervals/{interval}",
            get(coordinator::served_intervals_in),
        )
        .route("/status", get(status))
        .route("/status/health", get(health))
        .layer(DefaultBodyLimit::max(max_body_bytes));
    let router = match web_console {
        Some(dir) => {
            let files = tower_http::services::ServeDir::new(dir)
                .append_index_html_on_directories(false)
                .fallback(axum::handler::HandlerWithoutStateExt::into_service(
                    not_found,
                ));
            let index = tower_http::services::ServeFile::new(dir.join(CONSOLE_INDEX));
            router.route_service("/", index).fallback_service(files)
        }
        None => router.route("/", get(no_console)).fallback(not_found),
    };
    router.with_state(state)
}

/// The console's page in a Druid distribution's `web-console` folder.
pub(crate) const CONSOLE_INDEX: &str = "unified-console.html";

/// `/` without `--web-console`: how to use the Druid console with Grove.
async fn no_console() -> Response {
    let page = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Grove</title></head>
<body>
<h1>Grove</h1>
<p>Grove answers Druid's APIs here (<code>/druid/v2/sql</code>, <code>/druid/v2/sql/statements</code>,
<code>/druid/v2/sql/task</code>, <code>/druid/indexer/v1/task</code>, <code>/status</code>).</p>
<p>To use the Druid web console, start Grove with the <code>web-console</code> folder of a Druid
distribution (version 39 or later):</p>
<pre>grove serve --web-console apache-druid-39.0.0/web-console</pre>
<p>and open this address again. See docs/console.md.</p>
</body></html>
"#;
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page,
    )
        .into_response()
}

/// Druid's DruidException error body.
fn druid_error(status: StatusCode, code: &str, category: &str, message: &str) -> Value {
    let _ = status;
    json!({
        "error": "druidException",
        "errorCode": code,
        "persona": match category {
            "RUNTIME_FAILURE" | "UNCATEGORIZED" => "DEVELOPER",
            "CAPACITY_EXCEEDED" => "ADMIN",
            _ => "USER",
        },
        "category": category,
        "errorMessage": message,
        "context": {"sourceType": "sql"},
    })
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// A refused submission: `{"taskId", "state": "FAILED", "error": {...}}`.
fn submit_failure(
    task_id: Option<String>,
    status: StatusCode,
    code: &str,
    category: &str,
    message: &str,
) -> Response {
    json_response(
        status,
        json!({
            "taskId": task_id,
            "state": "FAILED",
            "error": druid_error(status, code, category, message),
        }),
    )
}

fn invalid(task_id: Option<String>, message: &str) -> Response {
    submit_failure(
        task_id,
        StatusCode::BAD_REQUEST,
        "invalidInput",
        "INVALID_INPUT",
        message,
    )
}

async fn submit_task(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            let status = rejection.status();
            let (code, category) = if status == StatusCode::PAYLOAD_TOO_LARGE {
                ("general", "CAPACITY_EXCEEDED")
            } else {
                ("invalidInput", "INVALID_INPUT")
            };
            return submit_failure(None, status, code, category, &rejection.body_text());
        }
    };
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return invalid(None, &format!("Malformed JSON in the request body: {e}")),
    };
    let Some(obj) = request.as_object() else {
        return invalid(
            None,
            "The request body must be a JSON object with a [query] field",
        );
    };
    let context = match obj.get("context") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return invalid(None, "[context] must be a JSON object"),
    };
    let query_id = context
        .get("sqlQueryId")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let query = match obj.get("query") {
        Some(Value::String(q)) if !q.trim().is_empty() => q.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return invalid(query_id, "Missing or empty [query] in the request body");
        }
        Some(_) => return invalid(query_id, "[query] must be a string"),
    };
    if grove_sql::is_explain(&query) {
        // Druid answers EXPLAIN inline (200 with the plan's rows), not as a task.
        return match crate::sql_api::SqlRequest::parse(Ok(body)) {
            Ok(request) => match crate::sql_api::run_sql(&state, request).await {
                Ok(response) => response,
                Err(e) => submit_failure(query_id, e.status, &e.code, e.category, &e.message),
            },
            Err((id, e)) => submit_failure(id, e.status, &e.code, e.category, &e.message),
        };
    }
    let parameters = match grove_sql::SqlParameter::list_from_json(obj.get("parameters")) {
        Ok(p) => p,
        Err(e) => return invalid(query_id, &e),
    };
    let context = match QueryContext::from_json(context) {
        Ok(c) => c,
        Err(e) => return invalid(query_id, &e),
    };
    let options = SubmitOptions {
        parameters,
        durable_results: None,
    };
    match state.tasks.submit_with(&query, context, options).await {
        Ok(task_id) => json_response(
            StatusCode::ACCEPTED,
            json!({"taskId": task_id, "state": "RUNNING"}),
        ),
        Err(e) => {
            let e = crate::sql_api::ApiError::from(e);
            submit_failure(query_id, e.status, &e.code, e.category, &e.message)
        }
    }
}

/// The SQL engines Grove runs: `native` (`/druid/v2/sql`) and `msq-task` (tasks and
/// statements). Dart (`msq-dart`) is not offered.
async fn sql_engines() -> Response {
    json_response(
        StatusCode::OK,
        json!({"engines": [{"name": "native"}, {"name": "msq-task"}]}),
    )
}

async fn task_enabled() -> Response {
    json_response(StatusCode::OK, json!({"enabled": true}))
}

fn internal(message: String) -> Response {
    json_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        druid_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "general",
            "RUNTIME_FAILURE",
            &message,
        ),
    )
}

async fn task_payload(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.tasks.record(&id).await {
        Ok(Some(r)) => json_response(StatusCode::OK, json!({"task": id, "payload": r.payload})),
        Ok(None) => json_response(StatusCode::NOT_FOUND, json!({"task": id, "payload": null})),
        Err(e) => internal(e),
    }
}

async fn task_status(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.tasks.record(&id).await {
        Ok(Some(r)) => json_response(
            StatusCode::OK,
            json!({"task": id, "status": state.tasks.status_json(&r)}),
        ),
        Ok(None) => json_response(StatusCode::NOT_FOUND, json!({"task": id, "status": null})),
        Err(e) => internal(e),
    }
}

async fn task_reports(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.tasks.report(&id).await {
        Ok(Some(r)) => json_response(StatusCode::OK, r),
        Ok(None) => json_response(
            StatusCode::NOT_FOUND,
            json!({"error": format!("No task reports were found for this task. The task may not exist, or it may not have begun running yet. [{id}]")}),
        ),
        Err(e) => internal(e),
    }
}

async fn task_shutdown(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.tasks.shutdown(&id).await {
        Ok(true) => json_response(StatusCode::OK, json!({"task": id})),
        Ok(false) => json_response(
            StatusCode::NOT_FOUND,
            json!({"error": format!("Cannot find any active task with id: [{id}]")}),
        ),
        Err(e) => internal(e),
    }
}

const STATES: &[&str] = &["running", "complete", "waiting", "pending"];

async fn list_tasks(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let task_state = match params.get("state").map(|s| s.to_ascii_lowercase()) {
        None => None,
        Some(s) if STATES.contains(&s.as_str()) => Some(s),
        Some(s) => {
            return (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "text/plain")],
                format!(
                    "Invalid task state[{s}]. Must be one of [RUNNING, COMPLETE, WAITING, PENDING]"
                ),
            )
                .into_response();
        }
    };
    if params.get("type").is_some_and(|t| t != "query_controller") {
        return json_response(StatusCode::OK, json!([]));
    }
    let mut filter = TaskFilter {
        data_source: params.get("datasource").cloned(),
        ..Default::default()
    };
    if let Some(interval) = params.get("createdTimeInterval") {
        let Some(parsed) = grove_common::Interval::parse(&interval.replacen('_', "/", 1)) else {
            return (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "text/plain")],
                format!("Invalid createdTimeInterval [{interval}]; expected <start>_<end>"),
            )
                .into_response();
        };
        filter.created_from = Some(parsed.start);
        filter.created_to = Some(parsed.end);
    }
    if let Some(max) = params.get("max") {
        match max.parse::<usize>() {
            Ok(m) => filter.max = Some(m),
            Err(_) => {
                return (
                    StatusCode::BAD_REQUEST,
                    [(header::CONTENT_TYPE, "text/plain")],
                    format!("Invalid max [{max}]"),
                )
                    .into_response();
            }
        }
    }
    list(&state, task_state.as_deref(), filter).await
}

async fn list(state: &AppState, task_state: Option<&str>, filter: TaskFilter) -> Response {
    match state.tasks.list(task_state, filter).await {
        Ok(v) => json_response(StatusCode::OK, Value::Array(v)),
        Err(e) => internal(e),
    }
}

async fn running_tasks(State(state): State<AppState>) -> Response {
    list(&state, Some("running"), TaskFilter::default()).await
}

async fn complete_tasks(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let filter = TaskFilter {
        max: params.get("n").and_then(|n| n.parse().ok()),
        ..Default::default()
    };
    list(&state, Some("complete"), filter).await
}

async fn waiting_tasks(State(state): State<AppState>) -> Response {
    list(&state, Some("waiting"), TaskFilter::default()).await
}

async fn pending_tasks(State(state): State<AppState>) -> Response {
    list(&state, Some("pending"), TaskFilter::default()).await
}

async fn status() -> Response {
    json_response(
        StatusCode::OK,
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "modules": [
                {"name": "org.apache.druid.msq.guice.MSQIndexingModule", "artifact": "druid-multi-stage-query", "version": env!("CARGO_PKG_VERSION")},
                {"name": "org.apache.druid.msq.guice.MSQSqlModule", "artifact": "druid-multi-stage-query", "version": env!("CARGO_PKG_VERSION")},
                {"name": "org.apache.druid.msq.guice.SqlTaskModule", "artifact": "druid-multi-stage-query", "version": env!("CARGO_PKG_VERSION")},
                {"name": "org.apache.druid.msq.guice.MSQExternalDataSourceModule", "artifact": "druid-multi-stage-query", "version": env!("CARGO_PKG_VERSION")},
            ],
            "memory": {"maxMemory": 0, "totalMemory": 0, "freeMemory": 0, "usedMemory": 0, "directMemory": 0},
        }),
    )
}

async fn health() -> Response {
    json_response(StatusCode::OK, json!(true))
}

async fn not_found(uri: axum::http::Uri) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({
            "error": "druidException",
            "errorCode": "notFound",
            "persona": "USER",
            "category": "NOT_FOUND",
            "errorMessage": format!("No endpoint at [{}]", uri.path()),
            "context": {},
        }),
    )
}
