//! Instances as the engine knows them, found by their labels, and what
//! `list` and `cleanup` make of them.
//!
//! Liveness decides what may be swept: an instance whose owner runs on this
//! host is live and is never removed unless named or explicitly included;
//! one whose owner runs elsewhere (another host or boot) cannot be checked
//! and counts as live too.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::images::StaleImage;
use crate::owner::{Liveness, Owner};
use crate::stage::FoundStage;

/// One engine resource of an instance.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InstanceResource {
    pub id: String,
    pub name: String,
    pub role: String,
    /// Containers: `running`, `exited`, ...; networks: none.
    pub state: Option<String>,
}

/// Everything the engine holds of one instance.
#[derive(Debug, Clone, Serialize)]
pub struct Instance {
    pub instance: String,
    pub agent: String,
    pub bottle: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
    pub age_seconds: u64,
    pub runtime: Option<String>,
    /// `running` while its agent container runs, else `stopped`.
    pub state: String,
    pub owner: Option<Owner>,
    pub liveness: Liveness,
    pub containers: Vec<InstanceResource>,
    pub networks: Vec<InstanceResource>,
}

impl Instance {
    pub fn liveness_of(owner: Option<&Owner>) -> Liveness {
        owner.map_or(Liveness::Dead, Owner::liveness)
    }

    pub fn age_from(created: u64) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        now.saturating_sub(created)
    }
}

/// The table `list` prints.
pub fn list_text(instances: &[Instance]) -> String {
    if instances.is_empty() {
        return "no bottle instances\n".to_owned();
    }
    let mut out = format!(
        "{:<40} {:<16} {:>8} {:<8} {:<8} {}\n",
        "INSTANCE", "AGENT", "AGE", "RUNTIME", "STATE", "OWNER"
    );
    for i in instances {
        let owner = match (&i.owner, i.liveness) {
            (Some(o), liveness) => {
                format!("pid {} on {} ({})", o.pid, o.host, liveness_word(liveness))
            }
            (None, _) => "(none)".to_owned(),
        };
        let _ = writeln!(
            out,
            "{:<40} {:<16} {:>8} {:<8} {:<8} {owner}",
            i.instance,
            i.agent,
            human_age(i.age_seconds),
            i.runtime.as_deref().unwrap_or("-"),
            i.state
        );
    }
    out
}

fn liveness_word(liveness: Liveness) -> &'static str {
    match liveness {
        Liveness::Live => "live",
        Liveness::Dead => "dead",
        Liveness::Unknown => "unknown",
    }
}

fn human_age(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Which instances a cleanup takes.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Named instances are taken whatever their owner's state.
    pub names: Vec<String>,
    /// Take live and unknown instances too.
    pub include_live: bool,
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
        let take = |name: &str, liveness: Liveness| {
            if selection.names.is_empty() {
                selection.include_live || liveness == Liveness::Dead
            } else {
                selection.names.iter().any(|n| n == name)
            }
        };
        let mut plan = Self::default();
        for instance in found {
            if take(&instance.instance, instance.liveness) {
                plan.instances.push(instance);
            } else if instance.liveness != Liveness::Dead {
                plan.kept.push(instance.instance);
            }
        }
        for stage in stages {
            let liveness = Instance::liveness_of(stage.owner.as_ref());
            if take(&stage.instance, liveness) {
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
            let _ = writeln!(
                out,
                "  {} ({}, {})",
                instance.instance,
                instance.agent,
                liveness_word(instance.liveness)
            );
            for c in &instance.containers {
                let _ = writeln!(out, "    container {} ({})", c.name, c.role);
            }
            for n in &instance.networks {
                let _ = writeln!(out, "    network   {} ({})", n.name, n.role);
            }
        }
        for stage in &self.stages {
            let _ = writeln!(out, "  stage directory {}", stage.path.display());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(name: &str, liveness: Liveness) -> Instance {
        Instance {
            instance: name.into(),
            agent: "a".into(),
            bottle: "b".into(),
            created: 0,
            age_seconds: 0,
            runtime: None,
            state: "stopped".into(),
            owner: None,
            liveness,
            containers: vec![],
            networks: vec![],
        }
    }

    fn names(plan: &CleanupPlan) -> Vec<&str> {
        plan.instances.iter().map(|i| i.instance.as_str()).collect()
    }

    #[test]
    fn only_dead_instances_go_unless_named_or_included() {
        let found = || {
            vec![
                instance("dead", Liveness::Dead),
                instance("live", Liveness::Live),
                instance("far", Liveness::Unknown),
            ]
        };
        let plan = CleanupPlan::new(found(), vec![], &Selection::default());
        assert_eq!(names(&plan), ["dead"]);
        assert_eq!(plan.kept, ["live", "far"]);
        let named = Selection {
            names: vec!["live".into(), "nope".into()],
            include_live: false,
        };
        let plan = CleanupPlan::new(found(), vec![], &named);
        assert_eq!(names(&plan), ["live"]);
        assert_eq!(plan.unmatched(&named), ["nope"]);
        let all = Selection {
            names: vec![],
            include_live: true,
        };
        assert_eq!(
            names(&CleanupPlan::new(found(), vec![], &all)),
            ["dead", "live", "far"]
        );
    }

    #[test]
    fn an_instance_whose_owner_cannot_be_checked_is_never_swept() {
        let none = tempfile::tempdir().unwrap();
        let without_proc = crate::owner::Procfs::at(none.path());
        let mut far = instance("far", Liveness::Dead);
        far.owner = Some(Owner::current_in(&without_proc));
        far.liveness = Instance::liveness_of(far.owner.as_ref());
        assert_eq!(far.liveness, Liveness::Unknown);
        let plan = CleanupPlan::new(vec![far], vec![], &Selection::default());
        assert!(names(&plan).is_empty());
        assert_eq!(plan.kept, ["far"]);
    }

    #[test]
    fn ages_read_like_a_person_would_say_them() {
        assert_eq!(human_age(59), "59s");
        assert_eq!(human_age(600), "10m");
        assert_eq!(human_age(7200), "2h");
        assert_eq!(human_age(3 * 86400), "3d");
    }
}
