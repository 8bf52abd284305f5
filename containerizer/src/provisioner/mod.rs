//! Turning OCI images into root filesystems. So far: unpacking one layer
//! safely ([`extract`]); the registry client, layout import, layer store,
//! overlay rootfs and image GC are to come (issue 4).

mod beneath;
pub mod extract;
