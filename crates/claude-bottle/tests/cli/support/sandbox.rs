//! A temporary home and working directory, and a way to run the binary in
//! them with nothing of the caller's environment leaking in.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_claude-bottle");

pub(crate) struct Sandbox {
    _root: tempfile::TempDir,
    pub(crate) home: PathBuf,
    pub(crate) cwd: PathBuf,
    env: Vec<(String, String)>,
}

#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl From<std::process::Output> for Output {
    fn from(output: std::process::Output) -> Self {
        Self {
            code: output.status.code().expect("exited, not killed"),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }
}

impl Output {
    /// Everything the user saw.
    pub(crate) fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    #[track_caller]
    pub(crate) fn json(&self) -> serde_json::Value {
        assert_eq!(self.code, 0, "{self:?}");
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| panic!("{err}: {self:?}"))
    }
}

/// What chooses the engine and how it is reached; the rest of the
/// environment stays out of the sandbox.
const ENGINE_VARIABLES: [&str; 3] = ["DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"];

impl Sandbox {
    pub(crate) fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let home = root.path().join("home");
        let cwd = root.path().join("work");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&cwd).unwrap();
        Self {
            _root: root,
            home,
            cwd,
            // Tests run under runc unless they ask for gVisor.
            env: vec![("CLAUDE_BOTTLE_RUNTIME".into(), "runc".into())],
        }
    }

    pub(crate) fn with_manifest(text: &str) -> Self {
        let sandbox = Self::new();
        sandbox.cwd_manifest(text);
        sandbox
    }

    pub(crate) fn home_manifest(&self, text: &str) {
        write(&self.home.join("claude-bottle.json"), text);
    }

    pub(crate) fn cwd_manifest(&self, text: &str) {
        write(&self.cwd.join("claude-bottle.json"), text);
    }

    pub(crate) fn skill(&self, name: &str) {
        write(
            &self.home.join(".claude/skills").join(name).join("SKILL.md"),
            "---\nname: x\n---\n",
        );
    }

    /// A fresh ed25519 key pair at `~/.ssh/NAME` (with a passphrase when
    /// given); its public half, as `ssh-ed25519 AAAA...`.
    pub(crate) fn ssh_key(&self, name: &str, passphrase: &str) -> String {
        self.ssh_key_of_type(name, "ed25519", passphrase)
    }

    /// [`Self::ssh_key`] of another type (`rsa`, `ecdsa`).
    pub(crate) fn ssh_key_of_type(&self, name: &str, kind: &str, passphrase: &str) -> String {
        let path = self.home.join(".ssh").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-C", "", "-N", passphrase, "-f"])
            .arg(&path)
            .status()
            .expect("ssh-keygen runs");
        assert!(status.success(), "ssh-keygen for {name}");
        std::fs::read_to_string(path.with_extension("pub"))
            .unwrap()
            .trim()
            .to_owned()
    }

    pub(crate) fn env(mut self, name: &str, value: &str) -> Self {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.into(), value.into()));
        self
    }

    /// The command, with a clean environment: PATH, HOME and what the test set.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .current_dir(&self.cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        // The engine the suite runs against, unless the test chose one.
        for name in ENGINE_VARIABLES {
            if let Some(value) = std::env::var_os(name) {
                if !self.env.iter().any(|(k, _)| k == name) {
                    command.env(name, value);
                }
            }
        }
        command
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .expect("the binary runs")
            .into()
    }

    /// The stage directories left under the sandbox's home.
    pub(crate) fn stage_dirs(&self) -> Vec<PathBuf> {
        let stage = self.home.join(".cache/claude-bottle/stage");
        std::fs::read_dir(stage)
            .map(|dir| dir.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default()
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A manifest with one agent and one bottle, no host prerequisites.
pub(crate) const SIMPLE: &str = r#"{
  "bottles": { "dev": { "egress": { "allowlist": ["pypi.org"] } } },
  "agents": { "a": { "bottle": "dev", "prompt": "You help." } }
}"#;
