//! The `grove` command: `grove sql` runs Druid SQL on the embedded defaults.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use datafusion::arrow::record_batch::RecordBatch;
use grove_engine::GroveContext;

#[derive(Parser)]
#[command(
    name = "grove",
    version,
    about = "Druid-compatible SQL ingestion on DataFusion"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run Druid SQL statements (INSERT, REPLACE, SELECT, SET) on a data directory.
    Sql {
        /// Data directory: segments, metadata.db and temporary files live here.
        #[arg(long, default_value = "var")]
        data_dir: PathBuf,
        /// SQL to run (statements separated by `;`).
        #[arg(short = 'e', long = "execute", conflicts_with = "file")]
        execute: Option<String>,
        /// File of SQL statements to run.
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        /// How to print results.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
    Csv,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GROVE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Sql {
            data_dir,
            execute,
            file,
            format,
        } => {
            let sql = match (execute, file) {
                (Some(sql), _) => sql,
                (None, Some(path)) => std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
                (None, None) => return Err("give SQL with -e \"...\" or -f file.sql".into()),
            };
            let grove = GroveContext::open(&data_dir).await?;
            let mut out = std::io::stdout().lock();
            for statement in grove_sql::split_statements(&sql)? {
                let df = grove.sql(&statement).await?;
                let batches = df.collect().await?;
                if batches.iter().all(|b| b.num_columns() == 0) {
                    continue;
                }
                print_batches(&mut out, &batches, format)?;
            }
            Ok(())
        }
    }
}

fn print_batches(
    out: &mut impl Write,
    batches: &[RecordBatch],
    format: Format,
) -> Result<(), Box<dyn std::error::Error>> {
    match format {
        Format::Table => {
            writeln!(
                out,
                "{}",
                datafusion::arrow::util::pretty::pretty_format_batches(batches)?
            )?;
        }
        Format::Json => {
            let mut writer = datafusion::arrow::json::ArrayWriter::new(&mut *out);
            for b in batches {
                writer.write(b)?;
            }
            writer.finish()?;
            writeln!(out)?;
        }
        Format::Csv => {
            let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            for b in batches {
                writer.write(b)?;
            }
        }
    }
    Ok(())
}
