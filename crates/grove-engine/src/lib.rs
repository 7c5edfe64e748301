//! Grove's engine: runs Druid SQL statements. INSERT/REPLACE are planned by `grove-sql`,
//! sorted by the cluster key [time chunk, CLUSTERED BY..., __time], cut into segments
//! that are written to deep storage, and published atomically in the metadata store;
//! SELECTs run on DataFusion over datasource tables.
//!
//! [`GroveContext`] is the entry point for embedding programs, the CLI, the HTTP server
//! and the sqllogictest runner alike.
//!
//! An ingest is a DataFusion plan: [`IngestNode`] (logical, `node`) is planned by
//! [`GroveQueryPlanner`] (`planner`) into [`SegmentGeneratorExec`] (`generator_exec`,
//! with `writer` and `parquet_writer`) over [`ChunkShuffleExec`] (`shuffle_exec`: the
//! run; `route`: rows into time chunks; `range`: key statistics and range buckets;
//! `serve` and `sort`: chunks served sorted); `ingest` runs the plan and publishes.

mod bucket_exec;
mod codec;
mod compact;
mod context;
pub mod counters;
mod explain;
mod generator_exec;
mod ingest;
mod node;
mod parquet_writer;
mod planner;
mod query;
mod range;
mod report;
pub mod result_pages;
pub mod results;
mod route;
mod serve;
mod shuffle_exec;
mod sort;
pub mod stage_layout;
mod stats_exec;
mod system;
mod task;
mod writer;

pub use bucket_exec::{AssignBucketExec, BucketPlan, BucketSpec};
pub use codec::GroveCodec;
pub use context::{
    DRUID_SCHEMA, GroveContext, GroveOptions, PreparedKind, PreparedStatement, StatementOutcome,
    available_cores, default_memory_limit, parse_byte_size,
};
pub use generator_exec::{GeneratorSpec, SegmentGeneratorExec};
pub use ingest::IngestSummary;
pub use node::IngestNode;
pub use planner::{GroveQueryPlanner, IngestPlanner};
pub use query::QueryResults;
pub use report::{
    IngestDescription, QUERY_SELECT_DATASOURCE, TaskDescription, TaskEnd, batch_rows,
};
pub use shuffle_exec::{ChunkShuffleExec, ShuffleSpec};
pub use stats_exec::{KeyStatsExec, StatsSpec};
pub use task::{TaskControl, TaskPhase, TaskProgress};
