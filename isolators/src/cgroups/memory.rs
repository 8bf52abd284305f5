//! The memory controller: `mem` as memory.max (swap off where the kernel
//! has swap accounting), statistics, and OOM kills from memory.events.

use std::path::Path;

use super::{CgroupError, key_values, read, write};

/// Sets memory.max, memory.high when given, and memory.swap.max to 0.
pub fn apply(dir: &Path, max_bytes: u64, high_bytes: Option<u64>) -> Result<(), CgroupError> {
    if max_bytes < 4096 {
        return Err(CgroupError::Invalid(format!(
            "memory limit of {max_bytes} bytes: below one page"
        )));
    }
    write(&dir.join("memory.max"), &max_bytes.to_string())?;
    write(
        &dir.join("memory.high"),
        &high_bytes.map_or_else(|| "max".to_owned(), |h| h.to_string()),
    )?;
    let swap = dir.join("memory.swap.max");
    if swap.exists() {
        write(&swap, "0")?;
    }
    Ok(())
}

/// Sets memory.oom.group to 1: an OOM kill in the container takes all of
/// its processes, never leaving a half-dead task behind.
pub fn oom_group(dir: &Path) -> Result<(), CgroupError> {
    let file = dir.join("memory.oom.group");
    if file.exists() {
        write(&file, "1")?;
    }
    Ok(())
}

/// Memory figures tepui reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStat {
    /// memory.current.
    pub current: u64,
    /// memory.max, None for "max".
    pub limit: Option<u64>,
    /// Anonymous memory.
    pub anon: u64,
    /// Page cache.
    pub file: u64,
    /// Mapped files.
    pub file_mapped: u64,
    /// Swap in use.
    pub swap: u64,
    /// Unevictable memory.
    pub unevictable: u64,
}

/// Reads the memory figures of a cgroup.
pub fn stat(dir: &Path) -> Result<MemoryStat, CgroupError> {
    let mut stat = MemoryStat {
        current: read(&dir.join("memory.current"))?
            .trim()
            .parse()
            .unwrap_or(0),
        limit: read(&dir.join("memory.max"))?.trim().parse().ok(),
        ..MemoryStat::default()
    };
    for (key, value) in key_values(&read(&dir.join("memory.stat"))?) {
        match key {
            "anon" => stat.anon = value,
            "file" => stat.file = value,
            "file_mapped" => stat.file_mapped = value,
            "unevictable" => stat.unevictable = value,
            _ => {}
        }
    }
    if let Ok(swap) = std::fs::read_to_string(dir.join("memory.swap.current")) {
        stat.swap = swap.trim().parse().unwrap_or(0);
    }
    Ok(stat)
}

/// How many times the OOM killer has killed in this cgroup.
pub fn oom_kills(dir: &Path) -> Result<u64, CgroupError> {
    let events = read(&dir.join("memory.events"))?;
    Ok(key_values(&events)
        .find(|(k, _)| *k == "oom_kill")
        .map_or(0, |(_, v)| v))
}

/// Parses a size such as `64M`, `1G`, `512k` or `4096` into bytes.
pub fn parse_size(text: &str) -> Result<u64, CgroupError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let shift = match unit.to_ascii_lowercase().trim_end_matches(['b', 'i']) {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => {
            return Err(CgroupError::Invalid(format!(
                "size {text:?}: unknown unit {unit:?}"
            )));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| CgroupError::Invalid(format!("size {text:?}: not a number")))?;
    Ok((value * (1u64 << shift) as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("1.5k").unwrap(), 1536);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("M").is_err());
    }

    #[test]
    fn reads_oom_kills_from_events() {
        let text = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(
            key_values(text).find(|(k, _)| *k == "oom_kill"),
            Some(("oom_kill", 2))
        );
    }
}
