//! Grove's shared vocabulary: Druid time arithmetic (intervals, periods, segment
//! granularities), the Druid <-> Arrow type mapping, Druid's typed faults and the
//! query context. Every other Grove crate depends on this one; it knows nothing of
//! SQL parsing, storage or HTTP.

pub mod context;
pub mod fault;
pub mod ids;
pub mod time;
pub mod types;

pub use context::{QueryContext, ShuffleForm};
pub use fault::MsqFault;
pub use time::{Granularity, Interval, Period};
