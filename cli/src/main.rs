//! The `tepui` command line.

mod cgroup_holder;
mod cluster;
mod container;
mod image;
mod local;
mod local_secrets;
mod master_http;
mod progress;
mod run;
mod wire;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// tepui: a Linux-native cluster agent and compact master after Apache Mesos.
#[derive(Debug, Parser)]
#[command(name = "tepui", version, about, long_about = None)]
struct Cli {
    /// Log level for tepui's own messages on stderr (error, warn, info,
    /// debug, trace).
    #[arg(long, global = true, env = "TEPUI_LOG", default_value = "warn")]
    log_level: tracing::Level,
    /// The principal to authenticate as (HTTP Basic) to a master or agent
    /// that requires it; with --secret.
    #[arg(long, global = true, env = "TEPUI_PRINCIPAL", requires = "secret")]
    principal: Option<String>,
    /// The secret of --principal (prefer TEPUI_SECRET: a flag is visible
    /// to other users in the process list).
    #[arg(
        long,
        global = true,
        env = "TEPUI_SECRET",
        requires = "principal",
        hide_env_values = true
    )]
    secret: Option<String>,
    /// A credential file, Mesos's JSON `{"principal":..,"secret":..}` (a
    /// path or `file://` URL), used when --principal is not given.
    /// Without either, a local cluster's (`tepui local` under
    /// /var/lib/tepui/local, its secrets/client.json, when readable) goes
    /// to this machine's addresses only.
    #[arg(long, global = true, env = "TEPUI_CREDENTIAL", value_name = "PATH")]
    credential: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Convert Mesos v1 messages between JSON and protobuf (stdin to stdout).
    Wire(wire::WireArgs),
    /// Run containers with the containerizer alone (development and tests).
    Container(Box<container::ContainerArgs>),
    /// Pull, import, list, remove and collect OCI images.
    Image(Box<image::ImageArgs>),
    /// Run a master and an agent in this process, on 127.0.0.1:5050 and
    /// :5051, until Ctrl-C (a cluster to try tepui on).
    Local(Box<local::LocalArgs>),
    /// Hold the delegated cgroup of tepui-containers.service, where the
    /// agent's containers live under systemd (that unit's main process).
    CgroupHolder,
    /// Run one task on the cluster (like mesos-execute) and exit with its
    /// exit code, after printing its stdout and stderr.
    Run(Box<run::RunArgs>),
    /// List the cluster's tasks.
    Ps(cluster::MasterArgs),
    /// Kill a task by id.
    Kill(cluster::KillArgs),
    /// List the agents.
    Agents(cluster::MasterArgs),
    /// List the frameworks.
    Frameworks(cluster::MasterArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_max_level(cli.log_level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    if let Err(e) = credentials(&cli) {
        eprintln!("tepui: {e:#}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Wire(args) => wire::run(&args).map(|()| 0),
        Command::Container(args) => container::run(*args),
        Command::Image(args) => image::run(*args),
        Command::Local(args) => local::run(*args),
        Command::CgroupHolder => cgroup_holder::run(),
        Command::Run(args) => run::run(*args),
        Command::Ps(args) => cluster::ps(&args),
        Command::Kill(args) => cluster::kill(&args),
        Command::Agents(args) => cluster::agents(&args),
        Command::Frameworks(args) => cluster::frameworks(&args),
    };
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            // The whole cause chain on one line; no backtrace for users.
            eprintln!("tepui: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Sets the invocation's credential: --principal/--secret, else
/// --credential; without either, requests to this machine fall back to
/// the default local cluster's (see `master_http::credential_for`).
fn credentials(cli: &Cli) -> anyhow::Result<()> {
    use anyhow::Context;
    use tepui_proto::authentication::{Credential, flag_path, read_credential};
    if let (Some(principal), Some(secret)) = (cli.principal.clone(), cli.secret.clone()) {
        master_http::set_credential(Credential { principal, secret });
    } else if let Some(flag) = &cli.credential {
        let credential = read_credential(&flag_path(flag)).context("--credential")?;
        master_http::set_credential(credential);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// `COMMAND --flag` for each flag of `command` and its subcommands
    /// that no `TEPUI_` variable can set.
    fn without_variable(command: &clap::Command, path: &str, into: &mut Vec<String>) {
        for arg in command.get_arguments() {
            let Some(long) = arg.get_long() else {
                continue;
            };
            let named = arg
                .get_env()
                .is_some_and(|v| v.to_string_lossy().starts_with("TEPUI_"));
            if !named && !matches!(long, "help" | "version") {
                into.push(format!("{path} --{long}"));
            }
        }
        for sub in command.get_subcommands() {
            without_variable(sub, &format!("{path} {}", sub.get_name()), into);
        }
    }

    #[test]
    fn every_flag_of_every_binary_is_settable_from_a_tepui_variable() {
        let mut missing = Vec::new();
        without_variable(&super::Cli::command(), "tepui", &mut missing);
        without_variable(
            &tepui_agent::daemon::Flags::command(),
            "tepui-agent",
            &mut missing,
        );
        without_variable(
            &tepui_master::daemon::Flags::command(),
            "tepui-master",
            &mut missing,
        );
        assert!(missing.is_empty(), "no TEPUI_ variable: {missing:?}");
    }
}
