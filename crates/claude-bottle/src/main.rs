//! `claude-bottle`: run Claude Code agents in isolated containers.

mod cli;
mod commands;
mod completions;
mod error;
mod progress;
mod signals;
mod terminal;
mod timing;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    if bottle::settings::logs_timing() {
        timing::install(std::time::Instant::now());
    }
    completions::answer_if_asked();
    let cli = cli::Cli::parse();
    // The gate serves every tunnel of a bottle: on worker threads, so that
    // one connection's work never waits behind another's. The commands
    // drive one engine conversation at a time and need one thread.
    let runtime = if matches!(cli.command, cli::Command::Gate(_)) {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .expect("a runtime can be built");
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(err) => err.report(),
    }
}
