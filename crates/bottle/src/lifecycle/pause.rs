//! A test hook: `CLAUDE_BOTTLE_PAUSE_AT=<phase>` makes `start` stop at that
//! phase of a launch and wait there until SIGUSR1 resumes it or another
//! signal ends it, so a test can kill the CLI at exactly that point, or
//! break something under it and let it go on, and check what is left. The
//! tests drive the normal binary, so the hook is a setting like any other.

use std::fmt;

use crate::ui::Ui;

/// The phases of a launch, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The default image's build, once the engine is building it.
    Image,
    /// The bottle's two networks exist.
    Networks,
    /// The gate runs.
    Gate,
    /// The agent container is created and started.
    Agent,
    /// The prompt, skills and state are in the agent's home.
    Provision,
    /// Everything is in place; claude is about to run.
    Session,
    /// claude has exited; the agent's branches are about to come home.
    Home,
    /// The agent container is removed; the gate and networks are not.
    Teardown,
}

impl Phase {
    pub const ALL: [Self; 8] = [
        Self::Image,
        Self::Networks,
        Self::Gate,
        Self::Agent,
        Self::Provision,
        Self::Session,
        Self::Home,
        Self::Teardown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Networks => "networks",
            Self::Gate => "gate",
            Self::Agent => "agent",
            Self::Provision => "provision",
            Self::Session => "session",
            Self::Home => "home",
            Self::Teardown => "teardown",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a launch pauses, if anywhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PauseAt(pub Option<Phase>);

impl PauseAt {
    /// At `phase`, says so and waits until SIGUSR1 (another signal ends
    /// the wait by dropping the launch); elsewhere returns at once.
    pub async fn reached(self, phase: Phase, ui: &dyn Ui) {
        if self.0 == Some(phase) {
            use tokio::signal::unix::{SignalKind, signal};
            // Listened for before the notice: a resume sent on seeing it
            // must not meet SIGUSR1's default action, which is to exit.
            let resume = signal(SignalKind::user_defined1());
            ui.warn(&format!(
                "paused at {phase} ({}); SIGUSR1 resumes it, another signal ends it",
                crate::settings::PAUSE_AT.name
            ));
            match resume {
                Ok(mut resume) => {
                    resume.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        }
    }
}
