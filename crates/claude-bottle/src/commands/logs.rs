//! `logs INSTANCE`: the gate's decisions for a running instance.

use std::process::ExitCode;

use bottle::backend;
use bottle::lifecycle::stage;
use bottle::settings::Settings;
use egress_gate::event::GateEvent;

use crate::error::CommandError;
use crate::progress::while_waiting;

pub(crate) async fn run(instance: &str) -> Result<ExitCode, CommandError> {
    let settings = Settings::from_env()?;
    // The copy the session keeps holds the start the engine may have
    // rotated away; the engine's log, what the copy has not caught up on.
    let kept: Option<Vec<GateEvent>> = stage::kept_gate_log(&super::home()?, instance)
        .and_then(|path| std::fs::read(path).ok())
        .map(|kept| {
            String::from_utf8_lossy(&kept)
                .lines()
                .filter_map(GateEvent::parse)
                .collect()
        });
    let backend = backend::select(&settings.backend)?;
    let engine = while_waiting(
        "reading the gate's log",
        backend.gate_log(instance, &settings.extra_labels),
    )
    .await;
    let events = match (kept, engine) {
        (Some(kept), Ok(engine)) => joined(kept, engine),
        (Some(kept), Err(_)) => kept,
        (None, engine) => engine?,
    };
    // The decisions, the key holder's, and any notice that some went
    // unwritten; not the gate's own bookkeeping.
    for event in events.iter().filter(|e| !e.is_ready() && !e.is_flushed()) {
        println!("{}", event.to_line());
    }
    Ok(ExitCode::SUCCESS)
}

/// The kept copy, then what the engine's log holds after the copy's last
/// event: all of it, where rotation took that event away.
fn joined(mut kept: Vec<GateEvent>, engine: Vec<GateEvent>) -> Vec<GateEvent> {
    let after = kept
        .last()
        .and_then(|last| engine.iter().rposition(|e| e == last))
        .map_or(0, |at| at + 1);
    kept.extend(engine.into_iter().skip(after));
    kept
}
