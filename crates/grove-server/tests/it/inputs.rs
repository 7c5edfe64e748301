//! The seed page's submit example (an `http` input of gzipped Wikipedia JSON) against a
//! real file server on loopback, posted as the seed's curl and raw-body forms; and the
//! server's input guard rails, refused at submission with Druid's error JSON.

use std::io::Write;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::support::TestServer;

/// The seed's `POST /druid/v2/sql/task` body, verbatim except for its data URI.
const SEED_SUBMIT: &str = include_str!("seed_submit.json");
/// The seed's Python submit example, verbatim except for Grove's URL and the data URI.
const SEED_SUBMIT_PY: &str = include_str!("seed_submit.py");

/// Serves `bytes` at `/data/wikipedia.json.gz` on an ephemeral loopback port.
async fn data_server(bytes: Vec<u8>) -> SocketAddr {
    let bytes = Arc::new(bytes);
    let app = axum::Router::new().route(
        "/data/wikipedia.json.gz",
        axum::routing::get(move || {
            let bytes = Arc::clone(&bytes);
            async move { bytes.as_ref().clone() }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// `n` rows with the Wikipedia tutorial's 24 columns, gzipped.
fn wikipedia_gz(n: usize) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for i in 0..n {
        let row = json!({
            "timestamp": format!("2016-06-27T{:02}:{:02}:{:02}.000Z", i % 24, i % 60, i % 59),
            "added": i, "channel": format!("#{}.wikipedia", ["en", "de", "fr"][i % 3]),
            "cityName": null, "comment": "edit", "commentLength": 4,
            "countryIsoCode": null, "countryName": null, "deleted": i % 5, "delta": i,
            "deltaBucket": "0.0", "diffUrl": "https://example.org/diff", "flags": "",
            "isAnonymous": "false", "isMinor": "false", "isNew": "false",
            "isRobot": if i % 4 == 0 { "true" } else { "false" },
            "isUnpatrolled": "false", "metroCode": null, "namespace": "Main",
            "page": format!("Page {}", i % 50), "regionIsoCode": null, "regionName": null,
            "user": format!("user{}", i % 17)
        });
        writeln!(e, "{row}").unwrap();
    }
    e.finish().unwrap()
}

fn seed_body(data_uri: &str) -> String {
    SEED_SUBMIT.replace("{DATA_URI}", data_uri)
}

async fn count_rows(server: &TestServer, table: &str) -> i64 {
    let rows = server
        .select(&format!("SELECT COUNT(*), SUM(added) FROM {table}"))
        .await;
    rows[0][0].as_i64().unwrap()
}

#[tokio::test]
async fn seed_submit_example_ingests_over_http() {
    let addr = data_server(wikipedia_gz(1000)).await;
    let data_uri = format!("http://{addr}/data/wikipedia.json.gz");
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), |_| {}).await;

    // The seed posts to `/druid/v2/sql/task/` (trailing slash).
    let (code, body) = server
        .post_raw("/druid/v2/sql/task/", seed_body(&data_uri))
        .await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["state"], "RUNNING");
    let id = body["taskId"].as_str().unwrap().to_string();
    let status = server.wait_terminal(&id).await;
    assert_eq!(status["statusCode"], "SUCCESS", "{status}");
    assert_eq!(count_rows(&server, "wikipedia").await, 1000);
    let report = server.report(&id).await;
    let stages = &report["multiStageQuery"]["payload"]["stages"];
    let input_source = &stages[0]["definition"]["input"][0]["inputSource"];
    assert_eq!(input_source["uris"][0], json!(data_uri));
    // Druid shows absent credentials as nulls.
    for key in ["httpAuthenticationUsername", "httpAuthenticationPassword"] {
        assert_eq!(input_source.get(key), Some(&Value::Null), "{input_source}");
    }
    let payload: Value = server.get(&format!("/druid/indexer/v1/task/{id}")).await.1;
    assert_eq!(payload["payload"]["dataSource"], "wikipedia");
    assert_eq!(payload["payload"]["sqlQueryContext"]["maxNumTasks"], 3);

    // The seed's curl command, host changed, when curl is installed.
    if Command::new("curl").arg("--version").output().is_ok() {
        // curl blocks: run it off the runtime thread that serves its request.
        let url = format!("{}/druid/v2/sql/task/", server.base);
        let body = seed_body(&data_uri);
        let out = tokio::task::spawn_blocking(move || {
            Command::new("curl")
                .args(["--silent", "--location", "--request", "POST"])
                .arg(url)
                .args(["--header", "Content-Type: application/json", "--data-raw"])
                .arg(body)
                .output()
        })
        .await
        .unwrap()
        .unwrap();
        let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
        let id = answer["taskId"].as_str().unwrap().to_string();
        let status = server.wait_terminal(&id).await;
        assert_eq!(status["statusCode"], "SUCCESS", "{status}");
        assert_eq!(count_rows(&server, "wikipedia").await, 2000);
    }

    // The seed's Python example (requests), host changed, when requests is installed.
    let has_requests = Command::new("python3")
        .args(["-c", "import requests"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_requests {
        let grove = server.base.replacen("http://", "http://user:password@", 1);
        let script = SEED_SUBMIT_PY
            .replace("{GROVE}", &grove)
            .replace("{DATA_URI}", &data_uri);
        let out = tokio::task::spawn_blocking(move || {
            Command::new("python3").args(["-c", &script]).output()
        })
        .await
        .unwrap()
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(answer["state"], "RUNNING");
        let id = answer["taskId"].as_str().unwrap().to_string();
        let status = server.wait_terminal(&id).await;
        assert_eq!(status["statusCode"], "SUCCESS", "{status}");
    } else {
        eprintln!("python3 with requests not found: the seed's Python example was not run");
    }
    server.stop().await;
}

#[tokio::test]
async fn guard_rails_refuse_at_submission() {
    let dir = tempfile::tempdir().unwrap();
    let allowed = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), |c| {
        c.allow_local_dirs = vec![allowed.path().to_path_buf()];
        c.allowed_protocols = vec!["https".into()];
    })
    .await;
    let outside = dir.path().join("outside.json");
    std::fs::write(&outside, "{\"ts\":\"2016-01-01\",\"page\":\"a\",\"n\":1}\n").unwrap();
    let cases = [
        (
            format!(r#"{{"type":"local","files":["{}"]}}"#, outside.display()),
            "is not allowed",
        ),
        (
            format!(
                r#"{{"type":"local","baseDir":"{}","filter":"*.json"}}"#,
                dir.path().display()
            ),
            "is not allowed",
        ),
        (
            r#"{"type":"http","uris":["http://127.0.0.1:9/x.json"]}"#.to_string(),
            "Only [https] protocols are allowed",
        ),
    ];
    for (source, message) in cases {
        let sql = format!(
            "INSERT INTO t SELECT TIME_PARSE(ts) AS __time, page FROM TABLE(EXTERN('{source}', '{{\"type\":\"json\"}}')) EXTEND (ts VARCHAR, page VARCHAR) PARTITIONED BY DAY"
        );
        let (code, body) = server
            .post("/druid/v2/sql/task", json!({"query": sql}))
            .await;
        assert_eq!(code, 400, "{body}");
        let error = &body["error"];
        assert_eq!(error["error"], "druidException", "{body}");
        assert_eq!(error["errorCode"], "invalidInput", "{body}");
        assert!(
            error["errorMessage"].as_str().unwrap().contains(message),
            "{body}"
        );
    }
    let (_, tasks) = server.get("/druid/indexer/v1/tasks").await;
    assert_eq!(tasks, json!([]), "no task was created");
    server.stop().await;
}

/// The data directory is never input, whatever the allowed directories: naming one of
/// its files is refused at submission (here the metadata store, once readable as TSV),
/// and a listing over a folder that holds it passes over its files.
#[tokio::test]
async fn the_data_directory_is_never_input() {
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("var");
    let server = TestServer::spawn(&data, |c| {
        c.allow_local_dirs = vec![parent.path().to_path_buf()];
    })
    .await;
    let metadata = data.join("metadata.db");
    assert!(metadata.is_file());
    for path in [
        metadata.display().to_string(),
        format!("{}/var/../var/metadata.db", parent.path().display()),
    ] {
        let sql = format!(
            "SELECT * FROM TABLE(EXTERN('{{\"type\":\"local\",\"files\":[\"{path}\"]}}', '{{\"type\":\"tsv\",\"columns\":[\"a\"],\"findColumnsFromHeader\":false}}', '[{{\"name\":\"a\",\"type\":\"string\"}}]'))"
        );
        for endpoint in ["/druid/v2/sql", "/druid/v2/sql/task"] {
            let (code, body) = server.post(endpoint, json!({"query": sql})).await;
            assert_eq!(code, 400, "{endpoint}: {body}");
            let message = body["errorMessage"]
                .as_str()
                .or(body["error"]["errorMessage"].as_str())
                .unwrap_or_default();
            assert!(message.contains("data directory"), "{endpoint}: {body}");
        }
    }
    // A listing over the parent reads the one input file there, not the server's files.
    std::fs::write(
        parent.path().join("input.json"),
        "{\"ts\":\"2016-01-01\",\"page\":\"a\"}\n",
    )
    .unwrap();
    let source = format!(
        r#"{{"type":"local","baseDir":"{}","filter":"*"}}"#,
        parent.path().display()
    );
    server
        .ingest(&format!(
            "INSERT INTO listed SELECT TIME_PARSE(ts) AS __time, page FROM TABLE(EXTERN('{source}', '{{\"type\":\"json\"}}')) EXTEND (ts VARCHAR, page VARCHAR) PARTITIONED BY DAY"
        ))
        .await;
    let (_, tasks) = server.get("/druid/indexer/v1/tasks").await;
    assert_eq!(
        tasks.as_array().unwrap().len(),
        1,
        "only the listing's task: {tasks}"
    );
    let rows = server.select("SELECT COUNT(*) FROM listed").await;
    assert_eq!(rows[0][0], 1);
    server.stop().await;
}

/// `http` inputs reach public addresses only, unless the operator allows a host
/// (`--allow-host`): an address in the URI is refused at submission, a name when it
/// resolves (no connection is made), and every redirect is checked before it is
/// followed. `environment` password providers read only the variables the operator
/// lists. Every address here is loopback: nothing leaves the machine.
#[tokio::test]
async fn http_inputs_reach_only_allowed_addresses() {
    let rows = "{\"ts\":\"2016-01-01\",\"page\":\"a\"}\n";
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route(
            "/rows.json",
            axum::routing::get(move || {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move { rows }
            }),
        )
        .route(
            "/away",
            axum::routing::get(move || async move {
                axum::response::Redirect::temporary(&format!(
                    "http://127.0.0.2:{}/rows.json",
                    addr.port()
                ))
            }),
        )
        .route(
            "/here",
            axum::routing::get(|| async { axum::response::Redirect::temporary("/rows.json") }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let sql = |uri: &str, password: &str| {
        format!(
            "INSERT INTO h SELECT TIME_PARSE(ts) AS __time, page FROM TABLE(EXTERN('{{\"type\":\"http\",\"uris\":[\"{uri}\"]{password}}}', '{{\"type\":\"json\"}}')) EXTEND (ts VARCHAR, page VARCHAR) PARTITIONED BY DAY"
        )
    };
    let port = addr.port();

    // grove serve's defaults: no host allowed beyond public addresses.
    let dir = tempfile::tempdir().unwrap();
    let strict = TestServer::spawn(dir.path(), |c| c.allow_hosts = Vec::new()).await;
    for uri in [
        format!("http://127.0.0.1:{port}/rows.json"),
        format!("http://[::1]:{port}/rows.json"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/x.json".to_string(),
    ] {
        let (code, body) = strict
            .post("/druid/v2/sql/task", json!({"query": sql(&uri, "")}))
            .await;
        assert_eq!(code, 400, "{uri}: {body}");
        let message = body["error"]["errorMessage"].as_str().unwrap_or_default();
        assert!(
            message.contains("is not allowed: it is a") && message.contains("--allow-host"),
            "{uri}: {body}"
        );
    }
    // A name is refused when it resolves, before any connection.
    let id = strict
        .submit(
            &sql(&format!("http://localhost:{port}/rows.json"), ""),
            json!({}),
        )
        .await;
    let status = strict.wait_terminal(&id).await;
    assert_eq!(status["statusCode"], "FAILED", "{status}");
    let report = strict.report(&id).await;
    let fault = report["multiStageQuery"]["payload"]["status"]["errorReport"].to_string();
    assert!(
        fault.contains("Reading [localhost]") && fault.contains("loopback"),
        "{fault}"
    );
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing was fetched"
    );
    // The environment is closed to password providers.
    let with_env = r#","httpAuthenticationUsername":"u","httpAuthenticationPassword":{"type":"environment","variable":"HOME"}"#;
    let (code, body) = strict
        .post(
            "/druid/v2/sql/task",
            json!({"query": sql("https://example.invalid/x.json", with_env)}),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body.to_string()
            .contains("Reading environment variable [HOME] for a password is not allowed"),
        "{body}"
    );
    strict.stop().await;

    // 127.0.0.1 allowed: reads work, redirects to it too, a redirect elsewhere does not.
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), |c| {
        c.allow_hosts = vec!["127.0.0.1".into()];
        c.allowed_env_vars = vec!["GROVE_TEST_HTTP_PASSWORD_UNSET".into()];
    })
    .await;
    server
        .ingest(&sql(&format!("http://127.0.0.1:{port}/here"), ""))
        .await;
    assert_eq!(server.select("SELECT COUNT(*) FROM h").await[0][0], 1);
    let fetched = hits.load(std::sync::atomic::Ordering::SeqCst);
    let id = server
        .submit(
            &sql(&format!("http://127.0.0.1:{port}/away"), ""),
            json!({}),
        )
        .await;
    let status = server.wait_terminal(&id).await;
    assert_eq!(status["statusCode"], "FAILED", "{status}");
    let fault =
        server.report(&id).await["multiStageQuery"]["payload"]["status"]["errorReport"].to_string();
    assert!(
        fault.contains("redirect refused") && fault.contains("Reading [127.0.0.2]"),
        "{fault}"
    );
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        fetched,
        "the redirect was not followed"
    );
    // A listed variable passes the policy (it is unset here, which is its own error).
    let with_env = r#","httpAuthenticationUsername":"u","httpAuthenticationPassword":{"type":"environment","variable":"GROVE_TEST_HTTP_PASSWORD_UNSET"}"#;
    let (code, body) = server
        .post(
            "/druid/v2/sql/task",
            json!({"query": sql(&format!("http://127.0.0.1:{port}/rows.json"), with_env)}),
        )
        .await;
    assert!(
        !body.to_string().contains("is not allowed"),
        "{code}: {body}"
    );
    server.stop().await;
}
