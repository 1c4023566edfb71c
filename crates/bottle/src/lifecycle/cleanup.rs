//! `cleanup` and the sweep `start` runs: removing what instances left.
//!
//! Both are planned first (nothing is removed while looking) and act only
//! on what the plan names, so `--dry-run` shows exactly what would go.
//!
//! Liveness decides what may be swept: an instance whose owner runs on this
//! host is live and is never removed unless named or explicitly included;
//! one whose owner runs elsewhere (another host or boot), or on a host that
//! cannot tell, cannot be checked and counts as live too.
//!
//! What names no owner at all may be a start's still in the making, so the
//! sweep a start runs never takes it. `cleanup` takes it once it is older
//! than [`OWNERLESS_GRACE`], which no start comes near.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::instance::{Instance, human_age, liveness_word};
use super::owner::Liveness;
use super::stage::{FoundStage, find_stages};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::images::{CurrentImages, StaleImage};

/// How long a stage directory or engine resource may name no owner before
/// `cleanup` takes it as left behind: far longer than a start takes from
/// making it to naming its owner, which it does at once.
pub const OWNERLESS_GRACE: Duration = Duration::from_secs(10 * 60);

/// Which instances a cleanup takes. The default is the sweep a start runs:
/// only what dead owners left.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Named instances are taken whatever their owner's state.
    pub names: Vec<String>,
    /// Take live and unknown instances too.
    pub include_live: bool,
    /// Take what names no owner once it is older than [`OWNERLESS_GRACE`].
    pub ownerless_past_grace: bool,
}

impl Selection {
    /// Whether `name`, found with `liveness` and `owned` or not, `age`
    /// seconds old, is taken.
    fn takes(&self, name: &str, liveness: Liveness, owned: bool, age: u64) -> bool {
        if !self.names.is_empty() {
            return self.names.iter().any(|n| n == name);
        }
        self.include_live
            || liveness == Liveness::Dead
            || (self.ownerless_past_grace && !owned && age >= OWNERLESS_GRACE.as_secs())
    }
}

/// What a cleanup will remove, decided before anything is.
#[derive(Debug, Default)]
pub struct CleanupPlan {
    pub instances: Vec<Instance>,
    pub stages: Vec<FoundStage>,
    /// Instances left alone because their owner runs (or may).
    pub kept: Vec<String>,
    /// Images built by claude-bottle that are no longer current.
    pub images: Vec<StaleImage>,
}

impl CleanupPlan {
    pub fn new(found: Vec<Instance>, stages: Vec<FoundStage>, selection: &Selection) -> Self {
        let mut plan = Self::default();
        for instance in found {
            if selection.takes(
                &instance.instance,
                instance.liveness,
                instance.owner.is_some(),
                instance.age_seconds,
            ) {
                plan.instances.push(instance);
            } else if instance.liveness != Liveness::Dead {
                plan.kept.push(instance.instance);
            }
        }
        for stage in stages {
            let liveness = Instance::liveness_of(stage.owner.as_ref());
            if selection.takes(
                &stage.instance,
                liveness,
                stage.owner.is_some(),
                stage.age_seconds,
            ) {
                plan.stages.push(stage);
            }
        }
        plan
    }

    pub fn is_empty(&self) -> bool {
        self.instances.is_empty() && self.stages.is_empty() && self.images.is_empty()
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for instance in &self.instances {
            let owner = if instance.owner.is_some() {
                liveness_word(instance.liveness).to_owned()
            } else {
                ownerless(instance.age_seconds)
            };
            let _ = writeln!(out, "  {} ({}, {owner})", instance.instance, instance.agent);
            for c in &instance.containers {
                let _ = writeln!(out, "    container {} ({})", c.name, c.role);
            }
            for n in &instance.networks {
                let _ = writeln!(out, "    network   {} ({})", n.name, n.role);
            }
        }
        for stage in &self.stages {
            let _ = write!(out, "  stage directory {}", stage.path.display());
            let _ = match stage.owner {
                Some(_) => writeln!(out),
                None => writeln!(out, " ({})", ownerless(stage.age_seconds)),
            };
        }
        for image in &self.images {
            let _ = writeln!(
                out,
                "  image {} ({}, {} MiB, no longer current)",
                image.name(),
                image.kind,
                image.size_bytes >> 20
            );
        }
        out
    }

    /// Names given that match nothing.
    pub fn unmatched<'a>(&self, selection: &'a Selection) -> Vec<&'a str> {
        selection
            .names
            .iter()
            .filter(|n| {
                !self.instances.iter().any(|i| &i.instance == *n)
                    && !self.stages.iter().any(|s| &s.instance == *n)
            })
            .map(String::as_str)
            .collect()
    }

    pub fn stage_paths(&self) -> Vec<PathBuf> {
        self.stages.iter().map(|s| s.path.clone()).collect()
    }
}

/// How the plan tells what names no owner.
fn ownerless(age_seconds: u64) -> String {
    format!("no owner, {} old", human_age(age_seconds))
}

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
    use crate::lifecycle::name::InstanceName;
    use crate::lifecycle::owner::Owner;
    use crate::lifecycle::stage::StageDir;
    use crate::spec::BottleSpec;
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
        async fn engine(&self) -> Result<String> {
            Ok("a refusing engine".to_owned())
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
        async fn bundle_branches(
            &self,
            _: &str,
            _: &[(String, String)],
            _: &[String],
            _: &std::path::Path,
            _: u64,
        ) -> Result<()> {
            unreachable!("cleanup bundles nothing")
        }
        async fn gate_log(&self, _: &str, _: &[(String, String)]) -> Result<Vec<GateEvent>> {
            unreachable!("cleanup reads no log")
        }
    }

    fn names(plan: &CleanupPlan) -> Vec<&str> {
        plan.instances.iter().map(|i| i.instance.as_str()).collect()
    }

    #[test]
    fn only_dead_instances_go_unless_named_or_included() {
        let found = || {
            vec![
                Instance::bare("dead", Liveness::Dead),
                Instance::bare("live", Liveness::Live),
                Instance::bare("far", Liveness::Unknown),
            ]
        };
        let plan = CleanupPlan::new(found(), vec![], &Selection::default());
        assert_eq!(names(&plan), ["dead"]);
        assert_eq!(plan.kept, ["live", "far"]);
        let named = Selection {
            names: vec!["live".into(), "nope".into()],
            ..Selection::default()
        };
        let plan = CleanupPlan::new(found(), vec![], &named);
        assert_eq!(names(&plan), ["live"]);
        assert_eq!(plan.unmatched(&named), ["nope"]);
        let all = Selection {
            include_live: true,
            ..Selection::default()
        };
        assert_eq!(
            names(&CleanupPlan::new(found(), vec![], &all)),
            ["dead", "live", "far"]
        );
    }

    #[test]
    fn an_instance_whose_owner_cannot_be_checked_is_never_swept() {
        let none = tempfile::tempdir().unwrap();
        let without_proc = crate::lifecycle::owner::Procfs::at(none.path());
        let mut far = Instance::bare("far", Liveness::Dead);
        far.owner = Some(Owner::current_in(&without_proc));
        far.liveness = Instance::liveness_of(far.owner.as_ref());
        assert_eq!(far.liveness, Liveness::Unknown);
        let plan = CleanupPlan::new(vec![far], vec![], &Selection::default());
        assert!(names(&plan).is_empty());
        assert_eq!(plan.kept, ["far"]);
    }

    /// Starts make stages (and drop them) while a sweep looks, over and
    /// over: the sweep takes none, and sees none of them without its owner.
    #[test]
    fn a_sweep_beside_starts_never_takes_their_stages() {
        use std::sync::atomic::{AtomicBool, Ordering};

        const STARTS: usize = 3;
        const STAGES_EACH: usize = 1500;
        let home = tempfile::tempdir().unwrap();
        let home = home.path();
        let making = AtomicBool::new(true);
        std::thread::scope(|threads| {
            let starts: Vec<_> = (0..STARTS)
                .map(|_| {
                    threads.spawn(|| {
                        let mut held = std::collections::VecDeque::new();
                        for _ in 0..STAGES_EACH {
                            held.push_back(
                                StageDir::create(home, InstanceName::generate("a")).unwrap(),
                            );
                            if held.len() > 8 {
                                held.pop_front();
                            }
                        }
                    })
                })
                .collect();
            let sweep = threads.spawn(|| {
                let (mut looks, mut seen) = (0, 0);
                while making.load(Ordering::Relaxed) {
                    let found = find_stages(home);
                    for stage in &found {
                        // One may have gone between the listing and the
                        // reading of its owner; one still there has one.
                        let shown = !stage.instance.starts_with('.');
                        assert!(
                            !shown || stage.owner.is_some() || !stage.path.exists(),
                            "{} was in view without its owner",
                            stage.instance
                        );
                    }
                    seen += found.len();
                    let plan = CleanupPlan::new(vec![], found, &Selection::default());
                    let taken: Vec<_> = plan.stages.iter().map(|s| &s.instance).collect();
                    assert!(taken.is_empty(), "the sweep took live stages {taken:?}");
                    looks += 1;
                }
                (looks, seen)
            });
            for start in starts {
                start.join().unwrap();
            }
            making.store(false, Ordering::Relaxed);
            let (looks, seen) = sweep.join().unwrap();
            // It raced: the sweep looked while stages came and went.
            assert!(
                looks > 10 && seen > looks,
                "{looks} looks saw {seen} stages"
            );
        });
        assert!(find_stages(home).is_empty());
    }

    #[test]
    fn cleanup_takes_what_names_no_owner_only_past_the_grace_and_says_so() {
        let home = tempfile::tempdir().unwrap();
        let root = crate::lifecycle::stage::stage_root(home.path());
        std::fs::create_dir_all(root.join("claude-bottle-a-left")).unwrap();
        let fresh = find_stages(home.path());
        let cleanup = Selection {
            ownerless_past_grace: true,
            ..Selection::default()
        };
        assert!(CleanupPlan::new(vec![], fresh.clone(), &cleanup).is_empty());
        let old: Vec<FoundStage> = fresh
            .into_iter()
            .map(|stage| FoundStage {
                age_seconds: OWNERLESS_GRACE.as_secs() + 60,
                ..stage
            })
            .collect();
        // A start's sweep never takes it, however old.
        assert!(CleanupPlan::new(vec![], old.clone(), &Selection::default()).is_empty());
        let plan = CleanupPlan::new(vec![], old, &cleanup);
        assert_eq!(plan.stages.len(), 1);
        assert!(
            plan.to_text()
                .ends_with("claude-bottle-a-left (no owner, 11m old)\n"),
            "{}",
            plan.to_text()
        );

        let mut ownerless = Instance::bare("claude-bottle-a-bare", Liveness::Unknown);
        assert!(CleanupPlan::new(vec![ownerless.clone()], vec![], &cleanup).is_empty());
        ownerless.age_seconds = OWNERLESS_GRACE.as_secs();
        let plan = CleanupPlan::new(vec![ownerless.clone()], vec![], &cleanup);
        assert_eq!(
            plan.to_text(),
            "  claude-bottle-a-bare (a, no owner, 10m old)\n"
        );
        assert!(
            CleanupPlan::new(vec![ownerless], vec![], &Selection::default())
                .instances
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_failed_removal_keeps_its_cause_and_its_hint() {
        let instance = Instance::bare("claude-bottle-a-1", Liveness::Dead);
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
