//! Grove's engine: runs Druid SQL statements. INSERT/REPLACE are planned by `grove-sql`,
//! sorted by the cluster key [time chunk, CLUSTERED BY..., __time], cut into segments
//! that are written to deep storage, and published atomically in the metadata store;
//! SELECTs run on DataFusion over datasource tables.
//!
//! [`GroveContext`] is the entry point for embedding programs, the CLI, the HTTP server
//! and the sqllogictest runner alike.

mod codec;
mod compact;
mod context;
pub mod counters;
mod exec;
mod ingest;
mod parquet_writer;
mod query;
mod report;
pub mod result_pages;
pub mod results;
mod stages;
mod system;
mod task;
mod writer;

pub use codec::GroveCodec;
pub use context::{
    DRUID_SCHEMA, GroveContext, GroveOptions, PreparedKind, PreparedStatement, StatementOutcome,
    available_cores, default_memory_limit, parse_byte_size,
};
pub use exec::{ChunkShuffleExec, GeneratorSpec, SegmentGeneratorExec, ShuffleSpec};
pub use ingest::IngestSummary;
pub use query::QueryResults;
pub use report::{
    IngestDescription, QUERY_SELECT_DATASOURCE, TaskDescription, TaskEnd, batch_rows,
};
pub use task::{TaskControl, TaskPhase, TaskProgress};
