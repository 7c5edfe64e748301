//! Druid's `sys` schema for a single process that is broker, coordinator, overlord and
//! historical at once.
//!
//! - `segments`: every used segment. Grove queries its visible segments itself, so those
//!   are reported as loaded once (`num_replicas` 1, `is_available` 1,
//!   `replication_factor` 1); a fully overshadowed used segment is not served by anyone
//!   (`num_replicas` 0, `is_available` 0, `replication_factor` 0).
//! - `server_segments`: this process with each visible segment.
//! - `servers`: one row per role, in Druid's node-role order.
//! - `tasks`: the task records of the metadata store (`query_controller` tasks).
//! - `supervisors`: always empty (no streaming ingestion).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::{DataFusionError, Result};
use grove_common::time::format_millis;
use grove_store::{DataSegment, MetadataStore, TaskFilter, TaskRecord, visible_segments};

use super::{
    Cell, Columns, Kind, ServerInfo, SharedServerInfo, SystemRows, SystemTable, flag, long,
    server_info, total_memory_bytes,
};

use Kind::{Bigint, Varchar};

const SEGMENTS: Columns = &[
    ("segment_id", Varchar),
    ("datasource", Varchar),
    ("start", Varchar),
    ("end", Varchar),
    ("size", Bigint),
    ("version", Varchar),
    ("partition_num", Bigint),
    ("num_replicas", Bigint),
    ("num_rows", Bigint),
    ("is_active", Bigint),
    ("is_published", Bigint),
    ("is_available", Bigint),
    ("is_realtime", Bigint),
    ("is_overshadowed", Bigint),
    ("shard_spec", Varchar),
    ("dimensions", Varchar),
    ("metrics", Varchar),
    ("projections", Varchar),
    ("last_compaction_state", Varchar),
    ("replication_factor", Bigint),
];

const SERVER_SEGMENTS: Columns = &[("server", Varchar), ("segment_id", Varchar)];

const SERVERS: Columns = &[
    ("server", Varchar),
    ("host", Varchar),
    ("plaintext_port", Bigint),
    ("tls_port", Bigint),
    ("server_type", Varchar),
    ("tier", Varchar),
    ("curr_size", Bigint),
    ("max_size", Bigint),
    ("storage_size", Bigint),
    ("is_leader", Bigint),
    ("start_time", Varchar),
    ("version", Varchar),
    ("build_revision", Varchar),
    ("labels", Varchar),
    ("available_processors", Bigint),
    ("total_memory", Bigint),
];

const TASKS: Columns = &[
    ("task_id", Varchar),
    ("group_id", Varchar),
    ("type", Varchar),
    ("datasource", Varchar),
    ("created_time", Varchar),
    ("queue_insertion_time", Varchar),
    ("status", Varchar),
    ("runner_status", Varchar),
    ("duration", Bigint),
    ("location", Varchar),
    ("host", Varchar),
    ("plaintext_port", Bigint),
    ("tls_port", Bigint),
    ("error_msg", Varchar),
];

const SUPERVISORS: Columns = &[
    ("supervisor_id", Varchar),
    ("datasource", Varchar),
    ("state", Varchar),
    ("detailed_state", Varchar),
    ("healthy", Bigint),
    ("type", Varchar),
    ("source", Varchar),
    ("suspended", Bigint),
    ("spec", Varchar),
];

/// The tier Druid puts data servers in by default.
const DEFAULT_TIER: &str = "_default_tier";

/// The tables of `sys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SysTable {
    Segments,
    ServerSegments,
    Servers,
    Tasks,
    Supervisors,
}

/// By name, sorted as Druid lists them.
const TABLES: &[(&str, SysTable)] = &[
    ("segments", SysTable::Segments),
    ("server_segments", SysTable::ServerSegments),
    ("servers", SysTable::Servers),
    ("supervisors", SysTable::Supervisors),
    ("tasks", SysTable::Tasks),
];

#[derive(Debug)]
struct SysState {
    metadata: Arc<MetadataStore>,
    server: SharedServerInfo,
}

/// Druid's `sys` schema over the metadata store.
#[derive(Debug)]
pub(crate) struct SysSchema {
    state: Arc<SysState>,
}

impl SysSchema {
    pub(crate) fn new(metadata: Arc<MetadataStore>, server: SharedServerInfo) -> Self {
        Self {
            state: Arc::new(SysState { metadata, server }),
        }
    }
}

#[async_trait]
impl SchemaProvider for SysSchema {
    fn table_names(&self) -> Vec<String> {
        TABLES.iter().map(|(n, _)| n.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        Ok(TABLES.iter().find(|(n, _)| *n == name).map(|(_, table)| {
            Arc::new(SystemTable::new(SysRows {
                table: *table,
                state: Arc::clone(&self.state),
            })) as Arc<dyn TableProvider>
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        TABLES.iter().any(|(n, _)| *n == name)
    }
}

#[derive(Debug)]
struct SysRows {
    table: SysTable,
    state: Arc<SysState>,
}

#[async_trait]
impl SystemRows for SysRows {
    fn columns(&self) -> Columns {
        match self.table {
            SysTable::Segments => SEGMENTS,
            SysTable::ServerSegments => SERVER_SEGMENTS,
            SysTable::Servers => SERVERS,
            SysTable::Tasks => TASKS,
            SysTable::Supervisors => SUPERVISORS,
        }
    }

    async fn rows(&self, _session: &dyn Session) -> Result<Vec<Vec<Cell>>> {
        let server = server_info(&self.state.server);
        let metadata = &self.state.metadata;
        match self.table {
            SysTable::Segments => segment_rows(metadata.used_segments_all().await?),
            SysTable::ServerSegments => Ok(with_visibility(metadata.used_segments_all().await?)
                .into_iter()
                .filter(|(_, visible)| *visible)
                .map(|(s, _)| vec![Cell::from(server.address()), Cell::from(s.id())])
                .collect()),
            SysTable::Servers => {
                let served: u64 = with_visibility(metadata.used_segments_all().await?)
                    .iter()
                    .filter(|(_, visible)| *visible)
                    .map(|(s, _)| s.size)
                    .fold(0, u64::saturating_add);
                Ok(server_rows(&server, served))
            }
            SysTable::Tasks => Ok(metadata
                .tasks(&TaskFilter::default())
                .await?
                .iter()
                .map(|t| task_row(t, &server))
                .collect()),
            SysTable::Supervisors => Ok(Vec::new()),
        }
    }
}

/// Each used segment with whether it is visible, for at least part of its interval,
/// on its datasource's timeline (otherwise it is fully overshadowed), in the order
/// given.
fn with_visibility(used: Vec<DataSegment>) -> Vec<(DataSegment, bool)> {
    let mut by_source: BTreeMap<&str, Vec<DataSegment>> = BTreeMap::new();
    for s in &used {
        by_source.entry(&s.data_source).or_default().push(s.clone());
    }
    let visible: HashSet<String> = by_source
        .into_values()
        .flat_map(visible_segments)
        .map(|s| s.id())
        .collect();
    used.into_iter()
        .map(|s| {
            let v = visible.contains(&s.id());
            (s, v)
        })
        .collect()
}

/// `sys.segments` rows for the used segments.
fn segment_rows(used: Vec<DataSegment>) -> Result<Vec<Vec<Cell>>> {
    with_visibility(used)
        .into_iter()
        .map(|(s, visible)| {
            // Served once by this process when visible, by no one otherwise.
            let replicas = i64::from(visible);
            Ok(vec![
                Cell::from(s.id()),
                Cell::from(s.data_source.as_str()),
                Cell::from(format_millis(s.interval.start)),
                Cell::from(format_millis(s.interval.end)),
                long(s.size),
                Cell::from(s.version.as_str()),
                Cell::from(i64::from(s.shard_spec.partition_num())),
                Cell::from(replicas),
                long(s.num_rows),
                flag(visible),
                flag(true),
                flag(visible),
                flag(false),
                flag(!visible),
                Cell::from(json(&s.shard_spec)?),
                Cell::from(json(&s.dimensions)?),
                // Grove writes no metrics (no rollup) and knows no projections.
                Cell::from("[]"),
                Cell::Null,
                // Never compacted.
                Cell::Null,
                Cell::from(replicas),
            ])
        })
        .collect()
}

/// Compact JSON text (Jackson writes no spaces either).
fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| DataFusionError::External(Box::new(e)))
}

/// The roles Grove plays, in Druid's `NodeRole` order, with `is_leader`.
const ROLES: &[(&str, Option<i64>)] = &[
    ("coordinator", Some(1)),
    ("historical", None),
    ("broker", None),
    ("overlord", Some(1)),
];

/// `sys.servers`: one row per role; the historical serves `served` bytes.
fn server_rows(server: &ServerInfo, served: u64) -> Vec<Vec<Cell>> {
    let processors = i64::try_from(crate::available_cores()).unwrap_or(i64::MAX);
    let memory = total_memory_bytes();
    ROLES
        .iter()
        .map(|(role, leader)| {
            let historical = *role == "historical";
            vec![
                Cell::from(server.address()),
                Cell::from(server.host.as_str()),
                Cell::from(i64::from(server.port)),
                Cell::from(-1i64),
                Cell::from(*role),
                Cell::from(historical.then_some(DEFAULT_TIER)),
                if historical {
                    long(served)
                } else {
                    Cell::from(0i64)
                },
                // No configured maximum or storage size: 0, as Druid reports for
                // servers that announce none.
                Cell::from(0i64),
                Cell::from(0i64),
                Cell::from(*leader),
                Cell::from(format_millis(server.started_ms)),
                Cell::from(env!("CARGO_PKG_VERSION")),
                Cell::Null,
                Cell::Null,
                Cell::from(processors),
                Cell::from(memory),
            ]
        })
        .collect()
}

/// A `sys.tasks` row. Tasks run in this process, so a running task is at its address.
/// Druid's Overlord reports the epoch as the queue insertion time of completed tasks.
fn task_row(task: &TaskRecord, server: &ServerInfo) -> Vec<Cell> {
    let running = task.status == "RUNNING";
    let task_type = task
        .payload
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or("query_controller");
    vec![
        Cell::from(task.id.as_str()),
        Cell::from(task.id.as_str()),
        Cell::from(task_type),
        Cell::from(task.data_source.as_str()),
        Cell::from(format_millis(task.created_ms)),
        Cell::from(format_millis(if running { task.created_ms } else { 0 })),
        Cell::from(task.status.as_str()),
        Cell::from(if running { "RUNNING" } else { "NONE" }),
        Cell::from(if running { 0 } else { task.duration_ms.max(0) }),
        Cell::from(running.then(|| server.address())),
        Cell::from(running.then(|| server.host.clone())),
        Cell::from(if running { i64::from(server.port) } else { -1 }),
        Cell::from(-1i64),
        Cell::from(task.error_msg.clone()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use grove_common::Interval;
    use grove_store::ShardSpec;

    const DAY: i64 = 86_400_000;

    /// Partition `partition` of a core set of `partition + 1` (complete with the
    /// partitions before it).
    fn segment(ds: &str, start: i64, end: i64, version: &str, partition: u32) -> DataSegment {
        DataSegment {
            data_source: ds.into(),
            interval: Interval::new(start, end),
            version: version.into(),
            shard_spec: ShardSpec::Numbered {
                partition_num: partition,
                partitions: partition + 1,
            },
            load_spec: serde_json::json!({"type": "local"}),
            path: format!("{ds}/{start}/{version}/{partition}"),
            dimensions: vec!["page".into(), "added".into()],
            columns: vec![],
            size: 100,
            num_rows: 7,
            used: true,
        }
    }

    fn text(c: &Cell) -> &str {
        match c {
            Cell::Str(s) => s,
            _ => "<not a string>",
        }
    }

    #[test]
    fn overshadowed_used_segments_are_flagged() {
        let old = "2024-01-01T00:00:00.000Z";
        let new = "2024-02-01T00:00:00.000Z";
        let rows = segment_rows(vec![
            segment("w", 0, DAY, old, 0),
            segment("w", 0, 2 * DAY, new, 0),
            // Same interval and version in another datasource: not overshadowed.
            segment("x", 0, DAY, old, 1),
            {
                let mut first = segment("x", 0, DAY, old, 0);
                first.shard_spec = ShardSpec::Numbered {
                    partition_num: 0,
                    partitions: 2,
                };
                first
            },
        ])
        .expect("rows");
        assert_eq!(rows.len(), 4);
        assert!(rows.iter().all(|r| r.len() == SEGMENTS.len()));
        let flags = |r: &Vec<Cell>| -> Vec<Cell> {
            // num_replicas, is_active, is_published, is_available, is_realtime,
            // is_overshadowed, replication_factor
            [7, 9, 10, 11, 12, 13, 19]
                .iter()
                .map(|i| r[*i].clone())
                .collect()
        };
        let l = |n: i64| Cell::Long(n);
        assert_eq!(
            flags(&rows[0]),
            vec![l(0), l(0), l(1), l(0), l(0), l(1), l(0)]
        );
        assert_eq!(
            flags(&rows[1]),
            vec![l(1), l(1), l(1), l(1), l(0), l(0), l(1)]
        );
        assert_eq!(
            flags(&rows[2]),
            vec![l(1), l(1), l(1), l(1), l(0), l(0), l(1)]
        );
        assert_eq!(flags(&rows[3]), flags(&rows[2]));
        let r = &rows[2];
        assert_eq!(
            text(&r[0]),
            "x_1970-01-01T00:00:00.000Z_1970-01-02T00:00:00.000Z_2024-01-01T00:00:00.000Z_1"
        );
        assert_eq!(text(&r[2]), "1970-01-01T00:00:00.000Z");
        assert_eq!(text(&r[3]), "1970-01-02T00:00:00.000Z");
        assert_eq!(r[6], l(1));
        assert_eq!(r[8], l(7));
        assert_eq!(
            text(&r[14]),
            r#"{"type":"numbered","partitionNum":1,"partitions":2}"#
        );
        assert_eq!(text(&r[15]), r#"["page","added"]"#);
        assert_eq!(text(&r[16]), "[]");
        assert_eq!(r[17], Cell::Null);
        assert_eq!(r[18], Cell::Null);
    }

    #[test]
    fn servers_are_one_row_per_role() {
        let info = ServerInfo {
            host: "h".into(),
            port: 8081,
            started_ms: 0,
        };
        let rows = server_rows(&info, 42);
        let roles: Vec<&str> = rows.iter().map(|r| text(&r[4])).collect();
        assert_eq!(roles, ["coordinator", "historical", "broker", "overlord"]);
        assert!(rows.iter().all(|r| r.len() == SERVERS.len()));
        assert!(rows.iter().all(|r| text(&r[0]) == "h:8081"));
        let historical = &rows[1];
        assert_eq!(text(&historical[5]), DEFAULT_TIER);
        assert_eq!(historical[6], Cell::Long(42));
        assert_eq!(historical[9], Cell::Null);
        assert_eq!(rows[0][9], Cell::Long(1));
        assert_eq!(rows[0][6], Cell::Long(0));
        assert_eq!(text(&rows[0][10]), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn running_and_finished_tasks() {
        let info = ServerInfo {
            host: "h".into(),
            port: 8081,
            started_ms: 0,
        };
        let mut task = TaskRecord {
            id: "query-1".into(),
            data_source: "w".into(),
            created_ms: DAY,
            status: "RUNNING".into(),
            duration_ms: -1,
            error_msg: None,
            payload: serde_json::json!({"type": "query_controller"}),
            report: None,
        };
        let running = task_row(&task, &info);
        assert_eq!(running.len(), TASKS.len());
        assert_eq!(text(&running[5]), "1970-01-02T00:00:00.000Z");
        assert_eq!(text(&running[7]), "RUNNING");
        assert_eq!(running[8], Cell::Long(0));
        assert_eq!(text(&running[9]), "h:8081");
        assert_eq!(running[11], Cell::Long(8081));
        task.status = "FAILED".into();
        task.duration_ms = 12;
        task.error_msg = Some("Canceled: stop".into());
        let failed = task_row(&task, &info);
        assert_eq!(text(&failed[5]), "1970-01-01T00:00:00.000Z");
        assert_eq!(text(&failed[7]), "NONE");
        assert_eq!(failed[8], Cell::Long(12));
        assert_eq!((&failed[9], &failed[10]), (&Cell::Null, &Cell::Null));
        assert_eq!(failed[11], Cell::Long(-1));
        assert_eq!(text(&failed[13]), "Canceled: stop");
    }

    /// sys.tasks and sys.servers through SQL, over task records in the metadata store
    /// and the address set on the context.
    #[tokio::test]
    async fn tasks_and_servers_through_sql() {
        let dir = tempfile::tempdir().expect("tempdir");
        let grove = crate::GroveContext::open(dir.path()).await.expect("open");
        let record = |id: &str, created_ms: i64| TaskRecord {
            id: id.into(),
            data_source: "wiki".into(),
            created_ms,
            status: "RUNNING".into(),
            duration_ms: -1,
            error_msg: None,
            payload: serde_json::json!({"type": "query_controller", "id": id}),
            report: None,
        };
        let metadata = grove.metadata();
        metadata
            .insert_task(&record("query-a", DAY))
            .await
            .expect("insert");
        metadata
            .insert_task(&record("query-b", 2 * DAY))
            .await
            .expect("insert");
        metadata
            .finish_task(
                "query-a",
                "FAILED",
                1500,
                Some("Canceled: by user"),
                &serde_json::json!({}),
            )
            .await
            .expect("finish");
        // A clone shares the address.
        grove.clone().set_server_address("10.0.0.1", 8081);
        let batches = grove
            .sql(
                "SELECT task_id || '|' || group_id || '|' || type || '|' || datasource || '|' \
                 || created_time || '|' || queue_insertion_time || '|' || status || '|' \
                 || runner_status || '|' || CAST(duration AS VARCHAR) || '|' \
                 || COALESCE(location, 'NULL') || '|' || COALESCE(host, 'NULL') || '|' \
                 || CAST(plaintext_port AS VARCHAR) || '|' || CAST(tls_port AS VARCHAR) || '|' \
                 || COALESCE(error_msg, 'NULL') AS row FROM sys.tasks ORDER BY task_id",
            )
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        let rows = arrow::util::pretty::pretty_format_batches(&batches)
            .expect("format")
            .to_string();
        let expected = [
            "query-a|query-a|query_controller|wiki|1970-01-02T00:00:00.000Z|\
             1970-01-01T00:00:00.000Z|FAILED|NONE|1500|NULL|NULL|-1|-1|Canceled: by user",
            "query-b|query-b|query_controller|wiki|1970-01-03T00:00:00.000Z|\
             1970-01-03T00:00:00.000Z|RUNNING|RUNNING|0|10.0.0.1:8081|10.0.0.1|8081|-1|NULL",
        ];
        for line in expected {
            assert!(rows.contains(line), "{line} not in\n{rows}");
        }
        let servers = grove
            .sql("SELECT DISTINCT server FROM sys.servers")
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        let servers = arrow::util::pretty::pretty_format_batches(&servers)
            .expect("format")
            .to_string();
        assert!(servers.contains("| 10.0.0.1:8081 |"), "{servers}");
    }
}
