//! `doctor`'s findings: what would stop a `start`, found before one is tried.
//!
//! Each check says what it found and, when that needs acting on, the fix,
//! in the same words a failing `start` would use: the checks call the very
//! functions `prepare` does, so `doctor` cannot pass where `start` fails
//! on the same host for the same reason.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::env::{EnvSpec, PendingEnv};
use crate::error::Error;
use crate::manifest::{BUILTIN_AGENT, Bottle, FILE_NAME, Manifest};
use crate::prepare::{check_identity_files, check_skills};
use crate::settings::OAUTH_TOKEN;
use crate::ssh::SshSetup;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    /// Not checked: what it needs failed first, or it cannot be seen from here.
    Skipped,
    /// `start` works, but not as well as it could.
    Warn,
    /// `start` cannot work until this is fixed.
    Fail,
}

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// What was checked: `engine`, `gvisor`, `limits`, `image`, `disk`, `settings`,
    /// `manifests`, `skills`, `ssh-keys`, `environment`, `credential`,
    /// `terminal`.
    pub check: &'static str,
    pub verdict: Verdict,
    pub summary: String,
    /// What to do, when the verdict asks for something.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// The facts found, for scripts (`--format json`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub facts: BTreeMap<&'static str, serde_json::Value>,
}

impl Finding {
    pub fn new(check: &'static str, verdict: Verdict, summary: impl Into<String>) -> Self {
        Self {
            check,
            verdict,
            summary: summary.into(),
            fix: None,
            facts: BTreeMap::new(),
        }
    }

    pub fn ok(check: &'static str, summary: impl Into<String>) -> Self {
        Self::new(check, Verdict::Ok, summary)
    }

    /// A failure told as `err` tells it: its message, its location in the
    /// manifest and its hints as the fix.
    pub fn failed(check: &'static str, err: &Error) -> Self {
        let summary = match err.location() {
            Some(location) => format!("{location}: {}", err.to_line()),
            None => err.to_line(),
        };
        let hints = err.all_hints();
        let finding = Self::new(check, Verdict::Fail, summary);
        if hints.is_empty() {
            finding
        } else {
            finding.fix(hints.join("; "))
        }
    }

    #[must_use]
    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    #[must_use]
    pub fn fact(mut self, name: &'static str, value: impl Into<serde_json::Value>) -> Self {
        self.facts.insert(name, value.into());
        self
    }
}

/// Whether `start` can work, after these findings.
pub fn start_can_work(findings: &[Finding]) -> bool {
    findings.iter().all(|f| f.verdict != Verdict::Fail)
}

/// The checks of this host: the manifests, what their agents need from it,
/// and a credential. `lookup` reads the environment.
/// `has_token` says whether `CLAUDE_BOTTLE_OAUTH_TOKEN` is set.
pub fn host_findings(
    cwd: &Path,
    home: &Path,
    has_token: bool,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Vec<Finding> {
    let manifest = match Manifest::load_or_builtin(cwd, home) {
        Ok(manifest) => manifest,
        Err(err) => {
            return vec![
                Finding::failed("manifests", &err),
                credential(has_token, None, lookup),
            ];
        }
    };
    let mut findings = vec![manifests(&manifest)];
    findings.extend(agent_needs(&manifest, home, lookup));
    findings.push(credential(has_token, Some(&manifest), lookup));
    findings
}

fn manifests(manifest: &Manifest) -> Finding {
    if manifest.is_builtin() {
        return Finding::ok(
            "manifests",
            format!(
                "no {FILE_NAME} here or in your home: `start` runs the built-in agent \
                 `{BUILTIN_AGENT}`, which reaches only the hosts Claude Code needs \
                 (`claude-bottle init` writes a manifest with an agent of your own)"
            ),
        );
    }
    let files: Vec<String> = manifest
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    let agents: Vec<&str> = manifest.agents.keys().map(String::as_str).collect();
    Finding::ok(
        "manifests",
        format!(
            "{} valid, with {} agent(s): {}",
            files.join(" and "),
            agents.len(),
            agents.join(", ")
        ),
    )
    .fact("files", files)
    .fact("agents", agents)
}

/// Each agent's skills, SSH keys and host variables, as `prepare` checks
/// them; every agent's problems, not only the first agent's.
fn agent_needs(
    manifest: &Manifest,
    home: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Vec<Finding> {
    let mut skills = Vec::new();
    let mut keys = Vec::new();
    let mut variables = Vec::new();
    let (mut skill_count, mut key_count) = (0, 0);
    for name in manifest.agents.keys() {
        let Ok((agent, bottle)) = manifest.agent(name) else {
            continue;
        };
        skill_count += agent.skills.len();
        key_count += bottle.ssh.len();
        if let Err(err) = check_skills(home, agent) {
            skills.push(Finding::failed("skills", &err));
        }
        if let Err(err) =
            check_identity_files(home, bottle).and_then(|()| SshSetup::resolve(&bottle.ssh, home))
        {
            keys.push(Finding::failed("ssh-keys", &err).fact("agent", name.as_str()));
        }
        if let Err(err) = PendingEnv::prepare(&bottle.env, lookup) {
            variables.push(Finding::failed("environment", &err).fact("agent", name.as_str()));
        }
    }
    let all_found = |check, count, what: &str, problems: Vec<Finding>| {
        if problems.is_empty() {
            vec![Finding::ok(check, format!("{count} {what} found")).fact("count", count)]
        } else {
            problems
        }
    };
    let mut findings = all_found("skills", skill_count, "skill(s)", skills);
    findings.extend(all_found("ssh-keys", key_count, "SSH key(s)", keys));
    // Only problems: a bottle needs no variables of the host.
    findings.extend(variables);
    findings
}

/// What claude logs in with: the token, or an API key a bottle forwards.
fn credential(
    has_token: bool,
    manifest: Option<&Manifest>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Finding {
    if has_token {
        return Finding::ok(
            "credential",
            format!(
                "{} is set: claude in the bottle is logged in with it",
                OAUTH_TOKEN.name
            ),
        )
        .fact("source", OAUTH_TOKEN.name);
    }
    // A key asked for at the start, or copied from a variable that is set.
    let gives_key = |bottle: &Bottle| {
        bottle.env.iter().any(|entry| {
            entry.name == "ANTHROPIC_API_KEY"
                && match &entry.spec {
                    EnvSpec::Host { var } => lookup(var).is_some(),
                    EnvSpec::Literal(_) | EnvSpec::Prompt { .. } => true,
                }
        })
    };
    let with_key: Vec<&str> = manifest
        .into_iter()
        .flat_map(|m| {
            m.agents
                .keys()
                .filter(|name| m.agent(name).is_ok_and(|(_, bottle)| gives_key(bottle)))
        })
        .map(String::as_str)
        .collect();
    if !with_key.is_empty() {
        return Finding::ok(
            "credential",
            format!(
                "ANTHROPIC_API_KEY goes into the bottles of {}",
                with_key.join(", ")
            ),
        )
        .fact("source", "ANTHROPIC_API_KEY");
    }
    Finding::new(
        "credential",
        Verdict::Warn,
        format!(
            "no credential: {} is not set and no bottle forwards ANTHROPIC_API_KEY, so claude \
             asks you to log in inside every bottle, and headless runs (-p) fail",
            OAUTH_TOKEN.name
        ),
    )
    .fix(format!(
        "run `claude setup-token` where Claude Code is installed, then export {}=<the token> \
         in your shell's profile",
        OAUTH_TOKEN.name
    ))
}
