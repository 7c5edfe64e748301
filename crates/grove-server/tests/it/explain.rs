//! EXPLAIN over HTTP: Druid's `EXPLAIN PLAN FOR` on `/druid/v2/sql` and (inline, 200) on
//! `/druid/v2/sql/task`, as the web console's Explain dialog sends it; DataFusion's
//! `EXPLAIN` of an ingest on `/druid/v2/sql`. Nothing is written by either.

use serde_json::{Value, json};

use crate::support::{TestServer, inline};

fn rows() -> Vec<(String, String, i64)> {
    vec![
        (
            "2015-09-12T00:00:00.000Z".to_string(),
            "Rust".to_string(),
            1,
        ),
        ("2015-09-13T00:00:00.000Z".to_string(), "Zig".to_string(), 2),
    ]
}

/// The web console's Explain request for an ingest in the msq-task engine: `EXPLAIN PLAN
/// FOR` after the SET statements, `useNativeQueryExplain` and the console's other keys.
#[tokio::test]
async fn the_consoles_explain_of_a_replace_answers_inline() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), |_| {}).await;
    let sql = format!(
        "SET maxParseExceptions = 5;\nEXPLAIN PLAN FOR\nREPLACE INTO \"wiki\" OVERWRITE ALL\n\
         SELECT TIME_PARSE(ts) AS __time, page, n FROM {}\nPARTITIONED BY DAY\nCLUSTERED BY page",
        inline(&rows())
    );
    let (status, body) = server
        .post(
            "/druid/v2/sql/task",
            json!({
                "query": sql,
                "context": {
                    "executionMode": "async",
                    "finalizeAggregations": false,
                    "groupByEnableMultiValueUnnesting": false,
                    "waitUntilSegmentsLoad": true,
                    "useNativeQueryExplain": true,
                },
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let row = &body[0];
    // What the console reads: [0].PLAN, a JSON array whose every element has `query`,
    // and `signature` and `columnMappings` arrays.
    let plan: Value = serde_json::from_str(row["PLAN"].as_str().unwrap()).unwrap();
    let plan = plan.as_array().unwrap();
    assert_eq!(plan.len(), 1);
    assert_eq!(plan[0]["query"]["statementType"], "REPLACE");
    let physical = &plan[0]["query"]["physicalPlan"];
    assert_eq!(physical["operator"], "SegmentGeneratorExec");
    assert_eq!(physical["inputs"][0]["operator"], "ChunkShuffleExec");
    // The stages the plan runs as, as the task report will show them.
    let stages = &plan[0]["query"]["stages"];
    assert_eq!(stages[0]["processor"], "scan");
    assert_eq!(stages[0]["shuffle"], "targetSize");
    assert_eq!(stages[0]["input"][0]["type"], "external");
    assert_eq!(stages[1]["processor"], "segmentGenerator");
    assert_eq!(stages[1]["input"], json!([{"type": "stage", "stage": 0}]));
    assert_eq!(stages[1]["shuffle"], Value::Null);
    assert!(
        stages[1]["operators"][0]
            .as_str()
            .unwrap()
            .starts_with("SegmentGeneratorExec")
    );
    let logical = plan[0]["query"]["logicalPlan"][0].as_str().unwrap();
    assert!(
        logical.starts_with("GroveIngest: REPLACE INTO wiki OVERWRITE ALL"),
        "{logical}"
    );
    assert_eq!(
        plan[0]["signature"],
        json!([
            {"name": "__time", "type": "LONG"},
            {"name": "page", "type": "STRING"},
            {"name": "n", "type": "LONG"},
        ])
    );
    assert_eq!(
        plan[0]["columnMappings"][1],
        json!({"queryColumn": "page", "outputColumn": "page"})
    );
    assert_eq!(
        row["RESOURCES"],
        r#"[{"name":"EXTERNAL","type":"EXTERNAL"},{"name":"wiki","type":"DATASOURCE"}]"#
    );
    assert_eq!(
        row["ATTRIBUTES"],
        r#"{"statementType":"REPLACE","targetDataSource":{"type":"table","tableName":"wiki"},"partitionedBy":"DAY","clusteredBy":["page"],"replaceTimeChunks":"all"}"#
    );
    // Nothing ran: no task, no datasource.
    let (_, tasks) = server.get("/druid/indexer/v1/tasks").await;
    assert_eq!(tasks, json!([]));
    let (_, sources) = server
        .get("/druid/coordinator/v1/metadata/datasources")
        .await;
    assert_eq!(sources, json!([]));
    server.stop().await;
}

/// On `/druid/v2/sql`: Druid's form for a SELECT (text without the flag, honouring
/// `resultFormat` and `header`), DataFusion's EXPLAIN of an INSERT, and an INSERT itself
/// still refused there.
#[tokio::test]
async fn explain_on_the_sql_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), |_| {}).await;
    server
        .ingest(&format!(
            "INSERT INTO wiki SELECT TIME_PARSE(ts) AS __time, page, n FROM {} PARTITIONED BY DAY",
            inline(&rows())
        ))
        .await;

    let (status, body) = server
        .post(
            "/druid/v2/sql",
            json!({
                "query": "EXPLAIN PLAN FOR SELECT page, COUNT(*) AS c FROM wiki GROUP BY page",
                "resultFormat": "array",
                "header": true,
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0], json!(["PLAN", "RESOURCES", "ATTRIBUTES"]));
    let text = body[1][0].as_str().unwrap();
    assert!(text.starts_with("Logical plan:\n"), "{text}");
    assert!(text.contains("\nPhysical plan:\n"), "{text}");
    assert!(text.contains("AggregateExec"), "{text}");
    assert_eq!(body[1][1], r#"[{"name":"wiki","type":"DATASOURCE"}]"#);
    assert_eq!(body[1][2], r#"{"statementType":"SELECT"}"#);

    let insert = format!(
        "INSERT INTO other SELECT TIME_PARSE(ts) AS __time, page, n FROM {} PARTITIONED BY ALL",
        inline(&rows())
    );
    let (status, body) = server
        .post(
            "/druid/v2/sql",
            json!({"query": format!("EXPLAIN {insert}")}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["plan_type"], "logical_plan");
    assert!(
        body[0]["plan"]
            .as_str()
            .unwrap()
            .starts_with("GroveIngest: INSERT INTO other, PARTITIONED BY ALL"),
        "{body}"
    );
    assert_eq!(body[1]["plan_type"], "physical_plan");
    assert!(
        body[1]["plan"]
            .as_str()
            .unwrap()
            .starts_with("SegmentGeneratorExec: dataSource=other"),
        "{body}"
    );
    // EXPLAIN ANALYZE would run the ingest: not on this endpoint.
    let (status, body) = server
        .post(
            "/druid/v2/sql",
            json!({"query": format!("EXPLAIN ANALYZE {insert}")}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("EXPLAIN ANALYZE of an INSERT or REPLACE runs and publishes it"),
        "{body}"
    );
    let (status, _) = server.post("/druid/v2/sql", json!({"query": insert})).await;
    assert_eq!(status, 400);
    let (_, sources) = server
        .get("/druid/coordinator/v1/metadata/datasources")
        .await;
    assert_eq!(sources, json!(["wiki"]));

    // A bad statement under EXPLAIN PLAN FOR on the task endpoint: Druid's failure shape.
    let (status, body) = server
        .post(
            "/druid/v2/sql/task",
            json!({"query": "EXPLAIN PLAN FOR SELECT nope FROM wiki"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["state"], "FAILED");
    assert_eq!(body["error"]["errorCode"], "invalidInput");
    server.stop().await;
}
