//! Druid input sources and formats for EXTERN: what to read (`inline`, `local`, `http`,
//! `s3`, `google`, `azureStorage`), how it is encoded (`json`, `csv`, `tsv`; compression by
//! extension), how it is split across workers (files, and byte ranges of large
//! newline-delimited files), what an operator allows ([`InputPolicy`]), and how bad rows
//! are charged against `maxParseExceptions`.
//!
//! The SQL front end (`grove-sql`) turns `TABLE(EXTERN(...))` into an [`ExternTable`]; its
//! scan is an [`ExternScanExec`], a plain DataFusion operator.

pub mod address;
mod codec;
mod columnar;
mod flatjson;
mod flatten;
mod format;
mod policy;
mod remote;
mod scan;
mod source;
mod split;

pub use codec::{ScanDescriptor, SplitDescriptor, SplitLocation};
pub use columnar::{ColumnarKind, read_columnar};
pub use flatten::{FieldKind, FlattenField, FlattenSpec, Flattener};
pub use format::{ColumnarFormat, DelimitedFormat, InputFormat, ParseBudget, ReadEnv, read_split};
pub use policy::InputPolicy;
pub use remote::{CloudObject, HttpObject, io_handle};
pub use scan::{
    ExternScanExec, ExternSpec, ExternTable, PartitionCounters, ScanCounters, assign_splits,
    cut_splits,
};
pub use source::{
    ClientConfig, CloudObjectSpec, CloudProperties, CloudSource, EndpointConfig, InputSource,
    PasswordProvider, ProviderSpec,
};
pub use split::{Compression, InputSplit, Location, MIN_RANGE_BYTES};
