//! `tepui container` as a user runs it, as root: the exit code passes
//! through, and a container started by one process is recovered, waited
//! for and destroyed by others.

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Env {
    dir: tempfile::TempDir,
    rootfs: PathBuf,
    cgroup_root: PathBuf,
}

impl Env {
    fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/busybox-rootfs.sh");
        assert!(
            Command::new(script)
                .arg(&rootfs)
                .status()
                .unwrap()
                .success()
        );
        let mount = tepui_isolators::cgroups::Hierarchy::default_root().unwrap();
        let cgroup_root = mount.with_file_name(format!("tepui-cli-{name}-{}", std::process::id()));
        Self {
            dir,
            rootfs,
            cgroup_root,
        }
    }

    fn tepui(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_tepui"))
            .arg("container")
            .arg("--cgroup-root")
            .arg(&self.cgroup_root)
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .args(args)
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap()
    }

    fn rootfs(&self) -> &str {
        self.rootfs.to_str().unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.cgroup_root);
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn run_passes_output_and_exit_code_through() {
    let env = Env::new("run");
    let out = env.tepui(&[
        "run",
        "--rootfs",
        env.rootfs(),
        "--hostname",
        "h1",
        "--",
        "sh",
        "-c",
        "hostname; exit 5",
    ]);
    assert_eq!(out.status.code(), Some(5), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "h1\n");

    let out = env.tepui(&[
        "run",
        "--rootfs",
        env.rootfs(),
        "--",
        "sh",
        "-c",
        "kill -9 $$; sleep 1",
    ]);
    // pid 1 of a namespace ignores signals from inside it, so sleep ends it.
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));

    let out = env.tepui(&["run", "--rootfs", env.rootfs(), "--", "/bin/nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).ends_with("exec /bin/nope: ENOENT (No such file or directory)\n"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn another_process_recovers_waits_for_and_destroys_a_container() {
    let env = Env::new("recover");
    let out = env.tepui(&[
        "start",
        "--id",
        "long",
        "--rootfs",
        env.rootfs(),
        "--",
        "sleep",
        "1000",
    ]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let started = text(&out.stdout);
    let pid: i32 = started
        .trim()
        .strip_prefix("long ")
        .unwrap()
        .parse()
        .unwrap();
    // The starting process has exited; the container runs on.
    assert!(Path::new(&format!("/proc/{pid}")).exists());

    let listed = env.tepui(&["list"]);
    assert_eq!(text(&listed.stdout), format!("long {pid}\n"));

    let out = env.tepui(&["destroy", "long"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(!env.cgroup_root.join("long").exists());
    assert!(text(&env.tepui(&["list"]).stdout).is_empty());

    // wait, from a process that is not the container's parent.
    let out = env.tepui(&[
        "start",
        "--id",
        "short",
        "--rootfs",
        env.rootfs(),
        "--",
        "sleep",
        "0.5",
    ]);
    assert!(out.status.success());
    let out = env.tepui(&["wait", "short"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("its exit status went to the process that started it"));
    assert!(!env.cgroup_root.join("short").exists());

    let out = env.tepui(&["wait", "short"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "tepui: no running container short\n");
}

/// The `Seccomp_filters:` count a container's shell sees.
fn filters_seen(env: &Env) -> String {
    let out = env.tepui(&[
        "run",
        "--rootfs",
        env.rootfs(),
        "--",
        "sh",
        "-c",
        "grep Seccomp_filters /proc/self/status",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

#[test]
fn a_filter_compiled_by_one_run_is_read_by_the_next_and_a_bad_one_is_replaced() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new("seccomp-cache");
    let cache = env.dir.path().join("state/.seccomp");
    let files = || -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    };
    // The default profile: an allow-list and clone3's ENOSYS.
    assert_eq!(filters_seen(&env), "Seccomp_filters:\t2");
    let first = files();
    assert_eq!(first.len(), 1, "{first:?}");
    let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&cache), 0o700);
    assert_eq!(mode(&first[0]), 0o600);
    let compiled = std::fs::read(&first[0]).unwrap();
    // Read back: the same filters, the file unchanged.
    assert_eq!(filters_seen(&env), "Seccomp_filters:\t2");
    assert_eq!(files(), first);
    assert_eq!(std::fs::read(&first[0]).unwrap(), compiled);
    // Cut short, it is compiled again and written whole.
    std::fs::write(&first[0], &compiled[..compiled.len() / 2]).unwrap();
    assert_eq!(filters_seen(&env), "Seccomp_filters:\t2");
    assert_eq!(std::fs::read(&first[0]).unwrap(), compiled);
}

#[test]
fn seccomp_prints_the_default_filter_in_the_oci_format() {
    let out = Command::new(env!("CARGO_BIN_EXE_tepui"))
        .args(["container", "seccomp"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(json["defaultErrnoRet"], 1);
    let names: Vec<&str> = json["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["names"].as_array().unwrap())
        .filter_map(|n| n.as_str())
        .collect();
    assert!(names.contains(&"read"));
    // Resolved for the default capabilities: no CAP_SYS_ADMIN calls.
    assert!(!names.contains(&"mount"), "{names:?}");
}
