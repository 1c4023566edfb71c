//! Where a command's time goes, for `CLAUDE_BOTTLE_LOG=timing`.
//!
//! The backend marks its phases as `tracing` spans. This layer prints each
//! span as it closes: when it began and ended, counted from the start of
//! the process, so that work done at the same time shows as overlapping
//! rows, and how long it took. An event inside a span (claude's first
//! byte) prints as an instant. Nothing else of tracing is shown: the rest
//! of stderr is for users, and these lines are for whoever profiles.

use std::fmt::Write as _;
use std::time::Instant;

use tracing::field::{Field, Visit};
use tracing::span;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

/// Prints timings on stderr from now on; `origin` is when the process
/// began its work.
pub(crate) fn install(origin: Instant) {
    let subscriber = tracing_subscriber::registry().with(Timing { origin });
    // Only the first install counts; there is only one.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

struct Timing {
    origin: Instant,
}

/// When a span was created.
struct Began(Instant);

impl<S> Layer<S> for Timing
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, _: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Began(Instant::now()));
        }
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(began) = span.extensions().get::<Began>().map(|b| b.0) else {
            return;
        };
        let path = path(span.scope().from_root().map(|s| s.name()));
        crate::progress::eprintln_above(&format!(
            "timing {:>8.3} {:>8.3} s {:>9.1} ms  {path}",
            self.seconds(began),
            self.seconds(Instant::now()),
            began.elapsed().as_secs_f64() * 1e3,
        ));
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        // The HTTP client's own events are not phases.
        if !event.metadata().target().starts_with("bottle") {
            return;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let within = ctx
            .event_scope(event)
            .map(|scope| path(scope.from_root().map(|s| s.name())))
            .unwrap_or_default();
        crate::progress::eprintln_above(&format!(
            "timing {:>8.3} {:>8} {:>12}  {within}: {}",
            self.seconds(Instant::now()),
            "",
            "",
            message.0
        ));
    }
}

impl Timing {
    fn seconds(&self, at: Instant) -> f64 {
        (at - self.origin).as_secs_f64()
    }
}

fn path<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join("/")
}

/// An event's message, its other fields after it.
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, "{}={value:?}", field.name());
        }
    }
}
