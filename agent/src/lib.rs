//! The tepui agent: registration with the master, the executor API, the
//! status update manager, checkpoints and recovery, the fetcher, sandbox
//! garbage collection and the HTTP endpoints.
//!
//! Built by issue 5; this crate holds its place in the workspace graph.
