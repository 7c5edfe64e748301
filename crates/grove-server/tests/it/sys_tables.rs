//! `sys` tables under `grove serve`: they report the address the server listens on, and
//! a SELECT task sees itself running in `sys.tasks`.

use serde_json::json;

use crate::support::{TestServer, inline};

#[tokio::test]
async fn sys_tables_report_the_listen_address_and_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), |_| {}).await;
    let address = server.base.trim_start_matches("http://").to_string();
    let (host, port) = address.rsplit_once(':').unwrap();
    let port: i64 = port.parse().unwrap();

    let servers = server
        .select("SELECT server, host, plaintext_port, server_type FROM sys.servers")
        .await;
    assert_eq!(
        servers,
        ["coordinator", "historical", "broker", "overlord"]
            .iter()
            .map(|role| json!([address, host, port, role]))
            .collect::<Vec<_>>()
    );

    let rows = [("2015-09-12T00:00:00Z".to_string(), "a".to_string(), 1)];
    let ingest = server
        .submit(
            &format!(
                "INSERT INTO wiki SELECT TIME_PARSE(ts) AS __time, page, n FROM {} PARTITIONED BY DAY",
                inline(&rows)
            ),
            json!({}),
        )
        .await;
    assert_eq!(server.wait_terminal(&ingest).await["statusCode"], "SUCCESS");

    let served = server
        .select(
            "SELECT ss.server, s.datasource, s.is_available FROM sys.server_segments ss \
             JOIN sys.segments s ON s.segment_id = ss.segment_id",
        )
        .await;
    assert_eq!(served, vec![json!([address, "wiki", 1])]);

    // Every task so far is listed (the SELECTs above too); the finished INSERT, and this
    // SELECT, which is running while it reads the table.
    let id = server
        .submit(
            "SELECT task_id, type, datasource, status, runner_status, location, host, \
             plaintext_port, error_msg FROM sys.tasks \
             WHERE datasource = 'wiki' OR status = 'RUNNING' ORDER BY created_time",
            json!({}),
        )
        .await;
    assert_eq!(server.wait_terminal(&id).await["statusCode"], "SUCCESS");
    let report = server.report(&id).await;
    let tasks = &report["multiStageQuery"]["payload"]["results"]["results"];
    let count = server.select("SELECT COUNT(*) FROM sys.tasks").await;
    // Two SELECTs, the INSERT, the sys.tasks SELECT and this COUNT.
    assert_eq!(count, vec![json!([5])]);
    assert_eq!(
        tasks,
        &json!([
            [
                ingest,
                "query_controller",
                "wiki",
                "SUCCESS",
                "NONE",
                null,
                null,
                -1,
                null
            ],
            [
                id,
                "query_controller",
                "__query_select",
                "RUNNING",
                "RUNNING",
                address,
                host,
                port,
                null
            ]
        ])
    );
    server.stop().await;
}
