//! A compiled seccomp BPF program, ready for the child to install with
//! `seccomp(SECCOMP_SET_MODE_FILTER)` without allocating: the
//! instructions are built (and shared between launches) in the parent.

use std::sync::Arc;

/// The kernel's limit on the instructions of one classic BPF program.
pub const MAX_INSTRUCTIONS: usize = 4096;

/// A seccomp filter program, cheap to clone (the instructions are shared).
#[derive(Clone)]
pub struct SeccompProgram {
    instructions: Arc<[libc::sock_filter]>,
}

/// A program the kernel would refuse.
#[derive(Debug, thiserror::Error)]
pub enum SeccompProgramError {
    /// No instruction at all.
    #[error("a seccomp program needs at least one instruction")]
    Empty,
    /// More than [`MAX_INSTRUCTIONS`].
    #[error("a seccomp program of {0} instructions is over the kernel's limit of 4096")]
    TooLong(usize),
}

impl SeccompProgram {
    /// Wraps classic BPF instructions (as `seccomp(2)` takes them).
    pub fn new(instructions: Vec<libc::sock_filter>) -> Result<Self, SeccompProgramError> {
        match instructions.len() {
            0 => Err(SeccompProgramError::Empty),
            n if n > MAX_INSTRUCTIONS => Err(SeccompProgramError::TooLong(n)),
            _ => Ok(Self {
                instructions: instructions.into(),
            }),
        }
    }

    /// The instructions.
    pub fn instructions(&self) -> &[libc::sock_filter] {
        &self.instructions
    }

    /// The `sock_fprog` that points at the instructions; valid while
    /// `self` lives.
    pub(crate) fn fprog(&self) -> libc::sock_fprog {
        libc::sock_fprog {
            // At most MAX_INSTRUCTIONS, checked in `new`.
            len: self.instructions.len() as libc::c_ushort,
            filter: self.instructions.as_ptr().cast_mut(),
        }
    }
}

impl std::fmt::Debug for SeccompProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SeccompProgram({} instructions)",
            self.instructions.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_oversized_programs_are_refused() {
        let ret = libc::sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        };
        assert!(matches!(
            SeccompProgram::new(Vec::new()),
            Err(SeccompProgramError::Empty)
        ));
        assert!(matches!(
            SeccompProgram::new(vec![ret; MAX_INSTRUCTIONS + 1]),
            Err(SeccompProgramError::TooLong(4097))
        ));
        let program = SeccompProgram::new(vec![ret; 3]).unwrap();
        assert_eq!(program.fprog().len, 3);
    }
}
