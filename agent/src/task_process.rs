//! How the command executor starts one task's process: its CommandInfo as
//! a shell line or an argv, its environment, its user, in a process group
//! of its own (so a kill reaches what it forked), inside the image's root
//! filesystem when the container has one, and its stdout and stderr copied
//! into the sandbox's rotating log files.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
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
    /// The prepared root filesystem the task enters (chroot), if any.
    pub rootfs: Option<PathBuf>,
    /// The working directory inside `rootfs` (default: the sandbox mount).
    pub workdir: Option<PathBuf>,
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
}

/// A started task: its process group, and the receiver of how it ended
/// (sent once its output is copied).
pub struct Started {
    /// The process id, which is also its process group id.
    pub pgid: i32,
    /// How it ended.
    pub exit: tokio::sync::oneshot::Receiver<ExitStatus>,
}

fn cstring(path: &Path, what: &'static str) -> Result<CString, SpawnError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| SpawnError::Nul(what))
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
    let root = placement.rootfs.as_deref().unwrap_or(Path::new("/"));
    let user = command
        .user
        .as_deref()
        .map(|u| user::resolve(root, u))
        .transpose()?;
    match &placement.rootfs {
        Some(rootfs) => {
            let root = cstring(rootfs, "the root filesystem's path")?;
            let workdir = placement.workdir.clone().unwrap_or_else(|| {
                PathBuf::from(tepui_isolators::filesystem::SANDBOX_IN_CONTAINER)
            });
            let dir = cstring(&workdir, "the working directory")?;
            let groups: Vec<libc::gid_t> =
                user.as_ref().map(|u| u.groups.clone()).unwrap_or_default();
            let ids = user.as_ref().map(|u| (u.uid, u.gid));
            // SAFETY: the closure runs in the child between fork and exec
            // and makes only async-signal-safe system calls on memory
            // prepared before the fork.
            unsafe {
                process.pre_exec(move || {
                    if libc::chroot(root.as_ptr()) != 0 || libc::chdir(dir.as_ptr()) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    if let Some((uid, gid)) = ids
                        && (libc::setgroups(groups.len(), groups.as_ptr()) != 0
                            || libc::setgid(gid) != 0
                            || libc::setuid(uid) != 0)
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        None => {
            process.current_dir(&placement.sandbox);
            if let Some(user) = &user {
                process.uid(user.uid).gid(user.gid);
            }
        }
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
        // What the task wrote last is in the pipes; a process it left
        // behind may hold them open, so the copy gets only a moment.
        for copy in copies.into_iter().flatten() {
            let _ = tokio::time::timeout(Duration::from_secs(2), copy).await;
        }
        let _ = tx.send(status);
    });
    Ok(Started { pgid, exit })
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
