//! The agent daemon: its flags, and the run from detection and recovery
//! to serving, shared by `tepui-agent` and `tepui local`. This is a
//! program's top level, so its errors are anyhow's, with context.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::authentication::Authentication;
use crate::endpoints::Endpoints;
use crate::executor_token::TokenKey;
use crate::gc::GcConfig;
use crate::image_flags::StoreArgs;
use crate::linux_info::LinuxPolicy;
use crate::master_link::{self, LinkConfig};
use crate::paths::Layout;
use crate::resources;
use crate::rotating_log::Rotation;
use crate::runner::{Runner, RunnerConfig};
use crate::{attributes, http};
use anyhow::{Context, Result};
use clap::Parser;
use hyper::Request;
use tepui_containerizer::fetcher::{Fetcher, FetcherConfig};
use tepui_containerizer::provisioner::http::Http;
use tepui_containerizer::{Config, Containerizer};
use tepui_driver::executor::parse_duration;
use tepui_isolators::cgroups::Hierarchy;
use tepui_proto::authentication::{BasicAuthenticator, Credential};
use tepui_proto::v1::AgentInfo;

/// The tepui agent: runs a master's tasks in containers on this machine.
#[derive(Debug, Parser)]
#[command(name = "tepui-agent", version, about, long_about = None)]
pub struct Flags {
    /// The master, as HOST:PORT.
    #[arg(long, env = "TEPUI_MASTER")]
    pub master: String,
    /// Where sandboxes, checkpoints, images and caches live.
    #[arg(long, env = "TEPUI_WORK_DIR", default_value = "/var/lib/tepui/agent")]
    pub work_dir: PathBuf,
    /// The address to listen on.
    #[arg(long, env = "TEPUI_IP", default_value = "0.0.0.0")]
    pub ip: IpAddr,
    /// The port to listen on (0: any free port).
    #[arg(long, env = "TEPUI_PORT", default_value_t = 5051)]
    pub port: u16,
    /// The hostname to report [default: this machine's].
    #[arg(long, env = "TEPUI_HOSTNAME")]
    pub hostname: Option<String>,
    /// Resources to offer, e.g. `cpus:4;mem:2048;disk:10000;ports:[31000-32000]`;
    /// those not named are detected.
    #[arg(long, env = "TEPUI_RESOURCES")]
    pub resources: Option<String>,
    /// Attributes, e.g. `rack:a;zone:eu-1;generation:3`.
    #[arg(long, env = "TEPUI_ATTRIBUTES")]
    pub attributes: Option<String>,
    /// cgroup v2 subtree for containers [default: tepui under the cgroup2 mount].
    #[arg(long, env = "TEPUI_CGROUP_ROOT")]
    pub cgroup_root: Option<PathBuf>,
    /// Devices every container may use besides the default ones (null,
    /// zero, full, random, urandom, tty, console, ptmx, pts): Mesos's JSON,
    /// `{"allowed_devices": [{"device": {"path": "/dev/fuse"}, "access":
    /// {"read": true, "write": true, "mknod": false}}]}`, or `file:///path`
    /// to it. Every other device is denied by a cgroup BPF device filter.
    #[arg(long, env = "TEPUI_ALLOWED_DEVICES", alias = "allowed_devices")]
    pub allowed_devices: Option<String>,
    /// Where container state is kept (tmpfs: it does not outlive a reboot).
    #[arg(
        long,
        env = "TEPUI_CONTAINER_STATE_DIR",
        default_value = "/run/tepui/containers"
    )]
    pub container_state_dir: PathBuf,
    /// How long executors of checkpointing frameworks wait for a restarted agent.
    #[arg(long, env = "TEPUI_RECOVERY_TIMEOUT", default_value = "15mins", value_parser = duration)]
    pub recovery_timeout: Duration,
    /// How long a launched executor has to subscribe before it is
    /// destroyed and its tasks fail (REASON_EXECUTOR_REGISTRATION_TIMEOUT).
    #[arg(long, env = "TEPUI_EXECUTOR_REGISTRATION_TIMEOUT", default_value = "1mins", value_parser = duration, alias = "executor_registration_timeout")]
    pub executor_registration_timeout: Duration,
    /// The most processes a container may hold (its cgroup's pids.max), so
    /// that a fork bomb stays inside it; 0 sets no limit.
    #[arg(
        long,
        env = "TEPUI_CONTAINER_PIDS_MAX",
        default_value_t = 4096,
        alias = "container_pids_max"
    )]
    pub container_pids_max: u64,
    /// Whether every container's cpus are also a hard cap (cpu.max, quota
    /// = cpus × 100 ms per 100 ms period), not only a weight; a task's
    /// `limits` cpus caps its container whatever this says. Mesos's flag,
    /// off by default as in Mesos; needs the cpu controller.
    #[arg(long, env = "TEPUI_CGROUPS_ENABLE_CFS", alias = "cgroups_enable_cfs", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub cgroups_enable_cfs: bool,
    /// How long a recovered executor has to subscribe again once the
    /// agent has recovered before it is destroyed and its tasks are LOST
    /// (REASON_EXECUTOR_REREGISTRATION_TIMEOUT); at most 15secs. Executors
    /// are told to wait at most this long between attempts.
    #[arg(long, env = "TEPUI_EXECUTOR_REREGISTRATION_TIMEOUT", default_value = "2secs", value_parser = reregistration_timeout, alias = "executor_reregistration_timeout")]
    pub executor_reregistration_timeout: Duration,
    /// Accepted for Mesos's flag files: in Mesos it applies only to
    /// PID-based (libprocess) executors; tepui runs HTTP executors, which
    /// reconnect by themselves, so there is no reconnect message to retry.
    #[arg(long, env = "TEPUI_EXECUTOR_REREGISTRATION_RETRY_INTERVAL", value_parser = duration, alias = "executor_reregistration_retry_interval")]
    pub executor_reregistration_retry_interval: Option<Duration>,
    /// How long an executor has to end when shut down.
    #[arg(long, env = "TEPUI_EXECUTOR_SHUTDOWN_GRACE_PERIOD", default_value = "5secs", value_parser = duration)]
    pub executor_shutdown_grace_period: Duration,
    /// Size bound of the fetcher's cache.
    #[arg(long, env = "TEPUI_FETCHER_CACHE_SIZE", default_value = "2G")]
    pub fetcher_cache_size: String,
    /// The longest wait between attempts to register with the master.
    #[arg(long, env = "TEPUI_REGISTRATION_BACKOFF_MAX", default_value = "30secs", value_parser = duration)]
    pub registration_backoff_max: Duration,
    /// The built-in command executor [default: tepui-executor beside this binary].
    #[arg(long, env = "TEPUI_COMMAND_EXECUTOR")]
    pub command_executor: Option<PathBuf>,
    /// How long a finished executor run's sandbox is kept on an empty disk.
    #[arg(long, env = "TEPUI_GC_DELAY", default_value = "1weeks", value_parser = duration)]
    pub gc_delay: Duration,
    /// The fraction of the work dir's disk to keep free; runs are removed
    /// sooner as usage approaches it.
    #[arg(long, env = "TEPUI_GC_DISK_HEADROOM", default_value_t = 0.1)]
    pub gc_disk_headroom: f64,
    /// How often disk usage is checked and old runs are removed.
    #[arg(long, env = "TEPUI_DISK_WATCH_INTERVAL", default_value = "1mins", value_parser = duration)]
    pub disk_watch_interval: Duration,
    /// Whether an unreadable checkpoint stops the agent (true) or only
    /// the executor run it describes, which is then destroyed (false).
    #[arg(long, env = "TEPUI_STRICT", default_value_t = true, action = clap::ArgAction::Set)]
    pub strict: bool,
    /// What to do with the executors a restarted agent finds: reconnect to
    /// them, or cleanup (kill them all, forget this agent's id, and exit;
    /// for an incompatible upgrade).
    #[arg(long, env = "TEPUI_RECOVER", default_value = "reconnect")]
    pub recover: Recover,
    /// Size at which a task's stdout or stderr in its sandbox is rotated
    /// (built-in executor).
    #[arg(long, env = "TEPUI_CONTAINER_LOG_MAX_SIZE", default_value = "10M")]
    pub container_log_max_size: String,
    /// Rotated stdout/stderr files kept per task beside the live one.
    #[arg(long, env = "TEPUI_CONTAINER_LOG_MAX_FILES", default_value_t = 5)]
    pub container_log_max_files: u32,
    /// How often subscribed executors are sent HEARTBEAT.
    #[arg(long, env = "TEPUI_EXECUTOR_HEARTBEAT_INTERVAL", default_value = "30secs", value_parser = duration)]
    pub executor_heartbeat_interval: Duration,
    /// Whether the executor and its tasks run as the task's user
    /// (CommandInfo.user, else FrameworkInfo.user) from this host's user
    /// database (true, Mesos's default), or as the agent's own user
    /// (false). Also from MESOS_SWITCH_USER.
    #[arg(long, alias = "switch_user", env = "TEPUI_SWITCH_USER", action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub switch_user: Option<bool>,
    /// Directory of seccomp profiles in Docker's JSON format, which tasks
    /// name in `ContainerInfo.linux_info.seccomp.profile_name` (a path
    /// relative to it).
    #[arg(long, env = "TEPUI_SECCOMP_CONFIG_DIR", alias = "seccomp_config_dir")]
    pub seccomp_config_dir: Option<PathBuf>,
    /// The seccomp profile (a file in --seccomp-config-dir) of every
    /// container whose task names none [default: the built-in profile,
    /// equivalent to Docker's default].
    #[arg(
        long,
        env = "TEPUI_SECCOMP_PROFILE_NAME",
        alias = "seccomp_profile_name"
    )]
    pub seccomp_profile_name: Option<String>,
    /// Whether a task may run without seccomp
    /// (`linux_info.seccomp.unconfined`); without this such a task is
    /// refused (TASK_ERROR). Not a Mesos flag.
    #[arg(long, env = "TEPUI_SECCOMP_ALLOW_UNCONFINED", alias = "seccomp_allow_unconfined", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub seccomp_allow_unconfined: bool,
    /// The effective capabilities of a container whose task asks for none,
    /// as JSON CapabilityInfo (`{"capabilities":["CHOWN","KILL"]}`) or
    /// `file:///path` to it [default: Podman's set].
    #[arg(
        long,
        env = "TEPUI_EFFECTIVE_CAPABILITIES",
        alias = "effective_capabilities"
    )]
    pub effective_capabilities: Option<String>,
    /// The most any container may have (its bounding set, and the limit of
    /// what a task's linux_info may ask for), as JSON CapabilityInfo or
    /// `file:///path` to it [default: --effective-capabilities, else
    /// Podman's set].
    #[arg(
        long,
        env = "TEPUI_BOUNDING_CAPABILITIES",
        alias = "bounding_capabilities"
    )]
    pub bounding_capabilities: Option<String>,
    /// The image store's flags.
    #[command(flatten)]
    pub images: StoreArgs,
    /// Log level (error, warn, info, debug, trace).
    #[arg(long, env = "TEPUI_LOG", default_value = "info")]
    pub log_level: tracing::Level,
    /// This agent's own credential, Mesos's JSON
    /// `{"principal":"..","secret":".."}`, as a path or `file://` URL:
    /// presented (HTTP Basic) on every message to the master, which needs
    /// it when run with --authenticate-agents.
    #[arg(long, env = "TEPUI_CREDENTIAL", value_name = "PATH")]
    pub credential: Option<String>,
    /// The credentials this agent's HTTP endpoints admit, Mesos's JSON
    /// `{"credentials":[{"principal":"..","secret":".."}]}`, as a path or
    /// `file://` URL.
    #[arg(
        long,
        env = "TEPUI_HTTP_CREDENTIALS",
        value_name = "PATH",
        alias = "http_credentials"
    )]
    pub http_credentials: Option<String>,
    /// Only authenticated requests to read-only endpoints (/state,
    /// /files/*, /containers, /monitor/statistics, /metrics/snapshot)
    /// are served; others get 401.
    #[arg(long, env = "TEPUI_AUTHENTICATE_HTTP_READONLY", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, alias = "authenticate_http_readonly")]
    pub authenticate_http_readonly: bool,
    /// Only authenticated requests to read-write endpoints (the operator
    /// API /api/v1) are served; others get 401.
    #[arg(long, env = "TEPUI_AUTHENTICATE_HTTP_READWRITE", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, aliases = ["authenticate_http_readwrite", "authenticate_http", "authenticate-http"])]
    pub authenticate_http_readwrite: bool,
    /// Mesos's local authorizer ACLs, JSON (inline, or a path or
    /// `file://` URL): on the agent, who may read which sandboxes through
    /// /files (access_sandboxes, by the executor's or framework's user),
    /// see which frameworks, executors and tasks in /state (view_*) and
    /// its flags (view_flags), and GET /containers, /monitor/statistics
    /// and /metrics/snapshot (get_endpoints). A denied request is 403.
    #[arg(long, env = "TEPUI_ACLS", value_name = "JSON|PATH")]
    pub acls: Option<String>,
    /// Only executors presenting their own token (a JWT the agent signs
    /// with --jwt-secret-key and gives each executor in
    /// MESOS_EXECUTOR_AUTHENTICATION_TOKEN) may use the executor API, and
    /// only as themselves.
    #[arg(long, env = "TEPUI_AUTHENTICATE_HTTP_EXECUTORS", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, alias = "authenticate_http_executors")]
    pub authenticate_http_executors: bool,
    /// The file whose bytes are the HS256 key of executors' tokens
    /// (Mesos's --jwt_secret_key, formerly --executor_secret_key); given,
    /// every executor gets a token.
    #[arg(long, env = "TEPUI_JWT_SECRET_KEY", value_name = "PATH", aliases = ["jwt_secret_key", "executor_secret_key", "executor-secret-key"])]
    pub jwt_secret_key: Option<PathBuf>,
    /// The HTTP authenticator of the read-only and read-write endpoints:
    /// only Mesos's default, `basic`.
    #[arg(
        long,
        env = "TEPUI_HTTP_AUTHENTICATORS",
        default_value = "basic",
        alias = "http_authenticators"
    )]
    pub http_authenticators: String,
    /// TLS on every connection, the executor API's and the link to the
    /// master included (libprocess's LIBPROCESS_SSL_ENABLED): a
    /// plain-HTTP request to the port is refused, and the master is
    /// reached over https, verified against --ssl-ca-file. Needs
    /// --ssl-cert-file and --ssl-key-file. Executors are given the same
    /// LIBPROCESS_SSL_* settings.
    #[arg(long, env = "TEPUI_SSL_ENABLED", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), alias = "ssl_enabled")]
    pub ssl_enabled: bool,
    /// This agent's certificate chain, PEM (also presented to the master).
    #[arg(
        long,
        env = "TEPUI_SSL_CERT_FILE",
        value_name = "PATH",
        alias = "ssl_cert_file"
    )]
    pub ssl_cert_file: Option<PathBuf>,
    /// This agent's private key, PEM.
    #[arg(
        long,
        env = "TEPUI_SSL_KEY_FILE",
        value_name = "PATH",
        alias = "ssl_key_file"
    )]
    pub ssl_key_file: Option<PathBuf>,
    /// The CA certificates the master's and clients' certificates are
    /// verified against, PEM [default for the master's: the system's roots].
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
    /// Refuse a client (an executor too) without a certificate the CA
    /// signed. Needs --ssl-ca-file.
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

/// The endpoints' authentication, the agent's credential and the key of
/// executors' tokens, as the flags ask.
fn authentication(
    flags: &Flags,
) -> Result<(Authentication, Option<Credential>, Option<Arc<TokenKey>>)> {
    use tepui_proto::authentication::{flag_path, read_credential, read_credentials};
    for name in flags.http_authenticators.split(',').map(str::trim) {
        if name != "basic" {
            anyhow::bail!(
                "--http-authenticators: HTTP authenticator {name:?} is not supported by tepui (only \"basic\"; tepui loads no modules)"
            );
        }
    }
    let credentials = match &flags.http_credentials {
        Some(flag) => read_credentials(&flag_path(flag)).context("--http-credentials")?,
        None => Vec::new(),
    };
    if (flags.authenticate_http_readonly || flags.authenticate_http_readwrite)
        && credentials.is_empty()
    {
        anyhow::bail!(
            "HTTP authentication is enabled (--authenticate-http-*) but --http-credentials names no credentials"
        );
    }
    let credential = match &flags.credential {
        Some(flag) => Some(read_credential(&flag_path(flag)).context("--credential")?),
        None => None,
    };
    let tokens = match &flags.jwt_secret_key {
        Some(path) => Some(Arc::new(
            TokenKey::read(&flag_path(&path.to_string_lossy())).context("--jwt-secret-key")?,
        )),
        None if flags.authenticate_http_executors => anyhow::bail!(
            "--authenticate-http-executors needs --jwt-secret-key (the key executors' tokens are signed with)"
        ),
        None => None,
    };
    let mut authentication = Authentication::new(
        BasicAuthenticator::new(credentials),
        flags.authenticate_http_readonly,
        flags.authenticate_http_readwrite,
    );
    if flags.authenticate_http_executors
        && let Some(key) = &tokens
    {
        authentication = authentication.with_executors(key.clone());
    }
    Ok((authentication, credential, tokens))
}

/// `--recover`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Recover {
    /// Reconnect to the executors still running.
    Reconnect,
    /// Kill them and start afresh.
    Cleanup,
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text)
        .ok_or_else(|| format!("{text:?} is not a duration like 15mins, 5secs or 200ms"))
}

/// `--switch_user`: the flag, else TEPUI_SWITCH_USER (which clap reads),
/// else Mesos's MESOS_SWITCH_USER, else true.
fn switch_user(flag: Option<bool>) -> Result<bool> {
    if let Some(value) = flag {
        return Ok(value);
    }
    match std::env::var("MESOS_SWITCH_USER") {
        Ok(v) => match v.as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => anyhow::bail!("MESOS_SWITCH_USER={v:?} is not true or false"),
        },
        Err(_) => Ok(true),
    }
}

/// Mesos's bound on the re-registration timeout: past it, the master
/// would already see the agent's tasks as unreachable.
const MAX_REREGISTRATION_TIMEOUT: Duration = Duration::from_secs(15);

fn reregistration_timeout(text: &str) -> Result<Duration, String> {
    let timeout = duration(text)?;
    if timeout > MAX_REREGISTRATION_TIMEOUT {
        return Err(format!("{text:?} is more than 15secs"));
    }
    Ok(timeout)
}

/// The task limits this machine's cgroup controllers cannot enforce.
fn unenforced(controllers: tepui_isolators::cgroups::Controllers) -> String {
    use tepui_isolators::cgroups::Controller;
    let missing: Vec<&str> = [(Controller::Cpu, "cpus"), (Controller::Memory, "mem")]
        .into_iter()
        .filter(|(c, _)| !controllers.has(*c))
        .map(|(_, name)| name)
        .collect();
    if missing.is_empty() {
        "none".to_owned()
    } else {
        missing.join(",")
    }
}

fn hostname() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname writes at most the length given into our buffer.
    let ok = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) } == 0;
    let end = buffer.iter().position(|b| *b == 0).unwrap_or(buffer.len());
    if ok && end > 0 {
        String::from_utf8_lossy(&buffer[..end]).into_owned()
    } else {
        "localhost".to_owned()
    }
}

/// Runs the agent until SIGTERM or SIGINT (its containers keep running),
/// or until `--recover=cleanup` is done.
pub async fn run(mut flags: Flags) -> Result<()> {
    let (authentication, credential, executor_tokens) = authentication(&flags)?;
    let tls = flags.tls()?;
    let tls_server = tls.server().context("TLS (--ssl-*)")?;
    let tls_client = tls.client().context("TLS (--ssl-*) towards the master")?;
    let command_executor = command_executor(flags.command_executor.take())?;
    std::fs::create_dir_all(&flags.work_dir)
        .with_context(|| format!("creating {}", flags.work_dir.display()))?;
    let layout = Layout::new(&flags.work_dir);
    let detected = resources::detect(&flags.work_dir);
    let total = resources::total(flags.resources.as_deref(), detected)?;
    let attributes = attributes::parse(flags.attributes.as_deref().unwrap_or(""))?;
    let cgroup_root = match flags.cgroup_root {
        Some(root) => root,
        None => Hierarchy::default_root()?,
    };
    let linux = Arc::new(
        LinuxPolicy::from_flags(
            flags.seccomp_config_dir.clone(),
            flags.seccomp_profile_name.as_deref(),
            flags.seccomp_allow_unconfined,
            flags.effective_capabilities.as_deref(),
            flags.bounding_capabilities.as_deref(),
        )
        .map_err(anyhow::Error::msg)?,
    );
    let provisioner = Arc::new(flags.images.provisioner()?);
    let mut containerizer = Containerizer::new(Config {
        cgroup_root,
        state_dir: flags.container_state_dir,
        provisioner: Some(provisioner.clone()),
    })?;
    if let Some(devices) = &flags.allowed_devices {
        let rules = crate::allowed_devices::parse(devices).context("--allowed-devices")?;
        containerizer
            .allow_devices(&rules)
            .context("--allowed-devices")?;
    }
    let containerizer = Arc::new(containerizer);
    if flags.executor_heartbeat_interval.is_zero() {
        anyhow::bail!("--executor-heartbeat-interval must be more than 0");
    }
    let log_rotation = Rotation {
        max_bytes: tepui_isolators::cgroups::memory::parse_size(&flags.container_log_max_size)
            .context("--container-log-max-size")?,
        keep: flags.container_log_max_files,
    };
    let fetcher = Arc::new(Fetcher::new(
        FetcherConfig {
            cache_dir: flags.work_dir.join("fetch-cache"),
            cache_max_bytes: tepui_isolators::cgroups::memory::parse_size(
                &flags.fetcher_cache_size,
            )
            .context("--fetcher-cache-size")?,
            max_bytes: 64 << 30,
        },
        Http::new(None)?,
    ));
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(flags.ip, flags.port))
        .await
        .with_context(|| format!("listening on {}:{}", flags.ip, flags.port))?;
    let bound = listener.local_addr()?;
    let advertised = if bound.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        bound.ip()
    };
    let endpoint = SocketAddr::new(advertised, bound.port()).to_string();
    let hostname = flags.hostname.unwrap_or_else(hostname);
    let (to_master, outgoing) = tokio::sync::mpsc::unbounded_channel();
    if flags.cgroups_enable_cfs
        && !containerizer
            .controllers()
            .has(tepui_isolators::cgroups::Controller::Cpu)
    {
        anyhow::bail!(
            "--cgroups_enable_cfs needs the cpu controller, which this machine's cgroup ({}) lacks",
            containerizer.controllers()
        );
    }
    let runner = Runner::new(
        RunnerConfig {
            agent_id: String::new(),
            hostname: hostname.clone(),
            endpoint: endpoint.clone(),
            layout: layout.clone(),
            command_executor,
            recovery_timeout: flags.recovery_timeout,
            shutdown_grace_period: flags.executor_shutdown_grace_period,
            provisioner: Some(provisioner),
            log_rotation,
            heartbeat_interval: flags.executor_heartbeat_interval,
            registration_timeout: flags.executor_registration_timeout,
            reregistration_timeout: flags.executor_reregistration_timeout,
            pids_max: flags.container_pids_max,
            enable_cfs: flags.cgroups_enable_cfs,
            switch_user: switch_user(flags.switch_user)?,
            executor_tokens,
            linux: linux.clone(),
            tls_env: tls.env(),
        },
        containerizer.clone(),
        fetcher,
        to_master,
    );
    tracing::info!(
        %endpoint,
        master = %flags.master,
        tls = tls.enabled,
        work_dir = %flags.work_dir.display(),
        cpus = tepui_proto::resources::scalar(&total, "cpus"),
        mem_mib = tepui_proto::resources::scalar(&total, "mem"),
        disk_mib = tepui_proto::resources::scalar(&total, "disk"),
        controllers = %containerizer.controllers(),
        limits_not_enforced = %unenforced(containerizer.controllers()),
        namespaces = "mount,pid,uts,ipc,cgroup,net",
        seccomp = linux.default_seccomp.name(),
        capabilities = %tepui_isolators::capabilities::names(linux.capabilities.limit()).join(","),
        "agent starting"
    );
    let agent_info = AgentInfo {
        hostname,
        port: Some(i32::from(bound.port())),
        resources: total,
        attributes,
        ..Default::default()
    };
    let endpoints = Arc::new(Endpoints {
        runner: runner.clone(),
        info: agent_info.clone(),
        endpoint: endpoint.clone(),
        master: flags.master.clone(),
        work_dir: flags.work_dir.clone(),
        started: std::time::SystemTime::now(),
        authentication,
        acls: match &flags.acls {
            Some(flag) => tepui_proto::acls::Acls::from_flag(flag)?,
            None => tepui_proto::acls::Acls::default(),
        },
    });
    if let Some(interval) = flags.executor_reregistration_retry_interval {
        tracing::info!(
            ?interval,
            "--executor_reregistration_retry_interval applies to PID-based executors only; tepui's are HTTP executors"
        );
    }
    // Executors that come back before their runs are read again are told
    // to retry (503), never refused as unknown.
    let checkpointed = master_link::checkpointed_agent_id(&layout)?;
    if checkpointed.is_some() {
        runner.begin_recovery();
    }
    let handler =
        Arc::new(move |request: Request<hyper::body::Incoming>| endpoints.clone().handle(request));
    let server = tokio::spawn(http::serve_tls(listener, handler, tls_server));
    if !(0.0..=1.0).contains(&flags.gc_disk_headroom) {
        anyhow::bail!("--gc-disk-headroom must be between 0 and 1");
    }
    let retries = {
        let runner = runner.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                runner.retry_due();
            }
        })
    };
    let collector = {
        let runner = runner.clone();
        let config = GcConfig {
            delay: flags.gc_delay,
            disk_headroom: flags.gc_disk_headroom,
        };
        let interval = flags.disk_watch_interval.max(Duration::from_secs(1));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                runner.collect_garbage(&config);
            }
        })
    };
    match checkpointed {
        Some(id) => {
            let (alive, lost) = runner.recover(&id, flags.strict).await?;
            tracing::info!(agent_id = %id, executors = alive, lost, "recovered from the checkpoint");
            if flags.recover == Recover::Cleanup {
                let killed = runner.destroy_all().await;
                std::fs::remove_file(layout.latest_agent())
                    .with_context(|| format!("removing {}", layout.latest_agent().display()))?;
                tracing::info!(agent_id = %id, executors = killed, "cleanup done: executors killed and the agent id forgotten; exiting");
                return Ok(());
            }
        }
        None if flags.recover == Recover::Cleanup => {
            tracing::info!("cleanup: no checkpointed agent, nothing to kill; exiting");
            return Ok(());
        }
        None => tracing::info!("no checkpointed agent; registering as a new agent"),
    }
    let link = master_link::run(
        LinkConfig {
            master: flags.master.clone(),
            agent_info,
            endpoint: endpoint.clone(),
            layout,
            backoff_max: flags.registration_backoff_max,
            credential,
            tls: tls_client,
        },
        runner.clone(),
        outgoing,
    );
    let serving = format!(
        "serving on {endpoint}, {} executors; master {}",
        runner.live_runs(),
        flags.master
    );
    if let Err(e) = tepui_systemd::ready(&serving) {
        tracing::warn!(error = %e, "telling systemd the agent is ready");
    }
    tokio::select! {
        () = link => {}
        signal = tepui_systemd::stop_requested() => {
            let signal = signal.context("watching SIGTERM and SIGINT")?;
            let executors = runner.live_runs();
            tracing::info!(signal, executors, "tepui-agent stopping; its containers keep running");
            let _ = tepui_systemd::stopping(&format!("stopping on {signal}; {executors} executors keep running"));
        }
    }
    server.abort();
    retries.abort();
    collector.abort();
    Ok(())
}

/// The built-in executor as an absolute path to an executable file: a
/// container's first process is exec'd from the container's own working
/// directory, so a relative or wrong path would fail every launch later.
fn command_executor(given: Option<PathBuf>) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = match given {
        Some(path) => std::path::absolute(&path)
            .with_context(|| format!("--command-executor {}", path.display()))?,
        None => std::env::current_exe()?
            .parent()
            .map(|d| d.join("tepui-executor"))
            .context("finding tepui-executor beside tepui-agent")?,
    };
    let metadata =
        std::fs::metadata(&path).with_context(|| format!("command executor {}", path.display()))?;
    if !metadata.is_file() || metadata.permissions().mode() & 0o111 == 0 {
        anyhow::bail!(
            "command executor {}: not an executable file",
            path.display()
        );
    }
    Ok(path)
}

/// Raises the open-file limit to its hard limit: each executor holds a
/// connection and each container a pidfd, so the default 1024 caps an
/// agent at a few hundred executors.
pub fn raise_nofile() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a live, initialized struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
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
                "tepui-agent",
                "--master=m:5050",
                "--work_dir=/srv/w",
                "--container_state_dir",
                "/run/c",
                "--gc_delay=2weeks",
            ])
            .unwrap();
        let flags = Flags::from_arg_matches(&matches).unwrap();
        assert_eq!(flags.work_dir, std::path::Path::new("/srv/w"));
        assert_eq!(flags.container_state_dir, std::path::Path::new("/run/c"));
    }

    #[test]
    fn switch_user_takes_both_spellings_and_defaults_to_true() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["tepui-agent", "--master", "m:5050"];
            argv.extend_from_slice(extra);
            Flags::try_parse_from(argv).unwrap().switch_user
        };
        assert_eq!(parse(&["--switch_user", "false"]), Some(false));
        assert_eq!(parse(&["--switch-user=true"]), Some(true));
        assert_eq!(parse(&["--switch_user"]), Some(true));
        if std::env::var_os("TEPUI_SWITCH_USER").is_none()
            && std::env::var_os("MESOS_SWITCH_USER").is_none()
        {
            assert_eq!(parse(&[]), None);
            assert!(switch_user(None).unwrap(), "Mesos's default");
        }
        assert!(!switch_user(Some(false)).unwrap());
    }
}
