//! `tepui image` and `tepui container run --image` as a user runs them, as
//! root: an OCI layout imported, listed, run with the image's defaults and
//! with a command, removed; bad input refused in one line.

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tepui(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tepui"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("TEPUI_LOG")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A one-line `tepui: ...` error, exit 1, containing `needle`.
fn refused(out: &Output, needle: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("tepui: ") && err.trim_end().lines().count() == 1,
        "{err}"
    );
    assert!(err.contains(needle), "{needle:?} not in {err}");
}

#[test]
fn imports_lists_runs_and_removes_an_image() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("busybox");
    assert!(
        Command::new(repo().join("tests/fixtures/busybox-image.sh"))
            .arg(&layout)
            .status()
            .unwrap()
            .success()
    );
    let store = dir.path().join("store");
    let store = store.to_str().unwrap();
    let imported = ok(&tepui(&[
        "image",
        "--store",
        store,
        "import",
        layout.to_str().unwrap(),
    ]));
    assert!(
        imported.starts_with("imported docker.io/library/busybox:latest sha256:"),
        "{imported}"
    );
    let listed = ok(&tepui(&["image", "--store", store, "ls"]));
    assert!(
        listed
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("docker.io/library/busybox:latest"),
        "{listed}"
    );

    let cgroup = tepui_isolators::cgroups::Hierarchy::default_root()
        .unwrap()
        .with_file_name(format!("tepui-cli-image-{}", std::process::id()));
    let cgroup = cgroup.to_str().unwrap();
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let container = |extra: &[&str]| {
        let mut args = vec![
            "container",
            "--store",
            store,
            "--cgroup-root",
            cgroup,
            "--state-dir",
            state,
            "run",
            "--image",
            "busybox",
        ];
        args.extend_from_slice(extra);
        tepui(&args)
    };
    // No command: the image's Cmd, in its WorkingDir, with its Env.
    assert_eq!(ok(&container(&[])), "default command\nthree one\n");
    let out = ok(&container(&[
        "-e",
        "IMAGE_VAR=from-flag",
        "--",
        "sh",
        "-c",
        "pwd; echo $IMAGE_VAR; ls /var/opaque",
    ]));
    assert_eq!(out, "/etc\nfrom-flag\nc\n");
    let _ = std::fs::remove_dir(cgroup);

    let removed = ok(&tepui(&["image", "--store", store, "rm", "busybox"]));
    assert!(
        removed.starts_with("removed docker.io/library/busybox:latest (3 layers"),
        "{removed}"
    );
    assert_eq!(
        ok(&tepui(&["image", "--store", store, "ls"]))
            .lines()
            .count(),
        1
    );
    assert!(
        std::fs::read_dir(Path::new(store).join("layers/sha256"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn bad_input_is_one_clear_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let store = store.to_str().unwrap();
    refused(
        &tepui(&["image", "--store", store, "pull", "Busy/Box"]),
        "bad image reference \"Busy/Box\"",
    );
    refused(
        &tepui(&["image", "--store", store, "import", "/nonexistent/x.tar"]),
        "import /nonexistent/x.tar: No such file",
    );
    refused(
        &tepui(&["image", "--store", store, "rm", "nothing-here"]),
        "no image nothing-here in the store",
    );
    refused(
        &tepui(&["image", "--store", store, "--max-store-size", "lots", "ls"]),
        "--max-store-size",
    );
    refused(
        &tepui(&[
            "image",
            "--store",
            store,
            "--registry-config",
            "/nonexistent.json",
            "ls",
        ]),
        "registry credentials /nonexistent.json",
    );
    refused(
        &tepui(&[
            "image",
            "--store",
            store,
            "--registry-attempts",
            "1",
            "pull",
            "127.0.0.1:9/x:y",
        ]),
        "https://127.0.0.1:9/v2/x/manifests/y",
    );
    let not_a_layout = dir.path().join("empty");
    std::fs::create_dir(&not_a_layout).unwrap();
    refused(
        &tepui(&[
            "image",
            "--store",
            store,
            "import",
            not_a_layout.to_str().unwrap(),
        ]),
        "neither an OCI layout",
    );
    let bad_backend = tepui(&["image", "--store", store, "--rootfs-backend", "zfs", "ls"]);
    assert_eq!(bad_backend.status.code(), Some(2));
    assert!(text(&bad_backend.stderr).contains("unknown rootfs backend \"zfs\""));
}
