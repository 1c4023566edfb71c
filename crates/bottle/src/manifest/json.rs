//! Typed reads from a JSON syntax tree, each failure pointing at the text.
//!
//! The manifest is read from `jsonc-parser`'s tree rather than through
//! serde so that every value keeps its byte range: checks that happen long
//! after parsing (an agent naming a missing bottle, a key file that is not
//! there) can still show the file, line and column they are about.

use std::sync::Arc;

use jsonc_parser::ast::{Object, Value};
use jsonc_parser::common::Ranged;

use crate::error::{Error, Result, Source, Span};

/// A value together with where it was written.
#[derive(Debug, Clone)]
pub struct Located<T> {
    pub value: T,
    pub at: Span,
}

pub(super) struct Reader {
    pub(super) source: Arc<Source>,
}

impl Reader {
    pub(super) fn span(&self, ranged: &impl Ranged) -> Span {
        let range = ranged.range();
        Span {
            source: self.source.clone(),
            range: range.start..range.end,
        }
    }

    fn wrong_type(&self, value: &Value<'_>, path: &str, expected: &str) -> Error {
        let example = match expected {
            "an object" => "{ ... }",
            "a string" => "\"...\"",
            "a list of strings" => "[\"...\", \"...\"]",
            "a list" => "[ ... ]",
            "a port number" => "22",
            _ => "true",
        };
        Error::new(format!(
            "`{path}` must be {expected}, not {}",
            describe(value)
        ))
        .at(&self.span(value))
        .hint(format!("write {expected} here, like {example}"))
    }

    /// The entries of an object used as a map (names chosen by the user).
    pub(super) fn entries<'v, 'a>(
        &self,
        value: &'v Value<'a>,
        path: &str,
    ) -> Result<Vec<(Located<String>, &'v Value<'a>)>> {
        let Value::Object(object) = value else {
            return Err(self.wrong_type(value, path, "an object"));
        };
        let mut seen: Vec<&str> = Vec::new();
        let mut entries = Vec::new();
        for prop in &object.properties {
            let name = prop.name.as_str();
            let at = self.span(&prop.name);
            if seen.contains(&name) {
                return Err(Error::new(format!("`{name}` appears twice in `{path}`"))
                    .at(&at)
                    .hint("keep one of the two"));
            }
            seen.push(name);
            entries.push((
                Located {
                    value: name.to_owned(),
                    at,
                },
                &prop.value,
            ));
        }
        Ok(entries)
    }

    /// An object with a fixed set of keys; anything else is an error.
    pub(super) fn record<'v, 'a>(
        &self,
        value: &'v Value<'a>,
        path: &str,
        keys: &[&str],
    ) -> Result<Record<'v, 'a>> {
        let Value::Object(object) = value else {
            return Err(self.wrong_type(value, path, "an object"));
        };
        for (name, _) in self.entries(value, path)? {
            if !keys.contains(&name.value.as_str()) {
                let known: Vec<_> = keys.iter().map(|k| format!("`{k}`")).collect();
                return Err(
                    Error::new(format!("unknown key `{}` in `{path}`", name.value))
                        .at(&name.at)
                        .hint(format!(
                            "the keys of `{path}` are {}; check the spelling or remove it",
                            known.join(", ")
                        )),
                );
            }
        }
        Ok(Record { object })
    }

    pub(super) fn string(&self, value: &Value<'_>, path: &str) -> Result<Located<String>> {
        match value {
            Value::StringLit(s) => Ok(Located {
                value: s.value.to_string(),
                at: self.span(value),
            }),
            _ => Err(self.wrong_type(value, path, "a string")),
        }
    }

    pub(super) fn strings(&self, value: &Value<'_>, path: &str) -> Result<Vec<Located<String>>> {
        let Value::Array(array) = value else {
            return Err(self.wrong_type(value, path, "a list of strings"));
        };
        array
            .elements
            .iter()
            .enumerate()
            .map(|(i, element)| self.string(element, &format!("{path}[{i}]")))
            .collect()
    }

    pub(super) fn boolean(&self, value: &Value<'_>, path: &str) -> Result<bool> {
        match value {
            Value::BooleanLit(b) => Ok(b.value),
            _ => Err(self.wrong_type(value, path, "true or false")),
        }
    }

    /// A port: a whole number from 1 to 65535, as a number or a string.
    pub(super) fn port(&self, value: &Value<'_>, path: &str) -> Result<u16> {
        let text = match value {
            Value::NumberLit(n) => n.value,
            Value::StringLit(s) => s.value.as_ref(),
            _ => return Err(self.wrong_type(value, path, "a port number")),
        };
        match text.parse::<u16>() {
            Ok(port) if port != 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(port),
            _ => Err(
                Error::new(format!("`{path}` must be a port from 1 to 65535"))
                    .at(&self.span(value))
                    .hint("write a whole number such as 22 or 30009"),
            ),
        }
    }

    pub(super) fn list<'v, 'a>(&self, value: &'v Value<'a>, path: &str) -> Result<&'v [Value<'a>]> {
        match value {
            Value::Array(array) => Ok(&array.elements),
            _ => Err(self.wrong_type(value, path, "a list")),
        }
    }
}

/// An object whose keys were checked against the allowed set.
pub(super) struct Record<'v, 'a> {
    object: &'v Object<'a>,
}

impl<'v, 'a> Record<'v, 'a> {
    pub(super) fn get(&self, key: &str) -> Option<&'v Value<'a>> {
        self.object.get(key).map(|prop| &prop.value)
    }

    /// A key that must be present; its absence points at the whole object.
    pub(super) fn require(&self, reader: &Reader, key: &str, path: &str) -> Result<&'v Value<'a>> {
        self.get(key).ok_or_else(|| {
            Error::new(format!("`{path}` has no `{key}`"))
                .at(&reader.span(self.object))
                .hint(format!("add \"{key}\": ... to it"))
        })
    }
}

fn describe(value: &Value<'_>) -> &'static str {
    match value {
        Value::StringLit(_) => "a string",
        Value::NumberLit(_) => "a number",
        Value::BooleanLit(_) => "true/false",
        Value::Object(_) => "an object",
        Value::Array(_) => "a list",
        Value::NullKeyword(_) => "null",
    }
}
