//! Starting an executor run's container: its URIs fetched into the
//! sandbox, its image provisioned, its container spec built (the
//! executor's command and environment, limits, mounts, stdio, seccomp
//! profile and capabilities), the container launched, and then watched
//! until it ends.

use std::path::{Path, PathBuf};

use std::sync::Arc;
use tepui_isolators::beneath::Beneath;

use tepui_containerizer::fetcher::{FetchTarget, FetchUri};
use tepui_containerizer::provisioner::{Image, LogProgress, runtime};
use tepui_containerizer::{ContainerSpec, Stdio};
use tepui_proto::v1::{ExecutorInfo, TaskInfo, TaskState, task_status};

use super::{ExecutorKey, Runner, Termination, lock};
use crate::executor_env::{ExecutorEnvInput, executor_env, mesos_duration};
use crate::linux_info::Isolation;
use crate::{rotating_log, task_isolation, task_process};

/// What an executor run's ContainerInfo asks for, as checked when its
/// first task arrived.
pub(super) struct Requested {
    /// The image to provision.
    pub(super) image: Option<tepui_proto::v1::Image>,
    /// Its seccomp profile and capabilities.
    pub(super) isolation: Isolation,
    /// Its resource limits (rlimit_info, else the default open files).
    pub(super) rlimits: Vec<tepui_isolators::rlimits::Rlimit>,
}

impl Runner {
    /// Fetches, provisions, launches and then watches one executor run.
    pub(super) async fn start_executor(
        self: Arc<Self>,
        key: ExecutorKey,
        info: ExecutorInfo,
        tasks: Vec<TaskInfo>,
        requested: Requested,
        container: String,
        sandbox: PathBuf,
    ) {
        let Requested {
            image,
            isolation,
            rlimits,
        } = requested;
        // A custom executor fetches its own URIs; the built-in one, its tasks'.
        let uris: Vec<FetchUri> = match &info.command {
            Some(command) => command.uris.iter().map(FetchUri::from).collect(),
            None => tasks
                .iter()
                .filter_map(|t| t.command.as_ref())
                .flat_map(|c| c.uris.iter().map(FetchUri::from))
                .collect(),
        };
        // The run's user, from this host's user database, before anything
        // is put in the sandbox, which becomes that user's.
        let (name, user) = match self.run_user(&key) {
            Ok(user) => user.unzip(),
            Err(why) => {
                self.executor_failed(&key, task_status::Reason::ContainerLaunchFailed, why);
                return;
            }
        };
        let prepared = {
            let (sandbox, user) = (sandbox.clone(), user.clone());
            tokio::task::spawn_blocking(move || prepare_sandbox(&sandbox, user.as_ref())).await
        };
        if let Err(why) = prepared
            .map_err(|e| e.to_string())
            .and_then(|prepared| prepared)
        {
            self.executor_failed(&key, task_status::Reason::ContainerLaunchFailed, why);
            return;
        }
        let target = FetchTarget {
            sandbox: sandbox.clone(),
            user: user.clone().filter(|u| u.uid != 0),
            disk_bytes: self.disk_bytes(&key),
        };
        if let Err(e) = self.fetcher.fetch_all_into(&uris, &target).await {
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
        let mut spec = match self.executor_spec(&key, &info, &sandbox, image, name, isolation) {
            Ok(spec) => spec,
            Err(why) => {
                self.executor_failed(&key, task_status::Reason::ContainerLaunchFailed, why);
                return;
            }
        };
        spec.rlimits = rlimits;
        if let Err(e) = self.containerizer.launch(&container, spec).await {
            self.executor_failed(
                &key,
                task_status::Reason::ContainerLaunchFailed,
                e.to_string(),
            );
            return;
        }
        // An executor that does not subscribe in time is destroyed, and its
        // tasks fail for that reason, as in Mesos.
        let runner = self.clone();
        let (timed, timed_container) = (key.clone(), container.clone());
        tokio::spawn(async move {
            let timeout = runner.config.registration_timeout;
            tokio::time::sleep(timeout).await;
            let end = Termination {
                state: TaskState::TaskFailed,
                reason: task_status::Reason::ExecutorRegistrationTimeout,
                message: format!(
                    "Executor did not register within {}",
                    mesos_duration(timeout)
                ),
            };
            runner
                .destroy_unregistered(&timed, &timed_container, end)
                .await;
        });
        self.watch(key, container).await;
    }

    /// The user an executor run runs as, when `--switch_user`: its name
    /// and its ids from this host's user database; an unknown user fails
    /// the run with a message naming it.
    fn run_user(
        &self,
        key: &ExecutorKey,
    ) -> Result<Option<(String, tepui_containerizer::user::User)>, String> {
        if !self.config.switch_user {
            return Ok(None);
        }
        let name = {
            let executors = lock(&self.executors);
            let run = executors.get(key).ok_or("the executor run is gone")?;
            run.user()
        };
        let Some(name) = name else {
            return Ok(None);
        };
        let user = tepui_containerizer::user::host(&name).map_err(|e| {
            format!("Failed to switch to the task's user {name:?} (--switch_user): {e}")
        })?;
        Ok(Some((name, user)))
    }

    /// The disk resource of an executor run and its tasks, in bytes, if
    /// they have one: what its fetched URIs may write at most.
    fn disk_bytes(&self, key: &ExecutorKey) -> Option<u64> {
        let executors = lock(&self.executors);
        let run = executors.get(key)?;
        let mib: f64 = std::iter::once(run.info.resources.as_slice())
            .chain(run.infos.values().map(|t| t.resources.as_slice()))
            .map(|r| tepui_proto::resources::scalar(r, "disk"))
            .sum();
        (mib > 0.0).then_some((mib * 1024.0 * 1024.0) as u64)
    }

    /// The image named by a task or executor, from the store or its registry.
    async fn provision(&self, image: &tepui_proto::v1::Image) -> Result<Image, String> {
        let provisioner = self
            .config
            .provisioner
            .clone()
            .ok_or("this agent has no image store for tasks with images")?;
        let (name, cached) = runtime::image_name(image).map_err(|e| e.to_string())?;
        provisioner
            .provision_named(name, cached, Arc::new(LogProgress::default()))
            .await
            .map_err(|e| format!("provisioning image {name}: {e}"))
    }

    /// The container spec of an executor run.
    fn executor_spec(
        &self,
        key: &ExecutorKey,
        info: &ExecutorInfo,
        sandbox: &std::path::Path,
        image: Option<Image>,
        user: Option<String>,
        isolation: Isolation,
    ) -> Result<ContainerSpec, String> {
        let (checkpoint, limits, container) = {
            let mut executors = lock(&self.executors);
            let run = executors.get_mut(key).ok_or("the executor run is gone")?;
            run.image_config = image.as_ref().map(|i| Arc::new(i.config.clone()));
            (
                run.framework.checkpoint.unwrap_or(false),
                self.limits_of(run),
                run.container.clone(),
            )
        };
        let token = self
            .config
            .executor_tokens
            .as_ref()
            .map(|k| k.issue(&key.0, &key.1, &container));
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
            subscription_backoff_max: self.config.reregistration_timeout,
            shutdown_grace_period: self.config.shutdown_grace_period,
            authentication_token: token.as_deref(),
        }));
        spec.env.extend(self.config.tls_env.iter().cloned());
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
        // The run's user, unless root (then the image's USER may apply).
        let user = user.filter(|u| u != "root" && u != "0");
        let mut capabilities = isolation.capabilities;
        if let Some(image) = image {
            if info.command.is_none() {
                // The built-in executor stays on the host's filesystem and
                // starts each task in new mount and pid namespaces,
                // pivot_root'ed into the image, with the task's own
                // capabilities and seccomp filters on top of its own
                // (which allow what that takes); each task runs as its
                // user inside the image.
                spec.enter_rootfs = false;
                if let Some(dir) = runtime::working_dir(&image.config) {
                    spec.env
                        .push((task_process::WORKDIR_ENV.into(), dir.display().to_string()));
                }
                spec.env.push((
                    task_isolation::CAPABILITIES_ENV.into(),
                    task_isolation::encode_capabilities(capabilities),
                ));
                if let Some(profile) = &isolation.seccomp {
                    let programs = self
                        .containerizer
                        .seccomp_programs(profile, capabilities.bounding)
                        .map_err(|e| e.to_string())?;
                    spec.env.push((
                        task_isolation::SECCOMP_ENV.into(),
                        task_isolation::encode_seccomp(&programs),
                    ));
                }
                capabilities = task_isolation::executor_capabilities(capabilities);
            } else {
                spec.user = user.or_else(|| runtime::user(&image.config));
                spec.cwd = runtime::working_dir(&image.config);
            }
            spec.image = Some(image);
        } else {
            spec.user = user;
        }
        spec.limits = limits;
        spec.seccomp = isolation.seccomp;
        spec.capabilities = Some(capabilities);
        spec.mounts.sandbox = Some(sandbox.to_owned());
        spec.stdio = Stdio::Files {
            stdout: sandbox.join("stdout"),
            stderr: sandbox.join("stderr"),
        };
        Ok(spec)
    }
}

/// Makes a new sandbox its user's (mode 0750), and its stdout and stderr
/// files in it theirs, before anything is fetched into it or launched:
/// the executor, as that user, appends to them. Blocking.
fn prepare_sandbox(
    sandbox: &Path,
    user: Option<&tepui_containerizer::user::User>,
) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let fail = |e: std::io::Error| format!("preparing the sandbox {}: {e}", sandbox.display());
    let dir = Beneath::open(sandbox).map_err(fail)?;
    let own = |fd: i32| -> std::io::Result<()> {
        if let Some(user) = user {
            // SAFETY: fchown of an fd we hold open.
            if unsafe { libc::fchown(fd, user.uid, user.gid) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    };
    for name in ["stdout", "stderr"] {
        let file = dir
            .create_no_follow(Path::new(name), libc::O_APPEND, 0o644)
            .map_err(fail)?;
        own(file.as_raw_fd()).map_err(fail)?;
    }
    own(dir.fd().as_raw_fd()).map_err(fail)?;
    // SAFETY: fchmod of an fd we hold open.
    if unsafe { libc::fchmod(dir.fd().as_raw_fd(), 0o750) } < 0 {
        return Err(fail(std::io::Error::last_os_error()));
    }
    Ok(())
}
