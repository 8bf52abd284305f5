//! `tepui local`: a master and an agent in one process, on loopback ports,
//! with everything else at embedded defaults: a cluster to try tepui on,
//! and the quick start's main job. Authentication is on in every realm
//! (frameworks, agents, the HTTP endpoints, executors), with secrets made
//! on the first start (see `local_secrets`); `--no-authentication` runs
//! with the daemons' Mesos defaults instead.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser};

use crate::local_secrets::{self, LocalSecrets};
use crate::master_http;

/// Where a local cluster lives unless told otherwise.
pub const DEFAULT_WORK_DIR: &str = "/var/lib/tepui/local";

/// `tepui local [options]`
#[derive(Debug, Args)]
pub struct LocalArgs {
    /// Where the master's registry, the agent's sandboxes and checkpoints
    /// live [default: /var/lib/tepui/local].
    #[arg(long, env = "TEPUI_LOCAL_WORK_DIR", default_value = DEFAULT_WORK_DIR)]
    work_dir: PathBuf,
    /// Run with no authentication anywhere (the daemons' Mesos defaults),
    /// for clients that cannot authenticate, such as pymesos's executor
    /// and operator drivers. By default every API asks for the
    /// credentials in WORK_DIR/secrets (client.json for clients).
    #[arg(long, env = "TEPUI_LOCAL_NO_AUTHENTICATION")]
    no_authentication: bool,
    /// The master's port on 127.0.0.1.
    #[arg(long, env = "TEPUI_LOCAL_MASTER_PORT", default_value_t = 5050)]
    master_port: u16,
    /// The agent's port on 127.0.0.1.
    #[arg(long, env = "TEPUI_LOCAL_AGENT_PORT", default_value_t = 5051)]
    agent_port: u16,
    /// The agent's cgroup v2 subtree [default: tepui-local under the
    /// cgroup2 mount, apart from an installed agent's].
    #[arg(long, env = "TEPUI_LOCAL_CGROUP_ROOT")]
    cgroup_root: Option<PathBuf>,
    /// Where the agent keeps container state.
    #[arg(
        long,
        env = "TEPUI_LOCAL_CONTAINER_STATE_DIR",
        default_value = "/run/tepui/local/containers"
    )]
    container_state_dir: PathBuf,
    /// Resources the agent offers, e.g. `cpus:2;mem:1024` [default: detected].
    #[arg(long, env = "TEPUI_LOCAL_RESOURCES")]
    resources: Option<String>,
    /// The agent's image store and registries (the store is the one
    /// `tepui image import` and `pull` fill by default).
    #[command(flatten)]
    images: tepui_agent::image_flags::StoreArgs,
}

/// The master's flags for a local cluster.
fn master_flags(
    args: &LocalArgs,
    secrets: Option<&LocalSecrets>,
) -> Result<tepui_master::daemon::Flags> {
    let mut argv: Vec<std::ffi::OsString> = vec![
        "tepui-master".into(),
        "--ip".into(),
        "127.0.0.1".into(),
        "--port".into(),
        args.master_port.to_string().into(),
        "--work-dir".into(),
        args.work_dir.join("master").into(),
        // A local cluster offers again soon after a task ends.
        "--allocation-interval".into(),
        "200ms".into(),
    ];
    if let Some(secrets) = secrets {
        argv.extend([
            "--credentials".into(),
            secrets.credentials.clone().into(),
            "--authenticate-agents".into(),
            "--authenticate-http-frameworks".into(),
            "--http-framework-authenticators".into(),
            "basic".into(),
            "--authenticate-http-readonly".into(),
            "--authenticate-http-readwrite".into(),
        ]);
    }
    tepui_master::daemon::Flags::try_parse_from(argv).context("the local master's flags")
}

/// The agent's flags: by default its own cgroup subtree and container
/// state, apart from those of an agent installed on the same machine.
fn agent_flags(
    args: &LocalArgs,
    secrets: Option<&LocalSecrets>,
) -> Result<tepui_agent::daemon::Flags> {
    let master = format!("127.0.0.1:{}", args.master_port);
    let port = args.agent_port.to_string();
    let cgroup = match &args.cgroup_root {
        Some(root) => root.clone(),
        None => tepui_isolators::cgroups::Hierarchy::default_root()
            .context("finding the cgroup2 mount")?
            .with_file_name("tepui-local"),
    };
    let mut argv: Vec<std::ffi::OsString> = vec![
        "tepui-agent".into(),
        "--master".into(),
        master.into(),
        "--ip".into(),
        "127.0.0.1".into(),
        "--port".into(),
        port.into(),
        "--work-dir".into(),
        args.work_dir.join("agent").into(),
        "--cgroup-root".into(),
        cgroup.into(),
        "--container-state-dir".into(),
        args.container_state_dir.clone().into(),
    ];
    if let Some(resources) = &args.resources {
        argv.extend(["--resources".into(), resources.into()]);
    }
    if let Some(secrets) = secrets {
        argv.extend([
            "--credential".into(),
            secrets.agent.clone().into(),
            "--http-credentials".into(),
            secrets.credentials.clone().into(),
            "--authenticate-http-readonly".into(),
            "--authenticate-http-readwrite".into(),
            "--authenticate-http-executors".into(),
            "--jwt-secret-key".into(),
            secrets.executor_key.clone().into(),
        ]);
    }
    tepui_agent::daemon::Flags::try_parse_from(argv).context("the local agent's flags")
}

/// Runs the master and the agent until SIGINT or SIGTERM; says once the
/// agent has registered.
pub fn run(args: LocalArgs) -> Result<i32> {
    let secrets = if args.no_authentication {
        eprintln!(
            "tepui local: no authentication (--no-authentication): anyone on this machine may use the cluster"
        );
        None
    } else {
        let secrets = local_secrets::ensure(&args.work_dir)?;
        let client = tepui_proto::authentication::read_credential(&secrets.client)?;
        eprintln!(
            "tepui local: authentication on; principal {} with the secret in {} (tepui run and friends read it there when the work dir is the default; else give --credential)",
            client.principal,
            secrets.client.display()
        );
        // This process asks its own master whether the agent is in.
        master_http::set_credential(client);
        Some(secrets)
    };
    let master = master_flags(&args, secrets.as_ref())?;
    let mut agent = agent_flags(&args, secrets.as_ref())?;
    agent.images = args.images;
    tepui_agent::daemon::raise_nofile();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let address = format!("127.0.0.1:{}", args.master_port);
    runtime.block_on(async move {
        let announce = tokio::spawn(announce(address, args.agent_port));
        let result = tokio::try_join!(
            tepui_master::daemon::run(master),
            tepui_agent::daemon::run(agent)
        );
        announce.abort();
        result.map(|_| 0)
    })
}

/// Prints where the cluster is once the agent is registered.
async fn announce(master: String, agent_port: u16) {
    for _ in 0..600 {
        if let Ok(agents) = master_http::get_json(&master, "/master/slaves").await
            && agents["slaves"].as_array().is_some_and(|a| !a.is_empty())
        {
            eprintln!(
                "tepui local: master on {master}, agent on 127.0.0.1:{agent_port}, ready \
                 (try: tepui run -- echo hello; tepui ps; Ctrl-C stops both, tasks keep running)"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("tepui local: the agent has not registered within a minute; see the log above");
}
