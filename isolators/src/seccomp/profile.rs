//! Seccomp profiles in Docker's JSON format (the format Mesos's
//! `--seccomp_config_dir` holds): `defaultAction`, `defaultErrnoRet`,
//! `architectures`/`archMap`, and `syscalls` rules of `names`, `action`,
//! `errnoRet`, `args` (`index`, `value`, `valueTwo`, `op`) and conditional
//! `includes`/`excludes` (`caps`, `arches`, `minKernel`). What the format
//! can say but tepui cannot do (`flags`, a notify listener) is refused.

use serde::Deserialize;

/// A profile could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// Not JSON of the profile's shape.
    #[error("not a seccomp profile in Docker's JSON format: {0}")]
    Json(#[from] serde_json::Error),
    /// A value the format allows but tepui does not carry out.
    #[error("{0}")]
    Unsupported(String),
    /// A value the format does not allow.
    #[error("{0}")]
    Invalid(String),
}

/// What the kernel does with a system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Runs it.
    Allow,
    /// Fails it with this errno.
    Errno(u32),
    /// Kills the calling thread.
    KillThread,
    /// Kills the whole process.
    KillProcess,
    /// Sends SIGSYS.
    Trap,
    /// Runs it and logs it.
    Log,
    /// Tells a ptrace tracer (with this value); ENOSYS without one.
    Trace(u32),
}

/// How an argument is compared (libseccomp's SCMP_CMP_*), on all 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==`
    Eq,
    /// `>=`
    Ge,
    /// `>`
    Gt,
    /// `arg & mask == value`.
    MaskedEq {
        /// The bits compared.
        mask: u64,
    },
}

/// One argument condition of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arg {
    /// Which argument, 0 to 5.
    pub index: u8,
    /// The comparison.
    pub op: Op,
    /// The value compared with.
    pub value: u64,
}

/// When a rule applies (its `includes`) or does not (its `excludes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    /// Capability names (with `CAP_`): for `includes`, all must be in the
    /// container's bounding set; for `excludes`, any one excludes.
    pub caps: Vec<String>,
    /// Go architecture names (`amd64`, `arm64`, ...).
    pub arches: Vec<String>,
    /// A kernel version, `major.minor`: includes from it on.
    pub min_kernel: Option<(u32, u32)>,
}

/// One rule: these system calls get this action (when every argument
/// condition holds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// System call names; one unknown to this architecture is skipped.
    pub names: Vec<String>,
    /// The action.
    pub action: Action,
    /// Argument conditions, all of which must hold.
    pub args: Vec<Arg>,
    /// When the rule applies.
    pub includes: Conditions,
    /// When it does not.
    pub excludes: Conditions,
}

/// A whole profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// What a call no rule matches gets.
    pub default_action: Action,
    /// The rules, in order.
    pub rules: Vec<Rule>,
    /// The other ABIs of this machine that the profile filters too
    /// (libseccomp names: `SCMP_ARCH_X86`, `SCMP_ARCH_X32`); a call
    /// through an ABI not named gets EPERM.
    pub sub_architectures: Vec<String>,
}

/// This machine's architecture as libseccomp names it in profiles.
pub fn native_scmp_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "SCMP_ARCH_X86_64",
        "aarch64" => "SCMP_ARCH_AARCH64",
        "riscv64" => "SCMP_ARCH_RISCV64",
        _ => "SCMP_ARCH_NATIVE",
    }
}

/// The ABIs besides the native one that a profile's `archMap` (or, when
/// it has none, its `architectures`) lists for this machine, as Docker
/// reads them.
fn sub_architectures(
    architectures: Option<Vec<String>>,
    arch_map: Option<Vec<JsonArchMap>>,
) -> Vec<String> {
    let native = native_scmp_arch();
    let listed: Vec<String> = match arch_map {
        Some(map) if !map.is_empty() => map
            .into_iter()
            .filter(|entry| entry.architecture == native)
            .flat_map(|entry| entry.sub_architectures.unwrap_or_default())
            .collect(),
        _ => architectures.unwrap_or_default(),
    };
    let mut subs: Vec<String> = listed.into_iter().filter(|a| a != native).collect();
    subs.sort();
    subs.dedup();
    subs
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JsonProfile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Option<Vec<String>>,
    #[serde(default)]
    arch_map: Option<Vec<JsonArchMap>>,
    #[serde(default)]
    syscalls: Option<Vec<JsonRule>>,
    #[serde(default)]
    flags: Option<Vec<String>>,
    #[serde(default)]
    listener_path: Option<String>,
    #[serde(default)]
    listener_metadata: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JsonArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JsonRule {
    #[serde(default)]
    names: Option<Vec<String>>,
    #[serde(default)]
    name: Option<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<JsonArg>>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    includes: Option<JsonConditions>,
    #[serde(default)]
    excludes: Option<JsonConditions>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JsonArg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JsonConditions {
    #[serde(default)]
    caps: Option<Vec<String>>,
    #[serde(default)]
    arches: Option<Vec<String>>,
    #[serde(default)]
    min_kernel: Option<String>,
}

fn action(name: &str, errno: Option<u32>, default_errno: u32) -> Result<Action, ProfileError> {
    Ok(match name {
        "SCMP_ACT_ALLOW" => Action::Allow,
        "SCMP_ACT_ERRNO" => Action::Errno(errno.unwrap_or(default_errno)),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
        "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
        "SCMP_ACT_TRAP" => Action::Trap,
        "SCMP_ACT_LOG" => Action::Log,
        "SCMP_ACT_TRACE" => Action::Trace(errno.unwrap_or(default_errno)),
        "SCMP_ACT_NOTIFY" => {
            return Err(ProfileError::Unsupported(
                "action SCMP_ACT_NOTIFY: tepui has no seccomp notify listener".into(),
            ));
        }
        other => {
            return Err(ProfileError::Invalid(format!(
                "unknown seccomp action {other:?}"
            )));
        }
    })
}

fn arg(json: &JsonArg) -> Result<Arg, ProfileError> {
    let index = u8::try_from(json.index)
        .ok()
        .filter(|i| *i < 6)
        .ok_or_else(|| {
            ProfileError::Invalid(format!(
                "argument index {} (a system call has 6 arguments, 0 to 5)",
                json.index
            ))
        })?;
    let (op, value) = match json.op.as_str() {
        "SCMP_CMP_NE" => (Op::Ne, json.value),
        "SCMP_CMP_LT" => (Op::Lt, json.value),
        "SCMP_CMP_LE" => (Op::Le, json.value),
        "SCMP_CMP_EQ" => (Op::Eq, json.value),
        "SCMP_CMP_GE" => (Op::Ge, json.value),
        "SCMP_CMP_GT" => (Op::Gt, json.value),
        // libseccomp's datum_a is the mask, datum_b the value.
        "SCMP_CMP_MASKED_EQ" => (Op::MaskedEq { mask: json.value }, json.value_two),
        other => {
            return Err(ProfileError::Invalid(format!(
                "unknown argument comparison {other:?}"
            )));
        }
    };
    Ok(Arg { index, op, value })
}

fn kernel_version(text: &str) -> Result<(u32, u32), ProfileError> {
    let bad = || ProfileError::Invalid(format!("minKernel {text:?} is not MAJOR.MINOR"));
    let (major, minor) = text.split_once('.').ok_or_else(bad)?;
    Ok((
        major.parse().map_err(|_| bad())?,
        minor.parse().map_err(|_| bad())?,
    ))
}

fn conditions(json: Option<JsonConditions>) -> Result<Conditions, ProfileError> {
    let json = json.unwrap_or_default();
    let caps = json.caps.unwrap_or_default();
    if let Some(unknown) = caps
        .iter()
        .find(|c| tepui_launcher::caps::number(c).is_none())
    {
        return Err(ProfileError::Invalid(format!(
            "unknown capability {unknown:?}"
        )));
    }
    Ok(Conditions {
        caps,
        arches: json.arches.unwrap_or_default(),
        min_kernel: json.min_kernel.as_deref().map(kernel_version).transpose()?,
    })
}

impl Profile {
    /// Parses a profile in Docker's JSON format.
    pub fn from_json(text: &[u8]) -> Result<Self, ProfileError> {
        let json: JsonProfile = serde_json::from_slice(text)?;
        if json.flags.as_ref().is_some_and(|f| !f.is_empty()) {
            return Err(ProfileError::Unsupported(
                "profile flags (SECCOMP_FILTER_FLAG_*) are not supported".into(),
            ));
        }
        if json.listener_path.is_some() || json.listener_metadata.is_some() {
            return Err(ProfileError::Unsupported(
                "listenerPath/listenerMetadata: tepui has no seccomp notify listener".into(),
            ));
        }
        let sub_architectures = sub_architectures(json.architectures, json.arch_map);
        let default_errno = json.default_errno_ret.unwrap_or(libc::EPERM as u32);
        let default_action = action(&json.default_action, None, default_errno)?;
        let mut rules = Vec::new();
        for rule in json.syscalls.unwrap_or_default() {
            let _ = rule.comment;
            let mut names = rule.names.unwrap_or_default();
            names.extend(rule.name);
            if names.is_empty() {
                return Err(ProfileError::Invalid(
                    "a syscalls rule without names".into(),
                ));
            }
            rules.push(Rule {
                names,
                action: action(&rule.action, rule.errno_ret, default_errno)?,
                args: rule
                    .args
                    .unwrap_or_default()
                    .iter()
                    .map(arg)
                    .collect::<Result<_, _>>()?,
                includes: conditions(rule.includes)?,
                excludes: conditions(rule.excludes)?,
            });
        }
        Ok(Self {
            default_action,
            rules,
            sub_architectures,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_format_parses_with_its_conditions() {
        let profile = Profile::from_json(
            br#"{
              "defaultAction": "SCMP_ACT_ERRNO",
              "defaultErrnoRet": 1,
              "architectures": ["SCMP_ARCH_X86_64"],
              "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"name": "close", "action": "SCMP_ACT_ALLOW", "comment": "old format"},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}],
                 "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}}
              ]
            }"#,
        )
        .unwrap();
        assert_eq!(profile.default_action, Action::Errno(1));
        assert_eq!(profile.rules.len(), 5);
        assert_eq!(profile.rules[1].names, ["close"]);
        assert_eq!(
            profile.rules[2].args,
            [Arg {
                index: 0,
                op: Op::MaskedEq { mask: 0x7E02_0000 },
                value: 0
            }]
        );
        assert_eq!(profile.rules[2].excludes.caps, ["CAP_SYS_ADMIN"]);
        assert_eq!(profile.rules[3].action, Action::Errno(38));
        assert_eq!(profile.rules[4].includes.min_kernel, Some((4, 8)));
    }

    #[test]
    fn what_tepui_cannot_do_is_refused_by_name() {
        let refused = |json: &str| Profile::from_json(json.as_bytes()).unwrap_err().to_string();
        assert!(refused(r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#).contains("SCMP_ACT_NOTIFY"));
        assert!(
            refused(r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG"]}"#)
                .contains("flags")
        );
        assert!(refused(r#"{"defaultAction": "SCMP_ACT_ALLOW", "bogus": 1}"#).contains("bogus"));
        assert!(
            refused(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}"#)
                .contains("index 6")
        );
        assert!(
            refused(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_FLY"]}}]}"#)
                .contains("CAP_FLY")
        );
    }
}
