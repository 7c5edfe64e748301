//! Reading datasources: segments pruned by `__time` and by range shard specs before any
//! file is opened, shown by the SELECT task's counters (`input0.files` = segment files
//! read, `totalFiles` = visible segments), which is what the task report serves over
//! HTTP.

use datafusion::arrow::array::{Array, Int64Array};
use grove_common::QueryContext;
use grove_engine::{GroveContext, TaskControl, TaskEnd};
use serde_json::Value;

/// 3 days x 6 pages x 2 rows, range-partitioned on page with 4 rows per segment: each
/// day holds 3 segments of 2 pages each (9 segments in all).
async fn ranged() -> (tempfile::TempDir, GroveContext) {
    let dir = tempfile::tempdir().unwrap();
    let grove = GroveContext::open(dir.path()).await.unwrap();
    let mut rows = Vec::new();
    for day in 1..=3 {
        for page in 0..6 {
            for hour in [1, 2] {
                rows.push(format!(
                    r#"{{\"ts\":\"2020-01-0{day}T0{hour}:00:00Z\",\"page\":\"p{page}\",\"n\":1}}"#
                ));
            }
        }
    }
    let sql = format!(
        r#"SET rowsPerSegment = 4;
REPLACE INTO t OVERWRITE ALL
SELECT TIME_PARSE(ts) AS __time, page, n
FROM TABLE(EXTERN('{{"type":"inline","data":"{}"}}', '{{"type":"json"}}',
  '[{{"name":"ts","type":"string"}},{{"name":"page","type":"string"}},{{"name":"n","type":"long"}}]'))
PARTITIONED BY DAY CLUSTERED BY page"#,
        rows.join("\\n")
    );
    grove.sql(&sql).await.unwrap();
    let segments = grove.metadata().used_segments("t").await.unwrap();
    assert_eq!(segments.len(), 9);
    assert!(segments.iter().all(|s| s.shard_spec.type_name() == "range"));
    (dir, grove)
}

/// Runs `sql` as a SELECT task: its single Int64 result and its report's stage 0 input
/// counters (worker 0).
async fn run(grove: &GroveContext, sql: &str) -> (i64, Value) {
    let prepared = grove.prepare(sql, &QueryContext::new()).await.unwrap();
    let control = TaskControl::new();
    let results = grove.run_query(&prepared, &control, 1000).await.unwrap();
    let batch = &results.batches[0];
    let value = batch
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0);
    let report = prepared.describe().report(
        0,
        &control.progress,
        &TaskEnd::Success(Some(results.clone())),
    );
    let input = report["multiStageQuery"]["payload"]["counters"]["0"]["0"]["input0"].clone();
    (value, input)
}

fn counter(input: &Value, field: &str) -> i64 {
    input[field][0].as_i64().unwrap_or(0)
}

#[tokio::test]
async fn time_filter_reads_only_its_days_segments() {
    let (_dir, grove) = ranged().await;
    let (n, input) = run(
        &grove,
        "SELECT SUM(n) FROM t WHERE __time >= TIMESTAMP '2020-01-02' AND __time < TIMESTAMP '2020-01-03'",
    )
    .await;
    assert_eq!(n, 12);
    assert_eq!(input["type"], "channel");
    assert_eq!(counter(&input, "files"), 3, "{input}");
    assert_eq!(counter(&input, "totalFiles"), 9, "{input}");
    assert_eq!(counter(&input, "rows"), 12, "{input}");
    assert!(counter(&input, "bytes") > 0, "{input}");

    // OR of two instants in different days.
    let (n, input) = run(
        &grove,
        "SELECT SUM(n) FROM t WHERE __time IN (TIMESTAMP '2020-01-01 01:00:00', TIMESTAMP '2020-01-03 02:00:00')",
    )
    .await;
    assert_eq!(n, 12);
    assert_eq!(counter(&input, "files"), 6, "{input}");
}

#[tokio::test]
async fn clustered_filter_reads_only_matching_range_partitions() {
    let (_dir, grove) = ranged().await;
    let (n, input) = run(&grove, "SELECT SUM(n) FROM t WHERE page = 'p3'").await;
    assert_eq!(n, 6);
    // One range partition per day holds p3.
    assert_eq!(counter(&input, "files"), 3, "{input}");
    assert_eq!(counter(&input, "totalFiles"), 9, "{input}");

    let (n, input) = run(
        &grove,
        "SELECT SUM(n) FROM t WHERE page IN ('p0', 'p5') AND __time < TIMESTAMP '2020-01-02'",
    )
    .await;
    assert_eq!(n, 4);
    assert_eq!(counter(&input, "files"), 2, "{input}");

    // A filter that is not on a range dimension reads everything.
    let (n, input) = run(&grove, "SELECT SUM(n) FROM t WHERE n = 1").await;
    assert_eq!(n, 36);
    assert_eq!(counter(&input, "files"), 9, "{input}");
    assert_eq!(counter(&input, "rows"), 36, "{input}");
}

#[tokio::test]
async fn min_and_max_come_from_footer_statistics() {
    let (_dir, grove) = ranged().await;
    // Exact column statistics from the segments' Parquet footers: DataFusion answers
    // MIN/MAX without reading any data page.
    let (n, input) = run(&grove, "SELECT MAX(n) FROM t").await;
    assert_eq!(n, 1);
    assert_eq!(counter(&input, "files"), 0, "{input}");
    let (n, input) = run(&grove, "SELECT MIN(n) + MAX(n) FROM t WHERE page = 'p3'").await;
    assert_eq!(n, 2);
    assert_eq!(counter(&input, "files"), 3, "{input}");
}

#[tokio::test]
async fn count_star_comes_from_segment_row_counts() {
    let (_dir, grove) = ranged().await;
    let (n, input) = run(&grove, "SELECT COUNT(*) FROM t").await;
    assert_eq!(n, 36);
    // Answered from the segments' row counts: no file opened.
    assert_eq!(counter(&input, "files"), 0, "{input}");
    assert_eq!(counter(&input, "totalFiles"), 9, "{input}");

    // With a partially overshadowed segment the count is computed, and right.
    grove
        .sql(
            "REPLACE INTO t OVERWRITE WHERE __time >= TIMESTAMP '2020-01-01 01:00:00' AND __time < TIMESTAMP '2020-01-01 02:00:00' \
             SELECT TIMESTAMP '2020-01-01 01:30:00' AS __time, 'new' AS page, 1 AS n PARTITIONED BY HOUR",
        )
        .await
        .unwrap();
    let (n, input) = run(&grove, "SELECT COUNT(*) FROM t").await;
    assert_eq!(n, 36 - 6 + 1);
    assert_eq!(counter(&input, "totalFiles"), 10, "{input}");
    assert!(counter(&input, "files") >= 3, "{input}");
}

#[tokio::test]
async fn segments_carry_statistics_and_page_indexes() {
    use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
    use parquet::file::metadata::PageIndexPolicy;
    let (_dir, grove) = ranged().await;
    for segment in grove.metadata().used_segments("t").await.unwrap() {
        let path = segment.load_spec["path"].as_str().unwrap();
        let file = std::fs::File::open(path).unwrap();
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
        let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options).unwrap();
        let meta = reader.metadata();
        // Row-group statistics (min/max) on every column, for row-group pruning...
        for rg in meta.row_groups() {
            for column in rg.columns() {
                let stats = column.statistics().unwrap();
                assert!(stats.min_bytes_opt().is_some(), "{}", column.column_path());
            }
        }
        // ...and the page index (column and offset indexes), for page pruning.
        assert!(meta.column_index().is_some(), "no column index in {path}");
        assert!(meta.offset_index().is_some(), "no offset index in {path}");
    }
}

#[tokio::test]
async fn cached_tables_follow_publishes_from_any_process() {
    let (dir, grove) = ranged().await;
    let (n, _) = run(&grove, "SELECT SUM(n) FROM t").await;
    assert_eq!(n, 36);
    // Another context on the same data directory (as `grove sql` next to a server)
    // appends: the first one's cached table must not hide the new segment.
    let other = GroveContext::open(dir.path()).await.unwrap();
    other
        .sql("INSERT INTO t SELECT TIMESTAMP '2020-01-05 00:00:00' AS __time, 'x' AS page, 100 AS n PARTITIONED BY DAY")
        .await
        .unwrap();
    let (n, input) = run(&grove, "SELECT SUM(n) FROM t").await;
    assert_eq!(n, 136);
    assert_eq!(counter(&input, "totalFiles"), 10, "{input}");
    // And a REPLACE that retires segments.
    other
        .sql("REPLACE INTO t OVERWRITE WHERE __time >= TIMESTAMP '2020-01-05' AND __time < TIMESTAMP '2020-01-06' SELECT TIMESTAMP '2020-01-05 00:00:00' AS __time, 'y' AS page, 7 AS n PARTITIONED BY DAY")
        .await
        .unwrap();
    let (n, _) = run(&grove, "SELECT SUM(n) FROM t").await;
    assert_eq!(n, 43);
    // A datasource the other context creates is found too.
    other
        .sql("INSERT INTO fresh SELECT TIMESTAMP '2020-01-05 00:00:00' AS __time, 5 AS n PARTITIONED BY DAY")
        .await
        .unwrap();
    let (n, _) = run(&grove, "SELECT SUM(n) FROM fresh").await;
    assert_eq!(n, 5);
}
