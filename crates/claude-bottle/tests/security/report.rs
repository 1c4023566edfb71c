//! The suite's report: every attempt, the path it took and what happened,
//! printed at the end of every run, passing or not.

use std::sync::Mutex;

/// What one attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The protection held.
    Held,
    /// The attempt got through: a product bug.
    GotThrough,
}

#[derive(Debug)]
struct Attempt {
    area: &'static str,
    what: String,
    path: String,
    outcome: Outcome,
    detail: String,
}

#[derive(Debug, Default)]
pub(crate) struct Report {
    attempts: Mutex<Vec<Attempt>>,
    /// Set when the suite could not run to its end (a fixture failed).
    broken: Mutex<Option<String>>,
}

impl Report {
    /// Records an attempt in `area`: `what` was tried along `path`; it
    /// `held` or not, as `detail` shows.
    pub(crate) fn record(
        &self,
        area: &'static str,
        what: impl Into<String>,
        path: impl Into<String>,
        held: bool,
        detail: impl Into<String>,
    ) {
        self.attempts.lock().unwrap().push(Attempt {
            area,
            what: what.into(),
            path: path.into(),
            outcome: if held {
                Outcome::Held
            } else {
                Outcome::GotThrough
            },
            detail: detail.into(),
        });
    }

    pub(crate) fn broke(&self, why: String) {
        *self.broken.lock().unwrap() = Some(why);
    }

    /// Whether every attempt held and the suite ran to its end.
    pub(crate) fn passed(&self) -> bool {
        self.broken.lock().unwrap().is_none()
            && !self.attempts.lock().unwrap().is_empty()
            && self
                .attempts
                .lock()
                .unwrap()
                .iter()
                .all(|a| a.outcome == Outcome::Held)
    }

    pub(crate) fn print(&self) {
        let attempts = self.attempts.lock().unwrap();
        let held = attempts
            .iter()
            .filter(|a| a.outcome == Outcome::Held)
            .count();
        println!("\nsecurity report");
        println!("===============");
        let mut area = "";
        for attempt in attempts.iter() {
            if attempt.area != area {
                area = attempt.area;
                println!("\n{area}");
            }
            let mark = match attempt.outcome {
                Outcome::Held => "held",
                Outcome::GotThrough => "GOT THROUGH",
            };
            println!("  [{mark}] {}", attempt.what);
            println!("      path: {}", attempt.path);
            println!("      seen: {}", attempt.detail);
        }
        println!(
            "\ntotal: {} attempts, {held} held, {} got through",
            attempts.len(),
            attempts.len() - held
        );
        if let Some(why) = self.broken.lock().unwrap().as_ref() {
            println!("the suite did not run to its end: {why}");
        }
    }
}
