//! The cgroup v2 device filter: an allow-list of device rules compiled to a
//! BPF_PROG_TYPE_CGROUP_DEVICE program, loaded with bpf(2) and attached to
//! a container's cgroup, so a task can neither create nor open a device
//! outside the list (the host's disks above all), whatever its capabilities.
//!
//! The design follows runc and crun: the kernel calls the program on every
//! open and mknod of a device node with (type, access, major, minor); the
//! program checks the rules in order and returns 1 (allow) at the first
//! match, 0 (deny, EPERM) when none matches. The instruction sequence is
//! small and fixed, so it is assembled here, one named helper per
//! instruction, rather than through a BPF crate.
//!
//! fd semantics: once attached, the cgroup holds its own reference to the
//! program, so the program fd may be closed and the filter stays until the
//! cgroup is removed. A restarted agent has nothing to redo for a running
//! container. One loaded program serves every container ([`Filter`]).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A device filter operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The kernel refused the program (its verifier log attached).
    #[error("loading the cgroup device BPF program: {error}{}", log_suffix(.log))]
    Load {
        /// errno of BPF_PROG_LOAD.
        error: std::io::Error,
        /// The verifier's log, if it said anything.
        log: String,
    },
    /// The program could not be attached to the cgroup.
    #[error("attaching the device filter to {path}: {error}")]
    Attach {
        /// The cgroup directory.
        path: PathBuf,
        /// errno of open or BPF_PROG_ATTACH.
        error: std::io::Error,
    },
    /// A rule names a device that cannot be used (e.g. a path that is no device node).
    #[error("device rule {0}")]
    Rule(String),
}

fn log_suffix(log: &str) -> String {
    match log.trim() {
        "" => String::new(),
        log => format!("; verifier: {log}"),
    }
}

/// Which kind of device node a rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceType {
    /// Character devices.
    Char,
    /// Block devices.
    Block,
    /// Both.
    All,
}

/// What a rule lets a task do with a matching device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Access {
    /// open for reading.
    pub read: bool,
    /// open for writing.
    pub write: bool,
    /// create a node with mknod(2).
    pub mknod: bool,
}

impl Access {
    /// Read, write and mknod: what the default devices get.
    pub const RWM: Access = Access {
        read: true,
        write: true,
        mknod: true,
    };

    /// The kernel's BPF_DEVCG_ACC_* bits.
    fn bits(self) -> u32 {
        (if self.mknod { ACC_MKNOD } else { 0 })
            | (if self.read { ACC_READ } else { 0 })
            | (if self.write { ACC_WRITE } else { 0 })
    }
}

/// One allow rule: `None` for major or minor matches any number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    /// Character, block, or both.
    pub kind: DeviceType,
    /// The major number, or any.
    pub major: Option<u32>,
    /// The minor number, or any.
    pub minor: Option<u32>,
    /// What is allowed.
    pub access: Access,
}

impl DeviceRule {
    /// A character device `major:minor` with read, write and mknod.
    pub const fn char_rwm(major: u32, minor: Option<u32>) -> Self {
        Self {
            kind: DeviceType::Char,
            major: Some(major),
            minor,
            access: Access::RWM,
        }
    }

    /// The rule for the device node at `path` (resolved now, by its
    /// major:minor, as Mesos does for `--allowed_devices` paths).
    pub fn for_path(path: &Path, access: Access) -> Result<Self, DeviceError> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let meta = std::fs::metadata(path)
            .map_err(|e| DeviceError::Rule(format!("{}: {e}", path.display())))?;
        let kind = match meta.file_type() {
            t if t.is_char_device() => DeviceType::Char,
            t if t.is_block_device() => DeviceType::Block,
            _ => {
                return Err(DeviceError::Rule(format!(
                    "{}: not a device node",
                    path.display()
                )));
            }
        };
        let rdev = meta.rdev();
        Ok(Self {
            kind,
            major: Some(libc::major(rdev)),
            minor: Some(libc::minor(rdev)),
            access,
        })
    }
}

/// The devices every container may use, as runc and crun allow them:
/// null, zero, full, random, urandom, tty, console, ptmx and the pts
/// slaves, for read, write and mknod; everything else is denied, block
/// devices included.
pub const DEFAULT_RULES: [DeviceRule; 9] = [
    DeviceRule::char_rwm(1, Some(3)), // /dev/null
    DeviceRule::char_rwm(1, Some(5)), // /dev/zero
    DeviceRule::char_rwm(1, Some(7)), // /dev/full
    DeviceRule::char_rwm(1, Some(8)), // /dev/random
    DeviceRule::char_rwm(1, Some(9)), // /dev/urandom
    DeviceRule::char_rwm(5, Some(0)), // /dev/tty
    DeviceRule::char_rwm(5, Some(1)), // /dev/console
    DeviceRule::char_rwm(5, Some(2)), // /dev/ptmx
    DeviceRule::char_rwm(136, None),  // /dev/pts/*
];

// The kernel's ABI (include/uapi/linux/bpf.h).
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const DEV_BLOCK: u32 = 1;
const DEV_CHAR: u32 = 2;
const ACC_MKNOD: u32 = 1;
const ACC_READ: u32 = 2;
const ACC_WRITE: u32 = 4;
// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }:
// access_type is (BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*.
const CTX_ACCESS_TYPE: i16 = 0;
const CTX_MAJOR: i16 = 4;
const CTX_MINOR: i16 = 8;

/// One eBPF instruction (struct bpf_insn): opcode, registers (dst in the
/// low nibble), a jump offset and an immediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

// Registers: r0 the return value, r1 the context on entry and then a
// scratch, r2 device type, r3 access, r4 major, r5 minor.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

// Opcodes: class | operation | source.
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const ALU64_MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JMP_JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JMP_JNE_X: u8 = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
const JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        Self {
            code,
            regs: (src << 4) | (dst & 0x0f),
            off,
            imm,
        }
    }

    /// `dst = *(u32 *)(src + off)`.
    pub const fn load_u32(dst: u8, src: u8, off: i16) -> Self {
        Self::new(LDX_MEM_W, dst, src, off, 0)
    }

    /// `dst &= imm` (32 bits).
    pub const fn and(dst: u8, imm: u32) -> Self {
        Self::new(ALU32_AND_K, dst, 0, 0, imm as i32)
    }

    /// `dst >>= imm` (32 bits).
    pub const fn rsh(dst: u8, imm: u32) -> Self {
        Self::new(ALU32_RSH_K, dst, 0, 0, imm as i32)
    }

    /// `dst = src` (32 bits).
    pub const fn mov_reg(dst: u8, src: u8) -> Self {
        Self::new(ALU32_MOV_X, dst, src, 0, 0)
    }

    /// `dst = imm`.
    pub const fn mov_imm(dst: u8, imm: i32) -> Self {
        Self::new(ALU64_MOV_K, dst, 0, 0, imm)
    }

    /// `if dst != imm goto +off`.
    pub const fn jne_imm(dst: u8, imm: u32, off: i16) -> Self {
        Self::new(JMP_JNE_K, dst, 0, off, imm as i32)
    }

    /// `if dst != src goto +off`.
    pub const fn jne_reg(dst: u8, src: u8, off: i16) -> Self {
        Self::new(JMP_JNE_X, dst, src, off, 0)
    }

    /// `return r0`.
    pub const fn exit() -> Self {
        Self::new(JMP_EXIT, 0, 0, 0, 0)
    }

    /// The opcode, for tests of the program's shape.
    pub fn code(&self) -> u8 {
        self.code
    }

    /// The jump offset.
    pub fn off(&self) -> i16 {
        self.off
    }
}

/// Compiles rules into the program: a prologue that splits the context
/// into registers, one block per rule that jumps past itself on the first
/// mismatch and otherwise returns 1, and an epilogue returning 0.
pub fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut insns = vec![
        Insn::load_u32(R2, R1, CTX_ACCESS_TYPE),
        Insn::and(R2, 0xffff),
        Insn::load_u32(R3, R1, CTX_ACCESS_TYPE),
        Insn::rsh(R3, 16),
        Insn::load_u32(R4, R1, CTX_MAJOR),
        Insn::load_u32(R5, R1, CTX_MINOR),
    ];
    for rule in rules {
        insns.extend(rule_block(rule));
    }
    insns.push(Insn::mov_imm(R0, 0));
    insns.push(Insn::exit());
    insns
}

/// One rule's block. Each check is a jump to the block's end, whose offset
/// is only known once the block is complete, so it is filled in last.
fn rule_block(rule: &DeviceRule) -> Vec<Insn> {
    let mut block: Vec<Insn> = Vec::new();
    match rule.kind {
        DeviceType::Char => block.push(Insn::jne_imm(R2, DEV_CHAR, 0)),
        DeviceType::Block => block.push(Insn::jne_imm(R2, DEV_BLOCK, 0)),
        DeviceType::All => {}
    }
    let bits = rule.access.bits();
    if bits != ACC_MKNOD | ACC_READ | ACC_WRITE {
        // The access asked for must be a subset of the rule's.
        block.push(Insn::mov_reg(R1, R3));
        block.push(Insn::and(R1, bits));
        block.push(Insn::jne_reg(R1, R3, 0));
    }
    if let Some(major) = rule.major {
        block.push(Insn::jne_imm(R4, major, 0));
    }
    if let Some(minor) = rule.minor {
        block.push(Insn::jne_imm(R5, minor, 0));
    }
    block.push(Insn::mov_imm(R0, 1));
    block.push(Insn::exit());
    let len = block.len();
    for (i, insn) in block.iter_mut().enumerate() {
        if insn.code == JMP_JNE_K || insn.code == JMP_JNE_X {
            // From the next instruction to the first after the block.
            insn.off = (len - i - 1) as i16;
        }
    }
    block
}

/// A loaded device program, attachable to any number of cgroups.
#[derive(Debug)]
pub struct Filter {
    prog: OwnedFd,
}

/// bpf_attr for BPF_PROG_LOAD, up to expected_attach_type.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// bpf_attr for BPF_PROG_ATTACH.
#[repr(C)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: attr is a live, initialised #[repr(C)] prefix of union
    // bpf_attr whose size is passed; the kernel reads (and for logs
    // writes through pointers) only within what it describes.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(r)
}

impl Filter {
    /// Compiles `rules` and loads the program into the kernel (needs
    /// CAP_SYS_ADMIN, or CAP_BPF, as the agent has).
    pub fn load(rules: &[DeviceRule]) -> Result<Self, DeviceError> {
        let insns = program(rules);
        let license = c"GPL";
        let mut log = vec![0u8; 64 * 1024];
        let mut name = [0u8; 16];
        name[..13].copy_from_slice(b"tepui_devices");
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            prog_name: name,
            ..Default::default()
        };
        let fd = match bpf(BPF_PROG_LOAD, &mut attr) {
            Ok(fd) => fd,
            Err(first) => {
                // Load again with the verifier's log, to say why.
                attr.log_level = 1;
                attr.log_size = log.len() as u32;
                attr.log_buf = log.as_mut_ptr() as u64;
                match bpf(BPF_PROG_LOAD, &mut attr) {
                    Ok(fd) => fd,
                    Err(_) => {
                        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                        return Err(DeviceError::Load {
                            error: first,
                            log: String::from_utf8_lossy(&log[..end]).into_owned(),
                        });
                    }
                }
            }
        };
        // SAFETY: BPF_PROG_LOAD returned a new fd that nothing else owns.
        let prog = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Ok(Self { prog })
    }

    /// Attaches the program to the cgroup directory `cgroup`, exclusively
    /// (no flags): it applies to every cgroup below, and nothing below can
    /// attach another device program to loosen it. The cgroup keeps the
    /// program; nothing needs to stay open.
    pub fn attach(&self, cgroup: &Path) -> Result<(), DeviceError> {
        let fail = |error| DeviceError::Attach {
            path: cgroup.to_path_buf(),
            error,
        };
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(cgroup)
            .map_err(fail)?;
        let mut attr = ProgAttachAttr {
            target_fd: dir.as_raw_fd() as u32,
            attach_bpf_fd: self.prog.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            attach_flags: 0,
            replace_bpf_fd: 0,
        };
        bpf(BPF_PROG_ATTACH, &mut attr).map_err(fail)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_program_has_a_prologue_a_block_per_rule_and_a_deny() {
        let insns = program(&DEFAULT_RULES);
        // Prologue: type, access, major, minor into r2..r5.
        assert_eq!(insns[0], Insn::load_u32(R2, R1, 0));
        assert_eq!(insns[1], Insn::and(R2, 0xffff));
        assert_eq!(insns[3], Insn::rsh(R3, 16));
        assert_eq!(insns[4], Insn::load_u32(R4, R1, 4));
        assert_eq!(insns[5], Insn::load_u32(R5, R1, 8));
        // 8 rules of type, major, minor, allow (5 insns), pts without minor (4).
        assert_eq!(insns.len(), 6 + 8 * 5 + 4 + 2);
        // The first block: char, 1, 3, each jumping past the block's end.
        assert_eq!(
            &insns[6..11],
            &[
                Insn::jne_imm(R2, DEV_CHAR, 4),
                Insn::jne_imm(R4, 1, 3),
                Insn::jne_imm(R5, 3, 2),
                Insn::mov_imm(R0, 1),
                Insn::exit(),
            ]
        );
        // The pts block has no minor check.
        let n = insns.len();
        assert_eq!(
            &insns[n - 6..n - 2],
            &[
                Insn::jne_imm(R2, DEV_CHAR, 3),
                Insn::jne_imm(R4, 136, 2),
                Insn::mov_imm(R0, 1),
                Insn::exit(),
            ]
        );
        // The end denies.
        assert_eq!(&insns[n - 2..], &[Insn::mov_imm(R0, 0), Insn::exit()]);
        // No jump leaves the program.
        for (i, insn) in insns.iter().enumerate() {
            if insn.code() == JMP_JNE_K || insn.code() == JMP_JNE_X {
                assert!(i + 1 + (insn.off() as usize) < n, "jump at {i} escapes");
            }
        }
    }

    #[test]
    fn a_partial_access_rule_checks_the_access_is_a_subset() {
        let rule = DeviceRule {
            kind: DeviceType::Block,
            major: Some(7),
            minor: None,
            access: Access {
                read: true,
                ..Access::default()
            },
        };
        assert_eq!(
            rule_block(&rule),
            vec![
                Insn::jne_imm(R2, DEV_BLOCK, 6),
                Insn::mov_reg(R1, R3),
                Insn::and(R1, ACC_READ),
                Insn::jne_reg(R1, R3, 3),
                Insn::jne_imm(R4, 7, 2),
                Insn::mov_imm(R0, 1),
                Insn::exit(),
            ]
        );
    }

    #[test]
    fn an_instruction_is_eight_bytes_with_dst_in_the_low_nibble() {
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        assert_eq!(Insn::mov_reg(R1, R3).regs, 0x31);
    }
}
