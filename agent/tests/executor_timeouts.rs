//! Executors that do not subscribe in time, through the real tepui-agent
//! and the in-test master: a launched executor that never subscribes is
//! destroyed after `--executor_registration_timeout` and its task fails
//! with REASON_EXECUTOR_REGISTRATION_TIMEOUT; a recovered executor that
//! does not subscribe again (frozen while the agent restarts) is destroyed
//! after `--executor_reregistration_timeout` and its task is LOST with
//! REASON_EXECUTOR_REREGISTRATION_TIMEOUT. Each leaves no cgroup behind.

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use tepui_proto::internal::StatusUpdate;
use tepui_proto::v1::task_status::Reason;
use tepui_proto::v1::{CommandInfo, ExecutorId, ExecutorInfo, TaskId, TaskInfo, TaskState};

#[path = "support/agent.rs"]
mod agent_process;
#[path = "support/master.rs"]
mod master;
use agent_process::{agent_command, containers, scratch, until};
use master::{Master, free_port, master_with};

fn updates(master: &Master) -> Vec<StatusUpdate> {
    master.state.lock().unwrap().updates.clone()
}

fn terminal(master: &Master) -> Option<StatusUpdate> {
    updates(master)
        .into_iter()
        .find(|u| tepui_agent::status_update::is_terminal(u.status.state))
}

#[tokio::test]
async fn an_executor_that_never_subscribes_is_destroyed_after_the_registration_timeout() {
    let (dir, cgroup, _cleanup) = scratch("regtimeout");
    // A custom executor that runs but never speaks the executor API.
    let task = TaskInfo {
        name: "silent".into(),
        task_id: TaskId {
            value: "silent-1".into(),
        },
        executor: Some(ExecutorInfo {
            executor_id: ExecutorId {
                value: "silent-executor".into(),
            },
            command: Some(CommandInfo {
                value: Some("exec sleep 600".into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (master, address, server) = master_with(vec![task]).await;
    let mut agent = agent_command(&address, dir.path(), &cgroup, 0)
        .args(["--executor_registration_timeout", "1secs"])
        .spawn()
        .unwrap();
    until("its container", Duration::from_secs(30), || {
        !containers(&cgroup).is_empty()
    })
    .await;
    let launched = Instant::now();
    until("a terminal update", Duration::from_secs(30), || {
        terminal(&master).is_some()
    })
    .await;
    assert!(
        launched.elapsed() >= Duration::from_millis(900),
        "not before its timeout"
    );
    let ended = terminal(&master).unwrap();
    assert_eq!(ended.status.state, TaskState::TaskFailed as i32);
    assert_eq!(
        ended.status.reason,
        Some(Reason::ExecutorRegistrationTimeout as i32)
    );
    assert_eq!(
        ended.status.message.as_deref(),
        Some("Executor did not register within 1secs")
    );
    until("its cgroup removed", Duration::from_secs(30), || {
        containers(&cgroup).is_empty()
    })
    .await;
    agent.kill().await.unwrap();
    let _ = agent.wait().await;
    server.abort();
}

#[tokio::test]
async fn a_recovered_executor_that_does_not_come_back_is_lost_after_the_reregistration_timeout() {
    let (dir, cgroup, _cleanup) = scratch("reregtimeout");
    let task = TaskInfo {
        name: "frozen".into(),
        task_id: TaskId {
            value: "frozen-1".into(),
        },
        command: Some(CommandInfo {
            value: Some("exec sleep 600".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (master, address, server) = master_with(vec![task]).await;
    let port = free_port();
    let mut agent = agent_command(&address, dir.path(), &cgroup, port)
        .spawn()
        .unwrap();
    until("RUNNING", Duration::from_secs(30), || {
        updates(&master)
            .iter()
            .any(|u| u.status.state == TaskState::TaskRunning as i32)
    })
    .await;
    agent.kill().await.unwrap();
    let _ = agent.wait().await;
    // The executor cannot come back: its whole container is frozen.
    let container = containers(&cgroup).pop().expect("the executor's cgroup");
    std::fs::write(container.join("cgroup.freeze"), "1").unwrap();

    let mut agent = agent_command(&address, dir.path(), &cgroup, port)
        .args(["--executor-reregistration-timeout", "1secs"])
        .spawn()
        .unwrap();
    until("a terminal update", Duration::from_secs(30), || {
        terminal(&master).is_some()
    })
    .await;
    let ended = terminal(&master).unwrap();
    assert_eq!(ended.status.state, TaskState::TaskLost as i32);
    assert_eq!(
        ended.status.reason,
        Some(Reason::ExecutorReregistrationTimeout as i32)
    );
    assert_eq!(
        ended.status.message.as_deref(),
        Some("Executor did not reregister within 1secs")
    );
    until("its cgroup removed", Duration::from_secs(30), || {
        !container.exists()
    })
    .await;
    agent.kill().await.unwrap();
    let _ = agent.wait().await;
    server.abort();
}
