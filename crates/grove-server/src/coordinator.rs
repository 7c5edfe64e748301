//! Druid's Coordinator metadata endpoints, answered from the metadata store:
//!
//! ```text
//! GET  /druid/coordinator/v1/metadata/datasources[?includeUnused][?full]
//! GET  /druid/coordinator/v1/metadata/datasources/{ds}
//! GET  /druid/coordinator/v1/metadata/datasources/{ds}/segments[?full]
//! POST /druid/coordinator/v1/metadata/datasources/{ds}/segments[?full]    body: intervals
//! GET  /druid/coordinator/v1/metadata/datasources/{ds}/segments/{id}[?includeUnused]
//! GET  /druid/coordinator/v1/metadata/segments[?datasources=..][&includeOvershadowedStatus]
//! GET  /druid/coordinator/v1/datasources[?simple]
//! GET  /druid/coordinator/v1/datasources/{ds}/intervals[?simple|?full]
//! GET  /druid/coordinator/v1/datasources/{ds}/intervals/{interval}[?simple|?full]
//! ```
//!
//! Grove serves every visible segment itself, so "served" (the `datasources/...`
//! endpoints) means visible: used and not wholly overshadowed, served by this process.

use std::collections::{BTreeMap, HashSet};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use grove_common::Interval;
use grove_common::time::format_millis;
use grove_store::{DataSegment, timeline};
use serde_json::{Map, Value, json};

use crate::api::AppState;
use crate::sql_api::ApiError;

/// A query string's parameters in order: flags such as `?full` have an empty value,
/// repeated names (`datasources=a&datasources=b`) are kept.
type Params = Query<Vec<(String, String)>>;

fn has(params: &[(String, String)], name: &str) -> bool {
    params.iter().any(|(k, v)| k == name && v != "false")
}

fn ok(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

fn internal(e: impl ToString) -> Response {
    ApiError::internal(e.to_string()).into_response()
}

/// Used segments of `ds` and the ids of the visible ones.
async fn used_and_visible(
    state: &AppState,
    ds: &str,
) -> Result<(Vec<DataSegment>, HashSet<String>), Response> {
    let used = state
        .tasks
        .grove()
        .metadata()
        .used_segments(ds)
        .await
        .map_err(internal)?;
    let visible = timeline(used.clone())
        .into_iter()
        .map(|v| v.segment.id())
        .collect();
    Ok((used, visible))
}

fn datasource_object(name: &str, segments: &[DataSegment]) -> Value {
    json!({
        "name": name,
        "properties": {"created": format_millis(chrono::Utc::now().timestamp_millis())},
        "segments": segments.iter().map(DataSegment::payload).collect::<Vec<_>>(),
    })
}

/// `GET /druid/coordinator/v1/metadata/datasources`.
pub(crate) async fn metadata_datasources(
    State(state): State<AppState>,
    Query(p): Params,
) -> Response {
    let metadata = state.tasks.grove().metadata();
    let names = if has(&p, "includeUnused") || has(&p, "includeDisabled") {
        match metadata.all_datasource_names().await {
            Ok(n) => n,
            Err(e) => return internal(e),
        }
    } else {
        metadata.datasource_names()
    };
    if !has(&p, "full") {
        return ok(json!(names));
    }
    let mut out = Vec::new();
    for name in names {
        match metadata.used_segments(&name).await {
            Ok(segments) => out.push(datasource_object(&name, &segments)),
            Err(e) => return internal(e),
        }
    }
    ok(Value::Array(out))
}

/// `GET /druid/coordinator/v1/metadata/datasources/{ds}`: 404 without used segments.
pub(crate) async fn metadata_datasource(
    State(state): State<AppState>,
    Path(ds): Path<String>,
) -> Response {
    match state.tasks.grove().metadata().used_segments(&ds).await {
        Ok(s) if s.is_empty() => StatusCode::NOT_FOUND.into_response(),
        Ok(s) => ok(datasource_object(&ds, &s)),
        Err(e) => internal(e),
    }
}

fn segment_list(segments: &[DataSegment], full: bool) -> Value {
    if full {
        Value::Array(segments.iter().map(DataSegment::payload).collect())
    } else {
        Value::Array(segments.iter().map(|s| Value::String(s.id())).collect())
    }
}

/// `GET /druid/coordinator/v1/metadata/datasources/{ds}/segments[?full]`: used segments
/// as ids or full objects; an empty 404 without any.
pub(crate) async fn metadata_segments_of(
    State(state): State<AppState>,
    Path(ds): Path<String>,
    Query(p): Params,
) -> Response {
    match state.tasks.grove().metadata().used_segments(&ds).await {
        Ok(s) if s.is_empty() => StatusCode::NOT_FOUND.into_response(),
        Ok(s) => ok(segment_list(&s, has(&p, "full"))),
        Err(e) => internal(e),
    }
}

/// `POST /druid/coordinator/v1/metadata/datasources/{ds}/segments[?full]` with a JSON
/// array of intervals: the used segments overlapping any of them.
pub(crate) async fn metadata_segments_in(
    State(state): State<AppState>,
    Path(ds): Path<String>,
    Query(p): Params,
    body: Bytes,
) -> Response {
    let intervals: Vec<String> = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return ApiError::invalid(format!(
                "The body must be a JSON array of interval strings: {e}"
            ))
            .into_response();
        }
    };
    let mut parsed = Vec::with_capacity(intervals.len());
    for i in &intervals {
        match Interval::parse(i) {
            Some(iv) => parsed.push(iv),
            None => return ApiError::invalid(format!("Invalid interval [{i}]")).into_response(),
        }
    }
    match state.tasks.grove().metadata().used_segments(&ds).await {
        Ok(s) => {
            let matching: Vec<DataSegment> = s
                .into_iter()
                .filter(|seg| parsed.iter().any(|iv| iv.overlaps(&seg.interval)))
                .collect();
            ok(segment_list(&matching, has(&p, "full")))
        }
        Err(e) => internal(e),
    }
}

/// `GET /druid/coordinator/v1/metadata/datasources/{ds}/segments/{id}[?includeUnused]`.
pub(crate) async fn metadata_segment(
    State(state): State<AppState>,
    Path((ds, id)): Path<(String, String)>,
    Query(p): Params,
) -> Response {
    let metadata = state.tasks.grove().metadata();
    let segments = if has(&p, "includeUnused") {
        metadata.all_segments(&ds).await
    } else {
        metadata.used_segments(&ds).await
    };
    match segments {
        Ok(s) => match s.iter().find(|seg| seg.id() == id) {
            Some(seg) => ok(seg.payload()),
            None => StatusCode::NOT_FOUND.into_response(),
        },
        Err(e) => internal(e),
    }
}

/// `GET /druid/coordinator/v1/metadata/segments[?datasources=a&datasources=b]
/// [&includeOvershadowedStatus]`: every used segment; with the status flag each carries
/// `overshadowed` and `replicationFactor`.
pub(crate) async fn metadata_all_segments(
    State(state): State<AppState>,
    Query(p): Params,
) -> Response {
    let wanted: Vec<&str> = p
        .iter()
        .filter(|(k, _)| k == "datasources")
        .map(|(_, v)| v.as_str())
        .collect();
    let status = has(&p, "includeOvershadowedStatus");
    let metadata = state.tasks.grove().metadata();
    let mut out = Vec::new();
    for ds in metadata.datasource_names() {
        if !wanted.is_empty() && !wanted.contains(&ds.as_str()) {
            continue;
        }
        let (used, visible) = match used_and_visible(&state, &ds).await {
            Ok(x) => x,
            Err(r) => return r,
        };
        for seg in used {
            let mut v = seg.payload();
            if status {
                let shown = visible.contains(&seg.id());
                v["overshadowed"] = json!(!shown);
                v["replicationFactor"] = json!(if shown { 1 } else { 0 });
            }
            out.push(v);
        }
    }
    ok(Value::Array(out))
}

/// `GET /druid/coordinator/v1/datasources[?simple|?full]`: served datasources.
pub(crate) async fn served_datasources(
    State(state): State<AppState>,
    Query(p): Params,
) -> Response {
    let names = state.tasks.grove().metadata().datasource_names();
    if !has(&p, "simple") && !has(&p, "full") {
        return ok(json!(names));
    }
    let mut out = Vec::new();
    for ds in names {
        let (used, visible) = match used_and_visible(&state, &ds).await {
            Ok(x) => x,
            Err(r) => return r,
        };
        let served: Vec<&DataSegment> = used.iter().filter(|s| visible.contains(&s.id())).collect();
        if has(&p, "full") {
            let owned: Vec<DataSegment> = served.into_iter().cloned().collect();
            out.push(datasource_object(&ds, &owned));
            continue;
        }
        let size: u64 = served.iter().map(|s| s.size).sum();
        let min = served.iter().map(|s| s.interval.start).min();
        let max = served.iter().map(|s| s.interval.end).max();
        out.push(json!({
            "name": ds,
            "properties": {
                "tiers": {"_default_tier": {"size": size, "segmentCount": served.len(), "replicatedSize": size}},
                "segments": {
                    "count": served.len(),
                    "size": size,
                    "replicatedSize": size,
                    "minTime": min.map(format_millis),
                    "maxTime": max.map(format_millis),
                },
            },
        }));
    }
    ok(Value::Array(out))
}

/// `GET /druid/coordinator/v1/datasources/{ds}/intervals[?simple|?full]`: intervals of
/// served segments, newest first; 204 when nothing of `ds` is served.
pub(crate) async fn served_intervals(
    State(state): State<AppState>,
    Path(ds): Path<String>,
    Query(p): Params,
) -> Response {
    intervals_response(&state, &ds, None, &p).await
}

/// `GET /druid/coordinator/v1/datasources/{ds}/intervals/{interval}`, the interval
/// written with `_` for `/`: the same, for segments inside it.
pub(crate) async fn served_intervals_in(
    State(state): State<AppState>,
    Path((ds, interval)): Path<(String, String)>,
    Query(p): Params,
) -> Response {
    let text = interval.replacen('_', "/", 1);
    let Some(within) = Interval::parse(&text) else {
        return ApiError::invalid(format!("Invalid interval [{interval}]")).into_response();
    };
    intervals_response(&state, &ds, Some(within), &p).await
}

async fn intervals_response(
    state: &AppState,
    ds: &str,
    within: Option<Interval>,
    p: &[(String, String)],
) -> Response {
    let (used, visible) = match used_and_visible(state, ds).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let served: Vec<DataSegment> = used
        .into_iter()
        .filter(|s| visible.contains(&s.id()))
        .filter(|s| within.is_none_or(|w| w.contains(&s.interval)))
        .collect();
    if served.is_empty() && within.is_none() {
        return StatusCode::NO_CONTENT.into_response();
    }
    // Newest first: by start, then end, descending.
    let mut by_interval: BTreeMap<std::cmp::Reverse<(i64, i64)>, Vec<&DataSegment>> =
        BTreeMap::new();
    for s in &served {
        by_interval
            .entry(std::cmp::Reverse((s.interval.start, s.interval.end)))
            .or_default()
            .push(s);
    }
    let host = state.tasks.server_address();
    if has(p, "full") {
        let mut out = Map::new();
        for (std::cmp::Reverse((start, end)), segs) in &by_interval {
            let mut inner = Map::new();
            for s in segs {
                inner.insert(
                    s.id(),
                    json!({"metadata": s.payload(), "servers": [host.clone()]}),
                );
            }
            out.insert(
                Interval::new(*start, *end).to_string(),
                Value::Object(inner),
            );
        }
        return ok(Value::Object(out));
    }
    if has(p, "simple") {
        let mut out = Map::new();
        for (std::cmp::Reverse((start, end)), segs) in &by_interval {
            out.insert(
                Interval::new(*start, *end).to_string(),
                json!({"size": segs.iter().map(|s| s.size).sum::<u64>(), "count": segs.len()}),
            );
        }
        return ok(Value::Object(out));
    }
    if within.is_some() {
        return ok(Value::Array(
            served.iter().map(|s| Value::String(s.id())).collect(),
        ));
    }
    ok(json!(
        by_interval
            .keys()
            .map(|std::cmp::Reverse((s, e))| Interval::new(*s, *e).to_string())
            .collect::<Vec<_>>()
    ))
}
