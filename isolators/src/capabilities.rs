//! The capabilities a container keeps unless its task asks otherwise.

use tepui_launcher::caps;

/// The default set: what most images need to run as root, and nothing that
/// reaches the host (no SYS_ADMIN, NET_ADMIN, SYS_MODULE, SYS_PTRACE...).
/// The same list Docker and containerd keep by default.
pub const DEFAULT: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// The mask of [`DEFAULT`].
pub fn default_mask() -> u64 {
    // Every name in DEFAULT is in caps::NAMES (checked by a test).
    caps::mask(DEFAULT).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_mask_is_dockers() {
        assert_eq!(super::default_mask(), 0xa80425fb);
    }
}
