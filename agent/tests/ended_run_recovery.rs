//! An executor run that ended while its terminal update was still
//! unacknowledged survives an agent crash, through the real tepui-agent
//! and the in-test master: the task finishes, the master withholds the
//! acknowledgement, the agent is `kill -9`ed, and the restarted agent
//! forwards the same TASK_FINISHED (same uuid) again; only once it is
//! acknowledged is the run marked completed (executor.sentinel). Before
//! this, the sentinel was written when the executor ended, recovery
//! skipped the run, and the update was never delivered (the chaos tier's
//! tasks that stayed RUNNING at their framework). And an update sent
//! again carries the task's latest state, as a Mesos agent's does, so the
//! master knows where a task is while its later updates wait.

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use tepui_proto::internal::StatusUpdate;
use tepui_proto::v1::{CommandInfo, TaskId, TaskInfo, TaskState};

#[path = "support/agent.rs"]
mod agent_process;
#[path = "support/master.rs"]
mod master;
use agent_process::{agent_command, scratch, until};
use master::{Master, free_port, master_with};

fn finished(master: &Master) -> Vec<StatusUpdate> {
    master
        .state
        .lock()
        .unwrap()
        .updates
        .iter()
        .filter(|u| u.status.state == TaskState::TaskFinished as i32)
        .cloned()
        .collect()
}

/// The executor.sentinel files under the agent's checkpoints.
fn sentinels(work: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![work.join("meta")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.file_name().is_some_and(|n| n == "executor.sentinel") {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test]
async fn an_unacknowledged_terminal_update_of_an_ended_run_is_sent_again_after_a_crash() {
    let (dir, cgroup, _cleanup) = scratch("endedrun");
    let task = TaskInfo {
        name: "quick".into(),
        task_id: TaskId {
            value: "quick-1".into(),
        },
        command: Some(CommandInfo {
            value: Some("echo done".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (master, address, server) = master_with(vec![task]).await;
    master.state.lock().unwrap().withhold_terminal_acks = true;
    let port = free_port();
    let mut agent = agent_command(&address, dir.path(), &cgroup, port)
        .spawn()
        .unwrap();
    until("TASK_FINISHED", Duration::from_secs(60), || {
        !finished(&master).is_empty()
    })
    .await;
    let first = finished(&master).remove(0);
    // The executor is gone, its update not acknowledged: the run is not
    // over yet.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let work = dir.path().join("work");
    assert!(
        sentinels(&work).is_empty(),
        "the run was marked completed before its update was acknowledged"
    );
    agent.kill().await.unwrap();
    let _ = agent.wait().await;

    master.state.lock().unwrap().withhold_terminal_acks = false;
    let mut agent = agent_command(&address, dir.path(), &cgroup, port)
        .spawn()
        .unwrap();
    until(
        "the same TASK_FINISHED forwarded again",
        Duration::from_secs(60),
        || finished(&master).len() >= 2,
    )
    .await;
    let again = finished(&master).remove(1);
    assert_eq!(again.status.uuid, first.status.uuid, "the same update");
    until(
        "the run marked completed once acknowledged",
        Duration::from_secs(30),
        || !sentinels(&work).is_empty(),
    )
    .await;
    agent.kill().await.unwrap();
    let _ = agent.wait().await;
    server.abort();
}

#[tokio::test]
async fn an_update_sent_again_carries_the_tasks_latest_state() {
    let (dir, cgroup, _cleanup) = scratch("lateststate");
    let task = TaskInfo {
        name: "quick".into(),
        task_id: TaskId {
            value: "quick-2".into(),
        },
        command: Some(CommandInfo {
            value: Some("true".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (master, address, server) = master_with(vec![task]).await;
    // Nothing is acknowledged: the first update stays at the head of the
    // stream and the later ones wait behind it.
    master.state.lock().unwrap().withhold_all_acks = true;
    let port = free_port();
    let mut agent = agent_command(&address, dir.path(), &cgroup, port)
        .spawn()
        .unwrap();
    let first = || master.state.lock().unwrap().updates.first().cloned();
    until("the first update", Duration::from_secs(60), || {
        first().is_some()
    })
    .await;
    // The executor goes on to TASK_FINISHED meanwhile.
    tokio::time::sleep(Duration::from_secs(2)).await;
    agent.kill().await.unwrap();
    let _ = agent.wait().await;
    let mut agent = agent_command(&address, dir.path(), &cgroup, port)
        .spawn()
        .unwrap();
    let head = first().unwrap();
    until(
        "the head update sent again",
        Duration::from_secs(60),
        || {
            master
                .state
                .lock()
                .unwrap()
                .updates
                .iter()
                .filter(|u| u.status.uuid == head.status.uuid)
                .count()
                >= 2
        },
    )
    .await;
    let again = master
        .state
        .lock()
        .unwrap()
        .updates
        .iter()
        .filter(|u| u.status.uuid == head.status.uuid)
        .nth(1)
        .cloned()
        .unwrap();
    assert_ne!(again.status.state, TaskState::TaskFinished as i32);
    assert_eq!(
        again.latest_state,
        Some(TaskState::TaskFinished as i32),
        "the master is told where the task is: {again:?}"
    );
    agent.kill().await.unwrap();
    let _ = agent.wait().await;
    server.abort();
}
