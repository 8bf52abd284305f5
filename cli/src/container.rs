//! `tepui container`: drive the containerizer alone, without an agent,
//! for development, benchmarks and the VM tests.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use tepui_containerizer::provisioner::Provisioner;
use tepui_containerizer::provisioner::runtime::{self, TaskCommand};
use tepui_containerizer::{
    Config, ContainerSpec, Containerizer, Limits, Namespaces, RootfsMounts, Stdio, Termination,
    Volume,
};
use tepui_isolators::cgroups::{Hierarchy, memory};
use tepui_isolators::rlimits;

use crate::image::{self, StoreArgs};

/// `tepui container ...`
#[derive(Debug, Args)]
pub struct ContainerArgs {
    #[command(flatten)]
    place: Place,
    #[command(flatten)]
    images: StoreArgs,
    #[command(subcommand)]
    command: ContainerCommand,
}

/// Where the containerizer keeps its containers.
#[derive(Debug, Args)]
struct Place {
    /// cgroup v2 subtree to create containers in [default: tepui under
    /// the cgroup2 mount found in /proc/self/mountinfo].
    #[arg(long, global = true, env = "TEPUI_CGROUP_ROOT")]
    cgroup_root: Option<PathBuf>,
    /// Directory of the per-container state used to recover them.
    #[arg(
        long,
        global = true,
        env = "TEPUI_CONTAINER_STATE_DIR",
        default_value = "/run/tepui/containers"
    )]
    state_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum ContainerCommand {
    /// Run a command in a container, wait for it, remove it, and exit with
    /// its exit code (128 + signal when killed).
    Run(RunArgs),
    /// Start a container and leave it running; prints its id and pid.
    Start(RunArgs),
    /// Wait for a container started earlier (by any process), then remove it.
    Wait {
        /// Container id.
        id: String,
    },
    /// Change the limits of a running container.
    Update(UpdateArgs),
    /// Kill a container and remove it.
    Destroy {
        /// Container id.
        id: String,
    },
    /// List the containers in the state directory that are still running.
    List,
    /// Print the seccomp filter a container gets by default, as an OCI
    /// runtime config's `linux.seccomp` (JSON), to give another runtime
    /// the same filter or to read what a container runs under.
    Seccomp,
}

#[derive(Debug, Args)]
struct UpdateArgs {
    /// Container id.
    id: String,
    #[command(flatten)]
    limits: LimitArgs,
}

/// The cgroup limits of a container, for run, start and update.
#[derive(Debug, Args)]
struct LimitArgs {
    /// Memory limit (memory.max), e.g. 64M or 1G.
    #[arg(long, env = "TEPUI_CONTAINER_MEM")]
    mem: Option<String>,
    /// CPUs: the cgroup's cpu.weight, and its cpu.max with --cpu-hard.
    #[arg(long, env = "TEPUI_CONTAINER_CPUS")]
    cpus: Option<f64>,
    /// Enforce --cpus as a hard cap (cpu.max).
    #[arg(long, env = "TEPUI_CONTAINER_CPU_HARD")]
    cpu_hard: bool,
    /// Maximum number of processes (pids.max).
    #[arg(long, env = "TEPUI_CONTAINER_PIDS")]
    pids: Option<u64>,
}

impl LimitArgs {
    fn limits(&self) -> Result<Limits> {
        Ok(Limits {
            cpus: self.cpus,
            cpu_max: self.cpus.filter(|_| self.cpu_hard),
            mem_bytes: self.mem.as_deref().map(memory::parse_size).transpose()?,
            pids: self.pids,
            ..Limits::default()
        })
    }
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Container id [default: run-<pid>-<time>].
    #[arg(long, env = "TEPUI_CONTAINER_ID")]
    id: Option<String>,
    /// Root filesystem directory; without it (or --image) the host's is used.
    #[arg(long, env = "TEPUI_CONTAINER_ROOTFS", conflicts_with = "image")]
    rootfs: Option<PathBuf>,
    /// An OCI image for the root filesystem (pulled unless in the store);
    /// its Entrypoint/Cmd run when no command is given, and its Env,
    /// User and WorkingDir apply unless overridden.
    #[arg(long, env = "TEPUI_CONTAINER_IMAGE")]
    image: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
    /// Hostname [default: the container id].
    #[arg(long, env = "TEPUI_CONTAINER_HOSTNAME")]
    hostname: Option<String>,
    /// Give the container a new, empty network namespace.
    #[arg(long, env = "TEPUI_CONTAINER_NET")]
    net: bool,
    /// Host directory bound at /mnt/mesos/sandbox (the working directory).
    #[arg(long, env = "TEPUI_CONTAINER_SANDBOX")]
    sandbox: Option<PathBuf>,
    /// HOST:CONTAINER[:ro] bind mount; repeatable.
    #[arg(
        long = "volume",
        short = 'v',
        env = "TEPUI_CONTAINER_VOLUMES",
        value_delimiter = ','
    )]
    volumes: Vec<String>,
    /// User: name, uid or uid:gid, resolved in the root filesystem.
    #[arg(long, env = "TEPUI_CONTAINER_USER")]
    user: Option<String>,
    /// Working directory inside the container.
    #[arg(long, env = "TEPUI_CONTAINER_CWD")]
    cwd: Option<PathBuf>,
    /// NAME=SOFT[:HARD] resource limit (nofile, nproc, core, ...); repeatable.
    #[arg(
        long = "rlimit",
        env = "TEPUI_CONTAINER_RLIMITS",
        value_delimiter = ','
    )]
    rlimits: Vec<String>,
    /// KEY=VALUE environment variable; repeatable (PATH has a default).
    #[arg(
        long = "env",
        short = 'e',
        env = "TEPUI_CONTAINER_ENV",
        value_delimiter = ','
    )]
    env: Vec<String>,
    /// The command and its arguments (with --image, the image's default
    /// command when omitted).
    #[arg(required_unless_present = "image", last = true)]
    command: Vec<String>,
}

/// Runs a `tepui container` command; returns the process exit code.
pub fn run(args: ContainerArgs) -> Result<i32> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let code = runtime.block_on(dispatch(args));
    // Every container this process touched is settled (launched, waited
    // for or removed, and awaited); the blocking pool's idle threads need
    // not be woken and joined before the process exits.
    runtime.shutdown_background();
    code
}

async fn dispatch(args: ContainerArgs) -> Result<i32> {
    if let ContainerCommand::Seccomp = args.command {
        let profile = tepui_isolators::seccomp::SeccompProfile::builtin();
        let bounding = tepui_isolators::capabilities::default_mask();
        println!("{:#}", profile.linux_seccomp(bounding));
        return Ok(0);
    }
    let cgroup_root = match args.place.cgroup_root {
        Some(root) => root,
        None => Hierarchy::default_root()?,
    };
    let wants_image = matches!(&args.command, ContainerCommand::Run(r) | ContainerCommand::Start(r) if r.image.is_some());
    let runs_without_image = matches!(&args.command, ContainerCommand::Run(r) | ContainerCommand::Start(r) if r.image.is_none());
    // Without an image to run, the store is opened only if it exists, to
    // release the root filesystems of image containers; a new container
    // without an image has none, and opening the store costs a launch ~6 ms.
    let provisioner = if wants_image || (args.images.exists() && !runs_without_image) {
        Some(Arc::new(args.images.provisioner()?))
    } else {
        None
    };
    let containerizer = Containerizer::new(Config {
        cgroup_root,
        state_dir: args.place.state_dir,
        provisioner: provisioner.clone(),
    })?;
    match args.command {
        ContainerCommand::Run(run) => {
            let id = run.id.clone().unwrap_or_else(default_id);
            let spec = spec(run, Stdio::Inherit, provisioner.as_deref()).await?;
            containerizer.launch(&id, spec).await?;
            containerizer.wait(&id).await?;
            let ended = containerizer.destroy(&id).await?;
            Ok(exit_code(&id, ended))
        }
        ContainerCommand::Start(run) => {
            let id = run.id.clone().unwrap_or_else(default_id);
            let spec = spec(run, Stdio::Null, provisioner.as_deref()).await?;
            let pid = containerizer.launch(&id, spec).await?;
            println!("{id} {pid}");
            Ok(0)
        }
        ContainerCommand::Wait { id } => {
            recover(&containerizer, &id).await?;
            containerizer.wait(&id).await?;
            let ended = containerizer.destroy(&id).await?;
            Ok(exit_code(&id, ended))
        }
        ContainerCommand::Update(update) => {
            recover(&containerizer, &update.id).await?;
            let limits = update.limits.limits()?;
            containerizer.update(&update.id, limits).await?;
            Ok(0)
        }
        ContainerCommand::Destroy { id } => {
            recover(&containerizer, &id).await?;
            containerizer.destroy(&id).await?;
            Ok(0)
        }
        // Printed above, before any cgroup or state is opened.
        ContainerCommand::Seccomp => Ok(0),
        ContainerCommand::List => {
            let checkpointed = containerizer.checkpointed();
            let recovered = containerizer.recover(&checkpointed).await?;
            for id in recovered.alive {
                println!("{id} {}", containerizer.pid(&id).unwrap_or(0));
            }
            Ok(0)
        }
    }
}

/// Re-attaches every checkpointed container and checks `id` is among them.
async fn recover(containerizer: &Containerizer, id: &str) -> Result<()> {
    let recovered = containerizer.recover(&containerizer.checkpointed()).await?;
    if !recovered.alive.iter().any(|a| a == id) {
        bail!("no running container {id}");
    }
    Ok(())
}

fn default_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("run-{}-{nanos}", std::process::id())
}

fn exit_code(id: &str, ended: Termination) -> i32 {
    if let Some(limitation) = ended.limitation {
        eprintln!("tepui: container {id}: {limitation}");
    }
    match ended.status {
        Some(status) => status.code(),
        None => {
            eprintln!(
                "tepui: container {id} ended; its exit status went to the process that started it"
            );
            0
        }
    }
}

async fn spec(
    run: RunArgs,
    stdio: Stdio,
    provisioner: Option<&Provisioner>,
) -> Result<ContainerSpec> {
    let flags = run
        .env
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("--env {pair:?}: expected KEY=VALUE"))
        })
        .collect::<Result<Vec<_>>>()?;
    let image = match (&run.image, provisioner) {
        (Some(name), Some(provisioner)) => Some(
            provisioner
                .provision_named(name, true, image::progress())
                .await?,
        ),
        _ => None,
    };
    // A command given runs as given (CommandInfo value + arguments); none
    // runs the image's Entrypoint and Cmd.
    let task = TaskCommand {
        shell: false,
        value: run.command.first().cloned(),
        arguments: run.command.clone(),
    };
    let exec = runtime::command(image.as_ref().map(|i| &i.config), &task)?;
    let mut spec = ContainerSpec::new(exec.argv);
    spec.program = Some(exec.program);
    // The image's Env with the flags on top, over the default PATH.
    for (key, value) in runtime::environment(image.as_ref().map(|i| &i.config), &flags) {
        spec.env.retain(|(k, _)| *k != key);
        spec.env.push((key, value));
    }
    let volumes = run
        .volumes
        .iter()
        .map(|v| parse_volume(v))
        .collect::<Result<Vec<_>>>()?;
    spec.mounts = RootfsMounts {
        sandbox: run.sandbox,
        volumes,
    };
    spec.rlimits = run
        .rlimits
        .iter()
        .map(|r| rlimits::parse(r).map_err(anyhow::Error::msg))
        .collect::<Result<_>>()?;
    spec.rootfs = run.rootfs;
    spec.hostname = run.hostname;
    spec.user = run.user;
    spec.cwd = run.cwd;
    if let Some(image) = image {
        spec.user = spec.user.or_else(|| runtime::user(&image.config));
        spec.cwd = spec.cwd.or_else(|| runtime::working_dir(&image.config));
        spec.image = Some(image);
    }
    spec.namespaces = Namespaces {
        net: run.net,
        ..Namespaces::isolated_host_network()
    };
    spec.limits = run.limits.limits()?;
    spec.stdio = stdio;
    Ok(spec)
}

fn parse_volume(text: &str) -> Result<Volume> {
    let parts: Vec<&str> = text.split(':').collect();
    let (host, container, read_only) = match parts.as_slice() {
        [h, c] => (h, c, false),
        [h, c, "ro"] => (h, c, true),
        [h, c, "rw"] => (h, c, false),
        _ => bail!("--volume {text:?}: expected HOST:CONTAINER[:ro]"),
    };
    Ok(Volume {
        host: host.into(),
        container: container.into(),
        read_only,
    })
}
