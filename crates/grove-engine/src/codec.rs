//! A datafusion-proto [`PhysicalExtensionCodec`] for Grove's operators, so that a stage's
//! physical plan can be sent to another process (a Ballista executor, say) and rebuilt
//! there: [`ExternScanExec`] (input source, format, signature, splits), the ingest's
//! [`ChunkShuffleExec`] (stage 0) and [`SegmentGeneratorExec`] (stage 1), and the hash
//! form's [`KeyStatsExec`] and [`AssignBucketExec`] (DataFusion's own repartition and
//! sort travel as themselves). Each is encoded
//! as JSON of its parameters; runtime state (counters, buffers, the deep-storage client)
//! is made anew where the plan is decoded. Grove's SQL functions travel by name and are
//! found in the decoding session's function registry.

use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use grove_input::{ExternScanExec, ScanDescriptor};
use serde::{Deserialize, Serialize};

use crate::bucket_exec::{AssignBucketExec, BucketSpec};
use crate::generator_exec::{GeneratorSpec, SegmentGeneratorExec};
use crate::planner::single_input;
use crate::shuffle_exec::{ChunkShuffleExec, ShuffleSpec};
use crate::stats_exec::{KeyStatsExec, StatsSpec};

/// Grove's operators for datafusion-proto.
#[derive(Debug, Default, Clone, Copy)]
pub struct GroveCodec;

/// The encoded form of one operator.
#[derive(Serialize, Deserialize)]
enum Node {
    ExternScan(Box<ScanDescriptor>),
    ChunkShuffle(ShuffleSpec),
    SegmentGenerator(GeneratorSpec),
    KeyStats(StatsSpec),
    AssignBucket(Box<BucketSpec>),
}

fn external(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

impl PhysicalExtensionCodec for GroveCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let node: Node = serde_json::from_slice(buf).map_err(external)?;
        Ok(match node {
            Node::ExternScan(d) => {
                // The decoding session's guard rails (none: any address, as in `grove sql`).
                let policy = ctx
                    .session_config()
                    .get_extension::<grove_input::InputPolicy>()
                    .unwrap_or_default();
                Arc::new(ExternScanExec::from_descriptor(*d, &policy)?)
            }
            Node::ChunkShuffle(spec) => Arc::new(ChunkShuffleExec::try_new(
                single_input(inputs, "ChunkShuffleExec")?,
                spec,
            )?),
            Node::SegmentGenerator(spec) => Arc::new(SegmentGeneratorExec::try_new(
                single_input(inputs, "SegmentGeneratorExec")?,
                spec,
            )?),
            Node::KeyStats(spec) => Arc::new(KeyStatsExec::try_new(
                single_input(inputs, "KeyStatsExec")?,
                spec,
            )?),
            Node::AssignBucket(spec) => Arc::new(AssignBucketExec::try_new(
                single_input(inputs, "AssignBucketExec")?,
                *spec,
            )?),
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
            Node::SegmentGenerator(generator.spec().clone())
        } else if let Some(stats) = node.downcast_ref::<KeyStatsExec>() {
            Node::KeyStats(stats.spec().clone())
        } else if let Some(assign) = node.downcast_ref::<AssignBucketExec>() {
            Node::AssignBucket(Box::new(assign.spec().clone()))
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
    use crate::{GroveContext, IngestNode, PreparedKind, TaskControl};
    use datafusion::physical_plan::displayable;
    use datafusion_proto::bytes::{
        physical_plan_from_bytes_with_extension_codec, physical_plan_to_bytes_with_extension_codec,
    };
    use futures::StreamExt;
    use grove_common::QueryContext;
    use grove_store::NewSegment;

    /// Every segment a plan describes, from all its partitions.
    async fn segments(plan: &dyn ExecutionPlan, ctx: &Arc<TaskContext>) -> Vec<NewSegment> {
        let mut out = Vec::new();
        for p in 0..plan.properties().partitioning.partition_count() {
            let mut stream = plan.execute(p, Arc::clone(ctx)).unwrap();
            while let Some(batch) = stream.next().await {
                out.extend(SegmentGeneratorExec::segments(&batch.unwrap()).unwrap());
            }
        }
        out.sort_by_key(|s| (s.interval, s.path.clone()));
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

    /// An INSERT's physical plan (EXTERN scan with Grove's TIME_PARSE, shuffle, segment
    /// generator) is encoded, decoded in a fresh session with other deep storage, and run
    /// there: the same segments as the plan run where it was made (300 rows over three
    /// days become nine segments of at most 40 rows).
    #[tokio::test]
    async fn an_ingest_plan_round_trips_and_runs_in_a_fresh_session() {
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
        let sql = format!(
            "INSERT INTO codec SELECT TIME_PARSE(ts) AS __time, page, n FROM TABLE(EXTERN(\
             '{{\"type\":\"local\",\"files\":[\"{}\"]}}', '{{\"type\":\"json\"}}', \
             '[{{\"name\":\"ts\",\"type\":\"string\"}},{{\"name\":\"page\",\"type\":\"string\"}},{{\"name\":\"n\",\"type\":\"long\"}}]')) \
             PARTITIONED BY DAY",
            file.display()
        );
        let mut context = QueryContext::new();
        context.set("rowsPerSegment", 40.into()).unwrap();
        context.set("maxNumTasks", 3.into()).unwrap();
        let here = GroveContext::open(dir.path().join("here")).await.unwrap();
        let prepared = here.prepare(&sql, &context).await.unwrap();
        let PreparedKind::Ingest(plan) = &prepared.kind else {
            panic!("an ingest");
        };
        let logical = IngestNode::try_new(plan, &prepared.task_id, &prepared.context)
            .unwrap()
            .into_plan();
        let physical = prepared.state.create_physical_plan(&logical).await.unwrap();
        let local = segments(physical.as_ref(), &prepared.state.task_ctx()).await;

        let there = GroveContext::open(dir.path().join("there")).await.unwrap();
        let fresh = there.prepare("SELECT 1", &context).await.unwrap();
        let ctx = fresh.state.task_ctx();
        let decoded = round_trip(&physical, &ctx);
        let remote = segments(decoded.as_ref(), &ctx).await;

        assert_eq!(remote.len(), 9);
        assert_eq!(remote.iter().map(|s| s.num_rows).sum::<u64>(), 300);
        assert!(remote.iter().all(|s| s.num_rows <= 40));
        let shape = |s: &[NewSegment]| -> Vec<_> {
            s.iter()
                .map(|s| (s.interval, s.num_rows, s.range.clone(), s.size))
                .collect()
        };
        assert_eq!(shape(&remote), shape(&local));
        for s in &remote {
            let path = s.load_spec["path"].as_str().unwrap();
            assert!(path.contains("there"), "{path}");
            assert!(std::path::Path::new(path).exists(), "{path}");
        }
        // Both stages counted every row in the decoded plan too.
        let generator = decoded.downcast_ref::<SegmentGeneratorExec>().unwrap();
        assert_eq!(generator.counters().total(|w| &w.input.rows), 300);
        let shuffle = decoded.children()[0]
            .downcast_ref::<ChunkShuffleExec>()
            .unwrap();
        assert_eq!(shuffle.counters().total(|w| &w.output.rows), 300);
        // A plan can run again: a second run of the decoded plan writes the same.
        for s in &remote {
            std::fs::remove_file(s.load_spec["path"].as_str().unwrap()).unwrap();
        }
        assert_eq!(
            shape(&segments(decoded.as_ref(), &ctx).await),
            shape(&local)
        );
    }

    /// The hash form (`groveShuffle: "hash"`): the plan waiting for its buckets, the key
    /// statistics operator, and the plan with its buckets all round-trip; the decoded
    /// statistics give the same buckets, and the decoded plan, run in a fresh session,
    /// writes the same segments as the plan run where it was made, and the same as the
    /// in-process form of the same statement.
    #[tokio::test]
    async fn the_hash_form_round_trips_and_runs_in_a_fresh_session() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rows.json");
        // One day, 600 rows of 600 distinct keys: range buckets of about 100 rows.
        let rows: String = (0..600)
            .map(|i| {
                format!(
                    "{{\"ts\":\"2015-09-12T{:02}:{:02}:00Z\",\"page\":\"p{:04}\",\"n\":{i}}}\n",
                    i % 24,
                    i % 60,
                    (i * 7919) % 600
                )
            })
            .collect();
        std::fs::write(&file, rows).unwrap();
        let sql = format!(
            "REPLACE INTO codec OVERWRITE ALL SELECT TIME_PARSE(ts) AS __time, page, n FROM TABLE(EXTERN(\
             '{{\"type\":\"local\",\"files\":[\"{}\"]}}', '{{\"type\":\"json\"}}', \
             '[{{\"name\":\"ts\",\"type\":\"string\"}},{{\"name\":\"page\",\"type\":\"string\"}},{{\"name\":\"n\",\"type\":\"long\"}}]')) \
             PARTITIONED BY ALL CLUSTERED BY page",
            file.display()
        );
        let plan_of = |form: &'static str| {
            let sql = sql.clone();
            let dir = dir.path().join(form);
            async move {
                let mut context = QueryContext::new();
                context.set("rowsPerSegment", 100.into()).unwrap();
                context.set("maxNumTasks", 3.into()).unwrap();
                context.set("groveShuffle", form.into()).unwrap();
                let here = GroveContext::open(dir).await.unwrap();
                let prepared = here.prepare(&sql, &context).await.unwrap();
                let PreparedKind::Ingest(plan) = &prepared.kind else {
                    panic!("an ingest");
                };
                let logical = IngestNode::try_new(plan, &prepared.task_id, &prepared.context)
                    .unwrap()
                    .into_plan();
                let physical = prepared.state.create_physical_plan(&logical).await.unwrap();
                (here, prepared, physical)
            }
        };
        let (_chunk_ctx, chunk_prepared, chunked) = plan_of("chunk").await;
        let in_process = segments(chunked.as_ref(), &chunk_prepared.state.task_ctx()).await;

        let (_here, prepared, waiting) = plan_of("hash").await;
        let ctx = prepared.state.task_ctx();
        let shown = displayable(waiting.as_ref()).indent(true).to_string();
        for op in [
            "AssignBucketExec",
            "RepartitionExec: partitioning=Hash([__grove_partition",
            "SortExec",
            "SegmentGeneratorExec",
        ] {
            assert!(shown.contains(op), "{op} in {shown}");
        }
        let waiting = round_trip(&waiting, &ctx);
        let physical = crate::ingest::with_key_statistics(waiting, ctx, &TaskControl::new())
            .await
            .unwrap();
        let assign = crate::ingest::operators(&physical, |a: &AssignBucketExec| a.spec().clone());
        let planned = assign[0].plan.clone().expect("buckets");
        assert_eq!(planned.chunks.len(), 1);
        assert!(planned.buckets() >= 5, "{planned:?}");
        // The statistics operator round-trips and gives the same statistics.
        let stats: Arc<dyn ExecutionPlan> = Arc::new(
            KeyStatsExec::try_new(
                Arc::clone(
                    crate::ingest::operators(&physical, |a: &AssignBucketExec| {
                        Arc::clone(a.input())
                    })
                    .first()
                    .unwrap(),
                ),
                StatsSpec {
                    writer: assign[0].writer.clone(),
                    order: assign[0].order.clone(),
                },
            )
            .unwrap(),
        );
        let _ = round_trip(&stats, &prepared.state.task_ctx());
        let local = segments(physical.as_ref(), &prepared.state.task_ctx()).await;

        let there = GroveContext::open(dir.path().join("there")).await.unwrap();
        let mut context = QueryContext::new();
        context.set("maxNumTasks", 3.into()).unwrap();
        let fresh = there.prepare("SELECT 1", &context).await.unwrap();
        let ctx = fresh.state.task_ctx();
        let decoded = round_trip(&physical, &ctx);
        let remote = segments(decoded.as_ref(), &ctx).await;

        let shape = |s: &[NewSegment]| -> Vec<_> {
            let mut v: Vec<_> = s
                .iter()
                .map(|s| {
                    (
                        s.interval,
                        s.num_rows,
                        s.range.as_ref().map(|r| r.start.clone()),
                    )
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(remote.iter().map(|s| s.num_rows).sum::<u64>(), 600);
        assert!(remote.len() >= 5, "{}", remote.len());
        assert_eq!(shape(&remote), shape(&local));
        // The in-process form cuts the same buckets: the same segments.
        assert_eq!(shape(&remote), shape(&in_process));
        for s in &remote {
            let path = s.load_spec["path"].as_str().unwrap();
            assert!(path.contains("there"), "{path}");
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
