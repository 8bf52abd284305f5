//! Paths opened strictly beneath a root with openat2(2), so that no
//! symlink, however placed, leads a path outside it: resolution that would
//! leave the root fails with EXDEV instead of following. Image extraction
//! and the fetcher make directories this way; the agent opens what a task
//! may have planted links in (its sandbox) without following any link.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
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

    /// Opens (creating it, mode `mode`, when missing) the regular file
    /// `path` beneath the root for writing with `flags` (O_APPEND,
    /// O_EXCL, O_TRUNC...), following no symlink or magic link on the
    /// way or at its end, and without blocking on a FIFO: what is not a
    /// regular file is refused (EINVAL), so a task's planted link or
    /// FIFO never becomes the agent's output.
    pub fn create_no_follow(
        &self,
        path: &Path,
        flags: libc::c_int,
        mode: u32,
    ) -> io::Result<OwnedFd> {
        let fd = self.openat2_mode(
            path.as_os_str().as_bytes(),
            libc::O_WRONLY
                | libc::O_CREAT
                | libc::O_NOFOLLOW
                | libc::O_NONBLOCK
                | libc::O_NOCTTY
                | flags,
            mode,
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
        )?;
        regular_blocking(fd)
    }

    /// Renames `from` to `to`, both names in the root itself (no `/`):
    /// neither is followed if it is a link.
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let (from, to) = (cstring(from.as_bytes())?, cstring(to.as_bytes())?);
        let dir = self.root.as_raw_fd();
        // SAFETY: renameat relative to a directory fd we own, with C strings.
        if unsafe { libc::renameat(dir, from.as_ptr(), dir, to.as_ptr()) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Removes the name `name` in the root itself (a link, not its target).
    pub fn remove_file(&self, name: &OsStr) -> io::Result<()> {
        let name = cstring(name.as_bytes())?;
        // SAFETY: unlinkat relative to a directory fd we own, with a C string.
        if unsafe { libc::unlinkat(self.root.as_raw_fd(), name.as_ptr(), 0) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The root's own fd (to fchown or fchmod it).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Another handle on the same root.
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(Self {
            root: self.root.try_clone()?,
        })
    }

    fn openat2(&self, path: &[u8], flags: libc::c_int, resolve: u64) -> io::Result<OwnedFd> {
        self.openat2_mode(path, flags, 0, resolve)
    }

    fn openat2_mode(
        &self,
        path: &[u8],
        flags: libc::c_int,
        mode: u32,
        resolve: u64,
    ) -> io::Result<OwnedFd> {
        let path = cstring(path)?;
        let how = OpenHow {
            flags: (flags | libc::O_CLOEXEC) as u64,
            mode: u64::from(mode),
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

/// `fd` if it is a regular file, made blocking again (it was opened
/// O_NONBLOCK only so that a FIFO could not stall the open); else EINVAL.
pub fn regular_blocking(fd: OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: fstat into a zeroed stat of our own, on an fd we own.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if stat.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    // SAFETY: fcntl on an fd we own; clearing O_NONBLOCK.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fcntl on an fd we own, setting its status flags.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_regular_files_and_refuses_links_and_fifos() {
        let dir = tempfile::tempdir().unwrap();
        let canary = dir.path().join("canary");
        std::fs::write(&canary, b"secret").unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink(&canary, root.join("out")).unwrap();
        let beneath = Beneath::open(&root).unwrap();
        let err = beneath
            .create_no_follow(Path::new("out"), libc::O_APPEND, 0o644)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{err}");
        let name = CString::new(root.join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid C string for the call.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        assert!(
            beneath
                .create_no_follow(Path::new("fifo"), 0, 0o644)
                .is_err()
        );
        let fd = beneath
            .create_no_follow(Path::new("new"), libc::O_EXCL, 0o640)
            .unwrap();
        drop(fd);
        beneath
            .rename(OsStr::new("new"), OsStr::new("old"))
            .unwrap();
        assert!(root.join("old").is_file());
        beneath.remove_file(OsStr::new("out")).unwrap();
        assert_eq!(std::fs::read(&canary).unwrap(), b"secret");
    }
}
