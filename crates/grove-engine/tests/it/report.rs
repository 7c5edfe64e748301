//! The live report follows the statement's plan: its workers, running and pending tasks,
//! and the statistics phase of a range-partitioned ingest.

use std::sync::atomic::Ordering::Relaxed;

use grove_common::QueryContext;
use grove_engine::{GroveContext, TaskEnd, TaskPhase, TaskProgress};

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

    // Waiting for a slot: the workers are pending, only the controller runs.
    let report = description.report(0, &progress, &TaskEnd::Running);
    let status = &report["multiStageQuery"]["payload"]["status"];
    assert_eq!(status["pendingTasks"], 2);
    assert_eq!(status["runningTasks"], 1);
    assert_eq!(status["workers"], serde_json::json!({}));

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
        let control = grove_engine::TaskControl::new();
        let summary = grove.run_ingest(&prepared, &control).await.unwrap();
        assert!(summary.rows > 0);
        let stages = control.progress.stages();
        assert_eq!(stages.len(), 2, "{form}");
        assert_eq!(stages[0].total(|w| &w.output.rows), summary.rows, "{form}");
        assert_eq!(stages[1].total(|w| &w.input.rows), summary.rows);
        assert_eq!(stages[1].total(|w| &w.segments.rows_pushed), summary.rows);
        assert_eq!(stages[1].total(|w| &w.output.rows), summary.rows);
        let description = prepared.describe();
        let report = description.report(0, &control.progress, &TaskEnd::Success(None));
        let counters = &report["multiStageQuery"]["payload"]["counters"]["1"];
        let pushed: u64 = counters
            .as_object()
            .unwrap()
            .values()
            .filter_map(|w| w["segmentGenerationProgress"]["rowsPushed"].as_u64())
            .sum();
        assert_eq!(pushed, summary.rows);
    }
}
