//! The `tepui` command line.

use clap::Parser;

/// tepui: a Linux-native cluster agent and compact master after Apache Mesos.
#[derive(Debug, Parser)]
#[command(name = "tepui", version, about, long_about = None)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
