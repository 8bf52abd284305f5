//! The unit files pass `systemd-analyze verify` without a word, as
//! installed (with @BINDIR@ replaced by a directory of executables).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const UNITS: &[&str] = &[
    "tepui-master.service",
    "tepui-agent.service",
    "tepui-containers.service",
];

#[test]
fn the_units_verify_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for name in ["tepui", "tepui-master", "tepui-agent"] {
        let path = bin.join(name);
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("units");
    for unit in UNITS {
        let text = std::fs::read_to_string(source.join(unit)).unwrap();
        assert!(text.contains("Type=notify"), "{unit} is not Type=notify");
        let installed = text.replace("@BINDIR@", bin.to_str().unwrap());
        std::fs::write(dir.path().join(unit), installed).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(UNITS.iter().map(|u| format!("./{u}")))
        .current_dir(dir.path())
        .output()
        .expect("systemd-analyze (Debian's systemd package) runs");
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}

#[test]
fn the_agent_keeps_no_container_in_its_own_unit() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("units");
    let agent = std::fs::read_to_string(source.join("tepui-agent.service")).unwrap();
    let holder = std::fs::read_to_string(source.join("tepui-containers.service")).unwrap();
    // The agent's cgroup root is inside the holder's delegated cgroup.
    assert!(agent.contains(
        "TEPUI_CGROUP_ROOT=/sys/fs/cgroup/system.slice/tepui-containers.service/containers"
    ));
    assert!(agent.contains("Requires=tepui-containers.service"));
    assert!(!agent.contains("Delegate="));
    assert!(holder.contains("Delegate=yes"));
    assert!(holder.contains("cgroup-holder"));
}
