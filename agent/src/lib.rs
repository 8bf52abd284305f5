//! The tepui agent: registration with the master, the executor API, the
//! status update manager, checkpoints and recovery, the fetcher, sandbox
//! garbage collection and the HTTP endpoints.

pub mod allowed_devices;
pub mod attributes;
pub mod authentication;
pub mod checkpoint;
pub mod container_output;
pub mod daemon;
pub mod disk;
pub mod endpoints;
pub mod executor_api;
pub mod executor_env;
pub mod executor_token;
pub mod gc;
/// The HTTP transport, shared with the master.
pub use tepui_proto::http;
pub mod image_flags;
pub mod linux_info;
pub mod master_link;
pub mod metrics;
pub mod operator_api;
pub mod paths;
pub mod resources;
pub mod rlimit_info;
pub mod rotating_log;
pub mod runner;
pub mod status_update;
pub mod task_image;
pub mod task_isolation;
pub mod task_process;
