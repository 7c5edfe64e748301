//! Druid SQL on DataFusion: statement splitting and parsing (INSERT/REPLACE with
//! OVERWRITE, PARTITIONED BY and CLUSTERED BY; SET for context parameters), the EXTERN
//! relation planner, Druid's time functions, and the planning of ingest statements into
//! an [`IngestPlan`] that `grove-engine` executes.
//!
//! ```text
//! text ─▶ split_statements ─▶ parse_statement ─▶ DruidStatement
//!            Ingest ─▶ plan_ingest (DataFusion plans the SELECT) ─▶ IngestPlan
//!            DataFusion(SELECT ...) ─▶ SessionState::statement_to_plan
//! ```

mod extern_fn;
pub mod functions;
mod overwrite;
mod params;
mod plan;
mod rewrite;
mod statement;
mod tokens;

pub use extern_fn::ExternRelationPlanner;
pub use overwrite::{overwrite_intervals, overwrite_intervals_in};
pub use params::{SqlParameter, bind_parameters};
pub use plan::{IngestPlan, RESERVED_COLUMNS, plan_ingest, session_zone};
pub use rewrite::apply_time_zone;
pub use statement::{
    ClusterItem, DruidStatement, ExplainStatement, IngestKind, IngestStatement, Overwrite,
    parse_statement,
};
pub use tokens::{is_explain, split_statements};
