//! A profile made into classic BPF with libseccomp, for one container's
//! bounding set on this architecture and kernel.
//!
//! Each filter is built by libseccomp as a binary tree over the call
//! numbers (`SCMP_FLTATR_CTL_OPTIMIZE` 2): the kernel's per-filter
//! action cache, computed when a filter is installed, walks the filter
//! once per call number, so a linear chain of ~370 calls made every
//! container's launch pay about half a millisecond in `seccomp(2)`.
//!
//! A filter here has one match action and one mismatch action, so each
//! action other than Allow gets a filter of its own (its rules' calls get
//! it, everything else Allow), and one more filter gives the default
//! action to every call no rule names. The kernel runs every installed
//! filter and keeps the most restrictive answer, so a call gets the most
//! restrictive action among the rules that match it, and the default when
//! none does. Every filter covers the native ABI and the profile's
//! sub-architectures (32-bit x86 and x32 on x86_64, as Docker's archMap);
//! a call through any other ABI gets EPERM.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use tepui_launcher::SeccompProgram;
use tepui_launcher::caps;

use super::profile::{Action, Conditions, Op, Profile, Rule};

/// A profile could not become a filter.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// libseccomp refused it (an architecture it lacks, a bad rule).
    #[error("compiling the seccomp filter: {0}")]
    Libseccomp(#[from] libseccomp::error::SeccompError),
    /// The compiled program could not be read back from libseccomp.
    #[error("reading the compiled seccomp filter: {0}")]
    Export(#[from] std::io::Error),
    /// The kernel would refuse the program.
    #[error(transparent)]
    Program(#[from] tepui_launcher::seccomp::SeccompProgramError),
}

/// The architecture as Docker's profiles name it (Go's GOARCH).
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Whether a rule applies to a container with this bounding set.
pub(super) fn applies(rule: &Rule, bounding: u64, kernel: (u32, u32)) -> bool {
    let has = |cap: &String| caps::number(cap).is_some_and(|n| bounding & (1 << n) != 0);
    let Conditions {
        caps: inc_caps,
        arches: inc_arches,
        min_kernel,
    } = &rule.includes;
    if !inc_caps.iter().all(has) {
        return false;
    }
    if !inc_arches.is_empty() && !inc_arches.iter().any(|a| a == go_arch()) {
        return false;
    }
    if min_kernel.is_some_and(|min| kernel < min) {
        return false;
    }
    !(rule.excludes.caps.iter().any(has) || rule.excludes.arches.iter().any(|a| a == go_arch()))
}

fn scmp_action(action: Action) -> ScmpAction {
    match action {
        Action::Allow => ScmpAction::Allow,
        Action::Errno(e) => ScmpAction::Errno(i32::try_from(e).unwrap_or(libc::EPERM)),
        Action::KillThread => ScmpAction::KillThread,
        Action::KillProcess => ScmpAction::KillProcess,
        Action::Trap => ScmpAction::Trap,
        Action::Log => ScmpAction::Log,
        Action::Trace(v) => ScmpAction::Trace(u16::try_from(v).unwrap_or(u16::MAX)),
    }
}

/// The rule's argument conditions, all of which must hold; none for a
/// rule without conditions (it matches every call).
fn condition_rule(rule: &Rule) -> Option<Vec<ScmpArgCompare>> {
    if rule.args.is_empty() {
        return None;
    }
    let compares = rule
        .args
        .iter()
        .map(|arg| {
            let op = match arg.op {
                Op::Ne => ScmpCompareOp::NotEqual,
                Op::Lt => ScmpCompareOp::Less,
                Op::Le => ScmpCompareOp::LessOrEqual,
                Op::Eq => ScmpCompareOp::Equal,
                Op::Ge => ScmpCompareOp::GreaterEqual,
                Op::Gt => ScmpCompareOp::Greater,
                Op::MaskedEq { mask } => ScmpCompareOp::MaskedEqual(mask),
            };
            ScmpArgCompare::new(arg.index.into(), op, arg.value)
        })
        .collect();
    Some(compares)
}

/// What one filter matches: per call, its conditions (None: every call of
/// that number, whatever its arguments).
#[derive(Default)]
struct Matches(BTreeMap<ScmpSyscall, Option<Vec<Vec<ScmpArgCompare>>>>);

impl Matches {
    fn add(&mut self, call: ScmpSyscall, condition: Option<Vec<ScmpArgCompare>>) {
        let entry = self.0.entry(call).or_insert_with(|| Some(Vec::new()));
        match (entry.as_mut(), condition) {
            // Already unconditional: stays so.
            (None, _) => {}
            (Some(_), None) => *entry = None,
            (Some(list), Some(rule)) => list.push(rule),
        }
    }

    fn program(
        self,
        mismatch: Action,
        on_match: Action,
        arches: &[ScmpArch],
    ) -> Result<SeccompProgram, CompileError> {
        let mut filter = ScmpFilterContext::new_filter(scmp_action(mismatch))?;
        // A call through an ABI the filter does not cover is refused.
        filter.set_act_badarch(ScmpAction::Errno(libc::EPERM))?;
        filter.set_ctl_optimize(2)?;
        for arch in arches {
            filter.add_arch(*arch)?;
        }
        let action = scmp_action(on_match);
        for (call, conditions) in self.0 {
            match conditions {
                None => filter.add_rule(action, call)?,
                Some(rules) => {
                    for compares in rules {
                        filter.add_rule_conditional(action, call, &compares)?;
                    }
                }
            }
        }
        let instructions = export(&filter)?;
        Ok(SeccompProgram::new(instructions)?)
    }
}

/// The filter's BPF, as libseccomp writes it (through a memfd, its only
/// way out in libseccomp 2.5).
fn export(filter: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, CompileError> {
    // SAFETY: memfd_create with a NUL-terminated name; the fd returned
    // is new and owned here.
    let fd = unsafe { libc::memfd_create(c"tepui-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: fd was just created and nothing else owns it.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    filter.export_bpf(&mut file)?;
    let mut bytes = Vec::new();
    std::io::Seek::rewind(&mut file)?;
    file.read_to_end(&mut bytes)?;
    let size = std::mem::size_of::<libc::sock_filter>();
    Ok(bytes
        .chunks_exact(size)
        .map(|b| libc::sock_filter {
            code: u16::from_ne_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        })
        .collect())
}

/// The sub-architectures a profile names for this machine, as libseccomp
/// knows them.
fn sub_arches(profile: &Profile) -> Vec<ScmpArch> {
    profile
        .sub_architectures
        .iter()
        .filter_map(|name| match name.as_str() {
            "SCMP_ARCH_X86" => Some(ScmpArch::X86),
            "SCMP_ARCH_X32" => Some(ScmpArch::X32),
            "SCMP_ARCH_ARM" => Some(ScmpArch::Arm),
            _ => None,
        })
        .collect()
}

/// The filters, in the order to install them, for a container whose
/// bounding set is `bounding`, on kernel `kernel` (major, minor).
pub fn compile(
    profile: &Profile,
    bounding: u64,
    kernel: (u32, u32),
) -> Result<Vec<SeccompProgram>, CompileError> {
    let arches = sub_arches(profile);
    let mut named = Matches::default();
    let mut by_action: Vec<(Action, Matches)> = Vec::new();
    for rule in profile
        .rules
        .iter()
        .filter(|r| applies(r, bounding, kernel))
    {
        let condition = condition_rule(rule);
        // Names libseccomp does not know are skipped, as Docker does.
        let calls: Vec<ScmpSyscall> = rule
            .names
            .iter()
            .filter_map(|name| ScmpSyscall::from_name(name).ok())
            .collect();
        let index = match by_action.iter().position(|(a, _)| *a == rule.action) {
            Some(i) => i,
            None => {
                by_action.push((rule.action, Matches::default()));
                by_action.len() - 1
            }
        };
        for call in calls {
            named.add(call, condition.clone());
            by_action[index].1.add(call, condition.clone());
        }
    }
    let mut programs = Vec::new();
    if profile.default_action != Action::Allow {
        programs.push(named.program(profile.default_action, Action::Allow, &arches)?);
    }
    for (action, matches) in by_action {
        if action != Action::Allow && !matches.0.is_empty() {
            programs.push(matches.program(Action::Allow, action, &arches)?);
        }
    }
    Ok(programs)
}
