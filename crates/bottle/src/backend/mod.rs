//! Backends run plans. The host environment picks one
//! (`CLAUDE_BOTTLE_BACKEND`); the manifest never names it, so the same
//! manifest runs on a laptop's Docker today and on another engine later
//! without edits.

pub mod docker;
mod target;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use egress_gate::event::GateEvent;

use crate::env::{CLAUDE_OAUTH_TOKEN, ResolvedEnv};
use crate::error::{Error, Result};
use crate::images::{CurrentImages, StaleImage};
use crate::lifecycle::instance::Instance;
use crate::lifecycle::pause::{PauseAt, Phase};
use crate::lifecycle::stage::StageDir;
use crate::plan::{DefaultImagePlan, Plan};
use crate::prepare::Prepared;
use crate::provision::Provision;
use crate::repo::Repository;
use crate::settings::{BACKEND, Settings};
use crate::spec::BottleSpec;
use crate::ssh::SshSetup;
use crate::ssh::holder::HeldKey;
use crate::ui::Ui;
pub use target::{GateImage, GateSetup, ImageSource, LaunchTarget, Networks, Runtime};

/// What a backend resolves at prepare; the core adds the rest of the plan.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub target: LaunchTarget,
    /// The image as the plan shows it: a default image's tag once the
    /// engine told its base.
    pub image: String,
    /// How the default image is made, when it is the one used.
    pub default_image: Option<DefaultImagePlan>,
    /// The engine the bottle runs on, as the plan names it.
    pub engine: String,
    pub warnings: Vec<String>,
}

/// Everything a launch needs, after the user said yes.
pub struct Launch {
    pub plan: Plan,
    pub stage: StageDir,
    /// Values for the exec environment only.
    pub env: ResolvedEnv,
    pub provision: Provision,
    pub image: ImageSource,
    pub runtime: Runtime,
    pub container: String,
    pub networks: Networks,
    pub facts_cache: std::path::PathBuf,
    pub gate: GateSetup,
    pub ssh: SshSetup,
    /// The repository `--cwd` copies in, and whose branches come home.
    pub repository: Option<Repository>,
    /// The keys for the holder: decrypted, in memory only.
    pub ssh_keys: Vec<HeldKey>,
    /// Passed to claude after the tool's own flags.
    pub claude_args: Vec<String>,
    pub extra_labels: Vec<(String, String)>,
    pub pause_at: PauseAt,
    /// The most the bundle of the agent's commits may take.
    pub bundle_max: u64,
    pub ui: Arc<dyn Ui>,
}

impl Launch {
    /// A prepared start, with the environment completed after the y/N.
    /// The OAuth token goes in here, under the name claude reads, unless
    /// the plan says it is not forwarded (remote control).
    pub fn new(
        prepared: Prepared,
        settings: &Settings,
        mut env: ResolvedEnv,
        ssh_keys: Vec<HeldKey>,
        claude_args: Vec<String>,
        ui: Arc<dyn Ui>,
    ) -> Result<Self> {
        if prepared.plan.oauth_token_forwarded {
            if let Some(token) = &settings.oauth_token {
                env.set(CLAUDE_OAUTH_TOKEN, token.clone());
            }
        }
        let target = prepared.target;
        Ok(Self {
            runtime: target.runtime()?,
            plan: prepared.plan,
            stage: prepared.stage,
            env,
            provision: prepared.provision,
            image: target.image,
            container: target.container,
            networks: target.networks,
            facts_cache: target.facts_cache,
            gate: settings.gate_setup(),
            ssh: prepared.ssh,
            repository: prepared.repository,
            ssh_keys,
            claude_args,
            extra_labels: settings.extra_labels.clone(),
            pause_at: settings.pause_at,
            bundle_max: settings.bundle_max,
            ui,
        })
    }
}

impl Launch {
    /// The test hook: waits here for ever when `CLAUDE_BOTTLE_PAUSE_AT`
    /// names `phase`.
    pub async fn pause(&self, phase: Phase) {
        self.pause_at.reached(phase, self.ui.as_ref()).await;
    }
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
    async fn prepare(&self, spec: &BottleSpec<'_>, stage: &StageDir) -> Result<Resolution>;

    /// Creates the bottle, provisions it, runs claude in it and tears it
    /// all down again, on every path; returns claude's exit code.
    async fn launch(&self, launch: Launch) -> Result<i32>;

    /// `doctor`'s checks of the engine and what it has for a start.
    async fn checkup(
        &self,
        _settings: &Settings,
        _home: &std::path::Path,
        _ui: &dyn Ui,
    ) -> Vec<crate::doctor::Finding> {
        vec![crate::doctor::Finding::new(
            "engine",
            crate::doctor::Verdict::Skipped,
            format!("the {} backend has no checks of its own", self.name()),
        )]
    }

    /// The engine it talks to, named for the user: its kind, version and
    /// address.
    async fn engine(&self) -> Result<String>;

    /// Every instance the engine holds resources of, found by label; with
    /// `scope`, only resources carrying all of those labels too.
    async fn instances(&self, scope: &[(String, String)]) -> Result<Vec<Instance>>;

    /// Removes an instance's resources: containers first, then networks.
    async fn remove(&self, instance: &Instance) -> Result<()>;

    /// What a running instance's gate has written: its decisions, and
    /// notices about itself.
    async fn gate_log(&self, instance: &str, scope: &[(String, String)]) -> Result<Vec<GateEvent>>;

    /// Writes to `to` a git bundle of the branches in a running instance's
    /// `/workspace` (for `fetch`), without the history of the `known`
    /// commits; nothing when no branch has anything new. The bundle is the
    /// bottle's word, to be checked before use.
    async fn bundle_branches(
        &self,
        instance: &str,
        scope: &[(String, String)],
        known: &[String],
        to: &std::path::Path,
        max_bytes: u64,
    ) -> Result<()>;

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
const REGISTRY: &[(&str, MakeBackend)] =
    &[("docker", || Box::new(docker::DockerBackend::default()))];

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
