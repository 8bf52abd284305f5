//! Recovery under load: the real tepui-agent with 100 checkpointed
//! executors is killed with SIGKILL and restarted, three times, while
//! busy loops take every core and a writer keeps the work dir's
//! filesystem busy with fsyncs. Every executor must re-subscribe every
//! time, and no task may see a terminal update: a live container is never
//! declared gone, whatever the load or the order executors come back in.

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use tepui_proto::v1::TaskState;

#[path = "support/agent.rs"]
mod agent_process;
#[path = "support/master.rs"]
mod master;
use agent_process::{Load, agent_command, scratch, sleep_task};
use master::{Master, free_port, master_with};

const EXECUTORS: usize = 100;
const RESTARTS: usize = 10;

fn running(master: &Master) -> usize {
    master
        .state
        .lock()
        .unwrap()
        .updates
        .iter()
        .filter(|u| u.status.state == TaskState::TaskRunning as i32)
        .count()
}

/// The terminal updates the master got: task, state, message.
fn terminal(master: &Master) -> Vec<(String, i32, String)> {
    master
        .state
        .lock()
        .unwrap()
        .updates
        .iter()
        .filter(|u| tepui_agent::status_update::is_terminal(u.status.state))
        .map(|u| {
            (
                u.status.task_id.value.clone(),
                u.status.state,
                u.status.message.clone().unwrap_or_default(),
            )
        })
        .collect()
}

/// The agent's /metrics/snapshot (null while it does not answer).
async fn metrics(port: u16) -> serde_json::Value {
    agent_process::get(port, "/metrics/snapshot")
        .await
        .and_then(|(_, body)| serde_json::from_slice(&body).ok())
        .unwrap_or(serde_json::Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_executor_reconnects_after_each_kill_9_under_cpu_and_disk_load() {
    let (dir, cgroup, _cleanup) = scratch("load");
    let tasks = (0..EXECUTORS)
        .map(|i| sleep_task(format!("l{i}")))
        .collect();
    let (master, address, server) = master_with(tasks).await;
    let port = free_port();
    let mut agent = agent_command(&address, dir.path(), &cgroup, port)
        .args(["--log-level", "warn"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    while running(&master) < EXECUTORS {
        assert!(Instant::now() < deadline, "the tasks did not all start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _load = Load::start(&dir.path().join("work"));
    for round in 1..=RESTARTS {
        agent.kill().await.unwrap();
        let _ = agent.wait().await;
        agent = agent_command(&address, dir.path(), &cgroup, port)
            .args(["--log-level", "warn"])
            .spawn()
            .unwrap();
        let started = Instant::now();
        let mut last = serde_json::Value::Null;
        loop {
            let m = metrics(port).await;
            let registered = master.state.lock().unwrap().registrations.len() > round;
            if registered
                && m["slave/executors_running"] == EXECUTORS as f64
                && m["slave/executors_registering"] == 0.0
            {
                break;
            }
            if !m.is_null() {
                last = m;
            }
            let ended = terminal(&master);
            assert!(
                ended.is_empty(),
                "round {round}: live tasks got terminal updates: {ended:?}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "round {round}: not every executor came back: running {}, registering {}",
                last["slave/executors_running"],
                last["slave/executors_registering"]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!(
            "round {round}: {EXECUTORS} executors back in {:.3} s",
            started.elapsed().as_secs_f64()
        );
    }
    assert_eq!(terminal(&master), Vec::new(), "no task ended");
    assert!(
        agent.try_wait().unwrap().is_none(),
        "the agent is still running"
    );
    agent.kill().await.unwrap();
    let _ = agent.wait().await;
    server.abort();
}
