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
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::event::{Decision, GateEvent, GateNotice, Notice, Verdict};
use crate::host::Host;
use crate::policy::EXPECTED_RULE;

/// Lines the log holds for a reader that lags; beyond them decisions are
/// counted, not written, until it catches up.
const BACKLOG: usize = 10_000;

/// Where the gate writes its decisions; clones write to the same log.
#[derive(Debug, Clone)]
pub struct DecisionLog {
    /// Keyed per gate, so hashes cannot be matched against a dictionary
    /// computed elsewhere.
    key: RandomState,
    lines: SyncSender<GateEvent>,
    dropped: Arc<AtomicU64>,
    /// The refused names in full, held in memory only: for the report the
    /// user's own terminal asks for, never for the log.
    refused: Arc<Mutex<Vec<Refused>>>,
}

/// Distinct refused names held for the report; beyond them refusals are
/// still logged and counted, under the names already held.
const REFUSED_HELD: usize = 64;

/// One refused name and port, in full, for the user's terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    pub host: String,
    /// As the log shows it.
    pub logged: String,
    pub port: u16,
    pub rule: String,
    pub count: u64,
}

impl DecisionLog {
    /// A log written to `out` by a thread of its own: a reader that stops
    /// reading (a full pipe) blocks that thread, never a decision.
    pub fn to_writer(out: impl Write + Send + 'static) -> Self {
        let (lines, pending) = std::sync::mpsc::sync_channel(BACKLOG);
        let dropped = Arc::new(AtomicU64::new(0));
        let counted = dropped.clone();
        std::thread::spawn(move || write_all(out, &pending, &counted));
        Self {
            key: RandomState::new(),
            lines,
            dropped,
            refused: Arc::default(),
        }
    }

    /// Every refusal so far, by name in full (see [`Refused`]).
    pub fn refused(&self) -> Vec<Refused> {
        self.refused.lock().expect("not poisoned").clone()
    }

    pub fn stdout() -> Self {
        Self::to_writer(std::io::stdout())
    }

    /// Writes a notice passed on by the gate's starter (an SSH decision).
    /// It waits for room in the backlog, so call it off the async runtime.
    pub fn pass_on(&self, notice: Notice) {
        let _ = self.lines.send(GateEvent::Gate(GateNotice {
            time: now_ms(),
            notice,
        }));
    }

    /// Writes a `flushed` notice once every decision before it is written.
    /// It waits for room in the backlog, so call it off the async runtime.
    pub fn flush(&self) {
        let _ = self.lines.send(GateEvent::Gate(GateNotice {
            time: now_ms(),
            notice: Notice::Flushed,
        }));
    }

    fn emit(&self, event: GateEvent) {
        if let Err(TrySendError::Full(_)) = self.lines.try_send(event) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn allow(&self, method: &str, host: &Host, port: u16, rule: &str) {
        self.decide(method, whole(host), port, Verdict::Allow, rule);
    }

    pub(crate) fn unreachable(&self, method: &str, host: &Host, port: u16, rule: &str) {
        self.decide(method, whole(host), port, Verdict::Unreachable, rule);
    }

    pub(crate) fn refuse(&self, method: &str, host: Option<&Host>, port: u16, rule: &str) {
        let logged = match host {
            None => "(invalid)".to_owned(),
            // An expected name is one of a fixed few: none of it is the
            // agent's to choose.
            Some(host) if rule == EXPECTED_RULE => whole(host),
            Some(host) => self.redacted(host),
        };
        if let Some(host) = host {
            self.hold(whole(host), &logged, port, rule);
        }
        self.decide(method, logged, port, Verdict::Refuse, rule);
    }

    fn hold(&self, host: String, logged: &str, port: u16, rule: &str) {
        let mut refused = self.refused.lock().expect("not poisoned");
        if let Some(held) = refused
            .iter_mut()
            .find(|r| r.host == host && r.port == port && r.rule == rule)
        {
            held.count += 1;
        } else if refused.len() < REFUSED_HELD {
            refused.push(Refused {
                host,
                logged: logged.to_owned(),
                port,
                rule: rule.to_owned(),
                count: 1,
            });
        }
    }

    fn decide(&self, method: &str, host: String, port: u16, verdict: Verdict, rule: &str) {
        self.emit(GateEvent::Decision(Decision {
            time: now_ms(),
            method: method.to_owned(),
            host,
            port,
            verdict,
            rule: rule.to_owned(),
        }));
    }

    /// The line that says the gate listens: what its starter waits for.
    pub(crate) fn ready(&self, listen: std::net::SocketAddr) {
        self.emit(GateEvent::Gate(GateNotice {
            time: now_ms(),
            notice: Notice::Ready {
                listen: listen.to_string(),
            },
        }));
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Writes each event as it comes, and after it how many could not be held
/// while the reader lagged. Ends when the log is dropped or `out` fails.
fn write_all(mut out: impl Write, pending: &Receiver<GateEvent>, dropped: &AtomicU64) {
    while let Ok(event) = pending.recv() {
        let mut line = event.to_line();
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let notice = GateEvent::Gate(GateNotice {
                time: now_ms(),
                notice: Notice::Dropped { count: lost },
            });
            line = format!("{}\n{line}", notice.to_line());
        }
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host;

    #[test]
    fn refused_names_show_only_their_registrable_domain_and_a_hash() {
        let log = DecisionLog::to_writer(std::io::sink());
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

    /// A writer whose writes arrive on a channel.
    struct Lines(std::sync::mpsc::Sender<Vec<u8>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.send(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn refused_names_are_held_in_full_and_counted_but_logged_redacted() {
        let (out, written) = std::sync::mpsc::channel::<Vec<u8>>();
        let log = DecisionLog::to_writer(Lines(out));
        let secret = host::parse("c2VjcmV0.evil.example.com").unwrap();
        log.refuse("CONNECT", Some(&secret), 443, "not-on-allowlist");
        log.refuse("CONNECT", Some(&secret), 443, "not-on-allowlist");
        let notes = host::parse("raw.githubusercontent.com").unwrap();
        log.refuse("CONNECT", Some(&notes), 443, EXPECTED_RULE);
        let held = log.refused();
        assert_eq!(held.len(), 2, "{held:?}");
        assert_eq!(
            held[0].host, "c2vjcmv0.evil.example.com",
            "names are lowercased"
        );
        assert_eq!(held[0].count, 2);
        assert!(held[0].logged.starts_with("example.com#"), "{held:?}");
        assert_eq!(held[1].logged, "raw.githubusercontent.com");
        drop(log);
        let text: Vec<u8> = written.iter().flatten().collect();
        let text = String::from_utf8(text).unwrap();
        assert!(!text.to_lowercase().contains("c2vjcmv0"), "{text}");
        assert!(
            text.contains(r#""host":"raw.githubusercontent.com""#),
            "{text}"
        );
        // Beyond the names held, refusals are still logged.
        let log = DecisionLog::to_writer(std::io::sink());
        for i in 0..REFUSED_HELD + 10 {
            let name = host::parse(&format!("n{i}.example.com")).unwrap();
            log.refuse("CONNECT", Some(&name), 443, "not-on-allowlist");
        }
        assert_eq!(log.refused().len(), REFUSED_HELD);
    }
}
