//! The mounts that make a directory a container's root filesystem: /proc
//! (with the host-revealing entries masked and the tunables read-only), a
//! minimal /dev, a read-only /sys, the sandbox and volumes. Every target
//! is resolved inside the root filesystem, following its symlinks as the
//! container would, so that a hostile image cannot aim a mount at the host.

use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use tepui_launcher::{Create, FsOp, PlanError};

/// Where the sandbox appears inside a container with its own root
/// filesystem (Mesos's MESOS_SANDBOX there).
pub const SANDBOX_IN_CONTAINER: &str = "/mnt/mesos/sandbox";

/// A host path mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// The host path.
    pub host: PathBuf,
    /// Where it appears in the container (absolute).
    pub container: PathBuf,
    /// Mounted read-only.
    pub read_only: bool,
}

/// A filesystem plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// A container path is not absolute.
    #[error("container path {0} is not absolute")]
    NotAbsolute(PathBuf),
    /// A path resolves through too many symlinks.
    #[error("{0} resolves through more than 40 symlinks inside the root filesystem")]
    SymlinkLoop(PathBuf),
    /// A host path for a volume does not exist.
    #[error("volume source {0}: {1}")]
    Source(PathBuf, std::io::Error),
    /// A path could not be read while resolving.
    #[error("resolving {0}: {1}")]
    Resolve(PathBuf, std::io::Error),
    /// A value cannot go into a launch plan.
    #[error(transparent)]
    Plan(#[from] PlanError),
}

/// `path` (as the container sees it) joined under `rootfs`, following
/// symlinks inside the root filesystem with `..` clamped at its top, so the
/// result always lies within `rootfs`. Missing components are kept as they
/// are (a mount creates them).
pub fn resolve_in_root(rootfs: &Path, path: &Path) -> Result<PathBuf, FsError> {
    let mut resolved = PathBuf::new();
    let mut pending: Vec<std::ffi::OsString> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = rootfs.join(&resolved).join(&part);
        match std::fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => {
                hops += 1;
                if hops > 40 {
                    return Err(FsError::SymlinkLoop(path.to_path_buf()));
                }
                let target = std::fs::read_link(&candidate)
                    .map_err(|e| FsError::Resolve(candidate.clone(), e))?;
                if target.is_absolute() {
                    resolved.clear();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => pending.push(n.to_owned()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => resolved.push(part),
        }
    }
    Ok(rootfs.join(resolved))
}

/// What a container's root filesystem gets mounted in it.
#[derive(Debug, Clone, Default)]
pub struct RootfsMounts {
    /// The host sandbox directory, bound at [`SANDBOX_IN_CONTAINER`].
    pub sandbox: Option<PathBuf>,
    /// Extra host paths.
    pub volumes: Vec<Volume>,
}

const NOSUID_NODEV_NOEXEC: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

/// /proc and /sys entries that leak host information or reach the host
/// kernel: hidden (a file under /dev/null, a directory under an empty
/// read-only tmpfs). The list Docker masks today: /proc/interrupts (the
/// host's devices and their activity) and the powercap counters
/// (CVE-2020-8694's power side channel) with the rest.
const MASKED: [&str; 12] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];

/// /proc entries that stay visible but read-only (kernel tunables, the
/// sysrq trigger, interrupt affinity).
const READ_ONLY: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Masks and read-only binds over the container's fresh /proc and /sys,
/// for the entries this kernel has (the host's /proc and /sys have the
/// same layout as the container's new instances).
fn protect_kernel_files(rootfs: &Path, ops: &mut Vec<FsOp>) -> Result<(), FsError> {
    let (masked, read_only) = kernel_files();
    for &(path, is_dir) in masked {
        let target = rootfs.join(&path[1..]);
        ops.push(if is_dir {
            FsOp::mount(
                "tmpfs",
                "tmpfs",
                &target,
                libc::MS_RDONLY | NOSUID_NODEV_NOEXEC,
                Some("size=0"),
            )?
        } else {
            FsOp::bind(Path::new("/dev/null"), &target, true, Create::Nothing)?
        });
    }
    for path in read_only {
        let target = rootfs.join(&path[1..]);
        ops.push(FsOp::bind(&target, &target, true, Create::Nothing)?);
    }
    Ok(())
}

/// The entries of [`MASKED`] this kernel has, each with whether it is a
/// directory, and those of [`READ_ONLY`]; looked up once, not per launch.
type KernelFiles = (Vec<(&'static str, bool)>, Vec<&'static str>);

fn kernel_files() -> &'static KernelFiles {
    static PRESENT: OnceLock<KernelFiles> = OnceLock::new();
    PRESENT.get_or_init(|| {
        let masked = MASKED
            .iter()
            .filter_map(|p| Some((*p, std::fs::metadata(p).ok()?.is_dir())))
            .collect();
        let read_only = READ_ONLY
            .iter()
            .copied()
            .filter(|p| std::fs::symlink_metadata(p).is_ok())
            .collect();
        (masked, read_only)
    })
}

/// A fresh procfs at `target`, for a container in a new pid namespace.
pub fn proc_mount(target: &Path) -> Result<FsOp, FsError> {
    Ok(FsOp::mount(
        "proc",
        "proc",
        target,
        NOSUID_NODEV_NOEXEC,
        None,
    )?)
}

/// The sandbox bound at `target`, nosuid and nodev: the sandbox is
/// written by the task, the fetcher and whoever can reach the agent's work
/// directory, and neither a device node nor a setuid binary found there
/// may work.
pub fn sandbox_bind(sandbox: &Path, target: &Path) -> Result<FsOp, FsError> {
    Ok(FsOp::bind_with(
        sandbox,
        target,
        libc::MS_NOSUID | libc::MS_NODEV,
        Create::Dir,
    )?)
}

/// Device nodes bound from the host into the container's /dev.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// The character devices of a minimal /dev: name, major, minor (Docker's
/// and runc's list, with the mode 0666 they all get).
const DEVICE_NUMBERS: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// How a minimal /dev gets its device nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nodes {
    /// Bound from the host's /dev (a root filesystem's /dev, elsewhere):
    /// the tmpfs is nodev, so a node made in it with CAP_MKNOD cannot be
    /// opened; each bound node is its own mount with the host /dev's flags.
    BindHost,
    /// Made with mknod (the host's /dev itself is covered first): the
    /// tmpfs cannot be nodev, and the cgroup device filter is what stops
    /// a node made there.
    Make,
}

/// A private minimal /dev at `dev`: a tmpfs with the usual devices, a new
/// devpts instance, /dev/shm and the fd links.
fn dev_ops(dev: &Path, nodes: Nodes, ops: &mut Vec<FsOp>) -> Result<(), FsError> {
    let nodev = match nodes {
        Nodes::BindHost => libc::MS_NODEV,
        Nodes::Make => 0,
    };
    ops.push(FsOp::mount(
        "tmpfs",
        "tmpfs",
        dev,
        libc::MS_NOSUID | nodev | libc::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?);
    match nodes {
        Nodes::BindHost => {
            for name in DEVICES {
                ops.push(FsOp::bind(
                    &Path::new("/dev").join(name),
                    &dev.join(name),
                    false,
                    Create::File,
                )?);
            }
        }
        Nodes::Make => {
            for (name, major, minor) in DEVICE_NUMBERS {
                ops.push(FsOp::char_device(&dev.join(name), 0o666, major, minor)?);
            }
        }
    }
    ops.push(FsOp::mount(
        "devpts",
        "devpts",
        &dev.join("pts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?);
    ops.push(FsOp::symlink("pts/ptmx", &dev.join("ptmx"))?);
    ops.push(FsOp::mount(
        "tmpfs",
        "shm",
        &dev.join("shm"),
        NOSUID_NODEV_NOEXEC,
        Some("mode=1777,size=65536k"),
    )?);
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        ops.push(FsOp::symlink(target, &dev.join(link))?);
    }
    Ok(())
}

/// The launch steps for a container that keeps the host's filesystem
/// view (a task without an image, as in Mesos), in its own mount
/// namespace: a /proc of its pid namespace (when it has one) with the
/// host-revealing entries masked and the tunables read-only, /sys and
/// every mount under it (the cgroup trees) read-only, and a private
/// minimal /dev.
pub fn host_ops(pid_namespace: bool) -> Result<Vec<FsOp>, FsError> {
    let mut ops = Vec::new();
    if pid_namespace {
        ops.push(proc_mount(Path::new("/proc"))?);
    }
    let sys = Path::new("/sys");
    ops.push(FsOp::bind(sys, sys, true, Create::Nothing)?);
    protect_kernel_files(Path::new("/"), &mut ops)?;
    dev_ops(Path::new("/dev"), Nodes::Make, &mut ops)?;
    Ok(ops)
}

/// The launch steps for a container rooted at `rootfs`, in order.
pub fn rootfs_ops(rootfs: &Path, mounts: &RootfsMounts) -> Result<Vec<FsOp>, FsError> {
    let at = |p: &str| resolve_in_root(rootfs, Path::new(p));
    let mut ops = vec![proc_mount(&at("/proc")?)?];
    dev_ops(&at("/dev")?, Nodes::BindHost, &mut ops)?;

    ops.push(FsOp::mount(
        "sysfs",
        "sysfs",
        &at("/sys")?,
        NOSUID_NODEV_NOEXEC | libc::MS_RDONLY,
        None,
    )?);
    protect_kernel_files(&at("/")?, &mut ops)?;

    if let Some(sandbox) = &mounts.sandbox {
        ops.push(sandbox_bind(sandbox, &at(SANDBOX_IN_CONTAINER)?)?);
    }
    for volume in &mounts.volumes {
        if !volume.container.is_absolute() {
            return Err(FsError::NotAbsolute(volume.container.clone()));
        }
        let meta =
            std::fs::metadata(&volume.host).map_err(|e| FsError::Source(volume.host.clone(), e))?;
        let create = if meta.is_dir() {
            Create::Dir
        } else {
            Create::File
        };
        let target = resolve_in_root(rootfs, &volume.container)?;
        ops.push(FsOp::bind(&volume.host, &target, volume.read_only, create)?);
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn confines_symlinks_to_the_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("usr/lib")).unwrap();
        symlink("/", r.join("escape")).unwrap();
        symlink("../../../..", r.join("usr/up")).unwrap();
        symlink("usr/lib", r.join("lib")).unwrap();
        symlink("loop", r.join("loop")).unwrap();

        assert_eq!(
            resolve_in_root(r, Path::new("/escape/etc")).unwrap(),
            r.join("etc")
        );
        assert_eq!(
            resolve_in_root(r, Path::new("/usr/up/etc/passwd")).unwrap(),
            r.join("etc/passwd")
        );
        assert_eq!(
            resolve_in_root(r, Path::new("/lib/x")).unwrap(),
            r.join("usr/lib/x")
        );
        assert_eq!(
            resolve_in_root(r, Path::new("/../../proc")).unwrap(),
            r.join("proc")
        );
        assert!(matches!(
            resolve_in_root(r, Path::new("/loop/x")),
            Err(FsError::SymlinkLoop(_))
        ));
    }

    #[test]
    fn refuses_relative_volume_targets_and_missing_sources() {
        let root = tempfile::tempdir().unwrap();
        let volume = |host: &str, container: &str| RootfsMounts {
            sandbox: None,
            volumes: vec![Volume {
                host: host.into(),
                container: container.into(),
                read_only: true,
            }],
        };
        let e = rootfs_ops(root.path(), &volume("/tmp", "data")).unwrap_err();
        assert_eq!(e.to_string(), "container path data is not absolute");
        let e = rootfs_ops(root.path(), &volume("/no/such/dir", "/data")).unwrap_err();
        assert!(
            e.to_string().starts_with("volume source /no/such/dir: "),
            "{e}"
        );
    }
}
