//! Who owns an instance: this process, named so that a later process can
//! tell whether it is still alive.
//!
//! A pid alone is not enough: pids are reused. The start time of the
//! process (in clock ticks since boot, from `/proc/<pid>/stat`) and the
//! boot id together pin down one process on one boot of one host.

use std::fs;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Owner {
    pub host: String,
    pub boot_id: String,
    pub pid: u32,
    pub start_time: u64,
}

impl Owner {
    /// The current process.
    pub fn current() -> Self {
        let pid = std::process::id();
        Self {
            host: host_name(),
            boot_id: boot_id(),
            pid,
            start_time: start_time(pid).unwrap_or(0),
        }
    }
}

/// Whether an owner still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Liveness {
    Live,
    Dead,
    /// Another host or another boot: it cannot be checked from here.
    Unknown,
}

impl Owner {
    /// Checked against this host and boot: the pid must run and have
    /// started when the owner did, or it is another process reusing it.
    pub fn liveness(&self) -> Liveness {
        if self.host != host_name() || self.boot_id != boot_id() {
            return Liveness::Unknown;
        }
        match start_time(self.pid) {
            Some(started) if started == self.start_time => Liveness::Live,
            _ => Liveness::Dead,
        }
    }
}

fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|b| b.trim().to_owned())
        .unwrap_or_default()
}

/// Field 22 of `/proc/<pid>/stat`, read after the command name (which may
/// itself hold spaces and parentheses).
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split(' ').nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_is_live_only_while_its_very_process_runs() {
        let me = Owner::current();
        assert_eq!(me.liveness(), Liveness::Live);
        // The same pid with another start time: a reused pid, not the owner.
        let reused = Owner {
            start_time: me.start_time + 1,
            ..me.clone()
        };
        assert_eq!(reused.liveness(), Liveness::Dead);
        let elsewhere = Owner {
            host: format!("{}-other", me.host),
            ..me.clone()
        };
        assert_eq!(elsewhere.liveness(), Liveness::Unknown);
        let rebooted = Owner {
            boot_id: "00000000-0000-0000-0000-000000000000".into(),
            ..me
        };
        assert_eq!(rebooted.liveness(), Liveness::Unknown);
    }

    #[test]
    fn this_process_has_a_start_time_and_a_boot() {
        let owner = Owner::current();
        assert!(owner.start_time > 0);
        assert_eq!(owner.boot_id.len(), 36, "{owner:?}");
        assert_eq!(start_time(owner.pid), Some(owner.start_time));
    }
}
