//! `edit AGENT`: the agent's prompt in the user's editor, written back in
//! place in the file that defines the agent, or not at all.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use bottle::Error;
use bottle::manifest::patch::ManifestText;
use bottle::manifest::{FILE_NAME, Manifest};
use bottle::settings::{EDITOR, VISUAL, editor};
use serde_json::json;

use crate::error::CommandError;

pub(crate) fn run(agent: &str) -> Result<ExitCode, CommandError> {
    let (cwd, home) = super::manifest_dirs()?;
    let manifest = Manifest::load(&cwd, &home)?;
    let prompt = manifest.agent(agent)?.0.prompt.clone().unwrap_or_default();
    // The working directory's entry is the one that counts.
    let file = [cwd.join(FILE_NAME), home.join(FILE_NAME)]
        .iter()
        .map(|path| ManifestText::read_or_new(path))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .find(|file| file.exists && file.has(&["agents", agent]))
        .ok_or_else(|| Error::new(format!("no file defines agent `{agent}`")))?;
    let editor = editor().ok_or_else(|| {
        Error::new("no editor to open the prompt in").hint(format!(
            "set {} or {}, e.g. `export EDITOR=nano`",
            VISUAL.name, EDITOR.name
        ))
    })?;
    let draft = tempfile::Builder::new()
        .prefix(&format!("claude-bottle-{agent}-prompt-"))
        .suffix(".md")
        .tempfile()
        .map_err(|err| Error::caused_by("cannot make the prompt's draft", err))?;
    std::fs::write(draft.path(), &prompt)
        .map_err(|err| Error::caused_by("cannot write the prompt's draft", err))?;
    let unchanged =
        |why: String| Error::new(format!("{why}; {} is unchanged", file.path.display()));
    // Through sh, so an EDITOR with arguments (`code --wait`) works.
    let status = Command::new("sh")
        .args(["-c", &format!("{editor} \"$1\""), "editor"])
        .arg(draft.path())
        .status()
        .map_err(|err| Error::caused_by(format!("cannot run the editor `{editor}`"), err))?;
    if !status.success() {
        return Err(unchanged(format!("the editor `{editor}` failed ({status})")).into());
    }
    let bytes = std::fs::read(draft.path())
        .map_err(|err| Error::caused_by("cannot read the edited prompt", err))?;
    let Ok(edited) = String::from_utf8(bytes) else {
        return Err(unchanged("the edited prompt is not UTF-8 text".to_owned())
            .hint("save it as UTF-8")
            .into());
    };
    if edited == prompt {
        eprintln!("the prompt of `{agent}` is as it was");
        return Ok(ExitCode::SUCCESS);
    }
    let now = ManifestText::read_or_new(&file.path)?;
    if now.text != file.text {
        let kept: PathBuf = draft
            .keep()
            .map_err(|err| Error::caused_by("cannot keep the draft", err.error))?
            .1;
        return Err(
            unchanged("it changed while the prompt was edited".to_owned())
                .hint(format!("the edited prompt is kept in {}", kept.display()))
                .into(),
        );
    }
    let mut file = file;
    file.set(&["agents", agent], "prompt", &json!(edited))?;
    file.check()?;
    file.write()?;
    eprintln!("saved the prompt of `{agent}` in {}", file.path.display());
    Ok(ExitCode::SUCCESS)
}
