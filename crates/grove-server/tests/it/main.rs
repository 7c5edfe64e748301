//! HTTP tests against a real Grove server on an ephemeral port.

// Test helpers outside #[test] fns: a panic there is a test failure, which is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod cloud;
mod console;
mod coordinator;
mod explain;
mod inputs;
mod limits;
mod sql_api;
mod statements;
mod support;
mod sys_tables;
mod task_api;
mod task_lifecycle;
