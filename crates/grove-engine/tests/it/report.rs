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
