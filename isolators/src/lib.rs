//! One module per isolation concern, each deciding *what* a container
//! gets; the launcher carries it out between clone and exec.
//!
//! - [`cgroups`]: the cgroup v2 subtree, per-container cgroups, limits
//!   (cpu, memory, pids, io), statistics, OOM events, kill.
//! - [`filesystem`]: the mounts that make a root filesystem a container's
//!   (/proc, /dev, /sys, the sandbox, volumes), with targets confined to
//!   the root filesystem.
//! - [`capabilities`]: the default capability sets and the bounds a task's
//!   request must stay within.
//! - [`seccomp`]: seccomp profiles (Docker's format, the built-in
//!   default) compiled to BPF.
//! - [`rlimits`]: resource limits by name.
//! - [`beneath`]: paths opened beneath a root, never followed out of it.

pub mod beneath;
pub mod capabilities;
pub mod cgroups;
pub mod filesystem;
pub mod rlimits;
pub mod seccomp;
