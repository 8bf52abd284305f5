//! tepui-agent: the agent daemon. It detects (or is given) its resources,
//! serves the executor API, registers with its master, and runs the tasks
//! the master sends in executors in containers.

use std::io::IsTerminal;
use std::process::ExitCode;

use tepui_agent::daemon::{Flags, raise_nofile, run};

fn main() -> ExitCode {
    let flags = Flags::from_env();
    raise_nofile();
    tracing_subscriber::fmt()
        .with_max_level(flags.log_level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tepui-agent: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(flags)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tepui-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}
