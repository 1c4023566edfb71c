//! The decision log: one JSON line per decision on the gate's output.
//!
//! It holds method, host, port, verdict and rule, never a path, query,
//! header or body. A refused host is written as its public suffix (or the
//! part of it an allowlist entry names) and a short keyed hash of the full
//! name: enough to tell names apart, while an agent that tries to carry
//! data out in names (`<secret>.com`, `<secret>.evil.example`) cannot use
//! the log to store it. Allowed hosts are on the user's own list and are
//! written whole.
//!
//! The log's lines can be lost (a reader that lags, an engine that rotates
//! them away), so the counts of what was decided are kept here, in memory,
//! and the report gives them: an agent cannot wear them away.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::Write;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::event::{Decision, GateEvent, GateNotice, Notice, Verdict};
use crate::held::Held;
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
    refused: Arc<Mutex<Held>>,
    tally: Arc<Tally>,
}

/// Every decision counted as it is made, whatever becomes of its line.
#[derive(Debug, Default)]
struct Tally {
    allowed: AtomicU64,
    refused: AtomicU64,
    unreachable: AtomicU64,
    expected: AtomicU64,
    /// Lines never written, over the gate's whole life.
    dropped: AtomicU64,
}

/// What the gate decided, counted in its memory, and the refused names it
/// holds in full: what the report serves, for the session's summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub allowed: u64,
    /// Refused, Claude Code's expected calls apart.
    pub refused: u64,
    pub unreachable: u64,
    /// Refusals of Claude Code's own expected calls.
    pub expected: u64,
    /// Log lines that could not be written while the log's reader lagged.
    pub dropped: u64,
    /// The first refused names and the most frequent of the rest.
    pub names: Vec<Refused>,
    /// Distinct refused names left out of `names`: the names shown are not
    /// all there were.
    pub names_not_held: u64,
}

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
            tally: Arc::default(),
        }
    }

    /// The counts so far, and the refused names held in full.
    pub fn report(&self) -> Report {
        let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let held = self.refused.lock().expect("not poisoned");
        Report {
            allowed: count(&self.tally.allowed),
            refused: count(&self.tally.refused),
            unreachable: count(&self.tally.unreachable),
            expected: count(&self.tally.expected),
            dropped: count(&self.tally.dropped),
            names: held.shown(),
            names_not_held: held.not_shown(),
        }
    }

    pub fn stdout() -> Self {
        Self::to_writer(std::io::stdout())
    }

    /// Writes a notice passed on by the gate's starter (an SSH decision).
    /// Like the gate's own decisions it never waits: a flood of them is
    /// counted as dropped, and cannot crowd the gate's decisions out.
    pub fn pass_on(&self, notice: Notice) {
        self.emit(GateEvent::Gate(GateNotice {
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
            self.tally.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A request an entry allowed: `allow`ed once its upstream answered,
    /// or `unreachable`. `listed` as for [`Self::refuse`]: a name an entry
    /// lists is shown whole, one a wildcard admitted as the wildcard's
    /// domain and a hash, since its other labels are the agent's choice.
    pub(crate) fn granted(
        &self,
        verdict: Verdict,
        method: &str,
        host: &Host,
        listed: Option<&str>,
        port: u16,
        rule: &str,
    ) {
        let logged = self.redacted(host, listed);
        self.decide(method, logged, port, verdict, rule);
    }

    /// `listed` is the part of the name an allowlist entry names, if any:
    /// the user's own words, which the log may show.
    pub(crate) fn refuse(
        &self,
        method: &str,
        host: Option<&Host>,
        listed: Option<&str>,
        port: u16,
        rule: &str,
    ) {
        let logged = match host {
            None => "(invalid)".to_owned(),
            // An expected name is one of a fixed few: none of it is the
            // agent's to choose.
            Some(host) if rule == EXPECTED_RULE => host.text(),
            Some(host) => self.redacted(host, listed),
        };
        if let Some(host) = host {
            self.refused
                .lock()
                .expect("not poisoned")
                .count(host.text(), &logged, port, rule);
        }
        let counter = if rule == EXPECTED_RULE {
            &self.tally.expected
        } else {
            &self.tally.refused
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.decide(method, logged, port, Verdict::Refuse, rule);
    }

    fn decide(&self, method: &str, host: String, port: u16, verdict: Verdict, rule: &str) {
        match verdict {
            Verdict::Allow => self.tally.allowed.fetch_add(1, Ordering::Relaxed),
            Verdict::Unreachable => self.tally.unreachable.fetch_add(1, Ordering::Relaxed),
            Verdict::Refuse => 0,
        };
        self.emit(GateEvent::Decision(Decision {
            time: now_ms(),
            method: logged_method(method).to_owned(),
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

    /// `com#1a2b3c4d` for a refused `anything.example.com`, or
    /// `example.com#1a2b3c4d` where an entry names `example.com`. An
    /// address is a name too: its digits are the agent's to choose.
    pub(crate) fn redacted(&self, host: &Host, listed: Option<&str>) -> String {
        let text = host.text();
        if listed == Some(text.as_str()) {
            return text;
        }
        let hash = self.key.hash_one(&text) >> 32;
        let shown = match host {
            Host::Address(std::net::IpAddr::V4(_)) => Some("ipv4"),
            Host::Address(std::net::IpAddr::V6(_)) => Some("ipv6"),
            // Under an unknown suffix every label could be the agent's.
            Host::Name(name) => listed.or_else(|| crate::suffix::known_suffix(name)),
        };
        format!("{}#{hash:08x}", shown.unwrap_or_default())
    }
}

/// The methods the log names; any other is the agent's own word, which
/// could carry its data, and is logged as `OTHER`.
const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "(unread)",
];

fn logged_method(method: &str) -> &str {
    METHODS
        .iter()
        .find(|known| **known == method)
        .copied()
        .unwrap_or("OTHER")
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
    fn refused_names_show_only_their_suffix_or_listed_part_and_a_hash() {
        let log = DecisionLog::to_writer(std::io::sink());
        let secret = host::parse("c2VjcmV0LXRva2Vu.evil.example.com").unwrap();
        let shown = log.redacted(&secret, None);
        assert!(shown.starts_with("com#"), "{shown}");
        // The registrable domain is the agent's choice too.
        let data = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde";
        let in_domain = log.redacted(&host::parse(&format!("{data}.com")).unwrap(), None);
        assert!(
            in_domain.starts_with("com#") && !in_domain.contains("0123"),
            "{in_domain}"
        );
        let other = log.redacted(&host::parse("other.evil.example.com").unwrap(), None);
        assert_ne!(shown, other, "different names get different hashes");
        assert_eq!(
            shown,
            log.redacted(&secret, None),
            "the same name always the same"
        );
        // What an entry names is the user's, and shown.
        let listed = log.redacted(&secret, Some("example.com"));
        assert!(listed.starts_with("example.com#"), "{listed}");
        let whole = log.redacted(&host::parse("pypi.org").unwrap(), Some("pypi.org"));
        assert_eq!(whole, "pypi.org");
        // Under an unknown suffix nothing of the name is shown, nor of an
        // address.
        for hidden in ["s3cr3t.corp", "s3cr3t", "10.99.88.77", "[2001:db8::99]"] {
            let logged = log.redacted(&host::parse(hidden).unwrap(), None);
            assert!(
                !logged.contains("s3cr3t") && !logged.contains("99.88") && !logged.contains(":99"),
                "{hidden}: {logged}"
            );
        }
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
        log.refuse("CONNECT", Some(&secret), None, 443, "not-on-allowlist");
        log.refuse("CONNECT", Some(&secret), None, 443, "not-on-allowlist");
        let notes = host::parse("raw.githubusercontent.com").unwrap();
        log.refuse("CONNECT", Some(&notes), None, 443, EXPECTED_RULE);
        log.granted(
            Verdict::Allow,
            "CONNECT",
            &notes,
            Some("raw.githubusercontent.com"),
            443,
            "raw.githubusercontent.com",
        );
        let report = log.report();
        assert_eq!(
            (
                report.allowed,
                report.refused,
                report.expected,
                report.unreachable
            ),
            (1, 2, 1, 0)
        );
        let held = report.names;
        assert_eq!(held.len(), 2, "{held:?}");
        assert_eq!(
            held[0].host, "c2vjcmv0.evil.example.com",
            "names are lowercased"
        );
        assert_eq!(held[0].count, 2);
        assert!(held[0].logged.starts_with("com#"), "{held:?}");
        assert_eq!(held[1].logged, "raw.githubusercontent.com");
        drop(log);
        let text: Vec<u8> = written.iter().flatten().collect();
        let text = String::from_utf8(text).unwrap();
        assert!(!text.to_lowercase().contains("c2vjcmv0"), "{text}");
        assert!(
            text.contains(r#""host":"raw.githubusercontent.com""#),
            "{text}"
        );
    }

    /// A writer that never takes a line: the backlog fills.
    struct Stuck;

    impl Write for Stuck {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            std::thread::sleep(std::time::Duration::from_secs(3600));
            Ok(0)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_method_of_the_agents_own_is_not_logged() {
        let (out, written) = std::sync::mpsc::channel::<Vec<u8>>();
        let log = DecisionLog::to_writer(Lines(out));
        let name = host::parse("x.example.com").unwrap();
        log.refuse(
            "C2VJCMV0LXRVA2VU",
            Some(&name),
            None,
            80,
            "not-on-allowlist",
        );
        log.refuse("GET", Some(&name), None, 80, "not-on-allowlist");
        drop(log);
        let text: Vec<u8> = written.iter().flatten().collect();
        let text = String::from_utf8(text).unwrap();
        assert!(!text.contains("C2VJ"), "{text}");
        assert!(text.contains(r#""method":"OTHER""#), "{text}");
        assert!(text.contains(r#""method":"GET""#), "{text}");
    }

    #[test]
    fn the_counts_hold_whatever_becomes_of_the_lines() {
        let log = DecisionLog::to_writer(Stuck);
        let ssh = || Notice::Ssh {
            key_for: "git.example".to_owned(),
            verdict: Verdict::Refuse,
            reason: "not a login".to_owned(),
        };
        // A flood the writer never takes, passed-on notices among it,
        // without a wait.
        for _ in 0..BACKLOG {
            log.pass_on(ssh());
        }
        let name = host::parse("x.example.com").unwrap();
        for _ in 0..25_000 {
            log.refuse("CONNECT", Some(&name), None, 443, "not-on-allowlist");
        }
        log.granted(
            Verdict::Allow,
            "CONNECT",
            &name,
            Some("x.example.com"),
            443,
            "x.example.com",
        );
        let report = log.report();
        assert_eq!((report.refused, report.allowed), (25_000, 1));
        assert!(report.dropped >= 25_000, "{report:?}");
        assert_eq!(report.names[0].count, 25_000);
    }
}
