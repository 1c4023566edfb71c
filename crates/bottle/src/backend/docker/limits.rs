//! A container's memory, process and CPU limits, as the engine holds them.
//!
//! An engine can take a container's limits and keep none of them: rootless
//! Podman on cgroups v1 drops them with a warning its API does not pass on
//! (its `info` still claims every controller), as Docker does where the
//! kernel lacks one. A bottle without its limits could take the machine's
//! memory or fork without end, so each container's limits are read back
//! once it is created, and a launch whose limits are not held fails before
//! anything in it runs.

use bollard::models::HostConfig;
use bollard::query_parameters::InspectContainerOptions;
use futures_util::TryFutureExt as _;

use super::engine::Engine;
use crate::error::{Error, Result};

/// The limits a container was created with; an engine that dropped one
/// holds 0 (or nothing) there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Limits {
    memory: i64,
    pids: i64,
    nano_cpus: i64,
}

impl Limits {
    pub(super) fn of(host: &HostConfig) -> Self {
        Self {
            memory: host.memory.unwrap_or(0),
            pids: host.pids_limit.unwrap_or(0),
            nano_cpus: host.nano_cpus.unwrap_or(0),
        }
    }

    /// Each limit `held` lacks of these, as "what: held (asked …)".
    fn lacking_in(self, held: Self) -> Vec<String> {
        let mut lacking = Vec::new();
        let mut compare = |what: &str, asked: i64, held: i64, shown: fn(i64) -> String| {
            if asked != held {
                lacking.push(format!("{what} {} (asked {})", shown(held), shown(asked)));
            }
        };
        compare("memory", self.memory, held.memory, mebibytes);
        compare("processes", self.pids, held.pids, none_or_count);
        compare("CPUs", self.nano_cpus, held.nano_cpus, cpus);
        lacking
    }
}

fn mebibytes(bytes: i64) -> String {
    if bytes <= 0 {
        "none".to_owned()
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

fn none_or_count(count: i64) -> String {
    if count <= 0 {
        "none".to_owned()
    } else {
        count.to_string()
    }
}

fn cpus(nano: i64) -> String {
    if nano <= 0 {
        "none".to_owned()
    } else {
        #[allow(clippy::cast_precision_loss)] // a CPU count, shown
        let cpus = nano as f64 / 1e9;
        format!("{cpus}")
    }
}

/// Whether the engine holds the limits each container was `asked` with
/// (`what` it is: "the agent"); an error naming every one it dropped if not.
pub(super) async fn held(engine: &Engine, containers: &[(&str, &str, Limits)]) -> Result<()> {
    let inspected = futures_util::future::try_join_all(containers.iter().map(|(id, what, _)| {
        engine
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .map_err(move |err| Error::caused_by(format!("cannot read {what}'s limits back"), err))
    }))
    .await?;
    let lacking: Vec<String> = containers
        .iter()
        .zip(inspected)
        .filter_map(|((_, what, asked), inspected)| {
            let held = Limits::of(&inspected.host_config.unwrap_or_default());
            let lacking = asked.lacking_in(held);
            (!lacking.is_empty()).then(|| format!("{what}'s {}", lacking.join(", ")))
        })
        .collect();
    if lacking.is_empty() {
        return Ok(());
    }
    let error = Error::new(format!(
        "{} did not keep the bottle's limits: {}",
        engine.identity.product,
        lacking.join("; ")
    ));
    Err(error.hint(if engine.identity.is_podman() {
        PODMAN_KEEPS_NONE
    } else {
        KERNEL_LACKS
    }))
}

/// What to do where Podman keeps no limits (`doctor` says it too).
pub(super) const PODMAN_KEEPS_NONE: &str = "rootless Podman keeps limits only on cgroups v2, with \
    the memory, pids and cpu controllers delegated to the user: run Podman's service as root, \
    or use Docker";
/// What to do where the engine's kernel cannot hold a limit.
pub(super) const KERNEL_LACKS: &str = "the engine's kernel lacks the cgroup controllers for \
    them: use an engine whose host has the memory, pids and cpu controllers";

#[cfg(test)]
mod tests {
    use super::*;

    fn host(memory: Option<i64>, pids: Option<i64>, nano_cpus: Option<i64>) -> HostConfig {
        HostConfig {
            memory,
            pids_limit: pids,
            nano_cpus,
            ..Default::default()
        }
    }

    #[test]
    fn limits_held_as_asked_lack_nothing() {
        let asked = host(Some(4 << 30), Some(1024), Some(2_000_000_000));
        assert!(Limits::of(&asked).lacking_in(Limits::of(&asked)).is_empty());
    }

    #[test]
    fn each_limit_dropped_or_changed_is_named_with_what_was_asked() {
        let asked = Limits::of(&host(Some(4 << 30), Some(1024), Some(1_500_000_000)));
        // Rootless Podman on cgroups v1: every limit 0.
        assert_eq!(
            asked.lacking_in(Limits::of(&host(Some(0), Some(0), Some(0)))),
            [
                "memory none (asked 4096 MiB)",
                "processes none (asked 1024)",
                "CPUs none (asked 1.5)"
            ]
        );
        // An engine that leaves a field out, or holds another value.
        assert_eq!(
            asked.lacking_in(Limits::of(&host(Some(4 << 30), None, Some(1_000_000_000)))),
            ["processes none (asked 1024)", "CPUs 1 (asked 1.5)"]
        );
    }
}
