//! Agent scale benchmark (`cargo bench -p tepui-agent --bench scale`, run
//! by `./x bench`): the release tepui-agent against the in-test master.
//! Prints, without asserting on time:
//!   - RSS idle, and with RESTART_N (100) checkpointed containers;
//!   - after a `kill -9`, the time from the new agent process's start to
//!     every executor re-subscribed and the agent re-registered;
//!   - SCALE_N (1000) `sleep` tasks, each with its executor in its own
//!     container: the time from sending them to all TASK_RUNNING, and from
//!     the framework's shutdown to every container gone.
//!
//! Targets (issue 5): restart < 1 s, RSS < 15 MB idle and < 40 MB with 100
//! containers, launch < 5 s and destroy < 3 s for 1000.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use tepui_proto::internal::{RunTask, ShutdownFramework, master_to_agent};
use tepui_proto::v1::{CommandInfo, FrameworkId, FrameworkInfo, TaskId, TaskInfo, TaskState};

#[path = "../tests/support/agent.rs"]
// The benchmark tears its cgroups down itself, with a longer timeout.
#[allow(dead_code)]
mod agent_process;
#[path = "../tests/support/master.rs"]
mod master;
use agent_process::agent_command;
use master::{Master, free_port, master_with};

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The agent's /metrics/snapshot (null while it does not answer).
async fn metrics(port: u16) -> serde_json::Value {
    agent_process::get(port, "/metrics/snapshot")
        .await
        .and_then(|(_, body)| serde_json::from_slice(&body).ok())
        .unwrap_or(serde_json::Value::Null)
}

fn framework(id: &str, checkpoint: bool) -> FrameworkInfo {
    FrameworkInfo {
        user: "root".into(),
        name: id.into(),
        id: Some(FrameworkId { value: id.into() }),
        checkpoint: Some(checkpoint),
        ..Default::default()
    }
}

fn sleep_task(id: String) -> TaskInfo {
    TaskInfo {
        name: id.clone(),
        task_id: TaskId { value: id },
        command: Some(CommandInfo {
            value: Some("exec sleep 3600".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn running(master: &Master, framework: &str) -> usize {
    master
        .state
        .lock()
        .unwrap()
        .updates
        .iter()
        .filter(|u| {
            u.framework_id.value == framework && u.status.state == TaskState::TaskRunning as i32
        })
        .count()
}

fn registrations(master: &Master) -> usize {
    master.state.lock().unwrap().registrations.len()
}

/// Polls `check` every 5 ms until it holds; panics after `limit`.
async fn until<F: Future<Output = bool>>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn start_agent(
    master: &str,
    dir: &std::path::Path,
    cgroup: &std::path::Path,
    port: u16,
) -> tokio::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("agent.log"))
        .unwrap();
    agent_command(master, dir, cgroup, port)
        .args(["--log-level", "warn"])
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Shuts the framework down; the time until every container is gone.
async fn shutdown(master: &Master, port: u16, framework: &str) -> Duration {
    let started = Instant::now();
    master
        .send(master_to_agent::Message::ShutdownFramework(
            ShutdownFramework {
                framework_id: FrameworkId {
                    value: framework.into(),
                },
            },
        ))
        .await;
    until("every container gone", Duration::from_secs(120), || async {
        metrics(port).await["slave/executors_running"] == 0.0
    })
    .await;
    started.elapsed()
}

/// Sends `n` sleep tasks; the time until all are RUNNING.
async fn launch(master: &Master, framework: &FrameworkInfo, prefix: &str, n: usize) -> Duration {
    let started = Instant::now();
    for i in 0..n {
        master
            .send(master_to_agent::Message::RunTask(RunTask {
                framework_info: framework.clone(),
                task: sleep_task(format!("{prefix}-{i}")),
            }))
            .await;
    }
    let id = framework.id.clone().unwrap().value;
    until("every task running", Duration::from_secs(300), || async {
        running(master, &id) >= n
    })
    .await;
    started.elapsed()
}

async fn bench() {
    let restart_n = env_count("RESTART_N", 100);
    let scale_n = env_count("SCALE_N", 1000);
    let dir = tempfile::tempdir().unwrap();
    let cgroup = tepui_isolators::cgroups::Hierarchy::default_root()
        .unwrap()
        .with_file_name(format!("tepui-bench-scale-{}", std::process::id()));
    let (master, address, server) = master_with(Vec::new()).await;
    let port = free_port();
    let mut agent = start_agent(&address, dir.path(), &cgroup, port);
    until("registration", Duration::from_secs(30), || async {
        registrations(&master) >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_mib(agent.id().unwrap_or(0));

    let checkpointing = framework("bench-restart", true);
    let launched = launch(&master, &checkpointing, "restart", restart_n).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded = rss_mib(agent.id().unwrap_or(0));

    agent.kill().await.unwrap();
    let _ = agent.wait().await;
    let started = Instant::now();
    agent = start_agent(&address, dir.path(), &cgroup, port);
    until("recovery", Duration::from_secs(60), || async {
        let m = metrics(port).await;
        registrations(&master) >= 2
            && m["slave/executors_running"] == restart_n as f64
            && m["slave/executors_registering"] == 0.0
    })
    .await;
    let recovered = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_mib(agent.id().unwrap_or(0));
    shutdown(&master, port, "bench-restart").await;

    let scale = framework("bench-scale", false);
    let launch_time = launch(&master, &scale, "scale", scale_n).await;
    let destroy_time = shutdown(&master, port, "bench-scale").await;

    println!("== agent scale (release tepui-agent, in-test master on 127.0.0.1)");
    println!("agent RSS idle: {idle:.1} MiB (target < 15)");
    println!(
        "agent RSS with {restart_n} checkpointed containers: {loaded:.1} MiB before the restart, {after:.1} MiB after (target < 40)"
    );
    println!(
        "launch of {restart_n} checkpointed tasks to RUNNING: {:.2} s",
        launched.as_secs_f64()
    );
    println!(
        "restart after kill -9 with {restart_n} live containers, process start to all re-subscribed and re-registered: {:.3} s (target < 1)",
        recovered.as_secs_f64()
    );
    println!(
        "{scale_n} containers (sleep task + its executor each): launch to all RUNNING {:.2} s (target < 5), destroy all {:.2} s (target < 3)",
        launch_time.as_secs_f64(),
        destroy_time.as_secs_f64()
    );
    agent.kill().await.unwrap();
    let _ = agent.wait().await;
    server.abort();
    if let Err(e) = tepui_isolators::cgroups::remove_subtree(&cgroup, Duration::from_secs(30)) {
        eprintln!("cleaning up {}: {e}", cgroup.display());
    }
}

fn main() {
    // `cargo bench` passes --bench; this is one fixed scenario.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(bench());
}
