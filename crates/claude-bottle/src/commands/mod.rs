//! One module per command; each returns the process's exit code.

mod cleanup;
mod connect;
mod doctor;
mod edit;
mod fetch;
mod gate;
mod info;
mod init;
mod list;
mod logs;
mod ssh_relay;
mod start;

use std::path::PathBuf;
use std::process::ExitCode;

use bottle::Error;

use crate::cli::{Cli, Command};
use crate::error::CommandError;

pub(crate) async fn run(cli: Cli) -> Result<ExitCode, CommandError> {
    match cli.command {
        Command::Start(args) => start::run(args).await,
        Command::Init(args) => init::run(args),
        Command::Edit { agent } => edit::run(&agent),
        Command::Schema => {
            print!("{}", bottle::manifest::SCHEMA);
            Ok(ExitCode::SUCCESS)
        }
        Command::Info { agent } => info::run(&agent),
        Command::Doctor { format } => doctor::run(format).await,
        Command::Completions { shell } => crate::completions::run(shell),
        Command::List { format } => list::run(format).await,
        Command::Logs { instance } => logs::run(&instance).await,
        Command::Fetch { instance } => fetch::run(&instance).await,
        Command::Cleanup(args) => cleanup::run(args).await,
        Command::Gate(args) => gate::run(args).await,
        Command::GateReport => gate::report().await,
        Command::GateHandoff { listen, socket } => gate::hand_over(listen, &socket),
        Command::SshRelay { socket } => ssh_relay::run(socket).await,
        Command::Connect { proxy, host, port } => connect::run(&proxy, &host, port),
    }
}

/// The home directory (`HOME`).
fn home() -> Result<PathBuf, CommandError> {
    Ok(std::env::var_os(bottle::settings::HOME.name)
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| Error::new("HOME is not set").hint("set HOME to your home directory"))?)
}

/// The two places a manifest is looked for.
pub(crate) fn manifest_dirs() -> Result<(PathBuf, PathBuf), CommandError> {
    let cwd = std::env::current_dir()
        .map_err(|err| Error::caused_by("cannot read the working directory", err))?;
    Ok((cwd, home()?))
}
