//! Running tasks: each task gets an executor run (a sandbox in the Mesos
//! layout, its URIs fetched, its executor launched in a container: the
//! built-in tepui-executor, or the task's own ExecutorInfo command); the
//! task waits in a queue until its executor subscribes; the executor's
//! status updates go through the status update manager to the master
//! link; when an executor's container ends, its tasks that had not ended
//! get a terminal update from the agent.
//!
//! This file holds the [`Runner`], its config, the executor run record
//! and the primitives every operation uses (an update taken, a task
//! failed, a run ended, a container watched); each operation lives in a
//! file of its own:
//!
//! - `launch`: tasks and task groups taken and queued for their executor;
//! - `start`: an executor run's container fetched, provisioned, launched;
//! - `updates`: acknowledgements and retries of status updates;
//! - `stop`: kills and shutdowns;
//! - `recovery`: the checkpointed runs found again after a restart;
//! - `views`: what the endpoints read, and sandbox GC;
//! - `executor_host`: the executor API's calls.
//!
//! The master link is a channel of [`AgentToMaster`] messages; the
//! registration that drains it is the agent daemon's.

mod completion;
mod executor_host;
mod launch;
mod recovery;
mod start;
mod stop;
mod updates;
mod views;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use oci_spec::image::ImageConfiguration;
use tepui_containerizer::Containerizer;
use tepui_containerizer::fetcher::Fetcher;
use tepui_containerizer::provisioner::Provisioner;
use tepui_proto::internal::{AgentToMaster, StatusUpdate, agent_to_master};
use tepui_proto::v1::executor::{Event, event};
use tepui_proto::v1::{
    ExecutorInfo, FrameworkId, FrameworkInfo, TaskGroupInfo, TaskInfo, TaskState, TaskStatus,
    task_status,
};
use tokio::sync::mpsc;

use crate::executor_api::{self, EventSink};
use crate::gc::Gc;
use crate::metrics::Counters;
use crate::paths::{Layout, RunIds};
use crate::rotating_log::Rotation;
use crate::status_update::{self, Manager, TaskKey};
use crate::task_image;

pub use recovery::RecoveryError;
pub use views::RunView;

/// How the runner is set up.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// This agent's id.
    pub agent_id: String,
    /// This agent's hostname (in AgentInfo).
    pub hostname: String,
    /// host:port of the agent's HTTP API, for executors.
    pub endpoint: String,
    /// The work dir.
    pub layout: Layout,
    /// The built-in command executor.
    pub command_executor: PathBuf,
    /// How long executors of checkpointing frameworks wait for a restart.
    pub recovery_timeout: Duration,
    /// How long an executor has to end on SHUTDOWN.
    pub shutdown_grace_period: Duration,
    /// Where the images of tasks come from; none refuses tasks with images.
    pub provisioner: Option<Arc<Provisioner>>,
    /// How the built-in executor rotates its tasks' stdout and stderr.
    pub log_rotation: Rotation,
    /// How often subscribed executors are sent HEARTBEAT.
    pub heartbeat_interval: Duration,
    /// How long a launched executor has to subscribe before it is
    /// destroyed (Mesos's --executor_registration_timeout).
    pub registration_timeout: Duration,
    /// How long a recovered executor has to subscribe again after
    /// recovery before it is destroyed (--executor_reregistration_timeout);
    /// also its longest wait between subscription attempts.
    pub reregistration_timeout: Duration,
    /// pids.max of every container (0 for none).
    pub pids_max: u64,
    /// Mesos's --cgroups_enable_cfs: cpus are a hard cap too (cpu.max).
    pub enable_cfs: bool,
    /// Whether executors and tasks run as the task's user (Mesos's
    /// --switch_user), or as the agent's.
    pub switch_user: bool,
    /// Signs each executor's token for the executor API
    /// (`--jwt_secret_key`); none gives executors no token.
    pub executor_tokens: Option<Arc<crate::executor_token::TokenKey>>,
    /// What a task's `linux_info` may ask for (seccomp, capabilities).
    pub linux: Arc<crate::linux_info::LinuxPolicy>,
    /// The `LIBPROCESS_SSL_*` variables every executor is given, as a
    /// Mesos agent's executors inherit them (none without TLS).
    pub tls_env: Vec<(String, String)>,
}

/// A task could not be taken.
#[derive(Debug, thiserror::Error)]
#[error("task {task}: {why}")]
pub struct RunError {
    /// The task.
    pub task: String,
    /// Why not.
    pub why: String,
    /// Whether the agent failed (its disk, its checkpoints), not the task:
    /// TASK_FAILED with REASON_CONTAINER_LAUNCH_FAILED, not TASK_ERROR.
    pub agent_failed: bool,
}

/// Where an executor run is in its life, as Mesos's `Executor::State`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorState {
    /// Launched or recovered; its executor has not subscribed yet.
    Registering,
    /// Its executor has subscribed and takes events.
    Running,
    /// Being shut down: its container is ending.
    Terminating,
    /// Its container has ended (a completed run).
    Terminated,
}

/// One executor run: its executor, its container and its tasks.
struct Executor {
    framework: FrameworkInfo,
    info: ExecutorInfo,
    container: String,
    sandbox: PathBuf,
    /// Launches waiting for the executor to subscribe.
    queued: Vec<Launch>,
    /// Each task's latest state, as its updates told.
    tasks: HashMap<String, i32>,
    /// Each task as launched.
    infos: HashMap<String, TaskInfo>,
    /// Where its events go while it is subscribed.
    sink: Option<EventSink>,
    /// Where it is in its life.
    state: ExecutorState,
    /// What its unfinished tasks are told when its container ends, when
    /// the agent itself ended it (a registration timeout).
    termination: Option<Termination>,
    /// The runtime config of the image the built-in executor starts its
    /// tasks in.
    image_config: Option<Arc<ImageConfiguration>>,
}

/// How the agent ends an executor run's unfinished tasks when it
/// destroys the run itself (Mesos's pending termination).
#[derive(Debug, Clone)]
struct Termination {
    state: TaskState,
    reason: task_status::Reason,
    message: String,
}

/// What an executor is sent to start: one task, or a task group.
#[derive(Clone)]
enum Launch {
    Task(Box<TaskInfo>),
    Group(TaskGroupInfo),
}

impl Launch {
    fn tasks(&self) -> &[TaskInfo] {
        match self {
            Launch::Task(task) => std::slice::from_ref(&**task),
            Launch::Group(group) => &group.tasks,
        }
    }
}

impl Executor {
    /// Marks the run as ending; returns where its executor's events go and
    /// its container, for the shutdown.
    fn terminate(&mut self) -> (Option<EventSink>, String) {
        self.state = ExecutorState::Terminating;
        (self.sink.clone(), self.container.clone())
    }

    /// The user this run's executor runs as, as Mesos picks it: the
    /// executor's CommandInfo.user (for the command executor, its task's),
    /// else FrameworkInfo.user; none when that is empty.
    fn user(&self) -> Option<String> {
        let command = match &self.info.command {
            Some(command) => Some(command),
            None => self
                .infos
                .get(&self.info.executor_id.value)
                .and_then(|t| t.command.as_ref()),
        };
        command
            .and_then(|c| c.user.clone())
            .or_else(|| Some(self.framework.user.clone()))
            .filter(|u| !u.is_empty())
    }

    /// The LAUNCH or LAUNCH_GROUP event for `launch`, its commands
    /// rewritten for the image the built-in executor runs them in (as the
    /// framework's user when `switch_user` and that is not root, before
    /// the image's own USER); or the tasks that cannot run, and why.
    fn event(&self, launch: Launch, switch_user: bool) -> Result<Event, (Vec<String>, String)> {
        let ids = |launch: &Launch| {
            launch
                .tasks()
                .iter()
                .map(|t| t.task_id.value.clone())
                .collect()
        };
        let mut launch = launch;
        if let (Some(config), None) = (&self.image_config, &self.info.command) {
            let tasks = match &mut launch {
                Launch::Task(task) => std::slice::from_mut(&mut **task),
                Launch::Group(group) => group.tasks.as_mut_slice(),
            };
            let user = self
                .user()
                .filter(|u| switch_user && u != "root" && u != "0");
            for task in tasks.iter_mut() {
                if let (Some(user), Some(command)) = (&user, task.command.as_mut())
                    && command.user.is_none()
                {
                    command.user = Some(user.clone());
                }
                if let Err(e) = task_image::apply(config, task) {
                    return Err((ids(&launch), e.to_string()));
                }
            }
        }
        Ok(match launch {
            Launch::Task(task) => executor_api::launch(*task),
            Launch::Group(task_group) => Event {
                r#type: Some(event::Type::LaunchGroup as i32),
                launch_group: Some(event::LaunchGroup { task_group }),
                ..Default::default()
            },
        })
    }
}

/// An update the agent made itself, not yet checkpointed.
struct Unrecorded {
    framework_id: String,
    framework: FrameworkInfo,
    container: String,
    executor: String,
    status: TaskStatus,
}

/// An executor run's key: its framework's id and its executor's id.
type ExecutorKey = (String, String);

/// Runs tasks in executors in containers.
pub struct Runner {
    config: RunnerConfig,
    /// The id the master gave this agent (set on registration).
    agent_id: Mutex<String>,
    /// Whether a master is listening; until it is, updates wait in the
    /// status update manager (and go out on registration).
    registered: std::sync::atomic::AtomicBool,
    /// Whether recovery is under way: executors are answered 503 until
    /// their runs are known again, as Mesos's agent does.
    recovering: std::sync::atomic::AtomicBool,
    containerizer: Arc<Containerizer>,
    fetcher: Arc<Fetcher>,
    executors: Mutex<HashMap<ExecutorKey, Executor>>,
    updates: Mutex<Manager>,
    to_master: mpsc::UnboundedSender<AgentToMaster>,
    /// Finished runs awaiting removal.
    gc: Gc,
    /// Counters for the metrics endpoints.
    counters: Counters,
    /// The latest ended executor runs, newest last (for /state).
    completed: Mutex<std::collections::VecDeque<RunView>>,
    /// Ended runs whose updates await acknowledgement (completion.rs).
    awaiting_acks: Mutex<Vec<completion::EndedRun>>,
    /// The agent's own updates not yet checkpointed (take_agent_update).
    unrecorded: Mutex<Vec<Unrecorded>>,
    /// Checkpoints of updates are failing (a full disk): logged once when
    /// they start failing and once when they succeed again, not at every
    /// retry.
    checkpoints_failing: std::sync::atomic::AtomicBool,
    /// Frameworks shut down: nobody acknowledges their updates any more.
    shut_down_frameworks: Mutex<std::collections::HashSet<String>>,
}

/// A framework's id as a string (empty when it has none yet).
pub fn framework_id(framework: &FrameworkInfo) -> String {
    framework
        .id
        .as_ref()
        .map(|i| i.value.clone())
        .unwrap_or_default()
}

/// Ended executor runs remembered for /state.
const COMPLETED_RUNS: usize = 200;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Runner {
    /// A runner sending its updates to `to_master`.
    pub fn new(
        config: RunnerConfig,
        containerizer: Arc<Containerizer>,
        fetcher: Arc<Fetcher>,
        to_master: mpsc::UnboundedSender<AgentToMaster>,
    ) -> Arc<Self> {
        Arc::new(Self {
            agent_id: Mutex::new(config.agent_id.clone()),
            registered: std::sync::atomic::AtomicBool::new(false),
            recovering: std::sync::atomic::AtomicBool::new(false),
            config,
            containerizer,
            fetcher,
            executors: Mutex::new(HashMap::new()),
            updates: Mutex::new(Manager::new()),
            to_master,
            gc: Gc::new(),
            counters: Counters::default(),
            completed: Mutex::new(std::collections::VecDeque::new()),
            awaiting_acks: Mutex::new(Vec::new()),
            unrecorded: Mutex::new(Vec::new()),
            checkpoints_failing: std::sync::atomic::AtomicBool::new(false),
            shut_down_frameworks: Mutex::new(std::collections::HashSet::new()),
        })
    }

    /// Sets the agent id the master assigned (before any task arrives).
    pub fn set_agent_id(&self, id: &str) {
        *lock(&self.agent_id) = id.to_owned();
    }

    fn agent_id(&self) -> String {
        lock(&self.agent_id).clone()
    }

    /// Fails one task from the agent.
    fn fail_task(&self, key: &ExecutorKey, task: &str, reason: task_status::Reason, why: &str) {
        self.end_task(key, task, TaskState::TaskFailed, reason, why);
    }

    /// Ends one task from the agent with `state` (an update from the
    /// agent, as its executor cannot give one).
    fn end_task(
        &self,
        key: &ExecutorKey,
        task: &str,
        state: TaskState,
        reason: task_status::Reason,
        why: &str,
    ) {
        let (framework, container, executor_id) = {
            let mut executors = lock(&self.executors);
            let Some(run) = executors.get_mut(key) else {
                return;
            };
            run.tasks.insert(task.to_owned(), state as i32);
            (
                run.framework.clone(),
                run.container.clone(),
                run.info.executor_id.clone(),
            )
        };
        let mut status = agent_status(task, state, reason, why);
        status.executor_id = Some(executor_id);
        self.take_agent_update(&key.0, &framework, &container, &key.1, status);
    }

    /// The limits of an executor run: its resources and its tasks'.
    fn limits_of(&self, run: &Executor) -> tepui_containerizer::Limits {
        crate::resources::limits(
            &run.info.resources,
            run.infos.values(),
            self.containerizer.controllers(),
            self.config.pids_max,
            self.config.enable_cfs,
        )
    }

    /// Ends every task of an executor that had not ended, with `reason`.
    fn executor_failed(&self, key: &ExecutorKey, reason: task_status::Reason, message: String) {
        self.end_run(
            key,
            Termination {
                state: TaskState::TaskFailed,
                reason,
                message,
            },
        );
    }

    /// Ends an executor run: out of the live runs and into the completed
    /// ones, marked completed on disk, its sandbox scheduled for GC, and
    /// each of its unfinished tasks given `end`'s state.
    fn end_run(&self, key: &ExecutorKey, end: Termination) {
        let Termination {
            state: end_state,
            reason,
            message,
        } = end;
        // Out of the live runs and into the completed ones under the live
        // runs' lock, so that a reader of both (`/state`) never misses it.
        let executor = {
            let mut executors = lock(&self.executors);
            let Some(executor) = executors.remove(key) else {
                return;
            };
            let mut ended = executor.view();
            ended.state = ExecutorState::Terminated;
            for (_, state) in &mut ended.tasks {
                if !status_update::is_terminal(*state) {
                    *state = end_state as i32;
                }
            }
            let mut completed = lock(&self.completed);
            completed.push_back(ended);
            while completed.len() > COMPLETED_RUNS {
                completed.pop_front();
            }
            executor
        };
        tracing::info!(framework = %key.0, executor = %key.1, %message, "executor ended");
        self.counters.executor_terminated();
        let ended = completion::EndedRun {
            framework: key.0.clone(),
            executor: key.1.clone(),
            container: executor.container.clone(),
            checkpoint: executor.framework.checkpoint.unwrap_or(false),
            tasks: executor.tasks.keys().cloned().collect(),
        };
        for (task, state) in executor.tasks {
            // The update manager is the truth: an update the executor sent
            // again on re-subscribing may be newer than the run's map.
            let latest = lock(&self.updates).latest_state(&TaskKey {
                framework: key.0.clone(),
                task: task.clone(),
            });
            if status_update::is_terminal(state) || latest.is_some_and(status_update::is_terminal) {
                continue;
            }
            let mut status = agent_status(&task, end_state, reason, &message);
            status.executor_id = Some(executor.info.executor_id.clone());
            self.take_agent_update(
                &key.0,
                &executor.framework,
                &executor.container,
                &key.1,
                status,
            );
        }
        self.complete_when_acknowledged(ended);
    }

    /// Takes an update into the status update manager (checkpointed when
    /// the framework checkpoints) and forwards what is due.
    fn take_update(
        &self,
        framework_id: &str,
        framework: &FrameworkInfo,
        container: &str,
        executor: &str,
        status: TaskStatus,
    ) -> Result<(), status_update::UpdateError> {
        let agent_id = self.agent_id();
        let log = framework.checkpoint.unwrap_or(false).then(|| {
            let ids = RunIds {
                agent: &agent_id,
                framework: framework_id,
                executor,
                container,
            };
            self.config
                .layout
                .task_meta(&ids, &status.task_id.value)
                .map(|dir| dir.join("task.updates"))
        });
        let log = match log.transpose() {
            Ok(log) => log,
            Err(e) => {
                tracing::error!(error = %e, "a status update for a task whose id cannot be a path");
                return Ok(());
            }
        };
        let update = StatusUpdate {
            framework_id: FrameworkId {
                value: framework_id.to_owned(),
            },
            latest_state: Some(status.state),
            status,
        };
        self.manage(update, log.as_deref())
    }

    /// Takes an update the agent made itself (a task ended by the agent):
    /// one that cannot be checkpointed (a full disk) is kept and taken
    /// again at every retry tick until it is, since no executor will send
    /// it again; any other refusal is logged where it is refused.
    fn take_agent_update(
        &self,
        framework_id: &str,
        framework: &FrameworkInfo,
        container: &str,
        executor: &str,
        status: TaskStatus,
    ) {
        if let Err(status_update::UpdateError::Checkpoint(_)) =
            self.take_update(framework_id, framework, container, executor, status.clone())
        {
            tracing::debug!(framework = %framework_id, task = %status.task_id.value, "the agent's own update is kept until it can be checkpointed");
            lock(&self.unrecorded).push(Unrecorded {
                framework_id: framework_id.to_owned(),
                framework: framework.clone(),
                container: container.to_owned(),
                executor: executor.to_owned(),
                status,
            });
        }
    }

    /// Takes again the agent's own updates that could not be checkpointed.
    fn retake_unrecorded(&self) {
        let waiting = std::mem::take(&mut *lock(&self.unrecorded));
        for u in waiting {
            self.take_agent_update(
                &u.framework_id,
                &u.framework,
                &u.container,
                &u.executor,
                u.status,
            );
        }
    }

    /// Whether one of the agent's own updates of `task` awaits its checkpoint.
    fn is_unrecorded(&self, framework: &str, task: &str) -> bool {
        lock(&self.unrecorded)
            .iter()
            .any(|u| u.framework_id == framework && u.status.task_id.value == task)
    }

    /// Hands an update to the status update manager, counting it.
    fn manage(
        &self,
        update: StatusUpdate,
        log: Option<&std::path::Path>,
    ) -> Result<(), status_update::UpdateError> {
        let key = TaskKey {
            framework: update.framework_id.value.clone(),
            task: update.status.task_id.value.clone(),
        };
        let state = update.status.state;
        let mut updates = lock(&self.updates);
        let previous = updates.latest_state(&key);
        let taken = updates.update(update, log);
        drop(updates);
        match taken {
            Ok(forward) => {
                if self
                    .checkpoints_failing
                    .swap(false, std::sync::atomic::Ordering::SeqCst)
                {
                    tracing::warn!("status updates are checkpointed again");
                }
                self.counters.update(previous, state);
                if let Some(forward) = forward {
                    self.forward(forward);
                }
                Ok(())
            }
            Err(e @ status_update::UpdateError::Checkpoint(_)) => {
                // Retried (by the executor, or by the agent for its own
                // updates) until it is written: one line when it starts.
                if !self
                    .checkpoints_failing
                    .swap(true, std::sync::atomic::Ordering::SeqCst)
                {
                    tracing::error!(error = %e, "status updates cannot be checkpointed; they are refused until they can be, and retried");
                }
                Err(e)
            }
            Err(e) => {
                self.counters.invalid_update();
                tracing::error!(error = %e, "status update refused");
                Err(e)
            }
        }
    }

    /// Sends an update to the master with the task's latest state (as a
    /// Mesos agent sets `latest_state`), so that the master knows where the
    /// task is even while later updates wait behind this one's
    /// acknowledgement. Never called with the manager's lock held.
    fn forward(&self, mut update: StatusUpdate) {
        if !self.registered.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        if let Some(latest) = lock(&self.updates).latest_state(&TaskKey::of(&update)) {
            update.latest_state = Some(latest);
        }
        let _ = self.to_master.send(AgentToMaster {
            message: Some(agent_to_master::Message::StatusUpdate(update)),
        });
    }

    /// Schedules a finished run's sandbox and checkpoints for removal.
    fn schedule_gc(
        &self,
        framework: &str,
        executor: &str,
        container: &str,
        since: std::time::SystemTime,
    ) {
        let agent_id = self.agent_id();
        let ids = RunIds {
            agent: &agent_id,
            framework,
            executor,
            container,
        };
        for path in [
            self.config.layout.sandbox(&ids),
            self.config.layout.run_meta(&ids),
        ]
        .into_iter()
        .flatten()
        {
            self.gc.schedule(path, since);
        }
    }

    /// Marks an executor run as over, so recovery leaves it alone.
    fn mark_completed(&self, framework: &str, executor: &str, container: &str) {
        let agent_id = self.agent_id();
        let ids = RunIds {
            agent: &agent_id,
            framework,
            executor,
            container,
        };
        if let Ok(dir) = self.config.layout.run_meta(&ids) {
            let _ = std::fs::create_dir_all(&dir);
            if let Err(e) = std::fs::write(dir.join("executor.sentinel"), b"") {
                tracing::warn!(%container, error = %e, "marking an executor run completed");
            }
        }
    }

    /// Destroys the run in `container` if its executor has still not
    /// subscribed: its unfinished tasks end as `end` says once the
    /// container is gone. A run that subscribed meanwhile, or a newer run
    /// of the same executor, is left alone.
    async fn destroy_unregistered(&self, key: &ExecutorKey, container: &str, end: Termination) {
        {
            let mut executors = lock(&self.executors);
            let Some(run) = executors.get_mut(key) else {
                return;
            };
            if run.container != container || run.state != ExecutorState::Registering {
                return;
            }
            tracing::warn!(framework = %key.0, executor = %key.1, %container, message = %end.message, "destroying an executor that did not subscribe");
            run.state = ExecutorState::Terminating;
            run.termination = Some(end);
        }
        if let Err(e) = self.containerizer.destroy(container).await {
            tracing::warn!(%container, error = %e, "destroying an executor that did not subscribe");
        }
    }

    /// Waits for an executor's container to end (launched now, or
    /// recovered after a restart), fails what it left unfinished, and
    /// removes the container.
    async fn watch(&self, key: ExecutorKey, container: String) {
        let ended = self.containerizer.wait(&container).await;
        let message = match &ended {
            Ok(t) => match (&t.limitation, t.status) {
                (Some(limitation), _) => format!("Executor terminated: {limitation}"),
                (None, Some(status)) => {
                    format!("Executor terminated with exit code {}", status.code())
                }
                // A recovered executor's exit status went to init.
                (None, None) => "Executor terminated".to_owned(),
            },
            Err(e) => format!("Executor terminated: {e}"),
        };
        let reason = match ended.as_ref().ok().and_then(|t| t.limitation.as_ref()) {
            Some(limitation) => tepui_containerizer::mesos_reason(limitation),
            None => task_status::Reason::ExecutorTerminated,
        };
        let pending = lock(&self.executors)
            .get(&key)
            .filter(|run| run.container == container)
            .and_then(|run| run.termination.clone());
        match pending {
            Some(end) => self.end_run(&key, end),
            None => self.executor_failed(&key, reason, message),
        }
        match self.containerizer.destroy(&container).await {
            // Destroyed already (a timeout or a shutdown did it).
            Err(e) if matches!(e.kind, tepui_containerizer::ErrorKind::Unknown) => {}
            Err(e) => {
                tracing::warn!(%container, error = %e, "removing an ended executor's container")
            }
            Ok(_) => {}
        }
    }
}

/// A status update the agent itself makes for a task.
fn agent_status(
    task: &str,
    state: TaskState,
    reason: task_status::Reason,
    message: &str,
) -> TaskStatus {
    TaskStatus {
        task_id: tepui_proto::v1::TaskId {
            value: task.to_owned(),
        },
        state: state as i32,
        message: Some(message.to_owned()),
        source: Some(task_status::Source::Agent as i32),
        reason: Some(reason as i32),
        uuid: Some(tepui_driver::executor::random_uuid()),
        timestamp: Some(tepui_driver::executor::timestamp()),
        ..Default::default()
    }
}
