//! The facts of images already probed, kept between commands.
//!
//! An image ID is the hash of the image's configuration, so what a probe
//! found for one never changes: a start of an image seen before needs no
//! probe container. The cache is best effort. A file that cannot be read
//! or written only means the probe runs, and a file that does not parse
//! (another version's, or cut short) is probed again and rewritten.

use std::path::PathBuf;

use super::image::ImageFacts;

/// Bumped when `ImageFacts` or the probe changes what it means.
const FORMAT: u32 = 1;

#[derive(Debug, Clone)]
pub(super) struct FactsCache {
    dir: PathBuf,
}

impl FactsCache {
    pub(super) fn in_dir(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The facts found for `image_id` before, if any.
    pub(super) fn get(&self, image_id: &str) -> Option<ImageFacts> {
        let text = std::fs::read(self.path(image_id)?).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Keeps `facts` for `image_id`, written whole or not at all.
    pub(super) fn put(&self, image_id: &str, facts: &ImageFacts) {
        let Some(path) = self.path(image_id) else {
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

    /// `sha256:<hex>` gives `sha256-<hex>-v1.json`; an ID of any other
    /// shape is not cached, so no ID can name a path outside the cache.
    fn path(&self, image_id: &str) -> Option<PathBuf> {
        let (algorithm, digest) = image_id.split_once(':')?;
        let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
        (plain(algorithm) && plain(digest)).then(|| {
            self.dir
                .join(format!("{algorithm}-{digest}-v{FORMAT}.json"))
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
        }
    }

    #[test]
    fn facts_kept_for_an_image_id_are_found_for_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FactsCache::in_dir(dir.path().join("facts"));
        assert_eq!(cache.get("sha256:aa11"), None);
        cache.put("sha256:aa11", &facts());
        assert_eq!(cache.get("sha256:aa11"), Some(facts()));
        assert_eq!(cache.get("sha256:bb22"), None);
    }

    #[test]
    fn an_id_that_is_not_a_digest_names_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FactsCache::in_dir(dir.path().to_owned());
        for id in ["../x:y", "sha256:../../etc", "sha256:", "plain", "a:b/c"] {
            cache.put(id, &facts());
            assert_eq!(cache.get(id), None, "{id}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_damaged_file_is_a_miss_and_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FactsCache::in_dir(dir.path().to_owned());
        std::fs::write(cache.path("sha256:cc").unwrap(), b"{\"user\":").unwrap();
        assert_eq!(cache.get("sha256:cc"), None);
        cache.put("sha256:cc", &facts());
        assert_eq!(cache.get("sha256:cc"), Some(facts()));
    }
}
