//! Contract tests for the Druid web console (version 39): each request the console sends,
//! with its exact body and context keys, and every field it reads from the answer
//! (`../shared/spec/druid-console.md`). Grove runs the console in no-proxy mode
//! (`/proxy/enabled` is 404): the views read `sys` tables through SQL.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{TestServer, inline};

/// `POST /druid/v2/sql` as the console's views send it: default (object) format.
async fn sys_query(server: &TestServer, sql: &str) -> Vec<Value> {
    let (code, body) = server
        .post(
            "/druid/v2/sql",
            json!({"query": sql, "context": {"engine": "native"}}),
        )
        .await;
    assert_eq!(code, 200, "{sql}\n{body}");
    body.as_array().unwrap_or_else(|| panic!("{body}")).clone()
}

/// The keys of every row, which must be exactly `keys`.
fn assert_columns(rows: &[Value], keys: &[&str]) {
    for row in rows {
        let got: Vec<&String> = row.as_object().unwrap().keys().collect();
        let mut want: Vec<&str> = keys.to_vec();
        want.sort_unstable();
        let mut got: Vec<&str> = got.iter().map(|s| s.as_str()).collect();
        got.sort_unstable();
        assert_eq!(got, want, "{row}");
    }
}

/// The console's statement submission for the `sql-msq-task` engine.
async fn submit_statement(server: &TestServer, sql: &str, ingest: bool) -> Value {
    let mut context = json!({"executionMode": "async", "maxNumTasks": 2});
    if ingest {
        context["finalizeAggregations"] = json!(false);
        context["groupByEnableMultiValueUnnesting"] = json!(false);
        context["waitUntilSegmentsLoad"] = json!(true);
    } else {
        context["sqlOuterLimit"] = json!(1001);
    }
    let (code, body) = server
        .post(
            "/druid/v2/sql/statements",
            json!({"query": sql, "resultFormat": "array", "header": true, "typesHeader": true,
                   "sqlTypesHeader": true, "context": context}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert!(body["queryId"].is_string(), "{body}");
    assert!(
        ["ACCEPTED", "RUNNING", "SUCCESS", "FAILED"].contains(&body["state"].as_str().unwrap())
    );
    assert!(body["createdAt"].is_string());
    assert!(body["durationMs"].is_i64());
    body
}

/// Polls `?detail=true` as the console does, checking each answer's shape, until the
/// statement ends.
async fn poll(server: &TestServer, id: &str) -> Value {
    let start = Instant::now();
    loop {
        let (code, s) = server
            .get(&format!("/druid/v2/sql/statements/{id}?detail=true"))
            .await;
        assert_eq!(code, 200, "{s}");
        let state = s["state"].as_str().unwrap();
        assert!(
            ["ACCEPTED", "RUNNING", "SUCCESS", "FAILED"].contains(&state),
            "a state the console does not know: {s}"
        );
        assert_eq!(s["queryId"], json!(id));
        assert!(s["createdAt"].is_string());
        check_stages(&s);
        if state == "SUCCESS" || state == "FAILED" {
            return s;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the stages pane reads (druid-models/stages/stages.ts).
fn check_stages(s: &Value) {
    let Some(stages) = s["stages"].as_array() else {
        return;
    };
    assert!(s["counters"].is_object(), "stages without counters: {s}");
    for st in stages {
        assert!(st["stageNumber"].is_u64(), "{st}");
        let phase = st["phase"].as_str().unwrap_or("NEW");
        assert!(
            [
                "NEW",
                "READING_INPUT",
                "POST_READING",
                "RESULTS_READY",
                "FINISHED",
                "FAILED"
            ]
            .contains(&phase),
            "{st}"
        );
        let def = &st["definition"];
        assert!(def["id"].is_string(), "{st}");
        assert!(def["processor"]["type"].is_string(), "{st}");
        for input in def["input"].as_array().unwrap() {
            match input["type"].as_str().unwrap() {
                "external" => assert!(
                    input["inputSource"]["type"].is_string(),
                    "external input without inputSource.type: {input}"
                ),
                "table" => assert!(input["dataSource"].is_string(), "{input}"),
                "stage" => assert!(input["stage"].is_u64(), "{input}"),
                _ => {}
            }
        }
    }
    for (_, workers) in s["counters"].as_object().unwrap() {
        for (_, w) in workers.as_object().unwrap() {
            for (name, c) in w.as_object().unwrap() {
                if name.starts_with("input") || name == "output" {
                    assert_eq!(c["type"], "channel", "{c}");
                    for key in ["rows", "bytes", "files", "totalFiles", "frames"] {
                        assert!(c.get(key).is_none_or(Value::is_array), "{c}");
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn startup_detection() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), |_| {}).await;

    let (code, status) = server.get("/status").await;
    assert_eq!(code, 200);
    assert!(status["version"].is_string());
    assert!(!status["modules"].as_array().unwrap().is_empty());

    // SQL probe: any 2xx.
    let (code, _) = server
        .post(
            "/druid/v2/sql?capabilities",
            json!({"query": "SELECT 1337", "context": {"timeout": 15000}}),
        )
        .await;
    assert_eq!(code, 200);
    // No-proxy mode, on purpose: the views use sys tables through SQL.
    let (code, _) = server.get("/proxy/enabled?capabilities").await;
    assert_eq!(code, 404);
    let (code, body) = server.get("/druid/v2/sql/task/enabled?capabilities").await;
    assert_eq!((code, body), (200, json!({"enabled": true})));
    // The engines Grove runs; no Dart. Unknown paths answer 404 at once (the console
    // waits on these without a timeout).
    let (code, body) = server.get("/druid/v2/sql/engines?capabilities").await;
    assert_eq!(code, 200);
    assert!(
        !body["engines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "msq-dart")
    );
    let r = tokio::time::timeout(Duration::from_secs(5), server.get("/druid/v2/nothing/here"))
        .await
        .unwrap();
    assert_eq!(r.0, 404);

    let (code, rows) = server
        .post(
            "/druid/v2/sql?capabilities-functions",
            json!({"query": "SELECT \"ROUTINE_NAME\", \"SIGNATURES\", \"IS_AGGREGATOR\" FROM \"INFORMATION_SCHEMA\".\"ROUTINES\" WHERE \"SIGNATURES\" IS NOT NULL",
                   "resultFormat": "array", "context": {"engine": "native", "timeout": 15000}}),
        )
        .await;
    assert_eq!(code, 200, "{rows}");
    let rows = rows.as_array().unwrap();
    assert!(!rows.is_empty());
    for r in rows {
        assert!(r[0].is_string() && r[1].is_string(), "{r}");
        assert!(r[2] == "YES" || r[2] == "NO", "{r}");
    }

    // The column tree: never empty, even before any ingest.
    let cols = sys_query(
        &server,
        "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM INFORMATION_SCHEMA.COLUMNS",
    )
    .await;
    assert!(!cols.is_empty());
    assert_columns(
        &cols,
        &["TABLE_SCHEMA", "TABLE_NAME", "COLUMN_NAME", "DATA_TYPE"],
    );

    // A native-engine SELECT from the Query view.
    let r = server
        .client
        .post(format!("{}/druid/v2/sql", server.base))
        .json(
            &json!({"query": "SELECT 1 + 1 AS two", "resultFormat": "array", "header": true,
                      "typesHeader": true, "sqlTypesHeader": true,
                      "context": {"sqlOuterLimit": 1001, "engine": "native",
                                  "sqlQueryId": "0f0e6d2c-1c1b-4c5d-9e3f-000000000001",
                                  "sqlStringifyArrays": false}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["X-Druid-SQL-Header-Included"], "yes");
    assert_eq!(
        r.headers()["X-Druid-SQL-Query-Id"],
        "0f0e6d2c-1c1b-4c5d-9e3f-000000000001"
    );
    let text = r.text().await.unwrap();
    assert!(
        text.ends_with('\n'),
        "a body without a final line feed reads as cut off"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!([["two"], ["LONG"], ["BIGINT"], [2]])
    );
    server.stop().await;
}

#[tokio::test]
async fn query_view_ingest_select_failure_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), |_| {}).await;
    let rows: Vec<(String, String, i64)> = (0..20)
        .map(|i| {
            (
                format!("2015-09-12T0{}:00:00Z", i % 10),
                format!("p{}", i % 4),
                i,
            )
        })
        .collect();
    let ingest = format!(
        "REPLACE INTO wiki OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, page, n FROM {} PARTITIONED BY DAY CLUSTERED BY page",
        inline(&rows)
    );

    // INSERT/REPLACE with live polling until SUCCESS.
    let submitted = submit_statement(&server, &ingest, true).await;
    let id = submitted["queryId"].as_str().unwrap().to_string();
    let done = poll(&server, &id).await;
    assert_eq!(done["state"], "SUCCESS", "{done}");
    assert_eq!(done["result"]["dataSource"], "wiki");
    assert_eq!(done["result"]["numTotalRows"], 20);
    assert!(!done["stages"].as_array().unwrap().is_empty());
    assert!(done["warnings"].is_array());
    // The payload, read once for the "native query" tab and re-attach.
    let (code, p) = server.get(&format!("/druid/indexer/v1/task/{id}")).await;
    assert_eq!(code, 200);
    assert_eq!(p["task"], json!(id));
    assert_eq!(p["payload"]["type"], "query_controller");
    assert_eq!(p["payload"]["id"], json!(id));
    assert_eq!(p["payload"]["sqlQuery"], json!(ingest));
    assert_eq!(p["payload"]["sqlQueryContext"]["executionMode"], "async");
    assert!(p["payload"]["spec"]["query"].is_object());
    let destination = &p["payload"]["spec"]["destination"];
    assert_eq!(destination["type"], "dataSource");
    assert_eq!(destination["dataSource"], "wiki");

    // SELECT: rows come only from result.sampleRecords, typed by schema.
    let submitted = submit_statement(
        &server,
        "SELECT __time, page, n FROM wiki ORDER BY n LIMIT 3",
        false,
    )
    .await;
    let id = submitted["queryId"].as_str().unwrap().to_string();
    let done = poll(&server, &id).await;
    assert_eq!(done["state"], "SUCCESS", "{done}");
    assert_eq!(
        done["schema"],
        json!([{"name": "__time", "type": "TIMESTAMP", "nativeType": "LONG"},
               {"name": "page", "type": "VARCHAR", "nativeType": "STRING"},
               {"name": "n", "type": "BIGINT", "nativeType": "LONG"}])
    );
    assert_eq!(done["result"]["dataSource"], "__query_select");
    assert_eq!(
        done["result"]["sampleRecords"],
        json!([
            [1442016000000_i64, "p0", 0],
            [1442019600000_i64, "p1", 1],
            [1442023200000_i64, "p2", 2]
        ])
    );
    assert_eq!(done["result"]["numTotalRows"], 3);
    assert!(done["result"]["pages"].is_array());
    let (code, payload) = server.get(&format!("/druid/indexer/v1/task/{id}")).await;
    assert_eq!(code, 200);
    assert_eq!(
        payload["payload"]["spec"]["destination"]["type"],
        "durableStorage"
    );

    // A failing ingest: errorDetails shown as "<errorCode>: <errorMessage>".
    let submitted = submit_statement(
        &server,
        "INSERT INTO bad SELECT CAST(NULL AS TIMESTAMP) AS __time, 'x' AS s PARTITIONED BY DAY",
        true,
    )
    .await;
    let id = submitted["queryId"].as_str().unwrap().to_string();
    let done = poll(&server, &id).await;
    assert_eq!(done["state"], "FAILED");
    assert_eq!(done["errorDetails"]["errorCode"], "InsertTimeNull");
    assert!(done["errorDetails"]["errorMessage"].is_string());

    // Bad SQL: a 400 with Druid's error JSON, before any task.
    let (code, body) = server
        .post(
            "/druid/v2/sql/statements",
            json!({"query": "INSERT INTO x SELECT nope PARTITIONED BY DAY",
                   "resultFormat": "array", "context": {"executionMode": "async"}}),
        )
        .await;
    assert_eq!(code, 400);
    assert_eq!(body["category"], "INVALID_INPUT");
    assert!(body["errorMessage"].is_string());

    // Cancel: the console POSTs shutdown with `{}`; the statement ends FAILED with
    // the Canceled error, and the Tasks view shows CANCELED.
    let submitted = submit_statement(
        &server,
        "SELECT COUNT(*) AS c FROM generate_series(1, 100000000000)",
        false,
    )
    .await;
    let id = submitted["queryId"].as_str().unwrap().to_string();
    let (code, _) = server
        .post(&format!("/druid/indexer/v1/task/{id}/shutdown"), json!({}))
        .await;
    assert_eq!(code, 200);
    let done = poll(&server, &id).await;
    assert_eq!(done["state"], "FAILED");
    assert_eq!(done["errorDetails"]["errorCode"], "Canceled");
    let tasks = sys_query(
        &server,
        &format!(
            "SELECT CASE WHEN error_msg IN ('Shutdown request from user', 'Canceled: Query canceled by user or by task shutdown.') THEN 'CANCELED' ELSE \"status\" END AS \"taskStatus\", \"task_id\" AS \"taskId\", \"datasource\", \"created_time\" AS \"createdTime\", \"duration\", \"error_msg\" AS \"errorMessage\" FROM sys.tasks WHERE \"type\" = 'query_controller' AND task_id = '{id}' ORDER BY \"created_time\" DESC LIMIT 100"
        ),
    )
    .await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["taskStatus"], "CANCELED");
    server.stop().await;
}

#[tokio::test]
async fn views_sys_queries() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), |_| {}).await;
    let rows: Vec<(String, String, i64)> = (0..6)
        .map(|i| {
            (
                format!("2015-09-1{}T01:00:00Z", 2 + i % 2),
                format!("p{i}"),
                i,
            )
        })
        .collect();
    let id = server
        .submit(
            &format!(
                "INSERT INTO wiki SELECT TIME_PARSE(ts) AS __time, page, n FROM {} PARTITIONED BY DAY",
                inline(&rows)
            ),
            json!({}),
        )
        .await;
    assert_eq!(server.wait_terminal(&id).await["statusCode"], "SUCCESS");

    // Datasources view.
    let ds = sys_query(&server, DATASOURCES).await;
    assert_columns(
        &ds,
        &[
            "datasource",
            "num_segments",
            "num_zero_replica_segments",
            "num_segments_to_load",
            "num_segments_to_drop",
            "total_data_size",
            "min_segment_rows",
            "avg_segment_rows",
            "max_segment_rows",
            "total_rows",
            "avg_row_size",
            "replicated_size",
        ],
    );
    assert_eq!(ds.len(), 1);
    assert_eq!(ds[0]["datasource"], "wiki");
    assert_eq!(ds[0]["num_segments"], 2);
    assert_eq!(ds[0]["total_rows"], 6);
    assert_eq!(ds[0]["num_segments_to_load"], 0);
    assert_eq!(ds[0]["num_segments_to_drop"], 0);
    assert!(ds[0]["total_data_size"].as_i64().unwrap() > 0);
    let running = sys_query(
        &server,
        "SELECT\n  \"datasource\", \"type\", COUNT(*) AS \"num_running_tasks\"\nFROM sys.tasks WHERE \"status\" = 'RUNNING' AND \"runner_status\" = 'RUNNING'\nGROUP BY 1, 2",
    )
    .await;
    assert!(running.is_empty());

    // Segments view.
    let segs = sys_query(&server, SEGMENTS).await;
    assert_eq!(segs.len(), 2);
    assert_columns(
        &segs,
        &[
            "segment_id",
            "datasource",
            "start",
            "end",
            "version",
            "shard_spec",
            "partition_num",
            "size",
            "num_rows",
            "avg_row_size",
            "num_replicas",
            "replication_factor",
            "is_available",
            "is_active",
            "is_realtime",
        ],
    );
    assert_eq!(segs[0]["start"], "2015-09-13T00:00:00.000Z");
    let spec: Value = serde_json::from_str(segs[0]["shard_spec"].as_str().unwrap()).unwrap();
    assert_eq!(spec["type"], "numbered");
    assert_eq!(segs[0]["is_available"], 1);
    let cnt = sys_query(
        &server,
        "SELECT COUNT(*) AS \"cnt\"\nFROM \"sys\".\"segments\"",
    )
    .await;
    assert_eq!(cnt, vec![json!({"cnt": 2})]);

    // Tasks view.
    let tasks = sys_query(&server, TASKS).await;
    assert_columns(
        &tasks,
        &[
            "task_id",
            "group_id",
            "type",
            "datasource",
            "created_time",
            "location",
            "duration",
            "error_msg",
            "status",
        ],
    );
    assert_eq!(tasks[0]["task_id"], json!(id));
    assert_eq!(tasks[0]["type"], "query_controller");
    assert_eq!(tasks[0]["status"], "SUCCESS");

    // Services view.
    let services = sys_query(&server, SERVICES).await;
    assert!(!services.is_empty());
    assert_columns(
        &services,
        &[
            "service",
            "service_type",
            "tier",
            "host",
            "plaintext_port",
            "tls_port",
            "curr_size",
            "max_size",
            "storage_size",
            "effective_size",
            "is_leader",
            "start_time",
            "version",
            "build_revision",
            "labels",
            "available_processors",
            "total_memory",
        ],
    );
    assert_eq!(services[0]["service_type"], "coordinator");

    // Supervisors view: empty, with its query running.
    assert!(sys_query(&server, SUPERVISORS).await.is_empty());

    // Home cards.
    let seg_card = sys_query(&server, HOME_SEGMENTS).await;
    assert_eq!(
        seg_card,
        vec![json!({"active": 2, "cached_on_historical": 2, "unavailable": 0, "realtime": 0})]
    );
    let sup_card = sys_query(&server, HOME_SUPERVISORS).await;
    assert_eq!(sup_card, vec![json!({"running": 0, "suspended": 0})]);
    let task_card = sys_query(&server, HOME_TASKS).await;
    assert_eq!(task_card, vec![json!({"status": "SUCCESS", "count": 1})]);
    assert_eq!(
        sys_query(&server, "SELECT datasource FROM sys.segments GROUP BY 1").await,
        vec![json!({"datasource": "wiki"})]
    );
    let types = sys_query(
        &server,
        "SELECT server_type AS \"service_type\", COUNT(*) as \"count\" FROM sys.servers GROUP BY 1",
    )
    .await;
    assert!(types.iter().any(|r| r["service_type"] == "broker"));
    assert_eq!(
        sys_query(
            &server,
            "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_TYPE = 'TABLE'"
        )
        .await,
        vec![json!({"TABLE_NAME": "wiki"})]
    );
    let cols = sys_query(
        &server,
        "SELECT COLUMN_NAME, DATA_TYPE FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = 'druid' AND TABLE_NAME = 'wiki'",
    )
    .await;
    assert_eq!(
        cols,
        vec![
            json!({"COLUMN_NAME": "__time", "DATA_TYPE": "TIMESTAMP"}),
            json!({"COLUMN_NAME": "page", "DATA_TYPE": "VARCHAR"}),
            json!({"COLUMN_NAME": "n", "DATA_TYPE": "BIGINT"}),
        ]
    );
    server.stop().await;
}

const DATASOURCES: &str = r#"SELECT
datasource,
COUNT(*) FILTER (WHERE is_active = 1) AS num_segments,
COUNT(*) FILTER (WHERE is_published = 1 AND is_overshadowed = 0 AND replication_factor = 0) AS num_zero_replica_segments,
COUNT(*) FILTER (WHERE is_published = 1 AND is_overshadowed = 0 AND is_available = 0 AND replication_factor > 0) AS num_segments_to_load,
COUNT(*) FILTER (WHERE is_available = 1 AND is_active = 0) AS num_segments_to_drop,
SUM("size") FILTER (WHERE is_active = 1) AS total_data_size,
MIN("num_rows") FILTER (WHERE is_available = 1 AND is_realtime = 0) AS min_segment_rows,
AVG("num_rows") FILTER (WHERE is_available = 1 AND is_realtime = 0) AS avg_segment_rows,
MAX("num_rows") FILTER (WHERE is_available = 1 AND is_realtime = 0) AS max_segment_rows,
SUM("num_rows") FILTER (WHERE is_active = 1) AS total_rows,
CASE WHEN SUM("num_rows") FILTER (WHERE is_available = 1) <> 0 THEN (SUM("size") FILTER (WHERE is_available = 1) / SUM("num_rows") FILTER (WHERE is_available = 1)) ELSE 0 END AS avg_row_size,
SUM("size" * "num_replicas") FILTER (WHERE is_active = 1) AS replicated_size
FROM sys.segments
GROUP BY datasource
ORDER BY datasource"#;

const SEGMENTS: &str = r#"WITH s AS (SELECT
"segment_id",
"datasource",
"start",
"end",
"version",
"shard_spec",
"partition_num",
"size",
"num_rows",
CASE WHEN "num_rows" <> 0 THEN ("size" / "num_rows") ELSE 0 END AS "avg_row_size",
"num_replicas",
"replication_factor",
"is_available",
"is_active",
"is_realtime"
FROM sys.segments)
SELECT *
FROM s
ORDER BY "start" DESC, "version" DESC
LIMIT 50"#;

const TASKS: &str = r#"WITH tasks AS (SELECT
  "task_id", "group_id", "type", "datasource", "created_time", "location", "duration", "error_msg",
  CASE WHEN "error_msg" IN ('Shutdown request from user', 'Canceled: Query canceled by user or by task shutdown.') THEN 'CANCELED' WHEN "status" = 'RUNNING' THEN "runner_status" ELSE "status" END AS "status"
  FROM sys.tasks
)
SELECT "task_id", "group_id", "type", "datasource", "created_time", "location", "duration", "error_msg", "status"
FROM tasks
ORDER BY
  (
    CASE "status"
    WHEN 'RUNNING' THEN 4
    WHEN 'PENDING' THEN 3
    WHEN 'WAITING' THEN 2
    ELSE 1
    END
  ) DESC,
  "created_time" DESC"#;

const SERVICES: &str = r#"SELECT
  "server" AS "service",
  "server_type" AS "service_type",
  "tier",
  "host",
  "plaintext_port",
  "tls_port",
  "curr_size",
  "max_size",
  "storage_size",
  CASE WHEN "storage_size" < "max_size" THEN "storage_size" ELSE "max_size" END AS "effective_size",
  "is_leader",
  "start_time",
  "version",
  "build_revision",
  "labels",
  "available_processors",
  "total_memory"
FROM sys.servers
ORDER BY
  (
    CASE "server_type"
    WHEN 'coordinator' THEN 8
    WHEN 'overlord' THEN 7
    WHEN 'router' THEN 6
    WHEN 'broker' THEN 5
    WHEN 'historical' THEN 4
    WHEN 'indexer' THEN 3
    WHEN 'middle_manager' THEN 2
    WHEN 'peon' THEN 1
    ELSE 0
    END
  ) DESC,
  "service" DESC"#;

const SUPERVISORS: &str = r#"WITH s AS (SELECT
  "supervisor_id",
  "datasource",
  "type",
  "source",
  CASE WHEN "suspended" = 0 THEN "detailed_state" ELSE 'SUSPENDED' END AS "detailed_state",
  "spec",
  "suspended" = 1 AS "suspended"
FROM "sys"."supervisors")
SELECT *
FROM s
LIMIT 25"#;

const HOME_SEGMENTS: &str = r#"SELECT
  COUNT(*) AS "active",
  COUNT(*) FILTER (WHERE is_available = 1) AS "cached_on_historical",
  COUNT(*) FILTER (WHERE is_available = 0 AND replication_factor > 0) AS "unavailable",
  COUNT(*) FILTER (WHERE is_realtime = 1) AS "realtime"
FROM sys.segments
WHERE is_active = 1"#;

const HOME_SUPERVISORS: &str = r#"SELECT
  COUNT(*) FILTER (WHERE "suspended" = 0) AS "running",
  COUNT(*) FILTER (WHERE "suspended" = 1) AS "suspended"
FROM sys.supervisors"#;

const HOME_TASKS: &str = r#"SELECT
  CASE WHEN "status" = 'RUNNING' THEN "runner_status" ELSE "status" END AS "status",
  COUNT(*) AS "count"
FROM sys.tasks
GROUP BY 1"#;

#[tokio::test]
async fn serves_a_console_build_at_the_root() {
    let dir = tempfile::tempdir().unwrap();
    // The layout of a Druid distribution's web-console folder.
    let console = dir.path().join("web-console");
    std::fs::create_dir_all(console.join("public")).unwrap();
    std::fs::create_dir_all(console.join("assets")).unwrap();
    std::fs::write(console.join("unified-console.html"), "<html>console</html>").unwrap();
    std::fs::write(
        console.join("console-config.js"),
        "window.consoleConfig = {};",
    )
    .unwrap();
    std::fs::write(console.join("public/web-console-39.0.0.js"), "/* app */").unwrap();
    std::fs::write(console.join("assets/logo.svg"), "<svg/>").unwrap();
    std::fs::write(console.join("favicon.png"), [0x89, b'P', b'N', b'G']).unwrap();
    let data = dir.path().join("data");
    let served = console.clone();
    let server = TestServer::spawn(&data, move |c| c.web_console = Some(served)).await;
    let get = |path: &str| {
        let url = format!("{}{path}", server.base);
        let client = server.client.clone();
        async move {
            let r = client.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            let ct = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            (status, ct, r.bytes().await.unwrap().to_vec())
        }
    };
    let (code, ct, body) = get("/").await;
    assert_eq!(
        (code, body.as_slice()),
        (200, b"<html>console</html>".as_slice())
    );
    assert!(ct.starts_with("text/html"), "{ct}");
    for (path, content) in [
        ("/unified-console.html", b"<html>console</html>".as_slice()),
        (
            "/console-config.js",
            b"window.consoleConfig = {};".as_slice(),
        ),
        ("/public/web-console-39.0.0.js", b"/* app */".as_slice()),
        ("/assets/logo.svg", b"<svg/>".as_slice()),
        ("/favicon.png", [0x89, b'P', b'N', b'G'].as_slice()),
    ] {
        let (code, _, body) = get(path).await;
        assert_eq!((code, body.as_slice()), (200, content), "{path}");
    }
    // The API on the same origin, and Druid's JSON 404 for anything else.
    let (code, _, body) = get("/druid/v2/sql/task/enabled").await;
    assert_eq!(
        (code, body.as_slice()),
        (200, br#"{"enabled":true}"#.as_slice())
    );
    let (code, ct, _) = get("/nope/missing.js").await;
    assert_eq!(code, 404);
    assert!(ct.starts_with("application/json"), "{ct}");
    let (code, _, _) = get("/proxy/enabled").await;
    assert_eq!(code, 404);
    server.stop().await;

    // Without a console, `/` says how to get one.
    let server = TestServer::spawn(&dir.path().join("data2"), |_| {}).await;
    let r = server.client.get(&server.base).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("--web-console"), "{text}");
    server.stop().await;

    // A folder that is not a console build is refused at startup.
    let config = grove_server::ServerConfig {
        port: 0,
        data_dir: dir.path().join("data3"),
        web_console: Some(dir.path().join("data")),
        ..Default::default()
    };
    let err = grove_server::serve(config, async {}, |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unified-console.html"), "{err}");
}
