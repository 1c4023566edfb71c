//! `list`: the instances on the engine, from their labels.

use std::process::ExitCode;

use bottle::backend;
use bottle::lifecycle::instance::list_text;
use bottle::settings::Settings;

use crate::cli::Format;
use crate::error::CommandError;

pub(crate) async fn run(format: Format) -> Result<ExitCode, CommandError> {
    let settings = Settings::from_env()?;
    let backend = backend::select(&settings.backend)?;
    let instances = backend.instances(&settings.extra_labels).await?;
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&instances).expect("instances serialise")
        ),
        Format::Text => {
            // On stderr: the table stays the whole of stdout.
            eprintln!("engine: {}", backend.engine().await?);
            print!("{}", list_text(&instances));
        }
    }
    Ok(ExitCode::SUCCESS)
}
