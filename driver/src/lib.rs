//! Scheduler and executor drivers: Rust APIs over the Mesos v1 scheduler
//! and executor HTTP APIs (the executor driver so far; the scheduler
//! driver comes with the master, issue 6).

pub mod executor;
pub mod record_stream;
