//! The live report follows the statement's plan: its workers, running and pending tasks,
//! and the statistics phase of a range-partitioned ingest.

use std::sync::atomic::Ordering::Relaxed;

use grove_common::QueryContext;
use grove_engine::stage_layout::StageLayout;
use grove_engine::{GroveContext, TaskControl, TaskEnd, TaskPhase, TaskProgress};

#[tokio::test]
async fn a_running_report_lists_every_worker_and_the_statistics_phase() {
    let dir = tempfile::tempdir().unwrap();
    let grove = GroveContext::open(dir.path()).await.unwrap();
    let sql = r#"SET maxNumTasks = 3;
REPLACE INTO r OVERWRITE ALL
SELECT TIME_PARSE(ts) AS __time, page
FROM TABLE(EXTERN('{"type":"inline","data":"{\"ts\":\"2015-09-12T00:00:00Z\",\"page\":\"a\"}"}', '{"type":"json"}',
  '[{"name":"ts","type":"string"},{"name":"page","type":"string"}]'))
PARTITIONED BY ALL CLUSTERED BY page"#;
    let prepared = grove.prepare(sql, &QueryContext::new()).await.unwrap();
    let description = prepared.describe();
    let progress = TaskProgress::default();
    progress.workers.store(2, Relaxed);

    // Waiting for a slot: the workers are pending, only the controller runs, and the
    // statement has no stages yet (it is not planned).
    let report = description.report(0, &progress, &TaskEnd::Running);
    let status = &report["multiStageQuery"]["payload"]["status"];
    assert_eq!(status["pendingTasks"], 2);
    assert_eq!(status["runningTasks"], 1);
    assert_eq!(status["workers"], serde_json::json!({}));
    assert_eq!(
        report["multiStageQuery"]["payload"]["stages"],
        serde_json::json!([])
    );

    // The stages of the plan the statement runs (taken from a run of it).
    let control = TaskControl::new();
    grove.run_ingest(&prepared, &control).await.unwrap();
    progress.set_layout(StageLayout::clone(&control.progress.layout().unwrap()));

    // Merging key statistics: the controller and both workers run; stage 0 shows Druid's
    // MERGING_STATISTICS phase.
    progress.set_phase(TaskPhase::Reading);
    progress.set_phase(TaskPhase::MergingStatistics);
    let report = description.report(0, &progress, &TaskEnd::Running);
    let payload = &report["multiStageQuery"]["payload"];
    assert_eq!(payload["status"]["pendingTasks"], 0);
    assert_eq!(payload["status"]["runningTasks"], 3);
    let workers = payload["status"]["workers"].as_object().unwrap();
    assert_eq!(workers.len(), 2);
    assert_eq!(workers["1"][0]["state"], "RUNNING");
    assert_eq!(workers["1"][0]["durationMs"], -1);
    assert_eq!(payload["stages"][0]["phase"], "MERGING_STATISTICS");
    assert_eq!(payload["stages"][0]["workerCount"], 2);
    assert!(payload["stages"][1].get("phase").is_none());

    progress.set_phase(TaskPhase::Writing);
    let report = description.report(0, &progress, &TaskEnd::Running);
    let stages = &report["multiStageQuery"]["payload"]["stages"];
    assert_eq!(stages[0]["phase"], "FINISHED");
    assert_eq!(stages[1]["phase"], "READING_INPUT");
}

/// A rollup's plan is rebuilt by DataFusion's optimizers above and below the shuffle; the
/// stage counters still add up: every row the segments hold is counted as pushed once.
/// So do the hash form's (`groveShuffle: "hash"`), drawn from its own operators.
#[tokio::test]
async fn a_rollups_stage_counters_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let grove = GroveContext::open(dir.path()).await.unwrap();
    let rows: Vec<String> = (0..200)
        .map(|i| {
            format!(
                r#"{{\"ts\":\"2015-09-12T{:02}:{:02}:00Z\",\"page\":\"p{}\",\"n\":{i}}}"#,
                i % 24,
                i % 60,
                i % 7
            )
        })
        .collect();
    for form in ["chunk", "hash"] {
        let sql = format!(
            r#"SET maxNumTasks = 3;
SET groveShuffle = '{form}';
REPLACE INTO r OVERWRITE ALL
SELECT TIME_FLOOR(TIME_PARSE(ts), 'PT1H') AS __time, page, COUNT(*) AS cnt, SUM(n) AS total
FROM TABLE(EXTERN('{{"type":"inline","data":"{}"}}', '{{"type":"json"}}',
  '[{{"name":"ts","type":"string"}},{{"name":"page","type":"string"}},{{"name":"n","type":"long"}}]'))
GROUP BY 1, 2
PARTITIONED BY DAY CLUSTERED BY page"#,
            rows.join("\\n")
        );
        let prepared = grove.prepare(&sql, &QueryContext::new()).await.unwrap();
        let control = TaskControl::new();
        let summary = grove.run_ingest(&prepared, &control).await.unwrap();
        assert!(summary.rows > 0);
        let stages = control.progress.ingest_counters();
        assert_eq!(stages.len(), 2, "{form}");
        assert_eq!(stages[0].total(|w| &w.output.rows), summary.rows, "{form}");
        assert_eq!(stages[1].total(|w| &w.input.rows), summary.rows);
        assert_eq!(stages[1].total(|w| &w.segments.rows_pushed), summary.rows);
        assert_eq!(stages[1].total(|w| &w.output.rows), summary.rows);
        let description = prepared.describe();
        let report = description.report(0, &control.progress, &TaskEnd::Success(None));
        let payload = &report["multiStageQuery"]["payload"];
        let stages = payload["stages"].as_array().unwrap();
        let last = stages.last().unwrap();
        assert_eq!(
            last["definition"]["processor"]["type"], "segmentGenerator",
            "{form}"
        );
        let counters = &payload["counters"][last["stageNumber"].to_string()];
        let pushed: u64 = counters
            .as_object()
            .unwrap()
            .values()
            .filter_map(|w| w["segmentGenerationProgress"]["rowsPushed"].as_u64())
            .sum();
        assert_eq!(pushed, summary.rows);
    }
}

/// Writes `files` JSON files of `rows` rows each (`ts`, `page` of 13 values, `n`) and
/// returns their paths as an EXTERN `local` input source.
fn local_files(dir: &std::path::Path, files: usize, rows: usize) -> String {
    use std::io::Write;
    let mut paths = Vec::new();
    for f in 0..files {
        let path = dir.join(format!("part{f}.json"));
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for i in 0..rows {
            writeln!(
                out,
                r#"{{"ts":"2015-09-12T{:02}:{:02}:00Z","page":"p{}","n":{i}}}"#,
                i % 24,
                i % 60,
                (i + f) % 13
            )
            .unwrap();
        }
        out.flush().unwrap();
        paths.push(format!("\"{}\"", path.display()));
    }
    format!(r#"{{"type":"local","files":[{}]}}"#, paths.join(","))
}

/// Each stage's `processor.type`, by stage number.
fn processors(payload: &serde_json::Value) -> Vec<&str> {
    payload["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["definition"]["processor"]["type"].as_str().unwrap())
        .collect()
}

/// A GROUP BY over several input partitions is planned as DataFusion's partial
/// aggregation, a hash repartition and the final aggregation: the report shows Druid's
/// three stages (`groupByPreShuffle` with a `hash` shuffle on the group keys,
/// `groupByPostShuffle` with the cluster shuffle, `segmentGenerator`), each with the
/// operators it runs, and counters that follow the rows through them.
#[tokio::test]
async fn a_grouping_ingests_report_shows_the_plans_three_stages() {
    let dir = tempfile::tempdir().unwrap();
    let grove = GroveContext::open(dir.path()).await.unwrap();
    // Inputs outside the data directory, which is never input.
    let inputs = tempfile::tempdir().unwrap();
    let source = local_files(inputs.path(), 4, 500);
    let sql = format!(
        r#"SET maxNumTasks = 3;
INSERT INTO g
SELECT TIME_FLOOR(TIME_PARSE(ts), 'PT1H') AS __time, page, COUNT(*) AS cnt, SUM(n) AS total
FROM TABLE(EXTERN('{source}', '{{"type":"json"}}',
  '[{{"name":"ts","type":"string"}},{{"name":"page","type":"string"}},{{"name":"n","type":"long"}}]'))
GROUP BY 1, 2
PARTITIONED BY DAY CLUSTERED BY page"#
    );
    let prepared = grove.prepare(&sql, &QueryContext::new()).await.unwrap();
    let control = TaskControl::new();
    let summary = grove.run_ingest(&prepared, &control).await.unwrap();
    let report = prepared
        .describe()
        .report(0, &control.progress, &TaskEnd::Success(None));
    let payload = &report["multiStageQuery"]["payload"];
    let stages = payload["stages"].as_array().unwrap();
    assert_eq!(
        processors(payload),
        [
            "groupByPreShuffle",
            "groupByPostShuffle",
            "segmentGenerator"
        ],
        "{payload:#}"
    );
    let def = |n: usize| &stages[n]["definition"];
    // Stage 0 reads the files and hashes its partial groups by the group keys.
    assert_eq!(def(0)["input"][0]["type"], "external");
    assert_eq!(def(0)["shuffleSpec"]["type"], "hash");
    let hashed = def(0)["shuffleSpec"]["clusterBy"]["columns"]
        .as_array()
        .unwrap();
    assert_eq!(hashed.len(), 2, "{}", def(0)["shuffleSpec"]);
    assert!(
        def(0)["processor"]["operators"][0]
            .as_str()
            .unwrap()
            .contains("mode=Partial")
    );
    // Stage 1 reads stage 0, aggregates and routes by time chunk and cluster key.
    assert_eq!(
        def(1)["input"],
        serde_json::json!([{"type": "stage", "stage": 0}])
    );
    assert_eq!(def(1)["shuffleSpec"]["type"], "targetSize");
    assert_eq!(stages[1]["sort"], true);
    assert_eq!(
        def(2)["input"],
        serde_json::json!([{"type": "stage", "stage": 1}])
    );
    for s in stages {
        assert_eq!(s["phase"], "FINISHED", "{s}");
    }
    assert_eq!(
        stages[0]["partitionCount"],
        def(0)["shuffleSpec"]["partitions"]
    );
    assert_eq!(stages[2]["partitionCount"], summary.segments.len());
    // Counters: the files on stage 0, its partial groups out; stage 1's routed rows are
    // the final groups, which are the rows stage 2 pushed.
    let counters = &payload["counters"];
    let total = |stage: &str, counter: &str, field: &str| -> u64 {
        counters[stage]
            .as_object()
            .unwrap()
            .values()
            .map(|w| match &w[counter][field] {
                serde_json::Value::Array(a) => a[0].as_u64().unwrap(),
                v => v.as_u64().unwrap_or(0),
            })
            .sum()
    };
    assert_eq!(total("0", "input0", "rows"), 2_000);
    assert_eq!(total("0", "input0", "files"), 4);
    let partial = total("0", "output", "rows");
    assert!(partial >= summary.rows && partial <= 2_000, "{partial}");
    assert_eq!(total("1", "output", "rows"), summary.rows);
    assert_eq!(
        total("2", "segmentGenerationProgress", "rowsPushed"),
        summary.rows
    );
    // 24 hours x 13 pages.
    assert_eq!(summary.rows, 24 * 13);
}

/// A SELECT task's stages are its plan's too: a GROUP BY with ORDER BY over several
/// partitions is the partial aggregation, the final one, and a merge of the sorted
/// partitions into the results.
#[tokio::test]
async fn a_select_tasks_report_shows_its_plans_stages() {
    let dir = tempfile::tempdir().unwrap();
    let grove = GroveContext::open(dir.path()).await.unwrap();
    // Inputs outside the data directory, which is never input.
    let inputs = tempfile::tempdir().unwrap();
    let source = local_files(inputs.path(), 4, 500);
    let sql = format!(
        r#"SET maxNumTasks = 3;
SELECT page, COUNT(*) AS cnt
FROM TABLE(EXTERN('{source}', '{{"type":"json"}}',
  '[{{"name":"ts","type":"string"}},{{"name":"page","type":"string"}},{{"name":"n","type":"long"}}]'))
GROUP BY page ORDER BY cnt DESC, page"#
    );
    let prepared = grove.prepare(&sql, &QueryContext::new()).await.unwrap();
    let control = TaskControl::new();
    let results = grove.run_query(&prepared, &control, 1_000).await.unwrap();
    assert_eq!(results.num_rows(), 13);
    let report = prepared
        .describe()
        .report(0, &control.progress, &TaskEnd::Success(Some(results)));
    let payload = &report["multiStageQuery"]["payload"];
    let stages = payload["stages"].as_array().unwrap();
    assert_eq!(
        processors(payload),
        ["groupByPreShuffle", "groupByPostShuffle", "scan"],
        "{payload:#}"
    );
    let last = stages.last().unwrap();
    assert_eq!(last["definition"]["shuffleSpec"]["type"], "mix");
    assert_eq!(stages[1]["definition"]["shuffleSpec"]["type"], "maxCount");
    assert_eq!(
        stages[1]["definition"]["shuffleSpec"]["clusterBy"]["columns"][0]["order"],
        "DESCENDING"
    );
    assert_eq!(payload["counters"]["2"]["0"]["output"]["rows"][0], 13);
    // The final groups, sorted per partition: 13 pages over the stage's workers.
    let sorted: u64 = payload["counters"]["1"]
        .as_object()
        .unwrap()
        .values()
        .map(|w| w["output"]["rows"][0].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(sorted, 13, "{payload:#}");
}
