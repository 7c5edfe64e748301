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

/// jemalloc rather than glibc's malloc or mimalloc.
///
/// - glibc's per-thread arenas kept each finished task's heap: a server's peak grew task
///   after task (S4: 1.6, 1.9, 2.3 GB over three rounds).
/// - mimalloc stayed flat across tasks, but an ingest at scale fragmented it: on S6 at
///   `--memory-limit 512MB` its heap held 2.0 GB of resident memory for 0.5-0.75 GB of
///   live allocations, in large pages pinned by a few long-lived buffers. jemalloc, which
///   gives large buffers extents of their own, peaks at 1.1-1.25 GB on the same run, in
///   the same time (docs/engine.md, "Memory").
///
/// jemalloc also serves C's `malloc` (the `unprefixed_malloc_on_supported_platforms`
/// feature), so the C libraries inside take memory from the same place: zstd allocates a
/// context of about a megabyte per Parquet column written, which glibc handed out as
/// fresh pages (mmap) for every column of every segment, each zeroed by the kernel on
/// first touch. See [`allocator`] for when freed memory goes back to the system.
#[cfg(not(feature = "dhat-heap"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// With the `dhat-heap` feature, Rust's allocations go through dhat, which writes a heap
/// profile (`dhat-heap.json`, with every allocation site's bytes at the peak) when the
/// command ends; for `grove sql`, to find where an ingest's memory goes (docs/engine.md,
/// "Memory"). Slow: not for serving.
#[cfg(feature = "dhat-heap")]
#[global_allocator]
static GLOBAL: dhat::Alloc = dhat::Alloc;

/// When jemalloc gives freed memory back to the system.
///
/// An ingest frees and allocates gigabytes as it runs (decoded batches, spilled and read
/// back, gathered, encoded). Memory handed back is soon faulted in again, and the kernel
/// zeroes every page it faults in; memory kept is held beyond the budget. jemalloc's
/// default keeps freed pages about ten seconds (S6 at 512MB: 1.56 GB peak), and handing
/// them back at once cost 30% in time (115 s against 88, a third of it the kernel's).
/// Freed pages are kept about three seconds, and a background thread hands them back, so
/// an idle server shrinks too. Under a memory budget below the default one, they are
/// kept one second: a smaller peak (S6 at 512MB: 1,183 MiB against 1,382) for up to 8%
/// more time on small jobs (docs/engine.md has the measurements).
mod allocator {
    #![allow(unsafe_code)]

    /// jemalloc's options (read once, before `main`): background purging threads,
    /// freed ("dirty") pages handed back over about three seconds, and no second, lazily
    /// purged ("muzzy") stage. `MALLOC_CONF` in the environment still overrides them.
    ///
    /// The C declaration is `const char *malloc_conf`: a pointer to the first byte of
    /// a NUL-terminated string, which `Option<&u8>` is in memory.
    // SAFETY: jemalloc reads this symbol, a pointer to a static NUL-terminated string,
    // and nothing else defines it.
    #[unsafe(no_mangle)]
    #[allow(non_upper_case_globals)]
    pub(crate) static malloc_conf: Option<&'static u8> =
        Some(&b"background_thread:true,dirty_decay_ms:3000,muzzy_decay_ms:0\0"[0]);

    /// How long freed pages are kept under a budget below the default one (ms).
    const KEEP_FREED_UNDER_SMALL_BUDGET_MS: isize = 1000;

    /// Keeps freed pages a shorter time when the memory budget (`--memory-limit`, as
    /// given) is below the default one: the process then peaks closer to the budget.
    /// A budget that does not parse is left for the engine to refuse.
    pub(crate) fn fit_to_budget(memory_limit: Option<&str>) {
        let Some(Ok(limit)) = memory_limit.map(grove_engine::parse_byte_size) else {
            return;
        };
        if limit < grove_engine::default_memory_limit() && std::env::var_os("MALLOC_CONF").is_none()
        {
            // Every arena there is (jemalloc's MALLCTL_ARENAS_ALL), and those to come.
            for name in [c"arena.4096.dirty_decay_ms", c"arenas.dirty_decay_ms"] {
                set_decay(name, KEEP_FREED_UNDER_SMALL_BUDGET_MS);
            }
        }
    }

    /// How often the governor looks at the process's resident memory.
    const GOVERNOR_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);

    /// The resident size above which the governor purges: the budget and half again,
    /// room for what the budget does not count (decoders, writers, batches in flight).
    pub(crate) fn purge_threshold(budget: usize) -> usize {
        budget.saturating_add(budget / 2)
    }

    /// Starts the resident-memory governor for a memory budget (`--memory-limit` as
    /// given, or the default): a thread that reads the process's resident size every
    /// 20 ms and, above [`purge_threshold`], has jemalloc hand every freed page back at
    /// once instead of after its decay time. The budget bounds what Grove holds; freed
    /// pages waiting for decay are what pushed the resident size past it (S6 at 512MB:
    /// 0.55 GB live, 0.95 GB resident). Below the threshold nothing changes, so the
    /// cost is a purge now and then under pressure. Without `/proc` (not Linux), or with
    /// a budget that does not parse (the engine refuses it), there is no governor.
    pub(crate) fn govern(memory_limit: Option<&str>) {
        let budget = match memory_limit.map(grove_engine::parse_byte_size) {
            Some(Ok(limit)) => limit,
            Some(Err(_)) => return,
            None => grove_engine::default_memory_limit(),
        };
        if resident_bytes().is_none() {
            return;
        }
        let threshold = purge_threshold(budget);
        let spawned = std::thread::Builder::new()
            .name("grove-memory-governor".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(GOVERNOR_INTERVAL);
                    if resident_bytes().is_some_and(|rss| rss > threshold) {
                        purge();
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("no memory governor: {e}");
        }
    }

    /// The process's resident size, from `/proc/self/statm` (pages, times the page size).
    pub(crate) fn resident_bytes() -> Option<usize> {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
        // SAFETY: sysconf has no preconditions; it reads a constant of the system.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
        Some(pages.saturating_mul(page))
    }

    /// Hands every freed page of every arena back to the system now (jemalloc's
    /// `arena.<MALLCTL_ARENAS_ALL>.purge`). Returns whether jemalloc did it.
    pub(crate) fn purge() -> bool {
        // SAFETY: a control without input or output.
        let r = unsafe {
            tikv_jemalloc_sys::mallctl(
                c"arena.4096.purge".as_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            )
        };
        r == 0
    }

    /// Sets jemalloc's decay time `name` (an `ssize_t` in ms); a failure leaves it.
    fn set_decay(name: &std::ffi::CStr, mut ms: isize) {
        // SAFETY: writes an `ssize_t`, the type of jemalloc's decay times.
        let _ = unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                (&raw mut ms).cast::<std::ffi::c_void>(),
                std::mem::size_of::<isize>(),
            )
        };
    }

    #[cfg(test)]
    mod tests {
        use std::ffi::{CStr, c_void};

        /// Reads jemalloc's control value `name` as a `T`.
        fn mallctl<T: Default>(name: &CStr) -> T {
            let mut value = T::default();
            let mut len = std::mem::size_of::<T>();
            // SAFETY: `value` is a `T` of `len` bytes, which is what `name` holds.
            let r = unsafe {
                tikv_jemalloc_sys::mallctl(
                    name.as_ptr(),
                    (&raw mut value).cast::<c_void>(),
                    &mut len,
                    std::ptr::null_mut(),
                    0,
                )
            };
            assert_eq!(r, 0, "mallctl {name:?}");
            value
        }

        #[test]
        fn c_malloc_is_jemallocs() {
            unsafe extern "C" {
                fn malloc(size: usize) -> *mut c_void;
                fn free(ptr: *mut c_void);
            }
            for size in [16, 4 << 20] {
                // SAFETY: a plain allocation, checked and freed below.
                let mut p = unsafe { malloc(size) };
                assert!(!p.is_null());
                // jemalloc names the arena of an allocation of its own, and fails for
                // any other pointer.
                let mut arena: u32 = u32::MAX;
                let mut len = std::mem::size_of::<u32>();
                // SAFETY: reads an unsigned into `arena`, given a pointer-sized value.
                let r = unsafe {
                    tikv_jemalloc_sys::mallctl(
                        c"arenas.lookup".as_ptr(),
                        (&raw mut arena).cast::<c_void>(),
                        &mut len,
                        (&raw mut p).cast::<c_void>(),
                        std::mem::size_of::<*mut c_void>(),
                    )
                };
                // SAFETY: allocated above, freed once.
                unsafe { free(p) };
                assert_eq!(r, 0, "malloc({size}) did not come from jemalloc");
                assert_ne!(arena, u32::MAX);
            }
        }

        #[test]
        fn the_options_are_in_force() {
            let dirty: isize = mallctl(c"opt.dirty_decay_ms");
            let muzzy: isize = mallctl(c"opt.muzzy_decay_ms");
            let background: bool = mallctl(c"opt.background_thread");
            // The environment may override them (see above); the test runs without.
            if std::env::var_os("MALLOC_CONF").is_none() {
                assert_eq!((dirty, muzzy, background), (3000, 0, true));
            }
        }

        #[test]
        fn a_small_budget_keeps_freed_pages_a_shorter_time() {
            if std::env::var_os("MALLOC_CONF").is_some() {
                return;
            }
            let arenas = || -> isize { mallctl(c"arenas.dirty_decay_ms") };
            super::fit_to_budget(Some("not a size"));
            super::fit_to_budget(Some("64GiB"));
            assert_eq!(arenas(), 3000);
            super::fit_to_budget(Some("512MB"));
            assert_eq!(arenas(), super::KEEP_FREED_UNDER_SMALL_BUDGET_MS);
            let arena0: isize = mallctl(c"arena.0.dirty_decay_ms");
            assert_eq!(arena0, super::KEEP_FREED_UNDER_SMALL_BUDGET_MS);
        }

        #[test]
        fn the_governor_purges_above_the_budget_and_half() {
            assert_eq!(super::purge_threshold(512 << 20), 768 << 20);
            assert_eq!(super::purge_threshold(usize::MAX), usize::MAX);
        }

        /// Freed pages stay resident until their decay time, or until a purge hands them
        /// back: 96 MiB freed (blocks of 1 MiB, which jemalloc keeps in its arenas, not
        /// in a thread cache), then a purge, and the resident size is back down.
        #[test]
        fn a_purge_hands_freed_pages_back_at_once() {
            let rss = || super::resident_bytes().expect("/proc/self/statm");
            let before = rss();
            let mut blocks: Vec<Vec<u8>> = (0..96).map(|_| vec![1u8; 1 << 20]).collect();
            for b in &mut blocks {
                b[4096] = 2;
            }
            let holding = rss();
            assert!(holding >= before + (64 << 20), "{before} -> {holding}");
            drop(blocks);
            assert!(super::purge());
            let after = rss();
            assert!(
                after + (64 << 20) <= holding,
                "holding {holding}, after a purge {after}"
            );
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
        /// TOML config file (host, port, data_dir, task_slots, task_queue_size,
        /// allow_unauthenticated_network, lock_timeout_ms,
        /// max_body_bytes, allow_local_dirs, allowed_protocols, allow_hosts,
        /// allowed_env_vars, memory_limit,
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
        /// Tasks that may be running or waiting at once; more get 429 [default: 1000].
        #[arg(long, value_name = "N")]
        task_queue_size: Option<usize>,
        /// Listen on a non-loopback --host although Grove has no authentication yet
        /// (anyone who reaches the port can use every API).
        #[arg(long)]
        allow_unauthenticated_network: bool,
        /// Directory `local` input sources may read under (repeatable) [default: the
        /// directory the server starts in].
        #[arg(long = "allow-local-dir", value_name = "DIR")]
        allow_local_dirs: Vec<PathBuf>,
        /// Protocol `http` input sources may use (repeatable) [default: http, https].
        #[arg(long = "allow-protocol", value_name = "PROTOCOL")]
        allowed_protocols: Vec<String>,
        /// Host name, address or CIDR network `http` inputs may reach although it is not
        /// public (repeatable) [default: public addresses only].
        #[arg(long = "allow-host", value_name = "HOST")]
        allow_hosts: Vec<String>,
        /// Environment variable an `environment` password provider may read
        /// (repeatable) [default: none].
        #[arg(long = "allow-env-var", value_name = "NAME")]
        allowed_env_vars: Vec<String>,
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
    match cli.command {
        Command::Serve {
            config,
            host,
            port,
            data_dir,
            task_slots,
            task_queue_size,
            allow_unauthenticated_network,
            allow_local_dirs,
            allowed_protocols,
            allow_hosts,
            allowed_env_vars,
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
            if let Some(n) = task_queue_size {
                cfg.task_queue_size = n;
            }
            if allow_unauthenticated_network {
                cfg.allow_unauthenticated_network = true;
            }
            if !allow_local_dirs.is_empty() {
                cfg.allow_local_dirs = allow_local_dirs;
            }
            if !allowed_protocols.is_empty() {
                cfg.allowed_protocols = allowed_protocols;
            }
            if !allow_hosts.is_empty() {
                cfg.allow_hosts = allow_hosts;
            }
            if !allowed_env_vars.is_empty() {
                cfg.allowed_env_vars = allowed_env_vars;
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
            allocator::fit_to_budget(cfg.memory_limit.as_deref());
            allocator::govern(cfg.memory_limit.as_deref());
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
            allocator::fit_to_budget(memory_limit.as_deref());
            allocator::govern(memory_limit.as_deref());
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
