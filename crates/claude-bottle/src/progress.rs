//! Progress of long work — a download, an image build, a pull — on stderr.
//!
//! On a terminal it is a live bar or spinner; elsewhere (CI logs, pipes)
//! one line when the work starts and one when it ends, so logs stay short
//! and readable.

use std::time::{Duration, Instant};

use bottle::ui::{Progress, Work};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug)]
pub(crate) struct Shown {
    bar: ProgressBar,
    label: String,
    started: Instant,
}

impl Shown {
    pub(crate) fn new(label: &str, work: Work) -> Self {
        match work {
            Work::Bytes { total } => Self::bytes(label, total),
            Work::Steps => Self::steps(label),
        }
    }

    /// Work measured in bytes, of `total` when it is known.
    fn bytes(label: &str, total: Option<u64>) -> Self {
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} {wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}",
            )
            .expect("a valid template"),
        );
        Self::start(bar, label)
    }

    /// Work in steps whose number is not known in advance.
    fn steps(label: &str) -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {wide_msg}").expect("a valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Self::start(bar, label)
    }

    fn start(bar: ProgressBar, label: &str) -> Self {
        if bar.is_hidden() {
            eprintln!("{label}...");
        }
        bar.set_message(label.to_owned());
        Self {
            bar,
            label: label.to_owned(),
            started: Instant::now(),
        }
    }
}

impl Progress for Shown {
    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn status(&self, status: &str) {
        self.bar
            .set_message(format!("{}: {}", self.label, status.trim()));
    }

    /// Shown with its duration.
    fn finish(&self, outcome: &str) {
        self.bar.finish_and_clear();
        eprintln!(
            "{}: {outcome} in {:.1} s",
            self.label,
            self.started.elapsed().as_secs_f64()
        );
    }
}
