//! The environment an executor is started with, as the Mesos agent sets
//! it, so that third-party executors (and their drivers) find their agent,
//! ids and sandbox.

use std::path::Path;
use std::time::Duration;

/// What the variables are made from.
#[derive(Debug, Clone)]
pub struct ExecutorEnvInput<'a> {
    /// The agent's id.
    pub agent_id: &'a str,
    /// host:port of the agent's HTTP API.
    pub agent_endpoint: &'a str,
    /// The framework's id.
    pub framework_id: &'a str,
    /// The executor's id.
    pub executor_id: &'a str,
    /// The sandbox on the host.
    pub directory: &'a Path,
    /// The sandbox as the executor sees it.
    pub sandbox: &'a Path,
    /// Whether the framework checkpoints (the executor then waits for a
    /// restarted agent).
    pub checkpoint: bool,
    /// How long it waits (--recovery_timeout).
    pub recovery_timeout: Duration,
    /// The longest wait between subscription attempts.
    pub subscription_backoff_max: Duration,
    /// The time it has to end on SHUTDOWN.
    pub shutdown_grace_period: Duration,
    /// Its token for the executor API (`--jwt_secret_key` given), in
    /// MESOS_EXECUTOR_AUTHENTICATION_TOKEN.
    pub authentication_token: Option<&'a str>,
}

/// A duration as Mesos writes one (`15mins`, `2secs`, `500ms`).
pub fn mesos_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}mins", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}secs", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// The variables, in a stable order.
pub fn executor_env(input: &ExecutorEnvInput<'_>) -> Vec<(String, String)> {
    let pairs = [
        ("MESOS_FRAMEWORK_ID", input.framework_id.to_owned()),
        ("MESOS_EXECUTOR_ID", input.executor_id.to_owned()),
        ("MESOS_DIRECTORY", input.directory.display().to_string()),
        ("MESOS_SANDBOX", input.sandbox.display().to_string()),
        ("MESOS_AGENT_ENDPOINT", input.agent_endpoint.to_owned()),
        (
            "MESOS_CHECKPOINT",
            if input.checkpoint { "1" } else { "0" }.to_owned(),
        ),
        (
            "MESOS_RECOVERY_TIMEOUT",
            mesos_duration(input.recovery_timeout),
        ),
        (
            "MESOS_SUBSCRIPTION_BACKOFF_MAX",
            mesos_duration(input.subscription_backoff_max),
        ),
        (
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD",
            mesos_duration(input.shutdown_grace_period),
        ),
        ("MESOS_HTTP_COMMAND_EXECUTOR", "1".to_owned()),
        // The names of the pre-1.0 agent, which older executors still read.
        ("MESOS_SLAVE_ID", input.agent_id.to_owned()),
        (
            "MESOS_SLAVE_PID",
            format!("slave(1)@{}", input.agent_endpoint),
        ),
    ];
    let token = input
        .authentication_token
        .map(|t| (crate::executor_token::TOKEN_VARIABLE, t.to_owned()));
    pairs
        .into_iter()
        .chain(token)
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_what_the_mesos_agent_sets() {
        let env = executor_env(&ExecutorEnvInput {
            agent_id: "a1",
            agent_endpoint: "127.0.0.1:5051",
            framework_id: "f1",
            executor_id: "e1",
            directory: Path::new("/w/slaves/a1/frameworks/f1/executors/e1/runs/c1"),
            sandbox: Path::new("/mnt/mesos/sandbox"),
            checkpoint: true,
            recovery_timeout: Duration::from_secs(900),
            subscription_backoff_max: Duration::from_secs(2),
            shutdown_grace_period: Duration::from_millis(5500),
            authentication_token: Some("t.o.k"),
        });
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("MESOS_RECOVERY_TIMEOUT"), Some("15mins"));
        assert_eq!(get("MESOS_SUBSCRIPTION_BACKOFF_MAX"), Some("2secs"));
        assert_eq!(get("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"), Some("5500ms"));
        assert_eq!(get("MESOS_CHECKPOINT"), Some("1"));
        assert_eq!(get("MESOS_SLAVE_PID"), Some("slave(1)@127.0.0.1:5051"));
        assert_eq!(get("MESOS_SANDBOX"), Some("/mnt/mesos/sandbox"));
        assert_eq!(get("MESOS_EXECUTOR_AUTHENTICATION_TOKEN"), Some("t.o.k"));
    }
}
