//! Which refused names the report keeps, in bounded memory.
//!
//! An agent can refuse itself as many names as it likes. Kept first come,
//! first served, a few dozen decoys would hide every later refusal; kept
//! all, they would fill the gate's memory. So the first names are kept
//! with exact counts, and after them the most frequent, counted the
//! Space-Saving way: a name refused more often than one in [`FREQUENT`]
//! of the later refusals is always among them, whatever the decoys.

use std::collections::HashMap;

use crate::log::Refused;

/// The first distinct refusals, kept whatever follows.
const FIRST: usize = 32;
/// Slots for the most frequent of the rest.
const FREQUENT: usize = 1024;
/// How many of the most frequent the report shows.
const FREQUENT_SHOWN: usize = 32;

/// What identifies one refusal: name, port and rule.
type Key = (String, u16, String);

#[derive(Debug, Default)]
pub(crate) struct Held {
    first: Vec<Refused>,
    /// Space-Saving counters: a name's count is at most its true count
    /// plus the count of the slot it took over.
    frequent: Vec<Refused>,
    index: HashMap<Key, usize>,
    /// Distinct refusals seen beyond the first, counted once each time
    /// one takes a slot over.
    evicted: u64,
}

impl Held {
    /// Counts one refusal of `host` (logged as `logged`).
    pub(crate) fn count(&mut self, host: String, logged: &str, port: u16, rule: &str) {
        if let Some(held) = self
            .first
            .iter_mut()
            .find(|r| r.host == host && r.port == port && r.rule == rule)
        {
            held.count += 1;
            return;
        }
        let refused = Refused {
            host,
            logged: logged.to_owned(),
            port,
            rule: rule.to_owned(),
            count: 1,
        };
        if self.first.len() < FIRST {
            self.first.push(refused);
            return;
        }
        let key = (refused.host.clone(), port, refused.rule.clone());
        if let Some(&slot) = self.index.get(&key) {
            self.frequent[slot].count += 1;
        } else if self.frequent.len() < FREQUENT {
            self.index.insert(key, self.frequent.len());
            self.frequent.push(refused);
        } else {
            let (slot, least) = self
                .frequent
                .iter()
                .enumerate()
                .min_by_key(|(_, r)| r.count)
                .map(|(slot, r)| (slot, r.count))
                .expect("full");
            let old = &self.frequent[slot];
            self.index
                .remove(&(old.host.clone(), old.port, old.rule.clone()));
            self.index.insert(key, slot);
            self.frequent[slot] = Refused {
                count: least + 1,
                ..refused
            };
            self.evicted += 1;
        }
    }

    /// How many distinct refusals [`Self::shown`] leaves out: those held
    /// but not among the most frequent shown, and those whose slot another
    /// took (one that came back may be counted twice).
    pub(crate) fn not_shown(&self) -> u64 {
        let held = self.frequent.len().saturating_sub(FREQUENT_SHOWN);
        u64::try_from(held).unwrap_or(u64::MAX) + self.evicted
    }

    /// The first refusals, then the most frequent of the rest.
    pub(crate) fn shown(&self) -> Vec<Refused> {
        let mut frequent = self.frequent.clone();
        frequent.sort_by_key(|r| std::cmp::Reverse(r.count));
        frequent.truncate(FREQUENT_SHOWN);
        self.first.iter().cloned().chain(frequent).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refuse(held: &mut Held, name: &str) {
        held.count(name.to_owned(), name, 443, "not-on-allowlist");
    }

    #[test]
    fn decoys_neither_hide_a_frequent_name_nor_grow_without_bound() {
        let mut held = Held::default();
        for i in 0..FIRST {
            refuse(&mut held, &format!("decoy-{i}.example"));
        }
        for round in 0..100 {
            for i in 0..1000 {
                refuse(&mut held, &format!("flood-{round}-{i}.example"));
            }
            refuse(&mut held, "real.example");
            refuse(&mut held, "real.example");
        }
        let shown = held.shown();
        assert_eq!(shown.len(), FIRST + FREQUENT_SHOWN);
        assert_eq!(shown[0].host, "decoy-0.example", "the first are kept");
        let real = shown
            .iter()
            .find(|r| r.host == "real.example")
            .expect("the frequent name is shown");
        assert!(real.count >= 200, "{real:?}");
        assert!(held.frequent.len() <= FREQUENT && held.index.len() <= FREQUENT);
        assert!(held.not_shown() > 0);
    }

    #[test]
    fn a_name_the_frequent_outnumber_is_counted_as_not_shown() {
        let mut held = Held::default();
        for i in 0..FIRST {
            refuse(&mut held, &format!("decoy-{i}.example"));
        }
        refuse(&mut held, "real.example");
        for _ in 0..5 {
            for i in 0..FREQUENT_SHOWN {
                refuse(&mut held, &format!("flood-{i}.example"));
            }
        }
        assert!(!held.shown().iter().any(|r| r.host == "real.example"));
        assert_eq!(held.not_shown(), 1);
    }

    #[test]
    fn the_first_names_keep_exact_counts() {
        let mut held = Held::default();
        refuse(&mut held, "a.example");
        refuse(&mut held, "b.example");
        refuse(&mut held, "a.example");
        let shown = held.shown();
        assert_eq!(
            shown
                .iter()
                .map(|r| (&*r.host, r.count))
                .collect::<Vec<_>>(),
            [("a.example", 2), ("b.example", 1)]
        );
    }
}
