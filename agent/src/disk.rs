//! The size and use of the filesystem under the work dir, which both the
//! resources offered and sandbox garbage collection depend on.

use std::path::Path;

/// A filesystem's size and free space, in bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Disk {
    /// All blocks.
    pub total: f64,
    /// Blocks an unprivileged user may still use.
    pub available: f64,
}

impl Disk {
    /// The fraction in use (0 to 1).
    pub fn usage(&self) -> f64 {
        if self.total <= 0.0 {
            return 0.0;
        }
        (1.0 - self.available / self.total).clamp(0.0, 1.0)
    }
}

/// statvfs(3) of the filesystem holding `path`.
pub fn stat(path: &Path) -> Option<Disk> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: an all-zero statvfs is a valid value for statvfs to fill.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: statvfs with a C string path and a pointer to our struct.
    if unsafe { libc::statvfs(c.as_ptr(), &mut stat) } != 0 || stat.f_blocks == 0 {
        return None;
    }
    let block = stat.f_frsize as f64;
    Some(Disk {
        total: stat.f_blocks as f64 * block,
        available: stat.f_bavail as f64 * block,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_root_filesystem() {
        let disk = stat(Path::new("/")).unwrap();
        assert!(disk.total > 0.0 && disk.available <= disk.total);
        assert!((0.0..=1.0).contains(&disk.usage()));
        assert!(stat(Path::new("/nonexistent/x")).is_none());
    }
}
