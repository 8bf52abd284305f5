//! Garbage collection of finished executor runs: a run's sandbox and its
//! checkpoint directory are scheduled for removal when the run ends, and
//! removed once older than `--gc_delay`, or sooner as the work dir's disk
//! fills: Mesos's rule, the age allowed is
//! `gc_delay * max(0, 1 - gc_disk_headroom - disk usage)`.
//! A path the runner reports live is never removed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// How collection behaves.
#[derive(Debug, Clone, Copy)]
pub struct GcConfig {
    /// How long a finished run is kept on an empty disk.
    pub delay: Duration,
    /// The fraction of the disk to keep free (0 to 1).
    pub disk_headroom: f64,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            delay: Duration::from_secs(7 * 24 * 3600),
            disk_headroom: 0.1,
        }
    }
}

/// The age a finished run may reach at `disk_usage` (a fraction, 0 to 1).
pub fn max_age(config: &GcConfig, disk_usage: f64) -> Duration {
    let factor = (1.0 - config.disk_headroom - disk_usage).clamp(0.0, 1.0);
    config.delay.mul_f64(factor)
}

/// The fraction of `path`'s filesystem in use.
pub fn disk_usage(path: &Path) -> Option<f64> {
    crate::disk::stat(path).map(|d| d.usage())
}

/// Directories scheduled for removal, with when they became eligible:
/// a map, so that scheduling the runs of a thousand ended executors is
/// not a thousand scans of the schedule.
#[derive(Debug, Default)]
pub struct Gc {
    scheduled: Mutex<HashMap<PathBuf, SystemTime>>,
}

impl Gc {
    /// An empty schedule.
    pub fn new() -> Self {
        Self::default()
    }

    /// Schedules `path` (finished at `since`) for removal.
    pub fn schedule(&self, path: PathBuf, since: SystemTime) {
        if let Ok(mut scheduled) = self.scheduled.lock() {
            scheduled.insert(path, since);
        }
    }

    /// Removes the scheduled directories older than `max_age` at `now`,
    /// except those `live` says are in use; returns what it removed.
    pub fn prune(
        &self,
        now: SystemTime,
        max_age: Duration,
        live: impl Fn(&Path) -> bool,
    ) -> Vec<PathBuf> {
        let mut due: Vec<(SystemTime, PathBuf)> = match self.scheduled.lock() {
            Ok(mut scheduled) => {
                let mut due = Vec::new();
                scheduled.retain(|path, since| {
                    let ripe =
                        now.duration_since(*since).unwrap_or_default() >= max_age && !live(path);
                    if ripe {
                        due.push((*since, path.clone()));
                    }
                    !ripe
                });
                due
            }
            Err(_) => Vec::new(),
        };
        // Oldest first, as they were scheduled.
        due.sort();
        let due = due.into_iter().map(|(_, path)| path);
        let mut removed = Vec::new();
        for path in due {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "garbage collected");
                    removed.push(path);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => removed.push(path),
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "garbage collection"),
            }
        }
        removed
    }

    /// How many directories are scheduled.
    pub fn len(&self) -> usize {
        self.scheduled.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Whether nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_age_allowed_shrinks_as_the_disk_fills() {
        let config = GcConfig {
            delay: Duration::from_secs(1000),
            disk_headroom: 0.1,
        };
        assert_eq!(max_age(&config, 0.0), Duration::from_secs(900));
        assert_eq!(max_age(&config, 0.5), Duration::from_secs(400));
        assert_eq!(max_age(&config, 0.95), Duration::ZERO);
        assert!(disk_usage(Path::new("/")).is_some_and(|u| (0.0..=1.0).contains(&u)));
    }

    #[test]
    fn removes_only_old_enough_runs_and_never_a_live_one() {
        let dir = tempfile::tempdir().unwrap();
        let (old, young, live) = (
            dir.path().join("old"),
            dir.path().join("young"),
            dir.path().join("live"),
        );
        for d in [&old, &young, &live] {
            std::fs::create_dir_all(d.join("sub")).unwrap();
        }
        let now = SystemTime::now();
        let gc = Gc::new();
        gc.schedule(old.clone(), now - Duration::from_secs(100));
        gc.schedule(young.clone(), now - Duration::from_secs(10));
        gc.schedule(live.clone(), now - Duration::from_secs(100));
        let removed = gc.prune(now, Duration::from_secs(50), |p| p == live);
        assert_eq!(removed, vec![old.clone()]);
        assert!(!old.exists() && young.exists() && live.exists());
        assert_eq!(gc.len(), 2);
        // The disk fills: the age allowed drops to nothing and young goes too.
        let removed = gc.prune(now, Duration::ZERO, |p| p == live);
        assert_eq!(removed, vec![young]);
        assert!(live.exists());
    }
}
