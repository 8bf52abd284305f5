//! Resource limits (setrlimit) by name: Mesos's RLimitInfo types
//! (`RLMT_NOFILE`) and the short names an operator types (`nofile`).

/// The RLIMIT_* number for a name, in either spelling.
pub fn resource(name: &str) -> Option<u32> {
    let short = name
        .strip_prefix("RLMT_")
        .unwrap_or(name)
        .to_ascii_lowercase();
    Some(match short.as_str() {
        "as" => libc::RLIMIT_AS,
        "core" => libc::RLIMIT_CORE,
        "cpu" => libc::RLIMIT_CPU,
        "data" => libc::RLIMIT_DATA,
        "fsize" => libc::RLIMIT_FSIZE,
        "locks" => libc::RLIMIT_LOCKS,
        "memlock" => libc::RLIMIT_MEMLOCK,
        "msgqueue" => libc::RLIMIT_MSGQUEUE,
        "nice" => libc::RLIMIT_NICE,
        "nofile" => libc::RLIMIT_NOFILE,
        "nproc" => libc::RLIMIT_NPROC,
        "rss" => libc::RLIMIT_RSS,
        "rtprio" => libc::RLIMIT_RTPRIO,
        "rttime" => libc::RLIMIT_RTTIME,
        "sigpending" => libc::RLIMIT_SIGPENDING,
        "stack" => libc::RLIMIT_STACK,
        _ => return None,
    })
}

/// One limit for a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    /// RLIMIT_* number.
    pub resource: u32,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit (at least `soft`).
    pub hard: u64,
}

/// Parses `NAME=SOFT[:HARD]`, `unlimited` allowed for either value.
pub fn parse(text: &str) -> Result<Rlimit, String> {
    let (name, values) = text
        .split_once('=')
        .ok_or_else(|| format!("rlimit {text:?}: expected NAME=SOFT[:HARD]"))?;
    let resource =
        resource(name).ok_or_else(|| format!("rlimit {text:?}: unknown resource {name:?}"))?;
    let value = |v: &str| -> Result<u64, String> {
        match v {
            "unlimited" | "infinity" => Ok(libc::RLIM_INFINITY),
            _ => v
                .parse()
                .map_err(|_| format!("rlimit {text:?}: {v:?} is not a number")),
        }
    };
    let (soft, hard) = match values.split_once(':') {
        Some((s, h)) => (value(s)?, value(h)?),
        None => (value(values)?, value(values)?),
    };
    if soft > hard {
        return Err(format!(
            "rlimit {text:?}: the soft limit exceeds the hard one"
        ));
    }
    Ok(Rlimit {
        resource,
        soft,
        hard,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_spellings_and_refuses_nonsense() {
        assert_eq!(resource("RLMT_NOFILE"), Some(libc::RLIMIT_NOFILE));
        assert_eq!(
            parse("nofile=1024:4096"),
            Ok(Rlimit {
                resource: libc::RLIMIT_NOFILE,
                soft: 1024,
                hard: 4096
            })
        );
        assert_eq!(
            parse("core=unlimited").map(|r| r.hard),
            Ok(libc::RLIM_INFINITY)
        );
        assert!(parse("nofile=10:5").is_err());
        assert!(parse("files=10").is_err());
        assert!(parse("nofile").is_err());
    }
}
