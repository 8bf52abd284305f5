//! A profile as an OCI runtime config's `linux.seccomp`, resolved for one
//! bounding set and kernel (the OCI format has no `includes`/`excludes`),
//! so that another runtime (crun, runc) can be given the very filter a
//! tepui container gets: the lifecycle benchmark compares on that ground,
//! and an operator can check what a container runs under.

use serde_json::{Value, json};

use super::compile::applies;
use super::profile::{Action, Op, Profile, native_scmp_arch};

/// An action as the OCI format names it, with its errno or trace value.
fn action(action: Action) -> (&'static str, Option<u32>) {
    match action {
        Action::Allow => ("SCMP_ACT_ALLOW", None),
        Action::Errno(e) => ("SCMP_ACT_ERRNO", Some(e)),
        Action::KillThread => ("SCMP_ACT_KILL_THREAD", None),
        Action::KillProcess => ("SCMP_ACT_KILL_PROCESS", None),
        Action::Trap => ("SCMP_ACT_TRAP", None),
        Action::Log => ("SCMP_ACT_LOG", None),
        Action::Trace(v) => ("SCMP_ACT_TRACE", Some(v)),
    }
}

/// `linux.seccomp` for a container with this bounding set.
pub fn linux_seccomp(profile: &Profile, bounding: u64, kernel: (u32, u32)) -> Value {
    let (default_action, default_errno) = action(profile.default_action);
    let mut sub_architectures = profile.sub_architectures.clone();
    sub_architectures.sort();
    let mut architectures = vec![native_scmp_arch().to_owned()];
    architectures.extend(sub_architectures);
    let syscalls: Vec<Value> = profile
        .rules
        .iter()
        .filter(|rule| applies(rule, bounding, kernel))
        .map(|rule| {
            let (name, errno) = action(rule.action);
            let args: Vec<Value> = rule
                .args
                .iter()
                .map(|arg| {
                    let (op, value, value_two) = match arg.op {
                        Op::Ne => ("SCMP_CMP_NE", arg.value, 0),
                        Op::Lt => ("SCMP_CMP_LT", arg.value, 0),
                        Op::Le => ("SCMP_CMP_LE", arg.value, 0),
                        Op::Eq => ("SCMP_CMP_EQ", arg.value, 0),
                        Op::Ge => ("SCMP_CMP_GE", arg.value, 0),
                        Op::Gt => ("SCMP_CMP_GT", arg.value, 0),
                        // The OCI format's value is the mask.
                        Op::MaskedEq { mask } => ("SCMP_CMP_MASKED_EQ", mask, arg.value),
                    };
                    json!({"index": arg.index, "value": value, "valueTwo": value_two, "op": op})
                })
                .collect();
            let mut rule_json = json!({"names": rule.names, "action": name, "args": args});
            if let Some(errno) = errno {
                rule_json["errnoRet"] = errno.into();
            }
            rule_json
        })
        .collect();
    let mut seccomp = json!({
        "defaultAction": default_action,
        "architectures": architectures,
        "syscalls": syscalls,
    });
    if let Some(errno) = default_errno {
        seccomp["defaultErrnoRet"] = errno.into();
    }
    seccomp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities;
    use crate::seccomp::Profile;

    #[test]
    fn the_default_resolves_for_its_bounding_set_and_reads_back() {
        let profile = crate::seccomp::default::profile();
        let bounding = capabilities::default_mask();
        let oci = linux_seccomp(&profile, bounding, (6, 1));
        assert_eq!(oci["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(oci["defaultErrnoRet"], 1);
        let names = |v: &Value| -> Vec<String> {
            v["syscalls"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r["names"].as_array().unwrap().clone())
                .map(|n| n.as_str().unwrap().to_owned())
                .collect()
        };
        // Without CAP_SYS_ADMIN: no mount, and clone3 gets ENOSYS.
        assert!(!names(&oci).contains(&"mount".to_owned()));
        let clone3 = oci["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["names"][0] == "clone3")
            .unwrap();
        assert_eq!(clone3["errnoRet"], 38);
        let admin = linux_seccomp(&profile, bounding | 1 << 21, (6, 1));
        assert!(names(&admin).contains(&"mount".to_owned()));
        // Docker's format is a superset of OCI's, so it parses back, and
        // resolves to itself.
        let back = Profile::from_json(oci.to_string().as_bytes()).unwrap();
        assert_eq!(linux_seccomp(&back, bounding, (6, 1)), oci);
    }
}
