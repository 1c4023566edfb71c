//! The plan: what a start will create and grant, before anything exists.
//!
//! It is shown twice: as the preflight summary a person reads before the
//! y/N, and as JSON for scripts (`start --dry-run --format json`). The JSON
//! is a contract: it carries `schema_version`, keys are only ever added, and
//! it holds names, never values.

use std::fmt::Write as _;

use serde::Serialize;

use crate::settings::Limits;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "the JSON contract: each flag is a key scripts read"
)]
pub struct Plan {
    pub schema_version: u32,
    pub backend: String,
    /// The engine, its version and where it is, as chosen like the docker
    /// CLI chooses (`DOCKER_HOST`, the Docker context, the local socket).
    pub engine: String,
    pub instance: String,
    pub agent: String,
    pub bottle: String,
    pub image: String,
    /// How the default image is made, when it is the one used.
    pub default_image: Option<DefaultImagePlan>,
    /// The runtime the agent container will run under, or `unknown` when no
    /// engine answered.
    pub runtime: String,
    pub limits: Limits,
    pub container: String,
    pub networks: Vec<String>,
    /// The egress gate's image, or how it will be made.
    pub gate: String,
    pub egress: EgressPlan,
    pub ssh: Vec<SshPlan>,
    pub skills: Vec<String>,
    pub env: EnvPlan,
    pub prompt: PromptPlan,
    /// Whether `--cwd` copies the working directory's repository in.
    pub cwd: bool,
    /// The repository `--cwd` copies, when it does.
    pub cwd_repository: Option<String>,
    /// Its checked-out branch (none on a detached HEAD).
    pub cwd_branch: Option<String>,
    /// What its objects take on disk.
    pub cwd_size_bytes: Option<u64>,
    /// Whether uncommitted changes to tracked files come along.
    pub cwd_uncommitted: bool,
    /// How many untracked files come along (`--include-untracked`); none
    /// when they stay.
    pub cwd_untracked_files: Option<usize>,
    /// What those files take.
    pub cwd_untracked_bytes: Option<u64>,
    pub remote_control: bool,
    pub oauth_token_forwarded: bool,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DefaultImagePlan {
    pub base: String,
    pub claude_code_version: String,
    pub registry: String,
    /// Whether the engine already holds it; otherwise the launch builds it.
    pub built: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EgressPlan {
    /// Effective: the bottle's entries plus the built-in hosts, sorted.
    pub allowlist: Vec<String>,
    pub private: Vec<String>,
    pub builtin: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SshPlan {
    pub host: String,
    pub hostname: String,
    pub user: Option<String>,
    pub port: u16,
    /// Whether `KnownHostKey` pins the host's key.
    pub host_key_pinned: bool,
}

impl SshPlan {
    /// `gitea (git@gitea.example.com:30009, host key pinned)`.
    pub fn to_text(&self) -> String {
        let user = self
            .user
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let pinned = if self.host_key_pinned {
            "host key pinned"
        } else {
            "host key not pinned"
        };
        format!(
            "{} ({user}{}:{}, {pinned})",
            self.host, self.hostname, self.port
        )
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EnvPlan {
    /// Asked on the terminal (`?`) or copied from the host (`${VAR}`).
    pub forwarded: Vec<String>,
    pub literal: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PromptPlan {
    pub present: bool,
    pub first_line: Option<String>,
}

impl Plan {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a plan always serialises")
    }

    /// What `--cwd` copies, for the preflight.
    fn cwd_line(&self) -> String {
        match &self.cwd_repository {
            Some(repo) => {
                let branch = self
                    .cwd_branch
                    .as_deref()
                    .map_or_else(|| "a detached HEAD".to_owned(), |b| format!("branch {b}"));
                let size = self.cwd_size_bytes.unwrap_or(0) >> 20;
                let changes = if self.cwd_uncommitted {
                    "with its uncommitted changes"
                } else {
                    "no uncommitted changes"
                };
                let untracked = match (self.cwd_untracked_files, self.cwd_untracked_bytes) {
                    (Some(files), Some(bytes)) => {
                        format!(
                            "{files} untracked file(s) along, {} KiB",
                            bytes.div_ceil(1024)
                        )
                    }
                    _ => "untracked files stay".to_owned(),
                };
                format!(
                    "copies the git repository at {repo} ({branch}, {size} MiB, {changes}; \
                     {untracked}); new commits come home under claude-bottle/{}/",
                    self.instance
                )
            }
            None => "not copied (use --cwd to copy this repository in)".to_owned(),
        }
    }

    /// The preflight summary shown on stderr before the y/N.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let none = |items: &[String]| {
            if items.is_empty() {
                "(none)".to_owned()
            } else {
                items.join(", ")
            }
        };
        let mut line = |label: &str, value: &str| {
            let _ = writeln!(out, "  {label:<10} {value}");
        };
        line("agent", &self.agent);
        line("bottle", &self.bottle);
        line("instance", &self.instance);
        line("backend", &self.backend);
        line("engine", &self.engine);
        match &self.default_image {
            Some(default) => line(
                "image",
                &format!(
                    "{} (Claude Code {} on {}; {})",
                    self.image,
                    default.claude_code_version,
                    default.base,
                    if default.built {
                        "built"
                    } else {
                        "built on first use"
                    }
                ),
            ),
            None => line("image", &self.image),
        }
        line("runtime", &self.runtime);
        line(
            "limits",
            &format!(
                "{} MiB memory, {} processes, {} CPUs",
                self.limits.memory_bytes >> 20,
                self.limits.pids,
                self.limits.cpus()
            ),
        );
        line("gate", &self.gate);
        line("egress", &none(&self.egress.allowlist));
        if !self.egress.private.is_empty() {
            line("private", &self.egress.private.join(", "));
        }
        let ssh: Vec<_> = self.ssh.iter().map(SshPlan::to_text).collect();
        line("ssh", &none(&ssh));
        line("skills", &none(&self.skills));
        line("env", &none(&self.env_names()));
        let prompt = match (&self.prompt.first_line, self.prompt.present) {
            (Some(first), _) => first.clone(),
            (None, true) => "(present)".to_owned(),
            (None, false) => "(none)".to_owned(),
        };
        line("prompt", &prompt);
        line("cwd", &self.cwd_line());
        let auth = if self.remote_control {
            "--remote-control takes a subscription login, not a token: log in inside the bottle \
             with /login (the login ends with the bottle); it needs api.anthropic.com, claude.ai \
             and platform.claude.com on the allowlist (built in unless egress.builtin is false)"
        } else if self.oauth_token_forwarded {
            "CLAUDE_BOTTLE_OAUTH_TOKEN is forwarded"
        } else if self
            .env
            .forwarded
            .iter()
            .chain(&self.env.literal)
            .any(|n| n == "ANTHROPIC_API_KEY")
        {
            "ANTHROPIC_API_KEY from the manifest"
        } else {
            "none: claude will ask you to log in (tip: `claude setup-token`, then set CLAUDE_BOTTLE_OAUTH_TOKEN)"
        };
        line("auth", auth);
        out.push_str("  Everything in the bottle is gone when it exits.\n");
        for warning in &self.warnings {
            let _ = writeln!(out, "warning: {warning}");
        }
        out
    }

    /// Env names for the summary; forwarded ones marked so the user knows
    /// which come from outside the file.
    fn env_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .env
            .forwarded
            .iter()
            .map(|n| format!("{n} (forwarded)"))
            .collect();
        names.extend(self.env.literal.iter().cloned());
        names
    }
}
