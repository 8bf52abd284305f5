//! Hostile tier: a task, sent through the real master (in this process)
//! to a real tepui-agent, tries the kernel calls a container must not
//! reach (user namespaces, keyrings, bpf, io_uring, device nodes) and
//! asks for more than the agent allows; every attempt fails, and the
//! host's canaries (this process's session keyring, the sandbox) are
//! untouched. Needs root and Debian's python3 (./x test installs it).

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use tepui_driver::scheduler::{self, DriverConfig, Scheduler, SchedulerDriver};
use tepui_master::master::Config;
use tepui_master::server::Server;
use tepui_proto::v1::{
    CapabilityInfo, CommandInfo, ContainerInfo, FrameworkInfo, LinuxInfo, MasterInfo, Offer,
    SeccompInfo, TaskId, TaskInfo, TaskState, TaskStatus, container_info, offer,
};
use tokio::sync::mpsc;

#[path = "support/agent.rs"]
mod agent_process;
use agent_process::{Cleanup, agent_command, owned_cgroup};

enum Ev {
    Offers(Vec<Offer>, SchedulerDriver),
    Update(Box<TaskStatus>),
}

struct Forward(mpsc::UnboundedSender<Ev>);

impl Scheduler for Forward {
    fn registered(&mut self, _: &SchedulerDriver, _: &str, _: &MasterInfo) {}
    fn resource_offers(&mut self, driver: &SchedulerDriver, offers: Vec<Offer>) {
        let _ = self.0.send(Ev::Offers(offers, driver.clone()));
    }
    fn status_update(&mut self, driver: &SchedulerDriver, status: &TaskStatus) {
        driver.acknowledge(status);
        let _ = self.0.send(Ev::Update(Box::new(status.clone())));
    }
}

/// The calls, made raw through ctypes; each prints `name=ok` or
/// `name=<errno name>`. x86_64 and aarch64 numbers.
const PROBE: &str = r#"
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
nr = {"x86_64": dict(unshare=272, keyctl=250, add_key=248, bpf=321, io_uring_setup=425),
      "aarch64": dict(unshare=97, keyctl=219, add_key=217, bpf=280, io_uring_setup=425)}[os.uname().machine]
buf = ctypes.create_string_buffer(256)
def call(name, *args):
    ret = libc.syscall(nr[name], *args)
    print(name + "=" + ("ok" if ret >= 0 else errno.errorcode[ctypes.get_errno()]), flush=True)
call("unshare", 0x10000000)
call("keyctl", 0, -3, 1)
call("add_key", b"user", b"tepui-hostile-canary", b"x", 1, -3)
call("bpf", 0, buf, 72)
call("io_uring_setup", 1, buf)
try:
    os.mknod("sda", 0o600 | 0o060000, os.makedev(8, 0))
    print("mknod=ok")
except OSError as e:
    print("mknod=" + errno.errorcode[e.errno])
"#;

fn command_task(id: &str, command: CommandInfo) -> TaskInfo {
    TaskInfo {
        name: id.into(),
        task_id: TaskId { value: id.into() },
        resources: tepui_proto::resources::parse("cpus:0.1;mem:64").unwrap(),
        command: Some(command),
        ..Default::default()
    }
}

fn with_linux_info(mut task: TaskInfo, linux: LinuxInfo) -> TaskInfo {
    task.container = Some(ContainerInfo {
        r#type: container_info::Type::Mesos as i32,
        linux_info: Some(linux),
        ..Default::default()
    });
    task
}

/// The next event `pick` takes, within 60 s.
async fn next<T>(
    rx: &mut mpsc::UnboundedReceiver<Ev>,
    what: &str,
    mut pick: impl FnMut(Ev) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what} in time"))
            .unwrap_or_else(|| panic!("the driver ended waiting for {what}"));
        if let Some(t) = pick(ev) {
            return t;
        }
    }
}

/// The session keyring's keys as this process sees them: the agent and
/// its containers share it (it is inherited), so a key added from inside
/// would show here.
fn host_keys() -> String {
    std::fs::read_to_string("/proc/keys").unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_cannot_reach_the_kernel_past_seccomp_and_its_capabilities() {
    let python = std::path::Path::new("/usr/bin/python3");
    assert!(
        python.exists(),
        "needs Debian's python3 (./x test installs it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = Server::new(Config {
        allocation_interval: Duration::from_millis(50),
        ..Config::defaults(dir.path().join("master"), &address)
    })
    .unwrap();
    let master = tokio::spawn(server.clone().serve(listener));
    let cgroup = owned_cgroup("tepui-hostile-kernel");
    let _cleanup = Cleanup(cgroup.clone());
    let work = dir.path().join("agent");
    let mut agent = agent_command(&address, &work, &cgroup, 0).spawn().unwrap();

    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(scheduler::run(
        DriverConfig {
            master: address.clone(),
            framework: FrameworkInfo {
                user: "root".into(),
                name: "hostile".into(),
                ..Default::default()
            },
            implicit_acknowledgements: false,
            subscribe_timeout: Duration::from_secs(30),
            credential: None,
            tls: tepui_proto::tls::Client::plain(),
        },
        Forward(tx),
    ));
    let (offer, driver) = next(&mut rx, "an offer", |e| match e {
        Ev::Offers(mut o, driver) => o.pop().map(|o| (o, driver)),
        Ev::Update(_) => None,
    })
    .await;

    let keys_before = host_keys();
    let probe = command_task(
        "probe",
        CommandInfo {
            shell: Some(false),
            value: Some(python.display().to_string()),
            arguments: vec!["python3".into(), "-c".into(), PROBE.into()],
            ..Default::default()
        },
    );
    let unconfined = with_linux_info(
        command_task(
            "unconfined",
            CommandInfo {
                value: Some("true".into()),
                ..Default::default()
            },
        ),
        LinuxInfo {
            seccomp: Some(SeccompInfo {
                profile_name: None,
                unconfined: Some(true),
            }),
            ..Default::default()
        },
    );
    let admin = with_linux_info(
        command_task(
            "admin",
            CommandInfo {
                value: Some("true".into()),
                ..Default::default()
            },
        ),
        LinuxInfo {
            // Mesos numbers capabilities from 1000: SYS_ADMIN is 1021.
            effective_capabilities: Some(CapabilityInfo {
                capabilities: vec![1021],
            }),
            ..Default::default()
        },
    );
    let tasks: Vec<TaskInfo> = [probe, unconfined, admin]
        .into_iter()
        .map(|mut t| {
            t.agent_id = offer.agent_id.clone();
            t
        })
        .collect();
    driver.accept(
        vec![offer.id.value.clone()],
        vec![offer::Operation {
            r#type: Some(offer::operation::Type::Launch as i32),
            launch: Some(offer::operation::Launch { task_infos: tasks }),
            ..Default::default()
        }],
        None,
    );
    let mut ended: BTreeMap<String, TaskStatus> = BTreeMap::new();
    while ended.len() < 3 {
        let status = next(&mut rx, "the three tasks' ends", |e| match e {
            Ev::Update(s) => Some(*s),
            Ev::Offers(..) => None,
        })
        .await;
        if tepui_agent::status_update::is_terminal(status.state) {
            ended.insert(status.task_id.value.clone(), status);
        }
    }

    // Asking for more than the agent allows is refused, by field and name.
    for (task, words) in [
        (
            "unconfined",
            ["linux_info.seccomp.unconfined", "not allowed"],
        ),
        ("admin", ["effective_capabilities", "SYS_ADMIN"]),
    ] {
        let status = &ended[task];
        assert_eq!(
            status.state,
            TaskState::TaskError as i32,
            "{task}: {status:?}"
        );
        let message = status.message.clone().unwrap_or_default();
        assert!(
            words.iter().all(|w| message.contains(w)),
            "{task}: {message}"
        );
    }

    // The probe ran to its end, and every call it made failed.
    let status = &ended["probe"];
    assert_eq!(status.state, TaskState::TaskFinished as i32, "{status:?}");
    let sandbox = sandbox_of(&work, "probe");
    let stdout = std::fs::read_to_string(sandbox.join("stdout")).unwrap();
    let results: BTreeMap<&str, &str> = stdout.lines().filter_map(|l| l.split_once('=')).collect();
    for call in [
        "unshare",
        "keyctl",
        "add_key",
        "bpf",
        "io_uring_setup",
        "mknod",
    ] {
        assert_eq!(results.get(call), Some(&"EPERM"), "{call} in:\n{stdout}");
    }
    // The canaries: no device node in the sandbox, no key in the keyring
    // the agent shares with this process.
    assert!(!sandbox.join("sda").exists());
    let canaries = |keys: &str| keys.matches("tepui-hostile-canary").count();
    assert_eq!(canaries(&host_keys()), canaries(&keys_before));

    driver.stop();
    let _ = agent.kill().await;
    master.abort();
}

/// The sandbox of the (only) run of `executor`, under the agent's work dir.
fn sandbox_of(work: &std::path::Path, executor: &str) -> std::path::PathBuf {
    let slaves = work.join("work/slaves");
    for agent in std::fs::read_dir(&slaves).unwrap().flatten() {
        for framework in std::fs::read_dir(agent.path().join("frameworks"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let runs = framework
                .path()
                .join("executors")
                .join(executor)
                .join("runs");
            if let Some(run) = std::fs::read_dir(&runs)
                .into_iter()
                .flatten()
                .flatten()
                .find(|r| r.file_name() != "latest")
            {
                return run.path();
            }
        }
    }
    panic!("no run of {executor} under {}", slaves.display());
}
