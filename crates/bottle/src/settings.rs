//! Every environment variable claude-bottle reads, declared once.
//!
//! The README's table is checked against [`ALL`] by a test, so a variable
//! cannot be added here without being documented there. Values are read in
//! one place, [`Settings::from_lookup`], so the rest of the program never
//! touches the process environment for its own configuration.

use std::fmt;

use crate::env::Secret;
use crate::error::{Error, Result};

/// One variable the program reads.
#[derive(Debug)]
pub struct Variable {
    pub name: &'static str,
    pub help: &'static str,
}

pub const BACKEND: Variable = Variable {
    name: "CLAUDE_BOTTLE_BACKEND",
    help: "Which backend runs bottles (default `docker`).",
};
pub const DRY_RUN: Variable = Variable {
    name: "CLAUDE_BOTTLE_DRY_RUN",
    help: "`1` makes every `start` a dry run, as `--dry-run` does.",
};
pub const OAUTH_TOKEN: Variable = Variable {
    name: "CLAUDE_BOTTLE_OAUTH_TOKEN",
    help: "A token from `claude setup-token`, given to claude in the bottle as `CLAUDE_CODE_OAUTH_TOKEN`.",
};
pub const IMAGE: Variable = Variable {
    name: "CLAUDE_BOTTLE_IMAGE",
    help: "Run this image instead of the default one (needs a non-root `USER`, `claude`, `sh`, `cat`, `tar`).",
};
pub const RUNTIME: Variable = Variable {
    name: "CLAUDE_BOTTLE_RUNTIME",
    help: "`auto` (default: gVisor when the engine has `runsc`), `runc` or `runsc`.",
};
pub const DOCKER_HOST: Variable = Variable {
    name: "DOCKER_HOST",
    help: "The Docker engine to use (default: the local socket).",
};

pub const HOME: Variable = Variable {
    name: "HOME",
    help: "Where `claude-bottle.json`, `.claude/skills/` and the stage directories are found.",
};

pub const ALL: &[&Variable] = &[
    &BACKEND,
    &DRY_RUN,
    &OAUTH_TOKEN,
    &IMAGE,
    &RUNTIME,
    &DOCKER_HOST,
    &HOME,
];

/// Which container runtime the agent runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeChoice {
    /// gVisor when the engine has it, runc otherwise.
    Auto,
    Runc,
    Runsc,
}

impl RuntimeChoice {
    pub const NAMES: &[&str] = &["auto", "runc", "runsc"];
}

impl fmt::Display for RuntimeChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Runc => "runc",
            Self::Runsc => "runsc",
        })
    }
}

/// The program's configuration from its environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub backend: String,
    pub oauth_token: Option<Secret>,
    pub image: Option<String>,
    pub runtime: RuntimeChoice,
}

impl Settings {
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`; an empty value counts as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |var: &Variable| lookup(var.name).filter(|v| !v.is_empty());
        let runtime = match get(&RUNTIME).as_deref() {
            None | Some("auto") => RuntimeChoice::Auto,
            Some("runc") => RuntimeChoice::Runc,
            Some("runsc") => RuntimeChoice::Runsc,
            Some(other) => {
                return Err(Error::new(format!(
                    "{} is `{other}`, which is not a runtime claude-bottle knows",
                    RUNTIME.name
                ))
                .hint(format!("use one of: {}", RuntimeChoice::NAMES.join(", "))));
            }
        };
        Ok(Self {
            backend: get(&BACKEND).unwrap_or_else(|| "docker".to_owned()),
            oauth_token: get(&OAUTH_TOKEN).map(Secret::new),
            image: get(&IMAGE),
            runtime,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let settings = Settings::from_lookup(|_| None).unwrap();
        assert_eq!(settings.backend, "docker");
        assert_eq!(settings.runtime, RuntimeChoice::Auto);
        assert!(settings.oauth_token.is_none() && settings.image.is_none());
    }

    #[test]
    fn an_unknown_runtime_lists_the_known_ones() {
        let err =
            Settings::from_lookup(|n| (n == RUNTIME.name).then(|| "kata".into())).unwrap_err();
        assert_eq!(err.hints(), ["use one of: auto, runc, runsc"]);
    }
}
