//! `cleanup [INSTANCE...]`: plan, show, ask, remove.

use std::process::ExitCode;

use bottle::backend;
use bottle::lifecycle::cleanup::{Selection, cleanup, prepare_cleanup};
use bottle::settings::Settings;

use crate::cli::CleanupArgs;
use crate::error::CommandError;
use crate::progress::while_waiting;
use crate::terminal;

pub(crate) async fn run(args: CleanupArgs) -> Result<ExitCode, CommandError> {
    let settings = Settings::from_env()?;
    let backend = backend::select(&settings.backend)?;
    let selection = Selection {
        names: args.instances,
        include_live: args.include_live,
        ownerless_past_grace: true,
    };
    let home = super::home()?;
    // Images are offered only when no instance is named.
    let images = selection
        .names
        .is_empty()
        .then(|| settings.current_images(&home));
    let plan = while_waiting(
        "finding what instances left",
        prepare_cleanup(
            backend.as_ref(),
            &home,
            &settings.extra_labels,
            &selection,
            images.as_ref(),
        ),
    )
    .await?;
    let unmatched = plan.unmatched(&selection);
    if !unmatched.is_empty() {
        return Err(
            bottle::Error::new(format!("no instance named {}", unmatched.join(", ")))
                .hint("`claude-bottle list` shows the instances there are")
                .into(),
        );
    }
    if !plan.kept.is_empty() {
        eprintln!(
            "keeping {} live instance(s): {} (name them, or pass --include-live, to remove them)",
            plan.kept.len(),
            plan.kept.join(", ")
        );
    }
    if plan.is_empty() {
        eprintln!("nothing to clean up");
        return Ok(ExitCode::SUCCESS);
    }
    eprint!(
        "claude-bottle will remove, from {}:\n{}",
        backend.engine().await?,
        plan.to_text()
    );
    if args.dry_run {
        eprintln!("dry run: nothing was removed.");
        return Ok(ExitCode::SUCCESS);
    }
    if !args.yes {
        if !terminal::can_ask() {
            return Err(CommandError::usage(
                "there is no terminal to ask whether to remove these",
                "pass --yes to remove them without asking",
            ));
        }
        let yes = terminal::confirm("Remove them?")
            .map_err(|err| bottle::Error::caused_by("cannot read the answer", err))?;
        if !yes {
            eprintln!("aborted by user");
            return Ok(ExitCode::SUCCESS);
        }
    }
    while_waiting("removing", cleanup(backend.as_ref(), &plan)).await?;
    eprintln!(
        "removed {} instance(s), {} stage directory(ies) and {} image(s)",
        plan.instances.len(),
        plan.stages.len(),
        plan.images.len()
    );
    Ok(ExitCode::SUCCESS)
}
