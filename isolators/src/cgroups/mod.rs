//! cgroup v2: the agent's subtree, one cgroup per container with a `leaf`
//! child holding its processes (the no-internal-process rule), a module
//! per controller, the device filter, and kill/wait/remove for the whole
//! tree.

mod container;
pub mod controllers;
pub mod cpu;
pub mod delegation;
pub mod devices;
pub mod io;
pub mod memory;
pub mod mount;
pub mod pids;

pub use container::{ContainerCgroup, Limitation, Limits, Usage};
pub use controllers::{Controller, Controllers};

use std::path::{Path, PathBuf};

/// A cgroup operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No cgroup2 filesystem is mounted.
    #[error("no cgroup2 filesystem is mounted (looked in /proc/self/mountinfo)")]
    NoCgroup2,
    /// A path is not inside the cgroup2 mount.
    #[error("{0} is not inside the cgroup2 mount {1}")]
    Outside(PathBuf, PathBuf),
    /// A file operation failed.
    #[error("{action} {path}: {error}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The cgroup file or directory.
        path: PathBuf,
        /// The failure.
        error: std::io::Error,
    },
    /// A limit was asked of a controller this hierarchy does not have.
    #[error(
        "{limit} requested, but the {controller} controller is not available in {root} (available: {available})"
    )]
    Unsupported {
        /// The limit, in words.
        limit: String,
        /// The missing controller.
        controller: Controller,
        /// The subtree.
        root: PathBuf,
        /// What there is.
        available: Controllers,
    },
    /// A limit value makes no sense.
    #[error("invalid {0}")]
    Invalid(String),
    /// The cgroup still had processes after the kill and the wait.
    #[error("{0} still has processes {1:?} after being killed")]
    StillPopulated(PathBuf, std::time::Duration),
}

pub(crate) fn io_error(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> CgroupError {
    let path = path.to_path_buf();
    move |error| CgroupError::Io {
        action,
        path,
        error,
    }
}

/// Reads a cgroup file.
pub(crate) fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(io_error("reading", path))
}

/// Writes a cgroup file (one write, as the kernel wants).
pub(crate) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(io_error("writing", path))
}

/// Where this process sees the cgroup2 filesystem mounted.
fn cgroup2_mount_point() -> Result<PathBuf, CgroupError> {
    let mountinfo = Path::new("/proc/self/mountinfo");
    let text = std::fs::read_to_string(mountinfo).map_err(io_error("reading", mountinfo))?;
    mount::cgroup2_mount(&text).ok_or(CgroupError::NoCgroup2)
}

/// `key value` lines (memory.stat, memory.events, cpu.stat,
/// cgroup.events) as pairs; lines whose value is not a number are skipped.
pub(crate) fn key_values(text: &str) -> impl Iterator<Item = (&str, u64)> {
    text.lines().filter_map(|line| {
        let (key, value) = line.split_once(' ')?;
        Some((key, value.trim().parse().ok()?))
    })
}

/// The agent's cgroup v2 subtree: containers are made beneath `root`.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    mount: PathBuf,
    root: PathBuf,
    controllers: Controllers,
}

impl Hierarchy {
    /// Opens (creating if needed) the subtree at `root`, which must lie in
    /// the cgroup2 mount, and enables in it every controller it can have.
    pub fn open(root: &Path) -> Result<Self, CgroupError> {
        let mount = cgroup2_mount_point()?;
        if !root.starts_with(&mount) || root == mount {
            return Err(CgroupError::Outside(root.to_path_buf(), mount));
        }
        std::fs::create_dir_all(root).map_err(io_error("creating", root))?;
        let available = Controllers::parse(&read(&root.join("cgroup.controllers"))?);
        let enabled = Controllers::parse(&read(&root.join("cgroup.subtree_control"))?);
        if !available.is_subset_of(enabled) {
            write(
                &root.join("cgroup.subtree_control"),
                &available.subtree_control_line(),
            )?;
        }
        Ok(Self {
            mount,
            root: root.to_path_buf(),
            controllers: Controllers::parse(&read(&root.join("cgroup.subtree_control"))?),
        })
    }

    /// The default subtree: `tepui` under the cgroup2 mount.
    pub fn default_root() -> Result<PathBuf, CgroupError> {
        Ok(cgroup2_mount_point()?.join("tepui"))
    }

    /// The cgroup2 mount point.
    pub fn mount(&self) -> &Path {
        &self.mount
    }

    /// The subtree's root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The controllers containers get (enabled in the subtree's root).
    pub fn controllers(&self) -> Controllers {
        self.controllers
    }

    /// Names of the container cgroups that exist beneath the root.
    pub fn container_names(&self) -> Result<Vec<String>, CgroupError> {
        let entries = std::fs::read_dir(&self.root).map_err(io_error("listing", &self.root))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_error("listing", &self.root))?;
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }
}

/// Kills every process under the cgroup at `path` (cgroup.kill) and
/// removes it with every cgroup below it, deepest first: the teardown of
/// a whole subtree, for tests and benchmarks that made one. Missing is fine.
pub fn remove_subtree(path: &Path, timeout: std::time::Duration) -> Result<(), CgroupError> {
    if !path.exists() {
        return Ok(());
    }
    let kill = path.join("cgroup.kill");
    std::fs::write(&kill, "1").map_err(|error| CgroupError::Io {
        action: "writing",
        path: kill,
        error,
    })?;
    let events = path.join("cgroup.events");
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(&events).unwrap_or_default();
        if !key_values(&text).any(|(k, v)| k == "populated" && v != 0) {
            break;
        }
        if std::time::Instant::now() > deadline {
            return Err(CgroupError::StillPopulated(path.to_owned(), timeout));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let mut dirs = Vec::new();
    let mut stack = vec![path.to_owned()];
    while let Some(dir) = stack.pop() {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            stack.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
        dirs.push(dir);
    }
    // Children were pushed after their parents: remove in reverse.
    for dir in dirs.iter().rev() {
        let mut tries = 0;
        loop {
            match std::fs::remove_dir(dir) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(error) => {
                    return Err(CgroupError::Io {
                        action: "removing",
                        path: dir.clone(),
                        error,
                    });
                }
            }
        }
    }
    Ok(())
}
