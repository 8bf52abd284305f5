//! A task whose executor never received it because the agent died first,
//! through the real tepui-agent and the in-test master: the executor is
//! still starting (it sleeps before it subscribes) when the agent is
//! `kill -9`ed; the restarted agent recovers the run, the executor
//! subscribes knowing no task, and the task, still STAGING, is LOST with
//! REASON_AGENT_RESTARTED "Task launched during agent restart", as in
//! Mesos; the executor, left with nothing to run, is shut down and its
//! cgroup removed. Before this, the task stayed STAGING and its executor
//! idle forever.

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tepui_proto::internal::StatusUpdate;
use tepui_proto::v1::task_status::{Reason, Source};
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

#[tokio::test]
async fn a_task_launched_while_the_agent_died_is_lost_and_its_idle_executor_shut_down() {
    let (dir, cgroup, _cleanup) = scratch("launchrestart");
    // An executor (tepui's own, as a custom one) started late: it
    // subscribes only after the agent that launched it is gone and
    // another has recovered the run.
    let executor = format!("sleep 3; exec {}", env!("CARGO_BIN_EXE_tepui-executor"));
    let task = TaskInfo {
        name: "late".into(),
        task_id: TaskId {
            value: "late-1".into(),
        },
        executor: Some(ExecutorInfo {
            executor_id: ExecutorId {
                value: "late-executor".into(),
            },
            command: Some(CommandInfo {
                value: Some(executor),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (master, address, server) = master_with(vec![task]).await;
    let port = free_port();
    let mut agent = agent_command(&address, dir.path(), &cgroup, port)
        .spawn()
        .unwrap();
    // Killed once the container's pid is recorded: killed before that, the
    // restarted agent rightly cannot tell the executor is its own.
    let recorded = dir.path().join("containers");
    until(
        "the executor's container, recorded",
        Duration::from_secs(30),
        || {
            !containers(&cgroup).is_empty()
                && std::fs::read_dir(&recorded)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|e| e.path().join("run").exists())
        },
    )
    .await;
    agent.kill().await.unwrap();
    let _ = agent.wait().await;
    let container = containers(&cgroup).pop().expect("the executor's cgroup");

    let mut agent = agent_command(&address, dir.path(), &cgroup, port)
        .args(["--executor_reregistration_timeout", "15secs"])
        .spawn()
        .unwrap();
    until("a terminal update", Duration::from_secs(30), || {
        updates(&master)
            .iter()
            .any(|u| tepui_agent::status_update::is_terminal(u.status.state))
    })
    .await;
    let all = updates(&master);
    assert!(
        all.iter()
            .all(|u| u.status.state != TaskState::TaskRunning as i32),
        "the task never ran: {all:?}"
    );
    let ended = all
        .iter()
        .find(|u| tepui_agent::status_update::is_terminal(u.status.state))
        .unwrap();
    assert_eq!(ended.status.state, TaskState::TaskLost as i32);
    assert_eq!(ended.status.reason, Some(Reason::AgentRestarted as i32));
    assert_eq!(ended.status.source, Some(Source::Agent as i32));
    assert_eq!(
        ended.status.message.as_deref(),
        Some("Task launched during agent restart")
    );
    until(
        "the idle executor shut down and its cgroup removed",
        Duration::from_secs(30),
        || !container.exists(),
    )
    .await;
    agent.kill().await.unwrap();
    let _ = agent.wait().await;
    server.abort();
}
