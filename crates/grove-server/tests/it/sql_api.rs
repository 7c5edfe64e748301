//! `POST /druid/v2/sql`: every result format and header layout, parameters, time zones,
//! streaming of a large result, cancellation, and Druid's error JSON for bad queries.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{TestServer, inline};

/// A server with datasource `wiki`: three rows on 2015-09-12.
async fn server_with_wiki(dir: &std::path::Path) -> TestServer {
    let server = TestServer::spawn(dir, |_| {}).await;
    let rows = vec![
        (
            "2015-09-12T00:46:58.771Z".to_string(),
            "Rust".to_string(),
            5,
        ),
        ("2015-09-12T01:00:00.000Z".to_string(), "a,b".to_string(), 7),
        ("2015-09-12T02:00:00.000Z".to_string(), "Zig".to_string(), 9),
    ];
    let sql = format!(
        "INSERT INTO wiki SELECT TIME_PARSE(ts) AS __time, page, n FROM {} PARTITIONED BY DAY",
        inline(&rows)
    );
    server.ingest(&sql).await;
    server
}

/// Posts to `/druid/v2/sql`; returns status, headers and the raw body text.
async fn sql(server: &TestServer, body: Value) -> (u16, reqwest::header::HeaderMap, String) {
    let r = server
        .client
        .post(format!("{}/druid/v2/sql", server.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

const Q: &str = "SELECT __time, page, n FROM wiki ORDER BY __time LIMIT 2";

#[tokio::test]
async fn result_formats_and_headers() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_wiki(dir.path()).await;

    let (status, headers, body) = sql(&server, json!({"query": Q})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    assert!(headers.get("X-Druid-SQL-Query-Id").is_some());
    assert!(headers.get("X-Druid-SQL-Header-Included").is_none());
    assert_eq!(
        body,
        "[{\"__time\":\"2015-09-12T00:46:58.771Z\",\"page\":\"Rust\",\"n\":5},{\"__time\":\"2015-09-12T01:00:00.000Z\",\"page\":\"a,b\",\"n\":7}]\n"
    );

    let (_, headers, body) = sql(
        &server,
        json!({"query": Q, "resultFormat": "array", "header": true, "typesHeader": true,
               "sqlTypesHeader": true, "context": {"sqlQueryId": "my-query"}}),
    )
    .await;
    assert_eq!(headers["X-Druid-SQL-Query-Id"], "my-query");
    assert_eq!(headers["X-Druid-SQL-Header-Included"], "yes");
    assert_eq!(
        body,
        "[[\"__time\",\"page\",\"n\"],[\"LONG\",\"STRING\",\"LONG\"],[\"TIMESTAMP\",\"VARCHAR\",\"BIGINT\"],[\"2015-09-12T00:46:58.771Z\",\"Rust\",5],[\"2015-09-12T01:00:00.000Z\",\"a,b\",7]]\n"
    );

    let (_, headers, body) = sql(
        &server,
        json!({"query": Q, "resultFormat": "objectLines", "header": true, "typesHeader": true}),
    )
    .await;
    assert_eq!(headers["content-type"], "text/plain");
    assert_eq!(
        body,
        "{\"__time\":{\"type\":\"LONG\"},\"page\":{\"type\":\"STRING\"},\"n\":{\"type\":\"LONG\"}}\n\
         {\"__time\":\"2015-09-12T00:46:58.771Z\",\"page\":\"Rust\",\"n\":5}\n\
         {\"__time\":\"2015-09-12T01:00:00.000Z\",\"page\":\"a,b\",\"n\":7}\n\n"
    );

    let (_, _, body) = sql(
        &server,
        json!({"query": Q, "resultFormat": "object", "header": true, "sqlTypesHeader": true}),
    )
    .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v[0],
        json!({"__time": {"sqlType": "TIMESTAMP"}, "page": {"sqlType": "VARCHAR"}, "n": {"sqlType": "BIGINT"}})
    );

    let (_, headers, body) = sql(&server, json!({"query": Q, "resultFormat": "arrayLines"})).await;
    assert_eq!(headers["content-type"], "text/plain");
    assert_eq!(
        body,
        "[\"2015-09-12T00:46:58.771Z\",\"Rust\",5]\n[\"2015-09-12T01:00:00.000Z\",\"a,b\",7]\n\n"
    );

    let (_, headers, body) = sql(
        &server,
        json!({"query": Q, "resultFormat": "csv", "header": true, "typesHeader": true}),
    )
    .await;
    assert_eq!(headers["content-type"], "text/csv");
    assert_eq!(
        body,
        "__time,page,n\nLONG,STRING,LONG\n2015-09-12T00:46:58.771Z,Rust,5\n\
         2015-09-12T01:00:00.000Z,\"a,b\",7\n\n"
    );

    // Empty results: an empty array, or the header alone.
    let (_, _, body) = sql(
        &server,
        json!({"query": "SELECT page FROM wiki WHERE n > 100"}),
    )
    .await;
    assert_eq!(body, "[]\n");
    let (_, _, body) = sql(
        &server,
        json!({"query": "SELECT page FROM wiki WHERE n > 100", "resultFormat": "array", "header": true}),
    )
    .await;
    assert_eq!(body, "[[\"page\"]]\n");
    server.stop().await;
}

#[tokio::test]
async fn values_parameters_and_time_zone() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_wiki(dir.path()).await;

    // Types: COUNT is BIGINT, AVG DOUBLE, a comparison BOOLEAN, TIME_FLOOR TIMESTAMP.
    let (status, _, body) = sql(
        &server,
        json!({"query": "SELECT COUNT(*) AS c, AVG(n) AS a, MAX(n) > 8 AS big, TIME_FLOOR(MAX(__time), 'P1D') AS d FROM wiki",
               "resultFormat": "array", "header": true, "typesHeader": true, "sqlTypesHeader": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v[1], json!(["LONG", "DOUBLE", "LONG", "LONG"]));
    assert_eq!(v[2], json!(["BIGINT", "DOUBLE", "BOOLEAN", "TIMESTAMP"]));
    assert_eq!(v[3], json!([3, 7.0, true, "2015-09-12T00:00:00.000Z"]));

    // `?` placeholders bound in order, typed.
    let (status, _, body) = sql(
        &server,
        json!({"query": "SELECT page, n FROM wiki WHERE page <> ? AND n >= ? AND __time < ? ORDER BY n",
               "resultFormat": "array",
               "parameters": [{"type": "VARCHAR", "value": "Zig"}, {"type": "BIGINT", "value": 6},
                              {"type": "TIMESTAMP", "value": "2015-09-13 00:00:00"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "[[\"a,b\",7]]\n");

    // Unaliased expressions are named as Druid names them.
    let (_, _, body) = sql(
        &server,
        json!({"query": "SELECT page, COUNT(*), MAX(n) + 1 FROM wiki GROUP BY 1 ORDER BY 1 LIMIT 1",
               "resultFormat": "array", "header": true}),
    )
    .await;
    assert_eq!(body, "[[\"page\",\"EXPR$1\",\"EXPR$2\"],[\"Rust\",1,6]]\n");

    // sqlOuterLimit caps the rows (the web console sends 1001).
    let (_, _, body) = sql(
        &server,
        json!({"query": "SELECT value FROM generate_series(1, 10)", "resultFormat": "array",
               "context": {"sqlOuterLimit": 3}}),
    )
    .await;
    assert_eq!(body, "[[1],[2],[3]]\n");

    // sqlTimeZone renders timestamps with the zone's offset.
    let (_, _, body) = sql(
        &server,
        json!({"query": "SELECT __time FROM wiki ORDER BY __time LIMIT 1", "resultFormat": "array",
               "context": {"sqlTimeZone": "America/Los_Angeles"}}),
    )
    .await;
    assert_eq!(body, "[[\"2015-09-11T17:46:58.771-07:00\"]]\n");

    // Arrays are JSON strings unless sqlStringifyArrays is false.
    let (_, _, body) = sql(
        &server,
        json!({"query": "SELECT make_array(1, 2) AS a", "resultFormat": "array"}),
    )
    .await;
    assert_eq!(body, "[[\"[1,2]\"]]\n");
    let (_, _, body) = sql(
        &server,
        json!({"query": "SELECT make_array(1, 2) AS a", "resultFormat": "array",
               "context": {"sqlStringifyArrays": false}}),
    )
    .await;
    assert_eq!(body, "[[[1,2]]]\n");
    server.stop().await;
}

#[tokio::test]
async fn large_results_stream() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), |_| {}).await;
    let r = server
        .client
        .post(format!("{}/druid/v2/sql", server.base))
        .json(&json!({"query": "SELECT value FROM generate_series(1, 300000)", "resultFormat": "arrayLines"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Sent in chunks, not one body with a length.
    assert!(r.headers().get("content-length").is_none());
    let text = r.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 300_001, "300000 rows and the blank line");
    assert_eq!(lines[0], "[1]");
    assert_eq!(lines[299_999], "[300000]");
    assert!(text.ends_with("]\n\n"));
    server.stop().await;
}

#[tokio::test]
async fn cancel_a_running_query() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), |_| {}).await;
    let client = server.client.clone();
    let url = format!("{}/druid/v2/sql", server.base);
    let running = tokio::spawn(async move {
        let r = client
            .post(url)
            .json(
                &json!({"query": "SELECT COUNT(*) FROM generate_series(1, 100000000000)",
                          "context": {"sqlQueryId": "long-one"}}),
            )
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    });
    let cancel_url = format!("{}/druid/v2/sql/long-one", server.base);
    let mut canceled = false;
    for _ in 0..200 {
        let r = server.client.delete(&cancel_url).send().await.unwrap();
        if r.status().as_u16() == 202 {
            canceled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(canceled, "the query never showed up as running");
    let (status, body) = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 500, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["errorCode"], "Canceled");
    assert_eq!(v["category"], "CANCELED");
    // Gone once ended: 404 with Druid's error JSON.
    let r = server.client.delete(&cancel_url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errorCode"], "notFound");
    server.stop().await;
}

#[tokio::test]
async fn bad_queries_get_druid_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_wiki(dir.path()).await;
    let cases = [
        (
            json!({"query": format!("INSERT INTO x SELECT * FROM wiki PARTITIONED BY DAY")}),
            400,
            "invalidInput",
            "INSERT operations are not supported by requested SQL engine [native], consider using MSQ.",
        ),
        (
            json!({"query": "REPLACE INTO x OVERWRITE ALL SELECT * FROM wiki PARTITIONED BY DAY"}),
            400,
            "invalidInput",
            "REPLACE operations are not supported by the requested SQL engine [native].  Consider using MSQ.",
        ),
        (
            json!({"query": "SELECT nope FROM wiki"}),
            400,
            "invalidInput",
            "nope",
        ),
        (
            json!({"query": "SELECT * FROM missing_table"}),
            400,
            "invalidInput",
            "missing_table",
        ),
        (
            json!({"query": "SELEC 1"}),
            400,
            "invalidInput",
            "Invalid SQL",
        ),
        (json!({"query": ""}), 400, "invalidInput", "query"),
        (
            json!({"query": "SELECT 1", "resultFormat": "xml"}),
            400,
            "invalidInput",
            "xml",
        ),
        (
            json!({"query": "SELECT ?", "parameters": []}),
            400,
            "invalidInput",
            "No value bound for parameter (position [1])",
        ),
        (
            json!({"query": "SELECT 1", "context": {"sqlTimeZone": "Mars/Base"}}),
            400,
            "invalidInput",
            "Mars/Base",
        ),
    ];
    for (body, status, code, message) in cases {
        let (got, headers, text) = sql(&server, body.clone()).await;
        assert_eq!(got, status, "{body} -> {text}");
        assert!(headers.get("X-Druid-SQL-Query-Id").is_some(), "{body}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"], "druidException", "{text}");
        assert_eq!(v["errorCode"], code, "{text}");
        assert_eq!(v["category"], "INVALID_INPUT", "{text}");
        assert_eq!(v["persona"], "USER", "{text}");
        assert_eq!(v["context"]["sourceType"], "sql");
        assert!(
            v["errorMessage"].as_str().unwrap().contains(message),
            "{body} -> {text}"
        );
    }
    // Malformed JSON body.
    let (status, body) = server.post_raw("/druid/v2/sql", "{nope").await;
    assert_eq!(status, 400);
    assert_eq!(body["errorCode"], "invalidInput");
    // A failed query leaves the server serving.
    let (status, _, body) = sql(&server, json!({"query": "SELECT COUNT(*) AS c FROM wiki"})).await;
    assert_eq!(status, 200);
    assert_eq!(body, "[{\"c\":3}]\n");
    server.stop().await;
}
