//! Shell completions, answered by this executable as the user types.
//!
//! The script `completions SHELL` prints only hands the words typed so far
//! back to the executable (with `CLAUDE_BOTTLE_COMPLETE` set), which
//! answers from its own command line and the manifests where the shell
//! is. So agent names stay current as manifests change, and the script
//! never falls out of step with the flags.

use std::io::Write as _;
use std::process::ExitCode;

use clap::CommandFactory as _;
use clap_complete::env::{Bash, EnvCompleter, Fish, Zsh};
use clap_complete::{CompleteEnv, CompletionCandidate};

use bottle::manifest::Manifest;
use bottle::settings;

use crate::cli::{Cli, Shell};
use crate::error::CommandError;

/// Answers the shell and exits, when it is the shell asking.
pub(crate) fn answer_if_asked() {
    CompleteEnv::with_factory(Cli::command)
        .var(settings::COMPLETE.name)
        .complete();
}

/// `completions SHELL`: the script that registers the completions.
pub(crate) fn run(shell: Shell) -> Result<ExitCode, CommandError> {
    let completer: &dyn EnvCompleter = match shell {
        Shell::Bash => &Bash,
        Shell::Zsh => &Zsh,
        Shell::Fish => &Fish,
    };
    // The script calls back this executable by its full path, so it
    // completes with the flags of the version that wrote it.
    let exe = std::env::current_exe()
        .map_err(|err| bottle::Error::caused_by("cannot find this executable", err))?;
    let name = Cli::command().get_name().to_owned();
    let mut script = Vec::new();
    completer
        .write_registration(
            settings::COMPLETE.name,
            &name,
            &name,
            &exe.to_string_lossy(),
            &mut script,
        )
        .and_then(|()| std::io::stdout().write_all(&script))
        .map_err(|err| bottle::Error::caused_by("cannot write the script", err))?;
    Ok(ExitCode::SUCCESS)
}

/// The agents of the manifests where the shell is, each with its bottle.
/// A manifest that does not load completes nothing: the error shows when
/// the command runs.
pub(crate) fn agents() -> Vec<CompletionCandidate> {
    let Ok((cwd, home)) = crate::commands::manifest_dirs() else {
        return Vec::new();
    };
    let Ok(manifest) = Manifest::load(&cwd, &home) else {
        return Vec::new();
    };
    manifest
        .agents
        .iter()
        .map(|(name, agent)| {
            CompletionCandidate::new(name)
                .help(Some(format!("in bottle {}", agent.bottle.value).into()))
        })
        .collect()
}
