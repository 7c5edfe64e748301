//! `grove sql`: statements from -e and -f, the three output formats, and errors.

use std::process::Command;

fn grove_sql(data: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_grove"))
        .arg("sql")
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn runs_scripts_and_prints_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let script = dir.path().join("ingest.sql");
    std::fs::write(
        &script,
        r#"-- two rows, two days
SET rowsPerSegment = 1;
REPLACE INTO w OVERWRITE ALL
SELECT TIME_PARSE(ts) AS __time, page
FROM TABLE(EXTERN('{"type":"inline","data":"{\"ts\":\"2015-09-12T01:00:00Z\",\"page\":\"a;b\"}\n{\"ts\":\"2015-09-13T01:00:00Z\",\"page\":\"c\"}"}', '{"type":"json"}'))
  EXTEND (ts VARCHAR, page VARCHAR)
PARTITIONED BY DAY;
"#,
    )
    .unwrap();
    let (ok, out, err) = grove_sql(&data, &["-f", script.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("| w          | 2    | 2        |"), "{out}");

    let q = "SELECT page, TIME_FORMAT(__time) AS t FROM w ORDER BY page";
    let (ok, out, _) = grove_sql(&data, &["-e", q]);
    assert!(ok);
    assert!(out.contains("| a;b  | 2015-09-12T01:00:00.000Z |"), "{out}");
    let (_, out, _) = grove_sql(&data, &["-e", q, "--format", "csv"]);
    assert_eq!(
        out,
        "page,t\na;b,2015-09-12T01:00:00.000Z\nc,2015-09-13T01:00:00.000Z\n"
    );
    let (_, out, _) = grove_sql(&data, &["-e", q, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        v[1],
        serde_json::json!({"page": "c", "t": "2015-09-13T01:00:00.000Z"})
    );

    let (ok, _, err) = grove_sql(&data, &["-e", "INSERT INTO w SELECT 1 AS x"]);
    assert!(!ok);
    assert!(err.contains("requires a PARTITIONED BY"), "{err}");
    let (ok, _, err) = grove_sql(&data, &[]);
    assert!(!ok);
    assert!(err.contains("give SQL with -e"), "{err}");
}
