//! The manifest: `claude-bottle.json` in the working directory and in
//! `$HOME`, merged.
//!
//! Loading checks everything that can be checked from the text alone, for
//! every entry, so a typo anywhere is found at once. What depends on the
//! host (skill folders, key files, `${VAR}`) is checked later, at prepare,
//! for the selected agent only: one agent's missing key file must not break
//! `info` of another.

mod json;
mod parse;
pub mod patch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use egress_gate::EgressRule;

use crate::env::EnvEntry;
use crate::error::{Error, Result, Source, Span};
pub use json::Located;

/// The JSON Schema of the manifest's shape, for editors. The loader is the
/// source of truth; a test holds the two in agreement.
pub const SCHEMA: &str = include_str!("../../../../schema/claude-bottle.schema.json");

/// The file name looked for in the working directory and in `$HOME`.
pub const FILE_NAME: &str = "claude-bottle.json";

#[derive(Debug, Clone)]
pub struct Manifest {
    pub bottles: BTreeMap<String, Bottle>,
    pub agents: BTreeMap<String, Agent>,
    /// The files that were read, home first.
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Bottle {
    pub name: String,
    /// Sorted by name.
    pub env: Vec<EnvEntry>,
    pub ssh: Vec<SshHost>,
    pub egress: Egress,
}

#[derive(Debug, Clone)]
pub struct SshHost {
    /// The alias the agent uses (`git@gitea:...`).
    pub host: String,
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    /// As written; `~` is expanded at prepare.
    pub identity_file: Located<String>,
    pub known_host_key: Option<String>,
}

impl SshHost {
    /// The name the gate dials: `Hostname`, or the alias when there is none.
    pub fn target(&self) -> &str {
        self.hostname.as_deref().unwrap_or(&self.host)
    }

    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(22)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Egress {
    pub allowlist: Vec<EgressRule>,
    pub private: Vec<EgressRule>,
    pub builtin: bool,
}

/// The hosts Claude Code itself needs; added unless `egress.builtin` is false.
pub const BUILTIN_HOSTS: &[&str] = &["api.anthropic.com", "claude.ai", "platform.claude.com"];

impl Egress {
    /// The bottle's entries plus the built-in hosts, normalised, sorted and
    /// de-duplicated.
    pub fn effective_allowlist(&self) -> Vec<String> {
        let builtin = BUILTIN_HOSTS
            .iter()
            .filter(|_| self.builtin)
            .map(|h| (*h).to_owned());
        let mut list: Vec<String> = self
            .allowlist
            .iter()
            .map(ToString::to_string)
            .chain(builtin)
            .collect();
        list.sort();
        list.dedup();
        list
    }
}

#[derive(Debug, Clone)]
pub struct Agent {
    pub name: String,
    pub bottle: Located<String>,
    pub skills: Vec<Located<String>>,
    pub prompt: Option<String>,
    /// Where `"default": true` marks it as the agent `start` runs when
    /// given no name.
    pub default: Option<Span>,
}

/// The agent and bottle `start` runs when there is no manifest at all.
pub const BUILTIN_AGENT: &str = "default";

impl Manifest {
    /// Reads `$CWD/claude-bottle.json` and `$HOME/claude-bottle.json`; the
    /// working directory's entries replace the home file's whole.
    pub fn load(cwd: &Path, home: &Path) -> Result<Self> {
        let home_path = home.join(FILE_NAME);
        let cwd_path = cwd.join(FILE_NAME);
        let mut paths = vec![home_path.clone()];
        if !same_file(&home_path, &cwd_path) {
            paths.push(cwd_path.clone());
        }
        let mut manifest = Self {
            bottles: BTreeMap::new(),
            agents: BTreeMap::new(),
            files: Vec::new(),
        };
        for path in paths {
            let Some(text) = read_if_present(&path)? else {
                continue;
            };
            let file = parse::file(&Arc::new(Source {
                path: path.clone(),
                text,
            }))?;
            manifest.bottles.extend(file.bottles);
            manifest.agents.extend(file.agents);
            manifest.files.push(path);
        }
        if manifest.files.is_empty() {
            return Err(Error::new(format!(
                "no manifest: neither {} nor {} exists",
                cwd_path.display(),
                home_path.display()
            ))
            .hint(format!(
                "`claude-bottle init` makes one; or create {} with, for example, {}; \
                 or change to the folder that has one",
                cwd_path.display(),
                r#"{"bottles": {"dev": {}}, "agents": {"a": {"bottle": "dev"}}}"#
            )));
        }
        manifest.check_agent_bottles()?;
        manifest.check_one_default()?;
        Ok(manifest)
    }

    /// [`Self::load`], or where neither file exists, the built-in manifest:
    /// one agent, [`BUILTIN_AGENT`], with no prompt, skills or secrets, in
    /// a bottle that reaches only the hosts Claude Code itself needs.
    pub fn load_or_builtin(cwd: &Path, home: &Path) -> Result<Self> {
        let exists = |dir: &Path| dir.join(FILE_NAME).exists();
        if exists(cwd) || exists(home) {
            return Self::load(cwd, home);
        }
        let source = Arc::new(Source {
            path: PathBuf::from("(built in)"),
            text: String::new(),
        });
        let at = Span {
            source,
            range: 0..0,
        };
        let bottle = Bottle {
            name: BUILTIN_AGENT.to_owned(),
            env: Vec::new(),
            ssh: Vec::new(),
            egress: Egress {
                allowlist: Vec::new(),
                private: Vec::new(),
                builtin: true,
            },
        };
        let agent = Agent {
            name: BUILTIN_AGENT.to_owned(),
            bottle: Located {
                value: BUILTIN_AGENT.to_owned(),
                at: at.clone(),
            },
            skills: Vec::new(),
            prompt: None,
            default: Some(at),
        };
        Ok(Self {
            bottles: BTreeMap::from([(BUILTIN_AGENT.to_owned(), bottle)]),
            agents: BTreeMap::from([(BUILTIN_AGENT.to_owned(), agent)]),
            files: Vec::new(),
        })
    }

    /// Whether this is the built-in manifest: no file was read.
    pub fn is_builtin(&self) -> bool {
        self.files.is_empty()
    }

    /// After the merge, at most one agent is the default.
    fn check_one_default(&self) -> Result<()> {
        let marked: Vec<&Agent> = self
            .agents
            .values()
            .filter(|a| a.default.is_some())
            .collect();
        if let [first, second, ..] = marked.as_slice() {
            return Err(Error::new(format!(
                "agents `{}` and `{}` are both marked \"default\": true",
                first.name, second.name
            ))
            .at(second.default.as_ref().expect("marked"))
            .hint("keep \"default\": true on one agent only"));
        }
        Ok(())
    }

    /// The agent marked `"default": true`, if one is.
    pub fn default_marked(&self) -> Option<&str> {
        self.agents
            .values()
            .find(|a| a.default.is_some())
            .map(|a| a.name.as_str())
    }

    /// The agent `start` runs when given no name: the one marked default,
    /// or the only one; `None` when there is no telling.
    pub fn default_agent(&self) -> Option<&str> {
        match (self.default_marked(), self.agents.len()) {
            (Some(agent), _) => Some(agent),
            (None, 1) => self.agents.keys().next().map(String::as_str),
            (None, _) => None,
        }
    }

    /// Runs after the merge: an agent in one file may use a bottle from the other.
    fn check_agent_bottles(&self) -> Result<()> {
        for agent in self.agents.values() {
            if !self.bottles.contains_key(&agent.bottle.value) {
                let defined: Vec<_> = self.bottles.keys().map(|b| format!("`{b}`")).collect();
                let hint = if defined.is_empty() {
                    "define it under \"bottles\"".to_owned()
                } else {
                    format!("the bottles defined are {}", defined.join(", "))
                };
                return Err(Error::new(format!(
                    "agent `{}` uses bottle `{}`, which is not defined",
                    agent.name, agent.bottle.value
                ))
                .at(&agent.bottle.at)
                .hint(hint));
            }
        }
        Ok(())
    }

    pub fn agent(&self, name: &str) -> Result<(&Agent, &Bottle)> {
        let agent = self.agents.get(name).ok_or_else(|| {
            let known: Vec<_> = self.agents.keys().map(|a| format!("`{a}`")).collect();
            let hint = if known.is_empty() {
                "the manifest defines no agents yet; add one under \"agents\"".to_owned()
            } else {
                format!("the agents defined are {}", known.join(", "))
            };
            Error::new(format!("no agent named `{name}`")).hint(hint)
        })?;
        let bottle = &self.bottles[&agent.bottle.value];
        Ok((agent, bottle))
    }
}

fn read_if_present(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(Error::caused_by(
            format!("cannot read {}", path.display()),
            err,
        )),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
