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
    for instance in &plan.instances {
        if let Err(err) = backend.remove(instance).await {
            failures.push(err.message().to_owned());
        }
    }
    for image in &plan.images {
        if let Err(err) = backend.remove_image(image).await {
            failures.push(err.message().to_owned());
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
        Ok(())
    } else {
        Err(Error::new(failures.join("\n"))
            .hint("run `claude-bottle cleanup` again; what is already gone counts as removed"))
    }
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
