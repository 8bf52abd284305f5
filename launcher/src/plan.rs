//! What the child does, fully prepared before the clone: every string is
//! already a C string, every list already built, so the child allocates
//! nothing.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::seccomp::SeccompProgram;

/// A value could not become part of a plan.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A string holds a NUL byte, which no system call can pass.
    #[error("{what} contains a NUL byte: {value:?}")]
    Nul {
        /// Which value.
        what: &'static str,
        /// The value, lossily.
        value: String,
    },
    /// The command is empty.
    #[error("no command to run")]
    NoCommand,
    /// A working directory under /proc (CVE-2024-21626's way out).
    #[error("working directory {0}: a directory under /proc is refused")]
    ProcWorkingDir(String),
    /// A standard stream could not be duplicated.
    #[error("duplicating standard stream {index}: {error}")]
    Stdio {
        /// 0, 1 or 2.
        index: usize,
        /// The failure.
        error: std::io::Error,
    },
}

pub(crate) fn cstring(what: &'static str, value: impl AsRef<OsStr>) -> Result<CString, PlanError> {
    let bytes = value.as_ref().as_bytes();
    CString::new(bytes).map_err(|_| PlanError::Nul {
        what,
        value: String::from_utf8_lossy(bytes).into_owned(),
    })
}

/// The namespaces a container gets new copies of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Namespaces {
    /// A new pid namespace: the command is pid 1.
    pub pid: bool,
    /// A new mount namespace (required for a root filesystem).
    pub mount: bool,
    /// A new UTS namespace (required for a hostname).
    pub uts: bool,
    /// A new IPC namespace.
    pub ipc: bool,
    /// A new, empty network namespace (only loopback, down).
    pub net: bool,
    /// A new cgroup namespace rooted at the container's cgroup, so that
    /// `/proc/self/cgroup` shows `0::/` and no host path.
    pub cgroup: bool,
}

impl Namespaces {
    /// pid, mount, uts, ipc and cgroup; the host's network.
    pub const fn isolated_host_network() -> Self {
        Self {
            pid: true,
            mount: true,
            uts: true,
            ipc: true,
            net: false,
            cgroup: true,
        }
    }

    /// None: the command shares every namespace with its parent.
    pub const fn none() -> Self {
        Self {
            pid: false,
            mount: false,
            uts: false,
            ipc: false,
            net: false,
            cgroup: false,
        }
    }

    /// The clone flags of these namespaces. The cgroup namespace is left
    /// out: it is made where the child's cgroup is known (see
    /// [`Plan::cgroup`]).
    pub(crate) fn clone_flags(self) -> u64 {
        let mut flags = 0u64;
        for (on, flag) in [
            (self.pid, libc::CLONE_NEWPID),
            (self.mount, libc::CLONE_NEWNS),
            (self.uts, libc::CLONE_NEWUTS),
            (self.ipc, libc::CLONE_NEWIPC),
            (self.net, libc::CLONE_NEWNET),
        ] {
            if on {
                flags |= flag as u64;
            }
        }
        flags
    }
}

/// How the child enters its cgroup.
#[derive(Debug)]
pub enum CgroupJoin {
    /// Stay in the parent's cgroup.
    None,
    /// clone3 with CLONE_INTO_CGROUP: born inside the cgroup (an fd of
    /// the cgroup's directory).
    CloneInto(OwnedFd),
    /// Write "0" to this open `cgroup.procs` first thing in the child, for
    /// kernels that refuse CLONE_INTO_CGROUP.
    WriteProcs(OwnedFd),
}

/// What to create at a mount target before mounting on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// The target must exist.
    Nothing,
    /// mkdir, if missing.
    Dir,
    /// An empty file, if missing (to bind-mount a file on).
    File,
}

/// The per-mount flags a bind gets through its remount (see
/// [`FsOp::bind_with`]).
pub(crate) const BIND_REMOUNT_FLAGS: libc::c_ulong =
    libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

/// One filesystem step in the child's new mount namespace, before
/// pivot_root; paths are as the child sees them then (host paths).
#[derive(Debug)]
pub enum FsOp {
    /// mount(2). A bind with per-mount flags (read-only, nosuid, nodev,
    /// noexec) is done as a bind, then a remount with them, since the
    /// kernel ignores them on the first call.
    Mount {
        /// Source (device, path or fs name).
        source: Option<CString>,
        /// Mount point.
        target: CString,
        /// Filesystem type, none for a bind.
        fstype: Option<CString>,
        /// MS_* flags.
        flags: libc::c_ulong,
        /// Filesystem options.
        data: Option<CString>,
        /// What to create at `target` first.
        create: Create,
    },
    /// mknod(2) of a character device (for a /dev that cannot bind the
    /// host's nodes, being mounted over them).
    CharDevice {
        /// Where the node is made.
        path: CString,
        /// Its permission bits.
        mode: libc::mode_t,
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// symlink(2): `link` points at `target`.
    Symlink {
        /// What the link points to.
        target: CString,
        /// Where the link is made.
        link: CString,
    },
}

impl FsOp {
    /// A filesystem mount.
    pub fn mount(
        fstype: &str,
        source: &str,
        target: &Path,
        flags: libc::c_ulong,
        data: Option<&str>,
    ) -> Result<Self, PlanError> {
        Ok(Self::Mount {
            source: Some(cstring("mount source", source)?),
            target: cstring("mount target", target)?,
            fstype: Some(cstring("filesystem type", fstype)?),
            flags,
            data: data.map(|d| cstring("mount options", d)).transpose()?,
            create: Create::Dir,
        })
    }

    /// A bind mount of `source` on `target` with every mount under it,
    /// read-only if asked (then the mounts under it too, through
    /// mount_setattr(AT_RECURSIVE): a remount would leave them writable).
    pub fn bind(
        source: &Path,
        target: &Path,
        read_only: bool,
        create: Create,
    ) -> Result<Self, PlanError> {
        let flags = if read_only { libc::MS_RDONLY } else { 0 };
        Self::bind_with(source, target, flags, create)
    }

    /// A bind mount of `source` on `target` whose mount then gets exactly
    /// the per-mount flags in `flags` (any of MS_RDONLY, MS_NOSUID,
    /// MS_NODEV, MS_NOEXEC; others are dropped): a bind cannot set them
    /// itself, so the child remounts it with them.
    pub fn bind_with(
        source: &Path,
        target: &Path,
        flags: libc::c_ulong,
        create: Create,
    ) -> Result<Self, PlanError> {
        let flags = libc::MS_BIND | libc::MS_REC | (flags & BIND_REMOUNT_FLAGS);
        Ok(Self::Mount {
            source: Some(cstring("bind source", source)?),
            target: cstring("bind target", target)?,
            fstype: None,
            flags,
            data: None,
            create,
        })
    }

    /// A character device node `major:minor` at `path`.
    pub fn char_device(
        path: &Path,
        mode: libc::mode_t,
        major: u32,
        minor: u32,
    ) -> Result<Self, PlanError> {
        Ok(Self::CharDevice {
            path: cstring("device node", path)?,
            mode,
            major,
            minor,
        })
    }

    /// A symbolic link at `link` pointing to `target`.
    pub fn symlink(target: &str, link: &Path) -> Result<Self, PlanError> {
        Ok(Self::Symlink {
            target: cstring("symlink target", target)?,
            link: cstring("symlink", link)?,
        })
    }

    /// The path this step works on, for error messages.
    pub fn describe(&self) -> String {
        match self {
            FsOp::Mount {
                source,
                target,
                fstype,
                ..
            } => {
                let kind = fstype
                    .as_ref()
                    .map_or("bind".into(), |t| t.to_string_lossy().into_owned());
                let source = source
                    .as_ref()
                    .map_or(String::new(), |s| format!(" {}", s.to_string_lossy()));
                format!("mount {kind}{source} on {}", target.to_string_lossy())
            }
            FsOp::CharDevice {
                path, major, minor, ..
            } => format!("mknod {} c {major} {minor}", path.to_string_lossy()),
            FsOp::Symlink { target, link } => format!(
                "symlink {} -> {}",
                link.to_string_lossy(),
                target.to_string_lossy()
            ),
        }
    }
}

/// The capability sets a container's command gets (bit masks of CAP_*
/// numbers, see [`crate::caps`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// The effective and permitted sets, for a command run as root; a
    /// command run as another user gets none.
    pub effective: u64,
    /// The bounding set: what the command and its children can ever gain
    /// (through a setuid binary or file capabilities). Always holds
    /// `effective`.
    pub bounding: u64,
}

/// The user the command runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids.
    pub groups: Vec<u32>,
}

/// Everything the child does between clone and exec.
#[derive(Debug)]
pub struct Plan {
    pub(crate) namespaces: Namespaces,
    pub(crate) cgroup: CgroupJoin,
    pub(crate) hostname: Option<CString>,
    pub(crate) rootfs: Option<CString>,
    pub(crate) fs_ops: Vec<FsOp>,
    pub(crate) rlimits: Vec<(u32, libc::rlimit)>,
    pub(crate) capabilities: Option<Capabilities>,
    pub(crate) no_new_privs: bool,
    /// Installed in this order.
    pub(crate) seccomp: Vec<SeccompProgram>,
    pub(crate) user: Option<User>,
    pub(crate) cwd: CString,
    /// Paths execve tries in order (argv[0] resolved along PATH).
    pub(crate) programs: Vec<CString>,
    pub(crate) argv: Vec<CString>,
    pub(crate) env: Vec<CString>,
    /// The child's stdin, stdout and stderr, all at fds >= 3.
    pub(crate) stdio: [OwnedFd; 3],
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Plan {
    /// A plan to run `argv` with exactly `env`, with the given standard
    /// streams, in no new namespace; the builder methods add the rest.
    pub fn new<A, K, V>(argv: &[A], env: &[(K, V)], stdio: [OwnedFd; 3]) -> Result<Self, PlanError>
    where
        A: AsRef<OsStr>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let argv = argv
            .iter()
            .map(|a| cstring("argument", a))
            .collect::<Result<Vec<_>, _>>()?;
        let first = argv.first().ok_or(PlanError::NoCommand)?;
        let mut path = DEFAULT_PATH.as_bytes().to_vec();
        let mut env_c = Vec::with_capacity(env.len());
        for (k, v) in env {
            let mut pair = k.as_ref().as_bytes().to_vec();
            if k.as_ref() == "PATH" {
                path = v.as_ref().as_bytes().to_vec();
            }
            pair.push(b'=');
            pair.extend_from_slice(v.as_ref().as_bytes());
            env_c.push(cstring("environment variable", OsStr::from_bytes(&pair))?);
        }
        let programs = resolve(first.as_bytes(), &path);

        // Standard streams move to fds >= 3 so that the child's dup2 onto
        // 0, 1 and 2 never overwrites one it has yet to copy.
        let stdio = stdio
            .into_iter()
            .enumerate()
            .map(|(index, fd)| {
                // SAFETY: F_DUPFD_CLOEXEC on a valid owned fd returns a new fd
                // or -1; the new fd is owned by us alone.
                let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
                if new < 0 {
                    return Err(PlanError::Stdio {
                        index,
                        error: std::io::Error::last_os_error(),
                    });
                }
                // SAFETY: `new` was just returned by fcntl and nothing else owns it.
                Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(new) })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let stdio: [OwnedFd; 3] = stdio.try_into().map_err(|_| PlanError::NoCommand)?;

        Ok(Self {
            namespaces: Namespaces::none(),
            cgroup: CgroupJoin::None,
            hostname: None,
            rootfs: None,
            fs_ops: Vec::new(),
            rlimits: Vec::new(),
            capabilities: None,
            no_new_privs: false,
            seccomp: Vec::new(),
            user: None,
            cwd: cstring("working directory", "/")?,
            programs,
            argv,
            env: env_c,
            stdio,
        })
    }

    /// New namespaces for the child.
    pub fn namespaces(mut self, namespaces: Namespaces) -> Self {
        self.namespaces = namespaces;
        self
    }

    /// The cgroup the child is born in (or joins before exec).
    pub fn cgroup(mut self, join: CgroupJoin) -> Self {
        self.cgroup = join;
        self
    }

    /// The hostname in the child's UTS namespace.
    pub fn hostname(mut self, hostname: &str) -> Result<Self, PlanError> {
        self.hostname = Some(cstring("hostname", hostname)?);
        Ok(self)
    }

    /// pivot_root into this directory (bind-mounted on itself first).
    pub fn rootfs(mut self, rootfs: &Path) -> Result<Self, PlanError> {
        self.rootfs = Some(cstring("root filesystem", rootfs)?);
        Ok(self)
    }

    /// A filesystem step, done in order before pivot_root.
    pub fn fs_op(mut self, op: FsOp) -> Self {
        self.fs_ops.push(op);
        self
    }

    /// A resource limit (RLIMIT_* number, soft, hard).
    pub fn rlimit(mut self, resource: u32, soft: u64, hard: u64) -> Self {
        self.rlimits.push((
            resource,
            libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            },
        ));
        self
    }

    /// Keep these capability sets and drop every other capability; the
    /// inheritable and ambient sets are emptied. An effective capability
    /// outside the bounding set is dropped too.
    pub fn capabilities(mut self, caps: Capabilities) -> Self {
        self.capabilities = Some(Capabilities {
            effective: caps.effective & caps.bounding,
            bounding: caps.bounding,
        });
        self
    }

    /// Install this seccomp filter (after those given before) as the
    /// last step before exec, after no_new_privs, so the kernel takes it
    /// from a process without CAP_SYS_ADMIN. The kernel runs every filter
    /// and keeps the most restrictive answer.
    pub fn seccomp(mut self, program: SeccompProgram) -> Self {
        self.seccomp.push(program);
        self
    }

    /// Set no_new_privs, so setuid binaries and file capabilities cannot
    /// raise privileges.
    pub fn no_new_privs(mut self, on: bool) -> Self {
        self.no_new_privs = on;
        self
    }

    /// Switch to this user before exec.
    pub fn user(mut self, user: User) -> Self {
        self.user = Some(user);
        self
    }

    /// The working directory, inside the root filesystem. One under
    /// `/proc` is refused: `/proc/self/fd/N` and `/proc/self/cwd` name
    /// directories of whoever holds them, not of the container.
    pub fn cwd(mut self, cwd: &Path) -> Result<Self, PlanError> {
        if cwd.components().nth(1) == Some(std::path::Component::Normal("proc".as_ref()))
            && cwd.has_root()
        {
            return Err(PlanError::ProcWorkingDir(cwd.display().to_string()));
        }
        self.cwd = cstring("working directory", cwd)?;
        Ok(self)
    }

    /// Runs `program` (found along the environment's PATH) with the argv
    /// given to [`Plan::new`], whose first element is then only argv[0]:
    /// Mesos's CommandInfo `value` with its `arguments`.
    pub fn executable(mut self, program: &OsStr) -> Result<Self, PlanError> {
        let program = cstring("program", program)?;
        let path = self
            .env
            .iter()
            .rev()
            .find_map(|pair| pair.as_bytes().strip_prefix(b"PATH="))
            .unwrap_or(DEFAULT_PATH.as_bytes());
        self.programs = resolve(program.as_bytes(), path);
        Ok(self)
    }

    /// The command's first argument.
    pub fn program(&self) -> String {
        self.argv
            .first()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// The paths execve should try for `program`: itself if it holds a slash,
/// else each PATH entry joined with it.
fn resolve(program: &[u8], path: &[u8]) -> Vec<CString> {
    if program.contains(&b'/') {
        return CString::new(program).into_iter().collect();
    }
    path.split(|b| *b == b':')
        .map(|dir| if dir.is_empty() { &b"."[..] } else { dir })
        .filter_map(|dir| {
            let mut full = dir.to_vec();
            full.push(b'/');
            full.extend_from_slice(program);
            CString::new(full).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_along_path() {
        let got = resolve(b"sh", b"/bin::/usr/bin");
        let got: Vec<_> = got.iter().map(|c| c.to_str().unwrap().to_owned()).collect();
        assert_eq!(got, ["/bin/sh", "./sh", "/usr/bin/sh"]);
        assert_eq!(resolve(b"./x", b"/bin").len(), 1);
    }

    #[test]
    fn refuses_nul_bytes_and_empty_commands() {
        let null = || -> OwnedFd { std::fs::File::open("/dev/null").unwrap().into() };
        let none: &[(&str, &str)] = &[];
        let e = Plan::new(&["a\0b"], none, [null(), null(), null()]).unwrap_err();
        assert_eq!(e.to_string(), "argument contains a NUL byte: \"a\\0b\"");
        let empty: &[&str] = &[];
        assert!(matches!(
            Plan::new(empty, none, [null(), null(), null()]),
            Err(PlanError::NoCommand)
        ));
    }
}
