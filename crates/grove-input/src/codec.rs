//! Serializable descriptions of EXTERN scans, so that a physical plan holding an
//! [`ExternScanExec`] can be sent to another process (a datafusion-proto
//! `PhysicalExtensionCodec` carries these bytes) and rebuilt there. A split is described
//! by where it is (inline data, a file path, an HTTP URI, a cloud object URI), its size
//! and byte range; credentials are not carried: they are resolved again from the input
//! source (and its password providers) where the plan is rebuilt.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use grove_common::types::signature_schema;
use serde::{Deserialize, Serialize};

use crate::scan::{ExternScanExec, ExternSpec};
use crate::source::InputSource;
use crate::split::{InputSplit, Location};

/// Where a split's bytes are, without any live client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SplitLocation {
    /// The inline source's data.
    Inline,
    /// A local file.
    File(PathBuf),
    /// An HTTP(S) URI.
    Http(String),
    /// A cloud object, by URI (`s3://bucket/key`, `gs://...`, `azureStorage://...`).
    Object(String),
}

/// One split.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitDescriptor {
    /// Where.
    pub location: SplitLocation,
    /// Size of the whole file or object, when known.
    pub size: Option<u64>,
    /// Byte range, for a cut file.
    pub range: Option<(u64, u64)>,
}

/// Everything an [`ExternScanExec`] is made of.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScanDescriptor {
    /// Source, format and signature.
    pub spec: ExternSpec,
    /// The columns produced (a projection of the signature), in order.
    pub columns: Vec<String>,
    /// Split groups, one per reader.
    pub splits: Vec<Vec<SplitDescriptor>>,
    /// `maxParseExceptions` (`None` = unlimited).
    pub max_parse_exceptions: Option<u64>,
    /// Output partitions.
    pub partitions: usize,
}

impl SplitDescriptor {
    fn of(split: &InputSplit) -> Self {
        let location = match &split.location {
            Location::Inline(_) => SplitLocation::Inline,
            Location::File(p) => SplitLocation::File(p.clone()),
            Location::Http(h) => SplitLocation::Http(h.url.clone()),
            Location::Object(o) => SplitLocation::Object(o.uri.clone()),
        };
        Self {
            location,
            size: split.size,
            range: split.range,
        }
    }

    fn rebuild(&self, source: &InputSource, policy: &crate::InputPolicy) -> Result<InputSplit> {
        let location = match (&self.location, source) {
            (SplitLocation::Inline, InputSource::Inline { data }) => {
                Location::Inline(Arc::from(data.as_str()))
            }
            (SplitLocation::File(p), InputSource::Local { .. }) => Location::File(p.clone()),
            (SplitLocation::Http(url), InputSource::Http { .. }) => {
                source.http_location(url, policy)?
            }
            (SplitLocation::Object(uri), _) => source.object_location(uri)?,
            (location, _) => {
                return Err(DataFusionError::Plan(format!(
                    "split {location:?} does not belong to an input source of type [{}]",
                    source.type_name()
                )));
            }
        };
        Ok(InputSplit {
            location,
            size: self.size,
            range: self.range,
        })
    }
}

impl ExternScanExec {
    /// The scan as plain data.
    pub fn descriptor(&self) -> ScanDescriptor {
        ScanDescriptor {
            spec: self.spec().clone(),
            columns: datafusion::physical_plan::ExecutionPlan::schema(self)
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect(),
            splits: self
                .split_groups()
                .iter()
                .map(|g| g.iter().map(SplitDescriptor::of).collect())
                .collect(),
            max_parse_exceptions: self.budget().max(),
            partitions: self.partition_count(),
        }
    }

    /// Rebuilds a scan (with fresh counters) from its description; its `http` reads go
    /// through `policy`'s address rule.
    pub fn from_descriptor(d: ScanDescriptor, policy: &crate::InputPolicy) -> Result<Self> {
        let signature = signature_schema(&d.spec.signature);
        let indices = d
            .columns
            .iter()
            .map(|c| signature.index_of(c))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let schema = Arc::new(signature.project(&indices)?);
        let splits = d
            .splits
            .iter()
            .map(|g| {
                g.iter()
                    .map(|s| s.rebuild(&d.spec.source, policy))
                    .collect()
            })
            .collect::<Result<Vec<Vec<_>>>>()?;
        Ok(Self::new(
            Arc::new(d.spec),
            splits,
            schema,
            d.max_parse_exceptions,
            d.partitions,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::physical_plan::ExecutionPlan;
    use datafusion::prelude::SessionContext;
    use futures::StreamExt;

    #[tokio::test]
    async fn a_scan_survives_serialization_and_reads_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.json");
        std::fs::write(&file, "{\"a\":\"x\",\"b\":1}\n{\"a\":\"y\",\"b\":2}\n").unwrap();
        let spec = ExternSpec::from_json(
            &format!(r#"{{"type":"local","files":["{}"]}}"#, file.display()),
            r#"{"type":"json"}"#,
            r#"[{"name":"a","type":"string"},{"name":"b","type":"long"}]"#,
        )
        .unwrap();
        let splits = spec
            .source
            .splits(&crate::InputPolicy::default())
            .await
            .unwrap();
        let schema = Arc::new(signature_schema(&spec.signature).project(&[1]).unwrap());
        let scan = ExternScanExec::new(Arc::new(spec), vec![splits], schema, Some(3), 2);
        let bytes = serde_json::to_vec(&scan.descriptor()).unwrap();
        let back: ScanDescriptor = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, scan.descriptor());
        let rebuilt =
            ExternScanExec::from_descriptor(back, &crate::InputPolicy::default()).unwrap();
        assert_eq!(rebuilt.schema(), scan.schema());
        assert_eq!(rebuilt.partition_count(), 2);
        assert_eq!(rebuilt.budget().max(), Some(3));
        let ctx = SessionContext::new().task_ctx();
        let mut sum = 0;
        for p in 0..2 {
            let mut stream = rebuilt.execute(p, Arc::clone(&ctx)).unwrap();
            while let Some(batch) = stream.next().await {
                let batch = batch.unwrap();
                let b = batch
                    .column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .unwrap();
                sum += b.iter().flatten().sum::<i64>();
            }
        }
        assert_eq!(sum, 3);
    }

    #[test]
    fn a_split_must_match_its_source() {
        let inline = InputSource::Inline { data: "x".into() };
        let d = SplitDescriptor {
            location: SplitLocation::File("/etc/passwd".into()),
            size: None,
            range: None,
        };
        assert!(d.rebuild(&inline, &crate::InputPolicy::default()).is_err());
    }
}
