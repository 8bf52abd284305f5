//! The version master and agent report: the Mesos version whose APIs tepui
//! follows (clients compare it), with tepui's own in the git tag.

use crate::v1::VersionInfo;

/// The Mesos version tepui's APIs follow.
pub const MESOS_VERSION: &str = "1.11.0";

/// VersionInfo as GET_VERSION answers it.
pub fn version_info() -> VersionInfo {
    VersionInfo {
        version: MESOS_VERSION.to_owned(),
        build_user: Some("tepui".to_owned()),
        git_tag: Some(format!("tepui-{}", env!("CARGO_PKG_VERSION"))),
        ..VersionInfo::default()
    }
}
