//! Instances as the engine knows them, found by their labels, and the
//! table `list` makes of them.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::owner::{Liveness, Owner};

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
    /// What names no owner may be in the making (its owner not yet
    /// written, or written by another version): it cannot be told dead.
    pub fn liveness_of(owner: Option<&Owner>) -> Liveness {
        owner.map_or(Liveness::Unknown, Owner::liveness)
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

pub(super) fn liveness_word(liveness: Liveness) -> &'static str {
    match liveness {
        Liveness::Live => "live",
        Liveness::Dead => "dead",
        Liveness::Unknown => "unknown",
    }
}

pub(super) fn human_age(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
impl Instance {
    /// An instance with no resources, stopped, owned by nobody known.
    pub(crate) fn bare(name: &str, liveness: Liveness) -> Self {
        Self {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_a_person_would_say_them() {
        assert_eq!(human_age(59), "59s");
        assert_eq!(human_age(600), "10m");
        assert_eq!(human_age(7200), "2h");
        assert_eq!(human_age(3 * 86400), "3d");
    }
}
