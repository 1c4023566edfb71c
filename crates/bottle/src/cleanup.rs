//! `cleanup` and the sweep `start` runs: removing what instances left.
//!
//! Both are planned first (nothing is removed while looking) and act only
//! on what the plan names, so `--dry-run` shows exactly what would go.

use std::path::Path;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::images::CurrentImages;
use crate::instances::{CleanupPlan, Selection};
use crate::stage::find_stages;

/// What a cleanup of `selection` would remove, from the engine (within
/// `scope`) and the stage directories under `home`; with `images`, also
/// the images that are no longer current for those settings.
pub async fn prepare_cleanup(
    backend: &dyn Backend,
    home: &Path,
    scope: &[(String, String)],
    selection: &Selection,
    images: Option<&CurrentImages>,
) -> Result<CleanupPlan> {
    let found = backend.instances(scope).await?;
    let mut plan = CleanupPlan::new(found, find_stages(home), selection);
    if let Some(current) = images {
        plan.images = backend.stale_images(current, scope).await?;
    }
    Ok(plan)
}

/// Removes everything the plan names; instances' containers before their
/// networks. Carries on past a failure and reports them all at the end.
pub async fn cleanup(backend: &dyn Backend, plan: &CleanupPlan) -> Result<()> {
    let mut failures = Vec::new();
    let mut hints: Vec<String> = Vec::new();
    let mut failed = |err: &Error| {
        failures.push(err.to_line());
        for hint in err.all_hints() {
            if !hints.iter().any(|h| h == hint) {
                hints.push(hint.to_owned());
            }
        }
    };
    for instance in &plan.instances {
        if let Err(err) = backend.remove(instance).await {
            failed(&err);
        }
    }
    for image in &plan.images {
        if let Err(err) = backend.remove_image(image).await {
            failed(&err);
        }
    }
    for path in plan.stage_paths() {
        if let Err(err) = std::fs::remove_dir_all(&path) {
            if err.kind() != std::io::ErrorKind::NotFound {
                failures.push(format!("{}: {err}", path.display()));
            }
        }
    }
    if failures.is_empty() {
        return Ok(());
    }
    let error = hints
        .into_iter()
        .fold(Error::new(failures.join("\n")), Error::hint);
    Err(error.hint("run `claude-bottle cleanup` again; what is already gone counts as removed"))
}

/// Removes what dead instances left; never touches a live one's.
pub async fn sweep(
    backend: &dyn Backend,
    home: &Path,
    scope: &[(String, String)],
) -> Result<usize> {
    // Images are left to `cleanup`: a start never removes what it may
    // build again.
    let plan = prepare_cleanup(backend, home, scope, &Selection::default(), None).await?;
    cleanup(backend, &plan).await?;
    Ok(plan.instances.len() + plan.stages.len())
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::backend::{Launch, Resolution};
    use crate::instances::Instance;
    use crate::owner::Liveness;
    use crate::spec::BottleSpec;
    use crate::stage::StageDir;
    use egress_gate::event::GateEvent;

    /// Refuses every removal, the way an engine would, with a cause and a
    /// hint.
    #[derive(Debug)]
    struct RefusingBackend;

    #[async_trait]
    impl Backend for RefusingBackend {
        fn name(&self) -> &'static str {
            "refusing"
        }
        async fn prepare(&self, _: &BottleSpec<'_>, _: &StageDir) -> Result<Resolution> {
            unreachable!("cleanup prepares nothing")
        }
        async fn launch(&self, _: Launch) -> Result<i32> {
            unreachable!("cleanup launches nothing")
        }
        async fn instances(&self, _: &[(String, String)]) -> Result<Vec<Instance>> {
            Ok(Vec::new())
        }
        async fn remove(&self, instance: &Instance) -> Result<()> {
            let engine = std::io::Error::other("the engine is busy");
            Err(
                Error::caused_by(format!("could not remove {}", instance.instance), engine)
                    .hint("wait for the engine, then try again"),
            )
        }
        async fn gate_log(&self, _: &str, _: &[(String, String)]) -> Result<Vec<GateEvent>> {
            unreachable!("cleanup reads no log")
        }
    }

    #[tokio::test]
    async fn a_failed_removal_keeps_its_cause_and_its_hint() {
        let instance = Instance {
            instance: "claude-bottle-a-1".into(),
            agent: "a".into(),
            bottle: "b".into(),
            created: 0,
            age_seconds: 0,
            runtime: None,
            state: "stopped".into(),
            owner: None,
            liveness: Liveness::Dead,
            containers: vec![],
            networks: vec![],
        };
        let plan = CleanupPlan {
            instances: vec![instance],
            ..CleanupPlan::default()
        };
        let err = cleanup(&RefusingBackend, &plan).await.unwrap_err();
        assert_eq!(
            err.message(),
            "could not remove claude-bottle-a-1: the engine is busy"
        );
        assert_eq!(
            err.all_hints(),
            [
                "wait for the engine, then try again",
                "run `claude-bottle cleanup` again; what is already gone counts as removed"
            ]
        );
    }
}
