//! Layer conformance: an image whose layers carry every kind of metadata
//! (tests/fixtures/conformance-image.py: crafted edge cases, a PAX sparse
//! file, a real Python installation with its .pyc files) is imported into
//! a tepui store and its layers mounted as one read-only overlayfs, and
//! unpacked by umoci (`umoci raw unpack`, as root, so owners are kept);
//! the two trees must agree entry by entry (tests/fixtures/compare-trees.py:
//! type, mode, owner, size, mtime, xattrs, link target, device, content,
//! hardlinks). Needs root, python3, GNU tar and umoci (Debian's package,
//! installed here with apt-get when missing).

// A panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use tepui_containerizer::provisioner::{NoProgress, Provisioner, ProvisionerConfig};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// umoci, installed from Debian when missing.
fn ensure_umoci() {
    let found = |_: ()| Command::new("umoci").arg("--version").output().is_ok();
    if found(()) {
        return;
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends", "umoci"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
    assert!(
        matches!(status, Ok(s) if s.success()) && found(()),
        "umoci is needed as the reference unpacker and `apt-get install umoci` failed"
    );
}

/// A read-only overlayfs of layer directories, unmounted when dropped.
struct Overlay(PathBuf);

impl Overlay {
    fn mount(lowers: &[PathBuf], target: &Path) -> Self {
        std::fs::create_dir_all(target).unwrap();
        let lowerdir: Vec<_> = lowers.iter().map(|l| l.to_str().unwrap()).collect();
        let options = CString::new(format!("lowerdir={}", lowerdir.join(":"))).unwrap();
        let c_target = CString::new(target.to_str().unwrap()).unwrap();
        // SAFETY: mount(2) with C strings that outlive the call.
        let ret = unsafe {
            libc::mount(
                c"overlay".as_ptr(),
                c_target.as_ptr(),
                c"overlay".as_ptr(),
                libc::MS_RDONLY,
                options.as_ptr().cast(),
            )
        };
        assert_eq!(ret, 0, "mount overlay: {}", std::io::Error::last_os_error());
        Self(target.to_owned())
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let target = CString::new(self.0.to_str().unwrap()).unwrap();
        // SAFETY: umount2(2) of a C string path.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

#[tokio::test]
async fn layers_unpack_as_umoci_unpacks_them() {
    ensure_umoci();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let fixtures = repo_root().join("tests/fixtures");
    run(Command::new("python3")
        .arg(fixtures.join("conformance-image.py"))
        .arg(&layout));

    let store = dir.path().join("store");
    let provisioner = Provisioner::new(ProvisionerConfig::new(store.clone())).unwrap();
    let image = provisioner
        .import(
            &layout,
            Some(&"conformance:latest".parse().unwrap()),
            Arc::new(NoProgress),
        )
        .await
        .unwrap()
        .remove(0);
    assert_eq!(image.record.layers.len(), 6, "the corpus has six layers");
    let lowers: Vec<PathBuf> = image
        .record
        .layers
        .iter()
        .rev()
        .map(|l| provisioner.store().layer_path(&l.digest))
        .collect();
    let merged = dir.path().join("tepui");
    let _overlay = Overlay::mount(&lowers, &merged);

    let reference = dir.path().join("umoci");
    run(Command::new("umoci")
        .args(["--log", "error", "raw", "unpack", "--image"])
        .arg(format!("{}:latest", layout.display()))
        .arg(&reference));

    // The trees' roots are the unpackers' own directories (no layer has
    // an entry for "."), so their times are when each was made.
    let out = Command::new("python3")
        .arg(fixtures.join("compare-trees.py"))
        .arg("tepui")
        .arg(&merged)
        .arg("umoci")
        .arg(&reference)
        .arg("--skip-root-times")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{report}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "tepui's unpacking differs from umoci's:\n{report}"
    );
    // The corpus is what it says: a file capability, a sparse file and
    // compiled bytecode came through (so the comparison compared them).
    let ping = CString::new(merged.join("bin/ping").to_str().unwrap()).unwrap();
    let mut cap = [0u8; 32];
    // SAFETY: lgetxattr into a live buffer of the length given.
    let n = unsafe {
        libc::lgetxattr(
            ping.as_ptr(),
            c"security.capability".as_ptr(),
            cap.as_mut_ptr().cast(),
            cap.len(),
        )
    };
    assert_eq!(n, 20, "bin/ping carries its file capability");
    let holey = std::fs::metadata(merged.join("sparse/holey")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(holey.len(), 64 << 20);
    assert!(
        holey.blocks() * 512 < 4 << 20,
        "sparse/holey keeps its holes ({} blocks)",
        holey.blocks()
    );
    assert!(report.contains("no differences"), "{report}");
}
