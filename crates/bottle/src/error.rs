//! The one error type of the library: what went wrong, where in which
//! manifest (when that is known) and what to do about it.
//!
//! Errors are rendered for people, so every constructor takes a message in
//! plain words and callers add hints. Nothing here ever formats a value that
//! came from the user's environment or a prompt: messages name variables,
//! never their contents.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use annotate_snippets::{AnnotationKind, Level, Renderer, Snippet};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A manifest file as read from disk, kept so errors can quote it.
#[derive(Debug)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

impl Source {
    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }
}

/// Where something was written: a byte range of one manifest file.
#[derive(Debug, Clone)]
pub struct Span {
    pub source: Arc<Source>,
    pub range: Range<usize>,
}

impl Span {
    pub fn path(&self) -> &Path {
        &self.source.path
    }
}

/// What an error was caused by, kept whole so callers can ask it (an
/// engine's status code) and reports can show its own causes in turn.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug)]
pub struct Error {
    message: String,
    cause: Option<Cause>,
    at: Option<Span>,
    /// Off for errors about env values: the line would show the value.
    quote_source: bool,
    hints: Vec<String>,
    /// The engine stopped answering: whatever the call was, the one thing
    /// to do is to bring it back, so the callers' hints are not added.
    engine_lost: bool,
}

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            cause: None,
            at: None,
            quote_source: true,
            hints: Vec::new(),
            engine_lost: false,
        }
    }

    /// `message`, because of `cause`; shown as `message: cause: ...`. An
    /// engine call that timed out says how long it was given, and what to
    /// do; one whose engine went away says so, and what was left.
    pub fn caused_by(message: impl Into<String>, cause: impl Into<Cause>) -> Self {
        let cause: Cause = cause.into();
        if let Some(detail) = cause.downcast_ref().and_then(lost_engine) {
            let mut lost = Self::caused_by(
                message,
                Self::new(format!("the engine stopped answering ({detail})")),
            )
            .hint(
                "check the engine (docker info); once it answers again, \
                 `claude-bottle cleanup` removes what this bottle left",
            );
            lost.engine_lost = true;
            return lost;
        }
        if let Some(err) = cause.downcast_ref::<Self>() {
            if err.engine_lost {
                return Self {
                    engine_lost: true,
                    cause: Some(cause),
                    ..Self::new(message)
                };
            }
        }
        if matches!(
            cause.downcast_ref(),
            Some(bollard::errors::Error::RequestTimeoutError)
        ) {
            let seconds = crate::settings::engine_timeout().map_or(120, |t| t.as_secs());
            return Self::caused_by(
                message,
                Self::new(format!("the engine did not answer within {seconds} s")),
            )
            .hint(format!(
                "the engine is hung or slow: check it (docker info), or give it longer with {}",
                crate::settings::ENGINE_TIMEOUT.name
            ));
        }
        Self {
            cause: Some(cause),
            ..Self::new(message)
        }
    }

    /// Points the error at the manifest text it is about.
    #[must_use]
    pub fn at(mut self, span: &Span) -> Self {
        self.at = Some(span.clone());
        self
    }

    /// Names the location without quoting the line (the line may hold a value).
    #[must_use]
    pub fn at_unquoted(mut self, span: &Span) -> Self {
        self.at = Some(span.clone());
        self.quote_source = false;
        self
    }

    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        if !self.engine_lost || self.hints.is_empty() {
            self.hints.push(hint.into());
        }
        self
    }

    /// The error's own words, without its causes.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The message and, after it, each cause in turn (a cause that only
    /// repeats what is already said is left out).
    pub fn to_line(&self) -> String {
        let mut line = self.message.clone();
        for cause in self.causes() {
            let said = cause
                .downcast_ref::<Self>()
                .map_or_else(|| cause.to_string(), |err| err.message.clone());
            if !line.contains(&said) {
                line.push_str(": ");
                line.push_str(&said);
            }
        }
        line
    }

    fn causes(&self) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
        std::iter::successors(std::error::Error::source(self), |err| err.source())
    }

    /// The hints of this error and of every error beneath it, nearest first.
    pub fn all_hints(&self) -> Vec<&str> {
        let beneath = self
            .causes()
            .filter_map(|cause| cause.downcast_ref::<Self>())
            .flat_map(|err| err.hints.iter());
        self.hints
            .iter()
            .chain(beneath)
            .map(String::as_str)
            .collect()
    }

    /// The HTTP status the engine answered with, when the error comes from
    /// one that says.
    pub fn engine_status(&self) -> Option<u16> {
        self.causes().find_map(|cause| match cause.downcast_ref() {
            Some(bollard::errors::Error::DockerResponseServerError { status_code, .. }) => {
                Some(*status_code)
            }
            _ => None,
        })
    }

    pub fn hints(&self) -> &[String] {
        &self.hints
    }

    /// The manifest location, as `path:line:column`.
    pub fn location(&self) -> Option<String> {
        self.at.as_ref().map(|span| {
            let (line, column) = span.source.line_column(span.range.start);
            format!("{}:{line}:{column}", span.path().display())
        })
    }
}

impl fmt::Display for Error {
    /// The full diagnostic: `error:` line, location and quoted source when
    /// known, then one `help:` line per hint.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = self.to_line();
        match &self.at {
            Some(span) if self.quote_source => {
                let path = span.path().display().to_string();
                let mut group = Level::ERROR.primary_title(&line).element(
                    Snippet::source(span.source.text.as_str())
                        .path(&path)
                        .annotation(AnnotationKind::Primary.span(span.range.clone())),
                );
                for hint in self.all_hints() {
                    group = group.element(Level::HELP.message(hint));
                }
                f.write_str(&Renderer::plain().render(&[group]))
            }
            _ => {
                write!(f, "error: {line}")?;
                if let Some(location) = self.location() {
                    write!(f, "\n  --> {location}")?;
                }
                for hint in self.all_hints() {
                    write!(f, "\n  = help: {hint}")?;
                }
                Ok(())
            }
        }
    }
}

/// What a failed engine call says when the engine itself went away (its
/// socket refused, reset or closed the connection), not a refusal of the
/// request.
pub(crate) fn lost_engine(err: &bollard::errors::Error) -> Option<String> {
    use bollard::errors::Error as Engine;
    use std::io::ErrorKind;
    let transport = matches!(
        err,
        Engine::HyperLegacyError { .. } | Engine::HyperResponseError { .. }
    );
    let io = std::iter::successors(Some(err as &(dyn std::error::Error + 'static)), |e| {
        e.source()
    })
    .find_map(|e| e.downcast_ref::<std::io::Error>());
    let dropped = io.is_some_and(|io| {
        matches!(
            io.kind(),
            ErrorKind::ConnectionRefused
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe
                | ErrorKind::NotFound
                | ErrorKind::UnexpectedEof
        )
    });
    if !transport && !dropped {
        return None;
    }
    Some(io.map_or_else(|| err.to_string(), |io| io.kind().to_string()))
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|cause| cause as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_follow_the_message_and_hints_stay() {
        let io = std::io::Error::other("disk full");
        let err = Error::caused_by("cannot write the stage", io).hint("free some space");
        assert_eq!(err.message(), "cannot write the stage");
        assert_eq!(err.to_line(), "cannot write the stage: disk full");
        assert_eq!(
            err.to_string(),
            "error: cannot write the stage: disk full\n  = help: free some space"
        );
        let outer = Error::caused_by("cannot start", err).hint("or start elsewhere");
        assert_eq!(
            outer.to_string(),
            "error: cannot start: cannot write the stage: disk full\n  \
             = help: or start elsewhere\n  = help: free some space"
        );
        assert_eq!(outer.engine_status(), None);
    }

    #[test]
    fn the_engines_status_is_found_beneath_other_causes() {
        let engine = bollard::errors::Error::DockerResponseServerError {
            status_code: 409,
            message: "conflict".into(),
        };
        let err = Error::caused_by("cannot remove", Error::caused_by("the container", engine));
        assert_eq!(err.engine_status(), Some(409));
    }
}
