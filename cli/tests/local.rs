//! `tepui local` as the quick start runs it, as root: a master and an agent
//! in one process; `tepui run` runs a task from an OCI image through them,
//! and SIGINT stops both cleanly.

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tepui() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tepui"));
    command.env_remove("RUST_BACKTRACE");
    command
}

/// A busybox OCI image imported into a store under `dir`.
fn image_store(dir: &Path) -> std::path::PathBuf {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let layout = dir.join("busybox");
    let store = dir.join("images");
    assert!(
        Command::new(fixtures.join("busybox-image.sh"))
            .arg(&layout)
            .status()
            .unwrap()
            .success()
    );
    let import = tepui()
        .args(["image", "--store"])
        .arg(&store)
        .arg("import")
        .arg(&layout)
        .args(["--name", "busybox:latest"])
        .output()
        .unwrap();
    assert!(import.status.success(), "{import:?}");
    store
}

/// Kills `tepui local` if it still runs, and removes its cgroup subtree,
/// when the test ends, passed or failed: no task outlives it.
struct Guard {
    local: Option<std::process::Child>,
    cgroup: std::path::PathBuf,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(local) = &mut self.local {
            let _ = local.kill();
            let _ = local.wait();
        }
        let _ = tepui_isolators::cgroups::remove_subtree(&self.cgroup, Duration::from_secs(10));
    }
}

#[test]
fn a_local_cluster_runs_a_task_from_an_image_and_stops_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    // A task's user must reach its sandbox, as under /var/lib.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let store = image_store(dir.path());
    let (master_port, agent_port) = (free_port(), free_port());
    let cgroup = tepui_isolators::cgroups::Hierarchy::default_root()
        .unwrap()
        .with_file_name(format!("tepui-cli-local-{}", std::process::id()));
    let executor = Path::new(env!("CARGO_BIN_EXE_tepui")).with_file_name("tepui-executor");
    let local = tepui()
        .arg("local")
        .arg("--work-dir")
        .arg(dir.path().join("local"))
        .args(["--master-port", &master_port.to_string()])
        .args(["--agent-port", &agent_port.to_string()])
        .arg("--cgroup-root")
        .arg(&cgroup)
        .arg("--container-state-dir")
        .arg(dir.path().join("state"))
        .arg("--store")
        .arg(&store)
        .env("TEPUI_COMMAND_EXECUTOR", &executor)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = Guard {
        local: Some(local),
        cgroup,
    };
    let local = guard.local.as_mut().unwrap();
    let mut stderr = BufReader::new(local.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut line = String::new();
    while !line.contains("ready") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "tepui local ended"
        );
        assert!(Instant::now() < deadline, "tepui local never got ready");
    }
    assert!(
        line.contains(&format!("master on 127.0.0.1:{master_port}")),
        "{line}"
    );
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));

    // Authentication is on: without the credential tepui local made,
    // nothing is run or shown.
    let master = format!("127.0.0.1:{master_port}");
    let credential = dir.path().join("local/secrets/client.json");
    let canary = dir.path().join("canary-from-intruder");
    let refused = tepui()
        .args(["run", "--master", &master, "--", "touch"])
        .arg(&canary)
        .output()
        .unwrap();
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("401"),
        "{refused:?}"
    );
    assert!(!canary.exists());
    let ps = tepui().args(["ps", "--master", &master]).output().unwrap();
    assert!(!ps.status.success(), "{ps:?}");
    assert!(
        String::from_utf8_lossy(&ps.stderr).contains("401"),
        "{ps:?}"
    );
    let tepui = || {
        let mut command = tepui();
        command.arg("--credential").arg(&credential);
        command
    };

    let run = tepui()
        .args(["run", "--master", &format!("127.0.0.1:{master_port}")])
        .args(["--image", "busybox:latest", "--"])
        .args(["sh", "-c", "echo hello from tepui; cat /etc/layer3; exit 3"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(3), "{run:?}");
    assert!(stdout.starts_with("hello from tepui\n"), "{run:?}");
    // A file only the image's third layer has: the task ran in the image.
    assert!(stdout.contains("\nthree"), "{stdout}");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("is TASK_FAILED"), "{stderr}");

    // As a user: `--user`, else the invoking user's name (root here).
    for (user, uid) in [(Some("nobody"), "65534\n"), (None, "0\n")] {
        let mut run = tepui();
        run.args(["run", "--master", &format!("127.0.0.1:{master_port}")]);
        if let Some(user) = user {
            run.args(["--user", user]);
        }
        let run = run.args(["--", "id", "-u"]).output().unwrap();
        assert_eq!(run.status.code(), Some(0), "{run:?}");
        assert_eq!(String::from_utf8_lossy(&run.stdout), uid, "{run:?}");
    }

    let mut local = guard.local.take().unwrap();
    let sigint = Command::new("kill")
        .args(["-INT", &local.id().to_string()])
        .status()
        .unwrap();
    assert!(sigint.success());
    let status = local.wait().unwrap();
    assert!(status.success(), "tepui local ended with {status}");
}
