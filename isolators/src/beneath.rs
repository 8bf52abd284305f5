//! Paths opened strictly beneath a root with openat2(2), so that no
//! symlink, however placed, leads a path outside it: resolution that would
//! leave the root fails with EXDEV instead of following. Image extraction
//! and the fetcher make directories this way; the agent opens what a task
//! may have planted links in (its sandbox) without following any link.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// struct open_how of openat2(2), the kernel's 24-byte ABI (libc's is
/// non-exhaustive and cannot be built outside libc).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// A root directory and the paths beneath it.
pub struct Beneath {
    root: OwnedFd,
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in a path"))
}

impl Beneath {
    /// Opens `dir` as the root.
    pub fn open(dir: &Path) -> io::Result<Self> {
        let path = cstring(dir.as_os_str().as_bytes())?;
        // SAFETY: open(2) of a C string; the fd returned is ours alone.
        let fd = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just opened and nothing else owns it.
        let root = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { root })
    }

    /// The directory at `components` beneath the root, made (mode 0755)
    /// where missing when `create`. Each component is created from an fd
    /// already proved to lie beneath the root.
    pub fn dir(&self, components: &[OsString], create: bool) -> io::Result<OwnedFd> {
        if components.is_empty() {
            return self.root.try_clone();
        }
        match self.open_dir(components) {
            Err(e) if create && e.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
        let mut current = self.root.try_clone()?;
        for i in 0..components.len() {
            match self.open_dir(&components[..=i]) {
                Ok(fd) => current = fd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let name = cstring(components[i].as_bytes())?;
                    // SAFETY: mkdirat relative to a directory fd we own.
                    let ret = unsafe { libc::mkdirat(current.as_raw_fd(), name.as_ptr(), 0o755) };
                    if ret < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
                        return Err(io::Error::last_os_error());
                    }
                    current = self.open_dir(&components[..=i])?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(current)
    }

    fn open_dir(&self, components: &[OsString]) -> io::Result<OwnedFd> {
        let joined = components.join(OsStr::new("/"));
        self.openat2(
            joined.as_bytes(),
            libc::O_RDONLY | libc::O_DIRECTORY,
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
        )
    }

    /// Opens `path` (relative; empty or "." is the root) for reading
    /// without following any symlink or magic link on the way, and
    /// without blocking on a FIFO: for paths a task can plant links in.
    /// A link anywhere in the path fails with ELOOP, a way out with EXDEV.
    pub fn open_no_follow(&self, path: &Path) -> io::Result<OwnedFd> {
        let bytes = path.as_os_str().as_bytes();
        self.openat2(
            if bytes.is_empty() { b"." } else { bytes },
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
        )
    }

    fn openat2(&self, path: &[u8], flags: libc::c_int, resolve: u64) -> io::Result<OwnedFd> {
        let path = cstring(path)?;
        let how = OpenHow {
            flags: (flags | libc::O_CLOEXEC) as u64,
            mode: 0,
            resolve,
        };
        // SAFETY: openat2 with a live open_how and its size; returns a new fd.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                self.root.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just returned by openat2 and nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    }
}
