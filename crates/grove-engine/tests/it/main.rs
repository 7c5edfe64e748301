//! Integration tests of the embedded engine: publish semantics that SQL alone cannot
//! show (the metadata store's used flags, files left in deep storage).

// Test helpers outside #[test] fns: a panic there is a test failure, which is the point.
#![allow(clippy::unwrap_used)]

mod publish;
