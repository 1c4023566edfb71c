//! `info AGENT`: what an agent gets, from the manifest alone.
//!
//! Nothing here looks at the host (skills, key files, host variables) or
//! asks for a secret, so `info` works for one agent even while another's
//! key file is missing.

use std::fmt::Write as _;
use std::process::ExitCode;

use bottle::manifest::Manifest;
use bottle::prepare::env_plan;

use crate::error::CommandError;

pub(crate) fn run(agent_name: &str) -> Result<ExitCode, CommandError> {
    let (cwd, home) = super::manifest_dirs()?;
    let manifest = Manifest::load(&cwd, &home)?;
    let (agent, bottle) = manifest.agent(agent_name)?;
    let list = |items: Vec<String>| {
        if items.is_empty() {
            "(none)".to_owned()
        } else {
            items.join(", ")
        }
    };
    let env = env_plan(bottle);
    let mut out = String::new();
    let _ = writeln!(out, "agent      {}", agent.name);
    let _ = writeln!(out, "bottle     {}", bottle.name);
    let _ = writeln!(
        out,
        "skills     {}",
        list(agent.skills.iter().map(|s| s.value.clone()).collect())
    );
    let _ = writeln!(out, "env        forwarded: {}", list(env.forwarded));
    let _ = writeln!(out, "           literal: {}", list(env.literal));
    let ssh = bottle::prepare::ssh_plan(bottle)
        .iter()
        .map(bottle::plan::SshPlan::to_text)
        .collect();
    let _ = writeln!(out, "ssh        {}", list(ssh));
    let _ = writeln!(
        out,
        "egress     {}",
        list(bottle.egress.effective_allowlist())
    );
    let private = bottle
        .egress
        .private
        .iter()
        .map(ToString::to_string)
        .collect();
    let _ = writeln!(out, "private    {}", list(private));
    let files: Vec<_> = manifest
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    let _ = writeln!(out, "manifest   {}", files.join(", "));
    match agent.prompt.as_deref() {
        Some(prompt) if !prompt.trim().is_empty() => {
            let _ = writeln!(out, "prompt");
            for line in prompt.lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
        _ => {
            let _ = writeln!(out, "prompt     (none)");
        }
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}
