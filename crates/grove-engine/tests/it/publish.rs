use std::path::Path;

use datafusion::arrow::array::{Array, Int64Array};
use grove_common::MsqFault;
use grove_engine::GroveContext;

fn inline_json(rows: &[(&str, &str, i64)]) -> String {
    let data: Vec<String> = rows
        .iter()
        .map(|(ts, page, n)| format!(r#"{{\"ts\":\"{ts}\",\"page\":\"{page}\",\"n\":{n}}}"#))
        .collect();
    format!(
        r#"TABLE(EXTERN('{{"type":"inline","data":"{}"}}', '{{"type":"json"}}', '[{{"name":"ts","type":"string"}},{{"name":"page","type":"string"}},{{"name":"n","type":"long"}}]'))"#,
        data.join("\\n")
    )
}

pub(crate) async fn scalar(grove: &GroveContext, sql: &str) -> i64 {
    let batches = grove.sql(sql).await.unwrap().collect().await.unwrap();
    let batch = batches.iter().find(|b| b.num_rows() > 0).unwrap();
    let col = batch.column(0);
    col.as_any().downcast_ref::<Int64Array>().unwrap().value(0)
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
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

#[tokio::test]
async fn replace_twice_shows_only_the_second_version() {
    let dir = tempfile::tempdir().unwrap();
    let grove = GroveContext::open(dir.path()).await.unwrap();
    let first = inline_json(&[
        ("2015-09-12T01:00:00Z", "a", 1),
        ("2015-09-13T01:00:00Z", "b", 2),
    ]);
    let second = inline_json(&[
        ("2015-09-12T05:00:00Z", "c", 10),
        ("2015-09-13T05:00:00Z", "d", 20),
        ("2015-09-13T06:00:00Z", "e", 30),
    ]);
    for input in [&first, &second] {
        grove
            .sql(&format!(
                "REPLACE INTO w OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, page, n FROM {input} PARTITIONED BY DAY"
            ))
            .await
            .unwrap();
    }
    assert_eq!(scalar(&grove, "SELECT SUM(n) FROM w").await, 60);
    assert_eq!(scalar(&grove, "SELECT COUNT(*) FROM w").await, 3);

    let all = grove.metadata().all_segments("w").await.unwrap();
    let (used, unused): (Vec<_>, Vec<_>) = all.iter().partition(|s| s.used);
    assert_eq!(used.len(), 2, "the second REPLACE's two day segments");
    assert_eq!(
        unused.len(),
        2,
        "the first REPLACE's segments, marked unused"
    );
    let newest = used.iter().map(|s| s.version.clone()).max().unwrap();
    assert!(used.iter().all(|s| s.version == newest));
    assert!(unused.iter().all(|s| s.version < newest));
}

#[tokio::test]
async fn failing_statement_publishes_nothing_and_removes_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let grove = GroveContext::open(dir.path()).await.unwrap();
    let good = inline_json(&[("2015-09-12T01:00:00Z", "a", 1)]);
    grove
        .sql(&format!(
            "INSERT INTO w SELECT TIME_PARSE(ts) AS __time, page, n FROM {good} PARTITIONED BY DAY"
        ))
        .await
        .unwrap();
    let files_before = files_under(&dir.path().join("segments")).len();

    // Many rows over two days, rowsPerSegment 1 so several files are written before the
    // bad last row (its timestamp does not parse: InsertTimeNull) is reached.
    let mut rows: Vec<(String, String, i64)> = (0..20)
        .map(|i| {
            (
                format!("2015-09-1{}T0{}:00:00Z", 2 + i % 2, i % 10),
                "x".to_string(),
                i,
            )
        })
        .collect();
    rows.push(("not a time".into(), "bad".into(), 99));
    let borrowed: Vec<(&str, &str, i64)> = rows
        .iter()
        .map(|(a, b, c)| (a.as_str(), b.as_str(), *c))
        .collect();
    let bad = inline_json(&borrowed);
    let err = grove
        .sql(&format!(
            "SET rowsPerSegment = 1; INSERT INTO w SELECT TIME_PARSE(ts) AS __time, page, n FROM {bad} PARTITIONED BY HOUR CLUSTERED BY page"
        ))
        .await
        .unwrap_err();
    assert_eq!(MsqFault::find(&err).unwrap().error_code(), "InsertTimeNull");

    assert_eq!(scalar(&grove, "SELECT COUNT(*) FROM w").await, 1);
    assert_eq!(grove.metadata().all_segments("w").await.unwrap().len(), 1);
    assert_eq!(
        files_under(&dir.path().join("segments")).len(),
        files_before
    );

    // A failure late in the stream (after files were written): out of bounds on day 2.
    let late = inline_json(&[
        ("2015-09-12T01:00:00Z", "a", 1),
        ("2015-09-12T02:00:00Z", "b", 1),
        ("2015-09-13T01:00:00Z", "c", 1),
    ]);
    let err = grove
        .sql(&format!(
            "SET rowsPerSegment = 1; REPLACE INTO w OVERWRITE WHERE __time >= TIMESTAMP '2015-09-12' AND __time < TIMESTAMP '2015-09-13' SELECT TIME_PARSE(ts) AS __time, page, n FROM {late} PARTITIONED BY DAY"
        ))
        .await
        .unwrap_err();
    assert_eq!(
        MsqFault::find(&err).unwrap().error_code(),
        "InsertTimeOutOfBounds"
    );
    assert_eq!(
        files_under(&dir.path().join("segments")).len(),
        files_before
    );
    assert_eq!(grove.metadata().used_segments("w").await.unwrap().len(), 1);
}

#[tokio::test]
async fn rows_per_segment_cuts_numbered_segments() {
    let dir = tempfile::tempdir().unwrap();
    let grove = GroveContext::open(dir.path()).await.unwrap();
    let rows: Vec<(String, String, i64)> = (0..7)
        .map(|i| (format!("2015-09-12T0{i}:00:00Z"), format!("p{i}"), i))
        .collect();
    let borrowed: Vec<(&str, &str, i64)> = rows
        .iter()
        .map(|(a, b, c)| (a.as_str(), b.as_str(), *c))
        .collect();
    grove
        .sql(&format!(
            "SET rowsPerSegment = 3; INSERT INTO w SELECT TIME_PARSE(ts) AS __time, page, n FROM {} PARTITIONED BY DAY",
            inline_json(&borrowed)
        ))
        .await
        .unwrap();
    let segs = grove.metadata().used_segments("w").await.unwrap();
    let mut counts: Vec<u64> = segs.iter().map(|s| s.num_rows).collect();
    counts.sort();
    assert_eq!(counts, vec![1, 3, 3]);
    let payload = segs[0].payload();
    assert_eq!(payload["shardSpec"]["type"], "numbered");
    assert_eq!(payload["dimensions"], "page,n");
}
