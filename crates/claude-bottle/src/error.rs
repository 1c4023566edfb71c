//! How a command fails: the kind decides the exit code, the rest is shown.
//!
//! Exit codes follow `docker run`: 2 for a usage error, 125 for a failure of
//! the tool itself (manifest, engine, image, gate). Claude's own exit code
//! passes through untouched when a session ran.

use std::process::ExitCode;

/// Exit code for wrong flags or a missing terminal.
pub(crate) const USAGE: u8 = 2;
/// Exit code for any failure of claude-bottle itself.
pub(crate) const FAILURE: u8 = 125;

#[derive(Debug)]
pub(crate) enum CommandError {
    Usage { message: String, hint: String },
    Failure(bottle::Error),
}

impl CommandError {
    pub(crate) fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::Usage {
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// Prints the error on stderr and gives the exit code.
    pub(crate) fn report(self) -> ExitCode {
        match self {
            Self::Usage { message, hint } => {
                eprintln!("error: {message}\n  = help: {hint}");
                ExitCode::from(USAGE)
            }
            Self::Failure(err) => {
                eprintln!("{err}");
                ExitCode::from(FAILURE)
            }
        }
    }
}

impl From<bottle::Error> for CommandError {
    fn from(err: bottle::Error) -> Self {
        Self::Failure(err)
    }
}
