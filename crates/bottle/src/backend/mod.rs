//! Backends run plans. The host environment picks one
//! (`CLAUDE_BOTTLE_BACKEND`); the manifest never names it, so the same
//! manifest runs on a laptop's Docker today and on another engine later
//! without edits.

pub mod docker;

use std::fmt;

use async_trait::async_trait;

use crate::env::ResolvedEnv;
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::settings::BACKEND;
use crate::spec::BottleSpec;
use crate::stage::StageDir;

/// What a backend resolves at prepare; the core adds the rest of the plan.
#[derive(Debug, Clone)]
pub struct Resources {
    pub image: String,
    pub runtime: String,
    pub container: String,
    pub networks: Vec<String>,
    pub warnings: Vec<String>,
}

#[async_trait]
pub trait Backend: fmt::Debug + Send + Sync {
    /// The name `CLAUDE_BOTTLE_BACKEND` selects it by.
    fn name(&self) -> &'static str;

    /// Resolves names, image and runtime, and writes scratch files to the
    /// stage. Creates nothing on the engine.
    async fn prepare(&self, spec: &BottleSpec<'_>, stage: &StageDir) -> Result<Resources>;

    /// Runs the prepared bottle and returns claude's exit code.
    async fn launch(&self, plan: Plan, stage: StageDir, env: ResolvedEnv) -> Result<i32>;
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
