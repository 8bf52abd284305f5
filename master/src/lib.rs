//! The tepui master: framework and agent registries, the DRF allocator,
//! offers, task and status bookkeeping, and the Mesos v1 scheduler and
//! operator HTTP APIs.
//!
//! Built by issue 6; this crate holds its place in the workspace graph.
