//! The little a containerizer must remember across a restart to find a
//! container again: its init's pid and that process's start time (so a
//! reused pid is never mistaken for it). Written atomically.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The recorded identity of a container's first process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunState {
    /// Its pid in the agent's pid namespace.
    pub pid: i32,
    /// Its start time in clock ticks since boot (/proc/PID/stat field 22).
    pub start_time: u64,
}

/// The state file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// An I/O failure on a path.
    #[error("{action} {path}: {error}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// Which file.
        path: PathBuf,
        /// The failure.
        error: std::io::Error,
    },
    /// The file does not hold a state.
    #[error("{0} is corrupt: {1}")]
    Corrupt(PathBuf, String),
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError {
    let path = path.to_path_buf();
    move |error| StateError::Io {
        action,
        path,
        error,
    }
}

const FILE: &str = "run";

/// Writes `state` to `dir`/run atomically: temporary file, fsync, rename,
/// fsync of the directory.
pub fn write(dir: &Path, state: RunState) -> Result<(), StateError> {
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let tmp = dir.join(".run.tmp");
    let path = dir.join(FILE);
    let mut file = std::fs::File::create(&tmp).map_err(io("creating", &tmp))?;
    writeln!(file, "pid {}\nstart_time {}", state.pid, state.start_time)
        .map_err(io("writing", &tmp))?;
    file.sync_all().map_err(io("syncing", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io("renaming into", &path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing", dir))
}

/// Reads `dir`/run; `Ok(None)` when there is none.
pub fn read(dir: &Path) -> Result<Option<RunState>, StateError> {
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("reading", &path)(e)),
    };
    let field = |name: &str| -> Result<&str, StateError> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .ok_or_else(|| StateError::Corrupt(path.clone(), format!("no {name}")))
    };
    let number = |name: &str| -> Result<u64, StateError> {
        field(name)?
            .trim()
            .parse()
            .map_err(|_| StateError::Corrupt(path.clone(), format!("{name} is not a number")))
    };
    let pid = number("pid")?;
    let pid = i32::try_from(pid)
        .map_err(|_| StateError::Corrupt(path.clone(), "pid out of range".into()))?;
    Ok(Some(RunState {
        pid,
        start_time: number("start_time")?,
    }))
}

/// The start time of a live process, from /proc/PID/stat; `None` if the
/// process is gone.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: split after the
    // last ')'. Field 22 is the 20th after it.
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reports_corruption_by_path() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let state = RunState {
            pid: 42,
            start_time: 123_456,
        };
        write(dir.path(), state).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(state));
        std::fs::write(dir.path().join("run"), "pid forty-two\n").unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{} is corrupt: pid is not a number",
                dir.path().join("run").display()
            )
        );
    }

    #[test]
    fn reads_our_own_start_time() {
        let me = std::process::id() as i32;
        assert!(start_time(me).is_some_and(|t| t > 0));
        assert_eq!(start_time(i32::MAX), None);
    }
}
