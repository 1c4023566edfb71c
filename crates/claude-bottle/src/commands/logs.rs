//! `logs INSTANCE`: the gate's decisions for a running instance.

use std::process::ExitCode;

use bottle::backend;
use bottle::settings::Settings;

use crate::error::CommandError;
use crate::progress::while_waiting;

pub(crate) async fn run(instance: &str) -> Result<ExitCode, CommandError> {
    let settings = Settings::from_env()?;
    let backend = backend::select(&settings.backend)?;
    let events = while_waiting(
        "reading the gate's log",
        backend.gate_log(instance, &settings.extra_labels),
    )
    .await?;
    // The decisions, the key holder's, and any notice that some went
    // unwritten; not the gate's own bookkeeping.
    for event in events.iter().filter(|e| !e.is_ready() && !e.is_flushed()) {
        println!("{}", event.to_line());
    }
    Ok(ExitCode::SUCCESS)
}
