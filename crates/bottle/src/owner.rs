//! Who owns an instance: this process, named so that a later process can
//! tell whether it is still alive.
//!
//! A pid alone is not enough: pids are reused. The start time of the
//! process (in clock ticks since boot, from `/proc/<pid>/stat`) and the
//! boot id together pin down one process on one boot of one host.

use std::fs;

#[derive(Debug, Clone, PartialEq, Eq)]
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
    fn this_process_has_a_start_time_and_a_boot() {
        let owner = Owner::current();
        assert!(owner.start_time > 0);
        assert_eq!(owner.boot_id.len(), 36, "{owner:?}");
        assert_eq!(start_time(owner.pid), Some(owner.start_time));
    }
}
