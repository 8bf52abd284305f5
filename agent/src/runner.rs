//! Running tasks: each task gets an executor run (a sandbox in the Mesos
//! layout, its URIs fetched, its executor launched in a container: the
//! built-in tepui-executor, or the task's own ExecutorInfo command); the
//! task waits in a queue until its executor subscribes; the executor's
//! status updates go through the status update manager to the master
//! link; when an executor's container ends, its tasks that had not ended
//! get a terminal update from the agent.
//!
//! The master link is a channel of [`AgentToMaster`] messages; the
//! registration that drains it is the agent daemon's.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use oci_spec::image::ImageConfiguration;
use tepui_containerizer::fetcher::{FetchUri, Fetcher};
use tepui_containerizer::provisioner::{Image, LogProgress, Provisioner, runtime};
use tepui_containerizer::{ContainerSpec, Containerizer, Stdio};
use tepui_proto::internal::{AgentToMaster, StatusUpdate, agent_to_master};
use tepui_proto::v1::executor::{Event, call, event};
use tepui_proto::v1::{
    AgentId, AgentInfo, ContainerId, ExecutorId, ExecutorInfo, FrameworkId, FrameworkInfo,
    NetworkInfo, TaskGroupInfo, TaskInfo, TaskState, TaskStatus, network_info, task_status,
};
use tokio::sync::mpsc;

use crate::checkpoint;
use crate::executor_api::{self, EventSink, ExecutorHost};
use crate::executor_env::{ExecutorEnvInput, executor_env};
use crate::gc::{Gc, GcConfig};
use crate::metrics::Counters;
use crate::paths::{Layout, RunIds};
use crate::rotating_log::{self, Rotation};
use crate::status_update::{self, Manager, TaskKey};
use crate::{task_image, task_process};

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
}

/// A task could not be taken.
#[derive(Debug, thiserror::Error)]
#[error("task {task}: {why}")]
pub struct RunError {
    /// The task.
    pub task: String,
    /// Why not.
    pub why: String,
}

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
    sink: Option<EventSink>,
    /// The runtime config of the image the built-in executor starts its
    /// tasks in.
    image_config: Option<Arc<ImageConfiguration>>,
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
    /// The LAUNCH or LAUNCH_GROUP event for `launch`, its commands
    /// rewritten for the image the built-in executor runs them in; or the
    /// tasks that cannot run, and why.
    fn event(&self, launch: Launch) -> Result<Event, (Vec<String>, String)> {
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
            for task in tasks.iter_mut() {
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

/// The image an executor run starts from: its executor's container's, or
/// for a command task (the built-in executor), the task's container's.
fn image_of(
    info: &ExecutorInfo,
    launch: &Launch,
) -> Result<Option<tepui_proto::v1::Image>, String> {
    let container = match (&info.container, launch) {
        (Some(container), _) => Some(container),
        (None, Launch::Task(task)) if task.executor.is_none() => task.container.as_ref(),
        _ => None,
    };
    let Some(container) = container else {
        return Ok(None);
    };
    use tepui_proto::v1::container_info::Type;
    match Type::try_from(container.r#type) {
        Ok(Type::Mesos) => Ok(container.mesos.as_ref().and_then(|m| m.image.clone())),
        Ok(Type::Docker) => Err(
            "ContainerInfo type DOCKER (the Docker containerizer) is not supported; use type MESOS with mesos.image"
                .into(),
        ),
        _ => Err("an unknown ContainerInfo type".into()),
    }
}

type ExecutorKey = (String, String);

/// Runs tasks in executors in containers.
pub struct Runner {
    config: RunnerConfig,
    /// The id the master gave this agent (set on registration).
    agent_id: Mutex<String>,
    /// Whether a master is listening; until it is, updates wait in the
    /// status update manager (and go out on registration).
    registered: std::sync::atomic::AtomicBool,
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

/// An executor run as the endpoints show it.
#[derive(Debug, Clone)]
pub struct RunView {
    /// Its framework.
    pub framework: FrameworkInfo,
    /// Its executor.
    pub info: ExecutorInfo,
    /// Its container id.
    pub container: String,
    /// Its sandbox on the host.
    pub sandbox: PathBuf,
    /// Its tasks with their latest states.
    pub tasks: Vec<(TaskInfo, i32)>,
    /// The ids of tasks waiting for the executor to subscribe.
    pub queued: Vec<String>,
    /// Whether its executor is subscribed now.
    pub subscribed: bool,
}

impl RunView {
    /// What the run holds now: its executor's resources and those of its
    /// tasks that have not ended.
    pub fn resources_in_use(&self) -> Vec<tepui_proto::v1::Resource> {
        let mut all = self.info.resources.clone();
        for (task, state) in &self.tasks {
            if !status_update::is_terminal(*state) {
                all.extend(task.resources.iter().cloned());
            }
        }
        all
    }
}

impl Executor {
    fn view(&self) -> RunView {
        let mut tasks: Vec<(TaskInfo, i32)> = self
            .infos
            .iter()
            .map(|(id, info)| {
                let state = self
                    .tasks
                    .get(id)
                    .copied()
                    .unwrap_or(TaskState::TaskStaging as i32);
                (info.clone(), state)
            })
            .collect();
        tasks.sort_by(|a, b| a.0.task_id.value.cmp(&b.0.task_id.value));
        RunView {
            framework: self.framework.clone(),
            info: self.info.clone(),
            container: self.container.clone(),
            sandbox: self.sandbox.clone(),
            tasks,
            queued: self
                .queued
                .iter()
                .flat_map(|l| l.tasks().iter().map(|t| t.task_id.value.clone()))
                .collect(),
            subscribed: self.sink.as_ref().is_some_and(|s| !s.is_closed()),
        }
    }
}

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
            config,
            containerizer,
            fetcher,
            executors: Mutex::new(HashMap::new()),
            updates: Mutex::new(Manager::new()),
            to_master,
            gc: Gc::new(),
            counters: Counters::default(),
            completed: Mutex::new(std::collections::VecDeque::new()),
        })
    }

    /// Sets the agent id the master assigned (before any task arrives).
    pub fn set_agent_id(&self, id: &str) {
        *lock(&self.agent_id) = id.to_owned();
    }

    fn agent_id(&self) -> String {
        lock(&self.agent_id).clone()
    }

    /// Takes a task of `framework`: starts its executor run and queues it.
    pub fn run_task(
        self: &Arc<Self>,
        framework: FrameworkInfo,
        task: TaskInfo,
    ) -> Result<(), RunError> {
        let fail = |why: &str| RunError {
            task: task.task_id.value.clone(),
            why: why.to_owned(),
        };
        let info = match (&task.executor, &task.command) {
            (Some(executor), None) => executor.clone(),
            (None, Some(_)) => ExecutorInfo {
                executor_id: ExecutorId {
                    value: task.task_id.value.clone(),
                },
                framework_id: framework.id.clone(),
                name: Some(format!("Command Executor (Task: {})", task.task_id.value)),
                ..Default::default()
            },
            (Some(_), Some(_)) => {
                return Err(fail("a task has a command or an executor, not both"));
            }
            (None, None) => return Err(fail("a task needs a command or an executor")),
        };
        if task.executor.is_some() && task.container.is_some() {
            return Err(fail(
                "a task of a custom executor cannot have its own container; give the executor's container the image",
            ));
        }
        self.take(framework, info, Launch::Task(Box::new(task)))
    }

    /// Takes a task group of `framework` for `executor` (the built-in
    /// executor when it has no command, as Mesos's default executor).
    pub fn run_task_group(
        self: &Arc<Self>,
        framework: FrameworkInfo,
        executor: ExecutorInfo,
        group: TaskGroupInfo,
    ) -> Result<(), RunError> {
        let first = group
            .tasks
            .first()
            .map(|t| t.task_id.value.clone())
            .unwrap_or_default();
        let fail = |why: &str| RunError {
            task: first.clone(),
            why: why.to_owned(),
        };
        if group.tasks.is_empty() {
            return Err(fail("a task group needs at least one task"));
        }
        for task in &group.tasks {
            if task.executor.is_some() {
                return Err(fail(
                    "a task of a group must not name an executor; the group's executor runs it",
                ));
            }
            if task.command.is_none() {
                return Err(fail("every task of a group needs a command"));
            }
            if task.container.is_some() {
                return Err(fail(
                    "a task of a group cannot have its own container here; give the executor's container the image",
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        if !group.tasks.iter().all(|t| seen.insert(&t.task_id.value)) {
            return Err(fail("a task group names a task id twice"));
        }
        self.take(framework, executor, Launch::Group(group))
    }

    /// Queues a launch for its executor, starting the executor run when
    /// it is not running yet.
    fn take(
        self: &Arc<Self>,
        framework: FrameworkInfo,
        info: ExecutorInfo,
        launch: Launch,
    ) -> Result<(), RunError> {
        let tasks = launch.tasks().to_vec();
        let fail = |why: &str| RunError {
            task: tasks
                .first()
                .map(|t| t.task_id.value.clone())
                .unwrap_or_default(),
            why: why.to_owned(),
        };
        let framework_id = framework
            .id
            .clone()
            .ok_or_else(|| fail("the framework has no id"))?
            .value;
        let key = (framework_id.clone(), info.executor_id.value.clone());
        let mut executors = lock(&self.executors);
        if let Some(running) = executors.get_mut(&key) {
            // A running executor takes further tasks (custom executors, groups).
            if tasks
                .iter()
                .any(|t| running.tasks.contains_key(&t.task_id.value))
            {
                return Err(fail("a task of this id already runs here"));
            }
            if running.framework.checkpoint.unwrap_or(false) {
                let agent_id = self.agent_id();
                let ids = RunIds {
                    agent: &agent_id,
                    framework: &framework_id,
                    executor: &info.executor_id.value,
                    container: &running.container,
                };
                self.checkpoint_run(&ids, &running.framework, &running.info, &tasks)
                    .map_err(|e| fail(&e))?;
            }
            for task in &tasks {
                running
                    .tasks
                    .insert(task.task_id.value.clone(), TaskState::TaskStaging as i32);
                running
                    .infos
                    .insert(task.task_id.value.clone(), task.clone());
            }
            let limits = self.limits_of(running);
            let container = running.container.clone();
            let send = running
                .sink
                .clone()
                .map(|sink| (sink, running.event(launch.clone())));
            if send.is_none() {
                running.queued.push(launch);
            }
            drop(executors);
            let runner = self.clone();
            tokio::spawn(async move {
                if let Err(e) = runner.containerizer.update(&container, limits).await {
                    tracing::warn!(%container, error = %e, "updating an executor's limits for new tasks");
                }
                if let Some((sink, event)) = send {
                    runner.send_launch(&key, sink, event).await;
                }
            });
            return Ok(());
        }
        let container = hex(&tepui_driver::executor::random_uuid());
        let agent_id = self.agent_id();
        let ids = RunIds {
            agent: &agent_id,
            framework: &framework_id,
            executor: &info.executor_id.value,
            container: &container,
        };
        let sandbox = self
            .config
            .layout
            .sandbox(&ids)
            .map_err(|e| fail(&e.to_string()))?;
        std::fs::create_dir_all(&sandbox)
            .map_err(|e| fail(&format!("{}: {e}", sandbox.display())))?;
        if framework.checkpoint.unwrap_or(false) {
            self.checkpoint_run(&ids, &framework, &info, &tasks)
                .map_err(|e| fail(&e.to_string()))?;
        }
        let image = match image_of(&info, &launch) {
            Ok(image) => image,
            Err(why) => return Err(fail(&why)),
        };
        let run = Executor {
            framework,
            info: info.clone(),
            container: container.clone(),
            sandbox: sandbox.clone(),
            queued: vec![launch],
            tasks: tasks
                .iter()
                .map(|t| (t.task_id.value.clone(), TaskState::TaskStaging as i32))
                .collect(),
            infos: tasks
                .iter()
                .map(|t| (t.task_id.value.clone(), t.clone()))
                .collect(),
            sink: None,
            image_config: None,
        };
        executors.insert(key.clone(), run);
        drop(executors);
        tracing::info!(framework = %framework_id, executor = %info.executor_id.value, %container, tasks = tasks.len(), "starting an executor");
        let runner = self.clone();
        tokio::spawn(async move {
            runner
                .start_executor(key, info, tasks, image, container, sandbox)
                .await
        });
        Ok(())
    }

    /// Sends a launch to a subscribed executor, or fails its tasks when
    /// their command cannot be formed for the image.
    async fn send_launch(
        &self,
        key: &ExecutorKey,
        sink: EventSink,
        event: Result<Event, (Vec<String>, String)>,
    ) {
        match event {
            Ok(event) => {
                sink.send(&event).await;
            }
            Err((tasks, why)) => {
                for task in tasks {
                    self.fail_task(key, &task, task_status::Reason::ContainerLaunchFailed, &why);
                }
            }
        }
    }

    /// A task the executor saw die (its process killed) in a container
    /// that hit its memory limit failed for that limit: the update says
    /// so, with Mesos's reason, as when the whole executor is OOM-killed.
    fn blame_limitation(&self, container: &str, status: &mut TaskStatus) {
        if status.state != TaskState::TaskFailed as i32 {
            return;
        }
        let Ok(Some(limitation)) = self.containerizer.limitation(container) else {
            return;
        };
        status.reason = Some(tepui_containerizer::mesos_reason(&limitation) as i32);
        status.message = Some(match status.message.take() {
            Some(said) if !said.is_empty() => format!("{limitation}: {said}"),
            _ => limitation.to_string(),
        });
    }

    /// Fills in what the executor's update did not say of its container,
    /// as the Mesos agent does: its id, its first process and the agent's
    /// address (the container shares the agent's network).
    fn describe_container(&self, container: &str, status: &mut TaskStatus) {
        let described = status.container_status.get_or_insert_with(Default::default);
        if described.container_id.is_none() {
            described.container_id = Some(ContainerId {
                value: container.to_owned(),
                parent: None,
            });
        }
        if described.executor_pid.is_none() {
            described.executor_pid = self
                .containerizer
                .pid(container)
                .and_then(|pid| u32::try_from(pid).ok());
        }
        if described.network_infos.is_empty()
            && let Ok(address) = self.config.endpoint.parse::<std::net::SocketAddr>()
        {
            let protocol = if address.is_ipv6() {
                network_info::Protocol::IPv6
            } else {
                network_info::Protocol::IPv4
            };
            described.network_infos.push(NetworkInfo {
                ip_addresses: vec![network_info::IpAddress {
                    protocol: Some(protocol as i32),
                    ip_address: Some(address.ip().to_string()),
                }],
                ..Default::default()
            });
        }
    }

    /// Fails one task from the agent.
    fn fail_task(&self, key: &ExecutorKey, task: &str, reason: task_status::Reason, why: &str) {
        let (framework, container, executor_id) = {
            let mut executors = lock(&self.executors);
            let Some(run) = executors.get_mut(key) else {
                return;
            };
            run.tasks
                .insert(task.to_owned(), TaskState::TaskFailed as i32);
            (
                run.framework.clone(),
                run.container.clone(),
                run.info.executor_id.clone(),
            )
        };
        let mut status = agent_status(task, TaskState::TaskFailed, reason, why);
        status.executor_id = Some(executor_id);
        self.take_update(&key.0, &framework, &container, &key.1, status);
    }

    /// The limits of an executor run: its resources and its tasks'.
    fn limits_of(&self, run: &Executor) -> tepui_containerizer::Limits {
        crate::resources::limits(
            std::iter::once(run.info.resources.as_slice())
                .chain(run.infos.values().map(|t| t.resources.as_slice())),
            self.containerizer.controllers(),
        )
    }

    /// Fetches, provisions, launches and then watches one executor run.
    async fn start_executor(
        self: Arc<Self>,
        key: ExecutorKey,
        info: ExecutorInfo,
        tasks: Vec<TaskInfo>,
        image: Option<tepui_proto::v1::Image>,
        container: String,
        sandbox: PathBuf,
    ) {
        // A custom executor fetches its own URIs; the built-in one, its tasks'.
        let uris: Vec<FetchUri> = match &info.command {
            Some(command) => command.uris.iter().map(FetchUri::from).collect(),
            None => tasks
                .iter()
                .filter_map(|t| t.command.as_ref())
                .flat_map(|c| c.uris.iter().map(FetchUri::from))
                .collect(),
        };
        if let Err(e) = self.fetcher.fetch_all(&uris, &sandbox).await {
            self.executor_failed(
                &key,
                task_status::Reason::ContainerLaunchFailed,
                e.to_string(),
            );
            return;
        }
        let image = match image {
            Some(image) => match self.provision(&image).await {
                Ok(image) => Some(image),
                Err(why) => {
                    self.executor_failed(&key, task_status::Reason::ContainerLaunchFailed, why);
                    return;
                }
            },
            None => None,
        };
        let spec = match self.executor_spec(&key, &info, &sandbox, image) {
            Ok(spec) => spec,
            Err(why) => {
                self.executor_failed(&key, task_status::Reason::ContainerLaunchFailed, why);
                return;
            }
        };
        if let Err(e) = self.containerizer.launch(&container, spec).await {
            self.executor_failed(
                &key,
                task_status::Reason::ContainerLaunchFailed,
                e.to_string(),
            );
            return;
        }
        self.watch(key, container).await;
    }

    /// The image named by a task or executor, from the store or its registry.
    async fn provision(&self, image: &tepui_proto::v1::Image) -> Result<Image, String> {
        let provisioner = self
            .config
            .provisioner
            .clone()
            .ok_or("this agent has no image store for tasks with images")?;
        let (reference, cached) = runtime::image_reference(image).map_err(|e| e.to_string())?;
        provisioner
            .ensure(&reference, cached, Arc::new(LogProgress::default()))
            .await
            .map_err(|e| format!("provisioning image {reference}: {e}"))
    }

    /// The container spec of an executor run.
    fn executor_spec(
        &self,
        key: &ExecutorKey,
        info: &ExecutorInfo,
        sandbox: &std::path::Path,
        image: Option<Image>,
    ) -> Result<ContainerSpec, String> {
        let (checkpoint, limits) = {
            let mut executors = lock(&self.executors);
            let run = executors.get_mut(key).ok_or("the executor run is gone")?;
            run.image_config = image.as_ref().map(|i| Arc::new(i.config.clone()));
            (
                run.framework.checkpoint.unwrap_or(false),
                self.limits_of(run),
            )
        };
        let command = match &info.command {
            Some(c) if c.shell.unwrap_or(true) => {
                vec![
                    "/bin/sh".to_owned(),
                    "-c".to_owned(),
                    c.value
                        .clone()
                        .ok_or("an executor command without a value")?,
                ]
            }
            Some(c) => {
                let mut argv = c.arguments.clone();
                if argv.is_empty() {
                    argv.push(
                        c.value
                            .clone()
                            .ok_or("an executor command without a value")?,
                    );
                }
                argv
            }
            None => vec![self.config.command_executor.display().to_string()],
        };
        let mut spec = ContainerSpec::new(command);
        if let Some(c) = info.command.as_ref().filter(|c| !c.shell.unwrap_or(true)) {
            spec.program = c.value.clone();
        }
        let agent_id = self.agent_id();
        // A custom executor in an image sees the sandbox at its mount.
        let inside = std::path::Path::new(tepui_isolators::filesystem::SANDBOX_IN_CONTAINER);
        let seen = match (&image, &info.command) {
            (Some(_), Some(_)) => inside,
            _ => sandbox,
        };
        spec.env.extend(executor_env(&ExecutorEnvInput {
            agent_id: &agent_id,
            agent_endpoint: &self.config.endpoint,
            framework_id: &key.0,
            executor_id: &key.1,
            directory: sandbox,
            sandbox: seen,
            checkpoint,
            recovery_timeout: self.config.recovery_timeout,
            subscription_backoff_max: Duration::from_secs(2),
            shutdown_grace_period: self.config.shutdown_grace_period,
        }));
        if let Some(env) = info.command.as_ref().and_then(|c| c.environment.as_ref()) {
            for variable in &env.variables {
                if let Some(value) = &variable.value {
                    spec.env.retain(|(k, _)| *k != variable.name);
                    spec.env.push((variable.name.clone(), value.clone()));
                }
            }
        }
        if info.command.is_none() {
            let rotation = self.config.log_rotation;
            spec.env.push((
                rotating_log::MAX_SIZE_ENV.into(),
                rotation.max_bytes.to_string(),
            ));
            spec.env.push((
                rotating_log::MAX_FILES_ENV.into(),
                rotation.keep.to_string(),
            ));
        }
        if let Some(image) = image {
            if info.command.is_none() {
                // The built-in executor stays on the host's filesystem and
                // starts its tasks in the image.
                spec.enter_rootfs = false;
                if let Some(dir) = runtime::working_dir(&image.config) {
                    spec.env
                        .push((task_process::WORKDIR_ENV.into(), dir.display().to_string()));
                }
            } else {
                spec.user = runtime::user(&image.config);
                spec.cwd = runtime::working_dir(&image.config);
            }
            spec.image = Some(image);
        }
        spec.limits = limits;
        spec.mounts.sandbox = Some(sandbox.to_owned());
        spec.stdio = Stdio::Files {
            stdout: sandbox.join("stdout"),
            stderr: sandbox.join("stderr"),
        };
        Ok(spec)
    }

    /// Ends every task of an executor that had not ended, with `reason`.
    fn executor_failed(&self, key: &ExecutorKey, reason: task_status::Reason, message: String) {
        // Out of the live runs and into the completed ones under the live
        // runs' lock, so that a reader of both (`/state`) never misses it.
        let executor = {
            let mut executors = lock(&self.executors);
            let Some(executor) = executors.remove(key) else {
                return;
            };
            let mut ended = executor.view();
            for (_, state) in &mut ended.tasks {
                if !status_update::is_terminal(*state) {
                    *state = TaskState::TaskFailed as i32;
                }
            }
            let mut completed = lock(&self.completed);
            completed.push_back(ended);
            while completed.len() > COMPLETED_RUNS {
                completed.pop_front();
            }
            executor
        };
        if executor.framework.checkpoint.unwrap_or(false) {
            self.mark_completed(&key.0, &key.1, &executor.container);
        }
        self.schedule_gc(
            &key.0,
            &key.1,
            &executor.container,
            std::time::SystemTime::now(),
        );
        tracing::info!(framework = %key.0, executor = %key.1, %message, "executor ended");
        self.counters.executor_terminated();
        for (task, state) in executor.tasks {
            if status_update::is_terminal(state) {
                continue;
            }
            let mut status = agent_status(&task, TaskState::TaskFailed, reason, &message);
            status.executor_id = Some(executor.info.executor_id.clone());
            self.take_update(
                &key.0,
                &executor.framework,
                &executor.container,
                &key.1,
                status,
            );
        }
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
    ) {
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
                return;
            }
        };
        let update = StatusUpdate {
            framework_id: FrameworkId {
                value: framework_id.to_owned(),
            },
            latest_state: Some(status.state),
            status,
        };
        self.manage(update, log.as_deref());
    }

    /// Hands an update to the status update manager, counting it.
    fn manage(&self, update: StatusUpdate, log: Option<&std::path::Path>) {
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
                self.counters.update(previous, state);
                if let Some(forward) = forward {
                    self.forward(forward);
                }
            }
            Err(e) => {
                self.counters.invalid_update();
                tracing::error!(error = %e, "status update refused");
            }
        }
    }

    fn forward(&self, update: StatusUpdate) {
        if !self.registered.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let _ = self.to_master.send(AgentToMaster {
            message: Some(agent_to_master::Message::StatusUpdate(update)),
        });
    }

    /// The scheduler acknowledged an update (relayed by the master).
    pub fn acknowledge(&self, framework: &str, task: &str, uuid: &[u8]) {
        let key = TaskKey {
            framework: framework.to_owned(),
            task: task.to_owned(),
        };
        match lock(&self.updates).acknowledge(&key, uuid) {
            Ok(acked) => {
                if let Some(next) = acked.next {
                    self.forward(next);
                }
            }
            Err(e) => tracing::warn!(error = %e, "acknowledgement refused"),
        }
    }

    /// Kills a task: its executor is sent KILL (with the kill policy, if
    /// given); a task still queued for an executor that has not subscribed
    /// ends at once as TASK_KILLED from the agent.
    pub fn kill_task(
        &self,
        framework: &str,
        task: &str,
        kill_policy: Option<tepui_proto::v1::KillPolicy>,
    ) {
        let mut executors = lock(&self.executors);
        let Some((key, run)) = executors
            .iter_mut()
            .find(|((fw, _), run)| fw == framework && run.tasks.contains_key(task))
        else {
            drop(executors);
            tracing::warn!(%framework, %task, "kill of an unknown task");
            return;
        };
        let key = key.clone();
        let queued = run
            .queued
            .iter()
            .position(|l| l.tasks().iter().any(|t| t.task_id.value == task));
        if let Some(position) = queued {
            // A queued group goes as a whole, as a launched one would.
            let launch = run.queued.remove(position);
            let killed: Vec<String> = launch
                .tasks()
                .iter()
                .map(|t| t.task_id.value.clone())
                .collect();
            for id in &killed {
                run.tasks.insert(id.clone(), TaskState::TaskKilled as i32);
            }
            let (framework_info, container) = (run.framework.clone(), run.container.clone());
            drop(executors);
            for id in killed {
                let status = agent_status(
                    &id,
                    TaskState::TaskKilled,
                    task_status::Reason::TaskKilledDuringLaunch,
                    "killed before its executor took it",
                );
                self.take_update(&key.0, &framework_info, &container, &key.1, status);
            }
            return;
        }
        let Some(sink) = run.sink.clone() else {
            return;
        };
        drop(executors);
        let kill = Event {
            r#type: Some(event::Type::Kill as i32),
            kill: Some(event::Kill {
                task_id: tepui_proto::v1::TaskId {
                    value: task.to_owned(),
                },
                kill_policy,
            }),
            ..Default::default()
        };
        tokio::spawn(async move {
            sink.send(&kill).await;
        });
    }

    /// Kills a task of whichever framework runs it (the master names only
    /// the task when it does not know it).
    pub fn kill_unknown_task(&self, task: &str) {
        let framework = lock(&self.executors)
            .iter()
            .find(|(_, run)| run.tasks.contains_key(task))
            .map(|((fw, _), _)| fw.clone());
        if let Some(framework) = framework {
            self.kill_task(&framework, task, None);
        }
    }

    /// Shuts down every executor of a framework (SHUTDOWN, then the
    /// container is destroyed after the shutdown grace period).
    pub fn shutdown_framework(self: &Arc<Self>, framework: &str) {
        let runs: Vec<(Option<EventSink>, String)> = lock(&self.executors)
            .iter()
            .filter(|((fw, _), _)| fw == framework)
            .map(|(_, run)| (run.sink.clone(), run.container.clone()))
            .collect();
        for (sink, container) in runs {
            self.shutdown_run(sink, container);
        }
    }

    /// Shuts down one executor as [`Runner::shutdown_framework`] does.
    pub fn shutdown_executor(self: &Arc<Self>, framework: &str, executor: &str) {
        let run = lock(&self.executors)
            .get(&(framework.to_owned(), executor.to_owned()))
            .map(|run| (run.sink.clone(), run.container.clone()));
        match run {
            Some((sink, container)) => self.shutdown_run(sink, container),
            None => tracing::warn!(%framework, %executor, "shutdown of an unknown executor"),
        }
    }

    fn shutdown_run(self: &Arc<Self>, sink: Option<EventSink>, container: String) {
        let runner = self.clone();
        tokio::spawn(async move {
            if let Some(sink) = sink {
                let shutdown = Event {
                    r#type: Some(event::Type::Shutdown as i32),
                    ..Default::default()
                };
                sink.send(&shutdown).await;
                let grace = runner.config.shutdown_grace_period;
                if tokio::time::timeout(grace, runner.containerizer.wait(&container))
                    .await
                    .is_ok()
                {
                    return;
                }
            }
            if let Err(e) = runner.containerizer.destroy(&container).await {
                tracing::warn!(%container, error = %e, "destroying an executor at shutdown");
            }
        });
    }

    /// Passes a scheduler's message to its executor (dropped, as in Mesos,
    /// when the executor is unknown or not subscribed).
    pub fn message_executor(&self, framework: &str, executor: &str, data: Vec<u8>) {
        let sink = lock(&self.executors)
            .get(&(framework.to_owned(), executor.to_owned()))
            .and_then(|run| run.sink.clone());
        let Some(sink) = sink else {
            tracing::warn!(%framework, %executor, "dropping a framework message for an executor not subscribed here");
            return;
        };
        let message = Event {
            r#type: Some(event::Type::Message as i32),
            message: Some(event::Message { data }),
            ..Default::default()
        };
        tokio::spawn(async move {
            sink.send(&message).await;
        });
    }

    /// Checkpoints a new executor run: framework.info, executor.info and
    /// its first tasks' task.info, so a restarted agent can recover it.
    fn checkpoint_run(
        &self,
        ids: &RunIds<'_>,
        framework: &FrameworkInfo,
        info: &ExecutorInfo,
        tasks: &[TaskInfo],
    ) -> Result<(), String> {
        let layout = &self.config.layout;
        let framework_dir = layout
            .framework_meta(ids.agent, ids.framework)
            .map_err(|e| e.to_string())?;
        checkpoint::write(&framework_dir.join("framework.info"), framework)
            .map_err(|e| e.to_string())?;
        let executor_dir = layout
            .executor_meta(ids.agent, ids.framework, ids.executor)
            .map_err(|e| e.to_string())?;
        checkpoint::write(&executor_dir.join("executor.info"), info).map_err(|e| e.to_string())?;
        for task in tasks {
            let task_dir = layout
                .task_meta(ids, &task.task_id.value)
                .map_err(|e| e.to_string())?;
            checkpoint::write(&task_dir.join("task.info"), task).map_err(|e| e.to_string())?;
        }
        Ok(())
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

    /// Removes finished runs older than the age the disk usage allows;
    /// never a running executor's sandbox. Returns what was removed.
    pub fn collect_garbage(&self, config: &GcConfig) -> Vec<PathBuf> {
        let usage = crate::gc::disk_usage(self.config.layout.work_dir()).unwrap_or(0.0);
        let allowed = crate::gc::max_age(config, usage);
        let live: Vec<PathBuf> = lock(&self.executors)
            .values()
            .map(|e| e.sandbox.clone())
            .collect();
        self.gc
            .prune(std::time::SystemTime::now(), allowed, |path| {
                live.iter()
                    .any(|l| l.starts_with(path) || path.starts_with(l))
            })
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

    /// After a restart: rebuilds the executor runs of checkpointing
    /// frameworks from the work dir, re-attaches their containers and
    /// waits for their executors to subscribe again; runs whose container
    /// is gone fail their unfinished tasks. Returns (recovered, lost).
    ///
    /// With `strict`, an unreadable checkpoint fails recovery (naming the
    /// file); without, the run it belongs to is skipped with a warning and
    /// its container, no longer known, is destroyed as an orphan.
    pub async fn recover(
        self: &Arc<Self>,
        agent_id: &str,
        strict: bool,
    ) -> Result<(usize, usize), RecoveryError> {
        self.set_agent_id(agent_id);
        let mut found = Vec::new();
        // Each run's update streams are read before anything is re-attached.
        let (runs, completed) = scan(&self.config.layout, agent_id, strict)?;
        for (framework, executor, container, since) in completed {
            self.schedule_gc(&framework, &executor, &container, since);
        }
        for run in runs {
            let mut failed = None;
            for (_, log) in &run.tasks {
                if let Err(e) = lock(&self.updates).recover(log) {
                    failed = Some(RecoveryError {
                        path: log.clone(),
                        why: e.to_string(),
                    });
                    break;
                }
            }
            match failed {
                Some(e) if strict => return Err(e),
                Some(e) => {
                    tracing::warn!(error = %e, container = %run.container, "skipping an executor run whose checkpoint does not read")
                }
                None => found.push(run),
            }
        }
        let containers: Vec<String> = found.iter().map(|r| r.container.clone()).collect();
        let recovered =
            self.containerizer
                .recover(&containers)
                .await
                .map_err(|e| RecoveryError {
                    path: PathBuf::from("containers"),
                    why: e.to_string(),
                })?;
        let (mut alive, mut lost) = (0, 0);
        for run in found {
            let key = (run.framework_id.clone(), run.info.executor_id.value.clone());
            let mut tasks = HashMap::new();
            for (task, _) in &run.tasks {
                let task_key = TaskKey {
                    framework: run.framework_id.clone(),
                    task: task.task_id.value.clone(),
                };
                let state = lock(&self.updates)
                    .latest_state(&task_key)
                    .unwrap_or(TaskState::TaskStaging as i32);
                tasks.insert(task.task_id.value.clone(), state);
            }
            let sandbox = self
                .config
                .layout
                .sandbox(&RunIds {
                    agent: agent_id,
                    framework: &run.framework_id,
                    executor: &run.info.executor_id.value,
                    container: &run.container,
                })
                .map_err(|e| RecoveryError {
                    path: PathBuf::from(&run.container),
                    why: e.to_string(),
                })?;
            lock(&self.executors).insert(
                key.clone(),
                Executor {
                    framework: run.framework.clone(),
                    info: run.info.clone(),
                    container: run.container.clone(),
                    sandbox,
                    queued: Vec::new(),
                    tasks,
                    infos: run
                        .tasks
                        .iter()
                        .map(|(t, _)| (t.task_id.value.clone(), t.clone()))
                        .collect(),
                    sink: None,
                    image_config: None,
                },
            );
            if recovered.alive.contains(&run.container) {
                alive += 1;
                tracing::info!(framework = %key.0, executor = %key.1, container = %run.container, "executor run recovered; waiting for it to subscribe");
                let runner = self.clone();
                tokio::spawn(async move { runner.watch(key, run.container).await });
            } else {
                lost += 1;
                self.executor_failed(
                    &key,
                    task_status::Reason::ExecutorTerminated,
                    "Executor terminated while the agent was down".to_owned(),
                );
            }
        }
        // Executors that do not come back within the recovery timeout are ended.
        let runner = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(runner.config.recovery_timeout).await;
            let silent: Vec<String> = lock(&runner.executors)
                .values()
                .filter(|e| e.sink.is_none())
                .map(|e| e.container.clone())
                .collect();
            for container in silent {
                tracing::warn!(%container, "executor did not subscribe within the recovery timeout; destroying it");
                let _ = runner.containerizer.destroy(&container).await;
            }
        });
        Ok((alive, lost))
    }

    /// Destroys every executor run (`--recover=cleanup`) and waits until
    /// their tasks have their terminal updates; returns how many there were.
    pub async fn destroy_all(&self) -> usize {
        let containers: Vec<String> = lock(&self.executors)
            .values()
            .map(|e| e.container.clone())
            .collect();
        for container in &containers {
            if let Err(e) = self.containerizer.destroy(container).await {
                tracing::warn!(%container, error = %e, "destroying an executor at cleanup");
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !lock(&self.executors).is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        containers.len()
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
        self.executor_failed(&key, reason, message);
        if let Err(e) = self.containerizer.destroy(&container).await {
            tracing::warn!(%container, error = %e, "removing an ended executor's container");
        }
    }

    /// What this agent runs, for re-registering: the frameworks, executors
    /// and tasks of its live executor runs.
    pub fn report(
        &self,
    ) -> (
        Vec<FrameworkInfo>,
        Vec<ExecutorInfo>,
        Vec<tepui_proto::v1::Task>,
    ) {
        let agent_id = self.agent_id();
        let executors = lock(&self.executors);
        let mut frameworks: Vec<FrameworkInfo> = Vec::new();
        let mut infos = Vec::new();
        let mut tasks = Vec::new();
        for ((framework_id, _), run) in executors.iter() {
            if !frameworks.iter().any(|f| f.id == run.framework.id) {
                frameworks.push(run.framework.clone());
            }
            infos.push(run.info.clone());
            for (task_id, state) in &run.tasks {
                let Some(info) = run.infos.get(task_id) else {
                    continue;
                };
                tasks.push(tepui_proto::v1::Task {
                    name: info.name.clone(),
                    task_id: info.task_id.clone(),
                    framework_id: FrameworkId {
                        value: framework_id.clone(),
                    },
                    executor_id: Some(run.info.executor_id.clone()),
                    agent_id: AgentId {
                        value: agent_id.clone(),
                    },
                    state: *state,
                    resources: info.resources.clone(),
                    ..Default::default()
                });
            }
        }
        (frameworks, infos, tasks)
    }

    /// Whether a master is listening (set by the master link).
    pub fn set_registered(&self, registered: bool) {
        self.registered
            .store(registered, std::sync::atomic::Ordering::SeqCst);
    }

    /// Forwards again every update awaiting acknowledgement (after the
    /// agent registers again with a master).
    pub fn forward_pending(&self) {
        let heads = lock(&self.updates).heads();
        for update in heads {
            self.forward(update);
        }
    }

    /// Refuses a task the agent cannot take: TASK_ERROR from the agent.
    pub fn reject_task(&self, framework: &str, task: &str, why: &str) {
        let status = agent_status(
            task,
            TaskState::TaskError,
            task_status::Reason::TaskInvalid,
            why,
        );
        let update = StatusUpdate {
            framework_id: FrameworkId {
                value: framework.to_owned(),
            },
            latest_state: Some(status.state),
            status,
        };
        self.manage(update, None);
    }

    /// The updates due to be forwarded again now.
    pub fn retry_due(&self) {
        let due = lock(&self.updates).due(std::time::Instant::now());
        for update in due {
            self.forward(update);
        }
    }

    /// How many executor runs are live now.
    pub fn live_runs(&self) -> usize {
        lock(&self.executors).len()
    }

    /// The executor runs live now.
    pub fn runs(&self) -> Vec<RunView> {
        lock(&self.executors).values().map(Executor::view).collect()
    }

    /// The latest ended executor runs, oldest first.
    pub fn completed_runs(&self) -> Vec<RunView> {
        lock(&self.completed).iter().cloned().collect()
    }

    /// The counters for the metrics endpoints.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Whether a master is listening.
    pub fn is_registered(&self) -> bool {
        self.registered.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The id the master gave this agent (empty before registration).
    pub fn id(&self) -> String {
        self.agent_id()
    }

    /// The pid of a container's first process (its executor).
    pub fn container_pid(&self, container: &str) -> Option<i32> {
        self.containerizer.pid(container)
    }

    /// The resource usage of a container.
    pub async fn usage(&self, container: &str) -> Option<tepui_containerizer::Usage> {
        self.containerizer.usage(container).await.ok()
    }

    /// The sandbox of the executor run in `container`, live or one of the
    /// latest completed runs.
    pub fn container_sandbox(&self, container: &str) -> Option<PathBuf> {
        if let Some(run) = lock(&self.executors)
            .values()
            .find(|e| e.container == container)
        {
            return Some(run.sandbox.clone());
        }
        lock(&self.completed)
            .iter()
            .find(|r| r.container == container)
            .map(|r| r.sandbox.clone())
    }

    /// Whether an executor run lives in `container` now.
    pub fn is_live(&self, container: &str) -> bool {
        lock(&self.executors)
            .values()
            .any(|e| e.container == container)
    }

    /// The sandbox of a task's executor run, while it runs.
    pub fn sandbox_of(&self, framework: &str, executor: &str) -> Option<PathBuf> {
        lock(&self.executors)
            .get(&(framework.to_owned(), executor.to_owned()))
            .map(|e| e.sandbox.clone())
    }
}

/// Recovery could not read the work dir.
#[derive(Debug, thiserror::Error)]
#[error("recovering {path}: {why}")]
pub struct RecoveryError {
    /// The file or directory.
    pub path: PathBuf,
    /// What was wrong.
    pub why: String,
}

/// One checkpointed executor run.
struct CheckpointedRun {
    framework_id: String,
    framework: FrameworkInfo,
    info: ExecutorInfo,
    container: String,
    /// Its tasks and their update logs.
    tasks: Vec<(TaskInfo, PathBuf)>,
}

fn entries(dir: &std::path::Path) -> Vec<(String, PathBuf)> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect()
        })
        .unwrap_or_default()
}

fn required<M: prost::Message + Default>(path: PathBuf) -> Result<M, RecoveryError> {
    match checkpoint::read::<M>(&path) {
        Ok(Some(m)) => Ok(m),
        Ok(None) => Err(RecoveryError {
            path,
            why: "missing".into(),
        }),
        Err(e) => Err(RecoveryError { path, why: e.why }),
    }
}

/// The executor runs checkpointed under `agent_id` that had not completed.
/// An unreadable checkpoint is an error when `strict`, else its framework,
/// executor or run is skipped with a warning.
fn scan(layout: &Layout, agent_id: &str, strict: bool) -> Result<Scanned, RecoveryError> {
    let bad = |e: crate::paths::BadId| RecoveryError {
        path: layout.work_dir().to_owned(),
        why: e.to_string(),
    };
    let skip = |e: RecoveryError| -> Result<(), RecoveryError> {
        if strict {
            return Err(e);
        }
        tracing::warn!(error = %e, "skipping what this checkpoint describes");
        Ok(())
    };
    let mut runs = Vec::new();
    let mut completed = Vec::new();
    let frameworks = layout.agent_meta(agent_id).map_err(bad)?.join("frameworks");
    for (framework_id, framework_dir) in entries(&frameworks) {
        let framework: FrameworkInfo = match required(framework_dir.join("framework.info")) {
            Ok(f) => f,
            Err(e) => {
                skip(e)?;
                continue;
            }
        };
        for (_, executor_dir) in entries(&framework_dir.join("executors")) {
            let info: ExecutorInfo = match required(executor_dir.join("executor.info")) {
                Ok(i) => i,
                Err(e) => {
                    skip(e)?;
                    continue;
                }
            };
            'runs: for (container, run_dir) in entries(&executor_dir.join("runs")) {
                if let Ok(sentinel) = std::fs::metadata(run_dir.join("executor.sentinel")) {
                    let since = sentinel
                        .modified()
                        .unwrap_or_else(|_| std::time::SystemTime::now());
                    completed.push((
                        framework_id.clone(),
                        info.executor_id.value.clone(),
                        container,
                        since,
                    ));
                    continue;
                }
                let mut tasks = Vec::new();
                for (_, task_dir) in entries(&run_dir.join("tasks")) {
                    match required::<TaskInfo>(task_dir.join("task.info")) {
                        Ok(task) => tasks.push((task, task_dir.join("task.updates"))),
                        Err(e) => {
                            skip(e)?;
                            continue 'runs;
                        }
                    }
                }
                runs.push(CheckpointedRun {
                    framework_id: framework_id.clone(),
                    framework: framework.clone(),
                    info: info.clone(),
                    container,
                    tasks,
                });
            }
        }
    }
    Ok((runs, completed))
}

/// Runs to recover, and finished runs (framework, executor, container,
/// when it ended) to collect.
type Scanned = (
    Vec<CheckpointedRun>,
    Vec<(String, String, String, std::time::SystemTime)>,
);

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

impl ExecutorHost for Runner {
    fn heartbeat_interval(&self) -> Duration {
        self.config.heartbeat_interval
    }

    fn subscribe(
        &self,
        framework: &str,
        executor: &str,
        subscribe: call::Subscribe,
        events: EventSink,
    ) -> Result<(), String> {
        let key = (framework.to_owned(), executor.to_owned());
        let (subscribed, queued, resent, framework_info, container) = {
            let mut executors = lock(&self.executors);
            let Some(run) = executors.get_mut(&key) else {
                return Err(format!(
                    "unknown executor {executor} of framework {framework}"
                ));
            };
            run.sink = Some(events.clone());
            let subscribed = Event {
                r#type: Some(event::Type::Subscribed as i32),
                subscribed: Some(event::Subscribed {
                    executor_info: run.info.clone(),
                    framework_info: run.framework.clone(),
                    agent_info: AgentInfo {
                        hostname: self.config.hostname.clone(),
                        id: Some(AgentId {
                            value: self.agent_id(),
                        }),
                        ..Default::default()
                    },
                    container_id: Some(ContainerId {
                        value: run.container.clone(),
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            };
            let queued: Vec<_> = std::mem::take(&mut run.queued)
                .into_iter()
                .map(|launch| run.event(launch))
                .collect();
            let resent: Vec<TaskStatus> = subscribe
                .unacknowledged_updates
                .into_iter()
                .map(|u| u.status)
                .collect();
            (
                subscribed,
                queued,
                resent,
                run.framework.clone(),
                run.container.clone(),
            )
        };
        tracing::info!(%framework, %executor, "executor subscribed");
        for status in &resent {
            self.take_update(
                framework,
                &framework_info,
                &container,
                executor,
                status.clone(),
            );
        }
        let mut launches = Vec::new();
        for event in queued {
            match event {
                Ok(event) => launches.push(event),
                Err((tasks, why)) => {
                    for task in tasks {
                        self.fail_task(
                            &key,
                            &task,
                            task_status::Reason::ContainerLaunchFailed,
                            &why,
                        );
                    }
                }
            }
        }
        tokio::spawn(async move {
            events.send(&subscribed).await;
            for launch in &launches {
                events.send(launch).await;
            }
            for status in &resent {
                events.send(&executor_api::acknowledged(status)).await;
            }
        });
        Ok(())
    }

    fn update(
        &self,
        framework: &str,
        executor: &str,
        mut status: TaskStatus,
    ) -> Result<(), String> {
        let key = (framework.to_owned(), executor.to_owned());
        let (framework_info, container, sink) = {
            let mut executors = lock(&self.executors);
            let Some(run) = executors.get_mut(&key) else {
                return Err(format!(
                    "unknown executor {executor} of framework {framework}"
                ));
            };
            let Some(state) = run.tasks.get_mut(&status.task_id.value) else {
                return Err(format!(
                    "task {} is not one of this executor's",
                    status.task_id.value
                ));
            };
            *state = status.state;
            (
                run.framework.clone(),
                run.container.clone(),
                run.sink.clone(),
            )
        };
        self.blame_limitation(&container, &mut status);
        self.describe_container(&container, &mut status);
        self.take_update(
            framework,
            &framework_info,
            &container,
            executor,
            status.clone(),
        );
        if let Some(sink) = sink {
            tokio::spawn(async move {
                sink.send(&executor_api::acknowledged(&status)).await;
            });
        }
        Ok(())
    }

    fn message(&self, framework: &str, executor: &str, data: Vec<u8>) -> Result<(), String> {
        let _ = self.to_master.send(AgentToMaster {
            message: Some(agent_to_master::Message::FrameworkMessage(
                tepui_proto::internal::FrameworkMessage {
                    agent_id: AgentId {
                        value: self.agent_id(),
                    },

                    framework_id: FrameworkId {
                        value: framework.to_owned(),
                    },
                    executor_id: ExecutorId {
                        value: executor.to_owned(),
                    },
                    data,
                },
            )),
        });
        Ok(())
    }
}
