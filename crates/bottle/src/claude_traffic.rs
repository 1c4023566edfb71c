//! What Claude Code calls on its own, beyond what the user asked for, and
//! how the bottle keeps that from drowning out the refusals that matter.
//!
//! Checked against Claude Code 2.1.332 on a terminal, idle at its prompt
//! for 30 s with the mock API, every refused name read in full. Without
//! the switches below it also called `github.com` and `downloads.claude.ai`
//! to install the official plugin marketplace; the marketplace switch
//! alone stops both (the update switches did not change what it called).
//! Its documentation also names Sentry, for error reports. None of the
//! switches breaks what a bottle offers: its Claude Code is pinned, and
//! plugins come with the image. `DISABLE_TELEMETRY` and
//! `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC` would stop more, but they
//! also turn off the feature flags that remote control and other features
//! need; telemetry goes to `api.anthropic.com`, which a bottle allows
//! anyway.

/// Set in claude's environment unless the manifest's `env` sets them.
pub const SWITCHES: &[(&str, &str)] = &[
    // The pinned version stays pinned (the default image sets it too).
    ("DISABLE_AUTOUPDATER", "1"),
    // No error reports to Sentry.
    ("DISABLE_ERROR_REPORTING", "1"),
    // No install of the official plugin marketplace (github.com,
    // downloads.claude.ai).
    ("CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL", "1"),
];

/// A name Claude Code calls that no switch stops without breaking a
/// feature: refused unless the allowlist names it, and counted apart.
#[derive(Debug, Clone, Copy)]
pub struct ExpectedHost {
    pub name: &'static str,
    pub why: &'static str,
}

pub const EXPECTED: &[ExpectedHost] = &[ExpectedHost {
    name: "raw.githubusercontent.com",
    why: "its release notes, fetched at every start",
}];
