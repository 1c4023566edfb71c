//! The stage directory: scratch files for one instance, on the host.
//!
//! It lives under the user's cache (`~/.cache/claude-bottle/stage/<instance>`,
//! mode 0700) rather than a shared `/tmp`, so no other user can read or
//! pre-create it. It is removed when dropped; one whose process was killed
//! before it could drop it names its owner, so the cleanup sweep finds it.
//!
//! A stage comes into view whole: it is made under a hidden name, its
//! owner file written, then renamed into place. A sweep running beside a
//! start (every start sweeps) thus never sees a live stage without its
//! owner and takes it for a dead one's. It leaves view the same way.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::lifecycle::name::InstanceName;
use crate::lifecycle::owner::Owner;

const OWNER_FILE: &str = "owner.json";

/// Where the stage directories of `home` live.
pub fn stage_root(home: &Path) -> PathBuf {
    home.join(".cache/claude-bottle/stage")
}

/// The copy of the gate's log a running instance keeps in its stage.
pub const GATE_LOG: &str = "gate-log.jsonl";

/// The kept copy of `instance`'s gate log, where there is one: a plain
/// file in a stage directory of that very name.
pub fn kept_gate_log(home: &Path, instance: &str) -> Option<PathBuf> {
    let root = stage_root(home);
    if !is_stage_name(instance) || instance.starts_with('.') {
        return None;
    }
    let is = |path: &Path, dir: bool| {
        fs::symlink_metadata(path).is_ok_and(|m| if dir { m.is_dir() } else { m.is_file() })
    };
    let path = root.join(instance).join(GATE_LOG);
    (is(&root, true) && is(&root.join(instance), true) && is(&path, false)).then_some(path)
}

/// A stage directory found on disk, with its owner when it names one.
#[derive(Debug, Clone)]
pub struct FoundStage {
    /// The instance it is for; a stage still being made (or one whose
    /// start died while making it) keeps its hidden name.
    pub instance: String,
    pub path: PathBuf,
    pub owner: Option<Owner>,
    /// Since it last changed, in seconds.
    pub age_seconds: u64,
}

/// Whether `name` is one a stage directory has: shown, being made, or
/// going. Nothing else under the root is a stage's, to find or remove.
fn is_stage_name(name: &str) -> bool {
    let shown = name
        .strip_prefix('.')
        .and_then(|n| n.strip_suffix(".new").or_else(|| n.strip_suffix(".gone")))
        .unwrap_or(name);
    shown.starts_with("claude-bottle-") && !shown.contains(['/', '.'])
}

/// Every stage directory under `home` (none where the root is a link).
pub fn find_stages(home: &Path) -> Vec<FoundStage> {
    let root = stage_root(home);
    if !fs::symlink_metadata(&root).is_ok_and(|m| m.is_dir()) {
        return Vec::new();
    }
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut stages: Vec<FoundStage> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| is_stage_name(&e.file_name().to_string_lossy()))
        .map(|e| FoundStage {
            instance: e.file_name().to_string_lossy().into_owned(),
            owner: fs::read(e.path().join(OWNER_FILE))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok()),
            age_seconds: e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| SystemTime::now().duration_since(modified).ok())
                .map_or(0, |age| age.as_secs()),
            path: e.path(),
        })
        .collect();
    stages.sort_by(|a, b| a.instance.cmp(&b.instance));
    stages
}

#[derive(Debug)]
pub struct StageDir {
    instance: InstanceName,
    path: PathBuf,
}

impl StageDir {
    pub fn create(home: &Path, instance: InstanceName) -> Result<Self> {
        let root = stage_root(home);
        let path = root.join(instance.as_str());
        let failed = |err: std::io::Error| {
            Error::caused_by(
                format!("cannot create the stage directory {}", path.display()),
                err,
            )
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
            .map_err(failed)?;
        // Made and owned under a hidden name, then shown whole.
        let making = root.join(format!(".{}.new", instance.as_str()));
        let made = fs::DirBuilder::new()
            .mode(0o700)
            .create(&making)
            .and_then(|()| {
                // Lets `cleanup` tell a live instance's stage from a dead one's.
                let owner = serde_json::to_vec(&Owner::current()).expect("an owner serialises");
                fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(making.join(OWNER_FILE))?
                    .write_all(&owner)
            })
            .and_then(|()| fs::rename(&making, &path));
        if let Err(err) = made {
            let _ = fs::remove_dir_all(&making);
            return Err(failed(err));
        }
        Ok(Self { instance, path })
    }

    pub fn instance(&self) -> &InstanceName {
        &self.instance
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a scratch file readable by the owner only.
    pub fn write(&self, name: &str, contents: &[u8]) -> Result<PathBuf> {
        let path = self.path.join(name);
        fs::write(&path, contents)
            .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(0o600)))
            .map_err(|err| Error::caused_by(format!("cannot write {}", path.display()), err))?;
        Ok(path)
    }
}

impl Drop for StageDir {
    /// Out of view first, as it came in: its owner file goes before the
    /// directory does.
    fn drop(&mut self) {
        let going = self
            .path
            .with_file_name(format!(".{}.gone", self.instance.as_str()));
        let path = if fs::rename(&self.path, &going).is_ok() {
            going
        } else {
            self.path.clone()
        };
        let _ = fs::remove_dir_all(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::owner::Liveness;

    #[test]
    fn only_what_a_stage_is_named_is_found() {
        let home = tempfile::tempdir().unwrap();
        let root = stage_root(home.path());
        for name in [
            "claude-bottle-a-x1",
            ".claude-bottle-a-x2.new",
            ".claude-bottle-a-x3.gone",
            "notes",
            ".cache",
            "claude-bottle-a-x4.bak",
        ] {
            fs::create_dir_all(root.join(name)).unwrap();
        }
        let found: Vec<String> = find_stages(home.path())
            .into_iter()
            .map(|s| s.instance)
            .collect();
        assert_eq!(
            found,
            [
                ".claude-bottle-a-x2.new",
                ".claude-bottle-a-x3.gone",
                "claude-bottle-a-x1"
            ]
        );
        // A root that is a link leads nowhere.
        let elsewhere = tempfile::tempdir().unwrap();
        fs::create_dir_all(elsewhere.path().join("claude-bottle-a-y")).unwrap();
        let linked = tempfile::tempdir().unwrap();
        fs::create_dir_all(stage_root(linked.path()).parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), stage_root(linked.path())).unwrap();
        assert!(find_stages(linked.path()).is_empty());
    }

    #[test]
    fn a_stage_names_its_live_owner_and_goes_when_dropped() {
        let home = tempfile::tempdir().unwrap();
        let stage = StageDir::create(home.path(), InstanceName::generate("a")).unwrap();
        let found = find_stages(home.path());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].instance, stage.instance().as_str());
        assert_eq!(
            found[0].owner.as_ref().map(Owner::liveness),
            Some(Liveness::Live)
        );
        let path = stage.path().to_path_buf();
        drop(stage);
        assert!(!path.exists());
    }
}
