//! The agent's own terminal update survives a full disk, through the real
//! tepui-agent and the in-test master: the work dir is a small tmpfs, a
//! task's executor starts (one that never subscribes, so the task has no
//! update yet), the disk is filled, and the executor is killed. The agent's
//! TASK_FAILED cannot be checkpointed, so it is not forwarded yet (a task
//! whose end was not recorded could be reported twice after a crash);
//! once the disk has room again it is checkpointed and delivered. Before
//! this, the update was refused once and lost: the framework never heard
//! of the task again (the chaos tier's tasks that stayed STAGING).

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tepui_proto::internal::StatusUpdate;
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

/// A tmpfs of 16 MiB on `dir`, unmounted on drop.
struct SmallFs(PathBuf);

impl SmallFs {
    fn mount(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tepui-test"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs (the tests run as root)");
        SmallFs(dir.to_owned())
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the filesystem of `dir` to ENOSPC; returns the filler.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 65536];
    while file.write_all(&chunk).is_ok() {}
    while file.write_all(&[0]).is_ok() {}
    filler
}

fn terminal(master: &Master) -> Option<StatusUpdate> {
    updates(master)
        .into_iter()
        .find(|u| tepui_agent::status_update::is_terminal(u.status.state))
}

#[tokio::test]
async fn the_agents_own_terminal_update_waits_out_a_full_disk_and_is_delivered() {
    let (dir, cgroup, _cleanup) = scratch("fulldisk");
    let work = dir.path().join("work");
    let _fs = SmallFs::mount(&work);
    let task = TaskInfo {
        name: "full".into(),
        task_id: TaskId {
            value: "full-1".into(),
        },
        executor: Some(ExecutorInfo {
            executor_id: ExecutorId {
                value: "silent".into(),
            },
            command: Some(CommandInfo {
                value: Some("sleep 60".into()),
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
    until("the executor's container", Duration::from_secs(60), || {
        containers(&cgroup).first().is_some_and(|c| {
            std::fs::read_to_string(c.join("leaf/cgroup.procs")).is_ok_and(|p| !p.trim().is_empty())
        })
    })
    .await;
    let filler = fill(&work);
    let container = containers(&cgroup).pop().expect("the executor's cgroup");
    let procs = std::fs::read_to_string(container.join("leaf/cgroup.procs")).unwrap();
    for pid in procs.split_whitespace() {
        let _ = std::process::Command::new("kill")
            .args(["-9", pid])
            .status();
    }
    // The container is gone, its end not recorded: nothing goes out.
    until("the container destroyed", Duration::from_secs(30), || {
        !container.exists()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        terminal(&master),
        None,
        "an update that was not checkpointed"
    );
    std::fs::remove_file(filler).unwrap();
    until(
        "the terminal update once the disk has room",
        Duration::from_secs(30),
        || terminal(&master).is_some(),
    )
    .await;
    let ended = terminal(&master).unwrap();
    assert_eq!(
        ended.status.state,
        TaskState::TaskFailed as i32,
        "{ended:?}"
    );
    agent.kill().await.unwrap();
    let _ = agent.wait().await;
    server.abort();
}
