//! The io controller: a proportional weight.

use std::path::Path;

use super::{CgroupError, read, write};

/// Sets io.weight (1..=10000, 100 is the default share).
pub fn apply(dir: &Path, weight: u16) -> Result<(), CgroupError> {
    if !(1..=10_000).contains(&weight) {
        return Err(CgroupError::Invalid(format!(
            "io weight {weight}: must be 1 to 10000"
        )));
    }
    write(&dir.join("io.weight"), &format!("default {weight}"))
}

/// Bytes and operations summed over every device in io.stat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStat {
    /// Bytes read.
    pub rbytes: u64,
    /// Bytes written.
    pub wbytes: u64,
    /// Read operations.
    pub rios: u64,
    /// Write operations.
    pub wios: u64,
}

/// Parses io.stat: one line per device of `MAJ:MIN key=value ...`.
pub fn parse_stat(text: &str) -> IoStat {
    let mut stat = IoStat::default();
    for pair in text.split_whitespace() {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        let Ok(value) = value.parse::<u64>() else {
            continue;
        };
        match key {
            "rbytes" => stat.rbytes += value,
            "wbytes" => stat.wbytes += value,
            "rios" => stat.rios += value,
            "wios" => stat.wios += value,
            _ => {}
        }
    }
    stat
}

/// Reads io.stat of a cgroup.
pub fn stat(dir: &Path) -> Result<IoStat, CgroupError> {
    Ok(parse_stat(&read(&dir.join("io.stat"))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_io_stat_over_devices() {
        let text = "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n\
                    254:0 rbytes=100 wbytes=0 rios=3 wios=0 dbytes=0 dios=0\n";
        assert_eq!(
            parse_stat(text),
            IoStat {
                rbytes: 4196,
                wbytes: 8192,
                rios: 4,
                wios: 2
            }
        );
        assert_eq!(parse_stat(""), IoStat::default());
    }
}
