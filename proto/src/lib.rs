//! Wire types of tepui: the Mesos v1 protobuf messages, the JSON mapping
//! Mesos writes and reads, RecordIO framing for event streams, and tepui's
//! own master <-> agent messages.

pub mod acls;
pub mod authentication;
pub mod descriptor;
pub mod duration;
pub mod http;
pub mod json;
pub mod media;
pub mod model;
pub mod protobuf;
pub mod recordio;
pub mod required;
pub mod resources;
pub mod tls;
pub mod version;

/// Generated prost types, nested as their proto packages are so that
/// cross-package references resolve.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod wire {
    /// Mesos packages.
    pub mod mesos {
        /// `mesos.v1` and its sub-packages.
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/mesos.v1.rs"));
            /// `mesos.v1.scheduler`: the scheduler HTTP API.
            pub mod scheduler {
                include!(concat!(env!("OUT_DIR"), "/mesos.v1.scheduler.rs"));
            }
            /// `mesos.v1.executor`: the executor HTTP API.
            pub mod executor {
                include!(concat!(env!("OUT_DIR"), "/mesos.v1.executor.rs"));
            }
            /// `mesos.v1.master`: the operator HTTP API of the master.
            pub mod master {
                include!(concat!(env!("OUT_DIR"), "/mesos.v1.master.rs"));
            }
            /// `mesos.v1.agent`: the operator HTTP API of the agent.
            pub mod agent {
                include!(concat!(env!("OUT_DIR"), "/mesos.v1.agent.rs"));
            }
        }
    }
    /// tepui's own packages.
    pub mod tepui {
        /// Internal protocols.
        pub mod internal {
            /// `tepui.internal.v1`: master <-> agent messages.
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/tepui.internal.v1.rs"));
            }
        }
    }
}

/// Mesos v1 core types (`mesos.v1`), with the API packages beneath.
pub use wire::mesos::v1;
/// tepui's master <-> agent messages (`tepui.internal.v1`).
pub use wire::tepui::internal::v1 as internal;
