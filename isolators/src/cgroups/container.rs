//! One container's cgroup: `<root>/<name>` carries the limits, its child
//! `leaf` holds the processes.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{
    CgroupError, Controller, Controllers, Hierarchy, cpu, io, io_error, memory, pids, read, write,
};

/// The resource limits of a container; `None` leaves a limit unset.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// CPUs: the relative weight (cpu.weight).
    pub cpus: Option<f64>,
    /// A hard cap in CPUs (cpu.max, quota = cap × the 100 ms period);
    /// `None` is no cap.
    pub cpu_max: Option<f64>,
    /// memory.max in bytes.
    pub mem_bytes: Option<u64>,
    /// memory.high in bytes (reclaim pressure before the hard limit).
    pub mem_high_bytes: Option<u64>,
    /// pids.max.
    pub pids: Option<u64>,
    /// io.weight.
    pub io_weight: Option<u16>,
}

/// Why the kernel stopped a container, read from its cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limitation {
    /// The OOM killer killed in the cgroup at this memory.max.
    Memory {
        /// The limit in force, in bytes.
        limit_bytes: Option<u64>,
    },
}

impl std::fmt::Display for Limitation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Limitation::Memory {
                limit_bytes: Some(bytes),
            } => write!(
                f,
                "memory limit of {bytes} bytes reached; the kernel's OOM killer struck"
            ),
            Limitation::Memory { limit_bytes: None } => {
                f.write_str("memory limit reached; the kernel's OOM killer struck")
            }
        }
    }
}

/// Resource usage of a container, from its cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// From cpu.stat.
    pub cpu: cpu::CpuStat,
    /// From the memory files, when the controller is present.
    pub memory: Option<memory::MemoryStat>,
    /// pids.current, when the controller is present.
    pub pids: Option<u64>,
    /// io.stat summed over devices, when the controller is present.
    pub io: Option<io::IoStat>,
    /// Processes in the leaf.
    pub processes: u64,
}

/// A container's cgroup.
#[derive(Debug, Clone)]
pub struct ContainerCgroup {
    path: PathBuf,
    leaf: PathBuf,
    controllers: Controllers,
    root: PathBuf,
}

impl ContainerCgroup {
    /// Creates the cgroup and its leaf; fails if it already exists.
    pub fn create(hierarchy: &Hierarchy, name: &str) -> Result<Self, CgroupError> {
        let cgroup = Self::at(hierarchy, name);
        std::fs::create_dir(&cgroup.path).map_err(io_error("creating", &cgroup.path))?;
        if let Err(e) = std::fs::create_dir(&cgroup.leaf) {
            let _ = std::fs::remove_dir(&cgroup.path);
            return Err(io_error("creating", &cgroup.leaf)(e));
        }
        Ok(cgroup)
    }

    /// Opens an existing container cgroup (after a restart).
    pub fn open(hierarchy: &Hierarchy, name: &str) -> Result<Self, CgroupError> {
        let cgroup = Self::at(hierarchy, name);
        std::fs::metadata(&cgroup.path).map_err(io_error("opening", &cgroup.path))?;
        Ok(cgroup)
    }

    fn at(hierarchy: &Hierarchy, name: &str) -> Self {
        let path = hierarchy.root().join(name);
        Self {
            leaf: path.join("leaf"),
            path,
            controllers: hierarchy.controllers(),
            root: hierarchy.root().to_path_buf(),
        }
    }

    /// The container's cgroup directory (limits and statistics).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The leaf directory its processes live in.
    pub fn leaf(&self) -> &Path {
        &self.leaf
    }

    /// An fd of the leaf directory, for clone3's CLONE_INTO_CGROUP.
    pub fn leaf_fd(&self) -> Result<OwnedFd, CgroupError> {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&self.leaf)
            .map(OwnedFd::from)
            .map_err(io_error("opening", &self.leaf))
    }

    /// The leaf's cgroup.procs open for writing, for joining before exec.
    pub fn leaf_procs_fd(&self) -> Result<OwnedFd, CgroupError> {
        let procs = self.leaf.join("cgroup.procs");
        std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&procs)
            .map(OwnedFd::from)
            .map_err(io_error("opening", &procs))
    }

    /// Refuses limits whose controller is missing, before anything starts.
    pub fn check(&self, limits: &Limits) -> Result<(), CgroupError> {
        let mut wanted = Vec::new();
        if let Some(cpus) = limits.cpus {
            cpu::validate(cpus)?;
            wanted.push((Controller::Cpu, format!("a cpu weight of {cpus} cpus")));
        }
        if let Some(max) = limits.cpu_max {
            cpu::validate(max)?;
            wanted.push((
                Controller::Cpu,
                format!("a cpu limit (cpu.max) of {max} cpus"),
            ));
        }
        if let Some(bytes) = limits.mem_bytes {
            wanted.push((
                Controller::Memory,
                format!("a memory limit of {bytes} bytes"),
            ));
        }
        if let Some(bytes) = limits.mem_high_bytes {
            wanted.push((
                Controller::Memory,
                format!("a memory.high of {bytes} bytes"),
            ));
        }
        if let Some(n) = limits.pids {
            wanted.push((Controller::Pids, format!("a pids limit of {n}")));
        }
        if let Some(w) = limits.io_weight {
            wanted.push((Controller::Io, format!("an io weight of {w}")));
        }
        for (controller, limit) in wanted {
            if !self.controllers.has(controller) {
                return Err(CgroupError::Unsupported {
                    limit,
                    controller,
                    root: self.root.clone(),
                    available: self.controllers,
                });
            }
        }
        Ok(())
    }

    /// Writes the limits (after [`check`](Self::check)), and with the
    /// memory controller memory.oom.group, whatever the limits.
    pub fn apply(&self, limits: &Limits) -> Result<(), CgroupError> {
        self.check(limits)?;
        if self.controllers.has(Controller::Memory) {
            memory::oom_group(&self.path)?;
        }
        if limits.cpus.is_some() || limits.cpu_max.is_some() {
            cpu::apply(&self.path, limits.cpus, limits.cpu_max)?;
        }
        if let Some(bytes) = limits.mem_bytes {
            memory::apply(&self.path, bytes, limits.mem_high_bytes)?;
        }
        if let Some(n) = limits.pids {
            pids::apply(&self.path, n)?;
        }
        if let Some(w) = limits.io_weight {
            io::apply(&self.path, w)?;
        }
        Ok(())
    }

    /// Current usage.
    pub fn usage(&self) -> Result<Usage, CgroupError> {
        Ok(Usage {
            cpu: cpu::stat(&self.path)?,
            memory: match self.controllers.has(Controller::Memory) {
                true => Some(memory::stat(&self.path)?),
                false => None,
            },
            pids: match self.controllers.has(Controller::Pids) {
                true => Some(pids::current(&self.path)?),
                false => None,
            },
            io: match self.controllers.has(Controller::Io) {
                true => Some(io::stat(&self.path)?),
                false => None,
            },
            processes: self.pids()?.len() as u64,
        })
    }

    /// A memory limitation, if the OOM killer has struck in this cgroup.
    pub fn limitation(&self) -> Result<Option<Limitation>, CgroupError> {
        if !self.controllers.has(Controller::Memory) || memory::oom_kills(&self.path)? == 0 {
            return Ok(None);
        }
        Ok(Some(Limitation::Memory {
            limit_bytes: read(&self.path.join("memory.max"))?.trim().parse().ok(),
        }))
    }

    /// The pids in the leaf.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        Ok(read(&self.leaf.join("cgroup.procs"))?
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect())
    }

    /// Whether any process is left in the container's subtree.
    pub fn populated(&self) -> Result<bool, CgroupError> {
        Ok(populated_line(&read(&self.path.join("cgroup.events"))?))
    }

    /// Kills every process of the container at once: cgroup.kill where
    /// the kernel has it (5.14), else freeze, SIGKILL each, thaw.
    pub fn kill(&self) -> Result<(), CgroupError> {
        let kill = self.path.join("cgroup.kill");
        if kill.exists() {
            return write(&kill, "1");
        }
        let freeze = self.path.join("cgroup.freeze");
        write(&freeze, "1")?;
        for pid in self.pids()? {
            // SAFETY: kill(2) on a pid read from our cgroup; a pid that
            // exited meanwhile gives ESRCH, which is fine.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        write(&freeze, "0")
    }

    /// Waits until no process is left, woken by the kernel's notification
    /// on cgroup.events rather than by polling on a timer.
    pub fn wait_unpopulated(&self, timeout: Duration) -> Result<(), CgroupError> {
        let events = self.path.join("cgroup.events");
        let file = std::fs::File::open(&events).map_err(io_error("opening", &events))?;
        let deadline = Instant::now() + timeout;
        loop {
            let mut buf = [0u8; 128];
            // SAFETY: pread into a live buffer from an open fd.
            let n = unsafe { libc::pread(file.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io_error("reading", &events)(std::io::Error::last_os_error()));
            }
            if !populated_line(&String::from_utf8_lossy(&buf[..n as usize])) {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(CgroupError::StillPopulated(self.path.clone(), timeout));
            }
            let mut pollfd = libc::pollfd {
                fd: file.as_raw_fd(),
                events: libc::POLLPRI,
                revents: 0,
            };
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
            // SAFETY: poll on one live pollfd.
            unsafe { libc::poll(&mut pollfd, 1, ms) };
        }
    }

    /// Kills every process and waits, up to `timeout`, until none is left.
    pub fn kill_and_wait(&self, timeout: Duration) -> Result<(), CgroupError> {
        self.kill()?;
        self.wait_unpopulated(timeout)
    }

    /// Removes the leaf and the container's cgroup; missing is fine.
    pub fn remove(&self) -> Result<(), CgroupError> {
        for dir in [&self.leaf, &self.path] {
            // A cgroup that just emptied can be busy for a moment.
            let mut tries = 0;
            loop {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 50 => {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(e) => return Err(io_error("removing", dir)(e)),
                }
            }
        }
        Ok(())
    }
}

fn populated_line(events: &str) -> bool {
    super::key_values(events).any(|(k, v)| k == "populated" && v != 0)
}
