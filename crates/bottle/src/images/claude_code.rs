//! Which Claude Code goes into the default image, and from where.
//!
//! The version is pinned together with the integrity of its native binary
//! for each platform, so the default image is the same everywhere and a
//! registry cannot hand out anything else under that version. Another
//! version (`CLAUDE_BOTTLE_CLAUDE_VERSION`) takes its integrity from the
//! registry's metadata instead: still checked, but only as far as that
//! registry can be trusted.

use std::path::PathBuf;

/// The Claude Code version the default image carries.
pub const PINNED_VERSION: &str = "2.1.332";

/// The registry the native binary comes from unless
/// `CLAUDE_BOTTLE_NPM_REGISTRY` names another.
pub const DEFAULT_REGISTRY: &str = "https://registry.npmjs.org/";

/// The base of the default image unless `CLAUDE_BOTTLE_BASE_IMAGE` names
/// another.
pub const DEFAULT_BASE_IMAGE: &str = "debian:bookworm-slim";

/// Where the default image's tags live.
pub const IMAGE_REPOSITORY: &str = "claude-bottle/claude-code";

/// The npm package of the native binary for an engine architecture (as the
/// engine names it), with the pinned version's integrity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform {
    pub package: &'static str,
    pub pinned_integrity: &'static str,
}

const PLATFORMS: &[(&[&str], Platform)] = &[
    (
        &["x86_64", "amd64"],
        Platform {
            package: "@anthropic-ai/claude-code-linux-x64",
            pinned_integrity: "sha512-f4JWhzwYutJIHScC7/dYOPX6s28tt7ZADhsOi8zwOHq5fFPEuUeChh2NMfinSg0GrUckYxaeebC4h0DqiKzLcw==",
        },
    ),
    (
        &["aarch64", "arm64"],
        Platform {
            package: "@anthropic-ai/claude-code-linux-arm64",
            pinned_integrity: "sha512-BlHNEtK38KBPWU31F4lUSS9sHclCyfWbThT1CErvxxH8+XcljYLZlQwdyXBkTD62rw1TgfE1u1a+quMWS0NSJg==",
        },
    ),
];

impl Platform {
    /// The platform for an engine that reports `architecture`, if Claude
    /// Code is published for it.
    pub fn for_architecture(architecture: &str) -> Option<Self> {
        PLATFORMS
            .iter()
            .find(|(names, _)| names.contains(&architecture))
            .map(|(_, platform)| *platform)
    }

    /// The architectures there is a native binary for.
    pub fn known_architectures() -> Vec<&'static str> {
        PLATFORMS.iter().map(|(names, _)| names[0]).collect()
    }
}

/// How the default image is made: the settings that decide its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultImage {
    pub base: String,
    pub claude_version: String,
    /// Ends with `/`.
    pub registry: String,
    /// Where downloads are kept (`~/.cache/claude-bottle/downloads`).
    pub cache: PathBuf,
    /// `CLAUDE_BOTTLE_EXTRA_LABELS`: the image carries them too, so a CI
    /// job's images are its own.
    pub labels: Vec<(String, String)>,
}

impl DefaultImage {
    /// The integrity the download must have when it is fixed in advance:
    /// for the pinned version, always.
    pub fn pinned_integrity(&self, platform: Platform) -> Option<&'static str> {
        (self.claude_version == PINNED_VERSION).then_some(platform.pinned_integrity)
    }
}
