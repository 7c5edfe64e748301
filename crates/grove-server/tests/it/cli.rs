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

/// An INSERT on a terminal draws a progress bar per stage on stderr; with stderr piped
/// (as in every other test here) nothing but the result is printed.
#[test]
fn progress_bars_only_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sql = r#"INSERT INTO w SELECT TIME_PARSE(ts) AS __time, page FROM TABLE(EXTERN('{"type":"inline","data":"{\"ts\":\"2015-09-12T01:00:00Z\",\"page\":\"a\"}"}', '{"type":"json"}')) EXTEND (ts VARCHAR, page VARCHAR) PARTITIONED BY DAY"#;
    let (ok, out, err) = grove_sql(&data, &["-e", sql]);
    assert!(ok, "{err}");
    assert!(!err.contains("stage 0"), "{err}");
    assert!(!out.contains("stage 0"), "{out}");

    // util-linux `script` runs the command on a pseudo-terminal and copies what it drew.
    let Ok(script) = which("script") else {
        eprintln!("SKIPPED: no `script` command to make a terminal");
        return;
    };
    let sql_file = dir.path().join("ingest.sql");
    std::fs::write(&sql_file, sql).unwrap();
    let command = format!(
        "{} sql --data-dir {} -f {}",
        env!("CARGO_BIN_EXE_grove"),
        data.display(),
        sql_file.display()
    );
    let out = Command::new(script)
        .args(["-qec", &command, "/dev/null"])
        .output()
        .unwrap();
    let drawn = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{drawn}");
    assert!(drawn.contains("stage 0 read"), "{drawn}");
    assert!(drawn.contains("stage 1 write"), "{drawn}");
    assert!(drawn.contains("1 segments"), "{drawn}");
    // The result table still follows.
    assert!(
        drawn.contains("| w          | 1    | 1        |"),
        "{drawn}"
    );
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(name))
                .find(|p| p.is_file())
        })
        .ok_or(())
}
