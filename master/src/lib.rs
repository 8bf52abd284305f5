//! The tepui master: framework and agent registries, the DRF allocator,
//! offers, task and status bookkeeping, and the Mesos v1 scheduler and
//! operator HTTP APIs.

pub mod agent_api;
pub mod allocator;
pub mod authentication;
pub mod authorization;
pub mod clock;
pub mod daemon;
pub mod endpoints;
pub mod events;
pub mod listener;
pub mod master;
pub mod operator_api;
pub mod refused;
pub mod registry;
pub mod resources;
pub mod router;
pub mod scheduler_api;
pub mod server;
pub mod state;
pub mod timers;
pub mod v1_call;

/// The Mesos version tepui's APIs follow, as `/version` and MasterInfo
/// report it (clients compare it).
pub use tepui_proto::version::MESOS_VERSION;
