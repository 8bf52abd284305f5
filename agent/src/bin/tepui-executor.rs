//! tepui-executor: the built-in command executor. It runs one task's
//! CommandInfo (a shell command line or an argv) in its sandbox, reports
//! TASK_STARTING, TASK_RUNNING and the terminal state with the exit
//! status, honours the kill policy's grace period (SIGTERM, then SIGKILL
//! to the task's process group), and when the agent restarts, waits up to
//! MESOS_RECOVERY_TIMEOUT to subscribe again, re-sending what the agent
//! had not acknowledged. It exits once its terminal update is acknowledged.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tepui_driver::executor::{ExecutorDriver, ExecutorEnv};
use tepui_proto::v1::executor::{Event, event};
use tepui_proto::v1::{TaskId, TaskInfo, TaskState, TaskStatus, task_status};
use tokio::sync::mpsc;

/// The grace period when the kill policy gives none (Mesos's default).
const DEFAULT_GRACE: Duration = Duration::from_secs(3);

struct Running {
    task_id: TaskId,
    pgid: i32,
    /// The task's own kill grace period (a KILL may give another).
    grace: Duration,
    /// When SIGKILL follows the SIGTERM already sent.
    kill_at: Option<tokio::time::Instant>,
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
fn terminal(task_id: &TaskId, exit: std::process::ExitStatus, killed: bool) -> TaskStatus {
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

/// Starts the task's command; returns its process group.
fn spawn(
    task: &TaskInfo,
    sandbox: &str,
    exits: mpsc::Sender<std::process::ExitStatus>,
) -> Result<i32> {
    let command = task.command.as_ref().context("the task has no command")?;
    let mut process = if command.shell.unwrap_or(true) {
        let line = command
            .value
            .as_deref()
            .context("a shell command without a value")?;
        let mut p = tokio::process::Command::new("/bin/sh");
        p.arg("-c").arg(line);
        p
    } else {
        let program = command
            .value
            .as_deref()
            .context("a command without a value")?;
        let mut p = tokio::process::Command::new(program);
        if let Some((first, rest)) = command.arguments.split_first() {
            p.arg0(first).args(rest);
        }
        p
    };
    if let Some(environment) = &command.environment {
        for variable in &environment.variables {
            if let Some(value) = &variable.value {
                process.env(&variable.name, value);
            }
        }
    }
    process
        .current_dir(sandbox)
        .process_group(0)
        .kill_on_drop(false);
    let mut child = process.spawn().context("launching the command")?;
    let pid = child.id().context("the command has no pid")? as i32;
    tokio::spawn(async move {
        if let Ok(exit) = child.wait().await {
            let _ = exits.send(exit).await;
        }
    });
    Ok(pid)
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

async fn run(driver: Arc<ExecutorDriver>) -> Result<()> {
    let mut stream = driver.subscribe_with_retry().await.context("subscribing")?;
    let (exits_tx, mut exits) = mpsc::channel(1);
    let mut running: Option<Running> = None;
    let mut finished = false;
    let mut shutting_down = false;
    loop {
        let kill_at = running.as_ref().and_then(|r| r.kill_at);
        tokio::select! {
            event = stream.next() => match event {
                Ok(Some(event)) => {
                    handle(&driver, event, &mut running, &mut shutting_down, finished, &exits_tx).await?;
                    if shutting_down && running.is_none() && !finished {
                        return Ok(());
                    }
                }
                ended => {
                    let why = match ended {
                        Err(e) => e.to_string(),
                        _ => "the agent closed the event stream".to_owned(),
                    };
                    if !driver.env().checkpoint {
                        if let Some(r) = &running {
                            signal_group(r.pgid, libc::SIGKILL);
                        }
                        anyhow::bail!("{why}; the framework does not checkpoint, so the executor ends");
                    }
                    tracing::warn!(reason = %why, "the agent went away; waiting for it to come back");
                    match driver.subscribe_with_retry().await {
                        Ok(s) => stream = s,
                        Err(e) => {
                            if let Some(r) = &running {
                                signal_group(r.pgid, libc::SIGKILL);
                            }
                            return Err(e).context("the agent did not come back within the recovery timeout");
                        }
                    }
                }
            },
            Some(exit) = exits.recv() => {
                if let Some(r) = running.take() {
                    let killed = r.kill_at.is_some();
                    driver.update(terminal(&r.task_id, exit, killed)).await?;
                    finished = true;
                }
            }
            _ = tokio::time::sleep_until(kill_at.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600))), if kill_at.is_some() => {
                if let Some(r) = &mut running {
                    tracing::info!(task = %r.task_id.value, "grace period over; SIGKILL");
                    signal_group(r.pgid, libc::SIGKILL);
                    r.kill_at = Some(tokio::time::Instant::now() + Duration::from_secs(3600));
                }
            }
        }
        if finished && driver.all_acknowledged() {
            return Ok(());
        }
    }
}

async fn handle(
    driver: &ExecutorDriver,
    event: Event,
    running: &mut Option<Running>,
    shutting_down: &mut bool,
    finished: bool,
    exits: &mpsc::Sender<std::process::ExitStatus>,
) -> Result<()> {
    use event::Type;
    match event.r#type.and_then(|t| Type::try_from(t).ok()) {
        Some(Type::Subscribed) => tracing::info!("subscribed to the agent"),
        Some(Type::Launch) => {
            let Some(launch) = event.launch else {
                return Ok(());
            };
            let task = launch.task;
            if running.is_some() || finished {
                let message = "the command executor runs one task".to_owned();
                driver
                    .update(status(&task.task_id, TaskState::TaskFailed, Some(message)))
                    .await?;
                return Ok(());
            }
            driver.launched(&task);
            driver
                .update(status(&task.task_id, TaskState::TaskStarting, None))
                .await?;
            match spawn(&task, &driver.env().sandbox, exits.clone()) {
                Ok(pgid) => {
                    tracing::info!(task = %task.task_id.value, pid = pgid, "task started");
                    *running = Some(Running {
                        task_id: task.task_id.clone(),
                        pgid,
                        grace: grace_of(task.kill_policy.as_ref()),
                        kill_at: None,
                    });
                    driver
                        .update(status(&task.task_id, TaskState::TaskRunning, None))
                        .await?;
                }
                Err(e) => {
                    let mut failed =
                        status(&task.task_id, TaskState::TaskFailed, Some(format!("{e:#}")));
                    failed.reason = Some(task_status::Reason::CommandExecutorFailed as i32);
                    driver.update(failed).await?;
                }
            }
        }
        Some(Type::Kill) => {
            if let (Some(kill), Some(r)) = (event.kill, running.as_mut())
                && kill.task_id == r.task_id
                && r.kill_at.is_none()
            {
                let grace = match &kill.kill_policy {
                    Some(policy) => grace_of(Some(policy)),
                    None => r.grace,
                };
                tracing::info!(task = %r.task_id.value, grace_ms = grace.as_millis() as u64, "killing the task");
                signal_group(r.pgid, libc::SIGTERM);
                r.kill_at = Some(tokio::time::Instant::now() + grace);
            }
        }
        Some(Type::Acknowledged) => {
            if let Some(ack) = event.acknowledged {
                driver.acknowledge(&ack);
            }
        }
        Some(Type::Shutdown) => {
            *shutting_down = true;
            if let Some(r) = running.as_mut()
                && r.kill_at.is_none()
            {
                signal_group(r.pgid, libc::SIGTERM);
                r.kill_at = Some(tokio::time::Instant::now() + driver.env().shutdown_grace_period);
            }
        }
        Some(Type::Error) => {
            tracing::error!(message = %event.error.map(|e| e.message).unwrap_or_default(), "the agent reported an error");
        }
        Some(Type::Message)
        | Some(Type::Heartbeat)
        | Some(Type::LaunchGroup)
        | Some(Type::Unknown)
        | None => {}
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .init();
    let result = async {
        let env = ExecutorEnv::from_env()?;
        run(Arc::new(ExecutorDriver::new(env))).await
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tepui-executor: {e:#}");
            ExitCode::FAILURE
        }
    }
}
