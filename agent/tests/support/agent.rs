//! How the agent's tests and its scale benchmark start the real
//! tepui-agent: loopback, everything under one work dir, its own cgroup
//! root; and how they GET its endpoints. Shared by `#[path]`.

// Not every test that includes this file uses every helper.
#![allow(dead_code)]

/// Polls `check` every 25 ms until it holds; fails the test naming `what`
/// once `limit` has passed.
pub async fn until(what: &str, limit: std::time::Duration, check: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// Kills and removes a test's cgroup subtree when the test ends, passed
/// or failed, so no task outlives it.
pub struct Cleanup(pub std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let timeout = std::time::Duration::from_secs(30);
        if let Err(e) = tepui_isolators::cgroups::remove_subtree(&self.0, timeout) {
            eprintln!("cleaning up {}: {e}", self.0.display());
        }
    }
}

/// A test's scratch: a temporary dir, and its own cgroup subtree
/// (`tepui-agent-<name>-<pid>`) killed and removed when the guard drops.
/// Leftovers of earlier runs that were killed before their guard ran
/// are removed first.
pub fn scratch(name: &str) -> (tempfile::TempDir, std::path::PathBuf, Cleanup) {
    let dir = tempfile::tempdir().unwrap();
    let cgroup = owned_cgroup(&format!("tepui-agent-{name}"));
    let cleanup = Cleanup(cgroup.clone());
    (dir, cgroup, cleanup)
}

/// A cgroup subtree `<prefix>-<pid>` beside the default root, for this
/// process; subtrees of the same prefix whose process is gone (a run
/// killed before its guard ran) are killed and removed first.
pub fn owned_cgroup(prefix: &str) -> std::path::PathBuf {
    let mine = tepui_isolators::cgroups::Hierarchy::default_root()
        .unwrap()
        .with_file_name(format!("{prefix}-{}", std::process::id()));
    let parent = mine.parent().unwrap().to_owned();
    for entry in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("removing a leftover {}", entry.path().display());
            drop(Cleanup(entry.path()));
        }
    }
    mine
}

/// Load on the machine while it lives: a busy loop per core, and a writer
/// that keeps the filesystem of `dir` busy with fsync'd writes. Killed on
/// drop, passed or failed.
pub struct Load(Vec<std::process::Child>);

impl Load {
    /// Starts the busy loops and the writer.
    pub fn start(dir: &std::path::Path) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut children = Vec::new();
        for _ in 0..cores {
            children.push(
                std::process::Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .spawn()
                    .unwrap(),
            );
        }
        let file = dir.join("load.fill");
        children.push(
            std::process::Command::new("sh")
                .arg("-c")
                .arg("while :; do dd if=/dev/zero of=\"$1\" bs=1M count=16 conv=fsync 2>/dev/null; done")
                .arg("load")
                .arg(&file)
                .spawn()
                .unwrap(),
        );
        Load(children)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The tepui-agent command for `master`, keeping its state under `work`
/// and its containers under `cgroup`, serving on `port` (0: any).
pub fn agent_command(
    master: &str,
    work: &std::path::Path,
    cgroup: &std::path::Path,
    port: u16,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tepui-agent"));
    command
        .args([
            "--master",
            master,
            "--ip",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .arg("--work-dir")
        .arg(work.join("work"))
        .arg("--container-state-dir")
        .arg(work.join("containers"))
        .arg("--image-store")
        .arg(work.join("images"))
        .arg("--cgroup-root")
        .arg(cgroup)
        .args(["--resources", "cpus:3;mem:1024", "--attributes", "rack:r1"])
        .env_remove("RUST_BACKTRACE")
        .kill_on_drop(true);
    command
}

/// GET `path` from the agent on `port` over HTTP/1.0: (status, body);
/// none while it does not answer (or answers garbage).
pub async fn get(port: u16, path: &str) -> Option<(u16, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: agent\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.ok()?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, response[split + 4..].to_vec()))
}

/// The container cgroups under `root` now (none if it is gone).
pub fn containers(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(root)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

/// A command task `id` that sleeps in its container until killed.
pub fn sleep_task(id: String) -> tepui_proto::v1::TaskInfo {
    tepui_proto::v1::TaskInfo {
        name: id.clone(),
        task_id: tepui_proto::v1::TaskId { value: id },
        command: Some(tepui_proto::v1::CommandInfo {
            value: Some("exec sleep 3600".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}
