//! Run labels: each test run's resources carry `io.claude-bottle.test` with
//! a value no other test, and no other run of the same test, shares.

use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// `test`, this process's pid, and a counter: unique among the tests
/// running alongside, and between runs whose leftovers may still exist.
pub(crate) fn run_label(test: &str) -> String {
    format!(
        "{test}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
