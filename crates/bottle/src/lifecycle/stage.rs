//! The stage directory: scratch files for one instance, on the host.
//!
//! It lives under the user's cache (`~/.cache/claude-bottle/stage/<instance>`,
//! mode 0700) rather than a shared `/tmp`, so no other user can read or
//! pre-create it. It is removed when dropped; one whose process was killed
//! before it could drop it names its owner, so the cleanup sweep finds it.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::lifecycle::name::InstanceName;
use crate::lifecycle::owner::Owner;

const OWNER_FILE: &str = "owner.json";

/// Where the stage directories of `home` live.
pub fn stage_root(home: &Path) -> PathBuf {
    home.join(".cache/claude-bottle/stage")
}

/// A stage directory found on disk, with its owner when it names one.
#[derive(Debug, Clone)]
pub struct FoundStage {
    pub instance: String,
    pub path: PathBuf,
    pub owner: Option<Owner>,
}

/// Every stage directory under `home`.
pub fn find_stages(home: &Path) -> Vec<FoundStage> {
    let Ok(entries) = fs::read_dir(stage_root(home)) else {
        return Vec::new();
    };
    let mut stages: Vec<FoundStage> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| FoundStage {
            instance: e.file_name().to_string_lossy().into_owned(),
            owner: fs::read(e.path().join(OWNER_FILE))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok()),
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
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(failed)?;
        let stage = Self { instance, path };
        // Lets `cleanup` tell a live instance's stage from a dead one's.
        let owner = serde_json::to_vec(&Owner::current()).expect("an owner serialises");
        stage.write(OWNER_FILE, &owner)?;
        Ok(stage)
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
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::owner::Liveness;

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
