//! What the agent tells the built-in executor about the isolation of the
//! tasks it starts in an image: their capability sets and their compiled
//! seccomp filters, in two environment variables. The executor itself
//! keeps what it needs to give those tasks namespaces and a root of their
//! own (see [`executor_capabilities`]); each task gets exactly what its
//! container asked for, applied by the launcher in the task's child.

use tepui_launcher::{Capabilities, SeccompProgram};

/// The variable holding an image task's capability sets.
pub const CAPABILITIES_ENV: &str = "TEPUI_TASK_CAPABILITIES";

/// The variable holding an image task's seccomp filters (absent: none,
/// the container is unconfined).
pub const SECCOMP_ENV: &str = "TEPUI_TASK_SECCOMP";

/// A variable could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum IsolationError {
    /// The capability sets are not `effective:bounding` in hex.
    #[error("{CAPABILITIES_ENV}={0:?} is not two hex masks")]
    Capabilities(String),
    /// A seccomp program is not whole instructions in hex.
    #[error("{SECCOMP_ENV}: program {0} is not seccomp instructions in hex")]
    Seccomp(usize),
    /// A seccomp program the kernel would refuse.
    #[error("{SECCOMP_ENV}: program {index}: {error}")]
    Program {
        /// Which program.
        index: usize,
        /// Why.
        error: tepui_launcher::seccomp::SeccompProgramError,
    },
}

/// The capabilities (beyond the task's) the built-in executor keeps to
/// start a task in an image: new mount and pid namespaces, the mounts
/// and pivot_root (SYS_ADMIN), dropping the task's bounding set
/// (SETPCAP) and switching to its user (SETUID, SETGID). Not SYS_CHROOT.
pub fn executor_capabilities(task: Capabilities) -> Capabilities {
    let extra =
        tepui_launcher::caps::mask(["SYS_ADMIN", "SETPCAP", "SETUID", "SETGID"]).unwrap_or(0);
    Capabilities {
        effective: task.effective | extra,
        bounding: task.bounding | extra,
    }
}

/// `effective:bounding`, in hex.
pub fn encode_capabilities(caps: Capabilities) -> String {
    format!("{:x}:{:x}", caps.effective, caps.bounding)
}

/// The inverse of [`encode_capabilities`].
pub fn decode_capabilities(text: &str) -> Result<Capabilities, IsolationError> {
    let bad = || IsolationError::Capabilities(text.to_owned());
    let (effective, bounding) = text.split_once(':').ok_or_else(bad)?;
    Ok(Capabilities {
        effective: u64::from_str_radix(effective, 16).map_err(|_| bad())?,
        bounding: u64::from_str_radix(bounding, 16).map_err(|_| bad())?,
    })
}

/// Programs separated by `,`, each instruction as 16 hex digits (code,
/// jt, jf, k).
pub fn encode_seccomp(programs: &[SeccompProgram]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for (i, program) in programs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for insn in program.instructions() {
            let _ = write!(
                out,
                "{:04x}{:02x}{:02x}{:08x}",
                insn.code, insn.jt, insn.jf, insn.k
            );
        }
    }
    out
}

/// The inverse of [`encode_seccomp`].
pub fn decode_seccomp(text: &str) -> Result<Vec<SeccompProgram>, IsolationError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .enumerate()
        .map(|(index, program)| {
            let bad = || IsolationError::Seccomp(index);
            if program.len() % 16 != 0 || !program.is_ascii() {
                return Err(bad());
            }
            let instructions = (0..program.len() / 16)
                .map(|i| {
                    let insn = &program[i * 16..(i + 1) * 16];
                    Ok(libc::sock_filter {
                        code: u16::from_str_radix(&insn[0..4], 16).map_err(|_| bad())?,
                        jt: u8::from_str_radix(&insn[4..6], 16).map_err(|_| bad())?,
                        jf: u8::from_str_radix(&insn[6..8], 16).map_err(|_| bad())?,
                        k: u32::from_str_radix(&insn[8..16], 16).map_err(|_| bad())?,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            SeccompProgram::new(instructions)
                .map_err(|error| IsolationError::Program { index, error })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let caps = Capabilities {
            effective: 0x5,
            bounding: 0x2d,
        };
        let back = decode_capabilities(&encode_capabilities(caps)).unwrap();
        assert_eq!(back, caps);
        assert!(decode_capabilities("5").is_err());

        let profile = tepui_isolators::seccomp::SeccompProfile::builtin();
        let programs = profile.programs(caps.bounding).unwrap();
        let back = decode_seccomp(&encode_seccomp(&programs)).unwrap();
        assert_eq!(back.len(), programs.len());
        for (a, b) in back.iter().zip(programs.iter()) {
            let words = |p: &SeccompProgram| -> Vec<(u16, u8, u8, u32)> {
                p.instructions()
                    .iter()
                    .map(|i| (i.code, i.jt, i.jf, i.k))
                    .collect()
            };
            assert_eq!(words(a), words(b));
        }
        assert!(decode_seccomp("").unwrap().is_empty());
        assert!(decode_seccomp("0001").is_err());
        assert!(decode_seccomp("zz00000000000000").is_err());
    }

    #[test]
    fn the_executor_keeps_what_it_needs_but_not_chroot() {
        let none = Capabilities {
            effective: 0,
            bounding: 0,
        };
        let kept = executor_capabilities(none);
        let chroot = tepui_launcher::caps::mask(["SYS_CHROOT"]).unwrap();
        assert_eq!(kept.effective & chroot, 0);
        assert_ne!(
            kept.bounding & tepui_launcher::caps::mask(["SYS_ADMIN"]).unwrap(),
            0
        );
    }
}
