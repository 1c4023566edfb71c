//! `list`: the instances on the engine, from their labels.

use std::process::ExitCode;

use bottle::backend;
use bottle::lifecycle::instance::list_text;
use bottle::settings::Settings;

use crate::cli::Format;
use crate::error::CommandError;
use crate::progress::while_waiting;

pub(crate) async fn run(format: Format) -> Result<ExitCode, CommandError> {
    let settings = Settings::from_env()?;
    let backend = backend::select(&settings.backend)?;
    let instances = backend.instances(&settings.extra_labels);
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&instances.await?).expect("instances serialise")
        ),
        Format::Text => {
            let (instances, engine) = while_waiting("asking the engine", async {
                tokio::try_join!(instances, backend.engine())
            })
            .await?;
            // On stderr: the table stays the whole of stdout.
            eprintln!("engine: {engine}");
            print!("{}", list_text(&instances));
        }
    }
    Ok(ExitCode::SUCCESS)
}
