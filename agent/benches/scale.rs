//! Agent scale benchmark (`cargo bench -p tepui-agent --bench scale`, run
//! by `./x bench`): the release tepui-agent against the in-test master.
//! Prints, without asserting on time:
//!   - RSS idle, and with RESTART_N (100) checkpointed containers;
//!   - after a `kill -9`, the time from the new agent process's start to
//!     every executor re-subscribed and the agent re-registered, on an
//!     idle machine and under load (a busy loop per core and a writer
//!     fsyncing in the work dir);
//!   - SCALE_N (1000) `sleep` tasks, each with its executor in its own
//!     container: the time from sending them to all TASK_RUNNING, and from
//!     the framework's shutdown to every container gone, idle and loaded.
//!
//! Targets (issue 18): restart < 1 s with every executor back, loaded or
//! not; RSS < 15 MB idle and < 40 MB with 100 containers; launch < 3 s
//! and destroy < 1.5 s for 1000 on an idle machine.
//!
//! A phase that does not finish in its time is reported with what it
//! reached (how many executors came back, how many tasks ran) and the
//! benchmark exits non-zero at the end; correctness is the tests' to
//! assert (agent/tests/recovery_load.rs). Its cgroups (prefix
//! `tepui-bench-scale`) are removed on every exit, and leftovers of
//! earlier runs killed before they could clean up are removed at start.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use tepui_proto::internal::{RunTask, ShutdownFramework, master_to_agent};
use tepui_proto::v1::{FrameworkId, FrameworkInfo, TaskState};

#[path = "../tests/support/agent.rs"]
mod agent_process;
#[path = "../tests/support/master.rs"]
mod master;
use agent_process::{Cleanup, Load, agent_command, owned_cgroup, sleep_task};
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

/// Polls `check` every 5 ms until it holds (true) or `limit` passes (false).
async fn until<F: Future<Output = bool>>(limit: Duration, mut check: impl FnMut() -> F) -> bool {
    let deadline = Instant::now() + limit;
    while !check().await {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
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

/// What the benchmark saw go wrong; printed at the end, and the exit code.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn check(&mut self, held: bool, what: impl FnOnce() -> String) -> bool {
        if !held {
            let what = what();
            eprintln!("FAILED: {what}");
            self.0.push(what);
        }
        held
    }
}

/// Shuts the framework down; the time until every container is gone.
async fn shutdown(
    master: &Master,
    port: u16,
    framework: &str,
    failures: &mut Failures,
) -> Duration {
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
    let gone = until(Duration::from_secs(120), || async {
        metrics(port).await["slave/executors_running"] == 0.0
    })
    .await;
    let left = metrics(port).await["slave/executors_running"].clone();
    failures.check(gone, || {
        format!("{framework}: {left} executors still running 120 s after the shutdown")
    });
    started.elapsed()
}

/// Sends `n` sleep tasks; the time until all are RUNNING.
async fn launch(
    master: &Master,
    framework: &FrameworkInfo,
    prefix: &str,
    n: usize,
    failures: &mut Failures,
) -> Duration {
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
    let all = until(Duration::from_secs(300), || async {
        running(master, &id) >= n
    })
    .await;
    let reached = running(master, &id);
    failures.check(all, || {
        format!("{prefix}: {reached} of {n} tasks RUNNING after 300 s")
    });
    started.elapsed()
}

/// Where the agent runs: its master, work dir, cgroup and port.
#[derive(Clone, Copy)]
struct Place<'a> {
    address: &'a str,
    dir: &'a std::path::Path,
    cgroup: &'a std::path::Path,
    port: u16,
}

/// Kills the agent with SIGKILL and starts it again; the time from the
/// new process's start to every executor back and the agent re-registered.
async fn restart(
    agent: &mut tokio::process::Child,
    master: &Master,
    place: &Place<'_>,
    n: usize,
    failures: &mut Failures,
) -> Duration {
    let Place {
        address,
        dir,
        cgroup,
        port,
    } = *place;
    agent.kill().await.unwrap();
    let _ = agent.wait().await;
    let registered = registrations(master);
    let started = Instant::now();
    *agent = start_agent(address, dir, cgroup, port);
    let back = until(Duration::from_secs(60), || async {
        let m = metrics(port).await;
        registrations(master) > registered
            && m["slave/executors_running"] == n as f64
            && m["slave/executors_registering"] == 0.0
    })
    .await;
    let elapsed = started.elapsed();
    let m = metrics(port).await;
    failures.check(back, || {
        format!(
            "restart: after 60 s, {} of {n} executors running, {} registering, re-registered: {}",
            m["slave/executors_running"],
            m["slave/executors_registering"],
            registrations(master) > registered
        )
    });
    elapsed
}

async fn bench() -> Failures {
    let restart_n = env_count("RESTART_N", 100);
    let scale_n = env_count("SCALE_N", 1000);
    let mut failures = Failures::default();
    let dir = tempfile::tempdir().unwrap();
    let cgroup = owned_cgroup("tepui-bench-scale");
    let _cleanup = Cleanup(cgroup.clone());
    let (master, address, server) = master_with(Vec::new()).await;
    let port = free_port();
    let mut agent = start_agent(&address, dir.path(), &cgroup, port);
    let registered = until(Duration::from_secs(30), || async {
        registrations(&master) >= 1
    })
    .await;
    if !failures.check(registered, || "the agent did not register".into()) {
        return failures;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_mib(agent.id().unwrap_or(0));

    let checkpointing = framework("bench-restart", true);
    let launched = launch(&master, &checkpointing, "restart", restart_n, &mut failures).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded = rss_mib(agent.id().unwrap_or(0));
    let place = Place {
        address: &address,
        dir: dir.path(),
        cgroup: &cgroup,
        port,
    };
    let recovered = restart(&mut agent, &master, &place, restart_n, &mut failures).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_mib(agent.id().unwrap_or(0));
    let recovered_loaded = {
        let _load = Load::start(dir.path());
        restart(&mut agent, &master, &place, restart_n, &mut failures).await
    };
    shutdown(&master, port, "bench-restart", &mut failures).await;

    let mut scale = Vec::new();
    for (name, loaded) in [("bench-scale", false), ("bench-scale-loaded", true)] {
        if scale_n == 0 {
            break;
        }
        let _load = loaded.then(|| Load::start(dir.path()));
        let framework = framework(name, false);
        let launch_time = launch(&master, &framework, name, scale_n, &mut failures).await;
        let destroy_time = shutdown(&master, port, name, &mut failures).await;
        scale.push((loaded, launch_time, destroy_time));
    }

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
        "restart after kill -9 with {restart_n} live containers, process start to all re-subscribed and re-registered: {:.3} s idle, {:.3} s loaded (target < 1)",
        recovered.as_secs_f64(),
        recovered_loaded.as_secs_f64()
    );
    for (loaded, launch_time, destroy_time) in scale {
        println!(
            "{scale_n} containers (sleep task + its executor each), {}: launch to all RUNNING {:.2} s (target < 3 idle), destroy all {:.2} s (target < 1.5 idle)",
            if loaded {
                "loaded (a busy loop per core + a writer)"
            } else {
                "idle"
            },
            launch_time.as_secs_f64(),
            destroy_time.as_secs_f64()
        );
    }
    agent.kill().await.unwrap();
    let _ = agent.wait().await;
    server.abort();
    failures
}

fn main() {
    // `cargo bench` passes --bench; this is one fixed scenario.
    let failures = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(bench());
    if !failures.0.is_empty() {
        eprintln!("agent scale: {} phase(s) failed:", failures.0.len());
        for failure in &failures.0 {
            eprintln!("  {failure}");
        }
        std::process::exit(1);
    }
}
