//! systemd/install.sh, staged under DESTDIR: what it installs, that it
//! keeps an operator's configuration, and what uninstall and purge leave.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn install(dest: &Path, bin: &Path, args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh");
    let out = Command::new(script)
        .args(args)
        .env("DESTDIR", dest)
        .env("BIN_DIR", bin)
        .output()
        .unwrap();
    assert!(out.status.success(), "install.sh {args:?}: {out:?}");
}

fn files(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn installs_keeps_configuration_and_uninstalls() {
    let dir = tempfile::tempdir().unwrap();
    let (bin, dest) = (dir.path().join("bin"), dir.path().join("root"));
    std::fs::create_dir(&bin).unwrap();
    for name in ["tepui", "tepui-master", "tepui-agent", "tepui-executor"] {
        std::fs::write(bin.join(name), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(bin.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    install(&dest, &bin, &["--prefix", "/usr/local"]);
    assert_eq!(
        files(&dest),
        [
            "etc/systemd/system/tepui-agent.service",
            "etc/systemd/system/tepui-containers.service",
            "etc/systemd/system/tepui-master.service",
            "etc/tepui/agent.env",
            "etc/tepui/master.env",
            "usr/local/bin/tepui",
            "usr/local/bin/tepui-agent",
            "usr/local/bin/tepui-executor",
            "usr/local/bin/tepui-master",
        ]
    );
    let unit =
        std::fs::read_to_string(dest.join("etc/systemd/system/tepui-agent.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/tepui-agent\n"),
        "{unit}"
    );
    assert!(!unit.contains("@BINDIR@"));

    // An operator's setting survives a reinstall.
    let env = dest.join("etc/tepui/agent.env");
    std::fs::write(&env, "TEPUI_MASTER=m:5050\n").unwrap();
    install(&dest, &bin, &[]);
    assert_eq!(
        std::fs::read_to_string(&env).unwrap(),
        "TEPUI_MASTER=m:5050\n"
    );

    std::fs::create_dir_all(dest.join("var/lib/tepui/agent")).unwrap();
    install(&dest, &bin, &["--uninstall"]);
    assert_eq!(
        files(&dest),
        ["etc/tepui/agent.env", "etc/tepui/master.env"]
    );
    assert!(dest.join("var/lib/tepui/agent").is_dir());
    install(&dest, &bin, &["--uninstall", "--purge"]);
    assert!(files(&dest).is_empty());
    assert!(!dest.join("var/lib/tepui").exists());
}
