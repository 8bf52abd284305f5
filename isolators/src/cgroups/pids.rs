//! The pids controller: a cap on the number of tasks.

use std::path::Path;

use super::{CgroupError, read, write};

/// Sets pids.max.
pub fn apply(dir: &Path, max: u64) -> Result<(), CgroupError> {
    if max == 0 {
        return Err(CgroupError::Invalid(
            "pids limit 0: the command itself needs one".into(),
        ));
    }
    write(&dir.join("pids.max"), &max.to_string())
}

/// pids.current.
pub fn current(dir: &Path) -> Result<u64, CgroupError> {
    Ok(read(&dir.join("pids.current"))?.trim().parse().unwrap_or(0))
}
