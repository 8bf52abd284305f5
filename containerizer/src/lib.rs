//! Container lifecycle (prepare, launch, wait, update, usage, destroy,
//! recover) built from the isolators and the launcher; later also the
//! provisioner that turns OCI images into root filesystems.

pub mod fetcher;
mod lifecycle;
pub mod provisioner;
pub mod spec;
pub mod state;
pub mod user;

pub use lifecycle::{
    Config, ContainerError, Containerizer, ErrorKind, Recovered, Termination, valid_id,
};
pub use spec::{ContainerSpec, Stdio, TASK_ROOTFS_ENV};
pub use tepui_isolators::cgroups::{Controllers, Limitation, Limits, Usage};
pub use tepui_isolators::filesystem::{RootfsMounts, Volume};
pub use tepui_isolators::rlimits::Rlimit;
pub use tepui_isolators::seccomp::SeccompProfile;
pub use tepui_launcher::{Capabilities, ExitStatus, Namespaces};

/// The Mesos reason a task status carries for a container limitation.
pub fn mesos_reason(limitation: &Limitation) -> tepui_proto::v1::task_status::Reason {
    match limitation {
        Limitation::Memory { .. } => {
            tepui_proto::v1::task_status::Reason::ContainerLimitationMemory
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oom_kill_is_reported_with_mesos_memory_limitation_reason() {
        let reason = mesos_reason(&Limitation::Memory {
            limit_bytes: Some(32 << 20),
        });
        assert_eq!(
            reason,
            tepui_proto::v1::task_status::Reason::ContainerLimitationMemory
        );
        assert_eq!(reason as i32, 8);
    }
}
