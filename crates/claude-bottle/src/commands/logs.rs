//! `logs INSTANCE`: the gate's decisions for a running instance.

use std::process::ExitCode;

use bottle::backend;
use bottle::settings::Settings;

use crate::error::CommandError;

pub(crate) async fn run(instance: &str) -> Result<ExitCode, CommandError> {
    let settings = Settings::from_env()?;
    let backend = backend::select(&settings.backend)?;
    let log = backend.gate_log(instance, &settings.extra_labels).await?;
    for line in log.lines().filter(|l| l.contains(r#""verdict""#)) {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}
