//! How the agent's tests and its scale benchmark start the real
//! tepui-agent: loopback, everything under one work dir, its own cgroup
//! root; and how they GET its endpoints. Shared by `#[path]`.

/// Kills and removes a test's cgroup subtree when the test ends, passed
/// or failed, so no task outlives it.
pub struct Cleanup(pub std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let timeout = std::time::Duration::from_secs(5);
        if let Err(e) = tepui_isolators::cgroups::remove_subtree(&self.0, timeout) {
            eprintln!("cleaning up {}: {e}", self.0.display());
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
