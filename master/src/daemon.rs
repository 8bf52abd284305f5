//! The master daemon: its flags, and the run from the registry to serving,
//! shared by `tepui-master` and `tepui local`. This is a program's top
//! level, so its errors are anyhow's, with context.

use clap::Parser;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::master::Config;
use crate::resources::Bundle;
use crate::server::Server;
use anyhow::{Context, Result, bail};

/// The tepui master: offers agents' resources to Mesos frameworks.
#[derive(Debug, Parser)]
#[command(name = "tepui-master", version, about, long_about = None)]
pub struct Flags {
    /// The address to listen on.
    #[arg(long, env = "TEPUI_IP", default_value = "0.0.0.0")]
    pub ip: IpAddr,
    /// The port to listen on (0: any free port).
    #[arg(long, env = "TEPUI_PORT", default_value_t = 5050)]
    pub port: u16,
    /// The host name agents and frameworks are told to reach this master
    /// by [default: the listen address, or this machine's name for 0.0.0.0].
    #[arg(long, env = "TEPUI_HOSTNAME")]
    pub hostname: Option<String>,
    /// Where the registry of agents is kept.
    #[arg(
        long,
        env = "TEPUI_WORK_DIR",
        default_value = "/var/lib/tepui/master",
        alias = "work_dir"
    )]
    pub work_dir: PathBuf,
    /// How often agents are pinged; an agent that misses
    /// --max-agent-ping-timeouts pings in a row is removed.
    #[arg(long, env = "TEPUI_AGENT_PING_TIMEOUT", default_value = "15secs", value_parser = duration, alias = "agent_ping_timeout")]
    pub agent_ping_timeout: Duration,
    /// Pings an agent may miss in a row before it is removed.
    #[arg(
        long,
        env = "TEPUI_MAX_AGENT_PING_TIMEOUTS",
        default_value_t = 5,
        alias = "max_agent_ping_timeouts"
    )]
    pub max_agent_ping_timeouts: u32,
    /// How long a restarted master waits for the agents of its registry
    /// before marking the missing ones unreachable.
    #[arg(long, env = "TEPUI_AGENT_REREGISTER_TIMEOUT", default_value = "10mins", value_parser = duration, alias = "agent_reregister_timeout")]
    pub agent_reregister_timeout: Duration,
    /// How often a batch allocation runs (events also trigger one).
    #[arg(long, env = "TEPUI_ALLOCATION_INTERVAL", default_value = "1secs", value_parser = duration, alias = "allocation_interval")]
    pub allocation_interval: Duration,
    /// How long an offer stands before it is rescinded [default: forever].
    #[arg(long, env = "TEPUI_OFFER_TIMEOUT", value_parser = duration, alias = "offer_timeout")]
    pub offer_timeout: Option<Duration>,
    /// The HEARTBEAT interval of scheduler event streams.
    #[arg(long, env = "TEPUI_HEARTBEAT_INTERVAL", default_value = "15secs", value_parser = duration)]
    pub heartbeat_interval: Duration,
    /// Role weights, e.g. `gold=3,silver=1` (1 when not named).
    #[arg(long, env = "TEPUI_WEIGHTS", default_value = "")]
    pub weights: String,
    /// The least an offer may hold: alternatives separated by `|`, e.g.
    /// `cpus:0.01|mem:32` (Mesos's default).
    #[arg(
        long,
        env = "TEPUI_MIN_ALLOCATABLE_RESOURCES",
        default_value = "cpus:0.01|mem:32",
        alias = "min_allocatable_resources"
    )]
    pub min_allocatable_resources: String,
}

fn duration(text: &str) -> Result<Duration, String> {
    tepui_proto::duration::parse(text)
        .ok_or_else(|| format!("{text:?} is not a duration like 15secs, 500ms or 10mins"))
}

fn weights(text: &str) -> Result<HashMap<String, f64>> {
    let mut out = HashMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((role, weight)) = part.split_once('=') else {
            bail!("--weights: {part:?} is not ROLE=WEIGHT");
        };
        let weight: f64 = weight
            .trim()
            .parse()
            .with_context(|| format!("--weights: {part:?}: the weight is not a number"))?;
        if !(weight.is_finite() && weight > 0.0) {
            bail!("--weights: {part:?}: a weight must be positive");
        }
        out.insert(role.trim().to_owned(), weight);
    }
    Ok(out)
}

fn min_allocatable(text: &str) -> Result<Vec<Bundle>> {
    text.split('|')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            let resources = tepui_proto::resources::parse(part)
                .with_context(|| format!("--min-allocatable-resources: {part:?}"))?;
            Bundle::from_proto(&resources)
                .with_context(|| format!("--min-allocatable-resources: {part:?}"))
        })
        .collect()
}

fn advertised(flags: &Flags, port: u16) -> String {
    let host = match &flags.hostname {
        Some(h) => h.clone(),
        None if flags.ip.is_unspecified() => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| Ipv4Addr::LOCALHOST.to_string()),
        None => flags.ip.to_string(),
    };
    format!("{host}:{port}")
}

/// Serves until SIGTERM or SIGINT, then writes what the registry has not
/// written yet.
pub async fn run(flags: Flags) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(flags.ip, flags.port))
        .await
        .with_context(|| format!("listening on {}:{}", flags.ip, flags.port))?;
    let port = listener.local_addr()?.port();
    let config = Config {
        work_dir: flags.work_dir.clone(),
        advertise: advertised(&flags, port),
        agent_ping_timeout: flags.agent_ping_timeout,
        max_agent_ping_timeouts: flags.max_agent_ping_timeouts.max(1),
        agent_reregister_timeout: flags.agent_reregister_timeout,
        allocation_interval: flags.allocation_interval,
        offer_timeout: flags.offer_timeout,
        heartbeat_interval: flags.heartbeat_interval,
        weights: weights(&flags.weights)?,
        min_allocatable: min_allocatable(&flags.min_allocatable_resources)?,
    };
    std::fs::create_dir_all(&config.work_dir)
        .with_context(|| format!("creating {}", config.work_dir.display()))?;
    let server = Server::new(config.clone()).context("reading the registry")?;
    let master_id = server.lock().info.id.clone();
    tracing::info!(
        address = %format!("{}:{port}", flags.ip),
        advertise = %config.advertise,
        work_dir = %config.work_dir.display(),
        %master_id,
        "tepui-master started"
    );
    let serving = format!("serving on {}, master id {master_id}", config.advertise);
    if let Err(e) = tepui_systemd::ready(&serving) {
        tracing::warn!(error = %e, "telling systemd the master is ready");
    }
    tokio::select! {
        () = server.clone().serve(listener) => {}
        signal = tepui_systemd::stop_requested() => {
            let signal = signal.context("watching SIGTERM and SIGINT")?;
            tracing::info!(signal, "tepui-master stopping");
            let _ = tepui_systemd::stopping(&format!("stopping on {signal}"));
        }
    }
    // What the last round did not write yet.
    server.write_registry().await;
    Ok(())
}
