//! Progress of long work — a download, an image build, a start — on stderr.
//!
//! On a terminal it is a live bar or spinner. Elsewhere (CI logs, pipes)
//! the long work ([`Work::Bytes`], [`Work::Steps`]) gets one line when it
//! starts and one when it ends, so logs stay short and readable; work that
//! is usually quick ([`Work::Brief`]) prints nothing there, and on a
//! terminal shows only once it has taken half a second.

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bottle::ui::{Progress, Work};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};

/// How long brief work runs unseen: quick commands stay quiet.
const SHOWN_AFTER: Duration = Duration::from_millis(500);
const TICK: Duration = Duration::from_millis(120);

/// Every bar on stderr, so that a line printed meanwhile goes above them
/// instead of through them.
fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// Prints `line` on stderr, above any bar being drawn.
pub(crate) fn eprintln_above(line: &str) {
    bars().suspend(|| eprintln!("{line}"));
}

#[derive(Debug)]
pub(crate) struct Shown {
    bar: ProgressBar,
    label: String,
    started: Instant,
    /// For brief work: whether it has finished, so that it is never drawn
    /// after.
    finished: Option<Arc<Mutex<bool>>>,
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
        let bar = bars().add(ProgressBar::new(total.unwrap_or(0)));
        if total.is_none() {
            bar.unset_length();
        }
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
        let bar = bars().add(spinner());
        bar.enable_steady_tick(TICK);
        Self::start(bar, label)
    }

    /// Work that is usually over before anyone would look: drawn from
    /// half a second on, on a terminal only, and cleared when done, even
    /// when it ends in an error.
    fn brief(label: &str) -> Self {
        let bar = spinner().with_finish(ProgressFinish::AndClear);
        bar.set_draw_target(ProgressDrawTarget::hidden());
        bar.set_message(label.to_owned());
        let finished = Arc::new(Mutex::new(false));
        if !bars().is_hidden() {
            let (later, finished) = (bar.downgrade(), finished.clone());
            std::thread::spawn(move || {
                std::thread::sleep(SHOWN_AFTER);
                let finished = finished.lock().expect("not poisoned");
                if let Some(bar) = later.upgrade().filter(|_| !*finished) {
                    bars().add(bar.clone());
                    bar.enable_steady_tick(TICK);
                }
            });
        }
        Self {
            bar,
            label: label.to_owned(),
            started: Instant::now(),
            finished: Some(finished),
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
            finished: None,
        }
    }
}

fn spinner() -> ProgressBar {
    let bar = ProgressBar::no_length();
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
        if let Some(finished) = &self.finished {
            *finished.lock().expect("not poisoned") = true;
            self.bar.finish_and_clear();
            return;
        }
        self.bar.finish_and_clear();
        eprintln_above(&format!(
            "{}: {outcome} in {:.1} s",
            self.label,
            self.started.elapsed().as_secs_f64()
        ));
    }
}

/// `work`, with a spinner labelled `label` while it takes long.
pub(crate) async fn while_waiting<T>(label: &str, work: impl Future<Output = T>) -> T {
    let shown = Shown::new(label, Work::Brief);
    let done = work.await;
    shown.finish("");
    done
}
