//! The task lifecycle: submit (validate, record, queue), run within task slots and locks,
//! watch (status, live report), cancel, and record the final report. Tasks live in the
//! metadata store, so every endpoint answers for them after a restart.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::common::DataFusionError;
use futures::FutureExt;
use grove_common::fault::CancelReason;
use grove_common::time::format_millis;
use grove_common::{Interval, MsqFault, QueryContext};
use grove_engine::{
    GroveContext, PreparedKind, PreparedStatement, QUERY_SELECT_DATASOURCE, TaskControl,
    TaskDescription, TaskEnd,
};
use grove_sql::IngestKind;
use grove_store::{TaskFilter, TaskRecord};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::locks::{LockManager, LockMode};

/// A task's `errorMsg` after `POST .../shutdown`, as Druid's Overlord writes it.
pub(crate) const SHUTDOWN_ERROR_MSG: &str = "Shutdown request from user";

/// Rows of a SELECT kept in its report (Druid's `Limits.MAX_SELECT_RESULT_ROWS`).
pub const MAX_SELECT_RESULT_ROWS: usize = 3_000;

/// How a task is submitted beyond its SQL and context.
#[derive(Debug, Clone, Default)]
pub struct SubmitOptions {
    /// Values for the `?` placeholders.
    pub parameters: Vec<grove_sql::SqlParameter>,
    /// For a SELECT: keep every result row in deep storage, as pages served by the
    /// statements API, remembering this `resultFormat`. `None`: only the report keeps
    /// (the first 3,000) rows.
    pub durable_results: Option<String>,
}

/// Where a live task is in the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RunnerState {
    /// Waiting for a task slot.
    Waiting = 0,
    /// Has a slot, waiting for its lock.
    Pending = 1,
    /// Running.
    Running = 2,
}

impl RunnerState {
    fn name(self) -> &'static str {
        match self {
            Self::Waiting => "WAITING",
            Self::Pending => "PENDING",
            Self::Running => "RUNNING",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Waiting,
            1 => Self::Pending,
            _ => Self::Running,
        }
    }
}

/// A task of this process that has not finished.
#[derive(Debug)]
pub struct LiveTask {
    /// What it runs.
    pub description: TaskDescription,
    /// Cancel it, watch it.
    pub control: TaskControl,
    /// Submission time (ms).
    pub created_ms: i64,
    runner: AtomicU8,
}

impl LiveTask {
    /// Where it is in the queue.
    pub fn runner_state(&self) -> RunnerState {
        RunnerState::from_u8(self.runner.load(Ordering::Relaxed))
    }
}

/// Why a submission was refused (nothing was recorded).
#[derive(Debug)]
pub enum SubmitError {
    /// Bad SQL, context or request: HTTP 400.
    Invalid(String),
    /// A feature Grove does not have: HTTP 501.
    Unsupported(String),
    /// Something broke: HTTP 500.
    Internal(String),
    /// The task queue is full: HTTP 429.
    QueueFull(String),
}

/// Runs tasks.
#[derive(Debug)]
pub struct TaskManager {
    grove: GroveContext,
    slots: Arc<Semaphore>,
    /// Room in the task queue: a task holds a permit from submission to its end.
    queue: Arc<Semaphore>,
    queue_size: usize,
    locks: Arc<LockManager>,
    live: Mutex<HashMap<String, Arc<LiveTask>>>,
    lock_timeout: Duration,
    host: String,
    port: u16,
}

impl TaskManager {
    /// A manager with `task_slots` concurrent tasks. Recovers tasks a previous process
    /// left running: they end FAILED (or SUCCESS if they had published) and their
    /// partial files are removed.
    pub async fn start(
        grove: GroveContext,
        task_slots: usize,
        task_queue_size: usize,
        lock_timeout: Duration,
        host: String,
        port: u16,
    ) -> datafusion::common::Result<Arc<Self>> {
        let queue_size = task_queue_size.max(1);
        let manager = Arc::new(Self {
            grove,
            slots: Arc::new(Semaphore::new(task_slots.max(1))),
            queue: Arc::new(Semaphore::new(queue_size)),
            queue_size,
            locks: Arc::new(LockManager::default()),
            live: Mutex::new(HashMap::new()),
            lock_timeout,
            host,
            port,
        });
        manager.recover().await?;
        Ok(manager)
    }

    async fn recover(&self) -> datafusion::common::Result<()> {
        let metadata = self.grove.metadata();
        for task in metadata.running_tasks().await? {
            let published = metadata.task_published(&task.id).await?;
            let now = chrono::Utc::now().timestamp_millis();
            let duration = (now - task.created_ms).max(0);
            if published {
                let report = recovered_report(&task.id, "SUCCESS", None, task.created_ms, duration);
                metadata
                    .finish_task(&task.id, "SUCCESS", duration, None, &report)
                    .await?;
                continue;
            }
            self.grove
                .deep_storage()
                .delete_task_files(&task.data_source, &task.id)
                .await;
            let fault = MsqFault::UnknownError {
                message: "The server stopped while this task was running; it was not \
                          completed and nothing it wrote was published."
                    .into(),
            };
            let error_msg = format!("{}: {}", fault.error_code(), fault.message());
            let report =
                recovered_report(&task.id, "FAILED", Some(&fault), task.created_ms, duration);
            metadata
                .finish_task(&task.id, "FAILED", duration, Some(&error_msg), &report)
                .await?;
            tracing::warn!(task_id = %task.id, "task left running by a previous process marked FAILED");
        }
        Ok(())
    }

    /// Validates and plans `sql`, records the task and queues it. Returns the task id.
    pub async fn submit(
        self: &Arc<Self>,
        sql: &str,
        context: QueryContext,
    ) -> Result<String, SubmitError> {
        self.submit_with(sql, context, SubmitOptions::default())
            .await
    }

    /// [`Self::submit`] with parameters and a result destination.
    pub async fn submit_with(
        self: &Arc<Self>,
        sql: &str,
        context: QueryContext,
        options: SubmitOptions,
    ) -> Result<String, SubmitError> {
        // A place in the queue, held until the task ends (Druid's TaskQueue maxSize).
        let Ok(place) = Arc::clone(&self.queue).try_acquire_owned() else {
            let active = self.live.lock().map(|m| m.len()).unwrap_or(self.queue_size);
            return Err(SubmitError::QueueFull(format!(
                "Too many tasks are in the queue (Limit = {}), (Current active tasks = {active}). \
                 Retry later or increase task_queue_size (--task-queue-size)",
                self.queue_size
            )));
        };
        // Druid's `timeout` runs from submission: waiting for a slot or a lock counts.
        let deadline = TaskControl::deadline(&context).map_err(SubmitError::Invalid)?;
        let prepared = match self
            .grove
            .prepare_with_parameters(sql, &context, &options.parameters)
            .await
        {
            Ok(p) => p,
            Err(e) => return self.refuse_or_fail(sql, &context, e).await,
        };
        let description = prepared.describe();
        let mut payload = description.payload();
        if options.durable_results.is_some() && matches!(prepared.kind, PreparedKind::Query(_)) {
            payload["spec"]["destination"] = json!({"type": "durableStorage"});
        }
        let created_ms = chrono::Utc::now().timestamp_millis();
        let record = TaskRecord {
            id: prepared.task_id.clone(),
            data_source: description.data_source.clone(),
            created_ms,
            status: "RUNNING".into(),
            duration_ms: -1,
            error_msg: None,
            payload,
            report: None,
        };
        if self
            .grove
            .metadata()
            .task(&record.id)
            .await
            .map_err(|e| SubmitError::Internal(e.to_string()))?
            .is_some()
        {
            return Err(SubmitError::Invalid(format!(
                "Task [{}] already exists; use another sqlQueryId",
                record.id
            )));
        }
        self.grove
            .metadata()
            .insert_task(&record)
            .await
            .map_err(|e| SubmitError::Internal(e.to_string()))?;
        let live = Arc::new(LiveTask {
            description,
            control: TaskControl::new(),
            created_ms,
            runner: AtomicU8::new(RunnerState::Waiting as u8),
        });
        if let Ok(mut map) = self.live.lock() {
            map.insert(record.id.clone(), Arc::clone(&live));
        }
        let manager = Arc::clone(self);
        let task_id = record.id.clone();
        tokio::spawn(async move {
            let outcome = std::panic::AssertUnwindSafe(
                live.control
                    .run_until(deadline, manager.run(&prepared, &live, &options)),
            )
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                TaskEnd::Failed(MsqFault::UnknownError {
                    message: "internal error: the task panicked".into(),
                })
            });
            // The place frees before the end is recorded: whoever sees the task ended
            // can submit the next.
            drop(place);
            manager.finish(&prepared.task_id, &live, outcome).await;
        });
        Ok(task_id)
    }

    /// A statement that fails planning with a Druid fault still becomes a (failed) task,
    /// as in Druid; other planning errors refuse the submission.
    async fn refuse_or_fail(
        &self,
        sql: &str,
        context: &QueryContext,
        err: DataFusionError,
    ) -> Result<String, SubmitError> {
        let Some(fault) = MsqFault::find(&err).cloned() else {
            return Err(match err {
                DataFusionError::NotImplemented(m) => SubmitError::Unsupported(m),
                DataFusionError::Plan(m) | DataFusionError::SQL(_, Some(m)) => {
                    SubmitError::Invalid(m)
                }
                other => SubmitError::Invalid(other.strip_backtrace()),
            });
        };
        let task_id = match context.sql_query_id() {
            Ok(Some(id)) => format!("query-{id}"),
            _ => format!("query-{}", uuid::Uuid::new_v4()),
        };
        let data_source = match grove_sql::parse_statement(
            grove_sql::split_statements(sql)
                .ok()
                .and_then(|s| s.last().cloned())
                .as_deref()
                .unwrap_or(sql),
        ) {
            Ok(grove_sql::DruidStatement::Ingest(i)) => i.target.clone(),
            _ => QUERY_SELECT_DATASOURCE.to_string(),
        };
        let now = chrono::Utc::now().timestamp_millis();
        let error_msg = format!("{}: {}", fault.error_code(), fault.message());
        let record = TaskRecord {
            id: task_id.clone(),
            data_source: data_source.clone(),
            created_ms: now,
            status: "FAILED".into(),
            duration_ms: 0,
            error_msg: Some(error_msg),
            payload: json!({
                "type": "query_controller",
                "id": task_id,
                "groupId": task_id,
                "resource": {"availabilityGroup": task_id, "requiredCapacity": 1},
                "sqlQuery": sql,
                "sqlQueryContext": context.as_json(),
                "context": {"forceTimeChunkLock": true, "useLineageBasedSegmentAllocation": true},
                "dataSource": data_source,
            }),
            report: Some(recovered_report(&task_id, "FAILED", Some(&fault), now, 0)),
        };
        self.grove
            .metadata()
            .insert_task(&record)
            .await
            .map_err(|e| SubmitError::Internal(e.to_string()))?;
        Ok(task_id)
    }

    async fn run(
        &self,
        prepared: &PreparedStatement,
        live: &LiveTask,
        options: &SubmitOptions,
    ) -> TaskEnd {
        let cancel = &live.control.cancel;
        let canceled = || TaskEnd::Failed(live.control.canceled());
        let _permit = tokio::select! {
            _ = cancel.cancelled() => return canceled(),
            permit = Arc::clone(&self.slots).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return TaskEnd::Failed(MsqFault::UnknownError { message: "task slots closed".into() }),
            },
        };
        live.runner
            .store(RunnerState::Pending as u8, Ordering::Relaxed);
        let _lock = match &prepared.kind {
            PreparedKind::Ingest(plan) => {
                let (mode, intervals) = match (plan.kind, &plan.replace_intervals) {
                    (IngestKind::Replace, Some(i)) => (LockMode::Exclusive, i.clone()),
                    _ => (LockMode::Shared, vec![Interval::eternity()]),
                };
                let acquired = tokio::select! {
                    _ = cancel.cancelled() => return canceled(),
                    guard = self.locks.acquire(&plan.target, intervals, mode, self.lock_timeout) => guard,
                };
                match acquired {
                    Some(guard) => Some(guard),
                    None => {
                        return TaskEnd::Failed(MsqFault::InsertLockPreempted {
                            message: format!(
                                "Could not acquire a lock on dataSource [{}] within {} ms: \
                                 another task is writing to the same time chunks",
                                plan.target,
                                self.lock_timeout.as_millis()
                            ),
                        });
                    }
                }
            }
            PreparedKind::Query(_) => None,
        };
        live.runner
            .store(RunnerState::Running as u8, Ordering::Relaxed);
        match &prepared.kind {
            PreparedKind::Ingest(_) => match self.grove.run_ingest(prepared, &live.control).await {
                Ok(_) => TaskEnd::Success(None),
                Err(e) => TaskEnd::Failed(MsqFault::from_error(&e)),
            },
            PreparedKind::Query(_) => match match &options.durable_results {
                Some(format) => {
                    self.grove
                        .run_query_to_pages(prepared, &live.control, format, MAX_SELECT_RESULT_ROWS)
                        .await
                }
                None => {
                    self.grove
                        .run_query(prepared, &live.control, MAX_SELECT_RESULT_ROWS)
                        .await
                }
            } {
                Ok(r) => TaskEnd::Success(Some(r)),
                Err(e) => TaskEnd::Failed(MsqFault::from_error(&e)),
            },
        }
    }

    async fn finish(&self, task_id: &str, live: &LiveTask, end: TaskEnd) {
        live.control
            .progress
            .set_phase(grove_engine::TaskPhase::Done);
        let report = live
            .description
            .report(live.created_ms, &live.control.progress, &end);
        let duration = (chrono::Utc::now().timestamp_millis() - live.created_ms).max(0);
        let (status, error_msg) = match &end {
            // Druid's Overlord records a shutdown as this text, which the web console
            // shows as CANCELED; the report keeps the Canceled fault.
            TaskEnd::Failed(MsqFault::Canceled {
                reason: CancelReason::TaskShutdown,
            }) => ("FAILED", Some(SHUTDOWN_ERROR_MSG.to_string())),
            TaskEnd::Failed(f) => (
                "FAILED",
                Some(format!("{}: {}", f.error_code(), f.message())),
            ),
            _ => ("SUCCESS", None),
        };
        if let Err(e) = self
            .grove
            .metadata()
            .finish_task(task_id, status, duration, error_msg.as_deref(), &report)
            .await
        {
            tracing::error!(task_id, error = %e, "could not record the end of a task");
        }
        if let Ok(mut map) = self.live.lock() {
            map.remove(task_id);
        }
        tracing::info!(task_id, status, "task finished");
    }

    /// `host:port` this server answers on.
    pub fn server_address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The Grove context tasks run in.
    pub fn grove(&self) -> &GroveContext {
        &self.grove
    }

    /// A live task of this process.
    pub fn live_task(&self, id: &str) -> Option<Arc<LiveTask>> {
        self.live.lock().ok().and_then(|m| m.get(id).cloned())
    }

    /// Asks a task to stop. `false` if it is unknown.
    pub async fn shutdown(&self, id: &str) -> Result<bool, String> {
        if let Some(live) = self.live_task(id) {
            live.control.cancel.cancel();
            return Ok(true);
        }
        Ok(self
            .grove
            .metadata()
            .task(id)
            .await
            .map_err(|e| e.to_string())?
            .is_some())
    }

    /// The stored record of a task.
    pub async fn record(&self, id: &str) -> Result<Option<TaskRecord>, String> {
        self.grove
            .metadata()
            .task(id)
            .await
            .map_err(|e| e.to_string())
    }

    /// The report: live while running, final after.
    pub async fn report(&self, id: &str) -> Result<Option<Value>, String> {
        Ok(self.record(id).await?.and_then(|r| self.report_of(&r)))
    }

    /// The report of a recorded task. The record decides, as in [`Self::status_json`]:
    /// a task leaves the live map just after its end is recorded, and in between the
    /// recorded report is the final one.
    pub fn report_of(&self, record: &TaskRecord) -> Option<Value> {
        match self.live_task(&record.id) {
            Some(live) if record.status == "RUNNING" => Some(live.description.report(
                live.created_ms,
                &live.control.progress,
                &TaskEnd::Running,
            )),
            _ => record.report.clone(),
        }
    }

    /// Druid's TaskStatusPlus for a record.
    pub fn status_json(&self, record: &TaskRecord) -> Value {
        let live = self.live_task(&record.id);
        let running = live.is_some() && record.status == "RUNNING";
        let runner = match &live {
            Some(l) if running => l.runner_state().name(),
            _ => "NONE",
        };
        let location = if running && runner == "RUNNING" {
            json!({"host": self.host, "port": self.port, "tlsPort": -1})
        } else {
            json!({"host": null, "port": -1, "tlsPort": -1})
        };
        json!({
            "id": record.id,
            "groupId": record.id,
            "type": "query_controller",
            "createdTime": format_millis(record.created_ms),
            "queueInsertionTime": format_millis(0),
            "statusCode": record.status,
            "status": record.status,
            "runnerStatusCode": runner,
            "duration": if running { -1 } else { record.duration_ms },
            "location": location,
            "dataSource": record.data_source,
            "errorMsg": record.error_msg,
        })
    }

    /// Task statuses for the list endpoints. `state` is running, complete, waiting or
    /// pending (or none for all).
    pub async fn list(
        &self,
        state: Option<&str>,
        filter: TaskFilter,
    ) -> Result<Vec<Value>, String> {
        let mut filter = filter;
        if state == Some("complete") {
            filter.complete = Some(true);
        } else if state.is_some() {
            filter.complete = Some(false);
        }
        let records = self
            .grove
            .metadata()
            .tasks(&filter)
            .await
            .map_err(|e| e.to_string())?;
        Ok(records
            .iter()
            .filter(|r| match state {
                Some("running") | Some("waiting") | Some("pending") => {
                    let runner = self
                        .live_task(&r.id)
                        .map(|l| l.runner_state().name())
                        .unwrap_or("RUNNING");
                    state.map(|s| s.to_ascii_uppercase()) == Some(runner.to_string())
                }
                _ => true,
            })
            .map(|r| self.status_json(r))
            .collect())
    }

    /// Cancels every live task (on server shutdown) and waits briefly for them to end.
    pub async fn cancel_all(&self) {
        let tasks: Vec<Arc<LiveTask>> = self
            .live
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        for t in &tasks {
            t.control.cancel.cancel();
        }
        for _ in 0..50 {
            if self.live.lock().map(|m| m.is_empty()).unwrap_or(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A report for a task whose plan is not at hand (recovered after a restart, or failed
/// while planning).
fn recovered_report(
    task_id: &str,
    status: &str,
    fault: Option<&MsqFault>,
    created_ms: i64,
    duration: i64,
) -> Value {
    let mut s = json!({
        "status": status,
        "startTime": format_millis(created_ms),
        "durationMs": duration,
        "workers": {},
        "pendingTasks": 0,
        "runningTasks": 0,
    });
    if let Some(f) = fault {
        s["errorReport"] = json!({"taskId": task_id, "host": "localhost", "error": f.to_json()});
    }
    json!({
        "multiStageQuery": {
            "type": "multiStageQuery",
            "taskId": task_id,
            "payload": {"status": s, "stages": [], "counters": {}},
        }
    })
}
