//! The SQL statements API: submit, status with and without detail, results by page and
//! format from deep storage, ingestion statements, failures, cancellation, retention.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{TestServer, inline};

async fn submit(server: &TestServer, body: Value) -> (u16, Value) {
    server.post("/druid/v2/sql/statements", body).await
}

/// Polls the statement until it is SUCCESS or FAILED.
async fn wait(server: &TestServer, id: &str) -> Value {
    let start = Instant::now();
    loop {
        let (code, body) = server.get(&format!("/druid/v2/sql/statements/{id}")).await;
        assert_eq!(code, 200, "{body}");
        if body["state"] == "SUCCESS" || body["state"] == "FAILED" {
            return body;
        }
        assert!(["ACCEPTED", "RUNNING"].contains(&body["state"].as_str().unwrap()));
        assert!(start.elapsed() < Duration::from_secs(120), "{body}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn text(server: &TestServer, path: &str) -> (u16, String, String) {
    let r = server
        .client
        .get(format!("{}{path}", server.base))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, r.text().await.unwrap())
}

#[tokio::test]
async fn select_results_by_page_and_format() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), |_| {}).await;
    let (code, body) = submit(
        &server,
        json!({"query": "SELECT value, value * 2 AS twice FROM generate_series(1, 250000) ORDER BY value",
               "resultFormat": "array",
               "context": {"executionMode": "ASYNC", "sqlQueryId": "pages-1"}}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["queryId"], "query-pages-1");
    assert!(
        ["ACCEPTED", "RUNNING"].contains(&body["state"].as_str().unwrap()),
        "{body}"
    );
    assert_eq!(body["durationMs"], -1);
    assert_eq!(
        body["schema"],
        json!([{"name": "value", "type": "BIGINT", "nativeType": "LONG"},
               {"name": "twice", "type": "BIGINT", "nativeType": "LONG"}])
    );
    assert!(body["createdAt"].as_str().unwrap().ends_with('Z'));

    let done = wait(&server, "query-pages-1").await;
    assert_eq!(done["state"], "SUCCESS", "{done}");
    assert!(done["durationMs"].as_i64().unwrap() >= 0);
    assert!(done.get("stages").is_none(), "details only with ?detail");
    let result = &done["result"];
    assert_eq!(result["numTotalRows"], 250_000);
    assert_eq!(result["resultFormat"], "array");
    assert_eq!(result["dataSource"], "__query_select");
    assert_eq!(result["sampleRecords"].as_array().unwrap().len(), 3000);
    assert_eq!(result["sampleRecords"][0], json!([1, 2]));
    let pages = result["pages"].as_array().unwrap();
    assert_eq!(
        pages
            .iter()
            .map(|p| p["numRows"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![100_000, 100_000, 50_000]
    );
    assert_eq!(pages[2]["id"], 2);
    let total: u64 = pages
        .iter()
        .map(|p| p["sizeInBytes"].as_u64().unwrap())
        .sum();
    assert_eq!(result["totalSizeInBytes"].as_u64().unwrap(), total);

    // One page, in another format.
    let (code, ct, body) = text(
        &server,
        "/druid/v2/sql/statements/query-pages-1/results?page=1&resultFormat=arrayLines",
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(ct, "text/plain");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 100_001);
    assert_eq!(lines[0], "[100001,200002]");
    // Every page, in the submitted format.
    let (code, ct, body) = text(&server, "/druid/v2/sql/statements/query-pages-1/results").await;
    assert_eq!(code, 200);
    assert_eq!(ct, "application/json");
    let rows: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(rows.len(), 250_000);
    assert_eq!(rows[249_999], json!([250000, 500000]));
    // Objects with keys in column order.
    let (_, _, body) = text(
        &server,
        "/druid/v2/sql/statements/query-pages-1/results?page=2&resultFormat=object",
    )
    .await;
    assert!(
        body.starts_with(r#"[{"value":200001,"twice":400002},"#),
        "{}",
        &body[..60]
    );

    for bad in ["page=3", "page=-1", "page=x", "resultFormat=xml"] {
        let (code, body) = server
            .get(&format!(
                "/druid/v2/sql/statements/query-pages-1/results?{bad}"
            ))
            .await;
        assert_eq!(code, 400, "{bad}: {body}");
        assert_eq!(body["errorCode"], "invalidInput");
    }

    // Details: stages, counters and warnings as in the task report.
    let (code, detail) = server
        .get("/druid/v2/sql/statements/query-pages-1?detail=true")
        .await;
    assert_eq!(code, 200);
    assert!(detail["stages"].is_array(), "{detail}");
    assert!(detail["counters"].is_object(), "{detail}");
    assert!(detail["warnings"].is_array(), "{detail}");
    server.stop().await;
}

#[tokio::test]
async fn ingestion_failures_and_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), |_| {}).await;
    let rows = vec![(
        "2015-09-12T00:46:58.771Z".to_string(),
        "Rust".to_string(),
        5,
    )];
    let (code, body) = submit(
        &server,
        json!({"query": format!("INSERT INTO wiki SELECT TIME_PARSE(ts) AS __time, page, n FROM {} PARTITIONED BY DAY", inline(&rows)),
               "context": {"executionMode": "async"}}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let id = body["queryId"].as_str().unwrap().to_string();
    let done = wait(&server, &id).await;
    assert_eq!(done["state"], "SUCCESS", "{done}");
    assert_eq!(done["result"]["dataSource"], "wiki");
    assert_eq!(done["result"]["numTotalRows"], 1);
    // An ingestion has no rows to fetch.
    let (code, _, body) = text(&server, &format!("/druid/v2/sql/statements/{id}/results")).await;
    assert_eq!((code, body.as_str()), (200, ""));

    // SELECT results carry __time as epoch millis.
    let (_, body) = submit(
        &server,
        json!({"query": "SELECT __time, page FROM wiki", "context": {"executionMode": "ASYNC"}}),
    )
    .await;
    let id = body["queryId"].as_str().unwrap().to_string();
    let done = wait(&server, &id).await;
    assert_eq!(
        done["result"]["sampleRecords"],
        json!([[1442018818771_i64, "Rust"]])
    );
    assert_eq!(done["result"]["resultFormat"], "object");
    let (_, _, body) = text(&server, &format!("/druid/v2/sql/statements/{id}/results")).await;
    assert_eq!(body, "[{\"__time\":1442018818771,\"page\":\"Rust\"}]\n");

    // A failure at run time: FAILED with the fault as errorDetails; no results.
    let (_, body) = submit(
        &server,
        json!({"query": "INSERT INTO t SELECT CAST(NULL AS TIMESTAMP) AS __time, 'x' AS s PARTITIONED BY DAY",
               "context": {"executionMode": "ASYNC"}}),
    )
    .await;
    let id = body["queryId"].as_str().unwrap().to_string();
    let done = wait(&server, &id).await;
    assert_eq!(done["state"], "FAILED", "{done}");
    let e = &done["errorDetails"];
    assert_eq!(e["error"], "druidException");
    assert_eq!(e["errorCode"], "InsertTimeNull", "{e}");
    assert!(
        e["errorMessage"].as_str().unwrap().contains("__time"),
        "{e}"
    );
    let (code, body) = server
        .get(&format!("/druid/v2/sql/statements/{id}/results"))
        .await;
    assert_eq!(code, 404, "{body}");

    // Bad requests.
    let (code, body) = submit(&server, json!({"query": "SELECT 1"})).await;
    assert_eq!(code, 400);
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("executionMode"),
        "{body}"
    );
    let (code, body) = submit(
        &server,
        json!({"query": "SELECT 1", "context": {"executionMode": "SYNC"}}),
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        body["errorMessage"].as_str().unwrap().contains("[SYNC]"),
        "{body}"
    );
    let (code, body) = submit(
        &server,
        json!({"query": "SELECT nope FROM wiki", "context": {"executionMode": "ASYNC"}}),
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(body["errorCode"], "invalidInput", "{body}");
    for path in [
        "/druid/v2/sql/statements/query-nope",
        "/druid/v2/sql/statements/query-nope/results",
    ] {
        let (code, body) = server.get(path).await;
        assert_eq!(code, 404, "{path}");
        assert_eq!(body["errorCode"], "notFound");
    }
    server.stop().await;
}

#[tokio::test]
async fn cancel_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), |c| c.query_results_retention_secs = 1).await;
    let (_, body) = submit(
        &server,
        json!({"query": "SELECT COUNT(*) FROM generate_series(1, 100000000000)",
               "context": {"executionMode": "ASYNC"}}),
    )
    .await;
    let id = body["queryId"].as_str().unwrap().to_string();
    assert_eq!(
        server
            .delete(&format!("/druid/v2/sql/statements/{id}"))
            .await,
        202
    );
    let done = wait(&server, &id).await;
    assert_eq!(done["state"], "FAILED");
    assert_eq!(done["errorDetails"]["errorCode"], "Canceled");
    assert_eq!(done["errorDetails"]["category"], "CANCELED");
    // Already ended: 200; unknown: 404.
    assert_eq!(
        server
            .delete(&format!("/druid/v2/sql/statements/{id}"))
            .await,
        200
    );
    assert_eq!(
        server.delete("/druid/v2/sql/statements/query-nope").await,
        404
    );

    // Results are deleted after the retention period (1 s here).
    let (_, body) = submit(
        &server,
        json!({"query": "SELECT 1 AS one", "context": {"executionMode": "ASYNC"}}),
    )
    .await;
    let id = body["queryId"].as_str().unwrap().to_string();
    assert_eq!(wait(&server, &id).await["state"], "SUCCESS");
    let start = Instant::now();
    loop {
        let (code, body) = server
            .get(&format!("/druid/v2/sql/statements/{id}/results"))
            .await;
        if code == 404 {
            assert!(
                body["errorMessage"]
                    .as_str()
                    .unwrap()
                    .contains("no longer available")
            );
            break;
        }
        assert_eq!(body, json!([{"one": 1}]));
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "results never expired"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.stop().await;
}

/// A statement's result pages live under the data directory's deep storage, never at the
/// filesystem root (they were written to `/.query-results/<queryId>` once).
#[tokio::test]
async fn results_are_stored_under_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), |_| {}).await;
    let id = format!("results-home-{}", uuid::Uuid::new_v4());
    let (code, body) = submit(
        &server,
        json!({"query": "SELECT value FROM generate_series(1, 10)",
               "context": {"executionMode": "ASYNC", "sqlQueryId": id}}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let task = format!("query-{id}");
    let done = wait(&server, &task).await;
    assert_eq!(done["state"], "SUCCESS", "{done}");
    let home = dir
        .path()
        .join("segments")
        .join(".query-results")
        .join(&task);
    assert!(home.join("manifest.json").is_file(), "{}", home.display());
    assert!(home.join("page-0.arrow").is_file());
    assert!(
        !std::path::Path::new("/.query-results").join(&task).exists(),
        "nothing at the filesystem root"
    );
    let (code, _, rows) = text(&server, &format!("/druid/v2/sql/statements/{task}/results")).await;
    assert_eq!(code, 200, "{rows}");
    assert!(rows.contains("10"), "{rows}");
    server.stop().await;
}
