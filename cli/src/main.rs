//! The `tepui` command line.

mod wire;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// tepui: a Linux-native cluster agent and compact master after Apache Mesos.
#[derive(Debug, Parser)]
#[command(name = "tepui", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Convert Mesos v1 messages between JSON and protobuf (stdin to stdout).
    Wire(wire::WireArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Wire(args) => wire::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The whole cause chain on one line; no backtrace for users.
            eprintln!("tepui: {e:#}");
            ExitCode::FAILURE
        }
    }
}
