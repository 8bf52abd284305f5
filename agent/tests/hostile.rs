//! Hostile tasks through the real master (in this process) and a real
//! tepui-agent: each case submits a task that tries one way out of its
//! sandbox or user (issue 19) and asserts that a canary on the host, a
//! root-owned 0600 file in a directory only root may write, is unread and
//! unchanged, and that the task saw the denial. Each case names the
//! pattern it covers.

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tepui_driver::scheduler::{self, DriverConfig, Scheduler, SchedulerDriver};
use tepui_master::master::Config;
use tepui_master::server::Server;
use tepui_proto::v1::{
    CommandInfo, FrameworkInfo, MasterInfo, Offer, TaskId, TaskInfo, TaskState, TaskStatus,
    command_info, offer,
};
use tokio::sync::mpsc;

#[path = "support/agent.rs"]
mod agent_process;
use agent_process::{Cleanup, agent_command, owned_cgroup};

/// What the canary file holds; never to be seen in a task's output.
const SECRET: &str = "tepui-canary-secret-7f3a";

enum Ev {
    Registered(SchedulerDriver),
    Offers(Vec<Offer>),
    Update(Box<TaskStatus>),
}

struct Forward(mpsc::UnboundedSender<Ev>);

impl Scheduler for Forward {
    fn registered(&mut self, driver: &SchedulerDriver, _: &str, _: &MasterInfo) {
        let _ = self.0.send(Ev::Registered(driver.clone()));
    }
    fn reregistered(&mut self, _: &SchedulerDriver, _: &MasterInfo) {}
    fn resource_offers(&mut self, _: &SchedulerDriver, offers: Vec<Offer>) {
        let _ = self.0.send(Ev::Offers(offers));
    }
    fn status_update(&mut self, driver: &SchedulerDriver, status: &TaskStatus) {
        driver.acknowledge(status);
        let _ = self.0.send(Ev::Update(Box::new(status.clone())));
    }
    fn agent_lost(&mut self, _: &SchedulerDriver, _: &str) {}
}

/// A host file and directory a task must neither read nor change.
struct Canary {
    dir: PathBuf,
    file: PathBuf,
    before: (Vec<u8>, u32, u32, u32, i64, Vec<std::ffi::OsString>),
}

fn snapshot(dir: &Path, file: &Path) -> (Vec<u8>, u32, u32, u32, i64, Vec<std::ffi::OsString>) {
    let meta = std::fs::symlink_metadata(file).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    (
        std::fs::read(file).unwrap(),
        meta.mode(),
        meta.uid(),
        meta.gid(),
        meta.mtime(),
        names,
    )
}

impl Canary {
    /// A root-only directory (0755, root's to write) holding a root-owned
    /// 0600 file.
    fn new(at: &Path) -> Self {
        let dir = at.join("canary");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let file = dir.join("secret");
        std::fs::write(&file, SECRET).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let before = snapshot(&dir, &file);
        Self { dir, file, before }
    }

    /// Asserts the canary is as it was, and `seen` (what the task could
    /// show: its sandbox's files) never holds its secret.
    fn untouched(&self, case: &str, sandbox: &Path) {
        assert!(
            self.before == snapshot(&self.dir, &self.file),
            "{case}: the canary changed"
        );
        for entry in walk(sandbox) {
            let data = std::fs::read(&entry).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&data).contains(SECRET),
                "{case}: the canary's secret is in {}",
                entry.display()
            );
        }
    }
}

/// Every regular file under `dir`, through no link.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            out.extend(walk(&entry.path()));
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    out
}

/// A master, one agent, and a framework of `user`.
struct Cluster {
    dir: tempfile::TempDir,
    events: mpsc::UnboundedReceiver<Ev>,
    driver: SchedulerDriver,
    _agent: tokio::process::Child,
    _cleanup: Cleanup,
    _server: Arc<Server>,
}

impl Cluster {
    async fn start(name: &str, user: &str, agent_args: &[&str]) -> Self {
        Self::start_with(name, user, agent_args, |_| {}).await
    }

    /// As `start`, with `prepare` run on the test's directory before the
    /// agent starts.
    async fn start_with(
        name: &str,
        user: &str,
        agent_args: &[&str],
        prepare: impl FnOnce(&Path),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // A task's user must reach its sandbox, as under /var/lib.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare(dir.path());
        let cgroup = owned_cgroup(&format!("tepui-hostile-{name}"));
        let cleanup = Cleanup(cgroup.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let config = Config {
            allocation_interval: Duration::from_millis(50),
            ..Config::defaults(dir.path().join("master"), &address)
        };
        let server = Server::new(config).unwrap();
        tokio::spawn(server.clone().serve(listener));
        let agent = agent_command(&address, dir.path(), &cgroup, 0)
            .args(agent_args)
            .spawn()
            .unwrap();
        let (tx, mut events) = mpsc::unbounded_channel();
        let framework = FrameworkInfo {
            user: user.into(),
            name: format!("hostile-{name}"),
            ..Default::default()
        };
        tokio::spawn(scheduler::run(
            DriverConfig {
                master: address,
                framework,
                implicit_acknowledgements: false,
                subscribe_timeout: Duration::from_secs(30),
                credential: None,
                tls: tepui_proto::tls::Client::plain(),
            },
            Forward(tx),
        ));
        let driver = loop {
            match tokio::time::timeout(Duration::from_secs(30), events.recv()).await {
                Ok(Some(Ev::Registered(driver))) => break driver,
                Ok(Some(_)) => {}
                _ => panic!("the framework did not register"),
            }
        };
        Self {
            dir,
            events,
            driver,
            _agent: agent,
            _cleanup: cleanup,
            _server: server,
        }
    }

    /// Launches `task` on the next offer and waits for its terminal
    /// state: (state, message, sandbox).
    async fn run(&mut self, mut task: TaskInfo) -> (TaskState, String, PathBuf) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        let id = task.task_id.value.clone();
        let mut launched = false;
        loop {
            let ev = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("task {id} did not end"))
                .unwrap();
            match ev {
                Ev::Offers(offers) if !launched => {
                    let offer = &offers[0];
                    task.agent_id = offer.agent_id.clone();
                    self.driver.accept(
                        vec![offer.id.value.clone()],
                        vec![offer::Operation {
                            r#type: Some(offer::operation::Type::Launch as i32),
                            launch: Some(offer::operation::Launch {
                                task_infos: vec![task.clone()],
                            }),
                            ..Default::default()
                        }],
                        None,
                    );
                    launched = true;
                }
                Ev::Update(status) if status.task_id.value == id => {
                    let state = TaskState::try_from(status.state).unwrap();
                    if matches!(
                        state,
                        TaskState::TaskFinished
                            | TaskState::TaskFailed
                            | TaskState::TaskKilled
                            | TaskState::TaskError
                            | TaskState::TaskLost
                    ) {
                        let message = status.message.clone().unwrap_or_default();
                        return (state, message, self.sandbox(&id));
                    }
                }
                _ => {}
            }
        }
    }

    /// The sandbox of the command executor of task `id`.
    fn sandbox(&self, id: &str) -> PathBuf {
        let slaves = self.dir.path().join("work/slaves");
        for agent in std::fs::read_dir(&slaves).unwrap().flatten() {
            let frameworks = agent.path().join("frameworks");
            for framework in std::fs::read_dir(frameworks)
                .into_iter()
                .flatten()
                .flatten()
            {
                let runs = framework.path().join("executors").join(id).join("runs");
                if let Some(run) = std::fs::read_dir(&runs)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .next()
                {
                    return run.path();
                }
            }
        }
        panic!("no sandbox for {id}");
    }
}

fn task(id: &str, script: &str, uris: Vec<command_info::Uri>) -> TaskInfo {
    TaskInfo {
        name: id.into(),
        task_id: TaskId { value: id.into() },
        resources: tepui_proto::resources::parse("cpus:0.1;mem:32").unwrap(),
        command: Some(CommandInfo {
            value: Some(script.into()),
            uris,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn uri(value: &str, output_file: Option<&str>) -> command_info::Uri {
    command_info::Uri {
        value: value.into(),
        output_file: output_file.map(Into::into),
        ..Default::default()
    }
}

fn sh(script: &str, dir: &Path) {
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "{script}");
}

fn stdout_of(sandbox: &Path) -> String {
    std::fs::read_to_string(sandbox.join("stdout")).unwrap_or_default()
}

/// Pattern: a task reads a host secret (/etc/shadow) because it runs as
/// root while its framework names another user (FrameworkInfo.user was
/// ignored). As `nobody`, it runs as uid 65534 and is denied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_root_framework_users_task_cannot_read_a_root_only_file() {
    let mut cluster = Cluster::start("shadow", "nobody", &[]).await;
    let canary = Canary::new(cluster.dir.path());
    let script = format!(
        "id -u; cat {} && echo READ || echo DENIED; echo x > {}/new && echo WROTE || echo NOWRITE",
        canary.file.display(),
        canary.dir.display()
    );
    let (state, message, sandbox) = cluster.run(task("shadow", &script, vec![])).await;
    let out = stdout_of(&sandbox);
    assert_eq!(state, TaskState::TaskFinished, "{message} {out}");
    assert!(out.starts_with("65534\n"), "the task runs as nobody: {out}");
    assert!(out.contains("DENIED") && out.contains("NOWRITE"), "{out}");
    canary.untouched("shadow", &sandbox);
    let meta = std::fs::metadata(&sandbox).unwrap();
    assert_eq!(
        (meta.uid(), meta.mode() & 0o777),
        (65534, 0o750),
        "the sandbox is nobody's"
    );

    // An unknown user fails the task, named in the message.
    let mut unknown = Cluster::start("nouser", "tepui-no-such-user", &[]).await;
    let (state, message, _) = unknown.run(task("nouser", "true", vec![])).await;
    assert_eq!(state, TaskState::TaskFailed);
    assert!(message.contains("tepui-no-such-user"), "{message}");
}

/// Pattern: a local-file URI copies any host file into the sandbox as
/// root (the fetcher did not run as the task's user); and a fetch with no
/// bound fills the disk. As `nobody`, file:// of a root-only file fails,
/// and a fetch beyond the task's disk resource fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_uris_are_read_as_the_tasks_user_and_bounded_by_its_disk() {
    let mut cluster = Cluster::start("fileuri", "nobody", &[]).await;
    let canary = Canary::new(cluster.dir.path());
    let secret = format!("file://{}", canary.file.display());
    let (state, message, sandbox) = cluster
        .run(task("fileuri", "cat secret", vec![uri(&secret, None)]))
        .await;
    assert_eq!(state, TaskState::TaskFailed, "{message}");
    assert!(message.contains("ermission denied"), "{message}");
    canary.untouched("fileuri", &sandbox);

    let big = cluster.dir.path().join("big.bin");
    std::fs::write(&big, vec![7u8; 3 << 20]).unwrap();
    let mut bounded = task(
        "bigfetch",
        "true",
        vec![uri(&format!("file://{}", big.display()), None)],
    );
    bounded.resources = tepui_proto::resources::parse("cpus:0.1;mem:32;disk:1").unwrap();
    let (state, message, _) = cluster.run(bounded).await;
    assert_eq!(state, TaskState::TaskFailed, "{message}");
    assert!(message.contains("disk resource"), "{message}");
}

/// Pattern: a fetched archive plants a symlink where the agent later
/// opens a sandbox path as root (`stdout -> /etc/cron.d/x`), so the
/// task's output lands in a host file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_stdout_link_is_not_followed() {
    let mut cluster = Cluster::start("stdoutlink", "root", &[]).await;
    let canary = Canary::new(cluster.dir.path());
    let served = cluster.dir.path().join("served");
    std::fs::create_dir(&served).unwrap();
    sh(
        &format!(
            "ln -s {} stdout && tar cf plant.tar stdout && rm stdout",
            canary.file.display()
        ),
        &served,
    );
    let plant = format!("file://{}", served.join("plant.tar").display());
    let (state, message, sandbox) = cluster
        .run(task("stdoutlink", "echo PWNED", vec![uri(&plant, None)]))
        .await;
    assert_eq!(state, TaskState::TaskFailed, "{message}");
    assert!(message.contains("stdout"), "{message}");
    canary.untouched("stdoutlink", &sandbox);
}

/// Pattern: a second URI's `output_file` writes through a directory
/// link the first URI's archive planted (`d -> /etc`, `d/cron.d/x`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_file_is_not_written_through_a_planted_link() {
    let mut cluster = Cluster::start("outlink", "root", &[]).await;
    let canary = Canary::new(cluster.dir.path());
    let served = cluster.dir.path().join("served");
    std::fs::create_dir(&served).unwrap();
    sh(
        &format!(
            "ln -s {} d && tar cf plant.tar d && rm d && echo payload > payload",
            canary.dir.display()
        ),
        &served,
    );
    let uris = vec![
        uri(
            &format!("file://{}", served.join("plant.tar").display()),
            None,
        ),
        uri(
            &format!("file://{}", served.join("payload").display()),
            Some("d/dropped"),
        ),
    ];
    let (state, message, sandbox) = cluster.run(task("outlink", "true", uris)).await;
    assert_eq!(state, TaskState::TaskFailed, "{message}");
    assert!(message.contains("d/dropped"), "{message}");
    assert!(
        !canary.dir.join("dropped").exists(),
        "written through the link"
    );
    canary.untouched("outlink", &sandbox);
}

/// Pattern: the overlay's upper dir was `.tepui-rootfs/upper` in the
/// sandbox, so an archive planting `.tepui-rootfs/upper -> /etc` made a
/// host directory the image task's writable layer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_overlay_upper_link_is_not_the_writable_layer() {
    let mut cluster = Cluster::start_with("upperlink", "root", &[], import_busybox).await;
    let canary = Canary::new(cluster.dir.path());
    let served = cluster.dir.path().join("served");
    std::fs::create_dir(&served).unwrap();
    sh(
        &format!(
            "mkdir .tepui-rootfs && ln -s {} .tepui-rootfs/upper && tar cf plant.tar .tepui-rootfs",
            canary.dir.display()
        ),
        &served,
    );
    let mut t = task(
        "upperlink",
        "echo x > /dropped; rm -f /secret; ls /",
        vec![uri(
            &format!("file://{}", served.join("plant.tar").display()),
            None,
        )],
    );
    t.container = Some(in_image());
    let (state, message, sandbox) = cluster.run(t).await;
    assert_eq!(state, TaskState::TaskFinished, "{message}");
    assert!(
        !canary.dir.join("dropped").exists(),
        "the host dir was the upper layer"
    );
    canary.untouched("upperlink", &sandbox);
}

/// Pattern: a task re-plants `stdout -> /etc/...` between the rotation's
/// rename and its reopen, and the executor (as root) appends its output
/// to the host file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_swapped_in_during_log_rotation_is_not_followed() {
    let mut cluster = Cluster::start(
        "rotation",
        "root",
        &[
            "--container-log-max-size",
            "64",
            "--container-log-max-files",
            "1",
        ],
    )
    .await;
    let canary = Canary::new(cluster.dir.path());
    let script = format!(
        "(while :; do ln -sf {} stdout 2>/dev/null; done) & \
         i=0; while [ $i -lt 20000 ]; do echo 0123456789abcdef; i=$((i+1)); done; kill $!",
        canary.file.display()
    );
    let (state, message, sandbox) = cluster.run(task("rotation", &script, vec![])).await;
    assert_eq!(state, TaskState::TaskFinished, "{message}");
    canary.untouched("rotation", &sandbox);
    let logged = walk(&sandbox)
        .iter()
        .any(|f| std::fs::read_to_string(f).is_ok_and(|t| t.contains("0123456789abcdef")));
    assert!(logged, "the task's output went to its own files");
}

/// The busybox test image in the agent's store (before it starts).
fn import_busybox(dir: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let layout = dir.join("layout");
    sh(
        &format!(
            "{} {} --variant hostile",
            root.join("tests/fixtures/busybox-image.sh").display(),
            layout.display()
        ),
        dir,
    );
    let store = dir.join("images");
    let provisioner = tepui_containerizer::provisioner::Provisioner::new(
        tepui_containerizer::provisioner::ProvisionerConfig::new(store),
    )
    .unwrap();
    let name = "tepui.test/busybox:latest".parse().unwrap();
    let import = provisioner.import(
        &layout,
        Some(&name),
        Arc::new(tepui_containerizer::provisioner::NoProgress),
    );
    let runtime = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| runtime.block_on(import)).unwrap();
}

fn in_image() -> tepui_proto::v1::ContainerInfo {
    use tepui_proto::v1::{ContainerInfo, Image, container_info, image};
    ContainerInfo {
        r#type: container_info::Type::Mesos as i32,
        mesos: Some(container_info::MesosInfo {
            image: Some(Image {
                r#type: image::Type::Docker as i32,
                docker: Some(image::Docker {
                    name: "tepui.test/busybox:latest".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

/// A block device of this host that this test itself can open (a v1
/// devices cgroup or an outer runtime may deny some), so only the task's
/// device filter can be what stops it; a disk when there is one.
fn openable_block_device() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .map(|e| Path::new("/dev").join(e.file_name()))
        .filter(|dev| std::fs::File::open(dev).is_ok())
        .collect();
    found.sort_by_key(|dev| {
        let name = dev.to_string_lossy().into_owned();
        (name.contains("loop") || name.contains("zram"), name)
    });
    found
        .into_iter()
        .next()
        .expect("no block device this test can open")
}

/// Pattern: a root task keeping CAP_MKNOD makes a node of the host's disk
/// (or opens one it can see) and reads the disk under every filesystem
/// permission (runc's and crun's device cgroup exists for this). The
/// cgroup BPF device filter denies both: mknod of a block device and
/// opening the host's block device fail with EPERM; /dev/null works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_task_can_neither_make_nor_open_a_host_block_device() {
    let mut cluster = Cluster::start("mknod", "root", &[]).await;
    let canary = Canary::new(cluster.dir.path());
    let host_disk = openable_block_device();
    // The task's /dev is its own (a tmpfs with the usual devices): the
    // host's disk is reached through a node of it that the test makes in
    // a directory the task can see.
    let disk = cluster.dir.path().join("disk");
    let rdev = std::fs::metadata(&host_disk).unwrap().rdev();
    let made = std::process::Command::new("mknod")
        .arg(&disk)
        .arg("b")
        .arg(libc::major(rdev).to_string())
        .arg(libc::minor(rdev).to_string())
        .status()
        .unwrap();
    assert!(made.success(), "mknod of {}", host_disk.display());
    // Opened for writing, never written: the disk must stay untouched
    // even were the filter missing.
    let script = format!(
        "mknod ./sda b 8 0 && echo MADE || echo NOMKNOD; \
         head -c 1 {disk} >/dev/null && echo READ || echo NOREAD; \
         (: >>{disk}) && echo OPENW || echo NOOPENW; \
         echo x >/dev/null && echo NULL",
        disk = disk.display()
    );
    let (state, message, sandbox) = cluster.run(task("mknod", &script, vec![])).await;
    let out = stdout_of(&sandbox);
    let err = std::fs::read_to_string(sandbox.join("stderr")).unwrap_or_default();
    assert_eq!(state, TaskState::TaskFinished, "{message} {out}");
    for word in ["NOMKNOD", "NOREAD", "NOOPENW", "NULL"] {
        assert!(
            out.lines().any(|l| l == word),
            "{word} missing: {out}\n{err}"
        );
    }
    assert!(
        err.matches("Operation not permitted").count() >= 3,
        "EPERM expected for mknod, read and open for write:\n{err}"
    );
    assert!(!sandbox.join("sda").exists());
    canary.untouched("mknod", &sandbox);
}

/// GET `path` from the agent at `endpoint` as `principal` (secret
/// `<principal>-secret`): (status, body).
async fn get_as(endpoint: &str, path: &str, principal: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let credential = tepui_proto::authentication::Credential {
        principal: principal.into(),
        secret: format!("{principal}-secret"),
    };
    let mut stream = tokio::net::TcpStream::connect(endpoint).await.unwrap();
    let head = format!(
        "GET {path} HTTP/1.0\r\nHost: agent\r\nAuthorization: {}\r\n\r\n",
        credential.basic_header()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// Pattern: any principal reads every framework's sandbox through
/// /files (the agent asked no authorizer). With `--acls` granting
/// access_sandboxes of `nobody`'s runs to `ops` only, `mallory` (a
/// known principal of another framework) gets 403 and none of the file,
/// for a file and for the sandbox's listing; `ops` reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_framework_s_sandbox_is_refused_through_files() {
    let secrets = tempfile::tempdir().unwrap();
    let credentials = secrets.path().join("http.json");
    std::fs::write(
        &credentials,
        r#"{"credentials":[{"principal":"ops","secret":"ops-secret"},{"principal":"mallory","secret":"mallory-secret"}]}"#,
    )
    .unwrap();
    let acls = r#"{"access_sandboxes":[
        {"principals":{"values":["ops"]},"users":{"values":["nobody"]}},
        {"principals":{"type":"ANY"},"users":{"type":"NONE"}}]}"#;
    let mut cluster = Cluster::start(
        "files-acl",
        "nobody",
        &[
            "--authenticate_http_readonly",
            "--http_credentials",
            credentials.to_str().unwrap(),
            "--acls",
            acls,
        ],
    )
    .await;
    let (state, message, sandbox) = cluster
        .run(task("secret", "echo THE-SANDBOX-SECRET", vec![]))
        .await;
    assert_eq!(state, TaskState::TaskFinished, "{message}");
    let endpoint = {
        let master = cluster._server.lock();
        master
            .agents
            .values()
            .next()
            .unwrap()
            .endpoint
            .clone()
            .unwrap()
    };
    let stdout = format!("/files/read?path={}/stdout&offset=0", sandbox.display());
    let listing = format!("/files/browse?path={}", sandbox.display());
    for path in [&stdout, &listing] {
        let (status, body) = get_as(&endpoint, path, "mallory").await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body.contains("access_sandboxes"), "{body}");
        assert!(
            !body.contains("THE-SANDBOX-SECRET") && !body.contains("stdout\""),
            "{body}"
        );
    }
    let (status, body) = get_as(&endpoint, &stdout, "ops").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("THE-SANDBOX-SECRET"), "{body}");
}

/// The static probe of `support/escape_probe.c` (busybox has no applet
/// for a chroot escape or ptrace), built into `dir`, as a URI the
/// fetcher puts in the sandbox, executable.
fn escape_probe(dir: &Path) -> command_info::Uri {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/escape_probe.c");
    let served = dir.join("probe");
    std::fs::create_dir_all(&served).unwrap();
    let binary = served.join("escape_probe");
    let status = std::process::Command::new("cc")
        .args(["-static", "-O1", "-o"])
        .arg(&binary)
        .arg(&source)
        .status()
        .unwrap();
    assert!(status.success(), "building {}", source.display());
    command_info::Uri {
        value: format!("file://{}", binary.display()),
        executable: Some(true),
        ..Default::default()
    }
}

/// The lines of a task's `ls` output.
fn lines(out: &str) -> Vec<&str> {
    out.lines().map(str::trim).collect()
}

/// Pattern: `/proc/1/root` from a chrooted task. The built-in executor
/// chrooted the task and was pid 1 of its pid namespace, on the host's
/// root, so `/proc/1/root/` was the host's `/` (the magic-link way out
/// of runc's CVE-2019-5736 class, and the issue's `/etc/os-release`
/// read). The task is now pid 1 of a pid namespace of its own,
/// pivot_root'ed into the image, with a /proc of that namespace:
/// `/proc/1/root/` lists the image's root and the canary is not there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_task_s_proc_1_root_is_the_image() {
    let mut cluster = Cluster::start_with("proc1root", "root", &[], import_busybox).await;
    let canary = Canary::new(cluster.dir.path());
    let script = format!(
        "echo pid $$; ls /proc/1/root/; cat /proc/1/root{} && echo READ || echo DENIED",
        canary.file.display()
    );
    let mut t = task("proc1root", &script, vec![]);
    t.container = Some(in_image());
    let (state, message, sandbox) = cluster.run(t).await;
    let out = stdout_of(&sandbox);
    assert_eq!(state, TaskState::TaskFinished, "{message} {out}");
    let seen = lines(&out);
    assert!(seen.contains(&"pid 1"), "the task is pid 1: {out}");
    for image_dir in ["bin", "etc", "mnt", "proc"] {
        assert!(seen.contains(&image_dir), "{image_dir} missing: {out}");
    }
    // The busybox image has no /usr and no /lib; the host has both.
    assert!(
        !seen.contains(&"usr") && !seen.contains(&"lib"),
        "/proc/1/root/ is the host's root: {out}"
    );
    assert!(seen.contains(&"DENIED"), "{out}");
    canary.untouched("proc1root", &sandbox);
}

/// Pattern: the classic chroot escape (`mkdir x; chroot x; cd ../../..;
/// chroot .`), open to any task keeping CAP_SYS_CHROOT that was merely
/// chrooted: its working directory stayed outside the new root, `..`
/// climbed to the host's `/` and a second chroot made it the root. In
/// a mount namespace pivot_root'ed into the image with the old root
/// detached, `..` stops at the image's root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chroot_escape_stays_in_the_image() {
    let mut cluster = Cluster::start_with("chroot", "root", &[], import_busybox).await;
    let canary = Canary::new(cluster.dir.path());
    let probe = escape_probe(cluster.dir.path());
    let script = format!(
        "/mnt/mesos/sandbox/escape_probe chroot {}; ls /",
        canary.file.display()
    );
    let mut t = task("chroot", &script, vec![probe]);
    t.container = Some(in_image());
    let (state, message, sandbox) = cluster.run(t).await;
    let out = stdout_of(&sandbox);
    assert_eq!(state, TaskState::TaskFinished, "{message} {out}");
    assert!(
        !out.contains("READ"),
        "the escape read the host's canary: {out}"
    );
    assert!(
        out.contains(&format!(
            "open {}: No such file or directory",
            canary.file.display()
        )),
        "the escape ended inside the image: {out}\n{}",
        std::fs::read_to_string(sandbox.join("stderr")).unwrap_or_default()
    );
    canary.untouched("chroot", &sandbox);
}

/// Pattern: ptrace of pid 1, the executor (root, on the host's root,
/// holding the executor's token), from its task: a task granted
/// CAP_SYS_PTRACE attached to it and could run anything as it (the
/// sibling-process attacks of runc's CVE-2019-5736 and CVE-2016-9962).
/// The task's pid namespace holds only its own processes: the executor
/// is neither listed nor reachable, and pid 1 is the task's own shell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_task_can_neither_see_nor_ptrace_the_executor() {
    use tepui_isolators::capabilities::{DEFAULT, number};
    let mut names: Vec<&str> = DEFAULT.to_vec();
    names.push("SYS_PTRACE");
    let bounding = format!(
        r#"{{"capabilities": [{}]}}"#,
        names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut cluster = Cluster::start_with(
        "ptrace",
        "root",
        &["--bounding-capabilities", &bounding],
        import_busybox,
    )
    .await;
    let canary = Canary::new(cluster.dir.path());
    let probe = escape_probe(cluster.dir.path());
    // sh stays pid 1 (the probe is not its last command, so not exec'd).
    let mut t = task(
        "ptrace",
        "/mnt/mesos/sandbox/escape_probe ptrace; echo probed",
        vec![probe],
    );
    let mut container = in_image();
    container.linux_info = Some(tepui_proto::v1::LinuxInfo {
        effective_capabilities: Some(tepui_proto::v1::CapabilityInfo {
            // Mesos numbers capabilities from 1000.
            capabilities: names
                .iter()
                .map(|n| 1000 + number(n).unwrap() as i32)
                .collect(),
        }),
        ..Default::default()
    });
    t.container = Some(container);
    let (state, message, sandbox) = cluster.run(t).await;
    let out = stdout_of(&sandbox);
    assert_eq!(state, TaskState::TaskFinished, "{message} {out}");
    assert!(out.contains("probed"), "{out}");
    assert!(
        !out.contains("tepui-executor"),
        "the executor is visible from the task: {out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("pid 1 [")
            && l.contains("sh -c /mnt/mesos/sandbox/escape_probe ptrace")),
        "pid 1 is the task's own shell: {out}\n{}",
        std::fs::read_to_string(sandbox.join("stderr")).unwrap_or_default()
    );
    canary.untouched("ptrace", &sandbox);
}

/// The host's core_pattern, put back when the test ends (a failing run
/// of the case below would otherwise leave the host's changed).
struct CorePattern(Vec<u8>);

const CORE_PATTERN: &str = "/proc/sys/kernel/core_pattern";

impl Drop for CorePattern {
    fn drop(&mut self) {
        if std::fs::read(CORE_PATTERN).ok().as_deref() != Some(&self.0[..])
            && let Err(e) = std::fs::write(CORE_PATTERN, &self.0)
        {
            eprintln!("restoring {CORE_PATTERN}: {e}");
        }
    }
}

/// Pattern: a root task without an image writes the host's
/// `/proc/sys/kernel/core_pattern` (a `|program` there runs as root on
/// the host at the next crash: the core_pattern escape of CVE-2022-0492's
/// write-ups and of Docker's masked paths). Its /proc/sys is read-only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_task_cannot_write_the_host_s_core_pattern() {
    let mut cluster = Cluster::start("corepattern", "root", &[]).await;
    let canary = Canary::new(cluster.dir.path());
    let before = CorePattern(std::fs::read(CORE_PATTERN).unwrap());
    let script = format!(
        "id -u; echo core.tepui-hostile > {CORE_PATTERN} && echo WROTE || echo DENIED; \
         cat {} >/dev/null && echo CANARY",
        canary.file.display()
    );
    let (state, message, sandbox) = cluster.run(task("corepattern", &script, vec![])).await;
    let out = stdout_of(&sandbox);
    let err = std::fs::read_to_string(sandbox.join("stderr")).unwrap_or_default();
    assert_eq!(state, TaskState::TaskFinished, "{message} {out}");
    assert!(out.starts_with("0\n"), "the task runs as root: {out}");
    assert_eq!(
        std::fs::read(CORE_PATTERN).unwrap(),
        before.0,
        "the host's core_pattern changed"
    );
    assert!(lines(&out).contains(&"DENIED"), "{out}");
    assert!(err.contains("Read-only file system"), "{err}");
    // Root on the host's view still reads root's files (Mesos's
    // semantics for a root task): the canary here is core_pattern.
    assert!(lines(&out).contains(&"CANARY"), "{out}");
    assert!(
        canary.before == snapshot(&canary.dir, &canary.file),
        "the canary changed"
    );
}

/// Pattern: a root task without an image writes its pid into another
/// cgroup's `cgroup.procs` on the host's cgroup tree, leaving its
/// container's limits and accounting (and, with release_agent in v1,
/// CVE-2022-0492's way out). /sys and every cgroup mount under it are
/// read-only for the task, and the host cgroup stays empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_task_cannot_join_a_host_cgroup() {
    let host = owned_cgroup("tepui-hostile-hostcg");
    std::fs::create_dir_all(&host).unwrap();
    let _host_cleanup = Cleanup(host.clone());
    let mut cluster = Cluster::start("hostcg", "root", &[]).await;
    let canary = Canary::new(cluster.dir.path());
    let procs = host.join("cgroup.procs");
    let script = format!(
        "echo $$ > {} && echo MOVED || echo DENIED; cat /proc/self/cgroup",
        procs.display()
    );
    let (state, message, sandbox) = cluster.run(task("hostcg", &script, vec![])).await;
    let out = stdout_of(&sandbox);
    let err = std::fs::read_to_string(sandbox.join("stderr")).unwrap_or_default();
    assert_eq!(state, TaskState::TaskFinished, "{message} {out}");
    assert!(lines(&out).contains(&"DENIED"), "{out}");
    assert!(err.contains("Read-only file system"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&procs).unwrap(),
        "",
        "a task joined the host cgroup"
    );
    canary.untouched("hostcg", &sandbox);
}
