//! The master daemon: its flags, and the run from the registry to serving,
//! shared by `tepui-master` and `tepui local`. This is a program's top
//! level, so its errors are anyhow's, with context.

use clap::Parser;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::authentication::{Authentication, Required};
use crate::master::Config;
use crate::resources::Bundle;
use crate::server::Server;
use anyhow::{Context, Result, bail};
use tepui_proto::acls::Acls;
use tepui_proto::authentication::BasicAuthenticator;

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
    /// Mesos's credentials file, JSON
    /// `{"credentials":[{"principal":"..","secret":".."}]}`, as a path or
    /// `file://` URL: the principals the `--authenticate_*` realms admit.
    #[arg(long, env = "TEPUI_CREDENTIALS", value_name = "PATH")]
    pub credentials: Option<String>,
    /// Accepted for Mesos's flag files: in Mesos it covers PID-based
    /// (libprocess) frameworks, which tepui does not serve; HTTP
    /// frameworks are covered by --authenticate-http-frameworks. Needs
    /// --credentials.
    #[arg(long, env = "TEPUI_AUTHENTICATE_FRAMEWORKS", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, aliases = ["authenticate_frameworks", "authenticate"])]
    pub authenticate_frameworks: bool,
    /// Only agents that authenticate (their --credential, HTTP Basic) may
    /// register, re-register under the same principal, and talk to the
    /// master.
    #[arg(long, env = "TEPUI_AUTHENTICATE_AGENTS", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, aliases = ["authenticate_agents", "authenticate_slaves", "authenticate-slaves"])]
    pub authenticate_agents: bool,
    /// Only authenticated requests to read-only endpoints (/master/state,
    /// /master/frameworks, /master/slaves, /master/tasks,
    /// /metrics/snapshot) are served; others get 401.
    #[arg(long, env = "TEPUI_AUTHENTICATE_HTTP_READONLY", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, alias = "authenticate_http_readonly")]
    pub authenticate_http_readonly: bool,
    /// Only authenticated requests to read-write endpoints (the operator
    /// API /api/v1, /tepui/v1/kill) are served; others get 401.
    #[arg(long, env = "TEPUI_AUTHENTICATE_HTTP_READWRITE", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, aliases = ["authenticate_http_readwrite", "authenticate_http", "authenticate-http"])]
    pub authenticate_http_readwrite: bool,
    /// Only authenticated HTTP frameworks may use the scheduler API, each
    /// as its own FrameworkInfo.principal. Needs
    /// --http-framework-authenticators=basic, as in Mesos.
    #[arg(long, env = "TEPUI_AUTHENTICATE_HTTP_FRAMEWORKS", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, alias = "authenticate_http_frameworks")]
    pub authenticate_http_frameworks: bool,
    /// The HTTP authenticator of the read-only and read-write endpoints:
    /// only Mesos's default, `basic`.
    #[arg(
        long,
        env = "TEPUI_HTTP_AUTHENTICATORS",
        default_value = "basic",
        alias = "http_authenticators"
    )]
    pub http_authenticators: String,
    /// The HTTP authenticator of the scheduler API: only `basic`.
    #[arg(
        long,
        env = "TEPUI_HTTP_FRAMEWORK_AUTHENTICATORS",
        alias = "http_framework_authenticators"
    )]
    pub http_framework_authenticators: Option<String>,
    /// Mesos's local authorizer ACLs, JSON
    /// `{"permissive":true,"run_tasks":[{"principals":{..},"users":{..}}],..}`,
    /// inline or as a path or `file://` URL: who may register frameworks
    /// (register_frameworks), run tasks as which user (run_tasks), tear
    /// down frameworks (teardown_frameworks), mark agents gone
    /// (mark_agents_gone), register agents (register_agents), view
    /// frameworks, tasks, executors and flags (view_*), and GET
    /// /metrics/snapshot (get_endpoints). A denied request is 403.
    #[arg(long, env = "TEPUI_ACLS", value_name = "JSON|PATH")]
    pub acls: Option<String>,
    /// TLS on every connection (libprocess's LIBPROCESS_SSL_ENABLED): a
    /// plain-HTTP request to the port is refused. Needs --ssl-cert-file
    /// and --ssl-key-file.
    #[arg(long, env = "TEPUI_SSL_ENABLED", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), alias = "ssl_enabled")]
    pub ssl_enabled: bool,
    /// This server's certificate chain, PEM.
    #[arg(
        long,
        env = "TEPUI_SSL_CERT_FILE",
        value_name = "PATH",
        alias = "ssl_cert_file"
    )]
    pub ssl_cert_file: Option<PathBuf>,
    /// This server's private key, PEM.
    #[arg(
        long,
        env = "TEPUI_SSL_KEY_FILE",
        value_name = "PATH",
        alias = "ssl_key_file"
    )]
    pub ssl_key_file: Option<PathBuf>,
    /// The CA certificates clients' certificates are verified against, PEM.
    #[arg(
        long,
        env = "TEPUI_SSL_CA_FILE",
        value_name = "PATH",
        alias = "ssl_ca_file"
    )]
    pub ssl_ca_file: Option<PathBuf>,
    /// Verify a client's certificate when it presents one (a client
    /// without one is still served). Needs --ssl-ca-file.
    #[arg(long, env = "TEPUI_SSL_VERIFY_CERT", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), alias = "ssl_verify_cert")]
    pub ssl_verify_cert: bool,
    /// Refuse a client without a certificate the CA signed. Needs
    /// --ssl-ca-file.
    #[arg(long, env = "TEPUI_SSL_REQUIRE_CERT", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), alias = "ssl_require_cert")]
    pub ssl_require_cert: bool,
}

impl Flags {
    /// The TLS settings the `--ssl-*` flags (or `LIBPROCESS_SSL_*`) give;
    /// the other `LIBPROCESS_SSL_*` knobs are refused by name.
    pub fn tls(&self) -> Result<tepui_proto::tls::Settings> {
        tepui_proto::tls::refuse_unsupported_env()?;
        Ok(tepui_proto::tls::Settings {
            enabled: self.ssl_enabled,
            cert_file: self.ssl_cert_file.clone(),
            key_file: self.ssl_key_file.clone(),
            ca_file: self.ssl_ca_file.clone(),
            verify_cert: self.ssl_verify_cert,
            require_cert: self.ssl_require_cert,
        })
    }

    /// The flags of this process: its arguments, then `TEPUI_*`, then
    /// `MESOS_*` variables.
    pub fn from_env() -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let matches = tepui_systemd::environment::with_mesos_names(Self::command()).get_matches();
        match Self::from_arg_matches(&matches) {
            Ok(flags) => flags,
            Err(e) => e.exit(),
        }
    }
}

/// Only Mesos's `basic` HTTP authenticator is built in.
fn basic_only(flag: &str, value: &str) -> Result<()> {
    for name in value.split(',').map(str::trim) {
        if name != "basic" {
            bail!(
                "{flag}: HTTP authenticator {name:?} is not supported by tepui (only \"basic\"; tepui loads no modules)"
            );
        }
    }
    Ok(())
}

/// The realms the flags require a credential for, and the credentials.
fn authentication(flags: &Flags) -> Result<Authentication> {
    basic_only("--http-authenticators", &flags.http_authenticators)?;
    if let Some(value) = &flags.http_framework_authenticators {
        basic_only("--http-framework-authenticators", value)?;
    } else if flags.authenticate_http_frameworks {
        bail!(
            "Missing `--http_framework_authenticators` flag. This must be used in conjunction with `--authenticate_http_frameworks`"
        );
    }
    let required = Required {
        readonly: flags.authenticate_http_readonly,
        readwrite: flags.authenticate_http_readwrite,
        frameworks: flags.authenticate_http_frameworks,
        agents: flags.authenticate_agents,
    };
    let credentials = match &flags.credentials {
        Some(flag) => tepui_proto::authentication::read_credentials(
            &tepui_proto::authentication::flag_path(flag),
        )
        .context("--credentials")?,
        None => Vec::new(),
    };
    if (required.any() || flags.authenticate_frameworks) && credentials.is_empty() {
        bail!(
            "authentication is enabled (--authenticate-*) but --credentials names no credentials"
        );
    }
    if flags.authenticate_frameworks {
        tracing::warn!(
            "--authenticate_frameworks covers PID-based frameworks, which tepui does not serve; HTTP frameworks are authenticated with --authenticate_http_frameworks"
        );
    }
    let authenticator = BasicAuthenticator::new(credentials);
    tracing::info!(
        principals = authenticator.len(),
        readonly = required.readonly,
        readwrite = required.readwrite,
        frameworks = required.frameworks,
        agents = required.agents,
        "authentication"
    );
    Ok(Authentication::new(authenticator, required))
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
    let authentication = authentication(&flags)?;
    let tls = flags.tls()?.server().context("TLS (--ssl-*)")?;
    let acls = Arc::new(match &flags.acls {
        Some(flag) => Acls::from_flag(flag)?,
        None => Acls::default(),
    });
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
        acls,
    };
    std::fs::create_dir_all(&config.work_dir)
        .with_context(|| format!("creating {}", config.work_dir.display()))?;
    let server = Server::with_authentication(config.clone(), authentication)
        .context("reading the registry")?;
    let master_id = server.lock().info.id.clone();
    tracing::info!(
        address = %format!("{}:{port}", flags.ip),
        tls = flags.ssl_enabled,
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
        () = server.clone().serve_tls(listener, tls) => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_takes_mesos_spelling() {
        use clap::{CommandFactory, FromArgMatches};
        let command = tepui_systemd::environment::with_mesos_names(Flags::command());
        command.clone().debug_assert();
        let matches = command
            .try_get_matches_from([
                "tepui-master",
                "--work_dir=/srv/m",
                "--allocation_interval=2secs",
                "--min_allocatable_resources",
                "cpus:1",
            ])
            .unwrap();
        let flags = Flags::from_arg_matches(&matches).unwrap();
        assert_eq!(flags.work_dir, std::path::Path::new("/srv/m"));
        assert_eq!(flags.min_allocatable_resources, "cpus:1");
    }
}
