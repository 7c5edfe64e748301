//! Integration tests of the embedded engine: publish semantics that SQL alone cannot
//! show (the metadata store's used flags, files left in deep storage), and input sources
//! that need a server or generated files (HTTP, compressions, byte ranges, guard rails).

// Test helpers outside #[test] fns: a panic there is a test failure, which is the point.
#![allow(clippy::unwrap_used)]

mod columnar;
mod datasource;
mod inputs;
mod plans;
mod publish;
mod report;
mod s3;
mod stages;
