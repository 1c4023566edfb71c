//! `claude-bottle`: run Claude Code agents in isolated containers.

mod cli;
mod commands;
mod error;
mod signals;
mod terminal;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a single-threaded runtime can always be built");
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(err) => err.report(),
    }
}
