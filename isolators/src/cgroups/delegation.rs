//! Holding a cgroup that systemd delegated, so that containers can live in
//! it apart from the agent's own unit. systemd 252 moves a restarted
//! service's main process into the unit's top cgroup, which the kernel
//! refuses once controllers are enabled there for children (no internal
//! processes): so the agent's unit must not hold its containers. A second
//! unit, never restarted with the agent, holds them: its one process moves
//! itself into a leaf and enables the controllers for the rest.

use std::path::{Path, PathBuf};

use super::controllers::Controllers;
use super::{CgroupError, cgroup2_mount_point, io_error, read, write};

/// The cgroup this process is in, as a path under the cgroup2 mount.
pub fn own_cgroup() -> Result<PathBuf, CgroupError> {
    let path = Path::new("/proc/self/cgroup");
    let text = read(path)?;
    let relative = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or(CgroupError::NoCgroup2)?;
    Ok(cgroup2_mount_point()?.join(relative.trim_start_matches('/')))
}

/// Moves this process into `delegated/holder` and enables every controller
/// `delegated` may have for its children; returns the controllers enabled.
/// Afterwards, subtrees beside `holder` can take processes and limits.
pub fn hold(delegated: &Path) -> Result<Controllers, CgroupError> {
    let holder = delegated.join("holder");
    std::fs::create_dir_all(&holder).map_err(io_error("creating", &holder))?;
    write(&holder.join("cgroup.procs"), "0")?;
    let available = Controllers::parse(&read(&delegated.join("cgroup.controllers"))?);
    let control = delegated.join("cgroup.subtree_control");
    if !available.is_subset_of(Controllers::parse(&read(&control)?)) {
        write(&control, &available.subtree_control_line())?;
    }
    Ok(Controllers::parse(&read(&control)?))
}
