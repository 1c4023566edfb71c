//! What a launch runs, in types: decided once (the image at settings, the
//! rest at prepare) and read by the backend as it is, never re-derived from
//! the plan's text. The plan is its serialised view for people and scripts.

use std::fmt;

use crate::error::{Error, Result};
use crate::images::claude_code::DefaultImage;

/// The container runtime the agent runs under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runtime {
    Runc,
    /// Podman's usual runtime: like runc, no kernel of its own.
    Crun,
    /// gVisor, under the name the engine registered it with.
    Runsc(String),
}

impl Runtime {
    /// gVisor under its usual name.
    pub fn runsc() -> Self {
        Self::Runsc("runsc".to_owned())
    }

    /// The engine's name for it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Runc => "runc",
            Self::Crun => "crun",
            Self::Runsc(name) => name,
        }
    }

    pub fn is_gvisor(&self) -> bool {
        matches!(self, Self::Runsc(_))
    }

    /// As the plan shows it: `unknown` until an engine answered.
    pub fn plan_name(runtime: Option<&Self>) -> String {
        runtime.map_or("unknown", Self::as_str).to_owned()
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An instance's networks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Networks {
    /// No route out: the agent and the gate. `None` where the agent's
    /// container has no network at all and reaches the gate on its
    /// loopback (on Podman).
    pub internal: Option<String>,
    /// The gate's way out.
    pub egress: String,
}

impl Networks {
    pub fn of_instance(instance: &str, internal: bool) -> Self {
        Self {
            internal: internal.then(|| format!("{instance}-internal")),
            egress: format!("{instance}-egress"),
        }
    }

    /// In the plan's order.
    pub fn names(&self) -> Vec<String> {
        self.internal
            .iter()
            .chain([&self.egress])
            .cloned()
            .collect()
    }
}

/// Where the agent's image comes from.
#[derive(Debug, Clone)]
pub enum ImageSource {
    /// `CLAUDE_BOTTLE_IMAGE`: used as it is.
    Named(String),
    /// Claude Code at the pinned version on a Debian base, built on first
    /// use.
    Default(DefaultImage),
}

/// Where the gate's image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateImage {
    /// `CLAUDE_BOTTLE_GATE_IMAGE`: used as it is.
    Named(String),
    /// This executable, alone in an image built on first use.
    ThisExecutable,
}

impl GateImage {
    /// As the plan shows it.
    pub fn describe(&self) -> String {
        match self {
            Self::Named(image) => image.clone(),
            Self::ThisExecutable => {
                "claude-bottle/gate (this executable, built on first use)".to_owned()
            }
        }
    }
}

/// The gate's image and what it reaches beyond its egress network.
#[derive(Debug, Clone)]
pub struct GateSetup {
    pub image: GateImage,
    /// Networks the gate joins besides its own (tests, a LAN bridge).
    pub extra_networks: Vec<String>,
    /// The DNS server it asks, when not the engine's.
    pub dns: Option<String>,
}

/// What prepare resolved for the launch.
#[derive(Debug, Clone)]
pub struct LaunchTarget {
    pub image: ImageSource,
    /// `None` only in a dry run without an engine.
    pub runtime: Option<Runtime>,
    pub container: String,
    pub networks: Networks,
    /// Where the facts of images already probed are kept.
    pub facts_cache: std::path::PathBuf,
}

impl LaunchTarget {
    pub fn runtime(&self) -> Result<Runtime> {
        self.runtime.clone().ok_or_else(|| {
            Error::new("no engine answered at prepare, so the runtime is unknown")
                .hint("start the engine, then start the bottle again")
        })
    }
}
