//! The tepui agent: registration with the master, the executor API, the
//! status update manager, checkpoints and recovery, the fetcher, sandbox
//! garbage collection and the HTTP endpoints (issue 5; in progress: the
//! work dir layout so far).

pub mod paths;
