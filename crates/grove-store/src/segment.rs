//! Druid segments: identity (id, version), shard specs and the metadata payload.

use grove_common::Interval;
use grove_common::time::format_millis;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A segment's shard spec, in Druid's JSON shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ShardSpec {
    /// `{"type":"numbered","partitionNum":n,"partitions":core}`.
    Numbered {
        /// Partition number within the time chunk and version.
        #[serde(rename = "partitionNum")]
        partition_num: u32,
        /// Core partitions (0 for appended segments).
        partitions: u32,
    },
    /// `{"type":"range","dimensions":[..],"start":[..]|null,"end":[..]|null,...}`.
    Range {
        /// The CLUSTERED BY string columns the range is over.
        dimensions: Vec<String>,
        /// Inclusive lower bound (`null` for the first partition).
        start: Option<Vec<Option<String>>>,
        /// Exclusive upper bound (`null` for the last partition).
        end: Option<Vec<Option<String>>>,
        /// Partition number.
        #[serde(rename = "partitionNum")]
        partition_num: u32,
        /// Partitions in the core set.
        #[serde(rename = "numCorePartitions")]
        num_core_partitions: u32,
    },
}

impl ShardSpec {
    /// The partition number.
    pub fn partition_num(&self) -> u32 {
        match self {
            Self::Numbered { partition_num, .. } | Self::Range { partition_num, .. } => {
                *partition_num
            }
        }
    }

    /// Druid's shard spec type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Numbered { .. } => "numbered",
            Self::Range { .. } => "range",
        }
    }
}

/// A column of a segment with its Druid native type (`STRING`, `LONG`, ...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentColumn {
    /// Name.
    pub name: String,
    /// Druid native type; `__time` is `LONG` as Druid reports it.
    #[serde(rename = "type")]
    pub native_type: String,
}

/// A published segment: what the metadata store holds about one segment file.
#[derive(Clone, Debug, PartialEq)]
pub struct DataSegment {
    /// Datasource.
    pub data_source: String,
    /// Time chunk.
    pub interval: Interval,
    /// Version (ISO timestamp string).
    pub version: String,
    /// Shard spec.
    pub shard_spec: ShardSpec,
    /// Where the file is: `{"type":"local","path":...}`.
    pub load_spec: Value,
    /// Path of the file inside deep storage.
    pub path: String,
    /// Columns other than `__time`, in order.
    pub dimensions: Vec<String>,
    /// Every column with its type, `__time` included.
    pub columns: Vec<SegmentColumn>,
    /// File size in bytes.
    pub size: u64,
    /// Rows in the segment.
    pub num_rows: u64,
    /// Whether the segment is used (visible unless overshadowed).
    pub used: bool,
}

impl DataSegment {
    /// Druid's segment id: `<ds>_<start>_<end>_<version>[_<partitionNum>]`.
    pub fn id(&self) -> String {
        segment_id(
            &self.data_source,
            &self.interval,
            &self.version,
            self.shard_spec.partition_num(),
        )
    }

    /// Druid's segment payload JSON.
    pub fn payload(&self) -> Value {
        serde_json::json!({
            "dataSource": self.data_source,
            "interval": self.interval.to_string(),
            "version": self.version,
            "loadSpec": self.load_spec,
            "dimensions": self.dimensions.join(","),
            "metrics": "",
            "shardSpec": self.shard_spec,
            "binaryVersion": 9,
            "size": self.size,
            "numRows": self.num_rows,
            "identifier": self.id(),
        })
    }
}

/// Druid's segment id.
pub fn segment_id(data_source: &str, interval: &Interval, version: &str, partition: u32) -> String {
    let base = format!(
        "{data_source}_{}_{}_{version}",
        format_millis(interval.start),
        format_millis(interval.end)
    );
    if partition == 0 {
        base
    } else {
        format!("{base}_{partition}")
    }
}

/// A version string for a time in milliseconds.
pub fn version_string(ms: i64) -> String {
    format_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_druid() {
        let i = Interval::new(0, 86_400_000);
        assert_eq!(
            segment_id("wiki", &i, "2024-01-01T00:00:00.000Z", 0),
            "wiki_1970-01-01T00:00:00.000Z_1970-01-02T00:00:00.000Z_2024-01-01T00:00:00.000Z"
        );
        assert!(segment_id("wiki", &i, "v", 3).ends_with("_v_3"));
    }

    #[test]
    fn shard_spec_json() {
        let n = ShardSpec::Numbered {
            partition_num: 1,
            partitions: 2,
        };
        assert_eq!(
            serde_json::to_value(&n).unwrap(),
            serde_json::json!({"type":"numbered","partitionNum":1,"partitions":2})
        );
        let r = ShardSpec::Range {
            dimensions: vec!["page".into()],
            start: None,
            end: Some(vec![Some("m".into())]),
            partition_num: 0,
            num_core_partitions: 2,
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"type":"range","dimensions":["page"],"start":null,"end":["m"],
                "partitionNum":0,"numCorePartitions":2})
        );
    }
}
