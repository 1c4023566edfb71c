//! Everything that touches the user's terminal.
//!
//! Questions are asked only where the user can see and answer them: stdin
//! and stderr both terminals. `/dev/tty` is never opened behind the user's
//! back, so a piped or scripted run never blocks on a hidden prompt.

use std::io::{self, BufRead, IsTerminal, Write};

use bottle::env::{Secret, SecretPrompt};
use rustix::termios::{self, LocalModes, OptionalActions};

/// Whether questions can be asked.
pub(crate) fn can_ask() -> bool {
    io::stdin().is_terminal() && io::stderr().is_terminal()
}

/// Asks a y/N question on stderr; only y, Y, yes and YES mean yes.
pub(crate) fn confirm(question: &str) -> io::Result<bool> {
    eprint!("{question} [y/N] ");
    io::stderr().flush()?;
    let mut answer = String::new();
    io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim_end_matches(['\r', '\n']),
        "y" | "Y" | "yes" | "YES"
    ))
}

/// Reads secrets from stdin with echo off.
#[derive(Debug)]
pub(crate) struct TerminalPrompt;

impl SecretPrompt for TerminalPrompt {
    fn ask(&mut self, name: &str, question: Option<&str>) -> io::Result<Secret> {
        match question {
            Some(question) => eprint!("{question} ({name}): "),
            None => eprint!("{name}: "),
        }
        io::stderr().flush()?;
        let stdin = io::stdin();
        let saved = termios::tcgetattr(&stdin)?;
        let mut silent = saved.clone();
        silent.local_modes -= LocalModes::ECHO;
        termios::tcsetattr(&stdin, OptionalActions::Now, &silent)?;
        let mut line = String::new();
        let read = stdin.lock().read_line(&mut line);
        // Echo comes back even when the read failed.
        let restored = termios::tcsetattr(&stdin, OptionalActions::Now, &saved);
        eprintln!();
        read?;
        restored?;
        Ok(Secret::new(line.trim_end_matches(['\r', '\n'])))
    }
}
