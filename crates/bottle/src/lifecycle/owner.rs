//! Who owns an instance: this process, named so that a later process can
//! tell whether it is still alive.
//!
//! A pid alone is not enough: pids are reused. The start time of the
//! process (in clock ticks since boot, from `/proc/<pid>/stat`) and the
//! boot id together pin down one process on one boot of one host.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Owner {
    /// Empty where the host could not name itself (no `/proc`).
    pub host: String,
    pub boot_id: String,
    pub pid: u32,
    /// 0 where it could not be read.
    pub start_time: u64,
}

/// What a host tells about itself and its processes. Linux tells it in
/// `/proc`; a host without it (macOS, a sandbox) tells nothing, and
/// nothing it cannot tell may count as dead.
pub trait ProcessTable {
    fn host_name(&self) -> Option<String>;
    fn boot_id(&self) -> Option<String>;
    /// The process's start time in clock ticks since boot, while it runs.
    fn start_time(&self, pid: u32) -> Option<u64>;
}

/// The process table under a `proc` filesystem's root.
#[derive(Debug, Clone)]
pub struct Procfs {
    root: PathBuf,
}

impl Procfs {
    /// This host's, at `/proc`.
    pub fn system() -> Self {
        Self::at("/proc")
    }

    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn read(&self, path: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.root.join(path)).ok()?;
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_owned())
    }
}

impl ProcessTable for Procfs {
    fn host_name(&self) -> Option<String> {
        self.read("sys/kernel/hostname")
    }

    fn boot_id(&self) -> Option<String> {
        self.read("sys/kernel/random/boot_id")
    }

    /// Field 22 of `<pid>/stat`, read after the command name (which may
    /// itself hold spaces and parentheses).
    fn start_time(&self, pid: u32) -> Option<u64> {
        let stat = self.read(&format!("{pid}/stat"))?;
        let after_name = stat.get(stat.rfind(')')? + 2..)?;
        after_name.split(' ').nth(19)?.parse().ok()
    }
}

impl Owner {
    /// The current process.
    pub fn current() -> Self {
        Self::current_in(&Procfs::system())
    }

    pub fn current_in(table: &dyn ProcessTable) -> Self {
        let pid = std::process::id();
        Self {
            host: table.host_name().unwrap_or_default(),
            boot_id: table.boot_id().unwrap_or_default(),
            pid,
            start_time: table.start_time(pid).unwrap_or(0),
        }
    }
}

/// Whether an owner still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Liveness {
    Live,
    Dead,
    /// Another host or another boot, or a host that cannot tell: it cannot
    /// be checked from here.
    Unknown,
}

impl Owner {
    /// Checked against this host and boot: the pid must run and have
    /// started when the owner did, or it is another process reusing it.
    pub fn liveness(&self) -> Liveness {
        self.liveness_in(&Procfs::system())
    }

    pub fn liveness_in(&self, table: &dyn ProcessTable) -> Liveness {
        let (Some(host), Some(boot_id)) = (table.host_name(), table.boot_id()) else {
            return Liveness::Unknown;
        };
        if self.host.is_empty() || self.host != host || self.boot_id != boot_id {
            return Liveness::Unknown;
        }
        match table.start_time(self.pid) {
            Some(started) if started == self.start_time => Liveness::Live,
            // Its start time was not known when it was recorded.
            Some(_) if self.start_time == 0 => Liveness::Unknown,
            // Gone, or another process under the same pid.
            None | Some(_) => Liveness::Dead,
        }
    }
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
    fn a_host_without_proc_cannot_tell_so_every_owner_is_unknown() {
        let none = tempfile::tempdir().unwrap();
        let without = Procfs::at(none.path());
        // Recorded here, checked where nothing can be told.
        assert_eq!(Owner::current().liveness_in(&without), Liveness::Unknown);
        // Recorded where nothing could be told, checked here or there.
        let blind = Owner::current_in(&without);
        assert_eq!(
            (
                blind.host.as_str(),
                blind.boot_id.as_str(),
                blind.start_time
            ),
            ("", "", 0)
        );
        assert_eq!(blind.liveness(), Liveness::Unknown);
        assert_eq!(blind.liveness_in(&without), Liveness::Unknown);
    }

    #[test]
    fn an_owner_whose_pid_is_gone_is_dead_where_the_host_can_tell() {
        let me = Owner::current();
        let gone = Owner {
            pid: u32::MAX - 1,
            ..me
        };
        assert_eq!(gone.liveness(), Liveness::Dead);
    }

    #[test]
    fn this_process_has_a_start_time_and_a_boot() {
        let owner = Owner::current();
        assert!(owner.start_time > 0);
        assert_eq!(owner.boot_id.len(), 36, "{owner:?}");
        assert_eq!(
            Procfs::system().start_time(owner.pid),
            Some(owner.start_time)
        );
    }
}
