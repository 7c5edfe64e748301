//! A datafusion-proto [`PhysicalExtensionCodec`] for Grove's operators, so that a stage's
//! physical plan can be sent to another process (a Ballista executor, say) and rebuilt
//! there: [`ExternScanExec`] (input source, format, signature, splits), the ingest's
//! [`ChunkShuffleExec`] (stage 0) and [`SegmentGeneratorExec`] (stage 1). Each is encoded
//! as JSON of its parameters; runtime state (counters, buffers, the deep-storage client)
//! is made anew where the plan is decoded. Grove's SQL functions travel by name and are
//! found in the decoding session's function registry.

use std::io::Cursor;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use grove_input::{ExternScanExec, ScanDescriptor};
use serde::{Deserialize, Serialize};

use crate::exec::{ChunkShuffleExec, GeneratorSpec, SegmentGeneratorExec, ShuffleSpec};

/// Grove's operators for datafusion-proto.
#[derive(Debug, Default, Clone, Copy)]
pub struct GroveCodec;

/// The encoded form of one operator.
#[derive(Serialize, Deserialize)]
enum Node {
    ExternScan(Box<ScanDescriptor>),
    ChunkShuffle(ShuffleSpec),
    SegmentGenerator {
        /// The rows' schema as an Arrow IPC stream with no batches.
        rows: Vec<u8>,
        spec: GeneratorSpec,
    },
}

fn external(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

fn schema_to_ipc(schema: &SchemaRef) -> Result<Vec<u8>> {
    let mut writer = StreamWriter::try_new(Vec::new(), schema)?;
    writer.finish()?;
    Ok(writer.into_inner()?)
}

fn schema_from_ipc(bytes: &[u8]) -> Result<SchemaRef> {
    Ok(StreamReader::try_new(Cursor::new(bytes), None)?.schema())
}

impl PhysicalExtensionCodec for GroveCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        _ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let node: Node = serde_json::from_slice(buf).map_err(external)?;
        Ok(match node {
            Node::ExternScan(d) => Arc::new(ExternScanExec::from_descriptor(*d)?),
            Node::ChunkShuffle(spec) => {
                let [input] = inputs else {
                    return Err(DataFusionError::Internal(
                        "ChunkShuffleExec takes one input".into(),
                    ));
                };
                Arc::new(ChunkShuffleExec::try_new(Arc::clone(input), spec)?)
            }
            Node::SegmentGenerator { rows, spec } => {
                Arc::new(SegmentGeneratorExec::new(schema_from_ipc(&rows)?, spec))
            }
        })
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let encoded = if let Some(scan) = node.downcast_ref::<ExternScanExec>() {
            Node::ExternScan(Box::new(scan.descriptor()))
        } else if let Some(shuffle) = node.downcast_ref::<ChunkShuffleExec>() {
            Node::ChunkShuffle(shuffle.spec().clone())
        } else if let Some(generator) = node.downcast_ref::<SegmentGeneratorExec>() {
            Node::SegmentGenerator {
                rows: schema_to_ipc(generator.rows_schema())?,
                spec: generator.spec().clone(),
            }
        } else {
            return Err(DataFusionError::NotImplemented(format!(
                "GroveCodec cannot encode {}",
                node.name()
            )));
        };
        serde_json::to_writer(buf, &encoded).map_err(external)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GroveContext;
    use crate::stages::ChunkOrder;
    use crate::writer::WriterConfig;
    use datafusion::physical_plan::displayable;
    use datafusion_proto::bytes::{
        physical_plan_from_bytes_with_extension_codec, physical_plan_to_bytes_with_extension_codec,
    };
    use futures::StreamExt;
    use grove_common::Granularity;
    use grove_common::fault::{MAX_BUCKETS, MAX_PARTITIONS};
    use grove_common::types::{TIME_COLUMN, storage_type_for_field};
    use grove_store::NewSegment;

    async fn collect(
        plan: &dyn ExecutionPlan,
        ctx: &Arc<TaskContext>,
    ) -> Vec<arrow::array::RecordBatch> {
        let mut out = Vec::new();
        for p in 0..plan.properties().partitioning.partition_count() {
            let mut stream = plan.execute(p, Arc::clone(ctx)).unwrap();
            while let Some(batch) = stream.next().await {
                out.push(batch.unwrap());
            }
        }
        out
    }

    fn round_trip(plan: &Arc<dyn ExecutionPlan>, ctx: &TaskContext) -> Arc<dyn ExecutionPlan> {
        let bytes =
            physical_plan_to_bytes_with_extension_codec(Arc::clone(plan), &GroveCodec).unwrap();
        let decoded =
            physical_plan_from_bytes_with_extension_codec(&bytes, ctx, &GroveCodec).unwrap();
        assert_eq!(
            displayable(decoded.as_ref()).indent(true).to_string(),
            displayable(plan.as_ref()).indent(true).to_string()
        );
        decoded
    }

    /// Stage 0 over a SELECT of an EXTERN scan (with Grove's TIME_PARSE), and stage 1,
    /// each encoded, decoded and run from the decoded plan: 300 rows over three days
    /// become nine segments of at most 40 rows.
    #[tokio::test]
    async fn both_stages_round_trip_through_datafusion_proto() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rows.json");
        let rows: String = (0..300)
            .map(|i| {
                format!(
                    "{{\"ts\":\"2015-09-1{}T{:02}:00:00Z\",\"page\":\"p{}\",\"n\":{i}}}\n",
                    2 + i % 3,
                    i % 24,
                    i % 7
                )
            })
            .collect();
        std::fs::write(&file, rows).unwrap();
        let grove = GroveContext::open(dir.path().join("var")).await.unwrap();
        let df = grove
            .sql(&format!(
                "SELECT TIME_PARSE(ts) AS __time, page, n FROM TABLE(EXTERN(\
                 '{{\"type\":\"local\",\"files\":[\"{}\"]}}', '{{\"type\":\"json\"}}', \
                 '[{{\"name\":\"ts\",\"type\":\"string\"}},{{\"name\":\"page\",\"type\":\"string\"}},{{\"name\":\"n\",\"type\":\"long\"}}]'))",
                file.display()
            ))
            .await
            .unwrap();
        let ctx = Arc::new(df.task_ctx());
        let select = df.create_physical_plan().await.unwrap();
        let schema = select.schema();
        let writer = WriterConfig {
            data_source: "codec".into(),
            task_id: "query-codec".into(),
            granularity: Granularity::from_name("DAY").unwrap(),
            rows_per_segment: 40,
            replace_intervals: None,
            range_dimensions: vec![],
            columns: schema
                .fields()
                .iter()
                .map(|f| (f.name().clone(), storage_type_for_field(f).unwrap()))
                .collect(),
            max_partitions: MAX_PARTITIONS,
            max_buckets: MAX_BUCKETS,
        };
        let order = ChunkOrder {
            columns: vec![schema.index_of(TIME_COLUMN).unwrap()],
        };

        let stage0: Arc<dyn ExecutionPlan> = Arc::new(
            ChunkShuffleExec::try_new(
                select,
                ShuffleSpec {
                    writer: writer.clone(),
                    order: order.clone(),
                    workers: 2,
                },
            )
            .unwrap(),
        );
        let decoded0 = round_trip(&stage0, &ctx);
        let routed: u64 = collect(decoded0.as_ref(), &ctx)
            .await
            .iter()
            .map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::UInt64Array>()
                    .unwrap()
                    .value(0)
            })
            .sum();
        assert_eq!(routed, 300);
        let shuffle = decoded0.downcast_ref::<ChunkShuffleExec>().unwrap();
        assert_eq!(shuffle.counters().total(|w| &w.output.rows), 300);
        let output = shuffle.take_output().unwrap();
        assert_eq!(output.chunks.len(), 3);

        let stage1: Arc<dyn ExecutionPlan> = Arc::new(SegmentGeneratorExec::new(
            Arc::clone(&schema),
            GeneratorSpec {
                writer,
                order,
                output: (0..schema.fields().len()).collect(),
                slots: 2,
                workers: 2,
            },
        ));
        let decoded1 = round_trip(&stage1, &ctx);
        let generator = decoded1.downcast_ref::<SegmentGeneratorExec>().unwrap();
        assert_eq!(generator.rows_schema(), &schema);
        generator.feed(output, None).unwrap();
        let segments: Vec<NewSegment> = collect(decoded1.as_ref(), &ctx)
            .await
            .iter()
            .flat_map(|b| SegmentGeneratorExec::segments(b).unwrap())
            .collect();
        assert_eq!(segments.len(), 9);
        assert_eq!(segments.iter().map(|s| s.num_rows).sum::<u64>(), 300);
        assert!(segments.iter().all(|s| s.num_rows <= 40));
        for s in &segments {
            let path = s.load_spec["path"].as_str().unwrap();
            assert!(std::path::Path::new(path).exists(), "{path}");
        }
    }

    #[test]
    fn other_operators_are_refused_by_name() {
        let plan: Arc<dyn ExecutionPlan> =
            Arc::new(datafusion::physical_plan::empty::EmptyExec::new(Arc::new(
                arrow::datatypes::Schema::empty(),
            )));
        let err = GroveCodec
            .try_encode(
                plan,
                &mut Vec::new(),
                &datafusion_proto::physical_plan::DefaultPhysicalProtoConverter {},
            )
            .unwrap_err();
        assert!(err.to_string().contains("cannot encode EmptyExec"), "{err}");
    }
}
