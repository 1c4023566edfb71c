//! Backends run plans. The host environment picks one
//! (`CLAUDE_BOTTLE_BACKEND`); the manifest never names it, so the same
//! manifest runs on a laptop's Docker today and on another engine later
//! without edits.

pub mod docker;

use std::fmt;

use async_trait::async_trait;
use egress_gate::event::GateEvent;

use crate::claude_code::DefaultImage;
use crate::env::ResolvedEnv;
use crate::error::{Error, Result};
use crate::images::{CurrentImages, StaleImage};
use crate::instances::Instance;
use crate::plan::{DefaultImagePlan, Plan};
use crate::provision::Provision;
use crate::session::Console;
use crate::settings::BACKEND;
use crate::spec::BottleSpec;
use crate::stage::StageDir;

/// What a backend resolves at prepare; the core adds the rest of the plan.
#[derive(Debug, Clone)]
pub struct Resources {
    pub image: String,
    /// How the default image is made, when it is the one used.
    pub default_image: Option<DefaultImagePlan>,
    pub runtime: String,
    pub container: String,
    pub networks: Vec<String>,
    pub gate: String,
    pub warnings: Vec<String>,
}

/// Everything a launch needs, after the user said yes.
pub struct Launch {
    pub plan: Plan,
    pub stage: StageDir,
    /// Values for the exec environment only.
    pub env: ResolvedEnv,
    pub provision: Provision,
    /// The recipe of the default image, when no image was named: built
    /// on the engine first if it lacks it.
    pub default_image: Option<DefaultImage>,
    /// Passed to claude after the tool's own flags.
    pub claude_args: Vec<String>,
    pub extra_labels: Vec<(String, String)>,
    /// The gate: a prebuilt image, extra networks, a DNS server.
    pub gate_image: Option<String>,
    pub gate_networks: Vec<String>,
    pub gate_dns: Option<String>,
    pub console: Box<dyn Console>,
}

impl fmt::Debug for Launch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Launch")
            .field("instance", &self.plan.instance)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait Backend: fmt::Debug + Send + Sync {
    /// The name `CLAUDE_BOTTLE_BACKEND` selects it by.
    fn name(&self) -> &'static str;

    /// Resolves names, image and runtime, and writes scratch files to the
    /// stage. Creates nothing on the engine.
    async fn prepare(&self, spec: &BottleSpec<'_>, stage: &StageDir) -> Result<Resources>;

    /// Creates the bottle, provisions it, runs claude in it and tears it
    /// all down again, on every path; returns claude's exit code.
    async fn launch(&self, launch: Launch) -> Result<i32>;

    /// Every instance the engine holds resources of, found by label; with
    /// `scope`, only resources carrying all of those labels too.
    async fn instances(&self, scope: &[(String, String)]) -> Result<Vec<Instance>>;

    /// Removes an instance's resources: containers first, then networks.
    async fn remove(&self, instance: &Instance) -> Result<()>;

    /// What a running instance's gate has written: its decisions, and
    /// notices about itself.
    async fn gate_log(&self, instance: &str, scope: &[(String, String)]) -> Result<Vec<GateEvent>>;

    /// Images this backend built, within `scope`, that are neither
    /// `current` nor used by any container. Backends that build none have
    /// none.
    async fn stale_images(
        &self,
        _current: &CurrentImages,
        _scope: &[(String, String)],
    ) -> Result<Vec<StaleImage>> {
        Ok(Vec::new())
    }

    /// Removes an image [`Backend::stale_images`] found.
    async fn remove_image(&self, image: &StaleImage) -> Result<()> {
        Err(Error::new(format!(
            "the {} backend cannot remove the image {}",
            self.name(),
            image.name()
        )))
    }
}

type MakeBackend = fn() -> Box<dyn Backend>;

/// The registry: every backend name and how to make it.
const REGISTRY: &[(&str, MakeBackend)] = &[("docker", || Box::new(docker::DockerBackend))];

pub fn select(name: &str) -> Result<Box<dyn Backend>> {
    REGISTRY
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, make)| make())
        .ok_or_else(|| {
            let known: Vec<_> = REGISTRY.iter().map(|(n, _)| *n).collect();
            Error::new(format!(
                "{} is `{name}`, which is not a known backend",
                BACKEND.name
            ))
            .hint(format!("known backends: {}", known.join(", ")))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_is_known_and_others_are_listed() {
        assert_eq!(select("docker").unwrap().name(), "docker");
        let err = select("podman").unwrap_err();
        assert_eq!(err.hints(), ["known backends: docker"]);
    }
}
