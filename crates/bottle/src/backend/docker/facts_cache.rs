//! The facts of images already probed, kept between commands.
//!
//! An image ID is the hash of the image's configuration, so what a probe
//! found for one never changes under one runtime (the probe runs under the
//! bottle's, which decides the statx fallback): a start of an image seen
//! before under its runtime needs no probe container. A runtime is known by
//! its name, the engine it is on and the executable registered for it
//! (`runtime_key`), so a runtime replaced by another path, or the same name
//! on another engine, is probed afresh; `doctor`, which asks the runtime
//! itself, forgets what was found under one it finds sound. The cache is best effort. A file that cannot be read
//! or written only means the probe runs, and a file that does not parse
//! (another version's, or cut short) is probed again and rewritten.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::engine::Engine;
use super::image::ImageFacts;

/// Bumped when `ImageFacts` or the probe changes what it means.
const FORMAT: u32 = 2;

#[derive(Debug, Clone)]
pub(super) struct FactsCache {
    dir: PathBuf,
}

/// `runtime` on `engine`, as registered there: its name, and a digest of
/// the engine's ID and the runtime's executable.
pub(super) fn runtime_key(engine: &Engine, runtime: &str) -> String {
    let path = engine.runtime_paths.get(runtime).map_or("", String::as_str);
    let digest = Sha256::new()
        .chain_update(engine.id.as_bytes())
        .chain_update([0])
        .chain_update(path.as_bytes())
        .finalize();
    let short = digest[..6].iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    });
    format!("{runtime}-{short}")
}

impl FactsCache {
    pub(super) fn in_dir(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The cache of the user whose home is `home`.
    pub(super) fn of_home(home: &Path) -> Self {
        Self::in_dir(Self::dir_of_home(home))
    }

    pub(super) fn dir_of_home(home: &Path) -> PathBuf {
        home.join(".cache/claude-bottle/image-facts")
    }

    /// Drops what was found of any image under `runtime` (a key of
    /// `runtime_key`).
    pub(super) fn forget_runtime(&self, runtime: &str) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let suffix = format!("-v{FORMAT}.json");
        for entry in entries.flatten() {
            // `<algorithm>-<digest>-<runtime>`: the first two have no `-`.
            let name = entry.file_name().to_string_lossy().into_owned();
            let under = name
                .strip_suffix(&suffix)
                .and_then(|stem| stem.splitn(3, '-').nth(2));
            if under == Some(runtime) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// The facts found for `image_id` under `runtime` before, if any.
    pub(super) fn get(&self, image_id: &str, runtime: &str) -> Option<ImageFacts> {
        let text = std::fs::read(self.path(image_id, runtime)?).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Keeps `facts` for `image_id` under `runtime`, written whole or not
    /// at all.
    pub(super) fn put(&self, image_id: &str, runtime: &str, facts: &ImageFacts) {
        let Some(path) = self.path(image_id, runtime) else {
            return;
        };
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
            serde_json::to_writer(&mut file, facts)?;
            file.persist(&path)?;
            Ok(())
        };
        let _ = write();
    }

    /// `sha256:<hex>` under `runc` gives `sha256-<hex>-runc-v2.json`; an
    /// ID or runtime of any other shape is not cached, so neither can name
    /// a path outside the cache.
    fn path(&self, image_id: &str, runtime: &str) -> Option<PathBuf> {
        let (algorithm, digest) = image_id.split_once(':')?;
        let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
        let name = !runtime.is_empty()
            && !runtime.starts_with('.')
            && runtime
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        (plain(algorithm) && plain(digest) && name).then(|| {
            self.dir
                .join(format!("{algorithm}-{digest}-{runtime}-v{FORMAT}.json"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> ImageFacts {
        ImageFacts {
            user: "agent".into(),
            uid: 1000,
            gid: 1000,
            home: "/home/agent".into(),
            workspace_writable: false,
            has_ssh: true,
            statx_faulty: false,
            preload: None,
        }
    }

    #[test]
    fn facts_kept_for_an_image_id_are_found_for_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FactsCache::in_dir(dir.path().join("facts"));
        assert_eq!(cache.get("sha256:aa11", "runc"), None);
        cache.put("sha256:aa11", "runc", &facts());
        assert_eq!(cache.get("sha256:aa11", "runc"), Some(facts()));
        assert_eq!(cache.get("sha256:bb22", "runc"), None);
        // Another runtime may see the image otherwise.
        assert_eq!(cache.get("sha256:aa11", "runsc"), None);
    }

    #[test]
    fn an_id_that_is_not_a_digest_names_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FactsCache::in_dir(dir.path().to_owned());
        for id in ["../x:y", "sha256:../../etc", "sha256:", "plain", "a:b/c"] {
            cache.put(id, "runc", &facts());
            assert_eq!(cache.get(id, "runc"), None, "{id}");
        }
        for runtime in ["", "../x", "a/b", "..", ".x"] {
            cache.put("sha256:aa", runtime, &facts());
            assert_eq!(cache.get("sha256:aa", runtime), None, "{runtime}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn what_was_found_under_a_runtime_is_forgotten_for_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FactsCache::in_dir(dir.path().to_owned());
        cache.put("sha256:aa", "runsc-0a0a", &facts());
        cache.put("sha256:bb", "runsc-0a0a", &facts());
        cache.put("sha256:aa", "x-runsc-0a0a", &facts());
        cache.put("sha256:aa", "runc-1b1b", &facts());
        cache.forget_runtime("runsc-0a0a");
        assert_eq!(cache.get("sha256:aa", "runsc-0a0a"), None);
        assert_eq!(cache.get("sha256:bb", "runsc-0a0a"), None);
        // Only that key: `x-runsc-0a0a` ends the same way but is another.
        assert_eq!(cache.get("sha256:aa", "runc-1b1b"), Some(facts()));
        assert!(cache.get("sha256:aa", "x-runsc-0a0a").is_some());
    }

    #[test]
    fn a_damaged_file_is_a_miss_and_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FactsCache::in_dir(dir.path().to_owned());
        std::fs::write(cache.path("sha256:cc", "runc").unwrap(), b"{\"user\":").unwrap();
        assert_eq!(cache.get("sha256:cc", "runc"), None);
        cache.put("sha256:cc", "runc", &facts());
        assert_eq!(cache.get("sha256:cc", "runc"), Some(facts()));
    }
}
