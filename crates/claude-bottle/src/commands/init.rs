//! `init`: a manifest created, or an agent (and its bottle) added to one,
//! from flags or from answers on the terminal, without touching what the
//! file already holds.

use std::process::ExitCode;

use bottle::Error;
use bottle::manifest::patch::ManifestText;
use bottle::manifest::{FILE_NAME, Manifest, SCHEMA};
use serde_json::{Value, json};

use crate::cli::InitArgs;
use crate::error::CommandError;
use crate::terminal;

/// The schema's file name beside a new manifest.
const SCHEMA_FILE: &str = "claude-bottle.schema.json";

pub(crate) fn run(mut args: InitArgs) -> Result<ExitCode, CommandError> {
    let (cwd, home) = super::manifest_dirs()?;
    if args.agent.is_none() {
        if !terminal::can_ask() {
            return Err(CommandError::usage(
                "there is no terminal to ask what to add",
                "name the agent: `claude-bottle init --agent NAME` (see --help for the rest)",
            ));
        }
        ask(&mut args)?;
    }
    let agent = args.agent.clone().unwrap_or_default();
    let bottle = args.bottle.clone().unwrap_or_else(|| "dev".to_owned());
    let path = if args.home { &home } else { &cwd }.join(FILE_NAME);
    let mut file = ManifestText::read_or_new(&path)?;
    if !file.exists {
        // A new file names the schema, written beside it, for editors.
        file.text = format!(
            "{{\n  \"$schema\": \"./{SCHEMA_FILE}\",\n  \"bottles\": {{}},\n  \"agents\": {{}}\n}}\n"
        );
    }
    file.check()?;
    if file.has(&["agents", &agent]) {
        return Err(Error::new(format!(
            "{} already has an agent named `{agent}`",
            path.display()
        ))
        .hint(format!(
            "choose another name; `claude-bottle edit {agent}` changes its prompt"
        ))
        .into());
    }
    let merged = Manifest::load(&cwd, &home).ok();
    if let Some(other) = merged
        .as_ref()
        .and_then(Manifest::default_marked)
        .filter(|_| args.default)
    {
        return Err(Error::new(format!(
            "agent `{other}` is marked \"default\": true already, and only one may be"
        ))
        .hint("leave out --default, or remove \"default\" from that agent first")
        .into());
    }
    for key in ["bottles", "agents"] {
        if !file.has(&[key]) {
            file.set(&[], key, &json!({}))?;
        }
    }
    // A bottle either file defines is used as it is.
    let known =
        merged.is_some_and(|m| m.bottles.contains_key(&bottle)) || file.has(&["bottles", &bottle]);
    if known && !args.allow.is_empty() {
        return Err(Error::new(format!(
            "bottle `{bottle}` exists already, and init adds hosts only to a new bottle"
        ))
        .hint(format!(
            "add them to bottles.{bottle}.egress.allowlist in the manifest, or give --bottle a new name"
        ))
        .into());
    }
    if !known {
        let entry = if args.allow.is_empty() {
            json!({})
        } else {
            json!({ "egress": { "allowlist": args.allow } })
        };
        file.set(&["bottles"], &bottle, &entry)?;
    }
    file.set(&["agents"], &agent, &agent_entry(&args, &bottle))?;
    file.check()?;
    let schema = path.with_file_name(SCHEMA_FILE);
    if !file.exists && !schema.exists() {
        std::fs::write(&schema, SCHEMA)
            .map_err(|err| Error::caused_by(format!("cannot write {}", schema.display()), err))?;
        eprintln!(
            "wrote {}, which the manifest names for editors",
            schema.display()
        );
    }
    file.write()?;
    let made = if file.exists { "added to" } else { "created" };
    eprintln!(
        "{made} {}: agent `{agent}` in bottle `{bottle}`{}",
        path.display(),
        if known { "" } else { " (new)" }
    );
    eprintln!("start it with `claude-bottle start {agent}`");
    Ok(ExitCode::SUCCESS)
}

fn agent_entry(args: &InitArgs, bottle: &str) -> Value {
    let mut entry = json!({ "bottle": bottle });
    if !args.skills.is_empty() {
        entry["skills"] = json!(args.skills);
    }
    if let Some(prompt) = args.prompt.as_deref().filter(|p| !p.is_empty()) {
        entry["prompt"] = json!(prompt);
    }
    if args.default {
        entry["default"] = json!(true);
    }
    entry
}

/// The answers to what the flags did not say.
fn ask(args: &mut InitArgs) -> Result<(), CommandError> {
    let line = |question: &str, default: &str| -> Result<String, CommandError> {
        let answer = terminal::ask_line(question)
            .map_err(|err| Error::caused_by("cannot read the answer", err))?
            .ok_or_else(|| Error::new("the terminal's input ended; nothing was written"))?;
        Ok(if answer.is_empty() {
            default.to_owned()
        } else {
            answer
        })
    };
    args.agent = Some(line("Agent name [claude]:", "claude")?);
    if args.bottle.is_none() {
        args.bottle = Some(line("Bottle [dev]:", "dev")?);
    }
    if args.allow.is_empty() {
        let hosts = line(
            "Hosts it may reach besides Claude Code's own (space-separated, empty for none):",
            "",
        )?;
        args.allow = hosts.split_whitespace().map(str::to_owned).collect();
    }
    if args.prompt.is_none() {
        args.prompt = Some(line("Its prompt, one line (empty for none):", "")?);
    }
    Ok(())
}
