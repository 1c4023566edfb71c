//! The labels every resource of an instance carries. `list` and `cleanup`
//! find resources by these, never by name.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::lifecycle::owner::Owner;

pub const MANAGED: &str = "io.claude-bottle.managed";
pub const INSTANCE: &str = "io.claude-bottle.instance";
pub const BOTTLE: &str = "io.claude-bottle.bottle";
pub const AGENT: &str = "io.claude-bottle.agent";
pub const ROLE: &str = "io.claude-bottle.role";
pub const CREATED: &str = "io.claude-bottle.created";
pub const OWNER_HOST: &str = "io.claude-bottle.owner.host";
pub const OWNER_BOOT_ID: &str = "io.claude-bottle.owner.boot-id";
pub const OWNER_PID: &str = "io.claude-bottle.owner.pid";
pub const OWNER_START_TIME: &str = "io.claude-bottle.owner.start-time";
/// The runtime the agent's container was created under, for engines whose
/// own record of it says nothing (Podman's says `oci`).
pub const RUNTIME: &str = "io.claude-bottle.runtime";

/// The `ROLE` of the default images claude-bottle builds.
pub const CLAUDE_CODE_IMAGE: &str = "claude-code-image";
/// The `ROLE` of the gate images claude-bottle builds.
pub const GATE_IMAGE: &str = "gate-image";

/// The labels of an image claude-bottle builds: shared by every instance,
/// so no instance or owner, but `extra` (`CLAUDE_BOTTLE_EXTRA_LABELS`).
pub fn for_image(role: &str, extra: &[(String, String)]) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = extra.iter().cloned().collect();
    labels.insert(MANAGED.to_owned(), "true".to_owned());
    labels.insert(ROLE.to_owned(), role.to_owned());
    labels.insert(CREATED.to_owned(), unix_now().to_string());
    labels
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The owner a resource's labels name, when they name one whole.
pub fn owner<S: BuildHasher>(labels: &HashMap<String, String, S>) -> Option<Owner> {
    Some(Owner {
        host: labels.get(OWNER_HOST)?.clone(),
        boot_id: labels.get(OWNER_BOOT_ID)?.clone(),
        pid: labels.get(OWNER_PID)?.parse().ok()?,
        start_time: labels.get(OWNER_START_TIME)?.parse().ok()?,
    })
}

/// What a resource is for within its instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A short-lived container that reports an image's user and tools.
    Probe,
    Agent,
    Gate,
    /// A short-lived container that hands the gate its listener (Podman).
    Handoff,
    InternalNetwork,
    EgressNetwork,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Probe => "probe",
            Self::Agent => "agent",
            Self::Gate => "gate",
            Self::Handoff => "handoff",
            Self::InternalNetwork => "internal-network",
            Self::EgressNetwork => "egress-network",
        }
    }
}

/// The labels shared by all resources of one instance.
#[derive(Debug, Clone)]
pub struct InstanceLabels {
    common: HashMap<String, String>,
}

impl InstanceLabels {
    pub fn new(
        instance: &str,
        bottle: &str,
        agent: &str,
        owner: &Owner,
        extra: &[(String, String)],
    ) -> Self {
        let created = unix_now();
        let mut common: HashMap<String, String> = extra.iter().cloned().collect();
        for (key, value) in [
            (MANAGED, "true".to_owned()),
            (INSTANCE, instance.to_owned()),
            (BOTTLE, bottle.to_owned()),
            (AGENT, agent.to_owned()),
            (CREATED, created.to_string()),
            (OWNER_HOST, owner.host.clone()),
            (OWNER_BOOT_ID, owner.boot_id.clone()),
            (OWNER_PID, owner.pid.to_string()),
            (OWNER_START_TIME, owner.start_time.to_string()),
        ] {
            common.insert(key.to_owned(), value);
        }
        Self { common }
    }

    /// The labels of one resource.
    pub fn for_role(&self, role: Role) -> HashMap<String, String> {
        let mut labels = self.common.clone();
        labels.insert(ROLE.to_owned(), role.as_str().to_owned());
        labels
    }
}
