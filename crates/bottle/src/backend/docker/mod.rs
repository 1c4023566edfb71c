//! The Docker backend, through the Engine API (bollard), never the CLI.

mod engine;
mod runtime;

use async_trait::async_trait;

use super::{Backend, Resources};
use crate::env::ResolvedEnv;
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::spec::BottleSpec;
use crate::stage::StageDir;

/// The image used when `CLAUDE_BOTTLE_IMAGE` is not set.
pub const DEFAULT_IMAGE: &str = "claude-bottle/claude-code:2.1.332";

#[derive(Debug, Clone, Copy, Default)]
pub struct DockerBackend;

#[async_trait]
impl Backend for DockerBackend {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn prepare(&self, spec: &BottleSpec<'_>, stage: &StageDir) -> Result<Resources> {
        let mut warnings = Vec::new();
        let runtimes = match engine::runtimes().await {
            Ok(runtimes) => Some(runtimes),
            Err(err) if spec.dry_run => {
                warnings.push(format!(
                    "{}; the runtime is unknown until one does",
                    err.message()
                ));
                None
            }
            Err(err) => return Err(err),
        };
        let runtime = runtime::choose(spec.settings.runtime, runtimes.as_deref())?;
        let instance = stage.instance().as_str();
        Ok(Resources {
            image: spec
                .settings
                .image
                .clone()
                .unwrap_or_else(|| DEFAULT_IMAGE.to_owned()),
            runtime,
            container: format!("{instance}-agent"),
            networks: vec![format!("{instance}-internal"), format!("{instance}-egress")],
            warnings,
        })
    }

    async fn launch(&self, plan: Plan, _stage: StageDir, _env: ResolvedEnv) -> Result<i32> {
        Err(Error::new(format!(
            "cannot launch {}: launching bottles is not available yet in this version",
            plan.instance
        ))
        .hint("use --dry-run to see the plan"))
    }
}
