use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use futures::StreamExt;
use grove_server::ServerConfig;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// A `grove serve` running inside the test process.
pub(crate) struct TestServer {
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub(crate) async fn spawn(data_dir: &Path, configure: impl FnOnce(&mut ServerConfig)) -> Self {
        let mut config = ServerConfig {
            port: 0,
            data_dir: data_dir.to_path_buf(),
            allow_local_dirs: vec![std::env::temp_dir()],
            // The tests' HTTP inputs are servers on 127.0.0.1 (and nothing else is
            // reached); other loopback addresses stay refused.
            allow_hosts: vec!["127.0.0.1".into()],
            ..Default::default()
        };
        configure(&mut config);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (addr_tx, addr_rx) = oneshot::channel::<SocketAddr>();
        let handle = tokio::spawn(async move {
            grove_server::serve(
                config,
                async {
                    let _ = stop_rx.await;
                },
                move |addr| {
                    let _ = addr_tx.send(addr);
                },
            )
            .await
            .expect("server failed");
        });
        let addr = addr_rx.await.expect("server did not start");
        Self {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            stop: Some(stop_tx),
            handle: Some(handle),
        }
    }

    pub(crate) async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub(crate) async fn post_raw(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.post_raw(path, body.to_string()).await
    }

    /// Submits SQL; returns the task id (asserting 202 RUNNING).
    pub(crate) async fn submit(&self, sql: &str, context: Value) -> String {
        let (status, body) = self
            .post(
                "/druid/v2/sql/task",
                json!({"query": sql, "context": context}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["state"], "RUNNING");
        body["taskId"].as_str().unwrap().to_string()
    }

    /// Runs an INSERT or REPLACE as a task and waits for it to succeed.
    pub(crate) async fn ingest(&self, sql: &str) {
        let id = self.submit(sql, json!({})).await;
        let s = self.wait_terminal(&id).await;
        assert_eq!(s["statusCode"], "SUCCESS", "{s}");
    }

    /// `DELETE path`; returns the status code.
    pub(crate) async fn delete(&self, path: &str) -> u16 {
        self.client
            .delete(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    pub(crate) async fn status(&self, id: &str) -> Value {
        let (code, body) = self
            .get(&format!("/druid/indexer/v1/task/{id}/status"))
            .await;
        assert_eq!(code, 200, "{body}");
        body["status"].clone()
    }

    pub(crate) async fn wait_until(
        &self,
        id: &str,
        done: impl Fn(&Value) -> bool,
        limit: Duration,
    ) -> Value {
        let start = Instant::now();
        loop {
            let s = self.status(id).await;
            if done(&s) {
                return s;
            }
            assert!(
                start.elapsed() < limit,
                "task {id} still {s} after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub(crate) async fn wait_terminal(&self, id: &str) -> Value {
        self.wait_until(
            id,
            |s| s["statusCode"] != "RUNNING",
            Duration::from_secs(120),
        )
        .await
    }

    pub(crate) async fn report(&self, id: &str) -> Value {
        let (code, body) = self
            .get(&format!("/druid/indexer/v1/task/{id}/reports"))
            .await;
        assert_eq!(code, 200, "{body}");
        body
    }

    /// Runs a SELECT as a task and returns its result rows.
    pub(crate) async fn select(&self, sql: &str) -> Vec<Value> {
        let id = self.submit(sql, json!({})).await;
        let s = self.wait_terminal(&id).await;
        assert_eq!(s["statusCode"], "SUCCESS", "{s}");
        let r = self.report(&id).await;
        r["multiStageQuery"]["payload"]["results"]["results"]
            .as_array()
            .unwrap()
            .clone()
    }
}

/// An EXTERN over inline JSON rows of (ts, page, n).
pub(crate) fn inline(rows: &[(String, String, i64)]) -> String {
    let data: Vec<String> = rows
        .iter()
        .map(|(ts, page, n)| format!(r#"{{\"ts\":\"{ts}\",\"page\":\"{page}\",\"n\":{n}}}"#))
        .collect();
    format!(
        r#"TABLE(EXTERN('{{"type":"inline","data":"{}"}}', '{{"type":"json"}}', '[{{"name":"ts","type":"string"}},{{"name":"page","type":"string"}},{{"name":"n","type":"long"}}]'))"#,
        data.join("\\n")
    )
}

/// `rows` newline-delimited JSON rows over two days (`ts`, `page`, `n`).
fn rows_json(rows: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows * 64);
    for i in 0..rows {
        writeln!(
            out,
            r#"{{"ts":"2015-09-1{}T{:02}:{:02}:00Z","page":"page{}","n":{i}}}"#,
            2 + i % 2,
            (i / 60) % 24,
            i % 60,
            i % 997
        )
        .unwrap();
    }
    out
}

/// An HTTP input that sends its rows at once, then holds the response open, so the
/// ingest reading it runs until the test says otherwise: `release` ends the response
/// (the ingest then finishes), or the client hangs up (a canceled or killed ingest).
/// It needs no disk and no timing luck.
pub(crate) struct StalledInput {
    pub(crate) uri: String,
    release: tokio::sync::watch::Sender<bool>,
    /// Responses started, and responses whose body is gone (ended or hung up).
    started: Arc<AtomicUsize>,
    gone: Arc<AtomicUsize>,
}

/// Counts a response body as gone when it is dropped.
struct Gone(Arc<AtomicUsize>);

impl Drop for Gone {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl StalledInput {
    /// Serves `rows` rows (see `rows_json`) at `/rows.json` on an ephemeral loopback port.
    pub(crate) async fn start(rows: usize) -> Self {
        let data = Bytes::from(rows_json(rows));
        let (release, released) = tokio::sync::watch::channel(false);
        let started = Arc::new(AtomicUsize::new(0));
        let gone = Arc::new(AtomicUsize::new(0));
        let (s, g) = (Arc::clone(&started), Arc::clone(&gone));
        let app = axum::Router::new().route(
            "/rows.json",
            axum::routing::get(move || {
                s.fetch_add(1, Ordering::SeqCst);
                let gone = Gone(Arc::clone(&g));
                let mut released = released.clone();
                let first =
                    futures::stream::once(std::future::ready(Ok::<_, Infallible>(data.clone())));
                let rest = futures::stream::once(async move {
                    let _gone = gone;
                    let _ = released.wait_for(|r| *r).await;
                    Ok(Bytes::new())
                });
                std::future::ready(axum::body::Body::from_stream(first.chain(rest)))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            uri: format!("http://{addr}/rows.json"),
            release,
            started,
            gone,
        }
    }

    /// Ends every response, now and later.
    pub(crate) fn release(&self) {
        let _ = self.release.send(true);
    }

    /// Waits until every response started has ended or lost its client: the reader let go
    /// of the connection.
    pub(crate) async fn wait_closed(&self) {
        let start = Instant::now();
        loop {
            let started = self.started.load(Ordering::SeqCst);
            if started > 0 && self.gone.load(Ordering::SeqCst) == started {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the reader still holds the input's connection"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// An INSERT of `uri`'s rows (see `rows_json`), partitioned by day, clustered by page.
pub(crate) fn ingest_http_sql(table: &str, uri: &str) -> String {
    format!(
        r#"INSERT INTO {table} SELECT TIME_PARSE(ts) AS __time, page, n FROM TABLE(EXTERN('{{"type":"http","uris":["{uri}"]}}', '{{"type":"json"}}')) EXTEND (ts VARCHAR, page VARCHAR, n BIGINT) PARTITIONED BY DAY CLUSTERED BY page"#
    )
}

/// Files under a directory, recursively.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
