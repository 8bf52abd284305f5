//! tepui-executor: the built-in executor. As Mesos's command executor it
//! runs one task's CommandInfo (LAUNCH); as its default executor it runs
//! task groups (LAUNCH_GROUP), where a task that fails or is killed takes
//! the rest of its group with it. It reports TASK_STARTING, TASK_RUNNING
//! and the terminal state with the exit status, honours the kill policy's
//! grace period (SIGTERM, then SIGKILL to the task's process group), runs
//! tasks in the image's root filesystem when the container has one (each
//! in mount and pid namespaces of its own, pivot_root'ed into it),
//! keeps their stdout and stderr in the sandbox with size-based rotation,
//! and when the agent restarts, waits up to MESOS_RECOVERY_TIMEOUT to
//! subscribe again, re-sending what the agent had not acknowledged. It
//! exits once every task has ended and its terminal update is acknowledged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, ExitStatus};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use tepui_agent::rotating_log::{RotatingFile, Rotation};
use tepui_agent::task_isolation;
use tepui_agent::task_process::{self, ImageIsolation, Logs, Placement};
use tepui_driver::executor::{ExecutorDriver, ExecutorEnv};
use tepui_proto::v1::executor::{Event, event};
use tepui_proto::v1::{TaskId, TaskInfo, TaskState, TaskStatus, task_status};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The grace period when the kill policy gives none (Mesos's default).
const DEFAULT_GRACE: Duration = Duration::from_secs(3);

use tepui_agent::rotating_log::{
    MAX_FILES_ENV as LOG_MAX_FILES_ENV, MAX_SIZE_ENV as LOG_MAX_SIZE_ENV,
};
use tepui_agent::task_process::WORKDIR_ENV as TASK_WORKDIR_ENV;

struct Live {
    pgid: i32,
    /// The task's own kill grace period (a KILL may give another).
    grace: Duration,
    /// When SIGKILL follows the SIGTERM already sent.
    kill_at: Option<Instant>,
    /// The task group it came in, if any.
    group: Option<u64>,
}

/// What the executor runs.
struct Tasks {
    live: HashMap<String, Live>,
    /// A LAUNCH was taken (a command executor runs one task).
    single: bool,
    /// Task groups taken.
    groups: u64,
    shutting_down: bool,
    placement: Placement,
    env: Vec<(String, String)>,
    logs: Logs,
    exits: mpsc::UnboundedSender<(TaskId, ExitStatus)>,
}

fn status(task_id: &TaskId, state: TaskState, message: Option<String>) -> TaskStatus {
    TaskStatus {
        task_id: task_id.clone(),
        state: state as i32,
        message,
        ..Default::default()
    }
}

fn signal_name(signal: i32) -> String {
    // SAFETY: strsignal returns a pointer to a static or thread-local
    // string, read at once.
    let name = unsafe { libc::strsignal(signal) };
    if name.is_null() {
        return format!("signal {signal}");
    }
    // SAFETY: non-null, NUL-terminated, as strsignal promises.
    unsafe { std::ffi::CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned()
}

/// The terminal status for a task that ended with `exit`.
fn terminal(task_id: &TaskId, exit: ExitStatus, killed: bool) -> TaskStatus {
    use std::os::unix::process::ExitStatusExt;
    let message = match (exit.code(), exit.signal()) {
        (Some(code), _) => format!("Command exited with status {code}"),
        (None, Some(signal)) => format!("Command terminated with signal {}", signal_name(signal)),
        _ => "Command ended".to_owned(),
    };
    let state = if killed {
        TaskState::TaskKilled
    } else if exit.success() {
        TaskState::TaskFinished
    } else {
        TaskState::TaskFailed
    };
    let mut s = status(task_id, state, Some(message));
    if state == TaskState::TaskFailed {
        s.reason = Some(task_status::Reason::CommandExecutorFailed as i32);
    }
    s
}

fn signal_group(pgid: i32, signal: i32) {
    // SAFETY: kill(2) of a process group we created; failure means it is gone.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

fn grace_of(policy: Option<&tepui_proto::v1::KillPolicy>) -> Duration {
    policy
        .and_then(|p| p.grace_period.as_ref())
        .map(|g| Duration::from_nanos(g.nanoseconds.max(0) as u64))
        .unwrap_or(DEFAULT_GRACE)
}

impl Tasks {
    /// SIGTERM now, SIGKILL after `grace` (unless already being killed).
    fn kill(&mut self, task: &str, grace: Option<Duration>) {
        if let Some(live) = self.live.get_mut(task)
            && live.kill_at.is_none()
        {
            let grace = grace.unwrap_or(live.grace);
            tracing::info!(%task, grace_ms = grace.as_millis() as u64, "killing the task");
            signal_group(live.pgid, libc::SIGTERM);
            live.kill_at = Some(Instant::now() + grace);
        }
    }

    /// Kills every live task of `group` (a group ends as a whole).
    fn kill_group(&mut self, group: u64, grace: Option<Duration>) {
        let members: Vec<String> = self
            .live
            .iter()
            .filter(|(_, l)| l.group == Some(group))
            .map(|(id, _)| id.clone())
            .collect();
        for member in members {
            self.kill(&member, grace);
        }
    }

    /// The soonest SIGKILL due.
    fn next_kill(&self) -> Option<Instant> {
        self.live.values().filter_map(|l| l.kill_at).min()
    }

    fn kill_overdue(&mut self) {
        let now = Instant::now();
        for (task, live) in &mut self.live {
            if live.kill_at.is_some_and(|at| at <= now) {
                tracing::info!(%task, "grace period over; SIGKILL");
                signal_group(live.pgid, libc::SIGKILL);
                live.kill_at = Some(now + Duration::from_secs(3600));
            }
        }
    }

    fn kill_all_now(&self) {
        for live in self.live.values() {
            signal_group(live.pgid, libc::SIGKILL);
        }
    }

    /// Starts one task and reports it.
    async fn start(
        &mut self,
        driver: &ExecutorDriver,
        task: TaskInfo,
        group: Option<u64>,
    ) -> Result<()> {
        driver.launched(&task);
        driver
            .update(status(&task.task_id, TaskState::TaskStarting, None))
            .await?;
        match task_process::spawn(&task, &self.placement, &self.env, &self.logs) {
            Ok(started) => {
                tracing::info!(task = %task.task_id.value, pid = started.pgid, "task started");
                self.live.insert(
                    task.task_id.value.clone(),
                    Live {
                        pgid: started.pgid,
                        grace: grace_of(task.kill_policy.as_ref()),
                        kill_at: None,
                        group,
                    },
                );
                let exits = self.exits.clone();
                let id = task.task_id.clone();
                tokio::spawn(async move {
                    if let Ok(exit) = started.exit.await {
                        let _ = exits.send((id, exit));
                    }
                });
                driver
                    .update(status(&task.task_id, TaskState::TaskRunning, None))
                    .await?;
            }
            Err(e) => {
                let mut failed = status(&task.task_id, TaskState::TaskFailed, Some(e.to_string()));
                failed.reason = Some(task_status::Reason::CommandExecutorFailed as i32);
                driver.update(failed).await?;
                if let Some(group) = group {
                    self.kill_group(group, None);
                }
            }
        }
        Ok(())
    }

    /// A task's process ended: its terminal update, and its group's end
    /// when it did not finish.
    async fn ended(
        &mut self,
        driver: &ExecutorDriver,
        task_id: TaskId,
        exit: ExitStatus,
    ) -> Result<()> {
        let Some(live) = self.live.remove(&task_id.value) else {
            return Ok(());
        };
        let update = terminal(&task_id, exit, live.kill_at.is_some());
        let finished = update.state == TaskState::TaskFinished as i32;
        driver.update(update).await?;
        if let (Some(group), false) = (live.group, finished) {
            self.kill_group(group, None);
        }
        Ok(())
    }

    /// Whether the executor has nothing left to do.
    fn done(&self, driver: &ExecutorDriver) -> bool {
        let launched = self.single || self.groups > 0;
        self.live.is_empty() && (launched || self.shutting_down) && driver.all_acknowledged()
    }

    async fn handle(&mut self, driver: &ExecutorDriver, event: Event) -> Result<()> {
        use event::Type;
        match event.r#type.and_then(|t| Type::try_from(t).ok()) {
            Some(Type::Subscribed) => tracing::info!("subscribed to the agent"),
            Some(Type::Launch) => {
                let Some(launch) = event.launch else {
                    return Ok(());
                };
                if self.single || self.groups > 0 || self.shutting_down {
                    let message = "the command executor runs one task".to_owned();
                    driver
                        .update(status(
                            &launch.task.task_id,
                            TaskState::TaskFailed,
                            Some(message),
                        ))
                        .await?;
                    return Ok(());
                }
                self.single = true;
                self.start(driver, launch.task, None).await?;
            }
            Some(Type::LaunchGroup) => {
                let Some(launch) = event.launch_group else {
                    return Ok(());
                };
                if self.single || self.shutting_down {
                    for task in launch.task_group.tasks {
                        let message = "this executor runs a single task".to_owned();
                        driver
                            .update(status(&task.task_id, TaskState::TaskFailed, Some(message)))
                            .await?;
                    }
                    return Ok(());
                }
                self.groups += 1;
                let group = self.groups;
                for task in launch.task_group.tasks {
                    self.start(driver, task, Some(group)).await?;
                }
            }
            Some(Type::Kill) => {
                if let Some(kill) = event.kill {
                    let grace = kill.kill_policy.as_ref().map(|p| grace_of(Some(p)));
                    // Killing a task of a group kills the group.
                    match self.live.get(&kill.task_id.value).and_then(|l| l.group) {
                        Some(group) => self.kill_group(group, grace),
                        None => self.kill(&kill.task_id.value, grace),
                    }
                }
            }
            Some(Type::Acknowledged) => {
                if let Some(ack) = event.acknowledged {
                    driver.acknowledge(&ack);
                }
            }
            Some(Type::Shutdown) => {
                self.shutting_down = true;
                let grace = driver.env().shutdown_grace_period;
                let all: Vec<String> = self.live.keys().cloned().collect();
                for task in all {
                    self.kill(&task, Some(grace));
                }
            }
            Some(Type::Message) => {
                let size = event.message.map(|m| m.data.len()).unwrap_or(0);
                tracing::info!(
                    bytes = size,
                    "a framework message (the built-in executor ignores them)"
                );
            }
            Some(Type::Error) => {
                tracing::error!(message = %event.error.map(|e| e.message).unwrap_or_default(), "the agent reported an error");
            }
            // The agent's heartbeat is when updates it could not take
            // (a full disk) go again.
            Some(Type::Heartbeat) => driver.resend_deferred().await?,
            Some(Type::Unknown) | None => {}
        }
        Ok(())
    }
}

async fn run(
    driver: Arc<ExecutorDriver>,
    mut tasks: Tasks,
    mut exits: mpsc::UnboundedReceiver<(TaskId, ExitStatus)>,
) -> Result<()> {
    let mut stream = driver.subscribe_with_retry().await.context("subscribing")?;
    loop {
        let next_kill = tasks.next_kill();
        tokio::select! {
            event = stream.next() => match event {
                Ok(Some(event)) => tasks.handle(&driver, event).await?,
                ended => {
                    let why = match ended {
                        Err(e) => e.to_string(),
                        _ => "the agent closed the event stream".to_owned(),
                    };
                    if !driver.env().checkpoint {
                        tasks.kill_all_now();
                        anyhow::bail!("{why}; the framework does not checkpoint, so the executor ends");
                    }
                    tracing::warn!(reason = %why, "the agent went away; waiting for it to come back");
                    match driver.subscribe_with_retry().await {
                        Ok(s) => stream = s,
                        Err(e) => {
                            tasks.kill_all_now();
                            return Err(e).context("the agent did not come back within the recovery timeout");
                        }
                    }
                }
            },
            Some((task_id, exit)) = exits.recv() => tasks.ended(&driver, task_id, exit).await?,
            _ = tokio::time::sleep_until(next_kill.unwrap_or_else(Instant::now)), if next_kill.is_some() => {
                tasks.kill_overdue();
            }
        }
        if tasks.done(&driver) {
            return Ok(());
        }
    }
}

fn env_number(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name}={v:?} is not a number")),
        Err(_) => Ok(default),
    }
}

/// The sandbox logs, rotated as the agent asks.
fn open_logs(sandbox: &Path) -> Result<Logs> {
    let defaults = Rotation::default();
    let rotation = Rotation {
        max_bytes: env_number(LOG_MAX_SIZE_ENV, defaults.max_bytes)?,
        keep: u32::try_from(env_number(LOG_MAX_FILES_ENV, u64::from(defaults.keep))?)
            .context(LOG_MAX_FILES_ENV)?,
    };
    let open = |name: &str| -> Result<Arc<Mutex<RotatingFile>>> {
        let path = sandbox.join(name);
        let file = RotatingFile::open(&path, rotation)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Arc::new(Mutex::new(file)))
    };
    Ok(Logs {
        stdout: open("stdout")?,
        stderr: open("stderr")?,
    })
}

/// The environment a task starts with: the executor's own (as Mesos's
/// command executor passes it on), with the sandbox as the task sees it,
/// but never the executor's token: a task cannot speak for its executor.
fn task_env(placement: &Placement) -> Vec<(String, String)> {
    let own = [
        "MESOS_EXECUTOR_AUTHENTICATION_TOKEN",
        LOG_MAX_SIZE_ENV,
        LOG_MAX_FILES_ENV,
        TASK_WORKDIR_ENV,
        tepui_containerizer::TASK_ROOTFS_ENV,
        task_isolation::CAPABILITIES_ENV,
        task_isolation::SECCOMP_ENV,
    ];
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| !own.contains(&k.as_str()))
        .collect();
    if placement.rootfs.is_some() {
        let inside = tepui_isolators::filesystem::SANDBOX_IN_CONTAINER.to_owned();
        for (k, v) in &mut env {
            if k == "MESOS_SANDBOX" {
                *v = inside.clone();
            }
        }
    }
    env
}

/// What the agent chose for tasks in the image: their capabilities and
/// seccomp filters.
fn image_isolation() -> Result<ImageIsolation> {
    let capabilities = match std::env::var(task_isolation::CAPABILITIES_ENV) {
        Ok(text) => Some(task_isolation::decode_capabilities(&text)?),
        Err(_) => None,
    };
    let seccomp = match std::env::var(task_isolation::SECCOMP_ENV) {
        Ok(text) => task_isolation::decode_seccomp(&text)?,
        Err(_) => Vec::new(),
    };
    Ok(ImageIsolation {
        capabilities,
        seccomp,
    })
}

/// Executor log lines go to the sandbox's stderr, rotated with the task's.
struct LogWriter(Arc<Mutex<RotatingFile>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn start() -> Result<()> {
    let env = ExecutorEnv::from_env()?;
    let placement = Placement {
        sandbox: PathBuf::from(&env.sandbox),
        rootfs: std::env::var_os(tepui_containerizer::TASK_ROOTFS_ENV).map(PathBuf::from),
        workdir: std::env::var_os(TASK_WORKDIR_ENV).map(PathBuf::from),
        isolation: image_isolation()?,
    };
    let logs = open_logs(&placement.sandbox)?;
    let stderr = logs.stderr.clone();
    tracing_subscriber::fmt()
        .with_writer(move || LogWriter(stderr.clone()))
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .init();
    let (exits_tx, exits) = mpsc::unbounded_channel();
    let tasks = Tasks {
        live: HashMap::new(),
        single: false,
        groups: 0,
        shutting_down: false,
        env: task_env(&placement),
        placement,
        logs,
        exits: exits_tx,
    };
    run(Arc::new(ExecutorDriver::new(env)), tasks, exits).await
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match start().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Not eprintln!: on a full disk the sandbox's stderr refuses
            // the write, and a panic would hide why the executor ended.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "tepui-executor: {e:#}");
            ExitCode::FAILURE
        }
    }
}
