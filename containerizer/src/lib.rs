//! Container lifecycle (prepare, launch, wait, update, destroy, recover)
//! built from the isolators and the launcher, and the provisioner that
//! turns OCI images into root filesystems.
//!
//! Built by issues 3 and 4; this crate holds its place in the workspace
//! graph.
