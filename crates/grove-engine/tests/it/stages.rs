//! The two ingest stages: chunks, sorting, cutting, spilling under a small memory budget.

use std::io::Write;
use std::path::Path;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::TimestampMillisecondType;
use std::sync::atomic::Ordering::Relaxed;

use grove_common::{MsqFault, QueryContext};
use grove_engine::{GroveContext, GroveOptions, TaskControl, TaskPhase};
use grove_store::DataSegment;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::publish::scalar;

const DAY: i64 = 86_400_000;

/// Writes `rows` NDJSON rows over three days: `page` is "hot" for half the rows (a key
/// larger than rowsPerSegment), else one of 50 others; `n` is the row number.
fn write_rows(dir: &Path, rows: usize) -> std::path::PathBuf {
    let path = dir.join("rows.json");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for i in 0..rows {
        // Days 12, 13, 14 in a scrambled order; times scrambled inside each day.
        let day = 12 + (i * 7) % 3;
        let second = (i * 7919) % 86_400;
        let page = if i % 2 == 0 {
            "hot".to_string()
        } else {
            format!("p{:02}", (i / 2 * 31) % 50)
        };
        writeln!(
            f,
            r#"{{"ts":"2015-09-{day}T{:02}:{:02}:{:02}Z","page":"{page}","n":{i}}}"#,
            second / 3600,
            second / 60 % 60,
            second % 60
        )
        .unwrap();
    }
    f.flush().unwrap();
    path
}

fn ingest_sql(file: &Path, rows_per_segment: usize) -> String {
    format!(
        r#"SET rowsPerSegment = {rows_per_segment};
REPLACE INTO t OVERWRITE ALL
SELECT TIME_PARSE(ts) AS __time, page, n
FROM TABLE(EXTERN('{{"type":"local","files":["{}"]}}', '{{"type":"json"}}',
  '[{{"name":"ts","type":"string"}},{{"name":"page","type":"string"}},{{"name":"n","type":"long"}}]'))
PARTITIONED BY DAY CLUSTERED BY page"#,
        file.display()
    )
}

fn read_segment(segment: &DataSegment) -> Vec<RecordBatch> {
    let path = segment.load_spec["path"].as_str().unwrap();
    let file = std::fs::File::open(path).unwrap();
    ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

/// Every segment: rows inside its interval, sorted by (page, __time), keys inside its
/// range shard bounds. Returns the (interval start, rows) of each segment in order.
fn check_segments(segments: &[DataSegment]) -> Vec<(i64, u64)> {
    let mut out = Vec::new();
    for s in segments {
        let mut last: Option<(String, i64)> = None;
        let mut rows = 0u64;
        for b in read_segment(s) {
            let times = b.column(0).as_primitive::<TimestampMillisecondType>();
            let pages = b.column(1).as_string::<i32>();
            for i in 0..b.num_rows() {
                let t = times.value(i);
                assert!(
                    s.interval.contains_millis(t),
                    "row at {t} outside segment {}",
                    s.interval
                );
                let key = (pages.value(i).to_string(), t);
                if let Some(prev) = &last {
                    assert!(prev <= &key, "segment {} not sorted", s.id());
                }
                last = Some(key);
                rows += 1;
            }
            assert_eq!(pages.null_count(), 0);
        }
        assert_eq!(rows, s.num_rows);
        out.push((s.interval.start, rows));
    }
    out.sort();
    out
}

/// Grove on a fresh data directory with a memory budget (`None`: the default).
async fn open(memory: Option<usize>) -> (tempfile::TempDir, GroveContext) {
    let dir = tempfile::tempdir().unwrap();
    let grove = GroveContext::open_with(
        dir.path(),
        &GroveOptions {
            memory_limit: memory,
            max_workers: None,
        },
    )
    .await
    .unwrap();
    (dir, grove)
}

async fn ingest(
    memory: Option<usize>,
    file: &Path,
    rps: usize,
) -> (tempfile::TempDir, GroveContext) {
    let (dir, grove) = open(memory).await;
    grove.sql(&ingest_sql(file, rps)).await.unwrap();
    (dir, grove)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spilling_under_a_tiny_memory_limit_gives_the_same_segments() {
    let input = tempfile::tempdir().unwrap();
    let file = write_rows(input.path(), 60_000);
    let (dir_a, roomy) = ingest(None, &file, 5_000).await;
    let (dir_b, tiny) = ingest(Some(256 << 10), &file, 5_000).await;

    for grove in [&roomy, &tiny] {
        assert_eq!(scalar(grove, "SELECT COUNT(*) FROM t").await, 60_000);
        assert_eq!(
            scalar(grove, "SELECT SUM(n) FROM t").await,
            (0..60_000i64).sum::<i64>()
        );
        assert_eq!(
            scalar(grove, "SELECT COUNT(DISTINCT page) FROM t").await,
            51
        );
    }
    let a = check_segments(&roomy.metadata().used_segments("t").await.unwrap());
    let b = check_segments(&tiny.metadata().used_segments("t").await.unwrap());
    assert_eq!(a, b, "spilling must not change how segments are cut");
    // Three day chunks of 20,000 rows; "hot" (10,000 rows a day) is never split, so each
    // day has one segment of at least 10,000 rows.
    assert_eq!(a.iter().map(|(_, r)| r).sum::<u64>(), 60_000);
    for day in [0, 1, 2] {
        let start = 1_442_016_000_000 + day * DAY;
        let rows: Vec<u64> = a
            .iter()
            .filter(|(s, _)| *s == start)
            .map(|(_, r)| *r)
            .collect();
        assert!(rows.len() >= 2, "day {day}: {rows:?}");
        assert!(rows.iter().any(|&r| r >= 10_000), "day {day}: {rows:?}");
        assert_eq!(rows.iter().sum::<u64>(), 20_000);
    }
    // Spill files are gone once the statement is over.
    for dir in [&dir_a, &dir_b] {
        let left: Vec<_> = std::fs::read_dir(dir.path().join("tmp"))
            .unwrap()
            .flatten()
            .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
            .collect();
        assert!(left.is_empty(), "spill files left: {left:?}");
    }
}

/// A budget that makes stage 0 spill but holds any one chunk: each spilled chunk is read
/// back and sorted in memory (no merge). A smaller one: chunks are merged from sorted
/// runs. The segments are the same either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spilled_chunks_that_fit_are_sorted_in_memory() {
    let input = tempfile::tempdir().unwrap();
    let file = write_rows(input.path(), 60_000);
    let (_dir_a, roomy) = ingest(None, &file, 5_000).await;
    let expected = check_segments(&roomy.metadata().used_segments("t").await.unwrap());
    // 1.5 MiB: stage 0 spills part of the data; 768 KiB per slot holds a chunk read
    // back. 128 KiB: chunks are larger than a slot's share, so they are sorted run by
    // run and merged.
    for (budget, merged) in [(1536usize << 10, false), (128 << 10, true)] {
        let (_dir, grove) = open(Some(budget)).await;
        let prepared = grove
            .prepare(&ingest_sql(&file, 5_000), &QueryContext::new())
            .await
            .unwrap();
        let control = TaskControl::new();
        grove.run_ingest(&prepared, &control).await.unwrap();
        let p = &control.progress;
        let spilled = p.rows_spilled.load(Relaxed);
        let stages = p.ingest_counters();
        let merges = stages[1].total(|w| &w.sort.level1_total);
        assert!(spilled > 0, "budget {budget}: nothing spilled");
        assert_eq!(merges > 0, merged, "budget {budget}: {merges} merges");
        let got = check_segments(&grove.metadata().used_segments("t").await.unwrap());
        assert_eq!(got, expected, "budget {budget}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_chunk_is_one_segment_and_empty_chunks_have_none() {
    let input = tempfile::tempdir().unwrap();
    let file = write_rows(input.path(), 3_000);
    let (_dir, grove) = ingest(Some(64 << 10), &file, 3_000_000).await;
    let segments = grove.metadata().used_segments("t").await.unwrap();
    let cut = check_segments(&segments);
    assert_eq!(cut.len(), 3, "one segment per day that has rows: {cut:?}");
    assert!(cut.iter().all(|(_, rows)| *rows == 1_000));
}

/// Starts an ingest of `rows` rows and cancels it once it reaches `phase`: the Canceled
/// fault, nothing published, no segment or spill file left.
async fn cancel_in(phase: TaskPhase, memory: Option<usize>) {
    let input = tempfile::tempdir().unwrap();
    let file = write_rows(input.path(), 200_000);
    let (dir, grove) = open(memory).await;
    let prepared = grove
        .prepare(&ingest_sql(&file, 1_000), &QueryContext::new())
        .await
        .unwrap();
    let control = TaskControl::new();
    let watcher = control.clone();
    let canceler = tokio::spawn(async move {
        while watcher.progress.phase() < phase {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        watcher.cancel.cancel();
    });
    let err = grove.run_ingest(&prepared, &control).await.unwrap_err();
    canceler.await.unwrap();
    assert_eq!(
        MsqFault::find(&err).map(|f| f.error_code()),
        Some("Canceled"),
        "{err}"
    );
    assert!(grove.metadata().all_segments("t").await.unwrap().is_empty());
    let files: Vec<_> = walk(&dir.path().join("segments"));
    assert!(
        files.is_empty(),
        "files left after cancel in {phase:?}: {files:?}"
    );
    // Spill files go when the last reader of each drops it; readers of a canceled merge
    // stop asynchronously, within moments.
    let mut spill: Vec<_> = walk(&dir.path().join("tmp"));
    for _ in 0..100 {
        if spill.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        spill = walk(&dir.path().join("tmp"));
    }
    assert!(spill.is_empty(), "spill files left: {spill:?}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_while_reading() {
    cancel_in(TaskPhase::Reading, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_while_reading_and_spilling() {
    cancel_in(TaskPhase::Reading, Some(512 << 10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_while_writing() {
    cancel_in(TaskPhase::Writing, Some(512 << 10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_agree_with_the_segments() {
    let input = tempfile::tempdir().unwrap();
    let file = write_rows(input.path(), 30_000);
    let dir = tempfile::tempdir().unwrap();
    let grove = GroveContext::open(dir.path()).await.unwrap();
    // Two workers (maxNumTasks counts the controller).
    let sql = format!("SET maxNumTasks = 3;\n{}", ingest_sql(&file, 4_000));
    let prepared = grove.prepare(&sql, &QueryContext::new()).await.unwrap();
    let control = TaskControl::new();
    let summary = grove.run_ingest(&prepared, &control).await.unwrap();
    let p = &control.progress;
    let scans = p.scans();
    let read: u64 = scans.iter().map(|s| s.total(|c| &c.rows)).sum();
    let bytes: u64 = scans.iter().map(|s| s.total(|c| &c.bytes)).sum();
    assert_eq!(read, 30_000, "rows read");
    assert_eq!(bytes, std::fs::metadata(&file).unwrap().len(), "bytes read");
    assert_eq!(scans.iter().map(|s| s.total(|c| &c.files)).sum::<u64>(), 1);
    assert_eq!(p.rows_out.load(Relaxed), 30_000, "rows written");
    assert_eq!(p.rows_pushed.load(Relaxed), 30_000, "rows published");
    assert_eq!(summary.rows, 30_000);
    assert_eq!(p.chunks.load(Relaxed), 3);
    assert_eq!(p.segments.load(Relaxed), summary.segments.len() as u64);
    let on_disk: u64 = summary.segments.iter().map(|s| s.size).sum();
    assert_eq!(p.bytes_out.load(Relaxed), on_disk, "bytes written");
    assert_eq!(
        summary.segments.iter().map(|s| s.num_rows).sum::<u64>(),
        30_000
    );

    // Per-stage, per-worker counters: rows in equal rows out at every step.
    let stages = p.ingest_counters();
    assert_eq!(stages.len(), 2);
    let (stage0, stage1) = (&stages[0], &stages[1]);
    assert_eq!(stage0.worker_count(), 2);
    assert_eq!(stage0.total(|w| &w.output.rows), 30_000, "stage 0 routed");
    assert!(stage0.total(|w| &w.output.frames) >= 3);
    assert_eq!(stage1.total(|w| &w.input.rows), 30_000, "stage 1 read");
    assert_eq!(
        stage1.total(|w| &w.input.bytes),
        stage0.total(|w| &w.output.bytes),
        "stage 1 reads the bytes stage 0 shuffled"
    );
    assert_eq!(stage1.total(|w| &w.output.rows), 30_000, "segment rows");
    assert_eq!(stage1.total(|w| &w.output.bytes), on_disk);
    assert_eq!(
        stage1.total(|w| &w.output.frames),
        summary.segments.len() as u64
    );
    assert_eq!(stage1.total(|w| &w.segments.rows_processed), 30_000);
    assert_eq!(stage1.total(|w| &w.segments.rows_persisted), 30_000);
    assert_eq!(stage1.total(|w| &w.segments.rows_merged), 30_000);
    assert_eq!(stage1.total(|w| &w.segments.rows_pushed), 30_000);
    // Every chunk (10,000 rows, over rowsPerSegment: split into range buckets) was sorted
    // in memory, bucket by bucket.
    let sorts = stage1.total(|w| &w.sort.level0_total);
    assert!(sorts > 3, "{sorts} sorts");
    assert_eq!(stage1.total(|w| &w.sort.level0_done), sorts);
    assert_eq!(stage1.total(|w| &w.sort.level1_total), 0);
    // Both stage-1 workers did work (three chunks, two at a time).
    assert!(
        stage1
            .workers()
            .iter()
            .all(|w| w.input.rows.load(Relaxed) > 0)
    );
}

/// Rows in time order over days 12 to 14 where every tenth row is a day late: most
/// batches then put nine in ten of their rows in one chunk (which keeps the batch) and
/// copy the rest to the day before. With and without spilling, every row lands once,
/// sorted, and the stages' byte counters agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_mostly_in_one_chunk_are_kept_not_copied() {
    let input = tempfile::tempdir().unwrap();
    let path = input.path().join("ordered.json");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let rows = 30_000usize;
    let mut per_day = [0u64; 3];
    for i in 0..rows {
        let second = i * 3 * 86_400 / rows;
        let day = second / 86_400 - usize::from(i % 10 == 9 && second >= 86_400);
        per_day[day] += 1;
        let page = format!("p{}", i % 7);
        let s = second % 86_400;
        writeln!(
            f,
            r#"{{"ts":"2015-09-{}T{:02}:{:02}:{:02}Z","page":"{page}","n":{i}}}"#,
            12 + day,
            s / 3600,
            s / 60 % 60,
            s % 60
        )
        .unwrap();
    }
    f.flush().unwrap();
    drop(f);
    for budget in [None, Some(256usize << 10)] {
        let (_dir, grove) = open(budget).await;
        let prepared = grove
            .prepare(&ingest_sql(&path, 5_000), &QueryContext::new())
            .await
            .unwrap();
        let control = TaskControl::new();
        grove.run_ingest(&prepared, &control).await.unwrap();
        let segments = check_segments(&grove.metadata().used_segments("t").await.unwrap());
        for (day, want) in per_day.iter().enumerate() {
            let start = 1_442_016_000_000 + day as i64 * DAY;
            let got: u64 = segments
                .iter()
                .filter(|(s, _)| *s == start)
                .map(|(_, r)| r)
                .sum();
            assert_eq!(got, *want, "budget {budget:?}, day {day}");
        }
        assert_eq!(
            scalar(&grove, "SELECT SUM(n) FROM t").await,
            (0..rows as i64).sum::<i64>(),
            "budget {budget:?}"
        );
        let stages = control.progress.ingest_counters();
        assert_eq!(
            stages[1].total(|w| &w.input.bytes),
            stages[0].total(|w| &w.output.bytes),
            "budget {budget:?}"
        );
        assert_eq!(stages[1].total(|w| &w.input.rows), rows as u64);
    }
}

/// `PARTITIONED BY ALL`, REPLACE clustered by a high-cardinality string, two workers: the
/// one time chunk is split at key boundaries drawn from the key sample, both stage-1
/// workers sort and write rows, the segments' range shard specs are disjoint and ordered
/// (and hold their rows), every row is there once, and a memory budget that makes the
/// rows spill gives the same segments. The hash form of the shuffle (`groveShuffle:
/// "hash"`: key statistics, a hash repartition and a sort) gives the same segments too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_time_chunk_is_split_by_key_over_the_workers() {
    let input = tempfile::tempdir().unwrap();
    let path = input.path().join("keys.json");
    let rows = 20_000usize;
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for i in 0..rows {
        let key = format!("k{:05}", (i * 7919) % rows);
        writeln!(
            f,
            r#"{{"ts":"2015-09-12T{:02}:{:02}:00Z","page":"{key}","n":{i}}}"#,
            (i / 60) % 24,
            i % 60
        )
        .unwrap();
    }
    f.flush().unwrap();
    drop(f);
    let sql = |form: &str| {
        format!(
            r#"SET maxNumTasks = 3;
SET rowsPerSegment = 3000;
SET groveShuffle = '{form}';
REPLACE INTO r OVERWRITE ALL
SELECT TIME_PARSE(ts) AS __time, page, n
FROM TABLE(EXTERN('{{"type":"local","files":["{}"]}}', '{{"type":"json"}}',
  '[{{"name":"ts","type":"string"}},{{"name":"page","type":"string"}},{{"name":"n","type":"long"}}]'))
PARTITIONED BY ALL CLUSTERED BY page"#,
            path.display()
        )
    };
    let mut shapes = Vec::new();
    for (form, budget) in [
        ("chunk", None),
        ("chunk", Some(256usize << 10)),
        ("hash", None),
        // DataFusion's sort needs room for the batches the repartition hands it: at
        // 1 MiB it failed once on a loaded machine ("Not enough memory to continue
        // external sort"); 4 MiB is still far below the rows' size.
        ("hash", Some(4usize << 20)),
    ] {
        let (_dir, grove) = open(budget).await;
        let prepared = grove
            .prepare(&sql(form), &QueryContext::new())
            .await
            .unwrap();
        let control = TaskControl::new();
        grove.run_ingest(&prepared, &control).await.unwrap();
        let mut segments = grove.metadata().used_segments("r").await.unwrap();
        segments.sort_by_key(|s| s.shard_spec.partition_num());
        assert!(segments.len() >= 6, "{} segments", segments.len());
        let mut shape = Vec::new();
        let mut previous_end = None;
        for (i, s) in segments.iter().enumerate() {
            let grove_store::ShardSpec::Range {
                dimensions,
                start,
                end,
                ..
            } = &s.shard_spec
            else {
                panic!("not a range shard spec: {:?}", s.shard_spec);
            };
            assert_eq!(dimensions, &["page".to_string()]);
            // Ordered and disjoint: each starts where the one before ended.
            if i == 0 {
                assert_eq!(start, &None);
            } else {
                assert_eq!(start, &previous_end, "segment {i}");
                assert!(start.is_some());
            }
            if i + 1 == segments.len() {
                assert_eq!(end, &None);
            }
            assert!(s.num_rows <= 3_000 + 10, "segment {i}: {} rows", s.num_rows);
            // Its rows are inside its range.
            let bound = |b: &Option<Vec<Option<String>>>| {
                b.as_ref().and_then(|k| k[0].clone()).unwrap_or_default()
            };
            for batch in read_segment(s) {
                let pages = batch.column(1).as_string::<i32>();
                for p in pages.iter().flatten() {
                    assert!(start.is_none() || p >= bound(start).as_str(), "{p} in {i}");
                    assert!(end.is_none() || p < bound(end).as_str(), "{p} in {i}");
                }
            }
            previous_end = end.clone();
            shape.push((s.num_rows, start.clone(), end.clone()));
        }
        assert_eq!(
            segments.iter().map(|s| s.num_rows).sum::<u64>(),
            rows as u64
        );
        assert_eq!(
            scalar(&grove, "SELECT SUM(n) FROM r").await,
            (0..rows as i64).sum::<i64>()
        );
        // Both workers of the segment stage sorted and wrote rows.
        let stages = control.progress.ingest_counters();
        for (w, worker) in stages[1].workers().iter().enumerate() {
            assert!(
                worker.input.rows.load(Relaxed) > 0,
                "worker {w} had no rows"
            );
            assert!(
                worker.output.rows.load(Relaxed) > 0,
                "worker {w} wrote none"
            );
        }
        shapes.push(shape);
    }
    for (i, shape) in shapes.iter().enumerate().skip(1) {
        assert_eq!(
            &shapes[0], shape,
            "neither the budget nor the shuffle's form may change the segments ({i})"
        );
    }
}
