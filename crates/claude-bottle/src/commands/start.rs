//! `start AGENT`: load, prepare, show the plan, ask, launch.
//!
//! Nothing is created before the user says yes: prepare only reads the
//! host and the engine. JSON goes to stdout only with --dry-run, because a
//! plan on stdout would otherwise race the y/N question on the terminal.

use std::process::ExitCode;
use std::sync::Arc;

use bottle::backend::{self, Launch};
use bottle::lifecycle::cleanup::sweep;
use bottle::manifest::{BUILTIN_AGENT, FILE_NAME, Manifest};
use bottle::prepare::prepare;
use bottle::settings::Settings;
use bottle::spec::{BottleSpec, CopyCwd};

use crate::cli::{Format, StartArgs};
use crate::error::CommandError;
use crate::progress::while_waiting;
use crate::signals;
use crate::terminal::{self, TerminalPrompt, TerminalUi};

pub(crate) async fn run(args: StartArgs) -> Result<ExitCode, CommandError> {
    let terminal = terminal::TerminalState::save();
    tokio::select! {
        outcome = start(args) => outcome,
        // A signal drops the start and with it all it holds: the launch's
        // ledger tears the bottle down, the stage directory goes. The
        // terminal is put back as it was, echo and all.
        signal = signals::first() => {
            terminal.restore();
            Ok(ExitCode::from(signal.exit_code()))
        }
    }
}

async fn start(args: StartArgs) -> Result<ExitCode, CommandError> {
    if args.format == Format::Json && !args.dry_run {
        return Err(CommandError::usage(
            "--format json needs --dry-run",
            "the JSON plan is for scripts; add --dry-run, or drop --format json to start the bottle",
        ));
    }
    let settings = Settings::from_env()?;
    let (cwd, home) = super::manifest_dirs()?;
    // An agent named is one the user expects a manifest to define.
    let manifest = match args.agent.as_deref() {
        Some(name) if name != BUILTIN_AGENT => Manifest::load(&cwd, &home)?,
        _ => Manifest::load_or_builtin(&cwd, &home)?,
    };
    let agent = chosen_agent(&manifest, args.agent)?;
    let backend = backend::select(&settings.backend)?;
    let spec = BottleSpec {
        manifest: &manifest,
        agent,
        copy_cwd: match (args.cwd, args.include_untracked) {
            (false, _) => CopyCwd::No,
            (true, false) => CopyCwd::Tracked,
            (true, true) => CopyCwd::WithUntracked,
        },
        cwd,
        home,
        remote_control: args.remote_control,
        dry_run: args.dry_run,
        settings,
    };
    // The engine is asked here; a slow or hung one is seen waited on.
    let mut prepared = while_waiting(
        "asking the engine",
        prepare(backend.as_ref(), &spec, |var| std::env::var(var).ok()),
    )
    .await?;
    if args.format == Format::Json {
        println!("{}", prepared.plan.to_json());
        return Ok(ExitCode::SUCCESS);
    }
    if manifest.is_builtin() {
        eprintln!(
            "no {FILE_NAME} here or in your home: this is the built-in agent `{BUILTIN_AGENT}`, \
             with no prompt, skills or secrets, reaching only the hosts Claude Code itself needs"
        );
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
        let yes = terminal::off_thread(|| terminal::confirm("Start it?"))
            .await
            .map_err(|err| bottle::Error::caused_by("cannot read the answer", err))?;
        if !yes {
            eprintln!("aborted by user");
            return Ok(ExitCode::SUCCESS);
        }
    }
    // What dead instances left goes now, before this one adds its own.
    match sweep(backend.as_ref(), &spec.home, &spec.settings.extra_labels).await {
        Ok(0) => {}
        Ok(swept) => eprintln!("swept {swept} leftover(s) of dead instances"),
        Err(err) => eprintln!("warning: could not sweep dead instances: {}", err.to_line()),
    }
    // Secrets and key passphrases are asked here, where the terminal is;
    // the launch gets the values and the decrypted keys.
    let pending = std::mem::take(&mut prepared.env);
    let targets = prepared.ssh.targets.clone();
    let (env, ssh_keys) = terminal::off_thread(move || {
        let mut prompt = TerminalPrompt;
        let env = pending
            .complete(can_ask.then_some(&mut prompt as &mut dyn bottle::env::SecretPrompt))?;
        let keys = bottle::ssh::load_keys(
            &targets,
            can_ask.then_some(&mut prompt as &mut dyn bottle::env::SecretPrompt),
        )?;
        Ok::<_, bottle::Error>((env, keys))
    })
    .await?;
    let launch = Launch::new(
        prepared,
        &spec.settings,
        env,
        ssh_keys,
        args.claude_args,
        Arc::new(TerminalUi),
    )?;
    let code = backend.launch(launch).await?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// The agent named, or the manifest's default one; without either, the
/// agents to choose from.
fn chosen_agent(manifest: &Manifest, named: Option<String>) -> Result<String, CommandError> {
    if let Some(agent) = named {
        return Ok(agent);
    }
    if let Some(agent) = manifest.default_agent() {
        return Ok(agent.to_owned());
    }
    let agents: Vec<String> = manifest.agents.keys().map(|a| format!("`{a}`")).collect();
    if agents.is_empty() {
        return Err(CommandError::usage(
            "the manifest defines no agents",
            "add one under \"agents\", e.g. \"a\": {\"bottle\": \"dev\"}",
        ));
    }
    Err(CommandError::usage(
        format!(
            "which agent? The manifest defines {}, and none is marked \"default\": true",
            agents.join(", ")
        ),
        format!(
            "name one (`claude-bottle start {}`), or mark one \"default\": true",
            manifest.agents.keys().next().expect("not empty")
        ),
    ))
}
