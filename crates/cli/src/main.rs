//! `homeagent`: the headless softphone. Its commands, options and `--json` events are a
//! contract used by scripts and external checks (see README.md and `homeagent --help`).
#![forbid(unsafe_code)]
// Printing events and results on stdout is this program's job.
#![allow(clippy::print_stdout)]

mod demo;
mod options;
mod run;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = options::Cli::parse();
    let settings = match cli.resolve() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("homeagent: {error:#}");
            return ExitCode::from(run::EXIT_USAGE);
        }
    };
    run::init_logging(&settings);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("homeagent: cannot start the runtime: {error}");
            return ExitCode::from(run::EXIT_FAILED);
        }
    };
    let code = runtime.block_on(run::run(settings));
    // The stdin reader may still block on a terminal: do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    ExitCode::from(code)
}
