//! The parent's side of a launch: clone3 into the new namespaces and
//! cgroup, then learn from the error pipe whether exec happened.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::child::{self, ExecArgs};
use crate::clone;
use crate::errno::Errno;
use crate::plan::{CgroupJoin, Plan};
use crate::step::Step;

/// Why a launch failed.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// A step in the child failed; `action` names it with its path.
    #[error("{action}: {errno}")]
    Child {
        /// The step.
        step: Step,
        /// The step in words, with the path or value involved.
        action: String,
        /// Its errno.
        errno: Errno,
    },
    /// The clone itself failed.
    #[error("clone3: {0}")]
    Clone(Errno),
    /// The kernel refuses CLONE_INTO_CGROUP (older than 5.7, or a cgroup v1
    /// fd); the caller may retry with [`CgroupJoin::WriteProcs`].
    #[error("clone3 into the cgroup: {0}")]
    CloneIntoCgroup(Errno),
    /// The pipe or /proc could not be used.
    #[error("{what}: {error}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The failure.
        error: std::io::Error,
    },
    /// The child's report did not decode (a defect).
    #[error("the launched child sent an unreadable report ({0} bytes)")]
    Report(usize),
}

/// A started container process.
#[derive(Debug)]
pub struct Spawned {
    /// Its pid, as the parent's pid namespace sees it.
    pub pid: i32,
    /// A pidfd for it, for waiting and signalling without pid reuse races.
    pub pidfd: OwnedFd,
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> LaunchError {
    move |error| LaunchError::Io { what, error }
}

/// Starts the plan's command and returns once it has exec'd, or with the
/// step that failed. Blocks for the duration of the child's setup.
pub fn spawn(plan: &Plan) -> Result<Spawned, LaunchError> {
    let last_cap = match plan.capabilities {
        Some(_) => last_cap()?,
        None => 0,
    };
    let args = ExecArgs {
        argv: nul_terminated(&plan.argv),
        envp: nul_terminated(&plan.env),
        groups: plan.user.as_ref().map_or(Vec::new(), |u| u.groups.clone()),
        last_cap,
    };

    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds in a live array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io("creating the launch pipe")(
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: both fds were just created and are owned here alone.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };

    let mut pidfd: libc::c_int = -1;
    let mut clone_args = libc::clone_args {
        flags: plan.namespaces.clone_flags() | libc::CLONE_PIDFD as u64,
        pidfd: std::ptr::addr_of_mut!(pidfd) as u64,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: 0,
    };
    if let CgroupJoin::CloneInto(fd) = &plan.cgroup {
        clone_args.flags |= CLONE_INTO_CGROUP;
        clone_args.cgroup = fd.as_raw_fd() as u64;
    }
    // A cgroup namespace is rooted where the child is when it is made:
    // born in its cgroup, at the clone; joining later, the child unshares
    // it once it has joined.
    if plan.namespaces.cgroup && !matches!(plan.cgroup, CgroupJoin::WriteProcs(_)) {
        clone_args.flags |= libc::CLONE_NEWCGROUP as u64;
    }

    let mut child_args = ChildArgs {
        plan,
        args: &args,
        pipe: write_end.as_raw_fd(),
    };
    // SAFETY: `child_entry` runs `child::run`, which makes raw system calls
    // only, on `plan`, `args` and `child_args`; they outlive the clone,
    // which returns only once the child has exec'd or exited.
    let cloned = unsafe {
        clone::clone_and_run(
            &mut clone_args,
            child_entry,
            std::ptr::addr_of_mut!(child_args).cast(),
        )
    };
    let pid = match cloned {
        Ok(pid) => pid,
        Err(errno) => {
            return Err(match plan.cgroup {
                CgroupJoin::CloneInto(_)
                    if matches!(errno.0, libc::EINVAL | libc::E2BIG | libc::EBADF) =>
                {
                    LaunchError::CloneIntoCgroup(errno)
                }
                _ => LaunchError::Clone(errno),
            });
        }
    };
    // SAFETY: CLONE_PIDFD stored a new fd owned by us alone.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    drop(write_end);

    // The pipe closes on exec (EOF: success) or carries a 12-byte report.
    let mut report = Vec::with_capacity(12);
    let read = std::fs::File::from(read_end).read_to_end(&mut report);
    if let Err(e) = read {
        return Err(io("reading the launch pipe")(e));
    }
    if report.is_empty() {
        return Ok(Spawned { pid, pidfd });
    }
    // The child exited with the report; reap it so no zombie is left.
    let _ = crate::pidfd::wait_blocking(pidfd.as_raw_fd());
    decode_report(plan, &report)
}

/// The highest capability number this kernel knows, read once: it is
/// fixed for the kernel's lifetime and every launch needs it.
fn last_cap() -> Result<u32, LaunchError> {
    static LAST_CAP: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    if let Some(last) = LAST_CAP.get() {
        return Ok(*last);
    }
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .map_err(io("reading /proc/sys/kernel/cap_last_cap"))?
        .trim()
        .parse()
        .unwrap_or(40);
    Ok(*LAST_CAP.get_or_init(|| last))
}

/// What the child needs, passed through the clone as one pointer.
struct ChildArgs<'a> {
    plan: &'a Plan,
    args: &'a ExecArgs,
    pipe: RawFd,
}

/// The child's entry point: performs the plan and execs, or reports.
///
/// # Safety
/// `arg` points to the parent's `ChildArgs`, alive until the clone returns.
unsafe extern "C" fn child_entry(arg: *mut std::ffi::c_void) -> ! {
    // SAFETY: see the function's contract.
    let child_args = unsafe { &*arg.cast::<ChildArgs<'_>>() };
    // SAFETY: we are the child of the clone, with the pipe's write end.
    unsafe { child::run(child_args.plan, child_args.args, child_args.pipe) }
}

/// clone_args.flags bit for CLONE_INTO_CGROUP (Linux 5.7).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

fn nul_terminated(strings: &[std::ffi::CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

fn decode_report(plan: &Plan, report: &[u8]) -> Result<Spawned, LaunchError> {
    let word = |i: usize| -> Option<[u8; 4]> { report.get(i..i + 4)?.try_into().ok() };
    let (Some(code), Some(index), Some(errno), 12) = (word(0), word(4), word(8), report.len())
    else {
        return Err(LaunchError::Report(report.len()));
    };
    let step =
        Step::from_code(u32::from_ne_bytes(code)).ok_or(LaunchError::Report(report.len()))?;
    let index = u32::from_ne_bytes(index) as usize;
    let errno = Errno(i32::from_ne_bytes(errno));
    Err(LaunchError::Child {
        step,
        action: describe(plan, step, index),
        errno,
    })
}

/// The failed step in words, with what it worked on.
fn describe(plan: &Plan, step: Step, index: usize) -> String {
    let lossy = |c: &Option<std::ffi::CString>| {
        c.as_ref()
            .map_or(String::new(), |c| c.to_string_lossy().into_owned())
    };
    let op = |prefix: &str| match plan.fs_ops.get(index) {
        Some(op) => format!("{prefix}{}", op.describe()),
        None => format!("{prefix}filesystem step {index}"),
    };
    match step {
        Step::Signals => "resetting signals".into(),
        Step::JoinCgroup => "joining the container's cgroup".into(),
        Step::CgroupNamespace => "unsharing the cgroup namespace".into(),
        Step::Setsid => "setsid".into(),
        Step::Stdio => format!("setting up standard stream {index}"),
        Step::CloseFds => "closing inherited file descriptors".into(),
        Step::MountPrivate => "making mounts private".into(),
        Step::BindRootfs => format!("bind-mounting the root filesystem {}", lossy(&plan.rootfs)),
        Step::Create => op("creating the target to "),
        Step::Mount => op(""),
        Step::Remount => op("remount (read-only, nosuid, nodev or noexec) after "),
        Step::Symlink => op(""),
        Step::Mknod => op(""),
        Step::PivotRoot => format!("pivot_root into {}", lossy(&plan.rootfs)),
        Step::DetachOldRoot => "detaching the old root".into(),
        Step::Hostname => format!("sethostname {}", lossy(&plan.hostname)),
        Step::Rlimit => match plan.rlimits.get(index) {
            Some((resource, limit)) => {
                format!(
                    "setrlimit {resource} to {}/{}",
                    limit.rlim_cur, limit.rlim_max
                )
            }
            None => format!("setrlimit {index}"),
        },
        Step::DropCapability => format!("dropping capability {index} from the bounding set"),
        Step::SetGroups => "setgroups".into(),
        Step::SetGid => format!("setresgid {}", plan.user.as_ref().map_or(0, |u| u.gid)),
        Step::SetUid => format!("setresuid {}", plan.user.as_ref().map_or(0, |u| u.uid)),
        Step::Capabilities => "setting capabilities".into(),
        Step::NoNewPrivs => "setting no_new_privs".into(),
        Step::Chdir => format!("chdir to {}", plan.cwd.to_string_lossy()),
        Step::Seccomp => format!(
            "installing seccomp filter {} of {} ({} instructions)",
            index + 1,
            plan.seccomp.len(),
            plan.seccomp
                .get(index)
                .map_or(0, |p| p.instructions().len())
        ),
        Step::CwdOutsideRoot => format!(
            "working directory {} resolves outside the container's root",
            plan.cwd.to_string_lossy()
        ),
        Step::Exec => match plan.programs.get(index) {
            Some(p) if plan.programs.len() > 1 && !p.to_bytes().is_empty() => {
                format!("exec {} (as {})", plan.program(), p.to_string_lossy())
            }
            _ => format!("exec {}", plan.program()),
        },
    }
}
