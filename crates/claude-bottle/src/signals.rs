//! Signals that end claude-bottle, and the exit codes they map to.
//!
//! SIGINT from a terminal reaches the whole foreground process group, so
//! it is not forwarded anywhere: during a TTY session the terminal is in
//! raw mode and Ctrl-C is a keystroke for claude, not a signal. Otherwise
//! every one of these ends the command: what it created is torn down, and
//! it exits 128 + the signal's number, as a shell reports it.

use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    Interrupt,
    Terminate,
    Hangup,
}

impl Ending {
    pub(crate) fn exit_code(self) -> u8 {
        match self {
            Self::Interrupt => 130,
            Self::Terminate => 143,
            Self::Hangup => 129,
        }
    }
}

/// Waits for the first of SIGINT, SIGTERM and SIGHUP.
pub(crate) async fn first() -> Ending {
    let (Ok(mut interrupt), Ok(mut terminate), Ok(mut hangup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        // Without handlers the default actions apply; nothing to wait for.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => Ending::Interrupt,
        _ = terminate.recv() => Ending::Terminate,
        _ = hangup.recv() => Ending::Hangup,
    }
}
