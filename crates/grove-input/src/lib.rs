//! Druid input sources and formats for EXTERN: what to read (`inline`, `local`), how it is
//! encoded (`json`, `csv`, `tsv`, gzip by extension), how it is split across workers, and
//! how bad rows are charged against `maxParseExceptions`.
//!
//! The SQL front end (`grove-sql`) turns `TABLE(EXTERN(...))` into an [`ExternTable`]; its
//! scan is an [`ExternScanExec`], a plain DataFusion operator.

mod format;
mod scan;
mod source;

pub use format::{DelimitedFormat, InputFormat, ParseBudget, read_split};
pub use scan::{ExternScanExec, ExternSpec, ExternTable, ScanCounters, assign_splits};
pub use source::{Compression, InputSource, InputSplit};
