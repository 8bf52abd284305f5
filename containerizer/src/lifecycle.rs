//! The container lifecycle: launch, wait, update, usage, destroy, recover.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tepui_isolators::capabilities;
use tepui_isolators::cgroups::devices::{self, DeviceError, DeviceRule, Filter};
use tepui_isolators::cgroups::{
    CgroupError, ContainerCgroup, Controllers, Hierarchy, Limitation, Limits, Usage,
};
use tepui_isolators::filesystem::{self, FsError, SANDBOX_IN_CONTAINER};
use tepui_isolators::seccomp::{DiskCache, SeccompError, SeccompProfile};
use tepui_launcher::{
    Capabilities, CgroupJoin, ExitStatus, LaunchError, Plan, PlanError, SeccompProgram, pidfd,
};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

use crate::provisioner::{Image, ProvisionError, Provisioner};
use crate::spec::{ContainerSpec, Stdio};
use crate::state::{self, RunState, StateError};
use crate::user::{self, UserError};

/// How long destroy waits for a killed cgroup to empty.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// A containerizer operation failed for one container.
#[derive(Debug, thiserror::Error)]
#[error("container {id}: {kind}")]
pub struct ContainerError {
    /// The container.
    pub id: String,
    /// What went wrong (part of the message, so not also a `source`).
    pub kind: ErrorKind,
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// The id cannot name a cgroup and a directory.
    #[error("invalid id: use 1 to 128 of A-Z a-z 0-9 _ . -, not starting with '.'")]
    InvalidId,
    /// A container of this id is running.
    #[error("already exists")]
    Exists,
    /// No container of this id is known.
    #[error("unknown container")]
    Unknown,
    /// The spec asks for something impossible.
    #[error("{0}")]
    Spec(String),
    /// A cgroup operation.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// The device filter.
    #[error(transparent)]
    Devices(#[from] DeviceError),
    /// The filesystem plan.
    #[error(transparent)]
    Filesystem(#[from] FsError),
    /// The launch plan.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The seccomp profile.
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    /// The launch itself.
    #[error(transparent)]
    Launch(#[from] LaunchError),
    /// The user.
    #[error(transparent)]
    User(#[from] UserError),
    /// The state file.
    #[error(transparent)]
    State(#[from] StateError),
    /// A standard stream file.
    #[error("opening {0} for the container's output: {1}")]
    Stdio(PathBuf, std::io::Error),
    /// The image's root filesystem.
    #[error(transparent)]
    Image(#[from] ProvisionError),
    /// A blocking task died (a defect).
    #[error("internal task failed: {0}")]
    Task(String),
}

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Termination {
    /// Its first process's exit, or `None` when it was not our child (a
    /// container recovered after a restart) and the status went elsewhere.
    pub status: Option<ExitStatus>,
    /// A limit the kernel enforced, e.g. an OOM kill.
    pub limitation: Option<Limitation>,
}

/// The outcome of [`Containerizer::recover`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Checkpointed and still running: re-attached, `wait` works again.
    pub alive: Vec<String>,
    /// Found in the cgroup subtree but not checkpointed: destroyed.
    pub orphans: Vec<String>,
    /// Checkpointed but gone: cleaned up.
    pub missing: Vec<String>,
}

/// Where a containerizer keeps its containers.
#[derive(Debug, Clone)]
pub struct Config {
    /// The cgroup v2 subtree it owns.
    pub cgroup_root: PathBuf,
    /// Its state directory (one subdirectory per container).
    pub state_dir: PathBuf,
    /// Where images become root filesystems; none refuses image specs.
    pub provisioner: Option<Arc<Provisioner>>,
}

struct Running {
    cgroup: ContainerCgroup,
    pid: i32,
    termination: watch::Receiver<Option<Termination>>,
}

/// Launches and keeps track of containers.
pub struct Containerizer {
    hierarchy: Hierarchy,
    state_dir: PathBuf,
    provisioner: Option<Arc<Provisioner>>,
    devices: Arc<Filter>,
    seccomp_cache: Option<Arc<DiskCache>>,
    running: Mutex<HashMap<String, Arc<Running>>>,
}

fn blocking_failed(id: &str) -> impl FnOnce(tokio::task::JoinError) -> ContainerError + '_ {
    move |e| ContainerError {
        id: id.to_owned(),
        kind: ErrorKind::Task(e.to_string()),
    }
}

fn error(id: &str) -> impl FnOnce(ErrorKind) -> ContainerError + '_ {
    move |kind| ContainerError {
        id: id.to_owned(),
        kind,
    }
}

/// The state directory's subdirectory of compiled seccomp filters (not a
/// valid container id, so never taken for a container).
const SECCOMP_CACHE_DIR: &str = ".seccomp";

/// Whether `id` can name a cgroup and a directory.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

impl Containerizer {
    /// Opens the cgroup subtree and the state directory, and loads the
    /// device filter every container gets (the default devices only).
    pub fn new(config: Config) -> Result<Self, ContainerError> {
        // Not about one container: the error names none ("*").
        let fail = |kind: ErrorKind| error("*")(kind);
        let devices = Filter::load(&devices::DEFAULT_RULES).map_err(|e| fail(e.into()))?;
        let hierarchy = Hierarchy::open(&config.cgroup_root).map_err(|e| fail(e.into()))?;
        std::fs::create_dir_all(&config.state_dir)
            .map_err(|error| CgroupError::Io {
                action: "creating",
                path: config.state_dir.clone(),
                error,
            })
            .map_err(|e| fail(e.into()))?;
        // Compiled seccomp filters outlive this process there, so the next
        // one (another `tepui container run`, a restarted agent) need not
        // compile them again.
        let seccomp_cache = match DiskCache::open(&config.state_dir.join(SECCOMP_CACHE_DIR)) {
            Ok(cache) => Some(Arc::new(cache)),
            Err(error) => {
                tracing::warn!(%error, "seccomp filters will be compiled by every process");
                None
            }
        };
        tracing::info!(
            cgroup_root = %hierarchy.root().display(),
            controllers = %hierarchy.controllers(),
            state_dir = %config.state_dir.display(),
            "containerizer ready"
        );
        Ok(Self {
            hierarchy,
            state_dir: config.state_dir,
            provisioner: config.provisioner,
            devices: Arc::new(devices),
            seccomp_cache,
            running: Mutex::new(HashMap::new()),
        })
    }

    /// A profile's filters for this bounding set, from the state
    /// directory's cache when an earlier process compiled them.
    pub fn seccomp_programs(
        &self,
        profile: &SeccompProfile,
        bounding: u64,
    ) -> Result<Arc<[SeccompProgram]>, SeccompError> {
        profile.programs_cached(bounding, self.seccomp_cache.as_deref())
    }

    /// Lets every container use these devices too, besides the default
    /// ones (the agent's `--allowed_devices`).
    pub fn allow_devices(&mut self, extra: &[DeviceRule]) -> Result<(), DeviceError> {
        let rules: Vec<DeviceRule> = devices::DEFAULT_RULES
            .iter()
            .chain(extra)
            .copied()
            .collect();
        self.devices = Arc::new(Filter::load(&rules)?);
        Ok(())
    }

    /// The controllers containers can have limits from.
    pub fn controllers(&self) -> Controllers {
        self.hierarchy.controllers()
    }

    fn running(&self) -> MutexGuard<'_, HashMap<String, Arc<Running>>> {
        // A poisoned map still holds valid entries; keep using it.
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, id: &str) -> Result<Arc<Running>, ContainerError> {
        self.running()
            .get(id)
            .cloned()
            .ok_or_else(|| error(id)(ErrorKind::Unknown))
    }

    /// The pid of a running container's first process.
    pub fn pid(&self, id: &str) -> Option<i32> {
        self.running().get(id).map(|r| r.pid)
    }

    /// Ids with a state file: what a restarted process may recover.
    pub fn checkpointed(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.state_dir) else {
            return Vec::new();
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|id| valid_id(id))
            .collect();
        ids.sort();
        ids
    }

    /// Creates the container's cgroup with its limits and starts its first
    /// process in it; returns once that process has exec'd.
    pub async fn launch(&self, id: &str, mut spec: ContainerSpec) -> Result<i32, ContainerError> {
        if !valid_id(id) {
            return Err(error(id)(ErrorKind::InvalidId));
        }
        if self.running().contains_key(id) {
            return Err(error(id)(ErrorKind::Exists));
        }
        if let Some(image) = spec.image.take() {
            spec.rootfs = Some(self.provision(id, image).await?);
        }
        if let (Some(rootfs), false) = (&spec.rootfs, spec.enter_rootfs) {
            let rootfs = rootfs.display().to_string();
            spec.env.retain(|(k, _)| k != crate::spec::TASK_ROOTFS_ENV);
            spec.env
                .push((crate::spec::TASK_ROOTFS_ENV.to_owned(), rootfs));
        }
        let hierarchy = self.hierarchy.clone();
        let devices = self.devices.clone();
        let seccomp_cache = self.seccomp_cache.clone();
        let state_dir = self.state_dir.join(id);
        let owned_id = id.to_owned();
        let started = tokio::task::spawn_blocking(move || {
            let cache = seccomp_cache.as_deref();
            start(&hierarchy, &devices, cache, &owned_id, &spec, &state_dir)
        })
        .await
        .map_err(blocking_failed(id))?
        .map_err(error(id));
        let (cgroup, spawned) = match started {
            Ok(started) => started,
            Err(e) => {
                if let Err(release) = self.release(id).await {
                    tracing::warn!(container = id, error = %release, "releasing the rootfs of a failed launch");
                }
                return Err(e);
            }
        };

        let (tx, rx) = watch::channel(None);
        let running = Arc::new(Running {
            cgroup: cgroup.clone(),
            pid: spawned.pid,
            termination: rx,
        });
        self.running().insert(id.to_owned(), running);
        monitor(id.to_owned(), spawned.pidfd, cgroup, tx);
        tracing::info!(container = id, pid = spawned.pid, "container launched");
        Ok(spawned.pid)
    }

    /// Assembles the root filesystem of `image` for container `id`; its
    /// writable layer goes in the store's scratch space.
    async fn provision(&self, id: &str, image: Image) -> Result<PathBuf, ContainerError> {
        let provisioner = self.provisioner.clone().ok_or_else(|| {
            error(id)(ErrorKind::Spec(
                "an image needs a provisioner (an image store)".into(),
            ))
        })?;
        let root = provisioner.store_path().to_owned();
        let target = root.join("rootfs").join(id);
        // The writable layer lives in the agent's store, never in the
        // sandbox, where a fetched archive or the task could plant a link
        // in its place.
        let scratch = root.join("scratch").join(id);
        let owned_id = id.to_owned();
        let rootfs = target.clone();
        tokio::task::spawn_blocking(move || {
            provisioner.provision(&owned_id, &image, &rootfs, &scratch)
        })
        .await
        .map_err(blocking_failed(id))?
        .map_err(|e| error(id)(e.into()))?;
        Ok(target)
    }

    /// Releases container `id`'s image root filesystem, if it has one.
    async fn release(&self, id: &str) -> Result<(), ContainerError> {
        let Some(provisioner) = self.provisioner.clone() else {
            return Ok(());
        };
        let owned_id = id.to_owned();
        tokio::task::spawn_blocking(move || provisioner.release(&owned_id))
            .await
            .map_err(blocking_failed(id))?
            .map_err(|e| error(id)(e.into()))
    }

    /// Waits for the container's first process to end.
    pub async fn wait(&self, id: &str) -> Result<Termination, ContainerError> {
        let mut rx = self.get(id)?.termination.clone();
        let ended = rx.wait_for(Option::is_some).await;
        match ended.ok().and_then(|t| *t) {
            Some(t) => Ok(t),
            None => Err(error(id)(ErrorKind::Task(
                "the container's monitor ended".into(),
            ))),
        }
    }

    /// Changes a running container's limits.
    pub async fn update(&self, id: &str, limits: Limits) -> Result<(), ContainerError> {
        let cgroup = self.get(id)?.cgroup.clone();
        tokio::task::spawn_blocking(move || cgroup.apply(&limits))
            .await
            .map_err(blocking_failed(id))?
            .map_err(|e| error(id)(e.into()))
    }

    /// The limit the container has hit so far (an OOM kill), read from
    /// the kernel's counters in memory: cheap, and never blocks on a disk.
    pub fn limitation(&self, id: &str) -> Result<Option<Limitation>, ContainerError> {
        self.get(id)?
            .cgroup
            .limitation()
            .map_err(|e| error(id)(e.into()))
    }

    /// The container's resource usage.
    pub async fn usage(&self, id: &str) -> Result<Usage, ContainerError> {
        let cgroup = self.get(id)?.cgroup.clone();
        tokio::task::spawn_blocking(move || cgroup.usage())
            .await
            .map_err(blocking_failed(id))?
            .map_err(|e| error(id)(e.into()))
    }

    /// Kills every process of the container, waits for them, and removes
    /// its cgroup and state.
    pub async fn destroy(&self, id: &str) -> Result<Termination, ContainerError> {
        let running = self.get(id)?;
        let cgroup = running.cgroup.clone();
        tokio::task::spawn_blocking(move || cgroup.kill_and_wait(KILL_TIMEOUT))
            .await
            .map_err(blocking_failed(id))?
            .map_err(|e| error(id)(e.into()))?;

        // The first process is dead; its monitor reports promptly.
        let termination = match tokio::time::timeout(KILL_TIMEOUT, self.wait(id)).await {
            Ok(result) => result?,
            Err(_) => Termination {
                status: None,
                limitation: None,
            },
        };
        self.forget(id, running.cgroup.clone()).await?;
        tracing::info!(container = id, status = ?termination.status, "container destroyed");
        Ok(termination)
    }

    async fn forget(&self, id: &str, cgroup: ContainerCgroup) -> Result<(), ContainerError> {
        let state_dir = self.state_dir.join(id);
        tokio::task::spawn_blocking(move || {
            cgroup.remove()?;
            match std::fs::remove_dir_all(&state_dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CgroupError::Io {
                    action: "removing",
                    path: state_dir,
                    error: e,
                }),
                _ => Ok(()),
            }
        })
        .await
        .map_err(blocking_failed(id))?
        .map_err(|e| error(id)(e.into()))?;
        self.release(id).await?;
        self.running().remove(id);
        Ok(())
    }

    /// After a restart: re-attaches the `checkpointed` containers that
    /// still run, destroys cgroups nobody checkpointed, and cleans up the
    /// checkpointed ones that are gone.
    pub async fn recover(&self, checkpointed: &[String]) -> Result<Recovered, ContainerError> {
        let hierarchy = self.hierarchy.clone();
        let names = tokio::task::spawn_blocking(move || hierarchy.container_names())
            .await
            .map_err(blocking_failed("*"))?
            .map_err(|e| error("*")(e.into()))?;
        let mut recovered = Recovered::default();
        for name in &names {
            if self.running().contains_key(name) {
                continue;
            }
            let cgroup =
                ContainerCgroup::open(&self.hierarchy, name).map_err(|e| error(name)(e.into()))?;
            if !checkpointed.contains(name) {
                tracing::warn!(container = %name, "destroying an orphan container found in the cgroup subtree");
                self.reap(name, cgroup).await?;
                recovered.orphans.push(name.clone());
                continue;
            }
            match self.reattach(name, &cgroup) {
                Some(pid) => {
                    tracing::info!(container = %name, pid, "container recovered");
                    recovered.alive.push(name.clone());
                }
                None => {
                    tracing::warn!(container = %name, "checkpointed container is gone");
                    self.reap(name, cgroup).await?;
                    recovered.missing.push(name.clone());
                }
            }
        }
        for id in checkpointed {
            if !names.contains(id) {
                let _ = std::fs::remove_dir_all(self.state_dir.join(id));
                self.release(id).await?;
                recovered.missing.push(id.clone());
            }
        }
        Ok(recovered)
    }

    /// Kills what is left of a container and removes it.
    async fn reap(&self, id: &str, cgroup: ContainerCgroup) -> Result<(), ContainerError> {
        let killing = cgroup.clone();
        tokio::task::spawn_blocking(move || {
            if killing.populated()? {
                killing.kill_and_wait(KILL_TIMEOUT)?;
            }
            Ok::<_, CgroupError>(())
        })
        .await
        .map_err(blocking_failed(id))?
        .map_err(|e| error(id)(e.into()))?;
        self.forget(id, cgroup).await
    }

    /// Re-attaches a checkpointed container whose first process is still
    /// the one recorded (same pid, same start time, in its cgroup). The
    /// pidfd is taken first and the start time checked after: a pid reused
    /// in between shows another start time, so the pidfd kept always holds
    /// the recorded process, and its exit is seen however late it comes.
    fn reattach(&self, id: &str, cgroup: &ContainerCgroup) -> Option<i32> {
        let run = state::read(&self.state_dir.join(id)).ok()??;
        let pidfd = pidfd::open(run.pid).ok()?;
        if state::start_time(run.pid) != Some(run.start_time)
            || !cgroup.pids().ok()?.contains(&run.pid)
        {
            return None;
        }
        let (tx, rx) = watch::channel(None);
        self.running().insert(
            id.to_owned(),
            Arc::new(Running {
                cgroup: cgroup.clone(),
                pid: run.pid,
                termination: rx,
            }),
        );
        monitor(id.to_owned(), pidfd, cgroup.clone(), tx);
        Some(run.pid)
    }
}

/// Creates the cgroup, builds the plan, spawns, checkpoints. Blocking.
fn start(
    hierarchy: &Hierarchy,
    devices: &Filter,
    seccomp_cache: Option<&DiskCache>,
    id: &str,
    spec: &ContainerSpec,
    state_dir: &Path,
) -> Result<(ContainerCgroup, tepui_launcher::Spawned), ErrorKind> {
    let cgroup = ContainerCgroup::create(hierarchy, id).map_err(|e| match e {
        CgroupError::Io { ref error, .. } if error.kind() == std::io::ErrorKind::AlreadyExists => {
            ErrorKind::Exists
        }
        other => other.into(),
    })?;
    let result = (|| {
        cgroup.apply(&spec.limits)?;
        // Before any process is in it: the first one already finds the
        // device filter in force.
        devices.attach(cgroup.path())?;
        let plan = plan(id, spec, seccomp_cache)?.cgroup(CgroupJoin::CloneInto(cgroup.leaf_fd()?));
        let spawned = match tepui_launcher::spawn(&plan) {
            Err(LaunchError::CloneIntoCgroup(errno)) => {
                tracing::warn!(%errno, "CLONE_INTO_CGROUP refused; joining the cgroup before exec instead");
                tepui_launcher::spawn(
                    &plan.cgroup(CgroupJoin::WriteProcs(cgroup.leaf_procs_fd()?)),
                )?
            }
            other => other?,
        };
        let run = RunState {
            pid: spawned.pid,
            start_time: state::start_time(spawned.pid).unwrap_or(0),
        };
        if let Err(e) = state::write(state_dir, run) {
            let _ = pidfd::send_signal(spawned.pidfd.as_raw_fd(), libc::SIGKILL);
            let _ = pidfd::wait_blocking(spawned.pidfd.as_raw_fd());
            return Err(e.into());
        }
        Ok(spawned)
    })();
    match result {
        Ok(spawned) => Ok((cgroup, spawned)),
        Err(e) => {
            let _ = cgroup.kill_and_wait(KILL_TIMEOUT);
            let _ = cgroup.remove();
            let _ = std::fs::remove_dir_all(state_dir);
            Err(e)
        }
    }
}

/// The launch plan for a spec (without its cgroup).
fn plan(
    id: &str,
    spec: &ContainerSpec,
    seccomp_cache: Option<&DiskCache>,
) -> Result<Plan, ErrorKind> {
    let ns = spec.namespaces;
    let mut plan = Plan::new(&spec.command, &spec.env, open_stdio(&spec.stdio)?)?;
    if let Some(program) = &spec.program {
        plan = plan.executable(program.as_ref())?;
    }
    let caps = spec.capabilities.unwrap_or_else(|| Capabilities {
        effective: capabilities::default_mask(),
        bounding: capabilities::default_mask(),
    });
    let mut plan = plan.namespaces(ns).capabilities(caps).no_new_privs(true);
    if let Some(profile) = &spec.seccomp {
        // Compiled once per profile and bounding set, then shared.
        for program in profile
            .programs_cached(caps.bounding, seccomp_cache)?
            .iter()
        {
            plan = plan.seccomp(program.clone());
        }
    }
    for limit in &spec.rlimits {
        plan = plan.rlimit(limit.resource, limit.soft, limit.hard);
    }
    if ns.uts {
        let default: String = id.chars().take(63).collect();
        plan = plan.hostname(spec.hostname.as_deref().unwrap_or(&default))?;
    } else if spec.hostname.is_some() {
        return Err(ErrorKind::Spec("a hostname needs a UTS namespace".into()));
    }
    let mut cwd = PathBuf::from("/");
    match &spec.rootfs {
        Some(rootfs) => {
            if !ns.mount {
                return Err(ErrorKind::Spec(
                    "a root filesystem needs a mount namespace".into(),
                ));
            }
            if spec.enter_rootfs {
                plan = plan.rootfs(rootfs)?;
                for op in filesystem::rootfs_ops(rootfs, &spec.mounts)? {
                    plan = plan.fs_op(op);
                }
                if spec.mounts.sandbox.is_some() {
                    cwd = SANDBOX_IN_CONTAINER.into();
                }
            } else {
                // The first process stays on the host's view (protected
                // as below) and starts its tasks in the root filesystem,
                // each in namespaces of its own that get their mounts
                // there: nothing is mounted into it here.
                for op in filesystem::host_ops(ns.pid)? {
                    plan = plan.fs_op(op);
                }
                if let Some(sandbox) = &spec.mounts.sandbox {
                    cwd = sandbox.clone();
                }
            }
        }
        None => {
            // On the host's filesystem (Mesos's semantics) in a mount
            // namespace of its own: a /proc of its pid namespace, so the
            // container sees only its processes, masked as in a root
            // filesystem; /sys and the cgroup trees read-only; a private
            // minimal /dev.
            if ns.mount {
                for op in filesystem::host_ops(ns.pid)? {
                    plan = plan.fs_op(op);
                }
            }
            if let Some(sandbox) = &spec.mounts.sandbox {
                // The sandbox bound on itself in the container's mount
                // namespace, so that it is nosuid and nodev there too.
                if ns.mount {
                    plan = plan.fs_op(filesystem::sandbox_bind(sandbox, sandbox)?);
                }
                cwd = sandbox.clone();
            }
        }
    }
    if let Some(user) = &spec.user {
        let root = match &spec.rootfs {
            Some(rootfs) if spec.enter_rootfs => rootfs.as_path(),
            _ => Path::new("/"),
        };
        plan = plan.user(user::resolve(root, user)?);
    }
    Ok(plan.cwd(spec.cwd.as_deref().unwrap_or(&cwd))?)
}

fn open_stdio(stdio: &Stdio) -> Result<[OwnedFd; 3], ErrorKind> {
    let null = || -> Result<OwnedFd, ErrorKind> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map(OwnedFd::from)
            .map_err(|e| ErrorKind::Stdio("/dev/null".into(), e))
    };
    // The file is in a directory a task may write (its sandbox): opened
    // beneath that directory, a regular file only, through no link.
    let append = |path: &Path| -> Result<OwnedFd, ErrorKind> {
        let fail = |e| ErrorKind::Stdio(path.to_path_buf(), e);
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(fail(std::io::ErrorKind::InvalidInput.into()));
        };
        tepui_isolators::beneath::Beneath::open(dir)
            .and_then(|dir| dir.create_no_follow(Path::new(name), libc::O_APPEND, 0o644))
            .map_err(fail)
    };
    let inherit = |fd: std::os::fd::BorrowedFd<'_>, name: &str| -> Result<OwnedFd, ErrorKind> {
        fd.try_clone_to_owned()
            .map_err(|e| ErrorKind::Stdio(name.into(), e))
    };
    Ok(match stdio {
        Stdio::Null => [null()?, null()?, null()?],
        Stdio::Inherit => [
            inherit(std::io::stdin().as_fd(), "stdin")?,
            inherit(std::io::stdout().as_fd(), "stdout")?,
            inherit(std::io::stderr().as_fd(), "stderr")?,
        ],
        Stdio::Files { stdout, stderr } => [null()?, append(stdout)?, append(stderr)?],
    })
}

/// Watches a container's first process through its pidfd and publishes
/// how it ended.
fn monitor(
    id: String,
    pidfd: OwnedFd,
    cgroup: ContainerCgroup,
    tx: watch::Sender<Option<Termination>>,
) {
    tokio::spawn(async move {
        // SAFETY: the OwnedFd moves into the AsyncFd, so its fd stays open
        // and the same for as long as the registration lives.
        let registered = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) };
        let status = match registered {
            Ok(fd) => loop {
                let Ok(mut ready) = fd.readable().await else {
                    break None;
                };
                match pidfd::try_wait(fd.get_ref().as_raw_fd()) {
                    Ok(Some(status)) => break Some(status),
                    Ok(None) => ready.clear_ready(),
                    // Not our child (recovered): it ended, its status went
                    // to its parent.
                    Err(e) if e.raw_os_error() == Some(libc::ECHILD) => break None,
                    Err(e) => {
                        tracing::warn!(container = %id, error = %e, "waiting on the container's pidfd");
                        break None;
                    }
                }
            },
            Err(e) => {
                tracing::error!(container = %id, error = %e, "cannot watch the container's pidfd");
                None
            }
        };
        let limitation = tokio::task::spawn_blocking(move || cgroup.limitation())
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        tracing::info!(container = %id, ?status, ?limitation, "container exited");
        let _ = tx.send(Some(Termination { status, limitation }));
    });
}
