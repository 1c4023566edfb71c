//! The decision log: one JSON line per decision on the gate's output.
//!
//! It holds method, host, port, verdict and rule, never a path, query,
//! header or body. A refused host is written as its registrable domain and
//! a short keyed hash of the full name: enough to tell names apart, while
//! an agent that tries to carry data out in names (`<secret>.evil.example`)
//! cannot use the log to store it. Allowed hosts are on the user's own list
//! and are written whole.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::host::Host;

#[derive(Debug, Default)]
pub(crate) struct DecisionLog {
    /// Keyed per gate, so hashes cannot be matched against a dictionary
    /// computed elsewhere.
    key: RandomState,
}

/// How a host appears in the log.
impl DecisionLog {
    #[allow(
        clippy::unused_self,
        reason = "one log object; only refusals need its key"
    )]
    pub(crate) fn allow(&self, method: &str, host: &Host, port: u16, rule: &str) {
        write(&json!({
            "time": now_ms(), "method": method, "host": whole(host), "port": port,
            "verdict": "allow", "rule": rule,
        }));
    }

    pub(crate) fn refuse(&self, method: &str, host: Option<&Host>, port: u16, rule: &str) {
        write(&json!({
            "time": now_ms(), "method": method,
            "host": host.map_or_else(|| "(invalid)".to_owned(), |h| self.redacted(h)), "port": port,
            "verdict": "refuse", "rule": rule,
        }));
    }

    /// The line that says the gate listens: what its starter waits for.
    #[allow(clippy::unused_self, reason = "one log object")]
    pub(crate) fn ready(&self, listen: std::net::SocketAddr) {
        write(&json!({ "time": now_ms(), "event": "ready", "listen": listen.to_string() }));
    }

    /// `example.com#1a2b3c4d` for a refused `anything.example.com`.
    pub(crate) fn redacted(&self, host: &Host) -> String {
        let name = match host {
            Host::Address(address) => return address.to_string(),
            Host::Name(name) => name,
        };
        let hash = self.key.hash_one(name) >> 32;
        // Only a known public suffix makes a registrable domain; under an
        // unknown one every label could be chosen by the agent.
        match psl::domain(name.as_bytes()) {
            Some(domain) if domain.suffix().is_known() => {
                format!("{}#{hash:08x}", String::from_utf8_lossy(domain.as_bytes()))
            }
            _ => format!("#{hash:08x}"),
        }
    }
}

fn whole(host: &Host) -> String {
    match host {
        Host::Name(name) => name.clone(),
        Host::Address(address) => address.to_string(),
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn write(line: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host;

    #[test]
    fn refused_names_show_only_their_registrable_domain_and_a_hash() {
        let log = DecisionLog::default();
        let secret = host::parse("c2VjcmV0LXRva2Vu.evil.example.com").unwrap();
        let shown = log.redacted(&secret);
        assert!(shown.starts_with("example.com#"), "{shown}");
        assert!(!shown.contains("c2VjcmV0"), "{shown}");
        let other = log.redacted(&host::parse("other.evil.example.com").unwrap());
        assert_ne!(shown, other, "different names get different hashes");
        assert_eq!(
            shown,
            log.redacted(&secret),
            "the same name always the same"
        );
        // Under an unknown suffix nothing of the name is shown.
        let unknown = log.redacted(&host::parse("s3cr3t.corp").unwrap());
        assert!(
            unknown.starts_with('#') && !unknown.contains("s3cr3t"),
            "{unknown}"
        );
        let single = log.redacted(&host::parse("s3cr3t").unwrap());
        assert!(!single.contains("s3cr3t"), "{single}");
    }
}
