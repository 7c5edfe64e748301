//! [`GroveContext`]: Grove on a DataFusion `SessionContext`. The one entry point used by
//! embedding programs, the CLI, the HTTP server and the sqllogictest runner.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use arrow::array::{RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::dataframe::DataFrame;
use datafusion::execution::SessionState;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use grove_common::QueryContext;
use grove_common::context::MsqOptions;
use grove_input::{ExternTable, InputPolicy};
use grove_sql::{
    DruidStatement, ExplainStatement, ExternRelationPlanner, IngestPlan, IngestStatement,
    parse_statement, plan_ingest, split_statements,
};
use grove_store::{DeepStorage, DruidSchema, MetadataStore};

use crate::explain::{Explained, analyzed_rows, druid_rows};
use crate::ingest::{IngestSummary, execute_ingest, task_id_for};
use crate::node::IngestNode;
use crate::planner::GroveQueryPlanner;

/// How [`GroveContext::open_with`] sets up the process.
#[derive(Debug, Clone, Default)]
pub struct GroveOptions {
    /// Bytes of memory for sorting, shuffling and query operators together; beyond it
    /// they spill to `<data dir>/tmp`. `None`: [`default_memory_limit`].
    pub memory_limit: Option<usize>,
    /// Most workers one stage may use, whatever `maxNumTasks` asks for. `None`: the
    /// number of cores.
    pub max_workers: Option<usize>,
}

/// The number of cores this process may use.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// How many workers and parallel partitions a statement's stages use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StageWorkers {
    /// `maxNumTasks - 1`, bounded by the server's worker limit.
    pub(crate) workers: usize,
    /// Partitions run at once: every worker gets `cores / workers` threads (at least
    /// one), so this is `max(workers, cores)`.
    pub(crate) partitions: usize,
}

impl StageWorkers {
    /// One worker on one partition (a session Grove did not set up for a statement).
    pub(crate) fn single() -> Self {
        Self {
            workers: 1,
            partitions: 1,
        }
    }
}

/// The default memory budget: 1 GiB, or a quarter of the machine's memory when that is
/// less. Beyond the budget stage 0 spills (uncompressed, through the page cache), which
/// costs little, while the process's peak stays near the budget plus what stage 1 sorts.
pub fn default_memory_limit() -> usize {
    const DEFAULT: usize = 1 << 30;
    quarter_of_ram().map_or(DEFAULT, |q| q.min(DEFAULT))
}

/// A quarter of the machine's memory, when it can be read.
fn quarter_of_ram() -> Option<usize> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<usize>().ok())
        })
        .map(|kib| kib * 1024 / 4)
}

/// Parses a byte size as Druid writes them: a plain number of bytes, or a number with
/// `KB`/`MB`/`GB`/`TB` (powers of 1000; `K`, `M`, `G`, `T` too) or `KiB`/`MiB`/`GiB`/`TiB`
/// (powers of 1024).
pub fn parse_byte_size(text: &str) -> std::result::Result<usize, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("invalid size [{text}]: expected a number with an optional unit"))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "invalid size [{text}]: unknown unit [{other}] (use KB, MB, GB, KiB, MiB, GiB)"
            ));
        }
    };
    let bytes = number * factor;
    if !(bytes >= 1.0 && bytes < usize::MAX as f64) {
        return Err(format!("invalid size [{text}]: must be at least one byte"));
    }
    Ok(bytes as usize)
}
use crate::query::{QueryResults, collect_query, plan_is_query};
use crate::system::{ServerInfo, SharedServerInfo};
use crate::task::{TaskControl, TaskPhase};

/// Name of Druid's catalog and schema.
pub const DRUID_SCHEMA: &str = "druid";

/// What running one statement produced.
pub enum StatementOutcome {
    /// A query: its result, not yet executed.
    Query(DataFrame),
    /// An INSERT/REPLACE that has been executed and published.
    Ingest(IngestSummary),
    /// A `SET` of a context parameter.
    Set,
}

/// What a prepared statement will do.
#[derive(Debug)]
pub enum PreparedKind {
    /// Write segments.
    Ingest(Box<IngestPlan>),
    /// Return rows.
    Query(Box<LogicalPlan>),
}

/// A validated, planned statement, ready to run as a task.
pub struct PreparedStatement {
    /// The task id (`query-<sqlQueryId or uuid>`).
    pub task_id: String,
    /// The SQL as submitted.
    pub sql: String,
    /// The effective query context.
    pub context: QueryContext,
    /// The session state it was planned with.
    pub state: SessionState,
    /// The plan.
    pub kind: PreparedKind,
}

impl std::fmt::Debug for PreparedStatement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedStatement")
            .field("task_id", &self.task_id)
            .field("sql", &self.sql)
            .field("kind", &self.kind)
            .finish()
    }
}

/// Grove: Druid SQL over a DataFusion session, with segments in deep storage and a
/// metadata store.
#[derive(Clone)]
pub struct GroveContext {
    ctx: SessionContext,
    metadata: Arc<MetadataStore>,
    deep: DeepStorage,
    data_dir: PathBuf,
    /// Context parameters set with `SET key = value` in this session.
    session_params: Arc<Mutex<QueryContext>>,
    /// The server-wide bound on workers per stage.
    max_workers: usize,
    /// Where this process serves, as `sys.servers` and `sys.tasks` report it.
    server: SharedServerInfo,
}

impl std::fmt::Debug for GroveContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroveContext")
            .field("session_id", &self.ctx.session_id())
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

impl GroveContext {
    /// Opens Grove on the embedded defaults: local deep storage in `<dir>/segments`, a
    /// SQLite metadata store in `<dir>/metadata.db`, spill files in `<dir>/tmp`, and a
    /// memory budget of [`default_memory_limit`].
    pub async fn open(data_dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(data_dir, &GroveOptions::default()).await
    }

    /// [`GroveContext::open`] with options.
    pub async fn open_with(data_dir: impl AsRef<Path>, options: &GroveOptions) -> Result<Self> {
        let data_dir = data_dir.as_ref().to_path_buf();
        let tmp = data_dir.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| {
            DataFusionError::Execution(format!(
                "Cannot create data directory [{}]: {e}",
                data_dir.display()
            ))
        })?;
        let memory = options.memory_limit.unwrap_or_else(default_memory_limit);
        let runtime = RuntimeEnvBuilder::new()
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Directories(vec![tmp])),
            )
            .with_memory_limit(memory, 1.0)
            .build_arc()?;
        tracing::info!(memory_limit_bytes = memory, "memory budget");
        let config = SessionConfig::new().with_information_schema(true);
        let state = datafusion::execution::SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .build();
        let mut grove = Self::with_session(SessionContext::new_with_state(state), data_dir).await?;
        if let Some(n) = options.max_workers {
            grove.set_max_workers(n);
        }
        Ok(grove)
    }

    /// Builds Grove on an existing DataFusion session: registers Druid's functions, the
    /// EXTERN planner and the `druid` catalog (made the default), and switches off
    /// identifier lower-casing (Druid identifiers are case-sensitive).
    pub async fn with_session(ctx: SessionContext, data_dir: impl AsRef<Path>) -> Result<Self> {
        let data_dir = data_dir.as_ref().to_path_buf();
        let metadata = Arc::new(MetadataStore::sqlite(&data_dir.join("metadata.db")).await?);
        let deep = DeepStorage::local(&data_dir.join("segments"))?;
        Self::with_stores(ctx, data_dir, metadata, deep)
    }

    /// Builds Grove on a session with the given stores.
    pub fn with_stores(
        ctx: SessionContext,
        data_dir: PathBuf,
        metadata: Arc<MetadataStore>,
        deep: DeepStorage,
    ) -> Result<Self> {
        {
            // Grove's planner (DataFusion's, plus the ingest's operators) replaces the
            // session's, in place: every clone of `ctx` plans ingests too.
            let state = ctx.state_ref();
            let mut state = state.write();
            *state = datafusion::execution::SessionStateBuilder::new_from_existing(state.clone())
                .with_query_planner(Arc::new(GroveQueryPlanner))
                .build();
        }
        for udf in grove_sql::functions::all() {
            ctx.register_udf(Arc::unwrap_or_clone(udf));
        }
        for udaf in grove_sql::functions::aggregates() {
            ctx.register_udaf(Arc::unwrap_or_clone(udaf));
        }
        ctx.register_relation_planner(Arc::new(ExternRelationPlanner))?;
        let catalog = MemoryCatalogProvider::new();
        catalog.register_schema(
            DRUID_SCHEMA,
            Arc::new(DruidSchema::new(Arc::clone(&metadata), deep.clone())),
        )?;
        let server = Arc::new(RwLock::new(ServerInfo::new()));
        crate::system::register_schemas(
            &catalog,
            DRUID_SCHEMA,
            Arc::clone(&metadata),
            Arc::clone(&server),
        )?;
        ctx.register_catalog(DRUID_SCHEMA, Arc::new(catalog));
        {
            let state = ctx.state_ref();
            let mut state = state.write();
            let options = state.config_mut().options_mut();
            options.sql_parser.enable_ident_normalization = false;
            options.catalog.default_catalog = DRUID_SCHEMA.into();
            options.catalog.default_schema = DRUID_SCHEMA.into();
            options.extensions.insert(MsqOptions::default());
            // Whatever the session allows, its own files are never input.
            let policy = state
                .config()
                .get_extension::<InputPolicy>()
                .map(|p| p.as_ref().clone())
                .unwrap_or_default();
            let policy = protect_own_files(policy, &data_dir, &deep);
            state.config_mut().set_extension(Arc::new(policy));
        }
        Ok(Self {
            ctx,
            metadata,
            deep,
            data_dir,
            session_params: Arc::new(Mutex::new(QueryContext::new())),
            max_workers: available_cores(),
            server,
        })
    }

    /// Sets the address this process serves Druid's API on, as `sys.servers`,
    /// `sys.server_segments` and the location of running tasks in `sys.tasks` report it
    /// (`grove serve` sets its listen address). Shared by every clone of this context;
    /// without it, embedded use reports `localhost:8888`.
    pub fn set_server_address(&self, host: &str, port: u16) {
        let mut info = match self.server.write() {
            Ok(info) => info,
            Err(poisoned) => poisoned.into_inner(),
        };
        info.host = host.to_string();
        info.port = port;
    }

    /// Bounds the workers any stage may use (at least one).
    pub fn set_max_workers(&mut self, max_workers: usize) {
        self.max_workers = max_workers.max(1);
    }

    /// Restricts what input sources may read (local directories, HTTP protocols). Without
    /// one, any local path may be read; `grove serve` always sets one. Either way the data
    /// directory and deep storage are never input.
    pub fn set_input_policy(&self, policy: InputPolicy) {
        let policy = protect_own_files(policy, &self.data_dir, &self.deep);
        let state = self.ctx.state_ref();
        state.write().config_mut().set_extension(Arc::new(policy));
    }

    /// The underlying DataFusion session.
    pub fn session(&self) -> &SessionContext {
        &self.ctx
    }

    /// The metadata store.
    pub fn metadata(&self) -> &Arc<MetadataStore> {
        &self.metadata
    }

    /// Deep storage.
    pub fn deep_storage(&self) -> &DeepStorage {
        &self.deep
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Runs a Druid SQL script (statements separated by `;`) and returns the result of the
    /// last statement as a DataFrame. INSERT/REPLACE run and publish before this returns;
    /// their DataFrame is a one-row summary (`dataSource`, `rows`, `segments`).
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        self.sql_with_context(sql, &QueryContext::new()).await
    }

    /// Like [`Self::sql`], with a Druid query context laid over the session's.
    pub async fn sql_with_context(&self, sql: &str, context: &QueryContext) -> Result<DataFrame> {
        let statements = split_statements(sql)?;
        if statements.is_empty() {
            return Err(DataFusionError::Plan("Empty SQL statement".into()));
        }
        let mut last = None;
        for stmt in &statements {
            last = Some(self.execute_statement(stmt, context).await?);
        }
        match last {
            Some(StatementOutcome::Query(df)) => Ok(df),
            Some(StatementOutcome::Ingest(summary)) => self.summary_frame(&summary),
            Some(StatementOutcome::Set) | None => self
                .ctx
                .read_batch(RecordBatch::new_empty(Arc::new(Schema::empty()))),
        }
    }

    /// The one-row summary (`dataSource`, `rows`, `segments`) of an INSERT/REPLACE.
    pub fn summary_frame(&self, summary: &IngestSummary) -> Result<DataFrame> {
        summary_frame(&self.ctx, summary)
    }

    /// Runs one statement.
    pub async fn execute_statement(
        &self,
        sql: &str,
        context: &QueryContext,
    ) -> Result<StatementOutcome> {
        self.execute_statement_with(sql, context, &TaskControl::new())
            .await
    }

    /// Runs one statement under `control`: an INSERT or REPLACE reports its progress
    /// there and stops when it is canceled.
    pub async fn execute_statement_with(
        &self,
        sql: &str,
        context: &QueryContext,
        control: &TaskControl,
    ) -> Result<StatementOutcome> {
        match parse_statement(sql)? {
            DruidStatement::SetContext { key, value } => {
                let mut params = self
                    .session_params
                    .lock()
                    .map_err(|_| DataFusionError::Internal("session lock poisoned".into()))?;
                params.set(key, value).map_err(DataFusionError::Plan)?;
                Ok(StatementOutcome::Set)
            }
            DruidStatement::Ingest(stmt) => {
                let context = self.effective_context(context)?;
                // `timeout` runs from here (`SET timeout = 60000;` in `grove sql`).
                let deadline = TaskControl::deadline(&context).map_err(DataFusionError::Plan)?;
                let prepared = self.prepare_ingest(sql, *stmt, context).await?;
                let summary = control
                    .run_until(deadline, self.run_ingest(&prepared, control))
                    .await?;
                Ok(StatementOutcome::Ingest(summary))
            }
            DruidStatement::Explain(explain) => {
                let context = self.effective_context(context)?;
                match *explain {
                    ExplainStatement {
                        analyze: true,
                        statement: DruidStatement::Ingest(stmt),
                        ..
                    } => Ok(StatementOutcome::Query(
                        self.explain_analyze_ingest(sql, *stmt, context, control)
                            .await?,
                    )),
                    explain => {
                        let prepared = self.prepare_explain(sql, explain, context).await?;
                        let PreparedKind::Query(plan) = prepared.kind else {
                            return Err(DataFusionError::Internal("not a query".into()));
                        };
                        Ok(StatementOutcome::Query(DataFrame::new(
                            prepared.state,
                            *plan,
                        )))
                    }
                }
            }
            DruidStatement::DataFusion(stmt) => {
                let context = self.effective_context(context)?;
                let state = self.statement_state(&context)?;
                let plan = plan_in_zone(&state, *stmt).await?;
                check_input_policy(&state, &plan)?;
                if plan_is_query(&plan) {
                    // Run with this statement's options (sqlTimeZone, ...).
                    Ok(StatementOutcome::Query(DataFrame::new(state, plan)))
                } else {
                    Ok(StatementOutcome::Query(
                        self.ctx.execute_logical_plan(plan).await?,
                    ))
                }
            }
        }
    }

    /// Validates and plans a task's SQL (leading `SET key = value;` statements apply to
    /// this task only) without running it: every SQL error surfaces here.
    pub async fn prepare(&self, sql: &str, context: &QueryContext) -> Result<PreparedStatement> {
        self.prepare_with_parameters(sql, context, &[]).await
    }

    /// [`Self::prepare`] with values for the `?` placeholders of the last statement
    /// (Druid's `parameters`).
    pub async fn prepare_with_parameters(
        &self,
        sql: &str,
        context: &QueryContext,
        parameters: &[grove_sql::SqlParameter],
    ) -> Result<PreparedStatement> {
        let statements = split_statements(sql)?;
        let mut context = self.effective_context(context)?;
        let Some((last, sets)) = statements.split_last() else {
            return Err(DataFusionError::Plan("Empty SQL statement".into()));
        };
        for set in sets {
            match parse_statement(set)? {
                DruidStatement::SetContext { key, value } => {
                    context.set(key, value).map_err(DataFusionError::Plan)?
                }
                _ => {
                    return Err(DataFusionError::Plan(
                        "Only one statement may be run at a time; statements before it must be \
                         SET statements"
                            .into(),
                    ));
                }
            }
        }
        let last = grove_sql::bind_parameters(last, parameters)?;
        match parse_statement(&last)? {
            DruidStatement::Ingest(stmt) => self.prepare_ingest(sql, *stmt, context).await,
            DruidStatement::Explain(explain) => self.prepare_explain(sql, *explain, context).await,
            DruidStatement::DataFusion(stmt) => {
                let state = self.statement_state(&context)?;
                let plan = plan_in_zone(&state, *stmt).await?;
                check_input_policy(&state, &plan)?;
                if !matches!(plan, LogicalPlan::Explain(_)) && !plan_is_query(&plan) {
                    return Err(DataFusionError::Plan(format!(
                        "Unsupported SQL statement for a task: {}",
                        plan.display()
                    )));
                }
                let plan = with_outer_limit(plan, &context)?;
                Ok(PreparedStatement {
                    task_id: task_id_for(&context)?,
                    sql: sql.to_string(),
                    context,
                    state,
                    kind: PreparedKind::Query(Box::new(plan)),
                })
            }
            DruidStatement::SetContext { .. } => Err(DataFusionError::Plan(
                "A task needs a query after its SET statements".into(),
            )),
        }
    }

    async fn prepare_ingest(
        &self,
        sql: &str,
        stmt: IngestStatement,
        context: QueryContext,
    ) -> Result<PreparedStatement> {
        let state = self.statement_state(&context)?;
        let plan = plan_checked_ingest(&state, &stmt).await?;
        Ok(PreparedStatement {
            task_id: task_id_for(&context)?,
            sql: sql.to_string(),
            context,
            state,
            kind: PreparedKind::Ingest(Box::new(plan)),
        })
    }

    /// Runs a prepared INSERT/REPLACE.
    pub async fn run_ingest(
        &self,
        prepared: &PreparedStatement,
        control: &TaskControl,
    ) -> Result<IngestSummary> {
        self.run_ingest_plan(prepared, control)
            .await
            .map(|(summary, _)| summary)
    }

    /// Runs a prepared INSERT/REPLACE; also returns the physical plan that ran.
    async fn run_ingest_plan(
        &self,
        prepared: &PreparedStatement,
        control: &TaskControl,
    ) -> Result<(
        IngestSummary,
        Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    )> {
        let PreparedKind::Ingest(plan) = &prepared.kind else {
            return Err(DataFusionError::Internal("not an ingest".into()));
        };
        let result = execute_ingest(
            &prepared.state,
            plan,
            &prepared.context,
            &self.metadata,
            &self.deep,
            &prepared.task_id,
            control,
        )
        .await;
        control.progress.set_phase(TaskPhase::Done);
        result
    }

    /// Plans an EXPLAIN: Druid's `EXPLAIN PLAN FOR` becomes its one row of `PLAN`,
    /// `RESOURCES` and `ATTRIBUTES` (planned now, nothing runs); DataFusion's `EXPLAIN
    /// [VERBOSE]` of an INSERT/REPLACE becomes DataFusion's EXPLAIN over the ingest node.
    /// `EXPLAIN ANALYZE` of an ingest runs it, so it is refused here (see
    /// [`Self::execute_statement_with`], which runs it).
    async fn prepare_explain(
        &self,
        sql: &str,
        explain: ExplainStatement,
        context: QueryContext,
    ) -> Result<PreparedStatement> {
        let state = self.statement_state(&context)?;
        let task_id = task_id_for(&context)?;
        let plan = match explain.statement {
            DruidStatement::Ingest(stmt) => {
                let plan = plan_checked_ingest(&state, &stmt).await?;
                let node = IngestNode::try_new(&plan, &task_id, &context)?;
                if explain.analyze {
                    return Err(DataFusionError::Plan(
                        "EXPLAIN ANALYZE of an INSERT or REPLACE runs and publishes it: use \
                         `grove sql` or GroveContext::sql, or submit the statement as a task \
                         and read its report"
                            .into(),
                    ));
                }
                if explain.druid {
                    let logical = node.clone().into_plan();
                    let rows =
                        druid_rows(&state, &logical, Explained::Ingest(&node), &context).await?;
                    self.ctx.read_batch(rows)?.into_unoptimized_plan()
                } else {
                    LogicalPlanBuilder::from(node.into_plan())
                        .explain(explain.verbose, false)?
                        .build()?
                }
            }
            DruidStatement::DataFusion(stmt) => {
                let logical = plan_in_zone(&state, *stmt).await?;
                check_input_policy(&state, &logical)?;
                let rows = druid_rows(&state, &logical, Explained::Query, &context).await?;
                self.ctx.read_batch(rows)?.into_unoptimized_plan()
            }
            DruidStatement::SetContext { .. } | DruidStatement::Explain(_) => {
                return Err(DataFusionError::Plan(
                    "EXPLAIN takes a SELECT, INSERT or REPLACE statement".into(),
                ));
            }
        };
        Ok(PreparedStatement {
            task_id,
            sql: sql.to_string(),
            context,
            state,
            kind: PreparedKind::Query(Box::new(plan)),
        })
    }

    /// `EXPLAIN ANALYZE INSERT|REPLACE ...`: runs and publishes the statement, then shows
    /// the physical plan that ran with every operator's metrics.
    async fn explain_analyze_ingest(
        &self,
        sql: &str,
        stmt: IngestStatement,
        context: QueryContext,
        control: &TaskControl,
    ) -> Result<DataFrame> {
        let prepared = self.prepare_ingest(sql, stmt, context).await?;
        let (_, physical) = self.run_ingest_plan(&prepared, control).await?;
        self.ctx.read_batch(analyzed_rows(&physical)?)
    }

    /// Runs a prepared SELECT, keeping at most `max_rows` rows.
    pub async fn run_query(
        &self,
        prepared: &PreparedStatement,
        control: &TaskControl,
        max_rows: usize,
    ) -> Result<QueryResults> {
        let PreparedKind::Query(plan) = &prepared.kind else {
            return Err(DataFusionError::Internal("not a query".into()));
        };
        let result = collect_query(&prepared.state, plan, control, max_rows).await;
        control.progress.set_phase(TaskPhase::Done);
        result
    }

    /// Starts a prepared SELECT and returns its result stream (for results sent as they
    /// are produced). Canceling `control` does not stop the stream by itself: read it
    /// with [`TaskControl::next_batch`], or drop it.
    pub async fn stream_query(
        &self,
        prepared: &PreparedStatement,
        control: &TaskControl,
    ) -> Result<datafusion::physical_plan::SendableRecordBatchStream> {
        let PreparedKind::Query(plan) = &prepared.kind else {
            return Err(DataFusionError::Internal("not a query".into()));
        };
        crate::query::stream_query(&prepared.state, plan, control).await
    }

    /// Runs a prepared SELECT to the end, keeping every row in deep storage as pages
    /// ([`crate::result_pages`], for the statements API) and the first `sample_rows`
    /// rows in the returned results. Nothing is left behind on failure.
    pub async fn run_query_to_pages(
        &self,
        prepared: &PreparedStatement,
        control: &TaskControl,
        result_format: &str,
        sample_rows: usize,
    ) -> Result<QueryResults> {
        let stream = self.stream_query(prepared, control).await?;
        let result = crate::result_pages::store_query(
            self.deep.results_store(),
            stream,
            control,
            &prepared.task_id,
            result_format,
            sample_rows,
        )
        .await;
        control.progress.set_phase(TaskPhase::Done);
        result
    }

    /// The session's SET parameters with `context` laid over them.
    fn effective_context(&self, context: &QueryContext) -> Result<QueryContext> {
        let params = self
            .session_params
            .lock()
            .map_err(|_| DataFusionError::Internal("session lock poisoned".into()))?;
        let merged = params.merged_with(context);
        merged.validate().map_err(DataFusionError::Plan)?;
        Ok(merged)
    }

    /// A copy of the session state with the engine options a query context implies.
    fn statement_state(&self, context: &QueryContext) -> Result<SessionState> {
        let mut state = self.ctx.state();
        let opts = context.msq_options().map_err(DataFusionError::Plan)?;
        state.config_mut().options_mut().extensions.insert(opts);
        let asked = context.max_num_tasks().map_err(DataFusionError::Plan)? - 1;
        let workers = asked.clamp(1, self.max_workers);
        let cores = self.ctx.state().config().target_partitions().max(1);
        let stage = StageWorkers {
            workers,
            partitions: workers.max(cores),
        };
        let pool = state.runtime_env().memory_pool.memory_limit();
        let config = state.config_mut();
        config.options_mut().execution.target_partitions = stage.partitions;
        // DataFusion's sorts (the hash form of the shuffle, ORDER BY) each hold back this
        // much for their merge; under a small budget, a share of it.
        if let datafusion::execution::memory_pool::MemoryLimit::Finite(limit) = pool {
            let execution = &mut config.options_mut().execution;
            let share = limit / (4 * stage.partitions.max(1));
            execution.sort_spill_reservation_bytes =
                execution.sort_spill_reservation_bytes.min(share);
            // A sort fails when one batch does not fit its share of the pool: under a
            // small budget, smaller batches (rows of about 256 bytes, eight to a share).
            let rows = (share / (8 * 256)).clamp(256, execution.batch_size.get().max(256));
            execution.batch_size = datafusion::common::config::ConfigNonZeroUsize::try_new(rows)?;
        }
        config.set_extension(Arc::new(stage));
        // Segment writers find deep storage here (a plan rebuilt elsewhere does too).
        config.set_extension(Arc::new(self.deep.clone()));
        Ok(state)
    }
}

/// Plans an INSERT/REPLACE, refusing the external input the session's policy forbids.
async fn plan_checked_ingest(state: &SessionState, stmt: &IngestStatement) -> Result<IngestPlan> {
    let plan = plan_ingest(state, stmt).await?;
    check_input_policy(state, &plan.input)?;
    Ok(plan)
}

/// `policy`, with Grove's own files closed to input: the data directory (metadata store,
/// spill files) and local deep storage (segments, stored results).
fn protect_own_files(policy: InputPolicy, data_dir: &Path, deep: &DeepStorage) -> InputPolicy {
    policy.protecting(data_dir).protecting(deep.local_root())
}

/// Refuses, at planning time, any external input the session's [`InputPolicy`] forbids.
fn check_input_policy(state: &SessionState, plan: &LogicalPlan) -> Result<()> {
    let Some(policy) = state.config().get_extension::<InputPolicy>() else {
        return Ok(());
    };
    let mut result = Ok(());
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = datafusion::datasource::source_as_provider(&scan.source)
            && let Some(ext) = provider.downcast_ref::<ExternTable>()
            && let Err(e) = ext.spec().source.check_policy(&policy)
        {
            result = Err(e);
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    result
}

/// Druid's `sqlOuterLimit`: at most that many rows of a query's result (the web console
/// sends 1001). EXPLAIN is left alone.
fn with_outer_limit(plan: LogicalPlan, context: &QueryContext) -> Result<LogicalPlan> {
    let limit = context
        .get_i64("sqlOuterLimit")
        .map_err(DataFusionError::Plan)?;
    match limit {
        None => Ok(plan),
        Some(_) if matches!(plan, LogicalPlan::Explain(_)) => Ok(plan),
        Some(n) if n >= 0 => datafusion::logical_expr::LogicalPlanBuilder::from(plan)
            .limit(0, Some(n as usize))?
            .build(),
        Some(n) => Err(DataFusionError::Plan(format!(
            "sqlOuterLimit must be a non-negative integer, got [{n}]"
        ))),
    }
}

/// Plans a DataFusion statement with its `TIMESTAMP` literals read in `sqlTimeZone`.
async fn plan_in_zone(
    state: &SessionState,
    mut stmt: datafusion::sql::parser::Statement,
) -> Result<LogicalPlan> {
    if let datafusion::sql::parser::Statement::Statement(s) = &mut stmt {
        grove_sql::apply_time_zone(s.as_mut(), &grove_sql::session_zone(state))?;
    }
    state.statement_to_plan(stmt).await
}

fn summary_frame(ctx: &SessionContext, summary: &IngestSummary) -> Result<DataFrame> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("dataSource", DataType::Utf8, false),
        Field::new("rows", DataType::UInt64, false),
        Field::new("segments", DataType::UInt64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec![summary.data_source.clone()])),
            Arc::new(UInt64Array::from(vec![summary.rows])),
            Arc::new(UInt64Array::from(vec![summary.segments.len() as u64])),
        ],
    )?;
    ctx.read_batch(batch)
}

#[cfg(test)]
mod tests {
    #[test]
    fn byte_sizes() {
        use super::parse_byte_size as p;
        assert_eq!(p("512MB"), Ok(512_000_000));
        assert_eq!(p("512MiB"), Ok(512 << 20));
        assert_eq!(p("1g"), Ok(1_000_000_000));
        assert_eq!(p("1.5GiB"), Ok(3 << 29));
        assert_eq!(p("4096"), Ok(4096));
        assert!(p("0").is_err());
        assert!(p("lots").is_err());
        assert!(p("5 parsecs").unwrap_err().contains("unknown unit"));
    }
}
