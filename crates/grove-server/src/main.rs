//! The `grove` command: `grove serve` runs Druid's SQL task API over HTTP; `grove sql`
//! runs Druid SQL from a shell. Both use the same engine and data directory layout.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use datafusion::arrow::record_batch::RecordBatch;
use std::sync::Arc;

use grove_common::QueryContext;
use grove_engine::{GroveContext, StatementOutcome, TaskControl};
use grove_server::ServerConfig;
use tokio_util::sync::CancellationToken;

/// mimalloc rather than glibc's malloc: a server runs task after task, and glibc's
/// per-thread arenas keep each finished task's heap (the bench saw S4's peak grow from
/// 1.6 to 2.3 GB over three rounds), where mimalloc returns freed pages and stays flat.
/// See [`allocator`] for when it returns them.
///
/// mimalloc also serves C's `malloc` (libmimalloc-sys's `override` feature), so the C
/// libraries inside take memory from the same place: zstd allocates a context of
/// about a megabyte per Parquet column written, which glibc handed out as fresh pages
/// (mmap) for every column of every segment, each zeroed by the kernel on first touch.
#[cfg(not(feature = "dhat-heap"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// With the `dhat-heap` feature, Rust's allocations go through dhat, which writes a heap
/// profile (`dhat-heap.json`, with every allocation site's bytes at the peak) when the
/// command ends; for `grove sql`, to find where an ingest's memory goes (docs/engine.md,
/// "Memory"). Slow: not for serving.
#[cfg(feature = "dhat-heap")]
#[global_allocator]
static GLOBAL: dhat::Alloc = dhat::Alloc;

/// When mimalloc gives freed memory back to the system.
///
/// By default it does so one second after the memory was freed. An ingest frees and
/// allocates gigabytes as it runs (decoded batches, spilled and read back, gathered,
/// encoded), so memory handed back was soon faulted in again, and the kernel zeroes every
/// page it faults in: on S4 a quarter of the CPU time was the kernel's, most of it
/// zeroing pages. Freed memory is kept three seconds instead, long enough to be reused
/// by the next batch or chunk, short enough that an idle server soon shrinks and a
/// task's peak stays close to the budget (see docs/engine.md for the measurements).
mod allocator {
    #![allow(unsafe_code)]

    use libmimalloc_sys::{mi_option_set, mi_option_t};

    /// mimalloc v3's `mi_option_purge_delay` (its index in `mi_option_e`; the
    /// `libmimalloc-sys` bindings have no constant for it). A test checks it.
    const PURGE_DELAY: mi_option_t = 15;

    /// How long freed memory is kept before it goes back to the system.
    const KEEP_FREED_MS: std::ffi::c_long = 3_000;

    /// Keeps freed memory for reuse a little longer than mimalloc's default (see above).
    pub(crate) fn keep_freed_memory() {
        // SAFETY: sets an integer option of the allocator; any value is valid, and
        // mimalloc reads its options atomically while other threads allocate.
        unsafe { mi_option_set(PURGE_DELAY, KEEP_FREED_MS) }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn c_malloc_is_mimallocs() {
            unsafe extern "C" {
                fn malloc(size: usize) -> *mut std::ffi::c_void;
                fn free(ptr: *mut std::ffi::c_void);
            }
            for size in [16, 4 << 20] {
                // SAFETY: a plain allocation, checked and freed below.
                let p = unsafe { malloc(size) };
                assert!(!p.is_null());
                // SAFETY: asks whether a pointer lies in mimalloc's heap.
                let ours = unsafe { libmimalloc_sys::mi_is_in_heap_region(p) };
                // SAFETY: allocated above, freed once.
                unsafe { free(p) };
                assert!(ours, "malloc({size}) did not come from mimalloc");
            }
        }

        #[test]
        fn purge_delay_option_is_mimallocs() {
            // Unchanged, the option holds mimalloc v3's default purge delay (1000 ms),
            // which no other option at this index has.
            // SAFETY: reads an integer option.
            let default = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
            assert_eq!(default, 1000);
            keep_freed_memory();
            // SAFETY: as above.
            let set = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
            assert_eq!(set, KEEP_FREED_MS);
        }
    }
}

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
    /// Serve Druid's API: SQL (/druid/v2/sql, /statements, /task), tasks, metadata.
    Serve {
        /// TOML config file (host, port, data_dir, task_slots, lock_timeout_ms,
        /// max_body_bytes, allow_local_dirs, allowed_protocols, memory_limit,
        /// max_workers, query_results_retention_secs, web_console); flags override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to bind [default: 127.0.0.1].
        #[arg(long)]
        host: Option<String>,
        /// Port [default: 8888; 0 picks a free port].
        #[arg(long)]
        port: Option<u16>,
        /// Data directory [default: var].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Tasks that run at once [default: 4].
        #[arg(long)]
        task_slots: Option<usize>,
        /// Directory `local` input sources may read under (repeatable) [default: the
        /// directory the server starts in].
        #[arg(long = "allow-local-dir", value_name = "DIR")]
        allow_local_dirs: Vec<PathBuf>,
        /// Protocol `http` input sources may use (repeatable) [default: http, https].
        #[arg(long = "allow-protocol", value_name = "PROTOCOL")]
        allowed_protocols: Vec<String>,
        /// Memory budget for sorting, shuffling and queries (e.g. 512MB, 2GiB) [default:
        /// 1 GiB, or a quarter of RAM if less]; beyond it work spills to disk under the data directory.
        #[arg(long, value_name = "SIZE")]
        memory_limit: Option<String>,
        /// Most workers one stage may use, whatever maxNumTasks asks [default: the number
        /// of cores].
        #[arg(long, value_name = "N")]
        max_workers: Option<usize>,
        /// Serve a Druid web console build (the web-console folder of a Druid
        /// distribution) at the site root.
        #[arg(long, value_name = "DIR")]
        web_console: Option<PathBuf>,
    },
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
        /// Memory budget (e.g. 512MB, 2GiB) [default: 1 GiB, or a quarter of RAM if less].
        #[arg(long, value_name = "SIZE")]
        memory_limit: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
    Csv,
}

fn main() -> ExitCode {
    #[cfg(feature = "dhat-heap")]
    let _profiler = dhat::Profiler::new_heap();
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Serve { .. } => "info",
        Command::Sql { .. } => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GROVE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
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
    allocator::keep_freed_memory();
    match cli.command {
        Command::Serve {
            config,
            host,
            port,
            data_dir,
            task_slots,
            allow_local_dirs,
            allowed_protocols,
            memory_limit,
            max_workers,
            web_console,
        } => {
            let mut cfg = match config {
                Some(path) => ServerConfig::from_file(&path)?,
                None => ServerConfig::default(),
            };
            if let Some(h) = host {
                cfg.host = h;
            }
            if let Some(p) = port {
                cfg.port = p;
            }
            if let Some(d) = data_dir {
                cfg.data_dir = d;
            }
            if let Some(n) = task_slots {
                cfg.task_slots = n;
            }
            if !allow_local_dirs.is_empty() {
                cfg.allow_local_dirs = allow_local_dirs;
            }
            if !allowed_protocols.is_empty() {
                cfg.allowed_protocols = allowed_protocols;
            }
            if memory_limit.is_some() {
                cfg.memory_limit = memory_limit;
            }
            if max_workers.is_some() {
                cfg.max_workers = max_workers;
            }
            if web_console.is_some() {
                cfg.web_console = web_console;
            }
            grove_server::serve(cfg, shutdown_signal(), |addr| {
                println!("grove listening on http://{addr}");
            })
            .await
            .map_err(|e| -> Box<dyn std::error::Error> { e.to_string().into() })?;
            Ok(())
        }
        Command::Sql {
            data_dir,
            execute,
            file,
            format,
            memory_limit,
        } => {
            let sql = match (execute, file) {
                (Some(sql), _) => sql,
                (None, Some(path)) => std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
                (None, None) => return Err("give SQL with -e \"...\" or -f file.sql".into()),
            };
            let options = grove_engine::GroveOptions {
                memory_limit: memory_limit
                    .as_deref()
                    .map(grove_engine::parse_byte_size)
                    .transpose()
                    .map_err(|e| format!("--memory-limit: {e}"))?,
                max_workers: None,
            };
            let grove = GroveContext::open_with(&data_dir, &options).await?;
            let mut out = std::io::stdout().lock();
            for statement in grove_sql::split_statements(&sql)? {
                // An INSERT or REPLACE draws its stages' progress while it runs.
                let control = TaskControl::new();
                let stop = CancellationToken::new();
                let bars = tokio::spawn(grove_server::progress::draw(
                    Arc::clone(&control.progress),
                    stop.clone(),
                ));
                let outcome = grove
                    .execute_statement_with(&statement, &QueryContext::new(), &control)
                    .await;
                stop.cancel();
                let _ = bars.await;
                let df = match outcome? {
                    StatementOutcome::Query(df) => df,
                    StatementOutcome::Ingest(summary) => grove.summary_frame(&summary)?,
                    StatementOutcome::Set => continue,
                };
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

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
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
