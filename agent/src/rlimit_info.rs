//! A container's resource limits (setrlimit) from Mesos's
//! `ContainerInfo.rlimit_info`, and the default every container gets
//! otherwise: open files 1024 soft and 524288 hard, as systemd sets for
//! services (the hard limit no higher than the agent's own), rather than
//! the agent's own million inherited by a task. The agent's own hard
//! limits bound what a task may ask for.

use tepui_isolators::rlimits::Rlimit;
use tepui_proto::v1::RLimitInfo;
use tepui_proto::v1::r_limit_info::r_limit::Type;

/// The open-file limit of a container that asks for none: (soft, hard).
pub const DEFAULT_NOFILE: (u64, u64) = (1024, 524_288);

/// [`DEFAULT_NOFILE`] within an agent whose own hard limit is `own_hard`.
pub fn default_nofile(own_hard: u64) -> (u64, u64) {
    let hard = DEFAULT_NOFILE.1.min(own_hard);
    (DEFAULT_NOFILE.0.min(hard), hard)
}

/// This process's hard limit of `resource` (an RLIMIT_* number): the
/// agent's bound on what a task may ask for.
pub fn own_hard(resource: u32) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct it is given.
    if unsafe { libc::getrlimit(resource, &mut limit) } == 0 {
        limit.rlim_max
    } else if resource == libc::RLIMIT_NOFILE {
        DEFAULT_NOFILE.1
    } else {
        0
    }
}

/// The limits of a container: what `info` asks for (both of a limit's
/// values set, or neither for unlimited, as Mesos checks them), and the
/// default open-file limit unless it names RLMT_NOFILE. A limit tepui
/// cannot name is refused, naming it, and so is a hard limit above the
/// agent's own (`bound`, the agent's hard limit of each RLIMIT_*): the
/// agent, as root, could set it, but a task gets no more than the
/// operator gave the agent (systemd's `LimitNOFILE=` and kin raise it).
pub fn rlimits(
    info: Option<&RLimitInfo>,
    bound: impl Fn(u32) -> u64,
) -> Result<Vec<Rlimit>, String> {
    let mut out = Vec::new();
    for limit in info.map(|i| i.rlimits.as_slice()).unwrap_or_default() {
        let kind = limit
            .r#type
            .and_then(|t| Type::try_from(t).ok())
            .filter(|t| *t != Type::Unknown)
            .ok_or_else(|| {
                format!(
                    "rlimit_info: an rlimit of unknown type {:?}",
                    limit.r#type.unwrap_or_default()
                )
            })?;
        let name = kind.as_str_name();
        let resource = tepui_isolators::rlimits::resource(name)
            .ok_or_else(|| format!("rlimit_info: {name} is not supported"))?;
        let (soft, hard) = match (limit.soft, limit.hard) {
            (Some(soft), Some(hard)) if soft <= hard => (soft, hard),
            (Some(soft), Some(hard)) => {
                return Err(format!(
                    "rlimit_info: {name} has a soft limit {soft} above its hard limit {hard}"
                ));
            }
            (None, None) => (libc::RLIM_INFINITY, libc::RLIM_INFINITY),
            _ => {
                return Err(format!(
                    "rlimit_info: {name} needs both its soft and hard limit, or neither for unlimited"
                ));
            }
        };
        let most = bound(resource);
        if hard > most {
            let shown = |v: u64| match v {
                libc::RLIM_INFINITY => "unlimited".to_owned(),
                v => v.to_string(),
            };
            return Err(format!(
                "rlimit_info: {name} asks for a hard limit of {}, above the agent's own hard limit of {}",
                shown(hard),
                shown(most)
            ));
        }
        if out.iter().any(|r: &Rlimit| r.resource == resource) {
            return Err(format!("rlimit_info: {name} is given twice"));
        }
        out.push(Rlimit {
            resource,
            soft,
            hard,
        });
    }
    if !out.iter().any(|r| r.resource == libc::RLIMIT_NOFILE) {
        let (soft, hard) = default_nofile(bound(libc::RLIMIT_NOFILE));
        out.push(Rlimit {
            resource: libc::RLIMIT_NOFILE,
            soft,
            hard,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tepui_proto::v1::r_limit_info::RLimit;

    fn limit(kind: Type, soft: Option<u64>, hard: Option<u64>) -> RLimit {
        RLimit {
            r#type: Some(kind as i32),
            soft,
            hard,
        }
    }

    #[test]
    fn a_container_gets_systemds_open_file_limit_unless_it_asks() {
        let none = rlimits(None, |_| 1 << 20).unwrap();
        assert_eq!(
            none,
            [Rlimit {
                resource: libc::RLIMIT_NOFILE,
                soft: 1024,
                hard: 524_288
            }]
        );
        let asked = RLimitInfo {
            rlimits: vec![
                limit(Type::RlmtNofile, Some(64), Some(128)),
                limit(Type::RlmtCore, None, None),
            ],
        };
        let got = rlimits(Some(&asked), |_| libc::RLIM_INFINITY).unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!((got[0].soft, got[0].hard), (64, 128));
        assert_eq!(got[1].soft, libc::RLIM_INFINITY);
    }

    #[test]
    fn a_limit_above_the_agents_own_is_refused_naming_it() {
        let bound = |r: u32| {
            if r == libc::RLIMIT_NOFILE {
                4096
            } else {
                1 << 20
            }
        };
        let ask = |kind, soft, hard| RLimitInfo {
            rlimits: vec![limit(kind, soft, hard)],
        };
        let e = rlimits(Some(&ask(Type::RlmtNofile, Some(10), Some(8192))), bound).unwrap_err();
        assert_eq!(
            e,
            "rlimit_info: RLMT_NOFILE asks for a hard limit of 8192, above the agent's own hard limit of 4096"
        );
        let e = rlimits(Some(&ask(Type::RlmtMemlock, None, None)), bound).unwrap_err();
        assert!(
            e.contains("RLMT_MEMLOCK asks for a hard limit of unlimited"),
            "{e}"
        );
        // At the bound is fine.
        let got = rlimits(Some(&ask(Type::RlmtNofile, Some(10), Some(4096))), bound).unwrap();
        assert_eq!((got[0].soft, got[0].hard), (10, 4096));
    }

    #[test]
    fn the_default_stays_within_the_agents_own_hard_limit() {
        assert_eq!(default_nofile(20_000), (1024, 20_000));
        assert_eq!(default_nofile(512), (512, 512));
        assert_eq!(default_nofile(1 << 20), (1024, 524_288));
    }

    #[test]
    fn a_limit_that_cannot_be_set_is_refused_naming_it() {
        for (bad, why) in [
            (limit(Type::RlmtNofile, Some(9), Some(8)), "above its hard"),
            (
                limit(Type::RlmtStack, Some(9), None),
                "RLMT_STACK needs both",
            ),
            (limit(Type::Unknown, None, None), "unknown type"),
        ] {
            let e = rlimits(Some(&RLimitInfo { rlimits: vec![bad] }), |_| 1 << 20).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }
}
