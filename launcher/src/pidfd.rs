//! Waiting for and signalling a process through a pidfd, which stays
//! bound to one process even after its pid is reused.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// exit(code).
    Exited(i32),
    /// Killed by a signal.
    Signaled(i32),
}

impl ExitStatus {
    /// The shell's convention: the code, or 128 + the signal.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Signaled(signal) => 128 + signal,
        }
    }

    /// Mesos's wait status form (as `waitpid` reports it).
    pub fn wait_status(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => (code & 0xff) << 8,
            ExitStatus::Signaled(signal) => signal & 0x7f,
        }
    }
}

/// A pidfd for a process that is not our child (e.g. after a restart).
pub fn open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the fd was just created and is owned here alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Reaps the process if it has exited. `Ok(None)` while it runs; an error
/// with ECHILD when it is not our child (its status went to its parent).
pub fn try_wait(pidfd: RawFd) -> std::io::Result<Option<ExitStatus>> {
    wait(pidfd, libc::WNOHANG)
}

/// Blocks until the process exits and reaps it.
pub fn wait_blocking(pidfd: RawFd) -> std::io::Result<Option<ExitStatus>> {
    wait(pidfd, 0)
}

fn wait(pidfd: RawFd, flags: libc::c_int) -> std::io::Result<Option<ExitStatus>> {
    loop {
        // SAFETY: siginfo_t is plain data; waitid fills it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid on a pidfd with a live siginfo buffer.
        let ret = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd as libc::id_t,
                &mut info,
                libc::WEXITED | flags,
            )
        };
        if ret == -1 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        // SAFETY: after a successful waitid these fields are initialised;
        // si_pid is 0 when WNOHANG found nothing to reap.
        let (pid, code, status) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
        if pid == 0 {
            return Ok(None);
        }
        return Ok(Some(match code {
            libc::CLD_EXITED => ExitStatus::Exited(status),
            _ => ExitStatus::Signaled(status),
        }));
    }
}

/// Sends a signal through the pidfd.
pub fn send_signal(pidfd: RawFd, signal: i32) -> std::io::Result<()> {
    // SAFETY: pidfd_send_signal with a null siginfo and no flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if ret < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
