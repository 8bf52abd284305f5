//! tepui-master: the master daemon. It serves the Mesos v1 scheduler and
//! operator APIs and tepui's agent protocol, and offers its agents'
//! resources to frameworks by DRF.

use std::io::IsTerminal;
use std::process::ExitCode;

use tepui_master::daemon::{Flags, run};

fn main() -> ExitCode {
    let flags = Flags::from_env();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tepui-master: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(flags)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tepui-master: {e:#}");
            ExitCode::FAILURE
        }
    }
}
