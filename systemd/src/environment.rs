//! The daemons' flags as a Mesos deployment spells them: every flag as
//! `--a_b` beside `--a-b`, and from the environment (as a unit's
//! `EnvironmentFile` gives it) as `TEPUI_<NAME>` or the name a Mesos
//! master or agent reads for it, so that flags and environments written
//! for Mesos keep their meaning under tepui.

/// The Mesos variables that may set a flag whose own variable is
/// `TEPUI_<name>`, in order: `MESOS_<NAME>` (libprocess's
/// `LIBPROCESS_SSL_*` for the `--ssl-*` flags), then `MESOS_<ALIAS>` for
/// each Mesos-style alias (`--docker_store_dir` of `--image-store`).
fn mesos_names(name: &str, aliases: &[&str]) -> Vec<String> {
    // libprocess reads its TLS settings from LIBPROCESS_SSL_*.
    let own = if name.starts_with("SSL_") {
        format!("LIBPROCESS_{name}")
    } else {
        format!("MESOS_{name}")
    };
    let mut names = vec![own];
    for alias in aliases.iter().filter(|a| a.contains('_')) {
        let alias = format!("MESOS_{}", alias.to_ascii_uppercase());
        if !names.contains(&alias) {
            names.push(alias);
        }
    }
    names
}

/// Gives every flag Mesos's spelling (`--work_dir` for `--work-dir`) and
/// lets it be read from its Mesos variables (see [`mesos_names`]) when
/// `TEPUI_<NAME>` is unset, so that a Mesos master's or agent's flags
/// and environment keep their meaning.
pub fn with_mesos_names(command: clap::Command) -> clap::Command {
    with_mesos_env(with_underscores(command))
}

/// Adds `--a_b` as an alias of each `--a-b` flag whose Mesos spelling no
/// flag has taken yet.
fn with_underscores(mut command: clap::Command) -> clap::Command {
    let taken: std::collections::HashSet<String> = command
        .get_arguments()
        .flat_map(|arg| {
            let aliases = arg.get_all_aliases().unwrap_or_default();
            arg.get_long().into_iter().chain(aliases).map(str::to_owned)
        })
        .collect();
    let missing: Vec<(clap::Id, &'static str)> = command
        .get_arguments()
        .filter_map(|arg| {
            let long = arg.get_long()?;
            let underscored = long.replace('-', "_");
            (!taken.contains(&underscored))
                // Leaked once per flag set, at start.
                .then(|| {
                    (
                        arg.get_id().clone(),
                        &*Box::leak(underscored.into_boxed_str()),
                    )
                })
        })
        .collect();
    for (id, alias) in missing {
        command = command.mut_arg(id, |arg| arg.alias(alias));
    }
    command
}

/// Lets every flag also be read from its Mesos variables when
/// `TEPUI_<NAME>` is unset.
fn with_mesos_env(mut command: clap::Command) -> clap::Command {
    let fallbacks: Vec<(clap::Id, &'static str)> = command
        .get_arguments()
        .filter_map(|arg| {
            let env = arg.get_env()?.to_str()?;
            let name = env.strip_prefix("TEPUI_")?;
            if std::env::var_os(env).is_some() {
                return None;
            }
            let aliases: Vec<&str> = arg.get_all_aliases().unwrap_or_default();
            let mesos = mesos_names(name, &aliases)
                .into_iter()
                .find(|mesos| std::env::var_os(mesos).is_some())?;
            // Leaked once per flag set, at start.
            Some((arg.get_id().clone(), &*Box::leak(mesos.into_boxed_str())))
        })
        .collect();
    for (id, mesos) in fallbacks {
        command = command.mut_arg(id, |arg| arg.env(mesos));
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_has_its_own_mesos_name_then_its_aliases() {
        assert_eq!(mesos_names("WORK_DIR", &[]), ["MESOS_WORK_DIR"]);
        assert_eq!(
            mesos_names("SSL_CERT_FILE", &[]),
            ["LIBPROCESS_SSL_CERT_FILE"]
        );
        assert_eq!(
            mesos_names(
                "IMAGE_STORE",
                &["image_store", "docker_store_dir", "docker-store-dir"]
            ),
            ["MESOS_IMAGE_STORE", "MESOS_DOCKER_STORE_DIR"]
        );
    }

    #[test]
    fn every_flag_takes_mesos_spelling_too() {
        let command = || {
            clap::Command::new("t")
                .arg(clap::Arg::new("dir").long("work-dir"))
                .arg(
                    clap::Arg::new("store")
                        .long("image-store")
                        .alias("docker_store_dir")
                        .alias("image_store"),
                )
                .arg(clap::Arg::new("port").long("port"))
        };
        let matches = with_mesos_names(command()).get_matches_from([
            "t",
            "--work_dir=/w",
            "--image_store",
            "/s",
            "--port=5",
        ]);
        assert_eq!(
            matches.get_one::<String>("dir").map(String::as_str),
            Some("/w")
        );
        assert_eq!(
            matches.get_one::<String>("store").map(String::as_str),
            Some("/s")
        );
        assert_eq!(
            matches.get_one::<String>("port").map(String::as_str),
            Some("5")
        );
        assert!(
            command()
                .try_get_matches_from(["t", "--work_dir=/w"])
                .is_err()
        );
    }

    #[test]
    fn a_mesos_alias_variable_sets_the_flag() {
        let command = || {
            clap::Command::new("t").arg(
                clap::Arg::new("store")
                    .long("envtest-store")
                    .env("TEPUI_ENVTEST_STORE")
                    .aliases(["envtest_store", "envtest_docker_dir"]),
            )
        };
        // SAFETY: these variables are this test's own; nothing else in
        // the test binary reads or writes them.
        unsafe { std::env::set_var("MESOS_ENVTEST_DOCKER_DIR", "/from/alias") };
        let matches = with_mesos_env(command()).get_matches_from(["t"]);
        assert_eq!(
            matches.get_one::<String>("store").map(String::as_str),
            Some("/from/alias")
        );
        // SAFETY: as above.
        unsafe { std::env::set_var("MESOS_ENVTEST_STORE", "/from/own") };
        let matches = with_mesos_env(command()).get_matches_from(["t"]);
        assert_eq!(
            matches.get_one::<String>("store").map(String::as_str),
            Some("/from/own")
        );
        // SAFETY: as above.
        unsafe { std::env::set_var("TEPUI_ENVTEST_STORE", "/from/tepui") };
        let matches = with_mesos_env(command()).get_matches_from(["t"]);
        assert_eq!(
            matches.get_one::<String>("store").map(String::as_str),
            Some("/from/tepui")
        );
    }
}
