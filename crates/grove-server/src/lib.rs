//! Grove's server: Druid's SQL task API over HTTP (axum), the task lifecycle (slots,
//! locks, cancellation, durable task records), and the server configuration.
//!
//! ```text
//! POST /druid/v2/sql/task ─▶ TaskManager::submit ─▶ GroveContext::prepare (400 on bad SQL)
//!                                 │ record RUNNING in the metadata store, 202 {taskId}
//!                                 ▼
//!              slot ─▶ lock ─▶ GroveContext::run_ingest / run_query ─▶ final report stored
//! ```

mod api;
mod config;
mod coordinator;
mod http;
mod locks;
pub mod progress;
mod sql_api;
mod statements;
mod tasks;

pub use api::{AppState, router};
pub use config::{ServerConfig, serve};
pub use locks::{LockGuard, LockManager, LockMode};
pub use tasks::{
    LiveTask, MAX_SELECT_RESULT_ROWS, RunnerState, SubmitError, SubmitOptions, TaskManager,
};
