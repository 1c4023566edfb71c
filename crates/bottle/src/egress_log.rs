//! Reading the gate's decision log: the one-line summary a session ends
//! with, from the events the gate wrote.

use std::fmt;

use egress_gate::event::{GateEvent, Verdict};

/// Counts of one session's decisions, and the refused hosts as logged
/// (redacted by the gate).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EgressSummary {
    pub allowed: usize,
    pub refused: usize,
    pub refused_hosts: Vec<String>,
    /// Allowed, but the host could not be reached.
    pub unreachable: usize,
}

impl EgressSummary {
    pub fn from_events(events: &[GateEvent]) -> Self {
        let mut summary = Self::default();
        for decision in events.iter().filter_map(GateEvent::decision) {
            match decision.verdict {
                Verdict::Allow => summary.allowed += 1,
                Verdict::Unreachable => summary.unreachable += 1,
                Verdict::Refuse => {
                    summary.refused += 1;
                    let host = format!("{}:{}", decision.host, decision.port);
                    if !summary.refused_hosts.contains(&host) {
                        summary.refused_hosts.push(host);
                    }
                }
            }
        }
        summary
    }
}

impl fmt::Display for EgressSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "egress: {} allowed, {} refused",
            self.allowed, self.refused
        )?;
        if !self.refused_hosts.is_empty() {
            write!(f, " ({})", self.refused_hosts.join(", "))?;
        }
        if self.unreachable > 0 {
            write!(f, ", {} allowed but unreachable", self.unreachable)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_are_counted_and_refused_hosts_listed_once() {
        let log = r#"{"time":1,"event":"ready","listen":"0.0.0.0:3128"}
{"time":2,"verdict":"allow","host":"pypi.org","port":443,"method":"CONNECT","rule":"pypi.org"}
{"time":3,"verdict":"refuse","host":"example.com#1a2b3c4d","port":443,"method":"CONNECT","rule":"not-on-allowlist"}
{"time":4,"verdict":"refuse","host":"example.com#1a2b3c4d","port":443,"method":"CONNECT","rule":"not-on-allowlist"}
{"time":5,"verdict":"unreachable","host":"down.example","port":443,"method":"CONNECT","rule":"down.example"}
not json"#;
        let events: Vec<GateEvent> = log.lines().filter_map(GateEvent::parse).collect();
        let summary = EgressSummary::from_events(&events);
        assert_eq!(
            summary.to_string(),
            "egress: 1 allowed, 2 refused (example.com#1a2b3c4d:443), 1 allowed but unreachable"
        );
    }
}
