//! Starts a container's first process: new namespaces, inside its cgroup,
//! pivot_root into a prepared root filesystem, bounded capabilities,
//! no_new_privs and rlimits; reaps it. The code between fork and exec lives
//! here and is kept synchronous and small.
//!
//! Built by issue 3; this crate holds its place in the workspace graph.
