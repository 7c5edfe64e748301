//! The `s3` input source against a real S3-compatible server on loopback: s3s-fs (from
//! crates.io), which serves a directory as buckets and checks SigV4 signatures.

use std::net::SocketAddr;
use std::path::Path;

use grove_common::MsqFault;
use grove_engine::GroveContext;
use hyper_util::rt::{TokioExecutor, TokioIo};
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

use crate::publish::scalar;

const ACCESS_KEY: &str = "GROVEACCESSKEY";
const SECRET_KEY: &str = "grove-secret-key";

/// Serves `root` (one directory per bucket) over S3 on an ephemeral loopback port.
async fn s3_server(root: &Path) -> SocketAddr {
    let fs = s3s_fs::FileSystem::new(root).unwrap();
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let conn = http
                .serve_connection(TokioIo::new(socket), service.clone())
                .into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
    addr
}

fn rows(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| {
            format!(
                "{{\"ts\":\"2016-06-27T{:02}:00:00Z\",\"page\":\"p{}\",\"n\":{i}}}\n",
                i % 24,
                i % 9
            )
        })
        .collect()
}

fn gzip(text: &str) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

/// `extra` is spliced into the inputSource JSON (endpoint and credentials).
fn insert(table: &str, selection: &str, extra: &str) -> String {
    format!(
        "INSERT INTO {table} SELECT TIME_PARSE(ts) AS __time, page, n FROM TABLE(EXTERN(\
         '{{\"type\":\"s3\",{selection},{extra}}}', '{{\"type\":\"json\"}}', \
         '[{{\"name\":\"ts\",\"type\":\"string\"}},{{\"name\":\"page\",\"type\":\"string\"}},{{\"name\":\"n\",\"type\":\"long\"}}]')) \
         PARTITIONED BY DAY"
    )
}

#[tokio::test]
async fn s3_uris_prefixes_objects_glob_and_table_function() {
    let root = tempfile::tempdir().unwrap();
    let bucket = root.path().join("wiki");
    std::fs::create_dir_all(bucket.join("data/sub")).unwrap();
    std::fs::create_dir_all(bucket.join("other")).unwrap();
    std::fs::write(bucket.join("data/a.json"), rows(0, 100)).unwrap();
    std::fs::write(bucket.join("data/b.json.gz"), gzip(&rows(100, 50))).unwrap();
    std::fs::write(bucket.join("data/sub/c.json"), rows(150, 25)).unwrap();
    std::fs::write(bucket.join("data/empty.json"), "").unwrap();
    std::fs::write(bucket.join("other/d.json"), rows(175, 5)).unwrap();
    let addr = s3_server(root.path()).await;
    let extra = format!(
        r#""endpointConfig":{{"url":"http://{addr}","signingRegion":"us-east-1"}},"clientConfig":{{"enablePathStyleAccess":true}},"properties":{{"accessKeyId":"{ACCESS_KEY}","secretAccessKey":{{"type":"default","password":"{SECRET_KEY}"}}}}"#
    );
    let dir = tempfile::tempdir().unwrap();
    let grove = GroveContext::open(dir.path()).await.unwrap();

    grove
        .sql(&insert(
            "u",
            r#""uris":["s3://wiki/data/a.json","s3://wiki/data/b.json.gz"]"#,
            &extra,
        ))
        .await
        .unwrap();
    assert_eq!(scalar(&grove, "SELECT COUNT(*) FROM u").await, 150);

    // A prefix: everything under data/ (the empty object skipped), nothing from other/.
    grove
        .sql(&insert("p", r#""prefixes":["s3://wiki/data/"]"#, &extra))
        .await
        .unwrap();
    assert_eq!(scalar(&grove, "SELECT COUNT(*) FROM p").await, 175);
    assert_eq!(scalar(&grove, "SELECT SUM(n) FROM p").await, 174 * 175 / 2);

    // A prefix that ends inside a path segment is a plain string prefix, as in Druid:
    // data/b.json.gz only (not data/a.json, nor anything under other/).
    grove
        .sql(&insert("pp", r#""prefixes":["s3://wiki/data/b"]"#, &extra))
        .await
        .unwrap();
    assert_eq!(scalar(&grove, "SELECT COUNT(*) FROM pp").await, 50);

    // objectGlob narrows a prefix listing.
    grove
        .sql(&insert(
            "g",
            r#""prefixes":["s3://wiki/"],"objectGlob":"**.gz""#,
            &extra,
        ))
        .await
        .unwrap();
    assert_eq!(scalar(&grove, "SELECT COUNT(*) FROM g").await, 50);

    // objects as bucket + path.
    grove
        .sql(&insert(
            "o",
            r#""objects":[{"bucket":"wiki","path":"other/d.json"},{"bucket":"wiki","path":"data/sub/c.json"}]"#,
            &extra,
        ))
        .await
        .unwrap();
    assert_eq!(scalar(&grove, "SELECT COUNT(*) FROM o").await, 30);

    // The table function, with Grove's endpointUrl argument for S3-compatible stores.
    grove
        .sql(&format!(
            "INSERT INTO tf SELECT TIME_PARSE(ts) AS __time, page, n FROM TABLE(s3(\
             bucket => 'wiki', paths => ARRAY['data/a.json', 'other/d.json'], \
             accessKeyId => '{ACCESS_KEY}', secretAccessKey => '{SECRET_KEY}', \
             endpointUrl => 'http://{addr}', format => 'json')) \
             EXTEND (ts VARCHAR, page VARCHAR, n BIGINT) PARTITIONED BY DAY"
        ))
        .await
        .unwrap();
    assert_eq!(scalar(&grove, "SELECT COUNT(*) FROM tf").await, 105);
}

#[tokio::test]
async fn s3_failures_name_the_object_and_publish_nothing() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("wiki")).unwrap();
    std::fs::write(root.path().join("wiki/a.json"), rows(0, 10)).unwrap();
    let addr = s3_server(root.path()).await;
    let endpoint = format!(r#""endpointConfig":{{"url":"http://{addr}"}}"#);
    let dir = tempfile::tempdir().unwrap();
    let grove = GroveContext::open(dir.path()).await.unwrap();

    let wrong_key = format!(
        r#"{endpoint},"properties":{{"accessKeyId":"{ACCESS_KEY}","secretAccessKey":"not-the-key"}}"#
    );
    let err = grove
        .sql(&insert("bad", r#""uris":["s3://wiki/a.json"]"#, &wrong_key))
        .await
        .unwrap_err();
    let message = MsqFault::from_error(&err).message();
    assert!(message.contains("s3://wiki/a.json"), "{message}");

    let good_key = format!(
        r#"{endpoint},"properties":{{"accessKeyId":"{ACCESS_KEY}","secretAccessKey":"{SECRET_KEY}"}}"#
    );
    let err = grove
        .sql(&insert(
            "bad",
            r#""uris":["s3://wiki/missing.json"]"#,
            &good_key,
        ))
        .await
        .unwrap_err();
    let message = MsqFault::from_error(&err).message();
    assert!(message.contains("s3://wiki/missing.json"), "{message}");

    let err = grove
        .sql(&insert(
            "bad",
            r#""uris":["s3://wiki/a.json"],"prefixes":["s3://wiki/"]"#,
            &good_key,
        ))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("exactly one of"), "{err}");
    assert!(
        grove
            .metadata()
            .all_segments("bad")
            .await
            .unwrap()
            .is_empty()
    );
}
