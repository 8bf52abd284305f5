//! The runner on the host, as root: tasks run by the real tepui-executor
//! in real containers (namespaces and a cgroup on the host's cgroup2
//! core files), their URIs fetched, their updates checkpointed and
//! delivered one at a time to a stand-in master that acknowledges them;
//! executors that die or never start fail their tasks with a reason.

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tepui_agent::executor_api::{self, ExecutorHost};
use tepui_agent::linux_info::LinuxPolicy;
use tepui_agent::paths::Layout;
use tepui_agent::rotating_log::Rotation;
use tepui_agent::runner::{Runner, RunnerConfig};
use tepui_containerizer::fetcher::{Fetcher, FetcherConfig};
use tepui_containerizer::provisioner::http::Http;
use tepui_containerizer::provisioner::{Provisioner, ProvisionerConfig};
use tepui_containerizer::{Config, Containerizer};
use tepui_proto::internal::{AgentToMaster, StatusUpdate, agent_to_master};
use tepui_proto::v1::{
    CommandInfo, FrameworkId, FrameworkInfo, TaskId, TaskInfo, TaskState, command_info, task_status,
};
use tokio::sync::mpsc;

struct Fixture {
    runner: Arc<Runner>,
    master: mpsc::UnboundedReceiver<AgentToMaster>,
    server: tokio::task::JoinHandle<()>,
    cgroup_root: std::path::PathBuf,
    dir: tempfile::TempDir,
}

impl Fixture {
    async fn new(name: &str) -> Self {
        Self::with_linux(name, tempfile::tempdir().unwrap(), LinuxPolicy::default()).await
    }

    /// A fixture in `dir` whose agent has this seccomp and capability policy.
    async fn with_linux(name: &str, dir: tempfile::TempDir, linux: LinuxPolicy) -> Self {
        let cgroup_root = tepui_isolators::cgroups::Hierarchy::default_root()
            .unwrap()
            .with_file_name(format!("tepui-runner-{name}-{}", std::process::id()));
        let provisioner =
            Arc::new(Provisioner::new(ProvisionerConfig::new(dir.path().join("images"))).unwrap());
        let containerizer = Arc::new(
            Containerizer::new(Config {
                cgroup_root: cgroup_root.clone(),
                state_dir: dir.path().join("containers"),
                provisioner: Some(provisioner.clone()),
            })
            .unwrap(),
        );
        let fetcher = Arc::new(Fetcher::new(
            FetcherConfig {
                cache_dir: dir.path().join("fetch-cache"),
                cache_max_bytes: 1 << 20,
                max_bytes: 1 << 20,
            },
            Http::new(None).unwrap(),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = listener.local_addr().unwrap().to_string();
        let (to_master, master) = mpsc::unbounded_channel();
        let runner = Runner::new(
            RunnerConfig {
                agent_id: "agent-1".into(),
                hostname: "localhost".into(),
                endpoint,
                layout: Layout::new(&dir.path().join("work")),
                command_executor: env!("CARGO_BIN_EXE_tepui-executor").into(),
                recovery_timeout: Duration::from_secs(60),
                shutdown_grace_period: Duration::from_secs(5),
                provisioner: Some(provisioner),
                log_rotation: Rotation {
                    max_bytes: 4096,
                    keep: 2,
                },
                heartbeat_interval: Duration::from_secs(30),
                registration_timeout: Duration::from_secs(60),
                reregistration_timeout: Duration::from_secs(2),
                pids_max: 4096,
                enable_cfs: false,
                switch_user: true,
                executor_tokens: None,
                linux: Arc::new(linux),
                tls_env: Vec::new(),
            },
            containerizer.clone(),
            fetcher,
            to_master,
        );
        // The test plays a registered master.
        runner.set_registered(true);
        let host: Arc<dyn ExecutorHost> = runner.clone();
        let server = tokio::spawn(tepui_agent::http::serve(
            listener,
            Arc::new(move |request| executor_api::handle(host.clone(), request)),
        ));
        Self {
            runner,
            master,
            server,
            cgroup_root,
            dir,
        }
    }

    /// The next status update the master receives; the master acknowledges it.
    /// The next update, which must be TASK_FAILED for a failed container
    /// launch: its message.
    async fn launch_failure(&mut self) -> String {
        let failed = self.next_update().await;
        assert_eq!(failed.status.state, TaskState::TaskFailed as i32);
        assert_eq!(
            failed.status.reason,
            Some(task_status::Reason::ContainerLaunchFailed as i32)
        );
        failed.status.message.unwrap_or_default()
    }

    async fn next_update(&mut self) -> StatusUpdate {
        let message = tokio::time::timeout(Duration::from_secs(20), self.master.recv())
            .await
            .expect("a status update in time")
            .unwrap();
        let Some(agent_to_master::Message::StatusUpdate(update)) = message.message else {
            panic!("not a status update: {message:?}");
        };
        self.runner.acknowledge(
            &update.framework_id.value,
            &update.status.task_id.value,
            update.status.uuid.as_deref().unwrap_or_default(),
        );
        update
    }

    /// States until (and with) the first terminal one.
    async fn states_until_terminal(&mut self) -> (Vec<TaskState>, StatusUpdate) {
        let mut states = Vec::new();
        loop {
            let update = self.next_update().await;
            let state = TaskState::try_from(update.status.state).unwrap();
            states.push(state);
            if tepui_agent::status_update::is_terminal(update.status.state) {
                return (states, update);
            }
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.server.abort();
        if let Err(e) =
            tepui_isolators::cgroups::remove_subtree(&self.cgroup_root, Duration::from_secs(5))
        {
            eprintln!("cleaning up {}: {e}", self.cgroup_root.display());
        }
    }
}

fn framework(checkpoint: bool) -> FrameworkInfo {
    FrameworkInfo {
        user: "root".into(),
        name: "test".into(),
        id: Some(FrameworkId {
            value: "fw-1".into(),
        }),
        checkpoint: Some(checkpoint),
        ..Default::default()
    }
}

fn task(id: &str, script: &str, uris: Vec<command_info::Uri>) -> TaskInfo {
    TaskInfo {
        name: id.into(),
        task_id: TaskId { value: id.into() },
        command: Some(CommandInfo {
            value: Some(script.into()),
            uris,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_task_runs_in_its_executor_and_its_updates_arrive_in_order() {
    let mut f = Fixture::new("run").await;
    let payload = f.dir.path().join("payload.txt");
    std::fs::write(&payload, "fetched\n").unwrap();
    let uri = command_info::Uri {
        value: format!("file://{}", payload.display()),
        ..Default::default()
    };
    f.runner
        .run_task(
            framework(true),
            task(
                "t1",
                "cat payload.txt; echo \"in $MESOS_SANDBOX\"",
                vec![uri],
            ),
        )
        .unwrap();
    let sandbox = f
        .runner
        .sandbox_of("fw-1", "t1")
        .expect("a sandbox while it runs");
    let (states, last) = f.states_until_terminal().await;
    assert_eq!(
        states,
        vec![
            TaskState::TaskStarting,
            TaskState::TaskRunning,
            TaskState::TaskFinished
        ]
    );
    assert_eq!(
        last.status.source,
        Some(task_status::Source::Executor as i32)
    );
    // The sandbox is in the Mesos layout, and the task's output is in it.
    let layout = f
        .dir
        .path()
        .join("work/slaves/agent-1/frameworks/fw-1/executors/t1/runs");
    assert!(sandbox.starts_with(&layout), "{}", sandbox.display());
    let stdout = std::fs::read_to_string(sandbox.join("stdout")).unwrap();
    assert!(
        stdout.contains("fetched\n") && stdout.contains(&format!("in {}", sandbox.display())),
        "{stdout}"
    );
    // Checkpointed: the task's update log holds all three and their acks.
    let container = sandbox.file_name().unwrap().to_str().unwrap();
    let log = f
        .dir
        .path()
        .join(format!("work/meta/slaves/agent-1/frameworks/fw-1/executors/t1/runs/{container}/tasks/t1/task.updates"));
    let records: Vec<tepui_proto::internal::StatusUpdateRecord> =
        tepui_agent::checkpoint::read_log(&log).unwrap();
    assert_eq!(records.len(), 6);
}

#[tokio::test]
async fn an_executor_that_dies_fails_its_task_with_a_reason() {
    let mut f = Fixture::new("dies").await;
    f.runner
        .run_task(framework(false), task("t2", "sleep 60", vec![]))
        .unwrap();
    let running = f.next_update().await;
    assert_eq!(running.status.state, TaskState::TaskStarting as i32);
    assert_eq!(
        f.next_update().await.status.state,
        TaskState::TaskRunning as i32
    );
    // Everything in the executor's container dies (cgroup.kill).
    let sandbox = f.runner.sandbox_of("fw-1", "t2").unwrap();
    let container = sandbox.file_name().unwrap().to_str().unwrap().to_owned();
    std::fs::write(f.cgroup_root.join(&container).join("cgroup.kill"), "1").unwrap();
    let failed = f.next_update().await;
    assert_eq!(failed.status.state, TaskState::TaskFailed as i32);
    assert_eq!(
        failed.status.source,
        Some(task_status::Source::Agent as i32)
    );
    assert_eq!(
        failed.status.reason,
        Some(task_status::Reason::ExecutorTerminated as i32)
    );
    assert!(f.runner.sandbox_of("fw-1", "t2").is_none());
}

#[tokio::test]
async fn a_fetch_failure_fails_the_task_naming_the_uri() {
    let mut f = Fixture::new("fetch").await;
    let uri = command_info::Uri {
        value: "file:///nonexistent/tool.sh".into(),
        ..Default::default()
    };
    f.runner
        .run_task(framework(false), task("t3", "true", vec![uri]))
        .unwrap();
    let message = f.launch_failure().await;
    assert!(
        message.contains("fetching file:///nonexistent/tool.sh"),
        "{message}"
    );
    // No container was left behind (a container is a cgroup directory).
    let containers = Path::new(&f.cgroup_root)
        .read_dir()
        .map(|d| d.flatten().filter(|e| e.path().is_dir()).count())
        .unwrap_or(0);
    assert_eq!(containers, 0);
    let e = f
        .runner
        .run_task(
            framework(false),
            TaskInfo {
                command: None,
                ..task("t4", "x", vec![])
            },
        )
        .unwrap_err();
    assert!(
        e.to_string().contains("needs a command or an executor"),
        "{e}"
    );
}

#[tokio::test]
async fn a_kill_ends_the_task_through_its_executor_within_the_grace_period() {
    let mut f = Fixture::new("kill").await;
    f.runner
        .run_task(
            framework(false),
            task("t5", "trap '' TERM; sleep 60 & wait; sleep 60", vec![]),
        )
        .unwrap();
    assert_eq!(
        f.next_update().await.status.state,
        TaskState::TaskStarting as i32
    );
    assert_eq!(
        f.next_update().await.status.state,
        TaskState::TaskRunning as i32
    );
    // Let the shell install its trap before the kill arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    f.runner.kill_task(
        "fw-1",
        "t5",
        Some(tepui_proto::v1::KillPolicy {
            grace_period: Some(tepui_proto::v1::DurationInfo {
                nanoseconds: 200_000_000,
            }),
        }),
    );
    let killed = f.next_update().await;
    assert_eq!(killed.status.state, TaskState::TaskKilled as i32);
    assert_eq!(
        killed.status.source,
        Some(task_status::Source::Executor as i32)
    );
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "SIGKILL only after the grace period"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// An executor update as the executor API takes it: a fresh uuid.
fn executor_status(task: &str, state: TaskState, uuid: u8) -> tepui_proto::v1::TaskStatus {
    tepui_proto::v1::TaskStatus {
        task_id: TaskId { value: task.into() },
        state: state as i32,
        uuid: Some(vec![uuid; 16]),
        source: Some(task_status::Source::Executor as i32),
        ..Default::default()
    }
}

#[tokio::test]
async fn nothing_reaches_the_master_after_a_tasks_terminal_update() {
    // The chaos tier's failure: an executor's RUNNING refused on a full
    // disk came again after its FINISHED; the agent forwarded RUNNING
    // after FINISHED, and when the executor exited it failed the task it
    // then thought running. Now what comes after the terminal update is
    // dropped (and acknowledged to the executor), as in Mesos.
    let mut f = Fixture::new("after-terminal").await;
    f.runner
        .run_task(framework(true), task("t9", "sleep 60", vec![]))
        .unwrap();
    assert_eq!(
        f.next_update().await.status.state,
        TaskState::TaskStarting as i32
    );
    assert_eq!(
        f.next_update().await.status.state,
        TaskState::TaskRunning as i32
    );
    let host: &dyn ExecutorHost = f.runner.as_ref();
    host.update(
        "fw-1",
        "t9",
        executor_status("t9", TaskState::TaskFinished, 7),
    )
    .unwrap();
    assert_eq!(
        host.update(
            "fw-1",
            "t9",
            executor_status("t9", TaskState::TaskRunning, 8)
        )
        .ok(),
        Some(()),
        "an update after the terminal one is dropped, not refused"
    );
    let finished = f.next_update().await;
    assert_eq!(finished.status.state, TaskState::TaskFinished as i32);
    // The real executor still runs `sleep`: the kill makes it send
    // TASK_KILLED and exit, and the agent then ends what it thinks
    // unfinished. Neither may follow the FINISHED.
    f.runner.kill_task("fw-1", "t9", None);
    let mut after = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Some(m)) = tokio::time::timeout_at(until, f.master.recv()).await {
        if let Some(agent_to_master::Message::StatusUpdate(u)) = m.message {
            after.push(TaskState::try_from(u.status.state));
        }
    }
    assert!(after.is_empty(), "updates after TASK_FINISHED: {after:?}");
}

#[tokio::test]
async fn a_framework_shutdown_ends_its_executors() {
    let mut f = Fixture::new("shutdown").await;
    f.runner
        .run_task(framework(false), task("t6", "sleep 60", vec![]))
        .unwrap();
    assert_eq!(
        f.next_update().await.status.state,
        TaskState::TaskStarting as i32
    );
    assert_eq!(
        f.next_update().await.status.state,
        TaskState::TaskRunning as i32
    );
    f.runner.shutdown_framework("fw-1");
    let killed = f.next_update().await;
    assert_eq!(killed.status.state, TaskState::TaskKilled as i32);
    for _ in 0..200 {
        if f.runner.sandbox_of("fw-1", "t6").is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the executor run did not end");
}

#[tokio::test]
async fn finished_runs_are_collected_and_running_ones_kept() {
    let mut f = Fixture::new("gc").await;
    f.runner
        .run_task(framework(true), task("done", "true", vec![]))
        .unwrap();
    let done = f.runner.sandbox_of("fw-1", "done").unwrap();
    f.runner
        .run_task(framework(true), task("busy", "sleep 60", vec![]))
        .unwrap();
    let busy = f.runner.sandbox_of("fw-1", "busy").unwrap();
    let mut finished = false;
    while !finished {
        let update = f.next_update().await;
        finished = update.status.task_id.value == "done"
            && update.status.state == TaskState::TaskFinished as i32;
    }
    for _ in 0..200 {
        if f.runner.sandbox_of("fw-1", "done").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // A week's delay keeps it; no delay at all removes it, never the busy one.
    // No headroom: the age allowed shrinks as the machine's disk fills (the
    // gc unit tests check that), and a build machine's disk may be nearly
    // full (with the default headroom a 90% full disk allows no age).
    let week = tepui_agent::gc::GcConfig {
        disk_headroom: 0.0,
        ..Default::default()
    };
    assert!(f.runner.collect_garbage(&week).is_empty());
    assert!(done.exists());
    let now = tepui_agent::gc::GcConfig {
        delay: Duration::ZERO,
        disk_headroom: 0.0,
    };
    let removed = f.runner.collect_garbage(&now);
    assert_eq!(
        removed.len(),
        2,
        "the sandbox and the run's checkpoints: {removed:?}"
    );
    assert!(!done.exists());
    assert!(busy.exists());
    f.runner.kill_task("fw-1", "busy", None);
}

/// Imports the busybox test image (tests/fixtures) into the fixture's store
/// as `name`.
async fn import_image(f: &Fixture, name: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let layout = f.dir.path().join("layout");
    assert!(
        std::process::Command::new(root.join("tests/fixtures/busybox-image.sh"))
            .arg(&layout)
            .args(["--variant", "agent-test"])
            .status()
            .unwrap()
            .success()
    );
    let provisioner =
        Provisioner::new(ProvisionerConfig::new(f.dir.path().join("images"))).unwrap();
    provisioner
        .import(
            &layout,
            Some(&name.parse().unwrap()),
            Arc::new(tepui_containerizer::provisioner::NoProgress),
        )
        .await
        .unwrap();
}

fn in_image(mut task: TaskInfo, image: &str) -> TaskInfo {
    use tepui_proto::v1::{ContainerInfo, Image, container_info, image};
    task.container = Some(ContainerInfo {
        r#type: container_info::Type::Mesos as i32,
        mesos: Some(container_info::MesosInfo {
            image: Some(Image {
                r#type: image::Type::Docker as i32,
                docker: Some(image::Docker {
                    name: image.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }),
        ..Default::default()
    });
    task
}

#[tokio::test]
async fn a_command_task_runs_inside_its_image_with_the_images_config() {
    let mut f = Fixture::new("image").await;
    import_image(&f, "tepui.test/busybox:latest").await;
    // The task's own command, in the image: the image's files and Env,
    // its WorkingDir, and the sandbox at its mount.
    let script = "cat /etc/layer3; echo \"var=$IMAGE_VAR pwd=$(pwd) sandbox=$MESOS_SANDBOX\"; \
                  test -e /etc/doomed || echo whiteout-applied; echo out > $MESOS_SANDBOX/written";
    f.runner
        .run_task(
            framework(false),
            in_image(task("img", script, vec![]), "tepui.test/busybox:latest"),
        )
        .unwrap();
    let sandbox = f.runner.sandbox_of("fw-1", "img").unwrap();
    let (states, last) = f.states_until_terminal().await;
    assert_eq!(states.last(), Some(&TaskState::TaskFinished), "{last:?}");
    let stdout = std::fs::read_to_string(sandbox.join("stdout")).unwrap();
    assert!(
        stdout.contains("agent-test"),
        "the image's /etc/layer3: {stdout}"
    );
    assert!(
        stdout.contains("var=from-image pwd=/etc sandbox=/mnt/mesos/sandbox"),
        "{stdout}"
    );
    assert!(stdout.contains("whiteout-applied"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(sandbox.join("written")).unwrap(),
        "out\n"
    );

    // Without a command value, the image's Cmd runs.
    let mut default = in_image(task("img2", "", vec![]), "tepui.test/busybox:latest");
    default.command = Some(CommandInfo {
        shell: Some(false),
        ..Default::default()
    });
    f.runner.run_task(framework(false), default).unwrap();
    let sandbox = f.runner.sandbox_of("fw-1", "img2").unwrap();
    let (states, _) = f.states_until_terminal().await;
    assert_eq!(states.last(), Some(&TaskState::TaskFinished));
    let stdout = std::fs::read_to_string(sandbox.join("stdout")).unwrap();
    assert!(stdout.contains("default command"), "{stdout}");

    // An image not in the store (and no registry) fails the task by name.
    f.runner
        .run_task(
            framework(false),
            in_image(task("img3", "true", vec![]), "127.0.0.1:1/missing:latest"),
        )
        .unwrap();
    let message = f.launch_failure().await;
    assert!(message.contains("127.0.0.1:1/missing:latest"), "{message}");
}

/// A group for the built-in executor `executor` (one whose tasks have all
/// ended exits, so each group here has its own).
fn group(
    executor: &str,
    tasks: Vec<TaskInfo>,
) -> (
    tepui_proto::v1::ExecutorInfo,
    tepui_proto::v1::TaskGroupInfo,
) {
    let executor = tepui_proto::v1::ExecutorInfo {
        executor_id: tepui_proto::v1::ExecutorId {
            value: executor.into(),
        },
        framework_id: framework(false).id,
        ..Default::default()
    };
    (executor, tepui_proto::v1::TaskGroupInfo { tasks })
}

#[tokio::test]
async fn a_task_group_runs_together_and_a_failure_takes_the_group_down() {
    let mut f = Fixture::new("group").await;
    let (executor, tasks) = group(
        "default",
        vec![
            task("g-ok", "echo one >> both", vec![]),
            task("g-also", "echo two >> both", vec![]),
        ],
    );
    f.runner
        .run_task_group(framework(false), executor.clone(), tasks)
        .unwrap();
    let sandbox = f.runner.sandbox_of("fw-1", "default").unwrap();
    let mut finished = Vec::new();
    while finished.len() < 2 {
        let update = f.next_update().await;
        if update.status.state == TaskState::TaskFinished as i32 {
            finished.push(update.status.task_id.value);
        }
    }
    finished.sort();
    assert_eq!(finished, ["g-also", "g-ok"]);
    let both = std::fs::read_to_string(sandbox.join("both")).unwrap();
    assert_eq!(both.lines().count(), 2, "both ran in one sandbox: {both}");

    // A second group: one task fails, so the long one is killed.
    let (executor, tasks) = group(
        "second",
        vec![
            task("g-fail", "sleep 0.3; exit 3", vec![]),
            task("g-long", "sleep 60", vec![]),
        ],
    );
    f.runner
        .run_task_group(framework(false), executor, tasks)
        .unwrap();
    let mut ends = std::collections::HashMap::new();
    while ends.len() < 2 {
        let update = tokio::time::timeout(Duration::from_secs(10), f.next_update())
            .await
            .expect("the group ends long before its sleep");
        if tepui_agent::status_update::is_terminal(update.status.state) {
            ends.insert(update.status.task_id.value.clone(), update.status.state);
        }
    }
    assert_eq!(ends["g-fail"], TaskState::TaskFailed as i32);
    assert_eq!(ends["g-long"], TaskState::TaskKilled as i32);

    // Invalid groups are refused with a reason.
    let (executor, _) = group("third", vec![]);
    let e = f
        .runner
        .run_task_group(
            framework(false),
            executor.clone(),
            tepui_proto::v1::TaskGroupInfo {
                tasks: vec![task("dup", "true", vec![]), task("dup", "true", vec![])],
            },
        )
        .unwrap_err();
    assert!(e.why.contains("twice"), "{e}");
}

#[tokio::test]
async fn a_tasks_output_is_rotated_at_its_size() {
    let mut f = Fixture::new("rotate").await;
    // 20 000 bytes through stdout with a 4096-byte bound and two kept.
    f.runner
        .run_task(
            framework(false),
            task(
                "chatty",
                "i=0; while [ $i -lt 2000 ]; do echo 123456789; i=$((i+1)); done; echo end",
                vec![],
            ),
        )
        .unwrap();
    let sandbox = f.runner.sandbox_of("fw-1", "chatty").unwrap();
    let (states, _) = f.states_until_terminal().await;
    assert_eq!(states.last(), Some(&TaskState::TaskFinished));
    let size = |name: &str| std::fs::metadata(sandbox.join(name)).map(|m| m.len());
    assert!(size("stdout").unwrap() <= 4096);
    assert_eq!(size("stdout.1").unwrap(), 4096);
    assert_eq!(size("stdout.2").unwrap(), 4096);
    assert!(size("stdout.3").is_err(), "only two rotated files are kept");
    let live = std::fs::read_to_string(sandbox.join("stdout")).unwrap();
    assert!(live.ends_with("end\n"), "{live}");
}

/// A task whose ContainerInfo (on the host's filesystem) has `linux`.
fn with_linux_info(mut task: TaskInfo, linux: tepui_proto::v1::LinuxInfo) -> TaskInfo {
    use tepui_proto::v1::{ContainerInfo, container_info};
    task.container = Some(ContainerInfo {
        r#type: container_info::Type::Mesos as i32,
        linux_info: Some(linux),
        ..Default::default()
    });
    task
}

/// Mesos's CapabilityInfo of these capability names.
fn capability_info(names: &[&str]) -> tepui_proto::v1::CapabilityInfo {
    tepui_proto::v1::CapabilityInfo {
        capabilities: names
            .iter()
            .map(|n| 1000 + tepui_isolators::capabilities::number(n).unwrap() as i32)
            .collect(),
    }
}

const SHOW_KERNEL_SURFACE: &str = "grep -E '^(Seccomp|CapInh|CapEff|CapBnd):' /proc/self/status; \
     /usr/bin/unshare -U true 2>/dev/null && echo unshared || echo unshare-refused";

/// The task's stdout once it has finished.
async fn finished_stdout(f: &mut Fixture, id: &str) -> String {
    let sandbox = f.runner.sandbox_of("fw-1", id).unwrap();
    let (states, last) = f.states_until_terminal().await;
    assert_eq!(states.last(), Some(&TaskState::TaskFinished), "{last:?}");
    std::fs::read_to_string(sandbox.join("stdout")).unwrap()
}

fn field<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(name))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{name} missing in {out}"))
}

#[tokio::test]
async fn every_task_runs_under_seccomp_and_linux_info_asks_only_within_the_agents_bounds() {
    let mut f = Fixture::new("linux").await;
    f.runner
        .run_task(framework(false), task("plain", SHOW_KERNEL_SURFACE, vec![]))
        .unwrap();
    let out = finished_stdout(&mut f, "plain").await;
    let default = format!("{:016x}", tepui_isolators::capabilities::default_mask());
    assert_eq!(field(&out, "Seccomp:"), "2", "{out}");
    assert_eq!(field(&out, "CapInh:"), "0000000000000000");
    assert_eq!(field(&out, "CapEff:"), default);
    assert!(out.contains("unshare-refused"), "{out}");

    // What the agent does not allow is refused at once, by field and name.
    use tepui_proto::v1::{LinuxInfo, SeccompInfo};
    let unconfined = LinuxInfo {
        seccomp: Some(SeccompInfo {
            profile_name: None,
            unconfined: Some(true),
        }),
        ..Default::default()
    };
    let e = f
        .runner
        .run_task(
            framework(false),
            with_linux_info(task("free", "true", vec![]), unconfined.clone()),
        )
        .unwrap_err();
    assert!(e.why.contains("linux_info.seccomp.unconfined"), "{e}");
    let admin = LinuxInfo {
        effective_capabilities: Some(capability_info(&["SYS_ADMIN"])),
        ..Default::default()
    };
    let e = f
        .runner
        .run_task(
            framework(false),
            with_linux_info(task("admin", "true", vec![]), admin),
        )
        .unwrap_err();
    assert!(
        e.why.contains("effective_capabilities") && e.why.contains("SYS_ADMIN"),
        "{e}"
    );
    let missing = LinuxInfo {
        seccomp: Some(SeccompInfo {
            profile_name: Some("nowhere.json".into()),
            unconfined: None,
        }),
        ..Default::default()
    };
    let e = f
        .runner
        .run_task(
            framework(false),
            with_linux_info(task("missing", "true", vec![]), missing),
        )
        .unwrap_err();
    assert!(e.why.contains("linux_info.seccomp.profile_name"), "{e}");
    drop(f);

    // An agent that allows more: unconfined, NET_RAW, and a profile dir.
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("seccomp");
    std::fs::create_dir(&profiles).unwrap();
    std::fs::write(
        profiles.join("no-mkdir.json"),
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let policy = LinuxPolicy::from_flags(
        Some(profiles),
        None,
        true,
        None,
        Some(r#"{"capabilities": ["NET_RAW", "SYS_CHROOT", "KILL", "SETUID", "SETGID"]}"#),
    )
    .unwrap();
    let mut f = Fixture::with_linux("linux2", dir, policy).await;
    f.runner
        .run_task(
            framework(false),
            with_linux_info(task("free", SHOW_KERNEL_SURFACE, vec![]), unconfined),
        )
        .unwrap();
    let out = finished_stdout(&mut f, "free").await;
    assert_eq!(field(&out, "Seccomp:"), "0", "{out}");

    let raw = LinuxInfo {
        effective_capabilities: Some(capability_info(&["NET_RAW"])),
        seccomp: Some(SeccompInfo {
            profile_name: Some("no-mkdir.json".into()),
            unconfined: None,
        }),
        ..Default::default()
    };
    let script =
        format!("{SHOW_KERNEL_SURFACE}; mkdir d 2>/dev/null && echo made || echo mkdir-refused");
    f.runner
        .run_task(
            framework(false),
            with_linux_info(task("raw", &script, vec![]), raw),
        )
        .unwrap();
    let out = finished_stdout(&mut f, "raw").await;
    assert_eq!(field(&out, "Seccomp:"), "2", "{out}");
    assert_eq!(field(&out, "CapEff:"), format!("{:016x}", 1u64 << 13));
    assert_eq!(field(&out, "CapInh:"), "0000000000000000");
    assert!(out.contains("mkdir-refused"), "{out}");
}

#[tokio::test]
async fn a_task_gets_a_sane_open_file_limit_or_the_one_it_asks_for() {
    use tepui_proto::v1::r_limit_info::{RLimit, r_limit::Type};
    use tepui_proto::v1::{ContainerInfo, RLimitInfo, container_info};
    let show = "echo soft $(ulimit -Sn) hard $(ulimit -Hn)";
    // As tepui-agent does at start: its own soft limit at its hard one,
    // which a task must not inherit.
    let mut own = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit of this process, on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut own), 0);
        own.rlim_cur = own.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &own), 0);
    }
    let mut f = Fixture::new("rlimits").await;
    f.runner
        .run_task(framework(false), task("default", show, vec![]))
        .unwrap();
    let out = finished_stdout(&mut f, "default").await;
    // Not the agent's own limit (raised to its hard limit at start): 1024
    // soft and 524288 hard, within what this process may set.
    let (soft, hard) = tepui_agent::rlimit_info::default_nofile(
        tepui_agent::rlimit_info::own_hard(libc::RLIMIT_NOFILE),
    );
    assert!(out.contains(&format!("soft {soft} hard {hard}")), "{out}");

    let mut asked = task("asked", show, vec![]);
    asked.container = Some(ContainerInfo {
        r#type: container_info::Type::Mesos as i32,
        rlimit_info: Some(RLimitInfo {
            rlimits: vec![RLimit {
                r#type: Some(Type::RlmtNofile as i32),
                soft: Some(64),
                hard: Some(128),
            }],
        }),
        ..Default::default()
    });
    f.runner.run_task(framework(false), asked).unwrap();
    let out = finished_stdout(&mut f, "asked").await;
    assert!(out.contains("soft 64 hard 128"), "{out}");

    // Above the agent's own hard limit (which root could set): refused,
    // naming the limit, never capped or passed on.
    for (kind, name) in [
        (Type::RlmtNofile, "RLMT_NOFILE"),
        (Type::RlmtMemlock, "RLMT_MEMLOCK"),
    ] {
        let resource = tepui_isolators::rlimits::resource(name).unwrap();
        let own = tepui_agent::rlimit_info::own_hard(resource);
        if own == libc::RLIM_INFINITY {
            eprintln!("SKIPPED {name}: the agent's own hard limit is unlimited");
            continue;
        }
        let mut greedy = task(&format!("greedy-{name}"), show, vec![]);
        greedy.container = Some(ContainerInfo {
            r#type: container_info::Type::Mesos as i32,
            rlimit_info: Some(RLimitInfo {
                rlimits: vec![RLimit {
                    r#type: Some(kind as i32),
                    soft: Some(64),
                    hard: Some(own + 1),
                }],
            }),
            ..Default::default()
        });
        let e = f.runner.run_task(framework(false), greedy).unwrap_err();
        assert!(
            e.why.contains(name) && e.why.contains("above the agent's own hard limit"),
            "{e}"
        );
    }
}
