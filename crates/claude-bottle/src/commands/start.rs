//! `start AGENT`: load, prepare, show the plan, ask, launch.
//!
//! Nothing is created before the user says yes: prepare only reads the
//! host and the engine. JSON goes to stdout only with --dry-run, because a
//! plan on stdout would otherwise race the y/N question on the terminal.

use std::process::ExitCode;

use bottle::backend;
use bottle::manifest::Manifest;
use bottle::prepare::prepare;
use bottle::settings::Settings;
use bottle::spec::BottleSpec;

use crate::cli::{Format, StartArgs};
use crate::error::CommandError;
use crate::terminal::{self, TerminalPrompt};

pub(crate) async fn run(args: StartArgs) -> Result<ExitCode, CommandError> {
    if args.format == Format::Json && !args.dry_run {
        return Err(CommandError::usage(
            "--format json needs --dry-run",
            "the JSON plan is for scripts; add --dry-run, or drop --format json to start the bottle",
        ));
    }
    let settings = Settings::from_env()?;
    let (cwd, home) = super::manifest_dirs()?;
    let manifest = Manifest::load(&cwd, &home)?;
    let backend = backend::select(&settings.backend)?;
    let spec = BottleSpec {
        manifest: &manifest,
        agent: args.agent,
        copy_cwd: args.cwd,
        cwd,
        home,
        remote_control: args.remote_control,
        dry_run: args.dry_run,
        settings,
    };
    let prepared = prepare(backend.as_ref(), &spec, |var| std::env::var(var).ok()).await?;
    if args.format == Format::Json {
        println!("{}", prepared.plan.to_json());
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "claude-bottle will start this bottle:\n{}",
        prepared.plan.to_text()
    );
    if args.dry_run {
        eprintln!("dry run: nothing was created.");
        return Ok(ExitCode::SUCCESS);
    }
    let can_ask = terminal::can_ask();
    if !args.yes {
        if !can_ask {
            return Err(CommandError::usage(
                "there is no terminal to ask whether to start",
                "pass --yes to start without asking",
            ));
        }
        let yes = terminal::confirm("Start it?")
            .map_err(|err| bottle::Error::new(format!("cannot read the answer: {err}")))?;
        if !yes {
            eprintln!("aborted by user");
            return Ok(ExitCode::SUCCESS);
        }
    }
    let mut prompt = TerminalPrompt;
    let env = prepared
        .env
        .complete(can_ask.then_some(&mut prompt as &mut dyn bottle::env::SecretPrompt))?;
    let code = backend.launch(prepared.plan, prepared.stage, env).await?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}
