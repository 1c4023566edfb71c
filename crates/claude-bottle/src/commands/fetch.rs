//! `fetch INSTANCE`: a running instance's new commits, into the working
//! directory's repository now, checked as they are when a session ends.

use std::process::ExitCode;

use bottle::backend;
use bottle::repo::Repository;
use bottle::repo::home::fetch_running;
use bottle::settings::Settings;

use crate::error::CommandError;
use crate::progress::while_waiting;

pub(crate) async fn run(instance: &str) -> Result<ExitCode, CommandError> {
    let settings = Settings::from_env()?;
    let backend = backend::select(&settings.backend)?;
    let (cwd, _) = super::manifest_dirs()?;
    let repo = Repository::find(&cwd)?;
    let coming = while_waiting(
        &format!("fetching the branches of {instance}"),
        fetch_running(
            backend.as_ref(),
            instance,
            &settings.extra_labels,
            &repo,
            settings.bundle_max,
        ),
    )
    .await?;
    if coming.arrived.is_empty() && coming.refused.is_empty() {
        eprintln!("nothing new in {instance}");
    }
    for line in coming.lines(repo.branch.as_deref()) {
        eprintln!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}
