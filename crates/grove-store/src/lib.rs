//! Grove's storage: deep storage for segment files (object_store; a local directory by
//! default), Druid's segment model (ids, versions, shard specs, payloads), the metadata
//! store (SQLite by default, a PostgreSQL-compatible schema) with its atomic publish, and
//! datasources as DataFusion tables over their visible segments (Druid's timeline with
//! partial overshadowing), pruned by `__time` and range shard specs before any file is
//! opened.

mod deep;
mod metadata;
mod pruning;
mod scan;
mod segment;
mod table;
mod tasks;
mod timeline;

pub use deep::DeepStorage;
pub use metadata::{
    MetadataStore, NewSegment, PublishMode, PublishRequest, PublishResult, RangeBounds,
};
pub use scan::{SegmentScan, SegmentScans};
pub use segment::{DataSegment, SegmentColumn, ShardSpec, segment_id, version_string};
pub use table::{DatasourceTable, DruidSchema, union_schema, visible_segments};
pub use tasks::{TaskFilter, TaskRecord};
pub use timeline::{VisibleSegment, timeline};
