//! A profile made into classic BPF with seccompiler, for one container's
//! bounding set on this architecture and kernel.
//!
//! seccompiler builds a filter with one match action; a profile's rules
//! may have several. So each action other than Allow gets a filter of its
//! own (its rules' calls get it, everything else Allow), and one more
//! filter gives the default action to every call no rule names. The
//! kernel runs every installed filter and keeps the most restrictive
//! answer, so a call gets the most restrictive action among the rules
//! that match it, and the default when none does.

use std::collections::BTreeMap;
use std::str::FromStr;

use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch,
};
use tepui_launcher::SeccompProgram;
use tepui_launcher::caps;

use super::profile::{Action, Conditions, Op, Profile, Rule};

/// A profile could not become a filter.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// seccompiler refused it (an architecture it lacks, a too large filter).
    #[error("compiling the seccomp filter: {0}")]
    Seccompiler(#[from] seccompiler::BackendError),
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
fn applies(rule: &Rule, bounding: u64, kernel: (u32, u32)) -> bool {
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

fn seccompiler_action(action: Action) -> SeccompAction {
    match action {
        Action::Allow => SeccompAction::Allow,
        Action::Errno(e) => SeccompAction::Errno(e),
        Action::KillThread => SeccompAction::KillThread,
        Action::KillProcess => SeccompAction::KillProcess,
        Action::Trap => SeccompAction::Trap,
        Action::Log => SeccompAction::Log,
        Action::Trace(v) => SeccompAction::Trace(v),
    }
}

/// The rule's argument conditions as a seccompiler rule; none for a rule
/// without conditions (it matches every call).
fn condition_rule(rule: &Rule) -> Result<Option<SeccompRule>, CompileError> {
    if rule.args.is_empty() {
        return Ok(None);
    }
    let conditions = rule
        .args
        .iter()
        .map(|arg| {
            let op = match arg.op {
                Op::Ne => SeccompCmpOp::Ne,
                Op::Lt => SeccompCmpOp::Lt,
                Op::Le => SeccompCmpOp::Le,
                Op::Eq => SeccompCmpOp::Eq,
                Op::Ge => SeccompCmpOp::Ge,
                Op::Gt => SeccompCmpOp::Gt,
                Op::MaskedEq { mask } => SeccompCmpOp::MaskedEq(mask),
            };
            SeccompCondition::new(arg.index, SeccompCmpArgLen::Qword, op, arg.value)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(SeccompRule::new(conditions)?))
}

/// What one filter matches: per call number, its conditions (an empty
/// list: every call of that number).
#[derive(Default)]
struct Matches(BTreeMap<i64, Option<Vec<SeccompRule>>>);

impl Matches {
    fn add(&mut self, nr: i64, condition: Option<SeccompRule>) {
        let entry = self.0.entry(nr).or_insert_with(|| Some(Vec::new()));
        match (entry.as_mut(), condition) {
            // Already unconditional: stays so.
            (None, _) => {}
            (Some(_), None) => *entry = None,
            (Some(list), Some(rule)) => list.push(rule),
        }
    }

    fn program(self, mismatch: Action, on_match: Action) -> Result<SeccompProgram, CompileError> {
        let rules = self
            .0
            .into_iter()
            .map(|(nr, rules)| (nr, rules.unwrap_or_default()))
            .collect();
        let arch = TargetArch::try_from(std::env::consts::ARCH)?;
        let filter = SeccompFilter::new(
            rules,
            seccompiler_action(mismatch),
            seccompiler_action(on_match),
            arch,
        )?;
        let bpf: seccompiler::BpfProgram = filter.try_into()?;
        let instructions = bpf
            .into_iter()
            .map(|i| libc::sock_filter {
                code: i.code,
                jt: i.jt,
                jf: i.jf,
                k: i.k,
            })
            .collect();
        Ok(SeccompProgram::new(instructions)?)
    }
}

/// The filters, in the order to install them, for a container whose
/// bounding set is `bounding`, on kernel `kernel` (major, minor).
pub fn compile(
    profile: &Profile,
    bounding: u64,
    kernel: (u32, u32),
) -> Result<Vec<SeccompProgram>, CompileError> {
    let mut named = Matches::default();
    let mut by_action: Vec<(Action, Matches)> = Vec::new();
    for rule in profile
        .rules
        .iter()
        .filter(|r| applies(r, bounding, kernel))
    {
        let condition = condition_rule(rule)?;
        // Names this architecture lacks are skipped, as Docker does.
        let numbers: Vec<i64> = rule
            .names
            .iter()
            .filter_map(|name| syscalls::Sysno::from_str(name).ok())
            .map(|sysno| i64::from(sysno.id()))
            .collect();
        let index = match by_action.iter().position(|(a, _)| *a == rule.action) {
            Some(i) => i,
            None => {
                by_action.push((rule.action, Matches::default()));
                by_action.len() - 1
            }
        };
        for nr in numbers {
            named.add(nr, condition.clone());
            by_action[index].1.add(nr, condition.clone());
        }
    }
    let mut programs = Vec::new();
    if profile.default_action != Action::Allow {
        programs.push(named.program(profile.default_action, Action::Allow)?);
    }
    for (action, matches) in by_action {
        if action != Action::Allow && !matches.0.is_empty() {
            programs.push(matches.program(Action::Allow, action)?);
        }
    }
    Ok(programs)
}
