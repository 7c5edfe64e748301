//! Snapshots of the logical and physical plans of ingests (`EXPLAIN`): INSERT; REPLACE
//! with range shard specs; a rollup; PARTITIONED BY ALL; and the hash form of the
//! shuffle. A change to how an ingest is planned shows here as a snapshot diff
//! (`tests/it/snapshots/`; review with `cargo insta review`, or rerun with
//! `INSTA_UPDATE=always` and read the diff).

use arrow::array::AsArray;
use grove_common::QueryContext;
use grove_engine::GroveContext;

const SOURCE: &str = r#"TABLE(EXTERN('{"type":"inline","data":"{\"ts\":\"2015-09-12T00:00:00Z\",\"page\":\"a\",\"added\":1}"}', '{"type":"json"}',
  '[{"name":"ts","type":"string"},{"name":"page","type":"string"},{"name":"added","type":"long"}]'))"#;

/// `EXPLAIN <statement>` as text: each row's plan type, then its plan.
async fn explain(statement: &str, context: &[(&str, serde_json::Value)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let grove = GroveContext::open(dir.path()).await.unwrap();
    let mut ctx = QueryContext::new();
    // One partition: the plans do not depend on the machine's cores.
    ctx.set("maxNumTasks", 2.into()).unwrap();
    for (k, v) in context {
        ctx.set(*k, v.clone()).unwrap();
    }
    grove
        .sql("SET datafusion.execution.target_partitions = 1")
        .await
        .unwrap();
    let sql = format!("EXPLAIN {}", statement.replace("<SOURCE>", SOURCE));
    let batches = grove
        .sql_with_context(&sql, &ctx)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut out = String::new();
    for batch in &batches {
        let kinds = batch.column(0).as_string::<i32>();
        let plans = batch.column(1).as_string::<i32>();
        for r in 0..batch.num_rows() {
            out.push_str(&format!("{}:\n{}\n", kinds.value(r), plans.value(r)));
        }
    }
    out
}

#[tokio::test]
async fn insert_by_day() {
    insta::assert_snapshot!(
        "insert_by_day",
        explain(
            "INSERT INTO wiki SELECT TIME_PARSE(ts) AS __time, page, added FROM <SOURCE> \
             PARTITIONED BY DAY",
            &[]
        )
        .await
    );
}

#[tokio::test]
async fn replace_with_range_shard_specs() {
    insta::assert_snapshot!(
        "replace_with_range_shard_specs",
        explain(
            "REPLACE INTO wiki OVERWRITE WHERE __time >= TIMESTAMP '2015-09-12' AND __time < TIMESTAMP '2015-09-14' \
             SELECT TIME_PARSE(ts) AS __time, page, added FROM <SOURCE> \
             PARTITIONED BY DAY CLUSTERED BY page, added % 3",
            &[("rowsPerSegment", 1000.into())]
        )
        .await
    );
}

#[tokio::test]
async fn rollup() {
    insta::assert_snapshot!(
        "rollup",
        explain(
            "INSERT INTO rollup SELECT TIME_FLOOR(TIME_PARSE(ts), 'PT1H') AS __time, page, \
             COUNT(*) AS cnt, SUM(added) AS added FROM <SOURCE> GROUP BY 1, 2 \
             PARTITIONED BY HOUR CLUSTERED BY page",
            &[]
        )
        .await
    );
}

#[tokio::test]
async fn partitioned_by_all() {
    insta::assert_snapshot!(
        "partitioned_by_all",
        explain(
            "REPLACE INTO wiki OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, page, added \
             FROM <SOURCE> PARTITIONED BY ALL CLUSTERED BY page",
            &[]
        )
        .await
    );
}

#[tokio::test]
async fn partitioned_by_all_in_the_hash_form() {
    insta::assert_snapshot!(
        "partitioned_by_all_hash_form",
        explain(
            "REPLACE INTO wiki OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, page, added \
             FROM <SOURCE> PARTITIONED BY ALL CLUSTERED BY page",
            &[("groveShuffle", "hash".into()), ("maxNumTasks", 3.into())]
        )
        .await
    );
}
