//! Reading the gate's decision log: the one-line summary a session ends
//! with, from the JSON lines the gate wrote.

use std::fmt;

/// Counts of one session's decisions, and the refused hosts as logged
/// (redacted by the gate).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EgressSummary {
    pub allowed: usize,
    pub refused: usize,
    pub refused_hosts: Vec<String>,
}

impl EgressSummary {
    pub fn from_log(log: &str) -> Self {
        let mut summary = Self::default();
        for line in log.lines() {
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            match entry["verdict"].as_str() {
                Some("allow") => summary.allowed += 1,
                Some("refuse") => {
                    summary.refused += 1;
                    let host = format!(
                        "{}:{}",
                        entry["host"].as_str().unwrap_or("?"),
                        entry["port"]
                    );
                    if !summary.refused_hosts.contains(&host) {
                        summary.refused_hosts.push(host);
                    }
                }
                _ => {}
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_are_counted_and_refused_hosts_listed_once() {
        let log = r#"{"event":"ready","listen":"0.0.0.0:3128"}
{"verdict":"allow","host":"pypi.org","port":443,"method":"CONNECT","rule":"pypi.org"}
{"verdict":"refuse","host":"example.com#1a2b3c4d","port":443,"method":"CONNECT","rule":"not-on-allowlist"}
{"verdict":"refuse","host":"example.com#1a2b3c4d","port":443,"method":"CONNECT","rule":"not-on-allowlist"}
not json"#;
        let summary = EgressSummary::from_log(log);
        assert_eq!(
            summary.to_string(),
            "egress: 1 allowed, 2 refused (example.com#1a2b3c4d:443)"
        );
    }
}
