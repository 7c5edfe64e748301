//! Each endpoint, field by field, and each kind of bad request.

use serde_json::{Value, json};

use crate::support::{TestServer, inline};

fn rows(n: i64) -> Vec<(String, String, i64)> {
    (0..n)
        .map(|i| {
            (
                format!("2015-09-12T0{}:00:00Z", i % 10),
                format!("p{}", i % 3),
                i,
            )
        })
        .collect()
}

#[tokio::test]
async fn ingest_task_endpoints_have_druid_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), |_| {}).await;
    let sql = format!(
        "REPLACE INTO wiki OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, page, n FROM {} PARTITIONED BY DAY CLUSTERED BY page",
        inline(&rows(10))
    );
    let id = server
        .submit(&sql, json!({"maxNumTasks": 3, "sqlQueryId": "abc-1"}))
        .await;
    assert_eq!(id, "query-abc-1");
    let status = server.wait_terminal(&id).await;
    for (k, v) in [
        ("id", json!(id)),
        ("groupId", json!(id)),
        ("type", json!("query_controller")),
        ("statusCode", json!("SUCCESS")),
        ("status", json!("SUCCESS")),
        ("runnerStatusCode", json!("NONE")),
        ("queueInsertionTime", json!("1970-01-01T00:00:00.000Z")),
        ("dataSource", json!("wiki")),
        ("errorMsg", json!(null)),
        ("location", json!({"host": null, "port": -1, "tlsPort": -1})),
    ] {
        assert_eq!(status[k], v, "status field {k}: {status}");
    }
    assert!(status["createdTime"].as_str().unwrap().ends_with('Z'));
    assert!(status["duration"].as_i64().unwrap() >= 0);

    let (code, payload) = server.get(&format!("/druid/indexer/v1/task/{id}")).await;
    assert_eq!(code, 200);
    assert_eq!(payload["task"], json!(id));
    let p = &payload["payload"];
    assert_eq!(p["type"], "query_controller");
    assert_eq!(p["id"], json!(id));
    assert_eq!(p["groupId"], json!(id));
    assert_eq!(p["dataSource"], "wiki");
    assert_eq!(p["sqlQuery"], json!(sql));
    assert_eq!(p["sqlQueryContext"]["maxNumTasks"], 3);
    assert_eq!(p["sqlQueryContext"]["sqlQueryId"], "abc-1");
    assert_eq!(p["sqlTypeNames"], json!(["TIMESTAMP", "VARCHAR", "BIGINT"]));
    assert_eq!(p["resource"]["availabilityGroup"], json!(id));
    assert_eq!(p["resource"]["requiredCapacity"], 1);
    let spec = &p["spec"];
    assert_eq!(spec["assignmentStrategy"], "max");
    assert_eq!(spec["destination"]["type"], "dataSource");
    assert_eq!(spec["destination"]["dataSource"], "wiki");
    assert_eq!(
        spec["destination"]["replaceTimeChunks"],
        json!(["-146136543-09-08T08:23:32.096Z/146140482-04-24T15:36:27.903Z"])
    );
    assert_eq!(
        spec["columnMappings"][1],
        json!({"queryColumn": "page", "outputColumn": "page"})
    );
    assert_eq!(spec["tuningConfig"]["rowsPerSegment"], 3_000_000);
    // The query is Grove's own plan: the ingest node over the SELECT.
    assert_eq!(spec["query"]["queryType"], "grove");
    let plan = spec["query"]["logicalPlan"][0].as_str().unwrap();
    assert!(
        plan.starts_with("GroveIngest: REPLACE INTO wiki OVERWRITE ALL, PARTITIONED BY DAY"),
        "{plan}"
    );

    let report = server.report(&id).await;
    let mq = &report["multiStageQuery"];
    assert_eq!(mq["type"], "multiStageQuery");
    assert_eq!(mq["taskId"], json!(id));
    let st = &mq["payload"]["status"];
    assert_eq!(st["status"], "SUCCESS");
    assert!(st["startTime"].is_string());
    assert!(st["durationMs"].as_i64().unwrap() >= 0);
    assert_eq!(st["pendingTasks"], 0);
    assert_eq!(st["runningTasks"], 0);
    // Both workers, each with its attempt.
    assert_eq!(
        st["workers"]["1"][0]["workerId"],
        json!(format!("{id}-worker1_0"))
    );
    assert_eq!(st["workers"]["0"][0]["state"], "SUCCESS");
    assert_eq!(st["workers"].as_object().unwrap().len(), 2);
    assert!(st.get("errorReport").is_none());
    assert_eq!(st["segmentReport"]["shardSpec"], "DimensionRangeShardSpec");
    let stages = mq["payload"]["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[0]["stageNumber"], 0);
    assert_eq!(stages[0]["phase"], "FINISHED");
    assert_eq!(stages[0]["sort"], true);
    let def0 = &stages[0]["definition"];
    assert_eq!(def0["id"], "abc-1_0");
    assert_eq!(def0["input"][0]["type"], "external");
    assert_eq!(def0["input"][0]["inputSource"]["type"], "inline");
    assert_eq!(def0["input"][0]["inputFormat"]["type"], "json");
    assert_eq!(def0["processor"]["type"], "scan");
    assert_eq!(
        def0["shuffleSpec"]["clusterBy"]["columns"][1]["columnName"],
        "page"
    );
    // maxNumTasks 3: the controller and two workers.
    assert_eq!(def0["maxWorkerCount"], 2);
    assert_eq!(
        stages[1]["definition"]["processor"]["type"],
        "segmentGenerator"
    );
    assert_eq!(
        stages[1]["definition"]["input"][0],
        json!({"type": "stage", "stage": 0})
    );
    assert_eq!(stages[1]["phase"], "FINISHED");
    // Counters per stage and worker: the two workers' figures add up.
    let c = &mq["payload"]["counters"];
    let total = |stage: &str, counter: &str, field: &str| -> u64 {
        c[stage]
            .as_object()
            .unwrap()
            .values()
            .map(|w| match &w[counter][field] {
                Value::Array(a) => a[0].as_u64().unwrap(),
                v => v.as_u64().unwrap_or(0),
            })
            .sum()
    };
    assert_eq!(total("0", "input0", "rows"), 10);
    assert_eq!(total("0", "input0", "files"), 1);
    assert_eq!(total("0", "input0", "totalFiles"), 1);
    assert!(total("0", "input0", "bytes") > 0);
    assert_eq!(total("0", "output", "rows"), 10);
    assert_eq!(total("1", "input0", "rows"), 10);
    assert_eq!(total("1", "output", "rows"), 10);
    assert_eq!(total("1", "output", "frames"), 1, "one segment file");
    for field in ["rowsProcessed", "rowsPersisted", "rowsMerged", "rowsPushed"] {
        assert_eq!(
            total("1", "segmentGenerationProgress", field),
            10,
            "{field}"
        );
    }
    let sort = &c["1"]
        .as_object()
        .unwrap()
        .values()
        .find(|w| w.get("sortProgress").is_some())
        .unwrap()["sortProgress"];
    assert_eq!(sort["type"], "sortProgress");
    assert_eq!(sort["progressDigest"], 1.0);
    assert_eq!(sort["totalMergingLevels"], 1);

    // The same report through the /report alias, and the data through a SELECT task.
    let (code, alias) = server
        .get(&format!("/druid/indexer/v1/task/{id}/report"))
        .await;
    assert_eq!(code, 200);
    assert_eq!(alias, report);
    let results = server
        .select("SELECT COUNT(*) AS c, SUM(n) AS s FROM wiki")
        .await;
    assert_eq!(results, vec![json!([10, 45])]);
    server.stop().await;
}

#[tokio::test]
async fn select_task_results_and_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), |_| {}).await;
    let id = server
        .submit(
            "SELECT TIMESTAMP '2015-09-12 00:00:00' AS t, 'x' AS s, 1.5 AS d, 7 AS n",
            json!({}),
        )
        .await;
    assert_eq!(
        server.wait_terminal(&id).await["dataSource"],
        "__query_select"
    );
    let r = &server.report(&id).await["multiStageQuery"]["payload"]["results"];
    assert_eq!(r["results"], json!([[1442016000000i64, "x", 1.5, 7]]));
    assert_eq!(
        r["sqlTypeNames"],
        json!(["TIMESTAMP", "VARCHAR", "DOUBLE", "BIGINT"])
    );
    assert_eq!(r["signature"][1], json!({"name": "s", "type": "STRING"}));
    assert_eq!(r["resultsTruncated"], false);

    let id = server
        .submit("SELECT * FROM generate_series(1, 5000) AS t(v)", json!({}))
        .await;
    server.wait_terminal(&id).await;
    let r = &server.report(&id).await["multiStageQuery"]["payload"]["results"];
    assert_eq!(r["results"].as_array().unwrap().len(), 3000);
    assert_eq!(r["resultsTruncated"], true);
    server.stop().await;
}

#[tokio::test]
async fn failed_task_reports_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), |_| {}).await;
    let mut data = rows(3);
    data.push(("not a time".into(), "p".into(), 1));
    let id = server
        .submit(
            &format!(
                "INSERT INTO w SELECT TIME_PARSE(ts) AS __time, page, n FROM {} PARTITIONED BY DAY",
                inline(&data)
            ),
            json!({}),
        )
        .await;
    let s = server.wait_terminal(&id).await;
    assert_eq!(s["statusCode"], "FAILED");
    assert!(
        s["errorMsg"]
            .as_str()
            .unwrap()
            .starts_with("InsertTimeNull: "),
        "{s}"
    );
    let st = &server.report(&id).await["multiStageQuery"]["payload"]["status"];
    assert_eq!(st["status"], "FAILED");
    assert_eq!(st["errorReport"]["error"]["errorCode"], "InsertTimeNull");
    assert_eq!(st["errorReport"]["taskId"], json!(id));

    // A fault found while planning still makes a failed task, as in Druid.
    let id = server
        .submit(
            "INSERT INTO w SELECT 1 AS __bucket PARTITIONED BY ALL",
            json!({}),
        )
        .await;
    let s = server.wait_terminal(&id).await;
    assert_eq!(s["statusCode"], "FAILED");
    assert!(
        s["errorMsg"]
            .as_str()
            .unwrap()
            .starts_with("ColumnNameRestricted")
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_requests_get_druid_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), |c| c.max_body_bytes = 64 * 1024).await;
    let task = "/druid/v2/sql/task";
    let check_invalid = |code: u16, body: &serde_json::Value, needle: &str| {
        assert_eq!(code, 400, "{body}");
        assert_eq!(body["state"], "FAILED");
        let e = &body["error"];
        assert_eq!(e["error"], "druidException");
        assert_eq!(e["errorCode"], "invalidInput");
        assert_eq!(e["category"], "INVALID_INPUT");
        assert_eq!(e["persona"], "USER");
        assert!(e["errorMessage"].as_str().unwrap().contains(needle), "{e}");
    };
    let (c, b) = server.post_raw(task, "{not json").await;
    check_invalid(c, &b, "Malformed JSON");
    let (c, b) = server.post(task, json!({"context": {}})).await;
    check_invalid(c, &b, "Missing or empty [query]");
    let (c, b) = server.post(task, json!({"query": 42})).await;
    check_invalid(c, &b, "[query] must be a string");
    let (c, b) = server
        .post(task, json!({"query": "SELECT 1", "context": "x"}))
        .await;
    check_invalid(c, &b, "[context] must be a JSON object");
    let (c, b) = server
        .post(
            task,
            json!({"query": "SELECT 1", "context": {"rowsPerSegment": "ten"}}),
        )
        .await;
    check_invalid(c, &b, "Expected key [rowsPerSegment] to be a number");
    let (c, b) = server
        .post(
            task,
            json!({"query": "SELECT 1", "context": {"sqlQueryId": "q1", "maxNumTasks": 1}}),
        )
        .await;
    check_invalid(c, &b, "maxNumTasks");
    assert_eq!(b["taskId"], "q1");
    let (c, b) = server
        .post(task, json!({"query": "INSERT INTO w SELECT 1 AS x"}))
        .await;
    check_invalid(c, &b, "requires a PARTITIONED BY to be explicitly defined");
    let (c, b) = server.post(task, json!({"query": "SELEC 1"})).await;
    check_invalid(c, &b, "SELEC");
    let (c, b) = server
        .post(task, json!({"query": "SELECT * FROM TABLE(EXTERN('{\"type\":\"hdfs\",\"paths\":[\"/x\"]}', '{\"type\":\"json\"}', '[{\"name\":\"a\",\"type\":\"string\"}]'))"}))
        .await;
    assert_eq!(c, 501, "{b}");
    assert_eq!(b["error"]["category"], "UNSUPPORTED");
    let big = json!({"query": format!("SELECT '{}'", "x".repeat(100_000))});
    let (c, b) = server.post(task, big).await;
    assert_eq!(c, 413, "{b}");
    assert_eq!(b["error"]["error"], "druidException");

    for path in ["", "/status", "/reports"] {
        let (c, _) = server
            .get(&format!("/druid/indexer/v1/task/query-nope{path}"))
            .await;
        assert_eq!(c, 404, "{path}");
    }
    let (c, b) = server.get("/druid/indexer/v1/task/query-nope").await;
    assert_eq!(b, json!({"task": "query-nope", "payload": null}), "{c}");
    let (_, b) = server.get("/druid/indexer/v1/task/query-nope/status").await;
    assert_eq!(b, json!({"task": "query-nope", "status": null}));
    let (c, _) = server
        .post("/druid/indexer/v1/task/query-nope/shutdown", json!({}))
        .await;
    assert_eq!(c, 404);
    let (c, b) = server.get("/druid/indexer/v1/tasks?state=bogus").await;
    assert_eq!(c, 400);
    assert!(b.as_str().unwrap().starts_with("Invalid task state[bogus]"));
    let (c, _) = server.get("/druid/no/such/path").await;
    assert_eq!(c, 404);

    // The server still serves after all that.
    assert_eq!(server.get("/status/health").await, (200, json!(true)));
    let (c, s) = server.get("/status").await;
    assert_eq!(c, 200);
    assert!(s["modules"][0]["artifact"] == "druid-multi-stage-query");
    assert_eq!(
        server.get("/druid/v2/sql/task/enabled").await,
        (200, json!({"enabled": true}))
    );
    server.stop().await;
}

/// Datasource names and `sqlQueryId`s follow Druid's rules for ids, with its messages:
/// refused at submission, before any task, file or result exists. A name with `%`, `[`,
/// `#` or `?` is fine, and its files are named with it encoded once.
#[tokio::test]
async fn names_follow_druids_rules() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), |_| {}).await;
    let insert = |table: &str| {
        format!(
            "INSERT INTO \"{table}\" SELECT TIMESTAMP '2016-06-27 00:00:00' AS __time, 'a' AS page PARTITIONED BY DAY"
        )
    };
    for (table, message) in [
        (
            "in/valid",
            "Invalid value for field [table]: Value [in/valid] cannot contain '/'.",
        ),
        (".hidden", "dataSource cannot start with the '.' character."),
        (
            "tab\tbed",
            "dataSource cannot contain whitespace character except space.",
        ),
        (
            "bell\u{7}",
            "dataSource cannot contain character #7 (at position 4).",
        ),
    ] {
        for endpoint in ["/druid/v2/sql/task", "/druid/v2/sql"] {
            let (code, body) = server.post(endpoint, json!({"query": insert(table)})).await;
            assert_eq!(code, 400, "{table} {endpoint}: {body}");
            let got = body["error"]["errorMessage"]
                .as_str()
                .or(body["errorMessage"].as_str())
                .unwrap_or_default();
            assert_eq!(got, message, "{endpoint}: {body}");
        }
    }
    for (id, message) in [
        (
            "../escape",
            "sqlQueryId cannot start with the '.' character.",
        ),
        ("a/b", "sqlQueryId cannot contain the '/' character."),
        (
            "new\nline",
            "sqlQueryId cannot contain whitespace character except space.",
        ),
    ] {
        for (endpoint, query) in [
            ("/druid/v2/sql/task", insert("ok")),
            ("/druid/v2/sql/task", "SELECT 1".to_string()),
            ("/druid/v2/sql", "SELECT 1".to_string()),
            ("/druid/v2/sql/statements", "SELECT 1".to_string()),
        ] {
            let (code, body) = server
                .post(
                    endpoint,
                    json!({"query": query, "context": {"sqlQueryId": id}}),
                )
                .await;
            assert_eq!(code, 400, "{id} {endpoint}: {body}");
            assert!(body.to_string().contains(message), "{endpoint}: {body}");
        }
    }
    let (_, tasks) = server.get("/druid/indexer/v1/tasks").await;
    assert_eq!(tasks, json!([]), "no task was created");
    assert!(
        crate::support::files_under(&dir.path().join("segments")).is_empty(),
        "no file was written"
    );

    // Characters that are special in URLs are fine in a name. Its folder in deep storage
    // is the name percent-encoded once (object_store's path encoding), the segment's
    // loadSpec names that very file, and the datasource reads back.
    let name = "a%b[c]#d?e";
    let id = server.submit(&insert(name), json!({})).await;
    let status = server.wait_terminal(&id).await;
    assert_eq!(status["statusCode"], "SUCCESS", "{status}");
    let files = crate::support::files_under(&dir.path().join("segments"));
    let [file] = files.as_slice() else {
        panic!("one segment file: {files:?}");
    };
    let relative = file.strip_prefix(dir.path().join("segments")).unwrap();
    let folder = relative.components().next().unwrap().as_os_str();
    assert_eq!(folder, "a%25b%5Bc%5D%23d%3Fe", "{files:?}");
    let (code, segments) = server
        .get("/druid/coordinator/v1/metadata/datasources/a%25b%5Bc%5D%23d%3Fe/segments?full")
        .await;
    assert_eq!(code, 200, "{segments}");
    assert_eq!(segments[0]["dataSource"], name);
    assert_eq!(
        segments[0]["loadSpec"]["path"],
        file.canonicalize().unwrap().display().to_string()
    );
    let rows = server
        .select(&format!("SELECT COUNT(*) FROM \"{name}\""))
        .await;
    assert_eq!(rows[0][0], 1);
    server.stop().await;
}

#[tokio::test]
async fn tolerated_parse_errors_are_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), |_| {}).await;
    let sql = r#"INSERT INTO w SELECT TIME_PARSE(ts) AS __time, n FROM TABLE(EXTERN('{"type":"inline","data":"{\"ts\":\"2015-09-12\",\"n\":1}\n{\"ts\": oops\n{\"ts\":\"2015-09-12\",\"n\":\"x\"}\n{\"ts\":\"2015-09-12\",\"n\":4}"}', '{"type":"json"}', '[{"name":"ts","type":"string"},{"name":"n","type":"long"}]')) PARTITIONED BY DAY"#;
    let id = server.submit(sql, json!({"maxParseExceptions": 5})).await;
    assert_eq!(server.wait_terminal(&id).await["statusCode"], "SUCCESS");
    let p = &server.report(&id).await["multiStageQuery"]["payload"];
    assert_eq!(
        p["counters"]["0"]["0"]["warnings"],
        json!({"type": "warnings", "CannotParseExternalData": 2})
    );
    let w = p["status"]["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 2);
    assert_eq!(w[0]["error"]["errorCode"], "CannotParseExternalData");
    assert!(
        w[0]["error"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Line: 2"),
        "{w:?}"
    );
    assert_eq!(
        server.select("SELECT SUM(n) FROM w").await,
        vec![json!([5])]
    );
    let id = server.submit(sql, json!({"maxParseExceptions": 1})).await;
    let s = server.wait_terminal(&id).await;
    assert!(
        s["errorMsg"]
            .as_str()
            .unwrap()
            .starts_with("TooManyWarnings"),
        "{s}"
    );
    server.stop().await;
}
