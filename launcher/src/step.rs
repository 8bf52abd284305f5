//! The steps of the child between clone and exec, as numbered on the wire
//! of the error pipe.

/// Declares [`Step`] and the table that decodes it from one list, so the
/// two cannot drift apart.
macro_rules! steps {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// One step of the child; with an index it names one mount, rlimit,
        /// capability or exec candidate.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u32)]
        pub enum Step {
            $($(#[$doc])* $name,)*
        }

        impl Step {
            const ALL: &'static [Step] = &[$(Step::$name,)*];
        }
    };
}

steps! {
    /// Resetting signal dispositions and the mask.
    Signals,
    /// Writing to cgroup.procs.
    JoinCgroup,
    /// unshare(CLONE_NEWCGROUP) after joining the cgroup.
    CgroupNamespace,
    /// setsid.
    Setsid,
    /// dup2 of the standard streams.
    Stdio,
    /// Closing every inherited fd above 2.
    CloseFds,
    /// Making every mount private.
    MountPrivate,
    /// Bind-mounting the root filesystem on itself.
    BindRootfs,
    /// Creating a mount target.
    Create,
    /// A mount.
    Mount,
    /// The remount of a bind with its per-mount flags.
    Remount,
    /// A symlink.
    Symlink,
    /// A device node.
    Mknod,
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
    /// The working directory turned out to be outside the root.
    CwdOutsideRoot,
    /// Installing the seccomp filter.
    Seccomp,
    /// execve.
    Exec,
}

impl Step {
    /// The code on the error pipe (0 is never a step).
    pub(crate) fn code(self) -> u32 {
        self as u32 + 1
    }

    pub(crate) fn from_code(code: u32) -> Option<Self> {
        Self::ALL.get(code.checked_sub(1)? as usize).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for step in Step::ALL {
            assert_eq!(Step::from_code(step.code()), Some(*step));
        }
        assert_eq!(Step::from_code(0), None);
        assert_eq!(Step::from_code(Step::ALL.len() as u32 + 1), None);
    }
}
