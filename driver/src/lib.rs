//! Scheduler and executor drivers: Rust APIs over the Mesos v1 scheduler
//! and executor HTTP APIs.
//!
//! Built by issues 5 and 6; this crate holds its place in the workspace
//! graph.
