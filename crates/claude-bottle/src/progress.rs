//! Progress of long work — a download, an image build, a start — on stderr.
//!
//! On a terminal it is a live bar or spinner. Elsewhere (CI logs, pipes)
//! the long work ([`Work::Bytes`], [`Work::Steps`]) gets one line when it
//! starts and one when it ends, so logs stay short and readable; work that
//! is usually quick ([`Work::Brief`]) prints nothing there, and on a
//! terminal shows only once it has taken half a second.

use std::future::Future;
use std::time::{Duration, Instant};

use bottle::ui::{Progress, Work};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};

/// How long brief work runs unseen: quick commands stay quiet.
const SHOWN_AFTER: Duration = Duration::from_millis(500);
const TICK: Duration = Duration::from_millis(120);

#[derive(Debug)]
pub(crate) struct Shown {
    bar: ProgressBar,
    label: String,
    started: Instant,
    brief: bool,
}

impl Shown {
    pub(crate) fn new(label: &str, work: Work) -> Self {
        match work {
            Work::Bytes { total } => Self::bytes(label, total),
            Work::Steps => Self::steps(label),
            Work::Brief => Self::brief(label),
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
        let bar = spinner(ProgressDrawTarget::stderr());
        bar.enable_steady_tick(TICK);
        Self::start(bar, label)
    }

    /// Work that is usually over before anyone would look: drawn from
    /// half a second on, on a terminal only, and cleared when done, even
    /// when it ends in an error.
    fn brief(label: &str) -> Self {
        let bar = spinner(ProgressDrawTarget::hidden()).with_finish(ProgressFinish::AndClear);
        bar.set_message(label.to_owned());
        if ProgressDrawTarget::stderr().is_hidden() {
            return Self::quiet(bar, label);
        }
        let later = bar.downgrade();
        std::thread::spawn(move || {
            std::thread::sleep(SHOWN_AFTER);
            if let Some(bar) = later.upgrade().filter(|bar| !bar.is_finished()) {
                bar.set_draw_target(ProgressDrawTarget::stderr());
                bar.enable_steady_tick(TICK);
            }
        });
        Self::quiet(bar, label)
    }

    fn quiet(bar: ProgressBar, label: &str) -> Self {
        Self {
            bar,
            label: label.to_owned(),
            started: Instant::now(),
            brief: true,
        }
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
            brief: false,
        }
    }
}

fn spinner(target: ProgressDrawTarget) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, target);
    bar.set_style(ProgressStyle::with_template("{spinner} {wide_msg}").expect("a valid template"));
    bar
}

impl Progress for Shown {
    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn status(&self, status: &str) {
        self.bar
            .set_message(format!("{}: {}", self.label, status.trim()));
    }

    /// Shown with its duration, unless the work was brief.
    fn finish(&self, outcome: &str) {
        self.bar.finish_and_clear();
        if !self.brief {
            eprintln!(
                "{}: {outcome} in {:.1} s",
                self.label,
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

/// `work`, with a spinner labelled `label` while it takes long.
pub(crate) async fn while_waiting<T>(label: &str, work: impl Future<Output = T>) -> T {
    let shown = Shown::new(label, Work::Brief);
    let done = work.await;
    shown.finish("");
    done
}
