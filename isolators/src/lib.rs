//! One module per isolation concern: cgroups v2 controllers (cpu, memory,
//! pids, io) with limits, statistics and OOM events; namespaces;
//! filesystem mounts and volumes; capabilities.
//!
//! Built by issue 3; this crate holds its place in the workspace graph.
