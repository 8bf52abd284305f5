//! Advisory file locks (flock(2)) that coordinate pulls, provisioning and
//! garbage collection across threads and processes sharing one store.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// A held flock; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct FileLock {
    file: File,
}

fn flock(file: &File, operation: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: flock(2) on a descriptor this File owns.
        let ret = unsafe { libc::flock(file.as_raw_fd(), operation) };
        if ret == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
}

impl FileLock {
    /// Waits for an exclusive lock on `path` (created if missing).
    pub(crate) fn exclusive(path: &Path) -> io::Result<Self> {
        let file = open(path)?;
        flock(&file, libc::LOCK_EX)?;
        Ok(Self { file })
    }

    /// Waits for a shared lock on `path` (created if missing).
    pub(crate) fn shared(path: &Path) -> io::Result<Self> {
        let file = open(path)?;
        flock(&file, libc::LOCK_SH)?;
        Ok(Self { file })
    }

    /// An exclusive lock if nobody holds any, else None.
    pub(crate) fn try_exclusive(path: &Path) -> io::Result<Option<Self>> {
        let file = open(path)?;
        match flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
            Ok(()) => Ok(Some(Self { file })),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Turns an exclusive lock into a shared one (not atomically: another
    /// waiter may hold the lock in between, which callers allow for).
    pub(crate) fn downgrade(&self) -> io::Result<()> {
        flock(&self.file, libc::LOCK_SH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_locks_share_and_exclude_an_exclusive_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l");
        let a = FileLock::shared(&path).unwrap();
        let b = FileLock::shared(&path).unwrap();
        assert!(FileLock::try_exclusive(&path).unwrap().is_none());
        drop((a, b));
        let x = FileLock::try_exclusive(&path).unwrap().expect("free");
        assert!(FileLock::try_exclusive(&path).unwrap().is_none());
        x.downgrade().unwrap();
        let _c = FileLock::shared(&path).unwrap();
    }
}
