//! Starts a container's first process: new namespaces, directly inside its
//! cgroup, pivot_root into a prepared root filesystem, a bounded capability
//! set, no_new_privs, rlimits, a user and a seccomp filter; and waits for
//! it through a pidfd.
//!
//! Everything the child needs is converted into a [`Plan`] before the
//! clone, so that the code between clone and exec ([`child`]) makes raw
//! system calls only: no allocation, no locks, safe in a child of a
//! multi-threaded daemon. A failure there reaches the parent through a
//! pipe as the step that failed and its errno, and becomes a
//! [`LaunchError`] that names the path involved.

pub mod caps;
mod child;
mod clone;
pub mod errno;
pub mod pidfd;
pub mod plan;
pub mod seccomp;
mod spawn;
pub mod step;

pub use errno::Errno;
pub use pidfd::ExitStatus;
pub use plan::{Capabilities, CgroupJoin, Create, FsOp, Namespaces, Plan, PlanError, User};
pub use seccomp::SeccompProgram;
pub use spawn::{LaunchError, Spawned, spawn};
pub use step::Step;
