//! A manifest's text changed in place: one member added to an object, or
//! one value replaced, and every other byte left as the user wrote it
//! (order, spacing, comments of layout), so `init` and `edit` never
//! reformat a file. Each change re-parses the text; the result is checked
//! by the loader before it is written, and written atomically.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jsonc_parser::ast::{Object, Value};
use jsonc_parser::common::Ranged;
use jsonc_parser::{CollectOptions, ParseOptions};

use crate::error::{Error, Result, Source};

/// The text a new manifest starts from.
const EMPTY: &str = "{\n  \"bottles\": {},\n  \"agents\": {}\n}\n";

#[derive(Debug, Clone)]
pub struct ManifestText {
    pub path: PathBuf,
    pub text: String,
    /// Whether the file exists yet.
    pub exists: bool,
}

impl ManifestText {
    /// The file at `path`, or the text of a new, empty one.
    pub fn read_or_new(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Self {
                path: path.to_owned(),
                text,
                exists: true,
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Self {
                path: path.to_owned(),
                text: EMPTY.to_owned(),
                exists: false,
            }),
            Err(err) => Err(Error::caused_by(
                format!("cannot read {}", path.display()),
                err,
            )),
        }
    }

    /// Whether the object at `path` (keys from the top) exists.
    pub fn has(&self, path: &[&str]) -> bool {
        self.locate(path, |_| ()).is_ok()
    }

    /// Sets `key` in the object at `path` to `value`: its value replaced
    /// where it is there, else a member added after the object's last.
    pub fn set(&mut self, path: &[&str], key: &str, value: &serde_json::Value) -> Result<()> {
        let text = self.text.clone();
        let (at, insert) = self.locate(path, |object| edit_for(&text, object, key, value))?;
        self.text.replace_range(at, &insert);
        Ok(())
    }

    /// The loader's checks of this one file, as it would be written.
    pub fn check(&self) -> Result<()> {
        super::parse::file(&Arc::new(Source {
            path: self.path.clone(),
            text: self.text.clone(),
        }))
        .map(|_| ())
    }

    /// Writes the text beside the file and renames it over it, so a reader
    /// sees the old file or the new one, never half of one.
    pub fn write(&self) -> Result<()> {
        let failed = |err: std::io::Error| {
            Error::caused_by(format!("cannot write {}", self.path.display()), err)
        };
        // A link (a dotfiles checkout) keeps pointing at the file it names.
        let target = std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        let dir = target.parent().unwrap_or(Path::new("."));
        let mut file = tempfile::Builder::new()
            .prefix(".claude-bottle.json.")
            .tempfile_in(dir)
            .map_err(failed)?;
        file.write_all(self.text.as_bytes()).map_err(failed)?;
        if let Ok(meta) = std::fs::metadata(&target) {
            file.as_file()
                .set_permissions(meta.permissions())
                .map_err(failed)?;
        }
        file.as_file().sync_all().map_err(failed)?;
        file.persist(&target).map_err(|err| failed(err.error))?;
        Ok(())
    }

    /// Runs `with` on the object at `path`.
    fn locate<T>(&self, path: &[&str], with: impl FnOnce(&Object<'_>) -> T) -> Result<T> {
        let parsed = jsonc_parser::parse_to_ast(
            &self.text,
            &CollectOptions::default(),
            &ParseOptions::default(),
        )
        .map_err(|err| {
            Error::new(format!(
                "{} is not valid JSON: {}",
                self.path.display(),
                err.kind()
            ))
        })?;
        let mut value = parsed.value.as_ref();
        for key in path {
            value = match value {
                Some(Value::Object(object)) => object.get(key).map(|p| &p.value),
                _ => None,
            };
        }
        match value {
            Some(Value::Object(object)) => Ok(with(object)),
            _ => Err(Error::new(format!(
                "{} has no object at `{}`",
                self.path.display(),
                path.join(".")
            ))),
        }
    }
}

/// The byte range to replace and what goes there.
fn edit_for(
    text: &str,
    object: &Object<'_>,
    key: &str,
    value: &serde_json::Value,
) -> (std::ops::Range<usize>, String) {
    let open = object.range().start;
    let close = object.range().end - 1;
    let props = &object.properties;
    let step = indent_step(text);
    // The indentation members have here, from the text between them.
    let (separator, indent) = match props.as_slice() {
        [] => {
            let base = line_indent(text, open);
            let inner = format!("{base}{step}");
            if text.contains('\n') {
                (format!("\n{inner}"), Some(inner))
            } else {
                (String::new(), None)
            }
        }
        [only] => {
            let gap = &text[open + 1..only.range().start];
            let separator = if gap.contains('\n') {
                format!(",{gap}")
            } else {
                ", ".to_owned()
            };
            (separator, indent_of(gap))
        }
        [.., before, last] => {
            let gap = &text[before.range().end..last.range().start];
            (gap.to_owned(), indent_of(gap))
        }
    };
    let rendered = match &indent {
        Some(indent) => pretty(value, &step).replace('\n', &format!("\n{indent}")),
        None => serde_json::to_string(value).expect("a JSON value serialises"),
    };
    if let Some(prop) = props.iter().find(|p| p.name.as_str() == key) {
        return (prop.value.range().start..prop.value.range().end, rendered);
    }
    let member = format!(
        "{}: {rendered}",
        serde_json::to_string(key).expect("a key serialises")
    );
    if let Some(last) = props.last() {
        return (
            last.range().end..last.range().end,
            format!("{separator}{member}"),
        );
    }
    let closing = if separator.is_empty() {
        String::new()
    } else {
        format!("\n{}", line_indent(text, open))
    };
    (open + 1..close, format!("{separator}{member}{closing}"))
}

/// One level of the file's indentation: its least indented line's.
fn indent_step(text: &str) -> String {
    text.lines()
        .map(|l| {
            l.chars()
                .take_while(|c| *c == ' ' || *c == '\t')
                .collect::<String>()
        })
        .filter(|i| !i.is_empty())
        .min_by_key(String::len)
        .unwrap_or_else(|| "  ".to_owned())
}

/// `value` on several lines, indented by `step`.
fn pretty(value: &serde_json::Value, step: &str) -> String {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(step.as_bytes());
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(value, &mut serializer).expect("a JSON value serialises");
    String::from_utf8(out).expect("JSON is UTF-8")
}

/// The whitespace that starts the line holding byte `at`.
fn line_indent(text: &str, at: usize) -> String {
    let start = text[..at].rfind('\n').map_or(0, |n| n + 1);
    text[start..]
        .chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .collect()
}

/// The indentation after the last line break of `gap`, when it has one.
fn indent_of(gap: &str) -> Option<String> {
    gap.rfind('\n').map(|n| {
        gap[n + 1..]
            .chars()
            .take_while(|c| *c == ' ' || *c == '\t')
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text(text: &str) -> ManifestText {
        ManifestText {
            path: PathBuf::from("claude-bottle.json"),
            text: text.to_owned(),
            exists: true,
        }
    }

    #[test]
    fn a_member_joins_the_end_of_its_object_in_the_files_own_layout() {
        let mut pretty =
            text("{\n    \"bottles\": {\n        \"dev\": {}\n    },\n    \"agents\": {}\n}\n");
        pretty
            .set(&["agents"], "a", &json!({"bottle": "dev"}))
            .unwrap();
        pretty.set(&["bottles"], "web", &json!({})).unwrap();
        assert_eq!(
            pretty.text,
            "{\n    \"bottles\": {\n        \"dev\": {},\n        \"web\": {}\n    },\n    \"agents\": {\n        \"a\": {\n            \"bottle\": \"dev\"\n        }\n    }\n}\n"
        );
        let mut flat = text(r#"{"bottles": {"dev": {}}, "agents": {}}"#);
        flat.set(&["agents"], "a", &json!({"bottle": "dev"}))
            .unwrap();
        flat.set(&["agents"], "b", &json!({"bottle": "dev"}))
            .unwrap();
        assert_eq!(
            flat.text,
            r#"{"bottles": {"dev": {}}, "agents": {"a": {"bottle":"dev"}, "b": {"bottle":"dev"}}}"#
        );
    }

    #[test]
    fn a_value_is_replaced_where_it_is_and_nothing_else_moves() {
        let before = "{\"agents\": {\"a\": {\"prompt\": \"old\",   \"bottle\": \"dev\"}}, \"bottles\": {\"dev\": {}}}";
        let mut file = text(before);
        file.set(&["agents", "a"], "prompt", &json!("new\n\"quoted\""))
            .unwrap();
        assert_eq!(file.text, before.replace("\"old\"", r#""new\n\"quoted\"""#));
        assert!(file.check().is_ok());
        assert!(!file.has(&["agents", "b"]));
    }
}
