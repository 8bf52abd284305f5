//! The cpu controller: `cpus` as a relative weight, and a hard bandwidth
//! limit (cpu.max) when asked; CPU time from cpu.stat.

use std::path::Path;

use super::{CgroupError, key_values, read, write};

/// The period of cpu.max, in microseconds (the kernel's default).
pub const PERIOD_USEC: u64 = 100_000;
/// The smallest quota the kernel accepts, in microseconds.
const MIN_QUOTA_USEC: u64 = 1_000;

/// cpu.weight for `cpus`: Mesos's shares (1024 per cpu, at least 2)
/// mapped onto cgroup v2's 1..10000 range as runc and systemd map them.
pub fn weight(cpus: f64) -> u64 {
    let shares = ((cpus * 1024.0) as u64).clamp(2, 262_144);
    (1 + (shares - 2) * 9999 / 262_142).clamp(1, 10_000)
}

/// cpu.max for a hard limit of `cpus`.
pub fn max_line(cpus: f64) -> String {
    let quota = ((cpus * PERIOD_USEC as f64) as u64).max(MIN_QUOTA_USEC);
    format!("{quota} {PERIOD_USEC}")
}

/// Checks that `cpus` is a usable number of CPUs.
pub fn validate(cpus: f64) -> Result<(), CgroupError> {
    if cpus.is_finite() && cpus > 0.0 {
        Ok(())
    } else {
        Err(CgroupError::Invalid(format!(
            "cpus {cpus}: must be a positive number"
        )))
    }
}

/// Sets the weight of `cpus` (when given) and cpu.max: a cap of `max`
/// cpus, or none ("max") without one.
pub fn apply(dir: &Path, cpus: Option<f64>, max: Option<f64>) -> Result<(), CgroupError> {
    if let Some(cpus) = cpus {
        validate(cpus)?;
        write(&dir.join("cpu.weight"), &weight(cpus).to_string())?;
    }
    let line = match max {
        Some(max) => {
            validate(max)?;
            max_line(max)
        }
        None => format!("max {PERIOD_USEC}"),
    };
    write(&dir.join("cpu.max"), &line)
}

/// The fields of cpu.stat tepui reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuStat {
    /// Total CPU time.
    pub usage_usec: u64,
    /// User CPU time.
    pub user_usec: u64,
    /// System CPU time.
    pub system_usec: u64,
    /// Bandwidth periods elapsed.
    pub nr_periods: u64,
    /// Periods in which the cgroup was throttled.
    pub nr_throttled: u64,
    /// Time spent throttled.
    pub throttled_usec: u64,
}

/// Parses cpu.stat (present even without the cpu controller).
pub fn parse_stat(text: &str) -> CpuStat {
    let mut stat = CpuStat::default();
    for (key, value) in key_values(text) {
        match key {
            "usage_usec" => stat.usage_usec = value,
            "user_usec" => stat.user_usec = value,
            "system_usec" => stat.system_usec = value,
            "nr_periods" => stat.nr_periods = value,
            "nr_throttled" => stat.nr_throttled = value,
            "throttled_usec" => stat.throttled_usec = value,
            _ => {}
        }
    }
    stat
}

/// Reads cpu.stat of a cgroup.
pub fn stat(dir: &Path) -> Result<CpuStat, CgroupError> {
    Ok(parse_stat(&read(&dir.join("cpu.stat"))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_cpus_to_weight_and_max() {
        assert_eq!(weight(1.0), 39);
        assert_eq!(weight(0.001), 1);
        assert_eq!(weight(256.0), 10_000);
        assert_eq!(max_line(0.5), "50000 100000");
        assert_eq!(max_line(0.001), "1000 100000");
        assert!(validate(0.0).is_err());
        assert!(validate(f64::NAN).is_err());
        assert_eq!(max_line(2.5), "250000 100000");
    }

    #[test]
    fn writes_the_weight_and_the_cap_or_no_cap() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        apply(dir.path(), Some(1.0), Some(1.5)).unwrap();
        assert_eq!(
            (file("cpu.weight"), file("cpu.max")),
            ("39".into(), "150000 100000".into())
        );
        apply(dir.path(), Some(1.0), None).unwrap();
        assert_eq!(file("cpu.max"), "max 100000");
        apply(dir.path(), None, Some(0.0001)).unwrap();
        assert_eq!(file("cpu.max"), "1000 100000", "at least the kernel's 1ms");
        assert!(apply(dir.path(), None, Some(f64::INFINITY)).is_err());
    }

    #[test]
    fn parses_cpu_stat() {
        let s = parse_stat(
            "usage_usec 10\nuser_usec 7\nsystem_usec 3\nnr_periods 4\nnr_throttled 2\nthrottled_usec 99\n",
        );
        assert_eq!(s.user_usec, 7);
        assert_eq!(s.throttled_usec, 99);
    }
}
