//! What a container is asked to be.

use std::path::PathBuf;
use std::sync::Arc;

use tepui_isolators::cgroups::Limits;
use tepui_isolators::filesystem::RootfsMounts;
use tepui_isolators::rlimits::Rlimit;
use tepui_isolators::seccomp::SeccompProfile;
use tepui_launcher::{Capabilities, Namespaces};

use crate::provisioner::Image;

/// The variable naming the prepared root filesystem to a first process
/// that does not enter it itself.
pub const TASK_ROOTFS_ENV: &str = "TEPUI_TASK_ROOTFS";

/// Where a container's standard streams go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stdio {
    /// The caller's own stdin, stdout and stderr (the development CLI).
    Inherit,
    /// /dev/null for all three.
    Null,
    /// stdin from /dev/null; stdout and stderr appended to these files.
    Files {
        /// stdout's file.
        stdout: PathBuf,
        /// stderr's file.
        stderr: PathBuf,
    },
}

/// Everything needed to launch a container.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// The command and its arguments; the first is found along PATH.
    pub command: Vec<String>,
    /// The executable when it is not `command[0]` (which is then only
    /// argv[0]), as with Mesos's CommandInfo `value` and `arguments`.
    pub program: Option<String>,
    /// The whole environment (nothing is inherited).
    pub env: Vec<(String, String)>,
    /// Working directory inside the container; default: the sandbox when
    /// there is one, else `/`.
    pub cwd: Option<PathBuf>,
    /// `name`, `uid` or `uid:gid`, resolved in the root filesystem.
    pub user: Option<String>,
    /// The root filesystem; none runs on the host's.
    pub rootfs: Option<PathBuf>,
    /// An image from the store to provision the root filesystem from
    /// (instead of `rootfs`); released when the container is destroyed.
    pub image: Option<Image>,
    /// Whether the first process pivots into the root filesystem (true),
    /// or stays on the host's and starts its tasks in it (false), as
    /// Mesos's command executor does with an image: the root filesystem
    /// gets its mounts either way, and its path is then given to the first
    /// process as [`TASK_ROOTFS_ENV`].
    pub enter_rootfs: bool,
    /// Sandbox and volumes mounted into a root filesystem.
    pub mounts: RootfsMounts,
    /// Hostname, with a UTS namespace; default: the container id.
    pub hostname: Option<String>,
    /// New namespaces.
    pub namespaces: Namespaces,
    /// cgroup limits.
    pub limits: Limits,
    /// Capability sets kept; default: the isolators' default set in both.
    pub capabilities: Option<Capabilities>,
    /// The seccomp profile its processes run under; none runs them
    /// unconfined. Default: the built-in profile (Docker's default).
    pub seccomp: Option<Arc<SeccompProfile>>,
    /// setrlimit values; others are inherited from the agent.
    pub rlimits: Vec<Rlimit>,
    /// Standard streams.
    pub stdio: Stdio,
}

impl ContainerSpec {
    /// A spec running `command` with the default isolation and no limits.
    pub fn new(command: Vec<String>) -> Self {
        Self {
            command,
            program: None,
            env: vec![(
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            )],
            cwd: None,
            user: None,
            rootfs: None,
            image: None,
            enter_rootfs: true,
            mounts: RootfsMounts::default(),
            hostname: None,
            namespaces: Namespaces::isolated_host_network(),
            limits: Limits::default(),
            capabilities: None,
            seccomp: Some(SeccompProfile::builtin()),
            rlimits: Vec::new(),
            stdio: Stdio::Null,
        }
    }
}
