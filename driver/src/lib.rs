//! Scheduler and executor drivers: Rust APIs over the Mesos v1 scheduler
//! and executor HTTP APIs.

pub mod executor;
pub mod http_call;
pub mod record_stream;
pub mod scheduler;
