//! Reading the gate's decision log: the summary a session ends with, from
//! the events the gate wrote. Off the user's terminal (a CI log, a pipe)
//! it is one line, with refused names as redacted as the log has them; on
//! it, each refused name is shown whole, from the gate's report, with the
//! allowlist line that would let it through.

use std::fmt::{self, Write as _};

use egress_gate::event::{GateEvent, Verdict};
use egress_gate::{EXPECTED_RULE, Refused, Report};

use crate::claude_traffic::EXPECTED;

/// Counts of one session's decisions, and the refused hosts as logged
/// (redacted by the gate).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EgressSummary {
    pub allowed: usize,
    pub refused: usize,
    pub refused_hosts: Vec<String>,
    /// Allowed, but the host could not be reached.
    pub unreachable: usize,
    /// Refusals of Claude Code's own expected calls, apart from the rest.
    pub expected: usize,
    /// Lines of the log that could not be written: the counts are whole,
    /// the log is not.
    pub dropped: u64,
    /// Refused names beyond those the gate held in full.
    pub names_not_held: u64,
}

impl EgressSummary {
    /// From the gate's own counts: what its log may have lost is counted.
    pub fn from_report(report: &Report) -> Self {
        let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let mut refused_hosts = Vec::new();
        for refusal in report.names.iter().filter(|r| r.rule != EXPECTED_RULE) {
            let host = format!("{}:{}", refusal.logged, refusal.port);
            if !refused_hosts.contains(&host) {
                refused_hosts.push(host);
            }
        }
        Self {
            allowed: count(report.allowed),
            refused: count(report.refused),
            refused_hosts,
            unreachable: count(report.unreachable),
            expected: count(report.expected),
            dropped: report.dropped,
            names_not_held: report.names_not_held,
        }
    }

    /// From the log's lines, where the gate gave no report.
    pub fn from_events(events: &[GateEvent]) -> Self {
        let mut summary = Self::default();
        for decision in events.iter().filter_map(GateEvent::decision) {
            match decision.verdict {
                Verdict::Allow => summary.allowed += 1,
                Verdict::Unreachable => summary.unreachable += 1,
                Verdict::Refuse if decision.rule == EXPECTED_RULE => summary.expected += 1,
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
        if self.expected > 0 {
            write!(
                f,
                "; Claude Code's own: {} refused (expected)",
                self.expected
            )?;
        }
        f.write_str(&self.losses())
    }
}

impl EgressSummary {
    /// What the log and the names shown lack, if anything.
    fn losses(&self) -> String {
        let mut out = String::new();
        if self.names_not_held > 0 {
            let _ = write!(
                out,
                "; {} more refused names than shown (the most frequent are)",
                self.names_not_held
            );
        }
        if self.dropped > 0 {
            let _ = write!(
                out,
                "; {} log lines dropped while the log lagged (the counts are whole)",
                self.dropped
            );
        }
        out
    }

    /// The summary for the user's terminal: the counts, then each refused
    /// name and port with how often, the rule, and what would allow it.
    /// `refused` is the gate's report; `given` the values the bottle was
    /// given (its environment), which no name shown may carry.
    pub fn for_terminal(&self, refused: &[Refused], given: &[&str]) -> String {
        let carried = carried_forms(given);
        let mut out = format!("egress: {} allowed, {} refused", self.allowed, self.refused);
        if self.unreachable > 0 {
            let _ = write!(out, ", {} allowed but unreachable", self.unreachable);
        }
        out.push_str(&self.losses());
        for refusal in refused.iter().filter(|r| r.rule != EXPECTED_RULE) {
            let name = shown(refusal, &carried);
            let times = if refusal.count == 1 {
                String::new()
            } else {
                format!(", {} times", refusal.count)
            };
            let _ = write!(
                out,
                "\n  refused {name}:{}{times} ({})",
                refusal.port, refusal.rule
            );
            if name != refusal.host {
                out.push_str(
                    "; the name is not shown whole: it is very long, holds characters a \
                     terminal could act on, or carries a value the bottle was given",
                );
            } else if let Some(allow) = allow_line(refusal) {
                let _ = write!(out, "; to allow it, {allow}");
            }
        }
        for refusal in refused.iter().filter(|r| r.rule == EXPECTED_RULE) {
            let why = EXPECTED
                .iter()
                .find(|e| e.name == refusal.host)
                .map_or("", |e| e.why);
            let _ = write!(
                out,
                "\n  Claude Code's own, expected: {}:{}, {} refused ({why}); to allow it, add \"{}\" to egress.allowlist",
                refusal.host, refusal.port, refusal.count, refusal.host
            );
        }
        out
    }
}

/// The name as the user may see it: whole, unless it could disturb the
/// terminal (control or other unusual characters), hide what follows it
/// (very long), or carry one of the bottle's values out onto the screen
/// (and into whatever records it); then as the log has it.
fn shown(refusal: &Refused, carried: &[String]) -> String {
    let plain = refusal.host.len() <= MAX_SHOWN
        && refusal
            .host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']'));
    let name = refusal.host.to_ascii_lowercase();
    if plain && !carried.iter().any(|form| name.contains(form.as_str())) {
        refusal.host.clone()
    } else {
        refusal.logged.clone()
    }
}

/// Each value as a name could carry it, lowercased as DNS names are: as
/// it is, in hex, and in base64 (standard and URL-safe, unpadded). Short
/// values would match by chance and are left out.
fn carried_forms(given: &[&str]) -> Vec<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    given
        .iter()
        .filter(|value| value.len() >= MIN_CARRIED)
        .flat_map(|value| {
            let hex = value.bytes().fold(String::new(), |mut hex, b| {
                let _ = write!(hex, "{b:02x}");
                hex
            });
            [
                value.to_string(),
                hex,
                STANDARD_NO_PAD.encode(value),
                URL_SAFE_NO_PAD.encode(value),
            ]
        })
        .map(|form| form.to_ascii_lowercase())
        .collect()
}

/// Values shorter than this are not looked for in names.
const MIN_CARRIED: usize = 6;

/// Longer names are shown redacted: a real one is rarely past 60.
const MAX_SHOWN: usize = 100;

/// The manifest change that lets this refusal through, where one does.
fn allow_line(refusal: &Refused) -> Option<String> {
    let host = if refusal.host.contains(':') {
        format!("[{}]", refusal.host)
    } else {
        refusal.host.clone()
    };
    let entry = if matches!(refusal.port, 443 | 80) {
        host.clone()
    } else {
        format!("{host}:{}", refusal.port)
    };
    match refusal.rule.as_str() {
        "not-on-allowlist" | "address-not-listed" => {
            Some(format!("add \"{entry}\" to egress.allowlist"))
        }
        "port-not-allowed" => Some(format!(
            "add \"{host}:{}\" to egress.allowlist",
            refusal.port
        )),
        "private-address-not-allowed" => Some(format!(
            "add \"{entry}\" to egress.private too (it resolves to a private address)"
        )),
        _ => None,
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

    fn refused(host: &str, port: u16, rule: &str, count: u64) -> Refused {
        Refused {
            host: host.to_owned(),
            logged: "example.com#1a2b3c4d".to_owned(),
            port,
            rule: rule.to_owned(),
            count,
        }
    }

    #[test]
    fn a_name_carrying_a_value_the_bottle_was_given_is_not_shown_whole() {
        use base64::Engine as _;
        let summary = EgressSummary {
            refused: 4,
            ..EgressSummary::default()
        };
        let token = "Sk-Ant-oat01-Secret";
        let hex = "536b2d416e742d6f617430312d536563726574";
        let base64 = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(token)
            .to_ascii_lowercase();
        let report = [
            refused(
                "sk-ant-oat01-secret.evil.example.com",
                443,
                "not-on-allowlist",
                1,
            ),
            refused(
                &format!("{hex}.evil.example.com"),
                443,
                "not-on-allowlist",
                1,
            ),
            refused(
                "u2stqw50lw9hdday.evil.example.com",
                443,
                "not-on-allowlist",
                1,
            ),
            refused("ada.example.com", 443, "not-on-allowlist", 1),
        ];
        let shown = summary.for_terminal(&report, &[token, "Ada"]);
        assert!(!shown.contains("secret"), "{shown}");
        assert!(!shown.contains(hex), "{shown}");
        // Its base64, lowercased as DNS would.
        assert!(!shown.contains(&base64), "{shown}");
        // A value too short to tell from chance is not looked for.
        assert!(shown.contains("refused ada.example.com:443"), "{shown}");
    }

    #[test]
    fn on_the_terminal_each_refusal_is_named_with_what_would_allow_it() {
        let summary = EgressSummary {
            allowed: 1,
            refused: 6,
            expected: 1,
            ..EgressSummary::default()
        };
        let report = [
            refused("pypi.example.com", 443, "not-on-allowlist", 3),
            refused("git.example.com", 8443, "port-not-allowed", 1),
            refused("gitea.lan", 443, "private-address-not-allowed", 1),
            refused("\u{1b}[2Jevil.example.com", 443, "not-on-allowlist", 1),
            refused(
                &format!("{}.example.com", "a".repeat(200)),
                443,
                "not-on-allowlist",
                1,
            ),
            refused("raw.githubusercontent.com", 443, EXPECTED_RULE, 1),
        ];
        insta::assert_snapshot!(summary.for_terminal(&report, &[]));
        assert_eq!(
            summary.to_string(),
            "egress: 1 allowed, 6 refused; Claude Code's own: 1 refused (expected)"
        );
    }
}
