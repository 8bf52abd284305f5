//! The daemons' flags from their environment, as a unit's
//! `EnvironmentFile` gives it: `TEPUI_<NAME>` for every flag, and the
//! name a Mesos master or agent reads for it, so that an environment
//! written for Mesos keeps its meaning under tepui.

/// Lets every flag also be read from `MESOS_<NAME>` (`LIBPROCESS_SSL_*`
/// for the `--ssl-*` flags) when `TEPUI_<NAME>` is unset, so that a Mesos
/// master's or agent's environment keeps its meaning.
pub fn with_mesos_env(mut command: clap::Command) -> clap::Command {
    let fallbacks: Vec<(clap::Id, &'static str)> = command
        .get_arguments()
        .filter_map(|arg| {
            let env = arg.get_env()?.to_str()?;
            let name = env.strip_prefix("TEPUI_")?;
            // libprocess reads its TLS settings from LIBPROCESS_SSL_*.
            let mesos = if name.starts_with("SSL_") {
                format!("LIBPROCESS_{name}")
            } else {
                format!("MESOS_{name}")
            };
            (std::env::var_os(env).is_none() && std::env::var_os(&mesos).is_some())
                // Leaked once per flag set, at start.
                .then(|| (arg.get_id().clone(), &*Box::leak(mesos.into_boxed_str())))
        })
        .collect();
    for (id, mesos) in fallbacks {
        command = command.mut_arg(id, |arg| arg.env(mesos));
    }
    command
}
