//! Where cgroup2 is mounted, read from mountinfo (never assumed to be
//! /sys/fs/cgroup: hybrid hosts mount it elsewhere).

use std::path::PathBuf;

/// The mount point of the first cgroup2 filesystem in `mountinfo`.
pub fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // "<id> <parent> <maj:min> <root> <mount point> <options> [optional...] - <fstype> ..."
        let (before, after) = line.split_once(" - ")?;
        let fstype = after.split(' ').next()?;
        if fstype != "cgroup2" {
            return None;
        }
        let mount_point = before.split(' ').nth(4)?;
        Some(PathBuf::from(unescape(mount_point)))
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space, and so on).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cgroup2_on_a_hybrid_host() {
        let mountinfo = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        assert_eq!(
            cgroup2_mount(mountinfo),
            Some("/sys/fs/cgroup/unified".into())
        );
    }

    #[test]
    fn finds_cgroup2_with_optional_fields_and_escapes() {
        let mountinfo = "25 1 0:22 / /my\\040cgroups rw,nosuid shared:9 master:1 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(cgroup2_mount(mountinfo), Some("/my cgroups".into()));
        assert_eq!(cgroup2_mount("1 0 0:1 / / rw - ext4 /dev/vda rw\n"), None);
    }
}
