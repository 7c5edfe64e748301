//! Server configuration (a TOML file and command-line flags) and the serve loop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use grove_engine::{GroveContext, GroveOptions, parse_byte_size};
use grove_input::InputPolicy;
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::api::{AppState, router};
use crate::tasks::TaskManager;

/// How `grove serve` runs. Every field can come from the config file; flags win.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, rename_all = "snake_case", deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to bind (default 127.0.0.1).
    pub host: String,
    /// Port (default 8888, Druid's router port; 0 = any free port).
    pub port: u16,
    /// Data directory (default ./var).
    pub data_dir: PathBuf,
    /// Tasks that run at once; the rest wait.
    pub task_slots: usize,
    /// Tasks that may be running or waiting at once; a submission beyond it gets 429
    /// (Druid's `druid.indexer.queue.maxSize`).
    pub task_queue_size: usize,
    /// Listen on an address other than loopback although the API has no
    /// authentication: anyone who can reach the port can use every endpoint.
    pub allow_unauthenticated_network: bool,
    /// How long an ingest waits for its time-chunk lock before failing.
    pub lock_timeout_ms: u64,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// HTTP connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Longest wait, in milliseconds, for a request's headers and for each next piece of
    /// its body; a slower client is disconnected.
    pub http_read_timeout_ms: u64,
    /// Directories `local` input sources may read under; empty means the directory the
    /// server was started in.
    pub allow_local_dirs: Vec<PathBuf>,
    /// Protocols `http` input sources may use; empty means Druid's default, http and
    /// https.
    pub allowed_protocols: Vec<String>,
    /// Hosts, addresses or CIDR networks `http` inputs may reach although they are not
    /// public (loopback, private, link-local...); empty: public addresses only.
    pub allow_hosts: Vec<String>,
    /// Environment variables `environment` password providers may read; empty: none.
    pub allowed_env_vars: Vec<String>,
    /// Memory budget for sorting, shuffling and queries, e.g. "2GiB" (default: 1 GiB,
    /// or a quarter of the machine's memory if less); beyond it work spills to `<data_dir>/tmp`.
    pub memory_limit: Option<String>,
    /// Most workers a stage may use, whatever `maxNumTasks` asks (default: the number of
    /// cores).
    pub max_workers: Option<usize>,
    /// How long the statements API keeps a SELECT's results in deep storage after it
    /// ends, in seconds (default 6 hours).
    pub query_results_retention_secs: u64,
    /// A Druid web console build (a Druid distribution's `web-console` folder) to serve
    /// at the site root.
    pub web_console: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8888,
            data_dir: PathBuf::from("var"),
            task_slots: 4,
            task_queue_size: 1000,
            allow_unauthenticated_network: false,
            lock_timeout_ms: 300_000,
            max_body_bytes: 16 << 20,
            max_connections: 1024,
            http_read_timeout_ms: 30_000,
            allow_local_dirs: Vec::new(),
            allowed_protocols: Vec::new(),
            allow_hosts: Vec::new(),
            allowed_env_vars: Vec::new(),
            memory_limit: None,
            max_workers: None,
            query_results_retention_secs: 6 * 3600,
            web_console: None,
        }
    }
}

impl ServerConfig {
    /// Reads a TOML config file.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("invalid config file {}: {e}", path.display()))
    }
}

/// Refuses to listen beyond loopback without authentication, unless the operator said
/// so: every address `host` resolves to must be a loopback one.
pub(crate) async fn check_listen_address(
    config: &ServerConfig,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if config.allow_unauthenticated_network {
        return Ok(());
    }
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((config.host.as_str(), config.port))
        .await
        .map_err(|e| format!("cannot resolve --host {}: {e}", config.host))?
        .collect();
    if !addresses.is_empty() && addresses.iter().all(|a| a.ip().is_loopback()) {
        return Ok(());
    }
    Err(format!(
        "refusing to listen on [{}]: it is not a loopback address, and Grove has no \
         authentication yet, so anyone who can reach the port could run SQL, read every \
         datasource and submit tasks. Listen on loopback (the default, 127.0.0.1) behind \
         a proxy that authenticates, or pass --allow-unauthenticated-network \
         (allow_unauthenticated_network = true in the config file) to accept that",
        config.host
    )
    .into())
}

/// Runs the server until `shutdown` completes. Calls `on_bound` with the bound address
/// (useful with port 0).
pub async fn serve(
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_bound: impl FnOnce(SocketAddr),
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // Before anything is opened or bound.
    check_listen_address(&config).await?;
    let options = GroveOptions {
        memory_limit: config
            .memory_limit
            .as_deref()
            .map(parse_byte_size)
            .transpose()
            .map_err(|e| format!("memory_limit: {e}"))?,
        max_workers: config.max_workers,
    };
    if let Some(dir) = &config.web_console
        && !dir.join(crate::api::CONSOLE_INDEX).is_file()
    {
        return Err(format!(
            "web console: {} has no {}; give the web-console folder of a Druid distribution",
            dir.display(),
            crate::api::CONSOLE_INDEX
        )
        .into());
    }
    let grove = GroveContext::open_with(&config.data_dir, &options).await?;
    let local_dirs = if config.allow_local_dirs.is_empty() {
        vec![std::env::current_dir()?]
    } else {
        config.allow_local_dirs.clone()
    };
    let policy = InputPolicy::restricted(&local_dirs, &config.allowed_protocols)?
        .with_allowed_hosts(&config.allow_hosts)?
        .with_allowed_env_vars(&config.allowed_env_vars);
    tracing::info!(
        allowed_local_dirs = ?policy.local_dirs().unwrap_or_default(),
        allowed_protocols = ?policy.http_protocols(),
        allowed_hosts = ?config.allow_hosts,
        allowed_env_vars = ?config.allowed_env_vars,
        "input guard rails"
    );
    grove.set_input_policy(policy);
    let listener = TcpListener::bind((config.host.as_str(), config.port)).await?;
    let addr = listener.local_addr()?;
    grove.set_server_address(&addr.ip().to_string(), addr.port());
    let tasks = TaskManager::start(
        grove,
        config.task_slots,
        config.task_queue_size,
        Duration::from_millis(config.lock_timeout_ms),
        addr.ip().to_string(),
        addr.port(),
    )
    .await?;
    let limits = crate::http::HttpLimits {
        max_connections: config.max_connections,
        read_timeout: Duration::from_millis(config.http_read_timeout_ms.max(1)),
        shutdown_grace: Duration::from_secs(10),
    };
    let app = crate::http::with_body_timeout(
        router(
            AppState::new(std::sync::Arc::clone(&tasks)),
            config.max_body_bytes,
            config.web_console.as_deref(),
        ),
        &limits,
    );
    let cleaner = tokio::spawn(clean_query_results(
        std::sync::Arc::clone(tasks.grove().deep_storage().results_store()),
        Duration::from_secs(config.query_results_retention_secs),
    ));
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "grove serving Druid's API");
    on_bound(addr);
    crate::http::serve(listener, app, limits, shutdown).await;
    cleaner.abort();
    tasks.cancel_all().await;
    Ok(())
}

/// Deletes stored SELECT results older than `retention`, checking every quarter of it
/// (at least every second, at most every ten minutes).
async fn clean_query_results(
    store: std::sync::Arc<dyn object_store::ObjectStore>,
    retention: Duration,
) {
    let every = (retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    loop {
        match grove_engine::result_pages::delete_expired(&store, retention_ms).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(results = n, "deleted expired query results"),
            Err(e) => tracing::warn!(error = %e, "cannot clean expired query results"),
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(host: &str, allow: bool) -> ServerConfig {
        ServerConfig {
            host: host.into(),
            port: 0,
            allow_unauthenticated_network: allow,
            ..Default::default()
        }
    }

    /// Without authentication Grove listens on loopback only, unless the operator opts
    /// out. Nothing here binds or connects: the check only resolves the address.
    #[tokio::test]
    async fn only_loopback_without_the_opt_out() {
        for host in ["127.0.0.1", "127.0.0.2", "::1", "localhost"] {
            check_listen_address(&on(host, false)).await.unwrap();
        }
        for host in ["0.0.0.0", "::", "10.1.2.3", "192.168.0.7"] {
            let e = check_listen_address(&on(host, false)).await.unwrap_err();
            let e = e.to_string();
            assert!(
                e.contains(&format!("refusing to listen on [{host}]")),
                "{e}"
            );
            assert!(e.contains("--allow-unauthenticated-network"), "{e}");
            check_listen_address(&on(host, true)).await.unwrap();
        }
    }

    /// `serve` refuses before it creates anything.
    #[tokio::test]
    async fn serve_refuses_a_wildcard_host_before_opening_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("var");
        let config = ServerConfig {
            data_dir: data.clone(),
            ..on("0.0.0.0", false)
        };
        let e = serve(config, async {}, |_| panic!("must not bind"))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not a loopback address"), "{e}");
        assert!(!data.exists(), "nothing created");
    }
}
