//! Container lifecycle (prepare, launch, wait, update, usage, destroy,
//! recover) built from the isolators and the launcher; later also the
//! provisioner that turns OCI images into root filesystems.

mod lifecycle;
pub mod spec;
pub mod state;
pub mod user;

pub use lifecycle::{
    Config, ContainerError, Containerizer, ErrorKind, Recovered, Termination, valid_id,
};
pub use spec::{ContainerSpec, Stdio};
pub use tepui_isolators::cgroups::{Controllers, Limitation, Limits, Usage};
pub use tepui_isolators::filesystem::{RootfsMounts, Volume};
pub use tepui_launcher::{ExitStatus, Namespaces};
