//! How the command executor starts one task's process: its CommandInfo as
//! a shell line or an argv, its environment, its user, in a process group
//! of its own (so a kill reaches what it forked), and its stdout and
//! stderr copied into the sandbox's rotating log files. Without an image
//! the task shares the executor's container (the host's view, protected).
//! With one, the launcher starts it in new mount and pid namespaces,
//! pivot_root'ed into the image's root filesystem with a /proc of its own
//! pid namespace (where it is pid 1), under the capabilities and seccomp
//! filters the agent chose for it: from inside, /proc/1/root is the image,
//! a chroot cannot climb out of it, and the executor is not there to see.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tepui_containerizer::user;
use tepui_proto::v1::TaskInfo;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::rotating_log::RotatingFile;

/// The variable giving the built-in executor its tasks' working directory
/// inside the image (set by the agent from the image's WorkingDir).
pub const WORKDIR_ENV: &str = "TEPUI_TASK_WORKDIR";

/// Where a task runs.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// The sandbox as the executor sees it (the task's directory without
    /// a root filesystem).
    pub sandbox: PathBuf,
    /// The prepared root filesystem the task enters (pivot_root), if any.
    pub rootfs: Option<PathBuf>,
    /// The working directory inside `rootfs` (default: the sandbox mount).
    pub workdir: Option<PathBuf>,
    /// What a task in `rootfs` runs under (see `task_isolation`).
    pub isolation: ImageIsolation,
}

/// The capabilities and seccomp filters of a task started in an image.
#[derive(Debug, Clone, Default)]
pub struct ImageIsolation {
    /// Its capability sets; none keeps the executor's.
    pub capabilities: Option<tepui_launcher::Capabilities>,
    /// Its seccomp filters, on top of the executor's.
    pub seccomp: Vec<tepui_launcher::SeccompProgram>,
}

/// A log shared by every writer of one sandbox file.
pub type SharedLog = Arc<Mutex<RotatingFile>>;

/// The sandbox's stdout and stderr.
#[derive(Clone)]
pub struct Logs {
    /// stdout.
    pub stdout: SharedLog,
    /// stderr.
    pub stderr: SharedLog,
}

/// A task could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The CommandInfo does not say what to run.
    #[error("{0}")]
    Command(&'static str),
    /// A path or argument holds a NUL byte.
    #[error("{0} holds a NUL byte")]
    Nul(&'static str),
    /// The task's user is not in the root filesystem.
    #[error(transparent)]
    User(#[from] tepui_containerizer::user::UserError),
    /// fork or exec failed.
    #[error("launching the command: {0}")]
    Spawn(std::io::Error),
    /// The launch plan for a task in an image could not be made.
    #[error("launching the command in the image: {0}")]
    Plan(String),
    /// The launcher failed to start the task in its image.
    #[error("launching the command in the image: {0}")]
    Launch(#[from] tepui_launcher::LaunchError),
}

/// A started task: its process group, and the receiver of how it ended
/// (sent once its output is copied).
pub struct Started {
    /// The process id, which is also its process group id.
    pub pgid: i32,
    /// How it ended.
    pub exit: tokio::sync::oneshot::Receiver<ExitStatus>,
}

/// Starts `task` as `placement` says, with `base_env` under the task's
/// own variables.
pub fn spawn(
    task: &TaskInfo,
    placement: &Placement,
    base_env: &[(String, String)],
    logs: &Logs,
) -> Result<Started, SpawnError> {
    let command = task
        .command
        .as_ref()
        .ok_or(SpawnError::Command("the task has no command"))?;
    let root = placement.rootfs.as_deref().unwrap_or(Path::new("/"));
    let user = command
        .user
        .as_deref()
        .map(|u| user::resolve(root, u))
        .transpose()?;
    if let Some(rootfs) = &placement.rootfs {
        return spawn_in_image(command, rootfs, placement, base_env, user, logs);
    }
    let mut process = if command.shell.unwrap_or(true) {
        let line = command
            .value
            .as_deref()
            .ok_or(SpawnError::Command("a shell command without a value"))?;
        let mut p = tokio::process::Command::new("/bin/sh");
        p.arg("-c").arg(line);
        p
    } else {
        let program = command
            .value
            .as_deref()
            .ok_or(SpawnError::Command("a command without a value"))?;
        let mut p = tokio::process::Command::new(program);
        if let Some((first, rest)) = command.arguments.split_first() {
            p.arg0(first).args(rest);
        }
        p
    };
    process.env_clear().envs(base_env.iter().cloned());
    if let Some(environment) = &command.environment {
        for variable in &environment.variables {
            if let Some(value) = &variable.value {
                process.env(&variable.name, value);
            }
        }
    }
    process.current_dir(&placement.sandbox);
    if let Some(user) = &user {
        process.uid(user.uid).gid(user.gid);
    }
    process
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    let mut child = process.spawn().map_err(SpawnError::Spawn)?;
    let pgid = child
        .id()
        .ok_or(SpawnError::Spawn(std::io::ErrorKind::NotFound.into()))? as i32;
    let copies = [
        child.stdout.take().map(|o| copy(o, logs.stdout.clone())),
        child.stderr.take().map(|e| copy(e, logs.stderr.clone())),
    ];
    let (tx, exit) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let Ok(status) = child.wait().await else {
            return;
        };
        drain(copies).await;
        let _ = tx.send(status);
    });
    Ok(Started { pgid, exit })
}

/// What the task wrote last is in the pipes; a process it left behind
/// may hold them open, so the copy gets only a moment.
async fn drain(copies: [Option<tokio::task::JoinHandle<()>>; 2]) {
    for copy in copies.into_iter().flatten() {
        let _ = tokio::time::timeout(Duration::from_secs(2), copy).await;
    }
}

/// A pipe: (read end, write end), both close-on-exec.
fn pipe() -> Result<(OwnedFd, OwnedFd), SpawnError> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds in a live array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(SpawnError::Spawn(std::io::Error::last_os_error()));
    }
    // SAFETY: both fds were just created and are owned here alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Starts a task in the image's root filesystem through the launcher:
/// new mount and pid namespaces, the root filesystem's mounts (a /proc of
/// the new pid namespace, /dev, /sys, the masks, the sandbox), pivot_root,
/// the task's capabilities, no_new_privs, its user, a working directory
/// resolved inside the root, no inherited fd, and its seccomp filters last.
fn spawn_in_image(
    command: &tepui_proto::v1::CommandInfo,
    rootfs: &Path,
    placement: &Placement,
    base_env: &[(String, String)],
    user: Option<user::User>,
    logs: &Logs,
) -> Result<Started, SpawnError> {
    use tepui_isolators::filesystem::{self, RootfsMounts, SANDBOX_IN_CONTAINER};
    use tepui_launcher::{Namespaces, Plan};
    let plan_error = |e: &dyn std::fmt::Display| SpawnError::Plan(e.to_string());
    let mut env: Vec<(String, String)> = base_env.to_vec();
    if let Some(environment) = &command.environment {
        for variable in &environment.variables {
            if let Some(value) = &variable.value {
                env.retain(|(k, _)| *k != variable.name);
                env.push((variable.name.clone(), value.clone()));
            }
        }
    }
    let value = command.value.as_deref();
    let (argv, program) = if command.shell.unwrap_or(true) {
        let line = value.ok_or(SpawnError::Command("a shell command without a value"))?;
        (
            vec!["/bin/sh".to_owned(), "-c".to_owned(), line.to_owned()],
            None,
        )
    } else {
        let program = value.ok_or(SpawnError::Command("a command without a value"))?;
        match command.arguments.is_empty() {
            true => (vec![program.to_owned()], None),
            false => (command.arguments.clone(), Some(program)),
        }
    };
    let null: OwnedFd = std::fs::File::open("/dev/null")
        .map_err(SpawnError::Spawn)?
        .into();
    let (out_read, out_write) = pipe()?;
    let (err_read, err_write) = pipe()?;
    let mut plan =
        Plan::new(&argv, &env, [null, out_write, err_write]).map_err(|e| plan_error(&e))?;
    if let Some(program) = program {
        plan = plan
            .executable(program.as_ref())
            .map_err(|e| plan_error(&e))?;
    }
    let namespaces = Namespaces {
        pid: true,
        mount: true,
        ..Namespaces::none()
    };
    plan = plan
        .namespaces(namespaces)
        .rootfs(rootfs)
        .map_err(|e| plan_error(&e))?;
    let mounts = RootfsMounts {
        sandbox: Some(placement.sandbox.clone()),
        volumes: Vec::new(),
    };
    for op in filesystem::rootfs_ops(rootfs, &mounts).map_err(|e| plan_error(&e))? {
        plan = plan.fs_op(op);
    }
    if let Some(caps) = placement.isolation.capabilities {
        plan = plan.capabilities(caps);
    }
    plan = plan.no_new_privs(true);
    for program in &placement.isolation.seccomp {
        plan = plan.seccomp(program.clone());
    }
    if let Some(user) = user {
        plan = plan.user(tepui_launcher::User {
            uid: user.uid,
            gid: user.gid,
            groups: user.groups,
        });
    }
    let workdir = placement
        .workdir
        .clone()
        .unwrap_or_else(|| PathBuf::from(SANDBOX_IN_CONTAINER));
    plan = plan.cwd(&workdir).map_err(|e| plan_error(&e))?;
    let spawned = tepui_launcher::spawn(&plan)?;
    drop(plan);
    let receiver = |fd: OwnedFd| {
        tokio::net::unix::pipe::Receiver::from_owned_fd(fd).map_err(SpawnError::Spawn)
    };
    let copies = [
        Some(copy(receiver(out_read)?, logs.stdout.clone())),
        Some(copy(receiver(err_read)?, logs.stderr.clone())),
    ];
    let (tx, exit) = tokio::sync::oneshot::channel();
    let pidfd = spawned.pidfd;
    tokio::spawn(async move {
        let Some(status) = wait_pidfd(pidfd).await else {
            return;
        };
        drain(copies).await;
        let _ = tx.send(status);
    });
    Ok(Started {
        pgid: spawned.pid,
        exit,
    })
}

/// Waits for the process of `pidfd` (our child) to end and reaps it.
async fn wait_pidfd(pidfd: OwnedFd) -> Option<ExitStatus> {
    use std::os::unix::process::ExitStatusExt;
    use tokio::io::unix::AsyncFd;
    // SAFETY: the OwnedFd moves into the AsyncFd, so its fd stays open and
    // the same for as long as the registration lives.
    let registered =
        unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) };
    let fd = match registered {
        Ok(fd) => fd,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch the task's pidfd");
            return None;
        }
    };
    loop {
        let mut ready = fd.readable().await.ok()?;
        match tepui_launcher::pidfd::try_wait(fd.get_ref().as_raw_fd()) {
            Ok(Some(status)) => return Some(ExitStatus::from_raw(status.wait_status())),
            Ok(None) => ready.clear_ready(),
            Err(e) => {
                tracing::warn!(error = %e, "waiting on the task's pidfd");
                return None;
            }
        }
    }
}

/// Copies a pipe into a log until it closes.
fn copy(
    mut from: impl AsyncRead + Unpin + Send + 'static,
    to: SharedLog,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 64 << 10];
        loop {
            match from.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let mut log = to.lock().unwrap_or_else(|p| p.into_inner());
                    if let Err(e) = log.write_all(&buffer[..n]) {
                        tracing::warn!(error = %e, "writing the task's output");
                    }
                }
            }
        }
    })
}
