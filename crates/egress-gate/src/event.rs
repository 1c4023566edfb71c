//! The gate's output, one JSON line per event: the contract between the
//! gate, which writes it, and everything that reads it back (the start
//! that waits for the gate, the session summary, `logs`).

use serde::{Deserialize, Serialize};

/// One line of the gate's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GateEvent {
    /// Something about the gate itself, told by its `event` field.
    Gate(GateNotice),
    /// A request decided.
    Decision(Decision),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateNotice {
    /// Milliseconds since the Unix epoch.
    pub time: u64,
    #[serde(flatten)]
    pub notice: Notice,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Notice {
    /// The gate listens: what its starter waits for.
    Ready { listen: String },
    /// Decisions made while the log's reader lagged that could not be
    /// written: the gate goes on deciding rather than wait for its log.
    Dropped { count: u64 },
    /// Every decision before this line is written: the answer to a
    /// `flush` line on the gate's stdin.
    Flushed,
    /// A decision of the SSH key holder (in claude-bottle, outside the
    /// bottle), passed on through the gate's stdin so that one log holds
    /// every way out.
    Ssh {
        /// The declared hosts the key serves.
        key_for: String,
        verdict: Verdict,
        reason: String,
    },
}

/// A decision: method, host, port, verdict and rule, never a path, query,
/// header or body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Milliseconds since the Unix epoch.
    pub time: u64,
    pub method: String,
    /// Whole when allowed; a refused name is redacted (see `log`).
    pub host: String,
    pub port: u16,
    pub verdict: Verdict,
    pub rule: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Refuse,
    /// Allowed, but no address of the host could be reached.
    Unreachable,
}

impl GateEvent {
    /// A line of the gate's output; `None` for anything else (the engine's
    /// log may carry other lines).
    pub fn parse(line: &str) -> Option<Self> {
        serde_json::from_str(line).ok()
    }

    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("an event always serialises")
    }

    pub fn decision(&self) -> Option<&Decision> {
        match self {
            Self::Decision(decision) => Some(decision),
            Self::Gate(_) => None,
        }
    }

    pub fn is_flushed(&self) -> bool {
        matches!(
            self,
            Self::Gate(GateNotice {
                notice: Notice::Flushed,
                ..
            })
        )
    }

    pub fn is_ready(&self) -> bool {
        matches!(
            self,
            Self::Gate(GateNotice {
                notice: Notice::Ready { .. },
                ..
            })
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_back_as_the_events_written() {
        let events = [
            GateEvent::Gate(GateNotice {
                time: 1,
                notice: Notice::Ready {
                    listen: "0.0.0.0:3128".into(),
                },
            }),
            GateEvent::Decision(Decision {
                time: 2,
                method: "CONNECT".into(),
                host: "pypi.org".into(),
                port: 443,
                verdict: Verdict::Allow,
                rule: "pypi.org".into(),
            }),
            GateEvent::Gate(GateNotice {
                time: 3,
                notice: Notice::Dropped { count: 7 },
            }),
            GateEvent::Gate(GateNotice {
                time: 4,
                notice: Notice::Flushed,
            }),
        ];
        for event in events {
            assert_eq!(GateEvent::parse(&event.to_line()), Some(event));
        }
    }

    #[test]
    fn the_wire_format_is_the_documented_one() {
        assert_eq!(
            GateEvent::parse(r#"{"time":5,"event":"ready","listen":"0.0.0.0:3128"}"#)
                .map(|e| e.is_ready()),
            Some(true)
        );
        let line = r#"{"time":5,"method":"GET","host":"example.com#1a2b3c4d","port":80,"verdict":"refuse","rule":"not-on-allowlist"}"#;
        let event = GateEvent::parse(line).unwrap();
        assert_eq!(event.decision().unwrap().verdict, Verdict::Refuse);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&event.to_line()).unwrap(),
            serde_json::from_str::<serde_json::Value>(line).unwrap()
        );
        assert_eq!(GateEvent::parse("not json"), None);
        assert_eq!(GateEvent::parse(r#"{"event":"unknown","time":1}"#), None);
    }
}
