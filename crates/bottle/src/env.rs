//! A bottle's environment: the three ways a manifest can give a value, and
//! their resolution in two steps.
//!
//! `${VAR}` copies are read at prepare, so a missing variable stops the
//! launch before anything is asked or created. `?` secrets are asked only
//! after the user said yes, never in a dry run. Values live in [`Secret`],
//! which refuses to print itself; plans and errors carry names only.

use std::fmt;

use crate::error::{Error, Result, Span};

/// What claude reads its OAuth token from; the tool sets it from
/// `CLAUDE_BOTTLE_OAUTH_TOKEN`.
pub const CLAUDE_OAUTH_TOKEN: &str = "CLAUDE_CODE_OAUTH_TOKEN";

/// Names the tool sets in the bottle itself; a manifest may not set them.
pub const RESERVED_NAMES: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    CLAUDE_OAUTH_TOKEN,
];

/// How a manifest gives one variable's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvSpec {
    /// `"?"` or `"?question"`: asked on the terminal after the y/N.
    Prompt { question: Option<String> },
    /// `"${VAR}"`, exactly: copied from the host environment.
    Host { var: String },
    /// Anything else, given to the bottle as written.
    Literal(String),
}

impl EnvSpec {
    pub fn parse(value: &str) -> Self {
        if let Some(question) = value.strip_prefix('?') {
            let question = question.trim();
            return Self::Prompt {
                question: (!question.is_empty()).then(|| question.to_owned()),
            };
        }
        match value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
            Some(var) if is_valid_name(var) => Self::Host {
                var: var.to_owned(),
            },
            _ => Self::Literal(value.to_owned()),
        }
    }

    /// Forwarded values come from the user (prompt or host), not the file.
    pub fn is_forwarded(&self) -> bool {
        !matches!(self, Self::Literal(_))
    }
}

/// A POSIX-portable variable name: a letter or `_`, then letters, digits, `_`.
pub fn is_valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A value that must not be shown: it prints as `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that hands it to the bottle.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Asks the user for secret values (echo off on a terminal; scripted in tests).
pub trait SecretPrompt {
    fn ask(&mut self, name: &str, question: Option<&str>) -> std::io::Result<Secret>;
}

/// One variable of a bottle, as the manifest wrote it.
#[derive(Debug, Clone)]
pub struct EnvEntry {
    pub name: String,
    pub spec: EnvSpec,
    pub at: Span,
}

/// The environment after prepare: host copies read, secrets still to ask.
#[derive(Debug, Default)]
pub struct PendingEnv {
    values: Vec<(String, Secret)>,
    to_ask: Vec<(String, Option<String>)>,
}

impl PendingEnv {
    /// Reads every `${VAR}` from `lookup`; the first one unset is an error
    /// naming it.
    pub fn prepare<'a>(
        entries: impl IntoIterator<Item = &'a EnvEntry>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let mut pending = Self::default();
        for entry in entries {
            match &entry.spec {
                EnvSpec::Literal(value) => {
                    pending
                        .values
                        .push((entry.name.clone(), Secret::new(value.clone())));
                }
                EnvSpec::Host { var } => {
                    let value = lookup(var).ok_or_else(|| {
                        Error::new(format!(
                            "`{}` is copied from the host variable `{var}`, which is not set",
                            entry.name
                        ))
                        .at(&entry.at)
                        .hint(format!(
                            "set `{var}` in the environment that runs claude-bottle"
                        ))
                    })?;
                    pending
                        .values
                        .push((entry.name.clone(), Secret::new(value)));
                }
                EnvSpec::Prompt { question } => {
                    pending.to_ask.push((entry.name.clone(), question.clone()));
                }
            }
        }
        Ok(pending)
    }

    /// The names that will be asked for after the y/N.
    pub fn names_to_ask(&self) -> impl Iterator<Item = &str> {
        self.to_ask.iter().map(|(name, _)| name.as_str())
    }

    /// Asks the remaining secrets. `None` means no terminal: an error naming
    /// every variable that would have been asked.
    pub fn complete(self, prompt: Option<&mut dyn SecretPrompt>) -> Result<ResolvedEnv> {
        let mut values = self.values;
        if self.to_ask.is_empty() {
            return Ok(ResolvedEnv { values });
        }
        let Some(prompt) = prompt else {
            let names: Vec<_> = self.to_ask.iter().map(|(n, _)| format!("`{n}`")).collect();
            return Err(Error::new(format!(
                "{} must be typed on a terminal, and there is none",
                names.join(", ")
            ))
            .hint("run from a terminal, or give the value as \"${VAR}\" in the manifest and set VAR in the host environment"));
        };
        for (name, question) in self.to_ask {
            let secret = prompt.ask(&name, question.as_deref()).map_err(|err| {
                Error::caused_by(format!("could not read `{name}` from the terminal"), err)
            })?;
            values.push((name, secret));
        }
        Ok(ResolvedEnv { values })
    }
}

/// Every variable with its value, ready for the exec environment.
#[derive(Debug)]
pub struct ResolvedEnv {
    values: Vec<(String, Secret)>,
}

impl ResolvedEnv {
    /// Adds a variable the tool itself sets (the manifest cannot: reserved).
    pub fn set(&mut self, name: &str, value: Secret) {
        self.values.retain(|(n, _)| n != name);
        self.values.push((name.to_owned(), value));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Secret)> {
        self.values
            .iter()
            .map(|(name, value)| (name.as_str(), value))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Arc;

    use super::*;
    use crate::error::Source;

    fn entry(name: &str, value: &str) -> EnvEntry {
        let source = Arc::new(Source {
            path: "claude-bottle.json".into(),
            text: String::new(),
        });
        EnvEntry {
            name: name.into(),
            spec: EnvSpec::parse(value),
            at: Span {
                source,
                range: 0..0,
            },
        }
    }

    struct Scripted(VecDeque<&'static str>, Vec<(String, Option<String>)>);

    impl SecretPrompt for Scripted {
        fn ask(&mut self, name: &str, question: Option<&str>) -> std::io::Result<Secret> {
            self.1.push((name.into(), question.map(Into::into)));
            Ok(Secret::new(self.0.pop_front().expect("a scripted answer")))
        }
    }

    #[test]
    fn each_form_parses() {
        assert_eq!(EnvSpec::parse("?"), EnvSpec::Prompt { question: None });
        assert_eq!(
            EnvSpec::parse("?paste your token"),
            EnvSpec::Prompt {
                question: Some("paste your token".into())
            }
        );
        assert_eq!(
            EnvSpec::parse("${GH_PAT}"),
            EnvSpec::Host {
                var: "GH_PAT".into()
            }
        );
        for literal in ["Ada", "${GH_PAT", "x${GH_PAT}", "${1BAD}", "${}", ""] {
            assert_eq!(EnvSpec::parse(literal), EnvSpec::Literal(literal.into()));
        }
    }

    #[test]
    fn names_follow_posix() {
        assert!(is_valid_name("GIT_AUTHOR_NAME"));
        assert!(is_valid_name("_x1"));
        for bad in ["", "1A", "A-B", "A B", "É"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn host_copies_are_read_at_prepare_and_prompts_asked_later() {
        let entries = [
            entry("TOKEN", "${HOST_TOKEN}"),
            entry("NAME", "Ada"),
            entry("PASS", "?your password"),
        ];
        let pending = PendingEnv::prepare(&entries, |var| {
            (var == "HOST_TOKEN").then(|| "from-host".to_owned())
        })
        .unwrap();
        assert_eq!(pending.names_to_ask().collect::<Vec<_>>(), ["PASS"]);
        let mut prompt = Scripted(VecDeque::from(["typed"]), Vec::new());
        let resolved = pending.complete(Some(&mut prompt)).unwrap();
        assert_eq!(prompt.1, [("PASS".into(), Some("your password".into()))]);
        let values: Vec<_> = resolved.iter().map(|(n, v)| (n, v.expose())).collect();
        assert_eq!(
            values,
            [("TOKEN", "from-host"), ("NAME", "Ada"), ("PASS", "typed")]
        );
    }

    #[test]
    fn an_unset_host_variable_is_named_and_its_value_never_shown() {
        let entries = [entry("TOKEN", "${HOST_TOKEN}")];
        let err = PendingEnv::prepare(&entries, |_| None).unwrap_err();
        assert!(err.message().contains("`HOST_TOKEN`"), "{err}");
    }

    #[test]
    fn without_a_terminal_the_secrets_are_named() {
        let entries = [entry("A", "?"), entry("B", "?b")];
        let pending = PendingEnv::prepare(&entries, |_| None).unwrap();
        let err = pending.complete(None).unwrap_err();
        assert_eq!(
            err.message(),
            "`A`, `B` must be typed on a terminal, and there is none"
        );
    }

    #[test]
    fn secrets_do_not_debug_print() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "[redacted]");
    }
}
