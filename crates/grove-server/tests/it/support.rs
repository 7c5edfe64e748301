use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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

/// Writes a newline-delimited JSON file of `rows` rows over two days.
pub(crate) fn big_file(dir: &Path, rows: usize) -> PathBuf {
    let path = dir.join("big.json");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for i in 0..rows {
        writeln!(
            f,
            r#"{{"ts":"2015-09-1{}T{:02}:{:02}:00Z","page":"page{}","n":{i}}}"#,
            2 + i % 2,
            (i / 60) % 24,
            i % 60,
            i % 997
        )
        .unwrap();
    }
    f.flush().unwrap();
    path
}

pub(crate) fn ingest_file_sql(table: &str, path: &Path) -> String {
    format!(
        r#"INSERT INTO {table} SELECT TIME_PARSE(ts) AS __time, page, n FROM TABLE(EXTERN('{{"type":"local","files":["{}"]}}', '{{"type":"json"}}')) EXTEND (ts VARCHAR, page VARCHAR, n BIGINT) PARTITIONED BY DAY CLUSTERED BY page"#,
        path.display()
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
