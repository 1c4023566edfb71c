//! What goes into the agent's home before claude starts: the prompt, the
//! skills, and Claude Code's first-run state. Built here as one tar archive,
//! independent of any engine; a backend streams it into `tar -x` in the
//! bottle, as the agent's user, so every file belongs to that user.

use std::path::{Path, PathBuf};

use crate::archive::append_file;
use crate::env::Secret;
use crate::error::{Error, Result};

/// Where the prompt lands, relative to the agent's home.
pub const PROMPT_FILE: &str = ".claude-bottle/prompt.md";

/// The inputs of provisioning, resolved at prepare.
#[derive(Debug, Clone, Default)]
pub struct Provision {
    pub prompt: Option<String>,
    /// Skill name and its folder on the host.
    pub skills: Vec<(String, PathBuf)>,
}

impl Provision {
    /// The archive to unpack in the agent's home; `workdir` is the folder
    /// Claude Code is pre-trusted for, `api_key` the `ANTHROPIC_API_KEY`
    /// the session gets, if any.
    pub fn home_archive(&self, workdir: &str, api_key: Option<&Secret>) -> Result<Vec<u8>> {
        let mut archive = tar::Builder::new(Vec::new());
        archive.mode(tar::HeaderMode::Deterministic);
        archive.follow_symlinks(false);
        if let Some(prompt) = &self.prompt {
            append(&mut archive, PROMPT_FILE, prompt.as_bytes())?;
        }
        for (name, folder) in &self.skills {
            archive
                .append_dir_all(format!(".claude/skills/{name}"), folder)
                .map_err(|err| {
                    Error::caused_by(
                        format!("cannot copy skill `{name}` from {}", folder.display()),
                        err,
                    )
                })?;
        }
        // Onboarding and the trust dialog would otherwise stop an unattended
        // session, and onboarding ignores an OAuth token until it is done.
        let mut state = serde_json::json!({
            "hasCompletedOnboarding": true,
            "projects": { workdir: { "hasTrustDialogAccepted": true } },
        });
        // Claude Code asks before using a key from the environment; it
        // remembers the answer by the key's last 20 characters. The file
        // lives in the bottle only, whose user has the key anyway.
        if let Some(key) = api_key {
            // By characters: a byte index inside a character would panic,
            // and the panic message would quote the key.
            let key = key.expose();
            let start = key.char_indices().rev().nth(19).map_or(0, |(at, _)| at);
            let tail = &key[start..];
            state["customApiKeyResponses"] =
                serde_json::json!({ "approved": [tail], "rejected": [] });
        }
        append(&mut archive, ".claude.json", state.to_string().as_bytes())?;
        let settings = serde_json::json!({
            "theme": "dark",
            "skipDangerousModePermissionPrompt": true,
        });
        append(
            &mut archive,
            ".claude/settings.json",
            settings.to_string().as_bytes(),
        )?;
        archive
            .into_inner()
            .map_err(|err| Error::caused_by("cannot build the provisioning archive", err))
    }

    /// The prompt's path in a home, when there is a prompt.
    pub fn prompt_path(&self, home: &str) -> Option<String> {
        self.prompt
            .as_ref()
            .map(|_| format!("{}/{PROMPT_FILE}", home.trim_end_matches('/')))
    }
}

fn append(
    archive: &mut tar::Builder<Vec<u8>>,
    path: impl AsRef<Path>,
    contents: &[u8],
) -> Result<()> {
    append_file(archive, path, 0o644, contents.len() as u64, contents)
        .map_err(|err| Error::caused_by("cannot build the provisioning archive", err))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(archive: &[u8]) -> Vec<(String, String)> {
        let mut reader = tar::Archive::new(archive);
        reader
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let path = entry.path().unwrap().display().to_string();
                let mut text = String::new();
                std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
                (path, text)
            })
            .collect()
    }

    #[test]
    fn the_archive_holds_prompt_skills_and_first_run_state() {
        let skill = tempfile::tempdir().unwrap();
        std::fs::write(skill.path().join("SKILL.md"), "---\nname: tdd\n---\n").unwrap();
        std::fs::create_dir(skill.path().join("extra")).unwrap();
        std::fs::write(skill.path().join("extra/notes.txt"), "notes").unwrap();
        let provision = Provision {
            prompt: Some("You implement.".into()),
            skills: vec![("tdd".into(), skill.path().to_path_buf())],
        };
        let files = entries(&provision.home_archive("/workspace", None).unwrap());
        let find = |p: &str| {
            files
                .iter()
                .find(|(path, _)| path == p)
                .map(|(_, t)| t.clone())
        };
        assert_eq!(find(PROMPT_FILE).as_deref(), Some("You implement."));
        assert!(
            find(".claude/skills/tdd/SKILL.md")
                .unwrap()
                .contains("name: tdd")
        );
        assert_eq!(
            find(".claude/skills/tdd/extra/notes.txt").as_deref(),
            Some("notes")
        );
        let state: serde_json::Value =
            serde_json::from_str(&find(".claude.json").unwrap()).unwrap();
        assert_eq!(
            state["projects"]["/workspace"]["hasTrustDialogAccepted"],
            true
        );
        assert_eq!(
            provision.prompt_path("/home/agent/").as_deref(),
            Some("/home/agent/.claude-bottle/prompt.md")
        );
    }

    #[test]
    fn without_prompt_or_skills_only_the_first_run_state_goes_in() {
        let files = entries(
            &Provision::default()
                .home_archive("/workspace", None)
                .unwrap(),
        );
        let paths: Vec<_> = files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, [".claude.json", ".claude/settings.json"]);
        assert_eq!(Provision::default().prompt_path("/home/agent"), None);
    }

    #[test]
    fn the_remembered_key_is_its_last_20_characters_whatever_they_are() {
        let approved = |key: &str| {
            let files = entries(
                &Provision::default()
                    .home_archive("/workspace", Some(&Secret::new(key)))
                    .unwrap(),
            );
            let state: serde_json::Value = serde_json::from_str(&files[0].1).unwrap();
            state["customApiKeyResponses"]["approved"][0]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(
            approved("sk-ant-api03-abcdefghijklmnopqrstuvwxyz"),
            "ghijklmnopqrstuvwxyz"
        );
        assert_eq!(approved("short"), "short");
        // Multi-byte characters across the 20th from the end.
        let key = format!("{}é{}", "ü".repeat(30), "ß".repeat(19));
        assert_eq!(approved(&key), format!("é{}", "ß".repeat(19)));
        assert_eq!(approved("日本語のキー"), "日本語のキー");
    }
}
