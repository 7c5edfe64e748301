//! Columnar input formats end to end: Parquet, ORC and Avro OCF files written with their
//! crates' own writers, ingested with SQL and read back (locally and, for Parquet, from a
//! gzip-compressed copy that is staged to a temporary file).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{BinaryArray, Float64Array, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use grove_engine::GroveContext;

use crate::publish::scalar;

fn batch() -> RecordBatch {
    let n = 200;
    let schema = Arc::new(Schema::new(vec![
        Field::new("ts", DataType::Utf8, false),
        Field::new("page", DataType::Utf8, true),
        Field::new("added", DataType::Int32, false),
        Field::new("delta", DataType::Float64, false),
        Field::new("raw", DataType::Binary, false),
    ]));
    let ts: Vec<String> = (0..n)
        .map(|i| format!("2016-06-{:02}T{:02}:00:00Z", 27 + i % 2, i % 24))
        .collect();
    let page: Vec<Option<String>> = (0..n)
        .map(|i| (i % 10 != 0).then(|| format!("Page {}", i % 7)))
        .collect();
    let raw: Vec<Vec<u8>> = (0..n).map(|i| format!("r{i}").into_bytes()).collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(ts)),
            Arc::new(StringArray::from(page)),
            Arc::new(Int32Array::from((0..n).collect::<Vec<i32>>())),
            Arc::new(Float64Array::from(
                (0..n).map(|i| f64::from(i) + 0.75).collect::<Vec<_>>(),
            )),
            Arc::new(BinaryArray::from_iter_values(raw)),
        ],
    )
    .unwrap()
}

fn write(dir: &Path, format: &str) -> PathBuf {
    let ext = match format {
        "avro_ocf" => "avro",
        other => other,
    };
    let path = dir.join(format!("wiki.{ext}"));
    let file = std::fs::File::create(&path).unwrap();
    let batch = batch();
    match format {
        "parquet" => {
            let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
            w.write(&batch).unwrap();
            w.close().unwrap();
        }
        "orc" => {
            let mut w = orc_rust::ArrowWriterBuilder::new(file, batch.schema())
                .try_build()
                .unwrap();
            w.write(&batch).unwrap();
            w.close().unwrap();
        }
        _ => {
            let mut w =
                arrow_avro::writer::AvroWriter::new(file, batch.schema().as_ref().clone()).unwrap();
            w.write(&batch).unwrap();
            w.finish().unwrap();
        }
    }
    path
}

#[tokio::test]
async fn parquet_orc_and_avro_ingest_and_read_back() {
    let inputs = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let grove = GroveContext::open(dir.path()).await.unwrap();
    let mut files: Vec<(String, PathBuf)> = ["parquet", "orc", "avro_ocf"]
        .iter()
        .map(|f| (f.to_string(), write(inputs.path(), f)))
        .collect();
    // A compressed Parquet file is decompressed into a temporary file first.
    let gz = inputs.path().join("wiki.parquet.gz");
    {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::fast(),
        );
        e.write_all(&std::fs::read(&files[0].1).unwrap()).unwrap();
        e.finish().unwrap();
    }
    files.push(("parquet".into(), gz));
    for (i, (format, path)) in files.iter().enumerate() {
        let table = format!("t{i}");
        grove
            .sql(&format!(
                "INSERT INTO {table} SELECT TIME_PARSE(ts) AS __time, page, added, delta, raw, missing \
                 FROM TABLE(EXTERN('{{\"type\":\"local\",\"files\":[\"{}\"]}}', \
                 '{{\"type\":\"{format}\",\"binaryAsString\":true}}')) \
                 EXTEND (ts VARCHAR, page VARCHAR, added BIGINT, delta DOUBLE, raw VARCHAR, missing VARCHAR) \
                 PARTITIONED BY DAY CLUSTERED BY page",
                path.display()
            ))
            .await
            .unwrap();
        let q = |sql: &str| sql.replace("{t}", &table);
        assert_eq!(
            scalar(&grove, &q("SELECT COUNT(*) FROM {t}")).await,
            200,
            "{path:?}"
        );
        assert_eq!(
            scalar(&grove, &q("SELECT SUM(added) FROM {t}")).await,
            199 * 100
        );
        assert_eq!(
            scalar(&grove, &q("SELECT COUNT(*) FROM {t} WHERE page IS NULL")).await,
            20
        );
        assert_eq!(
            scalar(&grove, &q("SELECT CAST(SUM(delta) * 4 AS BIGINT) FROM {t}")).await,
            (199 * 100 + 150) * 4
        );
        assert_eq!(
            scalar(
                &grove,
                &q("SELECT COUNT(*) FROM {t} WHERE raw = 'r7' AND missing IS NULL")
            )
            .await,
            1
        );
        assert_eq!(
            scalar(&grove, &q("SELECT COUNT(DISTINCT __time) FROM {t}")).await,
            24
        );
    }
}
