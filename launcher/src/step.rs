//! The steps of the child between clone and exec, as numbered on the wire
//! of the error pipe.

/// One step of the child; with an index it names one mount, rlimit,
/// capability or exec candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Step {
    /// Resetting signal dispositions and the mask.
    Signals = 1,
    /// Writing to cgroup.procs.
    JoinCgroup,
    /// setsid.
    Setsid,
    /// dup2 of the standard streams.
    Stdio,
    /// Marking inherited fds close-on-exec.
    CloseFds,
    /// Making every mount private.
    MountPrivate,
    /// Bind-mounting the root filesystem on itself.
    BindRootfs,
    /// Creating a mount target.
    Create,
    /// A mount.
    Mount,
    /// The read-only remount of a bind.
    Remount,
    /// A symlink.
    Symlink,
    /// pivot_root.
    PivotRoot,
    /// Detaching the old root.
    DetachOldRoot,
    /// sethostname.
    Hostname,
    /// setrlimit.
    Rlimit,
    /// Dropping a capability from the bounding set.
    DropCapability,
    /// setgroups.
    SetGroups,
    /// setresgid.
    SetGid,
    /// setresuid.
    SetUid,
    /// capset and clearing the ambient set.
    Capabilities,
    /// PR_SET_NO_NEW_PRIVS.
    NoNewPrivs,
    /// chdir to the working directory.
    Chdir,
    /// execve.
    Exec,
}

impl Step {
    pub(crate) fn from_code(code: u32) -> Option<Self> {
        use Step::*;
        const ALL: [Step; 23] = [
            Signals,
            JoinCgroup,
            Setsid,
            Stdio,
            CloseFds,
            MountPrivate,
            BindRootfs,
            Create,
            Mount,
            Remount,
            Symlink,
            PivotRoot,
            DetachOldRoot,
            Hostname,
            Rlimit,
            DropCapability,
            SetGroups,
            SetGid,
            SetUid,
            Capabilities,
            NoNewPrivs,
            Chdir,
            Exec,
        ];
        ALL.into_iter().find(|s| *s as u32 == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in 1..=23 {
            assert_eq!(Step::from_code(code).map(|s| s as u32), Some(code));
        }
        assert_eq!(Step::from_code(0), None);
        assert_eq!(Step::from_code(24), None);
    }
}
