//! Runs every `sql-tests/**/*.slt` file through Grove's embedded engine, each file with
//! its own fresh data directory, from the repository root (so relative `local` input
//! paths such as `sql-tests/data/...` resolve).
//!
//! `cargo test -p grove-slt --test sqllogictests -- [--complete] [FILTER...]`:
//! `--complete` rewrites expected output in place; filters select files by substring.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use datafusion_sqllogictest::{df_value_validator, value_normalizer};
use grove_slt::GroveSltEngine;

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "slt") {
            out.push(path);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let complete = args.iter().any(|a| a == "--complete");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if let Err(e) = std::env::set_current_dir(&root) {
        eprintln!("cannot enter {}: {e}", root.display());
        return ExitCode::FAILURE;
    }
    let mut files = Vec::new();
    if let Err(e) = collect(Path::new("sql-tests"), &mut files) {
        eprintln!("cannot list sql-tests: {e}");
        return ExitCode::FAILURE;
    }
    files.sort();
    files.retain(|f| {
        filters.is_empty()
            || filters
                .iter()
                .any(|p| f.to_string_lossy().contains(p.as_str()))
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut failures = Vec::new();
    for file in &files {
        let result = runtime.block_on(run_file(file, complete));
        match result {
            Ok(()) => println!("ok   {}", file.display()),
            Err(e) => {
                println!("FAIL {}\n{e}", file.display());
                failures.push(file.clone());
            }
        }
    }
    println!(
        "\n{} files, {} passed, {} failed",
        files.len(),
        files.len() - failures.len(),
        failures.len()
    );
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn run_file(file: &Path, complete: bool) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let data_dir = dir.path().to_path_buf();
    let mut runner = sqllogictest::Runner::new(move || {
        let data_dir = data_dir.clone();
        async move { GroveSltEngine::open(&data_dir).await }
    });
    runner.with_column_validator(|_, _| true);
    runner.with_normalizer(value_normalizer);
    runner.with_validator(df_value_validator);
    if complete {
        runner
            .update_test_file(file, " ", df_value_validator, value_normalizer, |_, _| true)
            .await
            .map_err(|e| e.to_string())
    } else {
        runner
            .run_file_async(file)
            .await
            .map_err(|e| e.display(true).to_string())
    }
}
