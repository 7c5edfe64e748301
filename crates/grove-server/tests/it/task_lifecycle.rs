//! Slots, locks, cancellation, concurrency, lists, and durability across a SIGKILL.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{StalledInput, TestServer, files_under, ingest_http_sql, inline};

#[tokio::test]
async fn twenty_concurrent_inserts_lose_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), |c| c.task_slots = 4).await;
    let mut ids = Vec::new();
    for t in 0..20i64 {
        let rows: Vec<(String, String, i64)> = (0..10)
            .map(|i| {
                (
                    format!("2015-09-1{}T00:00:0{i}Z", 2 + t % 3),
                    format!("t{t}"),
                    t * 10 + i,
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO c SELECT TIME_PARSE(ts) AS __time, page, n FROM {} PARTITIONED BY DAY",
            inline(&rows)
        );
        ids.push(server.submit(&sql, json!({})).await);
    }
    for id in &ids {
        let s = server.wait_terminal(id).await;
        assert_eq!(s["statusCode"], "SUCCESS", "{s}");
    }
    let r = server
        .select("SELECT COUNT(*), COUNT(DISTINCT n), SUM(n) FROM c")
        .await;
    assert_eq!(r, vec![json!([200, 200, (0..200).sum::<i64>()])]);
    // Filters of the task list.
    let (_, all) = server.get("/druid/indexer/v1/tasks?datasource=c").await;
    assert_eq!(all.as_array().unwrap().len(), 20);
    let (_, two) = server
        .get("/druid/indexer/v1/tasks?state=complete&max=2")
        .await;
    assert_eq!(two.as_array().unwrap().len(), 2);
    let (_, none) = server
        .get("/druid/indexer/v1/tasks?createdTimeInterval=2000-01-01_2000-01-02")
        .await;
    assert_eq!(none, json!([]));
    let (_, complete) = server.get("/druid/indexer/v1/completeTasks").await;
    assert_eq!(complete.as_array().unwrap().len(), 21);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_cancels_promptly_and_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // The input stalls after its first rows, so the ingest is running when the shutdown
    // arrives.
    let input = StalledInput::start(200_000).await;
    let data = dir.path().join("data");
    let server = TestServer::spawn(&data, |c| c.task_slots = 1).await;
    let id = server
        .submit(&ingest_http_sql("big", &input.uri), json!({}))
        .await;
    // A second task waits for the only slot.
    let queued = server.submit("SELECT 1", json!({})).await;
    // Wait until rows flow, then check the live report and the waiting list.
    let start = Instant::now();
    loop {
        let r = server.report(&id).await;
        let rows = &r["multiStageQuery"]["payload"]["counters"]["0"]["0"]["input0"]["rows"][0];
        if rows.as_u64().unwrap_or(0) > 0 {
            assert_eq!(
                r["multiStageQuery"]["payload"]["status"]["status"],
                "RUNNING"
            );
            assert_eq!(
                r["multiStageQuery"]["payload"]["status"]["durationMs"]
                    .as_i64()
                    .map(|d| d >= 0),
                Some(true)
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no progress: {r}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, running) = server.get("/druid/indexer/v1/runningTasks").await;
    assert_eq!(running[0]["id"], json!(id));
    assert_eq!(running[0]["runnerStatusCode"], "RUNNING");
    assert_eq!(running[0]["duration"], -1);
    let (_, waiting) = server.get("/druid/indexer/v1/waitingTasks").await;
    assert_eq!(waiting[0]["id"], json!(queued));
    assert_eq!(server.status(&queued).await["runnerStatusCode"], "WAITING");

    let asked = Instant::now();
    let (code, body) = server
        .post(&format!("/druid/indexer/v1/task/{id}/shutdown"), json!({}))
        .await;
    assert_eq!((code, body), (200, json!({"task": id})));
    let s = server.wait_terminal(&id).await;
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "took {:?}",
        asked.elapsed()
    );
    assert_eq!(s["statusCode"], "FAILED");
    // Druid's Overlord text, which the web console shows as CANCELED.
    assert_eq!(s["errorMsg"], "Shutdown request from user", "{s}");
    let r = server.report(&id).await;
    assert_eq!(
        r["multiStageQuery"]["payload"]["status"]["errorReport"]["error"],
        json!({"errorCode": "Canceled", "errorMessage": "Query canceled due to [TASK_SHUTDOWN].", "reason": "TASK_SHUTDOWN"})
    );
    assert_eq!(server.wait_terminal(&queued).await["statusCode"], "SUCCESS");
    // The canceled reader let go of the stalled connection.
    input.wait_closed().await;
    assert!(files_under(&data.join("segments")).is_empty());
    let (code, body) = server
        .post(
            "/druid/v2/sql/task",
            json!({"query": "SELECT COUNT(*) FROM big"}),
        )
        .await;
    assert_eq!(
        code, 400,
        "nothing was published, so there is no table: {body}"
    );
    assert!(
        body["error"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("not found")
    );
    server.stop().await;
}

#[tokio::test]
async fn replace_waits_for_the_lock_then_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let input = StalledInput::start(1_000).await;
    let server = TestServer::spawn(&dir.path().join("data"), |c| {
        c.task_slots = 2;
        c.lock_timeout_ms = 300;
    })
    .await;
    let insert = server
        .submit(&ingest_http_sql("l", &input.uri), json!({}))
        .await;
    server
        .wait_until(
            &insert,
            |s| s["runnerStatusCode"] == "RUNNING",
            Duration::from_secs(30),
        )
        .await;
    let replace = server
        .submit(
            &format!(
                "REPLACE INTO l OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, page, n FROM {} PARTITIONED BY DAY",
                inline(&[("2015-09-12T00:00:00Z".into(), "x".into(), 1)])
            ),
            json!({}),
        )
        .await;
    let s = server.wait_terminal(&replace).await;
    assert_eq!(s["statusCode"], "FAILED");
    assert!(
        s["errorMsg"]
            .as_str()
            .unwrap()
            .starts_with("InsertLockPreempted"),
        "{s}"
    );
    // An INSERT into the same datasource shares the lock and is not blocked.
    let other = server
        .submit(
            &format!(
                "INSERT INTO l SELECT TIME_PARSE(ts) AS __time, page, n FROM {} PARTITIONED BY DAY",
                inline(&[("2015-09-12T00:00:00Z".into(), "x".into(), 1)])
            ),
            json!({}),
        )
        .await;
    assert_eq!(server.wait_terminal(&other).await["statusCode"], "SUCCESS");
    // The INSERT that held the lock all along finishes once its input does.
    input.release();
    assert_eq!(server.wait_terminal(&insert).await["statusCode"], "SUCCESS");
    assert_eq!(
        server.select("SELECT COUNT(*) FROM l").await,
        vec![json!([1_001])]
    );
    server.stop().await;
}

/// Starts the real binary as `grove serve <args>`; returns the child and its base URL.
async fn spawn_grove(args: &[&std::ffi::OsStr]) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_grove"))
        .arg("serve")
        .arg("--allow-local-dir")
        .arg(std::env::temp_dir())
        .args(["--allow-host", "127.0.0.1"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        line
    })
    .await
    .unwrap();
    let base = line
        .trim()
        .trim_start_matches("grove listening on ")
        .to_string();
    assert!(base.starts_with("http://"), "unexpected first line: {line}");
    (child, base)
}

async fn spawn_binary(data_dir: &std::path::Path) -> (std::process::Child, String) {
    spawn_grove(&[
        "--port".as_ref(),
        "0".as_ref(),
        "--data-dir".as_ref(),
        data_dir.as_os_str(),
    ])
    .await
}

#[tokio::test]
async fn tasks_survive_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let input = StalledInput::start(200_000).await;
    let data = dir.path().join("data");
    let client = reqwest::Client::new();

    let (mut child, base) = spawn_binary(&data).await;
    let submit = |sql: String| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let r: serde_json::Value = client
                .post(format!("{base}/druid/v2/sql/task"))
                .json(&json!({"query": sql}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            r["taskId"].as_str().unwrap().to_string()
        }
    };
    let done = submit(format!(
        "INSERT INTO k SELECT TIME_PARSE(ts) AS __time, page, n FROM {} PARTITIONED BY DAY",
        inline(&[("2015-09-12T00:00:00Z".into(), "x".into(), 1)])
    ))
    .await;
    let killed = submit(ingest_http_sql("k", &input.uri)).await;
    // Wait until the stalled ingest has read rows, then kill -9.
    let start = Instant::now();
    loop {
        let r: serde_json::Value = client
            .get(format!("{base}/druid/indexer/v1/task/{killed}/reports"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or_default();
        let rows = r["multiStageQuery"]["payload"]["counters"]["0"]["0"]["input0"]["rows"][0]
            .as_u64()
            .unwrap_or(0);
        if rows > 100_000 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let server = TestServer::spawn(&data, |_| {}).await;
    let s = server.status(&killed).await;
    assert_eq!(s["statusCode"], "FAILED");
    assert!(
        s["errorMsg"].as_str().unwrap().contains("server stopped"),
        "{s}"
    );
    let st = &server.report(&killed).await["multiStageQuery"]["payload"]["status"];
    assert_eq!(st["status"], "FAILED");
    let (code, payload) = server
        .get(&format!("/druid/indexer/v1/task/{killed}"))
        .await;
    assert_eq!(code, 200);
    assert_eq!(payload["payload"]["dataSource"], "k");
    assert_eq!(server.status(&done).await["statusCode"], "SUCCESS");
    // Only the small INSERT is visible, and only its file remains.
    assert_eq!(
        server.select("SELECT COUNT(*) FROM k").await,
        vec![json!([1])]
    );
    let files = files_under(&data.join("segments"));
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].to_string_lossy().contains(&done));
    server.stop().await;
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly_and_config_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("grove.toml");
    std::fs::write(
        &config,
        format!(
            "port = 0\ntask_slots = 2\ndata_dir = \"{}\"\n",
            data.display()
        ),
    )
    .unwrap();
    let (mut child, base) = spawn_grove(&["--config".as_ref(), config.as_os_str()]).await;
    let health = reqwest::get(format!("{base}/status/health")).await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    assert!(
        data.join("metadata.db").exists(),
        "data_dir from the config file"
    );
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A bad config file is refused with a clear message.
    std::fs::write(&config, "port = \"x\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_grove"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid config file"));
}

/// Druid's `timeout` context: a task still running past it is canceled (`Canceled`, reason
/// `QUERY_TIMEOUT`) and publishes nothing; a synchronous query past it gets Druid's 504;
/// a query within it runs; a negative one is refused.
#[tokio::test]
async fn the_timeout_context_cancels_with_query_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let input = StalledInput::start(1_000).await;
    let data = dir.path().join("data");
    let server = TestServer::spawn(&data, |_| {}).await;
    let id = server
        .submit(&ingest_http_sql("t", &input.uri), json!({"timeout": 300}))
        .await;
    let s = server.wait_terminal(&id).await;
    assert_eq!(s["statusCode"], "FAILED", "{s}");
    assert_eq!(
        s["errorMsg"], "Canceled: Query canceled due to [QUERY_TIMEOUT].",
        "{s}"
    );
    let report = server.report(&id).await;
    let error = &report["multiStageQuery"]["payload"]["status"]["errorReport"]["error"];
    assert_eq!(error["errorCode"], "Canceled", "{report}");
    assert_eq!(error["reason"], "QUERY_TIMEOUT", "{report}");
    input.wait_closed().await;
    let (_, datasources) = server
        .get("/druid/coordinator/v1/metadata/datasources")
        .await;
    assert_eq!(datasources, json!([]), "nothing published");
    assert!(
        files_under(&data.join("segments"))
            .iter()
            .all(|f| f.extension().is_none_or(|e| e != "parquet")),
        "no segment file left"
    );

    let slow = format!(
        r#"SELECT COUNT(*) FROM TABLE(EXTERN('{{"type":"http","uris":["{}"]}}', '{{"type":"json"}}')) EXTEND (ts VARCHAR, page VARCHAR, n BIGINT)"#,
        input.uri
    );
    let (code, body) = server
        .post(
            "/druid/v2/sql",
            json!({"query": slow, "context": {"timeout": 300, "sqlQueryId": "slow-1"}}),
        )
        .await;
    assert_eq!(code, 504, "{body}");
    assert_eq!(
        body,
        json!({
            "error": "Query timeout",
            "errorCode": "legacyQueryException",
            "persona": "OPERATOR",
            "category": "TIMEOUT",
            "errorMessage": "Query [slow-1] timed out.",
            "context": {
                "host": null,
                "errorClass": "org.apache.druid.query.QueryTimeoutException",
                "legacyErrorCode": "Query timeout"
            }
        })
    );
    let (code, body) = server
        .post(
            "/druid/v2/sql",
            json!({"query": "SELECT 1 AS one", "context": {"timeout": 60000}}),
        )
        .await;
    assert_eq!((code, body), (200, json!([{"one": 1}])));
    let (code, body) = server
        .post(
            "/druid/v2/sql/task",
            json!({"query": "SELECT 1", "context": {"timeout": -1}}),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body.to_string().contains("timeout must be a non-negative"),
        "{body}"
    );
    input.release();
    server.stop().await;
}

/// The task queue has a capacity (`task_queue_size`): a submission beyond it gets 429
/// with Druid's error and creates nothing; once a task ends there is room again.
#[tokio::test]
async fn a_full_task_queue_answers_429() {
    let dir = tempfile::tempdir().unwrap();
    let input = StalledInput::start(1_000).await;
    let server = TestServer::spawn(&dir.path().join("data"), |c| c.task_queue_size = 1).await;
    let first = server
        .submit(&ingest_http_sql("q", &input.uri), json!({}))
        .await;
    let message = "Too many tasks are in the queue (Limit = 1), (Current active tasks = 1). \
                   Retry later or increase task_queue_size (--task-queue-size)";
    let (code, body) = server
        .post(
            "/druid/v2/sql/task",
            json!({"query": "SELECT 1", "context": {"sqlQueryId": "refused"}}),
        )
        .await;
    assert_eq!(code, 429, "{body}");
    assert_eq!(body["taskId"], "refused", "{body}");
    assert_eq!(body["state"], "FAILED", "{body}");
    let error = &body["error"];
    assert_eq!(error["error"], "druidException");
    assert_eq!(error["errorCode"], "general");
    assert_eq!(error["persona"], "ADMIN");
    assert_eq!(error["category"], "CAPACITY_EXCEEDED");
    assert_eq!(error["errorMessage"], message);
    let (code, body) = server
        .post(
            "/druid/v2/sql/statements",
            json!({"query": "SELECT 1", "context": {"executionMode": "ASYNC"}}),
        )
        .await;
    assert_eq!(code, 429, "{body}");
    assert_eq!(body["errorMessage"], message, "{body}");
    let (_, tasks) = server.get("/druid/indexer/v1/tasks").await;
    assert_eq!(tasks.as_array().unwrap().len(), 1, "{tasks}");
    input.release();
    assert_eq!(server.wait_terminal(&first).await["statusCode"], "SUCCESS");
    let again = server.submit("SELECT 1", json!({})).await;
    assert_eq!(server.wait_terminal(&again).await["statusCode"], "SUCCESS");
    server.stop().await;
}
