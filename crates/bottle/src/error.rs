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

#[derive(Debug)]
pub struct Error {
    message: String,
    at: Option<Span>,
    /// Off for errors about env values: the line would show the value.
    quote_source: bool,
    hints: Vec<String>,
}

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            at: None,
            quote_source: true,
            hints: Vec::new(),
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
        self.hints.push(hint.into());
        self
    }

    pub fn message(&self) -> &str {
        &self.message
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
        match &self.at {
            Some(span) if self.quote_source => {
                let path = span.path().display().to_string();
                let mut group = Level::ERROR.primary_title(&self.message).element(
                    Snippet::source(span.source.text.as_str())
                        .path(&path)
                        .annotation(AnnotationKind::Primary.span(span.range.clone())),
                );
                for hint in &self.hints {
                    group = group.element(Level::HELP.message(hint));
                }
                f.write_str(&Renderer::plain().render(&[group]))
            }
            _ => {
                write!(f, "error: {}", self.message)?;
                if let Some(location) = self.location() {
                    write!(f, "\n  --> {location}")?;
                }
                for hint in &self.hints {
                    write!(f, "\n  = help: {hint}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Error {}
