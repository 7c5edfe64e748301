//! Input sources end to end: a real HTTP server on loopback (with and without basic auth),
//! every compression, byte-range splits of a big file, unreadable sources, and the guard
//! rails of an input policy.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine;
use grove_common::MsqFault;
use grove_engine::GroveContext;
use grove_input::InputPolicy;

use crate::publish::scalar;

/// Files served at `/public/{name}` and, behind basic auth `user:<password>`, at
/// `/private/{name}`.
#[derive(Clone, Default)]
struct Files {
    files: Arc<HashMap<String, Vec<u8>>>,
    password: Arc<str>,
}

async fn serve_public(State(files): State<Files>, UrlPath(name): UrlPath<String>) -> Response {
    match files.files.get(&name) {
        Some(bytes) => Response::new(Body::from(bytes.clone())),
        None => status(StatusCode::NOT_FOUND),
    }
}

async fn serve_private(
    State(files): State<Files>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("user:{}", files.password))
    );
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != expected {
        return status(StatusCode::UNAUTHORIZED);
    }
    serve_public(State(files), UrlPath(name)).await
}

fn status(code: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = code;
    r
}

/// Starts the file server on an ephemeral loopback port (basic-auth password `secret`).
async fn file_server(files: HashMap<String, Vec<u8>>) -> SocketAddr {
    file_server_with_password(files, "secret").await
}

async fn file_server_with_password(files: HashMap<String, Vec<u8>>, password: &str) -> SocketAddr {
    let app = axum::Router::new()
        .route("/public/{name}", axum::routing::get(serve_public))
        .route("/private/{name}", axum::routing::get(serve_private))
        .route(
            "/broken/{name}",
            axum::routing::get(|| async { status(StatusCode::INTERNAL_SERVER_ERROR) }),
        )
        .with_state(Files {
            files: Arc::new(files),
            password: Arc::from(password),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// `n` wikipedia-like NDJSON rows; `added` is the row number, so SUM(added) = n(n-1)/2.
fn ndjson(n: usize) -> String {
    let mut out = String::new();
    for i in 0..n {
        out.push_str(&format!(
            "{{\"timestamp\":\"2016-06-27T{:02}:{:02}:00Z\",\"channel\":\"#ch{}\",\"page\":\"Page {}\",\"added\":{i}}}\n",
            i % 24,
            i % 60,
            i % 7,
            i % 101
        ));
    }
    out
}

const SIGNATURE: &str = r#"[{"name":"timestamp","type":"string"},{"name":"channel","type":"string"},{"name":"page","type":"string"},{"name":"added","type":"long"}]"#;

fn insert_sql(table: &str, source: &str) -> String {
    format!(
        "INSERT INTO {table} SELECT TIME_PARSE(\"timestamp\") AS __time, channel, page, added \
         FROM TABLE(EXTERN('{source}', '{{\"type\":\"json\"}}', '{SIGNATURE}')) PARTITIONED BY DAY"
    )
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn compress(ext: &str, bytes: &[u8]) -> Vec<u8> {
    match ext {
        "gz" => gzip(bytes),
        "bz2" => {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            e.write_all(bytes).unwrap();
            e.finish().unwrap()
        }
        "xz" => {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(bytes).unwrap();
            e.finish().unwrap()
        }
        "zst" => zstd::stream::encode_all(bytes, 1).unwrap(),
        "sz" | "snappy" => {
            let mut e = snap::write::FrameEncoder::new(Vec::new());
            e.write_all(bytes).unwrap();
            e.into_inner().unwrap()
        }
        _ => bytes.to_vec(),
    }
}

async fn open(dir: &Path) -> GroveContext {
    GroveContext::open(dir).await.unwrap()
}

#[tokio::test]
async fn http_source_with_and_without_basic_auth() {
    let data = ndjson(500);
    let mut files = HashMap::new();
    files.insert("wiki.json.gz".to_string(), gzip(data.as_bytes()));
    files.insert("wiki.json".to_string(), data.clone().into_bytes());
    let addr = file_server(files.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let grove = open(dir.path()).await;

    // Public, gzip by extension, two URIs.
    let source = format!(
        r#"{{"type":"http","uris":["http://{addr}/public/wiki.json.gz","http://{addr}/public/wiki.json"]}}"#
    );
    grove.sql(&insert_sql("pub", &source)).await.unwrap();
    assert_eq!(scalar(&grove, "SELECT COUNT(*) FROM pub").await, 1000);
    assert_eq!(
        scalar(&grove, "SELECT SUM(added) FROM pub").await,
        2 * 499 * 500 / 2
    );

    // Basic auth: a plain password, then Druid's environment password provider.
    let private = format!("http://{addr}/private/wiki.json.gz");
    let source = format!(
        r#"{{"type":"http","uris":["{private}"],"httpAuthenticationUsername":"user","httpAuthenticationPassword":"secret"}}"#
    );
    grove.sql(&insert_sql("priv", &source)).await.unwrap();
    // The environment provider: a server whose password is the value of a variable cargo
    // sets for every test process.
    let env_password = std::env::var("CARGO_PKG_NAME").unwrap();
    let env_addr = file_server_with_password(files, &env_password).await;
    let source = format!(
        r#"{{"type":"http","uris":["http://{env_addr}/private/wiki.json.gz"],"httpAuthenticationUsername":"user","httpAuthenticationPassword":{{"type":"environment","variable":"CARGO_PKG_NAME"}}}}"#
    );
    grove.sql(&insert_sql("priv", &source)).await.unwrap();
    assert_eq!(scalar(&grove, "SELECT COUNT(*) FROM priv").await, 1000);

    // The table-function form, with an ARRAY argument and EXTEND.
    grove
        .sql(&format!(
            "INSERT INTO tf SELECT TIME_PARSE(\"timestamp\") AS __time, channel, added \
             FROM TABLE(http(userName => 'user', password => 'secret', \
             uris => ARRAY['{private}', '{private}'], format => 'json')) \
             EXTEND (\"timestamp\" VARCHAR, channel VARCHAR, added BIGINT) PARTITIONED BY DAY"
        ))
        .await
        .unwrap();
    assert_eq!(scalar(&grove, "SELECT COUNT(*) FROM tf").await, 1000);
}

#[tokio::test]
async fn unreadable_http_sources_fail_clearly_and_publish_nothing() {
    let mut files = HashMap::new();
    files.insert("wiki.json".to_string(), ndjson(10).into_bytes());
    let addr = file_server(files).await;
    let dir = tempfile::tempdir().unwrap();
    let grove = open(dir.path()).await;
    let cases = [
        (
            format!(r#"{{"type":"http","uris":["http://{addr}/public/missing.json"]}}"#),
            "404",
        ),
        (
            format!(r#"{{"type":"http","uris":["http://{addr}/broken/wiki.json"]}}"#),
            "500",
        ),
        (
            format!(
                r#"{{"type":"http","uris":["http://{addr}/private/wiki.json"],"httpAuthenticationUsername":"user","httpAuthenticationPassword":"wrong"}}"#
            ),
            "401",
        ),
        (
            format!(r#"{{"type":"http","uris":["http://{addr}/private/wiki.json"]}}"#),
            "401",
        ),
    ];
    for (source, code) in cases {
        // The good URI first: its rows are read before the bad one fails the statement.
        let both = source.replacen(
            "\"uris\":[",
            &format!("\"uris\":[\"http://{addr}/public/wiki.json\","),
            1,
        );
        let err = grove.sql(&insert_sql("bad", &both)).await.unwrap_err();
        let message = MsqFault::from_error(&err).message();
        assert!(message.contains(code), "{code}: {message}");
        assert!(
            message.contains(&addr.to_string()),
            "names the URI: {message}"
        );
    }
    assert!(
        grove
            .metadata()
            .all_segments("bad")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn every_compression_reads_the_same_rows() {
    let data = ndjson(300);
    let dir = tempfile::tempdir().unwrap();
    let inputs = tempfile::tempdir().unwrap();
    let grove = open(dir.path()).await;
    for ext in ["json", "gz", "bz2", "xz", "zst", "sz", "snappy"] {
        let name = if ext == "json" {
            "wiki.json".to_string()
        } else {
            format!("wiki.json.{ext}")
        };
        let path = inputs.path().join(&name);
        // Two concatenated streams where the format allows it (gzip, bzip2, xz, zstd,
        // snappy frames all do): readers must not stop after the first.
        let half = data.len() / 2;
        let cut = data[..half].rfind('\n').unwrap() + 1;
        let mut bytes = compress(ext, &data.as_bytes()[..cut]);
        bytes.extend(compress(ext, &data.as_bytes()[cut..]));
        std::fs::write(&path, bytes).unwrap();
        let table = format!("c_{}", ext);
        let source = format!(r#"{{"type":"local","files":["{}"]}}"#, path.display());
        grove.sql(&insert_sql(&table, &source)).await.unwrap();
        assert_eq!(
            scalar(&grove, &format!("SELECT COUNT(*) FROM {table}")).await,
            300,
            "{ext}"
        );
        assert_eq!(
            scalar(&grove, &format!("SELECT SUM(added) FROM {table}")).await,
            299 * 300 / 2,
            "{ext}"
        );
    }
}

#[tokio::test]
async fn truncated_gzip_fails_with_cannot_parse_external_data() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = tempfile::tempdir().unwrap();
    let grove = open(dir.path()).await;
    let full = gzip(ndjson(2000).as_bytes());
    let path = inputs.path().join("cut.json.gz");
    std::fs::write(&path, &full[..full.len() / 2]).unwrap();
    let source = format!(r#"{{"type":"local","files":["{}"]}}"#, path.display());
    let err = grove
        .sql(&format!(
            "SET maxParseExceptions = 100; {}",
            insert_sql("t", &source)
        ))
        .await
        .unwrap_err();
    let fault = MsqFault::from_error(&err);
    assert_eq!(fault.error_code(), "CannotParseExternalData", "{err}");
    assert!(
        fault.message().contains("cut.json.gz"),
        "{}",
        fault.message()
    );
    assert!(grove.metadata().all_segments("t").await.unwrap().is_empty());
}

#[tokio::test]
async fn one_big_file_is_read_in_byte_ranges_without_losing_a_row() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = tempfile::tempdir().unwrap();
    let grove = open(dir.path()).await;
    // ~40 MB: more than twice the smallest range, so it is cut in at least two.
    let path = inputs.path().join("big.json");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let rows = 400_000usize;
    for i in 0..rows {
        writeln!(
            f,
            "{{\"timestamp\":\"2016-06-27T{:02}:00:00Z\",\"channel\":\"#c{}\",\"page\":\"{}\",\"added\":{i}}}",
            i % 24,
            i % 5,
            "p".repeat(40 + i % 17)
        )
        .unwrap();
    }
    f.flush().unwrap();
    drop(f);
    assert!(std::fs::metadata(&path).unwrap().len() > 2 * grove_input::MIN_RANGE_BYTES);
    let source = format!(r#"{{"type":"local","files":["{}"]}}"#, path.display());
    grove
        .sql(&format!(
            "SET maxNumTasks = 4; {}",
            insert_sql("big", &source)
        ))
        .await
        .unwrap();
    assert_eq!(
        scalar(&grove, "SELECT COUNT(*) FROM big").await,
        rows as i64
    );
    assert_eq!(
        scalar(&grove, "SELECT SUM(added) FROM big").await,
        (rows as i64 - 1) * rows as i64 / 2
    );
    assert_eq!(
        scalar(&grove, "SELECT COUNT(DISTINCT added) FROM big").await,
        rows as i64
    );
}

#[tokio::test]
async fn policy_refuses_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let allowed = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let grove = open(dir.path()).await;
    grove.set_input_policy(
        InputPolicy::restricted(&[allowed.path().to_path_buf()], &["https".to_string()]).unwrap(),
    );
    let ok: PathBuf = allowed.path().join("ok.json");
    std::fs::write(&ok, ndjson(5)).unwrap();
    let outside = elsewhere.path().join("secret.json");
    std::fs::write(&outside, ndjson(5)).unwrap();

    let source = format!(r#"{{"type":"local","files":["{}"]}}"#, ok.display());
    grove.sql(&insert_sql("t", &source)).await.unwrap();

    let refused = [
        format!(r#"{{"type":"local","files":["{}"]}}"#, outside.display()),
        format!(
            r#"{{"type":"local","baseDir":"{}","filter":"*.json"}}"#,
            elsewhere.path().display()
        ),
        format!(
            r#"{{"type":"local","files":["{}/../{}/secret.json"]}}"#,
            allowed.path().display(),
            elsewhere.path().file_name().unwrap().to_string_lossy()
        ),
    ];
    for source in refused {
        let err = grove.sql(&insert_sql("t", &source)).await.unwrap_err();
        assert!(err.to_string().contains("is not allowed"), "{err}");
    }
    // localfiles() is held to the same rule.
    let err = grove
        .sql(&format!(
            "SELECT * FROM TABLE(localfiles(files => ARRAY['{}'], format => 'json')) EXTEND (page VARCHAR)",
            outside.display()
        ))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is not allowed"), "{err}");
    // http over a protocol outside the allowed list (https only here).
    let err = grove
        .sql(&insert_sql(
            "t",
            r#"{"type":"http","uris":["http://127.0.0.1:9/x.json"]}"#,
        ))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Only [https] protocols"), "{err}");
    assert_eq!(scalar(&grove, "SELECT COUNT(*) FROM t").await, 5);
}
