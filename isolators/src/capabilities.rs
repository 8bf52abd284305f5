//! The capabilities a container keeps: Podman's default set unless its
//! task asks otherwise, and the bounds (the agent's
//! `--effective_capabilities` and `--bounding_capabilities`, as in Mesos's
//! linux/capabilities isolator) that a task's request must stay within.

pub use tepui_launcher::caps::{NAMES, mask, number};
use tepui_launcher::{Capabilities, caps};

/// The default set: what most images need to run as root, and nothing that
/// reaches the host. Podman's list: Docker's without NET_RAW (raw sockets,
/// ARP and ICMP spoofing), MKNOD (device nodes) and AUDIT_WRITE.
pub const DEFAULT: [&str; 11] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// The mask of [`DEFAULT`].
pub fn default_mask() -> u64 {
    // Every name in DEFAULT is in caps::NAMES (checked by a test).
    caps::mask(DEFAULT).unwrap_or(0)
}

/// The names of the capabilities in a mask, for messages.
pub fn names(mask: u64) -> Vec<&'static str> {
    caps::NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect()
}

/// A capability request (or the agent's bounds) that cannot be granted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapabilityError {
    /// A capability a task asked for is outside what the agent allows.
    #[error("{field}: capability {capability} is not allowed on this agent (allowed: {allowed})")]
    NotAllowed {
        /// The field that asked for it.
        field: &'static str,
        /// The capability, without CAP_.
        capability: &'static str,
        /// What is allowed, comma-separated.
        allowed: String,
    },
    /// The agent's effective set is not within its bounding set.
    #[error("--effective_capabilities holds {0}, which --bounding_capabilities does not")]
    EffectiveOutsideBounding(&'static str),
}

/// The agent's bounds on capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bounds {
    /// `--effective_capabilities`: the effective set of a container whose
    /// task asks for none.
    pub effective: Option<u64>,
    /// `--bounding_capabilities`: the most any container may have.
    pub bounding: Option<u64>,
}

/// The first capability of `mask` outside `allowed`.
fn first_outside(mask: u64, allowed: u64) -> Option<&'static str> {
    names(mask & !allowed).into_iter().next()
}

impl Bounds {
    /// The agent's bounds; its effective set must be within its bounding set.
    pub fn new(effective: Option<u64>, bounding: Option<u64>) -> Result<Self, CapabilityError> {
        if let (Some(e), Some(b)) = (effective, bounding)
            && let Some(cap) = first_outside(e, b)
        {
            return Err(CapabilityError::EffectiveOutsideBounding(cap));
        }
        Ok(Self {
            effective,
            bounding,
        })
    }

    /// The most a container may have: the bounding flag, else the
    /// effective flag, else the default set.
    pub fn limit(&self) -> u64 {
        self.bounding
            .or(self.effective)
            .unwrap_or_else(default_mask)
    }

    /// The sets of a container whose task asks for `effective` and
    /// `bounding` (Mesos's `LinuxInfo.effective_capabilities` and
    /// `bounding_capabilities`); a capability outside the agent's limit,
    /// or an effective one outside the bounding set, is refused by name.
    pub fn resolve(
        &self,
        effective: Option<u64>,
        bounding: Option<u64>,
    ) -> Result<Capabilities, CapabilityError> {
        let limit = self.limit();
        let refuse = |field: &'static str, capability: &'static str, allowed: u64| {
            CapabilityError::NotAllowed {
                field,
                capability,
                allowed: names(allowed).join(","),
            }
        };
        if let Some(cap) = bounding.and_then(|b| first_outside(b, limit)) {
            return Err(refuse("bounding_capabilities", cap, limit));
        }
        if let Some(cap) = effective.and_then(|e| first_outside(e, limit)) {
            return Err(refuse("effective_capabilities", cap, limit));
        }
        let bounding = bounding
            .or(self.bounding)
            .or(effective)
            .or(self.effective)
            .unwrap_or_else(default_mask);
        if let Some(cap) = effective.and_then(|e| first_outside(e, bounding)) {
            return Err(refuse("effective_capabilities", cap, bounding));
        }
        let effective = effective.or(self.effective).unwrap_or_else(default_mask) & bounding;
        Ok(Capabilities {
            effective,
            bounding,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(names: &[&str]) -> u64 {
        caps::mask(names.iter().copied()).unwrap()
    }

    #[test]
    fn default_mask_is_podmans() {
        assert_eq!(default_mask(), 0x800405fb);
        for gone in ["NET_RAW", "MKNOD", "AUDIT_WRITE", "SYS_ADMIN"] {
            assert_eq!(default_mask() & mask(&[gone]), 0, "{gone}");
        }
    }

    #[test]
    fn without_flags_a_task_gets_the_default_and_may_only_narrow_it() {
        let bounds = Bounds::default();
        assert_eq!(
            bounds.resolve(None, None).unwrap(),
            Capabilities {
                effective: default_mask(),
                bounding: default_mask()
            }
        );
        let kill = mask(&["KILL"]);
        assert_eq!(
            bounds.resolve(Some(kill), None).unwrap(),
            Capabilities {
                effective: kill,
                bounding: kill
            }
        );
        let e = bounds.resolve(Some(mask(&["NET_RAW"])), None).unwrap_err();
        assert!(e.to_string().contains("capability NET_RAW"), "{e}");
        let e = bounds
            .resolve(None, Some(mask(&["SYS_ADMIN"])))
            .unwrap_err();
        assert!(e.to_string().starts_with("bounding_capabilities"), "{e}");
    }

    #[test]
    fn the_agents_flags_bound_and_default_a_request() {
        let bounding = mask(&["NET_RAW", "KILL", "CHOWN"]);
        let bounds = Bounds::new(Some(mask(&["KILL"])), Some(bounding)).unwrap();
        assert_eq!(
            bounds.resolve(None, None).unwrap(),
            Capabilities {
                effective: mask(&["KILL"]),
                bounding
            }
        );
        assert_eq!(
            bounds.resolve(Some(mask(&["NET_RAW"])), None).unwrap(),
            Capabilities {
                effective: mask(&["NET_RAW"]),
                bounding
            }
        );
        let e = bounds.resolve(Some(mask(&["SETUID"])), None).unwrap_err();
        assert!(e.to_string().contains("SETUID"), "{e}");
        // An effective capability outside the task's own bounding set.
        let e = bounds
            .resolve(Some(mask(&["NET_RAW"])), Some(mask(&["KILL"])))
            .unwrap_err();
        assert!(e.to_string().contains("NET_RAW"), "{e}");
        assert_eq!(
            Bounds::new(Some(mask(&["SYS_ADMIN"])), Some(bounding)),
            Err(CapabilityError::EffectiveOutsideBounding("SYS_ADMIN"))
        );
    }
}
